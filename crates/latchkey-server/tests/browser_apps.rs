//! The "apps you allowed" page in a real browser: headless Chromium approves a confidential
//! client with "remember", opens `/apps`, sees the app, revokes it with the page's own form
//! (same origin, CSRF token, no JavaScript needed), and the client's tokens stop working.
//!
//! Runs when `LATCHKEY_TEST_BROWSER` is set (CI sets it and installs Chromium); then a browser
//! that cannot start fails the test.

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use common::{Server, add_user, cli, data_dir};
use latchkey_core::pkce::s256_challenge;
use std::time::Duration;
use webdriver::{Browser, browser_tests_enabled};

const VERIFIER: &str = "M25iVXpKU3puUjFaYWg3T1NDTDQtcW1ROUY5YXlwalNoc0hhakxifmZHag";

#[tokio::test]
async fn chromium_lists_an_allowed_app_and_revokes_it() {
    if !browser_tests_enabled() {
        eprintln!("skipped: set LATCHKEY_TEST_BROWSER=1 to run browser tests");
        return;
    }
    let dir = data_dir();
    let out = cli(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "Remembered <App>",
            "--json",
            "--redirect-uri",
            "http://127.0.0.1/healthz",
            "--scope",
            "profile",
        ],
        None,
    );
    let client: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
    let client_id = client["client_id"].as_str().expect("client id");
    let secret = client["client_secret"].as_str().expect("secret");
    add_user(dir.path(), "ada", "analytical-engine");
    let server = Server::start(dir.path());
    let redirect = server.url("/healthz");
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("scope", "profile")
        .append_pair("state", "apps-state")
        .append_pair("code_challenge", &s256_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .finish();

    let browser = Browser::start()
        .await
        .expect("Chromium starts (LATCHKEY_TEST_BROWSER is set)");
    browser
        .goto(&server.url(&format!("/authorize?{query}")))
        .await
        .expect("opens the authorization URL");
    let username = browser.find("#username").await.expect("login page");
    browser.send_keys(&username, "ada").await.expect("types");
    let password = browser.find("#password").await.expect("password field");
    browser
        .send_keys(&password, "analytical-engine")
        .await
        .expect("types");
    let submit = browser
        .find("button[type=submit]")
        .await
        .expect("sign-in button");
    browser.click(&submit).await.expect("clicks");
    let remember = browser
        .find("input[name=remember]")
        .await
        .expect("a confidential client's consent may be remembered");
    browser.click(&remember).await.expect("ticks remember");
    let allow = browser.find("button[value=allow]").await.expect("allow");
    browser.click(&allow).await.expect("clicks allow");
    let landed = browser
        .wait_for_url(|u| u.starts_with(&redirect), Duration::from_secs(15))
        .await
        .expect("lands on the redirect URI");
    let code = url::Url::parse(&landed)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let http = reqwest::Client::new();
    let tokens: serde_json::Value = http
        .post(server.url("/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect.as_str()),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token endpoint answers")
        .json()
        .await
        .expect("json");
    let refresh = tokens["refresh_token"].as_str().expect("a refresh token");

    browser
        .goto(&server.url("/apps"))
        .await
        .expect("opens the apps page");
    let revoke = browser
        .find("button[type=submit]")
        .await
        .expect("a revoke button");
    let listed = browser.page_source().await.expect("source");
    assert!(
        listed.contains("Remembered &lt;App&gt;") && listed.contains("profile"),
        "{listed}"
    );
    browser.click(&revoke).await.expect("clicks revoke");
    // The form posts, the server redirects back to /apps: wait for the page to show the
    // empty list (the URL is the same before and after).
    let mut source = String::new();
    for _ in 0..150 {
        source = browser.page_source().await.expect("source");
        if source.contains("You have not allowed") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(source.contains("You have not allowed"), "{source}");

    let refreshed = http
        .post(server.url("/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .expect("token endpoint answers");
    assert_eq!(
        refreshed.status(),
        400,
        "the revoked app's refresh token is dead"
    );
}
