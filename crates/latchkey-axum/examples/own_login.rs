//! An application that keeps its own login and session, and uses Latchkey's authorization
//! endpoint and built-in consent page.
//!
//! Run it with `cargo run -p latchkey-axum --example own_login` and open the printed URL.
//! The application's login here is a stand-in (a form that trusts the name you type, kept in
//! a plain cookie): replace it with your real session. What matters is the [`Login`]
//! implementation: it tells Latchkey who is logged in, and where to send whoever is not.

use axum::Router;
use axum::extract::Query;
use axum::response::{Html, IntoResponse, Redirect};
use axum::routing::get;
use latchkey_axum::{TokioBlocking, authorize_router, router};
use latchkey_core::http::{HttpRequest, HttpResponse};
use latchkey_core::prelude::*;
use latchkey_ui::pages::Pages;
use latchkey_ui::session::cookie;
use latchkey_ui::{Login, SessionKey, Ui, UiConfig};
use std::collections::HashMap;
use std::net::SocketAddr;

/// The application's own notion of "logged in", plugged into Latchkey.
struct AppLogin;

impl Login for AppLogin {
    async fn current_user(
        &self,
        req: &HttpRequest,
        _builtin: Option<AuthenticatedUser>,
    ) -> Option<AuthenticatedUser> {
        // Your application would look its session up here.
        let name = cookie(req, "demo_user")?;
        Some(AuthenticatedUser::new(
            format!("app-user-{name}"),
            name.to_owned(),
        ))
    }

    fn login_redirect(&self, return_to: &str) -> Option<HttpResponse> {
        let target = format!(
            "/app/login?return_to={}",
            form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
        );
        Some(HttpResponse {
            status: 302,
            headers: vec![("location".into(), target)],
            body: Vec::new(),
        })
    }
}

async fn app_login_page(Query(q): Query<HashMap<String, String>>) -> Html<String> {
    let return_to = q.get("return_to").cloned().unwrap_or_default();
    let escaped = return_to.replace('&', "&amp;").replace('"', "&quot;");
    Html(format!(
        "<form method=get action=/app/session><input type=hidden name=return_to value=\"{escaped}\">\
         <label>Your name <input name=name pattern=[a-z]+ required></label><button>Log in</button></form>"
    ))
}

async fn app_session(Query(q): Query<HashMap<String, String>>) -> impl IntoResponse {
    let name: String = q
        .get("name")
        .map(|n| n.chars().filter(char::is_ascii_lowercase).collect())
        .unwrap_or_default();
    // Only ever return to a local path.
    let back = q
        .get("return_to")
        .filter(|r| r.starts_with('/') && !r.starts_with("//"))
        .cloned()
        .unwrap_or_else(|| "/".into());
    (
        [(
            "set-cookie",
            format!("demo_user={name}; Path=/; HttpOnly; SameSite=Lax"),
        )],
        Redirect::to(&back),
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    let users = StoreUsers::new(store.clone(), TokioBlocking::default());
    let provider = Provider::builder(store.clone(), users)
        .issuer("http://127.0.0.1:3001")
        .available_scopes(ScopeSet::parse("calendar")?)
        .build()?;
    let (client, _) = NewClient::public("Calendar Widget")
        .redirect_uris(["http://127.0.0.1:3001/done"])
        .build(provider.entropy(), provider.clock().now());
    store.put_client(&client).await?;

    let mut config = UiConfig::new(SessionKey::generate(provider.entropy()));
    config.secure_cookies = false; // plain HTTP on loopback, for the demo only
    config.base_path = "/oauth2".into();
    let ui = Ui::new(provider.clone(), Pages::load(None)?, AppLogin, config);

    let app = Router::new()
        .route("/app/login", get(app_login_page))
        .route("/app/session", get(app_session))
        .route(
            "/done",
            get(|| async { "Authorized: the code is in the address bar." }),
        )
        .nest("/oauth2", router(provider).merge(authorize_router(ui)));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    let challenge =
        latchkey_core::pkce::s256_challenge("an-example-verifier-of-at-least-43-characters-long");
    println!(
        "open http://127.0.0.1:3001/oauth2/authorize?response_type=code&client_id={}&scope=calendar&code_challenge={challenge}&code_challenge_method=S256",
        client.id
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
