//! Router assembly: the OAuth endpoints from the axum adapter (with CORS where browsers call
//! them), the pages, the server's own endpoints, and the outer layers around all of them.

use super::cors::cors_layer;
use super::handlers::{JS_CLIENT_PATH, js_client, readyz};
use super::middleware::{RandomRequestId, RequestSpanLayer};
use super::state::{AppOAuth1, AppProvider, AppUi};
use crate::settings::CorsSettings;
use crate::tls::Transport;
use axum::Router;
use axum::http::{HeaderName, header};
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;

/// The router of the whole server with OAuth 1.0a beside OAuth 2.0 (what `latchkey serve`
/// runs), and the protected-resource metadata (RFC 9728) of `published` (fixed documents, or
/// those of the settings and the store); see [`app_with_cors`].
pub fn app_with_oauth1(
    provider: AppProvider,
    ui: AppUi,
    oauth1: AppOAuth1,
    cors: &CorsSettings,
    around: Surroundings,
    published: impl Into<super::resource_metadata::PublishedResources>,
) -> anyhow::Result<Router> {
    let routes = oauth_routes(provider, cors)?
        .merge(latchkey_axum::oauth1_router(oauth1, ui.clone()))
        .merge(super::resource_metadata::router(Arc::new(published.into())));
    Ok(wrap(routes, ui, around))
}

/// Everything around the endpoints that the settings decide.
#[derive(Clone, Debug)]
pub struct Surroundings {
    /// The transport rule (TLS marking, plain HTTP refused).
    pub transport: Arc<Transport>,
    /// The metrics recorder's handle, when requests are counted (`/metrics` is served on the
    /// admin listener, never on this router).
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// Resolves client ids that are metadata document URLs, when that is on.
    pub client_documents: Option<Arc<crate::client_documents::ClientDocuments>>,
    /// Writes an access line per request (`log.access`), when on.
    pub access_log: Option<crate::access_log::AccessLogLayer>,
}

impl Surroundings {
    /// For tests and embedders: plain HTTP allowed, no metrics.
    pub fn permissive() -> Self {
        Self {
            transport: Arc::new(Transport {
                tls_listener: false,
                trusted: Default::default(),
                allow_insecure_http: true,
                client_certs: None,
            }),
            metrics: None,
            client_documents: None,
            access_log: None,
        }
    }
}

/// The router of the whole server, without CORS; see [`app_with_cors`].
pub fn app(provider: AppProvider, ui: AppUi) -> Router {
    wrap(
        Router::new()
            .merge(latchkey_axum::router(provider.clone()))
            .merge(latchkey_axum::registration_router(provider)),
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

/// The OAuth endpoints, with CORS on those a browser app calls (token, revocation, metadata,
/// discovery, userinfo; never on introspection,
/// which only resource servers use, nor on the pages, which are navigated to).
fn oauth_routes(provider: AppProvider, cors: &CorsSettings) -> anyhow::Result<Router> {
    use latchkey_core::endpoint::metadata::{
        METADATA_PATH, OPENID_CONFIGURATION_PATH, REVOKE_PATH, TOKEN_PATH,
    };
    use latchkey_core::endpoint::userinfo::USERINFO_PATH;
    use latchkey_core::registration::REGISTER_PATH;
    let oauth =
        latchkey_axum::router(provider.clone()).merge(latchkey_axum::registration_router(provider));
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
        .route_service(METADATA_PATH, with_cors.clone())
        .route_service(OPENID_CONFIGURATION_PATH, with_cors.clone())
        .route_service(USERINFO_PATH, with_cors.clone())
        // Browser-based clients (MCP inspectors, SPAs) register themselves.
        .route_service(REGISTER_PATH, with_cors.clone())
        .route_service(&format!("{REGISTER_PATH}/{{client_id}}"), with_cors)
        .fallback_service(oauth))
}

/// The routes every configuration has, around `oauth`, and the outer layers.
///
/// The outer layers wrap the finished router once, as one service, rather than through
/// `Router::layer`, which wraps every route separately and boxes each layer's future, so that
/// a request pays for one boxed copy of a growing future per layer (BENCHMARKS.md has what
/// that cost on the token path). The one price is that the
/// metrics middleware sees the request before routing, so it labels routes by path
/// ([`crate::metrics::track`] maps them onto a fixed list either way).
fn wrap(oauth: Router, ui: AppUi, around: Surroundings) -> Router {
    use tower::ServiceBuilder;
    use tower::util::option_layer;
    let x_request_id = HeaderName::from_static("x-request-id");
    let store = ui.provider().store().clone();
    let router = oauth
        .merge(latchkey_axum::authorize_router(ui.clone()))
        .merge(latchkey_axum::device_router(ui))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(move || readyz(store.clone())))
        .route(JS_CLIENT_PATH, axum::routing::get(js_client));
    // Requests are counted here; `/metrics` itself is served on the admin listener only.
    let tracked = around.metrics.is_some();
    // The request id comes first, so that the access line of every request has it, that of
    // a request whose handler panicked included (the access log sits outside the catch).
    let layered = ServiceBuilder::new()
        .layer(SetRequestIdLayer::new(
            x_request_id.clone(),
            RandomRequestId,
        ))
        .layer(option_layer(around.access_log))
        .layer(CatchPanicLayer::new())
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .layer(RequestSpanLayer)
        .layer(PropagateRequestIdLayer::new(x_request_id))
        .layer(axum::middleware::from_fn_with_state(
            around.transport,
            crate::tls::enforce,
        ))
        .layer(option_layer(
            tracked.then(|| axum::middleware::from_fn(crate::metrics::track)),
        ))
        .layer(option_layer(around.client_documents.map(|documents| {
            axum::middleware::from_fn_with_state(documents, crate::client_documents::resolve)
        })))
        .service(router);
    Router::new().fallback_service(layered)
}
