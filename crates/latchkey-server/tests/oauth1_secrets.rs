//! Client and consumer secrets against the real `latchkey` binary (issue 14): an OAuth 1.0a
//! consumer's secret is not a function of its id alone (a client created again under the same
//! id gets new secrets), its OAuth 2.0 secret is an independent value, both rotate through the
//! CLI and the admin API with the old ones refused at once, and PLAINTEXT signatures follow the
//! server's transport rule (plain HTTP from loopback is accepted like everything else).

mod common;

use common::{Server, cli, data_dir};
use latchkey_core::entropy::{OsEntropy, random_token};
use latchkey_oauth1::signature::{Secrets, SignatureMethod, sign_request};
use std::path::Path;

const CALLBACK: &str = "https://printer.example.com/ready";
const ADMIN_TOKEN: &str = "issue-14-admin-token-long-enough-to-be-accepted";

/// What `latchkey client create --json` (or a rotation) printed.
#[derive(Clone, Debug)]
struct Issued {
    id: String,
    client_secret: String,
    consumer_secret: Option<String>,
}

fn secrets_of(json: &serde_json::Value) -> Issued {
    Issued {
        id: json["client_id"].as_str().expect("client_id").to_owned(),
        // Empty for a public client.
        client_secret: json["client_secret"].as_str().unwrap_or("").to_owned(),
        consumer_secret: json["oauth1_consumer_secret"].as_str().map(str::to_owned),
    }
}

fn create(dir: &Path, extra: &[&str]) -> Issued {
    let mut args = vec!["client", "create", "--name", "Printer", "--json"];
    args.extend_from_slice(extra);
    let out = cli(dir, &args, None);
    secrets_of(&serde_json::from_str(out.trim()).expect("JSON"))
}

fn consumer(dir: &Path, id: &str) -> Issued {
    create(
        dir,
        &[
            "--id",
            id,
            "--oauth1",
            "--redirect-uri",
            CALLBACK,
            "--scope",
            "photos",
        ],
    )
}

/// `POST /token` with `client_credentials`, authenticated with `id:secret`: the status.
async fn token_status(server: &Server, id: &str, secret: &str) -> u16 {
    reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .expect("server answers")
        .status()
        .as_u16()
}

/// A signed `POST /oauth1/request_token` (callback `oob`): the status and `oauth_problem`.
async fn request_token(
    server: &Server,
    key: &str,
    secret: &str,
    method: SignatureMethod,
) -> (u16, Option<String>) {
    let url = server.url("/oauth1/request_token");
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
        .to_string();
    let params = vec![
        ("oauth_consumer_key".to_owned(), key.to_owned()),
        (
            "oauth_signature_method".to_owned(),
            method.as_str().to_owned(),
        ),
        ("oauth_timestamp".to_owned(), timestamp),
        ("oauth_nonce".to_owned(), random_token(&OsEntropy, 12)),
        ("oauth_version".to_owned(), "1.0".to_owned()),
        ("oauth_callback".to_owned(), "oob".to_owned()),
    ];
    let header = sign_request(
        "POST",
        &url,
        None,
        params,
        method,
        &Secrets::new(secret, ""),
        None,
    )
    .expect("signs");
    let response = reqwest::Client::new()
        .post(&url)
        .header("authorization", header)
        .send()
        .await
        .expect("server answers");
    let status = response.status().as_u16();
    let body = response.text().await.expect("body");
    let problem = form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "oauth_problem")
        .map(|(_, v)| v.into_owned());
    (status, problem)
}

async fn hmac(server: &Server, key: &str, secret: &str) -> (u16, Option<String>) {
    request_token(server, key, secret, SignatureMethod::HmacSha1).await
}

fn refused() -> (u16, Option<String>) {
    (401, Some("signature_invalid".to_owned()))
}

#[tokio::test]
async fn issue_14_a_client_created_again_under_the_same_id_does_not_revive_its_secrets() {
    let dir = data_dir();
    let first = consumer(dir.path(), "printer");
    let first_consumer = first.consumer_secret.clone().expect("consumer secret");
    assert_ne!(
        first.client_secret, first_consumer,
        "the OAuth 2.0 secret is not the consumer secret"
    );
    cli(dir.path(), &["client", "delete", "printer"], None);
    let second = consumer(dir.path(), "printer");
    let second_consumer = second.consumer_secret.clone().expect("consumer secret");
    assert_ne!(second.client_secret, first.client_secret);
    assert_ne!(second_consumer, first_consumer);

    let server = Server::start(dir.path());
    assert_eq!(
        token_status(&server, "printer", &first.client_secret).await,
        401
    );
    assert_eq!(token_status(&server, "printer", &first_consumer).await, 401);
    assert_eq!(
        token_status(&server, "printer", &second.client_secret).await,
        200
    );
    assert_eq!(hmac(&server, "printer", &first_consumer).await, refused());
    assert_eq!(
        hmac(&server, "printer", &second_consumer).await,
        (200, None)
    );
    assert_eq!(
        token_status(&server, "printer", &second_consumer).await,
        401,
        "the consumer secret is not an OAuth 2.0 secret"
    );
}

#[tokio::test]
async fn issue_14_cli_rotation_refuses_the_old_secrets_of_clients_and_consumers() {
    let dir = data_dir();
    let plain = create(dir.path(), &["--id", "billing"]);
    assert_eq!(plain.consumer_secret, None);
    let printer = consumer(dir.path(), "printer");
    let server = Server::start(dir.path());
    assert_eq!(
        token_status(&server, "billing", &plain.client_secret).await,
        200
    );
    let old_consumer = printer.consumer_secret.clone().expect("consumer secret");
    assert_eq!(hmac(&server, "printer", &old_consumer).await, (200, None));

    // Rotated while the server runs, on the same store.
    for (id, before) in [("billing", &plain), ("printer", &printer)] {
        let out = cli(dir.path(), &["client", "rotate-secret", id, "--json"], None);
        let after = secrets_of(&serde_json::from_str(out.trim()).expect("JSON"));
        assert_eq!(after.id, id);
        assert_ne!(after.client_secret, before.client_secret);
        assert_eq!(token_status(&server, id, &before.client_secret).await, 401);
        assert_eq!(token_status(&server, id, &after.client_secret).await, 200);
        match (&before.consumer_secret, &after.consumer_secret) {
            (None, None) => {}
            (Some(old), Some(new)) => {
                assert_ne!(old, new);
                assert_eq!(hmac(&server, id, old).await, refused());
                assert_eq!(hmac(&server, id, new).await, (200, None));
            }
            other => panic!("consumer secrets before and after: {other:?}"),
        }
    }

    // The text output names what was rotated.
    let out = cli(dir.path(), &["client", "rotate-secret", "printer"], None);
    assert!(out.contains("client_secret: "), "{out}");
    assert!(out.contains("OAuth 1.0a consumer secret: "), "{out}");
}

#[tokio::test]
async fn issue_14_admin_api_rotation_refuses_the_old_secrets() {
    let dir = data_dir();
    let printer = consumer(dir.path(), "printer");
    create(
        dir.path(),
        &["--id", "spa", "--public", "--redirect-uri", CALLBACK],
    );
    let server = Server::start_with(
        dir.path(),
        &[
            ("LATCHKEY_ADMIN__LISTEN", "127.0.0.1:0"),
            ("LATCHKEY_ADMIN__TOKEN", ADMIN_TOKEN),
        ],
    );
    let admin = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("latchkey admin API on "))
        .expect("admin API announced")
        .to_owned();
    let http = reqwest::Client::new();
    let rotate = |id: &str| {
        http.post(format!("{admin}/admin/clients/{id}/secret"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
    };
    let response = rotate("printer").await.expect("answers");
    assert_eq!(response.status(), 200);
    let after = secrets_of(&response.json().await.expect("JSON"));
    let (old, new) = (
        printer.consumer_secret.expect("consumer secret"),
        after.consumer_secret.expect("consumer secret"),
    );
    assert_eq!(
        token_status(&server, "printer", &printer.client_secret).await,
        401
    );
    assert_eq!(
        token_status(&server, "printer", &after.client_secret).await,
        200
    );
    assert_eq!(hmac(&server, "printer", &old).await, refused());
    assert_eq!(hmac(&server, "printer", &new).await, (200, None));

    assert_eq!(rotate("nobody").await.expect("answers").status(), 404);
    assert_eq!(
        rotate("spa").await.expect("answers").status(),
        400,
        "a public client has no secret"
    );
    let unauthenticated = http
        .post(format!("{admin}/admin/clients/printer/secret"))
        .send()
        .await
        .expect("answers");
    assert_eq!(unauthenticated.status(), 401);

    let doc: serde_json::Value = http
        .get(format!("{admin}/openapi.json"))
        .send()
        .await
        .expect("answers")
        .json()
        .await
        .expect("JSON");
    assert!(
        doc["paths"]["/admin/clients/{id}/secret"]["post"].is_object(),
        "the rotation is documented"
    );

    // The rotation is audited; no secret, old or new, reaches the log.
    drop(server);
    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    assert!(
        log.contains("client_secret_rotated"),
        "rotation not audited"
    );
    for secret in [&printer.client_secret, &after.client_secret, &old, &new] {
        assert!(!log.contains(secret.as_str()), "a secret reached the log");
    }
}

#[tokio::test]
async fn issue_14_plaintext_over_plain_http_from_loopback_follows_the_transport_rule() {
    let dir = data_dir();
    let printer = consumer(dir.path(), "printer");
    let secret = printer.consumer_secret.expect("consumer secret");
    // The server speaks plain HTTP on loopback, which its transport rule accepts for every
    // OAuth endpoint; PLAINTEXT, whose secrets travel as they are, follows the same rule.
    let server = Server::start(dir.path());
    assert_eq!(
        request_token(&server, "printer", &secret, SignatureMethod::Plaintext).await,
        (200, None)
    );
    assert_eq!(
        request_token(&server, "printer", "wrong", SignatureMethod::Plaintext).await,
        refused()
    );
}
