//! The framework-neutral half of the adapters' bearer guards (RFC 6750), with OAuth 1.0a
//! signed requests (RFC 5849) accepted beside bearer tokens when asked.

use latchkey_core::http::{HeaderError, HttpRequest, HttpResponse};
use latchkey_core::resource::{
    AccessToken, Challenge, Guard, GuardError, GuardHooks, TokenVerifier,
};
use latchkey_core::scope::ScopeSet;
use latchkey_core::store::ClientStore;
use latchkey_oauth1::{OAuth1Error, OAuth1Provider, OAuth1Store};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

type CheckFuture<E> = Pin<Box<dyn Future<Output = Result<AccessToken, E>> + Send>>;
type CheckFn<E> = dyn Fn(HttpRequest, ScopeSet) -> CheckFuture<E> + Send + Sync;

/// A core [`Guard`] with its verifier and hooks erased, cheap to clone, plus an optional
/// [`OAuth1Guard`]: what an adapter's `BearerGuard` keeps in its framework's state. Its
/// refusals are the core's [`HttpResponse`]s, which the adapter converts like any other.
#[derive(Clone)]
pub struct ResourceGuard {
    check: Arc<CheckFn<GuardError>>,
    challenge: Arc<Challenge>,
    oauth1: Option<OAuth1Guard>,
}

impl ResourceGuard {
    /// Wraps a core guard.
    pub fn new<V: TokenVerifier, H: GuardHooks>(guard: Guard<V, H>) -> Self {
        let challenge = Arc::new(guard.challenge().clone());
        let guard = Arc::new(guard);
        Self {
            check: Arc::new(move |req, scopes| {
                let guard = Arc::clone(&guard);
                Box::pin(async move { guard.authenticate(&req, &scopes).await })
            }),
            challenge,
            oauth1: None,
        }
    }

    /// Also accepts requests signed with OAuth 1.0a (an `Authorization: OAuth` header or an
    /// `oauth_signature` parameter), checked by `oauth1`; required scopes are required realms.
    pub fn with_oauth1(mut self, oauth1: OAuth1Guard) -> Self {
        self.oauth1 = Some(oauth1);
        self
    }

    /// The realm of the RFC 6750 challenge.
    pub fn realm(&self) -> &str {
        &self.challenge.realm
    }

    /// Checks `req` (its head, with the body when [`Self::needs_body`] said so), requiring
    /// `scopes`. A refusal is the RFC 6750 answer or, for a request that carries OAuth 1.0a
    /// credentials, the OAuth Problem Reporting one.
    pub async fn check(
        &self,
        req: HttpRequest,
        scopes: &ScopeSet,
    ) -> Result<AccessToken, HttpResponse> {
        if let Some(oauth1) = &self.oauth1
            && latchkey_oauth1::request::carries_oauth1(&req)
        {
            return oauth1.check(req, scopes).await;
        }
        (self.check)(req, scopes.clone())
            .await
            .map_err(|err| err.challenged(&self.challenge))
    }

    /// The answer to a request whose headers the core refuses (see
    /// [`latchkey_core::http::collect_headers`]): RFC 6750 `invalid_request`.
    pub fn malformed(&self, err: HeaderError) -> HttpResponse {
        GuardError::Malformed(err.description()).challenged(&self.challenge)
    }

    /// The scopes a route requires, from a space-delimited scope string written in the
    /// application's code.
    ///
    /// # Panics
    /// If `scopes` is not a valid scope string: that is a programming error, caught at start-up.
    pub fn required_scopes(scopes: &str) -> ScopeSet {
        ScopeSet::parse(scopes).unwrap_or_else(|e| panic!("invalid scope {scopes:?}: {e}"))
    }

    /// Whether checking a request with this `method` and `Content-Type` needs its body: an
    /// OAuth 1.0a signature covers the parameters of a form body (RFC 5849 §3.4.1.3.1). A
    /// bearer check never reads the body.
    pub fn needs_body(&self, method: &str, content_type: Option<&str>) -> bool {
        self.oauth1.is_some()
            && !matches!(method, "GET" | "HEAD")
            && content_type.is_some_and(|ct| {
                ct.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
                })
            })
    }
}

impl std::fmt::Debug for ResourceGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceGuard")
            .field("challenge", &self.challenge)
            .field("oauth1", &self.oauth1.is_some())
            .finish()
    }
}

/// A type-erased OAuth 1.0a resource check, cheap to clone.
#[derive(Clone)]
pub struct OAuth1Guard {
    check: Arc<CheckFn<OAuth1Error>>,
    realm: Arc<str>,
}

impl OAuth1Guard {
    /// Checks signed requests against `provider`'s tokens and consumers.
    pub fn new<O: ClientStore + OAuth1Store>(provider: OAuth1Provider<O>) -> Self {
        let realm: Arc<str> = provider.config().challenge_realm.as_str().into();
        Self {
            check: Arc::new(move |req, realms| {
                let provider = provider.clone();
                Box::pin(async move { provider.verify(&req, &realms).await })
            }),
            realm,
        }
    }

    /// Checks `req`, requiring `realms`; a refusal is the OAuth Problem Reporting answer
    /// (401 with `WWW-Authenticate: OAuth realm=..., oauth_problem=...`).
    pub async fn check(
        &self,
        req: HttpRequest,
        realms: &ScopeSet,
    ) -> Result<AccessToken, HttpResponse> {
        (self.check)(req, realms.clone())
            .await
            .map_err(|err| err.to_response(&self.realm))
    }
}

impl std::fmt::Debug for OAuth1Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth1Guard")
            .field("realm", &self.realm)
            .finish()
    }
}
