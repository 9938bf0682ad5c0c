//! DPoP (RFC 9449) from the client against the real server: a public client's login binds the
//! code (`dpop_jkt`) and the tokens to its key, the session calls the API with proofs, a
//! refresh proves the same key, and a server that requires nonces gets them after one retry.

mod common;

use common::{Agent, REDIRECT, TestServer, callback_query};
use latchkey_client::dpop::Dpop;
use latchkey_client::{AppConfig, MemoryTokens, OAuth, ReqwestClient, TokenHook};

#[tokio::test]
async fn a_dpop_client_signs_in_calls_the_api_and_refreshes_with_its_key() {
    let server = TestServer::start().await;
    let client = server.public("profile").await;
    let mut config = AppConfig::new(&client.id, None).issuer(&server.base);
    config.scopes = vec!["profile".into()];
    let mut oauth: OAuth<ReqwestClient> = OAuth::new();
    let app = oauth.register("latchkey", config).expect("valid config");
    // The registry hands out shared apps; this one is built with a key of its own.
    let app = latchkey_client::RemoteApp::new(
        "dpop",
        app.config().clone(),
        std::sync::Arc::new(ReqwestClient::new()),
        std::sync::Arc::new(latchkey_core::clock::SystemClock),
        std::sync::Arc::new(latchkey_core::entropy::OsEntropy),
    )
    .expect("app")
    .with_dpop(Dpop::generate().expect("key"));
    let jkt = app.dpop().expect("key").jkt().to_owned();

    let login = app.authorize(REDIRECT, None, &[]).await.expect("url");
    assert!(
        login.url.contains(&format!("dpop_jkt={jkt}")),
        "{}",
        login.url
    );
    let callback = Agent::new().authorize(&server, &login.url, true).await;
    let token = app
        .finish_login(&login.pending, &callback_query(&callback))
        .await
        .expect("signed in");
    assert_eq!(token.token_type, "DPoP");

    let tokens = MemoryTokens::new(token.clone());
    let session = app.session(&tokens);
    let me = session.get(&server.url("/api/me")).await.expect("answers");
    assert_eq!(me.status, 200, "{}", me.text());

    // The same token without a proof is refused: it is not a bearer token.
    let bare = reqwest::Client::new()
        .get(server.url("/api/me"))
        .bearer_auth(token.access_token.expose())
        .send()
        .await
        .expect("answers");
    assert_eq!(bare.status(), 401);

    let fresh = app.refresh(&token).await.expect("refreshed with the key");
    assert_eq!(fresh.token_type, "DPoP");
    tokens.save(&fresh).await.expect("saved");
    let me = session.get(&server.url("/api/me")).await.expect("answers");
    assert_eq!(me.status, 200, "{}", me.text());
}

#[tokio::test]
async fn a_server_nonce_is_learned_and_used() {
    let server = TestServer::start_with(|s| s.dpop.require_nonce = true).await;
    let client = server.confidential("profile").await;
    let config = AppConfig::new(&client.id, client.secret.as_deref()).issuer(&server.base);
    let app = latchkey_client::RemoteApp::new(
        "dpop",
        config,
        std::sync::Arc::new(ReqwestClient::new()),
        std::sync::Arc::new(latchkey_core::clock::SystemClock),
        std::sync::Arc::new(latchkey_core::entropy::OsEntropy),
    )
    .expect("app")
    .with_dpop(Dpop::generate().expect("key"));
    let token = app
        .client_credentials(None)
        .await
        .expect("token after a nonce retry");
    assert_eq!(token.token_type, "DPoP");
    let tokens = MemoryTokens::new(token);
    let me = app
        .session(&tokens)
        .get(&server.url("/api/me"))
        .await
        .expect("answers");
    assert_eq!(me.status, 200, "{}", me.text());
}
