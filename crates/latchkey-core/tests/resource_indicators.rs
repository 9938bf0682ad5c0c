//! Resource indicators (RFC 8707) on the memory store: `resource` at `/authorize` and at the
//! token endpoint, `invalid_target`, narrowing on exchange and refresh, the audience in
//! introspection and JWTs, and a guard of one resource refusing tokens for others.

use latchkey_core::client::{ClientMetadata, GrantType, NewClient};
use latchkey_core::http::{HttpRequest, Method};
use latchkey_core::indicator::{RegisteredResource, ResourceUri, Resources};
use latchkey_core::resource::metadata::ProtectedResource;
use latchkey_core::resource::{GuardError, Verified};
use latchkey_core::scope::ScopeSet;
use latchkey_testkit::{
    REDIRECT_URI, ResponseExt, TestClient, TestKit, VERIFIER, form_encode, redirect_params, scopes,
};

const API: &str = "https://api.example.test/v1";
const MCP: &str = "https://mcp.example.test/mcp";
const PRIVATE: &str = "https://private.example.test/";

fn kit() -> TestKit {
    TestKit::with_config(|c| {
        c.resources = Resources::new(vec![
            RegisteredResource {
                scopes: Some(scopes("read write")),
                ..RegisteredResource::new(ResourceUri::parse(API).expect("uri"))
            },
            RegisteredResource::new(ResourceUri::parse(MCP).expect("uri")),
            RegisteredResource {
                clients: Some(vec!["insider".into()]),
                ..RegisteredResource::new(ResourceUri::parse(PRIVATE).expect("uri"))
            },
        ]);
    })
}

async fn introspect(kit: &TestKit, token: &str) -> serde_json::Value {
    let rs = kit.resource_server().await;
    kit.provider
        .introspect(
            &HttpRequest::post_form("/introspect", format!("token={}", form_encode(token)))
                .with_header("authorization", rs.basic()),
        )
        .await
        .expect_ok()
}

fn bearer(token: &str) -> HttpRequest {
    HttpRequest::new(Method::Get, "/api").with_header("authorization", format!("Bearer {token}"))
}

async fn exchange_code(
    kit: &TestKit,
    client: &TestClient,
    code: &str,
    extra: &str,
) -> serde_json::Value {
    kit.token(
        client,
        &format!(
            "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&redirect_uri={}{extra}",
            form_encode(REDIRECT_URI)
        ),
    )
    .await
    .expect_ok()
}

#[tokio::test]
async fn client_credentials_token_carries_its_resources_and_only_their_guards_accept_it() {
    let kit = kit();
    let client = kit.confidential_client().await;
    let body = kit
        .token(
            &client,
            &format!(
                "grant_type=client_credentials&scope=read&resource={}&resource={}",
                form_encode(API),
                form_encode(MCP)
            ),
        )
        .await
        .expect_ok();
    let token = body["access_token"].as_str().expect("token");
    let info = introspect(&kit, token).await;
    assert_eq!(info["aud"], serde_json::json!([API, MCP]));

    for (resource, accepted) in [(API, true), (MCP, true), (PRIVATE, false)] {
        let pr = ProtectedResource::new(
            &ResourceUri::parse(resource).expect("uri"),
            "https://auth.example.test",
        )
        .expect("http resource");
        let guard = kit.provider.guard("api").resource(&pr);
        let result = guard.authenticate(&bearer(token), &ScopeSet::empty()).await;
        assert_eq!(result.is_ok(), accepted, "{resource}: {result:?}");
        if !accepted {
            let refusal = guard.respond(&result.expect_err("refused"));
            assert_eq!(refusal.status, 401);
            let challenge = refusal.header("www-authenticate").expect("challenge");
            assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
            assert!(
                challenge.contains("resource_metadata=\"https://private.example.test/.well-known/oauth-protected-resource\""),
                "{challenge}"
            );
        }
    }
    // A guard without a resource of its own accepts any audience, as before.
    assert!(
        kit.provider
            .guard("api")
            .authenticate(&bearer(token), &ScopeSet::empty())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_token_for_no_resource_is_refused_by_a_guard_of_one() {
    let kit = kit();
    let client = kit.confidential_client().await;
    let body = kit
        .token(&client, "grant_type=client_credentials")
        .await
        .expect_ok();
    let token = body["access_token"].as_str().expect("token");
    assert!(introspect(&kit, token).await.get("aud").is_none());
    let pr = ProtectedResource::new(
        &ResourceUri::parse(MCP).expect("uri"),
        "https://auth.example.test",
    )
    .expect("pr");
    let refused = kit
        .provider
        .guard("mcp")
        .resource(&pr)
        .authenticate(&bearer(token), &ScopeSet::empty())
        .await;
    assert_eq!(refused, Err(GuardError::InvalidToken));
}

#[tokio::test]
async fn unknown_malformed_or_forbidden_resources_are_invalid_target() {
    let kit = kit();
    let client = kit.confidential_client().await;
    let cases = [
        (
            "unknown",
            format!("resource={}", form_encode("https://other.example/")),
        ),
        ("relative", "resource=%2Fapi".to_owned()),
        (
            "fragment",
            format!("resource={}", form_encode("https://api.example.test/v1#x")),
        ),
        (
            "not for this client",
            format!("resource={}", form_encode(PRIVATE)),
        ),
    ];
    for (why, param) in cases {
        kit.token(&client, &format!("grant_type=client_credentials&{param}"))
            .await
            .expect_error("invalid_target");
        let _ = why;
    }
    // A scope the resource does not accept, asked for explicitly: invalid_scope.
    kit.token(
        &client,
        &format!(
            "grant_type=client_credentials&scope=admin&resource={}",
            form_encode(API)
        ),
    )
    .await
    .expect_error("invalid_scope");
    // The same client, allowed the private resource by name, gets it.
    let insider = kit
        .register(
            NewClient::confidential("Insider")
                .id("insider")
                .grant_types([GrantType::ClientCredentials]),
        )
        .await;
    kit.token(
        &insider,
        &format!(
            "grant_type=client_credentials&resource={}",
            form_encode(PRIVATE)
        ),
    )
    .await
    .expect_ok();
}

#[tokio::test]
async fn authorize_errors_go_back_with_invalid_target() {
    let kit = kit();
    let client = kit.web_client().await;
    let query = format!(
        "response_type=code&client_id={}&state=s&code_challenge={}&code_challenge_method=S256&resource={}",
        form_encode(client.id()),
        latchkey_core::pkce::s256_challenge(VERIFIER),
        form_encode("https://unknown.example/")
    );
    let outcome = kit.authorize(&query, Some(&kit.alice()), None).await;
    let params = redirect_params(&outcome);
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("invalid_target")
    );
    assert_eq!(params.get("state").map(String::as_str), Some("s"));
}

#[tokio::test]
async fn code_and_refresh_narrow_the_resources_and_the_refresh_token_keeps_them_all() {
    let kit = kit();
    kit.user("alice", "pw").await;
    let client = kit.web_client().await;
    let code = kit
        .code_for(
            &client,
            &format!(
                "&scope=read&resource={}&resource={}",
                form_encode(API),
                form_encode(MCP)
            ),
        )
        .await;
    // The code exchange asks for one of the two.
    let first = exchange_code(
        &kit,
        &client,
        &code,
        &format!("&resource={}", form_encode(API)),
    )
    .await;
    let access = first["access_token"].as_str().expect("access");
    assert_eq!(introspect(&kit, access).await["aud"], API);
    let refresh = first["refresh_token"].as_str().expect("refresh");
    assert_eq!(
        introspect(&kit, refresh).await["aud"],
        serde_json::json!([API, MCP])
    );
    // A refresh may ask for the other one, or for both by naming none.
    let second = kit
        .token(
            &client,
            &format!(
                "grant_type=refresh_token&refresh_token={refresh}&resource={}",
                form_encode(MCP)
            ),
        )
        .await
        .expect_ok();
    assert_eq!(
        introspect(&kit, second["access_token"].as_str().expect("at")).await["aud"],
        MCP
    );
    let refresh = second["refresh_token"].as_str().expect("refresh");
    // Never one that was not granted.
    kit.token(
        &client,
        &format!(
            "grant_type=refresh_token&refresh_token={refresh}&resource={}",
            form_encode(PRIVATE)
        ),
    )
    .await
    .expect_error("invalid_target");
    let third = kit
        .token(
            &client,
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
        )
        .await
        .expect_ok();
    assert_eq!(
        introspect(&kit, third["access_token"].as_str().expect("at")).await["aud"],
        serde_json::json!([API, MCP])
    );
}

#[tokio::test]
async fn jwt_access_tokens_carry_the_resource_as_aud() {
    let kit = kit();
    let mut metadata = ClientMetadata::default();
    metadata.access_token_format = Some("jwt".into());
    let client = kit
        .register(
            NewClient::confidential("JWT")
                .grant_types([GrantType::ClientCredentials])
                .metadata(metadata),
        )
        .await;
    let body = kit
        .token(
            &client,
            &format!(
                "grant_type=client_credentials&resource={}",
                form_encode(MCP)
            ),
        )
        .await
        .expect_ok();
    let token = body["access_token"].as_str().expect("jwt");
    // Verified locally for that audience, the guard of MCP accepts it; the default
    // audience (the issuer) does not.
    let pr = ProtectedResource::new(
        &ResourceUri::parse(MCP).expect("uri"),
        "https://auth.example.test",
    )
    .expect("pr");
    let verifier = kit.provider.jwt_verifier().audience(MCP).check_store(false);
    let guard = latchkey_core::resource::Guard::new(verifier, "mcp").resource(&pr);
    let access = guard
        .authenticate(&bearer(token), &ScopeSet::empty())
        .await
        .expect("accepted");
    assert_eq!(access.audience, vec![MCP.to_owned()]);
    let default = kit.provider.jwt_verifier().check_store(false);
    use latchkey_core::resource::TokenVerifier;
    assert_eq!(
        default
            .verify(&latchkey_core::secret::Secret::new(token))
            .await
            .expect("answer"),
        Verified::Inactive
    );
}

#[tokio::test]
async fn stored_resources_count_from_the_moment_they_are_added_and_the_settings_win() {
    use latchkey_core::store::ResourceStore;
    let kit = kit();
    let client = kit.confidential_client().await;
    const LATE: &str = "https://late.example.test/mcp";
    let ask = |resource: &str, scope: &str| {
        format!(
            "grant_type=client_credentials&scope={scope}&resource={}",
            form_encode(resource)
        )
    };
    kit.token(&client, &ask(LATE, "read"))
        .await
        .expect_error("invalid_target");
    kit.store
        .create_resource(&RegisteredResource {
            scopes: Some(scopes("read")),
            ..RegisteredResource::new(ResourceUri::parse(LATE).expect("uri"))
        })
        .await
        .expect("stored");
    let body = kit.token(&client, &ask(LATE, "read")).await.expect_ok();
    let info = introspect(&kit, body["access_token"].as_str().expect("token")).await;
    assert_eq!(info["aud"], LATE, "{info}");
    kit.token(&client, &ask(LATE, "write"))
        .await
        .expect_error("invalid_scope");
    // A stored resource with a settings resource's identifier changes nothing: the settings
    // accept `write` for API, the stored copy would not.
    kit.store
        .create_resource(&RegisteredResource {
            scopes: Some(scopes("read")),
            ..RegisteredResource::new(ResourceUri::parse(API).expect("uri"))
        })
        .await
        .expect("stored");
    kit.token(&client, &ask(API, "write")).await.expect_ok();
    assert!(kit.store.delete_resource(LATE).await.expect("deleted"));
    kit.token(&client, &ask(LATE, "read"))
        .await
        .expect_error("invalid_target");
}
