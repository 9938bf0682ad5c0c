//! Password checks and client authentication through the real server: every login page and
//! the password grant share one backoff and one audit trail; attacker-chosen identifiers are
//! validated before they are counted or logged.

mod common;

use common::{Server, add_user, cli, data_dir};
use reqwest::header::{HeaderMap, SET_COOKIE};
use std::collections::BTreeMap;

/// A user agent that keeps cookies and never follows redirects by itself.
struct Agent {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

struct Page {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl Page {
    /// The value of the hidden input `name` in the page.
    fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("closing quote") + start;
        self.body[start..end]
            .replace("&amp;", "&")
            .replace("&#x2f;", "/")
            .replace("&#x27;", "'")
            .replace("&quot;", "\"")
    }
}

impl Agent {
    fn new() -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Self {
            http,
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let resp = req
            .header("cookie", cookie)
            .send()
            .await
            .expect("server answers");
        for value in resp.headers().get_all(SET_COOKIE) {
            let pair = value
                .to_str()
                .expect("ascii")
                .split(';')
                .next()
                .expect("pair");
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.expect("body"),
        }
    }

    async fn get(&mut self, url: &str) -> Page {
        let req = self.http.get(url);
        self.send(req).await
    }

    async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(url).form(form);
        self.send(req).await
    }
}

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
