//! The shared table of endpoint and guard cases, over real HTTP, on axum.

use axum::extract::FromRef;
use axum::routing::get;
use axum::{Json, Router};
use latchkey_axum::{Authenticated, BearerGuard, router};
use latchkey_testkit::http_cases::{Fixture, REALM, me_json, run};

#[derive(Clone)]
struct AppState {
    guard: BearerGuard,
}

impl FromRef<AppState> for BearerGuard {
    fn from_ref(state: &AppState) -> Self {
        state.guard.clone()
    }
}

async fn me(Authenticated(token): Authenticated) -> Json<serde_json::Value> {
    Json(me_json(&token))
}

#[tokio::test]
async fn axum_answers_the_shared_table() {
    let fx = Fixture::new().await;
    let guard = BearerGuard::new(fx.kit.provider.jwt_guard(REALM));
    let api = Router::new()
        .route("/api/me", get(me))
        .route("/api/read", get(me).layer(guard.require("read")))
        .route("/api/admin", get(me).layer(guard.require("admin")))
        .with_state(AppState { guard });
    let app = router(fx.provider()).merge(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    run(&base, &fx).await;
}
