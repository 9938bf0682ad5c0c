//! Back-channel logout from the operator's side, through the real binary: `latchkey user
//! logout|passwd|delete` (each in its own process, which delivers the logout tokens itself
//! and waits for them) and their admin-API twins end the user's login sessions and tell every
//! client that got a code in them, with a logout token POSTed to its
//! `backchannel_logout_uri`.
//!
//! Every token is checked against the server's `/jwks`: `typ: logout+jwt`, the issuer, the
//! client as `aud`, the back-channel event, the ended session's `sid`, the user's `sub`, and
//! no `nonce`.

mod common;

use common::agent::Agent;
use common::{Server, add_user, cli, data_dir};
use latchkey_core::pkce::s256_challenge;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:41234/callback";
const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789abcdef";

/// The relying parties' back-channel logout endpoints: records each POST as (path, body) and
/// answers 200.
#[derive(Clone, Default)]
struct Receiver {
    received: Arc<Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    async fn start(&self) -> String {
        let received = Arc::clone(&self.received);
        let app = axum::Router::new().route(
            "/bc/{rp}",
            axum::routing::post(
                move |axum::extract::Path(rp): axum::extract::Path<String>, body: String| {
                    let received = Arc::clone(&received);
                    async move {
                        received.lock().expect("lock").push((rp, body));
                        axum::http::StatusCode::OK
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}/bc")
    }

    /// Everything received so far, emptied.
    fn take(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.received.lock().expect("lock"))
    }

    /// The logout tokens received, by relying party, once there are `n` (waits up to 20 s).
    async fn wait_for(&self, n: usize) -> Vec<(String, String)> {
        for _ in 0..200 {
            if self.received.lock().expect("lock").len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let got = self.take();
        assert_eq!(got.len(), n, "logout tokens received: {got:?}");
        got.into_iter()
            .map(|(rp, body)| {
                let token = form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "logout_token")
                    .map(|(_, v)| v.into_owned())
                    .expect("a logout_token field");
                (rp, token)
            })
            .collect()
    }
}

fn authorize_url(server: &Server, client_id: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("state", "st-1")
        .append_pair("nonce", "n-0S6_WzA2Mj")
        .append_pair("code_challenge", &s256_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .finish();
    server.url(&format!("/authorize?{query}"))
}

/// Takes `agent` through `/authorize` for `client_id` to a code: logs in with `password`
/// when asked, approves when asked.
async fn sign_in(agent: &mut Agent, server: &Server, client_id: &str, password: &str) {
    let mut page = agent.get(&authorize_url(server, client_id)).await;
    if page.body.contains("name=\"password\"") {
        let after = agent
            .submit_login(&server.base, &page, "alice", password)
            .await;
        assert_eq!(after.status, 303, "{}", after.body);
        page = agent.get(&server.url(after.location())).await;
    }
    if page.status == 200 && page.body.contains("decision") {
        page = agent.submit_consent(&server.base, &page, "allow").await;
    }
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(page.location().contains("code="), "{}", page.location());
}

/// Whether `agent`'s browser session is over: a new authorization asks for a login.
async fn logged_out(agent: &mut Agent, server: &Server, client_id: &str) -> bool {
    let page = agent.get(&authorize_url(server, client_id)).await;
    page.body.contains("name=\"password\"")
}

/// Verifies a logout token against the server's `/jwks` for the client `aud`; its claims.
async fn verify(server: &Server, issuer: &str, token: &str, aud: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(server.url("/jwks"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let header = jsonwebtoken::decode_header(token).expect("header");
    assert_eq!(header.typ.as_deref(), Some("logout+jwt"));
    let jwk = jwks
        .find(header.kid.as_deref().expect("kid"))
        .expect("signed with a published key");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[aud]);
    validation.set_issuer(&[issuer]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    let claims: Value = jsonwebtoken::decode(token, &key, &validation)
        .expect("the logout token verifies against /jwks")
        .claims;
    assert!(
        claims["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object(),
        "{claims}"
    );
    assert!(claims.get("nonce").is_none(), "§2.4: no nonce: {claims}");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    claims
}

/// Runs the CLI off the async runtime (it waits for the receiver this runtime serves).
async fn cli_async(dir: &std::path::Path, args: &[&str], stdin: Option<&str>) -> String {
    let dir = dir.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&dir, &args, stdin.as_deref())
    })
    .await
    .expect("cli task")
}

async fn admin_call(admin: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> u16 {
    let mut req = reqwest::Client::new()
        .request(method, format!("{admin}{path}"))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.expect("admin answers").status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_logouts_send_verified_backchannel_logout_tokens_from_cli_and_admin_api() {
    let rp = Receiver::default();
    let base = rp.start().await;
    let dir = data_dir();
    let mut clients = Vec::new();
    for (name, session_required) in [("one", "true"), ("two", "false")] {
        let out = cli(
            dir.path(),
            &[
                "client",
                "create",
                "--name",
                name,
                "--public",
                "--json",
                "--redirect-uri",
                "http://127.0.0.1/callback",
                "--scope",
                "openid",
                "--backchannel-logout-uri",
                &format!("{base}/{name}"),
                "--backchannel-logout-session-required",
                session_required,
            ],
            None,
        );
        let json: Value = serde_json::from_str(out.trim()).expect("json");
        clients.push(json["client_id"].as_str().expect("id").to_owned());
    }
    let (one, two) = (clients[0].clone(), clients[1].clone());
    add_user(dir.path(), "alice", "first-password");
    let subject: Value = serde_json::from_str(&cli(dir.path(), &["user", "show", "alice"], None))
        .expect("user json");
    let subject = subject["subject"].as_str().expect("subject").to_owned();
    let server = Server::start_with(
        dir.path(),
        &[
            ("LATCHKEY_ADMIN__LISTEN", "127.0.0.1:0"),
            ("LATCHKEY_ADMIN__TOKEN", ADMIN_TOKEN),
        ],
    );
    let admin = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("latchkey admin API on "))
        .expect("admin listener announced")
        .to_owned();
    // The CLI runs in its own process: it reads the same settings, the issuer included.
    let issuer = server.base.clone();
    std::fs::write(
        dir.path().join("latchkey.toml"),
        format!("issuer = \"{issuer}\"\n"),
    )
    .expect("settings file");

    // 1. `latchkey user logout`: both clients of the session are told, about that session.
    let mut agent = Agent::new();
    sign_in(&mut agent, &server, &one, "first-password").await;
    sign_in(&mut agent, &server, &two, "first-password").await;
    let out = cli_async(dir.path(), &["user", "logout", "alice"], None).await;
    assert!(out.contains("1 sessions ended"), "{out}");
    assert!(
        out.contains("Back-channel logout: 2 delivered, 0 refused, 0 failed."),
        "{out}"
    );
    let mut got = rp.wait_for(2).await;
    got.sort();
    assert_eq!(got[0].0, "one");
    assert_eq!(got[1].0, "two");
    let first = verify(&server, &issuer, &got[0].1, &one).await;
    let second = verify(&server, &issuer, &got[1].1, &two).await;
    assert_eq!(first["sub"], subject.as_str(), "{first}");
    assert_eq!(second["sub"], subject.as_str(), "{second}");
    let sid = first["sid"].as_str().expect("sid").to_owned();
    assert_eq!(second["sid"], sid.as_str(), "one session, one sid");
    assert_ne!(first["jti"], second["jti"]);
    assert!(logged_out(&mut agent, &server, &one).await);

    // 2. The admin API's password change: a new session, a new sid.
    let mut agent = Agent::new();
    sign_in(&mut agent, &server, &one, "first-password").await;
    let status = admin_call(
        &admin,
        reqwest::Method::PUT,
        "/admin/users/alice/password",
        Some(serde_json::json!({"password": "second-password"})),
    )
    .await;
    assert_eq!(status, 204);
    let got = rp.wait_for(1).await;
    let claims = verify(&server, &issuer, &got[0].1, &one).await;
    assert_eq!(claims["sub"], subject.as_str());
    let sid_two = claims["sid"].as_str().expect("sid").to_owned();
    assert_ne!(sid_two, sid);
    assert!(logged_out(&mut agent, &server, &one).await);

    // 3. `latchkey user passwd`.
    let mut agent = Agent::new();
    sign_in(&mut agent, &server, &two, "second-password").await;
    let out = cli_async(
        dir.path(),
        &["user", "passwd", "alice", "--password-stdin"],
        Some("third-password\n"),
    )
    .await;
    assert!(out.contains("1 delivered"), "{out}");
    let got = rp.wait_for(1).await;
    assert_eq!(got[0].0, "two");
    let claims = verify(&server, &issuer, &got[0].1, &two).await;
    assert_eq!(claims["sub"], subject.as_str());
    assert!(logged_out(&mut agent, &server, &two).await);

    // 4. The admin API's "log out everywhere": two browsers, two sessions, two tokens.
    let mut laptop = Agent::new();
    let mut phone = Agent::new();
    sign_in(&mut laptop, &server, &one, "third-password").await;
    sign_in(&mut phone, &server, &one, "third-password").await;
    let status = admin_call(
        &admin,
        reqwest::Method::POST,
        "/admin/users/alice/logout",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let got = rp.wait_for(2).await;
    let a = verify(&server, &issuer, &got[0].1, &one).await;
    let b = verify(&server, &issuer, &got[1].1, &one).await;
    assert_ne!(a["sid"], b["sid"], "one token per session");
    assert!(logged_out(&mut laptop, &server, &one).await);
    assert!(logged_out(&mut phone, &server, &one).await);

    // 5. `latchkey user delete`: the sessions end (and their clients are told) first.
    let mut agent = Agent::new();
    sign_in(&mut agent, &server, &one, "third-password").await;
    let out = cli_async(dir.path(), &["user", "delete", "alice"], None).await;
    assert!(out.contains("1 delivered"), "{out}");
    let got = rp.wait_for(1).await;
    let claims = verify(&server, &issuer, &got[0].1, &one).await;
    assert_eq!(claims["sub"], subject.as_str());

    // A user with no session: nothing to deliver, and the CLI says nothing about it.
    add_user(dir.path(), "bob", "bob-password");
    let out = cli_async(dir.path(), &["user", "logout", "bob"], None).await;
    assert!(out.contains("0 sessions ended"), "{out}");
    assert!(!out.contains("Back-channel"), "{out}");
    assert!(rp.take().is_empty());
}
