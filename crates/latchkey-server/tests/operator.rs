//! What an operator meets on the real binary: private files, stray environment variables,
//! start-up errors that keep passwords out, and tokens kept off the command line.

mod common;

use common::{Server, create_client, data_dir, post_token};
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// Runs `latchkey ARGS` in `cwd` with only the given `LATCHKEY_*` variables; never panics
/// on failure, so the test can read it.
fn run(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    for (key, _) in std::env::vars() {
        if key.starts_with("LATCHKEY_") {
            cmd.env_remove(key);
        }
    }
    cmd.args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("latchkey runs")
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

#[cfg(unix)]
#[tokio::test]
async fn issue_14_the_data_directory_and_the_database_files_are_private() {
    let tmp = data_dir();
    let data = tmp.path().join("data");
    let data_arg = data.display().to_string();
    // A data directory that does not exist yet is made only when asked (`--create`).
    let out = run(
        tmp.path(),
        &["--data-dir", &data_arg, "--create", "migrate"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&data), 0o700, "data directory");
    assert_eq!(mode(&data.join("latchkey.db")), 0o600, "database");
    assert_eq!(mode(&data.join("tokens")), 0o700, "token log directory");

    // A running server writes the journal and its keys: private too.
    let client = create_client(&data, &[]);
    let server = Server::start(&data);
    let (status, _, body) = post_token(
        &reqwest::Client::new(),
        &server,
        Some(&client.basic()),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for file in [
        "latchkey.db",
        "latchkey.db-wal",
        "latchkey.db-shm",
        "session.key",
        "oauth1.key",
        "tokens/LOCK",
        "tokens/0000000001.log",
    ] {
        let path = data.join(file);
        if path.exists() {
            assert_eq!(mode(&path), 0o600, "{file}");
        } else {
            assert!(file == "oauth1.key", "{file} was not written");
        }
    }
}

#[tokio::test]
async fn issue_14_a_stray_latchkey_variable_does_not_stop_the_server() {
    let dir = data_dir();
    // What Kubernetes injects into every pod for a Service named `latchkey`.
    let server = Server::start_with(
        dir.path(),
        &[
            ("LATCHKEY_PORT", "tcp://10.0.0.1:8080"),
            ("LATCHKEY_PORT_8080_TCP_ADDR", "10.0.0.1"),
        ],
    );
    let status = reqwest::get(server.url("/healthz"))
        .await
        .expect("answers")
        .status();
    assert_eq!(status.as_u16(), 200);
    // The log thread writes within milliseconds; allow it a moment.
    let mut log = String::new();
    for _ in 0..50 {
        log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
        if log.contains("LATCHKEY_PORT") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let warning = log
        .lines()
        .find(|l| l.contains("LATCHKEY_PORT"))
        .unwrap_or_else(|| panic!("no warning names the variable:\n{log}"));
    assert!(warning.contains("LATCHKEY_PORT_8080_TCP_ADDR"), "{warning}");
}

#[tokio::test]
async fn issue_14_start_up_errors_do_not_show_passwords_from_store_urls() {
    let dir = data_dir();
    for env in [
        vec![(
            "LATCHKEY_STORE__URL",
            "ftp://latchkey:hunter2@db.internal/auth",
        )],
        vec![(
            "LATCHKEY_STORE__URL",
            "postgres://latchkey:hunter2@127.0.0.1:1/auth",
        )],
        vec![
            ("LATCHKEY_STORE__URL", "memory:"),
            (
                "LATCHKEY_LIMITS__STORE",
                "memcache://limits:hunter2@127.0.0.1:1",
            ),
        ],
        vec![
            ("LATCHKEY_STORE__URL", "memory:"),
            (
                "LATCHKEY_STORE__TOKENS_URL",
                "redis://:hunter2@127.0.0.1:1/0",
            ),
        ],
    ] {
        let out = run(dir.path(), &["serve", "--listen", "127.0.0.1:0"], &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} started");
        assert!(!stderr.contains("hunter2"), "{env:?}:\n{stderr}");
    }
}

#[tokio::test]
async fn issue_14_a_token_on_the_command_line_is_refused() {
    let dir = data_dir();
    let out = run(dir.path(), &["token", "revoke", "some-secret-token"], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("stdin"), "{stderr}");
    let out = run(
        dir.path(),
        &["token", "introspect", "some-secret-token"],
        &[],
    );
    assert!(!out.status.success());
}
