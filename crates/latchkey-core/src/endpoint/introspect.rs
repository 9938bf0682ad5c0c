//! Token introspection (RFC 7662).
//!
//! Resource servers ask whether a token is active and what it allows. The endpoint requires
//! client authentication by a confidential client (§2.1: "the endpoint MUST also require some
//! form of authorization"), so tokens cannot be probed anonymously. A client learns about its
//! own tokens; only a client registered to introspect (a resource server, `introspect` on the
//! client) learns about other clients' tokens (§4: the server "MUST ... determine whether the
//! client is allowed to learn about the token"). Expired, revoked, rotated and unknown tokens,
//! and tokens the client may not learn about, all get the same `{"active": false}` (§2.2), and
//! nothing else.
//!
//! The description of a bound token carries its binding ([`BINDING_MEMBER`]), so a resource
//! server in another process enforces it as the in-process guard does, and the description of
//! a token whose grant carries attached data has it as [`ATTACHED_MEMBER`] (`ext`); like every
//! other member, only a client allowed to learn about the token sees it.

use crate::client::ClientType;
use crate::endpoint::revoke::form_post;
use crate::endpoint::token::authenticate_client;
use crate::error::OAuthError;
use crate::http::{HttpRequest, HttpResponse};
use crate::provider::Provider;
use crate::secret::Secret;
use crate::store::ProviderStore;
use crate::token::{TokenKind, TokenRecord};
use crate::user::UserAuthenticator;
use serde_json::json;

/// Answers one introspection request.
pub async fn handle<S, U>(p: &Provider<S, U>, req: &HttpRequest) -> HttpResponse
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    match introspect(p, req).await {
        Ok(body) => HttpResponse::json_no_store(200, &body),
        Err(err) => super::refused(p, "introspect", err),
    }
}

async fn introspect<S, U>(
    p: &Provider<S, U>,
    req: &HttpRequest,
) -> Result<serde_json::Value, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let params = form_post(req, "the introspection endpoint accepts only POST")?;
    let client = authenticate_client(p, req, &params).await?;
    if client.client_type() == ClientType::Public {
        return Err(OAuthError::unauthorized_client(
            "public clients may not introspect tokens",
        ));
    }
    let token = Secret::new(params.require("token")?);
    let now = p.clock().now();
    Ok(match p.store().find_token(&token.digest()).await? {
        Some(record)
            if record.is_active(now) && (client.introspect || record.client_id == client.id) =>
        {
            describe(&record, &p.config().issuer)
        }
        _ => json!({ "active": false }),
    })
}

/// The extension member (RFC 7662 §2.2) that carries a bound token's binding: an object with
/// `user_agent_sha256` (lowercase hex SHA-256 of the `User-Agent` it was issued to) and `ip`.
pub const BINDING_MEMBER: &str = "latchkey_binding";

/// The extension member (RFC 7662 §2.2) that carries what the application attached at
/// authorization ([`crate::attached`]), when anything was: the object as it was attached.
pub const ATTACHED_MEMBER: &str = "ext";

/// The RFC 7662 §2.2 description of an active token, with its binding and what was attached
/// at authorization when it has them.
pub fn describe(record: &TokenRecord, issuer: &str) -> serde_json::Value {
    let mut body = json!({
        "active": true,
        "client_id": record.client_id.as_str(),
        "exp": record.expires_at.0,
        "iat": record.issued_at.0,
        "iss": issuer,
    });
    if !record.scope.is_empty() {
        body["scope"] = record.scope.to_string().into();
    }
    if let Some(sub) = &record.subject {
        body["sub"] = sub.as_str().into();
    }
    if let Some(username) = &record.username {
        body["username"] = username.as_str().into();
    }
    // RFC 7662 §2.2 `aud`: the resources the token is for (RFC 8707), a string for one.
    match record.audience.len() {
        0 => {}
        1 => body["aud"] = record.audience.iter().collect::<String>().into(),
        _ => body["aud"] = record.audience.iter().collect::<Vec<_>>().into(),
    }
    // RFC 8693 §4.1 `act`, for a delegated token.
    if let Some(actor) = &record.actor {
        body["act"] = serde_json::to_value(actor).unwrap_or_default();
    }
    if let Some(binding) = &record.binding {
        body[BINDING_MEMBER] = json!({
            "user_agent_sha256": binding.user_agent,
            "ip": binding.ip,
        });
    }
    // What the application attached at authorization, under the name Ory Hydra uses.
    if !record.attached.is_empty() {
        body[ATTACHED_MEMBER] = record.attached.to_value();
    }
    if let Some(cnf) = &record.cnf {
        body["cnf"] = cnf.to_json();
    }
    match record.kind {
        // RFC 9449 §6.2: a DPoP-bound access token's type is `DPoP`.
        TokenKind::Access if record.cnf.as_ref().is_some_and(|c| c.jkt().is_some()) => {
            body["token_type"] = "DPoP".into()
        }
        TokenKind::Access => body["token_type"] = "Bearer".into(),
        // Not an RFC 6749 §7.1 access token type, so the hint name says what it is.
        TokenKind::Refresh => body["token_type"] = "refresh_token".into(),
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientId, GrantType};
    use crate::clock::UnixTime;
    use crate::entropy::OsEntropy;
    use crate::resource::remote::parse;
    use crate::resource::{AccessToken, Verified};
    use crate::scope::ScopeSet;
    use crate::token::{Confirmation, FamilyId, Grant, mint};

    fn access_token(cnf: Option<Confirmation>) -> TokenRecord {
        let grant = Grant {
            attached: crate::attached::Attached::new(),
            access_token_format: crate::access_jwt::AccessTokenFormat::Opaque,
            auth: None,
            cnf,
            client_id: ClientId::parse("c").expect("valid id"),
            subject: Some("u".into()),
            username: None,
            scope: ScopeSet::parse("read").expect("valid scope"),
            grant_type: GrantType::AuthorizationCode,
            family: FamilyId::generate(&OsEntropy),
            family_issued_at: None,
            access_ttl: 60,
            refresh_ttl: None,
            binding: None,
            audience: Default::default(),
            refresh_audience: None,
            actor: None,
        };
        mint(&grant, &OsEntropy, UnixTime(1_700_000_000))
            .records
            .access
    }

    /// RFC 9449 §6.2 and RFC 8705 §3.2: introspection names the key a token is bound to, and
    /// a DPoP-bound token's type is `DPoP`; a resource server reading the answer keeps both.
    #[test]
    fn a_bound_token_is_described_with_its_confirmation() {
        let jkt = Confirmation::Jkt("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into());
        let x5t = Confirmation::X5tS256("bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2".into());
        for (cnf, token_type) in [(None, "Bearer"), (Some(jkt), "DPoP"), (Some(x5t), "Bearer")] {
            let record = access_token(cnf.clone());
            let body = describe(&record, "https://as.example");
            assert_eq!(body["token_type"], token_type);
            assert_eq!(
                body.get("cnf").cloned(),
                cnf.as_ref().map(Confirmation::to_json)
            );
            let Verified::Active(read) = parse(&body).expect("parses") else {
                panic!("active");
            };
            assert_eq!(read, AccessToken::from(&record));
        }
    }
}
