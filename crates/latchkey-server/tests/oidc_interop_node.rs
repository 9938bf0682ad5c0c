//! OpenID Connect interop: `openid-client` (npm, panva, v6; pinned in `interop/node`) signs a
//! user in at the real `latchkey` binary, unchanged: discovery, the authorization code flow
//! with PKCE and a nonce, the ID token validated by the library (signature against our JWKS,
//! iss, aud, exp, nonce, at_hash), userinfo (its `sub` checked against the ID token's),
//! refresh (a new ID token), and RP-initiated logout with the library's end-session URL; then
//! the same with `private_key_jwt` client authentication, the `form_post` response mode, and a
//! pushed authorization request (RFC 9126, `buildAuthorizationUrlWithPAR`), and a signed
//! request object (RFC 9101, `buildAuthorizationUrlWithJAR`), sent alone and pushed.
//! the same with `private_key_jwt` client authentication and the `form_post` response mode,
//! and with DPoP (RFC 9449): the library's own proofs on every token request and at userinfo.
//! The login and consent pages are the scripted user agent's; every URL and every check is the
//! library's (`interop/node/rp.mjs`).
//!
//! Required when `LATCHKEY_TEST_OIDC_NODE` is set (`.ci/run` sets it after `npm ci` in
//! `interop/node`); elsewhere skipped, loudly, when Node or the package is missing.

mod common;
mod interop;

use interop::{Arrival, Op, Peer};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

const VARIABLE: &str = "LATCHKEY_TEST_OIDC_NODE";

fn project() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../interop/node"))
}

/// Whether `node` runs and `npm ci` has installed openid-client; fails the test when the
/// variable asks for the peer and it is not there.
fn node_ready() -> bool {
    let installed = project()
        .join("node_modules/openid-client/package.json")
        .is_file();
    let runs = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if installed && runs {
        return true;
    }
    let why = if runs {
        "openid-client is not installed (run `npm ci` in interop/node)"
    } else {
        "node is not on PATH"
    };
    assert!(
        std::env::var_os(VARIABLE).is_none(),
        "{VARIABLE} is set but {why}"
    );
    interop::skipped("openid-client (Node)", why, VARIABLE);
    false
}

fn node(arg: &str) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(project().join("rp.mjs"))
        .arg(arg)
        .current_dir(project());
    cmd
}

/// Runs the whole flow with the peer configured by `config`; returns how the browser arrived
/// at the redirect URI.
async fn run(op: &Op, config: &Value) -> Arrival {
    let peer = Peer::spawn("openid-client", node(&config.to_string()), op.dir.path());
    interop::run_peer(op, peer).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_signs_in_refreshes_and_logs_out() {
    if !node_ready() {
        return;
    }
    let op = Op::start(&[], &[]);
    let arrival = run(&op, &op.peer_config()).await;
    assert!(matches!(arrival, Arrival::Get(_)), "{arrival:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_authenticates_with_private_key_jwt() {
    if !node_ready() {
        return;
    }
    // The peer makes its key pair; the operator registers the public half (RFC 7523 §2.2,
    // OpenID Connect Core §9).
    let jwks_dir = common::data_dir();
    let mut keygen = Peer::spawn("openid-client keygen", node("keygen"), jwks_dir.path());
    let keys = keygen.next();
    assert!(keygen.finish());
    let jwks_file = jwks_dir.path().join("client-jwks.json");
    std::fs::write(&jwks_file, keys["jwks"].to_string()).expect("JWKS file");
    let op = Op::start(
        &[
            "--token-endpoint-auth-method",
            "private_key_jwt",
            "--jwks-file",
            jwks_file.to_str().expect("UTF-8 path"),
        ],
        &[],
    );
    assert!(
        op.client.secret.is_empty(),
        "a private_key_jwt client has no secret"
    );
    let mut config = op.peer_config();
    config["private_jwk"] = keys["private_jwk"].clone();
    run(&op, &config).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_pushes_its_authorization_request() {
    if !node_ready() {
        return;
    }
    // A server that takes only pushed requests: the flow succeeds only through PAR.
    let op = Op::start(&[], &[("LATCHKEY_PAR__REQUIRED", "true")]);
    let mut config = op.peer_config();
    config["par"] = true.into();
    let arrival = run(&op, &config).await;
    let names: Vec<String> = arrival.params().into_iter().map(|(k, _)| k).collect();
    assert!(names.contains(&"code".to_owned()), "{names:?}");
}

/// The peer's key pair, registered as a `private_key_jwt` client that must also sign its
/// authorization requests (RFC 9101 §10.5), on a server started with `env`; the peer's
/// configuration with the private key.
fn signing_client(env: &[(&str, &str)]) -> (tempfile::TempDir, Op, Value) {
    let jwks_dir = common::data_dir();
    let mut keygen = Peer::spawn("openid-client keygen", node("keygen"), jwks_dir.path());
    let keys = keygen.next();
    assert!(keygen.finish());
    let jwks_file = jwks_dir.path().join("client-jwks.json");
    std::fs::write(&jwks_file, keys["jwks"].to_string()).expect("JWKS file");
    let op = Op::start(
        &[
            "--token-endpoint-auth-method",
            "private_key_jwt",
            "--jwks-file",
            jwks_file.to_str().expect("UTF-8 path"),
            "--require-signed-request-object",
            "--request-object-signing-alg",
            "ES256",
        ],
        env,
    );
    let mut config = op.peer_config();
    config["private_jwk"] = keys["private_jwk"].clone();
    config["jar"] = true.into();
    (jwks_dir, op, config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_signs_its_authorization_request_as_a_request_object() {
    if !node_ready() {
        return;
    }
    // The client must sign: the flow succeeds only through the library's request object.
    let (_keys, op, config) = signing_client(&[]);
    let arrival = run(&op, &config).await;
    assert!(matches!(arrival, Arrival::Get(_)), "{arrival:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_pushes_a_signed_request_object() {
    if !node_ready() {
        return;
    }
    let (_keys, op, mut config) = signing_client(&[("LATCHKEY_PAR__REQUIRED", "true")]);
    config["par"] = true.into();
    let arrival = run(&op, &config).await;
    let names: Vec<String> = arrival.params().into_iter().map(|(k, _)| k).collect();
    assert!(names.contains(&"code".to_owned()), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_binds_its_tokens_with_dpop_and_calls_userinfo_with_proofs() {
    if !node_ready() {
        return;
    }
    let op = Op::start(&[], &[]);
    let mut config = op.peer_config();
    config["dpop"] = true.into();
    let peer = Peer::spawn(
        "openid-client (DPoP)",
        node(&config.to_string()),
        op.dir.path(),
    );
    let (_, result) = interop::run_peer_with_result(&op, peer).await;
    // The library lower-cases token_type; the server sent `DPoP` for the code and the refresh.
    for member in ["token_type", "refreshed_token_type"] {
        assert!(
            result[member]
                .as_str()
                .is_some_and(|t| t.eq_ignore_ascii_case("dpop")),
            "{member}: {result:#}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openid_client_reads_a_form_post_response() {
    if !node_ready() {
        return;
    }
    let op = Op::start(&[], &[]);
    let mut config = op.peer_config();
    config["response_mode"] = "form_post".into();
    let arrival = run(&op, &config).await;
    // OAuth 2.0 Form Post Response Mode §2: the parameters arrive in a POST body, not in the
    // URL.
    let Arrival::Post { url, .. } = &arrival else {
        panic!("form_post answered with a redirect: {arrival:?}");
    };
    assert_eq!(url, interop::REDIRECT_URI);
    let names: Vec<String> = arrival.params().into_iter().map(|(k, _)| k).collect();
    assert!(
        names.contains(&"code".to_owned()) && names.contains(&"state".to_owned()),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_sign_in_example_signs_a_user_in() {
    if !node_ready() {
        return;
    }
    // The README registers http://127.0.0.1:3000/callback; the test's app listens on any free
    // port, which a loopback redirect URI allows (RFC 8252 §7.3).
    let op = Op::start(&["--redirect-uri", "http://127.0.0.1/callback"], &[]);
    let mut cmd = Command::new("node");
    cmd.arg(project().join("sign-in.mjs"))
        .current_dir(project())
        .env("ISSUER", op.issuer())
        .env("CLIENT_ID", &op.client.id)
        .env("CLIENT_SECRET", &op.client.secret)
        .env("PORT", "0");
    let mut app = Peer::spawn("sign-in.mjs", cmd, op.dir.path());
    let banner = app.next_line();
    let home = banner
        .strip_prefix("Open ")
        .and_then(|rest| rest.strip_suffix(" in a browser."))
        .unwrap_or_else(|| panic!("unexpected banner: {banner}"))
        .to_owned();

    let mut browser = common::agent::Agent::new();
    let start = browser.get(&home).await;
    assert_eq!(start.status, 303, "{}", start.body);
    let Arrival::Get(callback) = interop::sign_in(&mut browser, &op, start.location()).await else {
        panic!("the example asked for a form_post response");
    };
    assert!(
        callback.starts_with(&format!("{home}callback?")),
        "{callback}"
    );
    let page = browser.get(&callback).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let shown: Value = serde_json::from_str(&page.body).expect("the example shows JSON");
    assert_eq!(shown["id_token"]["iss"], op.issuer(), "{shown:#}");
    assert_eq!(shown["userinfo"]["email"], interop::EMAIL, "{shown:#}");
    assert_eq!(
        shown["userinfo"]["sub"], shown["id_token"]["sub"],
        "{shown:#}"
    );
}
