//! The actix guard accepts OAuth 1.0a-signed requests beside bearer tokens, realms standing
//! for scopes, and refuses with the OAuth Problem Reporting answers.

use actix_web::{App, HttpResponse, test, web};
use latchkey_actix::{Authenticated, BearerGuard};
use latchkey_core::http::{HttpRequest, Method};
use latchkey_oauth1::signature::{Secrets, SignatureMethod, sign_request};
use latchkey_testkit::TestKit;
use latchkey_testkit::oauth1_kit::{BASE, OAuth1Kit};

async fn me(Authenticated(token): Authenticated, body: web::Bytes) -> HttpResponse {
    HttpResponse::Ok().body(format!(
        "{}:{}:{}",
        token.subject.unwrap_or_default(),
        token.scope,
        String::from_utf8_lossy(&body)
    ))
}

fn guard(kit: &OAuth1Kit) -> BearerGuard {
    BearerGuard::new(TestKit::new().provider.guard("photos")).with_oauth1(kit.provider.clone())
}

fn to_actix(req: &HttpRequest) -> test::TestRequest {
    let uri = if req.query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.query)
    };
    let mut t = if req.method == Method::Post {
        test::TestRequest::post()
    } else {
        test::TestRequest::get()
    }
    .uri(&uri);
    for (name, value) in &req.headers {
        t = t.insert_header((name.as_str(), value.as_str()));
    }
    t.set_payload(req.body.clone())
}

async fn send(kit: &OAuth1Kit, realms: &str, req: &HttpRequest) -> (u16, String, String) {
    let guard = guard(kit);
    let app = test::init_service(
        App::new().service(
            web::resource("/photos")
                .wrap(guard.require(realms))
                .route(web::get().to(me))
                .route(web::post().to(me)),
        ),
    )
    .await;
    let resp = test::call_service(&app, to_actix(req).to_request()).await;
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = test::read_body(resp).await;
    (
        status,
        challenge,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

#[actix_web::test]
async fn signed_request_passes_and_its_replay_is_refused() {
    let kit = OAuth1Kit::new().await;
    let access = kit.access().await;
    let req = kit.resource_request(&access);
    let (status, _, body) = send(&kit, "photos", &req).await;
    assert_eq!((status, body.as_str()), (200, "user-1:photos:"));
    let (status, challenge, body) = send(&kit, "photos", &req).await;
    assert_eq!(status, 401);
    assert!(body.contains("oauth_problem=nonce_used"), "{body}");
    assert!(challenge.starts_with("OAuth realm="), "{challenge}");
}

#[actix_web::test]
async fn missing_realm_is_403_permission_denied() {
    let kit = OAuth1Kit::new().await;
    let access = kit.access().await;
    let (status, _, body) = send(&kit, "profile", &kit.resource_request(&access)).await;
    assert_eq!(status, 403);
    assert!(body.contains("oauth_problem=permission_denied"), "{body}");
}

#[actix_web::test]
async fn signed_form_body_is_checked_and_handed_on() {
    let kit = OAuth1Kit::new().await;
    let access = kit.access().await;
    let body = b"caption=a+b%2Bc".to_vec();
    let params = kit.oauth_params(SignatureMethod::HmacSha1, Some(&access.token), &[]);
    let header = sign_request(
        "POST",
        &format!("{BASE}/photos"),
        Some(&body),
        params,
        SignatureMethod::HmacSha1,
        &Secrets::new(&kit.consumer_secret, &access.secret),
        None,
    )
    .expect("signs");
    let req = HttpRequest::post_form("/photos", String::from_utf8_lossy(&body).into_owned())
        .with_header("authorization", header.clone());
    let (status, _, text) = send(&kit, "photos", &req).await;
    assert_eq!(
        (status, text.as_str()),
        (200, "user-1:photos:caption=a+b%2Bc")
    );
    let mut tampered = req;
    tampered.body = b"caption=changed".to_vec();
    let (status, _, text) = send(&kit, "photos", &tampered).await;
    assert_eq!(status, 401);
    assert!(text.contains("oauth_problem=signature_invalid"), "{text}");
}

#[actix_web::test]
async fn bearer_requests_still_use_the_bearer_guard() {
    let kit = OAuth1Kit::new().await;
    let (status, challenge, _) =
        send(&kit, "photos", &HttpRequest::new(Method::Get, "/photos")).await;
    assert_eq!(status, 401);
    assert!(challenge.starts_with("Bearer"), "{challenge}");
}

#[actix_web::test]
async fn oauth1_routes_issue_temporary_credentials_and_show_the_login_page() {
    use latchkey_oauth1::signature::SignatureMethod;
    use latchkey_testkit::oauth1_kit::{CALLBACK, field};
    use latchkey_ui::pages::Pages;
    use latchkey_ui::{BuiltinLogin, SessionKey, Ui, UiConfig};

    let kit = OAuth1Kit::new().await;
    let mut config = UiConfig::new(SessionKey::new([3; 32]));
    config.secure_cookies = false;
    let ui = Ui::new(
        TestKit::new().provider.clone(),
        Pages::load(None).expect("templates"),
        BuiltinLogin,
        config,
    );
    let app = test::init_service(
        App::new().configure(latchkey_actix::configure_oauth1(kit.provider.clone(), ui)),
    )
    .await;
    let params = kit.oauth_params(
        SignatureMethod::HmacSha1,
        None,
        &[("oauth_callback", CALLBACK)],
    );
    let signed = kit.signed(Method::Post, "/oauth1/request_token", params, "");
    let resp = test::call_service(&app, to_actix(&signed).to_request()).await;
    assert_eq!(resp.status().as_u16(), 200);
    let body = test::read_body(resp).await;
    let issued = latchkey_core::http::HttpResponse {
        status: 200,
        headers: Vec::new(),
        body: body.to_vec(),
    };
    let token = field(&issued, "oauth_token").expect("oauth_token");
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri(&format!("/oauth1/authorize?oauth_token={token}"))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status().as_u16(), 200);
    let page = String::from_utf8_lossy(&test::read_body(resp).await).into_owned();
    // minijinja escapes the slashes of the form action.
    assert!(
        page.contains("action=\"&#x2f;oauth1&#x2f;login\""),
        "{page}"
    );
}
