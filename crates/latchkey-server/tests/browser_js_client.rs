//! The browser client `/js/latchkey.js`, and the CORS that lets pages on other origins use it.
//!
//! The browser test drives a single-page app on its own origin, served by the test: it imports
//! the module from the real server, logs in through the built-in pages, calls its own API
//! (guarded remotely, through cached introspection) with `auth.fetch`, refreshes, and logs
//! out. It runs when `LATCHKEY_TEST_BROWSER` is set; then a browser that cannot start fails
//! the test. The other tests need no browser.

mod common;
#[path = "common/webdriver.rs"]
mod webdriver;

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use common::{Server, add_user, cli, create_client, data_dir};
use latchkey_axum::{Authenticated, BearerGuard};
use latchkey_core::clock::SystemClock;
use latchkey_core::resource::Guard;
use latchkey_core::resource::cache::CachedVerifier;
use latchkey_core::resource::remote::{IntrospectionVerifier, Introspector};
use latchkey_core::secret::Secret;
use latchkey_core::store::{StoreError, StoreErrorKind};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use webdriver::{Browser, browser_tests_enabled};

#[tokio::test]
async fn the_server_serves_the_javascript_client_to_any_origin() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let resp = http
        .get(server.url("/js/latchkey.js"))
        .header("origin", "http://127.0.0.1:9")
        .send()
        .await
        .expect("server answers");
    assert_eq!(resp.status(), 200);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(
        header("content-type").as_deref(),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(header("access-control-allow-origin").as_deref(), Some("*"));
    assert!(
        header("cache-control").is_some_and(|c| c.contains("max-age=")),
        "{:?}",
        header("cache-control")
    );
    let body = resp.text().await.expect("body");
    assert!(body.contains("export class LatchkeyClient"), "{body}");
    assert_eq!(body, latchkey_server::app::JS_CLIENT);

    // Without `cors.allowed_origins`, no endpoint answers cross-origin requests.
    let token = http
        .post(server.url("/token"))
        .header("origin", "http://127.0.0.1:9")
        .form(&[("grant_type", "refresh_token"), ("refresh_token", "x")])
        .send()
        .await
        .expect("server answers");
    assert!(
        token.headers().get("access-control-allow-origin").is_none(),
        "{:?}",
        token.headers()
    );
}

#[tokio::test]
async fn cors_answers_exactly_the_configured_origins_on_the_browser_endpoints() {
    const APP: &str = "http://127.0.0.1:5173";
    let dir = data_dir();
    let server = Server::start_with(
        dir.path(),
        &[(
            "LATCHKEY_CORS__ALLOWED_ORIGINS",
            "[http://127.0.0.1:5173, https://app.example/]",
        )],
    );
    let http = reqwest::Client::new();
    let preflight = |path: &str, origin: &str| {
        http.request(reqwest::Method::OPTIONS, server.url(path))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allow_origin = |resp: &reqwest::Response| {
        resp.headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };

    for path in [
        "/token",
        "/revoke",
        "/.well-known/oauth-authorization-server",
    ] {
        let resp = preflight(path, APP).await.expect("server answers");
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        assert_eq!(allow_origin(&resp).as_deref(), Some(APP), "{path}");
        assert!(
            resp.headers()
                .get("access-control-allow-credentials")
                .is_none(),
            "{path}: no credentials"
        );
        let methods = resp
            .headers()
            .get("access-control-allow-methods")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_uppercase();
        assert!(
            methods.contains("POST") && methods.contains("GET"),
            "{methods}"
        );
        let headers = resp
            .headers()
            .get("access-control-allow-headers")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            headers.contains("content-type") && headers.contains("authorization"),
            "{headers}"
        );
        // Another origin gets no permission.
        let other = preflight(path, "http://127.0.0.1:5174")
            .await
            .expect("server answers");
        assert_eq!(allow_origin(&other), None, "{path}");
    }
    // The trailing slash of the configured origin is not part of an origin.
    let resp = preflight("/token", "https://app.example")
        .await
        .expect("server answers");
    assert_eq!(allow_origin(&resp).as_deref(), Some("https://app.example"));

    // Error answers carry the header too, so the page can read the OAuth error.
    let refused = http
        .post(server.url("/token"))
        .header("origin", APP)
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", "nobody"),
        ])
        .send()
        .await
        .expect("server answers");
    assert!(refused.status().is_client_error());
    assert_eq!(allow_origin(&refused).as_deref(), Some(APP));
    let metadata = http
        .get(server.url("/.well-known/oauth-authorization-server"))
        .header("origin", APP)
        .send()
        .await
        .expect("server answers");
    assert_eq!(metadata.status(), 200);
    assert_eq!(allow_origin(&metadata).as_deref(), Some(APP));

    // Introspection (for resource servers) and the pages (navigated to) get no CORS.
    for path in ["/introspect", "/authorize", "/healthz"] {
        let resp = preflight(path, APP).await.expect("server answers");
        assert_eq!(allow_origin(&resp), None, "{path}");
    }
    let introspect = http
        .post(server.url("/introspect"))
        .header("origin", APP)
        .form(&[("token", "x")])
        .send()
        .await
        .expect("server answers");
    assert_eq!(allow_origin(&introspect), None);
}

/// RFC 7662 introspection over HTTP, authenticated as a confidential client.
struct HttpIntrospector {
    http: reqwest::Client,
    endpoint: String,
    client_id: String,
    client_secret: String,
    calls: Arc<AtomicUsize>,
}

impl Introspector for HttpIntrospector {
    async fn introspect(&self, token: &Secret) -> Result<Value, StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let unavailable = |e: &dyn std::fmt::Display| {
            StoreError::new(StoreErrorKind::Unavailable, format!("introspection: {e}"))
        };
        let resp = self
            .http
            .post(&self.endpoint)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .form(&[("token", token.expose())])
            .send()
            .await
            .map_err(|e| unavailable(&e))?;
        if !resp.status().is_success() {
            return Err(unavailable(&resp.status()));
        }
        resp.json().await.map_err(|e| unavailable(&e))
    }
}

/// The single-page app's own server.
#[derive(Clone)]
struct Spa {
    guard: BearerGuard,
    /// Tokens `/api/once` has seen (their last characters).
    seen: Arc<Mutex<HashSet<String>>>,
    index: Arc<str>,
    callback: Arc<str>,
}

impl FromRef<Spa> for BearerGuard {
    fn from_ref(spa: &Spa) -> Self {
        spa.guard.clone()
    }
}

/// The last characters of the request's bearer token: enough to tell tokens apart.
fn token_tail(headers: &HeaderMap) -> String {
    let value = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    value[value.len().saturating_sub(8)..].to_owned()
}

/// `GET /api/me`: who the token stands for.
async fn me(Authenticated(token): Authenticated, headers: HeaderMap) -> Response {
    axum::Json(json!({
        "username": token.username,
        "sub": token.subject,
        "client_id": token.client_id,
        "scope": token.scope.to_string(),
        "token_tail": token_tail(&headers),
        "dpop_bound": token.cnf.as_ref().and_then(|c| c.jkt()).is_some(),
    }))
    .into_response()
}

/// `GET /api/once`: accepts each access token once, then calls it invalid, as a resource
/// server does with a token revoked since its last check.
async fn once(
    State(spa): State<Spa>,
    Authenticated(_): Authenticated,
    headers: HeaderMap,
) -> Response {
    let tail = token_tail(&headers);
    let fresh = spa
        .seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(tail.clone());
    if fresh {
        return axum::Json(json!({ "token_tail": tail })).into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"spa\", error=\"invalid_token\"",
        )],
        axum::Json(json!({ "error": "invalid_token" })),
    )
        .into_response()
}

/// The app's pages: `/` with a login button, `/callback` that completes the login and
/// exercises the client, writing each step's outcome as JSON into the page.
fn pages(server: &str, client_id: &str, spa: &str, dpop: bool) -> (String, String) {
    let config = json!({
        "issuer": server,
        "clientId": client_id,
        "redirectUri": format!("{spa}/callback"),
        "scope": "profile",
        "discover": true,
        "dpop": dpop,
    });
    let head = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Photo app</title>
<style>body{font-family:sans-serif;margin:2em} pre{background:#f4f4f4;padding:.5em}</style>
</head>"#;
    let index = format!(
        r#"{head}
<body>
<h1>Photo app</h1>
<p>A single-page app on its own origin.</p>
<button id="login">Sign in with Latchkey</button>
<pre id="error"></pre>
<script type="module">
import {{ LatchkeyClient }} from "{server}/js/latchkey.js";
const auth = new LatchkeyClient({config});
document.getElementById("login").addEventListener("click", () => {{
  auth.login({{ appState: {{ from: "index" }} }}).catch((e) => {{
    document.getElementById("error").textContent = String(e);
  }});
}});
document.body.dataset.ready = "yes";
</script>
</body></html>"#
    );
    let callback = format!(
        r#"{head}
<body>
<h1>Photo app: signed in</h1>
<h2>Redirect</h2><pre id="redirect"></pre>
<h2>GET /api/me</h2><pre id="result"></pre>
<h2>After auth.refresh()</h2><pre id="refreshed"></pre>
<h2>Token refused by the API: refreshed and retried</h2><pre id="retried"></pre>
<h2>After auth.logout()</h2><pre id="logout"></pre>
<pre id="error"></pre>
<script type="module">
import {{ LatchkeyClient }} from "{server}/js/latchkey.js";
const auth = new LatchkeyClient({config});
const show = (id, value) => {{
  document.getElementById(id).textContent = JSON.stringify(value, null, 2);
}};
const call = async (path) => {{
  const response = await auth.fetch(path);
  return {{ status: response.status, body: await response.json() }};
}};
try {{
  const back = await auth.handleRedirect();
  show("redirect", {{
    appState: back && back.appState,
    url: location.href,
    pending: sessionStorage.length,
    authenticated: auth.isAuthenticated,
  }});
  const first = auth.accessToken;
  show("result", {{ ...(await call("/api/me")), tail: first.slice(-8) }});
  await auth.refresh();
  const second = auth.accessToken;
  show("refreshed", {{
    ...(await call("/api/me")),
    tail: second.slice(-8),
    changed: first !== second,
  }});
  const a = await call("/api/once");
  const b = await call("/api/once");
  show("retried", {{
    first: a,
    second: b,
    before: second.slice(-8),
    after: auth.accessToken.slice(-8),
  }});
  const last = auth.accessToken;
  await auth.logout();
  // Past the API's one-second introspection cache.
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const stale = await fetch("/api/me", {{ headers: {{ Authorization: `Bearer ${{last}}` }} }});
  show("logout", {{ authenticated: auth.isAuthenticated, status: stale.status }});
  document.body.dataset.state = "done";
}} catch (e) {{
  document.getElementById("error").textContent = String((e && e.stack) || e);
  document.body.dataset.state = "error";
}}
</script>
</body></html>"#
    );
    (index, callback)
}

#[tokio::test]
async fn a_single_page_app_on_another_origin_logs_in_calls_its_api_refreshes_and_logs_out() {
    spa_flow(false).await;
}

/// The same with `dpop: true`: a non-extractable WebCrypto key binds the code (`dpop_jkt`)
/// and the tokens, and every API call and refresh carries a proof the API checks.
#[tokio::test]
async fn a_single_page_app_with_dpop_binds_its_tokens_to_a_browser_key() {
    spa_flow(true).await;
}

async fn spa_flow(dpop: bool) {
    if !browser_tests_enabled() {
        eprintln!("skipped: set LATCHKEY_TEST_BROWSER=1 to run browser tests");
        return;
    }
    // The app's origin must be known before the server (CORS) and the client (redirect URI).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the app's port");
    let spa_origin = format!("http://{}", listener.local_addr().expect("local address"));
    let callback = format!("{spa_origin}/callback");

    let dir = data_dir();
    let out = cli(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "Photo SPA",
            "--public",
            "--json",
            "--redirect-uri",
            &callback,
            "--scope",
            "profile",
        ],
        None,
    );
    let client: Value = serde_json::from_str(out.trim()).expect("json");
    let client_id = client["client_id"].as_str().expect("client id").to_owned();
    let api = create_client(
        dir.path(),
        &["--grant-type", "client_credentials", "--introspect"],
    );
    add_user(dir.path(), "ada", "analytical-engine");
    let server = Server::start_with(
        dir.path(),
        &[("LATCHKEY_CORS__ALLOWED_ORIGINS", &format!("[{spa_origin}]"))],
    );

    // The app's API checks tokens at the server, remembering answers for a second.
    let calls = Arc::new(AtomicUsize::new(0));
    let introspector = HttpIntrospector {
        http: reqwest::Client::new(),
        endpoint: server.url("/introspect"),
        client_id: api.id.clone(),
        client_secret: api.secret.clone(),
        calls: Arc::clone(&calls),
    };
    let verifier = CachedVerifier::new(
        IntrospectionVerifier::new(introspector),
        Arc::new(SystemClock),
        1,
        100,
    );
    let core_guard = Guard::new(verifier, "spa");
    // RFC 9449 §7: the API checks proofs for its own origin, with its own replay cache.
    let core_guard = if dpop {
        core_guard.with_dpop(latchkey_core::resource::dpop::DpopGuard::new(
            latchkey_core::dpop::DpopConfig::default(),
            latchkey_core::store::replay::MemoryReplayCache::default(),
            Arc::new(SystemClock),
            &spa_origin,
        ))
    } else {
        core_guard
    };
    let guard = BearerGuard::new(core_guard);
    let (index, callback_page) = pages(&server.base, &client_id, &spa_origin, dpop);
    let spa = Spa {
        guard: guard.clone(),
        seen: Arc::default(),
        index: index.into(),
        callback: callback_page.into(),
    };
    let app = Router::new()
        .route("/api/me", get(me))
        .route("/api/once", get(once))
        .route_layer(guard.require("profile"))
        .route(
            "/",
            get(|State(spa): State<Spa>| async move { Html(spa.index.to_string()) }),
        )
        .route(
            "/callback",
            get(|State(spa): State<Spa>| async move { Html(spa.callback.to_string()) }),
        )
        .with_state(spa);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let spa_server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
    });

    let browser = Browser::start()
        .await
        .expect("Chromium starts (LATCHKEY_TEST_BROWSER is set)");
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(if dpop {
        "browser_js_client_dpop"
    } else {
        "browser_js_client"
    });
    std::fs::create_dir_all(&shots).expect("screenshot dir");

    browser
        .goto(&format!("{spa_origin}/"))
        .await
        .expect("opens the app");
    browser
        .find("body[data-ready]")
        .await
        .expect("the module loads from the server's origin");
    browser
        .screenshot_png(&shots.join("app.png"))
        .await
        .expect("screenshot");
    let login = browser.find("#login").await.expect("login button");
    browser.click(&login).await.expect("clicks");

    let username = browser
        .find("#username")
        .await
        .expect("Latchkey's login page");
    assert!(
        browser
            .current_url()
            .await
            .expect("url")
            .starts_with(&server.url("/authorize?")),
        "discovered authorization endpoint"
    );
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
    let allow = browser
        .find("button[value=allow]")
        .await
        .expect("consent page");
    assert!(
        browser
            .page_source()
            .await
            .expect("source")
            .contains("Photo SPA")
    );
    browser.click(&allow).await.expect("clicks allow");

    browser
        .wait_for_url(|u| u.starts_with(&callback), Duration::from_secs(15))
        .await
        .expect("lands on the callback page");
    browser
        .find_within("body[data-state]", Duration::from_secs(30))
        .await
        .expect("the callback page finishes");
    browser
        .screenshot_png(&shots.join("callback.png"))
        .await
        .expect("screenshot");
    let read = |id: &'static str| {
        let browser = &browser;
        async move {
            let element = browser.find(&format!("#{id}")).await.expect("element");
            browser.text(&element).await.expect("text")
        }
    };
    let error = read("error").await;
    assert!(error.is_empty(), "the page failed: {error}");
    let json = |text: String| -> Value {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };

    let redirect = json(read("redirect").await);
    assert_eq!(redirect["appState"]["from"], "index", "{redirect}");
    assert_eq!(redirect["url"], callback, "the code left the address bar");
    assert_eq!(redirect["pending"], 0, "nothing is left in sessionStorage");
    assert_eq!(redirect["authenticated"], true);

    let result = json(read("result").await);
    assert_eq!(result["status"], 200, "{result}");
    assert_eq!(result["body"]["username"], "ada", "{result}");
    assert_eq!(result["body"]["client_id"], client_id.as_str());
    assert_eq!(result["body"]["scope"], "profile");
    assert_eq!(result["body"]["token_tail"], result["tail"]);
    assert_eq!(result["body"]["dpop_bound"], dpop, "{result}");

    let refreshed = json(read("refreshed").await);
    assert_eq!(refreshed["status"], 200, "{refreshed}");
    assert_eq!(refreshed["changed"], true, "a new access token");
    assert_eq!(refreshed["body"]["username"], "ada");
    assert_eq!(refreshed["body"]["token_tail"], refreshed["tail"]);
    assert_eq!(refreshed["body"]["dpop_bound"], dpop, "{refreshed}");
    assert_ne!(refreshed["tail"], result["tail"]);

    let retried = json(read("retried").await);
    assert_eq!(retried["first"]["status"], 200, "{retried}");
    assert_eq!(
        retried["second"]["status"], 200,
        "refreshed and retried: {retried}"
    );
    assert_ne!(retried["after"], retried["before"]);
    assert_eq!(retried["second"]["body"]["token_tail"], retried["after"]);

    let logout = json(read("logout").await);
    assert_eq!(logout["authenticated"], false, "{logout}");
    assert_eq!(logout["status"], 401, "logout revoked the grant: {logout}");

    assert!(
        calls.load(Ordering::SeqCst) >= 3,
        "the API asked the server about each token"
    );
    drop(browser);
    let _ = stop.send(());
    spa_server
        .await
        .expect("the app's server task")
        .expect("the app's server");
}
