//! Production operations on the real binary: HTTPS with a generated certificate and its
//! reload, the plain-HTTP rule, metrics, password backoff, and shutdown under load.

mod common;

use common::{PASSWORD_GRANT, Server, add_user, create_client, data_dir, post_token};
use std::path::Path;
use std::time::Duration;

/// A client_credentials request with Basic authentication.
async fn client_credentials(
    http: &reqwest::Client,
    server: &Server,
    client: &common::CliClient,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    post_token(
        http,
        server,
        Some(&client.basic()),
        "grant_type=client_credentials",
    )
    .await
}

/// A test CA and a leaf certificate for `127.0.0.1` and `localhost`, as PEM files.
struct Pki {
    ca_pem: String,
    ca_params: rcgen::CertificateParams,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Latchkey test CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
        Self {
            ca_pem: ca.pem(),
            ca_params,
            ca_key,
        }
    }

    /// Writes a fresh leaf certificate and key to `dir/cert.pem` and `dir/key.pem`; returns
    /// the certificate's DER.
    fn write_leaf(&self, dir: &Path) -> Vec<u8> {
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("params");
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).expect("leaf certificate");
        // Key first, then certificate: the server reloads when both changed.
        std::fs::write(dir.join("key.pem.new"), key.serialize_pem()).expect("write key");
        std::fs::write(dir.join("cert.pem.new"), cert.pem()).expect("write cert");
        std::fs::rename(dir.join("key.pem.new"), dir.join("key.pem")).expect("rename");
        std::fs::rename(dir.join("cert.pem.new"), dir.join("cert.pem")).expect("rename");
        cert.der().to_vec()
    }

    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("PEM")])
            .tls_info(true)
            .pool_max_idle_per_host(0)
            .build()
            .expect("client")
    }
}

fn tls_env(dir: &Path) -> Vec<(&'static str, String)> {
    vec![
        (
            "LATCHKEY_TLS__CERT_FILE",
            dir.join("cert.pem").display().to_string(),
        ),
        (
            "LATCHKEY_TLS__KEY_FILE",
            dir.join("key.pem").display().to_string(),
        ),
        ("LATCHKEY_TLS__RELOAD_INTERVAL", "1".into()),
    ]
}

fn start(dir: &Path, env: &[(&str, String)]) -> Server {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with(dir, &env)
}

async fn served_certificate(http: &reqwest::Client, server: &Server) -> Vec<u8> {
    let resp = http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("HTTPS answers");
    resp.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|info| info.peer_certificate())
        .expect("peer certificate")
        .to_vec()
}

#[tokio::test]
async fn tokens_are_issued_over_https_and_certificates_reload_without_restart() {
    let dir = data_dir();
    let pki = Pki::new();
    let first = pki.write_leaf(dir.path());
    let client = create_client(dir.path(), &[]);
    let server = start(dir.path(), &tls_env(dir.path()));
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let http = pki.client();

    let (status, _, body) = client_credentials(&http, &server, &client).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());
    assert_eq!(served_certificate(&http, &server).await, first);

    // A plain-HTTP client cannot talk to the HTTPS listener.
    let plain = server.base.replacen("https://", "http://", 1);
    assert!(
        reqwest::get(format!("{plain}/healthz"))
            .await
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
    );

    // Replace the certificate on disk: new connections get it, the process is the same.
    let second = pki.write_leaf(dir.path());
    assert_ne!(first, second);
    let mut served = Vec::new();
    for _ in 0..100 {
        served = served_certificate(&http, &server).await;
        if served == second {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, second, "the new certificate was not picked up");
    let (status, _, _) = client_credentials(&http, &server, &client).await;
    assert_eq!(status, 200);

    // A broken certificate file is refused and the good one stays in service.
    std::fs::write(dir.path().join("cert.pem"), "not a certificate").expect("write");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(served_certificate(&http, &server).await, second);
}

#[tokio::test]
async fn plain_http_from_a_remote_client_is_refused_unless_a_trusted_proxy_saw_https() {
    let dir = data_dir();
    let client = create_client(dir.path(), &[]);
    let server = start(
        dir.path(),
        &[("LATCHKEY_TRUSTED_PROXIES", "[127.0.0.1]".into())],
    );
    let http = reqwest::Client::new();
    let token = |forwarded: Vec<(&'static str, &'static str)>| {
        let mut req = http
            .post(server.url("/token"))
            .header("authorization", client.basic())
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials");
        for (k, v) in forwarded {
            req = req.header(k, v);
        }
        async move {
            let resp = req.send().await.expect("answer");
            let status = resp.status().as_u16();
            (
                status,
                resp.json::<serde_json::Value>()
                    .await
                    .unwrap_or(serde_json::Value::Null),
            )
        }
    };
    // The proxy (a trusted loopback peer) forwards a remote client that used plain HTTP.
    let (status, body) = token(vec![
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "http"),
    ])
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "invalid_request");
    assert_eq!(body["error_description"], "HTTPS is required");
    // The same client behind a proxy that terminated TLS is served.
    let (status, body) = token(vec![
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
    ])
    .await;
    assert_eq!(status, 200, "{body}");
    // The proxy sets X-Forwarded-* (the default `forwarded_header`): a `Forwarded` header
    // is the client's own and proves nothing.
    let (status, _) = token(vec![
        ("forwarded", "for=203.0.113.7;proto=https;host=auth.example"),
        ("x-forwarded-for", "203.0.113.7"),
    ])
    .await;
    assert_eq!(status, 403);
    // A developer on loopback, no proxy headers: served.
    let (status, _) = token(vec![]).await;
    assert_eq!(status, 200);
    // Probes stay reachable for the remote client.
    let probe = http
        .get(server.url("/healthz"))
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await
        .expect("answer");
    assert_eq!(probe.status().as_u16(), 200);
}

#[tokio::test]
async fn forwarded_headers_from_an_untrusted_peer_do_not_make_a_request_https() {
    let dir = data_dir();
    let client = create_client(dir.path(), &[]);
    // No trusted proxies: the loopback peer is the client, its forwarding headers are noise.
    let server = start(dir.path(), &[]);
    let http = reqwest::Client::new();
    let resp = http
        .post(server.url("/token"))
        .header("authorization", client.basic())
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-proto", "https")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("answer");
    // Served because the real peer is on loopback, not because of the header; the
    // in-process test below shows a non-loopback peer refused with the same header.
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn metrics_count_requests_tokens_and_refusals() {
    let dir = data_dir();
    let client = create_client(dir.path(), &[]);
    let server = start(
        dir.path(),
        &[
            ("LATCHKEY_ADMIN__LISTEN", "127.0.0.1:0".into()),
            ("LATCHKEY_ADMIN__TOKEN", ADMIN_TOKEN.into()),
        ],
    );
    let admin = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("latchkey admin API on "))
        .expect("admin listener announced")
        .to_owned();
    let http = reqwest::Client::new();
    // Issue 14: the OAuth listener faces the internet and does not serve metrics.
    let public = http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("answer");
    assert_ne!(
        public.status().as_u16(),
        200,
        "metrics on the public listener"
    );
    for _ in 0..3 {
        let (status, _, _) = client_credentials(&http, &server, &client).await;
        assert_eq!(status, 200);
    }
    let (status, _, _) = post_token(
        &http,
        &server,
        Some(&client.basic()),
        "grant_type=client_credentials&scope=nope",
    )
    .await;
    assert_eq!(status, 400);
    let wrong = common::CliClient {
        id: client.id.clone(),
        secret: "wrong".into(),
    };
    let (status, _, _) = client_credentials(&http, &server, &wrong).await;
    assert_eq!(status, 401);

    // The admin listener serves them, without the admin token.
    let resp = http
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(resp.status().as_u16(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    let text = resp.text().await.expect("text");
    let value = |series: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    assert_eq!(
        value(r#"http_requests_total{method="POST",route="/token",status="200"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(r#"http_requests_total{method="POST",route="/token",status="401"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(r#"latchkey_tokens_issued_total{grant_type="client_credentials"}"#),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(r#"latchkey_refusals_total{endpoint="token",error="invalid_scope",status="400"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(r#"latchkey_auth_failures_total{kind="client"}"#),
        Some(1.0),
        "{text}"
    );
    assert!(
        text.contains(r#"http_request_duration_seconds_bucket{method="POST",route="/token",le="#),
        "{text}"
    );
    assert!(
        text.contains(r#"latchkey_store_duration_seconds_count{op="save_tokens"}"#),
        "{text}"
    );
    // Labels carry no credential or client input.
    assert!(!text.contains(&client.id) && !text.contains(&client.secret));
}

#[tokio::test]
async fn wrong_passwords_are_slowed_then_refused_and_the_right_one_works_after_the_window() {
    let dir = data_dir();
    let client = create_client(
        dir.path(),
        &["--grant-type", "password", "--grant-type", "refresh_token"],
    );
    add_user(dir.path(), "alice", "correct horse");
    let server = start(
        dir.path(),
        &[
            (PASSWORD_GRANT.0, PASSWORD_GRANT.1.into()),
            ("LATCHKEY_LIMITS__LOGIN_SLOW_AFTER", "1".into()),
            ("LATCHKEY_LIMITS__LOGIN_MAX_DELAY", "2".into()),
            ("LATCHKEY_LIMITS__LOGIN_MAX_FAILURES", "3".into()),
            ("LATCHKEY_LIMITS__LOGIN_WINDOW", "12".into()),
        ],
    );
    let http = reqwest::Client::new();
    let basic = client.basic();
    let attempt = |password: &'static str| {
        let (http, server, basic) = (&http, &server, &basic);
        async move {
            let body = format!("grant_type=password&username=alice&password={password}");
            post_token(http, server, Some(basic), &body).await
        }
    };
    let retry_after = |headers: &reqwest::header::HeaderMap| -> u64 {
        headers["retry-after"]
            .to_str()
            .expect("ascii")
            .parse()
            .expect("seconds")
    };

    let (status, _, body) = attempt("guess1").await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // One failure: the next attempt must wait; it is answered 429 without a check.
    let (status, headers, body) = attempt("guess2").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    let wait = retry_after(&headers);
    assert!((1..=2).contains(&wait), "waits at most max_delay: {wait}");
    // Waiting as told, attempts are checked again, until the limit.
    for guess in ["guess3", "guess4"] {
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let (status, _, body) = attempt(guess).await;
        assert_eq!(status, 400, "{guess}: {body}");
    }
    // Three failures: locked; even the right password is refused until the window ends.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, headers, _) = attempt("correct+horse").await;
    assert_eq!(status, 429);
    let wait = retry_after(&headers);
    assert!((1..=12).contains(&wait), "{wait}");
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(300)).await;
    let (status, _, body) = attempt("correct+horse").await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn sigterm_during_a_burst_answers_completely_and_exits_within_the_grace() {
    let dir = data_dir();
    let client = create_client(dir.path(), &[]);
    let server = start(dir.path(), &[("LATCHKEY_SHUTDOWN_GRACE", "5".into())]);
    let http = reqwest::Client::new();
    let url = server.url("/token");
    let auth = client.basic();
    // 16 workers send requests back to back until the server stops answering.
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (http, url, auth) = (http.clone(), url.clone(), auth.clone());
        let answered = answered.clone();
        burst.spawn(async move {
            let mut tokens = Vec::new();
            loop {
                let sent = http
                    .post(&url)
                    .header("authorization", &auth)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("grant_type=client_credentials")
                    .send()
                    .await;
                let Ok(resp) = sent else { return tokens };
                let status = resp.status().as_u16();
                // A started answer must arrive whole: a cut body is a failure, not a refusal.
                let body = resp.bytes().await.expect("a started answer completes");
                assert_eq!(status, 200, "{body:?}");
                let json: serde_json::Value = serde_json::from_slice(&body).expect("complete JSON");
                tokens.push(json["access_token"].as_str().expect("token").to_owned());
                answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
    }
    while answered.load(std::sync::atomic::Ordering::Relaxed) < 100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = std::time::Instant::now();
    let exit = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .expect("joined");
    let took = started.elapsed();
    assert!(exit.success(), "clean exit: {exit:?}");
    assert!(took < Duration::from_secs(5 + 5), "exited after {took:?}");

    let mut tokens = Vec::new();
    while let Some(joined) = burst.join_next().await {
        tokens.extend(joined.expect("worker"));
    }
    assert!(tokens.len() >= 100, "{}", tokens.len());

    // Every token that was answered survived the shutdown.
    let server = Server::start(dir.path());
    for token in &tokens {
        let resp = http
            .post(server.url("/introspect"))
            .header("authorization", &auth)
            .form(&[("token", token.as_str())])
            .send()
            .await
            .expect("introspect");
        let json: serde_json::Value = resp.json().await.expect("JSON");
        assert_eq!(json["active"], true, "an answered token was lost");
    }
}

const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789abcdef";

#[tokio::test]
async fn admin_api_manages_clients_users_and_tokens_and_nothing_secret_is_logged() {
    let dir = data_dir();
    let server = start(
        dir.path(),
        &[
            ("LATCHKEY_ADMIN__LISTEN", "127.0.0.1:0".into()),
            ("LATCHKEY_ADMIN__TOKEN", ADMIN_TOKEN.into()),
            (PASSWORD_GRANT.0, PASSWORD_GRANT.1.into()),
        ],
    );
    let admin = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("latchkey admin API on "))
        .expect("admin listener announced")
        .to_owned();
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<serde_json::Value>| {
        let mut req = http
            .request(method, format!("{admin}{path}"))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        async move {
            let resp = req.send().await.expect("admin answers");
            let status = resp.status().as_u16();
            (
                status,
                resp.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };

    // Without the token (or with a wrong one), nothing.
    let anonymous = http
        .get(format!("{admin}/admin/clients"))
        .send()
        .await
        .expect("answer");
    assert_eq!(anonymous.status().as_u16(), 401);
    let wrong = http
        .get(format!("{admin}/admin/clients"))
        .bearer_auth("admin-token-for-tests-0123456789abcdeX")
        .send()
        .await
        .expect("answer");
    assert_eq!(wrong.status().as_u16(), 401);
    // The OAuth listener does not route admin calls.
    let leaked = http
        .get(server.url("/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(leaked.status().as_u16(), 404);

    let (status, created) = call(
        reqwest::Method::POST,
        "/admin/clients",
        Some(serde_json::json!({
            "name": "API-made",
            "grant_types": ["client_credentials", "password", "refresh_token"],
            "scope": "read write",
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let client = common::CliClient {
        id: created["client_id"].as_str().expect("id").to_owned(),
        secret: created["client_secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
    };
    let (status, bad) = call(
        reqwest::Method::POST,
        "/admin/clients",
        Some(serde_json::json!({ "name": "x", "grant_types": ["telepathy"] })),
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    let (status, bad) = call(
        reqwest::Method::POST,
        "/admin/clients",
        Some(serde_json::json!({ "nom": "x" })),
    )
    .await;
    assert_eq!(status, 400, "{bad}");
    let (status, shown) = call(
        reqwest::Method::GET,
        &format!("/admin/clients/{}", client.id),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(shown["name"], "API-made");
    assert!(shown.get("client_secret").is_none());
    let (status, listed) = call(reqwest::Method::GET, "/admin/clients", None).await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));

    let (status, user) = call(
        reqwest::Method::POST,
        "/admin/users",
        Some(serde_json::json!({ "username": "bob", "password": "first pass" })),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let (status, _) = call(
        reqwest::Method::POST,
        "/admin/users",
        Some(serde_json::json!({ "username": "bob", "password": "again" })),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = call(
        reqwest::Method::PUT,
        "/admin/users/bob/password",
        Some(serde_json::json!({ "password": "second pass" })),
    )
    .await;
    assert_eq!(status, 204);
    // "Log out everywhere" (issue 14): ends every login session of the user.
    let (status, ended) = call(reqwest::Method::POST, "/admin/users/bob/logout", None).await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["sessions"], 0);
    let (status, _) = call(reqwest::Method::POST, "/admin/users/nobody/logout", None).await;
    assert_eq!(status, 404);
    let (status, _, tokens) = post_token(
        &http,
        &server,
        Some(&client.basic()),
        "grant_type=password&username=bob&password=second+pass",
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    let refresh = tokens["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();

    let (status, described) = call(
        reqwest::Method::POST,
        "/admin/tokens/introspect",
        Some(serde_json::json!({ "token": access })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(described["active"], true);
    assert_eq!(described["username"], "bob");
    let (status, revoked) = call(
        reqwest::Method::POST,
        "/admin/tokens/revoke",
        Some(serde_json::json!({ "token": refresh })),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        revoked["revoked"], 2,
        "the refresh token takes its access token"
    );
    let (_, described) = call(
        reqwest::Method::POST,
        "/admin/tokens/introspect",
        Some(serde_json::json!({ "token": access })),
    )
    .await;
    assert_eq!(described["active"], false);

    let (status, _) = call(reqwest::Method::DELETE, "/admin/users/bob", None).await;
    assert_eq!(status, 204);
    let (status, _) = call(reqwest::Method::DELETE, "/admin/users/bob", None).await;
    assert_eq!(status, 404);
    let (status, _) = call(
        reqwest::Method::DELETE,
        &format!("/admin/clients/{}", client.id),
        None,
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, _) = client_credentials(&http, &server, &client).await;
    assert_eq!(status, 401, "a deleted client is gone at once");

    // The OpenAPI document describes every route, without authentication.
    let doc: serde_json::Value = http
        .get(format!("{admin}/openapi.json"))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("JSON");
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    for path in [
        "/admin/clients",
        "/admin/clients/{id}",
        "/admin/users",
        "/admin/users/{username}/password",
        "/admin/users/{username}/logout",
        "/admin/tokens/revoke",
        "/admin/tokens/introspect",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing");
    }

    // The audit trail has the admin changes; no log line has a secret of any kind. A graceful
    // stop flushes the log writer (a kill could lose its last lines).
    server.terminate();
    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    for action in [
        "client_created",
        "user_added",
        "user_password_changed",
        "user_logged_out",
        "user_deleted",
        "client_deleted",
    ] {
        assert!(log.contains(action), "{action} not audited");
    }
    for secret in [
        ADMIN_TOKEN,
        client.secret.as_str(),
        "first pass",
        "second pass",
        "second+pass",
        access.as_str(),
        refresh.as_str(),
    ] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

#[test]
fn config_show_prints_effective_settings_without_secrets() {
    let dir = data_dir();
    let out = {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"));
        cmd.args(["--data-dir"])
            .arg(dir.path())
            .args(["config", "show"])
            .env("LATCHKEY_ADMIN__TOKEN", ADMIN_TOKEN)
            .env(
                "LATCHKEY_STORE__URL",
                "postgres://latchkey:pg-secret@db:5432/auth",
            )
            .env("LATCHKEY_TOKENS__ACCESS_TTL", "120");
        cmd.output().expect("runs")
    };
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.contains("access_ttl = 120"), "{text}");
    assert!(
        text.contains("postgres://latchkey:<redacted>@db:5432/auth"),
        "{text}"
    );
    assert!(
        !text.contains(ADMIN_TOKEN) && !text.contains("pg-secret"),
        "{text}"
    );
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    let dir = data_dir();
    let client = create_client(dir.path(), &[]);
    let other = create_client(dir.path(), &[]);
    let server = start(
        dir.path(),
        &[
            ("LATCHKEY_LIMITS__PER_CLIENT", "3".into()),
            ("LATCHKEY_LIMITS__WINDOW", "60".into()),
        ],
    );
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let (status, _, _) = client_credentials(&http, &server, &client).await;
        assert_eq!(status, 200);
    }
    let (status, headers, body) = client_credentials(&http, &server, &client).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
    let wait: u64 = headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&wait));
    assert_eq!(headers["cache-control"], "no-store");
    // Another client keeps its own budget.
    let (status, _, _) = client_credentials(&http, &server, &other).await;
    assert_eq!(status, 200);
}

/// With `limits.store` on Redis, failures seen by one node count on another.
#[tokio::test]
async fn failure_counts_in_redis_are_shared_by_two_nodes() {
    let Ok(redis) = std::env::var("LATCHKEY_TEST_REDIS") else {
        eprintln!("skipped: set LATCHKEY_TEST_REDIS to run the shared-counter test");
        return;
    };
    let prefix = format!(
        "latchkey-ops-test-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_nanos()
    );
    let env = vec![
        ("LATCHKEY_LIMITS__STORE", redis),
        ("LATCHKEY_STORE__KEY_PREFIX", prefix),
        ("LATCHKEY_LIMITS__LOGIN_MAX_FAILURES_PER_IP", "2".into()),
        ("LATCHKEY_LIMITS__LOGIN_SLOW_AFTER", "100".into()),
        (PASSWORD_GRANT.0, PASSWORD_GRANT.1.into()),
    ];
    let (dir_a, dir_b) = (data_dir(), data_dir());
    let flags = ["--grant-type", "password", "--id", "shared-app"];
    let client = create_client(dir_a.path(), &flags);
    // Each node has its own embedded store, with a client of the same id.
    let client_b = create_client(dir_b.path(), &flags);
    let node_a = start(dir_a.path(), &env);
    let node_b = start(dir_b.path(), &env);
    let http = reqwest::Client::new();
    for _ in 0..2 {
        let (status, _, _) = post_token(
            &http,
            &node_a,
            Some(&client.basic()),
            "grant_type=password&username=nobody&password=guess",
        )
        .await;
        assert_eq!(status, 400);
    }
    let (status, headers, _) = post_token(
        &http,
        &node_b,
        Some(&client_b.basic()),
        "grant_type=password&username=someone-else&password=guess",
    )
    .await;
    assert_eq!(status, 429, "node B saw node A's failures");
    assert!(headers.contains_key("retry-after"));
}
