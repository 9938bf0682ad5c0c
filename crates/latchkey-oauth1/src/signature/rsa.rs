//! RSA public keys of consumers that sign with RSA-SHA1 (RFC 5849 §3.4.3).
//!
//! Many consumers registered their keys years ago, so 1024-bit keys are accepted for
//! verification (aws-lc-rs `RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY`). Keys are read
//! from PEM (`BEGIN PUBLIC KEY`, i.e. SubjectPublicKeyInfo, or `BEGIN RSA PUBLIC KEY`, i.e.
//! PKCS#1) or DER.

use super::SignatureError;
use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY};
use base64::Engine as _;

/// A consumer's RSA public key, parsed once and ready to verify RSA-SHA1 signatures.
#[derive(Clone)]
pub struct RsaPublicKey {
    key: ParsedPublicKey,
    pem: String,
}

impl std::fmt::Debug for RsaPublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RsaPublicKey(..)")
    }
}

impl PartialEq for RsaPublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.pem == other.pem
    }
}
impl Eq for RsaPublicKey {}

impl RsaPublicKey {
    /// Reads a PEM public key (`PUBLIC KEY` or `RSA PUBLIC KEY`), 1024 to 8192 bits.
    pub fn from_pem(pem: &str) -> Result<Self, SignatureError> {
        let der = pem_body(pem)?;
        let key = Self::from_der(&der)?;
        Ok(Self {
            pem: pem.trim().to_owned(),
            ..key
        })
    }

    /// Reads a DER public key (SubjectPublicKeyInfo or PKCS#1 `RSAPublicKey`).
    pub fn from_der(der: &[u8]) -> Result<Self, SignatureError> {
        let key = ParsedPublicKey::new(&RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY, der)
            .map_err(|_| SignatureError::BadKey)?;
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
        for chunk in body.as_bytes().chunks(64) {
            pem.push_str(&String::from_utf8_lossy(chunk));
            pem.push('\n');
        }
        pem.push_str("-----END PUBLIC KEY-----");
        Ok(Self { key, pem })
    }

    /// The key as PEM, for storing with the consumer's registration.
    pub fn to_pem(&self) -> &str {
        &self.pem
    }

    /// Whether `signature` is a valid RSASSA-PKCS1-v1_5 SHA-1 signature of `message`.
    pub fn verify_sha1(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

/// The base64 body of a PEM block with one of the public-key labels.
fn pem_body(pem: &str) -> Result<Vec<u8>, SignatureError> {
    let mut inside = false;
    let mut body = String::new();
    for line in pem.lines() {
        let line = line.trim();
        if line.starts_with("-----BEGIN ") {
            if line != "-----BEGIN PUBLIC KEY-----" && line != "-----BEGIN RSA PUBLIC KEY-----" {
                return Err(SignatureError::BadKey);
            }
            inside = true;
        } else if line.starts_with("-----END ") {
            break;
        } else if inside {
            body.push_str(line);
        }
    }
    if body.is_empty() {
        return Err(SignatureError::BadKey);
    }
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| SignatureError::BadKey)
}
