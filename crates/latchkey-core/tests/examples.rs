//! Runs the crate's examples (each example's `run`, which its `main` calls) and checks what
//! they show, so the documented extension points keep working as documented.

#[allow(dead_code)]
#[path = "../examples/attached_data.rs"]
mod attached_data;
#[allow(dead_code)]
#[path = "../examples/extension_grant.rs"]
mod extension_grant;
#[allow(dead_code)]
#[path = "../examples/grant_lifetimes.rs"]
mod grant_lifetimes;
#[allow(dead_code)]
#[path = "../examples/response_extras.rs"]
mod response_extras;
#[allow(dead_code)]
#[path = "../examples/token_generator.rs"]
mod token_generator;

#[tokio::test]
async fn token_generator_example_issues_prefixed_tokens_that_work() {
    let body = token_generator::run().await.expect("the example runs");
    let token = body["access_token"].as_str().expect("an access token");
    assert!(token.starts_with("lk_at_"), "{token}");
    assert_eq!(token.len(), "lk_at_".len() + 43);
    assert_eq!(body["token_type"], "Bearer");
}

#[tokio::test]
async fn response_extras_example_adds_user_id_and_keeps_expires_in() {
    let body = response_extras::run().await.expect("the example runs");
    assert_eq!(body["user_id"], "user-1234");
    assert_eq!(body["issued_by"], "password");
    assert_eq!(
        body["expires_in"], 3600,
        "a hook cannot change a standard member"
    );
    assert!(body["refresh_token"].is_string());
}

#[tokio::test]
async fn extension_grant_example_issues_only_to_allowed_clients() {
    let outcome = extension_grant::run().await.expect("the example runs");
    assert!(outcome.issued["access_token"].is_string());
    assert_eq!(outcome.issued["expires_in"], 300);
    assert_eq!(outcome.issued["scope"], "reports:read");
    assert!(outcome.issued.get("refresh_token").is_none());
    assert_eq!(outcome.refused["error"], "unauthorized_client");
    assert_eq!(outcome.wrong_key["error"], "invalid_grant");
    assert!(
        outcome
            .grant_types_supported
            .as_array()
            .expect("a list")
            .contains(&extension_grant::API_KEY_GRANT.into())
    );
}

#[tokio::test]
async fn grant_lifetimes_example_applies_client_then_grant_then_server() {
    let outcome = grant_lifetimes::run().await.expect("the example runs");
    assert_eq!(
        outcome,
        grant_lifetimes::Outcome {
            plain_client_credentials: 3600,
            plain_password: 300,
            plain_password_refresh: 86_400,
            short_client_password: 60,
            short_client_client_credentials: 60,
        }
    );
}

#[tokio::test]
async fn attached_data_example_carries_the_login_data_to_the_tokens_and_introspection() {
    let outcome = attached_data::run().await.expect("the example runs");
    assert!(
        outcome.issued["access_token"].is_string(),
        "{}",
        outcome.issued
    );
    assert_eq!(outcome.issued["tenant"], "acme");
    assert_eq!(
        outcome.refreshed["tenant"], "acme",
        "kept across the refresh"
    );
    assert_eq!(outcome.introspected["active"], true);
    assert_eq!(outcome.introspected["sub"], "user-1234");
    assert_eq!(
        outcome.introspected["ext"],
        serde_json::json!({"tenant": "acme", "login_method": "sso"})
    );
    assert!(matches!(
        outcome.too_large,
        latchkey_core::attached::AttachedError::TooLarge { .. }
    ));
}
