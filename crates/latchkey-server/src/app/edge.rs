//! The layers around every request of the main listener, as two hand-written services with
//! unboxed futures: [`App`] gives the request its id and writes the access line, and
//! [`Guarded`] does everything between that line and the endpoint (panic capture, sensitive
//! headers, the request's span, the id echoed back, the transport rule, metrics,
//! client-document resolution, CORS on the paths browsers call) before the one router.
//!
//! The same work as a stack of `tower-http` layers and axum `from_fn` middleware costs a
//! boxed future per `from_fn`, a boxed response body per panic catcher, and (with CORS) a
//! second router inside the first; BENCHMARKS.md has the instruction counts.
//!
//! From the outside in, a request meets:
//! 1. its request id: a short, printable incoming `x-request-id` is kept, else a random one
//!    is set, so that every access line has one ([`super::middleware::set_request_id`]);
//! 2. the access line (`log.access`), outside the panic capture so that the line of a
//!    request whose handler panicked is written too ([`crate::access_log`]);
//! 3. the panic capture: a panic while handling is answered 500, never a dropped connection;
//! 4. `Authorization` and `Cookie` marked sensitive, so that no debug output shows them;
//! 5. the request's span ([`super::middleware::request_span`]), a 5xx logged in it;
//! 6. the request id copied to the response when the response has none;
//! 7. the transport rule ([`crate::tls::admit`]): a refusal is answered here;
//! 8. the request counted and timed ([`crate::metrics::Tracked`]), when metrics are on;
//! 9. the `client_id` document resolved at `/authorize` and `/token`, when that is on
//!    ([`crate::client_documents::check`]);
//! 10. CORS on the paths browsers call ([`cors_path`]), when origins are configured;
//! 11. the router.

use super::middleware::{X_REQUEST_ID, log_server_error, request_span, set_request_id};
use crate::access_log::{AccessLog, AccessLogFuture, AccessLogLayer};
use crate::client_documents::ClientDocuments;
use crate::metrics::Tracked;
use crate::tls::Transport;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use axum::routing::future::RouteFuture;
use std::any::Any;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::{Layer as _, Service};
use tower_http::cors::{Cors, CorsLayer};

/// What the layers need from the settings, and the router they surround.
#[derive(Debug)]
pub(super) struct Parts {
    /// The transport rule.
    pub transport: Arc<Transport>,
    /// Requests are counted and timed.
    pub metrics: bool,
    /// Client ids that are metadata document URLs are resolved.
    pub client_documents: Option<Arc<ClientDocuments>>,
    /// The access line, when `log.access` is on.
    pub access_log: Option<AccessLogLayer>,
    /// The CORS policy of the paths browsers call, when origins are configured.
    pub cors: Option<CorsLayer>,
    /// Every route of the listener.
    pub router: Router,
}

/// The main listener's application: the router with every layer around it (the module's
/// list). It is what `latchkey serve` runs; [`super::app_with_oauth1`] and its siblings hand
/// it out inside a `Router` for embedders and tests that merge routes beside it.
#[derive(Clone, Debug)]
pub struct App {
    inner: Outer,
}

/// [`App`] with or without the access line.
#[derive(Clone, Debug)]
enum Outer {
    Logged(AccessLog<Guarded>),
    Quiet(Guarded),
}

impl App {
    /// The router of `parts` with the layers around it.
    pub(super) fn new(parts: Parts) -> Self {
        let Parts {
            transport,
            metrics,
            client_documents,
            access_log,
            cors,
            router,
        } = parts;
        let guarded = Guarded {
            shared: Arc::new(Shared {
                transport,
                metrics,
                client_documents,
                cors: cors.map(|layer| layer.layer(router.clone())),
                router,
            }),
        };
        let inner = match access_log {
            Some(layer) => Outer::Logged(layer.layer(guarded)),
            None => Outer::Quiet(guarded),
        };
        Self { inner }
    }
}

impl Service<Request<Body>> for App {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = AppFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        match &mut self.inner {
            Outer::Logged(inner) => inner.poll_ready(cx),
            Outer::Quiet(inner) => inner.poll_ready(cx),
        }
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        set_request_id(req.headers_mut());
        match &mut self.inner {
            Outer::Logged(inner) => AppFuture::Logged {
                inner: inner.call(req),
            },
            Outer::Quiet(inner) => AppFuture::Quiet {
                inner: inner.call(req),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`App`].
    #[project = AppFutureProj]
    pub enum AppFuture {
        /// With the access line.
        Logged { #[pin] inner: AccessLogFuture<GuardedFuture> },
        /// Without it.
        Quiet { #[pin] inner: GuardedFuture },
    }
}

impl Future for AppFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            AppFutureProj::Logged { inner } => inner.poll(cx),
            AppFutureProj::Quiet { inner } => inner.poll(cx),
        }
    }
}

/// Everything between the access line and the router (the module's list, from 3 on).
#[derive(Clone, Debug)]
pub struct Guarded {
    shared: Arc<Shared>,
}

/// What [`Guarded`] holds, shared by every request.
#[derive(Debug)]
struct Shared {
    transport: Arc<Transport>,
    metrics: bool,
    client_documents: Option<Arc<ClientDocuments>>,
    /// The router behind the CORS policy, for [`cors_path`]s.
    cors: Option<Cors<Router>>,
    router: Router,
}

/// Whether browsers call `path` from other origins, so that it answers CORS (when origins
/// are configured): token, revocation, metadata, discovery, userinfo, registration and the
/// client configuration endpoint (`/register/{client_id}`). Never introspection, which only
/// resource servers use, nor the pages, which are navigated to.
fn cors_path(path: &str) -> bool {
    use latchkey_core::endpoint::metadata::{
        METADATA_PATH, OPENID_CONFIGURATION_PATH, REVOKE_PATH, TOKEN_PATH,
    };
    use latchkey_core::endpoint::userinfo::USERINFO_PATH;
    use latchkey_core::registration::REGISTER_PATH;
    [
        TOKEN_PATH,
        REVOKE_PATH,
        METADATA_PATH,
        OPENID_CONFIGURATION_PATH,
        USERINFO_PATH,
        REGISTER_PATH,
    ]
    .contains(&path)
        // One non-empty path segment, as the router matches `{client_id}`.
        || path
            .strip_prefix(REGISTER_PATH)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|id| !id.is_empty() && !id.contains('/'))
}

/// Marks the credentials of a request sensitive, so that no `Debug` output of its headers
/// shows them.
fn mark_sensitive(headers: &mut HeaderMap) {
    for name in [header::AUTHORIZATION, header::COOKIE] {
        if let header::Entry::Occupied(mut entry) = headers.entry(name) {
            for value in entry.iter_mut() {
                value.set_sensitive(true);
            }
        }
    }
}

impl Shared {
    /// The transport rule, then metrics, then the endpoint: the refusal, or the endpoint's
    /// future with the request's clock when requests are counted.
    fn start(self: &Arc<Self>, mut req: Request<Body>) -> (Endpoint, Option<Tracked>) {
        if let Err(refused) = crate::tls::admit(&self.transport, &mut req) {
            use axum::response::IntoResponse as _;
            return (Endpoint::answered(refused.into_response()), None);
        }
        let tracked = self.metrics.then(|| Tracked::start(&req));
        let endpoint = match &self.client_documents {
            Some(documents) if crate::client_documents::applies_to(req.uri().path()) => {
                let documents = Arc::clone(documents);
                let shared = Arc::clone(self);
                Endpoint::Resolving {
                    inner: Box::pin(async move {
                        match crate::client_documents::check(&documents, req).await {
                            Ok(req) => shared.route(req).await,
                            Err(refused) => refused,
                        }
                    }),
                }
            }
            _ => self.route(req),
        };
        (endpoint, tracked)
    }

    /// The router, behind the CORS policy on the paths browsers call.
    fn route(&self, req: Request<Body>) -> Endpoint {
        match &self.cors {
            Some(cors) if cors_path(req.uri().path()) => Endpoint::Cors {
                inner: cors.clone().call(req),
            },
            _ => Endpoint::Routed {
                inner: self.router.clone().call(req),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The endpoint's side of a request: the router's future, with or without CORS, or the
    /// client-document check before it, or an answer already made.
    #[project = EndpointProj]
    enum Endpoint {
        Routed { #[pin] inner: RouteFuture<Infallible> },
        Cors { #[pin] inner: tower_http::cors::ResponseFuture<RouteFuture<Infallible>> },
        // Boxed: only with client documents on, and only at `/authorize` and `/token`.
        Resolving { inner: Pin<Box<dyn Future<Output = Response<Body>> + Send>> },
        Answered { response: Option<Response<Body>> },
    }
}

impl Endpoint {
    fn answered(response: Response<Body>) -> Self {
        Self::Answered {
            response: Some(response),
        }
    }
}

impl Future for Endpoint {
    type Output = Response<Body>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            EndpointProj::Routed { inner } => inner.poll(cx).map(|Ok(response)| response),
            EndpointProj::Cors { inner } => inner.poll(cx).map(|Ok(response)| response),
            EndpointProj::Resolving { inner } => inner.as_mut().poll(cx),
            // Polled again after it answered: an empty 500 rather than a panic.
            EndpointProj::Answered { response } => {
                Poll::Ready(response.take().unwrap_or_else(|| {
                    let mut empty = Response::new(Body::empty());
                    *empty.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
                    empty
                }))
            }
        }
    }
}

impl Service<Request<Body>> for Guarded {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = GuardedFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        mark_sensitive(req.headers_mut());
        let span = request_span(&req);
        let request_id = req.headers().get(&X_REQUEST_ID).cloned();
        let shared = &self.shared;
        // The synchronous part of the endpoint runs in the span, and its panic is caught too.
        let started =
            std::panic::catch_unwind(AssertUnwindSafe(|| span.in_scope(|| shared.start(req))));
        let (endpoint, tracked, panicked) = match started {
            Ok((endpoint, tracked)) => (endpoint, tracked, None),
            Err(panic) => (Endpoint::Answered { response: None }, None, Some(panic)),
        };
        GuardedFuture {
            endpoint,
            span,
            request_id,
            tracked,
            panicked,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Guarded`].
    pub struct GuardedFuture {
        #[pin]
        endpoint: Endpoint,
        span: tracing::Span,
        request_id: Option<HeaderValue>,
        tracked: Option<Tracked>,
        panicked: Option<Box<dyn Any + Send>>,
    }
}

impl Future for GuardedFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Some(panic) = this.panicked.take() {
            return Poll::Ready(Ok(response_for_panic(panic)));
        }
        let _entered = this.span.enter();
        let mut endpoint = this.endpoint;
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| endpoint.as_mut().poll(cx)));
        let mut response = match polled {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(response)) => response,
            Err(panic) => {
                drop(_entered);
                return Poll::Ready(Ok(response_for_panic(panic)));
            }
        };
        if let Some(tracked) = this.tracked.take() {
            tracked.finish(response.status());
        }
        if let Some(id) = this.request_id.take()
            && let header::Entry::Vacant(slot) = response.headers_mut().entry(&X_REQUEST_ID)
        {
            slot.insert(id);
        }
        log_server_error(response.status());
        Poll::Ready(Ok(response))
    }
}

/// The answer to a request whose handling panicked: 500 with a plain-text body, and the
/// panic's message logged at `error` (the message is the program's, never the request's).
fn response_for_panic(panic: Box<dyn Any + Send>) -> Response<Body> {
    if let Some(message) = panic.downcast_ref::<String>() {
        tracing::error!("Service panicked: {message}");
    } else if let Some(message) = panic.downcast_ref::<&str>() {
        tracing::error!("Service panicked: {message}");
    } else {
        tracing::error!("Service panicked with a message that is not a string");
    }
    let mut response = Response::new(Body::from("Service panicked"));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::ConnectInfo;
    use axum::routing::{any, get};
    use std::net::SocketAddr;
    use tower::ServiceExt as _;

    fn transport(allow_insecure_http: bool) -> Arc<Transport> {
        Arc::new(Transport {
            tls_listener: false,
            trusted: Default::default(),
            allow_insecure_http,
            client_certs: None,
        })
    }

    /// Routes that show what reached them: whether `Authorization` was marked sensitive,
    /// the request id, and a handler that panics.
    fn app(allow_insecure_http: bool, cors: Option<CorsLayer>) -> App {
        let router = Router::new()
            .route(
                "/token",
                any(|headers: HeaderMap| async move {
                    let sensitive = headers
                        .get(header::AUTHORIZATION)
                        .is_some_and(HeaderValue::is_sensitive);
                    format!("sensitive={sensitive}")
                }),
            )
            .route("/introspect", any(|| async { "introspected" }))
            .route(
                "/panic",
                get(|| async {
                    if true {
                        panic!("boom");
                    }
                    "unreachable"
                }),
            )
            .route("/fails", get(|| async { StatusCode::SERVICE_UNAVAILABLE }));
        App::new(Parts {
            transport: transport(allow_insecure_http),
            metrics: false,
            client_documents: None,
            access_log: None,
            cors,
            router,
        })
    }

    fn request(path: &str, peer: &str) -> Request<Body> {
        let mut req = Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let peer: SocketAddr = peer.parse().expect("address");
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    }

    async fn body(response: Response<Body>) -> String {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        String::from_utf8(bytes.to_vec()).expect("UTF-8")
    }

    #[tokio::test]
    async fn request_ids_are_kept_or_made_and_echoed() {
        let mut kept = request("/introspect", "127.0.0.1:1000");
        kept.headers_mut()
            .insert("x-request-id", HeaderValue::from_static("caller-7"));
        let response = app(false, None).oneshot(kept).await.expect("response");
        assert_eq!(response.headers()["x-request-id"], "caller-7");

        let made = app(false, None)
            .oneshot(request("/introspect", "127.0.0.1:1000"))
            .await
            .expect("response");
        let id = made.headers()["x-request-id"].to_str().expect("ASCII");
        assert_eq!(id.len(), 36, "{id}");
        assert_eq!(body(made).await, "introspected");
    }

    #[tokio::test]
    async fn credentials_reach_the_endpoint_marked_sensitive() {
        let mut req = request("/token", "127.0.0.1:1000");
        req.headers_mut().insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic eDp5"),
        );
        let response = app(false, None).oneshot(req).await.expect("response");
        assert_eq!(body(response).await, "sensitive=true");
    }

    #[tokio::test]
    async fn a_panic_is_answered_500() {
        let response = app(false, None)
            .oneshot(request("/panic", "127.0.0.1:1000"))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        assert_eq!(body(response).await, "Service panicked");
        // The next request is served as usual.
        let response = app(false, None)
            .oneshot(request("/introspect", "127.0.0.1:1000"))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn server_errors_pass_through_with_their_id() {
        let response = app(false, None)
            .oneshot(request("/fails", "127.0.0.1:1000"))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key("x-request-id"));
    }

    #[tokio::test]
    async fn plain_http_from_afar_is_refused_with_the_request_id() {
        let response = app(false, None)
            .oneshot(request("/token", "192.0.2.1:1000"))
            .await
            .expect("response");
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(response.headers().contains_key("x-request-id"));
        assert!(body(response).await.contains("HTTPS is required"));
        // Probes stay reachable; the development setting lets everything through.
        let probe = app(false, None)
            .oneshot(request("/healthz", "192.0.2.1:1000"))
            .await
            .expect("response");
        assert_eq!(probe.status(), StatusCode::NOT_FOUND);
        let allowed = app(true, None)
            .oneshot(request("/token", "192.0.2.1:1000"))
            .await
            .expect("response");
        assert_eq!(allowed.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn cors_answers_on_the_browser_paths_only() {
        let settings = crate::settings::CorsSettings {
            allowed_origins: vec!["https://app.example.com".into()],
        };
        let cors = super::super::cors::cors_layer(&settings).expect("policy");
        let preflight = |path: &str| {
            let mut req = request(path, "127.0.0.1:1000");
            *req.method_mut() = axum::http::Method::OPTIONS;
            let headers = req.headers_mut();
            headers.insert(
                header::ORIGIN,
                HeaderValue::from_static("https://app.example.com"),
            );
            headers.insert(
                header::ACCESS_CONTROL_REQUEST_METHOD,
                HeaderValue::from_static("POST"),
            );
            req
        };
        let token = app(false, cors.clone())
            .oneshot(preflight("/token"))
            .await
            .expect("response");
        assert_eq!(
            token.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://app.example.com"
        );
        let introspect = app(false, cors)
            .oneshot(preflight("/introspect"))
            .await
            .expect("response");
        assert!(
            !introspect
                .headers()
                .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        );
    }

    #[test]
    fn cors_paths_are_the_routes_patterns() {
        for path in [
            "/token",
            "/revoke",
            "/userinfo",
            "/register",
            "/register/abc",
            "/.well-known/oauth-authorization-server",
            "/.well-known/openid-configuration",
        ] {
            assert!(cors_path(path), "{path}");
        }
        for path in [
            "/introspect",
            "/authorize",
            "/register/",
            "/register/a/b",
            "/registerx",
            "/token/",
            "/jwks",
        ] {
            assert!(!cors_path(path), "{path}");
        }
    }
}
