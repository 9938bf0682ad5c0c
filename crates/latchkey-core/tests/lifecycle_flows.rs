//! Revocation (RFC 7009), introspection (RFC 7662), metadata (RFC 8414) and the bearer guard
//! (RFC 6750), on the memory store with a fixed clock.

use latchkey_core::client::{GrantType, NewClient};
use latchkey_core::endpoint::authorize::Decision;
use latchkey_core::http::{HttpRequest, HttpResponse, Method};
use latchkey_core::resource::cache::CachedVerifier;
use latchkey_core::resource::remote::{IntrospectionVerifier, Introspector};
use latchkey_core::resource::{AccessToken, Guard, GuardError, GuardHooks, Principal, SessionAuth};
use latchkey_core::secret::Secret;
use latchkey_core::store::StoreError;
use latchkey_core::user::AuthenticatedUser;
use latchkey_testkit::{REDIRECT_URI, ResponseExt, TestClient, TestKit, redirect_params, scopes};
use std::sync::Arc;

async fn password_tokens(kit: &TestKit, client: &TestClient) -> serde_json::Value {
    kit.user("dora", "explorer").await;
    kit.token(
        client,
        "grant_type=password&username=dora&password=explorer&scope=read+write",
    )
    .await
    .expect_ok()
}

async fn introspect(kit: &TestKit, client: &TestClient, token: &str) -> serde_json::Value {
    let req = HttpRequest::post_form("/introspect", format!("token={token}"))
        .with_header("authorization", client.basic());
    kit.provider.introspect(&req).await.expect_ok()
}

async fn revoke(kit: &TestKit, client: &TestClient, body: &str) -> HttpResponse {
    let req = HttpRequest::post_form("/revoke", body).with_header("authorization", client.basic());
    kit.provider.revoke(&req).await
}

fn api_request(token: &str) -> HttpRequest {
    HttpRequest::new(Method::Get, "/api").with_header("authorization", format!("Bearer {token}"))
}

#[tokio::test]
async fn introspection_describes_active_tokens_and_nothing_else() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let tokens = password_tokens(&kit, &client).await;
    let at = tokens["access_token"].as_str().expect("token");
    let body = introspect(&kit, &client, at).await;
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "read write");
    assert_eq!(body["client_id"], client.id());
    assert_eq!(body["username"], "dora");
    assert_eq!(body["sub"], "user-dora");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["iss"], "https://auth.example.test");
    assert_eq!(body["exp"].as_i64(), Some(kit.now().0 + 3600));
    assert_eq!(body["iat"].as_i64(), Some(kit.now().0));
    let rt = introspect(
        &kit,
        &client,
        tokens["refresh_token"].as_str().expect("token"),
    )
    .await;
    assert_eq!(
        (rt["active"].as_bool(), rt["token_type"].as_str()),
        (Some(true), Some("refresh_token"))
    );
    assert_eq!(
        introspect(&kit, &client, "garbage").await,
        serde_json::json!({"active": false})
    );
    kit.clock.advance(3601);
    assert_eq!(
        introspect(&kit, &client, at).await,
        serde_json::json!({"active": false})
    );
}

#[tokio::test]
async fn introspection_requires_a_confidential_client() {
    let kit = TestKit::new();
    let anonymous = kit
        .provider
        .introspect(&HttpRequest::post_form("/introspect", "token=x"))
        .await;
    assert_eq!(
        (anonymous.status, anonymous.json_body()["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let public = kit.public_client().await;
    let req = HttpRequest::post_form("/introspect", format!("token=x&client_id={}", public.id()));
    kit.provider
        .introspect(&req)
        .await
        .expect_error("unauthorized_client");
}

#[tokio::test]
async fn revoking_an_access_token_kills_only_it() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let tokens = password_tokens(&kit, &client).await;
    let at = tokens["access_token"].as_str().expect("token");
    let resp = revoke(
        &kit,
        &client,
        &format!("token={at}&token_type_hint=access_token"),
    )
    .await;
    assert_eq!(resp.status, 200);
    assert_eq!(introspect(&kit, &client, at).await["active"], false);
    assert_eq!(
        introspect(&kit, &client, tokens["refresh_token"].as_str().expect("rt")).await["active"],
        true
    );
}

#[tokio::test]
async fn revoking_a_refresh_token_kills_its_access_tokens_despite_a_wrong_hint() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let tokens = password_tokens(&kit, &client).await;
    let rt = tokens["refresh_token"].as_str().expect("rt");
    assert_eq!(
        revoke(
            &kit,
            &client,
            &format!("token={rt}&token_type_hint=access_token")
        )
        .await
        .status,
        200
    );
    assert_eq!(
        introspect(&kit, &client, tokens["access_token"].as_str().expect("at")).await["active"],
        false
    );
    kit.token(
        &client,
        &format!("grant_type=refresh_token&refresh_token={rt}"),
    )
    .await
    .expect_error("invalid_grant");
}

#[tokio::test]
async fn issue_14_revocation_answers_200_for_unknown_and_other_clients_tokens() {
    let kit = TestKit::new();
    let owner = kit.confidential_client().await;
    let other = kit.confidential_client().await;
    assert_eq!(revoke(&kit, &owner, "token=never-issued").await.status, 200);
    let tokens = password_tokens(&kit, &owner).await;
    let at = tokens["access_token"].as_str().expect("at");
    // RFC 7009 §2.2: another client's token is treated like an unknown one: 200, and
    // nothing is revoked.
    let foreign = revoke(&kit, &other, &format!("token={at}")).await;
    assert_eq!(foreign.status, 200, "{:?}", foreign.json_body());
    assert_eq!(
        introspect(&kit, &owner, at).await["active"],
        true,
        "another client cannot revoke it"
    );
    revoke(&kit, &owner, "")
        .await
        .expect_error("invalid_request");
    let unauthenticated = kit
        .provider
        .revoke(&HttpRequest::post_form("/revoke", format!("token={at}")))
        .await;
    assert_eq!(unauthenticated.status, 401);
}

#[tokio::test]
async fn metadata_lists_the_endpoints_and_capabilities() {
    let kit = TestKit::new();
    let doc = kit.provider.metadata().json_body();
    assert_eq!(doc["issuer"], "https://auth.example.test");
    assert_eq!(doc["token_endpoint"], "https://auth.example.test/token");
    assert_eq!(
        doc["authorization_endpoint"],
        "https://auth.example.test/authorize"
    );
    assert_eq!(
        doc["revocation_endpoint"],
        "https://auth.example.test/revoke"
    );
    assert_eq!(
        doc["introspection_endpoint"],
        "https://auth.example.test/introspect"
    );
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(
        doc["scopes_supported"],
        // The configured scopes, and OpenID Connect's (on by default).
        serde_json::json!([
            "address",
            "admin",
            "email",
            "offline_access",
            "openid",
            "phone",
            "profile",
            "read",
            "write"
        ])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
}

#[tokio::test]
async fn issue_14_implicit_and_password_grants_are_off_server_wide_by_default() {
    let defaults = latchkey_core::config::Config::default();
    assert!(!defaults.implicit_grant && !defaults.password_grant);
    let kit = TestKit::with_config(|c| {
        c.implicit_grant = defaults.implicit_grant;
        c.password_grant = defaults.password_grant;
    });
    let doc = kit.provider.metadata().json_body();
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "client_credentials",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code"
        ])
    );
    // A client allowed the password grant still cannot use it while the switch is off.
    let client = kit
        .register(
            NewClient::confidential("legacy")
                .redirect_uris([REDIRECT_URI])
                .grant_types([GrantType::Password, GrantType::Implicit]),
        )
        .await;
    kit.user("dora", "explorer").await;
    kit.token(
        &client,
        "grant_type=password&username=dora&password=explorer",
    )
    .await
    .expect_error("unsupported_grant_type");
    let query = format!("response_type=token&client_id={}&state=i1", client.id());
    let outcome = kit
        .authorize(
            &query,
            Some(&kit.alice()),
            Some(Decision::Allow { remember: false }),
        )
        .await;
    assert_eq!(
        redirect_params(&outcome)["error"],
        "unsupported_response_type"
    );

    // Switched on, both are served and advertised (with OpenID Connect on, so are the
    // implicit and hybrid response types that return an ID token).
    let on = TestKit::new();
    let doc = on.provider.metadata().json_body();
    assert_eq!(
        doc["response_types_supported"],
        serde_json::json!([
            "code",
            "token",
            "id_token",
            "id_token token",
            "code id_token",
            "code token",
            "code id_token token"
        ])
    );
    assert_eq!(
        doc["grant_types_supported"],
        serde_json::json!([
            "authorization_code",
            "implicit",
            "password",
            "client_credentials",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code"
        ])
    );
}

#[tokio::test]
async fn guard_accepts_scoped_tokens_and_refuses_the_rest() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let tokens = password_tokens(&kit, &client).await;
    let at = tokens["access_token"].as_str().expect("at");
    let guard = Guard::new(kit.provider.verifier(), "photos");
    let access = guard
        .authenticate(&api_request(at), &scopes("read"))
        .await
        .expect("allowed");
    assert_eq!(access.subject.as_deref(), Some("user-dora"));
    assert_eq!(
        guard.authenticate(&api_request(at), &scopes("admin")).await,
        Err(GuardError::InsufficientScope(scopes("admin")))
    );
    let none = HttpRequest::new(Method::Get, "/api");
    assert_eq!(
        guard.authenticate(&none, &scopes("")).await,
        Err(GuardError::Missing)
    );
    let rt = tokens["refresh_token"].as_str().expect("rt");
    assert_eq!(
        guard.authenticate(&api_request(rt), &scopes("")).await,
        Err(GuardError::InvalidToken),
        "refresh tokens are not bearer tokens"
    );
    revoke(&kit, &client, &format!("token={at}")).await;
    assert_eq!(
        guard.authenticate(&api_request(at), &scopes("")).await,
        Err(GuardError::InvalidToken)
    );
}

struct QuotaAndBlocklist;
impl GuardHooks for QuotaAndBlocklist {
    async fn before(&self, req: &HttpRequest) -> Result<(), HttpResponse> {
        if req.header("x-over-quota").is_some() {
            return Err(HttpResponse {
                status: 429,
                headers: vec![],
                body: b"quota".to_vec(),
            });
        }
        Ok(())
    }
    async fn after(&self, _req: &HttpRequest, token: &AccessToken) -> Result<(), HttpResponse> {
        if token.username.as_deref() == Some("dora") {
            return Err(HttpResponse {
                status: 403,
                headers: vec![],
                body: b"blocked".to_vec(),
            });
        }
        Ok(())
    }
}

#[tokio::test]
async fn hooks_refuse_before_and_veto_after_token_checking() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let tokens = password_tokens(&kit, &client).await;
    let at = tokens["access_token"].as_str().expect("at");
    let guard = Guard::new(kit.provider.verifier(), "api").with_hooks(QuotaAndBlocklist);
    let over = api_request(at).with_header("x-over-quota", "1");
    let Err(GuardError::Refused(r)) = guard.authenticate(&over, &scopes("")).await else {
        panic!("quota")
    };
    assert_eq!(r.status, 429);
    let Err(GuardError::Refused(r)) = guard.authenticate(&api_request(at), &scopes("")).await
    else {
        panic!("veto")
    };
    assert_eq!(r.status, 403);
}

struct AppSession;
impl SessionAuth for AppSession {
    async fn session_user(&self, req: &HttpRequest) -> Option<AuthenticatedUser> {
        req.header("cookie")
            .filter(|c| *c == "app=eve")
            .map(|_| AuthenticatedUser::new("u-eve", "eve"))
    }
}

#[tokio::test]
async fn cookie_or_bearer_accepts_either_but_never_excuses_a_bad_token() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let tokens = password_tokens(&kit, &client).await;
    let guard = Guard::new(kit.provider.verifier(), "api");
    let by_cookie = HttpRequest::new(Method::Get, "/api").with_header("cookie", "app=eve");
    assert!(
        matches!(guard.authenticate_either(&by_cookie, &AppSession, &scopes("admin")).await, Ok(Principal::User(u)) if u.username == "eve")
    );
    let at = tokens["access_token"].as_str().expect("at");
    assert!(matches!(
        guard
            .authenticate_either(&api_request(at), &AppSession, &scopes("read"))
            .await,
        Ok(Principal::Token(_))
    ));
    let bad = api_request("forged").with_header("cookie", "app=eve");
    assert_eq!(
        guard
            .authenticate_either(&bad, &AppSession, &scopes(""))
            .await,
        Err(GuardError::InvalidToken)
    );
    let nobody = HttpRequest::new(Method::Get, "/api");
    assert_eq!(
        guard
            .authenticate_either(&nobody, &AppSession, &scopes(""))
            .await,
        Err(GuardError::Missing)
    );
}

/// Introspection over the provider itself, counting calls: the remote path without a network.
struct LocalIntrospection {
    kit_provider: latchkey_testkit::TestProvider,
    client: TestClient,
    calls: std::sync::atomic::AtomicUsize,
}

impl Introspector for LocalIntrospection {
    async fn introspect(&self, token: &Secret) -> Result<serde_json::Value, StoreError> {
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let req = HttpRequest::post_form("/introspect", format!("token={}", token.expose()))
            .with_header("authorization", self.client.basic());
        Ok(self.kit_provider.introspect(&req).await.json_body())
    }
}

#[tokio::test]
async fn cached_remote_guard_honours_revocation_within_its_bound() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    let resource_server = kit.resource_server().await;
    let tokens = password_tokens(&kit, &client).await;
    let at = tokens["access_token"].as_str().expect("at");
    let remote = Arc::new(LocalIntrospection {
        kit_provider: kit.provider.clone(),
        client: resource_server,
        calls: Default::default(),
    });
    struct Shared(Arc<LocalIntrospection>);
    impl Introspector for Shared {
        async fn introspect(&self, token: &Secret) -> Result<serde_json::Value, StoreError> {
            self.0.introspect(token).await
        }
    }
    let verifier = CachedVerifier::new(
        IntrospectionVerifier::new(Shared(remote.clone())),
        kit.clock.clone(),
        30,
        1000,
    );
    let guard = Guard::new(verifier, "api");
    for _ in 0..5 {
        guard
            .authenticate(&api_request(at), &scopes("read"))
            .await
            .expect("active");
    }
    assert_eq!(
        remote.calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "answers are cached"
    );
    revoke(&kit, &client, &format!("token={at}")).await;
    kit.clock.advance(29);
    assert!(
        guard
            .authenticate(&api_request(at), &scopes(""))
            .await
            .is_ok(),
        "within the bound the cache may still say active"
    );
    kit.clock.advance(1);
    assert_eq!(
        guard.authenticate(&api_request(at), &scopes("")).await,
        Err(GuardError::InvalidToken),
        "never past the bound"
    );
}

#[tokio::test]
async fn cache_stays_within_its_capacity() {
    let kit = TestKit::new();
    let cache = CachedVerifier::new(kit.provider.verifier(), kit.clock.clone(), 60, 16);
    for i in 0..100 {
        let _ =
            latchkey_core::resource::TokenVerifier::verify(&cache, &Secret::new(format!("t{i}")))
                .await;
    }
    assert_eq!(cache.len(), 16);
}

#[tokio::test]
async fn issue_14_only_resource_servers_and_the_owner_learn_about_a_token() {
    let kit = TestKit::new();
    let owner = kit.confidential_client().await;
    let other = kit.confidential_client().await;
    let api_client = kit.resource_server().await;
    let tokens = kit
        .token(&owner, "grant_type=client_credentials&scope=read")
        .await
        .expect_ok();
    let at = tokens["access_token"].as_str().expect("token");
    let introspect = |client: &TestClient| {
        let req = HttpRequest::post_form("/introspect", format!("token={at}"))
            .with_header("authorization", client.basic());
        let provider = kit.provider.clone();
        async move { provider.introspect(&req).await.expect_ok() }
    };
    assert_eq!(
        introspect(&other).await,
        serde_json::json!({ "active": false }),
        "a client without the introspect permission learns nothing of another's token"
    );
    assert_eq!(introspect(&owner).await["active"], true, "its own token");
    let described = introspect(&api_client).await;
    assert_eq!(described["active"], true, "a resource server");
    assert_eq!(described["client_id"], owner.id());
}
