//! Bearer-token protection for actix-web routes (RFC 6750).
//!
//! * [`Authenticated`]: an extractor that yields the request's [`AccessToken`] (or answers
//!   with the RFC 6750 challenge), for handlers that need the token's subject and scopes.
//! * [`RequireScopes`]: a middleware (`.wrap(guard.require("read"))` on a resource or
//!   scope) that refuses requests without a valid token carrying the given scopes; handlers
//!   behind it extract the checked token with [`Authenticated`] at no extra cost.
//!
//! Both use a [`BearerGuard`], which wraps any core [`Guard`]: in-process on the same store,
//! or remote through cached introspection. The extractor finds it in the application data
//! as `web::Data<BearerGuard>`; the middleware carries its own. Only the request head is
//! read: a bearer check never consumes the body.
//!
//! With [`BearerGuard::with_oauth1`], requests signed with OAuth 1.0a (RFC 5849) are accepted
//! too, realms standing for scopes, and refused with the OAuth Problem Reporting answers
//! (`WWW-Authenticate: OAuth realm=..., oauth_problem=...`). The middleware reads a form body
//! (bounded) for such requests, since the signature covers it, and hands it on.

use crate::{Reply, head_request, rejection};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::{FromRequest, HttpMessage, web};
use latchkey_adapter::{OAuth1Guard, ResourceGuard};
use latchkey_core::error::OAuthError;
use latchkey_core::http::HttpRequest;
use latchkey_core::resource::{AccessToken, Guard, GuardHooks, TokenVerifier};
use latchkey_core::scope::ScopeSet;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;

/// The most body bytes read to check an OAuth 1.0a signature over a form.
const MAX_SIGNED_FORM: usize = latchkey_core::params::MAX_FORM_BYTES;

/// A type-erased [`Guard`], cheap to clone, to keep as `web::Data<BearerGuard>`: the shared
/// [`ResourceGuard`] with actix's extraction and replies around it.
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

    /// Also accepts requests signed with OAuth 1.0a, checked by `provider` (the request URL
    /// is the provider's `base_url` plus the request path); required scopes are required
    /// realms.
    pub fn with_oauth1<O>(self, provider: latchkey_oauth1::OAuth1Provider<O>) -> Self
    where
        O: latchkey_core::store::ClientStore + latchkey_oauth1::OAuth1Store,
    {
        Self {
            inner: self.inner.with_oauth1(OAuth1Guard::new(provider)),
        }
    }

    /// Checks the head of `req`, requiring `scopes`; a refusal is the RFC 6750 answer (or,
    /// for an OAuth 1.0a request, the OAuth Problem Reporting one).
    pub async fn check(
        &self,
        req: &actix_web::HttpRequest,
        scopes: &ScopeSet,
    ) -> Result<AccessToken, actix_web::HttpResponse> {
        let head =
            head_request(req).map_err(|err| Reply(self.inner.malformed(err)).into_actix())?;
        self.check_request(head, scopes).await
    }

    async fn check_request(
        &self,
        req: HttpRequest,
        scopes: &ScopeSet,
    ) -> Result<AccessToken, actix_web::HttpResponse> {
        self.inner
            .check(req, scopes)
            .await
            .map_err(|refusal| Reply(refusal).into_actix())
    }

    /// Whether checking `req` needs its body (see [`ResourceGuard::needs_body`]).
    fn needs_body(&self, req: &actix_web::HttpRequest) -> bool {
        let content_type = req
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        self.inner.needs_body(req.method().as_str(), content_type)
    }

    /// A middleware requiring a valid token with every scope in `scopes` (space-delimited).
    ///
    /// # Panics
    /// If `scopes` is not a valid scope string: that is a programming error, caught at start-up.
    pub fn require(&self, scopes: &str) -> RequireScopes {
        let scopes = ResourceGuard::required_scopes(scopes);
        RequireScopes {
            guard: self.clone(),
            scopes,
        }
    }
}

/// The access token of an authenticated request.
///
/// Behind a [`RequireScopes`] middleware it is the token the middleware checked; elsewhere
/// the extractor checks the token itself (no scope required) with the application's
/// `web::Data<BearerGuard>`.
#[derive(Clone, Debug)]
pub struct Authenticated(pub AccessToken);

impl FromRequest for Authenticated {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &actix_web::HttpRequest, _payload: &mut Payload) -> Self::Future {
        if let Some(token) = req.extensions().get::<AccessToken>() {
            let token = token.clone();
            return Box::pin(ready(Ok(Self(token))));
        }
        let Some(guard) = req.app_data::<web::Data<BearerGuard>>().cloned() else {
            // A wiring mistake, not the client's: the application forgot the guard.
            return Box::pin(ready(Err(rejection(
                OAuthError::server_error()
                    .with_detail("no web::Data<BearerGuard> in the application data")
                    .to_response(None),
            ))));
        };
        let req = req.clone();
        Box::pin(async move {
            match guard.check(&req, &ScopeSet::empty()).await {
                Ok(token) => Ok(Self(token)),
                Err(refusal) => Err(actix_web::error::InternalError::from_response(
                    "bearer token refused",
                    refusal,
                )
                .into()),
            }
        })
    }
}

/// A middleware that lets through only requests with a valid token carrying the scopes,
/// made by [`BearerGuard::require`].
#[derive(Clone, Debug)]
pub struct RequireScopes {
    guard: BearerGuard,
    scopes: ScopeSet,
}

impl<Svc, B> Transform<Svc, ServiceRequest> for RequireScopes
where
    Svc: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = RequireScopesMiddleware<Svc>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: Svc) -> Self::Future {
        ready(Ok(RequireScopesMiddleware {
            service: Rc::new(service),
            guard: self.guard.clone(),
            scopes: self.scopes.clone(),
        }))
    }
}

/// The service of [`RequireScopes`], wrapping the protected service.
#[derive(Debug)]
pub struct RequireScopesMiddleware<Svc> {
    service: Rc<Svc>,
    guard: BearerGuard,
    scopes: ScopeSet,
}

impl<Svc, B> Service<ServiceRequest> for RequireScopesMiddleware<Svc>
where
    Svc: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let guard = self.guard.clone();
        let scopes = self.scopes.clone();
        Box::pin(async move {
            let mut req = req;
            let checked = if guard.needs_body(req.request()) {
                // Read (bounded) so the signature can cover the form, then hand it on.
                let bytes = match req.extract::<web::Bytes>().await {
                    Ok(bytes) if bytes.len() <= MAX_SIGNED_FORM => bytes,
                    _ => {
                        let refusal = Reply(
                            OAuthError::invalid_request("request body is too large or unreadable")
                                .with_status(413)
                                .to_response(None),
                        )
                        .into_actix();
                        return Ok(req.into_response(refusal).map_into_right_body());
                    }
                };
                let mut head = match head_request(req.request()) {
                    Ok(head) => head,
                    Err(err) => {
                        let refusal = Reply(guard.inner.malformed(err)).into_actix();
                        return Ok(req.into_response(refusal).map_into_right_body());
                    }
                };
                head.body = bytes.to_vec();
                req.set_payload(actix_web::dev::Payload::from(bytes));
                guard.check_request(head, &scopes).await
            } else {
                guard.check(req.request(), &scopes).await
            };
            match checked {
                Ok(token) => {
                    req.extensions_mut().insert(token);
                    service
                        .call(req)
                        .await
                        .map(ServiceResponse::map_into_left_body)
                }
                Err(refusal) => Ok(req.into_response(refusal).map_into_right_body()),
            }
        })
    }
}
