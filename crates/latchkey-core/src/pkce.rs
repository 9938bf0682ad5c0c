//! Proof Key for Code Exchange (RFC 7636).
//!
//! The client sends `code_challenge` (and `code_challenge_method`) with the authorization
//! request and proves possession with `code_verifier` at the token endpoint. `S256` is the
//! only method on by default; `plain` exists for old clients and needs a setting (RFC 9700
//! §2.1.1).

use crate::error::OAuthError;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// How the challenge was derived from the verifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Method {
    /// `S256`: `BASE64URL(SHA256(ascii(code_verifier)))`.
    S256,
    /// `plain`: the challenge is the verifier.
    Plain,
}

impl Method {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S256 => "S256",
            Self::Plain => "plain",
        }
    }

    /// Parses a wire name (case-sensitive, as RFC 7636 defines them).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "S256" => Some(Self::S256),
            "plain" => Some(Self::Plain),
            _ => None,
        }
    }
}

/// A code challenge bound to an authorization code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// The method.
    pub method: Method,
    /// The challenge value.
    pub value: String,
}

/// RFC 7636 §4.1: `code-verifier = 43*128unreserved` (also the shape of a `plain` challenge and,
/// at 43 characters, of an `S256` one).
fn is_verifier_shaped(raw: &str) -> bool {
    (43..=128).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl Challenge {
    /// Parses `code_challenge` and `code_challenge_method` from an authorization request.
    /// The method defaults to `plain` when absent (RFC 7636 §4.3); `allow_plain` decides
    /// whether that is acceptable.
    pub fn parse(value: &str, method: Option<&str>, allow_plain: bool) -> Result<Self, OAuthError> {
        let method = match method {
            None => Method::Plain,
            Some(m) => Method::parse(m)
                .ok_or_else(|| OAuthError::invalid_request("code_challenge_method must be S256"))?,
        };
        if method == Method::Plain && !allow_plain {
            return Err(OAuthError::invalid_request(
                "code_challenge_method must be S256",
            ));
        }
        let well_formed = match method {
            Method::S256 => value.len() == 43 && is_verifier_shaped(value),
            Method::Plain => is_verifier_shaped(value),
        };
        if !well_formed {
            return Err(OAuthError::invalid_request("malformed code_challenge"));
        }
        Ok(Self {
            method,
            value: value.to_owned(),
        })
    }

    /// Whether `verifier` answers this challenge (RFC 7636 §4.6), in constant time.
    pub fn verify(&self, verifier: &str) -> bool {
        if !is_verifier_shaped(verifier) {
            return false;
        }
        let expected = match self.method {
            Method::S256 => base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(verifier.as_bytes())),
            Method::Plain => verifier.to_owned(),
        };
        expected.len() == self.value.len()
            && bool::from(expected.as_bytes().ct_eq(self.value.as_bytes()))
    }
}

/// The S256 challenge of `verifier`: what a client sends. For clients and tests.
pub fn s256_challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7636 Appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(s256_challenge(VERIFIER), CHALLENGE);
        let c = Challenge::parse(CHALLENGE, Some("S256"), false).expect("valid");
        assert!(c.verify(VERIFIER));
        assert!(!c.verify(&VERIFIER.replace('d', "e")));
        assert!(!c.verify("short"));
    }

    #[test]
    fn plain_needs_the_setting_and_defaults_when_method_absent() {
        assert!(Challenge::parse(VERIFIER, None, false).is_err());
        assert!(Challenge::parse(VERIFIER, Some("plain"), false).is_err());
        let c = Challenge::parse(VERIFIER, None, true).expect("plain allowed");
        assert_eq!(c.method, Method::Plain);
        assert!(c.verify(VERIFIER));
    }

    #[test]
    fn malformed_challenges_are_refused() {
        assert!(Challenge::parse("abc", Some("S256"), false).is_err());
        assert!(Challenge::parse(&"a".repeat(44), Some("S256"), false).is_err());
        assert!(Challenge::parse(CHALLENGE, Some("s256"), false).is_err());
        assert!(Challenge::parse(&"*".repeat(43), Some("S256"), false).is_err());
    }
}
