//! A load generator for the full authorization-code + PKCE flow, which `wrk` cannot script:
//! each flow is a fresh browser (no cookies) that opens `/authorize`, signs in on the login
//! page, allows on the consent page (`prompt=consent`, so it is shown every time), and
//! exchanges the code at `/token` with its PKCE verifier. `--connections` flows run at once
//! for `--duration` seconds; it prints one JSON line: flows, errors, flows/s, p50 and p99.
//!
//! `bench-flow --base http://127.0.0.1:8080 --client-id ID --username U --password P`

use latchkey_bench::{arg, num_arg};
use latchkey_core::pkce::s256_challenge;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:41234/callback";

/// What one flow needs to know.
struct Target {
    base: String,
    client_id: String,
    username: String,
    password: String,
}

/// One answer: status, `Location`, body.
struct Page {
    status: u16,
    location: String,
    body: String,
}

impl Page {
    /// The value of the hidden input `name`, HTML-unescaped.
    fn field(&self, name: &str) -> Result<String, String> {
        self.attribute(&format!("name=\"{name}\" value=\""))
            .ok_or_else(|| format!("no field {name} (status {})", self.status))
    }

    /// Where the page's form posts (its `action`, a path on the server): the bench follows
    /// the pages as a browser does instead of knowing the server's routes.
    fn action(&self) -> Result<String, String> {
        self.attribute("<form method=\"post\" action=\"")
            .ok_or_else(|| format!("no form (status {})", self.status))
    }

    /// The HTML-unescaped value that follows `marker` up to the next `"`.
    fn attribute(&self, marker: &str) -> Option<String> {
        let start = self.body.find(marker)? + marker.len();
        let end = self.body[start..].find('"')? + start;
        Some(
            self.body[start..end]
                .replace("&quot;", "\"")
                .replace("&#x27;", "'")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&#x2f;", "/")
                .replace("&amp;", "&"),
        )
    }
}

/// A browser with its own cookie jar, on a shared connection pool.
struct Agent<'a> {
    http: &'a reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Agent<'_> {
    async fn send(&mut self, req: reqwest::RequestBuilder) -> Result<Page, String> {
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
            .map_err(|e| e.to_string())?;
        for value in resp.headers().get_all("set-cookie") {
            let Some(pair) = value.to_str().ok().and_then(|v| v.split(';').next()) else {
                continue;
            };
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_owned(), value.to_owned());
                }
            }
        }
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = resp.text().await.map_err(|e| e.to_string())?;
        Ok(Page {
            status,
            location,
            body,
        })
    }
}

/// Runs one whole flow; `Err` says which step failed.
async fn flow(http: &reqwest::Client, t: &Target) -> Result<(), String> {
    let mut agent = Agent {
        http,
        cookies: BTreeMap::new(),
    };
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", &t.client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "read")
        .append_pair("state", "bench")
        .append_pair("prompt", "consent")
        .append_pair("code_challenge", &s256_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .finish();
    let login = agent
        .send(agent.http.get(format!("{}/authorize?{query}", t.base)))
        .await?;
    let form = [
        ("csrf_token", login.field("csrf_token")?),
        ("request", login.field("request")?),
        ("username", t.username.clone()),
        ("password", t.password.clone()),
    ];
    let after = agent
        .send(
            agent
                .http
                .post(format!("{}{}", t.base, login.action()?))
                .form(&form),
        )
        .await?;
    if after.status != 303 {
        return Err(format!("login answered {}", after.status));
    }
    let consent = agent
        .send(agent.http.get(format!("{}{}", t.base, after.location)))
        .await?;
    let form = [
        ("csrf_token", consent.field("csrf_token")?),
        ("request", consent.field("request")?),
        ("decision", "allow".to_owned()),
    ];
    // The consent form posts to its own route (`/consent`), not to `/authorize`.
    let done = agent
        .send(
            agent
                .http
                .post(format!("{}{}", t.base, consent.action()?))
                .form(&form),
        )
        .await?;
    if done.status != 303 {
        return Err(format!("consent answered {}", done.status));
    }
    let url = url::Url::parse(&done.location).map_err(|e| format!("redirect: {e}"))?;
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .ok_or("no code in the redirect")?;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", t.client_id.as_str()),
        ("code_verifier", VERIFIER),
    ];
    let tokens = agent
        .send(agent.http.post(format!("{}/token", t.base)).form(&exchange))
        .await?;
    if tokens.status != 200 || !tokens.body.contains("access_token") {
        return Err(format!("exchange answered {}", tokens.status));
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let target = Arc::new(Target {
        base: arg(&args, "--base").ok_or("--base URL")?,
        client_id: arg(&args, "--client-id").ok_or("--client-id ID")?,
        username: arg(&args, "--username").ok_or("--username NAME")?,
        password: arg(&args, "--password").ok_or("--password PASSWORD")?,
    });
    let connections = num_arg(&args, "--connections", 16);
    let duration = Duration::from_secs(num_arg(&args, "--duration", 10));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (http, target) = (http.clone(), Arc::clone(&target));
        tasks.push(tokio::spawn(async move {
            let (mut latencies, mut errors, mut last_error) = (Vec::new(), 0u64, String::new());
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match flow(&http, &target).await {
                    Ok(()) => latencies.push(t0.elapsed()),
                    Err(e) => {
                        errors += 1;
                        last_error = e;
                    }
                }
            }
            (latencies, errors, last_error)
        }));
    }
    let (mut latencies, mut errors, mut last_error) = (Vec::new(), 0, String::new());
    for task in tasks {
        let (l, e, last) = task.await?;
        latencies.extend(l);
        errors += e;
        if !last.is_empty() {
            last_error = last;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{}",
        serde_json::json!({
            "flows": latencies.len(),
            "errors": errors,
            "last_error": last_error,
            "secs": secs,
            "flows_per_sec": latencies.len() as f64 / secs,
            "p50_ms": pct(0.5),
            "p99_ms": pct(0.99),
        })
    );
    Ok(())
}
