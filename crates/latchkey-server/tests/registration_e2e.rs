//! Dynamic client registration (RFC 7591) and management (RFC 7592) on the real binary: a
//! client registers the way the Python `mcp` SDK does, signs a user in with the code flow,
//! reads, updates and deletes its registration; initial access tokens from the CLI and the
//! admin API; refusals with their RFC codes; the per-address rate; metadata.

mod common;

use common::agent::Agent;
use common::{Server, add_user, cli, data_dir};
use latchkey_core::pkce::s256_challenge;
use reqwest::StatusCode;
use serde_json::{Value, json};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://localhost:3030/callback";
const OPEN: (&str, &str) = ("LATCHKEY_REGISTRATION__OPEN", "true");
const ON: (&str, &str) = ("LATCHKEY_REGISTRATION__ENABLED", "true");

/// The body the Python `mcp` SDK's `OAuthClientMetadata` sends (`model_dump(exclude_none)`).
fn mcp_sdk_request() -> Value {
    json!({
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "client_secret_post",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "Simple Auth Client",
    })
}

async fn register(server: &Server, body: &Value, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = reqwest::Client::new()
        .post(server.url("/register"))
        .json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("POST /register");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn metadata(server: &Server) -> Value {
    reqwest::get(server.url("/.well-known/oauth-authorization-server"))
        .await
        .expect("metadata")
        .json()
        .await
        .expect("JSON")
}

/// Signs alice in and consents; returns the code sent to the redirect URI.
async fn authorize(server: &Server, client_id: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("state", "st")
        .append_pair("code_challenge", &s256_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .finish();
    let mut agent = Agent::new();
    let login = agent.get(&server.url(&format!("/authorize?{query}"))).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let after = agent
        .post(
            &server.url("/login"),
            &[
                ("csrf_token", &login.field("csrf_token")),
                ("request", &login.field("request")),
                ("username", "alice"),
                ("password", "alice-password"),
            ],
        )
        .await;
    assert_eq!(after.status, 303, "{}", after.body);
    let consent = agent.get(&server.url(after.location())).await;
    assert!(
        consent.body.contains("Simple Auth Client"),
        "{}",
        consent.body
    );
    let done = agent
        .post(
            &server.url("/consent"),
            &[
                ("csrf_token", &consent.field("csrf_token")),
                ("request", &consent.field("request")),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(done.status, 303);
    let location = url::Url::parse(done.location()).expect("absolute");
    assert!(done.location().starts_with(REDIRECT), "{}", done.location());
    location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

async fn token(server: &Server, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(server.url("/token"))
        .form(form)
        .send()
        .await
        .expect("POST /token");
    let status = resp.status();
    (status, resp.json().await.expect("JSON"))
}

#[tokio::test]
async fn a_self_registered_client_signs_a_user_in_then_manages_and_deletes_its_registration() {
    let dir = data_dir();
    add_user(dir.path(), "alice", "alice-password");
    let server = Server::start_with(dir.path(), &[ON, OPEN]);
    let meta = metadata(&server).await;
    assert_eq!(meta["registration_endpoint"], server.url("/register"));

    let (status, info) = register(&server, &mcp_sdk_request(), None).await;
    assert_eq!(status, StatusCode::CREATED, "{info}");
    let id = info["client_id"].as_str().expect("client_id").to_owned();
    let secret = info["client_secret"].as_str().expect("secret").to_owned();
    let access = info["registration_access_token"]
        .as_str()
        .expect("registration token")
        .to_owned();
    let config_uri = info["registration_client_uri"]
        .as_str()
        .expect("uri")
        .to_owned();
    assert_eq!(config_uri, server.url(&format!("/register/{id}")));
    assert_eq!(info["client_secret_expires_at"], 0);

    let code = authorize(&server, &id).await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("code_verifier", VERIFIER),
    ];
    let (status, tokens) = token(&server, &exchange).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["access_token"].is_string());
    assert!(tokens["refresh_token"].is_string());

    let http = reqwest::Client::new();
    // Read (RFC 7592 §2.1): no secret, no token.
    let read = http
        .get(&config_uri)
        .bearer_auth(&access)
        .send()
        .await
        .expect("GET");
    assert_eq!(read.status(), StatusCode::OK);
    let read: Value = read.json().await.expect("JSON");
    assert_eq!(read["client_id"], id.as_str());
    assert!(read.get("client_secret").is_none());
    // A wrong token learns nothing.
    let wrong = http
        .get(&config_uri)
        .bearer_auth("wrong")
        .send()
        .await
        .expect("GET");
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(
        wrong
            .headers()
            .get("www-authenticate")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| h.starts_with("Bearer"))
    );
    let wrong: Value = wrong.json().await.expect("JSON");
    assert_eq!(wrong["error"], "invalid_token");

    // Update (RFC 7592 §2.2).
    let mut update = mcp_sdk_request();
    update["client_id"] = id.clone().into();
    update["client_name"] = "Renamed".into();
    update["redirect_uris"] = json!([REDIRECT, "https://app.example/cb"]);
    let put = http
        .put(&config_uri)
        .bearer_auth(&access)
        .json(&update)
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status(), StatusCode::OK);
    let put: Value = put.json().await.expect("JSON");
    assert_eq!(put["client_name"], "Renamed");
    // RFC 7592 §3: a new registration access token; the one just used is spent.
    let rotated = put["registration_access_token"]
        .as_str()
        .expect("a rotated registration access token")
        .to_owned();
    assert_ne!(rotated, access);
    let spent = http
        .get(&config_uri)
        .bearer_auth(&access)
        .send()
        .await
        .expect("GET");
    assert_eq!(spent.status(), StatusCode::UNAUTHORIZED);
    let access = rotated;
    update["redirect_uris"] = json!(["http://app.example/cb"]);
    let bad = http
        .put(&config_uri)
        .bearer_auth(&access)
        .json(&update)
        .send()
        .await
        .expect("PUT");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let bad: Value = bad.json().await.expect("JSON");
    assert_eq!(bad["error"], "invalid_redirect_uri");

    // Delete (RFC 7592 §2.3): the client is gone, its tokens with it.
    let deleted = http
        .delete(&config_uri)
        .bearer_auth(&access)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let (status, refused) = token(
        &server,
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                tokens["refresh_token"].as_str().expect("rt"),
            ),
            ("client_id", id.as_str()),
            ("client_secret", secret.as_str()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused["error"], "invalid_client");
    let gone = http
        .get(&config_uri)
        .bearer_auth(&access)
        .send()
        .await
        .expect("GET");
    assert_eq!(gone.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn closed_registration_takes_initial_access_tokens_from_the_cli() {
    let dir = data_dir();
    let out = cli(
        dir.path(),
        &[
            "registration",
            "token",
            "create",
            "--uses",
            "1",
            "--description",
            "for bob",
            "--json",
        ],
        None,
    );
    let created: Value = serde_json::from_str(out.trim()).expect("JSON");
    let token_value = created["token"].as_str().expect("token").to_owned();
    assert_eq!(created["uses_left"], 1);
    let listed = cli(
        dir.path(),
        &["registration", "token", "list", "--json"],
        None,
    );
    assert!(
        !listed.contains(&token_value),
        "the value is never listed again"
    );
    assert!(listed.contains("for bob"));

    let server = Server::start_with(dir.path(), &[ON]);
    let (status, body) = register(&server, &mcp_sdk_request(), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_token");
    let (status, body) = register(&server, &mcp_sdk_request(), Some(&token_value)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = register(&server, &mcp_sdk_request(), Some(&token_value)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_token");
}

#[tokio::test]
async fn refusals_carry_their_rfc_7591_codes_over_http() {
    let dir = data_dir();
    let server = Server::start_with(dir.path(), &[ON, OPEN]);
    let cases = [
        (
            json!({"redirect_uris": ["http://app.example/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb#frag"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"grant_types": ["client_credentials"], "redirect_uris": []}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb"], "token_endpoint_auth_method": "magic"}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://app.example/cb"], "software_statement": "x.y.z"}),
            "unapproved_software_statement",
        ),
    ];
    for (body, code) in cases {
        let (status, answer) = register(&server, &body, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error"], code, "{body}");
    }
    let not_json = reqwest::Client::new()
        .post(server.url("/register"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("POST");
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let get = reqwest::get(server.url("/register")).await.expect("GET");
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);
    let too_big =
        json!({"redirect_uris": ["https://app.example/cb"], "client_name": "x".repeat(70_000)});
    let (status, _) = register(&server, &too_big, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn registration_is_off_by_default_and_rate_limited_per_address_when_on() {
    let dir = data_dir();
    let off = Server::start(dir.path());
    assert!(metadata(&off).await.get("registration_endpoint").is_none());
    let (status, body) = register(&off, &mcp_sdk_request(), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    off.kill();

    let dir = data_dir();
    let server = Server::start_with(
        dir.path(),
        &[ON, OPEN, ("LATCHKEY_REGISTRATION__PER_IP", "2")],
    );
    for _ in 0..2 {
        let (status, body) = register(&server, &mcp_sdk_request(), None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = register(&server, &mcp_sdk_request(), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"], "temporarily_unavailable");
}

#[tokio::test]
async fn the_admin_api_makes_lists_and_revokes_initial_access_tokens() {
    const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789abcdef";
    let dir = data_dir();
    let server = Server::start_with(
        dir.path(),
        &[
            ON,
            ("LATCHKEY_ADMIN__LISTEN", "127.0.0.1:0"),
            ("LATCHKEY_ADMIN__TOKEN", ADMIN_TOKEN),
        ],
    );
    let admin = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("latchkey admin API on "))
        .expect("admin listener announced")
        .to_owned();
    let http = reqwest::Client::new();
    let tokens = format!("{admin}/admin/registration/tokens");
    let refused = http
        .post(&tokens)
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"uses": 0}))
        .send()
        .await
        .expect("POST");
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let created = http
        .post(&tokens)
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"description": "ci", "ttl": 3600}))
        .send()
        .await
        .expect("POST");
    assert_eq!(created.status(), StatusCode::CREATED);
    let created: Value = created.json().await.expect("JSON");
    let value = created["token"].as_str().expect("token").to_owned();
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(created["expires_at"].is_i64());

    let listed: Value = http
        .get(&tokens)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(!listed.to_string().contains(&value), "never listed again");

    // Any number of registrations until it is revoked.
    for _ in 0..2 {
        let (status, body) = register(&server, &mcp_sdk_request(), Some(&value)).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let revoked = http
        .delete(format!("{tokens}/{id}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let again = http
        .delete(format!("{tokens}/{id}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .expect("DELETE");
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    let (status, body) = register(&server, &mcp_sdk_request(), Some(&value)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let unauthorized = http.get(&tokens).send().await.expect("GET");
    assert_eq!(unauthorized.status(), StatusCode::UNAUTHORIZED);
}

/// A publisher's keys, trusted for ES256 by a `latchkey.toml` written into `dir`.
fn trusting_publisher(dir: &std::path::Path) -> latchkey_core::jose::KeySet {
    use latchkey_core::jose::{JwsSigner as _, KeySet, SigningAlg};
    let clock: std::sync::Arc<dyn latchkey_core::clock::Clock> =
        std::sync::Arc::new(latchkey_core::clock::SystemClock);
    let keys = KeySet::generate(&[SigningAlg::Es256], clock).expect("keys");
    let toml = format!(
        "[[registration.software_statements.trusted]]\nissuer = \"https://publisher.example\"\njwks = '{}'\nalgs = [\"ES256\"]\n",
        keys.jwks()
    );
    std::fs::write(dir.join("latchkey.toml"), toml).expect("settings");
    keys
}

fn sign_statement(keys: &latchkey_core::jose::KeySet, claims: &Value) -> String {
    keys.sign(Some(latchkey_core::jose::SigningAlg::Es256), "JWT", claims)
        .expect("sign")
}

#[tokio::test]
async fn software_statements_from_a_trusted_publisher_register_and_update_clients() {
    let dir = data_dir();
    let keys = trusting_publisher(dir.path());
    let server = Server::start_with(dir.path(), &[ON, OPEN]);
    let claims = json!({
        "iss": "https://publisher.example",
        "software_id": "signed-software",
        "software_version": "1.0",
        "client_name": "Signed App",
        "redirect_uris": [REDIRECT],
    });
    let statement = sign_statement(&keys, &claims);
    let mut body = mcp_sdk_request();
    body["client_name"] = "Sent in the clear".into();
    body["software_id"] = "clear".into();
    body["software_statement"] = statement.clone().into();
    let (status, info) = register(&server, &body, None).await;
    assert_eq!(status, StatusCode::CREATED, "{info}");
    // RFC 7591 §2.3: the statement wins; §3.2.1: it is returned as sent.
    assert_eq!(info["client_name"], "Signed App");
    assert_eq!(info["software_id"], "signed-software");
    assert_eq!(info["software_version"], "1.0");
    assert_eq!(info["software_statement"], statement.as_str());
    let id = info["client_id"].as_str().expect("id").to_owned();
    let access = info["registration_access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let config_uri = server.url(&format!("/register/{id}"));

    // Kept with the registration: read back, and replaced by an update's statement.
    let http = reqwest::Client::new();
    let read: Value = http
        .get(&config_uri)
        .bearer_auth(&access)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(read["software_statement"], statement.as_str());
    let mut newer = claims.clone();
    newer["software_version"] = "1.1".into();
    let newer = sign_statement(&keys, &newer);
    let mut update = body.clone();
    update["client_id"] = id.clone().into();
    update["software_statement"] = newer.clone().into();
    let put = http
        .put(&config_uri)
        .bearer_auth(&access)
        .json(&update)
        .send()
        .await
        .expect("PUT");
    assert_eq!(put.status(), StatusCode::OK);
    let put: Value = put.json().await.expect("JSON");
    assert_eq!(put["software_version"], "1.1");
    assert_eq!(put["software_statement"], newer.as_str());

    // Refusals: a statement from an issuer not trusted here, and one changed after signing.
    let mut stranger = claims.clone();
    stranger["iss"] = "https://stranger.example".into();
    let mut refused = body.clone();
    refused["software_statement"] = sign_statement(&keys, &stranger).into();
    let (status, answer) = register(&server, &refused, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "unapproved_software_statement");
    let mut parts: Vec<&str> = statement.split('.').collect();
    let forged = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        serde_json::to_vec(&json!({"iss": "https://publisher.example", "client_name": "Forged"}))
            .expect("json"),
    );
    parts[1] = &forged;
    refused["software_statement"] = parts.join(".").into();
    let (status, answer) = register(&server, &refused, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"], "invalid_software_statement");
}

#[tokio::test]
async fn concurrent_puts_with_one_registration_token_have_exactly_one_winner() {
    let dir = data_dir();
    let server = Server::start_with(dir.path(), &[ON, OPEN]);
    let (status, info) = register(&server, &mcp_sdk_request(), None).await;
    assert_eq!(status, StatusCode::CREATED, "{info}");
    let id = info["client_id"].as_str().expect("id").to_owned();
    let access = info["registration_access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let config_uri = server.url(&format!("/register/{id}"));
    let http = reqwest::Client::new();
    let mut update = mcp_sdk_request();
    update["client_id"] = id.clone().into();
    // Six updates and a delete, all presenting the one token at once.
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..7 {
        let req = if n < 6 {
            http.put(&config_uri).json(&update)
        } else {
            http.delete(&config_uri)
        };
        requests.spawn(req.bearer_auth(&access).send());
    }
    let mut served = 0;
    while let Some(resp) = requests.join_next().await {
        let status = resp.expect("task").expect("answered").status();
        match status {
            StatusCode::OK | StatusCode::NO_CONTENT => served += 1,
            StatusCode::UNAUTHORIZED => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        served, 1,
        "one registration access token serves one request"
    );
}
