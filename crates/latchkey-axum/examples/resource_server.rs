//! A resource server protected by Latchkey bearer tokens (RFC 6750).
//!
//! Run it with `cargo run -p latchkey-axum --example resource_server`, then follow the
//! printed commands: get a token with scope `photos:read`, and call `/api/photos` with it.
//! The token endpoint and the API share one process and store here; a resource server in
//! another process would build its guard from
//! `CachedVerifier::new(IntrospectionVerifier::new(...))` against the authorization
//! server's `/introspect` instead of `provider.guard(...)`.

use axum::extract::FromRef;
use axum::routing::get;
use axum::{Json, Router};
use latchkey_axum::{Authenticated, BearerGuard, TokioBlocking, router};
use latchkey_core::prelude::*;
use std::net::SocketAddr;

#[derive(Clone)]
struct AppState {
    guard: BearerGuard,
}

impl FromRef<AppState> for BearerGuard {
    fn from_ref(state: &AppState) -> Self {
        state.guard.clone()
    }
}

/// Any valid token may see who it belongs to.
async fn whoami(Authenticated(token): Authenticated) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "client_id": token.client_id, "scope": token.scope.to_string() }))
}

/// Behind `require("photos:read")`: the layer has checked the scope already.
async fn photos(Authenticated(token): Authenticated) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "photos": ["beach.jpg", "alps.jpg"], "for": token.client_id }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    let users = StoreUsers::new(store.clone(), TokioBlocking::default());
    let provider = Provider::builder(store.clone(), users)
        .issuer("http://127.0.0.1:3002")
        .available_scopes(ScopeSet::parse("photos:read photos:write")?)
        .build()?;
    let (client, secret) = NewClient::confidential("photo printer")
        .grant_types([GrantType::ClientCredentials])
        .build(provider.entropy(), provider.clock().now());
    store.put_client(&client).await?;
    let secret = secret.ok_or("confidential clients get a secret")?;

    let guard = BearerGuard::new(provider.guard("photos"));
    let api = Router::new()
        .route("/api/whoami", get(whoami))
        .route(
            "/api/photos",
            get(photos).layer(guard.require("photos:read")),
        )
        .with_state(AppState { guard });
    let app = router(provider).merge(api);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3002").await?;
    println!(
        "1. TOKEN=$(curl -s -u '{}:{}' -d grant_type=client_credentials -d scope=photos:read http://127.0.0.1:3002/token | sed 's/.*\"access_token\":\"\\([^\"]*\\)\".*/\\1/')",
        client.id,
        secret.expose()
    );
    println!("2. curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:3002/api/photos");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
