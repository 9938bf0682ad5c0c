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
//! up by digest in the store: active, not revoked), ID tokens and other JWTs signed by our
//! own keys with our issuer, unexpired (a JWT access token also has its store record checked),
//! and ID tokens and JWTs of the external issuers the server trusts ([`trusted`]) and the
//! client's policy names.
//!
//! What is issued follows `requested_token_type` (§2.1), each answered with its
//! `issued_token_type` (§2.2.1): an access token (the default, in the client's registered
//! format), a JWT access token (RFC 9068, `jwt`), a refresh token (`N_A`, a new family bound
//! to the client), or an ID token for the client (`N_A`). The last two only for a subject
//! that is a user of this server, presented in a token of ours, and only when the policy's
//! `requested_token_types` names them (as it must `jwt`).
//!
//! The rules, and the RFC error for each refusal (§2.2.2):
//! - no policy: `unauthorized_client`;
//! - a token of a type the policy does not name, one issued to a client the policy does not
//!   name, one of an issuer neither ours nor trusted and named by the policy, an invalid or
//!   expired token, an actor token without `delegation`, or none without `impersonation`:
//!   `invalid_request`;
//! - a `requested_token_type` unknown or not named by the policy, a refresh token or ID token
//!   for a subject that is not a user of ours, an ID token with an actor or an audience:
//!   `invalid_request`;
//! - an audience (`resource` or `audience`) the policy does not name: `invalid_target`;
//! - a scope beyond the subject token's (unless `widen_scope`) or the policy's:
//!   `invalid_scope`.

mod presented;
pub mod trusted;

use super::extension::{ExtensionGrant, ExtensionRequest, GrantDecision, GrantFuture, IssuedToken};
use crate::client_assertion::JwksFetcher;
use crate::error::{ErrorCode, OAuthError};
use crate::indicator::{AudienceSet, ResourceUri};
use crate::scope::ScopeSet;
use crate::store::ProviderStore;
use crate::token::Actor;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use trusted::TrustedIssuers;

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

/// The type of the token issued when no other is requested: an access token.
pub const ISSUED_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The `requested_token_type` values this grant issues (RFC 8693 §3), what the core issues
/// for each, and their short policy names. An access token is always allowed; the others
/// only when the policy's `requested_token_types` names them.
const REQUESTED_TYPES: [(&str, &str, IssuedToken); 4] = [
    ("access_token", TOKEN_TYPES[0].1, IssuedToken::AccessToken),
    ("refresh_token", TOKEN_TYPES[1].1, IssuedToken::RefreshToken),
    ("id_token", TOKEN_TYPES[2].1, IssuedToken::IdToken),
    ("jwt", TOKEN_TYPES[3].1, IssuedToken::JwtAccessToken),
];

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
    /// The external issuers (by the alias the server's settings give them) whose ID tokens
    /// and JWTs this client may present; empty: tokens of this server only.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub trusted_issuers: Vec<String>,
    /// The token types, beyond an access token, this client may ask for with
    /// `requested_token_type`: `refresh_token`, `id_token`, `jwt`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requested_token_types: Vec<String>,
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
        if let Some(bad) = self
            .requested_token_types
            .iter()
            .find(|name| !REQUESTED_TYPES.iter().any(|(short, _, _)| short == name))
        {
            return Err(format!(
                "token_exchange: unknown requested token type {bad:?} (access_token, refresh_token, id_token, jwt)"
            ));
        }
        if let Some(bad) = self
            .trusted_issuers
            .iter()
            .find(|alias| !trusted::valid_alias(alias))
        {
            return Err(format!(
                "token_exchange: trusted issuer alias {bad:?} is malformed"
            ));
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

/// The token exchange grant handler: the external issuers the server trusts, and the
/// fetcher of their `jwks_uri` key sets (the embedder's I/O; the core does none).
#[derive(Clone, Default)]
pub struct TokenExchange {
    trusted: Arc<TrustedIssuers>,
    fetcher: Option<Arc<dyn JwksFetcher>>,
}

impl TokenExchange {
    /// A handler accepting this server's tokens only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Also accepts the ID tokens and JWTs of `issuers`, from clients whose policy names them.
    pub fn trusted_issuers(mut self, issuers: TrustedIssuers) -> Self {
        self.trusted = Arc::new(issuers);
        self
    }

    /// Fetches the key sets of trusted issuers configured with a `jwks_uri`; without one,
    /// their tokens are refused.
    pub fn jwks_fetcher(mut self, fetcher: Arc<dyn JwksFetcher>) -> Self {
        self.fetcher = Some(fetcher);
        self
    }
}

impl std::fmt::Debug for TokenExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenExchange")
            .field("trusted", &self.trusted)
            .field("fetcher", &self.fetcher.is_some())
            .finish()
    }
}

impl<S: ProviderStore> ExtensionGrant<S> for TokenExchange {
    fn exchange<'a>(&'a self, request: ExtensionRequest<'a, S>) -> GrantFuture<'a> {
        Box::pin(self.decide(request))
    }
}

/// What a presented token says about who it stands for.
struct Presented {
    sub: String,
    username: Option<String>,
    client_id: Option<String>,
    scope: ScopeSet,
    actor: Option<Box<Actor>>,
    /// The alias of the trusted issuer that issued it; `None` for a token of ours.
    external: Option<String>,
}

impl TokenExchange {
    async fn decide<S: ProviderStore>(
        &self,
        request: ExtensionRequest<'_, S>,
    ) -> Result<GrantDecision, OAuthError> {
        let client = request.client;
        let Some(policy) = &client.metadata.token_exchange else {
            return Err(OAuthError::unauthorized_client(
                "this client has no token exchange policy",
            ));
        };
        let params = request.params;
        // §2.1: requested_token_type is optional; an access token when absent.
        let (requested_uri, issue) = requested_type(policy, params.get("requested_token_type"))?;
        let subject_type = short_type(params.require("subject_token_type")?, "subject_token_type")?;
        if !policy.subject_token_types.iter().any(|t| t == subject_type) {
            return Err(OAuthError::invalid_request(
                "this client may not exchange tokens of that subject_token_type",
            ));
        }
        let subject = self
            .read_token(
                &request,
                policy,
                params.require("subject_token")?,
                subject_type,
            )
            .await?;
        // The client rule is about our clients; an external token is allowed by its issuer.
        if subject.external.is_none()
            && !policy.accepts_client(client.id.as_str(), subject.client_id.as_deref())
        {
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
                Some(self.read_token(&request, policy, token, kind).await?)
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
        if matches!(issue, IssuedToken::RefreshToken | IssuedToken::IdToken)
            && subject.external.is_some()
        {
            return Err(OAuthError::invalid_request(
                "a refresh token or ID token is issued only for a user of this server",
            ));
        }
        if issue == IssuedToken::IdToken && actor.is_some() {
            return Err(OAuthError::invalid_request(
                "an ID token is issued by impersonation only: send no actor_token",
            ));
        }
        if issue == IssuedToken::IdToken && !targets.is_empty() {
            return Err(OAuthError::invalid_request(
                "an ID token is for the requesting client: send no resource or audience",
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
            .issue(issue)
            .issued_token_type(requested_uri);
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
}

/// The token type URI to answer with and what to issue for `requested`; `invalid_request`
/// for an unknown type or one the policy does not allow.
fn requested_type(
    policy: &ExchangePolicy,
    requested: Option<&str>,
) -> Result<(&'static str, IssuedToken), OAuthError> {
    let Some(requested) = requested else {
        return Ok((ISSUED_TOKEN_TYPE, IssuedToken::AccessToken));
    };
    let Some((short, uri, issue)) = REQUESTED_TYPES.iter().find(|(_, uri, _)| *uri == requested)
    else {
        return Err(OAuthError::invalid_request(
            "unsupported requested_token_type: this server issues access_token, refresh_token, id_token and jwt token types",
        ));
    };
    if *issue != IssuedToken::AccessToken
        && !policy.requested_token_types.iter().any(|t| t == short)
    {
        return Err(OAuthError::invalid_request(format!(
            "this client may not request a token of type {short}"
        )));
    }
    Ok((uri, *issue))
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
