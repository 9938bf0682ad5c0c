//! Smoke test of the browser-test plumbing: headless Chromium, driven over
//! WebDriver, fills in and submits a form on a page served from 127.0.0.1.
//!
//! Runs only with `LATCHKEY_TEST_BROWSER` set; then a browser that cannot
//! start fails the test.

#[path = "common/webdriver.rs"]
mod webdriver;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use webdriver::{Browser, browser_tests_enabled};

const FORM_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Smoke form</title></head>
<body style="font-family: sans-serif; margin: 2em">
  <h1>Smoke test form</h1>
  <form method="get" action="/done">
    <label for="name">Name</label>
    <input id="name" name="name" type="text" autocomplete="off">
    <button id="submit" type="submit">Send</button>
  </form>
</body>
</html>"#;

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn done(Query(params): Query<HashMap<String, String>>) -> impl IntoResponse {
    let name = params.get("name").map(String::as_str).unwrap_or("nobody");
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Done</title></head>\
         <body style=\"font-family: sans-serif; margin: 2em\">\
         <h1>Submitted</h1><p id=\"greeting\">Hello, {}!</p></body></html>",
        escape_html(name)
    );
    (
        [(
            header::SET_COOKIE,
            "smoke_seen=yes; Path=/; HttpOnly; SameSite=Lax",
        )],
        Html(body),
    )
}

/// Serves the form page on 127.0.0.1:0 and returns `http://127.0.0.1:PORT`.
async fn serve() -> String {
    let app = Router::new()
        .route("/", get(|| async { Html(FORM_PAGE) }))
        .route("/done", get(done));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("test page server");
    });
    format!("http://{addr}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_renders_a_local_page() {
    if !browser_tests_enabled() {
        eprintln!("browser test skipped: set LATCHKEY_TEST_BROWSER=1 to run it");
        return;
    }
    let base = serve().await;
    let browser = Browser::start().await.unwrap_or_else(|e| {
        panic!("LATCHKEY_TEST_BROWSER is set, but headless Chromium could not start: {e}")
    });

    browser
        .goto(&format!("{base}/"))
        .await
        .expect("open the form");
    let heading = browser.find("h1").await.expect("heading");
    assert_eq!(
        browser.text(&heading).await.expect("heading text"),
        "Smoke test form"
    );

    let input = browser.find("input[name=name]").await.expect("name input");
    browser
        .send_keys(&input, "Ada Lovelace & co")
        .await
        .expect("type the name");
    let submit = browser.find("#submit").await.expect("submit button");
    browser.click(&submit).await.expect("click submit");

    let url = browser
        .wait_for_url(|u| u.contains("/done?"), Duration::from_secs(10))
        .await
        .expect("form submission navigates to /done");
    assert_eq!(url, format!("{base}/done?name=Ada+Lovelace+%26+co"));

    let greeting = browser.find("#greeting").await.expect("greeting");
    assert_eq!(
        browser.text(&greeting).await.expect("greeting text"),
        "Hello, Ada Lovelace & co!"
    );
    let source = browser.page_source().await.expect("page source");
    assert!(
        source.contains("Hello, Ada Lovelace &amp; co!"),
        "page source: {source}"
    );

    let cookies = browser.cookies().await.expect("cookies");
    let seen = cookies
        .iter()
        .find(|c| c.name == "smoke_seen")
        .unwrap_or_else(|| panic!("no smoke_seen cookie in {cookies:?}"));
    assert_eq!(seen.value, "yes");
    assert!(seen.http_only, "{seen:?}");
    assert_eq!(seen.same_site.as_deref(), Some("Lax"), "{seen:?}");

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser_smoke/done.png");
    let png = browser.screenshot_png(&shot).await.expect("screenshot");
    assert!(
        png.len() > 1000,
        "suspiciously small screenshot: {} bytes",
        png.len()
    );
    eprintln!("screenshot: {}", shot.display());

    assert!(
        browser
            .find_within("#missing", Duration::from_millis(300))
            .await
            .is_err(),
        "a missing element must not be found"
    );
}
