//! An actix-web application that is its own authorization server and resource server.
//!
//! Run it with `cargo run -p latchkey-actix --example actix_resource_server`, then use the printed
//! `curl` commands: the first gets a token from `/oauth2/token`, the second reads the
//! protected `/api/photos`, which requires scope `photos:read`. Swap `MemoryStore` for
//! `latchkey_sql::SqliteStore` to keep tokens across restarts.

use actix_web::{App, HttpServer, web};
use latchkey_actix::{Authenticated, BearerGuard, TokioBlocking, configure};
use latchkey_core::prelude::*;
use latchkey_core::resource::Guard;

async fn photos(Authenticated(token): Authenticated) -> web::Json<serde_json::Value> {
    web::Json(serde_json::json!({
        "client_id": token.client_id,
        "photos": ["sunrise.jpg", "harbour.jpg"],
    }))
}

#[actix_web::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    let users = StoreUsers::new(store.clone(), TokioBlocking::default());
    let provider = Provider::builder(store.clone(), users)
        .issuer("http://127.0.0.1:8080")
        .available_scopes(ScopeSet::parse("photos:read photos:write")?)
        .default_scopes(ScopeSet::parse("photos:read")?)
        .build()?;

    // Register one confidential client for the demo.
    let (client, secret) = NewClient::confidential("photo printer")
        .grant_types([GrantType::ClientCredentials])
        .build(provider.entropy(), provider.clock().now());
    store.put_client(&client).await?;
    let secret = secret.ok_or("confidential clients get a secret")?;

    // The resource server checks tokens in process, on the same store.
    let guard = BearerGuard::new(Guard::new(provider.verifier(), "photos"));

    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(guard.clone()))
            .service(web::scope("/oauth2").configure(configure(provider.clone())))
            .service(
                web::resource("/api/photos")
                    .wrap(guard.require("photos:read"))
                    .route(web::get().to(photos)),
            )
    })
    .bind(("127.0.0.1", 8080))?;
    println!("listening on http://127.0.0.1:8080");
    println!(
        "get a token: curl -u '{}:{}' -d grant_type=client_credentials http://127.0.0.1:8080/oauth2/token",
        client.id,
        secret.expose()
    );
    println!("then: curl -H 'Authorization: Bearer ACCESS_TOKEN' http://127.0.0.1:8080/api/photos");
    server.run().await?;
    Ok(())
}
