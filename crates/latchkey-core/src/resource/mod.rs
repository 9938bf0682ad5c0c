//! Protecting resources with bearer tokens (RFC 6750): the core of every guard.
//!
//! A [`Guard`] reads the `Authorization: Bearer` header, asks a [`TokenVerifier`] what the
//! token stands for, checks the required scopes, and runs the embedder's [`GuardHooks`]
//! (Flask-OAuthlib's before/after request hooks). Verifiers:
//!
//! * [`StoreVerifier`]: in process, on the same store as the authorization server;
//! * [`remote::IntrospectionVerifier`]: against a remote Latchkey through RFC 7662;
//! * [`cache::CachedVerifier`]: either of them behind a short, bounded cache;
//! * [`jwt::JwtVerifier`]: JWT access tokens (RFC 9068) verified locally from the
//!   provider's keys, every other token passed to one of the above.
//!
//! Failures become the RFC 6750 §3 answers through [`GuardError::to_response`]: 401 with a
//! bare `WWW-Authenticate: Bearer realm=...` when no token was sent, 401 `invalid_token`,
//! 403 `insufficient_scope` with the `scope` needed, 400 `invalid_request`.
//!
//! A guard made for one resource ([`Guard::resource`], RFC 8707) accepts only tokens whose
//! audience names it: a token for another resource, or for none, is `invalid_token`. Its
//! challenges then carry `resource_metadata` (RFC 9728 §5.1), the URL of the resource's
//! metadata ([`metadata::ProtectedResource`]), so a client that knows nothing else can find
//! the authorization server.

pub mod cache;
pub mod dpop;
pub mod jwt;
pub mod metadata;
pub mod remote;

use crate::clock::{Clock, UnixTime};
use crate::http::{HttpRequest, HttpResponse};
use crate::net::TrustedProxies;
use crate::scope::ScopeSet;
use crate::secret::Secret;
use crate::store::{StoreError, TokenStore};
use crate::token::{Binding, Confirmation, TokenKind, TokenRecord};
use crate::user::AuthenticatedUser;
use std::future::Future;
use std::sync::Arc;

/// What a valid access token lets its bearer do: handed to the protected handler.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    /// The resource owner, `None` for `client_credentials` tokens.
    pub subject: Option<String>,
    /// The resource owner's user name, when known.
    pub username: Option<String>,
    /// The client the token was issued to.
    pub client_id: String,
    /// The granted scope.
    pub scope: ScopeSet,
    /// When the token expires.
    pub expires_at: UnixTime,
    /// Where the token may be used, when its client binds tokens.
    pub binding: Option<Binding>,
    /// The key the presenter must prove (DPoP, mutual TLS); `None` for a bearer token.
    pub cnf: Option<Confirmation>,
    /// The resources the token is for (RFC 8707; `aud` of a JWT); empty when none was named.
    pub audience: Vec<String>,
    /// Who acts for the subject, for a delegated token (RFC 8693 §4.1 `act`).
    pub actor: Option<Box<crate::token::Actor>>,
}

impl AccessToken {
    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.contains(scope)
    }
}

impl From<&TokenRecord> for AccessToken {
    fn from(r: &TokenRecord) -> Self {
        Self {
            subject: r.subject.clone(),
            username: r.username.clone(),
            client_id: r.client_id.to_string(),
            scope: r.scope.clone(),
            expires_at: r.expires_at,
            binding: r.binding.clone(),
            cnf: r.cnf.clone(),
            audience: r.audience.iter().map(str::to_owned).collect(),
            actor: r.actor.clone(),
        }
    }
}

/// The verdict on a presented token.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // matched once per request, never stored in bulk
pub enum Verified {
    /// The token is active.
    Active(AccessToken),
    /// Unknown, expired, revoked, or not an access token.
    Inactive,
}

/// Decides what a bearer token stands for.
pub trait TokenVerifier: Send + Sync + 'static {
    /// Looks `token` up. `Err` only when the answer could not be had (store or network down).
    fn verify(&self, token: &Secret) -> impl Future<Output = Result<Verified, StoreError>> + Send;

    /// Revokes `token`, when this verifier can (a bound token used from elsewhere). The
    /// default does nothing: a remote resource server cannot revoke another client's token.
    fn revoke(&self, token: &Secret) -> impl Future<Output = Result<(), StoreError>> + Send {
        let _ = token;
        async { Ok(()) }
    }
}

/// Verifies tokens against the store the authorization server writes to.
#[derive(Clone)]
pub struct StoreVerifier<S> {
    store: S,
    clock: Arc<dyn Clock>,
}

impl<S> StoreVerifier<S> {
    /// Verifies against `store` at `clock`'s time.
    pub fn new(store: S, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }
}

impl<S: TokenStore> TokenVerifier for StoreVerifier<S> {
    async fn verify(&self, token: &Secret) -> Result<Verified, StoreError> {
        let now = self.clock.now();
        Ok(match self.store.find_token(&token.digest()).await? {
            Some(r) if r.kind == TokenKind::Access && r.is_active(now) => {
                Verified::Active((&r).into())
            }
            _ => Verified::Inactive,
        })
    }

    async fn revoke(&self, token: &Secret) -> Result<(), StoreError> {
        self.store.revoke_token(&token.digest()).await.map(|_| ())
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GuardError {
    /// No credentials at all (RFC 6750 §3.1: no error code in the challenge).
    Missing,
    /// Malformed credentials: `invalid_request` (400).
    Malformed(&'static str),
    /// The token is not active: `invalid_token` (401).
    InvalidToken,
    /// The token lacks a scope: `insufficient_scope` (403) naming what is needed.
    InsufficientScope(ScopeSet),
    /// The verifier could not answer (503).
    Unavailable,
    /// A hook refused the request with its own response.
    Refused(HttpResponse),
    /// A DPoP refusal (RFC 9449 §7.1): 401 with a `WWW-Authenticate: DPoP` challenge naming
    /// `error` (`invalid_token`, `invalid_dpop_proof`, `use_dpop_nonce`) and the accepted
    /// `algs`, and `DPoP-Nonce` when a nonce is needed.
    Dpop {
        /// The RFC error code.
        error: &'static str,
        /// Safe words for the client.
        description: &'static str,
        /// The accepted proof algorithms, space separated.
        algs: String,
        /// The nonce the next proof must carry.
        nonce: Option<String>,
    },
}

/// What a guard's `WWW-Authenticate` challenges name: the realm (RFC 6750 §3) and, for a
/// guard of one resource, the URL of its metadata (RFC 9728 §5.1 `resource_metadata`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Challenge {
    /// The realm.
    pub realm: String,
    /// The resource's metadata URL, when the guard has one.
    pub resource_metadata: Option<String>,
}

impl GuardError {
    /// The RFC 6750 §3 response, with `realm` in the challenge.
    pub fn to_response(&self, realm: &str) -> HttpResponse {
        self.challenged(&Challenge {
            realm: realm.to_owned(),
            resource_metadata: None,
        })
    }

    /// The RFC 6750 §3 response with `challenge`'s realm and, when set, its
    /// `resource_metadata` (RFC 9728 §5.1) in every challenge.
    pub fn challenged(&self, challenge: &Challenge) -> HttpResponse {
        let realm = challenge.realm.replace(['"', '\\'], "");
        let metadata = challenge
            .resource_metadata
            .as_deref()
            .map(|url| format!(", resource_metadata=\"{}\"", url.replace(['"', '\\'], "")))
            .unwrap_or_default();
        let challenge = |extra: &str| format!("Bearer realm=\"{realm}\"{metadata}{extra}");
        let (status, www, body) = match self {
            Self::Refused(response) => return response.clone(),
            Self::Dpop {
                error,
                description,
                algs,
                nonce,
            } => {
                let mut response = HttpResponse::json(
                    401,
                    &serde_json::json!({ "error": error, "error_description": description }),
                )
                .with_header(
                    "www-authenticate",
                    format!(
                        "DPoP realm=\"{realm}\", error=\"{error}\", error_description=\"{description}\", algs=\"{algs}\""
                    ),
                )
                .with_header("cache-control", "no-store");
                if let Some(nonce) = nonce {
                    response = response.with_header("dpop-nonce", nonce.as_str());
                }
                return response;
            }
            Self::Missing => (401, challenge(""), None),
            Self::Malformed(why) => (
                400,
                challenge(&format!(
                    ", error=\"invalid_request\", error_description=\"{why}\""
                )),
                Some(("invalid_request", *why)),
            ),
            Self::InvalidToken => (
                401,
                challenge(
                    ", error=\"invalid_token\", error_description=\"the access token is invalid, expired or revoked\"",
                ),
                Some((
                    "invalid_token",
                    "the access token is invalid, expired or revoked",
                )),
            ),
            Self::InsufficientScope(needed) => (
                403,
                challenge(&format!(
                    ", error=\"insufficient_scope\", scope=\"{needed}\""
                )),
                Some((
                    "insufficient_scope",
                    "the access token lacks a required scope",
                )),
            ),
            Self::Unavailable => (
                503,
                challenge(""),
                Some(("temporarily_unavailable", "try again later")),
            ),
        };
        let mut response = match body {
            Some((error, description)) => HttpResponse::json(
                status,
                &serde_json::json!({ "error": error, "error_description": description }),
            ),
            None => HttpResponse {
                status,
                headers: Vec::new(),
                body: Vec::new(),
            },
        };
        response.headers.push(("www-authenticate".into(), www));
        response
            .headers
            .push(("cache-control".into(), "no-store".into()));
        response
    }
}

/// The embedder's say before and after token checking (Flask-OAuthlib's
/// `before_request`/`after_request`): refuse a client over its quota, veto a blocked user.
pub trait GuardHooks: Send + Sync + 'static {
    /// Runs before the token is looked at; `Err` answers the request with that response.
    fn before(&self, req: &HttpRequest) -> impl Future<Output = Result<(), HttpResponse>> + Send {
        let _ = req;
        async { Ok(()) }
    }

    /// Runs once the token is valid and scoped; `Err` answers the request with that response.
    fn after(
        &self,
        req: &HttpRequest,
        token: &AccessToken,
    ) -> impl Future<Output = Result<(), HttpResponse>> + Send {
        let _ = (req, token);
        async { Ok(()) }
    }
}

/// No hooks.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;
impl GuardHooks for NoHooks {}

/// Who made a request that may carry either the application's session or a bearer token
/// (pyramid_oauth2_provider's `OauthTktAuthenticationPolicy`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A user logged in to the application itself.
    User(AuthenticatedUser),
    /// A client presenting an access token.
    Token(AccessToken),
}

/// How the application recognises its own logged-in users.
pub trait SessionAuth: Send + Sync + 'static {
    /// The user of `req`'s session, if any.
    fn session_user(
        &self,
        req: &HttpRequest,
    ) -> impl Future<Output = Option<AuthenticatedUser>> + Send;
}

/// Checks bearer tokens on protected requests.
#[derive(Clone)]
pub struct Guard<V, H = NoHooks> {
    verifier: Arc<V>,
    hooks: Arc<H>,
    challenge: Arc<Challenge>,
    resource: Option<Arc<str>>,
    proxies: Arc<TrustedProxies>,
    dpop: Option<Arc<dpop::DpopGuard>>,
}

impl<V: TokenVerifier> Guard<V, NoHooks> {
    /// A guard for `realm` (named in `WWW-Authenticate` challenges) using `verifier`.
    pub fn new(verifier: V, realm: impl Into<String>) -> Self {
        Self {
            verifier: Arc::new(verifier),
            hooks: Arc::new(NoHooks),
            challenge: Arc::new(Challenge {
                realm: realm.into(),
                resource_metadata: None,
            }),
            resource: None,
            proxies: Arc::new(TrustedProxies::default()),
            dpop: None,
        }
    }
}

impl<V: TokenVerifier, H: GuardHooks> Guard<V, H> {
    /// The same guard with `hooks`.
    pub fn with_hooks<H2: GuardHooks>(self, hooks: H2) -> Guard<V, H2> {
        Guard {
            verifier: self.verifier,
            hooks: Arc::new(hooks),
            challenge: self.challenge,
            resource: self.resource,
            proxies: self.proxies,
            dpop: self.dpop,
        }
    }

    /// Accepts only tokens for `resource` (RFC 8707: their audience names it); a token for
    /// another resource, or for none, is `invalid_token`. Challenges then carry the
    /// resource's RFC 9728 metadata URL (see [`metadata::ProtectedResource::metadata_url`]),
    /// unless [`Guard::resource_metadata`] names another.
    pub fn resource(mut self, resource: &metadata::ProtectedResource) -> Self {
        self.resource = Some(resource.resource().into());
        Arc::make_mut(&mut self.challenge).resource_metadata = Some(resource.metadata_url());
        self
    }

    /// The `resource_metadata` URL of the challenges (RFC 9728 §5.1), when the metadata is
    /// served somewhere else than [`Guard::resource`] derives.
    pub fn resource_metadata(mut self, url: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.challenge).resource_metadata = Some(url.into());
        self
    }

    /// What the challenges name.
    pub fn challenge(&self) -> &Challenge {
        &self.challenge
    }

    /// The RFC 6750 answer to `err`, with this guard's challenge.
    pub fn respond(&self, err: &GuardError) -> HttpResponse {
        err.challenged(&self.challenge)
    }

    /// Accepts DPoP-bound tokens (RFC 9449 §7) with proofs checked by `dpop`. Without it,
    /// a DPoP-bound token is refused: its key could not be checked.
    pub fn with_dpop(mut self, dpop: dpop::DpopGuard) -> Self {
        self.dpop = Some(Arc::new(dpop));
        self
    }

    /// Believes forwarding headers from these proxies when checking token bindings.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.proxies = Arc::new(proxies);
        self
    }

    /// The realm named in challenges.
    pub fn realm(&self) -> &str {
        &self.challenge.realm
    }

    /// Authenticates `req` by its bearer token and checks that it carries every scope in
    /// `required`.
    pub async fn authenticate(
        &self,
        req: &HttpRequest,
        required: &ScopeSet,
    ) -> Result<AccessToken, GuardError> {
        self.hooks.before(req).await.map_err(GuardError::Refused)?;
        let (scheme, token) = presented_token(req)?.ok_or(GuardError::Missing)?;
        self.check(req, scheme, &token, required).await
    }

    /// Accepts the application's session or, when an `Authorization` header is sent, a bearer
    /// token (which then must be valid: a bad token is not excused by a session). Scopes
    /// apply to tokens only; a session user acts with the application's own rights.
    pub async fn authenticate_either<A: SessionAuth>(
        &self,
        req: &HttpRequest,
        session: &A,
        required: &ScopeSet,
    ) -> Result<Principal, GuardError> {
        self.hooks.before(req).await.map_err(GuardError::Refused)?;
        if let Some((scheme, token)) = presented_token(req)? {
            return self
                .check(req, scheme, &token, required)
                .await
                .map(Principal::Token);
        }
        session
            .session_user(req)
            .await
            .map(Principal::User)
            .ok_or(GuardError::Missing)
    }

    async fn check(
        &self,
        req: &HttpRequest,
        scheme: dpop::Scheme,
        token: &Secret,
        required: &ScopeSet,
    ) -> Result<AccessToken, GuardError> {
        let verified = self.verifier.verify(token).await.map_err(|err| {
            tracing::error!(error = %err, "bearer token check failed");
            GuardError::Unavailable
        })?;
        let Verified::Active(access) = verified else {
            return Err(GuardError::InvalidToken);
        };
        // basic_oauth: a bound token used from another User-Agent or address is revoked.
        if let Some(bound) = &access.binding
            && *bound != Binding::of(req, &self.proxies)
        {
            tracing::warn!(client_id = %access.client_id, "bound token used from elsewhere; revoked");
            if let Err(err) = self.verifier.revoke(token).await {
                tracing::error!(error = %err, "revoking a misused bound token failed");
            }
            return Err(GuardError::InvalidToken);
        }
        // RFC 8705 §3: a certificate-bound token comes with its certificate.
        if !crate::mtls::confirm_presenter(access.cnf.as_ref(), req) {
            tracing::info!(client_id = %access.client_id, "certificate-bound token without its certificate");
            return Err(GuardError::InvalidToken);
        }
        // RFC 8707 §2 and RFC 9068 §4: a guard of one resource accepts only tokens issued
        // for it; RFC 6750 §3.1 calls anything else `invalid_token`.
        if let Some(resource) = &self.resource
            && !access.audience.iter().any(|a| **a == **resource)
        {
            tracing::debug!(client_id = %access.client_id, "token for another resource refused");
            return Err(GuardError::InvalidToken);
        }
        // RFC 9449 §7: the proof of possession, in one place (see [`dpop`]).
        match &self.dpop {
            Some(guard) => {
                guard
                    .confirm(req, scheme, token, access.cnf.as_ref())
                    .await?
            }
            None if scheme == dpop::Scheme::Dpop
                || access.cnf.as_ref().and_then(Confirmation::jkt).is_some() =>
            {
                return Err(GuardError::InvalidToken);
            }
            None => {}
        }
        if !required.is_subset(&access.scope) {
            return Err(GuardError::InsufficientScope(required.clone()));
        }
        self.hooks
            .after(req, &access)
            .await
            .map_err(GuardError::Refused)?;
        Ok(access)
    }
}

/// The bearer token of `req` (RFC 6750 §2.1), `None` when there is no `Authorization` header.
pub fn bearer_token(req: &HttpRequest) -> Result<Option<Secret>, GuardError> {
    Ok(presented_token(req)?
        .filter(|(scheme, _)| *scheme == dpop::Scheme::Bearer)
        .map(|(_, token)| token))
}

/// The access token of `req`'s `Authorization` header with its scheme: `Bearer` (RFC 6750
/// §2.1) or `DPoP` (RFC 9449 §7.1); `None` without the header or with another scheme.
pub fn presented_token(req: &HttpRequest) -> Result<Option<(dpop::Scheme, Secret)>, GuardError> {
    if req.header_count("authorization") > 1 {
        return Err(GuardError::Malformed("repeated Authorization header"));
    }
    let Some(header) = req.header("authorization") else {
        return Ok(None);
    };
    let Some((scheme, token)) = header.trim().split_once(' ') else {
        return Err(GuardError::Malformed("malformed Authorization header"));
    };
    let scheme = if scheme.eq_ignore_ascii_case("bearer") {
        dpop::Scheme::Bearer
    } else if scheme.eq_ignore_ascii_case("dpop") {
        dpop::Scheme::Dpop
    } else {
        // Another scheme (e.g. Basic) carries no access token: treat as none sent.
        return Ok(None);
    };
    let token = token.trim();
    // RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    let body = token.trim_end_matches('=');
    let valid = !body.is_empty()
        && token.len() <= 4096
        && body.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/')
        });
    if !valid {
        return Err(GuardError::Malformed("malformed bearer token"));
    }
    Ok(Some((scheme, Secret::new(token))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    fn with_auth(value: &str) -> HttpRequest {
        HttpRequest::new(Method::Get, "/api").with_header("authorization", value)
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token(&HttpRequest::new(Method::Get, "/")), Ok(None));
        let t = bearer_token(&with_auth("bearer abc-DEF_1.2~3+/==")).expect("valid");
        assert_eq!(
            t.map(|s| s.expose().to_owned()).as_deref(),
            Some("abc-DEF_1.2~3+/==")
        );
        assert_eq!(bearer_token(&with_auth("Basic dXNlcjpwdw==")), Ok(None));
        for bad in ["Bearer", "Bearer a b", "Bearer a\"b", "Bearer ="] {
            assert!(
                matches!(bearer_token(&with_auth(bad)), Err(GuardError::Malformed(_))),
                "{bad}"
            );
        }
        let twice = with_auth("Bearer a").with_header("authorization", "Bearer b");
        assert!(matches!(
            bearer_token(&twice),
            Err(GuardError::Malformed(_))
        ));
    }

    #[test]
    fn challenges_follow_rfc6750() {
        let missing = GuardError::Missing.to_response("api");
        assert_eq!(
            (missing.status, missing.header("www-authenticate")),
            (401, Some("Bearer realm=\"api\""))
        );
        let invalid = GuardError::InvalidToken.to_response("api");
        assert_eq!(invalid.status, 401);
        assert!(
            invalid
                .header("www-authenticate")
                .is_some_and(|h| h.contains("error=\"invalid_token\""))
        );
        let scope = GuardError::InsufficientScope(ScopeSet::parse("read write").expect("valid"))
            .to_response("api");
        assert_eq!(scope.status, 403);
        assert!(
            scope
                .header("www-authenticate")
                .is_some_and(|h| h.contains("scope=\"read write\""))
        );
        assert_eq!(GuardError::Malformed("x").to_response("api").status, 400);
    }
}
