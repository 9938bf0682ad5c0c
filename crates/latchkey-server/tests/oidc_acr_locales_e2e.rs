//! `acr` and language-tagged claims on the real binary: the operator names the classes its
//! logins achieve (`[oidc] acr_values`, the built-in password login's first); discovery
//! advertises them; an ID token from the built-in login states the first; an essential `acr`
//! no login achieves is `unmet_authentication_requirements` at once, and one the password
//! login does not achieve is the same after the login; a user's `name#fr` set from the CLI is
//! what a client with `claims_locales=fr` gets, in the ID token and from userinfo.

mod common;

use common::agent::Agent;
use common::{Server, add_user, cli, create_client, data_dir};
use latchkey_core::pkce::s256_challenge;
use serde_json::Value;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "https://rp.example/cb";
const LOA1: &str = "urn:example:loa:1";
const MFA: &str = "urn:example:mfa";

fn authorize_url(server: &Server, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid profile")
        .append_pair("state", "st-1")
        .append_pair("nonce", "n-1")
        .append_pair("code_challenge", &s256_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        query.append_pair(k, v);
    }
    server.url(&format!("/authorize?{}", query.finish()))
}

/// The parameters of the redirect to the client at the end of `/authorize` for `extra`: logs
/// alice in when asked and approves when asked.
async fn authorize(
    agent: &mut Agent,
    server: &Server,
    client_id: &str,
    extra: &[(&str, &str)],
) -> std::collections::HashMap<String, String> {
    let mut page = agent.get(&authorize_url(server, client_id, extra)).await;
    if page.body.contains("name=\"password\"") {
        let after = agent
            .submit_login(&server.base, &page, "alice", "alice-password")
            .await;
        assert_eq!(after.status, 303, "{}", after.body);
        page = agent.get(&server.url(after.location())).await;
    }
    if page.status == 200 && page.body.contains("decision") {
        page = agent.submit_consent(&server.base, &page, "allow").await;
    }
    assert!(
        page.location().starts_with(REDIRECT),
        "{} {}",
        page.status,
        page.body
    );
    let url = url::Url::parse(page.location()).expect("redirect URL");
    url.query_pairs().into_owned().collect()
}

async fn verify_id_token(server: &Server, token: &str, aud: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(server.url("/jwks"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let header = jsonwebtoken::decode_header(token).expect("header");
    let jwk = jwks.find(header.kid.as_deref().expect("kid")).expect("key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[aud]);
    validation.set_issuer(&[&server.base]);
    jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key"),
        &validation,
    )
    .expect("the ID token verifies")
    .claims
}

#[tokio::test]
async fn the_login_states_its_acr_and_claims_speak_the_asked_language() {
    let dir = data_dir();
    std::fs::write(
        dir.path().join("latchkey.toml"),
        format!("[oidc]\nacr_values = [\"{LOA1}\", \"{MFA}\"]\n"),
    )
    .expect("settings");
    add_user(dir.path(), "alice", "alice-password");
    cli(
        dir.path(),
        &[
            "user",
            "update",
            "alice",
            "--name",
            "Alice Liddell",
            "--localized",
            "name#fr=Alice (française)",
            "--localized",
            "given_name#fr=Alice",
        ],
        None,
    );
    let client = create_client(
        dir.path(),
        &["--redirect-uri", REDIRECT, "--scope", "openid profile"],
    );
    let server = Server::start(dir.path());

    let doc: Value = reqwest::get(server.url("/.well-known/openid-configuration"))
        .await
        .expect("discovery")
        .json()
        .await
        .expect("json");
    assert_eq!(doc["acr_values_supported"], serde_json::json!([LOA1, MFA]));

    // The essential class the password login achieves; French claims.
    let mut agent = Agent::new();
    let claims =
        format!(r#"{{"id_token":{{"acr":{{"essential":true,"value":"{LOA1}"}},"name":null}}}}"#);
    let params = authorize(
        &mut agent,
        &server,
        &client.id,
        &[("claims", &claims), ("claims_locales", "fr-FR en")],
    )
    .await;
    let code = params.get("code").expect("a code");
    let tokens: Value = reqwest::Client::new()
        .post(server.url("/token"))
        .header("authorization", client.basic())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let id_token = verify_id_token(
        &server,
        tokens["id_token"].as_str().expect("id_token"),
        &client.id,
    )
    .await;
    assert_eq!(id_token["acr"], LOA1, "{id_token}");
    assert_eq!(id_token["name"], "Alice (française)", "{id_token}");
    let userinfo: Value = reqwest::Client::new()
        .get(server.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().expect("access token"))
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(userinfo["name"], "Alice (française)", "{userinfo}");
    assert_eq!(userinfo["given_name"], "Alice", "{userinfo}");

    // A class no login here achieves: refused before any page.
    let gold = r#"{"id_token":{"acr":{"essential":true,"values":["urn:gold"]}}}"#;
    let page = Agent::new()
        .get(&authorize_url(&server, &client.id, &[("claims", gold)]))
        .await;
    assert_eq!(page.status, 302, "{}", page.body);
    assert!(
        page.location()
            .contains("error=unmet_authentication_requirements"),
        "{}",
        page.location()
    );
    // A class the operator lists but the password login does not achieve: the session does
    // not count, and the login made for the request misses it too.
    let mfa = format!(r#"{{"id_token":{{"acr":{{"essential":true,"value":"{MFA}"}}}}}}"#);
    let params = authorize(&mut agent, &server, &client.id, &[("claims", &mfa)]).await;
    assert_eq!(
        params.get("error").map(String::as_str),
        Some("unmet_authentication_requirements"),
        "{params:?}"
    );
    assert!(!params.contains_key("code"));
}
