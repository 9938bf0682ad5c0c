//! A resource server in "another process" checks tokens through HTTP introspection against a
//! real Latchkey router, and honours a revocation within its cache bound.

use latchkey_client::HttpIntrospector;
use latchkey_core::http::{HttpRequest, Method};
use latchkey_core::resource::cache::CachedVerifier;
use latchkey_core::resource::remote::IntrospectionVerifier;
use latchkey_core::resource::{Guard, GuardError};
use latchkey_core::secret::Secret;
use latchkey_testkit::{ResponseExt, TestKit, scopes};

#[tokio::test]
async fn remote_guard_accepts_active_tokens_and_sees_revocations_within_the_bound() {
    let kit = TestKit::new();
    let app_client = kit.confidential_client().await;
    let api_client = kit.confidential_client().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = latchkey_axum::router(kit.provider.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let tokens = kit
        .token(
            &app_client,
            "grant_type=client_credentials&scope=read+write",
        )
        .await
        .expect_ok();
    let at = tokens["access_token"].as_str().expect("token");

    let introspector = HttpIntrospector::new(
        format!("{base}/introspect"),
        api_client.id(),
        api_client
            .secret
            .as_ref()
            .map(Secret::expose)
            .expect("secret"),
    );
    let verifier = CachedVerifier::new(
        IntrospectionVerifier::new(introspector),
        kit.clock.clone(),
        10,
        1000,
    );
    let guard = Guard::new(verifier, "api");
    let request = |token: &str| {
        HttpRequest::new(Method::Get, "/api")
            .with_header("authorization", format!("Bearer {token}"))
    };

    let access = guard
        .authenticate(&request(at), &scopes("write"))
        .await
        .expect("active remotely");
    assert_eq!(access.client_id, app_client.id());
    assert_eq!(
        guard.authenticate(&request(at), &scopes("admin")).await,
        Err(GuardError::InsufficientScope(scopes("admin")))
    );
    assert_eq!(
        guard.authenticate(&request("unknown"), &scopes("")).await,
        Err(GuardError::InvalidToken)
    );

    let revoke = HttpRequest::post_form("/revoke", format!("token={at}"))
        .with_header("authorization", app_client.basic());
    assert_eq!(kit.provider.revoke(&revoke).await.status, 200);
    kit.clock.advance(10);
    assert_eq!(
        guard.authenticate(&request(at), &scopes("")).await,
        Err(GuardError::InvalidToken)
    );

    let wrong = HttpIntrospector::new(
        format!("{base}/introspect"),
        api_client.id(),
        "wrong secret",
    );
    let strict = Guard::new(IntrospectionVerifier::new(wrong), "api");
    assert_eq!(
        strict.authenticate(&request(at), &scopes("")).await,
        Err(GuardError::Unavailable),
        "a refused resource server fails closed"
    );
}
