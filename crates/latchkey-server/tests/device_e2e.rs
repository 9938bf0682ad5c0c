//! The device authorization grant (RFC 8628) on the real binary: a public device client made
//! with `latchkey client create --grant device_code`, the device authorization endpoint, the
//! verification page (code form, login, consent, allow or deny), and every answer of the
//! token endpoint with its RFC error code: `authorization_pending`, `slow_down`,
//! `access_denied`, `expired_token`, and `invalid_grant` for a used, unknown or foreign code.

mod common;

use common::agent::{Agent, Page};
use common::{CliClient, Server, add_user, create_client, data_dir, post_token};
use std::path::Path;

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const USER: &str = "alice";
const PASSWORD: &str = "correct horse battery";

fn device_client(dir: &Path) -> CliClient {
    create_client(
        dir,
        &[
            "--public",
            "--grant",
            "device_code",
            "--grant",
            "refresh_token",
            "--scope",
            "read write",
        ],
    )
}

/// Starts a device authorization; the JSON answer.
async fn start(http: &reqwest::Client, server: &Server, client: &CliClient) -> serde_json::Value {
    let resp = http
        .post(server.url("/device_authorization"))
        .form(&[("client_id", client.id.as_str()), ("scope", "read")])
        .send()
        .await
        .expect("answers");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    resp.json().await.expect("json")
}

async fn poll(
    http: &reqwest::Client,
    server: &Server,
    client: &CliClient,
    device_code: &str,
) -> (u16, serde_json::Value) {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", GRANT)
        .append_pair("device_code", device_code)
        .append_pair("client_id", &client.id)
        .finish();
    let (status, _, json) = post_token(http, server, None, &body).await;
    (status, json)
}

fn error(answer: &(u16, serde_json::Value)) -> (u16, &str) {
    (answer.0, answer.1["error"].as_str().unwrap_or(""))
}

/// The user's side, as a browser: enter the code, sign in, answer. Returns the final page.
async fn answer(agent: &mut Agent, server: &Server, user_code: &str, allow: bool) -> Page {
    let form = agent.get(&server.url("/device")).await;
    assert_eq!(form.status, 200, "{}", form.body);
    let login = agent
        .post(
            &server.url("/device"),
            &[
                ("csrf_token", &form.field("csrf_token")),
                ("user_code", user_code),
            ],
        )
        .await;
    assert_eq!(login.status, 200, "login page: {}", login.body);
    let signed_in = agent
        .post(
            &server.url("/device/login"),
            &[
                ("csrf_token", &login.field("csrf_token")),
                ("request", &login.field("request")),
                ("username", USER),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(signed_in.status, 303, "login: {}", signed_in.body);
    let consent = agent.get(&server.url(signed_in.location())).await;
    assert_eq!(consent.status, 200, "consent page: {}", consent.body);
    assert!(consent.body.contains("E2E Service"), "{}", consent.body);
    assert!(consent.body.contains(user_code), "the code is shown");
    assert!(
        consent.body.contains("<code>read</code>"),
        "{}",
        consent.body
    );
    agent
        .post(
            &server.url("/device"),
            &[
                ("csrf_token", &consent.field("csrf_token")),
                ("user_code", &consent.field("user_code")),
                ("decision", if allow { "allow" } else { "deny" }),
            ],
        )
        .await
}

fn setup() -> (tempfile::TempDir, CliClient) {
    let dir = data_dir();
    add_user(dir.path(), USER, PASSWORD);
    let client = device_client(dir.path());
    (dir, client)
}

#[tokio::test]
async fn metadata_advertises_the_device_endpoint_and_grant() {
    let (dir, _) = setup();
    let server = Server::start(dir.path());
    let doc: serde_json::Value =
        reqwest::get(server.url("/.well-known/oauth-authorization-server"))
            .await
            .expect("answers")
            .json()
            .await
            .expect("json");
    assert_eq!(
        doc["device_authorization_endpoint"],
        server.url("/device_authorization")
    );
    let grants = doc["grant_types_supported"].as_array().expect("grants");
    assert!(grants.iter().any(|g| g == GRANT), "{grants:?}");
    drop(server);
    // Switched off, neither is advertised and the endpoint refuses.
    let server = Server::start_with(dir.path(), &[("LATCHKEY_DEVICE__ENABLED", "false")]);
    let doc: serde_json::Value = reqwest::get(server.url("/.well-known/openid-configuration"))
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert!(doc.get("device_authorization_endpoint").is_none());
    let grants = doc["grant_types_supported"].as_array().expect("grants");
    assert!(!grants.iter().any(|g| g == GRANT), "{grants:?}");
}

#[tokio::test]
async fn a_device_polls_slows_down_and_gets_tokens_once_after_the_user_allows() {
    let (dir, client) = setup();
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let started = start(&http, &server, &client).await;
    let device_code = started["device_code"].as_str().expect("device_code");
    let user_code = started["user_code"].as_str().expect("user_code");
    assert_eq!(started["verification_uri"], server.url("/device"));
    assert_eq!(started["interval"], 5);
    assert!(started["expires_in"].as_u64().expect("expires_in") > 0);

    let first = poll(&http, &server, &client, device_code).await;
    assert_eq!(error(&first), (400, "authorization_pending"), "{first:?}");
    // RFC 8628 §3.5: polled again at once, sooner than the interval.
    let second = poll(&http, &server, &client, device_code).await;
    assert_eq!(error(&second), (400, "slow_down"), "{second:?}");

    let mut agent = Agent::new();
    let done = answer(&mut agent, &server, user_code, true).await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Device connected"), "{}", done.body);

    let (status, tokens) = poll(&http, &server, &client, device_code).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["scope"], "read");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    let refreshed = post_token(
        &http,
        &server,
        None,
        &format!(
            "grant_type=refresh_token&client_id={}&refresh_token={}",
            client.id,
            tokens["refresh_token"].as_str().expect("refresh")
        ),
    )
    .await;
    assert_eq!(refreshed.0, 200, "{}", refreshed.2);

    let reused = poll(&http, &server, &client, device_code).await;
    assert_eq!(error(&reused), (400, "invalid_grant"), "{reused:?}");
    // The user code went with it.
    let form = agent.get(&server.url("/device")).await;
    let again = agent
        .post(
            &server.url("/device"),
            &[
                ("csrf_token", &form.field("csrf_token")),
                ("user_code", user_code),
            ],
        )
        .await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(again.body.contains("not valid"), "{}", again.body);
}

#[tokio::test]
async fn a_denied_device_gets_access_denied_then_invalid_grant() {
    let (dir, client) = setup();
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let started = start(&http, &server, &client).await;
    let device_code = started["device_code"].as_str().expect("device_code");
    let done = answer(
        &mut Agent::new(),
        &server,
        started["user_code"].as_str().expect("user_code"),
        false,
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("not connected"), "{}", done.body);
    let denied = poll(&http, &server, &client, device_code).await;
    assert_eq!(error(&denied), (400, "access_denied"), "{denied:?}");
    let after = poll(&http, &server, &client, device_code).await;
    assert_eq!(error(&after), (400, "invalid_grant"), "{after:?}");
}

#[tokio::test]
async fn an_expired_device_code_answers_expired_token() {
    let (dir, client) = setup();
    let server = Server::start_with(dir.path(), &[("LATCHKEY_DEVICE__LIFETIME", "10")]);
    let http = reqwest::Client::new();
    let started = start(&http, &server, &client).await;
    assert_eq!(started["expires_in"], 10);
    let device_code = started["device_code"].as_str().expect("device_code");
    tokio::time::sleep(std::time::Duration::from_secs(11)).await;
    let expired = poll(&http, &server, &client, device_code).await;
    assert_eq!(error(&expired), (400, "expired_token"), "{expired:?}");
}

#[tokio::test]
async fn codes_are_bound_to_their_client_and_clients_to_their_grants() {
    let (dir, client) = setup();
    let other = device_client(dir.path());
    let web = create_client(
        dir.path(),
        &["--public", "--redirect-uri", "https://app.example/cb"],
    );
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();

    let refused = http
        .post(server.url("/device_authorization"))
        .form(&[("client_id", web.id.as_str())])
        .send()
        .await
        .expect("answers");
    assert_eq!(refused.status(), 400);
    let body: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(body["error"], "unauthorized_client");

    let scoped = http
        .post(server.url("/device_authorization"))
        .form(&[("client_id", client.id.as_str()), ("scope", "admin")])
        .send()
        .await
        .expect("answers");
    let body: serde_json::Value = scoped.json().await.expect("json");
    assert_eq!(body["error"], "invalid_scope");

    let started = start(&http, &server, &client).await;
    let device_code = started["device_code"].as_str().expect("device_code");
    let foreign = poll(&http, &server, &other, device_code).await;
    assert_eq!(error(&foreign), (400, "invalid_grant"), "{foreign:?}");
    let unknown = poll(&http, &server, &client, "not-a-device-code").await;
    assert_eq!(error(&unknown), (400, "invalid_grant"), "{unknown:?}");
    // The foreign poll changed nothing: the owner's first poll is pending, not slow_down.
    let own = poll(&http, &server, &client, device_code).await;
    assert_eq!(error(&own), (400, "authorization_pending"), "{own:?}");
}

#[tokio::test]
async fn the_complete_uri_fills_the_code_in_but_the_user_still_confirms() {
    let (dir, client) = setup();
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let started = start(&http, &server, &client).await;
    let complete = started["verification_uri_complete"]
        .as_str()
        .expect("complete");
    let user_code = started["user_code"].as_str().expect("user_code");
    let mut agent = Agent::new();
    let page = agent.get(complete).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains(&format!("value=\"{user_code}\"")),
        "{}",
        page.body
    );
    assert!(page.body.contains("Check that this code"), "{}", page.body);
    assert!(!page.body.contains("decision"), "no allow button yet");
    // Escaped like every page.
    let hostile = agent
        .get(&server.url("/device?user_code=%22%3E%3Cscript%3Ex%3C/script%3E"))
        .await;
    assert!(!hostile.body.contains("<script>x"), "{}", hostile.body);
    // A form post without its CSRF token is refused.
    let forged = agent
        .post(&server.url("/device"), &[("user_code", user_code)])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);
}

#[tokio::test]
async fn wrong_user_codes_are_rate_limited_per_address() {
    let (dir, client) = setup();
    let server = Server::start_with(
        dir.path(),
        &[("LATCHKEY_DEVICE__MAX_WRONG_CODES_PER_IP", "3")],
    );
    let http = reqwest::Client::new();
    let started = start(&http, &server, &client).await;
    let user_code = started["user_code"].as_str().expect("user_code");
    let mut agent = Agent::new();
    for wrong in ["BBBB-BBBB", "CCCC-CCCC", "not a code"] {
        let form = agent.get(&server.url("/device")).await;
        let page = agent
            .post(
                &server.url("/device"),
                &[
                    ("csrf_token", &form.field("csrf_token")),
                    ("user_code", wrong),
                ],
            )
            .await;
        assert_eq!(page.status, 400, "{}", page.body);
    }
    let form = agent.get(&server.url("/device")).await;
    let page = agent
        .post(
            &server.url("/device"),
            &[
                ("csrf_token", &form.field("csrf_token")),
                ("user_code", user_code),
            ],
        )
        .await;
    assert_eq!(page.status, 429, "even the right code waits: {}", page.body);
    assert!(page.headers.get("retry-after").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_polls_of_an_allowed_code_get_tokens_exactly_once() {
    let (dir, client) = setup();
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let started = start(&http, &server, &client).await;
    let device_code = started["device_code"].as_str().expect("device_code");
    let done = answer(
        &mut Agent::new(),
        &server,
        started["user_code"].as_str().expect("user_code"),
        true,
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);
    let server = std::sync::Arc::new(server);
    let client = std::sync::Arc::new(client);
    let polls: Vec<_> = (0..12)
        .map(|_| {
            let (http, server, client) = (http.clone(), server.clone(), client.clone());
            let code = device_code.to_owned();
            tokio::spawn(async move { poll(&http, &server, &client, &code).await })
        })
        .collect();
    let mut issued = 0;
    for p in polls {
        let answer = p.await.expect("task");
        match error(&answer) {
            (200, _) => issued += 1,
            (400, "invalid_grant" | "slow_down") => {}
            other => panic!("unexpected answer {other:?}: {}", answer.1),
        }
    }
    assert_eq!(issued, 1);
}

#[tokio::test]
async fn a_device_names_its_resources_and_the_poll_narrows_them() {
    const API: &str = "https://api.example.test/v1";
    const MCP: &str = "https://mcp.example.test/mcp";
    let (dir, client) = setup();
    std::fs::write(
        dir.path().join("latchkey.toml"),
        format!(
            "[[resources]]\nid = \"{API}\"\nscopes = [\"read\"]\n\n[[resources]]\nid = \"{MCP}\"\n"
        ),
    )
    .expect("settings");
    let rs = create_client(
        dir.path(),
        &["--grant-type", "client_credentials", "--introspect"],
    );
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let device = |extra: Vec<(&'static str, &'static str)>| {
        let mut form = vec![
            ("client_id", client.id.clone()),
            ("scope", "read".to_owned()),
        ];
        form.extend(extra.into_iter().map(|(k, v)| (k, v.to_owned())));
        http.post(server.url("/device_authorization"))
            .form(&form)
            .send()
    };

    // RFC 8707 §2 at the device authorization endpoint: an unknown resource is refused.
    let resp = device(vec![("resource", "https://unknown.example.test/")])
        .await
        .expect("answers");
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(body["error"], "invalid_target", "{body}");

    let started: serde_json::Value = device(vec![("resource", API), ("resource", MCP)])
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let device_code = started["device_code"].as_str().expect("device_code");
    let mut agent = Agent::new();
    let done = answer(
        &mut agent,
        &server,
        started["user_code"].as_str().expect("user_code"),
        true,
    )
    .await;
    assert_eq!(done.status, 200, "{}", done.body);

    let poll_for = |resource: &'static str| {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", GRANT)
            .append_pair("device_code", device_code)
            .append_pair("client_id", &client.id)
            .append_pair("resource", resource)
            .finish();
        let http = http.clone();
        let server = &server;
        async move { post_token(&http, server, None, &body).await }
    };
    // A resource the device did not ask for: refused, and the approval stays.
    let (status, _, refused) = poll_for("https://unknown.example.test/").await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_target")),
        "{refused}"
    );
    let (status, _, tokens) = poll_for(MCP).await;
    assert_eq!(status, 200, "{tokens}");
    let info: serde_json::Value = http
        .post(server.url("/introspect"))
        .header("authorization", rs.basic())
        .form(&[("token", tokens["access_token"].as_str().expect("access"))])
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(info["active"], true, "{info}");
    let aud = info["aud"].clone();
    assert!(
        aud == serde_json::json!(MCP) || aud == serde_json::json!([MCP]),
        "{info}"
    );
}
