//! The HTTP application: the core's endpoints through the axum adapter, plus `/healthz` and
//! the browser client `/js/latchkey.js`, wrapped in request ids, tracing spans that never
//! record credentials, and panic capture; CORS on the endpoints browsers call, when configured.

use crate::audit::LogEvents;
use crate::serve::ServeLimits;
use crate::settings::{CorsSettings, LimitSettings, Settings};
use crate::store::AnyStore;
use crate::tls::{Certificates, Transport};
use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::response::IntoResponse;
use latchkey_axum::TokioBlocking;
use latchkey_core::config::Config;
use latchkey_core::entropy::OsEntropy;
use latchkey_core::limits::{Backoff, Counters, Limits, MemoryCounters, Rate};
use latchkey_core::provider::Provider;
use latchkey_core::scope::ScopeSet;
use latchkey_core::user::StoreUsers;
use latchkey_ui::pages::Pages;
use latchkey_ui::{BuiltinLogin, SessionKey, Ui, UiConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

/// The provider the server runs.
pub type AppProvider = Provider<AnyStore, StoreUsers<AnyStore, TokioBlocking>>;

/// Builds the provider from settings; `local` is the bound address, used to derive the
/// issuer on loopback when none is configured.
pub fn build_provider(
    settings: &Settings,
    store: AnyStore,
    local: Option<SocketAddr>,
    counters: Arc<dyn Counters>,
) -> anyhow::Result<AppProvider> {
    let issuer = match (&settings.issuer, local) {
        (Some(issuer), _) => issuer.clone(),
        (None, Some(addr)) if addr.ip().is_loopback() => format!("http://{addr}"),
        (None, Some(addr)) => {
            tracing::warn!("no issuer configured; set `issuer` to this server's public https URL");
            format!("http://localhost:{}", addr.port())
        }
        (None, None) => Config::default().issuer,
    };
    let scopes = |list: &[String]| ScopeSet::parse(&list.join(" "));
    let config = Config {
        issuer,
        access_token_ttl: settings.tokens.access_ttl,
        refresh_token_ttl: settings.tokens.refresh_ttl,
        grant_lifetimes: settings.tokens.grant_lifetimes()?,
        refresh_token_max_lifetime: settings.tokens.refresh_max_lifetime,
        available_scopes: scopes(&settings.scopes.available)
            .map_err(|e| anyhow::anyhow!("scopes.available: {e}"))?,
        default_scopes: scopes(&settings.scopes.default)
            .map_err(|e| anyhow::anyhow!("scopes.default: {e}"))?,
        error_uri: settings.error_uri.clone(),
        code_ttl: settings.tokens.code_ttl,
        require_pkce: settings.pkce.require_all,
        allow_plain_pkce: settings.pkce.allow_plain,
        implicit_grant: settings.grants.implicit,
        password_grant: settings.grants.password,
        trusted_proxies: latchkey_core::net::TrustedProxies::parse(&settings.trusted_proxies)
            .map_err(|bad| {
                anyhow::anyhow!("trusted_proxies: {bad:?} is not an address or network")
            })?
            .with_header(
                latchkey_core::net::ForwardedHeader::parse(&settings.forwarded_header).ok_or_else(
                    || {
                        anyhow::anyhow!(
                            "forwarded_header: {:?} is neither \"x-forwarded-for\" nor \"forwarded\"",
                            settings.forwarded_header
                        )
                    },
                )?,
            ),
    };
    let users = StoreUsers::new(store.clone(), TokioBlocking::default());
    Ok(Provider::builder(store, users)
        .config(config)
        .events(Arc::new(LogEvents))
        .limits(limits(&settings.limits, counters))
        .build()?)
}

/// The rate limits and password backoff of the settings (0 turns a limit off).
fn limits(s: &LimitSettings, counters: Arc<dyn Counters>) -> Limits {
    let rate = |requests: u64| {
        (requests > 0).then_some(Rate {
            requests,
            window: s.window.max(1),
        })
    };
    let mut limits = Limits::new(counters);
    limits.per_client = rate(s.per_client);
    limits.per_ip = rate(s.per_ip);
    limits.client_auth_failures = rate(s.client_auth_failures);
    limits.backoff = (s.login_max_failures > 0).then_some(Backoff {
        slow_after: s.login_slow_after,
        max_delay: s.login_max_delay,
        max_failures: s.login_max_failures,
        max_failures_per_ip: if s.login_max_failures_per_ip == 0 {
            u64::MAX
        } else {
            s.login_max_failures_per_ip
        },
        window: s.login_window.max(1),
    });
    limits
}

/// Opens the counter store the settings name: this process's memory, or Redis.
pub async fn open_counters(settings: &Settings) -> anyhow::Result<Arc<dyn Counters>> {
    let url = settings.limits.store.as_str();
    if url == "memory" || url == "memory:" {
        return Ok(Arc::new(MemoryCounters::new()));
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        let prefix = format!("{}:", settings.store.key_prefix.trim_end_matches(':'));
        let redis = latchkey_redis::RedisStore::connect(url, &prefix)
            .await
            .map_err(|e| anyhow::anyhow!("limits.store {url:?}: {e}"))?;
        return Ok(Arc::new(redis));
    }
    anyhow::bail!("unsupported limits.store {url:?}: use memory or redis://host:port")
}

/// The login and consent pages the server runs.
pub type AppUi = Ui<AnyStore, StoreUsers<AnyStore, TokioBlocking>, BuiltinLogin>;

/// Builds the login and consent pages: templates (with the operator's overrides), the
/// persistent session key, and cookies that are `Secure` unless the issuer is plain HTTP.
pub fn build_ui(settings: &Settings, provider: AppProvider) -> anyhow::Result<AppUi> {
    let pages = Pages::load(settings.ui.templates_dir.as_deref())?;
    let key_file = settings
        .ui
        .session_key_file
        .clone()
        .unwrap_or_else(|| settings.data_dir.join("session.key"));
    let key = load_or_create_key(&key_file)?;
    let mut config = UiConfig::new(key);
    config.secure_cookies = !provider.config().issuer.starts_with("http://");
    config.session_ttl = settings.ui.session_ttl;
    config.scope_descriptions = settings.ui.scope_descriptions.clone();
    Ok(Ui::new(provider, pages, BuiltinLogin, config))
}

/// The OAuth 1.0a provider the server runs.
pub type AppOAuth1 = latchkey_oauth1::OAuth1Provider<AnyStore>;

/// The key OAuth 1.0a consumer and token secrets are derived from: `<data_dir>/oauth1.key`,
/// created on first use. Several nodes (and the CLI) must share it; replacing it invalidates
/// every consumer secret and token.
pub fn oauth1_key(settings: &Settings) -> anyhow::Result<latchkey_oauth1::OAuth1Key> {
    let key = load_or_create_key(&settings.data_dir.join("oauth1.key"))?;
    Ok(latchkey_oauth1::OAuth1Key::new(*key.as_bytes()))
}

/// Builds the OAuth 1.0a provider: requests are signed against the issuer's URL, realms are
/// the server's scopes, access tokens live `oauth1.access_ttl`.
pub fn build_oauth1(
    settings: &Settings,
    store: AnyStore,
    provider: &AppProvider,
) -> anyhow::Result<AppOAuth1> {
    let mut config = latchkey_oauth1::OAuth1Config::new(provider.config().issuer.clone());
    config.available_realms = provider.config().available_scopes.clone();
    config.default_realms = provider.config().default_scopes.clone();
    config.access_token_ttl =
        (settings.oauth1.access_ttl > 0).then_some(settings.oauth1.access_ttl);
    Ok(latchkey_oauth1::OAuth1Provider::new(
        config,
        store,
        oauth1_key(settings)?,
    ))
}

/// The router of the whole server with OAuth 1.0a beside OAuth 2.0 (what `latchkey serve`
/// runs); see [`app_with_cors`].
pub fn app_with_oauth1(
    provider: AppProvider,
    ui: AppUi,
    oauth1: AppOAuth1,
    cors: &CorsSettings,
    around: Surroundings,
) -> anyhow::Result<Router> {
    let routes =
        oauth_routes(provider, cors)?.merge(latchkey_axum::oauth1_router(oauth1, ui.clone()));
    Ok(wrap(routes, ui, around))
}

/// Reads the 32-byte session key, creating it (readable by the owner only) on first start.
fn load_or_create_key(path: &std::path::Path) -> anyhow::Result<SessionKey> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} must hold exactly 32 bytes", path.display()))?;
            Ok(SessionKey::new(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                crate::store::create_private_dir(dir)?;
            }
            let key = SessionKey::generate(&OsEntropy);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut file) => {
                    std::io::Write::write_all(&mut file, key.as_bytes())?;
                    file.sync_all()?;
                    Ok(key)
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key(path),
                Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", path.display())),
            }
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// The browser client for single-page apps, served at [`JS_CLIENT_PATH`].
pub const JS_CLIENT: &str = include_str!("../assets/latchkey.js");

/// Where [`JS_CLIENT`] is served.
pub const JS_CLIENT_PATH: &str = "/js/latchkey.js";

/// `GET /js/latchkey.js`: the ES module, importable from pages on any origin (it holds no
/// secret), cached briefly so that an upgraded server is picked up soon.
async fn js_client() -> axum::response::Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (
                HeaderName::from_static("cross-origin-resource-policy"),
                "cross-origin",
            ),
        ],
        JS_CLIENT,
    )
        .into_response()
}

/// Everything around the endpoints that the settings decide.
#[derive(Clone, Debug)]
pub struct Surroundings {
    /// The transport rule (TLS marking, plain HTTP refused).
    pub transport: Arc<Transport>,
    /// The metrics recorder's handle, when requests are counted (`/metrics` is served on the
    /// admin listener, never on this router).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
}

impl Surroundings {
    /// For tests and embedders: plain HTTP allowed, no metrics.
    pub fn permissive() -> Self {
        Self {
            transport: Arc::new(Transport {
                tls_listener: false,
                trusted: Default::default(),
                allow_insecure_http: true,
            }),
            metrics: None,
        }
    }
}

/// The router of the whole server, without CORS; see [`app_with_cors`].
pub fn app(provider: AppProvider, ui: AppUi) -> Router {
    wrap(
        Router::new().merge(latchkey_axum::router(provider)),
        ui,
        Surroundings::permissive(),
    )
}

/// The router of the whole server; pages on `cors.allowed_origins` may call the token,
/// revocation and metadata endpoints. Fails on an origin that is not `scheme://host[:port]`.
pub fn app_with_cors(
    provider: AppProvider,
    ui: AppUi,
    cors: &CorsSettings,
    around: Surroundings,
) -> anyhow::Result<Router> {
    Ok(wrap(oauth_routes(provider, cors)?, ui, around))
}

/// The OAuth endpoints, with CORS on those a browser app calls (never on introspection,
/// which only resource servers use, nor on the pages, which are navigated to).
fn oauth_routes(provider: AppProvider, cors: &CorsSettings) -> anyhow::Result<Router> {
    use latchkey_core::endpoint::metadata::{METADATA_PATH, REVOKE_PATH, TOKEN_PATH};
    let oauth = latchkey_axum::router(provider);
    let Some(layer) = cors_layer(cors)? else {
        return Ok(oauth);
    };
    // A router is served as a service here (axum refuses a bare `Router` in
    // `route_service`): each path below is matched again inside it.
    let with_cors = oauth
        .clone()
        .layer(layer)
        .into_service::<axum::body::Body>();
    // The other routes (introspection, and any the adapter adds) go to the plain router.
    Ok(Router::new()
        .route_service(TOKEN_PATH, with_cors.clone())
        .route_service(REVOKE_PATH, with_cors.clone())
        .route_service(METADATA_PATH, with_cors)
        .fallback_service(oauth))
}

/// The CORS policy for `cors`, `None` when no origin is allowed. Requests carry no
/// credentials (no cookies), so none are allowed.
fn cors_layer(cors: &CorsSettings) -> anyhow::Result<Option<CorsLayer>> {
    if cors.allowed_origins.is_empty() {
        return Ok(None);
    }
    let origins = cors
        .allowed_origins
        .iter()
        .map(|origin| {
            let origin = normalize_origin(origin)
                .map_err(|why| anyhow::anyhow!("cors.allowed_origins: {origin:?} {why}"))?;
            Ok(HeaderValue::try_from(origin)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .max_age(std::time::Duration::from_secs(600)),
    ))
}

/// An origin as browsers send it in `Origin`: lower-case `scheme://host[:port]`, without the
/// scheme's default port or a trailing slash.
fn normalize_origin(origin: &str) -> Result<String, &'static str> {
    let lower = origin.trim().trim_end_matches('/').to_ascii_lowercase();
    if lower == "*" || lower == "null" {
        return Err("is not allowed: name each origin");
    }
    let (scheme, rest) = lower
        .split_once("://")
        .ok_or("must look like https://app.example.com")?;
    let default_port = match scheme {
        "https" => ":443",
        "http" => ":80",
        _ => return Err("must be an http or https origin"),
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', '*', ' ']) {
        return Err("must be scheme://host[:port] only, without path or user");
    }
    let host = rest.strip_suffix(default_port).unwrap_or(rest);
    Ok(format!("{scheme}://{host}"))
}

/// Readiness: 200 when the store answers a ping within two seconds, 503 otherwise, so a load
/// balancer stops sending traffic to a node whose store is down and resumes by itself.
async fn readyz(store: AnyStore) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    use axum::http::StatusCode;
    use latchkey_core::store::TokenStore;
    let ping = tokio::time::timeout(std::time::Duration::from_secs(2), store.ping()).await;
    match ping {
        Ok(Ok(())) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({ "status": "ready" })),
        ),
        Ok(Err(err)) => {
            tracing::warn!(error = %err, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({ "status": "unavailable" })),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "unavailable", "reason": "timeout" })),
        ),
    }
}

/// The routes every configuration has, around `oauth`, and the outer layers.
///
/// The outer layers wrap the finished router once, as one service, rather than through
/// `Router::layer`, which wraps every route separately and boxes each layer's future: on the
/// token path that was eleven boxed copies of a growing future per request, 13% of the
/// server's instructions (callgrind, `bench/results/profile-*.txt`). The one price is that the
/// metrics middleware sees the request before routing, so it labels routes by path
/// ([`crate::metrics::track`] maps them onto a fixed list either way).
fn wrap(oauth: Router, ui: AppUi, around: Surroundings) -> Router {
    use tower::ServiceBuilder;
    use tower::util::option_layer;
    let x_request_id = HeaderName::from_static("x-request-id");
    let store = ui.provider().store().clone();
    let router = oauth
        .merge(latchkey_axum::authorize_router(ui))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(move || readyz(store.clone())))
        .route(JS_CLIENT_PATH, axum::routing::get(js_client));
    // Requests are counted here; `/metrics` itself is served on the admin listener only.
    let tracked = around.metrics.is_some();
    let layered = ServiceBuilder::new()
        .layer(CatchPanicLayer::new())
        .layer(SetRequestIdLayer::new(
            x_request_id.clone(),
            RandomRequestId,
        ))
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::new(x_request_id))
        .layer(axum::middleware::from_fn_with_state(
            around.transport,
            crate::tls::enforce,
        ))
        .layer(option_layer(
            tracked.then(|| axum::middleware::from_fn(crate::metrics::track)),
        ))
        .service(router);
    Router::new().fallback_service(layered)
}

/// Request ids for requests that come without an `x-request-id`: random UUIDs (version 4)
/// from the pooled OS generator. `tower-http`'s `MakeRequestUuid` asks the OS for 16 bytes
/// on every request, one system call each (strace under load: one `getrandom` per token).
#[derive(Clone, Copy, Debug, Default)]
struct RandomRequestId;

impl MakeRequestId for RandomRequestId {
    fn make_request_id<B>(&mut self, _request: &axum::http::Request<B>) -> Option<RequestId> {
        use latchkey_core::entropy::Entropy as _;
        let mut bytes = [0u8; 16];
        OsEntropy.fill(&mut bytes);
        bytes[6] = (bytes[6] & 0x0f) | 0x40; // version 4
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
        let hex = latchkey_core::entropy::hex(&bytes);
        let id = format!(
            "{}-{}-{}-{}-{}",
            &hex[..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..]
        );
        HeaderValue::from_str(&id).ok().map(RequestId::new)
    }
}

/// The log span of a request: method, path (never the query, which may carry a credential a
/// client put there by mistake) and the request id that is also sent back in `x-request-id`.
fn request_span(req: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    tracing::info_span!(
        "request",
        method = %req.method(),
        path = %req.uri().path(),
        request_id,
    )
}

/// Serves the application on `listener` until `shutdown` resolves, then drains in-flight
/// requests and closes the store.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    let certs = match (&settings.tls.cert_file, &settings.tls.key_file) {
        (Some(cert), Some(key)) => Some(Arc::new(Certificates::load(cert, key)?)),
        (None, None) => None,
        _ => anyhow::bail!("tls.cert_file and tls.key_file go together"),
    };
    let store = AnyStore::from_settings(&settings).await?;
    let counters = open_counters(&settings).await?;
    let provider = build_provider(&settings, store.clone(), Some(local), counters)?;
    let ui = build_ui(&settings, provider.clone())?;
    let around_transport = Arc::new(Transport {
        tls_listener: certs.is_some(),
        trusted: provider.config().trusted_proxies.clone(),
        allow_insecure_http: settings.tls.allow_insecure_http,
    });
    let metrics = settings.metrics.then(crate::metrics::install).flatten();
    let around = Surroundings {
        transport: Arc::clone(&around_transport),
        metrics: metrics.clone(),
    };
    let oauth1 = build_oauth1(&settings, store.clone(), &provider)?;
    let app = app_with_oauth1(provider.clone(), ui, oauth1, &settings.cors, around)?;
    if latchkey_core::store::ClientStore::list_clients(&store)
        .await?
        .is_empty()
    {
        println!(
            "No clients are registered yet. Create one with:\n  latchkey client create --name my-service"
        );
    }
    let scheme = if certs.is_some() { "https" } else { "http" };
    let limits =
        ServeLimits::from_settings(&settings.http, provider.config().trusted_proxies.clone());
    let grace = std::time::Duration::from_secs(settings.shutdown_grace);
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stopping.send(true);
    });
    if let Some(certs) = &certs {
        crate::tls::spawn_reloader(
            Arc::clone(certs),
            std::time::Duration::from_secs(settings.tls.reload_interval),
        );
    }
    let admin = match &settings.admin.listen {
        Some(addr) => {
            let token = settings.admin.load_token()?;
            let tcp = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("admin.listen {addr}: {e}"))?;
            let admin_local = tcp.local_addr()?;
            let ops =
                crate::admin::Admin::new(store.clone(), provider.config().issuer.clone(), "api")
                    .with_oauth1_key(oauth1_key(&settings)?);
            let mut admin_app = crate::admin_api::router(ops, &token);
            // Metrics are for the operator's scraper, not the internet: on this listener,
            // which operators keep private, and without the admin token (a scraper should not
            // hold a credential that can create clients).
            if let Some(handle) = metrics {
                admin_app = admin_app.route(
                    "/metrics",
                    axum::routing::get(move || crate::metrics::render(Some(handle.clone()))),
                );
            }
            let admin_app = admin_app
                .layer(axum::middleware::from_fn_with_state(
                    Arc::clone(&around_transport),
                    crate::tls::enforce,
                ))
                .layer(TraceLayer::new_for_http().make_span_with(request_span));
            println!("latchkey admin API on {scheme}://{admin_local}");
            tracing::info!(%admin_local, "admin API listening");
            Some(tokio::spawn(crate::serve::serve(
                tcp,
                admin_app,
                certs.clone(),
                limits.for_admin(),
                stopped.clone(),
            )))
        }
        None => None,
    };
    println!("latchkey listening on {scheme}://{local}");
    tracing::info!(%local, issuer = %provider.config().issuer, "latchkey listening");
    let serving = crate::serve::serve(listener, app, certs, limits, stopped.clone());
    // After the signal, in-flight requests get `grace` to finish; one that never ends
    // cannot hold the process past it.
    let mut signalled = stopped;
    let deadline = async move {
        if signalled.wait_for(|stop| *stop).await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let served = tokio::select! {
        served = serving => served.map_err(anyhow::Error::from),
        () = deadline => {
            tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace elapsed; closing remaining connections");
            Ok(())
        }
    };
    if let Some(admin) = admin {
        admin.abort();
    }
    store.close().await;
    tracing::info!("latchkey stopped");
    served
}

#[cfg(test)]
mod tests {
    use super::{RandomRequestId, normalize_origin};
    use tower_http::request_id::MakeRequestId as _;

    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let request = axum::http::Request::new(());
        let mut make = RandomRequestId;
        let ids: std::collections::BTreeSet<String> = (0..1000)
            .map(|_| {
                let id = make.make_request_id(&request).expect("an id");
                id.header_value().to_str().expect("ASCII").to_owned()
            })
            .collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let groups: Vec<&str> = id.split('-').collect();
            let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
            assert_eq!(lengths, [8, 4, 4, 4, 12], "{id}");
            assert!(groups[2].starts_with('4'), "{id}");
            assert!(matches!(&groups[3][..1], "8" | "9" | "a" | "b"), "{id}");
            assert!(
                id.bytes()
                    .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
    }

    #[test]
    fn origins_are_normalized_as_browsers_send_them() {
        assert_eq!(
            normalize_origin("https://App.Example.com/"),
            Ok("https://app.example.com".into())
        );
        assert_eq!(
            normalize_origin("https://app.example.com:443"),
            Ok("https://app.example.com".into())
        );
        assert_eq!(
            normalize_origin("http://127.0.0.1:5173"),
            Ok("http://127.0.0.1:5173".into())
        );
        assert_eq!(
            normalize_origin("http://[::1]:80"),
            Ok("http://[::1]".into())
        );
        for bad in [
            "*",
            "null",
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "https://*.example.com",
            "https://",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
    }
}
