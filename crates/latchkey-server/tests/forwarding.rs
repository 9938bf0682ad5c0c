//! Forwarding headers on the real binary: behind a trusted proxy, a client cannot choose its
//! address or claim HTTPS with headers of its own.

mod common;

use common::{CliClient, Server, create_client, data_dir};

/// A client_credentials request from the "proxy" (the test, on trusted loopback) carrying
/// `headers`; the status.
async fn token_status(server: &Server, client: &CliClient, headers: &[(&str, &str)]) -> u16 {
    let mut req = reqwest::Client::new()
        .post(server.url("/token"))
        .header("authorization", client.basic())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("answer").status().as_u16()
}

#[tokio::test]
async fn issue_14_behind_an_x_forwarded_for_proxy_a_client_forwarded_header_is_ignored() {
    let dir = data_dir();
    let client = create_client(dir.path(), &[]);
    let server = Server::start_with(dir.path(), &[("LATCHKEY_TRUSTED_PROXIES", "[127.0.0.1]")]);
    // The client wrote `Forwarded` claiming loopback and HTTPS; the proxy appended the real
    // address and protocol to X-Forwarded-*.
    let spoof = [
        ("forwarded", "for=127.0.0.1;proto=https"),
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "http"),
    ];
    assert_eq!(token_status(&server, &client, &spoof).await, 403);
    // The client's own X-Forwarded-Proto comes first, the proxy's last.
    let first = [
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https, http"),
    ];
    assert_eq!(token_status(&server, &client, &first).await, 403);
    // The client's own X-Forwarded-For prefix does not make it loopback.
    let prefix = [
        ("x-forwarded-for", "127.0.0.1, 203.0.113.7"),
        ("x-forwarded-proto", "http"),
    ];
    assert_eq!(token_status(&server, &client, &prefix).await, 403);
    // What the proxy says is believed.
    let honest = [
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
    ];
    assert_eq!(token_status(&server, &client, &honest).await, 200);
}

#[tokio::test]
async fn issue_14_behind_a_forwarded_proxy_only_the_nearest_element_counts() {
    let dir = data_dir();
    let client = create_client(dir.path(), &[]);
    let server = Server::start_with(
        dir.path(),
        &[
            ("LATCHKEY_TRUSTED_PROXIES", "[127.0.0.1]"),
            ("LATCHKEY_FORWARDED_HEADER", "forwarded"),
        ],
    );
    let spoof = [
        ("x-forwarded-proto", "https"),
        (
            "forwarded",
            "for=127.0.0.1;proto=https, for=203.0.113.7;proto=http",
        ),
    ];
    assert_eq!(token_status(&server, &client, &spoof).await, 403);
    let honest = [("forwarded", "for=203.0.113.7;proto=https")];
    assert_eq!(token_status(&server, &client, &honest).await, 200);
}
