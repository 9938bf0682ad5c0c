//! OAuth 2.0 Token Exchange (RFC 8693) as an extension grant: a client presents a token it
//! holds (`subject_token`) and gets an access token for another audience, possibly with a
//! narrower scope, acting as the subject (impersonation) or on its behalf (delegation, with an
//! `actor_token` and the `act` claim, §4.1).
//!
//! Registered by the embedder (or the `latchkey` binary when enabled) as
//! `.extension_grant(GRANT_TYPE, TokenExchange)`; the core's extension-grant seam
//! authenticates the client, checks that it is allowed the grant type, and applies the
//! audience and scope rules of every grant. What a client may exchange is its
//! [`ExchangePolicy`] (client metadata `token_exchange`): without one, nothing.
//!
//! Subject and actor tokens of four types are accepted: our access and refresh tokens (looked
//! up by digest in the store: active, not revoked), and ID tokens and other JWTs signed by our
//! own keys with our issuer, unexpired (a JWT access token also has its store record checked).
//! Tokens of other issuers are not accepted.
//!
//! The rules, and the RFC error for each refusal (§2.2.2):
//! - no policy: `unauthorized_client`;
//! - a token of a type the policy does not name, one issued to a client the policy does not
//!   name, an invalid or expired token, an actor token without `delegation`, or none without
//!   `impersonation`: `invalid_request`;
//! - an audience (`resource` or `audience`) the policy does not name: `invalid_target`;
//! - a scope beyond the subject token's (unless `widen_scope`) or the policy's:
//!   `invalid_scope`;
//! - `requested_token_type` other than an access token: `invalid_request`.

use super::extension::{ExtensionGrant, ExtensionRequest, GrantDecision, GrantFuture};
use crate::error::{ErrorCode, OAuthError};
use crate::indicator::{AudienceSet, ResourceUri};
use crate::jose::{Expect, JoseError, MAX_JWT_LEN};
use crate::scope::ScopeSet;
use crate::secret::Secret;
use crate::store::ProviderStore;
use crate::token::{Actor, TokenKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The grant type (RFC 8693 §2.1).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

/// The token type identifiers of RFC 8693 §3 this server reads, by their short policy names.
pub const TOKEN_TYPES: [(&str, &str); 4] = [
    (
        "access_token",
        "urn:ietf:params:oauth:token-type:access_token",
    ),
    (
        "refresh_token",
        "urn:ietf:params:oauth:token-type:refresh_token",
    ),
    ("id_token", "urn:ietf:params:oauth:token-type:id_token"),
    ("jwt", "urn:ietf:params:oauth:token-type:jwt"),
];

/// The type of every token this grant issues: an access token.
pub const ISSUED_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// What one client may exchange, registered in its metadata as `token_exchange`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExchangePolicy {
    /// The subject token types accepted, by short name: `access_token`, `refresh_token`,
    /// `id_token`, `jwt`.
    pub subject_token_types: Vec<String>,
    /// The actor token types accepted (for delegation), by the same names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actor_token_types: Vec<String>,
    /// The clients whose tokens may be exchanged; `*` for any. Empty: only the client's own.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_clients: Vec<String>,
    /// The resources the new token may be for (each also registered on the server).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// The scopes the new token may carry at most; absent: no limit beyond the others.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Whether the new token may carry scopes the subject token does not (never by default).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub widen_scope: bool,
    /// Whether the client may act as the subject, without an actor token.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub impersonation: bool,
    /// Whether the client may act for the subject with an actor token (the `act` claim).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub delegation: bool,
}

impl ExchangePolicy {
    /// The checks a registration passes: known token types, absolute audiences, and at least
    /// one way to exchange.
    pub fn validate(&self) -> Result<(), String> {
        for name in self
            .subject_token_types
            .iter()
            .chain(&self.actor_token_types)
        {
            if !TOKEN_TYPES.iter().any(|(short, _)| short == name) {
                return Err(format!(
                    "token_exchange: unknown token type {name:?} (access_token, refresh_token, id_token, jwt)"
                ));
            }
        }
        if self.subject_token_types.is_empty() {
            return Err("token_exchange: subject_token_types must name at least one type".into());
        }
        if !self.impersonation && !self.delegation {
            return Err("token_exchange: allow impersonation, delegation or both".into());
        }
        if self.delegation && self.actor_token_types.is_empty() {
            return Err("token_exchange: delegation needs actor_token_types".into());
        }
        for audience in &self.audiences {
            ResourceUri::parse(audience).map_err(|_| {
                format!("token_exchange: audience {audience:?} must be an absolute URI")
            })?;
        }
        if let Some(scopes) = &self.scopes {
            ScopeSet::parse(&scopes.join(" "))
                .map_err(|_| "token_exchange: malformed scope".to_owned())?;
        }
        Ok(())
    }

    fn accepts_client(&self, own: &str, issued_to: Option<&str>) -> bool {
        match issued_to {
            Some(issued_to) if issued_to == own => true,
            Some(issued_to) => self
                .subject_clients
                .iter()
                .any(|c| c == "*" || c == issued_to),
            None => self.subject_clients.iter().any(|c| c == "*"),
        }
    }
}

/// The token exchange grant handler.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenExchange;

impl<S: ProviderStore> ExtensionGrant<S> for TokenExchange {
    fn exchange<'a>(&'a self, request: ExtensionRequest<'a, S>) -> GrantFuture<'a> {
        Box::pin(exchange(request))
    }
}

/// What a presented token says about who it stands for.
struct Presented {
    sub: String,
    username: Option<String>,
    client_id: Option<String>,
    scope: ScopeSet,
    actor: Option<Box<Actor>>,
}

async fn exchange<S: ProviderStore>(
    request: ExtensionRequest<'_, S>,
) -> Result<GrantDecision, OAuthError> {
    let client = request.client;
    let Some(policy) = &client.metadata.token_exchange else {
        return Err(OAuthError::unauthorized_client(
            "this client has no token exchange policy",
        ));
    };
    let params = request.params;
    // §2.1: requested_token_type is optional; we issue access tokens only.
    if let Some(requested) = params.get("requested_token_type")
        && requested != ISSUED_TOKEN_TYPE
    {
        return Err(OAuthError::invalid_request(
            "requested_token_type must be urn:ietf:params:oauth:token-type:access_token",
        ));
    }
    let subject_type = short_type(params.require("subject_token_type")?, "subject_token_type")?;
    if !policy.subject_token_types.iter().any(|t| t == subject_type) {
        return Err(OAuthError::invalid_request(
            "this client may not exchange tokens of that subject_token_type",
        ));
    }
    let subject = read_token(&request, params.require("subject_token")?, subject_type).await?;
    if !policy.accepts_client(client.id.as_str(), subject.client_id.as_deref()) {
        return Err(OAuthError::invalid_request(
            "this client may not exchange tokens issued to that client",
        ));
    }
    // §2.1: actor_token_type "is REQUIRED when the actor_token parameter is present in the
    // request but MUST NOT be included otherwise".
    let actor = match (params.get("actor_token"), params.get("actor_token_type")) {
        (None, None) => None,
        (Some(token), Some(kind)) => {
            if !policy.delegation {
                return Err(OAuthError::invalid_request(
                    "this client may not exchange with an actor_token (no delegation)",
                ));
            }
            let kind = short_type(kind, "actor_token_type")?;
            if !policy.actor_token_types.iter().any(|t| t == kind) {
                return Err(OAuthError::invalid_request(
                    "this client may not present actor tokens of that type",
                ));
            }
            Some(read_token(&request, token, kind).await?)
        }
        _ => {
            return Err(OAuthError::invalid_request(
                "actor_token and actor_token_type go together",
            ));
        }
    };
    if actor.is_none() && !policy.impersonation {
        return Err(OAuthError::invalid_request(
            "this client may exchange only with an actor_token (no impersonation)",
        ));
    }
    // §2.1: `resource` and `audience` both name where the token will be used; here both
    // name registered resources, which the policy must list.
    let mut targets: Vec<String> = request
        .resources
        .iter()
        .map(|r| r.as_str().to_owned())
        .collect();
    for audience in params.get_all("audience") {
        targets.push(ResourceUri::parse(audience)?.as_str().to_owned());
    }
    if targets.len() > crate::indicator::MAX_RESOURCES {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "too many resource and audience values",
        ));
    }
    if let Some(refused) = targets.iter().find(|t| !policy.audiences.contains(t)) {
        tracing::debug!(client_id = %client.id, target = %refused, "exchange target outside the policy");
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "this client may not exchange tokens for that audience",
        ));
    }
    // Scope: what was asked, or the subject token's; never wider than it unless the policy
    // says so, and never beyond the policy's list.
    let scope = request
        .scope
        .cloned()
        .unwrap_or_else(|| subject.scope.clone());
    if !policy.widen_scope && !scope.is_subset(&subject.scope) {
        return Err(OAuthError::invalid_scope(format!(
            "scope beyond the subject token's: {}",
            scope.missing_from(&subject.scope)
        )));
    }
    if let Some(limit) = &policy.scopes {
        let limit = ScopeSet::parse(&limit.join(" "))?;
        if !scope.is_subset(&limit) {
            return Err(OAuthError::invalid_scope(format!(
                "scope beyond this client's exchange policy: {}",
                scope.missing_from(&limit)
            )));
        }
    }
    let username = subject
        .username
        .clone()
        .unwrap_or_else(|| subject.sub.clone());
    let mut decision = GrantDecision::for_user(subject.sub, username, scope)
        .audience(AudienceSet::of(targets))
        .issued_token_type(ISSUED_TOKEN_TYPE);
    if let Some(actor) = actor {
        // §4.1: the actor of this exchange, with the subject token's own actors nested as
        // prior ones; a chain past the bound is cut at it.
        let mut prior = subject.actor;
        if let Some(p) = prior.as_mut() {
            truncate(p, Actor::MAX_DEPTH - 1);
        }
        decision = decision.with_actor(Actor {
            sub: actor.sub,
            client_id: actor.client_id,
            act: prior,
        });
    }
    Ok(decision)
}

/// The short name of an RFC 8693 §3 token type URI; `invalid_request` for any other.
fn short_type(uri: &str, name: &'static str) -> Result<&'static str, OAuthError> {
    TOKEN_TYPES
        .iter()
        .find(|(_, full)| *full == uri)
        .map(|(short, _)| *short)
        .ok_or_else(|| OAuthError::invalid_request(format!("unsupported {name}")))
}

/// Cuts `actor`'s chain to `depth` actors.
fn truncate(actor: &mut Actor, depth: usize) {
    if depth <= 1 {
        actor.act = None;
    } else if let Some(next) = actor.act.as_mut() {
        truncate(next, depth - 1);
    }
}

/// Reads a presented token of type `kind` (a short name): what it stands for, or
/// `invalid_request` (§2.2.2) when it is not a valid token of ours.
async fn read_token<S: ProviderStore>(
    request: &ExtensionRequest<'_, S>,
    token: &str,
    kind: &str,
) -> Result<Presented, OAuthError> {
    let invalid = || OAuthError::invalid_request("the presented token is invalid or expired");
    match kind {
        "access_token" | "refresh_token" => {
            let want = if kind == "access_token" {
                TokenKind::Access
            } else {
                TokenKind::Refresh
            };
            let secret = Secret::new(token);
            let record = request.store.find_token(&secret.digest()).await?;
            let Some(record) = record.filter(|r| r.kind == want && r.is_active(request.now)) else {
                return Err(invalid());
            };
            Ok(Presented {
                sub: record
                    .subject
                    .clone()
                    .unwrap_or_else(|| record.client_id.to_string()),
                username: record.username.clone(),
                client_id: Some(record.client_id.to_string()),
                scope: record.scope.clone(),
                actor: record.actor.clone(),
            })
        }
        _ => {
            let claims = verify_jwt(request, token, kind == "id_token").map_err(|err| {
                tracing::debug!(error = %err, "presented JWT refused");
                invalid()
            })?;
            // A JWT access token of ours has a record: revoked there, refused here.
            let secret = Secret::new(token);
            if let Some(record) = request.store.find_token(&secret.digest()).await?
                && !record.is_active(request.now)
            {
                return Err(invalid());
            }
            let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
            let sub = text("sub").ok_or_else(invalid)?;
            // The client it was issued to: `client_id` (RFC 9068), `azp`, or a lone `aud`.
            let client_id =
                text("client_id")
                    .or_else(|| text("azp"))
                    .or_else(|| match claims.get("aud") {
                        Some(Value::String(aud)) => Some(aud.clone()),
                        Some(Value::Array(list)) if list.len() == 1 => {
                            list[0].as_str().map(str::to_owned)
                        }
                        _ => None,
                    });
            let scope =
                ScopeSet::parse(text("scope").as_deref().unwrap_or("")).map_err(|_| invalid())?;
            let actor = claims
                .get("act")
                .and_then(|a| serde_json::from_value::<Actor>(a.clone()).ok())
                .map(Box::new);
            Ok(Presented {
                sub,
                username: None,
                client_id,
                scope,
                actor,
            })
        }
    }
}

/// Verifies a JWT signed by one of our published keys, issued by us, unexpired; an ID token
/// must have the ID token `typ` (`JWT`), so no access or logout token passes as one.
fn verify_jwt<S>(
    request: &ExtensionRequest<'_, S>,
    token: &str,
    id_token: bool,
) -> Result<serde_json::Map<String, Value>, JoseError> {
    if token.len() > MAX_JWT_LEN {
        return Err(JoseError::Malformed("too long"));
    }
    let verified = request.signer.verify_signature(token)?;
    // RFC 8725 §3.11: a logout token is never a subject; an ID token is typed `JWT`.
    match verified
        .typ
        .as_deref()
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("logout+jwt") => return Err(JoseError::Type),
        Some("jwt") | None => {}
        Some(_) if id_token => return Err(JoseError::Type),
        Some(_) => {}
    }
    let mut expect = Expect::new("JWT", request.now).issuer(request.issuer);
    expect.typ = None;
    expect.check(&verified)?;
    Ok(verified.claims)
}
