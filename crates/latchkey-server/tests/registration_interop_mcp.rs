//! Dynamic client registration interop: the Python `mcp` SDK (PyPI) registers clients at the
//! real `latchkey` binary with its own request builder and judges the answers with its own
//! parser and usability check (`interop/python/mcp_register.py`): the default method
//! (`client_secret_basic`), `none`, `client_secret_post` and `client_secret_basic`.
//!
//! Required when `LATCHKEY_TEST_MCP_PYTHON` is set (`.ci/run` sets it after `pip install
//! mcp`); elsewhere skipped, loudly, when the SDK is missing.

mod common;

use common::{Server, data_dir};
use std::process::Command;

const VARIABLE: &str = "LATCHKEY_TEST_MCP_PYTHON";

fn mcp_ready() -> bool {
    let ready = Command::new("python3")
        .args(["-c", "import mcp.client.auth.utils"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            std::env::var_os(VARIABLE).is_none(),
            "{VARIABLE} is set but python3 cannot import the mcp SDK"
        );
        let banner = "!".repeat(78);
        eprintln!(
            "\n{banner}\n!! SKIPPED: the mcp SDK (Python) registration interop test did not run: \
             python3 cannot import mcp (pip install mcp).\n!! Set {VARIABLE}=1 (as .ci/run does) \
             to make it required.\n{banner}\n"
        );
    }
    ready
}

#[tokio::test]
async fn the_mcp_sdk_registers_and_accepts_what_it_gets() {
    if !mcp_ready() {
        return;
    }
    let dir = data_dir();
    let server = Server::start_with(
        dir.path(),
        &[
            ("LATCHKEY_REGISTRATION__ENABLED", "true"),
            ("LATCHKEY_REGISTRATION__OPEN", "true"),
        ],
    );
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../interop/python/mcp_register.py"
        ))
        .arg(server.url(""))
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "the SDK refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let got: Vec<(String, bool)> = lines
        .iter()
        .map(|l| {
            (
                l["method"].as_str().expect("method").to_owned(),
                l["has_secret"].as_bool().expect("flag"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("client_secret_basic".to_owned(), true),
            ("none".to_owned(), false),
            ("client_secret_post".to_owned(), true),
            ("client_secret_basic".to_owned(), true),
        ]
    );
    // Each registration is a client the configuration endpoint does not open without its
    // token, and that the server stored.
    for line in &lines {
        let id = line["client_id"].as_str().expect("id");
        let read = reqwest::Client::new()
            .get(server.url(&format!("/register/{id}")))
            .bearer_auth("not-its-token")
            .send()
            .await
            .expect("GET");
        assert_eq!(read.status(), 401);
    }
    let listed = common::cli(dir.path(), &["client", "list"], None);
    for line in &lines {
        assert!(listed.contains(line["client_id"].as_str().expect("id")));
    }
}
