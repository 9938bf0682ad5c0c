//! The server's own endpoints beside the OAuth ones: readiness and the browser client.

use crate::store::AnyStore;
use axum::http::{HeaderName, header};
use axum::response::IntoResponse;

/// The browser client for single-page apps, served at [`JS_CLIENT_PATH`].
pub const JS_CLIENT: &str = include_str!("../../assets/latchkey.js");

/// Where [`JS_CLIENT`] is served.
pub const JS_CLIENT_PATH: &str = "/js/latchkey.js";

/// `GET /js/latchkey.js`: the ES module, importable from pages on any origin (it holds no
/// secret), cached briefly so that an upgraded server is picked up soon.
pub(super) async fn js_client() -> axum::response::Response {
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

/// Readiness: 200 when the store answers a ping within two seconds, 503 otherwise, so a load
/// balancer stops sending traffic to a node whose store is down and resumes by itself.
pub(super) async fn readyz(
    store: AnyStore,
) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
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
