//! The authorization code flow through the real server with a scripted user agent: log in,
//! consent, follow the redirect, exchange the code with PKCE, refresh. Plus the page rules:
//! CSRF, error pages that never redirect, denial, security headers.

mod common;

use common::agent::{Agent, Page};
use common::{Server, add_user, cli, data_dir};
use latchkey_core::pkce::s256_challenge;
use reqwest::header::SET_COOKIE;
use std::collections::BTreeMap;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

struct Setup {
    _dir: tempfile::TempDir,
    server: Server,
    client_id: String,
    redirect: String,
}

fn setup() -> Setup {
    let dir = data_dir();
    let out = cli(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "Photo <App>",
            "--public",
            "--json",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "photos:read photos:write",
        ],
        None,
    );
    let json: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    add_user(dir.path(), "alice", "alice-password");
    let server = Server::start(dir.path());
    Setup {
        client_id: json["client_id"].as_str().expect("id").to_owned(),
        redirect: "http://127.0.0.1:41234/callback".into(),
        server,
        _dir: dir,
    }
}

impl Setup {
    fn authorize_url(&self, extra: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect)
            .append_pair("scope", "photos:read")
            .append_pair("state", "st-42")
            .append_pair("code_challenge", &s256_challenge(VERIFIER))
            .append_pair("code_challenge_method", "S256")
            .finish();
        self.server.url(&format!("/authorize?{query}{extra}"))
    }

    /// Logs in through the login page; returns the consent page.
    async fn login(&self, agent: &mut Agent, extra: &str) -> Page {
        let login = agent.get(&self.authorize_url(extra)).await;
        assert_eq!(login.status, 200, "{}", login.body);
        assert!(login.body.contains("Sign in"));
        let after = agent
            .submit_login(&self.server.base, &login, "alice", "alice-password")
            .await;
        assert_eq!(after.status, 303, "{}", after.body);
        let session = after
            .headers
            .get_all(SET_COOKIE)
            .iter()
            .find_map(|v| v.to_str().ok().filter(|c| c.starts_with("lk_session=")))
            .expect("a session cookie")
            .to_owned();
        assert!(
            session.contains("HttpOnly") && session.contains("SameSite=Lax"),
            "{session}"
        );
        assert!(
            !session.contains("Secure"),
            "plain-HTTP loopback development has no Secure flag"
        );
        agent.get(&self.server.url(after.location())).await
    }
}

impl Setup {
    /// Logs out the way a browser does: the confirmation page, then its form.
    async fn logout(&self, agent: &mut Agent) -> Page {
        let confirm = agent.get(&self.server.url("/logout")).await;
        assert_eq!(confirm.status, 200, "{}", confirm.body);
        agent
            .post(
                &self.server.url("/logout"),
                &[("csrf_token", &confirm.field("csrf_token"))],
            )
            .await
    }
}

fn query_of(location: &str) -> BTreeMap<String, String> {
    let url = url::Url::parse(location).expect("absolute");
    url.query_pairs().into_owned().collect()
}

#[tokio::test]
async fn public_client_runs_the_code_flow_with_pkce_end_to_end() {
    let s = setup();
    let mut agent = Agent::new();
    let consent = s.login(&mut agent, "").await;
    assert_eq!(consent.status, 200);
    assert!(
        consent.body.contains("Photo &lt;App&gt;"),
        "client name is escaped"
    );
    assert!(consent.body.contains("photos:read"));
    let csp = consent.headers["content-security-policy"]
        .to_str()
        .expect("ascii");
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert_eq!(consent.headers["x-frame-options"], "DENY");

    let done = agent
        .submit_consent(&s.server.base, &consent, "allow")
        .await;
    assert_eq!(done.status, 303);
    assert!(
        done.location().starts_with(&s.redirect),
        "{}",
        done.location()
    );
    let params = query_of(done.location());
    assert_eq!(params["state"], "st-42");
    assert_eq!(params["iss"], s.server.base);

    let http = reqwest::Client::new();
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", params["code"].as_str()),
        ("redirect_uri", s.redirect.as_str()),
        ("client_id", s.client_id.as_str()),
        ("code_verifier", VERIFIER),
    ];
    let tokens: serde_json::Value = http
        .post(s.server.url("/token"))
        .form(&exchange)
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(tokens["scope"], "photos:read", "{tokens}");
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");
    let refreshed = http
        .post(s.server.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &s.client_id),
        ])
        .send()
        .await
        .expect("answers");
    assert_eq!(refreshed.status(), 200);

    // The same code again: refused, and the tokens it produced are revoked.
    let replay = http
        .post(s.server.url("/token"))
        .form(&exchange)
        .send()
        .await
        .expect("answers");
    assert_eq!(replay.status(), 400);
    let after: serde_json::Value = http
        .post(s.server.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &s.client_id),
        ])
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(after["error"], "invalid_grant");
}

#[tokio::test]
async fn issue_14_remembered_consent_does_not_skip_the_page_for_a_public_client() {
    let s = setup();
    let mut agent = Agent::new();
    let consent = s.login(&mut agent, "").await;
    let first = agent
        .post(
            &s.server.url("/consent"),
            &[
                ("csrf_token", &consent.field("csrf_token")),
                ("request", &consent.field("request")),
                ("decision", "allow"),
                ("remember", "yes"),
            ],
        )
        .await;
    assert_eq!(first.status, 303);
    assert!(query_of(first.location()).contains_key("code"));
    // RFC 6749 §10.2: the client is public, so the user is asked again, and not offered to
    // remember the answer.
    let second = agent.get(&s.authorize_url("")).await;
    assert_eq!(second.status, 200, "{}", second.body);
    assert!(second.body.contains("Signed in as"), "{}", second.body);
    assert!(!second.body.contains("name=\"remember\""));
}

#[tokio::test]
async fn consent_post_without_csrf_token_is_refused() {
    let s = setup();
    let mut agent = Agent::new();
    let consent = s.login(&mut agent, "").await;
    for token in ["", "forged-token"] {
        let page = agent
            .post(
                &s.server.url("/consent"),
                &[
                    ("csrf_token", token),
                    ("request", &consent.field("request")),
                    ("decision", "allow"),
                ],
            )
            .await;
        assert_eq!(page.status, 403, "token {token:?}");
        assert!(page.location().is_empty(), "a refused form never redirects");
    }
    // A login form posted from elsewhere (no CSRF cookie) is refused as well.
    let mut stranger = Agent::new();
    let page = stranger
        .post(
            &s.server.url("/login"),
            &[
                ("csrf_token", "x"),
                ("request", ""),
                ("username", "alice"),
                ("password", "alice-password"),
            ],
        )
        .await;
    assert_eq!(page.status, 403);
    assert!(!stranger.cookies.contains_key("lk_session"));
}

#[tokio::test]
async fn denied_consent_returns_access_denied_with_state() {
    let s = setup();
    let mut agent = Agent::new();
    let consent = s.login(&mut agent, "").await;
    let denied = agent.submit_consent(&s.server.base, &consent, "deny").await;
    assert_eq!(denied.status, 303);
    let params = query_of(denied.location());
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "st-42");
    assert!(!params.contains_key("code"));
}

#[tokio::test]
async fn mismatched_redirect_uri_shows_an_error_page_and_does_not_redirect() {
    let s = setup();
    let mut agent = Agent::new();
    for extra in [
        "&redirect_uri=https%3A%2F%2Fevil.example%2Fcallback",
        "&client_id=someone-else",
    ] {
        let page = agent.get(&s.authorize_url(extra)).await;
        assert_eq!(page.status, 400, "{extra}");
        assert!(page.location().is_empty(), "{extra}: must not redirect");
        assert!(page.body.contains("invalid_request"));
        assert!(
            !page.body.contains("evil.example/callback?"),
            "no link back to the bad URI"
        );
    }
    let unknown = agent.get(&s.server.url("/authorize?response_type=code&client_id=nobody&redirect_uri=https%3A%2F%2Fevil.example%2F")).await;
    assert_eq!(unknown.status, 400);
    assert!(unknown.location().is_empty());
}

#[tokio::test]
async fn wrong_password_keeps_the_user_on_the_login_page() {
    let s = setup();
    let mut agent = Agent::new();
    let login = agent.get(&s.authorize_url("")).await;
    let page = agent
        .submit_login(&s.server.base, &login, "alice", "wrong")
        .await;
    assert_eq!(page.status, 401);
    assert!(page.body.contains("Incorrect user name or password"));
    assert!(!agent.cookies.contains_key("lk_session"));
    assert_eq!(
        page.field("request"),
        login.field("request"),
        "the request survives a failed login"
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let s = setup();
    let mut agent = Agent::new();
    let consent = s.login(&mut agent, "").await;
    assert!(consent.body.contains("Signed in as"));
    let out = s.logout(&mut agent).await;
    assert_eq!(out.status, 200);
    let again = agent.get(&s.authorize_url("")).await;
    assert!(
        again.body.contains("Sign in"),
        "logged out users see the login page"
    );
}

#[tokio::test]
async fn repeated_wrong_passwords_on_the_login_page_are_refused_with_429() {
    let s = setup();
    let mut agent = Agent::new();
    let login = agent.get(&s.authorize_url("")).await;
    let mut statuses = Vec::new();
    let mut last = None;
    // The default policy: 3 failures are checked, the 4th attempt must wait.
    for guess in ["wrong1", "wrong2", "wrong3", "alice-password"] {
        let page = agent
            .submit_login(&s.server.base, &login, "alice", guess)
            .await;
        statuses.push(page.status);
        last = Some(page);
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    let refused = last.expect("a page");
    assert!(
        refused.body.contains("Too many failed attempts"),
        "{}",
        refused.body
    );
    assert!(refused.headers.contains_key("retry-after"));
    assert!(
        !agent.cookies.contains_key("lk_session"),
        "even the right password is not checked while refused"
    );
    assert_eq!(refused.field("request"), login.field("request"));
}

/// Whether `page` is the login page (not consent, not a redirect with a code).
fn is_login_page(page: &Page) -> bool {
    page.status == 200 && page.body.contains("Sign in") && !page.body.contains("Signed in as")
}

#[tokio::test]
async fn issue_14_a_cookie_copied_before_logout_fails_after_it() {
    let s = setup();
    let mut agent = Agent::new();
    s.login(&mut agent, "").await;
    let mut thief = agent.copy();
    assert!(
        thief
            .get(&s.authorize_url(""))
            .await
            .body
            .contains("Signed in as"),
        "the copy works while the session lives"
    );
    assert_eq!(s.logout(&mut agent).await.status, 200);
    let after = thief.get(&s.authorize_url("")).await;
    assert!(is_login_page(&after), "{}", after.body);
}

#[tokio::test]
async fn issue_14_a_deleted_user_s_cookie_gets_the_login_page() {
    let s = setup();
    let mut agent = Agent::new();
    let consent = s.login(&mut agent, "").await;
    cli(s._dir.path(), &["user", "delete", "alice"], None);
    let page = agent.get(&s.authorize_url("")).await;
    assert!(is_login_page(&page), "{}", page.body);
    // The consent form shown before the deletion gets no code either.
    let post = agent
        .submit_consent(&s.server.base, &consent, "allow")
        .await;
    assert!(!post.location().contains("code="), "{}", post.location());
}

#[tokio::test]
async fn issue_14_a_password_change_ends_the_user_s_sessions() {
    let s = setup();
    let mut agent = Agent::new();
    s.login(&mut agent, "").await;
    cli(
        s._dir.path(),
        &["user", "passwd", "alice", "--password-stdin"],
        Some("a-new-password\n"),
    );
    let page = agent.get(&s.authorize_url("")).await;
    assert!(is_login_page(&page), "{}", page.body);
}

#[tokio::test]
async fn issue_14_user_logout_ends_every_session_of_the_user() {
    let s = setup();
    let mut laptop = Agent::new();
    let mut phone = Agent::new();
    s.login(&mut laptop, "").await;
    s.login(&mut phone, "").await;
    let out = cli(s._dir.path(), &["user", "logout", "alice"], None);
    assert!(out.contains("2 sessions ended"), "{out}");
    for agent in [&mut laptop, &mut phone] {
        let page = agent.get(&s.authorize_url("")).await;
        assert!(is_login_page(&page), "{}", page.body);
    }
}

#[tokio::test]
async fn issue_14_prompt_login_asks_for_the_password_even_with_a_session() {
    let s = setup();
    let mut agent = Agent::new();
    s.login(&mut agent, "").await;
    // The login page, although a session is live; logging in there leads on to consent.
    let consent = s.login(&mut agent, "&prompt=login").await;
    assert!(consent.body.contains("Signed in as"), "{}", consent.body);
    let done = agent
        .submit_consent(&s.server.base, &consent, "allow")
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(query_of(done.location()).contains_key("code"));
    // The same request again, without a new login: the login page again.
    let again = agent.get(&s.authorize_url("&prompt=login")).await;
    assert!(is_login_page(&again), "{}", again.body);
}

#[tokio::test]
async fn issue_14_cross_site_form_posts_are_refused() {
    let s = setup();
    let mut agent = Agent::new();
    let login = agent.get(&s.authorize_url("")).await;
    let form = [
        ("csrf_token", login.field("csrf_token")),
        ("request", login.field("request")),
        ("username", "alice".to_owned()),
        ("password", "alice-password".to_owned()),
    ];
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for headers in [
        [("origin", "https://evil.example")],
        [("origin", "null")],
        [("sec-fetch-site", "cross-site")],
    ] {
        let page = agent
            .post_with(&s.server.url("/login"), &form, &headers)
            .await;
        assert_eq!(page.status, 403, "{headers:?}");
        assert!(!agent.cookies.contains_key("lk_session"), "{headers:?}");
    }
    let base = s.server.base.clone();
    let page = agent
        .post_with(
            &s.server.url("/login"),
            &form,
            &[("origin", &base), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(
        page.status, 303,
        "the issuer's own origin passes: {}",
        page.body
    );
}

#[tokio::test]
async fn issue_14_csrf_tokens_are_bound_to_the_session_and_get_logout_only_asks() {
    let s = setup();
    let mut agent = Agent::new();
    let login = agent.get(&s.authorize_url("")).await;
    let consent = s.login(&mut agent, "").await;
    // The token of the page before login does not work for the session after it.
    let stale = agent
        .post(
            &s.server.url("/consent"),
            &[
                ("csrf_token", &login.field("csrf_token")),
                ("request", &consent.field("request")),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(stale.status, 403, "{}", stale.body);
    // A link or an image to /logout only shows a question; the session lives on.
    let confirm = agent.get(&s.server.url("/logout")).await;
    assert!(confirm.body.contains("method=\"post\""), "{}", confirm.body);
    assert!(agent.cookies.contains_key("lk_session"));
    assert!(
        agent
            .get(&s.authorize_url(""))
            .await
            .body
            .contains("Signed in as"),
        "GET /logout does not log out"
    );
    // A logout post without the token is refused.
    let forged = agent
        .post(&s.server.url("/logout"), &[("csrf_token", "forged")])
        .await;
    assert_eq!(forged.status, 403);
    assert!(
        agent
            .get(&s.authorize_url(""))
            .await
            .body
            .contains("Signed in as")
    );
}

#[tokio::test]
async fn issue_14_refresh_token_of_a_deleted_user_is_invalid_grant() {
    let s = setup();
    let mut agent = Agent::new();
    let consent = s.login(&mut agent, "").await;
    let done = agent
        .submit_consent(&s.server.base, &consent, "allow")
        .await;
    let code = query_of(done.location())["code"].clone();
    let http = reqwest::Client::new();
    let tokens: serde_json::Value = http
        .post(s.server.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", s.redirect.as_str()),
            ("client_id", s.client_id.as_str()),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    let refresh = tokens["refresh_token"].as_str().expect("refresh token");
    cli(s._dir.path(), &["user", "delete", "alice"], None);
    let refused: serde_json::Value = http
        .post(s.server.url("/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &s.client_id),
        ])
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(refused["error"], "invalid_grant", "{refused}");
}

/// The parameters of `url`'s query, as a form.
fn form_of(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .expect("absolute")
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test]
async fn the_authorization_request_may_be_posted_as_a_form() {
    let s = setup();
    // OpenID Connect Core §3.1.2.1: POST, form-encoded, gets what GET gets.
    let mut stranger = Agent::new();
    let form = form_of(&s.authorize_url(""));
    let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let login = stranger.post(&s.server.url("/authorize"), &form).await;
    assert!(is_login_page(&login), "{}", login.body);

    let mut agent = Agent::new();
    s.login(&mut agent, "").await;
    let consent = agent.post(&s.server.url("/authorize"), &form).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Signed in as"), "{}", consent.body);
    let done = agent
        .submit_consent(&s.server.base, &consent, "allow")
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let params = query_of(done.location());
    assert_eq!(params["state"], "st-42");
    assert!(params.contains_key("code"));

    // The same validation: an unregistered redirect URI is a page, never a redirect.
    let evil = form_of(&s.authorize_url("&redirect_uri=https%3A%2F%2Fevil.example%2Fcallback"));
    let evil: Vec<(&str, &str)> = evil
        .iter()
        .filter(|(k, v)| k != "redirect_uri" || v.contains("evil"))
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let page = agent.post(&s.server.url("/authorize"), &evil).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.location().is_empty());
}

#[tokio::test]
async fn a_consent_form_whose_pending_request_was_changed_is_refused() {
    let s = setup();
    let mut agent = Agent::new();
    let consent = s.login(&mut agent, "").await;
    let sealed = consent.field("request");
    let widened = sealed.replacen("photos%3Aread", "photos%3Aread+photos%3Awrite", 1);
    assert_ne!(widened, sealed);
    let refused = agent
        .post(
            &s.server.url("/consent"),
            &[
                ("csrf_token", &consent.field("csrf_token")),
                ("request", &widened),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(refused.location().is_empty(), "never redirected");
}
