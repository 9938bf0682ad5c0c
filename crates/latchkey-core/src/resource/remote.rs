//! Verifying tokens against a remote authorization server through introspection (RFC 7662).
//!
//! The core does no I/O: an [`Introspector`] makes the HTTP call (the `latchkey-client` crate
//! ships one on reqwest) and this module interprets the answer. Put a
//! [`super::cache::CachedVerifier`] in front to avoid a round trip per request.

use super::{AccessToken, TokenVerifier, Verified};
use crate::clock::UnixTime;
use crate::scope::ScopeSet;
use crate::secret::Secret;
use crate::store::{StoreError, StoreErrorKind};
use std::future::Future;

/// Makes one introspection call and returns the JSON answer.
pub trait Introspector: Send + Sync + 'static {
    /// POSTs `token` to the introspection endpoint, authenticated as the resource server.
    fn introspect(
        &self,
        token: &Secret,
    ) -> impl Future<Output = Result<serde_json::Value, StoreError>> + Send;
}

/// A [`TokenVerifier`] that asks a remote server.
#[derive(Clone, Debug)]
pub struct IntrospectionVerifier<I> {
    introspector: I,
}

impl<I> IntrospectionVerifier<I> {
    /// Verifies through `introspector`.
    pub fn new(introspector: I) -> Self {
        Self { introspector }
    }
}

impl<I: Introspector> TokenVerifier for IntrospectionVerifier<I> {
    async fn verify(&self, token: &Secret) -> Result<Verified, StoreError> {
        let answer = self.introspector.introspect(token).await?;
        parse(&answer)
    }
}

/// Reads an RFC 7662 §2.2 response. Only an `active: true` access token counts; a refresh
/// token presented as a bearer token is inactive here.
pub fn parse(answer: &serde_json::Value) -> Result<Verified, StoreError> {
    let corrupt = |why| StoreError::new(StoreErrorKind::Corrupt, why);
    match answer.get("active").and_then(serde_json::Value::as_bool) {
        Some(true) => {}
        Some(false) => return Ok(Verified::Inactive),
        None => return Err(corrupt("introspection answer has no boolean `active`")),
    }
    if answer
        .get("token_type")
        .and_then(|t| t.as_str())
        .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return Ok(Verified::Inactive);
    }
    let text = |k: &str| answer.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let scope = ScopeSet::parse(answer.get("scope").and_then(|v| v.as_str()).unwrap_or(""))
        .map_err(|_| corrupt("introspection answer has a malformed scope"))?;
    let Some(exp) = answer.get("exp").and_then(|v| v.as_i64()) else {
        return Err(corrupt("introspection answer has no exp"));
    };
    Ok(Verified::Active(AccessToken {
        subject: text("sub"),
        username: text("username"),
        client_id: text("client_id").unwrap_or_default(),
        scope,
        expires_at: UnixTime(exp),
        binding: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_active_and_inactive_answers() {
        assert_eq!(
            parse(&json!({"active": false})).expect("parses"),
            Verified::Inactive
        );
        let Verified::Active(t) = parse(&json!({
            "active": true, "scope": "read write", "client_id": "c", "sub": "u", "exp": 99, "token_type": "Bearer"
        })).expect("parses") else {
            panic!("active");
        };
        assert!(
            t.has_scope("write")
                && t.subject.as_deref() == Some("u")
                && t.expires_at == UnixTime(99)
        );
        assert_eq!(
            parse(&json!({"active": true, "exp": 1, "token_type": "refresh_token"}))
                .expect("parses"),
            Verified::Inactive
        );
        assert!(parse(&json!({"error": "invalid_client"})).is_err());
    }
}
