//! Client authentication by JWT (RFC 7523) against the real binary: a `private_key_jwt`
//! client registered from the CLI with a JWK Set file gets a token with an assertion it
//! signed itself; a replay of that assertion and one with another audience are refused;
//! metadata advertises the methods.

mod common;

use common::{Server, create_client, data_dir, post_token};
use latchkey_core::clock::SystemClock;
use latchkey_core::jose::{JwsSigner as _, KeySet, SigningAlg};
use std::sync::Arc;

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

fn form(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[tokio::test]
async fn private_key_jwt_client_gets_a_token_and_replays_are_refused() {
    let dir = data_dir();
    // The client's own key pair: the server only ever sees its public half.
    let keys = KeySet::generate(&[SigningAlg::Es256], Arc::new(SystemClock)).expect("keys");
    let jwks_file = dir.path().join("client-jwks.json");
    std::fs::write(&jwks_file, keys.jwks().to_string()).expect("write jwks");
    let client = create_client(
        dir.path(),
        &[
            "--grant-type",
            "client_credentials",
            "--auth-method",
            "private_key_jwt",
            "--jwks-file",
            jwks_file.to_str().expect("utf-8 path"),
        ],
    );
    assert!(client.secret.is_empty(), "a key-pair client gets no secret");
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();

    let metadata: serde_json::Value = http
        .get(server.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .expect("metadata")
        .json()
        .await
        .expect("json");
    let methods = metadata["token_endpoint_auth_methods_supported"].to_string();
    assert!(methods.contains("private_key_jwt") && methods.contains("client_secret_jwt"));
    assert!(
        metadata["token_endpoint_auth_signing_alg_values_supported"]
            .to_string()
            .contains("ES256")
    );

    let token_endpoint = server.url("/token");
    let assertion_for = |aud: &str, jti: &str| {
        let now = latchkey_core::clock::Clock::now(&SystemClock).0;
        let claims = serde_json::json!({
            "iss": client.id, "sub": client.id, "aud": aud,
            "iat": now, "exp": now + 60, "jti": jti,
        });
        keys.sign(Some(SigningAlg::Es256), "JWT", &claims)
            .expect("sign")
    };
    let body = |assertion: &str| {
        format!(
            "grant_type=client_credentials&client_assertion_type={}&client_assertion={}",
            form(ASSERTION_TYPE),
            form(assertion)
        )
    };

    let assertion = assertion_for(&token_endpoint, "first");
    let (status, _, json) = post_token(&http, &server, None, &body(&assertion)).await;
    assert_eq!(status, 200, "{json}");
    assert!(json["access_token"].is_string());

    let (status, _, json) = post_token(&http, &server, None, &body(&assertion)).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (401, Some("invalid_client"))
    );

    let elsewhere = assertion_for("https://other.example/token", "second");
    let (status, _, json) = post_token(&http, &server, None, &body(&elsewhere)).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (401, Some("invalid_client"))
    );

    // The issuer is an accepted audience too.
    let to_issuer = assertion_for(metadata["issuer"].as_str().expect("issuer"), "third");
    let (status, _, json) = post_token(&http, &server, None, &body(&to_issuer)).await;
    assert_eq!(status, 200, "{json}");
}
