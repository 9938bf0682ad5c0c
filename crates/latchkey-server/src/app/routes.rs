//! Router assembly: the OAuth endpoints from the axum adapter, the pages and the server's own
//! endpoints in one router, and the layers around it ([`super::edge`], with CORS where
//! browsers call).

use super::cors::cors_layer;
use super::edge::{App, Parts};
use super::handlers::{JS_CLIENT_PATH, js_client, readyz};
use super::state::{AppOAuth1, AppProvider, AppUi};
use crate::settings::CorsSettings;
use crate::tls::Transport;
use axum::Router;
use std::sync::Arc;
use tower_http::cors::CorsLayer;

/// The router of the whole server with OAuth 1.0a beside OAuth 2.0, and the
/// protected-resource metadata (RFC 9728) of `published` (fixed documents, or those of the
/// settings and the store); see [`app_with_cors`]. `latchkey serve` runs the same
/// application without the outer `Router` ([`service_with_oauth1`]).
pub fn app_with_oauth1(
    provider: AppProvider,
    ui: AppUi,
    oauth1: AppOAuth1,
    cors: &CorsSettings,
    around: Surroundings,
    published: impl Into<super::resource_metadata::PublishedResources>,
) -> anyhow::Result<Router> {
    let app = service_with_oauth1(provider, ui, oauth1, cors, around, published)?;
    Ok(Router::new().fallback_service(app))
}

/// What [`app_with_oauth1`] serves, as the service itself: what `latchkey serve` runs.
pub fn service_with_oauth1(
    provider: AppProvider,
    ui: AppUi,
    oauth1: AppOAuth1,
    cors: &CorsSettings,
    around: Surroundings,
    published: impl Into<super::resource_metadata::PublishedResources>,
) -> anyhow::Result<App> {
    let routes = oauth_routes(provider)
        .merge(latchkey_axum::oauth1_router(oauth1, ui.clone()))
        .merge(super::resource_metadata::router(Arc::new(published.into())));
    Ok(wrap(routes, ui, around, cors_layer(cors)?))
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
    Router::new().fallback_service(wrap(
        oauth_routes(provider),
        ui,
        Surroundings::permissive(),
        None,
    ))
}

/// The router of the whole server; pages on `cors.allowed_origins` may call the token,
/// revocation and metadata endpoints. Fails on an origin that is not `scheme://host[:port]`.
pub fn app_with_cors(
    provider: AppProvider,
    ui: AppUi,
    cors: &CorsSettings,
    around: Surroundings,
) -> anyhow::Result<Router> {
    let app = wrap(oauth_routes(provider), ui, around, cors_layer(cors)?);
    Ok(Router::new().fallback_service(app))
}

/// The OAuth endpoints of the axum adapter, with dynamic client registration.
fn oauth_routes(provider: AppProvider) -> Router {
    latchkey_axum::router(provider.clone()).merge(latchkey_axum::registration_router(provider))
}

/// The routes every configuration has, beside `oauth`, in one router, and the layers around
/// it ([`App`]; CORS, when `cors` is set, on the paths browsers call).
fn wrap(oauth: Router, ui: AppUi, around: Surroundings, cors: Option<CorsLayer>) -> App {
    let store = ui.provider().store().clone();
    let router = oauth
        .merge(latchkey_axum::authorize_router(ui.clone()))
        .merge(latchkey_axum::device_router(ui))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(move || readyz(store.clone())))
        .route(JS_CLIENT_PATH, axum::routing::get(js_client));
    App::new(Parts {
        transport: around.transport,
        // Requests are counted here; `/metrics` itself is served on the admin listener only.
        metrics: around.metrics.is_some(),
        client_documents: around.client_documents,
        access_log: around.access_log,
        cors,
        router,
    })
}
