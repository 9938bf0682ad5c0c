//! Token binding (basic_oauth): tokens of a binding client work only from the User-Agent and
//! client address they were issued to, and a mismatch destroys them.

use latchkey_core::client::{GrantType, NewClient};
use latchkey_core::http::{HttpRequest, Method};
use latchkey_core::net::TrustedProxies;
use latchkey_core::resource::GuardError;
use latchkey_testkit::{ResponseExt, TestClient, TestKit, scopes};

fn from(req: HttpRequest, ip: &str, agent: &str) -> HttpRequest {
    let mut req = req.with_header("user-agent", agent);
    req.peer = Some(format!("{ip}:40000").parse().expect("socket address"));
    req
}

async fn bound_client(kit: &TestKit) -> TestClient {
    kit.user("bea", "bea-pw").await;
    kit.register(
        NewClient::confidential("bound")
            .grant_types([GrantType::Password, GrantType::RefreshToken])
            .bind_tokens(true),
    )
    .await
}

async fn login(kit: &TestKit, client: &TestClient, ip: &str, agent: &str) -> serde_json::Value {
    let req = HttpRequest::post_form("/token", "grant_type=password&username=bea&password=bea-pw")
        .with_header("authorization", client.basic());
    kit.provider.token(&from(req, ip, agent)).await.expect_ok()
}

fn api(token: &serde_json::Value, ip: &str, agent: &str) -> HttpRequest {
    let at = token["access_token"].as_str().expect("token");
    from(
        HttpRequest::new(Method::Get, "/api").with_header("authorization", format!("Bearer {at}")),
        ip,
        agent,
    )
}

#[tokio::test]
async fn a_bound_token_works_where_it_was_issued_and_dies_elsewhere() {
    let kit = TestKit::new();
    let client = bound_client(&kit).await;
    let tokens = login(&kit, &client, "198.51.100.4", "Browser/1.0").await;
    let guard = kit.provider.guard("api");
    guard
        .authenticate(&api(&tokens, "198.51.100.4", "Browser/1.0"), &scopes(""))
        .await
        .expect("same place");
    assert_eq!(
        guard
            .authenticate(&api(&tokens, "198.51.100.4", "Other/2.0"), &scopes(""))
            .await,
        Err(GuardError::InvalidToken),
        "another User-Agent"
    );
    assert_eq!(
        guard
            .authenticate(&api(&tokens, "198.51.100.4", "Browser/1.0"), &scopes(""))
            .await,
        Err(GuardError::InvalidToken),
        "the mismatch revoked the token for good"
    );
    let tokens = login(&kit, &client, "198.51.100.4", "Browser/1.0").await;
    assert_eq!(
        guard
            .authenticate(&api(&tokens, "203.0.113.50", "Browser/1.0"), &scopes(""))
            .await,
        Err(GuardError::InvalidToken),
        "another address"
    );
}

#[tokio::test]
async fn a_bound_refresh_token_used_elsewhere_revokes_its_family() {
    let kit = TestKit::new();
    let client = bound_client(&kit).await;
    let tokens = login(&kit, &client, "198.51.100.4", "Browser/1.0").await;
    let rt = tokens["refresh_token"].as_str().expect("refresh token");
    let refresh = |ip: &str| {
        let req = HttpRequest::post_form(
            "/token",
            format!("grant_type=refresh_token&refresh_token={rt}"),
        )
        .with_header("authorization", client.basic());
        from(req, ip, "Browser/1.0")
    };
    kit.provider
        .token(&refresh("203.0.113.50"))
        .await
        .expect_error("invalid_grant");
    kit.provider
        .token(&refresh("198.51.100.4"))
        .await
        .expect_error("invalid_grant");
    let guard = kit.provider.guard("api");
    assert!(
        guard
            .authenticate(&api(&tokens, "198.51.100.4", "Browser/1.0"), &scopes(""))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn unbound_clients_are_unaffected() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    kit.user("bea", "bea-pw").await;
    let tokens = login(&kit, &client, "198.51.100.4", "Browser/1.0").await;
    kit.provider
        .guard("api")
        .authenticate(&api(&tokens, "203.0.113.50", "Other"), &scopes(""))
        .await
        .expect("no binding");
}

#[tokio::test]
async fn behind_trusted_proxies_the_forwarded_client_address_is_bound() {
    let kit = TestKit::with_config(|c| {
        c.trusted_proxies = TrustedProxies::parse(&["10.0.0.0/8"]).expect("valid");
    });
    let client = bound_client(&kit).await;
    let req = HttpRequest::post_form("/token", "grant_type=password&username=bea&password=bea-pw")
        .with_header("authorization", client.basic())
        .with_header("x-forwarded-for", "198.51.100.4");
    let tokens = kit
        .provider
        .token(&from(req, "10.0.0.1", "Browser/1.0"))
        .await
        .expect_ok();
    let guard = kit.provider.guard("api");
    let via_other_proxy =
        api(&tokens, "10.0.0.2", "Browser/1.0").with_header("x-forwarded-for", "198.51.100.4");
    guard
        .authenticate(&via_other_proxy, &scopes(""))
        .await
        .expect("same client behind another trusted proxy");
    // A direct, untrusted peer cannot claim the address with a header of its own.
    let spoofed =
        api(&tokens, "203.0.113.9", "Browser/1.0").with_header("x-forwarded-for", "198.51.100.4");
    assert_eq!(
        guard.authenticate(&spoofed, &scopes("")).await,
        Err(GuardError::InvalidToken)
    );
}
