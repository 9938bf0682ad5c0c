//! The MCP round trip (issue 18): an MCP server protected by Latchkey and the Python `mcp`
//! SDK's client signing in at the real `latchkey` binary, unchanged.
//!
//! The MCP server is the SDK's own (`interop/python/mcp_server.py`): it publishes RFC 9728
//! metadata naming Latchkey and checks tokens by introspection, requiring its own URL in the
//! audience. The client (`interop/python/mcp_client.py`) is the SDK's `OAuthClientProvider`:
//! from the first 401 it discovers the protected-resource metadata, Latchkey's metadata,
//! makes itself known, runs the authorization code flow with PKCE and `resource` (RFC 8707),
//! and calls tools. The test is the user's browser: it follows the SDK's authorization URL,
//! logs in and consents, and hands the redirect back. Then a token Latchkey issued for another
//! resource is refused by the MCP server.
//!
//! The client makes itself known in two ways, one test each: it registers dynamically
//! (RFC 7591); or its `client_id` is the `https` URL of its client ID metadata document,
//! served by `interop/python/client_document_host.py` with a certificate of a private CA that
//! Latchkey trusts through `outbound.ca_file`. Then Latchkey fetches the document, once while
//! its `Cache-Control: max-age` lasts, and nothing is registered (the access log shows no
//! request to `/register`, though registration is open).
//!
//! Required when `LATCHKEY_TEST_MCP_PYTHON` is set (`.ci/run` sets it after `pip install
//! mcp`); elsewhere skipped, loudly, when the SDK is missing.

mod common;
mod interop;

use common::agent::Agent;
use common::{Server, cli, create_client, data_dir};
use interop::{Arrival, Op, PASSWORD, Peer, USERNAME};
use serde_json::Value;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const VARIABLE: &str = "LATCHKEY_TEST_MCP_PYTHON";
/// The client's redirect URI (`mcp_client.py`); nothing listens there, the browser stops.
const MCP_REDIRECT_URI: &str = "http://localhost:3030/callback";
/// A second resource Latchkey issues tokens for: not the MCP server.
const OTHER_RESOURCE: &str = "https://reports.example/api";
/// Where the client's metadata document is published.
const DOCUMENT_PATH: &str = "/clients/mcp-cli.json";
/// The `token` requests of one round trip: the SDK's code exchange and the test's three.
const TOKEN_REQUESTS: usize = 4;

/// Whether python3 can import the SDK (client, server and its ASGI server); fails the test
/// when the variable asks for the peer and it is not there.
fn mcp_ready() -> bool {
    let ready = Command::new("python3")
        .args([
            "-c",
            "import mcp.client.auth, mcp.server.mcpserver, uvicorn",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            std::env::var_os(VARIABLE).is_none(),
            "{VARIABLE} is set but python3 cannot import the mcp SDK"
        );
        interop::skipped(
            "MCP round trip (Python mcp SDK)",
            "python3 cannot import mcp (pip install mcp)",
            VARIABLE,
        );
    }
    ready
}

/// The MCP server process, stopped when dropped.
struct McpServer {
    child: Child,
    stderr: std::path::PathBuf,
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl McpServer {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// A port nobody listens on right now, for the MCP server (its URL is its resource
/// identifier, which Latchkey's settings must name before either starts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The host of the client's metadata document: `client_document_host.py` on loopback with
/// a certificate of a test CA, stopped when dropped.
struct DocumentHost {
    child: Child,
    stderr: PathBuf,
    /// The document's URL: the client's `client_id`.
    url: String,
    /// The CA that issued the host's certificate, PEM.
    ca_pem: String,
}

impl Drop for DocumentHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl DocumentHost {
    /// Starts the host with its files in `dir`; returns once it listens.
    fn start(dir: &Path) -> Self {
        let certificate = common::https::LoopbackCertificate::generate();
        let (cert, key) = certificate.write(dir);
        let stderr = dir.join("document_host.stderr");
        let mut child = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../interop/python/client_document_host.py"
            ))
            .arg("--cert")
            .arg(&cert)
            .arg("--key")
            .arg(&key)
            .args(["--port", "0", "--path", DOCUMENT_PATH])
            .args(["--redirect-uri", MCP_REDIRECT_URI, "--max-age", "300"])
            .env("PYTHONUNBUFFERED", "1")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("python3 starts");
        let mut first = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        // The first line says it listens; end of output without it means it failed.
        let _ = std::io::BufReader::new(stdout).read_line(&mut first);
        let announced: Option<Value> = serde_json::from_str(&first).ok();
        let Some(url) = announced
            .as_ref()
            .and_then(|v| v["client_id"].as_str())
            .map(str::to_owned)
        else {
            let _ = child.kill();
            panic!(
                "the document host did not start: {first}\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
        };
        Self {
            child,
            stderr,
            url,
            ca_pem: certificate.ca_pem,
        }
    }

    /// How many times the document was fetched (the host logs each request on stderr
    /// before it answers).
    fn fetches(&self) -> usize {
        let needle = format!("\"GET {DOCUMENT_PATH} ");
        std::fs::read_to_string(&self.stderr)
            .unwrap_or_default()
            .matches(&needle)
            .count()
    }
}

/// Latchkey with open registration, the MCP server and another resource registered, a user,
/// and the MCP server's own client (introspection, and client credentials for the test's
/// token for the other resource). With `document_ca`, client ID metadata documents are on,
/// fetched from loopback (the development switch) with that CA trusted (`outbound.ca_file`),
/// and used only as long as their `Cache-Control` says (no default lifetime).
fn start_latchkey(resource: &str, document_ca: Option<&str>) -> Op {
    let dir = data_dir();
    let mut settings = format!(
        "[scopes]\navailable = [\"mcp\"]\n\n\
         [registration]\nenabled = true\nopen = true\n\n\
         [[resources]]\nid = \"{resource}\"\nname = \"Interop MCP server\"\nscopes = [\"mcp\"]\n\n\
         [[resources]]\nid = \"{OTHER_RESOURCE}\"\n"
    );
    if let Some(ca_pem) = document_ca {
        let ca_file = dir.path().join("private-ca.pem");
        std::fs::write(&ca_file, ca_pem).expect("CA written");
        let ca_file = toml::Value::String(ca_file.to_str().expect("UTF-8 path").to_owned());
        settings.push_str(&format!(
            "\n[client_id_metadata]\nenabled = true\nallow_private_addresses = true\n\
             default_cache_age = 0\n\n[outbound]\nca_file = {ca_file}\n"
        ));
    }
    std::fs::write(dir.path().join("latchkey.toml"), settings).expect("settings written");
    cli(
        dir.path(),
        &["user", "add", USERNAME, "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    let client = create_client(
        dir.path(),
        &[
            "--grant-type",
            "client_credentials",
            "--scope",
            "mcp",
            "--introspect",
        ],
    );
    let server = Server::start(dir.path());
    Op {
        dir,
        server,
        client,
    }
}

/// Starts `mcp_server.py` and waits until it publishes its metadata.
async fn start_mcp_server(op: &Op, port: u16) -> McpServer {
    let stderr = op.dir.path().join("mcp_server.stderr");
    let child = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../interop/python/mcp_server.py"
        ))
        .args(["--issuer", op.issuer(), "--port", &port.to_string()])
        .args(["--client-id", &op.client.id])
        .env("LATCHKEY_INTROSPECT_SECRET", &op.client.secret)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).expect("stderr file"))
        .spawn()
        .expect("python3 starts");
    let mcp = McpServer { child, stderr };
    let metadata = format!("http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp");
    for _ in 0..300 {
        if let Ok(r) = reqwest::get(&metadata).await
            && r.status() == 200
        {
            return mcp;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the MCP server did not start; stderr:\n{}", mcp.log());
}

/// An MCP `initialize` request with `token`, as any MCP client sends it first.
async fn initialize(url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(url)
        .header("accept", "application/json, text/event-stream")
        .json(&serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "latchkey-test", "version": "0"}}
        }));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.expect("the MCP server answers")
}

fn www_authenticate(r: &reqwest::Response) -> String {
    r.headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// What Latchkey's introspection endpoint says about `token`, asked as the MCP server's client.
async fn introspect(op: &Op, token: &str) -> Value {
    reqwest::Client::new()
        .post(op.server.url("/introspect"))
        .header("authorization", op.client.basic())
        .form(&[("token", token)])
        .send()
        .await
        .expect("server answers")
        .json()
        .await
        .expect("JSON")
}

/// The (method, route) of the server's access lines, once `POST /token` lines number at
/// least `tokens` (the log writer batches lines: they reach the file shortly after the
/// response, in order). Fails after 20 s without them.
async fn access_lines(op: &Op, tokens: usize) -> Vec<(String, String)> {
    let mut lines = Vec::new();
    for _ in 0..200 {
        lines = op
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["target"] == "latchkey::access")
            .map(|l| {
                let field = |name: &str| l["fields"][name].as_str().unwrap_or_default().to_owned();
                (field("method"), field("route"))
            })
            .collect();
        let posted = lines
            .iter()
            .filter(|(m, r)| m == "POST" && r == "/token")
            .count();
        if posted >= tokens {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "{tokens} POST /token access lines expected: {lines:?}\n{}",
        op.log()
    );
}

/// The round trip as far as the SDK goes: the 401 and the metadata it names, then the SDK's
/// flow (registering, or naming itself by `document` when given), with the test as the
/// browser, and the checks both ways share. The SDK's result, and the authorization URL it
/// built.
async fn sdk_round_trip(
    op: &Op,
    mcp: &McpServer,
    port: u16,
    resource: &str,
    document: Option<&str>,
) -> (Value, String) {
    // Without a token: 401 naming the metadata (RFC 9728 §5.1), which names Latchkey.
    let bare = initialize(resource, None).await;
    assert_eq!(bare.status(), 401, "{}", mcp.log());
    assert!(
        www_authenticate(&bare).contains("resource_metadata="),
        "{}",
        www_authenticate(&bare)
    );
    let prm: Value = reqwest::get(format!(
        "http://127.0.0.1:{port}/.well-known/oauth-protected-resource/mcp"
    ))
    .await
    .expect("metadata")
    .json()
    .await
    .expect("JSON");
    assert_eq!(prm["resource"], resource);
    assert_eq!(prm["authorization_servers"][0], op.issuer());

    // The SDK's client does the rest; the test is the user's browser.
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../interop/python/mcp_client.py"
    ))
    .arg(resource)
    .env("PYTHONUNBUFFERED", "1");
    if let Some(url) = document {
        cmd.args(["--client-metadata-url", url]);
    }
    let mut peer = Peer::spawn("mcp SDK client", cmd, op.dir.path());
    let authorize = peer.next()["authorize"]
        .as_str()
        .expect("the authorization URL")
        .to_owned();
    let asked: Vec<(String, String)> = url::Url::parse(&authorize)
        .expect("absolute")
        .query_pairs()
        .into_owned()
        .collect();
    let param = |name: &str| {
        asked
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(param("resource"), resource, "{authorize}");
    assert_eq!(param("code_challenge_method"), "S256", "{authorize}");
    if let Some(url) = document {
        assert_eq!(param("client_id"), url, "{authorize}");
    }
    // The scope the metadata lists; the SDK adds `offline_access` for a refresh token.
    assert!(param("scope").split(' ').any(|s| s == "mcp"), "{authorize}");
    let mut browser = Agent::new();
    let arrival = interop::sign_in(&mut browser, op, &authorize).await;
    let Arrival::Get(ref landed) = arrival else {
        panic!("the browser should be redirected, not POST: {arrival:?}");
    };
    assert!(landed.starts_with(MCP_REDIRECT_URI), "{landed}");
    peer.send(&arrival.to_json());
    let result = peer.next()["result"].clone();
    assert!(peer.finish(), "the MCP client exited with an error");

    assert_eq!(result["tools"], serde_json::json!(["add", "whoami"]));
    assert_eq!(result["add"], "5", "{result}");
    assert_eq!(result["add_is_error"], false);
    assert_eq!(result["authorization_server"], op.issuer());
    assert_eq!(result["resource"], resource);
    // A client the operator did not create, now in the store.
    let client_id = result["client_id"].as_str().expect("client_id");
    assert_ne!(client_id, op.client.id);
    assert!(cli(op.dir.path(), &["client", "list"], None).contains(client_id));
    // Its token is the user's, for the MCP server only, with the scope it asked for.
    let token = result["access_token"].as_str().expect("access token");
    let info = introspect(op, token).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["client_id"], client_id, "{info}");
    assert!(
        info["scope"]
            .as_str()
            .is_some_and(|s| s.split(' ').any(|s| s == "mcp")),
        "{info}"
    );
    let aud = &info["aud"];
    assert!(
        aud == &Value::String(resource.to_owned()) || aud == &serde_json::json!([resource]),
        "{info}"
    );
    assert_eq!(result["whoami"], info["sub"], "{result} {info}");
    assert!(!result["whoami"].as_str().unwrap_or_default().is_empty());

    // The same token, presented outside the SDK, still opens the server.
    assert_eq!(initialize(resource, Some(token)).await.status(), 200);
    (result, authorize)
}

/// A token Latchkey issued for another resource, or for none, is refused by the MCP server,
/// and Latchkey refuses a resource it does not know: three `token` requests.
async fn other_resources_are_refused(op: &Op, mcp: &McpServer, resource: &str) {
    let http = reqwest::Client::new();
    let body = format!(
        "grant_type=client_credentials&scope=mcp&resource={}",
        urlencode(OTHER_RESOURCE)
    );
    let (status, _, other) =
        common::post_token(&http, &op.server, Some(&op.client.basic()), &body).await;
    assert_eq!(status, 200, "{other}");
    let other_token = other["access_token"].as_str().expect("access token");
    assert_eq!(introspect(op, other_token).await["active"], true);
    let refused = initialize(resource, Some(other_token)).await;
    assert_eq!(refused.status(), 401, "{}", mcp.log());
    assert!(
        www_authenticate(&refused).contains("error=\"invalid_token\""),
        "{}",
        www_authenticate(&refused)
    );
    // So is a token that names no resource at all.
    let (status, _, plain) = common::post_token(
        &http,
        &op.server,
        Some(&op.client.basic()),
        "grant_type=client_credentials&scope=mcp",
    )
    .await;
    assert_eq!(status, 200, "{plain}");
    let plain_token = plain["access_token"].as_str().expect("access token");
    assert_eq!(initialize(resource, Some(plain_token)).await.status(), 401);
    // And Latchkey itself refuses a resource it does not know (RFC 8707 §2).
    let (status, _, unknown) = common::post_token(
        &http,
        &op.server,
        Some(&op.client.basic()),
        &format!(
            "grant_type=client_credentials&scope=mcp&resource={}",
            urlencode("https://unknown.example/")
        ),
    )
    .await;
    assert_eq!(status, 400, "{unknown}");
    assert_eq!(unknown["error"], "invalid_target");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_sdk_signs_in_at_latchkey_and_calls_a_protected_tool() {
    if !mcp_ready() {
        return;
    }
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let op = start_latchkey(&resource, None);
    let mcp = start_mcp_server(&op, port).await;
    let (result, _) = sdk_round_trip(&op, &mcp, port, &resource, None).await;
    // The SDK registered itself.
    assert!(
        !result["client_id"]
            .as_str()
            .unwrap_or_default()
            .starts_with("https://"),
        "{result}"
    );
    other_resources_are_refused(&op, &mcp, &resource).await;
    let lines = access_lines(&op, TOKEN_REQUESTS).await;
    assert!(
        lines.iter().any(|(m, r)| m == "POST" && r == "/register"),
        "{lines:?}"
    );
    drop(mcp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_sdk_signs_in_by_client_id_metadata_document_without_registering() {
    if !mcp_ready() {
        return;
    }
    let files = data_dir();
    let host = DocumentHost::start(files.path());
    assert!(
        host.url.starts_with("https://127.0.0.1:") && host.url.ends_with(DOCUMENT_PATH),
        "{}",
        host.url
    );
    let port = free_port();
    let resource = format!("http://127.0.0.1:{port}/mcp");
    let op = start_latchkey(&resource, Some(&host.ca_pem));
    let meta: Value = reqwest::get(op.server.url("/.well-known/oauth-authorization-server"))
        .await
        .expect("metadata")
        .json()
        .await
        .expect("JSON");
    // What the SDK checks before it uses its URL instead of registering.
    assert_eq!(meta["client_id_metadata_document_supported"], true);
    assert!(meta["registration_endpoint"].is_string(), "{meta}");
    let mcp = start_mcp_server(&op, port).await;

    let (result, authorize) = sdk_round_trip(&op, &mcp, port, &resource, Some(&host.url)).await;
    assert_eq!(result["client_id"], host.url.as_str(), "{result}");
    assert_eq!(result["token_endpoint_auth_method"], "none", "{result}");
    // /authorize and /token both named the client: one fetch, kept for the document's
    // max-age (the settings give documents without one no lifetime at all).
    assert_eq!(host.fetches(), 1, "{}", op.log());

    // A second authorization while max-age lasts: the document is not fetched again.
    let mut browser = Agent::new();
    let again = interop::sign_in(&mut browser, &op, &authorize).await;
    assert!(again.params().iter().any(|(k, _)| k == "code"), "{again:?}");
    assert_eq!(host.fetches(), 1, "{}", op.log());

    other_resources_are_refused(&op, &mcp, &resource).await;
    // Nothing was registered: no request reached /register.
    let lines = access_lines(&op, TOKEN_REQUESTS).await;
    assert!(
        lines.iter().any(|(m, r)| m == "GET" && r == "/authorize"),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|(_, r)| r.starts_with("/register")),
        "{lines:?}"
    );
    drop(mcp);
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
