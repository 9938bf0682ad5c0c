//! The three-legged flow and every refusal, on the memory stores with a manual clock.

use latchkey_core::client::NewClient;
use latchkey_core::clock::Clock;
use latchkey_core::entropy::SeededEntropy;
use latchkey_core::http::{HttpRequest, Method};
use latchkey_core::scope::ScopeSet;
use latchkey_core::store::ClientStore;
use latchkey_oauth1::AuthorizeOutcome;
use latchkey_oauth1::signature::SignatureMethod;
use latchkey_testkit::oauth1_kit::{
    CALLBACK, Credentials, OAuth1Kit as Kit, alice, field, form, problem,
};
use std::sync::atomic::AtomicU64;

fn realms(raw: &str) -> ScopeSet {
    ScopeSet::parse(raw).expect("valid")
}

#[tokio::test]
async fn three_legged_flow_issues_a_token_that_opens_the_resource() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    let token = kit
        .provider
        .verify(&kit.resource_request(&access), &realms("photos"))
        .await
        .expect("a signed request with the access token is accepted");
    assert_eq!(token.subject.as_deref(), Some("user-1"));
    assert_eq!(token.username.as_deref(), Some("alice"));
    assert_eq!(token.client_id, kit.consumer_key);
    assert!(token.has_scope("photos"));
}

#[tokio::test]
async fn login_then_consent_show_the_realms_like_scopes() {
    let kit = Kit::new().await;
    let request = kit.request_token().await;
    let mut req = HttpRequest::new(Method::Get, "/oauth1/authorize");
    req.query = format!("oauth_token={}", request.token);
    let outcome = kit.provider.authorize(&req, None, None).await;
    assert!(
        matches!(outcome, AuthorizeOutcome::Login { .. }),
        "{outcome:?}"
    );
    let outcome = kit.provider.authorize(&req, Some(&alice()), None).await;
    let AuthorizeOutcome::Consent {
        client,
        realms: asked,
        callback_host,
        ..
    } = outcome
    else {
        panic!("expected consent, got {outcome:?}");
    };
    assert_eq!(client.name, "Printer");
    assert_eq!(asked, realms("photos"));
    assert_eq!(callback_host, "printer.example.com");
}

#[tokio::test]
async fn out_of_band_callback_shows_the_verifier() {
    let kit = Kit::new().await;
    let params = kit.oauth_params(
        SignatureMethod::HmacSha1,
        None,
        &[("oauth_callback", "oob")],
    );
    let req = kit.signed(Method::Post, "/oauth1/request_token", params, "");
    let response = kit.provider.request_token(&req).await;
    let token = field(&response, "oauth_token").expect("token");
    let mut req = HttpRequest::new(Method::Get, "/oauth1/authorize");
    req.query = format!("oauth_token={token}");
    let outcome = kit
        .provider
        .authorize(&req, Some(&alice()), Some(true))
        .await;
    let AuthorizeOutcome::ShowVerifier { verifier, .. } = outcome else {
        panic!("expected the verifier page, got {outcome:?}");
    };
    let request = Credentials {
        token,
        secret: field(&response, "oauth_token_secret").expect("secret"),
    };
    assert_eq!(kit.exchange(&request, &verifier).await.status, 200);
}

#[tokio::test]
async fn bad_signature_is_refused_with_signature_invalid() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    let forged = Credentials {
        secret: "not-the-secret".into(),
        ..access
    };
    let err = kit
        .provider
        .verify(&kit.resource_request(&forged), &ScopeSet::empty())
        .await
        .expect_err("refused");
    let response = err.to_response("Photos");
    assert_eq!(response.status, 401);
    assert_eq!(problem(&response).as_deref(), Some("signature_invalid"));
    assert!(
        response
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("OAuth realm=\"Photos\""))
    );
}

#[tokio::test]
async fn stale_timestamp_is_refused_with_timestamp_refused() {
    let kit = Kit::new().await;
    let params = kit.oauth_params(
        SignatureMethod::HmacSha1,
        None,
        &[("oauth_callback", CALLBACK)],
    );
    let req = kit.signed(Method::Post, "/oauth1/request_token", params, "");
    kit.clock.advance(301);
    let response = kit.provider.request_token(&req).await;
    assert_eq!(response.status, 401);
    assert_eq!(problem(&response).as_deref(), Some("timestamp_refused"));
    assert!(field(&response, "oauth_acceptable_timestamps").is_some());
}

#[tokio::test]
async fn replayed_nonce_is_refused_with_nonce_used() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    let req = kit.resource_request(&access);
    kit.provider
        .verify(&req, &ScopeSet::empty())
        .await
        .expect("first use");
    let err = kit
        .provider
        .verify(&req, &ScopeSet::empty())
        .await
        .expect_err("replay refused");
    let response = err.to_response("r");
    assert_eq!(response.status, 401);
    assert_eq!(problem(&response).as_deref(), Some("nonce_used"));
}

#[tokio::test]
async fn reused_verifier_and_request_token_are_refused() {
    let kit = Kit::new().await;
    let request = kit.request_token().await;
    let verifier = kit.approve(&request).await;
    assert_eq!(kit.exchange(&request, &verifier).await.status, 200);
    let again = kit.exchange(&request, &verifier).await;
    assert_eq!(again.status, 401);
    assert_eq!(problem(&again).as_deref(), Some("token_rejected"));
}

#[tokio::test]
async fn wrong_verifier_is_refused_and_spends_the_request_token() {
    let kit = Kit::new().await;
    let request = kit.request_token().await;
    let verifier = kit.approve(&request).await;
    let wrong = kit.exchange(&request, "guessed").await;
    assert_eq!(wrong.status, 401);
    assert_eq!(problem(&wrong).as_deref(), Some("verifier_invalid"));
    let right = kit.exchange(&request, &verifier).await;
    assert_eq!(problem(&right).as_deref(), Some("token_rejected"));
}

#[tokio::test]
async fn request_token_is_authorized_only_once() {
    let kit = Kit::new().await;
    let request = kit.request_token().await;
    kit.approve(&request).await;
    let mut req = HttpRequest::new(Method::Get, "/oauth1/authorize");
    req.query = format!("oauth_token={}", request.token);
    let outcome = kit
        .provider
        .authorize(&req, Some(&alice()), Some(true))
        .await;
    assert!(matches!(outcome, AuthorizeOutcome::Error(_)), "{outcome:?}");
}

#[tokio::test]
async fn expired_request_token_cannot_be_authorized() {
    let kit = Kit::new().await;
    let request = kit.request_token().await;
    kit.clock.advance(601);
    let mut req = HttpRequest::new(Method::Get, "/oauth1/authorize");
    req.query = format!("oauth_token={}", request.token);
    let outcome = kit
        .provider
        .authorize(&req, Some(&alice()), Some(true))
        .await;
    let AuthorizeOutcome::Error(err) = outcome else {
        panic!("expected an error, got {outcome:?}");
    };
    assert_eq!(err.problem().as_str(), "token_rejected");
}

#[tokio::test]
async fn plaintext_is_refused_over_plain_http_and_accepted_over_tls() {
    let kit = Kit::new().await;
    let params = kit.oauth_params(
        SignatureMethod::Plaintext,
        None,
        &[("oauth_callback", CALLBACK)],
    );
    let mut req = kit.signed(Method::Post, "/oauth1/request_token", params, "");
    let response = kit.provider.request_token(&req).await;
    assert_eq!(response.status, 400);
    assert_eq!(
        problem(&response).as_deref(),
        Some("signature_method_rejected")
    );
    req.tls = true;
    let response = kit.provider.request_token(&req).await;
    assert_eq!(response.status, 200, "{:?}", form(&response));
}

#[tokio::test]
async fn unknown_consumer_is_refused_with_consumer_key_unknown() {
    let mut kit = Kit::new().await;
    kit.consumer_key = "nobody".into();
    let params = kit.oauth_params(
        SignatureMethod::HmacSha1,
        None,
        &[("oauth_callback", CALLBACK)],
    );
    let req = kit.signed(Method::Post, "/oauth1/request_token", params, "");
    let response = kit.provider.request_token(&req).await;
    assert_eq!(response.status, 401);
    assert_eq!(problem(&response).as_deref(), Some("consumer_key_unknown"));
}

#[tokio::test]
async fn missing_parameters_are_named() {
    let kit = Kit::new().await;
    let params = kit.oauth_params(SignatureMethod::HmacSha1, None, &[]);
    let req = kit.signed(Method::Post, "/oauth1/request_token", params, "");
    let response = kit.provider.request_token(&req).await;
    assert_eq!(response.status, 400);
    assert_eq!(problem(&response).as_deref(), Some("parameter_absent"));
    assert_eq!(
        field(&response, "oauth_parameters_absent").as_deref(),
        Some("oauth_callback")
    );
}

#[tokio::test]
async fn unregistered_callback_is_refused() {
    let kit = Kit::new().await;
    let params = kit.oauth_params(
        SignatureMethod::HmacSha1,
        None,
        &[("oauth_callback", "https://evil.example/steal")],
    );
    let req = kit.signed(Method::Post, "/oauth1/request_token", params, "");
    let response = kit.provider.request_token(&req).await;
    assert_eq!(response.status, 400);
    assert_eq!(problem(&response).as_deref(), Some("parameter_rejected"));
}

#[tokio::test]
async fn token_without_a_required_realm_is_refused_with_permission_denied() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    let err = kit
        .provider
        .verify(&kit.resource_request(&access), &realms("profile"))
        .await
        .expect_err("photos only");
    let response = err.to_response("r");
    assert_eq!(response.status, 403);
    assert_eq!(problem(&response).as_deref(), Some("permission_denied"));
}

#[tokio::test]
async fn revoked_access_token_is_refused() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    let params = kit.oauth_params(SignatureMethod::HmacSha1, Some(&access.token), &[]);
    let req = kit.signed(Method::Post, "/oauth1/revoke", params, &access.secret);
    assert_eq!(kit.provider.revoke(&req).await.status, 200);
    let err = kit
        .provider
        .verify(&kit.resource_request(&access), &ScopeSet::empty())
        .await
        .expect_err("revoked");
    assert_eq!(err.problem().as_str(), "token_rejected");
}

#[tokio::test]
async fn access_token_of_one_consumer_is_useless_to_another() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    let (other, _) =
        NewClient::confidential("Other").build(&SeededEntropy::new(3), kit.clock.now());
    kit.provider
        .store()
        .put_client(&other)
        .await
        .expect("stored");
    let other_secret = kit
        .provider
        .register_consumer(other.id.as_str(), None)
        .await
        .expect("registered");
    let mut thief = Kit {
        provider: kit.provider.clone(),
        clock: kit.clock.clone(),
        consumer_key: other.id.to_string(),
        consumer_secret: other_secret.expose().to_owned(),
        nonce: AtomicU64::new(1000),
    };
    thief.consumer_key = other.id.to_string();
    let err = kit
        .provider
        .verify(&thief.resource_request(&access), &ScopeSet::empty())
        .await
        .expect_err("another consumer's token");
    assert_eq!(err.problem().as_str(), "token_rejected");
}

#[tokio::test]
async fn nonces_are_forgotten_after_the_window() {
    let kit = Kit::new().await;
    let access = kit.access().await;
    for _ in 0..5 {
        kit.provider
            .verify(&kit.resource_request(&access), &ScopeSet::empty())
            .await
            .expect("accepted");
    }
    let held = kit.provider.store().oauth1.len();
    kit.clock.advance(10_000);
    // The next write sweeps what has expired: only the new nonce and the access token remain.
    kit.provider
        .verify(&kit.resource_request(&access), &ScopeSet::empty())
        .await
        .expect("accepted");
    assert!(kit.provider.store().oauth1.len() < held);
    assert_eq!(kit.provider.store().oauth1.len(), 2);
}
