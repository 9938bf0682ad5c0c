//! Proof Key for Code Exchange (RFC 7636).
//!
//! The client sends `code_challenge` (and `code_challenge_method`) with the authorization
//! request and proves possession with `code_verifier` at the token endpoint. `S256` is the
//! only method on by default; `plain` exists for old clients and needs a setting (RFC 9700
//! §2.1.1). [`CodeChallenge`] and [`CodeVerifier`] own the syntax of each side, and
//! [`confirm`] is the one check the token endpoint applies.

use crate::error::OAuthError;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// How the challenge was derived from the verifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
///
/// [`CodeChallenge::parse`] checks what a request sends; the fields are public because the
/// stores rebuild a challenge from what they saved, which was parsed when the code was issued.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeChallenge {
    /// The method.
    pub method: Method,
    /// The challenge value.
    pub value: String,
}

/// The name the store records ([`crate::token::CodeRecord::challenge`]) and the backends use
/// for a [`CodeChallenge`].
pub type Challenge = CodeChallenge;

/// RFC 7636 §4.1: `code-verifier = 43*128unreserved` (also the shape of a `plain` challenge and,
/// at 43 characters, of an `S256` one).
fn is_verifier_shaped(raw: &str) -> bool {
    (43..=128).contains(&raw.len())
        && raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

impl CodeChallenge {
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
    pub fn verify(&self, verifier: &CodeVerifier<'_>) -> bool {
        let mut s256 = [0u8; 43];
        let expected: &[u8] = match self.method {
            Method::S256 => {
                let digest = Sha256::digest(verifier.0.as_bytes());
                // 32 bytes are 43 base64url characters without padding: the buffer fits.
                match base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode_slice(digest, &mut s256)
                {
                    Ok(43) => &s256,
                    _ => return false,
                }
            }
            Method::Plain => verifier.0.as_bytes(),
        };
        expected.len() == self.value.len() && bool::from(expected.ct_eq(self.value.as_bytes()))
    }
}

/// A `code_verifier` of RFC 7636 §4.1 syntax (43 to 128 unreserved characters), borrowed from
/// the token request it came in. It prints as `CodeVerifier(***)`: it is the secret half.
#[derive(Clone, Copy)]
pub struct CodeVerifier<'a>(&'a str);

impl<'a> CodeVerifier<'a> {
    /// Checks the syntax of a `code_verifier` parameter.
    pub fn parse(raw: &'a str) -> Result<Self, OAuthError> {
        if is_verifier_shaped(raw) {
            Ok(Self(raw))
        } else {
            Err(OAuthError::invalid_grant("malformed code_verifier"))
        }
    }

    /// The verifier's text, for clients that send it.
    pub fn as_str(&self) -> &'a str {
        self.0
    }
}

impl std::fmt::Debug for CodeVerifier<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeVerifier(***)")
    }
}

/// RFC 7636 §4.6 at the token endpoint: the code's `challenge` must be answered by the
/// request's `code_verifier`. A verifier without a challenge is refused too (RFC 9700
/// §2.1.1), so a PKCE downgrade cannot pass. Every failure is `invalid_grant`.
pub fn confirm(
    challenge: Option<&CodeChallenge>,
    verifier: Option<&str>,
) -> Result<(), OAuthError> {
    let invalid = |why: &'static str| OAuthError::invalid_grant(why);
    match (challenge, verifier) {
        (Some(challenge), Some(raw)) => match CodeVerifier::parse(raw) {
            Ok(verifier) if challenge.verify(&verifier) => Ok(()),
            _ => Err(invalid("code_verifier does not match the challenge")),
        },
        (Some(_), None) => Err(invalid("code_verifier is required")),
        (None, Some(_)) => Err(invalid(
            "code_verifier sent but the authorization request had no code_challenge",
        )),
        (None, None) => Ok(()),
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

    fn verifier(raw: &str) -> CodeVerifier<'_> {
        CodeVerifier::parse(raw).expect("well-formed verifier")
    }

    #[test]
    fn rfc7636_appendix_b_vector() {
        assert_eq!(s256_challenge(VERIFIER), CHALLENGE);
        let c = CodeChallenge::parse(CHALLENGE, Some("S256"), false).expect("valid");
        assert!(c.verify(&verifier(VERIFIER)));
        assert!(!c.verify(&verifier(&VERIFIER.replace('d', "e"))));
        assert!(CodeVerifier::parse("short").is_err());
    }

    #[test]
    fn plain_needs_the_setting_and_defaults_when_method_absent() {
        assert!(CodeChallenge::parse(VERIFIER, None, false).is_err());
        assert!(CodeChallenge::parse(VERIFIER, Some("plain"), false).is_err());
        let c = CodeChallenge::parse(VERIFIER, None, true).expect("plain allowed");
        assert_eq!(c.method, Method::Plain);
        assert!(c.verify(&verifier(VERIFIER)));
    }

    #[test]
    fn malformed_challenges_are_refused() {
        assert!(CodeChallenge::parse("abc", Some("S256"), false).is_err());
        assert!(CodeChallenge::parse(&"a".repeat(44), Some("S256"), false).is_err());
        assert!(CodeChallenge::parse(CHALLENGE, Some("s256"), false).is_err());
        assert!(CodeChallenge::parse(&"*".repeat(43), Some("S256"), false).is_err());
    }

    #[test]
    fn confirm_refuses_every_mismatch_and_every_downgrade() {
        let c = CodeChallenge::parse(CHALLENGE, Some("S256"), false).expect("valid");
        assert!(confirm(Some(&c), Some(VERIFIER)).is_ok());
        assert!(confirm(None, None).is_ok());
        for (challenge, verifier) in [
            (Some(&c), None),
            (Some(&c), Some("short")),
            (Some(&c), Some(CHALLENGE)),
            (None, Some(VERIFIER)),
        ] {
            let err = confirm(challenge, verifier).expect_err("refused");
            assert_eq!(err.code(), crate::error::ErrorCode::InvalidGrant);
        }
    }

    #[test]
    fn a_verifier_never_prints() {
        assert_eq!(format!("{:?}", verifier(VERIFIER)), "CodeVerifier(***)");
    }
}
