//! Bearer-token protection for axum routes (RFC 6750).
//!
//! * [`Authenticated`]: an extractor that yields the request's [`AccessToken`] (or answers
//!   with the RFC 6750 challenge), for handlers that need the token's subject and scopes.
//! * [`RequireScopesLayer`]: a `tower::Layer` that refuses requests without a valid token
//!   carrying the given scopes, for whole routers; handlers behind it extract the checked
//!   token with [`Authenticated`] at no extra cost.
//!
//! Both use a [`BearerGuard`] from the application state (`FromRef`), which wraps any core
//! [`Guard`]: in-process on the same store, or remote through cached introspection. With
//! [`BearerGuard::with_oauth1`], requests signed with OAuth 1.0a are accepted too (realms
//! standing for scopes), refused with the OAuth Problem Reporting answers.

use crate::Reply;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use latchkey_adapter::ResourceGuard;
use latchkey_core::http::{HeaderError, HttpRequest, Method, collect_headers};
use latchkey_core::resource::{AccessToken, Guard, GuardHooks, TokenVerifier};
use latchkey_core::scope::ScopeSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

/// A type-erased [`Guard`], cheap to clone, to keep in axum state: the shared
/// [`ResourceGuard`] with axum's extraction and replies around it.
#[derive(Clone, Debug)]
pub struct BearerGuard {
    inner: ResourceGuard,
}

impl BearerGuard {
    /// Wraps a core guard.
    pub fn new<V: TokenVerifier, H: GuardHooks>(guard: Guard<V, H>) -> Self {
        Self {
            inner: ResourceGuard::new(guard),
        }
    }

    /// Also accepts requests signed with OAuth 1.0a (an `Authorization: OAuth` header or an
    /// `oauth_signature` parameter), checked by `oauth1`; required scopes are required realms.
    pub fn with_oauth1(self, oauth1: crate::OAuth1Guard) -> Self {
        Self {
            inner: self.inner.with_oauth1(oauth1),
        }
    }

    /// Checks the request described by `parts`, requiring `scopes`.
    pub async fn check(&self, parts: &Parts, scopes: &ScopeSet) -> Result<AccessToken, Response> {
        let req =
            head_request(parts).map_err(|err| Reply(self.inner.malformed(err)).into_response())?;
        self.check_request(req, scopes).await
    }

    /// Checks `req` (the head of `parts`, with the body when it was read).
    async fn check_request(
        &self,
        req: HttpRequest,
        scopes: &ScopeSet,
    ) -> Result<AccessToken, Response> {
        self.inner
            .check(req, scopes)
            .await
            .map_err(|refusal| Reply(refusal).into_response())
    }

    /// Whether checking a request with these parts needs its body (see
    /// [`ResourceGuard::needs_body`]).
    fn needs_body(&self, parts: &Parts) -> bool {
        let content_type = parts
            .headers
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        self.inner.needs_body(parts.method.as_str(), content_type)
    }

    /// A layer requiring a valid token with every scope in `scopes` (space-delimited).
    ///
    /// # Panics
    /// If `scopes` is not a valid scope string: that is a programming error, caught at start-up.
    pub fn require(&self, scopes: &str) -> RequireScopesLayer {
        let scopes = ResourceGuard::required_scopes(scopes);
        RequireScopesLayer {
            guard: self.clone(),
            scopes,
        }
    }
}

/// The request's head as the core sees it: no body is read to check a bearer token. Headers
/// the core refuses (see [`collect_headers`]) are a malformed request.
fn head_request(parts: &Parts) -> Result<HttpRequest, HeaderError> {
    let headers = collect_headers(
        parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
    )?;
    let (tls, transport_allowed) = crate::transport(&parts.extensions);
    Ok(HttpRequest {
        method: Method::parse(parts.method.as_str()),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers,
        body: Vec::new(),
        peer: parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0),
        tls,
        transport_allowed,
        client_cert: crate::client_cert(&parts.extensions),
    })
}

/// The access token of an authenticated request.
///
/// Behind a [`RequireScopesLayer`] it is the token the layer checked; elsewhere the
/// extractor checks the token itself (no scope required) with the state's [`BearerGuard`].
#[derive(Clone, Debug)]
pub struct Authenticated(pub AccessToken);

impl<S> FromRequestParts<S> for Authenticated
where
    BearerGuard: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(token) = parts.extensions.get::<AccessToken>() {
            return Ok(Self(token.clone()));
        }
        let guard = BearerGuard::from_ref(state);
        guard.check(parts, &ScopeSet::empty()).await.map(Self)
    }
}

/// A layer that lets through only requests with a valid token carrying the scopes.
#[derive(Clone, Debug)]
pub struct RequireScopesLayer {
    guard: BearerGuard,
    scopes: ScopeSet,
}

impl<Svc> tower::Layer<Svc> for RequireScopesLayer {
    type Service = RequireScopes<Svc>;

    fn layer(&self, inner: Svc) -> Self::Service {
        RequireScopes {
            inner,
            guard: self.guard.clone(),
            scopes: self.scopes.clone(),
        }
    }
}

/// The service of [`RequireScopesLayer`].
#[derive(Clone, Debug)]
pub struct RequireScopes<Svc> {
    inner: Svc,
    guard: BearerGuard,
    scopes: ScopeSet,
}

impl<Svc> tower::Service<Request> for RequireScopes<Svc>
where
    Svc: tower::Service<Request, Response = Response> + Clone + Send + 'static,
    Svc::Future: Send + 'static,
{
    type Response = Response;
    type Error = Svc::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Svc::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        // The clone that was polled ready serves this call; a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        let scopes = self.scopes.clone();
        Box::pin(async move {
            let (mut parts, body) = req.into_parts();
            let (checked, body) = if guard.needs_body(&parts) {
                // Read (bounded) so the signature can cover the form, then hand it on.
                let bytes = match crate::read_body(body).await {
                    Ok(bytes) => bytes,
                    Err(status) => {
                        return Ok(Reply(
                            latchkey_core::error::OAuthError::invalid_request(
                                "request body is too large or unreadable",
                            )
                            .with_status(status)
                            .to_response(None),
                        )
                        .into_response());
                    }
                };
                let mut head = match head_request(&parts) {
                    Ok(head) => head,
                    Err(err) => return Ok(Reply(guard.inner.malformed(err)).into_response()),
                };
                head.body = bytes.clone();
                (
                    guard.check_request(head, &scopes).await,
                    axum::body::Body::from(bytes),
                )
            } else {
                (guard.check(&parts, &scopes).await, body)
            };
            match checked {
                Ok(token) => {
                    parts.extensions.insert(token);
                    inner.call(Request::from_parts(parts, body)).await
                }
                Err(refusal) => Ok(refusal),
            }
        })
    }
}
