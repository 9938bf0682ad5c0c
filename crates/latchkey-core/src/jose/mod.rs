//! JOSE: the provider's own signed JWTs (RFC 7515, RFC 7519) and the keys that sign them.
//!
//! Everything the OpenID Provider signs (ID tokens, RFC 9068 access tokens, logout tokens,
//! signed userinfo) goes through a [`JwsSigner`]. The built-in one is a [`KeySet`]: the
//! decrypted view of the [`SigningKey`] records a store keeps, with their private keys sealed
//! under a key-encryption key ([`Kek`]). An external KMS can stand in by implementing the
//! trait. Rotation is a pure plan over the records ([`rotation::plan`]): keys move through
//! states (next, active, retiring, retired) by their times, never by a flag.
//!
//! Only asymmetric algorithms are offered ([`SigningAlg`]): never `none` and never HMAC, so
//! anyone holding the JWKS can verify and nobody but the provider can sign.

pub(crate) mod foreign;
mod kek;
mod key;
mod keyset;
pub mod manage;
pub mod rotation;

pub use kek::Kek;
pub use key::{KeyState, SigningKey, thumbprint};
pub use keyset::KeySet;

use crate::clock::UnixTime;
use crate::error::{ErrorCode, OAuthError};
use base64::Engine as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// A signature algorithm the provider signs its own JWTs with (RFC 7518 §3.1, RFC 8037 §3.1).
///
/// Deliberately small: `none` and the HMAC algorithms cannot be named, so no configuration
/// can produce an unsigned token or one a client secret could forge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum SigningAlg {
    /// ECDSA on P-256 with SHA-256: the default (small keys, fast signing).
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256 on a 2048-bit key: for clients that know nothing else
    /// (OpenID Connect Core §15.1 makes it mandatory to implement).
    Rs256,
    /// Ed25519 (RFC 8037).
    EdDsa,
}

impl SigningAlg {
    /// Every algorithm, in the order metadata lists them.
    pub const ALL: [SigningAlg; 3] = [Self::Es256, Self::Rs256, Self::EdDsa];

    /// The `alg` value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::EdDsa => "EdDSA",
        }
    }

    /// Parses an `alg` value; `None` for anything we do not sign with (including `none` and
    /// `HS256`). Case-sensitive, as RFC 7515 §4.1.1 makes `alg` values.
    pub fn parse(alg: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == alg)
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SigningAlg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for SigningAlg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw)
            .ok_or_else(|| serde::de::Error::custom(format!("unsupported signing alg {raw:?}")))
    }
}

/// Why a JWT, a key or a sealed secret was refused. The caller decides which protocol error it
/// becomes (`invalid_request` for an `id_token_hint`, `invalid_token` for a bearer token), with
/// [`JoseError::oauth`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoseError {
    /// Not a compact JWS we could read (shape, base64url, JSON, size).
    #[error("malformed JWT: {0}")]
    Malformed(&'static str),
    /// The header names an algorithm we do not accept, or one that is not the key's.
    #[error("algorithm not accepted")]
    Algorithm,
    /// No published key has the header's `kid`.
    #[error("unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// The `typ` header is not the expected one (RFC 8725 §3.11).
    #[error("wrong token type")]
    Type,
    /// `exp` has passed, or is missing where required.
    #[error("token expired")]
    Expired,
    /// `nbf` or `iat` lies in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not this provider.
    #[error("wrong issuer")]
    Issuer,
    /// `aud` does not contain the expected audience.
    #[error("wrong audience")]
    Audience,
    /// The claims do not have the shape the caller asked for.
    #[error("unexpected claims: {0}")]
    Claims(String),
    /// A key or sealed secret could not be used (wrong KEK, altered ciphertext, bad DER).
    #[error("key error: {0}")]
    Key(&'static str),
    /// No key may sign with this algorithm now.
    #[error("no active signing key for {0}")]
    NoActiveKey(SigningAlg),
}

impl JoseError {
    /// This refusal as an OAuth error with `code`: the client reads a fixed description, the
    /// log reads the reason.
    pub fn oauth(&self, code: ErrorCode) -> OAuthError {
        OAuthError::new(code, "the token is invalid").with_detail(self)
    }
}

/// What a verified JWS carried, before the caller's claim checks (see [`Expect`]).
#[derive(Clone, Debug)]
pub struct Verified {
    /// The algorithm that verified.
    pub alg: SigningAlg,
    /// The key that verified.
    pub kid: String,
    /// The `typ` header, if any.
    pub typ: Option<String>,
    /// The claims set.
    pub claims: Map<String, Value>,
}

/// The largest JWT we try to verify: far above any token we issue, far below a memory risk.
pub const MAX_JWT_LEN: usize = 16 * 1024;

/// A signer of the provider's own JWTs: the built-in [`KeySet`], or an external KMS.
///
/// Object safe, so the provider can hold an `Arc<dyn JwsSigner>` and swap it at run time
/// (see [`crate::provider::Provider::set_signer`]); the typed helpers
/// ([`JwsSigner::sign`](trait.JwsSigner.html#method.sign),
/// [`JwsSigner::verify`](trait.JwsSigner.html#method.verify)) live on `dyn JwsSigner`.
pub trait JwsSigner: Send + Sync + 'static {
    /// Signs `payload` (the JSON claims set, already serialized) as a compact JWS with the
    /// active key of `alg` (the default algorithm when `None`); the header carries `alg`,
    /// `kid` and `typ`.
    fn sign_payload(
        &self,
        alg: Option<SigningAlg>,
        typ: &str,
        payload: &[u8],
    ) -> Result<String, OAuthError>;

    /// Checks the signature of a compact JWS against every published key and returns what it
    /// carried; claims are not checked here (see [`Expect`]).
    fn verify_signature(&self, token: &str) -> Result<Verified, JoseError>;

    /// The JWK Set document (RFC 7517 §5): public members of every published key only.
    fn jwks(&self) -> Value;

    /// The algorithms that have a key able to sign now, default first.
    fn active_algs(&self) -> Vec<SigningAlg>;

    /// The algorithm used when a caller names none.
    fn default_alg(&self) -> SigningAlg;
}

impl dyn JwsSigner {
    /// Signs `claims` as a compact JWS (see [`JwsSigner::sign_payload`]).
    pub fn sign(
        &self,
        alg: Option<SigningAlg>,
        typ: &str,
        claims: &impl Serialize,
    ) -> Result<String, OAuthError> {
        let payload =
            serde_json::to_vec(claims).map_err(|e| OAuthError::server_error().with_detail(e))?;
        self.sign_payload(alg, typ, &payload)
    }

    /// Verifies one of our own JWTs: signature against every published key, then `expect`'s
    /// checks, then the claims' shape.
    pub fn verify<T: DeserializeOwned>(
        &self,
        token: &str,
        expect: &Expect,
    ) -> Result<T, JoseError> {
        let verified = self.verify_signature(token)?;
        expect.check(&verified)?;
        serde_json::from_value(Value::Object(verified.claims))
            .map_err(|e| JoseError::Claims(e.to_string()))
    }
}

/// The claim checks [`JwsSigner::verify`](trait.JwsSigner.html#method.verify) applies after
/// the signature: type, time, issuer, audience.
#[derive(Clone, Debug)]
pub struct Expect {
    /// The required `typ` header (RFC 8725 §3.11), compared without case and with an optional
    /// `application/` prefix (RFC 7515 §4.1.9); `None` accepts any.
    pub typ: Option<String>,
    /// The current time.
    pub now: UnixTime,
    /// Whether `exp` is required and checked: off for an `id_token_hint`, which may have
    /// expired (OpenID Connect RP-Initiated Logout §2).
    pub check_exp: bool,
    /// Tolerated clock skew, in seconds, for `exp`, `nbf` and `iat`.
    pub leeway: u64,
    /// The required `iss`.
    pub issuer: Option<String>,
    /// An audience `aud` must contain.
    pub audience: Option<String>,
}

impl Expect {
    /// Checks of a token of type `typ` at `now`: `exp` checked, 60 s of leeway, no issuer or
    /// audience required until set with [`Expect::issuer`] and [`Expect::audience`].
    pub fn new(typ: impl Into<String>, now: UnixTime) -> Self {
        Self {
            typ: Some(typ.into()),
            now,
            check_exp: true,
            leeway: 60,
            issuer: None,
            audience: None,
        }
    }

    /// Requires `iss` to equal `issuer`.
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Requires `aud` to contain `audience`.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Accepts an expired token (an `id_token_hint`).
    pub fn allow_expired(mut self) -> Self {
        self.check_exp = false;
        self
    }

    pub(crate) fn check(&self, v: &Verified) -> Result<(), JoseError> {
        // RFC 8725 §3.11: explicit typing keeps one kind of JWT from passing as another.
        if let Some(want) = &self.typ {
            let got = v.typ.as_deref().ok_or(JoseError::Type)?;
            if !same_typ(got, want) {
                return Err(JoseError::Type);
            }
        }
        let time = |name: &str| -> Result<Option<i64>, JoseError> {
            match v.claims.get(name) {
                None => Ok(None),
                Some(n) => n
                    .as_i64()
                    .or_else(|| n.as_f64().map(|f| f as i64))
                    .map(Some)
                    .ok_or(JoseError::Claims(format!("{name} is not a number"))),
            }
        };
        let leeway = i64::try_from(self.leeway).unwrap_or(i64::MAX);
        // RFC 7519 §4.1.4: "the current date/time MUST be before the expiration date/time".
        if self.check_exp {
            let exp = time("exp")?.ok_or(JoseError::Expired)?;
            if self.now.0 >= exp.saturating_add(leeway) {
                return Err(JoseError::Expired);
            }
        }
        // RFC 7519 §4.1.5: not to be accepted before `nbf`.
        if let Some(nbf) = time("nbf")?
            && self.now.0.saturating_add(leeway) < nbf
        {
            return Err(JoseError::NotYetValid);
        }
        if let Some(iat) = time("iat")?
            && self.now.0.saturating_add(leeway) < iat
        {
            return Err(JoseError::NotYetValid);
        }
        if let Some(issuer) = &self.issuer
            && v.claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str())
        {
            return Err(JoseError::Issuer);
        }
        // RFC 7519 §4.1.3: `aud` is a string or an array of strings.
        if let Some(audience) = &self.audience {
            let ok = match v.claims.get("aud") {
                Some(Value::String(a)) => a == audience,
                Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(audience)),
                _ => false,
            };
            if !ok {
                return Err(JoseError::Audience);
            }
        }
        Ok(())
    }
}

/// Whether two `typ` values name the same media type: case-insensitive, `application/`
/// optional (RFC 7515 §4.1.9).
fn same_typ(got: &str, want: &str) -> bool {
    let strip = |s: &str| -> String {
        let lower = s.to_ascii_lowercase();
        lower
            .strip_prefix("application/")
            .map(str::to_owned)
            .unwrap_or(lower)
    };
    strip(got) == strip(want)
}

/// Base64url without padding, the encoding of every JOSE member (RFC 7515 §2).
pub(crate) fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The header of a JWS we sign: exactly `alg`, `kid`, `typ`.
#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: &'a str,
}

/// `base64url(header) || '.' || base64url(payload)`: the JWS signing input (RFC 7515 §5.1).
pub(crate) fn signing_input(alg: SigningAlg, kid: &str, typ: &str, payload: &[u8]) -> String {
    let header = Header {
        alg: alg.as_str(),
        kid,
        typ,
    };
    // Serializing three strings cannot fail.
    let header = serde_json::to_vec(&header).unwrap_or_default();
    let mut out = String::with_capacity(4 * (header.len() + payload.len()) / 3 + 100);
    out.push_str(&b64(&header));
    out.push('.');
    out.push_str(&b64(payload));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algs_round_trip_and_never_none_or_hmac() {
        for alg in SigningAlg::ALL {
            assert_eq!(SigningAlg::parse(alg.as_str()), Some(alg));
        }
        for refused in ["none", "HS256", "es256", "EDDSA", "RS512", ""] {
            assert_eq!(SigningAlg::parse(refused), None, "{refused}");
        }
    }

    #[test]
    fn a_provider_signs_out_of_the_box_and_its_signer_can_be_swapped() {
        use crate::prelude::*;
        use std::sync::Arc;
        let clock = Arc::new(ManualClock::new(UnixTime(1_000)));
        let provider = Provider::builder(MemoryStore::new(), NoUsers)
            .clock(clock.clone())
            .build()
            .expect("provider");
        let claims = serde_json::json!({"sub": "alice", "exp": 2_000});
        let first = provider.signer().sign(None, "JWT", &claims).expect("sign");
        let expect = Expect::new("JWT", clock.now());
        assert_eq!(provider.signer().active_algs(), [SigningAlg::Es256]);
        let clone = provider.clone();
        clone.set_signer(Arc::new(
            KeySet::generate(&[SigningAlg::EdDsa], clock.clone()).expect("keys"),
        ));
        // Every clone sees the new signer; the old one's tokens are no longer ours.
        assert_eq!(provider.signer().default_alg(), SigningAlg::EdDsa);
        assert_eq!(
            provider.signer().verify::<Value>(&first, &expect).err(),
            Some(JoseError::UnknownKey)
        );
    }

    #[test]
    fn typ_matches_without_case_or_application_prefix() {
        assert!(same_typ("application/at+jwt", "at+jwt"));
        assert!(same_typ("JWT", "jwt"));
        assert!(!same_typ("jwt", "at+jwt"));
        assert!(!same_typ("logout+jwt", "jwt"));
    }
}
