//! The client against the real `latchkey` server: discovery from the issuer URL, client
//! credentials, password, the code flow with PKCE through the login and consent pages,
//! refresh before expiry and after a 401, revocation, and the request helpers.

mod common;

use common::{Agent, REDIRECT, TestServer, callback_query};
use latchkey_client::{
    AppConfig, Body, ClientAuth, ClientError, ErrorCode, MemoryTokens, OAuth, RemoteApp,
    ReqwestClient, Token, TokenHook,
};
use latchkey_core::clock::{Clock, ManualClock, SystemClock};
use latchkey_core::secret::Secret;
use std::sync::Arc;

fn oauth() -> OAuth<ReqwestClient> {
    OAuth::new()
}

/// An app that knows only the server's issuer URL.
fn discovered(
    oauth: &mut OAuth<ReqwestClient>,
    server: &TestServer,
    client: &common::TestClient,
) -> Arc<RemoteApp<ReqwestClient>> {
    let mut config = AppConfig::new(&client.id, client.secret.as_deref()).issuer(&server.base);
    config.scopes = vec!["profile".into()];
    config.api_base_url = Some(format!("{}/api/", server.base));
    oauth.register("latchkey", config).expect("valid config")
}

#[tokio::test]
async fn endpoints_are_discovered_from_the_issuer_url() {
    let server = TestServer::start().await;
    let client = server.confidential("profile").await;
    let mut oauth = oauth();
    let app = discovered(&mut oauth, &server, &client);
    let ep = app.endpoints().await.expect("discovered");
    assert_eq!(ep.issuer.as_deref(), Some(server.base.as_str()));
    assert_eq!(ep.authorize_url, Some(server.url("/authorize")));
    assert_eq!(ep.token_url, Some(server.url("/token")));
    assert_eq!(ep.revocation_url, Some(server.url("/revoke")));
    assert_eq!(ep.introspection_url, Some(server.url("/introspect")));
    assert!(ep.require_iss, "the server advertises RFC 9207 iss");

    let wrong = AppConfig::new(&client.id, client.secret.as_deref())
        .issuer(&server.base.replace("127.0.0.1", "localhost"));
    let app = oauth.register("wrong", wrong).expect("valid config");
    assert!(
        app.client_credentials(None).await.is_err(),
        "metadata naming another issuer is refused"
    );
}

#[tokio::test]
async fn client_credentials_token_is_active_at_the_server() {
    let server = TestServer::start().await;
    let client = server.confidential("reports:read reports:write").await;
    let mut oauth = oauth();
    let app = discovered(&mut oauth, &server, &client);
    let token = app
        .client_credentials(Some(&["reports:read"]))
        .await
        .expect("token");
    assert_eq!(token.token_type.to_ascii_lowercase(), "bearer");
    assert_eq!(token.scope.as_deref(), Some("reports:read"));
    assert!(token.expires_at.is_some());
    let seen = server
        .introspect(&client, token.access_token.expose())
        .await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["client_id"], client.id.as_str());

    // The same grant with client_secret_post, and a wrong secret: a typed invalid_client.
    let mut post = AppConfig::new(&client.id, client.secret.as_deref())
        .issuer(&server.base)
        .client_auth(ClientAuth::ClientSecretPost);
    post.scopes = vec!["reports:write".into()];
    let app = oauth.register("post", post).expect("config");
    assert_eq!(
        app.client_credentials(None)
            .await
            .expect("token")
            .scope
            .as_deref(),
        Some("reports:write")
    );
    let bad = AppConfig::new(&client.id, Some("not the secret")).issuer(&server.base);
    let app = oauth.register("bad", bad).expect("config");
    let err = app.client_credentials(None).await.expect_err("refused");
    assert_eq!(err.code(), Some(&ErrorCode::InvalidClient), "{err:?}");
}

#[tokio::test]
async fn password_grant_yields_a_user_token_and_bad_passwords_invalid_grant() {
    let server = TestServer::start().await;
    let client = server.confidential("profile").await;
    let mut oauth = oauth();
    let app = discovered(&mut oauth, &server, &client);
    let token = app
        .password(common::USER, &Secret::new(common::PASSWORD), None)
        .await
        .expect("token");
    assert!(token.refresh_token.is_some());
    let tokens = MemoryTokens::new(token);
    let me = app.session(&tokens).get("me").await.expect("answers");
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json().expect("json")["username"], common::USER);

    let err = app
        .password(common::USER, &Secret::new("wrong"), None)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), Some(&ErrorCode::InvalidGrant), "{err:?}");
}

#[tokio::test]
async fn code_flow_with_pkce_signs_the_user_in_through_the_pages() {
    let server = TestServer::start().await;
    for client in [
        server.confidential("profile").await,
        server.public("profile").await,
    ] {
        let mut oauth = oauth();
        let app = discovered(&mut oauth, &server, &client);
        assert_eq!(
            app.config().client_auth,
            if client.secret.is_some() {
                ClientAuth::ClientSecretBasic
            } else {
                ClientAuth::None
            }
        );
        let login = app.authorize(REDIRECT, None, &[]).await.expect("url");
        assert!(login.url.starts_with(&server.url("/authorize?")));
        let callback = Agent::new().authorize(&server, &login.url, true).await;
        let query = callback_query(&callback);
        assert!(query.contains("iss="), "the server sends iss: {query}");
        let token = app
            .finish_login(&login.pending, &query)
            .await
            .expect("signed in");
        assert_eq!(token.scope.as_deref(), Some("profile"));
        let tokens = MemoryTokens::new(token);
        let me = app.session(&tokens).userinfo_or_me(&server).await;
        assert_eq!(me["sub"], "sub-alice");
        assert_eq!(me["client_id"], client.id.as_str());

        // The same callback again: the code is spent.
        let err = app
            .finish_login(&login.pending, &query)
            .await
            .expect_err("code reused");
        assert_eq!(err.code(), Some(&ErrorCode::InvalidGrant));
    }
}

/// The API's "who am I" (the server has no userinfo endpoint; the test API stands in).
trait Me {
    async fn userinfo_or_me(&self, server: &TestServer) -> serde_json::Value;
}

impl<T: TokenHook> Me for latchkey_client::Session<'_, ReqwestClient, T> {
    async fn userinfo_or_me(&self, server: &TestServer) -> serde_json::Value {
        let resp = self.get(&server.url("/api/me")).await.expect("answers");
        assert_eq!(resp.status, 200, "{}", resp.text());
        resp.json().expect("json")
    }
}

#[tokio::test]
async fn a_denied_login_is_a_typed_access_denied_and_a_forged_callback_a_state_mismatch() {
    let server = TestServer::start().await;
    let client = server.confidential("profile").await;
    let mut oauth = oauth();
    let app = discovered(&mut oauth, &server, &client);
    let login = app.authorize(REDIRECT, None, &[]).await.expect("url");
    let callback = Agent::new().authorize(&server, &login.url, false).await;
    let err = app
        .finish_login(&login.pending, &callback_query(&callback))
        .await
        .expect_err("denied");
    assert_eq!(err.code(), Some(&ErrorCode::AccessDenied), "{err:?}");

    // A real code delivered to another login (the attacker's callback in the victim's
    // browser) is refused before it is exchanged.
    let victim = app.authorize(REDIRECT, None, &[]).await.expect("url");
    let attacker = app.authorize(REDIRECT, None, &[]).await.expect("url");
    let callback = Agent::new().authorize(&server, &attacker.url, true).await;
    let query = callback_query(&callback);
    assert!(matches!(
        app.finish_login(&victim.pending, &query).await,
        Err(ClientError::StateMismatch)
    ));
    assert!(
        app.finish_login(&attacker.pending, &query).await.is_ok(),
        "the code was not spent by the refused callback"
    );

    // A callback claiming another issuer is refused (RFC 9207 mix-up defence).
    let login = app.authorize(REDIRECT, None, &[]).await.expect("url");
    let callback = Agent::new().authorize(&server, &login.url, true).await;
    let mixed = callback_query(&callback).replace("iss=http", "iss=https");
    assert!(matches!(
        app.finish_login(&login.pending, &mixed).await,
        Err(ClientError::IssuerMismatch { .. })
    ));
}

#[tokio::test]
async fn a_token_about_to_expire_is_refreshed_before_the_request_and_saved() {
    let server = TestServer::start().await;
    let client = server.confidential("profile").await;
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let mut oauth = OAuth::new().with_clock(clock.clone());
    let app = discovered(&mut oauth, &server, &client);
    let first = app
        .password(common::USER, &Secret::new(common::PASSWORD), None)
        .await
        .expect("token");
    let lifetime = clock.now().seconds_until(first.expires_at.expect("expiry"));
    let tokens = MemoryTokens::new(first.clone());
    let session = app.session(&tokens);

    assert_eq!(session.get("me").await.expect("answers").status, 200);
    assert_eq!(
        tokens.current(),
        Some(first.clone()),
        "no refresh while fresh"
    );

    // Within the leeway of the expiry: the client refreshes first.
    clock.advance(lifetime - 30);
    let resp = session.get("me").await.expect("answers");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let second = tokens.current().expect("saved");
    assert_ne!(second.access_token, first.access_token);
    assert_ne!(
        second.refresh_token, first.refresh_token,
        "the server rotated the refresh token and the hook kept the new one"
    );
    assert!(second.expires_at > first.expires_at);
    let old = server
        .introspect(&client, first.access_token.expose())
        .await;
    let new = server
        .introspect(&client, second.access_token.expose())
        .await;
    assert_eq!(new["active"], true, "{new}");
    assert_eq!(old["sub"], new["sub"], "{old} {new}");
}

#[tokio::test]
async fn a_401_invalid_token_refreshes_once_and_retries() {
    let server = TestServer::start().await;
    let client = server.confidential("profile").await;
    let mut oauth = oauth();
    let app = discovered(&mut oauth, &server, &client);
    let real = app
        .password(common::USER, &Secret::new(common::PASSWORD), None)
        .await
        .expect("token");
    // The server has forgotten the access token (revoked, expired early): only the refresh
    // token still works.
    let stale = Token {
        access_token: Secret::new("revoked-at-the-server"),
        ..real.clone()
    };
    let tokens = MemoryTokens::new(stale);
    let resp = app.session(&tokens).get("me").await.expect("answers");
    assert_eq!(resp.status, 200, "{}", resp.text());
    let saved = tokens.current().expect("saved");
    assert_ne!(saved.access_token.expose(), "revoked-at-the-server");
    assert_ne!(saved.refresh_token, real.refresh_token, "rotated");

    // Without a refresh token there is nothing to retry with: the 401 comes back.
    let no_refresh = MemoryTokens::new(Token::bearer("unknown"));
    let resp = app.session(&no_refresh).get("me").await.expect("answers");
    assert_eq!(resp.status, 401);
    assert!(matches!(
        app.session(&MemoryTokens::default()).get("me").await,
        Err(ClientError::NoToken)
    ));
}

#[tokio::test]
async fn revocation_ends_the_access_and_the_refresh_token() {
    let server = TestServer::start().await;
    let client = server.confidential("profile").await;
    let mut oauth = oauth();
    let app = discovered(&mut oauth, &server, &client);
    let token = app
        .password(common::USER, &Secret::new(common::PASSWORD), None)
        .await
        .expect("token");
    app.revoke(&token).await.expect("revoked");
    let seen = server
        .introspect(&client, token.access_token.expose())
        .await;
    assert_eq!(seen["active"], false, "{seen}");
    let err = app
        .refresh(&token)
        .await
        .expect_err("refresh token revoked");
    assert_eq!(err.code(), Some(&ErrorCode::InvalidGrant));
    // Revoking again is not an error (RFC 7009 §2.2).
    app.revoke(&token).await.expect("idempotent");
}

#[tokio::test]
async fn request_helpers_send_the_token_with_form_and_json_bodies() {
    let server = TestServer::start().await;
    let client = server.confidential("profile").await;
    let mut oauth = oauth();
    let app = discovered(&mut oauth, &server, &client);
    let token = app
        .password(common::USER, &Secret::new(common::PASSWORD), None)
        .await
        .expect("token");
    let tokens = MemoryTokens::new(token);
    let s = app.session(&tokens);

    let form = s
        .post("me", Body::form([("title", "a b&c")]))
        .await
        .expect("post")
        .json()
        .expect("json");
    assert_eq!(form["method"], "POST");
    assert_eq!(form["content_type"], "application/x-www-form-urlencoded");
    assert_eq!(form["body"], "title=a+b%26c");
    assert_eq!(form["sub"], "sub-alice");

    let json = s
        .put("/me", Body::Json(serde_json::json!({ "n": 1 })))
        .await
        .expect("put")
        .json()
        .expect("json");
    assert_eq!(json["method"], "PUT");
    assert_eq!(json["content_type"], "application/json");
    assert_eq!(json["body"], r#"{"n":1}"#);

    let patch = s
        .patch(
            &server.url("/api/me"),
            Body::Raw {
                content_type: "text/plain".into(),
                bytes: b"raw".to_vec(),
            },
        )
        .await
        .expect("patch")
        .json()
        .expect("json");
    assert_eq!(patch["method"], "PATCH");
    assert_eq!(patch["body"], "raw");

    let delete = s.delete("me").await.expect("delete").json().expect("json");
    assert_eq!(delete["method"], "DELETE");
}

#[tokio::test]
async fn concurrent_requests_with_an_expiring_token_refresh_it_once() {
    let server = TestServer::start().await;
    let client = server.confidential("profile").await;
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let mut oauth = OAuth::new().with_clock(clock.clone());
    let app = discovered(&mut oauth, &server, &client);
    let first = app
        .password(common::USER, &Secret::new(common::PASSWORD), None)
        .await
        .expect("token");
    clock.advance(clock.now().seconds_until(first.expires_at.expect("expiry")));
    let tokens = MemoryTokens::new(first);
    let session = app.session(&tokens);
    // The server rotates refresh tokens and treats a reused one as theft (revoking the whole
    // family), so two refreshes with the same refresh token would break both requests.
    let (a, b, c) = tokio::join!(session.get("me"), session.get("me"), session.get("me"));
    for resp in [a, b, c] {
        let resp = resp.expect("answers");
        assert_eq!(resp.status, 200, "{}", resp.text());
    }
    let saved = tokens.current().expect("saved");
    assert!(app.refresh(&saved).await.is_ok(), "the family is intact");
}

#[tokio::test]
async fn apps_come_from_settings_by_name() {
    let server = TestServer::start().await;
    let client = server.confidential("profile").await;
    let settings: std::collections::BTreeMap<String, latchkey_client::AppSettings> =
        serde_json::from_value(serde_json::json!({
            "latchkey": {
                "issuer": server.base,
                "client_id": client.id,
                "client_secret": client.secret,
                "scopes": ["profile"]
            },
            "github": { "preset": "github", "client_id": "Iv1.x", "client_secret": "s" }
        }))
        .expect("settings parse");
    let mut oauth = oauth();
    oauth.register_settings(settings).expect("valid");
    assert_eq!(
        oauth.names().collect::<Vec<_>>(),
        vec!["github", "latchkey"]
    );
    let token = oauth
        .app("latchkey")
        .expect("registered")
        .client_credentials(None)
        .await
        .expect("token");
    assert_eq!(token.scope.as_deref(), Some("profile"));
    assert!(matches!(
        oauth.app("gitlab"),
        Err(ClientError::UnknownApp(_))
    ));
}
