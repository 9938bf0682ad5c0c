//! Making DPoP proofs (RFC 9449 §4.2), the client's side: a P-256 key held in memory and the
//! proofs it signs. The `latchkey-client` crate, the tests and the benchmarks use it; the
//! server only verifies ([`super::verify_proof`]).

use crate::secret::Secret;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use serde_json::{Value, json};

/// A DPoP key pair (ES256). Its private half never leaves this value; `Debug` shows only
/// the thumbprint.
pub struct ProofKey {
    pair: EcdsaKeyPair,
    jwk: Value,
    jkt: String,
}

impl std::fmt::Debug for ProofKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProofKey").field("jkt", &self.jkt).finish()
    }
}

/// Why a key could not be made or a proof signed (the crypto library refused).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("DPoP key: {0}")]
pub struct ProofKeyError(&'static str);

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl ProofKey {
    /// A fresh P-256 key from the crypto library's generator.
    pub fn generate() -> Result<Self, ProofKeyError> {
        let pkcs8 =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
                .map_err(|_| ProofKeyError("key generation failed"))?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// The key of a PKCS#8 DER P-256 private key (to keep one key across restarts).
    pub fn from_pkcs8(der: &[u8]) -> Result<Self, ProofKeyError> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
            .map_err(|_| ProofKeyError("not a PKCS#8 P-256 key"))?;
        // An uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = pair.public_key().as_ref();
        let (Some(x), Some(y)) = (point.get(1..33), point.get(33..65)) else {
            return Err(ProofKeyError("unexpected public key encoding"));
        };
        let jwk = json!({ "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y) });
        let jkt = crate::jose::thumbprint(&jwk).ok_or(ProofKeyError("no thumbprint"))?;
        Ok(Self { pair, jwk, jkt })
    }

    /// The public JWK the proofs carry.
    pub fn jwk(&self) -> &Value {
        &self.jwk
    }

    /// The RFC 7638 thumbprint: the `jkt` tokens bound to this key carry, and the
    /// `dpop_jkt` of an authorization request.
    pub fn jkt(&self) -> &str {
        &self.jkt
    }

    /// A proof for one request: `method` and `uri` (without query and fragment), the access
    /// token it goes with (hashed into `ath`), the server's nonce when it asked for one, and
    /// `iat` in seconds since the epoch. The `jti` is 128 random bits.
    pub fn proof(
        &self,
        method: &str,
        uri: &str,
        access_token: Option<&Secret>,
        nonce: Option<&str>,
        iat: i64,
    ) -> Result<String, ProofKeyError> {
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|_| ProofKeyError("no randomness"))?;
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk });
        let mut claims = json!({ "jti": b64(&jti), "htm": method, "htu": uri, "iat": iat });
        if let Some(token) = access_token {
            claims["ath"] = super::ath(token).into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        self.sign(&header, &claims)
    }

    /// Signs any header and claims with this key (tests use it to make bad proofs).
    pub fn sign(&self, header: &Value, claims: &Value) -> Result<String, ProofKeyError> {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .map_err(|_| ProofKeyError("signing failed"))?;
        Ok(format!("{input}.{}", b64(sig.as_ref())))
    }
}
