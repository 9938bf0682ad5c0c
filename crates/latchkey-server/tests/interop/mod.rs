//! The harness of the OpenID Connect interop tests: the real `latchkey` binary with a user who
//! has claims and a confidential client with a redirect URI and a post-logout redirect URI;
//! the user's browser (the scripted [`Agent`]) that logs in, consents and follows the
//! RP-initiated logout; a third-party relying party in another process that speaks JSON lines
//! ([`Peer`]); and the checks every relying party's result must pass.
//!
//! A peer builds every URL and validates every token itself; this side never builds a
//! protocol request. It only does what a browser does: follow the authorization URL the
//! library built, post the login and consent forms, hand the redirect back to the library,
//! and later follow the library's logout URL.
#![allow(dead_code)]

use crate::common::agent::{Agent, Page, html_unescape};
use crate::common::{CliClient, Server, cli, create_client, data_dir};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Where the relying party receives the authorization response; the browser stops here (no
/// server listens: the URL goes back to the peer).
pub const REDIRECT_URI: &str = "https://rp.example/callback";
/// Where the relying party wants the browser after logout (RP-Initiated Logout §3.1).
pub const POST_LOGOUT_URI: &str = "https://rp.example/signed-out";
/// What every peer asks for (OpenID Connect Core §5.4).
pub const SCOPE: &str = "openid profile email";

/// The user the browser signs in as, and the claims an administrator gave them.
pub const USERNAME: &str = "alice";
pub const PASSWORD: &str = "correct horse battery";
pub const NAME: &str = "Alice Liddell";
pub const EMAIL: &str = "alice@example.com";

/// How long a peer may take for one step before the test gives up on it.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// The OpenID Provider under test: a data directory, the server, the relying party's client.
pub struct Op {
    pub dir: tempfile::TempDir,
    pub server: Server,
    pub client: CliClient,
}

impl Op {
    /// A server with the user and a confidential client registered the way an operator
    /// would (the CLI), with `extra` client options (for example another authentication
    /// method). `env` holds server settings.
    pub fn start(extra: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = data_dir();
        cli(
            dir.path(),
            &[
                "user",
                "add",
                USERNAME,
                "--password-stdin",
                "--name",
                NAME,
                "--email",
                EMAIL,
                "--email-verified",
                "true",
            ],
            Some(&format!("{PASSWORD}\n")),
        );
        let mut args = vec![
            "--redirect-uri",
            REDIRECT_URI,
            "--post-logout-redirect-uri",
            POST_LOGOUT_URI,
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            SCOPE,
        ];
        args.extend_from_slice(extra);
        let client = create_client(dir.path(), &args);
        let server = Server::start_with(dir.path(), env);
        Self {
            dir,
            server,
            client,
        }
    }

    /// The issuer: the server's base URL (derived from the loopback listen address).
    pub fn issuer(&self) -> &str {
        &self.server.base
    }

    /// What a peer needs to know, as JSON: everything a developer would configure.
    pub fn peer_config(&self) -> Value {
        json!({
            "issuer": self.issuer(),
            "client_id": self.client.id,
            "client_secret": self.client.secret,
            "redirect_uri": REDIRECT_URI,
            "post_logout_redirect_uri": POST_LOGOUT_URI,
        })
    }

    /// The server's log so far, to show beside a failure.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

/// How the browser arrived at the redirect URI: the request the relying party receives.
#[derive(Debug)]
pub enum Arrival {
    /// A redirect (`query` or `fragment` response mode): the URL the browser went to.
    Get(String),
    /// The `form_post` response mode: the form the page made the browser POST.
    Post { url: String, body: String },
}

impl Arrival {
    /// The arrival as a peer reads it.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Get(url) => json!({ "method": "GET", "url": url }),
            Self::Post { url, body } => json!({ "method": "POST", "url": url, "body": body }),
        }
    }

    /// The query (or form) parameters of the response.
    pub fn params(&self) -> Vec<(String, String)> {
        match self {
            Self::Get(url) => url::Url::parse(url)
                .expect("absolute")
                .query_pairs()
                .into_owned()
                .collect(),
            Self::Post { body, .. } => form_urlencoded::parse(body.as_bytes())
                .into_owned()
                .collect(),
        }
    }
}

/// What a browser does with the authorization URL a relying party built: go there, log in
/// when asked, allow when asked, and stop when it leaves the server (at the redirect URI).
pub async fn sign_in(agent: &mut Agent, op: &Op, authorize_url: &str) -> Arrival {
    assert!(
        on_server(op, authorize_url),
        "the peer's authorization URL is not on the server: {authorize_url}"
    );
    let mut page = agent.get(authorize_url).await;
    for _ in 0..8 {
        if matches!(page.status, 302 | 303) {
            let to = absolute(op, page.location());
            if !on_server(op, &to) {
                return Arrival::Get(to);
            }
            page = agent.get(&to).await;
        } else if page.status == 200 && page.body.contains("name=\"password\"") {
            let action = form_action(&page).expect("the login page has a form");
            page = agent
                .post(
                    &absolute(op, &action),
                    &[
                        ("csrf_token", &page.field("csrf_token")),
                        ("request", &page.field("request")),
                        ("username", USERNAME),
                        ("password", PASSWORD),
                    ],
                )
                .await;
        } else if page.status == 200 && page.body.contains("name=\"decision\"") {
            let action = form_action(&page).expect("the consent page has a form");
            page = agent
                .post(
                    &absolute(op, &action),
                    &[
                        ("csrf_token", &page.field("csrf_token")),
                        ("request", &page.field("request")),
                        ("decision", "allow"),
                    ],
                )
                .await;
        } else if page.status == 200
            && let Some(action) = form_action(&page).filter(|a| !on_server(op, a))
        {
            // OAuth 2.0 Form Post Response Mode §2: the page's form, posted as it stands.
            let body = form_urlencoded::Serializer::new(String::new())
                .extend_pairs(hidden_fields(&page))
                .finish();
            return Arrival::Post { url: action, body };
        } else {
            panic!(
                "the browser is stuck at {} {}:\n{}",
                page.status,
                page.location(),
                page.body
            );
        }
    }
    panic!("more than 8 steps between the authorization URL and the redirect URI");
}

/// Whether the browser still has a session at the server: the authorization URL of a new
/// request shows the login page only when it has none.
pub async fn has_session(agent: &mut Agent, authorize_url: &str) -> bool {
    let page = agent.get(authorize_url).await;
    let login_page = page.status == 200 && page.body.contains("name=\"password\"");
    assert!(
        login_page || matches!(page.status, 200 | 302 | 303),
        "unexpected answer {} to the authorization URL:\n{}",
        page.status,
        page.body
    );
    !login_page
}

/// What a browser does with the end-session URL a relying party built (RP-Initiated Logout
/// §2): go there, confirm when asked, and land on the registered post-logout URI with the
/// relying party's `state` (§3).
pub async fn sign_out(agent: &mut Agent, op: &Op, logout_url: &str, state: &str) {
    let end_session = discovery(op).await["end_session_endpoint"]
        .as_str()
        .expect("discovery names the end_session_endpoint (RP-Initiated Logout §2.1)")
        .to_owned();
    assert!(
        logout_url.starts_with(&end_session),
        "the peer's logout URL {logout_url} is not at {end_session}"
    );
    let mut page = agent.get(logout_url).await;
    if page.status == 200 && page.body.contains("name=\"csrf_token\"") {
        let action = form_action(&page).expect("the confirmation page has a form");
        page = agent
            .post(
                &absolute(op, &action),
                &[
                    ("csrf_token", &page.field("csrf_token")),
                    ("request", &page.field("request")),
                ],
            )
            .await;
    }
    assert!(
        matches!(page.status, 302 | 303) && page.location().starts_with(POST_LOGOUT_URI),
        "logout did not return to the registered post_logout_redirect_uri: {} {}\n{}",
        page.status,
        page.location(),
        page.body
    );
    let back: Vec<(String, String)> = url::Url::parse(page.location())
        .expect("absolute")
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(
        back,
        vec![("state".to_owned(), state.to_owned())],
        "RP-Initiated Logout §3: the state comes back, and nothing else"
    );
}

/// The discovery document, fetched the plain way (for the tests' own checks).
pub async fn discovery(op: &Op) -> Value {
    reqwest::get(op.server.url("/.well-known/openid-configuration"))
        .await
        .expect("server answers")
        .json()
        .await
        .expect("discovery is JSON")
}

/// The checks every relying party's result passes, whatever library produced it: the claims
/// the library validated are the ones this user and client should get.
pub fn check_result(op: &Op, result: &Value) {
    let id = &result["id_token_claims"];
    assert_eq!(id["iss"], op.issuer(), "{result:#}");
    let aud = &id["aud"];
    assert!(
        aud == op.client.id.as_str()
            || aud
                .as_array()
                .is_some_and(|a| a.contains(&json!(op.client.id))),
        "aud is the client: {result:#}"
    );
    let sub = id["sub"].as_str().expect("sub");
    assert!(!sub.is_empty(), "{result:#}");
    assert!(id["auth_time"].is_number(), "auth_time: {result:#}");

    let userinfo = &result["userinfo"];
    assert_eq!(userinfo["sub"], sub, "{result:#}");
    // OpenID Connect Core §5.4: `profile` and `email` ask for these claims.
    assert_eq!(userinfo["name"], NAME, "{result:#}");
    assert_eq!(userinfo["email"], EMAIL, "{result:#}");
    assert_eq!(userinfo["email_verified"], true, "{result:#}");

    // OpenID Connect Core §12.2: a refreshed ID token has the same iss, sub, aud and
    // auth_time.
    let again = &result["refreshed_id_token_claims"];
    assert!(
        again.is_object(),
        "refresh returned an ID token: {result:#}"
    );
    for claim in ["iss", "sub", "aud", "auth_time"] {
        assert_eq!(again[claim], id[claim], "{claim} after refresh: {result:#}");
    }
    assert_eq!(result["access_token_changed"], true, "{result:#}");
}

/// The whole story with a peer in another process: it prints the authorization URL it built,
/// the browser signs in, the peer gets the redirect and does the rest (token, ID-token
/// validation, userinfo, refresh, logout URL), its result passes [`check_result`], and the
/// browser follows its logout URL, after which the session is over. Returns how the browser
/// arrived at the redirect URI.
pub async fn run_peer(op: &Op, peer: Peer) -> Arrival {
    run_peer_with_result(op, peer).await.0
}

/// [`run_peer`], also handing back the peer's result line.
pub async fn run_peer_with_result(op: &Op, mut peer: Peer) -> (Arrival, Value) {
    let authorize = peer.next()["authorize"]
        .as_str()
        .expect("the authorization URL")
        .to_owned();
    let mut browser = Agent::new();
    let arrival = sign_in(&mut browser, op, &authorize).await;
    peer.send(&arrival.to_json());
    let result = peer.next()["result"].clone();
    let name = peer.name;
    assert!(peer.finish(), "{name} exited with an error");
    check_result(op, &result);

    // A pushed authorization URL (RFC 9126) is single use: it cannot probe the session
    // again, and the server under test takes no other; the logout itself still runs.
    let probe = !authorize.contains("request_uri=");
    if probe {
        assert!(
            has_session(&mut browser, &authorize).await,
            "the browser is signed in before logout"
        );
    }
    sign_out(
        &mut browser,
        op,
        result["logout_url"].as_str().expect("logout URL"),
        result["logout_state"].as_str().expect("logout state"),
    )
    .await;
    if probe {
        assert!(
            !has_session(&mut browser, &authorize).await,
            "the session is over after logout"
        );
    }
    (arrival, result)
}

/// A third-party relying party in another process: JSON lines on its stdout, answers on its
/// stdin, bounded in time. Killed when dropped.
pub struct Peer {
    name: &'static str,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    stderr: PathBuf,
}

impl Peer {
    /// Starts `cmd`, whose stderr goes to a file in `dir` (shown when the peer fails).
    pub fn spawn(name: &'static str, mut cmd: Command, dir: &Path) -> Self {
        let stderr = dir.join(format!("{name}.stderr"));
        let log = std::fs::File::create(&stderr).expect("stderr file");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Self {
            name,
            child,
            stdin,
            lines,
            stderr,
        }
    }

    /// The peer's next line of output; panics with its stderr when it went silent.
    pub fn next_line(&mut self) -> String {
        let line = tokio::task::block_in_place(|| self.lines.recv_timeout(STEP_TIMEOUT));
        let Ok(line) = line else {
            let _ = self.child.kill();
            panic!(
                "{} said nothing within {STEP_TIMEOUT:?} (or exited); stderr:\n{}",
                self.name,
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            )
        };
        line
    }

    /// The peer's next message; panics with what it said when it failed or went silent.
    pub fn next(&mut self) -> Value {
        let line = self.next_line();
        let value: Value = serde_json::from_str(&line)
            .unwrap_or_else(|_| panic!("{} printed something other than JSON: {line}", self.name));
        if let Some(error) = value.get("error") {
            panic!(
                "{} failed: {}\n{}\nstderr:\n{}",
                self.name,
                error.as_str().unwrap_or_default(),
                value["trace"].as_str().unwrap_or_default(),
                std::fs::read_to_string(&self.stderr).unwrap_or_default()
            );
        }
        value
    }

    /// Sends one JSON line to the peer.
    pub fn send(&mut self, value: &Value) {
        writeln!(self.stdin, "{value}").expect("the peer reads its stdin");
        self.stdin.flush().expect("flushed");
    }

    /// Waits for the peer to exit and says whether it succeeded.
    pub fn finish(mut self) -> bool {
        tokio::task::block_in_place(|| self.child.wait()).is_ok_and(|s| s.success())
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Says loudly, past the test harness's output capture, that a peer did not run.
pub fn skipped(peer: &str, why: &str, variable: &str) {
    let banner = "!".repeat(78);
    let _ = writeln!(
        std::io::stderr(),
        "\n{banner}\n!! SKIPPED: the {peer} interop test did not run: {why}.\n!! Set {variable}=1 \
         (as .ci/run does) to make it required.\n{banner}\n"
    );
}

/// The `action` of the page's first `method="post"` form, unescaped.
fn form_action(page: &Page) -> Option<String> {
    let marker = "<form method=\"post\" action=\"";
    let start = page.body.find(marker)? + marker.len();
    let end = page.body[start..].find('"')? + start;
    Some(html_unescape(&page.body[start..end]))
}

/// The hidden inputs of the page, in order.
fn hidden_fields(page: &Page) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut rest = page.body.as_str();
    while let Some(at) = rest.find("type=\"hidden\" name=\"") {
        rest = &rest[at + "type=\"hidden\" name=\"".len()..];
        let Some(name_end) = rest.find('"') else {
            break;
        };
        let name = html_unescape(&rest[..name_end]);
        let value_marker = "value=\"";
        let Some(v) = rest.find(value_marker) else {
            break;
        };
        let value_start = v + value_marker.len();
        let Some(value_len) = rest[value_start..].find('"') else {
            break;
        };
        fields.push((
            name,
            html_unescape(&rest[value_start..value_start + value_len]),
        ));
        rest = &rest[value_start + value_len..];
    }
    fields
}

/// Whether `url` (absolute) is on the server under test.
fn on_server(op: &Op, url: &str) -> bool {
    url.strip_prefix(op.issuer())
        .is_some_and(|rest| rest.is_empty() || rest.starts_with(['/', '?']))
}

/// `location` made absolute against the server.
fn absolute(op: &Op, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        location.to_owned()
    } else {
        op.server.url(location)
    }
}
