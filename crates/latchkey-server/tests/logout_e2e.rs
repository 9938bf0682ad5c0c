//! OpenID Connect logout through the real server: RP-Initiated Logout at `/end_session` and
//! the back-channel logout token it sends to a relying party served by this test.
//!
//! The user logs in and approves a client that registered a post-logout redirect URI and a
//! back-channel logout URI; the client's request to end the session (without an ID token
//! hint: a cross-site GET) is confirmed on a page, then redirects with `state`; the session is
//! gone; the relying party, which answers 500 to the first delivery, gets the logout token on
//! the retry, and it verifies against `/jwks` with the session's `sid`, the user's `sub`, the
//! client as `aud` and the back-channel event.

mod common;

use common::agent::Agent;
use common::{Server, add_user, cli, data_dir};
use latchkey_core::pkce::s256_challenge;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:41234/callback";
const AFTER_LOGOUT: &str = "https://rp.example/signed-out";

/// A relying party's back-channel logout endpoint: records each POSTed body; answers 500 to
/// the first, 200 after.
#[derive(Clone, Default)]
struct RelyingParty {
    received: Arc<Mutex<Vec<String>>>,
}

impl RelyingParty {
    async fn start(&self) -> String {
        let received = Arc::clone(&self.received);
        let app = axum::Router::new().route(
            "/backchannel",
            axum::routing::post(move |body: String| {
                let received = Arc::clone(&received);
                async move {
                    let mut all = received.lock().expect("lock");
                    all.push(body);
                    if all.len() == 1 {
                        axum::http::StatusCode::INTERNAL_SERVER_ERROR
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/backchannel")
    }

    /// The bodies received, once there are `n` (waits up to 20 s).
    async fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..200 {
            let got = self.received.lock().expect("lock").clone();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the relying party got {:?}",
            self.received.lock().expect("lock")
        );
    }
}

fn authorize_url(server: &Server, client_id: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "photos:read")
        .append_pair("state", "st-1")
        .append_pair("code_challenge", &s256_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .finish();
    server.url(&format!("/authorize?{query}"))
}

fn is_login_page(body: &str) -> bool {
    body.contains("name=\"password\"")
}

#[tokio::test]
async fn end_session_confirms_redirects_with_state_and_tells_the_client_over_the_back_channel() {
    let rp = RelyingParty::default();
    let backchannel = rp.start().await;
    let dir = data_dir();
    let out = cli(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "Photos",
            "--public",
            "--json",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--scope",
            "photos:read",
            "--post-logout-redirect-uri",
            AFTER_LOGOUT,
            "--backchannel-logout-uri",
            &backchannel,
            "--backchannel-logout-session-required",
            "true",
        ],
        None,
    );
    let json: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let client_id = json["client_id"].as_str().expect("id").to_owned();
    add_user(dir.path(), "alice", "alice-password");
    let server = Server::start(dir.path());

    let metadata: serde_json::Value =
        reqwest::get(server.url("/.well-known/oauth-authorization-server"))
            .await
            .expect("metadata")
            .json()
            .await
            .expect("json");
    assert_eq!(metadata["end_session_endpoint"], server.url("/end_session"));
    assert_eq!(metadata["backchannel_logout_supported"], true);
    assert_eq!(metadata["backchannel_logout_session_supported"], true);

    // Log in and approve: the client gets a code in this session.
    let mut agent = Agent::new();
    let login = agent.get(&authorize_url(&server, &client_id)).await;
    assert!(is_login_page(&login.body), "{}", login.body);
    let after = agent
        .submit_login(&server.base, &login, "alice", "alice-password")
        .await;
    assert_eq!(after.status, 303, "{}", after.body);
    let consent = agent.get(&server.url(after.location())).await;
    let done = agent.submit_consent(&server.base, &consent, "allow").await;
    assert_eq!(done.status, 303);
    assert!(done.location().contains("code="), "{}", done.location());

    // An unregistered post-logout URI: an error page, never a redirect.
    let end = |uri: &str| {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &client_id)
            .append_pair("post_logout_redirect_uri", uri)
            .append_pair("state", "bye-42")
            .finish();
        server.url(&format!("/end_session?{query}"))
    };
    let refused = agent.get(&end("https://evil.example/")).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.headers.get("location").is_none());

    // Without an ID token hint, a GET does not log anyone out: it asks.
    let confirm = agent.get(&end(AFTER_LOGOUT)).await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(confirm.body.contains("Photos"), "{}", confirm.body);
    let still = agent.get(&authorize_url(&server, &client_id)).await;
    assert!(
        !is_login_page(&still.body),
        "still logged in before confirming"
    );
    assert!(rp.received.lock().expect("lock").is_empty());

    // Confirmed: redirected to the registered URI with state, and the session is over.
    let out = agent
        .post(
            &server.url("/end_session"),
            &[
                ("csrf_token", &confirm.field("csrf_token")),
                ("request", &confirm.field("request")),
            ],
        )
        .await;
    assert_eq!(out.status, 303, "{}", out.body);
    assert_eq!(out.location(), format!("{AFTER_LOGOUT}?state=bye-42"));
    let again = agent.get(&authorize_url(&server, &client_id)).await;
    assert!(
        is_login_page(&again.body),
        "a new /authorize asks for login"
    );

    // The relying party answered 500 first: the token came again, and verifies.
    let bodies = rp.wait_for(2).await;
    assert_eq!(bodies[0], bodies[1], "the same token is retried");
    let form: std::collections::HashMap<String, String> =
        form_urlencoded::parse(bodies[1].as_bytes())
            .into_owned()
            .collect();
    let token = form.get("logout_token").expect("logout_token");
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(server.url("/jwks"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let kid = header.kid.as_deref().expect("kid");
    let jwk = jwks.find(kid).expect("signed with a published key");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[&client_id]);
    validation.set_issuer(&[&server.base]);
    let claims: serde_json::Value = jsonwebtoken::decode(token, &key, &validation)
        .expect("the logout token verifies against /jwks")
        .claims;
    assert!(
        claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object(),
        "{claims}"
    );
    assert!(claims.get("nonce").is_none());
    let sid = claims["sid"].as_str().expect("sid");
    assert!(sid.len() >= 16, "{claims}");
    // The subject is the user's stable id (32 hex digits), not the user name.
    let sub = claims["sub"].as_str().expect("sub");
    assert!(
        sub.len() == 32 && sub.bytes().all(|b| b.is_ascii_hexdigit()),
        "{claims}"
    );
    let exp = claims["exp"].as_i64().expect("exp");
    let iat = claims["iat"].as_i64().expect("iat");
    assert!(exp - iat <= 120, "short-lived: {claims}");
}
