//! Verifying tokens against a remote authorization server through introspection (RFC 7662).
//!
//! The core does no I/O: an [`Introspector`] makes the HTTP call (the `latchkey-client` crate
//! ships one on reqwest) and this module interprets the answer. Put a
//! [`super::cache::CachedVerifier`] in front to avoid a round trip per request.
//!
//! A bound token's binding comes back in the answer's
//! [`BINDING_MEMBER`], so the
//! [`super::Guard`] enforces it here exactly as it does in process.

use super::{AccessToken, TokenVerifier, Verified};
use crate::clock::UnixTime;
use crate::endpoint::introspect::BINDING_MEMBER;
use crate::scope::ScopeSet;
use crate::secret::Secret;
use crate::store::{StoreError, StoreErrorKind};
use crate::token::{Binding, Confirmation};
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
    // An access token is `Bearer` or `DPoP` (RFC 9449 §6.2); anything else (a refresh
    // token) is not accepted as one.
    let token_type = answer.get("token_type").and_then(|t| t.as_str());
    let dpop = token_type.is_some_and(|t| t.eq_ignore_ascii_case("dpop"));
    if token_type.is_some_and(|t| !t.eq_ignore_ascii_case("bearer")) && !dpop {
        return Ok(Verified::Inactive);
    }
    let text = |k: &str| answer.get(k).and_then(|v| v.as_str()).map(str::to_owned);
    let scope = ScopeSet::parse(answer.get("scope").and_then(|v| v.as_str()).unwrap_or(""))
        .map_err(|_| corrupt("introspection answer has a malformed scope"))?;
    let Some(exp) = answer.get("exp").and_then(|v| v.as_i64()) else {
        return Err(corrupt("introspection answer has no exp"));
    };
    // A binding that cannot be read fails closed: the token is not accepted unbound.
    let binding = match answer.get(BINDING_MEMBER) {
        None | Some(serde_json::Value::Null) => None,
        Some(member) => {
            let field = |k: &str| member.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            match (field("user_agent_sha256"), field("ip")) {
                (Some(user_agent), Some(ip)) => Some(Binding { user_agent, ip }),
                _ => return Err(corrupt("introspection answer has a malformed binding")),
            }
        }
    };
    // A confirmation that cannot be read fails closed too; a DPoP token must name its key.
    let cnf = match answer.get("cnf") {
        None | Some(serde_json::Value::Null) => None,
        Some(member) => Some(
            serde_json::from_value::<Confirmation>(member.clone())
                .map_err(|_| corrupt("introspection answer has a malformed cnf"))?,
        ),
    };
    if dpop && cnf.as_ref().and_then(Confirmation::jkt).is_none() {
        return Err(corrupt(
            "introspection answer has a DPoP token without cnf.jkt",
        ));
    }
    Ok(Verified::Active(AccessToken {
        subject: text("sub"),
        username: text("username"),
        client_id: text("client_id").unwrap_or_default(),
        scope,
        expires_at: UnixTime(exp),
        binding,
        cnf,
        // RFC 7662 §2.2: `aud` is a string or an array of strings; anything else is no
        // audience, which a guard of one resource refuses.
        audience: match answer.get("aud") {
            Some(serde_json::Value::String(aud)) => vec![aud.clone()],
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        },
        actor: answer
            .get("act")
            .and_then(|act| serde_json::from_value(act.clone()).ok())
            .map(Box::new),
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

    #[test]
    fn issue_14_reads_the_binding_and_refuses_a_malformed_one() {
        let Verified::Active(t) = parse(&json!({
            "active": true, "client_id": "c", "exp": 99, "token_type": "Bearer",
            "latchkey_binding": {"user_agent_sha256": "ab", "ip": "192.0.2.7"}
        }))
        .expect("parses") else {
            panic!("active");
        };
        assert_eq!(
            t.binding,
            Some(Binding {
                user_agent: "ab".into(),
                ip: "192.0.2.7".into()
            })
        );
        assert!(
            parse(&json!({
                "active": true, "exp": 99, "latchkey_binding": {"ip": "192.0.2.7"}
            }))
            .is_err()
        );
    }

    #[test]
    fn reads_the_confirmation_of_dpop_and_certificate_bound_tokens() {
        let Verified::Active(t) = parse(&json!({
            "active": true, "client_id": "c", "exp": 99, "token_type": "DPoP",
            "cnf": {"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}
        }))
        .expect("parses") else {
            panic!("a DPoP token is an access token");
        };
        assert_eq!(
            t.cnf,
            Some(Confirmation::Jkt(
                "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()
            ))
        );
        let Verified::Active(t) = parse(&json!({
            "active": true, "exp": 99, "token_type": "Bearer",
            "cnf": {"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}
        }))
        .expect("parses") else {
            panic!("active");
        };
        assert_eq!(
            t.cnf.as_ref().and_then(Confirmation::x5t_s256),
            Some("bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2")
        );
        // Fails closed: a confirmation it cannot read, or a DPoP token naming no key.
        for answer in [
            json!({"active": true, "exp": 99, "cnf": {"jwk": {}}}),
            json!({"active": true, "exp": 99, "cnf": "jkt"}),
            json!({"active": true, "exp": 99, "token_type": "DPoP"}),
            json!({"active": true, "exp": 99, "token_type": "DPoP", "cnf": {"x5t#S256": "a"}}),
        ] {
            assert!(parse(&answer).is_err(), "{answer}");
        }
    }
}
