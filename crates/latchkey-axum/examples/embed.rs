//! Embedding Latchkey in your own axum application.
//!
//! Run it with `cargo run -p latchkey-axum --example embed`, then use the printed `curl`
//! command to get a token. The OAuth endpoints live under `/oauth2` next to the
//! application's own routes; swap `MemoryStore` for `latchkey_sql::SqliteStore` to keep
//! tokens across restarts.

use axum::Router;
use axum::routing::get;
use latchkey_axum::{TokioBlocking, router};
use latchkey_core::prelude::*;
use std::net::SocketAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    let users = StoreUsers::new(store.clone(), TokioBlocking::default());
    let provider = Provider::builder(store.clone(), users)
        .issuer("http://127.0.0.1:3000")
        .available_scopes(ScopeSet::parse("inventory:read inventory:write")?)
        .default_scopes(ScopeSet::parse("inventory:read")?)
        .build()?;

    // Register one confidential client for the demo.
    let (client, secret) = NewClient::confidential("demo service")
        .grant_types([GrantType::ClientCredentials])
        .build(provider.entropy(), provider.clock().now());
    store.put_client(&client).await?;
    let secret = secret.ok_or("confidential clients get a secret")?;

    let app = Router::new()
        .route("/", get(|| async { "my application" }))
        .nest("/oauth2", router(provider));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    println!(
        "try: curl -u '{}:{}' -d grant_type=client_credentials http://127.0.0.1:3000/oauth2/token",
        client.id,
        secret.expose()
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
