//! A minimal async W3C WebDriver client that drives headless Debian Chromium
//! through `chromedriver`, for browser tests of the login and consent pages.
//!
//! Include it from a test crate with
//! `#[path = "common/webdriver.rs"] mod webdriver;`, call
//! [`browser_tests_enabled`] first and return early only when it is false.
//! When browser tests are enabled, a browser that cannot start is a test
//! failure, never a skip.
//!
//! Every wait here is bounded: HTTP requests to chromedriver have a timeout,
//! and the polls in [`Browser::find`] and [`Browser::wait_for_url`] give up
//! after a deadline.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

/// Environment variable that turns browser tests on (any non-empty value).
pub const ENABLE_VAR: &str = "LATCHKEY_TEST_BROWSER";
/// The Chromium binary from Debian's `chromium` package.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// The driver from Debian's `chromium-driver` package, looked up on `PATH`.
pub const CHROMEDRIVER: &str = "chromedriver";

/// How long chromedriver may take to report ready on `/status`.
const DRIVER_START_TIMEOUT: Duration = Duration::from_secs(20);
/// Upper bound for any single HTTP request to chromedriver (session creation
/// and page loads included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long [`Browser::find`] polls for an element to appear.
pub const FIND_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between polls.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// The W3C key under which an element reference is returned.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// True when `LATCHKEY_TEST_BROWSER` is set to a non-empty value.
pub fn browser_tests_enabled() -> bool {
    std::env::var_os(ENABLE_VAR).is_some_and(|v| !v.is_empty())
}

/// A reference to an element of the current page, as returned by [`Browser::find`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementId(pub String);

/// A cookie as the browser reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cookie {
    /// Cookie name.
    pub name: String,
    /// Cookie value.
    pub value: String,
    /// `Path` attribute, if reported.
    pub path: Option<String>,
    /// `Domain`, if reported.
    pub domain: Option<String>,
    /// `Secure` flag.
    pub secure: bool,
    /// `HttpOnly` flag.
    pub http_only: bool,
    /// `SameSite` value (`Strict`, `Lax` or `None`), if reported.
    pub same_site: Option<String>,
    /// Expiry in seconds since the epoch; `None` for a session cookie.
    pub expiry: Option<u64>,
}

impl Cookie {
    fn from_json(v: &Value) -> Result<Self, String> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
        Ok(Self {
            name: s("name").ok_or_else(|| format!("cookie without a name: {v}"))?,
            value: s("value").ok_or_else(|| format!("cookie without a value: {v}"))?,
            path: s("path"),
            domain: s("domain"),
            secure: v.get("secure").and_then(Value::as_bool).unwrap_or(false),
            http_only: v.get("httpOnly").and_then(Value::as_bool).unwrap_or(false),
            same_site: s("sameSite"),
            expiry: v.get("expiry").and_then(Value::as_u64),
        })
    }
}

/// A running chromedriver with one headless Chromium session.
///
/// Dropping it deletes the session (best effort, which quits Chromium) and
/// kills chromedriver and anything left in its process group.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT` of chromedriver.
    driver_base: String,
    port: u16,
    session: Option<String>,
    driver: Child,
    log_path: PathBuf,
    // Holds the Chromium profile and chromedriver's log; removed on drop.
    _dir: tempfile::TempDir,
}

/// Finds a free TCP port on 127.0.0.1 by binding port 0 and dropping the listener.
pub fn free_port() -> Result<u16, String> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind 127.0.0.1:0: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?
        .port();
    drop(listener);
    Ok(port)
}

impl Browser {
    /// Starts chromedriver and opens a headless Chromium session.
    ///
    /// The error says what failed and includes the tail of chromedriver's log.
    pub async fn start() -> Result<Self, String> {
        Self::start_with_languages(None).await
    }

    /// [`Browser::start`] with the browser's language preference (its `Accept-Language`),
    /// e.g. `de-AT,de`; `None` keeps Chromium's default.
    pub async fn start_with_languages(languages: Option<&str>) -> Result<Self, String> {
        let dir = tempfile::Builder::new()
            .prefix("latchkey-browser-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir for the browser: {e}"))?;
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile)
            .map_err(|e| format!("cannot create {}: {e}", profile.display()))?;
        let log_path = dir.path().join("chromedriver.log");
        let log = File::create(&log_path)
            .map_err(|e| format!("cannot create {}: {e}", log_path.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot clone the log file handle: {e}"))?;

        let port = free_port()?;
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group, so Drop can also end any Chromium it left.
            .process_group(0)
            .spawn()
            .map_err(|e| {
                format!(
                    "cannot run `{CHROMEDRIVER}` ({e}); install Debian's chromium and \
                     chromium-driver: apt-get install -y chromium chromium-driver"
                )
            })?;

        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;

        let mut browser = Self {
            http,
            driver_base: format!("http://127.0.0.1:{port}"),
            port,
            session: None,
            driver,
            log_path,
            _dir: dir,
        };
        browser.wait_until_ready().await?;
        browser.create_session(&profile, languages).await?;
        Ok(browser)
    }

    /// Polls `GET /status` until chromedriver reports ready, or fails with
    /// its log if it exits or the deadline passes.
    async fn wait_until_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + DRIVER_START_TIMEOUT;
        let url = format!("{}/status", self.driver_base);
        loop {
            if let Ok(Some(status)) = self.driver.try_wait() {
                return Err(format!(
                    "chromedriver exited before it was ready ({status}){}",
                    self.log_tail()
                ));
            }
            let last = match self
                .http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                Ok(resp) => match resp.json::<Value>().await {
                    Ok(body) if body["value"]["ready"] == Value::Bool(true) => return Ok(()),
                    Ok(body) => format!("not ready: {body}"),
                    Err(e) => format!("unreadable /status: {e}"),
                },
                Err(e) => format!("{e}"),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "chromedriver on port {} not ready after {DRIVER_START_TIMEOUT:?} ({last}){}",
                    self.port,
                    self.log_tail()
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    async fn create_session(
        &mut self,
        profile: &Path,
        languages: Option<&str>,
    ) -> Result<(), String> {
        let mut args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1280,900".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut prefs = json!({});
        if let Some(languages) = languages {
            args.push(format!("--accept-lang={languages}"));
            args.push(format!("--lang={languages}"));
            prefs = json!({ "intl.accept_languages": languages });
        }
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": { "implicit": 0, "pageLoad": 30_000, "script": 10_000 },
                    "goog:chromeOptions": { "binary": CHROMIUM, "args": args, "prefs": prefs },
                }
            }
        });
        let value = self
            .request(reqwest::Method::POST, "/session", Some(caps))
            .await
            .map_err(|e| format!("cannot start headless Chromium ({CHROMIUM}): {e}"))?;
        let id = value["sessionId"]
            .as_str()
            .ok_or_else(|| format!("new session answer has no sessionId: {value}"))?;
        self.session = Some(id.to_owned());
        Ok(())
    }

    /// The last lines of chromedriver's log, for error messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.is_empty() {
            String::new()
        } else {
            format!(
                "\n--- chromedriver log ({}) ---\n{tail}",
                self.log_path.display()
            )
        }
    }

    /// Sends one WebDriver command and returns the `value` of the answer,
    /// or an error carrying the W3C error code and message.
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let url = format!("{}{path}", self.driver_base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| format!("{method} {path}: reading the answer: {e}"))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| format!("{method} {path}: HTTP {status}, not JSON ({e}): {text}"))?;
        let value = json.get("value").cloned().unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(WebDriverError::from_value(&value).describe(&method, path, status));
        }
        Ok(value)
    }

    fn session_path(&self, rest: &str) -> Result<String, String> {
        let id = self
            .session
            .as_deref()
            .ok_or_else(|| "no WebDriver session".to_owned())?;
        Ok(format!("/session/{id}{rest}"))
    }

    async fn session_get(&self, rest: &str) -> Result<Value, String> {
        let path = self.session_path(rest)?;
        self.request(reqwest::Method::GET, &path, None).await
    }

    async fn session_post(&self, rest: &str, body: Value) -> Result<Value, String> {
        let path = self.session_path(rest)?;
        self.request(reqwest::Method::POST, &path, Some(body)).await
    }

    /// Navigates to `url` and waits for the page load (bounded by the
    /// session's 30 s page-load timeout).
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.session_post("/url", json!({ "url": url })).await?;
        Ok(())
    }

    /// The URL of the current page.
    pub async fn current_url(&self) -> Result<String, String> {
        let v = self.session_get("/url").await?;
        as_string(v, "current URL")
    }

    /// Finds the first element matching the CSS selector, polling for up to
    /// [`FIND_TIMEOUT`] for it to appear.
    pub async fn find(&self, css: &str) -> Result<ElementId, String> {
        self.find_within(css, FIND_TIMEOUT).await
    }

    /// Like [`Browser::find`], with an explicit timeout.
    pub async fn find_within(&self, css: &str, timeout: Duration) -> Result<ElementId, String> {
        let path = self.session_path("/element")?;
        let body = json!({ "using": "css selector", "value": css });
        let deadline = Instant::now() + timeout;
        loop {
            let url = format!("{}{path}", self.driver_base);
            let resp = self
                .http
                .post(&url)
                .json(&body)
                .send()
                .await
                .map_err(|e| format!("find {css:?}: {e}"))?;
            let status = resp.status();
            let json: Value = resp
                .json()
                .await
                .map_err(|e| format!("find {css:?}: unreadable answer: {e}"))?;
            let value = json.get("value").cloned().unwrap_or(Value::Null);
            if status.is_success() {
                return value[ELEMENT_KEY]
                    .as_str()
                    .map(|id| ElementId(id.to_owned()))
                    .ok_or_else(|| format!("find {css:?}: no element reference in {value}"));
            }
            let err = WebDriverError::from_value(&value);
            if err.error != "no such element" {
                return Err(err.describe(&reqwest::Method::POST, &path, status));
            }
            if Instant::now() >= deadline {
                let url = self.current_url().await.unwrap_or_default();
                return Err(format!(
                    "no element matches {css:?} after {timeout:?} on {url}"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Clicks the element.
    pub async fn click(&self, element: &ElementId) -> Result<(), String> {
        self.session_post(&format!("/element/{}/click", element.0), json!({}))
            .await?;
        Ok(())
    }

    /// Types `text` into the element (appending to what it holds).
    pub async fn send_keys(&self, element: &ElementId, text: &str) -> Result<(), String> {
        self.session_post(
            &format!("/element/{}/value", element.0),
            json!({ "text": text }),
        )
        .await?;
        Ok(())
    }

    /// The element's rendered text.
    pub async fn text(&self, element: &ElementId) -> Result<String, String> {
        let v = self
            .session_get(&format!("/element/{}/text", element.0))
            .await?;
        as_string(v, "element text")
    }

    /// The element's rendered box: `(x, y, width, height)` in CSS pixels.
    pub async fn rect(&self, element: &ElementId) -> Result<(f64, f64, f64, f64), String> {
        let v = self
            .session_get(&format!("/element/{}/rect", element.0))
            .await?;
        let n = |k: &str| {
            v[k].as_f64()
                .ok_or_else(|| format!("element rect has no {k}: {v}"))
        };
        Ok((n("x")?, n("y")?, n("width")?, n("height")?))
    }

    /// The serialized DOM of the current page.
    pub async fn page_source(&self) -> Result<String, String> {
        let v = self.session_get("/source").await?;
        as_string(v, "page source")
    }

    /// Takes a PNG screenshot of the viewport, writes it to `path` (creating
    /// parent directories) and returns its bytes.
    pub async fn screenshot_png(&self, path: &Path) -> Result<Vec<u8>, String> {
        let v = self.session_get("/screenshot").await?;
        let b64 = as_string(v, "screenshot")?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| format!("screenshot is not base64: {e}"))?;
        if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
            return Err("screenshot is not a PNG".to_owned());
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(path, &png).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(png)
    }

    /// All cookies visible to the current page.
    pub async fn cookies(&self) -> Result<Vec<Cookie>, String> {
        let v = self.session_get("/cookie").await?;
        v.as_array()
            .ok_or_else(|| format!("cookies: not a list: {v}"))?
            .iter()
            .map(Cookie::from_json)
            .collect()
    }

    /// Polls [`Browser::current_url`] until `predicate` accepts it, and
    /// returns that URL; fails with the last URL seen after `timeout`.
    pub async fn wait_for_url<F>(&self, predicate: F, timeout: Duration) -> Result<String, String>
    where
        F: Fn(&str) -> bool,
    {
        let deadline = Instant::now() + timeout;
        loop {
            let url = self.current_url().await?;
            if predicate(&url) {
                return Ok(url);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "URL did not reach the expected state within {timeout:?}; last: {url}"
                ));
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// `DELETE /session/{id}` over a plain blocking socket, for Drop (which
    /// cannot await). Bounded by socket timeouts.
    fn delete_session_blocking(&mut self) -> bool {
        let Some(id) = self.session.take() else {
            return true;
        };
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        let req = format!(
            "DELETE /session/{id} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        if stream.write_all(req.as_bytes()).is_err() {
            return false;
        }
        // chromedriver says `Connection: close` but keeps the socket open, so
        // read up to the end of the body instead of waiting for EOF.
        let mut answer = Vec::new();
        let mut chunk = [0u8; 4096];
        while answer.len() < 64 * 1024 {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
            if http_answer_complete(&answer) {
                break;
            }
        }
        answer.starts_with(b"HTTP/1.1 200")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Quitting the session closes Chromium cleanly; then end chromedriver
        // and, by its process group, any Chromium process that outlived it.
        // The group is signalled before chromedriver is reaped, so its id
        // cannot have been reused.
        let _ = self.delete_session_blocking();
        let pgid = self.driver.id();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A W3C WebDriver error answer.
struct WebDriverError {
    error: String,
    message: String,
}

impl WebDriverError {
    fn from_value(value: &Value) -> Self {
        Self {
            error: value["error"]
                .as_str()
                .unwrap_or("unknown error")
                .to_owned(),
            message: value["message"].as_str().unwrap_or_default().to_owned(),
        }
    }

    fn describe(
        &self,
        method: &reqwest::Method,
        path: &str,
        status: reqwest::StatusCode,
    ) -> String {
        // Chromium's messages carry a long native stack trace after the first lines.
        let message: String = self.message.lines().take(3).collect::<Vec<_>>().join(" | ");
        format!("{method} {path}: HTTP {status}: {}: {message}", self.error)
    }
}

/// Whether `answer` holds a whole HTTP/1.1 response with a `Content-Length` body.
fn http_answer_complete(answer: &[u8]) -> bool {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())
            .flatten()
    });
    length.is_some_and(|len| answer.len() >= end + 4 + len)
}

fn as_string(v: Value, what: &str) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(format!("{what}: expected a string, got {other}")),
    }
}
