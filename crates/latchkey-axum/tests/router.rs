//! The router answers through axum exactly as the core does, with no socket.

use axum::body::Body;
use axum::http::{Request, header};
use latchkey_axum::router;
use latchkey_testkit::TestKit;
use tower::ServiceExt;

async fn send(
    app: axum::Router,
    req: Request<Body>,
) -> (u16, axum::http::HeaderMap, serde_json::Value) {
    let resp = app.oneshot(req).await.expect("router answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or_default(),
    )
}

#[tokio::test]
async fn token_endpoint_issues_through_axum() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let app = router(kit.provider.clone());
    let req = Request::post("/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, client.basic())
        .body(Body::from("grant_type=client_credentials&scope=write"))
        .expect("request");
    let (status, headers, body) = send(app, req).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "write");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(headers[header::PRAGMA], "no-cache");
}

#[tokio::test]
async fn oversized_body_is_refused_cleanly() {
    let kit = TestKit::new();
    let app = router(kit.provider.clone());
    let req = Request::post("/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(vec![b'a'; 100 * 1024]))
        .expect("request");
    let (status, _, body) = send(app, req).await;
    assert_eq!(status, 413);
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let kit = TestKit::new();
    let app = router(kit.provider.clone());
    let (status, headers, body) = send(
        app,
        Request::get("/token").body(Body::empty()).expect("request"),
    )
    .await;
    assert_eq!(status, 405);
    assert_eq!(headers[header::ALLOW], "POST");
    assert_eq!(body["error"], "invalid_request");
}

/// OpenID Connect Core §3.1.2.1: the authorization request by GET and by POST (form-encoded)
/// get the same page; the consent route is mounted beside it.
#[tokio::test]
async fn authorize_router_takes_the_request_by_get_and_by_post() {
    use latchkey_ui::pages::Pages;
    use latchkey_ui::{BuiltinLogin, SessionKey, Ui, UiConfig};
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let mut config = UiConfig::new(SessionKey::new([3; 32]));
    config.secure_cookies = false;
    let ui = Ui::new(
        kit.provider.clone(),
        Pages::load(None).expect("templates"),
        BuiltinLogin,
        config,
    );
    let app = latchkey_axum::authorize_router(ui);
    let query = format!(
        "response_type=code&client_id={}&state=s&code_challenge={}&code_challenge_method=S256",
        spa.id(),
        latchkey_core::pkce::s256_challenge(latchkey_testkit::VERIFIER)
    );
    let page = |req: Request<Body>| {
        let app = app.clone();
        async move {
            let resp = app.oneshot(req).await.expect("router answers");
            let status = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .expect("body");
            (status, String::from_utf8(bytes.to_vec()).expect("utf-8"))
        }
    };
    let get = Request::get(format!("/authorize?{query}"))
        .body(Body::empty())
        .expect("request");
    let post = Request::post("/authorize")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(query.clone()))
        .expect("request");
    for (method, req) in [("GET", get), ("POST", post)] {
        let (status, body) = page(req).await;
        assert_eq!(status, 200, "{method}: {body}");
        assert!(body.contains("Sign in"), "{method}: {body}");
    }
    let unregistered = Request::post("/authorize")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(format!(
            "{query}&redirect_uri=https%3A%2F%2Fevil.example%2Fcb"
        )))
        .expect("request");
    assert_eq!(page(unregistered).await.0, 400, "shown, never redirected");
    let consent = Request::get("/consent?request=forged")
        .body(Body::empty())
        .expect("request");
    assert_eq!(page(consent).await.0, 400);
}
