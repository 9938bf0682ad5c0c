//! A client's registered `token_endpoint_auth_method` (RFC 7591 §2) is the only way it may
//! authenticate, at every endpoint that authenticates clients: token, introspection and
//! revocation. On the memory store with a fixed clock.

use latchkey_core::client::{AuthMethod, GrantType, NewClient};
use latchkey_core::http::{HttpRequest, HttpResponse};
use latchkey_testkit::{ResponseExt, TestClient, TestKit, form_encode};

/// A request to `path` with `body`, authenticated by `client` with `method`.
fn request(client: &TestClient, method: AuthMethod, path: &str, body: &str) -> HttpRequest {
    match method {
        AuthMethod::ClientSecretBasic => HttpRequest::post_form(path, body.to_owned())
            .with_header("authorization", client.basic()),
        AuthMethod::ClientSecretPost => {
            let secret = client.secret.as_ref().expect("confidential").expose();
            HttpRequest::post_form(
                path,
                format!(
                    "{body}&client_id={}&client_secret={}",
                    form_encode(client.id()),
                    form_encode(secret)
                ),
            )
        }
        _ => HttpRequest::post_form(
            path,
            format!("{body}&client_id={}", form_encode(client.id())),
        ),
    }
}

/// The three endpoints, each asked with `method`.
async fn ask_all(
    kit: &TestKit,
    client: &TestClient,
    method: AuthMethod,
    token: &str,
) -> [HttpResponse; 3] {
    let p = &kit.provider;
    let body = format!("token={}", form_encode(token));
    [
        p.token(&request(
            client,
            method,
            "/token",
            "grant_type=client_credentials",
        ))
        .await,
        p.introspect(&request(client, method, "/introspect", &body))
            .await,
        p.revoke(&request(client, method, "/revoke", "token=unknown"))
            .await,
    ]
}

fn assert_refused(response: &HttpResponse) {
    response.expect_error("invalid_client");
    assert_eq!(response.status, 401);
    assert!(
        response
            .headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("www-authenticate") && v.starts_with("Basic ")),
        "{:?}",
        response.headers
    );
}

#[tokio::test]
async fn a_registered_method_is_the_only_one_any_endpoint_accepts() {
    let kit = TestKit::new();
    for (registered, other) in [
        (AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost),
        (AuthMethod::ClientSecretPost, AuthMethod::ClientSecretBasic),
    ] {
        let client = kit
            .register(
                NewClient::confidential("strict")
                    .grant_types([GrantType::ClientCredentials])
                    .token_endpoint_auth_method(registered),
            )
            .await;
        let issued = kit
            .provider
            .token(&request(
                &client,
                registered,
                "/token",
                "grant_type=client_credentials",
            ))
            .await
            .expect_ok();
        let token = issued["access_token"].as_str().expect("token");
        for response in ask_all(&kit, &client, other, token).await {
            assert_refused(&response);
        }
        let [token_answer, introspected, revoked] = ask_all(&kit, &client, registered, token).await;
        token_answer.expect_ok();
        assert_eq!(introspected.expect_ok()["active"], true);
        assert_eq!(revoked.status, 200);
    }
}

#[tokio::test]
async fn without_a_registered_method_a_confidential_client_may_use_either() {
    let kit = TestKit::new();
    let client = kit.confidential_client().await;
    for method in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost] {
        kit.provider
            .token(&request(
                &client,
                method,
                "/token",
                "grant_type=client_credentials",
            ))
            .await
            .expect_ok();
    }
    let refused = kit
        .provider
        .token(&request(
            &client,
            AuthMethod::None,
            "/token",
            "grant_type=client_credentials",
        ))
        .await;
    refused.expect_error("invalid_client");
}
