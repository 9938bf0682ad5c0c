//! Argon2id password hashing for the built-in users (PHC strings).
//!
//! Hashing is deliberately slow (tens of milliseconds), so callers on an async runtime run
//! these functions on a blocking thread. Nothing here touches client secrets or tokens,
//! which are high-entropy and need only SHA-256.

use crate::entropy::Entropy;
use crate::secret::Secret;
use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash};

/// A PHC string that never verifies, hashed with the same parameters as real ones, so that
/// checking a password for an unknown user costs as long as for a known one.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$bGF0Y2hrZXlkdW1teXNhbHQ$\
                         b3e5kRfmQLHQmJ9TnlT0bk1Bc1Zt/w3f2Jx4C5cXqZ0";

/// Errors from hashing a password.
#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct PasswordError(String);

/// Hashes `password` with Argon2id (m=19456 KiB, t=2, p=1) and a 16-byte salt from `entropy`.
pub fn hash(password: &Secret, entropy: &dyn Entropy) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    entropy.fill(&mut salt);
    Argon2::default()
        .hash_password_with_salt(password.expose().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

/// Whether `password` matches the PHC string `phc`. A malformed `phc` never matches.
pub fn verify(phc: &str, password: &Secret) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    Argon2::default()
        .verify_password(password.expose().as_bytes(), &parsed)
        .is_ok()
}

/// Spends the time of one verification and returns `false`: used when the user is unknown,
/// so response time does not reveal which user names exist.
pub fn verify_dummy(password: &Secret) -> bool {
    let _ = verify(DUMMY_PHC, password);
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn hash_verifies_only_the_right_password() {
        let phc = hash(&Secret::new("correct horse"), &SeededEntropy::new(3)).expect("hashes");
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify(&phc, &Secret::new("correct horse")));
        assert!(!verify(&phc, &Secret::new("correct horse ")));
        assert!(!verify("not a phc string", &Secret::new("x")));
        assert!(!verify_dummy(&Secret::new("correct horse")));
    }

    #[test]
    fn dummy_hash_is_well_formed_so_it_costs_a_real_verification() {
        assert!(PasswordHash::new(DUMMY_PHC).is_ok());
    }
}
