//! Pushed authorization requests (RFC 9126) on the memory store: the client pushes, the
//! browser brings the `request_uri` to `/authorize`, and the request is used up when it is
//! decided.

use latchkey_core::client::NewClient;
use latchkey_core::endpoint::authorize::{AuthorizeOutcome, Decision, Pending};
use latchkey_core::http::{HttpRequest, HttpResponse, Method};
use latchkey_core::pkce::s256_challenge;
use latchkey_testkit::{
    REDIRECT_URI, ResponseExt, TestClient, TestKit, VERIFIER, form_encode, redirect_params,
};

const ALLOW: Option<Decision> = Some(Decision::Allow { remember: false });

fn auth_params(extra: &str) -> String {
    format!(
        "response_type=code&state=s1&redirect_uri={}&scope=read&code_challenge={}&code_challenge_method=S256{extra}",
        form_encode(REDIRECT_URI),
        s256_challenge(VERIFIER)
    )
}

async fn push(kit: &TestKit, client: &TestClient, body: &str) -> HttpResponse {
    let mut req = HttpRequest::post_form("/par", body);
    if client.secret.is_some() {
        req = req.with_header("authorization", client.basic());
    }
    kit.provider.pushed_authorization(&req).await
}

/// Pushes `auth_params("")` for `client` and returns the `request_uri`.
async fn pushed_uri(kit: &TestKit, client: &TestClient) -> String {
    let body = format!("client_id={}&{}", form_encode(client.id()), auth_params(""));
    let resp = push(kit, client, &body).await;
    assert_eq!(resp.status, 201, "{:?}", resp.json_body());
    let json = resp.json_body();
    assert_eq!(json["expires_in"], 60);
    json["request_uri"]
        .as_str()
        .expect("request_uri")
        .to_owned()
}

fn by_uri(client: &TestClient, uri: &str) -> String {
    format!(
        "client_id={}&request_uri={}",
        form_encode(client.id()),
        form_encode(uri)
    )
}

fn page_error(outcome: &AuthorizeOutcome) -> String {
    match outcome {
        AuthorizeOutcome::ErrorPage(err) => err.code().as_str().to_owned(),
        other => panic!("expected an error page, got {other:?}"),
    }
}

#[tokio::test]
async fn a_pushed_request_runs_through_login_and_consent_to_a_code_once() {
    let kit = TestKit::new();
    let web = kit.web_client().await;
    let uri = pushed_uri(&kit, &web).await;
    assert!(uri.starts_with("urn:ietf:params:oauth:request_uri:"));
    let query = by_uri(&web, &uri);
    // The browser comes back several times before the user decides.
    assert!(matches!(
        kit.authorize(&query, None, None).await,
        AuthorizeOutcome::Login(_)
    ));
    let AuthorizeOutcome::Consent(request) = kit.authorize(&query, Some(&kit.alice()), None).await
    else {
        panic!("expected the consent step");
    };
    assert_eq!(request.scope().to_string(), "read");
    assert_eq!(request.state(), Some("s1"));
    let params = redirect_params(&kit.authorize(&query, Some(&kit.alice()), ALLOW).await);
    let code = &params["code"];
    assert_eq!(params["state"], "s1");
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
        form_encode(REDIRECT_URI)
    );
    kit.token(&web, &body).await.expect_ok();
    // Used up: the same request_uri mints nothing again.
    let again = kit.authorize(&query, Some(&kit.alice()), ALLOW).await;
    assert_eq!(page_error(&again), "invalid_request_uri");
}

/// Posts the consent form that resumes the pending request `text`, approving as Alice.
async fn resume(kit: &TestKit, text: &str) -> AuthorizeOutcome {
    let pending = Pending::decode(text).expect("decodes");
    let user = kit.alice();
    let req = HttpRequest::new(Method::Post, "/consent");
    kit.provider
        .resume_authorize(
            &req,
            pending,
            Some(latchkey_core::endpoint::authorize::Authentication::of(
                &user,
            )),
            ALLOW,
        )
        .await
}

#[tokio::test]
async fn the_pending_login_state_carries_the_pushed_request_and_is_single_use() {
    let kit = TestKit::new();
    let web = kit.web_client().await;
    let uri = pushed_uri(&kit, &web).await;
    let AuthorizeOutcome::Login(request) = kit.authorize(&by_uri(&web, &uri), None, None).await
    else {
        panic!("expected the login step");
    };
    let text = request.pending();
    let first = resume(&kit, &text).await;
    assert!(redirect_params(&first).contains_key("code"));
    // A second consent form from the same pending state is refused.
    assert_eq!(
        page_error(&resume(&kit, &text).await),
        "invalid_request_uri"
    );
}

#[tokio::test]
async fn another_client_cannot_use_a_request_uri() {
    let kit = TestKit::new();
    let web = kit.web_client().await;
    let other = kit.web_client().await;
    let uri = pushed_uri(&kit, &web).await;
    let outcome = kit
        .authorize(&by_uri(&other, &uri), Some(&kit.alice()), ALLOW)
        .await;
    assert_eq!(page_error(&outcome), "invalid_request_uri");
    // It stays usable by its own client.
    let params = redirect_params(
        &kit.authorize(&by_uri(&web, &uri), Some(&kit.alice()), ALLOW)
            .await,
    );
    assert!(params.contains_key("code"));
}

#[tokio::test]
async fn an_expired_request_uri_is_refused() {
    let kit = TestKit::new();
    let web = kit.web_client().await;
    let uri = pushed_uri(&kit, &web).await;
    kit.clock.advance(60);
    let outcome = kit
        .authorize(&by_uri(&web, &uri), Some(&kit.alice()), ALLOW)
        .await;
    assert_eq!(page_error(&outcome), "invalid_request_uri");
    let outcome = kit
        .authorize(
            &by_uri(&web, "urn:ietf:params:oauth:request_uri:made-up"),
            None,
            None,
        )
        .await;
    assert_eq!(page_error(&outcome), "invalid_request_uri");
}

#[tokio::test]
async fn only_the_pushed_parameters_count() {
    let kit = TestKit::new();
    let web = kit.web_client().await;
    let uri = pushed_uri(&kit, &web).await;
    let query = format!(
        "{}&scope=admin&state=evil&response_type=token",
        by_uri(&web, &uri)
    );
    let params = redirect_params(&kit.authorize(&query, Some(&kit.alice()), ALLOW).await);
    assert_eq!(params["state"], "s1");
    assert!(params.contains_key("code"));
}

#[tokio::test]
async fn pushed_errors_are_json_not_redirects() {
    let kit = TestKit::new();
    let web = kit.web_client().await;
    let bad_scope =
        format!("client_id={}&{}", web.id(), auth_params("&scope=nope")).replace("scope=read&", "");
    push(&kit, &web, &bad_scope)
        .await
        .expect_error("invalid_scope");
    let bad_redirect = format!(
        "client_id={}&response_type=code&redirect_uri={}",
        web.id(),
        form_encode("https://evil.example/cb")
    );
    push(&kit, &web, &bad_redirect)
        .await
        .expect_error("invalid_request");
    let with_uri = format!(
        "client_id={}&{}&request_uri=urn%3Aietf%3Aparams%3Aoauth%3Arequest_uri%3Ax",
        web.id(),
        auth_params("")
    );
    push(&kit, &web, &with_uri)
        .await
        .expect_error("invalid_request");
}

#[tokio::test]
async fn pushing_needs_the_clients_authentication() {
    let kit = TestKit::new();
    let web = kit.web_client().await;
    let body = format!("client_id={}&{}", web.id(), auth_params(""));
    let resp = kit
        .provider
        .pushed_authorization(&HttpRequest::post_form("/par", body.clone()))
        .await;
    resp.expect_error("invalid_client");
    let wrong = HttpRequest::post_form("/par", format!("{body}&client_secret=wrong"));
    kit.provider
        .pushed_authorization(&wrong)
        .await
        .expect_error("invalid_client");
    // A public client names itself (RFC 9126 §2.1) and still needs PKCE.
    let spa = kit.spa_client().await;
    let resp = push(
        &kit,
        &spa,
        &format!("client_id={}&{}", spa.id(), auth_params("")),
    )
    .await;
    assert_eq!(resp.status, 201);
    let no_pkce = format!(
        "client_id={}&response_type=code&redirect_uri={}",
        spa.id(),
        form_encode(REDIRECT_URI)
    );
    push(&kit, &spa, &no_pkce)
        .await
        .expect_error("invalid_request");
}

#[tokio::test]
async fn a_client_that_must_push_cannot_authorize_without() {
    let kit = TestKit::new();
    let mut new = NewClient::confidential("Strict").redirect_uris([REDIRECT_URI]);
    new = new.grant_types([latchkey_core::client::GrantType::AuthorizationCode]);
    let strict = kit.register(new).await;
    let mut client = strict.client.clone();
    client.metadata.require_pushed_authorization_requests = true;
    latchkey_core::store::ClientStore::put_client(&kit.store, &client)
        .await
        .expect("put");
    let query = format!("client_id={}&{}", strict.id(), auth_params(""));
    let params = redirect_params(&kit.authorize(&query, Some(&kit.alice()), ALLOW).await);
    assert_eq!(params["error"], "invalid_request");
    assert!(!params.contains_key("code"));
    let uri = pushed_uri(&kit, &strict).await;
    let params = redirect_params(
        &kit.authorize(&by_uri(&strict, &uri), Some(&kit.alice()), ALLOW)
            .await,
    );
    assert!(params.contains_key("code"));
}

#[tokio::test]
async fn the_server_can_require_pushed_requests_and_says_so() {
    let kit = TestKit::with_config(|c| c.require_pushed_authorization_requests = true);
    let web = kit.web_client().await;
    let query = format!("client_id={}&{}", web.id(), auth_params(""));
    let params = redirect_params(&kit.authorize(&query, Some(&kit.alice()), ALLOW).await);
    assert_eq!(params["error"], "invalid_request");
    let doc = kit.provider.metadata().json_body();
    assert_eq!(doc["require_pushed_authorization_requests"], true);
    assert_eq!(
        doc["pushed_authorization_request_endpoint"],
        "https://auth.example.test/par"
    );
}
