//! OAuth 1.0a end to end: a consumer registered with the CLI, the server's own router (as
//! `latchkey serve` builds it) on a real socket plus a resource protected by the axum guard,
//! and a third-party client, Python's requests-oauthlib, running the three-legged flow,
//! calling the resource, and trying what must be refused; then again for a consumer that
//! signs with RSA-SHA1 under a legacy 1024-bit key (the published test key of Google's
//! signet test suite, in `tests/oauth1/`; not a secret).
//!
//! The Python client is required when `LATCHKEY_TEST_OAUTH1_PYTHON` is set (`.ci/run` sets it
//! after installing requests-oauthlib); elsewhere the test is skipped when it is missing.

mod common;

use axum::Extension;
use axum::routing::get;
use common::{add_user, cli, create_client, create_consumer, data_dir};
use latchkey_axum::{BearerGuard, OAuth1Guard};
use latchkey_core::resource::AccessToken;
use latchkey_server::Settings;
use latchkey_server::app::{
    Surroundings, app_with_oauth1, build_oauth1, build_provider, build_ui, open_counters,
};
use latchkey_server::store::AnyStore;
use std::net::SocketAddr;
use std::process::Command;

const CALLBACK: &str = "https://printer.example.com/ready";

fn python_ready() -> bool {
    Command::new("python3")
        .args(["-c", "import requests_oauthlib, jwt, cryptography"])
        .status()
        .is_ok_and(|s| s.success())
}

async fn photos(Extension(token): Extension<AccessToken>) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "subject": token.subject,
        "username": token.username,
        "client_id": token.client_id,
        "realms": token.scope.to_string(),
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_oauthlib_runs_the_three_legged_flow_and_is_refused_where_it_must_be() {
    if !python_ready() {
        assert!(
            std::env::var_os("LATCHKEY_TEST_OAUTH1_PYTHON").is_none(),
            "LATCHKEY_TEST_OAUTH1_PYTHON is set but python3 cannot import requests_oauthlib, jwt and cryptography"
        );
        eprintln!(
            "skipped: python3 with requests-oauthlib, PyJWT and cryptography is not installed"
        );
        return;
    }
    let dir = data_dir();
    add_user(dir.path(), "alice", "correct horse battery");
    let consumer = create_consumer(
        dir.path(),
        &[
            "--oauth1",
            "--redirect-uri",
            CALLBACK,
            "--scope",
            "photos profile",
            "--default-scope",
            "photos",
        ],
    );

    let key_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oauth1");
    let rsa_consumer = create_client(
        dir.path(),
        &[
            "--rsa-public-key",
            &format!("{key_dir}/legacy_rsa_1024.pub.pem"),
            "--redirect-uri",
            CALLBACK,
            "--scope",
            "photos",
        ],
    );

    let settings = Settings {
        data_dir: dir.path().to_owned(),
        ..Settings::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let local = listener.local_addr().expect("address");
    let store = AnyStore::from_settings(&settings).await.expect("store");
    let counters = open_counters(&settings).await.expect("counters");
    let provider =
        build_provider(&settings, store.clone(), Some(local), counters).expect("provider");
    let ui = build_ui(&settings, provider.clone()).expect("ui");
    let oauth1 = build_oauth1(&settings, store.clone(), &provider).expect("oauth1");
    let guard = BearerGuard::new(provider.guard("photos-api"))
        .with_oauth1(OAuth1Guard::new(oauth1.clone()));
    let api = axum::Router::new()
        .route("/api/photos", get(photos).post(photos))
        .layer(guard.require("photos"))
        .merge(
            axum::Router::new()
                .route("/api/profile", get(photos))
                .layer(guard.require("profile")),
        );
    let app = app_with_oauth1(
        provider,
        ui,
        oauth1,
        &settings.cors,
        Surroundings::permissive(),
        Vec::new(),
    )
    .expect("app")
    .merge(api);
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oauth1/client.py");
    let base = format!("http://{local}");
    let args = [
        script.to_owned(),
        base,
        consumer.id.clone(),
        consumer.secret.clone(),
        "alice".to_owned(),
        "correct horse battery".to_owned(),
        CALLBACK.to_owned(),
        rsa_consumer.id.clone(),
        format!("{key_dir}/legacy_rsa_1024.pem"),
    ];
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(&args)
            .output()
            .expect("python3 runs")
    })
    .await
    .expect("joined");
    server.abort();
    store.close().await;
    let seen: serde_json::Value = match serde_json::from_slice(&output.stdout) {
        Ok(seen) => seen,
        Err(_) => panic!(
            "client.py printed no JSON ({}):\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    };
    // On failure the client names the step and the last answer it saw.
    assert!(
        output.status.success() && seen.get("failed_step").is_none(),
        "client.py failed at step {}: {}\nlast response: {:#}\nobserved so far: {seen}\nstderr: {}",
        seen["failed_step"],
        seen["error"],
        seen["last_response"],
        String::from_utf8_lossy(&output.stderr)
    );

    assert_eq!(seen["callback_confirmed"], "true", "{seen}");
    assert_eq!(seen["login_status"], 200, "{seen}");
    assert_eq!(seen["consent_status"], 200, "{seen}");
    assert_eq!(seen["consent_shows_realm"], true, "{seen}");
    assert_eq!(seen["redirected_to_callback"], true, "{seen}");
    assert_eq!(seen["resource_status"], 200, "{seen}");
    assert_eq!(seen["resource"]["username"], "alice", "{seen}");
    assert_eq!(
        seen["resource"]["client_id"],
        consumer.id.as_str(),
        "{seen}"
    );
    assert_eq!(seen["resource"]["realms"], "photos", "{seen}");
    assert_eq!(seen["form_post_status"], 200, "{seen}");

    assert_eq!(
        seen["reused_verifier"],
        serde_json::json!([401, "token_rejected"]),
        "{seen}"
    );
    assert_eq!(
        seen["replay"],
        serde_json::json!([200, 401, "nonce_used"]),
        "{seen}"
    );
    assert_eq!(seen["bad_signature"][0], 401, "{seen}");
    assert_eq!(seen["bad_signature"][1], "signature_invalid", "{seen}");
    assert!(
        seen["bad_signature"][2]
            .as_str()
            .is_some_and(|c| c.starts_with("OAuth realm=")),
        "{seen}"
    );
    assert_eq!(
        seen["plaintext_over_http"],
        serde_json::json!([400, "signature_method_rejected"]),
        "{seen}"
    );
    assert_eq!(
        seen["unknown_consumer"],
        serde_json::json!([401, "consumer_key_unknown"]),
        "{seen}"
    );
    assert_eq!(
        seen["missing_realm"],
        serde_json::json!([403, "permission_denied"]),
        "{seen}"
    );
    assert_eq!(
        seen["revoked"],
        serde_json::json!([200, 401, "token_rejected"]),
        "{seen}"
    );

    assert_eq!(seen["rsa_consent_status"], 200, "{seen}");
    assert_eq!(seen["rsa_resource_status"], 200, "{seen}");
    assert_eq!(
        seen["rsa_consumer_hmac"],
        serde_json::json!([400, "signature_method_rejected"]),
        "{seen}"
    );

    // An administrator revokes OAuth 1.0a token credentials like OAuth 2.0 tokens. The token
    // goes on stdin: as an argument, one in 64 (base64url starting with `-`) reads as an
    // option and the command fails, which made this test flaky.
    let token = seen["rsa_access_token"].as_str().expect("token");
    let out = cli(
        dir.path(),
        &["token", "revoke"],
        Some(&format!("{token}\n")),
    );
    assert_eq!(out.trim(), "Revoked 1 token(s).");
    let out = cli(
        dir.path(),
        &["token", "revoke"],
        Some(&format!("{token}\n")),
    );
    assert_eq!(out.trim(), "Revoked 0 token(s).", "already revoked");
}
