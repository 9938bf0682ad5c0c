//! Server-provided DPoP nonces (RFC 9449 §8 and §9), stateless so every node agrees without a
//! store round trip.
//!
//! A nonce names a time window and carries an HMAC-SHA-256 of that window under the server's
//! nonce secret: `base64url(window as 8 big-endian bytes || first 16 bytes of the tag)`. A
//! nonce of the current window or of the one before is accepted, so a nonce handed out just
//! before a window ends still works for one more window; every node with the same secret mints
//! and accepts the same nonces. Rotation is the passing of time: the next window's nonce is
//! handed out in `DPoP-Nonce` as soon as its window starts.

use crate::clock::UnixTime;
use crate::secret::Secret;
use aws_lc_rs::hmac;
use base64::Engine as _;
use subtle::ConstantTimeEq as _;

/// The bytes of the HMAC tag a nonce carries (128 bits).
const TAG_LEN: usize = 16;

/// Mints and checks the nonces of one server secret.
#[derive(Clone, Debug)]
pub struct Nonces<'a> {
    secret: &'a Secret,
    lifetime: u64,
}

impl<'a> Nonces<'a> {
    /// Nonces under `secret`, each window `lifetime` seconds long (at least 1).
    pub fn new(secret: &'a Secret, lifetime: u64) -> Self {
        Self {
            secret,
            lifetime: lifetime.max(1),
        }
    }

    fn window(&self, now: UnixTime) -> u64 {
        u64::try_from(now.0).unwrap_or(0) / self.lifetime
    }

    fn tag(&self, window: u64) -> [u8; TAG_LEN] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, self.secret.expose().as_bytes());
        let mut ctx = hmac::Context::with_key(&key);
        ctx.update(b"latchkey dpop nonce v1");
        ctx.update(&window.to_be_bytes());
        let full = ctx.sign();
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&full.as_ref()[..TAG_LEN]);
        tag
    }

    /// The nonce to hand out at `now` (the current window's).
    pub fn current(&self, now: UnixTime) -> String {
        let window = self.window(now);
        let mut bytes = Vec::with_capacity(8 + TAG_LEN);
        bytes.extend_from_slice(&window.to_be_bytes());
        bytes.extend_from_slice(&self.tag(window));
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// Whether `nonce` was minted under this secret for the current window or the one before.
    pub fn accepts(&self, nonce: &str, now: UnixTime) -> bool {
        if nonce.len() > 64 {
            return false;
        }
        let Ok(bytes) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let (Some(window), Some(tag)) = (bytes.get(..8), bytes.get(8..)) else {
            return false;
        };
        if tag.len() != TAG_LEN {
            return false;
        }
        let mut w = [0u8; 8];
        w.copy_from_slice(window);
        let window = u64::from_be_bytes(w);
        let current = self.window(now);
        if window != current && window.checked_add(1) != Some(current) {
            return false;
        }
        bool::from(self.tag(window).ct_eq(tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_lives_for_its_window_and_the_next() {
        let secret = Secret::new("0123456789abcdef0123456789abcdef");
        let nonces = Nonces::new(&secret, 300);
        let now = UnixTime(1_000_000_200);
        let nonce = nonces.current(now);
        assert!(nonces.accepts(&nonce, now));
        assert!(nonces.accepts(&nonce, now.plus(300)));
        assert!(!nonces.accepts(&nonce, now.plus(600)));
        assert_ne!(nonces.current(now.plus(300)), nonce, "rotated");
        // Another secret's nonce, and a tampered one, are refused.
        let other = Secret::new("another secret, also 32 bytes...");
        assert!(!Nonces::new(&other, 300).accepts(&nonce, now));
        let mut tampered = nonce.clone().into_bytes();
        let last = tampered.len() - 2;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        assert!(!nonces.accepts(&String::from_utf8(tampered).expect("ascii"), now));
        assert!(!nonces.accepts("", now));
        assert!(!nonces.accepts("not base64!", now));
    }
}
