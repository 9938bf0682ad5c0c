//! Signing keys on the real binary: the JWKS it publishes, the key-encryption key it creates,
//! keys that survive a restart, and a refusal to start with the wrong key-encryption key.

mod common;

use common::{Server, data_dir};
use std::process::{Command, Stdio};

async fn jwks(server: &Server) -> (reqwest::header::HeaderMap, serde_json::Value) {
    let r = reqwest::get(server.url("/jwks")).await.expect("GET /jwks");
    assert_eq!(r.status(), 200);
    let headers = r.headers().clone();
    (headers, r.json().await.expect("JSON"))
}

fn kids(doc: &serde_json::Value) -> Vec<String> {
    doc["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

#[tokio::test]
async fn the_jwks_is_published_and_the_keys_survive_a_restart() {
    let dir = data_dir();
    let env = [(
        "LATCHKEY_KEYS__ALGORITHMS",
        "[\"ES256\", \"RS256\", \"EdDSA\"]",
    )];
    let server = Server::start_with(dir.path(), &env);
    let (headers, doc) = jwks(&server).await;
    assert_eq!(
        headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("public, max-age=300")
    );
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );
    let keys = doc["keys"].as_array().expect("keys");
    let mut algs: Vec<&str> = keys.iter().filter_map(|k| k["alg"].as_str()).collect();
    algs.sort_unstable();
    assert_eq!(algs, ["ES256", "EdDSA", "RS256"]);
    for key in keys {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "{private} published in {key}");
        }
    }
    let metadata: serde_json::Value =
        reqwest::get(server.url("/.well-known/oauth-authorization-server"))
            .await
            .expect("metadata")
            .json()
            .await
            .expect("JSON");
    assert_eq!(metadata["jwks_uri"], server.url("/jwks"));

    // The key-encryption key was created, readable by the owner only.
    let kek = dir.path().join("kek");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&kek)
            .expect("kek file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let before = kids(&doc);
    assert!(server.terminate().success());

    let server = Server::start_with(dir.path(), &env);
    let (_, doc) = jwks(&server).await;
    assert_eq!(kids(&doc), before, "the same keys after a restart");
    drop(server);

    // Another key-encryption key cannot open them: the server refuses to start.
    std::fs::write(&kek, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").expect("replace kek");
    let out = Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("runs");
    assert!(
        !out.status.success(),
        "started with the wrong key-encryption key"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("key-encryption key"), "{stderr}");
}

#[tokio::test]
async fn a_kek_from_the_environment_is_used_and_never_written() {
    let dir = data_dir();
    let env = [(
        "LATCHKEY_KEYS__KEK",
        "q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng=",
    )];
    let server = Server::start_with(dir.path(), &env);
    let (_, doc) = jwks(&server).await;
    assert_eq!(kids(&doc).len(), 1);
    assert!(!dir.path().join("kek").exists());
}

/// `latchkey keys list|rotate|retire`: a rotation publishes a successor that does not sign
/// yet, a retirement hands signing to it at once, and every key that may still verify a token
/// stays in the JWKS the server then publishes. An unknown key id is refused.
#[tokio::test]
async fn keys_are_listed_rotated_and_retired_from_the_cli() {
    let dir = data_dir();
    let run = |args: &[&str]| -> Vec<serde_json::Value> {
        let out = common::cli(dir.path(), args, None);
        serde_json::from_str(out.trim()).expect("JSON list of keys")
    };
    let state_of = |keys: &[serde_json::Value], kid: &str| {
        keys.iter()
            .find(|k| k["kid"] == kid)
            .and_then(|k| k["state"].as_str())
            .map(str::to_owned)
    };
    let first = run(&["keys", "list", "--json"]);
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0]["alg"], "ES256");
    assert_eq!(first[0]["state"], "active");
    let old = first[0]["kid"].as_str().expect("kid").to_owned();

    let rotated = run(&["keys", "rotate", "--alg", "ES256", "--json"]);
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    let new = rotated
        .iter()
        .find(|k| k["kid"] != old.as_str())
        .and_then(|k| k["kid"].as_str())
        .expect("a successor")
        .to_owned();
    assert_eq!(state_of(&rotated, &old).as_deref(), Some("active"));
    assert_eq!(
        state_of(&rotated, &new).as_deref(),
        Some("next"),
        "published ahead, not signing yet"
    );

    let retired = run(&["keys", "retire", &old, "--json"]);
    assert_eq!(state_of(&retired, &old).as_deref(), Some("retiring"));
    assert_eq!(state_of(&retired, &new).as_deref(), Some("active"));

    let (ok, _, stderr) = common::cli_outcome(dir.path(), &["keys", "retire", "no-such-kid"]);
    assert!(!ok, "an unknown kid is refused");
    assert!(stderr.contains("no-such-kid"), "{stderr}");

    let server = Server::start(dir.path());
    let (_, doc) = jwks(&server).await;
    let published = kids(&doc);
    assert!(published.contains(&old), "the retiring key still verifies");
    assert!(published.contains(&new));
}
