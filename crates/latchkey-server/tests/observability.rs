//! Observability of a running `latchkey serve` (issue 19): the access log, admin audit lines
//! with the caller's address, the Prometheus exposition (`# HELP`/`# TYPE`, process series),
//! the shipped Grafana dashboard against a live `/metrics`, and request spans exported over
//! OTLP to a fake receiver.

mod common;

use common::{CliClient, PASSWORD_GRANT, Server, add_user, create_client, data_dir, post_token};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789abcdef";

fn admin_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("LATCHKEY_ADMIN__LISTEN", "127.0.0.1:0"),
        ("LATCHKEY_ADMIN__TOKEN", ADMIN_TOKEN),
    ]
}

fn admin_base(server: &Server) -> String {
    server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("latchkey admin API on "))
        .expect("admin listener announced")
        .to_owned()
}

/// The JSON lines of the server's log that satisfy `wanted`, once at least `count` of them
/// are there: the log writer batches lines, so they reach the file shortly after the
/// response. Fails after 20 s without them.
async fn log_lines(
    dir: &Path,
    count: usize,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    for _ in 0..200 {
        let text = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
        found = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| wanted(l))
            .collect();
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{count} matching log lines expected, {} found:\n{}",
        found.len(),
        std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
    );
}

fn is_access(line: &serde_json::Value) -> bool {
    line["target"] == "latchkey::access"
}

#[tokio::test]
async fn every_request_gets_one_access_line_without_query_or_credentials() {
    let dir = data_dir();
    let client = create_client(dir.path(), &[]);
    let server = Server::start_with(dir.path(), &admin_env());
    let admin = admin_base(&server);
    let http = reqwest::Client::new();

    // A token request whose query string carries a credential: refused (RFC 6749 §2.3.1
    // allows credentials in the body only), and the query is never logged.
    let resp = http
        .post(server.url("/token?client_secret=query-secret-value"))
        .header("authorization", client.basic())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 400);
    let resp = http
        .post(server.url("/token"))
        .header("authorization", client.basic())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-request-id", "trace-me-42")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 200);
    let body: serde_json::Value = resp.json().await.expect("json");
    let access_token = body["access_token"].as_str().expect("token").to_owned();
    // A path holding an identifier, and one the router does not know.
    let resp = http
        .get(server.url("/register/some-client-id-value"))
        .send()
        .await
        .expect("answer");
    let register_status = resp.status().as_u16();
    let resp = http
        .get(server.url("/nothing/here"))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 404);
    let generated_id = resp.headers()["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    // An admin change through the API: access line by route pattern, audit line with the
    // caller's address.
    let resp = http
        .post(format!("{admin}/admin/clients/{}/secret", client.id))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 200, "rotate the secret");
    let rotated: serde_json::Value = resp.json().await.expect("json");

    let lines = log_lines(dir.path(), 5, is_access).await;
    let by_route = |route: &str| {
        lines
            .iter()
            .rev()
            .find(|l| l["fields"]["route"] == route)
            .unwrap_or_else(|| panic!("no access line for {route}: {lines:#?}"))
    };
    let token = &by_route("/token")["fields"];
    assert_eq!(token["method"], "POST");
    assert_eq!(token["status"], 200);
    assert_eq!(token["request_id"], "trace-me-42");
    assert_eq!(token["client_ip"], "127.0.0.1");
    assert!(token["duration_us"].is_u64(), "{token}");
    assert_eq!(
        by_route("/register/{client_id}")["fields"]["status"],
        register_status
    );
    let unknown = &by_route("other")["fields"];
    assert_eq!(unknown["status"], 404);
    assert_eq!(unknown["request_id"], generated_id.as_str());
    let rotate = &by_route("/admin/clients/{id}/secret")["fields"];
    assert_eq!(rotate["status"], 200);
    assert_eq!(rotate["client_ip"], "127.0.0.1");
    let refused = lines
        .iter()
        .find(|l| l["fields"]["route"] == "/token")
        .expect("the refused request");
    assert_eq!(refused["fields"]["status"], 400);
    assert_eq!(
        lines.len(),
        5,
        "one line per request, nothing else: {lines:#?}"
    );

    let audit = log_lines(dir.path(), 1, |l| {
        l["target"] == "latchkey::audit" && l["fields"]["action"] == "client_secret_rotated"
    })
    .await;
    assert_eq!(audit[0]["fields"]["actor"], "api");
    assert_eq!(audit[0]["fields"]["client_ip"], "127.0.0.1");
    // The request span around it names the route by its pattern, not by the raw path that
    // holds the client id.
    assert_eq!(audit[0]["span"]["name"], "request");
    assert_eq!(audit[0]["span"]["route"], "/admin/clients/{id}/secret");
    assert!(audit[0]["span"].get("path").is_none(), "{}", audit[0]);
    assert!(
        !audit[0]["span"].to_string().contains(client.id.as_str()),
        "{}",
        audit[0]
    );
    let issued = log_lines(dir.path(), 1, |l| {
        l["target"] == "latchkey::audit" && l["span"]["request_id"] == "trace-me-42"
    })
    .await;
    assert_eq!(issued[0]["span"]["route"], "/token");
    assert_eq!(issued[0]["span"]["method"], "POST");

    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    for secret in [
        "query-secret-value",
        "some-client-id-value",
        client.secret.as_str(),
        access_token.as_str(),
        ADMIN_TOKEN,
        rotated["client_secret"]
            .as_str()
            .unwrap_or("no secret in the answer"),
    ] {
        assert!(!log.contains(secret), "{secret} reached the log:\n{log}");
    }
}

#[tokio::test]
async fn the_access_log_can_be_switched_off() {
    let dir = data_dir();
    let client = create_client(dir.path(), &[]);
    let server = Server::start_with(dir.path(), &[("LATCHKEY_LOG__ACCESS", "false")]);
    let http = reqwest::Client::new();
    let (status, _, _) = post_token(
        &http,
        &server,
        Some(&client.basic()),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200);
    // The audit line of the same request shows the log is written; no access line is.
    log_lines(dir.path(), 1, |l| l["fields"]["event"] == "token_issued").await;
    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    assert!(!log.contains("latchkey::access"), "{log}");
}

/// Traffic that makes every series the dashboard charts: tokens of two grants, a refresh
/// replay, a revocation, refusals, failed client and user authentications.
async fn mixed_traffic(server: &Server, client: &CliClient) {
    let http = reqwest::Client::new();
    let auth = client.basic();
    let (status, _, body) = post_token(
        &http,
        server,
        Some(&auth),
        "grant_type=password&username=alice&password=correct+horse+battery",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rt1 = body["refresh_token"].as_str().expect("refresh token");
    let (status, _, body) = post_token(
        &http,
        server,
        Some(&auth),
        &format!("grant_type=refresh_token&refresh_token={rt1}"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _, _) = post_token(
        &http,
        server,
        Some(&auth),
        &format!("grant_type=refresh_token&refresh_token={rt1}"),
    )
    .await;
    assert_eq!(status, 400, "the replay is refused");
    let (status, _, body) =
        post_token(&http, server, Some(&auth), "grant_type=client_credentials").await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().expect("token");
    let resp = http
        .post(server.url("/revoke"))
        .header("authorization", &auth)
        .form(&[("token", access)])
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 200);
    let wrong = CliClient {
        id: client.id.clone(),
        secret: "wrong".into(),
    };
    let (status, _, _) = post_token(
        &http,
        server,
        Some(&wrong.basic()),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, _) = post_token(
        &http,
        server,
        Some(&auth),
        "grant_type=password&username=alice&password=wrong",
    )
    .await;
    assert_eq!(status, 400);
}

async fn scrape(admin: &str) -> String {
    let resp = reqwest::get(format!("{admin}/metrics"))
        .await
        .expect("metrics answer");
    assert_eq!(resp.status().as_u16(), 200);
    resp.text().await.expect("text")
}

/// The sample names of an exposition, and the names its `# HELP` and `# TYPE` lines cover.
fn exposition(text: &str) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<String>) {
    let mut samples = BTreeSet::new();
    let mut helped = BTreeSet::new();
    let mut typed = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            helped.insert(rest.split(' ').next().unwrap_or("").to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split(' ').next().unwrap_or("").to_owned());
        } else if !line.is_empty() && !line.starts_with('#') {
            samples.insert(line.split(['{', ' ']).next().unwrap_or("").to_owned());
        }
    }
    (samples, helped, typed)
}

/// The family a sample belongs to: a histogram's `_bucket`, `_sum` and `_count` series are
/// described under the histogram's name.
fn family<'a>(sample: &'a str, typed: &BTreeSet<String>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix)
            && typed.contains(base)
        {
            return base;
        }
    }
    sample
}

/// The metric names a dashboard's queries use: every identifier of ours in an `expr` or a
/// variable query.
fn dashboard_metrics(dashboard: &serde_json::Value) -> BTreeSet<String> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            queries.push(target["expr"].as_str().expect("expr").to_owned());
        }
    }
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        if let Some(q) = variable["definition"].as_str() {
            queries.push(q.to_owned());
        }
    }
    let mut names = BTreeSet::new();
    for query in queries {
        let mut word = String::new();
        for c in query.chars().chain([' ']) {
            if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
                word.push(c);
            } else {
                if ["latchkey_", "http_", "process_"]
                    .iter()
                    .any(|p| word.starts_with(p))
                {
                    names.insert(std::mem::take(&mut word));
                }
                word.clear();
            }
        }
    }
    names
}

#[tokio::test]
async fn metrics_are_described_include_the_process_and_feed_every_dashboard_panel() {
    let dir = data_dir();
    let client = create_client(
        dir.path(),
        &[
            "--grant-type",
            "password",
            "--grant-type",
            "refresh_token",
            "--grant-type",
            "client_credentials",
        ],
    );
    add_user(dir.path(), "alice", "correct horse battery");
    let mut env = admin_env();
    env.push(PASSWORD_GRANT);
    let server = Server::start_with(dir.path(), &env);
    let admin = admin_base(&server);
    mixed_traffic(&server, &client).await;
    let text = scrape(&admin).await;
    let (samples, helped, typed) = exposition(&text);

    for sample in &samples {
        let family = family(sample, &typed);
        assert!(helped.contains(family), "no # HELP for {sample}:\n{text}");
        assert!(typed.contains(family), "no # TYPE for {sample}:\n{text}");
    }
    for process in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(samples.contains(process), "{process} missing:\n{text}");
    }
    let value = |name: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{name} has no value"))
    };
    assert!(value("process_resident_memory_bytes") > 1e6);
    assert!(value("process_open_fds") >= 3.0);
    assert!(value("process_open_fds") <= value("process_max_fds"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    let started = value("process_start_time_seconds");
    assert!(
        started <= now + 1.0 && started > now - 3600.0,
        "{started} vs {now}"
    );

    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/grafana/latchkey.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("dashboard")).expect("JSON");
    let queried = dashboard_metrics(&dashboard);
    assert!(queried.len() >= 10, "{queried:?}");
    let missing: Vec<_> = queried.difference(&samples).collect();
    assert!(
        missing.is_empty(),
        "the dashboard queries series /metrics does not have: {missing:?}\n{text}"
    );
}

mod otlp {
    //! A fake OTLP/HTTP receiver: decodes each export request and keeps its spans.

    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    use prost::Message as _;
    use std::sync::{Arc, Mutex};

    /// One received span: its name, its string attributes and its resource's
    /// `service.name`.
    #[derive(Debug, Clone)]
    pub struct Span {
        pub name: String,
        pub attributes: Vec<(String, String)>,
        pub service: String,
    }

    impl Span {
        pub fn attribute(&self, key: &str) -> Option<&str> {
            self.attributes
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        }
    }

    /// What the receiver has seen: decoded spans and the raw bodies.
    #[derive(Default, Clone)]
    pub struct Received {
        pub spans: Arc<Mutex<Vec<Span>>>,
        pub bodies: Arc<Mutex<Vec<u8>>>,
        pub content_types: Arc<Mutex<Vec<String>>>,
    }

    fn text(value: Option<&opentelemetry_proto::tonic::common::v1::AnyValue>) -> String {
        match value.and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s)) => s.clone(),
            Some(Value::IntValue(i)) => i.to_string(),
            Some(Value::BoolValue(b)) => b.to_string(),
            Some(other) => format!("{other:?}"),
            None => String::new(),
        }
    }

    /// Serves `POST /v1/traces` on a free port; returns its base URL.
    pub async fn start(received: Received) -> String {
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(
                move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                    let received = received.clone();
                    async move {
                        received.content_types.lock().expect("lock").push(
                            headers
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned(),
                        );
                        received
                            .bodies
                            .lock()
                            .expect("lock")
                            .extend_from_slice(&body);
                        let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                            return axum::http::StatusCode::BAD_REQUEST;
                        };
                        let mut spans = received.spans.lock().expect("lock");
                        for resource in request.resource_spans {
                            let service = resource
                                .resource
                                .as_ref()
                                .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                                .map(|a| text(a.value.as_ref()))
                                .unwrap_or_default();
                            for scope in resource.scope_spans {
                                for span in scope.spans {
                                    spans.push(Span {
                                        name: span.name.clone(),
                                        attributes: span
                                            .attributes
                                            .iter()
                                            .map(|a| (a.key.clone(), text(a.value.as_ref())))
                                            .collect(),
                                        service: service.clone(),
                                    });
                                }
                            }
                        }
                        axum::http::StatusCode::OK
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }
}

#[tokio::test]
async fn request_spans_of_a_token_request_reach_an_otlp_receiver() {
    let received = otlp::Received::default();
    let collector = otlp::start(received.clone()).await;
    let dir = data_dir();
    let client = create_client(dir.path(), &[]);
    let server = Server::start_with(
        dir.path(),
        &[
            ("LATCHKEY_TRACING__OTLP__ENDPOINT", collector.as_str()),
            (
                "LATCHKEY_TRACING__OTLP__SERVICE_NAME",
                "latchkey-under-test",
            ),
            // Export every 100 ms rather than every 5 s (the SDK's own variable).
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    let http = reqwest::Client::new();
    let resp = http
        .post(server.url("/token"))
        .header("authorization", client.basic())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-request-id", "span-request-7")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 200);
    let token: serde_json::Value = resp.json().await.expect("json");
    let mut span = None;
    for _ in 0..200 {
        span = received
            .spans
            .lock()
            .expect("lock")
            .iter()
            .find(|s| s.attribute("request_id") == Some("span-request-7"))
            .cloned();
        if span.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let span = span.unwrap_or_else(|| {
        panic!(
            "no span of the token request arrived; content types {:?}, log:\n{}",
            received.content_types.lock().expect("lock"),
            std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
        )
    });
    assert_eq!(span.name, "request");
    assert_eq!(span.attribute("method"), Some("POST"));
    assert_eq!(span.attribute("route"), Some("/token"));
    assert_eq!(span.attribute("path"), None, "the raw path is not recorded");
    assert_eq!(span.service, "latchkey-under-test");
    assert!(
        received
            .content_types
            .lock()
            .expect("lock")
            .iter()
            .all(|t| t == "application/x-protobuf"),
        "OTLP/HTTP with protobuf bodies"
    );
    let bodies = received.bodies.lock().expect("lock").clone();
    for secret in [
        client.secret.as_str(),
        token["access_token"].as_str().expect("token"),
    ] {
        assert!(
            !bodies.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "a secret was exported"
        );
    }
}

#[test]
fn a_bad_otlp_setting_stops_the_server_with_a_clear_message() {
    let dir = data_dir();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("LATCHKEY_TRACING__OTLP__ENDPOINT", "http://127.0.0.1:4318")
        .env("LATCHKEY_TRACING__OTLP__SAMPLE_RATIO", "2")
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tracing.otlp.sample_ratio"), "{err}");
}
