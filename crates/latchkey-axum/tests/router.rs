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
