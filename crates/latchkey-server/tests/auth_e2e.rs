//! Password checks and client authentication through the real server: every login page and
//! the password grant share one backoff and one audit trail; attacker-chosen identifiers are
//! validated before they are counted or logged.

mod common;

use common::agent::Agent;
use common::{PASSWORD_GRANT, Server, add_user, cli, create_client, data_dir, post_token};

/// A public client allowed the code flow; returns its id.
fn public_client(dir: &std::path::Path) -> String {
    let out = cli(
        dir,
        &[
            "client",
            "create",
            "--name",
            "Photos",
            "--public",
            "--json",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--grant-type",
            "authorization_code",
        ],
        None,
    );
    let json: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    json["client_id"].as_str().expect("id").to_owned()
}

fn authorize_url(server: &Server, client_id: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", "http://127.0.0.1:41234/callback")
        .append_pair("state", "st-1")
        .append_pair(
            "code_challenge",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        )
        .append_pair("code_challenge_method", "S256")
        .finish();
    server.url(&format!("/authorize?{query}"))
}

/// Audit lines of the server's log (a JSON line each).
fn audit_lines(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("server.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("latchkey::audit"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn issue_14_oauth1_login_shares_the_backoff_and_the_audit_of_login() {
    let dir = data_dir();
    let client_id = public_client(dir.path());
    add_user(dir.path(), "alice", "alice-password");
    add_user(dir.path(), "bob", "bob-password");
    let server = Server::start(dir.path());
    let mut agent = Agent::new();
    let login = agent.get(&authorize_url(&server, &client_id)).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let csrf = login.field("csrf_token");
    let request = login.field("request");
    let try_login = |path: &'static str, user: &'static str, password: &'static str| {
        let form = [
            ("csrf_token", csrf.clone()),
            ("request", request.clone()),
            ("username", user.to_owned()),
            ("password", password.to_owned()),
        ];
        let url = server.url(path);
        (url, form)
    };

    // Failures on /oauth1/login leave audit lines, as those on /login do.
    for guess in ["wrong1", "wrong2"] {
        let (url, form) = try_login("/oauth1/login", "bob", guess);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = agent.post(&url, &form).await;
        assert_ne!(page.status, 303, "a wrong password logs nobody in");
    }

    // Three wrong passwords on /login: the next attempt for alice must wait.
    let mut statuses = Vec::new();
    for guess in ["wrong1", "wrong2", "wrong3", "alice-password"] {
        let (url, form) = try_login("/login", "alice", guess);
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        statuses.push(agent.post(&url, &form).await.status);
    }
    assert_eq!(statuses, [401, 401, 401, 429]);

    // While /login refuses alice, /oauth1/login refuses her too, even with the right password:
    // no redirect, no session.
    let (url, form) = try_login("/oauth1/login", "alice", "alice-password");
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = agent.post(&url, &form).await;
    assert_ne!(
        page.status, 303,
        "the OAuth 1.0a login skipped the backoff: {}",
        page.body
    );
    assert!(
        !agent.cookies.contains_key("lk_session"),
        "no session while the user is throttled"
    );
    assert!(
        !page.headers.contains_key("location"),
        "no way on to /authorize"
    );

    server.terminate();
    let audit = audit_lines(dir.path());
    let bob_failures = audit
        .iter()
        .filter(|l| l.contains("user_auth_failed") && l.contains("\"bob\""))
        .count();
    assert_eq!(
        bob_failures, 2,
        "failures on /oauth1/login audited: {audit:#?}"
    );
    assert!(
        audit
            .iter()
            .any(|l| l.contains("user_auth_throttled") && l.contains("\"alice\"")),
        "the refused check is audited: {audit:#?}"
    );
}

/// A reqwest client whose connections come from `local` (any 127/8 address reaches the
/// server on Linux), to play a second machine without a proxy.
fn http_from(local: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(Some(local.parse().expect("ip")))
        .build()
        .expect("client")
}

async fn client_credentials(http: &reqwest::Client, server: &Server, auth: &str) -> u16 {
    post_token(http, server, Some(auth), "grant_type=client_credentials")
        .await
        .0
}

#[tokio::test]
async fn issue_14_wrong_secrets_do_not_spend_the_real_clients_rate() {
    let dir = data_dir();
    let client = create_client(dir.path(), &[]);
    let server = Server::start_with(
        dir.path(),
        &[
            ("LATCHKEY_LIMITS__PER_CLIENT", "5"),
            ("LATCHKEY_LIMITS__CLIENT_AUTH_FAILURES", "3"),
        ],
    );
    // Someone elsewhere presents the client's id with wrong secrets: after 3 failures, that
    // address is refused for this client id before its secret is looked at.
    use base64::Engine as _;
    let forged = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:wrong", client.id))
    );
    let attacker = http_from("127.0.0.2");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(client_credentials(&attacker, &server, &forged).await);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    // The real client still has its whole budget, and only its own requests spend it.
    let http = http_from("127.0.0.1");
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(client_credentials(&http, &server, &client.basic()).await);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429]);

    // The audit trail says where each event came from.
    server.terminate();
    let audit = audit_lines(dir.path());
    assert!(
        audit
            .iter()
            .any(|l| l.contains("client_auth_failed") && l.contains("127.0.0.2")),
        "{audit:#?}"
    );
    assert!(
        audit
            .iter()
            .any(|l| l.contains("token_issued") && l.contains("\"client_ip\":\"127.0.0.1\"")),
        "{audit:#?}"
    );
}

#[tokio::test]
async fn issue_14_huge_client_ids_and_user_names_get_a_4xx_and_no_long_log_line() {
    let dir = data_dir();
    let client = create_client(dir.path(), &["--grant-type", "password"]);
    add_user(dir.path(), "alice", "alice-password");
    let server = Server::start_with(dir.path(), &[PASSWORD_GRANT]);
    let http = reqwest::Client::new();
    let huge = "x".repeat(64 * 1024);
    // Just under the body limit.
    let big = "x".repeat(63 * 1024);
    use base64::Engine as _;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{huge}:secret"))
    );
    let (status, _, body) = post_token(
        &http,
        &server,
        Some(&basic),
        "grant_type=client_credentials",
    )
    .await;
    assert!((400..500).contains(&status), "{status} {body}");
    let (status, _, body) = post_token(
        &http,
        &server,
        None,
        &format!("grant_type=client_credentials&client_id={big}&client_secret=s"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // A control character is no more welcome than length.
    let (status, _, _) = post_token(
        &http,
        &server,
        None,
        "grant_type=client_credentials&client_id=a%0Aevent%3Dforged&client_secret=s",
    )
    .await;
    assert_eq!(status, 401);
    // The password grant with a huge user name: refused without a check.
    let (status, _, body) = post_token(
        &http,
        &server,
        Some(&client.basic()),
        &format!("grant_type=password&username={big}&password=p"),
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    server.terminate();
    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    let longest = log.lines().map(str::len).max().unwrap_or(0);
    assert!(longest < 2048, "a log line of {longest} bytes");
    assert!(
        !log.contains("event=forged") && !log.contains("\nevent"),
        "no forged line"
    );
}
