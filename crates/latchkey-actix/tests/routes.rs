//! The configured routes answer through actix exactly as the core does, mounted in a
//! `web::scope`, with no socket.

use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::{App, test, web};
use latchkey_actix::{
    Authenticated, BearerGuard, configure, configure_authorize, configure_device,
};
use latchkey_core::pkce::s256_challenge;
use latchkey_core::resource::Guard;
use latchkey_testkit::http_cases::{Fixture, REALM, me_json};
use latchkey_testkit::{TestKit, VERIFIER};
use latchkey_ui::pages::Pages;
use latchkey_ui::{BuiltinLogin, SessionKey, Ui, UiConfig};

fn header<B>(resp: &ServiceResponse<B>, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[actix_web::test]
async fn token_endpoint_issues_inside_a_scope() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let app = test::init_service(
        App::new().service(web::scope("/oauth2").configure(configure(kit.provider.clone()))),
    )
    .await;
    let req = test::TestRequest::post()
        .uri("/oauth2/token")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .insert_header(("authorization", client.basic()))
        .set_payload("grant_type=client_credentials&scope=write")
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(header(&resp, "cache-control"), "no-store");
    assert_eq!(header(&resp, "pragma"), "no-cache");
    let body: serde_json::Value = test::read_body_json(resp).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "write");

    let req = test::TestRequest::get()
        .uri("/oauth2/.well-known/oauth-authorization-server")
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[actix_web::test]
async fn oversized_body_is_refused_cleanly() {
    let kit = TestKit::new();
    let app = test::init_service(App::new().configure(configure(kit.provider.clone()))).await;
    let req = test::TestRequest::post()
        .uri("/token")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(vec![b'a'; 100 * 1024])
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: serde_json::Value = test::read_body_json(resp).await;
    assert_eq!(body["error"], "invalid_request");
}

#[actix_web::test]
async fn wrong_method_is_405_with_allow() {
    let kit = TestKit::new();
    let app = test::init_service(App::new().configure(configure(kit.provider.clone()))).await;
    let resp = test::call_service(&app, test::TestRequest::get().uri("/token").to_request()).await;
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(header(&resp, "allow"), "POST");
}

#[actix_web::test]
async fn authorize_shows_the_login_page() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let mut config = UiConfig::new(SessionKey::new([3; 32]));
    config.secure_cookies = false;
    config.base_path = "/oauth2".into();
    let ui = Ui::new(
        kit.provider.clone(),
        Pages::load(None).expect("templates"),
        BuiltinLogin,
        config,
    );
    let app = test::init_service(
        App::new().service(web::scope("/oauth2").configure(configure_authorize(ui))),
    )
    .await;
    let uri = format!(
        "/oauth2/authorize?response_type=code&client_id={}&state=s&code_challenge={}&code_challenge_method=S256",
        spa.id(),
        s256_challenge(VERIFIER)
    );
    let resp = test::call_service(&app, test::TestRequest::get().uri(&uri).to_request()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = String::from_utf8(test::read_body(resp).await.to_vec()).expect("utf-8");
    assert!(body.contains("Sign in"), "{body}");
}

/// OpenID Connect Core §3.1.2.1: the authorization request by POST, form-encoded, gets what
/// the GET gets; the consent route is mounted beside it and refuses a request without a
/// sealed pending value.
#[actix_web::test]
async fn authorize_by_post_shows_the_login_page_too_and_consent_is_mounted() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let mut config = UiConfig::new(SessionKey::new([3; 32]));
    config.secure_cookies = false;
    config.base_path = "/oauth2".into();
    let ui = Ui::new(
        kit.provider.clone(),
        Pages::load(None).expect("templates"),
        BuiltinLogin,
        config,
    );
    let app = test::init_service(
        App::new().service(web::scope("/oauth2").configure(configure_authorize(ui))),
    )
    .await;
    let form = format!(
        "response_type=code&client_id={}&state=s&code_challenge={}&code_challenge_method=S256",
        spa.id(),
        s256_challenge(VERIFIER)
    );
    let post = test::TestRequest::post()
        .uri("/oauth2/authorize")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(form)
        .to_request();
    let resp = test::call_service(&app, post).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body = String::from_utf8(test::read_body(resp).await.to_vec()).expect("utf-8");
    assert!(body.contains("Sign in"), "{body}");
    assert!(body.contains("name=\"request\""), "{body}");

    let consent = test::TestRequest::get()
        .uri("/oauth2/consent?request=forged")
        .to_request();
    let resp = test::call_service(&app, consent).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(header(&resp, "location"), "");
}

async fn me(Authenticated(token): Authenticated) -> web::Json<serde_json::Value> {
    web::Json(me_json(&token))
}

#[actix_web::test]
async fn a_guarded_scope_hands_its_checked_token_to_the_extractor() {
    let fx = Fixture::new().await;
    let guard = BearerGuard::new(Guard::new(fx.kit.provider.verifier(), REALM));
    // No `web::Data<BearerGuard>`: the extractor can only use the middleware's token.
    let app = test::init_service(
        App::new().service(
            web::scope("/api")
                .wrap(guard.require("read"))
                .route("/me", web::get().to(me)),
        ),
    )
    .await;
    let req = test::TestRequest::get()
        .uri("/api/me")
        .insert_header(("authorization", format!("Bearer {}", fx.read_token)))
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = test::read_body_json(resp).await;
    assert_eq!(body["sub"], "user-alice");

    let resp = test::call_service(&app, test::TestRequest::get().uri("/api/me").to_request()).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&resp, "www-authenticate"),
        format!("Bearer realm=\"{REALM}\"")
    );
}

#[actix_web::test]
async fn a_resource_publishes_its_metadata_and_its_guard_names_it_in_challenges() {
    use latchkey_core::indicator::ResourceUri;
    use latchkey_core::resource::metadata::ProtectedResource;
    let kit = TestKit::new();
    let resource = ProtectedResource::new(
        &ResourceUri::parse("https://api.example.test/v1").expect("uri"),
        "https://auth.example.test",
    )
    .expect("http resource");
    let guard = BearerGuard::new(kit.provider.guard("api").resource(&resource));
    let app = test::init_service(
        App::new()
            .app_data(web::Data::new(guard))
            .configure(latchkey_actix::configure_protected_resources([resource]))
            .route(
                "/v1",
                web::get().to(|Authenticated(_): Authenticated| async { "ok" }),
            ),
    )
    .await;
    let req = test::TestRequest::get()
        .uri("/.well-known/oauth-protected-resource/v1")
        .to_request();
    let doc: serde_json::Value = test::call_and_read_body_json(&app, req).await;
    assert_eq!(doc["resource"], "https://api.example.test/v1");
    assert_eq!(doc["authorization_servers"][0], "https://auth.example.test");
    // A token for no resource is not one for this resource.
    let client = kit.confidential_client().await;
    let body = latchkey_testkit::ResponseExt::expect_ok(
        &kit.token(&client, "grant_type=client_credentials").await,
    );
    let req = test::TestRequest::get()
        .uri("/v1")
        .insert_header((
            "authorization",
            format!("Bearer {}", body["access_token"].as_str().expect("token")),
        ))
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = header(&resp, "www-authenticate");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(
        challenge.contains(
            "resource_metadata=\"https://api.example.test/.well-known/oauth-protected-resource/v1\""
        ),
        "{challenge}"
    );
}

/// RFC 8628 through actix as through axum: the device authorization endpoint answers a
/// device client with its codes, and the verification page is mounted beside it.
#[actix_web::test]
async fn the_device_routes_issue_codes_and_show_the_verification_page() {
    use latchkey_core::client::{GrantType, NewClient};
    let kit = TestKit::new();
    let tv = kit
        .register(NewClient::public("TV").grant_types([GrantType::DeviceCode]))
        .await;
    let mut config = UiConfig::new(SessionKey::new([3; 32]));
    config.secure_cookies = false;
    config.base_path = "/oauth2".into();
    let ui = Ui::new(
        kit.provider.clone(),
        Pages::load(None).expect("templates"),
        BuiltinLogin,
        config,
    );
    let app = test::init_service(
        App::new().service(web::scope("/oauth2").configure(configure_device(ui))),
    )
    .await;
    let req = test::TestRequest::post()
        .uri("/oauth2/device_authorization")
        .insert_header(("content-type", "application/x-www-form-urlencoded"))
        .set_payload(format!("client_id={}&scope=read", tv.id()))
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: serde_json::Value = test::read_body_json(resp).await;
    let user_code = body["user_code"].as_str().expect("user_code").to_owned();
    assert!(body["device_code"].is_string(), "{body}");
    let page = test::call_service(
        &app,
        test::TestRequest::get()
            .uri(&format!("/oauth2/device?user_code={user_code}"))
            .to_request(),
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = String::from_utf8(test::read_body(page).await.to_vec()).expect("utf-8");
    assert!(html.contains("<form"), "{html}");
}
