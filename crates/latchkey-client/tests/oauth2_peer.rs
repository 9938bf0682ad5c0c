//! The same flows through a third-party client, the `oauth2` crate, against the same server,
//! compared with ours: if our client and server shared a misunderstanding of the RFCs, the
//! independent client would disagree. Tokens also cross over: one client's refresh token is
//! refreshed by the other.

mod common;

use common::{Agent, REDIRECT, TestServer, callback_query};
use latchkey_client::{AppConfig, OAuth, RemoteApp, ReqwestClient, Token};
use latchkey_core::client::NewClient;
use latchkey_core::secret::Secret;
use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, RedirectUrl, RefreshToken, ResourceOwnerPassword, ResourceOwnerUsername,
    RevocationUrl, Scope, TokenResponse, TokenUrl,
};
use std::collections::BTreeMap;
use std::sync::Arc;

type Peer = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointSet, EndpointSet>;

/// The `oauth2` crate's custom async HTTP client hook, over reqwest 0.13.
async fn peer_http(req: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, reqwest::Error> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let resp = client
        .request(req.method().clone(), req.uri().to_string())
        .headers(req.headers().clone())
        .body(req.body().clone())
        .send()
        .await?;
    let mut out = http::Response::builder().status(resp.status());
    for (name, value) in resp.headers() {
        out = out.header(name, value);
    }
    let body = resp.bytes().await?.to_vec();
    Ok(out.body(body).expect("a valid response"))
}

fn peer(server: &TestServer, client: &common::TestClient) -> Peer {
    let mut peer = BasicClient::new(ClientId::new(client.id.clone()))
        .set_auth_uri(AuthUrl::new(server.url("/authorize")).expect("url"))
        .set_token_uri(TokenUrl::new(server.url("/token")).expect("url"))
        .set_revocation_url(RevocationUrl::new(server.url("/revoke")).expect("url"))
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).expect("url"));
    if let Some(secret) = &client.secret {
        peer = peer.set_client_secret(ClientSecret::new(secret.clone()));
    }
    peer
}

fn ours(server: &TestServer, client: &common::TestClient) -> Arc<RemoteApp<ReqwestClient>> {
    let config = AppConfig::new(&client.id, client.secret.as_deref())
        .issuer(&server.base)
        .scopes(["profile"]);
    OAuth::new().register("latchkey", config).expect("config")
}

/// What the server says about a token, minus what differs between any two tokens.
async fn seen(server: &TestServer, client: &common::TestClient, token: &str) -> serde_json::Value {
    let mut info = server.introspect(client, token).await;
    assert_eq!(info["active"], true, "{info}");
    let obj = info.as_object_mut().expect("object");
    for varying in ["exp", "iat", "nbf", "jti"] {
        obj.remove(varying);
    }
    info
}

/// Compares what the two clients made of equivalent token responses.
fn same_shape(ours: &Token, theirs: &oauth2::basic::BasicTokenResponse) {
    assert_eq!(
        ours.token_type.to_ascii_lowercase(),
        theirs.token_type().as_ref().to_ascii_lowercase()
    );
    let their_scope = theirs.scopes().map(|s| {
        s.iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    });
    assert_eq!(ours.scope, their_scope);
    assert_eq!(
        ours.refresh_token.is_some(),
        theirs.refresh_token().is_some()
    );
    assert_eq!(ours.expires_at.is_some(), theirs.expires_in().is_some());
}

#[tokio::test]
async fn client_credentials_agree_with_the_oauth2_crate() {
    let server = TestServer::start().await;
    let client = server.confidential("profile reports:read").await;
    let theirs = peer(&server, &client)
        .exchange_client_credentials()
        .add_scope(Scope::new("reports:read".into()))
        .request_async(&peer_http)
        .await
        .expect("oauth2 crate gets a token");
    let ours = ours(&server, &client)
        .client_credentials(Some(&["reports:read"]))
        .await
        .expect("we get a token");
    same_shape(&ours, &theirs);
    assert_eq!(
        seen(&server, &client, ours.access_token.expose()).await,
        seen(&server, &client, theirs.access_token().secret()).await
    );
}

#[tokio::test]
async fn password_and_refresh_agree_and_refresh_tokens_cross_over() {
    let server = TestServer::start().await;
    let client = server.confidential("profile").await;
    let peer = peer(&server, &client);
    let app = ours(&server, &client);
    let theirs = peer
        .exchange_password(
            &ResourceOwnerUsername::new(common::USER.into()),
            &ResourceOwnerPassword::new(common::PASSWORD.into()),
        )
        .add_scope(Scope::new("profile".into()))
        .request_async(&peer_http)
        .await
        .expect("oauth2 crate gets a token");
    let ours = app
        .password(common::USER, &Secret::new(common::PASSWORD), None)
        .await
        .expect("we get a token");
    same_shape(&ours, &theirs);
    assert_eq!(
        seen(&server, &client, ours.access_token.expose()).await,
        seen(&server, &client, theirs.access_token().secret()).await
    );

    // Our refresh token, refreshed by the oauth2 crate; theirs, refreshed by us.
    let our_refresh = ours.refresh_token.clone().expect("refresh token");
    let refreshed_by_them = peer
        .exchange_refresh_token(&RefreshToken::new(our_refresh.expose().to_owned()))
        .request_async(&peer_http)
        .await
        .expect("they refresh our token");
    let their_as_ours = Token {
        refresh_token: theirs
            .refresh_token()
            .map(|r| Secret::new(r.secret().clone())),
        ..Token::bearer(theirs.access_token().secret().clone())
    };
    let refreshed_by_us = app
        .refresh(&their_as_ours)
        .await
        .expect("we refresh theirs");
    same_shape(&refreshed_by_us, &refreshed_by_them);
    assert_eq!(
        seen(&server, &client, refreshed_by_us.access_token.expose()).await,
        seen(&server, &client, refreshed_by_them.access_token().secret()).await
    );
}

#[tokio::test]
async fn code_flow_with_pkce_agrees_with_the_oauth2_crate() {
    let server = TestServer::start().await;
    let rs = server
        .client(NewClient::confidential("Resource server").introspect(true))
        .await;
    for client in [
        server.confidential("profile").await,
        server.public("profile").await,
    ] {
        let peer = peer(&server, &client);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (their_url, their_state) = peer
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        let app = ours(&server, &client);
        let login = app.authorize(REDIRECT, None, &[]).await.expect("url");

        // The two authorization requests carry the same parameters.
        let names = |url: &str| {
            url::Url::parse(url)
                .expect("url")
                .query_pairs()
                .map(|(k, _)| k.into_owned())
                .collect::<std::collections::BTreeSet<_>>()
        };
        assert_eq!(names(&login.url), names(their_url.as_str()));
        let base = |url: &str| url.split('?').next().unwrap_or("").to_owned();
        assert_eq!(base(&login.url), base(their_url.as_str()));

        let their_callback = Agent::new()
            .authorize(&server, their_url.as_str(), true)
            .await;
        let params: BTreeMap<String, String> = url::Url::parse(&their_callback)
            .expect("url")
            .query_pairs()
            .into_owned()
            .collect();
        assert_eq!(&params["state"], their_state.secret());
        let theirs = peer
            .exchange_code(AuthorizationCode::new(params["code"].clone()))
            .set_pkce_verifier(verifier)
            .request_async(&peer_http)
            .await
            .expect("oauth2 crate exchanges the code");

        let our_callback = Agent::new().authorize(&server, &login.url, true).await;
        let ours = app
            .finish_login(&login.pending, &callback_query(&our_callback))
            .await
            .expect("we exchange the code");
        same_shape(&ours, &theirs);
        assert_eq!(
            seen(&server, &rs, ours.access_token.expose()).await,
            seen(&server, &rs, theirs.access_token().secret()).await
        );

        // Their tokens, revoked by us: their refresh token no longer works for them. (The
        // oauth2 crate itself refuses to revoke over plain HTTP, so it cannot revoke here.)
        let theirs_as_ours = Token {
            refresh_token: theirs
                .refresh_token()
                .map(|r| Secret::new(r.secret().clone())),
            ..Token::bearer(theirs.access_token().secret().clone())
        };
        app.revoke(&theirs_as_ours).await.expect("we revoke theirs");
        let info = server.introspect(&rs, theirs.access_token().secret()).await;
        assert_eq!(info["active"], false, "{info}");
        let refresh = theirs.refresh_token().expect("refresh token").clone();
        let refused = peer
            .exchange_refresh_token(&refresh)
            .request_async(&peer_http)
            .await;
        let Err(oauth2::RequestTokenError::ServerResponse(err)) = refused else {
            panic!("the revoked refresh token still works: {refused:?}")
        };
        assert_eq!(
            err.error(),
            &oauth2::basic::BasicErrorResponseType::InvalidGrant
        );
    }
}
