//! Token generators: what the value of an access or refresh token looks like (python-oauth2's
//! `token_generator`).
//!
//! The provider mints 256 random bits per token by default ([`OpaqueTokens`]). An embedder who
//! wants another format (a prefix that secret scanners recognise) implements
//! [`TokenGenerator`] and sets it with [`crate::provider::ProviderBuilder::token_generator`].
//! JWT access tokens (RFC 9068) are built in and chosen per client
//! ([`crate::access_jwt`]): a `jwt` client's access tokens come from
//! [`crate::access_jwt::JwtAccessTokens`], its refresh tokens and every other client's tokens
//! from the configured generator.
//!
//! Whatever a generator returns, the store keeps only the value's SHA-256 digest, as for the
//! default values; and the provider refuses a value a client could not send back in an
//! `Authorization: Bearer` header (RFC 6750 §2.1), answering `server_error` rather than
//! issuing it. A generator must make values no one can guess: every value it returns is a
//! bearer credential.

use crate::client::GrantType;
use crate::clock::UnixTime;
use crate::entropy::{Entropy, random_token};
use crate::error::OAuthError;
use crate::secret::Secret;
use crate::token::{Grant, TOKEN_BYTES, TokenKind};

/// Makes the value of each access and refresh token the provider issues.
///
/// `generate` is called once per token, after the grant has decided everything about it (a
/// [`TokenContext`]) and before anything is stored; an error stops the issuance and the client
/// gets `server_error` (the error's detail goes to the log only).
///
/// ```
/// use latchkey_core::entropy::{Entropy, random_token};
/// use latchkey_core::error::OAuthError;
/// use latchkey_core::generator::{TokenContext, TokenGenerator};
/// use latchkey_core::secret::Secret;
/// use latchkey_core::token::TokenKind;
///
/// /// Values secret scanners recognise: `lk_at_…` and `lk_rt_…`.
/// struct Prefixed;
///
/// impl TokenGenerator for Prefixed {
///     fn generate(&self, ctx: &TokenContext<'_>, entropy: &dyn Entropy) -> Result<Secret, OAuthError> {
///         let prefix = match ctx.kind {
///             TokenKind::Refresh => "lk_rt_",
///             _ => "lk_at_",
///         };
///         Ok(Secret::new(format!("{prefix}{}", random_token(entropy, 32))))
///     }
/// }
/// ```
pub trait TokenGenerator: Send + Sync + 'static {
    /// The value of the token `ctx` describes. `entropy` is the provider's random source, so
    /// that tests which pin it get the same values every run.
    fn generate(&self, ctx: &TokenContext<'_>, entropy: &dyn Entropy)
    -> Result<Secret, OAuthError>;
}

/// Everything known about a token when its value is made: what a JWT access token carries
/// (RFC 9068 §2.2: `iss`, `exp`, `iat`, `client_id`, `sub`, `scope`) and more.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct TokenContext<'a> {
    /// Access or refresh.
    pub kind: TokenKind,
    /// What the grant decided: client, subject and user name, scope, the grant type that
    /// started the family, the family, lifetimes, binding, and what the application attached
    /// at authorization ([`Grant::attached`], the same on a refresh rotation): a JWT access
    /// token can carry it as claims.
    pub grant: &'a Grant,
    /// The grant type of the request that issues this token: `refresh_token` on a rotation,
    /// where [`Grant::grant_type`] still names the grant that started the family.
    pub request_grant: GrantType,
    /// The provider's issuer identifier (a JWT's `iss`).
    pub issuer: &'a str,
    /// When the token is issued (a JWT's `iat`).
    pub issued_at: UnixTime,
    /// When the token stops working (a JWT's `exp`).
    pub expires_at: UnixTime,
    /// When the family's first token was issued (`issued_at` for a new family).
    pub family_issued_at: UnixTime,
}

/// The default generator: 256 random bits, base64url (43 characters), for access and refresh
/// tokens alike. The provider mints these without going through the trait; the type exists
/// so that a generator of its own can fall back to it (for example, JWT access tokens and
/// opaque refresh tokens).
#[derive(Clone, Copy, Debug, Default)]
pub struct OpaqueTokens;

impl TokenGenerator for OpaqueTokens {
    fn generate(
        &self,
        _ctx: &TokenContext<'_>,
        entropy: &dyn Entropy,
    ) -> Result<Secret, OAuthError> {
        Ok(Secret::new(random_token(entropy, TOKEN_BYTES)))
    }
}

/// The longest value a generator may return: what the resource guard accepts in an
/// `Authorization: Bearer` header ([`crate::resource::bearer_token`]).
pub const MAX_TOKEN_LEN: usize = 4096;

/// Checks a generated value: 1 to [`MAX_TOKEN_LEN`] characters of RFC 6750's `b64token`
/// (`ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/"`, then optional `=` padding), so the
/// client can present it as a bearer token. A value that fails is the generator's bug: the
/// client gets `server_error`.
pub fn check_value(value: &Secret, kind: TokenKind) -> Result<(), OAuthError> {
    let raw = value.expose();
    let body = raw.trim_end_matches('=');
    let valid = raw.len() <= MAX_TOKEN_LEN
        && !body.is_empty()
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if valid {
        Ok(())
    } else {
        Err(OAuthError::server_error().with_detail(format!(
            "the token generator made a {} that is not 1 to {MAX_TOKEN_LEN} b64token characters (RFC 6750 §2.1)",
            kind.as_str()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_values_must_be_bearer_tokens() {
        for good in [
            "a",
            "abc.def-ghi_jkl~+/",
            "YWJj==",
            &"x".repeat(MAX_TOKEN_LEN),
        ] {
            assert!(
                check_value(&Secret::new(good), TokenKind::Access).is_ok(),
                "{good}"
            );
        }
        for bad in [
            "",
            "=",
            "a b",
            "a=b",
            "tok\n",
            "é",
            "a\"b",
            &"x".repeat(MAX_TOKEN_LEN + 1),
        ] {
            assert!(
                check_value(&Secret::new(bad), TokenKind::Refresh).is_err(),
                "{bad:?}"
            );
        }
    }
}
