//! The embedded store keeps decoded clients in the server's memory (issue 20). A change made
//! by the `latchkey client` CLI run beside the server, another process, must be in force at
//! the server's very next request: a rotated secret, a client deleted, a grant removed.

mod common;

use common::{CliClient, Server, cli, create_client, data_dir, post_token};

const GRANT: &str = "grant_type=client_credentials";

/// Token and introspection requests of `client`, several times, so that its record is
/// cached; each must succeed.
async fn warm(http: &reqwest::Client, server: &Server, client: &CliClient) {
    for _ in 0..3 {
        let (status, _, body) = post_token(http, server, Some(&client.basic()), GRANT).await;
        assert_eq!(status, 200, "{body}");
    }
}

fn rotate_secret(dir: &std::path::Path, client: &CliClient) -> CliClient {
    let out = cli(
        dir,
        &["client", "rotate-secret", &client.id, "--json"],
        None,
    );
    let rotated: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    CliClient {
        id: client.id.clone(),
        secret: rotated["client_secret"]
            .as_str()
            .expect("a new secret")
            .to_owned(),
    }
}

#[tokio::test]
async fn a_secret_rotated_or_a_client_deleted_by_the_cli_takes_effect_at_the_next_request() {
    let dir = data_dir();
    let client = create_client(dir.path(), &["--grant-type", "client_credentials"]);
    let other = create_client(dir.path(), &["--grant-type", "client_credentials"]);
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    warm(&http, &server, &client).await;
    warm(&http, &server, &other).await;

    // Rotated by the CLI: the old secret is refused at once, the new one works.
    let rotated = rotate_secret(dir.path(), &client);
    let (status, _, body) = post_token(&http, &server, Some(&client.basic()), GRANT).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "the old secret still worked after rotate-secret"
    );
    warm(&http, &server, &rotated).await;
    // The other client is read anew too, and is unchanged.
    warm(&http, &server, &other).await;

    // The grant removed by the CLI: refused at once.
    cli(
        dir.path(),
        &[
            "client",
            "update",
            &other.id,
            "--grant-type",
            "authorization_code",
            "--redirect-uri",
            "https://app.example/cb",
        ],
        None,
    );
    let (status, _, body) = post_token(&http, &server, Some(&other.basic()), GRANT).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{body}"
    );

    // Deleted by the CLI: its new secret is refused at once.
    cli(dir.path(), &["client", "delete", &client.id], None);
    let (status, _, body) = post_token(&http, &server, Some(&rotated.basic()), GRANT).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "a deleted client still got a token"
    );
}
