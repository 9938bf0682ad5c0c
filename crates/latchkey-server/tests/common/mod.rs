//! Starts the real `latchkey` binary on port 0 and runs its CLI, for end-to-end tests.
#![allow(dead_code)]

pub mod agent;
pub mod databases;
pub mod https;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `latchkey serve`, killed when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// What the server printed on stdout before it was ready.
    pub banner: Vec<String>,
    _stdout: std::thread::JoinHandle<BufReader<ChildStdout>>,
}

fn command(data_dir: &Path) -> Command {
    command_limited(data_dir, None)
}

/// The binary's command, run under `ulimit -n NOFILE` when `nofile` is given.
fn command_limited(data_dir: &Path, nofile: Option<u64>) -> Command {
    let bin = env!("CARGO_BIN_EXE_latchkey");
    let mut cmd = match nofile {
        Some(n) => {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(bin);
            sh
        }
        None => Command::new(bin),
    };
    cmd.arg("--data-dir").arg(data_dir);
    // Settings come from the test, not from whoever runs it.
    for (key, _) in std::env::vars() {
        if key.starts_with("LATCHKEY_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "info").current_dir(data_dir);
    cmd
}

/// The setting that turns on the password grant, off server-wide by default; tests of that
/// grant start their server with it.
pub const PASSWORD_GRANT: (&str, &str) = ("LATCHKEY_GRANTS__PASSWORD", "true");

impl Server {
    /// The `kid`s of the server's published keys (`/jwks`), sorted: what must survive a
    /// move of its store.
    pub async fn jwks_kids(&self) -> Vec<String> {
        let jwks: serde_json::Value = reqwest::get(self.url("/jwks"))
            .await
            .expect("server answers")
            .json()
            .await
            .expect("JSON");
        let mut kids: Vec<String> = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect();
        kids.sort();
        kids
    }

    /// Starts a server on the embedded store in `data_dir`.
    pub fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &[])
    }

    /// Starts a server with extra environment variables.
    pub fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_limited(data_dir, env, None)
    }

    /// Starts a server with extra environment variables, allowed `nofile` open descriptors.
    pub fn start_limited(data_dir: &Path, env: &[(&str, &str)], nofile: Option<u64>) -> Self {
        Self::start_full(data_dir, "127.0.0.1:0", env, nofile)
    }

    /// Starts a server listening on `listen` (a node restarted on the port a load balancer
    /// knows), with extra environment variables.
    pub fn start_on(data_dir: &Path, listen: &str, env: &[(&str, &str)]) -> Self {
        Self::start_full(data_dir, listen, env, None)
    }

    fn start_full(
        data_dir: &Path,
        listen: &str,
        env: &[(&str, &str)],
        nofile: Option<u64>,
    ) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("server.log"))
            .expect("log file");
        let mut cmd = command_limited(data_dir, nofile);
        cmd.args(["serve", "--listen", listen])
            .stdout(Stdio::piped())
            .stderr(log);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("latchkey starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        // The reader thread keeps the pipe open for the server's whole life.
        let reader = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                let done = line.starts_with("latchkey listening on ");
                let _ = tx.send(line.trim_end().to_owned());
                line.clear();
                if done {
                    break;
                }
            }
            reader
        });
        let mut banner = Vec::new();
        loop {
            let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(data_dir.join("server.log")).unwrap_or_default();
                panic!("server did not start; log:\n{log}")
            };
            if let Some(base) = line.strip_prefix("latchkey listening on ") {
                return Self {
                    child,
                    base: base.to_owned(),
                    banner,
                    _stdout: reader,
                };
            }
            banner.push(line);
        }
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reaped");
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        self.child.wait().expect("exits")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `latchkey ARGS` on `data_dir`, feeding `stdin`; panics unless it succeeds.
pub fn cli(data_dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    cli_env(data_dir, args, stdin, &[])
}

/// Runs `latchkey ARGS` on `data_dir` with extra environment variables, feeding `stdin`;
/// panics unless it succeeds.
pub fn cli_env(
    data_dir: &Path,
    args: &[&str],
    stdin: Option<&str>,
    env: &[(&str, &str)],
) -> String {
    let mut cmd = command(data_dir);
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("latchkey runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().expect("latchkey finishes");
    assert!(
        out.status.success(),
        "latchkey {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `latchkey ARGS` on `data_dir` without stdin; returns whether it succeeded, its stdout
/// and its stderr (where the CLI writes its audit lines), for commands expected to fail too.
pub fn cli_outcome(data_dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = command(data_dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("latchkey runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A client created with `latchkey client create --json`.
pub struct CliClient {
    pub id: String,
    pub secret: String,
}

impl CliClient {
    pub fn basic(&self) -> String {
        use base64::Engine as _;
        let raw = format!("{}:{}", self.id, self.secret);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

/// Creates a client through the CLI.
pub fn create_client(data_dir: &Path, extra: &[&str]) -> CliClient {
    let mut args = vec!["client", "create", "--name", "E2E Service", "--json"];
    args.extend_from_slice(extra);
    let out = cli(data_dir, &args, None);
    let json: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON output");
    CliClient {
        id: json["client_id"].as_str().expect("client_id").to_owned(),
        secret: json["client_secret"].as_str().unwrap_or("").to_owned(),
    }
}

/// Creates an OAuth 1.0a consumer through the CLI (`extra` holds `--oauth1`); its `secret`
/// is the consumer secret, not the OAuth 2.0 client secret.
pub fn create_consumer(data_dir: &Path, extra: &[&str]) -> CliClient {
    let mut args = vec!["client", "create", "--name", "E2E Consumer", "--json"];
    args.extend_from_slice(extra);
    let out = cli(data_dir, &args, None);
    let json: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON output");
    CliClient {
        id: json["client_id"].as_str().expect("client_id").to_owned(),
        secret: json["oauth1_consumer_secret"]
            .as_str()
            .expect("oauth1_consumer_secret")
            .to_owned(),
    }
}

/// Adds a user through the CLI, password on stdin.
pub fn add_user(data_dir: &Path, username: &str, password: &str) {
    cli(
        data_dir,
        &["user", "add", username, "--password-stdin"],
        Some(&format!("{password}\n")),
    );
}

/// A fresh data directory.
pub fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

/// POSTs a form to the token endpoint.
pub async fn post_token(
    http: &reqwest::Client,
    server: &Server,
    auth: Option<&str>,
    body: &str,
) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
    let mut req = http
        .post(server.url("/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.to_owned());
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    let resp = req.send().await.expect("server answers");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let json = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, headers, json)
}
