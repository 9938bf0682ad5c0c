//! Client authentication with a JWT (RFC 7523 §2.2, OpenID Connect Core §9) against a fake
//! provider that verifies every assertion as a server would: `private_key_jwt` signs a fresh
//! assertion for every token and revocation call, `client_secret_jwt` MACs it with the
//! secret, and an assertion the provider cannot verify is refused with `invalid_client`.

mod fake_op;

use fake_op::{ClientCheck, FakeOp, TestKey};
use latchkey_client::{
    AppConfig, AppSettings, ClientAuth, ClientError, ClientKey, ErrorCode, OAuth, RemoteApp,
    ReqwestClient, SigningAlg, Token,
};
use latchkey_core::clock::{Clock, SystemClock};
use std::collections::BTreeSet;
use std::sync::Arc;

const CLIENT: &str = "jwt-client";

fn app(op: &FakeOp, config: AppConfig) -> Arc<RemoteApp<ReqwestClient>> {
    OAuth::new()
        .register("op", config.issuer(&op.base))
        .expect("valid config")
}

/// A code-flow login (no ID token: this file is about client authentication).
async fn login(app: &RemoteApp<ReqwestClient>) -> Result<Token, ClientError> {
    let auth = app.authorize("http://127.0.0.1:9/cb", None, &[]).await?;
    let callback = format!("state={}&code=the-code", auth.pending.state);
    app.finish_login(&auth.pending, &callback).await
}

fn expect_assertions(op: &FakeOp, key: &TestKey) {
    *op.state.client_id.lock().expect("lock") = CLIENT.into();
    *op.state.client_check.lock().expect("lock") =
        ClientCheck::Assertion(key.verifying(), fake_op::jwt_alg(key.alg));
}

#[tokio::test]
async fn private_key_jwt_signs_a_fresh_assertion_for_every_token_and_revocation_call() {
    for alg in [SigningAlg::ES256, SigningAlg::RS256, SigningAlg::EdDSA] {
        let key = TestKey::generate(alg, "client-key-1");
        let op = FakeOp::start(&["ES256"], &[]).await;
        expect_assertions(&op, &key);
        let client_key =
            ClientKey::from_pem(&key.pem, alg, Some("client-key-1")).expect("a private key");
        let app = app(&op, AppConfig::new(CLIENT, None).private_key(client_key));
        let before = SystemClock.now().0;
        let token = login(&app).await.expect("token with private_key_jwt");
        let token = app
            .refresh(&token)
            .await
            .expect("refresh with private_key_jwt");
        app.revoke(&token)
            .await
            .expect("revocation with private_key_jwt");

        let requests = op.state.requests.lock().expect("lock").clone();
        let grants: Vec<_> = requests
            .iter()
            .map(|r| r.get("grant_type").or(r.get("token_type_hint")).cloned())
            .collect();
        assert_eq!(
            grants,
            [
                Some("authorization_code".to_owned()),
                Some("refresh_token".into()),
                Some("refresh_token".into()),
                Some("access_token".into())
            ],
            "{alg}"
        );
        for form in &requests {
            assert_eq!(form.get("client_id").map(String::as_str), Some(CLIENT));
            assert!(!form.contains_key("client_secret"), "{alg}");
        }
        let assertions = op.state.assertions.lock().expect("lock").clone();
        assert_eq!(
            assertions.len(),
            4,
            "{alg}: one verified assertion per call"
        );
        let mut jtis = BTreeSet::new();
        for (header, claims) in &assertions {
            assert_eq!(header.kid.as_deref(), Some("client-key-1"), "{alg}");
            assert_eq!(header.alg, fake_op::jwt_alg(alg));
            assert_eq!(claims["iss"], CLIENT);
            assert_eq!(claims["sub"], CLIENT);
            assert_eq!(claims["aud"], op.url("/token"), "aud is the token endpoint");
            let iat = claims["iat"].as_i64().expect("iat");
            let exp = claims["exp"].as_i64().expect("exp");
            assert!(
                iat >= before && iat <= SystemClock.now().0,
                "{alg}: iat is now"
            );
            assert_eq!(exp - iat, 60, "{alg}: a short-lived assertion");
            let jti = claims["jti"].as_str().expect("jti");
            assert!(jti.len() >= 43, "{alg}: 256 random bits");
            jtis.insert(jti.to_owned());
        }
        assert_eq!(jtis.len(), 4, "{alg}: a fresh jti for every call");
    }
}

#[tokio::test]
async fn an_assertion_signed_with_another_key_is_refused_by_the_provider() {
    let registered = TestKey::generate(SigningAlg::ES256, "registered");
    let stolen_config = TestKey::generate(SigningAlg::ES256, "registered");
    let op = FakeOp::start(&["ES256"], &[]).await;
    expect_assertions(&op, &registered);
    let wrong = ClientKey::from_pem(&stolen_config.pem, SigningAlg::ES256, Some("registered"))
        .expect("a private key");
    let app = app(&op, AppConfig::new(CLIENT, None).private_key(wrong));
    let err = login(&app).await.expect_err("refused");
    assert_eq!(err.code(), Some(&ErrorCode::InvalidClient), "{err:?}");
    assert!(op.state.assertions.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn client_secret_jwt_macs_the_assertion_with_the_secret() {
    let secret = "a-client-secret-of-at-least-32-bytes!";
    let op = FakeOp::start(&["ES256"], &[]).await;
    *op.state.client_id.lock().expect("lock") = CLIENT.into();
    *op.state.client_check.lock().expect("lock") = ClientCheck::Assertion(
        jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
    );
    let config = AppConfig::new(CLIENT, Some(secret)).client_auth(ClientAuth::ClientSecretJwt);
    let app = app(&op, config);
    login(&app).await.expect("token with client_secret_jwt");
    let form = op.state.requests.lock().expect("lock")[0].clone();
    assert!(
        !form.contains_key("client_secret"),
        "the secret never travels"
    );
    let assertions = op.state.assertions.lock().expect("lock").clone();
    assert_eq!(assertions.len(), 1);
    assert_eq!(assertions[0].1["aud"], op.url("/token"));

    let other = AppConfig::new(CLIENT, Some("another-secret-of-at-least-32-bytes!!"))
        .client_auth(ClientAuth::ClientSecretJwt);
    let err = login(&self::app(&op, other)).await.expect_err("refused");
    assert_eq!(err.code(), Some(&ErrorCode::InvalidClient));
}

#[tokio::test]
async fn a_private_key_in_the_settings_selects_private_key_jwt() {
    let key = TestKey::generate(SigningAlg::EdDSA, "from-settings");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("client.pem");
    std::fs::write(&path, &key.pem).expect("written");
    let settings: AppSettings = serde_json::from_value(serde_json::json!({
        "issuer": "https://op.example",
        "client_id": CLIENT,
        "private_key": { "pem_file": path, "kid": "from-settings", "alg": "EdDSA" },
    }))
    .expect("parses");
    let config = settings.into_config().expect("valid");
    assert_eq!(config.client_auth, ClientAuth::PrivateKeyJwt);
    let client_key = config.client_key.expect("loaded");
    assert_eq!(client_key.kid(), Some("from-settings"));
    assert_eq!(client_key.alg(), SigningAlg::EdDSA);
    assert!(
        !format!("{client_key:?}").contains("PRIVATE"),
        "Debug hides the key"
    );

    let cases = [
        serde_json::json!({ "pem_file": path, "alg": "ES256" }),
        serde_json::json!({ "pem": key.pem, "pem_file": path, "alg": "EdDSA" }),
        serde_json::json!({ "pem_file": dir.path().join("missing.pem"), "alg": "EdDSA" }),
        serde_json::json!({ "pem_file": path, "alg": "HS256" }),
    ];
    for private_key in cases {
        let settings: AppSettings = serde_json::from_value(serde_json::json!({
            "issuer": "https://op.example", "client_id": CLIENT, "private_key": private_key,
        }))
        .expect("parses");
        assert!(
            matches!(settings.into_config(), Err(ClientError::Config(_))),
            "{private_key}"
        );
    }
    let missing_key = AppConfig::new(CLIENT, None)
        .issuer("https://op.example")
        .client_auth(ClientAuth::PrivateKeyJwt);
    assert!(matches!(
        missing_key.validate(),
        Err(ClientError::Config(_))
    ));
}
