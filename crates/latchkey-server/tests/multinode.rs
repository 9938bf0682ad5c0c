//! Several stateless `latchkey` nodes on one store: a token issued on node A works on node B,
//! a revocation on B is honoured on A, and a refresh token rotated on A cannot be reused on B.
//! Runs when `LATCHKEY_TEST_POSTGRES` is set (and, for the Redis variant, `LATCHKEY_TEST_REDIS`);
//! fails if a variable is set and its server is unreachable.

mod common;

use common::{CliClient, PASSWORD_GRANT, Server, add_user, create_client, data_dir, post_token};
use std::path::Path;

fn configure(dir: &Path, toml: &str) {
    std::fs::write(dir.join("latchkey.toml"), toml).expect("write settings");
}

async fn introspect(
    http: &reqwest::Client,
    node: &Server,
    client: &CliClient,
    token: &str,
) -> serde_json::Value {
    http.post(node.url("/introspect"))
        .header("authorization", client.basic())
        .form(&[("token", token)])
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("json")
}

async fn two_nodes_share_one_store(toml: String) {
    let (a_dir, b_dir) = (data_dir(), data_dir());
    configure(a_dir.path(), &toml);
    configure(b_dir.path(), &toml);
    let client = create_client(
        a_dir.path(),
        &["--grant-type", "password", "--grant-type", "refresh_token"],
    );
    add_user(a_dir.path(), "nina", "nina-password");
    // Nodes sharing a store share the key-encryption key of its signing keys.
    let kek = (
        "LATCHKEY_KEYS__KEK",
        "q83vEjRWeJASNFZ4kBI0VniQEjRWeJASNFZ4kBI0Vng=",
    );
    let (a, b) = (
        Server::start_with(a_dir.path(), &[PASSWORD_GRANT, kek]),
        Server::start_with(b_dir.path(), &[PASSWORD_GRANT, kek]),
    );
    let http = reqwest::Client::new();
    let jwks = |node: &Server| {
        let url = node.url("/jwks");
        let http = http.clone();
        async move {
            let doc: serde_json::Value = http
                .get(url)
                .send()
                .await
                .expect("answers")
                .json()
                .await
                .expect("json");
            doc
        }
    };
    let published = jwks(&a).await;
    assert_eq!(published["keys"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        published,
        jwks(&b).await,
        "both nodes publish the same keys"
    );
    let login = "grant_type=password&username=nina&password=nina-password";

    let (status, _, issued) = post_token(&http, &a, Some(&client.basic()), login).await;
    assert_eq!(status, 200, "{issued}");
    let at = issued["access_token"].as_str().expect("token");
    assert_eq!(
        introspect(&http, &b, &client, at).await["active"],
        true,
        "issued on A, active on B"
    );

    let revoked = http
        .post(b.url("/revoke"))
        .header("authorization", client.basic())
        .form(&[("token", at)])
        .send()
        .await
        .expect("answers");
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        introspect(&http, &a, &client, at).await["active"],
        false,
        "revoked on B, dead on A"
    );

    let (_, _, fresh) = post_token(&http, &a, Some(&client.basic()), login).await;
    let rt = fresh["refresh_token"].as_str().expect("refresh token");
    let refresh = format!("grant_type=refresh_token&refresh_token={rt}");
    let (status, _, _) = post_token(&http, &a, Some(&client.basic()), &refresh).await;
    assert_eq!(status, 200, "rotated on A");
    let (status, _, body) = post_token(&http, &b, Some(&client.basic()), &refresh).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant")),
        "reused on B"
    );
}

#[tokio::test]
async fn two_nodes_on_one_postgres() {
    let Ok(url) = std::env::var("LATCHKEY_TEST_POSTGRES") else {
        eprintln!("skipped: set LATCHKEY_TEST_POSTGRES to run");
        return;
    };
    let db = common::databases::fresh_database(&url, "lk_nodes").await;
    two_nodes_share_one_store(format!("[store]\nurl = \"{db}\"\n")).await;
}

#[tokio::test]
async fn two_nodes_on_postgres_with_tokens_in_redis() {
    let (Ok(pg), Ok(redis)) = (
        std::env::var("LATCHKEY_TEST_POSTGRES"),
        std::env::var("LATCHKEY_TEST_REDIS"),
    ) else {
        eprintln!("skipped: set LATCHKEY_TEST_POSTGRES and LATCHKEY_TEST_REDIS to run");
        return;
    };
    let db = common::databases::fresh_database(&pg, "lk_nodes").await;
    let prefix = db.rsplit('/').next().unwrap_or("lk").to_owned();
    two_nodes_share_one_store(format!(
        "[store]\nurl = \"{db}\"\ntokens_url = \"{redis}\"\nkey_prefix = \"{prefix}\"\n"
    ))
    .await;
}
