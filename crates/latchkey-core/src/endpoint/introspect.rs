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

/// Answers one introspection request.
pub async fn handle<S, U>(p: &Provider<S, U>, req: &HttpRequest) -> HttpResponse
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    match introspect(p, req).await {
        Ok(body) => HttpResponse::json_bytes_no_store(body),
        Err(err) => super::refused(p, "introspect", err),
    }
}

/// The answer's body, serialized straight from the record (no JSON tree in between).
async fn introspect<S, U>(p: &Provider<S, U>, req: &HttpRequest) -> Result<Vec<u8>, OAuthError>
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
    let body = match p.store().find_token(&token.digest()).await? {
        Some(record)
            if record.is_active(now) && (client.introspect || record.client_id == client.id) =>
        {
            // Room for the usual description (issuer, client, scope, user, times) at once.
            let mut body = Vec::with_capacity(384);
            serde_json::to_writer(&mut body, &Description::of(&record, &p.config().issuer))
                .map(|()| body)
        }
        _ => Ok(br#"{"active":false}"#.to_vec()),
    };
    body.map_err(|err| OAuthError::server_error().with_detail(err))
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
    serde_json::to_value(Description::of(record, issuer)).unwrap_or_default()
}

/// The members of an active token's description, in the order a sorted JSON object has them
/// (the order [`describe`]'s object and the endpoint's body share).
#[derive(serde::Serialize)]
struct Description<'a> {
    /// RFC 8693 §4.1 `act`, for a delegated token.
    #[serde(skip_serializing_if = "Option::is_none")]
    act: Option<&'a crate::token::Actor>,
    active: bool,
    /// RFC 7662 §2.2 `aud`: the resources the token is for (RFC 8707), a string for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<Audience<'a>>,
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<&'a crate::token::Confirmation>,
    exp: i64,
    /// What the application attached at authorization, under the name Ory Hydra uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    ext: Option<serde_json::Value>,
    iat: i64,
    iss: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    latchkey_binding: Option<BindingMember<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<crate::scope::ScopeText<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
}

/// `aud`: one resource as a string, several as an array.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum Audience<'a> {
    One(&'a str),
    Many(Vec<&'a str>),
}

/// [`BINDING_MEMBER`]'s value.
#[derive(serde::Serialize)]
struct BindingMember<'a> {
    ip: &'a str,
    user_agent_sha256: &'a str,
}

impl<'a> Description<'a> {
    fn of(record: &'a TokenRecord, issuer: &'a str) -> Self {
        let mut audience = record.audience.iter();
        let aud = match (audience.next(), record.audience.len()) {
            (None, _) => None,
            (Some(one), 1) => Some(Audience::One(one)),
            (Some(_), _) => Some(Audience::Many(record.audience.iter().collect())),
        };
        let token_type = match record.kind {
            // RFC 9449 §6.2: a DPoP-bound access token's type is `DPoP`.
            TokenKind::Access if record.cnf.as_ref().is_some_and(|c| c.jkt().is_some()) => "DPoP",
            TokenKind::Access => "Bearer",
            // Not an RFC 6749 §7.1 access token type, so the hint name says what it is.
            TokenKind::Refresh => "refresh_token",
        };
        Self {
            act: record.actor.as_deref(),
            active: true,
            aud,
            client_id: record.client_id.as_str(),
            cnf: record.cnf.as_ref(),
            exp: record.expires_at.0,
            ext: (!record.attached.is_empty()).then(|| record.attached.to_value()),
            iat: record.issued_at.0,
            iss: issuer,
            latchkey_binding: record.binding.as_ref().map(|binding| BindingMember {
                ip: &binding.ip,
                user_agent_sha256: &binding.user_agent,
            }),
            scope: (!record.scope.is_empty()).then_some(crate::scope::ScopeText(&record.scope)),
            sub: record.subject.as_deref(),
            token_type,
            username: record.username.as_deref(),
        }
    }
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
    use serde_json::json;

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

    /// Every member of a fully loaded record, under the names RFC 7662 §2.2 and our
    /// extension constants give them; `aud` a string for one resource, an array for more.
    #[test]
    fn a_full_description_has_every_member_under_its_name() {
        let mut record = access_token(None);
        record.username = Some("alice".into());
        record.binding = Some(crate::token::Binding {
            user_agent: "ab".repeat(32),
            ip: "192.0.2.7".into(),
        });
        record.attached =
            crate::attached::Attached::from_value(json!({ "tenant": "t1" })).expect("an object");
        record.actor = Some(Box::new(crate::token::Actor {
            sub: "svc".into(),
            client_id: Some("c2".into()),
            act: None,
        }));
        record.audience = crate::indicator::AudienceSet::of(["https://a.example"]);
        let body = describe(&record, "https://as.example");
        assert_eq!(
            body,
            json!({
                "act": { "sub": "svc", "client_id": "c2" },
                "active": true,
                "aud": "https://a.example",
                "client_id": "c",
                "exp": 1_700_000_060,
                (ATTACHED_MEMBER): { "tenant": "t1" },
                "iat": 1_700_000_000,
                "iss": "https://as.example",
                (BINDING_MEMBER): { "user_agent_sha256": "ab".repeat(32), "ip": "192.0.2.7" },
                "scope": "read",
                "sub": "u",
                "token_type": "Bearer",
                "username": "alice",
            })
        );
        record.audience =
            crate::indicator::AudienceSet::of(["https://b.example", "https://a.example"]);
        assert_eq!(
            describe(&record, "https://as.example")["aud"],
            json!(["https://a.example", "https://b.example"])
        );
        let refresh = TokenRecord {
            kind: TokenKind::Refresh,
            ..access_token(None)
        };
        let body = describe(&refresh, "https://as.example");
        assert_eq!(body["token_type"], "refresh_token");
        for absent in ["act", "aud", "cnf", "ext", "username", BINDING_MEMBER] {
            assert!(body.get(absent).is_none(), "{absent}");
        }
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
