//! OpenID Connect on the real binary: discovery names the configured issuer exactly (with and
//! without a path, at both well-known locations), and userinfo answers over HTTP.

mod common;

use common::{PASSWORD_GRANT, Server, add_user, create_client, data_dir, post_token};
use serde_json::Value;

async fn get_json(url: &str) -> (u16, Value) {
    let r = reqwest::get(url).await.expect("server answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn discovery_matches_the_derived_issuer_exactly() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let (status, doc) = get_json(&server.url("/.well-known/openid-configuration")).await;
    assert_eq!(status, 200);
    assert_eq!(doc["issuer"], server.base);
    assert_eq!(doc["userinfo_endpoint"], server.url("/userinfo"));
    assert_eq!(doc["jwks_uri"], server.url("/jwks"));
    assert_eq!(doc["token_endpoint"], server.url("/token"));
    assert_eq!(doc["authorization_endpoint"], server.url("/authorize"));
    assert!(
        doc["scopes_supported"]
            .as_array()
            .is_some_and(|s| s.contains(&"openid".into())),
        "{doc}"
    );
    // The RFC 8414 document is the same one.
    let (_, oauth) = get_json(&server.url("/.well-known/oauth-authorization-server")).await;
    assert_eq!(oauth, doc);
}

#[tokio::test]
async fn discovery_of_an_issuer_with_a_path_is_served_at_both_locations() {
    let dir = data_dir();
    let issuer = "https://login.example.test/tenant-a";
    let server = Server::start_with(dir.path(), &[("LATCHKEY_ISSUER", issuer)]);
    // Behind a proxy that strips /tenant-a: the issuer plus the well-known path.
    let (status, appended) = get_json(&server.url("/.well-known/openid-configuration")).await;
    assert_eq!(status, 200);
    assert_eq!(appended["issuer"], issuer);
    assert_eq!(appended["userinfo_endpoint"], format!("{issuer}/userinfo"));
    // RFC 8414 §3.1: the well-known segment inserted before the issuer's path.
    for path in [
        "/.well-known/openid-configuration/tenant-a",
        "/.well-known/oauth-authorization-server/tenant-a",
    ] {
        let (status, inserted) = get_json(&server.url(path)).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(inserted["issuer"], issuer, "{path}");
    }
    let (status, _) = get_json(&server.url("/.well-known/openid-configuration/tenant-b")).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn userinfo_over_http_by_header_and_by_body() {
    let dir = data_dir();
    let client = create_client(dir.path(), &["--grant-type", "password"]);
    add_user(dir.path(), "alice", "correct horse battery");
    let server = Server::start_with(dir.path(), &[PASSWORD_GRANT]);
    let http = reqwest::Client::new();
    let token = |scope: &'static str| {
        let http = http.clone();
        let server = &server;
        let auth = client.basic();
        async move {
            let (status, _, body) = post_token(
                &http,
                server,
                Some(&auth),
                &format!(
                    "grant_type=password&username=alice&password=correct+horse+battery&scope={scope}"
                ),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            body["access_token"].as_str().expect("token").to_owned()
        }
    };
    let openid = token("openid").await;

    let r = http
        .get(server.url("/userinfo"))
        .bearer_auth(&openid)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let by_header: Value = r.json().await.expect("JSON");
    assert!(by_header["sub"].as_str().is_some_and(|s| !s.is_empty()));

    let by_body: Value = http
        .post(server.url("/userinfo"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("access_token={openid}"))
        .send()
        .await
        .expect("POST")
        .json()
        .await
        .expect("JSON");
    assert_eq!(by_body, by_header);

    // A token in the query is refused, not looked up.
    let r = http
        .get(server.url(&format!("/userinfo?access_token={openid}")))
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 400);
    let challenge = r
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        challenge.contains("error=\"invalid_request\""),
        "{challenge}"
    );

    // A token without openid: insufficient_scope.
    let plain = token("").await;
    let r = http
        .get(server.url("/userinfo"))
        .bearer_auth(&plain)
        .send()
        .await
        .expect("GET");
    assert_eq!(r.status(), 403);
}
