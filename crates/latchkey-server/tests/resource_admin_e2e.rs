//! The run-time resource registry through the real binary: `/admin/resources` and
//! `latchkey resource …` add, change and remove resources while the server runs, the token
//! and authorization endpoints accept a resource from the moment it is added and refuse it
//! (`invalid_target`) once removed, resources of the settings are read-only, and every
//! refusal of the admin API has its status; the stored resources' protected-resource metadata
//! (RFC 9728) is served from the moment they are added until they are removed.

mod common;

use common::{CliClient, Server, cli, cli_outcome, create_client, data_dir, post_token};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "admin-token-for-resource-tests-0123456789";
/// Defined in the settings: read-only at run time.
const API: &str = "https://api.example.test/";
/// Added at run time.
const RT: &str = "https://rt.example.test/mcp";
const REDIRECT: &str = "http://127.0.0.1:41234/callback";

struct Env {
    dir: tempfile::TempDir,
    server: Server,
    admin: String,
    http: reqwest::Client,
}

fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

fn start() -> Env {
    let dir = data_dir();
    std::fs::write(
        dir.path().join("latchkey.toml"),
        format!(
            r#"
[scopes]
available = ["read", "write"]
default = ["read"]

[[resources]]
id = "{API}"
scopes = ["read"]
"#
        ),
    )
    .expect("settings");
    let server = Server::start_with(
        dir.path(),
        &[
            ("LATCHKEY_ADMIN__LISTEN", "127.0.0.1:0"),
            ("LATCHKEY_ADMIN__TOKEN", ADMIN_TOKEN),
            // The stored resources' metadata is read on every request: what the admin API
            // or the CLI changes is served at once, with no waiting in the tests.
            ("LATCHKEY_RESOURCE_METADATA_TTL", "0"),
        ],
    );
    let admin = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("latchkey admin API on "))
        .expect("admin listener announced")
        .to_owned();
    Env {
        dir,
        server,
        admin,
        http: reqwest::Client::new(),
    }
}

impl Env {
    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.admin))
            .bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("admin answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn token(&self, client: &CliClient, params: &str) -> (u16, Value) {
        let body = format!("grant_type=client_credentials&{params}");
        let (status, _, json) =
            post_token(&self.http, &self.server, Some(&client.basic()), &body).await;
        (status, json)
    }

    async fn introspect(&self, client: &CliClient, token: &str) -> Value {
        self.http
            .post(self.server.url("/introspect"))
            .header("authorization", client.basic())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", enc(token)))
            .send()
            .await
            .expect("introspect")
            .json()
            .await
            .expect("json")
    }

    /// `/authorize` for `client_id` naming `resource`: the status and `Location`.
    async fn authorize(&self, client_id: &str, resource: &str) -> (u16, String) {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("scope", "read")
            .append_pair("state", "st")
            .append_pair(
                "code_challenge",
                &latchkey_core::pkce::s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            )
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", resource)
            .finish();
        let resp = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client")
            .get(self.server.url(&format!("/authorize?{query}")))
            .send()
            .await
            .expect("authorize answers");
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (resp.status().as_u16(), location)
    }

    /// The protected-resource metadata at `path`: status and document.
    async fn metadata(&self, path: &str) -> (u16, Value) {
        let resp = self
            .http
            .get(self.server.url(path))
            .send()
            .await
            .expect("metadata answers");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

fn path_of(id: &str) -> String {
    format!("/admin/resources/{}", enc(id))
}

#[tokio::test]
async fn resources_added_through_the_admin_api_are_accepted_at_once_and_refused_once_removed() {
    let env = start();
    let gateway = create_client(env.dir.path(), &["--grant-type", "client_credentials"]);
    let other = create_client(env.dir.path(), &["--grant-type", "client_credentials"]);
    let resource = format!("resource={}", enc(RT));

    // Unknown before it is added.
    let (status, body) = env.token(&gateway, &resource).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target")),
        "{body}"
    );

    let (status, added) = env
        .admin(
            "POST",
            "/admin/resources",
            Some(json!({"id": RT, "name": "Run-time tools", "scopes": ["read"], "clients": [gateway.id]})),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(added["source"], "store");
    assert_eq!(added["clients"], json!([gateway.id]));

    // Accepted at once, with its audience and within its scopes.
    let (status, body) = env.token(&gateway, &resource).await;
    assert_eq!(status, 200, "{body}");
    let access = body["access_token"].as_str().expect("access token");
    let info = env.introspect(&gateway, access).await;
    assert_eq!(info["active"], true, "{info}");
    let aud = info["aud"].clone();
    assert!(aud == json!(RT) || aud == json!([RT]), "aud: {info}");
    for (why, client, params, error) in [
        (
            "a scope it does not accept",
            &gateway,
            format!("{resource}&scope=write"),
            "invalid_scope",
        ),
        (
            "a client it does not allow",
            &other,
            resource.clone(),
            "invalid_target",
        ),
        (
            "an identifier differing in case",
            &gateway,
            format!("resource={}", enc(&RT.to_uppercase())),
            "invalid_target",
        ),
        (
            "a trailing slash",
            &gateway,
            format!("resource={}", enc(&format!("{RT}/"))),
            "invalid_target",
        ),
    ] {
        let (status, body) = env.token(client, &params).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{why}: {body}"
        );
    }

    // Lifting the client restriction lets the other client in.
    let (status, updated) = env
        .admin(
            "PATCH",
            &path_of(RT),
            Some(json!({"clients": null, "scopes": ["read", "write"]})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["clients"], Value::Null);
    assert_eq!(updated["name"], "Run-time tools");
    let (status, body) = env.token(&other, &format!("{resource}&scope=write")).await;
    assert_eq!(status, 200, "{body}");

    // Both sources are listed; the settings' first.
    let (status, list) = env.admin("GET", "/admin/resources", None).await;
    assert_eq!(status, 200);
    let listed: Vec<(String, String)> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap_or("").to_owned(),
                r["source"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            (API.to_owned(), "settings".to_owned()),
            (RT.to_owned(), "store".to_owned())
        ]
    );
    let (status, shown) = env.admin("GET", &path_of(API), None).await;
    assert_eq!((status, shown["source"].as_str()), (200, Some("settings")));

    // Removed: refused again.
    let (status, _) = env.admin("DELETE", &path_of(RT), None).await;
    assert_eq!(status, 204);
    let (status, body) = env.token(&other, &resource).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target")),
        "{body}"
    );
    // The token issued before stays valid until it expires.
    assert_eq!(env.introspect(&gateway, access).await["active"], true);
}

#[tokio::test]
async fn every_admin_refusal_has_its_status() {
    let env = start();
    let (status, _) = env
        .admin("POST", "/admin/resources", Some(json!({"id": RT})))
        .await;
    assert_eq!(status, 201);
    let cases: Vec<(&str, &str, String, Option<Value>, u16)> = vec![
        (
            "settings resource added",
            "POST",
            "/admin/resources".into(),
            Some(json!({"id": API})),
            409,
        ),
        (
            "added twice",
            "POST",
            "/admin/resources".into(),
            Some(json!({"id": RT})),
            409,
        ),
        (
            "relative identifier",
            "POST",
            "/admin/resources".into(),
            Some(json!({"id": "/api"})),
            400,
        ),
        (
            "fragment",
            "POST",
            "/admin/resources".into(),
            Some(json!({"id": "https://x.example/#f"})),
            400,
        ),
        (
            "too long",
            "POST",
            "/admin/resources".into(),
            Some(json!({"id": format!("https://x.example/{}", "a".repeat(2100))})),
            400,
        ),
        (
            "two scopes in one",
            "POST",
            "/admin/resources".into(),
            Some(json!({"id": "https://x.example/", "scopes": ["read write"]})),
            400,
        ),
        (
            "bad scope character",
            "POST",
            "/admin/resources".into(),
            Some(json!({"id": "https://x.example/", "scopes": ["re\"ad"]})),
            400,
        ),
        (
            "empty client",
            "POST",
            "/admin/resources".into(),
            Some(json!({"id": "https://x.example/", "clients": [""]})),
            400,
        ),
        (
            "control character in name",
            "POST",
            "/admin/resources".into(),
            Some(json!({"id": "https://x.example/", "name": "a\u{7}b"})),
            400,
        ),
        (
            "unknown field",
            "POST",
            "/admin/resources".into(),
            Some(json!({"id": "https://x.example/", "audience": "x"})),
            400,
        ),
        (
            "not JSON",
            "POST",
            "/admin/resources".into(),
            Some(json!("just a string")),
            400,
        ),
        (
            "settings resource changed",
            "PATCH",
            path_of(API),
            Some(json!({"name": "mine"})),
            409,
        ),
        (
            "settings resource removed",
            "DELETE",
            path_of(API),
            None,
            409,
        ),
        (
            "unknown changed",
            "PATCH",
            path_of("https://unknown.example/"),
            Some(json!({"name": "x"})),
            404,
        ),
        (
            "unknown removed",
            "DELETE",
            path_of("https://unknown.example/"),
            None,
            404,
        ),
        (
            "unknown shown",
            "GET",
            path_of("https://unknown.example/"),
            None,
            404,
        ),
        (
            "bad update",
            "PATCH",
            path_of(RT),
            Some(json!({"scopes": [""]})),
            400,
        ),
    ];
    for (why, method, path, body, expected) in cases {
        let (status, answer) = env.admin(method, &path, body).await;
        assert_eq!(status, expected, "{why}: {answer}");
        assert!(answer["error"].is_string(), "{why}: {answer}");
    }
    // Without the admin token: 401, and nothing changes.
    let resp = env
        .http
        .delete(format!("{}{}", env.admin, path_of(RT)))
        .send()
        .await
        .expect("answer");
    assert_eq!(resp.status().as_u16(), 401);
    let (status, _) = env.admin("GET", &path_of(RT), None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_cli_manages_resources_the_running_server_and_authorize_see() {
    let env = start();
    let dir = env.dir.path();
    let out = cli(
        dir,
        &[
            "client",
            "create",
            "--name",
            "Web",
            "--public",
            "--json",
            "--redirect-uri",
            REDIRECT,
            "--grant-type",
            "authorization_code",
            "--scope",
            "read",
        ],
        None,
    );
    let web: Value = serde_json::from_str(out.trim()).expect("json");
    let web = web["client_id"].as_str().expect("id").to_owned();

    // Before: `/authorize` sends the client back with invalid_target (RFC 8707 §2).
    let (status, location) = env.authorize(&web, RT).await;
    assert!((300..400).contains(&status), "{status} {location}");
    assert!(
        location.starts_with(REDIRECT) && location.contains("error=invalid_target"),
        "{location}"
    );

    let added: Value = serde_json::from_str(
        cli(
            dir,
            &[
                "resource", "add", RT, "--name", "Tools", "--scope", "read", "--json",
            ],
            None,
        )
        .trim(),
    )
    .expect("json");
    assert_eq!(added["scopes"], json!(["read"]));
    assert_eq!(added["source"], "store");

    // After: the request goes on to the login page.
    let (status, location) = env.authorize(&web, RT).await;
    assert!(!location.contains("error="), "{status} {location}");

    let list: Value =
        serde_json::from_str(cli(dir, &["resource", "list", "--json"], None).trim()).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{list}");
    let text = cli(dir, &["resource", "list"], None);
    assert!(text.contains(&format!("{API}  [settings]")), "{text}");
    assert!(
        text.contains(&format!("{RT}  [store]  name: Tools  scopes: read")),
        "{text}"
    );

    let updated: Value = serde_json::from_str(
        cli(
            dir,
            &[
                "resource",
                "update",
                RT,
                "--no-name",
                "--any-scope",
                "--client",
                &web,
                "--json",
            ],
            None,
        )
        .trim(),
    )
    .expect("json");
    assert_eq!(updated["name"], Value::Null);
    assert_eq!(updated["scopes"], Value::Null);
    assert_eq!(updated["clients"], json!([web]));
    let shown: Value =
        serde_json::from_str(cli(dir, &["resource", "show", RT, "--json"], None).trim())
            .expect("json");
    assert_eq!(shown["clients"], json!([web]));

    // Refusals, each with its reason.
    for (why, args, says) in [
        (
            "settings resource",
            vec!["resource", "remove", API],
            "read-only",
        ),
        (
            "settings resource added",
            vec!["resource", "add", API],
            "read-only",
        ),
        ("added twice", vec!["resource", "add", RT], "exists already"),
        (
            "malformed",
            vec!["resource", "add", "not a uri"],
            "absolute URI",
        ),
        (
            "unknown",
            vec!["resource", "show", "https://unknown.example/"],
            "no resource",
        ),
    ] {
        let (ok, _, stderr) = cli_outcome(dir, &args);
        assert!(!ok, "{why}");
        assert!(stderr.contains(says), "{why}: {stderr}");
    }

    assert!(cli(dir, &["resource", "remove", RT], None).contains("removed"));
    let (status, location) = env.authorize(&web, RT).await;
    assert!(
        location.contains("error=invalid_target"),
        "{status} {location}"
    );
}

#[tokio::test]
async fn stored_resources_publish_their_metadata_from_added_until_removed() {
    let env = start();
    let dir = env.dir.path();
    const MCP: &str = "/.well-known/oauth-protected-resource/mcp";
    let (status, _) = env.metadata(MCP).await;
    assert_eq!(
        status, 404,
        "nothing published before the resource is added"
    );

    // Added through the admin API: served at once, path inserted (RFC 9728 §3.1).
    let (status, added) = env
        .admin(
            "POST",
            "/admin/resources",
            Some(json!({"id": RT, "name": "Run-time tools", "scopes": ["read"]})),
        )
        .await;
    assert_eq!(status, 201, "{added}");
    let (status, doc) = env.metadata(MCP).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["resource"], RT);
    assert_eq!(doc["authorization_servers"], json!([env.server.base]));
    assert_eq!(doc["scopes_supported"], json!(["read"]));
    assert_eq!(doc["resource_name"], "Run-time tools");

    // Added through the CLI, on this server's own host and a deeper path; a change is seen
    // without a restart.
    let own = format!("{}/tools/v1", env.server.base);
    cli(dir, &["resource", "add", &own, "--name", "Own"], None);
    const OWN: &str = "/.well-known/oauth-protected-resource/tools/v1";
    let (status, doc) = env.metadata(OWN).await;
    assert_eq!(
        (status, doc["resource"].as_str()),
        (200, Some(own.as_str())),
        "{doc}"
    );
    assert_eq!(doc["resource_name"], "Own");
    cli(
        dir,
        &["resource", "update", &own, "--name", "Renamed"],
        None,
    );
    let (_, doc) = env.metadata(OWN).await;
    assert_eq!(doc["resource_name"], "Renamed", "{doc}");

    // A second stored resource at /mcp on this server's host: the request's host picks it;
    // the other one is no longer the sole one at that path.
    let mine = format!("{}/mcp", env.server.base);
    cli(dir, &["resource", "add", &mine], None);
    let (status, doc) = env.metadata(MCP).await;
    assert_eq!(
        (status, doc["resource"].as_str()),
        (200, Some(mine.as_str())),
        "{doc}"
    );
    assert!(cli(dir, &["resource", "remove", &mine], None).contains("removed"));
    let (_, doc) = env.metadata(MCP).await;
    assert_eq!(doc["resource"], RT, "{doc}");

    // An identifier with no metadata URL publishes nothing; nor does the settings' resource
    // without serve_metadata (a stored one cannot take its identifier).
    cli(dir, &["resource", "add", "urn:example:tools"], None);
    let (status, _) = env.metadata("/.well-known/oauth-protected-resource").await;
    assert_eq!(status, 404);

    // Removed (admin API, CLI): 404 from then on.
    let (status, _) = env.admin("DELETE", &path_of(RT), None).await;
    assert_eq!(status, 204);
    let (status, _) = env.metadata(MCP).await;
    assert_eq!(status, 404);
    assert!(cli(dir, &["resource", "remove", &own], None).contains("removed"));
    let (status, _) = env.metadata(OWN).await;
    assert_eq!(status, 404);
}
