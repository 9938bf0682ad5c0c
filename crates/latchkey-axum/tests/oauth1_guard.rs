//! The axum guard accepts OAuth 1.0a-signed requests beside bearer tokens, realms standing
//! for scopes, and refuses with the OAuth Problem Reporting answers.

use axum::Extension;
use axum::body::Body;
use axum::http::Request;
use axum::routing::get;
use latchkey_axum::{BearerGuard, OAuth1Guard};
use latchkey_core::http::{HttpRequest, Method};
use latchkey_core::resource::AccessToken;
use latchkey_oauth1::signature::{Secrets, SignatureMethod, sign_request};
use latchkey_testkit::TestKit;
use latchkey_testkit::oauth1_kit::{BASE, OAuth1Kit};
use tower::ServiceExt;

async fn me(Extension(token): Extension<AccessToken>) -> String {
    format!("{}:{}", token.subject.unwrap_or_default(), token.scope)
}

fn app(kit: &OAuth1Kit, realms: &str) -> axum::Router {
    let oauth2 = TestKit::new();
    let guard = BearerGuard::new(oauth2.provider.guard("photos"))
        .with_oauth1(OAuth1Guard::new(kit.provider.clone()));
    axum::Router::new()
        .route("/photos", get(me).post(me))
        .layer(guard.require(realms))
}

fn to_axum(req: &HttpRequest) -> Request<Body> {
    let method = if req.method == Method::Post {
        "POST"
    } else {
        "GET"
    };
    let uri = if req.query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.query)
    };
    let mut builder = Request::builder().method(method).uri(uri);
    for (name, value) in &req.headers {
        builder = builder.header(name, value);
    }
    builder.body(Body::from(req.body.clone())).expect("request")
}

async fn send(app: axum::Router, req: &HttpRequest) -> (u16, Option<String>, String) {
    let resp = app.oneshot(to_axum(req)).await.expect("answers");
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
        .await
        .expect("body");
    (
        status,
        challenge,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[tokio::test]
async fn signed_request_passes_and_its_replay_is_refused() {
    let kit = OAuth1Kit::new().await;
    let access = kit.access().await;
    let req = kit.resource_request(&access);
    let (status, _, body) = send(app(&kit, "photos"), &req).await;
    assert_eq!((status, body.as_str()), (200, "user-1:photos"));
    let (status, challenge, body) = send(app(&kit, "photos"), &req).await;
    assert_eq!(status, 401);
    assert!(body.contains("oauth_problem=nonce_used"), "{body}");
    assert!(challenge.is_some_and(|c| c.starts_with("OAuth realm=")));
}

#[tokio::test]
async fn missing_realm_is_403_permission_denied() {
    let kit = OAuth1Kit::new().await;
    let access = kit.access().await;
    let (status, _, body) = send(app(&kit, "profile"), &kit.resource_request(&access)).await;
    assert_eq!(status, 403);
    assert!(body.contains("oauth_problem=permission_denied"), "{body}");
}

#[tokio::test]
async fn signed_form_body_is_covered_by_the_signature() {
    let kit = OAuth1Kit::new().await;
    let access = kit.access().await;
    let body = b"caption=a+b%2Bc&album=summer".to_vec();
    let signed = |body: &[u8]| {
        let params = kit.oauth_params(SignatureMethod::HmacSha1, Some(&access.token), &[]);
        let header = sign_request(
            "POST",
            &format!("{BASE}/photos"),
            Some(body),
            params,
            SignatureMethod::HmacSha1,
            &Secrets::new(&kit.consumer_secret, &access.secret),
            None,
        )
        .expect("signs");
        HttpRequest::post_form("/photos", String::from_utf8_lossy(body).into_owned())
            .with_header("authorization", header)
    };
    let (status, _, text) = send(app(&kit, "photos"), &signed(&body)).await;
    assert_eq!(status, 200, "{text}");
    // The same header over a different body no longer matches.
    let mut tampered = signed(&body);
    tampered.body = b"caption=changed&album=summer".to_vec();
    let (status, _, text) = send(app(&kit, "photos"), &tampered).await;
    assert_eq!(status, 401);
    assert!(text.contains("oauth_problem=signature_invalid"), "{text}");
}

#[tokio::test]
async fn bearer_requests_still_use_the_bearer_guard() {
    let kit = OAuth1Kit::new().await;
    let req = HttpRequest::new(Method::Get, "/photos");
    let (status, challenge, _) = send(app(&kit, "photos"), &req).await;
    assert_eq!(status, 401);
    assert!(challenge.is_some_and(|c| c.starts_with("Bearer")));
}
