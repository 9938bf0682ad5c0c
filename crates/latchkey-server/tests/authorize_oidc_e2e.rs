//! The OpenID Connect side of the authorization pages through the real server, with a
//! scripted user agent: `login_hint` pre-fills the login page, `response_mode=form_post`
//! answers with an auto-submitting form, and `prompt=select_account` asks whether to continue
//! as the logged-in user or to switch (which ends this browser's one session).

mod common;

use common::agent::{Agent, Page};
use common::{Server, add_user, cli, data_dir};
use latchkey_core::pkce::s256_challenge;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

struct Setup {
    _dir: tempfile::TempDir,
    server: Server,
    client_id: String,
}

fn setup() -> Setup {
    let dir = data_dir();
    let out = cli(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "Relying Party",
            "--public",
            "--json",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--grant-type",
            "authorization_code",
            "--scope",
            "openid",
        ],
        None,
    );
    let json: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    add_user(dir.path(), "alice", "alice-password");
    Setup {
        client_id: json["client_id"].as_str().expect("id").to_owned(),
        server: Server::start(dir.path()),
        _dir: dir,
    }
}

impl Setup {
    fn authorize_url(&self, extra: &[(&str, &str)]) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", "http://127.0.0.1:41234/callback")
            .append_pair("scope", "openid")
            .append_pair("state", "st-7")
            .append_pair("nonce", "n-7")
            .append_pair("code_challenge", &s256_challenge(VERIFIER))
            .append_pair("code_challenge_method", "S256")
            .extend_pairs(extra)
            .finish();
        self.server.url(&format!("/authorize?{query}"))
    }

    /// Submits the login page `login` as alice; returns the page the login leads to.
    async fn log_in(&self, agent: &mut Agent, login: &Page) -> Page {
        let after = agent
            .submit_login(&self.server.base, login, "alice", "alice-password")
            .await;
        assert_eq!(after.status, 303, "{}", after.body);
        agent.get(&self.server.url(after.location())).await
    }

    async fn post_consent(&self, agent: &mut Agent, page: &Page, field: (&str, &str)) -> Page {
        agent
            .post(
                &self.server.url("/consent"),
                &[
                    ("csrf_token", &page.field("csrf_token")),
                    ("request", &page.field("request")),
                    field,
                ],
            )
            .await
    }
}

#[tokio::test]
async fn login_hint_pre_fills_and_form_post_answers_with_an_auto_submitting_page() {
    let s = setup();
    let mut agent = Agent::new();
    let login = agent
        .get(&s.authorize_url(&[
            ("login_hint", "alice"),
            ("response_mode", "form_post"),
            ("ui_locales", "fr-CA en"),
        ]))
        .await;
    assert_eq!(login.status, 200, "{}", login.body);
    // ui_locales: the first supported tag (fr-CA finds the French catalog) holds to consent.
    assert!(
        login.body.contains("<html lang=\"fr\" dir=\"ltr\">"),
        "{}",
        login.body
    );
    assert!(
        login.body.contains("autofocus value=\"alice\">"),
        "pre-filled from login_hint: {}",
        login.body
    );
    let consent = s.log_in(&mut agent, &login).await;
    assert!(consent.body.contains("Autoriser"), "{}", consent.body);
    let answer = s
        .post_consent(&mut agent, &consent, ("decision", "allow"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.location(), "", "no redirect: a form post");
    let header = |name: &str| {
        answer
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(header("cache-control"), "no-store");
    assert!(header("content-type").starts_with("text/html"));
    let csp = header("content-security-policy");
    assert!(
        csp.contains("script-src 'sha256-") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(
        answer
            .body
            .contains("action=\"http://127.0.0.1:41234/callback\""),
        "{}",
        answer.body
    );
    assert_eq!(answer.field("state"), "st-7");
    assert!(!answer.field("code").is_empty());
    assert!(
        answer.body.contains("<noscript>"),
        "works without JavaScript"
    );
}

#[tokio::test]
async fn select_account_continues_as_the_current_user_or_switches_after_logging_out() {
    let s = setup();
    let mut agent = Agent::new();
    let login = agent.get(&s.authorize_url(&[])).await;
    s.log_in(&mut agent, &login).await;
    assert!(agent.cookies.contains_key("lk_session"));

    // Continue as alice: on to the consent page.
    let question = agent
        .get(&s.authorize_url(&[("prompt", "select_account")]))
        .await;
    assert_eq!(question.status, 200, "{}", question.body);
    assert!(
        question.body.contains("Continue as alice"),
        "{}",
        question.body
    );
    assert!(question.body.contains("one sign-in at a time"));
    let consent = s
        .post_consent(&mut agent, &question, ("account", "continue"))
        .await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Authorize"), "{}", consent.body);

    // Switch: the session ends and the login page follows.
    let question = agent
        .get(&s.authorize_url(&[("prompt", "select_account")]))
        .await;
    let switched = s
        .post_consent(&mut agent, &question, ("account", "switch"))
        .await;
    assert_eq!(switched.status, 303, "{}", switched.body);
    assert!(!agent.cookies.contains_key("lk_session"), "logged out");
    let login = agent.get(&s.server.url(switched.location())).await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(login.body.contains("Sign in"), "{}", login.body);
    // Logging in again answers the question: consent, not the question again.
    let consent = s.log_in(&mut agent, &login).await;
    assert!(consent.body.contains("Authorize"), "{}", consent.body);
}
