//! A resource server in "another process" checks tokens through HTTP introspection against a
//! real Latchkey router, and honours a revocation within its cache bound.

use latchkey_client::HttpIntrospector;
use latchkey_core::client::{GrantType, NewClient};
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
    let api_client = kit.resource_server().await;
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

/// Serves `kit`'s provider on a loopback port and returns its base URL.
async fn serve(kit: &TestKit) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = latchkey_axum::router(kit.provider.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

/// A remote guard that introspects as `client`.
fn remote_guard(
    base: &str,
    client: &latchkey_testkit::TestClient,
) -> Guard<IntrospectionVerifier<HttpIntrospector>> {
    let introspector = HttpIntrospector::new(
        format!("{base}/introspect"),
        client.id(),
        client.secret.as_ref().map(Secret::expose).expect("secret"),
    );
    Guard::new(IntrospectionVerifier::new(introspector), "api")
}

#[tokio::test]
async fn issue_14_a_remote_guard_refuses_a_bound_token_used_from_elsewhere() {
    let kit = TestKit::new();
    let bound = kit
        .register(
            NewClient::confidential("bound")
                .grant_types([GrantType::ClientCredentials])
                .bind_tokens(true),
        )
        .await;
    let api_client = kit.resource_server().await;
    let base = serve(&kit).await;
    let from = |req: HttpRequest, ip: &str, agent: &str| {
        let mut req = req.with_header("user-agent", agent);
        req.peer = Some(format!("{ip}:40000").parse().expect("socket address"));
        req
    };
    let issue = HttpRequest::post_form("/token", "grant_type=client_credentials")
        .with_header("authorization", bound.basic());
    let tokens = kit
        .provider
        .token(&from(issue, "198.51.100.4", "Browser/1.0"))
        .await
        .expect_ok();
    let at = tokens["access_token"].as_str().expect("token");
    let api = |ip: &str, agent: &str| {
        from(
            HttpRequest::new(Method::Get, "/api")
                .with_header("authorization", format!("Bearer {at}")),
            ip,
            agent,
        )
    };
    let guard = remote_guard(&base, &api_client);
    guard
        .authenticate(&api("198.51.100.4", "Browser/1.0"), &scopes(""))
        .await
        .expect("accepted where it was issued");
    assert_eq!(
        guard
            .authenticate(&api("198.51.100.4", "Other/2.0"), &scopes(""))
            .await,
        Err(GuardError::InvalidToken),
        "a bound token from another User-Agent is refused remotely"
    );
    assert_eq!(
        guard
            .authenticate(&api("203.0.113.50", "Browser/1.0"), &scopes(""))
            .await,
        Err(GuardError::InvalidToken),
        "a bound token from another address is refused remotely"
    );
}

#[tokio::test]
async fn remote_guard_verifies_jwt_access_tokens_from_the_jwks_without_introspection() {
    use latchkey_client::HttpKeySetFetcher;
    use latchkey_core::resource::jwt::{JwtVerifier, RemoteJwks};
    let kit = TestKit::new();
    let mut metadata = latchkey_core::client::ClientMetadata::default();
    metadata.access_token_format = Some("jwt".into());
    let app_client = kit
        .register(
            NewClient::confidential("JWT app")
                .grant_types([GrantType::ClientCredentials])
                .metadata(metadata),
        )
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let app = latchkey_axum::router(kit.provider.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let tokens = kit
        .token(&app_client, "grant_type=client_credentials&scope=read")
        .await
        .expect_ok();
    let at = tokens["access_token"].as_str().expect("token");
    // Introspection with credentials the server does not know: any call would fail.
    let introspector = HttpIntrospector::new(format!("{base}/introspect"), "nobody", "wrong");
    let issuer = kit.provider.config().issuer.clone();
    let verifier = JwtVerifier::new(
        RemoteJwks::new(
            HttpKeySetFetcher::new(),
            format!("{base}/jwks"),
            kit.clock.clone(),
        ),
        IntrospectionVerifier::new(introspector),
        issuer.clone(),
        issuer,
        kit.clock.clone(),
    );
    let guard = Guard::new(verifier, "api");
    let request = |token: &str| {
        HttpRequest::new(Method::Get, "/api")
            .with_header("authorization", format!("Bearer {token}"))
    };
    let access = guard
        .authenticate(&request(at), &scopes("read"))
        .await
        .expect("verified from the JWKS");
    assert_eq!(access.client_id, app_client.id());
    // An opaque token goes to introspection, which refuses these credentials: unavailable.
    assert_eq!(
        guard
            .authenticate(&request("opaque-value"), &scopes("read"))
            .await
            .err(),
        Some(GuardError::Unavailable)
    );
}
