//! Randomness, injected: token values come from an [`Entropy`] the embedder chooses.
//!
//! Production uses [`OsEntropy`] (the operating system's CSPRNG). Tests may use
//! [`SeededEntropy`], which is deterministic and must never serve real users.

use sha2::{Digest as _, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};

/// A source of cryptographically strong random bytes.
pub trait Entropy: Send + Sync + 'static {
    /// Fills `buf` with random bytes.
    fn fill(&self, buf: &mut [u8]);
}

/// The operating system's random source (`getrandom`).
///
/// Bytes are drawn from the OS in blocks of [`POOL_BYTES`] per thread and handed out once
/// each (then zeroed), so minting a token costs no system call: the output is the OS
/// generator's, only fetched in bulk.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsEntropy;

/// How many OS random bytes each thread fetches at a time.
pub const POOL_BYTES: usize = 4096;

struct Pool {
    bytes: [u8; POOL_BYTES],
    /// Bytes before `used` have been handed out (and zeroed).
    used: usize,
}

thread_local! {
    static POOL: std::cell::RefCell<Pool> = const {
        std::cell::RefCell::new(Pool { bytes: [0; POOL_BYTES], used: POOL_BYTES })
    };
}

/// Fills `buf` straight from the OS generator.
fn os_fill(buf: &mut [u8]) {
    // The OS generator fails only on platforms with no random source at all, where no
    // authorization server can run safely; refuse to continue rather than mint weak tokens.
    if getrandom::fill(buf).is_err() {
        std::process::abort();
    }
}

impl Entropy for OsEntropy {
    fn fill(&self, buf: &mut [u8]) {
        if buf.len() > POOL_BYTES / 4 {
            return os_fill(buf);
        }
        let pooled = POOL.try_with(|pool| {
            let Ok(mut pool) = pool.try_borrow_mut() else {
                return false;
            };
            if POOL_BYTES - pool.used < buf.len() {
                os_fill(&mut pool.bytes);
                pool.used = 0;
            }
            let start = pool.used;
            let end = start + buf.len();
            if let Some(chunk) = pool.bytes.get_mut(start..end) {
                buf.copy_from_slice(chunk);
                chunk.fill(0);
                pool.used = end;
                true
            } else {
                false
            }
        });
        if pooled != Ok(true) {
            os_fill(buf);
        }
    }
}

/// A deterministic generator (SHA-256 in counter mode over a seed), for reproducible tests.
#[derive(Debug)]
pub struct SeededEntropy {
    seed: [u8; 32],
    counter: AtomicU64,
}

impl SeededEntropy {
    /// A generator whose output depends only on `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed: Sha256::digest(seed.to_le_bytes()).into(),
            counter: AtomicU64::new(0),
        }
    }
}

impl Entropy for SeededEntropy {
    fn fill(&self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(32) {
            let n = self.counter.fetch_add(1, Ordering::Relaxed);
            let block: [u8; 32] = Sha256::new()
                .chain_update(self.seed)
                .chain_update(n.to_le_bytes())
                .finalize()
                .into();
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
    }
}

/// `len` random bytes as unpadded base64url: the shape of every token and secret we mint.
pub fn random_token(entropy: &dyn Entropy, len: usize) -> String {
    use base64::Engine as _;
    // Token values (32 bytes) take their randomness from the stack: the value's text is the
    // only allocation.
    let mut stack = [0u8; 64];
    let mut heap;
    let bytes: &mut [u8] = match stack.get_mut(..len) {
        Some(bytes) => bytes,
        None => {
            heap = vec![0u8; len];
            &mut heap
        }
    };
    entropy.fill(bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `len` random bytes as lowercase hex: identifiers that are safe in any URL or file name.
pub fn random_hex(entropy: &dyn Entropy, len: usize) -> String {
    let mut bytes = vec![0u8; len];
    entropy.fill(&mut bytes);
    hex(&bytes)
}

/// `bytes` as lowercase hex, two digits each: for identifiers made from random bytes.
pub fn hex(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(2 * bytes.len());
    push_hex(&mut hex, bytes);
    hex
}

/// Appends `bytes` to `out` as lowercase hex, two digits each: for identifiers built from
/// several parts into one buffer.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_entropy_is_reproducible_and_varies() {
        let (a, b) = (SeededEntropy::new(7), SeededEntropy::new(7));
        let first = random_token(&a, 32);
        assert_eq!(first, random_token(&b, 32));
        assert_ne!(first, random_token(&a, 32));
        assert_eq!(first.len(), 43);
    }

    #[test]
    fn random_hex_is_lowercase_hex_of_the_bytes() {
        struct Fixed;
        impl Entropy for Fixed {
            fn fill(&self, dest: &mut [u8]) {
                for (i, b) in dest.iter_mut().enumerate() {
                    *b = [0x00, 0x9f, 0xa0, 0xff][i % 4];
                }
            }
        }
        assert_eq!(random_hex(&Fixed, 5), "009fa0ff00");
        assert_eq!(random_hex(&Fixed, 0), "");
    }

    #[test]
    fn os_entropy_fills_the_buffer() {
        let mut buf = [0u8; 64];
        OsEntropy.fill(&mut buf);
        assert!(buf.iter().any(|b| *b != 0));
    }

    #[test]
    fn pooled_os_entropy_never_hands_out_the_same_bytes_twice() {
        // Across several refills of the pool, and for large requests that bypass it.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..(3 * POOL_BYTES / 32) {
            let mut token = [0u8; 32];
            OsEntropy.fill(&mut token);
            assert!(seen.insert(token), "a 256-bit value came out twice");
        }
        let mut big = vec![0u8; POOL_BYTES];
        OsEntropy.fill(&mut big);
        assert!(big.iter().any(|b| *b != 0));
    }
}
