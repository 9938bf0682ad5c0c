//! The device authorization grant (RFC 8628) against our own server, not a stub: this crate's
//! device polling ([`RemoteApp::device_authorization`], [`RemoteApp::poll_device`]) with the
//! endpoint found by discovery, and the same flow through an independent client, the
//! `oauth2` crate's `exchange_device_code` / `exchange_device_access_token`. The user
//! answers on the server's verification page, driven by the scripted agent.

mod common;

use common::{Agent, TestServer};
use latchkey_client::{AppConfig, ClientError, ErrorCode, OAuth, RemoteApp, ReqwestClient};
use latchkey_core::client::{GrantType, NewClient};
use latchkey_core::scope::ScopeSet;
use oauth2::basic::BasicClient;
use oauth2::{
    ClientId, DeviceAuthorizationUrl, Scope, StandardDeviceAuthorizationResponse, TokenResponse,
    TokenUrl,
};
use std::sync::Arc;
use std::time::Duration;

async fn device_client(server: &TestServer) -> common::TestClient {
    server
        .client(
            NewClient::public("Living Room TV")
                .grant_types([GrantType::DeviceCode, GrantType::RefreshToken])
                .scopes(ScopeSet::parse("profile tv").expect("scopes")),
        )
        .await
}

fn ours(server: &TestServer, client: &common::TestClient) -> Arc<RemoteApp<ReqwestClient>> {
    let config = AppConfig::new(&client.id, None)
        .issuer(&server.base)
        .scopes(["tv"]);
    OAuth::new().register("latchkey", config).expect("config")
}

/// The user allows the device while it polls: answered on another task after a moment.
fn allow_soon(
    server: Arc<TestServer>,
    user_code: String,
    allow: bool,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let done = Agent::new()
            .approve_device(&server, &user_code, allow)
            .await;
        assert_eq!(done.status, 200, "{}", done.body);
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_polls_our_server_until_the_user_allows() {
    let server = Arc::new(TestServer::start().await);
    let client = device_client(&server).await;
    let app = ours(&server, &client);
    let ep = app.endpoints().await.expect("discovered");
    assert_eq!(
        ep.device_authorization_url,
        Some(server.url("/device_authorization"))
    );
    let device = app
        .device_authorization(None)
        .await
        .expect("device authorization");
    assert_eq!(device.verification_uri, server.url("/device"));
    assert!(device.verification_uri_complete.is_some());
    assert_eq!(device.user_code.len(), 9, "{}", device.user_code);
    let user = allow_soon(server.clone(), device.user_code.clone(), true);
    let token = app.poll_device(&device).await.expect("tokens");
    user.await.expect("the user answered");
    assert_eq!(token.scope.as_deref(), Some("tv"));
    assert!(token.refresh_token.is_some());
    // The token works at the API beside the server, as alice's.
    let me: serde_json::Value = reqwest::Client::new()
        .get(server.url("/api/me"))
        .bearer_auth(token.access_token.expose())
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(me["username"], "alice");
    assert_eq!(me["client_id"], client.id);
    // The device code is spent.
    let again = app.token(device.grant()).await.expect_err("used");
    assert_eq!(again.code(), Some(&ErrorCode::InvalidGrant));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_client_stops_on_access_denied() {
    let server = Arc::new(TestServer::start().await);
    let client = device_client(&server).await;
    let app = ours(&server, &client);
    let device = app
        .device_authorization(Some(&["profile"]))
        .await
        .expect("device");
    let user = allow_soon(server.clone(), device.user_code.clone(), false);
    let err: ClientError = app.poll_device(&device).await.expect_err("denied");
    user.await.expect("the user answered");
    assert_eq!(err.code(), Some(&ErrorCode::AccessDenied));
}

/// The `oauth2` crate's async HTTP hook, over reqwest.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oauth2_crate_does_the_device_flow_against_our_server() {
    let server = Arc::new(TestServer::start().await);
    let client = device_client(&server).await;
    let peer = BasicClient::new(ClientId::new(client.id.clone()))
        .set_token_uri(TokenUrl::new(server.url("/token")).expect("url"))
        .set_device_authorization_url(
            DeviceAuthorizationUrl::new(server.url("/device_authorization")).expect("url"),
        );
    let details: StandardDeviceAuthorizationResponse = peer
        .exchange_device_code()
        .add_scope(Scope::new("tv".into()))
        .request_async(&peer_http)
        .await
        .expect("the crate reads our device authorization");
    assert_eq!(details.verification_uri().as_str(), server.url("/device"));
    let user = allow_soon(server.clone(), details.user_code().secret().clone(), true);
    let token = peer
        .exchange_device_access_token(&details)
        .request_async(
            &peer_http,
            tokio::time::sleep,
            Some(Duration::from_secs(120)),
        )
        .await
        .expect("the crate polls until the user allows");
    user.await.expect("the user answered");
    let scopes: Vec<String> = token
        .scopes()
        .map(|s| s.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default();
    assert_eq!(scopes, ["tv"]);
    assert!(token.refresh_token().is_some());
    let me = reqwest::Client::new()
        .get(server.url("/api/me"))
        .bearer_auth(token.access_token().secret())
        .send()
        .await
        .expect("answers");
    assert_eq!(me.status(), 200);
}
