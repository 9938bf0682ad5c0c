//! The shared guard sends each request to the right check, answers each refusal the way its
//! scheme says, and reads a body only when an OAuth 1.0a signature may cover it.

use latchkey_adapter::{OAuth1Guard, ResourceGuard};
use latchkey_core::http::{HeaderError, HttpRequest, Method};
use latchkey_core::scope::ScopeSet;
use latchkey_testkit::TestKit;
use latchkey_testkit::oauth1_kit::OAuth1Kit;

fn photos() -> ScopeSet {
    ScopeSet::parse("photos").expect("scope")
}

#[tokio::test]
async fn a_request_without_credentials_gets_the_bearer_challenge() {
    let kit = TestKit::new();
    let guard = ResourceGuard::new(kit.provider.guard("photos"));
    let refusal = guard
        .check(HttpRequest::new(Method::Get, "/photos"), &photos())
        .await
        .expect_err("refused");
    assert_eq!(refusal.status, 401);
    assert_eq!(
        refusal.header("www-authenticate"),
        Some("Bearer realm=\"photos\"")
    );
}

#[tokio::test]
async fn a_signed_request_goes_to_the_oauth1_check_and_its_replay_is_refused_there() {
    let oauth1 = OAuth1Kit::new().await;
    let guard = ResourceGuard::new(TestKit::new().provider.guard("photos"))
        .with_oauth1(OAuth1Guard::new(oauth1.provider.clone()));
    let access = oauth1.access().await;
    let req = oauth1.resource_request(&access);
    let token = guard.check(req.clone(), &photos()).await.expect("accepted");
    assert_eq!(token.subject.as_deref(), Some("user-1"));
    let refusal = guard.check(req, &photos()).await.expect_err("replay");
    assert_eq!(refusal.status, 401);
    assert!(
        refusal
            .header("www-authenticate")
            .is_some_and(|c| c.starts_with("OAuth realm=") && c.contains("nonce_used")),
        "{:?}",
        refusal.header("www-authenticate")
    );
}

#[tokio::test]
async fn without_oauth1_a_signed_request_is_just_a_request_without_a_bearer_token() {
    let oauth1 = OAuth1Kit::new().await;
    let guard = ResourceGuard::new(TestKit::new().provider.guard("photos"));
    let access = oauth1.access().await;
    let refusal = guard
        .check(oauth1.resource_request(&access), &photos())
        .await
        .expect_err("refused");
    assert!(
        refusal
            .header("www-authenticate")
            .is_some_and(|c| c.starts_with("Bearer")),
    );
}

#[test]
fn malformed_headers_are_an_rfc_6750_invalid_request() {
    let guard = ResourceGuard::new(TestKit::new().provider.guard("photos"));
    let refusal = guard.malformed(HeaderError::NotVisibleAscii);
    assert_eq!(refusal.status, 400);
    assert!(
        refusal
            .header("www-authenticate")
            .is_some_and(|c| c.contains("error=\"invalid_request\""))
    );
}

#[tokio::test]
async fn only_a_form_body_with_oauth1_on_needs_reading() {
    let bearer_only = ResourceGuard::new(TestKit::new().provider.guard("photos"));
    let oauth1 = OAuth1Kit::new().await;
    let both = bearer_only
        .clone()
        .with_oauth1(OAuth1Guard::new(oauth1.provider.clone()));
    let form = Some("Application/X-WWW-Form-Urlencoded; charset=utf-8");
    assert!(both.needs_body("POST", form));
    assert!(both.needs_body("PUT", Some("application/x-www-form-urlencoded")));
    assert!(!both.needs_body("GET", form));
    assert!(!both.needs_body("HEAD", form));
    assert!(!both.needs_body("POST", Some("application/json")));
    assert!(!both.needs_body("POST", None));
    assert!(!bearer_only.needs_body("POST", form));
}

#[test]
fn required_scopes_are_parsed_once_from_the_code() {
    assert_eq!(
        ResourceGuard::required_scopes("read write"),
        ScopeSet::parse("write read").expect("scope")
    );
}

#[test]
#[should_panic(expected = "invalid scope")]
fn an_invalid_required_scope_is_a_programming_error() {
    ResourceGuard::required_scopes("read \"write\"");
}
