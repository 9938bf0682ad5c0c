//! The signing-key record a store keeps, its states, and the generation and opening of its
//! private key.
//!
//! A key is identified by its RFC 7638 thumbprint, so two nodes can never give two keys the
//! same `kid`, and a record whose private key was swapped is caught on opening (the public key
//! derived from it must hash to the `kid`).

use super::kek::Kek;
use super::{JoseError, SigningAlg, b64};
use crate::clock::UnixTime;
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256,
    RsaKeyPair, RsaPublicKeyComponents,
};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;

/// A signing key as the store keeps it: public half in the clear, private half sealed under
/// the [`Kek`] (associated data: the `kid`), and the times that make its state.
///
/// The life of a key (DESIGN: "rotation is a state change"): published from `created_at`
/// ([`KeyState::Next`]), signing from `activates_at` ([`KeyState::Active`]), no longer signing
/// from `retires_at` ([`KeyState::Retiring`], still published so what it signed verifies),
/// gone from the JWKS from `removes_at` ([`KeyState::Retired`], then deleted).
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The RFC 7638 SHA-256 thumbprint of the public JWK, base64url.
    pub kid: String,
    /// The one algorithm this key signs with.
    pub alg: SigningAlg,
    /// The public JWK: `kty`, `crv`/`x`/`y` or `n`/`e`, `kid`, `alg`, `use`. Never a private
    /// member.
    pub public_jwk: Value,
    /// The PKCS#8 DER private key, sealed with [`Kek::seal`] under the `kid`.
    pub sealed_private: Vec<u8>,
    /// When the key was made (and published).
    pub created_at: UnixTime,
    /// When the key starts signing.
    pub activates_at: UnixTime,
    /// When the key stops signing; `None` while no successor is scheduled.
    pub retires_at: Option<UnixTime>,
    /// When the key leaves the JWKS: its retirement plus the longest lifetime of anything it
    /// signed.
    pub removes_at: Option<UnixTime>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("created_at", &self.created_at)
            .field("activates_at", &self.activates_at)
            .field("retires_at", &self.retires_at)
            .field("removes_at", &self.removes_at)
            .finish_non_exhaustive()
    }
}

/// Where a key is in its life at a given time (see [`SigningKey`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyState {
    /// Published, not signing yet.
    Next,
    /// Published and signing.
    Active,
    /// Published, no longer signing: what it signed may still be live.
    Retiring,
    /// Past `removes_at`: unpublished, to be deleted.
    Retired,
}

impl KeyState {
    /// The state at `now` of a key that signs from `activates_at`, stops signing at
    /// `retires_at` and leaves the JWKS at `removes_at`: the one rule every view of a key uses.
    pub fn at(
        activates_at: UnixTime,
        retires_at: Option<UnixTime>,
        removes_at: Option<UnixTime>,
        now: UnixTime,
    ) -> Self {
        if removes_at.is_some_and(|t| now >= t) {
            Self::Retired
        } else if retires_at.is_some_and(|t| now >= t) {
            Self::Retiring
        } else if now >= activates_at {
            Self::Active
        } else {
            Self::Next
        }
    }

    /// The state's name, for listings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Next => "next",
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
        }
    }
}

impl SigningKey {
    /// Generates a key for `alg` at `now` that signs from `activates_at`, its private half
    /// sealed under `kek`. Key material comes from the crypto library's generator (RSA and
    /// ECDSA generation take no external randomness).
    pub fn generate(
        alg: SigningAlg,
        kek: &Kek,
        now: UnixTime,
        activates_at: UnixTime,
    ) -> Result<Self, JoseError> {
        let pkcs8 = generate_pkcs8(alg)?;
        let private = PrivateKey::from_pkcs8(alg, &pkcs8)?;
        let (kid, public_jwk) = private.public_jwk(alg)?;
        let sealed_private = kek.seal(&pkcs8, kid.as_bytes())?;
        Ok(Self {
            kid,
            alg,
            public_jwk,
            sealed_private,
            created_at: now,
            activates_at,
            retires_at: None,
            removes_at: None,
        })
    }

    /// The key's state at `now`.
    pub fn state(&self, now: UnixTime) -> KeyState {
        KeyState::at(self.activates_at, self.retires_at, self.removes_at, now)
    }

    /// Whether the key is in the JWKS at `now` (every state but [`KeyState::Retired`]).
    pub fn is_published(&self, now: UnixTime) -> bool {
        self.state(now) != KeyState::Retired
    }

    /// Opens the private key with `kek` and checks that it is the key the `kid` names.
    pub(crate) fn open(&self, kek: &Kek) -> Result<PrivateKey, JoseError> {
        let pkcs8 = kek.open(&self.sealed_private, self.kid.as_bytes())?;
        let private = PrivateKey::from_pkcs8(self.alg, &pkcs8)?;
        let (kid, _) = private.public_jwk(self.alg)?;
        if kid != self.kid {
            return Err(JoseError::Key("the private key does not match the kid"));
        }
        Ok(private)
    }
}

/// A new PKCS#8 DER private key for `alg`.
fn generate_pkcs8(alg: SigningAlg) -> Result<Vec<u8>, JoseError> {
    let failed = |_| JoseError::Key("key generation failed");
    Ok(match alg {
        SigningAlg::Es256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|k| k.to_pkcs8v1())
            .map_err(failed)?
            .as_ref()
            .to_vec(),
        SigningAlg::Rs256 => {
            let key = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
            let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = key.as_der().map_err(failed)?;
            der.as_ref().to_vec()
        }
        SigningAlg::EdDsa => Ed25519KeyPair::generate()
            .and_then(|k| k.to_pkcs8v1())
            .map_err(failed)?
            .as_ref()
            .to_vec(),
    })
}

/// An opened private key, parsed once and ready to sign.
pub(crate) enum PrivateKey {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl PrivateKey {
    fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Result<Self, JoseError> {
        let rejected = |_| JoseError::Key("not a PKCS#8 key of the record's algorithm");
        Ok(match alg {
            SigningAlg::Es256 => Self::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(rejected)?,
            ),
            SigningAlg::Rs256 => {
                let key = RsaKeyPair::from_pkcs8(der).map_err(rejected)?;
                // RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used".
                if key.public_modulus_len() < 256 {
                    return Err(JoseError::Key("RSA key shorter than 2048 bits"));
                }
                Self::Rsa(key)
            }
            SigningAlg::EdDsa => Self::Ed(Ed25519KeyPair::from_pkcs8(der).map_err(rejected)?),
        })
    }

    /// The JWS signature of `input` (RFC 7518 §3.3, §3.4: ECDSA as fixed `R || S`; RFC 8037
    /// §3.1).
    pub(crate) fn sign(&self, input: &[u8]) -> Result<Vec<u8>, JoseError> {
        let failed = |_| JoseError::Key("signing failed");
        match self {
            Self::Ec(key) => Ok(key
                .sign(&SystemRandom::new(), input)
                .map_err(failed)?
                .as_ref()
                .to_vec()),
            Self::Rsa(key) => {
                let mut sig = vec![0u8; key.public_modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), input, &mut sig)
                    .map_err(failed)?;
                Ok(sig)
            }
            Self::Ed(key) => Ok(key.sign(input).as_ref().to_vec()),
        }
    }

    /// The `kid` and public JWK of this key for `alg`.
    fn public_jwk(&self, alg: SigningAlg) -> Result<(String, Value), JoseError> {
        let mut members = BTreeMap::new();
        match self {
            Self::Ec(key) => {
                // An uncompressed P-256 point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = key.public_key().as_ref();
                let (Some(&4), Some(x), Some(y)) =
                    (point.first(), point.get(1..33), point.get(33..65))
                else {
                    return Err(JoseError::Key("unexpected EC public key encoding"));
                };
                members.insert("kty", "EC".to_owned());
                members.insert("crv", "P-256".to_owned());
                members.insert("x", b64(x));
                members.insert("y", b64(y));
            }
            Self::Rsa(key) => {
                let parts = RsaPublicKeyComponents::<Vec<u8>>::from(key.public_key());
                members.insert("kty", "RSA".to_owned());
                members.insert("n", b64(strip_zeros(&parts.n)));
                members.insert("e", b64(strip_zeros(&parts.e)));
            }
            Self::Ed(key) => {
                members.insert("kty", "OKP".to_owned());
                members.insert("crv", "Ed25519".to_owned());
                members.insert("x", b64(key.public_key().as_ref()));
            }
        }
        let kid = thumbprint_of(&members);
        let mut jwk: serde_json::Map<String, Value> = members
            .into_iter()
            .map(|(k, v)| (k.to_owned(), Value::String(v)))
            .collect();
        jwk.insert("kid".into(), json!(kid));
        jwk.insert("alg".into(), json!(alg.as_str()));
        jwk.insert("use".into(), json!("sig"));
        Ok((kid, Value::Object(jwk)))
    }
}

/// RFC 7518 §6.3.1: `n` and `e` are unsigned big-endian without leading zero octets.
fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(start..).unwrap_or_default()
}

/// The RFC 7638 members each key type's thumbprint covers, in lexicographic order.
fn required_members(kty: &str) -> Option<&'static [&'static str]> {
    match kty {
        "EC" => Some(&["crv", "kty", "x", "y"]),
        "RSA" => Some(&["e", "kty", "n"]),
        "OKP" => Some(&["crv", "kty", "x"]),
        _ => None,
    }
}

/// The SHA-256 JWK thumbprint of RFC 7638 §3, base64url: the hash of the required members
/// as JSON with sorted names and no whitespace.
fn thumbprint_of(members: &BTreeMap<&str, String>) -> String {
    // A BTreeMap serializes in key order, without whitespace: RFC 7638 §3.3's form.
    let canonical = serde_json::to_vec(members).unwrap_or_default();
    b64(&Sha256::digest(canonical))
}

/// The RFC 7638 SHA-256 thumbprint of a public JWK (`EC`, `RSA` or `OKP`); `None` when a
/// required member is missing or not a string. Used for `kid`s, and by anyone who needs to
/// name a client's key the same way.
pub fn thumbprint(jwk: &Value) -> Option<String> {
    let kty = jwk.get("kty")?.as_str()?;
    let mut members = BTreeMap::new();
    for name in required_members(kty)? {
        members.insert(*name, jwk.get(*name)?.as_str()?.to_owned());
    }
    Some(thumbprint_of(&members))
}

/// The members a published JWK may carry: RFC 7517 §4 and the public parameters of RFC 7518
/// §6.2.1, §6.3.1 and RFC 8037 §2. Everything else (`d`, `p`, `q`, `dp`, `dq`, `qi`, `k`,
/// `oth`, unknown names) is dropped.
pub(crate) const PUBLIC_MEMBERS: &[&str] = &["kty", "use", "alg", "kid", "crv", "x", "y", "n", "e"];

/// `jwk` with only [`PUBLIC_MEMBERS`].
pub(crate) fn public_only(jwk: &Value) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(map) = jwk.as_object() {
        for name in PUBLIC_MEMBERS {
            if let Some(v) = map.get(*name) {
                out.insert((*name).to_owned(), v.clone());
            }
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_example_thumbprint() {
        // RFC 7638 §3.1.
        let jwk = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
        assert_eq!(thumbprint(&json!({"kty": "oct", "k": "AAAA"})), None);
        assert_eq!(
            thumbprint(&json!({"kty": "EC", "crv": "P-256", "x": "AA"})),
            None
        );
    }

    #[test]
    fn generated_keys_open_and_carry_their_thumbprint() {
        let kek = Kek::from_bytes([3; 32]);
        for alg in SigningAlg::ALL {
            let key = SigningKey::generate(alg, &kek, UnixTime(10), UnixTime(20)).expect("gen");
            assert_eq!(
                thumbprint(&key.public_jwk).as_deref(),
                Some(key.kid.as_str())
            );
            assert_eq!(key.public_jwk["alg"], alg.as_str());
            assert!(key.open(&kek).is_ok(), "{alg}");
            assert!(
                key.open(&Kek::from_bytes([4; 32])).is_err(),
                "{alg} wrong KEK"
            );
        }
    }

    #[test]
    fn a_record_whose_private_key_was_swapped_does_not_open() {
        let kek = Kek::from_bytes([5; 32]);
        let a =
            SigningKey::generate(SigningAlg::Es256, &kek, UnixTime(0), UnixTime(0)).expect("gen");
        let b =
            SigningKey::generate(SigningAlg::Es256, &kek, UnixTime(0), UnixTime(0)).expect("gen");
        // Re-seal b's private key under a's kid: the AAD matches, the thumbprint does not.
        let pkcs8 = kek.open(&b.sealed_private, b.kid.as_bytes()).expect("open");
        let forged = SigningKey {
            sealed_private: kek.seal(&pkcs8, a.kid.as_bytes()).expect("seal"),
            ..a.clone()
        };
        assert!(forged.open(&kek).is_err());
        // And a's sealed key moved onto b's record does not open (wrong AAD).
        let moved = SigningKey {
            sealed_private: a.sealed_private.clone(),
            ..b
        };
        assert!(moved.open(&kek).is_err());
    }

    #[test]
    fn states_follow_the_times() {
        let kek = Kek::from_bytes([6; 32]);
        let mut key =
            SigningKey::generate(SigningAlg::EdDsa, &kek, UnixTime(0), UnixTime(100)).expect("gen");
        key.retires_at = Some(UnixTime(200));
        key.removes_at = Some(UnixTime(300));
        let at = |t| key.state(UnixTime(t));
        assert_eq!(
            [at(0), at(99), at(100), at(199), at(200), at(299), at(300)],
            [
                KeyState::Next,
                KeyState::Next,
                KeyState::Active,
                KeyState::Active,
                KeyState::Retiring,
                KeyState::Retiring,
                KeyState::Retired
            ]
        );
        assert!(key.is_published(UnixTime(299)));
        assert!(!key.is_published(UnixTime(300)));
    }

    #[test]
    fn public_only_drops_private_members() {
        let jwk = json!({"kty": "RSA", "n": "n", "e": "AQAB", "d": "x", "p": "x", "q": "x",
            "dp": "x", "dq": "x", "qi": "x", "k": "x", "oth": [], "kid": "k1"});
        let out = public_only(&jwk);
        let names: Vec<&str> = out
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(names, ["e", "kid", "kty", "n"]);
    }
}
