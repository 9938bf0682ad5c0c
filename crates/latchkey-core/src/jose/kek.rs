//! The key-encryption key: what keeps the secrets a store must be able to give back (signing
//! keys, `client_secret_jwt` secrets) unreadable at rest, with AES-256-GCM.
//!
//! A sealed value is `version (1 byte) || nonce (12 bytes) || ciphertext || tag (16 bytes)`.
//! The associated data binds it to its owner (a key's `kid`, a client's id), so a sealed value
//! copied onto another record does not open.

use super::JoseError;
use crate::entropy::Entropy;
use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use base64::Engine as _;

/// The format byte of what [`Kek::seal`] writes; a new format gets a new value.
const VERSION: u8 = 1;
/// AES-GCM's tag length.
const TAG_LEN: usize = 16;

/// A 32-byte AES-256-GCM key-encryption key.
///
/// `Debug` never prints the key. Keep it out of the store it protects: the server reads it
/// from an environment variable or a file of its own (see its settings).
#[derive(Clone)]
pub struct Kek {
    bytes: [u8; 32],
}

impl Kek {
    /// The length of a key in bytes.
    pub const LEN: usize = 32;

    /// A new random key.
    pub fn generate(entropy: &dyn Entropy) -> Self {
        let mut bytes = [0u8; 32];
        entropy.fill(&mut bytes);
        Self { bytes }
    }

    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self { bytes }
    }

    /// Parses a key written in standard or URL-safe base64, padded or not; refuses anything
    /// that is not exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, JoseError> {
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let text = text.trim();
        let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or(JoseError::Key("the key-encryption key is not base64"))?;
        let bytes = <[u8; 32]>::try_from(decoded.as_slice())
            .map_err(|_| JoseError::Key("the key-encryption key is not 32 bytes"))?;
        Ok(Self { bytes })
    }

    /// The key in standard base64, for writing it to its file once.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.bytes)
    }

    /// A secret for another purpose derived from this key, HMAC-SHA-256(key, `label`) in
    /// base64url: one key to keep and share between nodes instead of one per purpose (the
    /// server derives the pairwise-subject salt with it). Different labels give unrelated
    /// secrets, and none reveals the key.
    pub fn derive(&self, label: &str) -> crate::secret::Secret {
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &self.bytes);
        let tag = aws_lc_rs::hmac::sign(&key, label.as_bytes());
        crate::secret::Secret::new(super::b64(tag.as_ref()))
    }

    fn key(&self) -> Result<LessSafeKey, JoseError> {
        let unbound = UnboundKey::new(&AES_256_GCM, &self.bytes)
            .map_err(|_| JoseError::Key("AES-256-GCM refused the key"))?;
        Ok(LessSafeKey::new(unbound))
    }

    /// Encrypts `plaintext`, bound to `aad`. The 96-bit nonce is random, drawn from the
    /// crypto library's own generator rather than the provider's injected [`Entropy`]: a
    /// seeded test generator would repeat nonces, which breaks GCM under a real key.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, JoseError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| JoseError::Key("no randomness for a nonce"))?;
        let mut in_out = plaintext.to_vec();
        self.key()?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| JoseError::Key("sealing failed"))?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + in_out.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Decrypts what [`Kek::seal`] wrote with the same `aad`; refuses a wrong key, a wrong
    /// `aad`, an unknown version and any altered byte.
    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, JoseError> {
        let Some((&version, rest)) = sealed.split_first() else {
            return Err(JoseError::Key("empty sealed value"));
        };
        if version != VERSION {
            return Err(JoseError::Key("unknown sealed-value version"));
        }
        if rest.len() < NONCE_LEN + TAG_LEN {
            return Err(JoseError::Key("sealed value too short"));
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce =
            Nonce::try_assume_unique_for_key(nonce).map_err(|_| JoseError::Key("bad nonce"))?;
        let mut in_out = ciphertext.to_vec();
        let plain = self
            .key()?
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| JoseError::Key("sealed value does not open with this key"))?;
        Ok(plain.to_vec())
    }
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Kek(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn sealed_values_open_with_the_same_key_and_aad_only() {
        let entropy = SeededEntropy::new(1);
        let kek = Kek::generate(&entropy);
        let sealed = kek.seal(b"private key", b"kid-1").expect("seal");
        assert_eq!(sealed.first(), Some(&VERSION));
        assert!(!sealed.windows(11).any(|w| w == b"private key"));
        assert_eq!(kek.open(&sealed, b"kid-1").expect("open"), b"private key");

        let other = Kek::generate(&entropy);
        assert!(other.open(&sealed, b"kid-1").is_err(), "wrong key");
        assert!(kek.open(&sealed, b"kid-2").is_err(), "wrong aad");
        for i in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[i] ^= 0x01;
            assert!(kek.open(&altered, b"kid-1").is_err(), "byte {i} altered");
        }
        assert!(kek.open(&sealed[..sealed.len() - 1], b"kid-1").is_err());
        assert!(kek.open(&[], b"kid-1").is_err());
    }

    #[test]
    fn two_seals_of_the_same_value_differ() {
        let kek = Kek::from_bytes([7; 32]);
        assert_ne!(kek.seal(b"x", b"").ok(), kek.seal(b"x", b"").ok());
    }

    #[test]
    fn base64_round_trips_and_refuses_wrong_lengths() {
        let kek = Kek::from_bytes([9; 32]);
        let again = Kek::from_base64(&kek.to_base64()).expect("round trip");
        let sealed = kek.seal(b"v", b"a").expect("seal");
        assert_eq!(again.open(&sealed, b"a").expect("open"), b"v");
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 31]);
        assert!(Kek::from_base64(&short).is_err());
        assert!(Kek::from_base64("not base64!").is_err());
    }

    #[test]
    fn debug_never_shows_the_key() {
        assert_eq!(format!("{:?}", Kek::from_bytes([0x41; 32])), "Kek(***)");
    }
}
