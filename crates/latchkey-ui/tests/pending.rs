//! The pending authorization request travels sealed through the login and consent pages: the
//! flow resumes from it, and nothing in it (client, redirect URI, scope, state) can be changed
//! on the way, nor used after it expires or in another browser session.

use latchkey_core::http::{HttpRequest, HttpResponse, Method};
use latchkey_core::pkce::s256_challenge;
use latchkey_testkit::{TestKit, VERIFIER, form_encode, location_params};
use latchkey_ui::pages::Pages;
use latchkey_ui::session::PENDING_TTL;
use latchkey_ui::{BuiltinLogin, SessionKey, Ui, UiConfig};
use std::collections::BTreeMap;

type TestUi = Ui<
    latchkey_core::store::memory::MemoryStore,
    latchkey_core::user::StoreUsers<
        latchkey_core::store::memory::MemoryStore,
        latchkey_core::user::Inline,
    >,
    BuiltinLogin,
>;

/// A browser: the cookies it holds.
#[derive(Default)]
struct Browser {
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn keep(&mut self, resp: &HttpResponse) {
        for (name, value) in &resp.headers {
            if name == "set-cookie" {
                let pair = value.split(';').next().expect("pair");
                let (n, v) = pair.split_once('=').expect("name=value");
                self.cookies.insert(n.to_owned(), v.to_owned());
            }
        }
    }

    fn cookie(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn get(&self, path_and_query: &str) -> HttpRequest {
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let mut req = HttpRequest::new(Method::Get, path).with_header("cookie", self.cookie());
        req.query = query.to_owned();
        req
    }

    fn post(&self, path: &str, form: &[(&str, &str)]) -> HttpRequest {
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", form_encode(v)))
            .collect::<Vec<_>>()
            .join("&");
        HttpRequest::post_form(path, body).with_header("cookie", self.cookie())
    }
}

fn hidden(resp: &HttpResponse, name: &str) -> String {
    let body = String::from_utf8(resp.body.clone()).expect("utf-8");
    let marker = format!("name=\"{name}\" value=\"");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {body}"))
        + marker.len();
    let end = body[start..].find('"').expect("closing quote") + start;
    body[start..end]
        .replace("&amp;", "&")
        .replace("&#x2f;", "/")
        .replace("&quot;", "\"")
}

struct Setup {
    kit: TestKit,
    ui: TestUi,
    query: String,
}

async fn setup() -> Setup {
    let kit = TestKit::new();
    kit.user("alice", "alice-password").await;
    let spa = kit.spa_client().await;
    let mut config = UiConfig::new(SessionKey::new([5; 32]));
    config.secure_cookies = false;
    let ui = Ui::new(
        kit.provider.clone(),
        Pages::load(None).expect("templates"),
        BuiltinLogin,
        config,
    );
    let query = format!(
        "response_type=code&client_id={}&scope=read&state=st-1&code_challenge={}&code_challenge_method=S256",
        spa.id(),
        s256_challenge(VERIFIER)
    );
    Setup { kit, ui, query }
}

impl Setup {
    /// Logs `browser` in through the login page; returns the consent page.
    async fn login(&self, browser: &mut Browser) -> HttpResponse {
        let login = self
            .ui
            .authorize(&browser.get(&format!("/authorize?{}", self.query)))
            .await;
        assert_eq!(login.status, 200);
        browser.keep(&login);
        let after = self
            .ui
            .login(&browser.post(
                "/login",
                &[
                    ("csrf_token", &hidden(&login, "csrf_token")),
                    ("request", &hidden(&login, "request")),
                    ("username", "alice"),
                    ("password", "alice-password"),
                ],
            ))
            .await;
        assert_eq!(after.status, 303);
        browser.keep(&after);
        let location = after.header("location").expect("location").to_owned();
        assert!(location.starts_with("/consent?request="), "{location}");
        let consent = self.ui.consent(&browser.get(&location)).await;
        assert_eq!(consent.status, 200);
        browser.keep(&consent);
        consent
    }

    async fn decide(
        &self,
        browser: &Browser,
        consent: &HttpResponse,
        request: &str,
    ) -> HttpResponse {
        self.ui
            .consent(&browser.post(
                "/consent",
                &[
                    ("csrf_token", &hidden(consent, "csrf_token")),
                    ("request", request),
                    ("decision", "allow"),
                ],
            ))
            .await
    }
}

/// What an attacker might change in a sealed pending request: every field the core reads.
fn tamperings(sealed: &str, client_id: &str) -> Vec<(&'static str, String)> {
    vec![
        ("scope", sealed.replacen("s=read", "s=admin", 1)),
        (
            "redirect_uri",
            sealed.replacen(
                &form_encode("https://app.example.test/callback"),
                &form_encode("https://evil.example/callback"),
                1,
            ),
        ),
        ("client", sealed.replacen(client_id, "another-client", 1)),
        ("state", sealed.replacen("st-1", "st-2", 1)),
        ("appended field", format!("{sealed}&n=nonce")),
        ("fresh flag", {
            let mut parts: Vec<&str> = sealed.splitn(3, '.').collect();
            parts[1] = if parts[1] == "1" { "0" } else { "1" };
            parts.join(".")
        }),
        ("nothing", String::new()),
    ]
}

#[tokio::test]
async fn a_tampered_pending_request_is_refused_at_consent() {
    let s = setup().await;
    let mut browser = Browser::default();
    let consent = s.login(&mut browser).await;
    let sealed = hidden(&consent, "request");
    let spa_id = sealed
        .split("c=")
        .nth(1)
        .and_then(|rest| rest.split('&').next())
        .expect("the client id in the pending text")
        .to_owned();
    for (what, altered) in tamperings(&sealed, &spa_id) {
        assert_ne!(altered, sealed, "{what}: the tampering changes the value");
        let refused = s.decide(&browser, &consent, &altered).await;
        assert_eq!(refused.status, 400, "{what}");
        assert!(
            refused.header("location").is_none(),
            "{what}: never redirected"
        );
    }
    // The value as sealed gets the code, for the scope and state of the original request.
    let done = s.decide(&browser, &consent, &sealed).await;
    assert_eq!(done.status, 303);
    let params = location_params(&done);
    assert_eq!(params["state"], "st-1");
    assert!(params.contains_key("code"));
}

#[tokio::test]
async fn a_tampered_pending_request_is_refused_at_login() {
    let s = setup().await;
    let mut browser = Browser::default();
    let login =
        s.ui.authorize(&browser.get(&format!("/authorize?{}", s.query)))
            .await;
    browser.keep(&login);
    let sealed = hidden(&login, "request");
    let altered = sealed.replacen("s=read", "s=admin", 1);
    let refused =
        s.ui.login(&browser.post(
            "/login",
            &[
                ("csrf_token", &hidden(&login, "csrf_token")),
                ("request", &altered),
                ("username", "alice"),
                ("password", "alice-password"),
            ],
        ))
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        !refused
            .headers
            .iter()
            .any(|(n, v)| n == "set-cookie" && v.starts_with("lk_session=")),
        "no session for a refused form"
    );
}

#[tokio::test]
async fn a_pending_request_is_refused_after_it_expires_and_in_another_session() {
    let s = setup().await;
    let mut browser = Browser::default();
    let consent = s.login(&mut browser).await;
    let sealed = hidden(&consent, "request");

    // Another browser, logged in as the same user, cannot use this one's pending request.
    let mut other = Browser::default();
    let theirs = s.login(&mut other).await;
    let refused = s.decide(&other, &theirs, &sealed).await;
    assert_eq!(refused.status, 400);

    // Where the login returns to (no CSRF token there to expire first): refused once expired.
    let back = format!("/consent?request={}", form_encode(&sealed));
    assert_eq!(s.ui.consent(&browser.get(&back)).await.status, 200);
    s.kit.clock.advance(PENDING_TTL);
    let expired = s.ui.consent(&browser.get(&back)).await;
    assert_eq!(expired.status, 400);
    assert!(expired.header("location").is_none());
}

#[tokio::test]
async fn the_authorization_request_by_post_reaches_the_same_login_page() {
    let s = setup().await;
    let browser = Browser::default();
    let by_get =
        s.ui.authorize(&browser.get(&format!("/authorize?{}", s.query)))
            .await;
    let by_post =
        s.ui.authorize(&HttpRequest::post_form("/authorize", s.query.clone()))
            .await;
    assert_eq!(by_post.status, 200);
    assert_eq!(
        hidden(&by_post, "request"),
        hidden(&by_get, "request"),
        "the same pending request, by either method"
    );
}
