//! Token exchange (RFC 8693) on the memory store: each subject token type in, delegation with
//! `act`, and one refused exchange per policy rule, each with its RFC error code.

use latchkey_core::client::{ClientMetadata, ExtensionGrantType, GrantType, NewClient};
use latchkey_core::grant::token_exchange::{ExchangePolicy, GRANT_TYPE, TokenExchange};
use latchkey_core::http::HttpRequest;
use latchkey_core::indicator::{RegisteredResource, ResourceUri, Resources};
use latchkey_testkit::{REDIRECT_URI, ResponseExt, TestClient, TestKit, VERIFIER, form_encode};

const API: &str = "https://api.example.test/";
const OTHER: &str = "https://other.example.test/";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";
const RT: &str = "urn:ietf:params:oauth:token-type:refresh_token";
const IDT: &str = "urn:ietf:params:oauth:token-type:id_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

fn kit() -> TestKit {
    TestKit::with_builder(
        |c| {
            c.resources = Resources::new(vec![
                RegisteredResource::new(ResourceUri::parse(API).expect("uri")),
                RegisteredResource::new(ResourceUri::parse(OTHER).expect("uri")),
            ]);
        },
        |b| b.extension_grant(GRANT_TYPE, TokenExchange::new()),
    )
}

fn policy() -> ExchangePolicy {
    ExchangePolicy {
        subject_token_types: ["access_token", "refresh_token", "id_token", "jwt"]
            .map(String::from)
            .to_vec(),
        actor_token_types: vec!["access_token".into()],
        subject_clients: vec!["*".into()],
        audiences: vec![API.into()],
        impersonation: true,
        delegation: true,
        ..ExchangePolicy::default()
    }
}

async fn exchanger(kit: &TestKit, id: &str, policy: Option<ExchangePolicy>) -> TestClient {
    let mut metadata = ClientMetadata::default();
    metadata.token_exchange = policy;
    kit.register(
        NewClient::confidential("Gateway")
            .id(id)
            .grant_types([
                GrantType::Extension(ExtensionGrantType::parse(GRANT_TYPE).expect("uri")),
                GrantType::ClientCredentials,
            ])
            .metadata(metadata),
    )
    .await
}

/// A user's tokens from the code flow with `openid read write` (access, refresh, ID token).
async fn user_tokens(kit: &TestKit) -> serde_json::Value {
    kit.user("alice", "pw").await;
    let web = kit.web_client().await;
    let code = kit.code_for(&web, "&scope=openid%20read%20write").await;
    kit.token(
        &web,
        &format!(
            "grant_type=authorization_code&code={code}&code_verifier={VERIFIER}&redirect_uri={}",
            form_encode(REDIRECT_URI)
        ),
    )
    .await
    .expect_ok()
}

async fn exchange(
    kit: &TestKit,
    client: &TestClient,
    params: &str,
) -> latchkey_core::http::HttpResponse {
    kit.token(
        client,
        &format!("grant_type={}&{params}", form_encode(GRANT_TYPE)),
    )
    .await
}

fn subject(token: &serde_json::Value, kind: &str) -> String {
    format!(
        "subject_token={}&subject_token_type={}",
        form_encode(token.as_str().expect("token")),
        form_encode(kind)
    )
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

#[tokio::test]
async fn each_subject_token_type_is_exchanged_for_an_access_token_for_the_api() {
    let kit = kit();
    let tokens = user_tokens(&kit).await;
    let gateway = exchanger(
        &kit,
        "gateway",
        Some(ExchangePolicy {
            widen_scope: true,
            ..policy()
        }),
    )
    .await;
    for (token, kind, scope) in [
        (&tokens["access_token"], AT, "read"),
        (&tokens["refresh_token"], RT, "read"),
        // An ID token carries no scope: this policy may widen, so `read` is granted.
        (&tokens["id_token"], IDT, "read"),
        (&tokens["id_token"], JWT, "read"),
    ] {
        let body = exchange(
            &kit,
            &gateway,
            &format!(
                "{}&scope={scope}&resource={}",
                subject(token, kind),
                form_encode(API)
            ),
        )
        .await
        .expect_ok();
        assert_eq!(body["issued_token_type"], AT, "{kind}");
        assert_eq!(body["token_type"], "Bearer");
        assert!(body.get("refresh_token").is_none());
        let info = introspect(&kit, body["access_token"].as_str().expect("at")).await;
        assert_eq!(info["sub"], "user-alice", "{kind}");
        assert_eq!(info["aud"], API, "{kind}");
        assert_eq!(info["client_id"], "gateway");
        assert_eq!(info["scope"], scope);
        assert!(info.get("act").is_none(), "impersonation has no act");
    }
}

#[tokio::test]
async fn delegation_records_the_actor_in_act_and_nests_prior_actors() {
    let kit = kit();
    let tokens = user_tokens(&kit).await;
    let gateway = exchanger(&kit, "gateway", Some(policy())).await;
    let own = kit
        .token(&gateway, "grant_type=client_credentials")
        .await
        .expect_ok();
    let actor = format!(
        "actor_token={}&actor_token_type={}",
        form_encode(own["access_token"].as_str().expect("at")),
        form_encode(AT)
    );
    let body = exchange(
        &kit,
        &gateway,
        &format!(
            "{}&{actor}&scope=read",
            subject(&tokens["access_token"], AT)
        ),
    )
    .await
    .expect_ok();
    let delegated = body["access_token"].as_str().expect("at").to_owned();
    let info = introspect(&kit, &delegated).await;
    assert_eq!(info["sub"], "user-alice");
    assert_eq!(
        info["act"],
        serde_json::json!({"sub": "gateway", "client_id": "gateway"})
    );

    // A second hop: another service exchanges the delegated token, acting itself.
    let backend = exchanger(&kit, "backend", Some(policy())).await;
    let its_own = kit
        .token(&backend, "grant_type=client_credentials")
        .await
        .expect_ok();
    let body = exchange(
        &kit,
        &backend,
        &format!(
            "subject_token={delegated}&subject_token_type={}&actor_token={}&actor_token_type={}",
            form_encode(AT),
            its_own["access_token"].as_str().expect("at"),
            form_encode(AT)
        ),
    )
    .await
    .expect_ok();
    let info = introspect(&kit, body["access_token"].as_str().expect("at")).await;
    assert_eq!(
        info["act"],
        serde_json::json!({"sub": "backend", "client_id": "backend",
            "act": {"sub": "gateway", "client_id": "gateway"}})
    );
}

#[tokio::test]
async fn each_policy_rule_refuses_with_its_error() {
    let kit = kit();
    let tokens = user_tokens(&kit).await;
    let at = subject(&tokens["access_token"], AT);
    let own_only = ExchangePolicy {
        subject_clients: Vec::new(),
        ..policy()
    };
    let no_delegation = ExchangePolicy {
        delegation: false,
        actor_token_types: Vec::new(),
        ..policy()
    };
    let no_impersonation = ExchangePolicy {
        impersonation: false,
        ..policy()
    };
    let access_only = ExchangePolicy {
        subject_token_types: vec!["access_token".into()],
        ..policy()
    };
    let read_only = ExchangePolicy {
        scopes: Some(vec!["read".into()]),
        ..policy()
    };
    let gateway = exchanger(&kit, "gateway", Some(policy())).await;
    let own = kit
        .token(&gateway, "grant_type=client_credentials")
        .await
        .expect_ok();
    let actor = format!(
        "&actor_token={}&actor_token_type={}",
        form_encode(own["access_token"].as_str().expect("at")),
        form_encode(AT)
    );
    let cases: Vec<(&str, Option<ExchangePolicy>, String, &str)> = vec![
        ("no policy", None, at.clone(), "unauthorized_client"),
        (
            "token of another client",
            Some(own_only),
            at.clone(),
            "invalid_request",
        ),
        (
            "subject type not allowed",
            Some(access_only),
            subject(&tokens["refresh_token"], RT),
            "invalid_request",
        ),
        (
            "actor without delegation",
            Some(no_delegation),
            format!("{at}{actor}"),
            "invalid_request",
        ),
        (
            "no actor without impersonation",
            Some(no_impersonation),
            at.clone(),
            "invalid_request",
        ),
        (
            "audience outside the policy",
            Some(policy()),
            format!("{at}&audience={}", form_encode(OTHER)),
            "invalid_target",
        ),
        (
            "unregistered resource",
            Some(ExchangePolicy {
                audiences: vec!["https://nowhere.example/".into()],
                ..policy()
            }),
            format!("{at}&resource={}", form_encode("https://nowhere.example/")),
            "invalid_target",
        ),
        (
            "scope wider than the subject token",
            Some(policy()),
            format!("{at}&scope=admin"),
            "invalid_scope",
        ),
        (
            "scope beyond the policy",
            Some(read_only),
            format!("{at}&scope=read%20write"),
            "invalid_scope",
        ),
        (
            "a forged token",
            Some(policy()),
            format!(
                "subject_token=forged&subject_token_type={}",
                form_encode(AT)
            ),
            "invalid_request",
        ),
        (
            "an ID token as an access token",
            Some(policy()),
            subject(&tokens["id_token"], AT),
            "invalid_request",
        ),
        (
            "an access token as an ID token",
            Some(policy()),
            subject(&tokens["access_token"], IDT),
            "invalid_request",
        ),
        (
            "unknown token type",
            Some(policy()),
            format!(
                "subject_token=x&subject_token_type={}",
                form_encode("urn:example:saml")
            ),
            "invalid_request",
        ),
        (
            "other requested_token_type",
            Some(policy()),
            format!("{at}&requested_token_type={}", form_encode(RT)),
            "invalid_request",
        ),
        (
            "actor_token without its type",
            Some(policy()),
            format!("{at}&actor_token=x"),
            "invalid_request",
        ),
    ];
    for (i, (why, policy, params, error)) in cases.into_iter().enumerate() {
        let client = exchanger(&kit, &format!("client-{i}"), policy).await;
        let body = exchange(&kit, &client, &params).await.expect_error(error);
        assert!(body["error_description"].is_string(), "{why}");
    }
    // A revoked subject token is refused too, where the same exchange passed before.
    let client = exchanger(&kit, "after-revoke", Some(policy())).await;
    exchange(&kit, &client, &at).await.expect_ok();
    let digest =
        latchkey_core::secret::Secret::new(tokens["access_token"].as_str().expect("at")).digest();
    latchkey_core::store::TokenStore::revoke_token(&kit.store, &digest)
        .await
        .expect("revoked");
    exchange(&kit, &client, &at)
        .await
        .expect_error("invalid_request");
}
