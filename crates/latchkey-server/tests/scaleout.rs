//! Scale-out as operators run it (README, "Scaling out"): three `latchkey` nodes on one
//! PostgreSQL database and one Redis, behind HAProxy with `packaging/scaleout/haproxy.cfg` (TLS
//! ends there; the nodes list it in `trusted_proxies`). Several workers run mixed load through
//! the load balancer (client credentials, the code flow with login and consent, refresh
//! rotation, revocation, introspection) and straight at the nodes, while one node is SIGKILLed
//! and restarted. Checked: no acknowledged token, rotation or revocation is lost; a revoked
//! token is refused by every node, directly and through the load balancer, as soon as the
//! revocation is answered; refresh-token reuse is detected across nodes; and the only failed
//! requests are those in flight on the killed node, at most one per worker.
//!
//! Runs when `LATCHKEY_TEST_SCALEOUT=1`, with `LATCHKEY_TEST_POSTGRES` and
//! `LATCHKEY_TEST_REDIS`; fails (does not skip) when it is set and haproxy or a store is
//! missing.

mod common;

use common::agent::{Agent, Page};
use common::{CliClient, Server, cli_env, data_dir};
use latchkey_core::dpop::proof::ProofKey;
use latchkey_core::pkce::s256_challenge;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WORKERS: usize = 6;
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "https://app.example/callback";
const KEK: &str = "q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng=";
/// The node the test kills (index into the nodes): `node2` in the HAProxy configuration.
const VICTIM: usize = 1;
/// Settings the test adds to the README's: all its requests come from one address.
const TEST_ONLY_SETTINGS: [&str; 1] = ["LATCHKEY_LIMITS__PER_IP"];

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

/// HAProxy with the shipped configuration, stopped when dropped.
struct Haproxy(Child);

impl Haproxy {
    fn start(dir: &Path, bind: &str, cert: &Path, nodes: &[String]) -> Self {
        let log = std::fs::File::create(dir.join("haproxy.log")).expect("log file");
        // Debian puts it in /usr/sbin, which is not on every user's PATH.
        let on_path = std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join("haproxy").is_file())
        });
        let mut cmd = Command::new(if on_path {
            "haproxy"
        } else {
            "/usr/sbin/haproxy"
        });
        cmd.arg("-db")
            .arg("-f")
            .arg(repo_file("packaging/scaleout/haproxy.cfg"))
            .env("LK_LB_BIND", bind)
            .env("LK_LB_CERT", cert)
            .stdout(Stdio::null())
            .stderr(log);
        for (i, node) in nodes.iter().enumerate() {
            let addr = node.strip_prefix("http://").expect("http node");
            cmd.env(format!("LK_NODE{}", i + 1), addr);
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!("LATCHKEY_TEST_SCALEOUT is set but haproxy does not run: {e}")
        });
        Self(child)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Prints the load balancer's and the nodes' logs when the test fails.
struct LogsOnFailure(Vec<PathBuf>);

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for path in &self.0 {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                // The nodes log every request at info: their warnings and errors are enough.
                let tail: Vec<&str> = text
                    .lines()
                    .filter(|l| !l.contains("\"level\":\"INFO\""))
                    .rev()
                    .take(40)
                    .collect();
                eprintln!("--- {} (last lines)", path.display());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it, as one PEM file for HAProxy; the CA's
/// PEM for the test's clients.
fn lb_certificate(dir: &Path) -> (PathBuf, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Latchkey scale-out test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let key = rcgen::KeyPair::generate().expect("key");
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("params")
        .signed_by(&key, &issuer)
        .expect("certificate");
    let path = dir.join("lb.pem");
    std::fs::write(&path, format!("{}{}", leaf.pem(), key.serialize_pem())).expect("write PEM");
    (path, ca_cert.pem())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One request through the load balancer.
struct Call {
    op: &'static str,
    start: Instant,
    end: Instant,
    /// None: no HTTP answer at all.
    status: Option<u16>,
    /// The node HAProxy chose, from its `X-Latchkey-Node` header.
    node: String,
}

impl Call {
    fn failed(&self) -> bool {
        self.status.is_none_or(|s| s >= 500)
    }
}

/// What the workers saw, and what must still hold at the end.
#[derive(Default)]
struct Ledger {
    calls: Vec<Call>,
    /// Client-credentials tokens whose revocation was acknowledged.
    revoked: Vec<String>,
    rotations: usize,
    reuse_checks: usize,
    logins: usize,
    revocation_checks: usize,
    /// Requests straight at the victim that failed because it was killed meanwhile.
    direct_lost: usize,
}

/// A refresh-token family a worker holds: its newest refresh token and the access tokens it
/// produced.
struct Family {
    refresh: String,
    access: Vec<String>,
}

struct Shared {
    lb: String,
    nodes: Vec<String>,
    tls: reqwest::Client,
    plain: reqwest::Client,
    ca_pem: String,
    service: CliClient,
    web: CliClient,
    up: Vec<AtomicBool>,
    /// Bumped when a node is marked down and when it is back: a direct request that spans a
    /// change may have met a dead node.
    epoch: AtomicUsize,
    stop: AtomicBool,
    ledger: Mutex<Ledger>,
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

impl Shared {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, op: &'static str, start: Instant, status: Option<u16>, node: String) {
        let end = Instant::now();
        self.ledger().calls.push(Call {
            op,
            start,
            end,
            status,
            node,
        });
    }

    /// POSTs a form through the load balancer; None when it failed (5xx or no answer).
    async fn lb_post(
        &self,
        op: &'static str,
        path: &str,
        auth: &str,
        form: &[(&str, &str)],
    ) -> Option<(u16, Value)> {
        let start = Instant::now();
        let sent = self
            .tls
            .post(format!("{}{path}", self.lb))
            .header("authorization", auth)
            .form(form)
            .send()
            .await;
        let (status, node, body) = match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let node = resp
                    .headers()
                    .get("x-latchkey-node")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                match resp.text().await {
                    Ok(text) => (Some(status), node, json_of(&text)),
                    Err(_) => (None, node, Value::Null),
                }
            }
            Err(_) => (None, String::new(), Value::Null),
        };
        let failed = status.is_none_or(|s| s >= 500);
        assert!(
            !(failed && self.stop.load(Ordering::SeqCst)),
            "{op} through the LB failed with every node up: status {status:?}, node {node:?}, {body}"
        );
        self.record(op, start, status, node);
        match status {
            Some(s) if s < 500 => Some((s, body)),
            _ => None,
        }
    }

    /// POSTs a form straight to node `i`; None when the node is down or was killed meanwhile.
    async fn node_post(
        &self,
        i: usize,
        path: &str,
        auth: &str,
        form: &[(&str, &str)],
    ) -> Option<(u16, Value)> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        if !self.up[i].load(Ordering::SeqCst) {
            return None;
        }
        let sent = self
            .plain
            .post(format!("{}{path}", self.nodes[i]))
            .header("authorization", auth)
            .form(form)
            .send()
            .await;
        let answer = match sent {
            Ok(resp) => {
                let status = resp.status().as_u16();
                resp.text().await.map(|text| (status, json_of(&text)))
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok((status, body)) => {
                assert!(status < 500, "node {} answered {status}: {body}", i + 1);
                Some((status, body))
            }
            Err(e) => {
                let spanned = self.epoch.load(Ordering::SeqCst) != epoch;
                assert!(
                    i == VICTIM && spanned,
                    "node {} is up but did not answer: {e}",
                    i + 1
                );
                self.ledger().direct_lost += 1;
                None
            }
        }
    }

    /// Whether `token` is active, asked of node `i` (None: the node is down).
    async fn active_on(&self, i: usize, owner: &CliClient, token: &str) -> Option<bool> {
        let (status, body) = self
            .node_post(i, "/introspect", &owner.basic(), &[("token", token)])
            .await?;
        assert_eq!(status, 200, "introspection on node {}: {body}", i + 1);
        Some(body["active"] == true)
    }

    /// Whether `token` is active, asked through the load balancer (None: the request failed).
    async fn active_via_lb(&self, owner: &CliClient, token: &str) -> Option<bool> {
        let (status, body) = self
            .lb_post(
                "introspect",
                "/introspect",
                &owner.basic(),
                &[("token", token)],
            )
            .await?;
        assert_eq!(status, 200, "introspection through the LB: {body}");
        Some(body["active"] == true)
    }

    fn up_nodes(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.up[i].load(Ordering::SeqCst))
            .collect()
    }

    /// A page through the load balancer; None when it failed.
    async fn page(&self, op: &'static str, agent: &mut Agent, req: Request<'_>) -> Option<Page> {
        let start = Instant::now();
        let answer = match req {
            Request::Get(url) => agent.try_get(url).await,
            Request::Post(url, form) => agent.try_post(url, form).await,
        };
        let Ok(page) = answer else {
            self.record(op, start, None, String::new());
            return None;
        };
        let node = page
            .headers
            .get("x-latchkey-node")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        self.record(op, start, Some(page.status), node);
        (page.status < 500).then_some(page)
    }

    /// The code flow through the load balancer: authorize, log in, consent if asked, exchange
    /// the code. A new family; None when a request failed.
    async fn code_flow(&self, w: usize) -> Option<Family> {
        let cert = reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("CA PEM");
        let mut agent = Agent::with_builder(reqwest::Client::builder().tls_certs_only([cert]));
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.web.id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("scope", "read")
            .append_pair("state", "st")
            .append_pair("code_challenge", &s256_challenge(VERIFIER))
            .append_pair("code_challenge_method", "S256")
            .finish();
        let authorize = format!("{}/authorize?{query}", self.lb);
        let login = self
            .page("authorize", &mut agent, Request::Get(&authorize))
            .await?;
        assert_eq!(login.status, 200, "{}", login.body);
        let login_url = format!("{}/login", self.lb);
        let form = [
            ("csrf_token", login.field("csrf_token")),
            ("request", login.field("request")),
            ("username", format!("user{w}")),
            ("password", format!("password-of-user{w}")),
        ];
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let after = self
            .page("login", &mut agent, Request::Post(&login_url, &form))
            .await?;
        assert_eq!(after.status, 303, "{}", after.body);
        let mut location = after.location().to_owned();
        if !location.starts_with(REDIRECT) {
            let next = format!("{}{location}", self.lb);
            let consent = self
                .page("consent page", &mut agent, Request::Get(&next))
                .await?;
            assert_eq!(consent.status, 200, "{}", consent.body);
            let form = [
                ("csrf_token", consent.field("csrf_token")),
                ("request", consent.field("request")),
                ("decision", "allow".to_owned()),
            ];
            let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let consent_url = format!("{}/consent", self.lb);
            let done = self
                .page("consent", &mut agent, Request::Post(&consent_url, &form))
                .await?;
            assert_eq!(done.status, 303, "{}", done.body);
            location = done.location().to_owned();
        }
        assert!(location.starts_with(REDIRECT), "{location}");
        let params: BTreeMap<String, String> = url::Url::parse(&location)
            .expect("absolute redirect")
            .query_pairs()
            .into_owned()
            .collect();
        assert_eq!(
            params.get("iss"),
            Some(&self.lb),
            "one issuer behind the LB"
        );
        let code = params.get("code").expect("a code");
        let (status, body) = self
            .lb_post(
                "code exchange",
                "/token",
                &self.web.basic(),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                ],
            )
            .await?;
        assert_eq!(status, 200, "code exchange: {body}");
        self.ledger().logins += 1;
        Some(Family {
            refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
            access: vec![body["access_token"].as_str().expect("access").to_owned()],
        })
    }

    /// Rotates the family's refresh token through the load balancer. An acknowledged rotation
    /// must work: `invalid_grant` here means a rotation was lost. None: the request failed and
    /// the family's state is unknown.
    async fn rotate(&self, family: Family) -> Option<Family> {
        let (status, body) = self
            .lb_post(
                "refresh",
                "/token",
                &self.web.basic(),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &family.refresh),
                ],
            )
            .await?;
        assert_eq!(
            status, 200,
            "an acknowledged refresh token was refused: {body}"
        );
        self.ledger().rotations += 1;
        let mut access = family.access;
        access.push(body["access_token"].as_str().expect("access").to_owned());
        Some(Family {
            refresh: body["refresh_token"].as_str().expect("refresh").to_owned(),
            access,
        })
    }

    /// Rotates on one node, reuses the old refresh token on another: refused, and the family
    /// (refresh and access tokens) is dead on a third. Straight at the nodes.
    async fn reuse_across_nodes(&self, family: Family, turn: usize) {
        let up = self.up_nodes();
        let pick = |k: usize| up[(turn + k) % up.len()];
        let (a, b, c) = (pick(0), pick(1), pick(2));
        if a == b {
            return;
        }
        let auth = self.web.basic();
        let rotate = |rt: String| {
            [
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", rt),
            ]
        };
        let old = rotate(family.refresh.clone());
        let old: Vec<(&str, &str)> = old.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let Some((status, body)) = self.node_post(a, "/token", &auth, &old).await else {
            return;
        };
        assert_eq!(status, 200, "rotation on node {}: {body}", a + 1);
        let newest = body["refresh_token"].as_str().expect("refresh").to_owned();
        let Some((status, body)) = self.node_post(b, "/token", &auth, &old).await else {
            return;
        };
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "reuse on node {} of a token rotated on node {}",
            b + 1,
            a + 1
        );
        let new = rotate(newest);
        let new: Vec<(&str, &str)> = new.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let Some((status, body)) = self.node_post(c, "/token", &auth, &new).await else {
            return;
        };
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "the family's newest refresh token after reuse, on node {}",
            c + 1
        );
        for token in &family.access {
            if let Some(active) = self.active_on(c, &self.web, token).await {
                assert!(
                    !active,
                    "an access token of a reused family, on node {}",
                    c + 1
                );
            }
        }
        self.ledger().reuse_checks += 1;
    }

    /// Revokes a token through the load balancer and, once that is answered, asks every node
    /// that is up and the load balancer: none may call it active.
    async fn revoke_and_check(&self, token: &str) -> bool {
        let Some((status, body)) = self
            .lb_post(
                "revoke",
                "/revoke",
                &self.service.basic(),
                &[("token", token)],
            )
            .await
        else {
            return false;
        };
        assert_eq!(status, 200, "revocation: {body}");
        self.ledger().revoked.push(token.to_owned());
        for i in self.up_nodes() {
            if let Some(active) = self.active_on(i, &self.service, token).await {
                assert!(!active, "revoked, and still active on node {}", i + 1);
            }
        }
        if let Some(active) = self.active_via_lb(&self.service, token).await {
            assert!(!active, "revoked, and still active through the LB");
        }
        self.ledger().revocation_checks += 1;
        true
    }
}

enum Request<'a> {
    Get(&'a str),
    Post(&'a str, &'a [(&'a str, &'a str)]),
}

/// What a worker holds when the load stops: tokens that must still be good.
struct Holdings {
    service_tokens: Vec<String>,
    family: Option<Family>,
}

async fn worker(s: Arc<Shared>, w: usize) -> Holdings {
    let mut service_tokens: Vec<String> = Vec::new();
    let mut family: Option<Family> = None;
    let mut turn = w;
    while !s.stop.load(Ordering::SeqCst) {
        turn += 1;
        let Some(current) = family.take() else {
            family = s.code_flow(w).await;
            continue;
        };
        match turn % 12 {
            0 | 4 | 8 => {
                family = Some(current);
                let got = s
                    .lb_post(
                        "client_credentials",
                        "/token",
                        &s.service.basic(),
                        &[("grant_type", "client_credentials")],
                    )
                    .await;
                if let Some((status, body)) = got {
                    assert_eq!(status, 200, "client_credentials: {body}");
                    service_tokens.push(body["access_token"].as_str().expect("token").to_owned());
                }
            }
            1 | 5 | 9 => {
                family = Some(current);
                if let Some(token) = service_tokens.get(turn % service_tokens.len().max(1))
                    && let Some(active) = s.active_via_lb(&s.service, token).await
                {
                    assert!(active, "an acknowledged token is not active");
                }
            }
            2 | 6 | 10 => family = s.rotate(current).await,
            3 | 7 => {
                family = Some(current);
                if !service_tokens.is_empty() {
                    let token = service_tokens.remove(turn % service_tokens.len());
                    s.revoke_and_check(&token).await;
                }
            }
            _ => s.reuse_across_nodes(current, turn).await,
        }
    }
    Holdings {
        service_tokens,
        family,
    }
}

/// The variables of the README's "Scaling out" settings block.
fn readme_settings() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(repo_file("README.md")).expect("README");
    let section = readme
        .split("\n## Scaling out\n")
        .nth(1)
        .expect("a \"Scaling out\" section")
        .split("\n## ")
        .next()
        .unwrap_or("");
    let config =
        std::fs::read_to_string(repo_file("packaging/scaleout/haproxy.cfg")).expect("haproxy.cfg");
    assert!(
        section.contains(&config),
        "the README shows packaging/scaleout/haproxy.cfg as it is"
    );
    section
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split('=').next())
        .filter(|name| name.starts_with("LATCHKEY_"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_behind_haproxy_survive_a_sigkill_under_mixed_load() {
    if std::env::var("LATCHKEY_TEST_SCALEOUT").is_err() {
        eprintln!(
            "skipped: set LATCHKEY_TEST_SCALEOUT=1 (with LATCHKEY_TEST_POSTGRES and LATCHKEY_TEST_REDIS) to run"
        );
        return;
    }
    let (Ok(pg), Ok(redis)) = (
        std::env::var("LATCHKEY_TEST_POSTGRES"),
        std::env::var("LATCHKEY_TEST_REDIS"),
    ) else {
        panic!("LATCHKEY_TEST_SCALEOUT needs LATCHKEY_TEST_POSTGRES and LATCHKEY_TEST_REDIS");
    };
    let db = common::databases::fresh_database(&pg, "lk_scaleout").await;
    let prefix = db.rsplit('/').next().unwrap_or("lk").to_owned();
    let work = data_dir();
    let (cert, ca_pem) = lb_certificate(work.path());
    let lb_port = free_port();
    let lb = format!("https://127.0.0.1:{lb_port}");
    let env: Vec<(&str, &str)> = vec![
        ("LATCHKEY_ISSUER", &lb),
        ("LATCHKEY_TRUSTED_PROXIES", "[127.0.0.1]"),
        ("LATCHKEY_STORE__URL", &db),
        ("LATCHKEY_STORE__TOKENS_URL", &redis),
        ("LATCHKEY_STORE__KEY_PREFIX", &prefix),
        ("LATCHKEY_LIMITS__STORE", &redis),
        ("LATCHKEY_KEYS__KEK", KEK),
        ("LATCHKEY_LIMITS__PER_IP", "1000000"),
    ];
    let documented = readme_settings();
    let ours: BTreeSet<String> = env
        .iter()
        .map(|(k, _)| (*k).to_owned())
        .filter(|k| !TEST_ONLY_SETTINGS.contains(&k.as_str()))
        .collect();
    assert_eq!(ours, documented, "the test runs the README's settings");

    // As the README says: migrate once, create clients and users, start one node, then give
    // every other node a copy of its key files.
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| data_dir()).collect();
    let first = dirs[0].path();
    cli_env(first, &["migrate"], None, &env);
    let service = client(first, &env, &["--grant-type", "client_credentials"]);
    let web = client(
        first,
        &env,
        &[
            "--redirect-uri",
            REDIRECT,
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "read",
        ],
    );
    // One user per worker: concurrent logins of one user name would meet the login backoff,
    // which counts attempts in flight.
    for w in 0..WORKERS {
        cli_env(
            first,
            &["user", "add", &format!("user{w}"), "--password-stdin"],
            Some(&format!("password-of-user{w}\n")),
            &env,
        );
    }
    let mut servers: Vec<Option<Server>> = vec![Some(Server::start_with(first, &env))];
    for dir in &dirs[1..] {
        for file in ["session.key", "oauth1.key"] {
            std::fs::copy(first.join(file), dir.path().join(file)).expect("copy key file");
        }
        servers.push(Some(Server::start_with(dir.path(), &env)));
    }
    let nodes: Vec<String> = servers
        .iter()
        .map(|s| s.as_ref().expect("started").base.clone())
        .collect();
    let mut logs = vec![work.path().join("haproxy.log")];
    logs.extend(dirs.iter().map(|d| d.path().join("server.log")));
    let _logs = LogsOnFailure(logs);
    let _haproxy = Haproxy::start(work.path(), &format!("127.0.0.1:{lb_port}"), &cert, &nodes);
    let tls = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("PEM")])
        .build()
        .expect("client");
    wait_for_lb(&tls, &lb, work.path()).await;

    let shared = Arc::new(Shared {
        lb: lb.clone(),
        nodes: nodes.clone(),
        tls,
        plain: reqwest::Client::new(),
        ca_pem,
        service,
        web,
        up: (0..3).map(|_| AtomicBool::new(true)).collect(),
        epoch: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        ledger: Mutex::new(Ledger::default()),
    });
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(worker(Arc::clone(&shared), w)))
        .collect();

    // Mid-load: SIGKILL one node, leave it dead a moment (HAProxy still sends it requests until
    // its health check fails), start it again on the same port.
    let deadline = Instant::now() + Duration::from_secs(120);
    let calls = |s: &Shared| s.ledger().calls.len();
    while calls(&shared) < 150 {
        assert!(Instant::now() < deadline, "too slow before the kill");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shared.up[VICTIM].store(false, Ordering::SeqCst);
    shared.epoch.fetch_add(1, Ordering::SeqCst);
    let before_kill = Instant::now();
    servers[VICTIM].take().expect("running").kill();
    let after_kill = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let listen = nodes[VICTIM]
        .strip_prefix("http://")
        .expect("http")
        .to_owned();
    let dir = dirs[VICTIM].path().to_owned();
    let env_owned: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let restarted = tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env_owned
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        Server::start_on(&dir, &listen, &env)
    })
    .await
    .expect("restart");
    servers[VICTIM] = Some(restarted);
    let back = Instant::now();
    shared.epoch.fetch_add(1, Ordering::SeqCst);
    shared.up[VICTIM].store(true, Ordering::SeqCst);
    // Load goes on until the restarted node has served its share through the LB.
    let victim_name = format!("node{}", VICTIM + 1);
    loop {
        let served = shared
            .ledger()
            .calls
            .iter()
            .filter(|c| c.start > back && c.node == victim_name && !c.failed())
            .count();
        if served >= 20 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the restarted node got no traffic back; haproxy log:\n{}",
            std::fs::read_to_string(work.path().join("haproxy.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shared.stop.store(true, Ordering::SeqCst);
    let mut holdings = Vec::new();
    for w in workers {
        holdings.push(w.await.expect("a worker failed"));
    }

    let revoked = {
        let ledger = shared.ledger();
        check_failures_and_report(&ledger, before_kill, after_kill, &victim_name);
        ledger.revoked.clone()
    };

    // Nothing acknowledged was lost, on any node (the restarted one included).
    let s = &shared;
    for (n, token) in holdings.iter().flat_map(|h| &h.service_tokens).enumerate() {
        let node = n % 3;
        assert_eq!(
            s.active_on(node, &s.service, token).await,
            Some(true),
            "an acknowledged token, on node {}",
            node + 1
        );
    }
    for token in &revoked {
        for node in 0..3 {
            assert_eq!(
                s.active_on(node, &s.service, token).await,
                Some(false),
                "a revoked token, on node {}",
                node + 1
            );
        }
        assert_eq!(s.active_via_lb(&s.service, token).await, Some(false));
    }
    dpop_replay_is_refused_by_another_node(s).await;
    for (n, family) in holdings.into_iter().filter_map(|h| h.family).enumerate() {
        for token in &family.access {
            assert_eq!(
                s.active_on(n % 3, &s.web, token).await,
                Some(true),
                "an access token of a live family"
            );
        }
        // The newest refresh token of every family works on the killed node too.
        s.reuse_across_nodes(family, VICTIM + 3 * n).await;
    }
}

/// A DPoP proof (RFC 9449 §11.1) accepted by one node is a replay on every other: the `jti`
/// cache is the shared store's.
async fn dpop_replay_is_refused_by_another_node(s: &Shared) {
    let key = ProofKey::generate().expect("key");
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let proof = key
        .proof("POST", &format!("{}/token", s.lb), None, None, iat as i64)
        .expect("proof");
    let send = || {
        s.tls
            .post(format!("{}/token", s.lb))
            .header("authorization", s.service.basic())
            .header("dpop", &proof)
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let node = |resp: &reqwest::Response| {
        resp.headers()
            .get("x-latchkey-node")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let first = send().await.expect("answers");
    let accepted_by = node(&first);
    let body: Value = first.json().await.expect("json");
    assert_eq!(body["token_type"], "DPoP", "{body}");
    // Round robin: the next request goes to another node, unless a health check intervened.
    for _ in 0..3 {
        let again = send().await.expect("answers");
        let by = node(&again);
        let body: Value = again.json().await.expect("json");
        assert_eq!(
            body["error"], "invalid_dpop_proof",
            "replay on {by}: {body}"
        );
        if by != accepted_by {
            return;
        }
    }
    panic!("the load balancer kept sending the replay to {accepted_by}");
}

/// Only requests in flight on the killed node failed: each began before the kill and ended
/// after it, and HAProxy names the killed node (or, when the node died while answering, the
/// client's connection was cut and no node is named); a worker has one request in flight at a
/// time. Every node served, and every kind of check ran.
fn check_failures_and_report(
    ledger: &Ledger,
    before_kill: Instant,
    after_kill: Instant,
    victim_name: &str,
) {
    let failed: Vec<&Call> = ledger.calls.iter().filter(|c| c.failed()).collect();
    for call in &failed {
        let on_victim = call.node == victim_name || (call.status.is_none() && call.node.is_empty());
        assert!(
            call.start <= after_kill && call.end >= before_kill && on_victim,
            "{} failed (status {:?}, node {:?}) {:?} after the kill began, \
             though it was not in flight on the killed node",
            call.op,
            call.status,
            call.node,
            call.start.saturating_duration_since(before_kill),
        );
    }
    assert!(failed.len() <= WORKERS, "{} failed requests", failed.len());
    for name in ["node1", "node2", "node3"] {
        assert!(
            ledger.calls.iter().any(|c| c.node == name && !c.failed()),
            "the LB sent nothing to {name}"
        );
    }
    assert!(ledger.logins > 0 && ledger.rotations > 0 && ledger.reuse_checks > 0);
    assert!(ledger.revocation_checks > 0);
    eprintln!(
        "scale-out: {} requests through the LB ({} failed, in flight on the killed node), \
         {} logins, {} rotations, {} revocations checked on every node, {} cross-node reuse \
         checks, {} direct requests lost with the killed node",
        ledger.calls.len(),
        failed.len(),
        ledger.logins,
        ledger.rotations,
        ledger.revocation_checks,
        ledger.reuse_checks,
        ledger.direct_lost
    );
    for call in &failed {
        eprintln!(
            "  failed in flight: {} (status {:?}, node {:?})",
            call.op, call.status, call.node
        );
    }
}

fn client(dir: &Path, env: &[(&str, &str)], extra: &[&str]) -> CliClient {
    let mut args = vec!["client", "create", "--name", "Scale-out", "--json"];
    args.extend_from_slice(extra);
    let out = cli_env(dir, &args, None, env);
    let json: Value = serde_json::from_str(out.trim()).expect("JSON output");
    CliClient {
        id: json["client_id"].as_str().expect("client_id").to_owned(),
        secret: json["client_secret"].as_str().expect("secret").to_owned(),
    }
}

async fn wait_for_lb(http: &reqwest::Client, lb: &str, dir: &Path) {
    for _ in 0..100 {
        if let Ok(resp) = http.get(format!("{lb}/healthz")).send().await
            && resp.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "haproxy did not come up; its log:\n{}",
        std::fs::read_to_string(dir.join("haproxy.log")).unwrap_or_default()
    );
}
