//! The access log: one line per request, under the `latchkey::access` target at `info`, with
//! the method, the route pattern, the status, the duration, the request id and the client
//! address.
//!
//! What a line never holds: the raw path when it carries an identifier (the route's pattern is
//! written instead: `/register/{client_id}`, `/admin/users/{username}`), the query string
//! (a client may put a credential there by mistake), any header, any body. The client address
//! is resolved by the one trusted-proxy rule of the core ([`TrustedProxies::client_ip_from`]),
//! so the access log, the audit log and the rate limits name the same client.
//!
//! The layer sits on the hot path of every token request, so it copies nothing it can borrow:
//! the method and route are `'static` strings, the request id a reference-counted header
//! value, the address a `Copy` value, and the line is formatted once, by the log formatter,
//! into its reused buffer.

use axum::extract::{ConnectInfo, MatchedPath};
use axum::http::{HeaderValue, Request, Response};
use latchkey_core::net::TrustedProxies;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tower::{Layer, Service};

/// The log target of access lines; `log.filter` can set its level on its own
/// (`info,latchkey::access=off`), and `log.access = false` removes the layer altogether.
pub const TARGET: &str = "latchkey::access";

/// Adds an access line to every request of the service it wraps. Place it inside the layer
/// that sets `x-request-id` and outside the one that catches panics, so that a panic's 500 is
/// logged with its request id too.
#[derive(Clone, Debug)]
pub struct AccessLogLayer {
    proxies: Arc<TrustedProxies>,
}

impl AccessLogLayer {
    /// Resolves client addresses through `proxies` (the server's `trusted_proxies`).
    pub fn new(proxies: TrustedProxies) -> Self {
        Self {
            proxies: Arc::new(proxies),
        }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AccessLog {
            inner,
            proxies: Arc::clone(&self.proxies),
        }
    }
}

/// The service of [`AccessLogLayer`].
#[derive(Clone, Debug)]
pub struct AccessLog<S> {
    inner: S,
    proxies: Arc<TrustedProxies>,
}

impl<S, B, R> Service<Request<B>> for AccessLog<S>
where
    S: Service<Request<B>, Response = Response<R>>,
{
    type Response = Response<R>;
    type Error = S::Error;
    type Future = AccessLogFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let entry = Entry {
            start: Instant::now(),
            method: crate::metrics::method_label(req.method()),
            route: Route::of(&req),
            request_id: req.headers().get("x-request-id").cloned(),
            client_ip: client_ip(&self.proxies, &req),
        };
        AccessLogFuture {
            inner: self.inner.call(req),
            entry: Some(entry),
        }
    }
}

/// What a line says about the request, gathered before the inner service takes it.
struct Entry {
    start: Instant,
    method: &'static str,
    route: Route,
    request_id: Option<HeaderValue>,
    client_ip: Option<IpAddr>,
}

/// A route's pattern: the router's own when it has matched (the admin listener's routes), else
/// one of the fixed labels of [`crate::metrics::route_label`] (the OAuth listener logs before
/// routing; unknown paths become `other`). The request span records the same pattern.
pub(crate) enum Route {
    Matched(MatchedPath),
    Label(&'static str),
}

impl Route {
    /// The pattern of the route `req` is for.
    pub(crate) fn of<B>(req: &Request<B>) -> Self {
        match req.extensions().get::<MatchedPath>() {
            Some(matched) => Self::Matched(matched.clone()),
            None => Self::Label(crate::metrics::route_label(req.uri().path())),
        }
    }

    /// The pattern as text.
    pub(crate) fn as_str(&self) -> &str {
        match self {
            Self::Matched(matched) => matched.as_str(),
            Self::Label(label) => label,
        }
    }
}

/// The client's address: the peer's, or the one the trusted proxies name; `None` when the
/// request came through no listener (a test's `oneshot`).
pub(crate) fn client_ip<B>(proxies: &TrustedProxies, req: &Request<B>) -> Option<IpAddr> {
    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>()?.0.ip();
    let forwarded = req
        .headers()
        .get_all(proxies.header_name())
        .iter()
        .filter_map(|v| v.to_str().ok());
    Some(proxies.client_ip_from(peer, forwarded))
}

/// The status logged for a request whose client went away before the answer (the
/// connection closed, so the server dropped the request): nginx's 499.
const CLIENT_CLOSED: u16 = 499;

pin_project_lite::pin_project! {
    /// The response future of [`AccessLog`]: the inner future, then the line. Dropped
    /// unfinished (the client closed the connection), it logs status 499.
    pub struct AccessLogFuture<F> {
        #[pin]
        inner: F,
        entry: Option<Entry>,
    }

    impl<F> PinnedDrop for AccessLogFuture<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(entry) = this.project().entry.take() {
                entry.write(CLIENT_CLOSED);
            }
        }
    }
}

impl<F, R, E> Future for AccessLogFuture<F>
where
    F: Future<Output = Result<Response<R>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = std::task::ready!(this.inner.poll(cx));
        if let Some(entry) = this.entry.take() {
            // An error never reaches the client as a response (axum's services are
            // infallible); it is logged with status 0 so that no request goes unlogged.
            let status = out.as_ref().map_or(0, |r| r.status().as_u16());
            entry.write(status);
        }
        Poll::Ready(out)
    }
}

impl Entry {
    fn write(self, status: u16) {
        let duration_us = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let request_id = self
            .request_id
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        write_line(
            self.method,
            self.route.as_str(),
            status,
            duration_us,
            request_id,
            self.client_ip,
        );
    }
}

/// Logs one access line: straight into the log queue when the subscriber takes lines that way
/// (`crate::logging::direct`), else as the `info!` event below, with the same fields in the
/// same order.
pub(crate) fn write_line(
    method: &str,
    route: &str,
    status: u16,
    duration_us: u64,
    request_id: &str,
    client_ip: Option<IpAddr>,
) {
    let line = crate::logging::direct::callsite!(
        TARGET,
        tracing::Level::INFO,
        [
            "method",
            "route",
            "status",
            "duration_us",
            "request_id",
            "client_ip"
        ]
    );
    let written = crate::logging::direct::write(line, |m| {
        m.str("method", method)?;
        m.str("route", route)?;
        m.u64("status", u64::from(status))?;
        m.u64("duration_us", duration_us)?;
        m.str("request_id", request_id)?;
        match client_ip {
            Some(ip) => m.ip("client_ip", ip),
            None => Ok(()),
        }
    });
    if !written {
        let client_ip = client_ip.map(tracing::field::display);
        tracing::info!(
            target: TARGET,
            method,
            route,
            status,
            duration_us,
            request_id,
            client_ip,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use std::convert::Infallible;
    use tower::ServiceExt as _;

    fn request(path: &str, peer: &str, forwarded: Option<&str>) -> Request<Body> {
        let mut req = Request::builder()
            .method("POST")
            .uri(path)
            .header("x-request-id", "req-7")
            .body(Body::empty())
            .expect("request");
        if let Some(chain) = forwarded {
            req.headers_mut().insert(
                "x-forwarded-for",
                HeaderValue::from_str(chain).expect("ascii"),
            );
        }
        req.extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().expect("address")));
        req
    }

    #[test]
    fn the_client_is_the_peer_unless_a_trusted_proxy_names_another() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8"]).expect("networks");
        let direct = request("/token", "192.0.2.9:5000", Some("198.51.100.1"));
        assert_eq!(
            client_ip(&proxies, &direct),
            Some("192.0.2.9".parse().expect("ip")),
            "an untrusted peer cannot claim another address"
        );
        let proxied = request("/token", "10.1.2.3:5000", Some("203.0.113.5, 10.9.9.9"));
        assert_eq!(
            client_ip(&proxies, &proxied),
            Some("203.0.113.5".parse().expect("ip"))
        );
    }

    #[test]
    fn paths_with_identifiers_are_logged_by_their_pattern() {
        let req = request("/register/abc-secretish-id?x=1", "192.0.2.9:5000", None);
        assert_eq!(Route::of(&req).as_str(), "/register/{client_id}");
        let req = request("/no/such/thing", "192.0.2.9:5000", None);
        assert_eq!(Route::of(&req).as_str(), "other");
    }

    /// Collects formatted lines.
    #[derive(Clone, Default)]
    struct Lines(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("test").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_request_abandoned_by_its_client_is_logged_as_499() {
        let lines = Lines::default();
        let _default = tracing::subscriber::set_default(json_subscriber(&lines));
        let mut service = AccessLogLayer::new(TrustedProxies::default()).layer(tower::service_fn(
            |_req: Request<Body>| async {
                std::future::pending::<Result<Response<Body>, Infallible>>().await
            },
        ));
        let pending = service.call(request("/token", "192.0.2.9:5000", None));
        drop(pending);
        let text = String::from_utf8(lines.0.lock().expect("test").clone()).expect("utf-8");
        let logged: serde_json::Value = serde_json::from_str(text.trim()).expect("one line");
        assert_eq!(logged["fields"]["status"], 499);
        assert_eq!(logged["fields"]["route"], "/token");
    }

    fn json_subscriber(lines: &Lines) -> impl tracing::Subscriber + Send + Sync {
        let lines = lines.clone();
        tracing_subscriber::fmt()
            .fmt_fields(crate::logging::JsonSpanFields)
            .event_format(crate::logging::JsonLines::default())
            .with_writer(move || lines.clone())
            .finish()
    }

    #[tokio::test]
    async fn one_json_line_per_request_without_query_or_headers() {
        let lines = Lines::default();
        let _default = tracing::subscriber::set_default(json_subscriber(&lines));
        let service = AccessLogLayer::new(TrustedProxies::default()).layer(tower::service_fn(
            |_req: Request<Body>| async {
                Ok::<_, Infallible>(
                    Response::builder()
                        .status(401)
                        .body(Body::empty())
                        .expect("response"),
                )
            },
        ));
        let mut req = request("/token?client_secret=s3cr3t", "192.0.2.9:5000", None);
        req.headers_mut()
            .insert("authorization", HeaderValue::from_static("Basic czNjcjN0"));
        let response = service.oneshot(req).await.expect("infallible");
        assert_eq!(response.status(), 401);
        let text = String::from_utf8(lines.0.lock().expect("test").clone()).expect("utf-8");
        let logged: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(logged.len(), 1, "{text}");
        let fields = &logged[0]["fields"];
        assert_eq!(logged[0]["target"], TARGET);
        assert_eq!(logged[0]["level"], "INFO");
        assert_eq!(fields["method"], "POST");
        assert_eq!(fields["route"], "/token");
        assert_eq!(fields["status"], 401);
        assert_eq!(fields["request_id"], "req-7");
        assert_eq!(fields["client_ip"], "192.0.2.9");
        assert!(fields["duration_us"].is_u64());
        assert!(
            !text.contains("s3cr3t") && !text.contains("czNjcjN0"),
            "{text}"
        );
    }
}
