//! OpenID Connect interop: Authlib's OpenID Connect client (PyPI; the client of its framework
//! integrations, `OAuth2Mixin` + `OpenIDMixin`) signs a user in at the real `latchkey` binary,
//! unchanged: discovery, the authorization code flow with PKCE and a nonce, the ID token
//! validated by `parse_id_token` (signature against our JWKS, iss, aud, exp, iat, nonce,
//! at_hash), userinfo, refresh (a new ID token, validated the same way), and RP-initiated
//! logout with `create_logout_url`. The login and consent pages are the scripted user agent's;
//! every URL and every check is Authlib's (`interop/python/rp.py`).
//!
//! Required when `LATCHKEY_TEST_OIDC_PYTHON` is set (`.ci/run` sets it after
//! `pip install authlib`); elsewhere skipped, loudly, when Authlib is missing.

mod common;
mod interop;

use interop::{Arrival, Op, Peer};
use std::process::Command;

const VARIABLE: &str = "LATCHKEY_TEST_OIDC_PYTHON";

/// Whether python3 can import Authlib and requests; fails the test when the variable asks
/// for the peer and it is not there.
fn authlib_ready() -> bool {
    let ready = Command::new("python3")
        .args(["-c", "import authlib, requests"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            std::env::var_os(VARIABLE).is_none(),
            "{VARIABLE} is set but python3 cannot import authlib and requests"
        );
        interop::skipped(
            "Authlib (Python)",
            "python3 cannot import authlib and requests (pip install authlib requests)",
            VARIABLE,
        );
    }
    ready
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authlib_signs_in_refreshes_and_logs_out() {
    if !authlib_ready() {
        return;
    }
    let op = Op::start(&[], &[]);
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../interop/python/rp.py"
    ))
    .arg(op.peer_config().to_string())
    // Each JSON line reaches the test as soon as it is printed.
    .env("PYTHONUNBUFFERED", "1");
    let peer = Peer::spawn("Authlib", cmd, op.dir.path());
    let arrival = interop::run_peer(&op, peer).await;
    assert!(matches!(arrival, Arrival::Get(_)), "{arrival:?}");
}
