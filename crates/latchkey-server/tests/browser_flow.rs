//! The built-in login and consent pages in a real browser: headless Chromium logs in,
//! approves, and lands on the client's redirect URI with a code that exchanges for tokens.
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
async fn chromium_logs_in_consents_and_lands_on_the_redirect_with_a_code() {
    if !browser_tests_enabled() {
        eprintln!("skipped: set LATCHKEY_TEST_BROWSER=1 to run browser tests");
        return;
    }
    let dir = data_dir();
    // The server's own /healthz stands in for the client's callback page (loopback, any port).
    let out = cli(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "Browser App",
            "--public",
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
    add_user(dir.path(), "ada", "analytical-engine");
    let server = Server::start(dir.path());
    let redirect = server.url("/healthz");
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("scope", "profile")
        .append_pair("state", "browser-state")
        .append_pair("code_challenge", &s256_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .finish();

    let browser = Browser::start()
        .await
        .expect("Chromium starts (LATCHKEY_TEST_BROWSER is set)");
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser_flow");
    std::fs::create_dir_all(&shots).expect("screenshot dir");

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
    browser
        .screenshot_png(&shots.join("login.png"))
        .await
        .expect("screenshot");
    let submit = browser
        .find("button[type=submit]")
        .await
        .expect("sign-in button");
    browser.click(&submit).await.expect("clicks");

    let allow = browser
        .find("button[value=allow]")
        .await
        .expect("consent page");
    let consent = browser.page_source().await.expect("source");
    assert!(
        consent.contains("Browser App") && consent.contains("profile"),
        "{consent}"
    );
    browser
        .screenshot_png(&shots.join("consent.png"))
        .await
        .expect("screenshot");
    browser.click(&allow).await.expect("clicks allow");

    let landed = browser
        .wait_for_url(|u| u.starts_with(&redirect), Duration::from_secs(15))
        .await
        .expect("lands on the redirect URI");
    let params: std::collections::BTreeMap<String, String> = url::Url::parse(&landed)
        .expect("url")
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(params["state"], "browser-state");
    assert_eq!(params["iss"], server.base);
    let cookies = browser.cookies().await.expect("cookies");
    let session = cookies
        .iter()
        .find(|c| c.name == "lk_session")
        .expect("session cookie");
    assert!(session.http_only, "the session cookie is HttpOnly");

    let tokens = reqwest::Client::new()
        .post(server.url("/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", params["code"].as_str()),
            ("redirect_uri", redirect.as_str()),
            ("client_id", client_id),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token endpoint answers");
    assert_eq!(
        tokens.status(),
        200,
        "the code from the browser exchanges for tokens"
    );
    // Logging out (issue 14): /logout asks, its form posts from the issuer's own origin, and
    // the session is gone afterwards.
    browser
        .goto(&server.url("/logout"))
        .await
        .expect("opens the logout page");
    let sign_out = browser
        .find("button[type=submit]")
        .await
        .expect("sign-out button");
    browser.click(&sign_out).await.expect("clicks sign out");
    let mut out = String::new();
    for _ in 0..100 {
        out = browser.page_source().await.expect("source");
        if out.contains("You are signed out") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(out.contains("You are signed out"), "{out}");
    browser
        .goto(&server.url(&format!("/authorize?{query}")))
        .await
        .expect("opens the authorization URL again");
    browser
        .find("#password")
        .await
        .expect("the login page again, not consent");
}
