//! Prometheus metrics: the recorder, the `/metrics` route, and what counts requests and
//! times them by route and status (`Tracked`, used by the layers around the endpoints).
//!
//! Series (labels never carry a token, a user name or raw client input: routes are the
//! router's patterns, error codes come from the RFC's fixed list):
//! - `http_requests_total{method,route,status}` and `http_request_duration_seconds{method,route}`
//! - `latchkey_tokens_issued_total{grant_type}`
//! - `latchkey_refusals_total{endpoint,error,status}`
//! - `latchkey_auth_failures_total{kind}` (`client` or `user`), `latchkey_reuse_detected_total{kind}`
//! - `latchkey_store_duration_seconds{op}`
//! - `latchkey_connections_refused_total`, `latchkey_log_lines_dropped_total{kind}`,
//!   `latchkey_revocations_total`
//! - `latchkey_build_info{version}` and the process's own `process_*` series
//!
//! Every series has its `# HELP` and `# TYPE` lines.

use axum::extract::MatchedPath;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// Latency buckets, in seconds: 100 µs to 10 s.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide Prometheus recorder (once; later calls reuse it) and returns
/// the handle that renders it, or `None` if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            let upkeep = handle.clone();
            // Histograms are drained into their buckets by upkeep; without it they grow.
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok()?;
            Some(handle)
        })
        .clone()
}

/// The `# HELP` text of every series the server records; the exporter writes it (and the
/// `# TYPE` line) above the series once it has a value.
fn describe() {
    use metrics::{describe_counter, describe_histogram};
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by method, route pattern and status."
    );
    describe_histogram!(
        "http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time from a request's arrival to its response headers, by method and route pattern."
    );
    describe_counter!(
        "latchkey_tokens_issued_total",
        "Access tokens issued, by grant type."
    );
    describe_counter!(
        "latchkey_refusals_total",
        "Requests refused with an OAuth error, by endpoint, error code and status."
    );
    describe_counter!(
        "latchkey_auth_failures_total",
        "Failed authentications, by kind: client (client credentials) or user (password)."
    );
    describe_counter!(
        "latchkey_reuse_detected_total",
        "Replays detected: a refresh token or an authorization code used twice (the family is revoked)."
    );
    describe_counter!(
        "latchkey_revocations_total",
        "Successful token revocation requests."
    );
    describe_histogram!(
        "latchkey_store_duration_seconds",
        metrics::Unit::Seconds,
        "Time of one store operation, by operation."
    );
    describe_counter!(
        "latchkey_connections_refused_total",
        "Connections closed at accept because a connection cap was reached."
    );
    describe_counter!(
        "latchkey_log_lines_dropped_total",
        "Log lines dropped because the log output could not keep up, by kind (ordinary or audit)."
    );
}

/// `GET /metrics`: the Prometheus text exposition: the recorded series, then the process's
/// own (CPU, memory, descriptors, start time; see [`crate::process_metrics`]).
pub async fn render(handle: Option<PrometheusHandle>) -> Response {
    match handle {
        Some(h) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            {
                let mut text = h.render();
                crate::process_metrics::append(&mut text);
                text
            },
        )
            .into_response(),
        None => (
            axum::http::StatusCode::NOT_FOUND,
            "metrics are not enabled in this process\n",
        )
            .into_response(),
    }
}

/// One request being counted and timed by method, matched route and status: what the layers
/// around the endpoints (`app::edge`) keep between the request and its response.
#[derive(Debug)]
pub(crate) struct Tracked {
    start: Instant,
    method: &'static str,
    route: &'static str,
}

impl Tracked {
    /// Starts the clock for `req`.
    pub(crate) fn start<B>(req: &axum::http::Request<B>) -> Self {
        Self {
            start: Instant::now(),
            method: method_label(req.method()),
            // The matched pattern when the router knows it; else the raw path, which
            // `route_label` maps onto its fixed list (routes reached through a fallback, and
            // unknown paths).
            route: route_label(
                req.extensions()
                    .get::<MatchedPath>()
                    .map_or(req.uri().path(), |p| p.as_str()),
            ),
        }
    }

    /// Counts the request with its response's status, and records its duration.
    pub(crate) fn finish(self, status: axum::http::StatusCode) {
        let Self {
            start,
            method,
            route,
        } = self;
        let status = status.as_u16();
        static REQUESTS: Handles<(&str, &str, u16), metrics::Counter> = OnceLock::new();
        static DURATIONS: Handles<(&str, &str), metrics::Histogram> = OnceLock::new();
        handle(&REQUESTS, (method, route, status), || {
            metrics::counter!("http_requests_total", "method" => method, "route" => route, "status" => status.to_string())
        })
        .increment(1);
        handle(&DURATIONS, (method, route), || {
            metrics::histogram!("http_request_duration_seconds", "method" => method, "route" => route)
        })
        .record(start.elapsed().as_secs_f64());
    }
}

/// The route as a `'static` label: the router's own patterns are few and fixed, so they are
/// interned once; a path that carries an identifier becomes its pattern
/// (`/register/{client_id}`); anything else is `other`. The access log uses the same labels.
pub(crate) fn route_label(path: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "/token",
        "/revoke",
        "/introspect",
        "/authorize",
        "/login",
        "/consent",
        "/logout",
        "/apps",
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
        "/jwks",
        "/userinfo",
        "/end_session",
        "/register",
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/js/latchkey.js",
        "/device_authorization",
        "/device",
        "/device/login",
        "/par",
        "/oauth1/request_token",
        "/oauth1/authorize",
        "/oauth1/access_token",
        "/oauth1/revoke",
        "/oauth1/login",
    ];
    if let Some(known) = KNOWN.iter().find(|k| **k == path) {
        return known;
    }
    if path.starts_with("/register/") {
        "/register/{client_id}"
    } else if path.starts_with("/.well-known/oauth-protected-resource") {
        "/.well-known/oauth-protected-resource"
    } else if path.starts_with("/admin") {
        "/admin"
    } else if path.starts_with("/oauth1") {
        "/oauth1"
    } else if path.starts_with("/apps/") {
        "/apps"
    } else {
        "other"
    }
}

/// The method as a `'static` label; methods outside the standard set are `other`.
pub(crate) fn method_label(m: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "other",
    }
}

/// Metric handles by their labels, for the series recorded on every request.
pub(crate) type Handles<K, H> =
    OnceLock<Mutex<HashMap<K, H, std::hash::BuildHasherDefault<LabelHasher>>>>;

/// FNV-1a, for [`Handles`]: their keys are the program's own labels (fixed route patterns,
/// methods, error codes, status codes), never free client input, so a keyed hash buys no
/// protection there, and SipHash cost more than the rest of a lookup on every request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LabelHasher(u64);

impl Default for LabelHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for LabelHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// The handle for `key` from `cache`, registered with `make` the first time. The recorder's
/// own lookup hashes and allocates the name and every label on each call; this is one
/// uncontended lock and a small-map probe. Until
/// [`install`] has put the recorder in place, handles are not cached: they would be the
/// no-op handles of the absent recorder forever.
pub(crate) fn handle<K: Eq + Hash, H: Clone>(
    cache: &Handles<K, H>,
    key: K,
    make: impl FnOnce() -> H,
) -> H {
    if !HANDLE.get().is_some_and(Option::is_some) {
        return make();
    }
    let mut map = cache
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    map.entry(key).or_insert_with(make).clone()
}

/// Times one store operation into `latchkey_store_duration_seconds{op}`.
pub async fn timed<T>(op: &'static str, f: impl std::future::Future<Output = T>) -> T {
    let start = Instant::now();
    let out = f.await;
    static OPS: Handles<&str, metrics::Histogram> = OnceLock::new();
    handle(
        &OPS,
        op,
        || metrics::histogram!("latchkey_store_duration_seconds", "op" => op),
    )
    .record(start.elapsed().as_secs_f64());
    out
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn routes_outside_the_known_set_never_become_labels() {
        assert_eq!(route_label("/token"), "/token");
        assert_eq!(route_label("/admin/clients/{id}"), "/admin");
        assert_eq!(route_label("/secret-token-in-path-abc"), "other");
    }
}
