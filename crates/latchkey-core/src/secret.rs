//! Secrets that never print and compare in constant time.
//!
//! Client secrets, passwords and token values travel through the core as [`Secret`], whose
//! `Debug` is `Secret(***)`, so a stray `{:?}` in a log line cannot leak one. What is kept at
//! rest is a [`Digest`]: the SHA-256 of the value, so a leaked store holds no usable
//! credential.

use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// A secret value received from or handed to a client: a token, a client secret or a password.
///
/// Equality is constant-time in the contents (only the length can show through timing), so
/// comparing a presented value with an expected one, directly or through a type that derives
/// `PartialEq` around a `Secret`, leaks nothing about where they differ.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value that must not be printed.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that must send or hash it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 digest under which this secret is stored.
    pub fn digest(&self) -> Digest {
        Digest::of(self.0.as_bytes())
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}
impl Eq for Secret {}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The SHA-256 digest of a secret: what stores keep instead of tokens and client secrets.
///
/// Comparison is constant-time, so checking a presented secret against a stored digest leaks
/// nothing through timing.
#[derive(Clone, Copy)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Hashes `bytes` with SHA-256.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// Rebuilds a digest read back from a store.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Rebuilds a digest from a byte slice read back from a store; `None` unless 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self)
    }

    /// Parses the lowercase hex form written by [`Digest::to_hex`].
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }

    /// The raw digest bytes, for stores that key by bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, for stores that key by text.
    pub fn to_hex(&self) -> String {
        use std::fmt::Write;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// Whether `secret` hashes to this digest, in constant time.
    pub fn matches(&self, secret: &Secret) -> bool {
        *self == secret.digest()
    }
}

impl PartialEq for Digest {
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}
impl Eq for Digest {}

impl std::hash::Hash for Digest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl std::fmt::Debug for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A digest is not a secret, but a short prefix is all a log reader needs.
        write!(f, "Digest({}…)", &self.to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_value() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
    }

    #[test]
    fn secrets_are_equal_only_when_every_byte_is() {
        assert_eq!(Secret::new("s3cret"), Secret::new("s3cret"));
        assert_ne!(Secret::new("s3cret"), Secret::new("s3creT"));
        assert_ne!(Secret::new("s3cret"), Secret::new("s3cre"));
        assert_ne!(Secret::new(""), Secret::new("s"));
        assert_eq!(Secret::new(""), Secret::new(""));
    }

    #[test]
    fn digest_matches_only_its_secret() {
        let d = Secret::new("s3cret").digest();
        assert!(d.matches(&Secret::new("s3cret")));
        assert!(!d.matches(&Secret::new("s3cret ")));
    }

    #[test]
    fn hex_round_trips() {
        let d = Digest::of(b"abc");
        assert_eq!(
            d.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(Digest::from_hex(&d.to_hex()), Some(d));
        assert!(Digest::from_hex("zz").is_none());
    }
}
