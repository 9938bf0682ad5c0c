//! DPoP proofs (RFC 9449): checking that the sender of a request holds the private key its
//! tokens are bound to, with no I/O of its own.
//!
//! A proof is a compact JWS in the `DPoP` header, signed with the key whose public half it
//! carries in its `jwk` header. [`verify_proof`] applies RFC 9449 §4.3 in order (size, one
//! header, `typ`, `alg` from the configured allow-list, a public `jwk` only, signature,
//! `htm`, `htu`, `iat` window, `ath`, server nonce) and [`check`] adds the last rule, `jti`
//! used once, through the store's [`ReplayStore`] so every node shares it. The result names
//! the key by its RFC 7638 thumbprint (`jkt`), which tokens carry as
//! [`crate::token::Confirmation::Jkt`].
//!
//! Who calls it: the token endpoint (one place computes a request's confirmation for every
//! grant), the userinfo endpoint and the resource guards (through
//! [`crate::resource::dpop`]).

pub mod nonce;
pub mod proof;

use crate::clock::UnixTime;
use crate::error::{ErrorCode, OAuthError};
use crate::http::HttpRequest;
use crate::secret::Secret;
use crate::store::replay::replay_key;
use crate::store::{ReplayStore, StoreError};
use base64::Engine as _;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};
use sha2::{Digest as _, Sha256};

/// The longest proof read: an RS256 proof with a 4096-bit key is about 1.5 KiB.
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// The longest `jti` accepted.
pub const MAX_JTI_LEN: usize = 256;

/// Every algorithm a proof may be signed with here (asymmetric only, RFC 9449 §4.2); the
/// configured allow-list ([`DpopConfig::algs`]) is a part of it.
pub const SUPPORTED_ALGS: [&str; 9] = [
    "ES256", "ES384", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
];

/// The DPoP settings of a provider (and of a resource guard).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DpopConfig {
    /// DPoP accepted at all (on by default). Off, a `DPoP` header is ignored at the token
    /// endpoint, tokens are never bound, and the metadata does not advertise it.
    pub enabled: bool,
    /// The `alg`s a proof may use, from [`SUPPORTED_ALGS`]; advertised as
    /// `dpop_signing_alg_values_supported`.
    pub algs: Vec<String>,
    /// How far `iat` may be from now, in seconds, either way (default 60): a proof is made
    /// for one request, and its `jti` is remembered this long.
    pub proof_max_age: u64,
    /// Require a server-provided nonce in every proof (RFC 9449 §8); off by default.
    pub require_nonce: bool,
    /// The secret nonces are minted under: the same on every node. `None`: a random one the
    /// builder draws, valid in this process only.
    pub nonce_secret: Option<Secret>,
    /// How long one nonce window lasts, in seconds (default 300); a nonce is accepted in its
    /// window and the next.
    pub nonce_lifetime: u64,
}

impl Default for DpopConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            algs: ["ES256", "EdDSA", "RS256", "PS256"]
                .map(String::from)
                .to_vec(),
            proof_max_age: 60,
            require_nonce: false,
            nonce_secret: None,
            nonce_lifetime: 300,
        }
    }
}

impl DpopConfig {
    /// The reason this configuration cannot be served, if any.
    pub fn validate(&self) -> Result<(), String> {
        if self.enabled && self.algs.is_empty() {
            return Err("dpop.algs must name at least one algorithm".into());
        }
        if let Some(bad) = self
            .algs
            .iter()
            .find(|a| !SUPPORTED_ALGS.contains(&a.as_str()))
        {
            return Err(format!(
                "dpop.algs: {bad:?} is not one of {}",
                SUPPORTED_ALGS.join(", ")
            ));
        }
        if !(1..=600).contains(&self.proof_max_age) {
            return Err("dpop.proof_max_age must be 1 to 600 seconds".into());
        }
        if !(1..=3600).contains(&self.nonce_lifetime) {
            return Err("dpop.nonce_lifetime must be 1 to 3600 seconds".into());
        }
        if self
            .nonce_secret
            .as_ref()
            .is_some_and(|s| s.expose().len() < 16)
        {
            return Err("dpop.nonce_secret must be at least 16 bytes".into());
        }
        Ok(())
    }

    /// The allow-list as the `algs` of a `WWW-Authenticate: DPoP` challenge (RFC 9449 §7.1).
    pub fn algs_list(&self) -> String {
        self.algs.join(" ")
    }

    /// The nonce to hand out in `DPoP-Nonce` at `now`, when nonces are required.
    pub fn current_nonce(&self, now: UnixTime) -> Option<String> {
        let secret = self.nonce_secret.as_ref().filter(|_| self.require_nonce)?;
        Some(nonce::Nonces::new(secret, self.nonce_lifetime).current(now))
    }
}

/// Why a proof was refused.
#[derive(Debug)]
#[non_exhaustive]
pub enum DpopError {
    /// The proof is missing where required, malformed, or fails a check: `invalid_dpop_proof`.
    Invalid(&'static str),
    /// A server nonce is required and the proof has none, or a stale one: `use_dpop_nonce`
    /// with the nonce to use (RFC 9449 §8).
    UseNonce(String),
    /// The replay cache could not answer.
    Store(StoreError),
}

impl DpopError {
    /// The token endpoint's answer (RFC 9449 §5 and §8): 400 `invalid_dpop_proof` or
    /// `use_dpop_nonce` with the fresh nonce in `DPoP-Nonce`.
    pub fn to_oauth(self) -> OAuthError {
        match self {
            Self::Invalid(why) => OAuthError::new(ErrorCode::InvalidDpopProof, why),
            Self::UseNonce(nonce) => OAuthError::new(
                ErrorCode::UseDpopNonce,
                "a DPoP proof with the server's nonce is required",
            )
            .with_header("dpop-nonce", nonce),
            Self::Store(err) => err.into(),
        }
    }
}

/// What the request a proof is checked against looks like.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    /// The HTTP method (`htm`).
    pub method: &'a str,
    /// The request's URI without query and fragment (`htu`), as the server is reached.
    pub uri: &'a str,
    /// The access token sent with the request, whose hash `ath` must be (RFC 9449 §4.3
    /// item 12); `None` at the token endpoint.
    pub access_token: Option<&'a Secret>,
}

/// A proof that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The RFC 7638 thumbprint of the proof's key.
    pub jkt: String,
    /// The proof's `jti`.
    pub jti: String,
    /// The proof's `iat`.
    pub iat: UnixTime,
}

/// The `DPoP` header of `req`: `None` without one, refused when repeated (RFC 9449 §4.3
/// item 1: "There is not more than one DPoP HTTP request header field").
pub fn proof_header(req: &HttpRequest) -> Result<Option<&str>, DpopError> {
    match req.header_count("dpop") {
        0 => Ok(None),
        1 => Ok(req.header("dpop")),
        _ => Err(DpopError::Invalid("more than one DPoP header")),
    }
}

/// Checks the `DPoP` header of `req` against `expected` at `now`, then remembers its `jti`
/// in `replay` (only once every other check passed, so a bad proof spends nothing).
/// `Ok(None)` when the request has no proof (or DPoP is off): the caller decides whether one
/// was required.
pub async fn check<R: ReplayStore>(
    config: &DpopConfig,
    replay: &R,
    req: &HttpRequest,
    expected: Expected<'_>,
    now: UnixTime,
) -> Result<Option<VerifiedProof>, DpopError> {
    let Some(proof) = presented(config, req)? else {
        return Ok(None);
    };
    check_presented(config, replay, proof, expected, now)
        .await
        .map(Some)
}

/// The proof `req` presents for [`check_presented`]: `None` when DPoP is off or the request
/// has no `DPoP` header. Lets a caller skip building what a proof is checked against (the
/// token endpoint's URL) on the requests that carry none.
pub fn presented<'r>(
    config: &DpopConfig,
    req: &'r HttpRequest,
) -> Result<Option<&'r str>, DpopError> {
    if !config.enabled {
        return Ok(None);
    }
    proof_header(req)
}

/// [`check`] for a proof already taken from its request by [`presented`].
pub async fn check_presented<R: ReplayStore>(
    config: &DpopConfig,
    replay: &R,
    proof: &str,
    expected: Expected<'_>,
    now: UnixTime,
) -> Result<VerifiedProof, DpopError> {
    let verified = verify_proof(config, proof, expected, now)?;
    // RFC 9449 §11.1: the server "MUST ... only accept a given jti once" while its iat is
    // inside the window; scoped to the key, so one client cannot spend another's jti.
    let key = replay_key("dpop", &[&verified.jkt, &verified.jti]);
    let until = verified.iat.plus(config.proof_max_age + 1);
    if !replay
        .remember_once(&key, until, now)
        .await
        .map_err(DpopError::Store)?
    {
        return Err(DpopError::Invalid("DPoP proof replayed (jti already used)"));
    }
    Ok(verified)
}

/// The `ath` of an access token (RFC 9449 §4.2): base64url SHA-256 of its ASCII value.
pub fn ath(access_token: &Secret) -> String {
    b64(&Sha256::digest(access_token.expose().as_bytes()))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn json_part(part: &str) -> Result<Map<String, Value>, DpopError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| DpopError::Invalid("DPoP proof is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(DpopError::Invalid("DPoP proof part is not a JSON object")),
    }
}

/// Checks one proof (everything of RFC 9449 §4.3 but the replay of its `jti`).
pub fn verify_proof(
    config: &DpopConfig,
    proof: &str,
    expected: Expected<'_>,
    now: UnixTime,
) -> Result<VerifiedProof, DpopError> {
    let invalid = DpopError::Invalid;
    if proof.len() > MAX_PROOF_LEN {
        return Err(invalid("DPoP proof too large"));
    }
    let mut it = proof.split('.');
    let (Some(h64), Some(p64), Some(sig), None) = (it.next(), it.next(), it.next(), it.next())
    else {
        return Err(invalid("DPoP proof is not a compact JWS"));
    };
    let header = json_part(h64)?;
    // RFC 9449 §4.2: "typ: with value dpop+jwt".
    if header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(invalid("DPoP proof typ must be dpop+jwt"));
    }
    // RFC 9449 §4.3 item 5: "the alg JOSE Header Parameter indicates a registered asymmetric
    // digital signature algorithm, is not none, is supported by the application".
    let alg_name = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let alg: Algorithm = match alg_name.parse() {
        Ok(alg)
            if config.algs.iter().any(|a| a == alg_name) && SUPPORTED_ALGS.contains(&alg_name) =>
        {
            alg
        }
        _ => return Err(invalid("DPoP proof alg not allowed")),
    };
    if header.contains_key("crit") {
        return Err(invalid("DPoP proof has critical header parameters"));
    }
    // RFC 9449 §4.3 item 7: "the jwk JOSE Header Parameter does not contain a private key".
    let Some(jwk_value) = header.get("jwk").filter(|v| v.is_object()) else {
        return Err(invalid("DPoP proof has no jwk"));
    };
    const PRIVATE: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
    if PRIVATE.iter().any(|m| jwk_value.get(m).is_some()) {
        return Err(invalid("DPoP proof jwk must be a public key"));
    }
    let jwk: Jwk = serde_json::from_value(jwk_value.clone())
        .map_err(|_| invalid("DPoP proof jwk is not a JWK"))?;
    if !crate::client_assertion::key_suits(&jwk, alg, alg_name) {
        return Err(invalid("DPoP proof jwk does not suit its alg"));
    }
    let Some(jkt) = crate::jose::thumbprint(jwk_value) else {
        return Err(invalid("DPoP proof jwk is not a JWK"));
    };
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid("DPoP proof jwk unusable"))?;
    let message = &proof[..h64.len() + 1 + p64.len()];
    // RFC 9449 §4.3 item 6: "the JWT signature verifies with the public key contained in the
    // jwk JOSE Header Parameter".
    if !jsonwebtoken::crypto::verify(sig, message.as_bytes(), &key, alg).unwrap_or(false) {
        return Err(invalid("DPoP proof signature invalid"));
    }
    let claims = json_part(p64)?;
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    // RFC 9449 §4.3 item 8: "the htm claim matches the HTTP method of the current request".
    if text("htm") != Some(expected.method) {
        return Err(invalid("DPoP proof htm does not match the request method"));
    }
    // Item 9: "the htu claim matches the HTTP URI value for the HTTP request in which the JWT
    // was received, ignoring any query and fragment parts".
    if !text("htu").is_some_and(|htu| htu_matches(htu, expected.uri)) {
        return Err(invalid("DPoP proof htu does not match the request URI"));
    }
    let Some(jti) = text("jti").filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN) else {
        return Err(invalid("DPoP proof needs a jti"));
    };
    // Item 11: "the creation time of the JWT, as determined by ... iat ..., is within an
    // acceptable window".
    let Some(iat) = claims.get("iat").and_then(Value::as_i64) else {
        return Err(invalid("DPoP proof needs a numeric iat"));
    };
    let window = i64::try_from(config.proof_max_age).unwrap_or(60);
    if (now.0 - iat).abs() > window {
        return Err(invalid("DPoP proof iat is outside the accepted window"));
    }
    // Item 12: "if presented to a protected resource in conjunction with an access token,
    // ... the value of the ath claim equals the hash of that access token".
    if let Some(token) = expected.access_token {
        let matches = text("ath").is_some_and(|a| {
            subtle::ConstantTimeEq::ct_eq(a.as_bytes(), ath(token).as_bytes()).into()
        });
        if !matches {
            return Err(invalid(
                "DPoP proof ath is missing or does not match the token",
            ));
        }
    }
    // Item 10 and §8: a server-provided nonce, when one is required. No secret to check it
    // with fails closed.
    if config.require_nonce {
        let Some(secret) = &config.nonce_secret else {
            return Err(invalid("the server cannot check DPoP nonces"));
        };
        let nonces = nonce::Nonces::new(secret, config.nonce_lifetime);
        if !text("nonce").is_some_and(|n| nonces.accepts(n, now)) {
            return Err(DpopError::UseNonce(nonces.current(now)));
        }
    }
    Ok(VerifiedProof {
        jkt,
        jti: jti.to_owned(),
        iat: UnixTime(iat),
    })
}

/// Whether `htu` names `expected`, ignoring query and fragment, after RFC 3986 syntax-based
/// normalization (scheme and host case, default port): RFC 9449 §4.3 item 9.
pub fn htu_matches(htu: &str, expected: &str) -> bool {
    let (Ok(mut a), Ok(mut b)) = (url::Url::parse(htu), url::Url::parse(expected)) else {
        return false;
    };
    for u in [&mut a, &mut b] {
        u.set_query(None);
        u.set_fragment(None);
    }
    a == b
}

#[cfg(test)]
mod tests;
