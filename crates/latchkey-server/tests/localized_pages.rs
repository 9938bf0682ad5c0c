//! Localized pages on the real binary: `ui_locales` and `Accept-Language` choose among the
//! shipped catalogs, the choice holds from login to consent, an operator's `ui.locales_dir`
//! overrides strings and adds a right-to-left locale, discovery lists the locales, and the
//! consent page names the RFC 8707 resources the client asks for, escaped.
//!
//! The Chromium tests (German by the browser's language, Japanese by `ui_locales`, and an
//! operator's Arabic catalog laid out right to left) run when `LATCHKEY_TEST_BROWSER` is set;
//! then a browser that cannot start fails them.

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use common::agent::{Agent, Page};
use common::{CliClient, Server, add_user, create_client, data_dir};
use latchkey_core::pkce::s256_challenge;
use serde_json::Value;
use std::time::Duration;
use webdriver::{Browser, browser_tests_enabled};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const PHOTOS: &str = "https://photos.example.test/api";
const FILES: &str = "https://files.example.test/";

struct Env {
    _dir: tempfile::TempDir,
    server: Server,
    client: CliClient,
    redirect: String,
}

/// A server with two resources (one named, with markup in its name), an operator catalog
/// directory holding a French override and an added Arabic locale, a user and a client.
fn start() -> Env {
    let dir = data_dir();
    let locales = dir.path().join("locales");
    std::fs::create_dir_all(&locales).expect("locales dir");
    std::fs::write(
        locales.join("fr.toml"),
        "[login]\nheading = \"Identifiez-vous\"\n",
    )
    .expect("fr override");
    std::fs::write(
        locales.join("ar.toml"),
        r#"[locale]
name = "العربية"

[common]
allow = "سماح"
deny = "رفض"
signed_in_as = "تم تسجيل الدخول باسم {user}"

[login]
heading = "تسجيل الدخول"
submit = "دخول"

[consent]
title = "تفويض {client}"
"#,
    )
    .expect("ar catalog");
    std::fs::write(
        dir.path().join("latchkey.toml"),
        format!(
            r#"
[scopes]
available = ["read"]

[ui]
locales_dir = "{}"

[[resources]]
id = "{PHOTOS}"
name = "Photo <Library> & Co"

[[resources]]
id = "{FILES}"
"#,
            locales.display()
        ),
    )
    .expect("settings");
    add_user(dir.path(), "ada", "analytical-engine");
    // The server's own /healthz stands in for the client's callback page (loopback: any
    // port matches, RFC 8252 §7.3).
    let client = create_client(
        dir.path(),
        &[
            "--public",
            "--redirect-uri",
            "http://127.0.0.1/healthz",
            "--scope",
            "read",
        ],
    );
    let server = Server::start(dir.path());
    let redirect = server.url("/healthz");
    Env {
        _dir: dir,
        server,
        client,
        redirect,
    }
}

impl Env {
    fn authorize_url(&self, extra: &[(&str, &str)]) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client.id)
            .append_pair("redirect_uri", &self.redirect)
            .append_pair("scope", "read")
            .append_pair("state", "st")
            .append_pair("code_challenge", &s256_challenge(VERIFIER))
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            query.append_pair(k, v);
        }
        self.server.url(&format!("/authorize?{}", query.finish()))
    }

    /// A `GET` with the browser's `Accept-Language`.
    async fn get(&self, agent: &mut Agent, url: &str, accept_language: &str) -> Page {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        agent
            .send(http.get(url).header("accept-language", accept_language))
            .await
    }

    /// Logs ada in from `login` (the login page) and follows to the next page.
    async fn log_in(
        &self,
        agent: &mut Agent,
        login: &Page,
        password: &str,
        accept_language: &str,
    ) -> Page {
        let after = agent
            .post_with(
                &self.server.url("/login"),
                &[
                    ("csrf_token", &login.field("csrf_token")),
                    ("request", &login.field("request")),
                    ("username", "ada"),
                    ("password", password),
                ],
                &[("accept-language", accept_language)],
            )
            .await;
        if after.status != 303 {
            return after;
        }
        self.get(agent, &self.server.url(after.location()), accept_language)
            .await
    }
}

fn html_tag(page: &Page) -> &str {
    let start = page.body.find("<html").expect("an html element");
    let end = page.body[start..].find('>').expect("closing >") + start;
    &page.body[start..=end]
}

fn header<'a>(page: &'a Page, name: &str) -> &'a str {
    page.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn ui_locales_wins_over_accept_language_from_login_to_consent() {
    let env = start();
    let mut agent = Agent::new();
    // The browser prefers German; the client asks for Japanese (Klingon is not shipped).
    let url = env.authorize_url(&[("ui_locales", "tlh ja")]);
    let login = env.get(&mut agent, &url, "de-AT,de;q=0.9").await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert_eq!(html_tag(&login), r#"<html lang="ja" dir="ltr">"#);
    assert_eq!(header(&login, "content-language"), "ja");
    assert!(header(&login, "vary").contains("accept-language"));
    assert!(login.body.contains("<h1>サインイン</h1>"), "{}", login.body);
    assert!(login.body.contains("パスワード"));
    assert!(!login.body.contains("Password"), "{}", login.body);

    // A wrong password: the error, too, in Japanese.
    let failed = env
        .log_in(&mut agent, &login, "wrong", "de-AT,de;q=0.9")
        .await;
    assert_eq!(failed.status, 401);
    assert!(
        failed
            .body
            .contains("ユーザー名またはパスワードが正しくありません。"),
        "{}",
        failed.body
    );

    let consent = env
        .log_in(&mut agent, &failed, "analytical-engine", "de-AT,de;q=0.9")
        .await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("<title>E2E Service を承認</title>"));
    assert!(
        consent
            .body
            .contains("<strong>ada</strong> としてサインイン中"),
        "{}",
        consent.body
    );
    assert!(consent.body.contains(">許可</button>"));
    assert!(consent.body.contains(">拒否</button>"));
    assert_eq!(html_tag(&consent), r#"<html lang="ja" dir="ltr">"#);
}

#[tokio::test]
async fn accept_language_chooses_by_quality_and_language_range() {
    let env = start();
    let cases = [
        ("de-AT,de;q=0.9,en;q=0.5", "de", "<h1>Anmelden</h1>"),
        ("zh-CN,zh;q=0.9", "zh-Hans", "<h1>登录</h1>"),
        (
            "it;q=0.9, es-MX;q=0.8, en;q=0.1",
            "es",
            "<h1>Iniciar sesión</h1>",
        ),
        ("fr-CA", "fr", "<h1>Identifiez-vous</h1>"),
        ("zh-TW, sv", "en", "<h1>Sign in</h1>"),
        ("", "en", "<h1>Sign in</h1>"),
    ];
    for (accept, lang, heading) in cases {
        let mut agent = Agent::new();
        let page = env.get(&mut agent, &env.authorize_url(&[]), accept).await;
        assert_eq!(page.status, 200, "{accept}: {}", page.body);
        assert_eq!(
            html_tag(&page),
            format!(r#"<html lang="{lang}" dir="ltr">"#),
            "{accept}"
        );
        assert!(page.body.contains(heading), "{accept}: {}", page.body);
    }
    // French: the operator's override, and the shipped strings it did not override.
    let mut agent = Agent::new();
    let fr = env.get(&mut agent, &env.authorize_url(&[]), "fr").await;
    assert!(fr.body.contains("Mot de passe"), "{}", fr.body);
}

#[tokio::test]
async fn an_operator_locale_is_offered_and_laid_out_right_to_left() {
    let env = start();
    let (status, doc) = get_json(&env.server.url("/.well-known/openid-configuration")).await;
    assert_eq!(status, 200);
    let listed: Vec<&str> = doc["ui_locales_supported"]
        .as_array()
        .expect("ui_locales_supported")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(listed, ["en", "de", "fr", "es", "ja", "zh-Hans", "ar"]);
    let (_, oauth) = get_json(&env.server.url("/.well-known/oauth-authorization-server")).await;
    assert_eq!(oauth["ui_locales_supported"], doc["ui_locales_supported"]);

    let mut agent = Agent::new();
    let login = env
        .get(&mut agent, &env.authorize_url(&[]), "ar-EG,en;q=0.5")
        .await;
    assert_eq!(html_tag(&login), r#"<html lang="ar" dir="rtl">"#);
    assert!(login.body.contains("<h1>تسجيل الدخول</h1>"));
    // Not in the operator's catalog: English, the default.
    assert!(login.body.contains("Password"));
    let consent = env
        .log_in(&mut agent, &login, "analytical-engine", "ar-EG,en;q=0.5")
        .await;
    assert!(consent.body.contains(">سماح</button>"), "{}", consent.body);
    assert!(consent.body.contains("<strong>ada</strong>"));
}

#[tokio::test]
async fn consent_names_the_requested_resources_escaped() {
    let env = start();
    let mut agent = Agent::new();
    let url = env.authorize_url(&[("resource", PHOTOS), ("resource", FILES)]);
    let login = env.get(&mut agent, &url, "en").await;
    let consent = env
        .log_in(&mut agent, &login, "analytical-engine", "en")
        .await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Access would be limited to:"));
    assert!(
        consent
            .body
            .contains("<strong>Photo &lt;Library&gt; &amp; Co</strong>"),
        "{}",
        consent.body
    );
    assert!(!consent.body.contains("Photo <Library>"));
    // Unnamed: the identifier itself.
    assert!(
        consent
            .body
            .contains(&format!("<code>{}</code>", html_escape(FILES)))
    );

    // Without `resource`, no list.
    let mut agent = Agent::new();
    let login = env.get(&mut agent, &env.authorize_url(&[]), "en").await;
    let plain = env
        .log_in(&mut agent, &login, "analytical-engine", "en")
        .await;
    assert_eq!(plain.status, 200);
    assert!(!plain.body.contains("Access would be limited to"));
}

#[tokio::test]
async fn error_and_logout_pages_follow_accept_language() {
    let env = start();
    let mut agent = Agent::new();
    let error = env
        .get(
            &mut agent,
            &env.server
                .url("/authorize?client_id=nobody&response_type=code"),
            "es-ES,es;q=0.9",
        )
        .await;
    assert_eq!(error.status, 400, "{}", error.body);
    assert!(error.body.contains("Algo ha salido mal"), "{}", error.body);
    // The protocol's own words stay as they are, marked as English.
    assert!(
        error.body.contains("<code>invalid_request</code>")
            || error.body.contains("<code>invalid_client</code>"),
        "{}",
        error.body
    );
    assert!(error.body.contains(r#"<span lang="en">"#));
    let logout = env
        .get(&mut agent, &env.server.url("/logout"), "zh-Hans-CN")
        .await;
    assert!(
        logout.body.contains("<h1>退出登录？</h1>"),
        "{}",
        logout.body
    );
    let device = env.get(&mut agent, &env.server.url("/device"), "de").await;
    assert!(
        device.body.contains("<h1>Gerät verbinden</h1>"),
        "{}",
        device.body
    );
}

async fn get_json(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.expect("answer");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

/// Drives Chromium through login and consent; returns the consent page's source after
/// checking the login page with `check_login`, then allows and checks the redirect.
async fn browser_flow(
    browser: &Browser,
    env: &Env,
    url: &str,
    shots: &str,
    check_login: impl Fn(&str),
) -> String {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(shots);
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    browser
        .goto(url)
        .await
        .expect("opens the authorization URL");
    let username = browser.find("#username").await.expect("login page");
    check_login(&browser.page_source().await.expect("source"));
    browser.send_keys(&username, "ada").await.expect("types");
    let password = browser.find("#password").await.expect("password field");
    browser
        .send_keys(&password, "analytical-engine")
        .await
        .expect("types");
    browser
        .screenshot_png(&dir.join("login.png"))
        .await
        .expect("screenshot");
    let submit = browser.find("button[type=submit]").await.expect("button");
    browser.click(&submit).await.expect("clicks");
    let allow = browser
        .find("button[value=allow]")
        .await
        .expect("consent page");
    let consent = browser.page_source().await.expect("source");
    browser
        .screenshot_png(&dir.join("consent.png"))
        .await
        .expect("screenshot");
    let deny = browser.find("button[value=deny]").await.expect("deny");
    let main = browser.find("main").await.expect("main");
    let (allow_box, deny_box, main_box) = (
        browser.rect(&allow).await.expect("rect"),
        browser.rect(&deny).await.expect("rect"),
        browser.rect(&main).await.expect("rect"),
    );
    // Nothing spills out of the card, whatever the direction.
    for (x, _, w, _) in [allow_box, deny_box] {
        assert!(
            x >= main_box.0 && x + w <= main_box.0 + main_box.2,
            "{consent}"
        );
    }
    let rtl = consent.contains(r#"dir="rtl""#);
    // The buttons follow the reading direction: Deny first, Allow last.
    assert_eq!(allow_box.0 < deny_box.0, rtl, "{allow_box:?} {deny_box:?}");
    browser.click(&allow).await.expect("clicks allow");
    browser
        .wait_for_url(|u| u.starts_with(&env.redirect), Duration::from_secs(15))
        .await
        .expect("lands on the redirect URI");
    consent
}

#[tokio::test]
async fn chromium_in_german_by_its_language_setting() {
    if !browser_tests_enabled() {
        eprintln!("skipped: set LATCHKEY_TEST_BROWSER=1 to run browser tests");
        return;
    }
    let env = start();
    let browser = Browser::start_with_languages(Some("de-AT,de"))
        .await
        .expect("Chromium starts (LATCHKEY_TEST_BROWSER is set)");
    let url = env.authorize_url(&[("resource", PHOTOS)]);
    let consent = browser_flow(&browser, &env, &url, "browser_i18n_de", |login| {
        assert!(login.contains(r#"lang="de""#), "{login}");
        assert!(login.contains("Passwort"), "{login}");
    })
    .await;
    assert!(consent.contains("E2E Service autorisieren"), "{consent}");
    assert!(consent.contains("Zulassen"), "{consent}");
    assert!(
        consent.contains("Photo &lt;Library&gt; &amp; Co"),
        "{consent}"
    );
}

#[tokio::test]
async fn chromium_in_japanese_by_ui_locales() {
    if !browser_tests_enabled() {
        eprintln!("skipped: set LATCHKEY_TEST_BROWSER=1 to run browser tests");
        return;
    }
    let env = start();
    let browser = Browser::start()
        .await
        .expect("Chromium starts (LATCHKEY_TEST_BROWSER is set)");
    let url = env.authorize_url(&[("ui_locales", "ja-JP")]);
    let consent = browser_flow(&browser, &env, &url, "browser_i18n_ja", |login| {
        assert!(login.contains(r#"lang="ja""#), "{login}");
        assert!(login.contains("パスワード"), "{login}");
    })
    .await;
    assert!(consent.contains("E2E Service を承認"), "{consent}");
    assert!(consent.contains(r#"lang="ja""#), "{consent}");
}

#[tokio::test]
async fn chromium_lays_an_operator_arabic_catalog_out_right_to_left() {
    if !browser_tests_enabled() {
        eprintln!("skipped: set LATCHKEY_TEST_BROWSER=1 to run browser tests");
        return;
    }
    let env = start();
    let browser = Browser::start_with_languages(Some("ar"))
        .await
        .expect("Chromium starts (LATCHKEY_TEST_BROWSER is set)");
    let url = env.authorize_url(&[("resource", PHOTOS), ("resource", FILES)]);
    let consent = browser_flow(&browser, &env, &url, "browser_i18n_ar", |login| {
        assert!(login.contains(r#"dir="rtl""#), "{login}");
        assert!(login.contains("تسجيل الدخول"), "{login}");
    })
    .await;
    assert!(consent.contains("تفويض E2E Service"), "{consent}");
}
