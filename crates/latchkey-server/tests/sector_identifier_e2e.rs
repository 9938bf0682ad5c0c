//! `sector_identifier_uri` on the real binary (OpenID Connect Core §8.1, Registration §2,
//! §5): a pairwise client whose redirect URIs are on several hosts registers one; the CLI and
//! the admin API fetch it and refuse the client (`invalid_client_metadata`) unless it lists
//! every redirect URI; clients of one sector see the same pairwise `sub`, others another;
//! and the back-channel logout token names the user by that same pairwise `sub`.
//!
//! The documents are served by this test over plain `http` on 127.0.0.1, which the server
//! fetches only because the test turns on the development switch
//! `oidc.allow_http_sector_identifier_uri`; without it such a URI is refused.

mod common;

use common::agent::Agent;
use common::{Server, add_user, cli, cli_outcome, data_dir};
use latchkey_core::pkce::s256_challenge;
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789abcdef";
const A: &str = "https://a.rp.example/cb";
const B: &str = "https://b.rp.example/cb";
const C: &str = "https://c.other.example/cb";

/// Serves sector documents, and records the back-channel logout tokens POSTed to `/bc`.
#[derive(Clone, Default)]
struct Rp {
    logouts: Arc<Mutex<Vec<String>>>,
}

impl Rp {
    async fn start(&self) -> String {
        let logouts = Arc::clone(&self.logouts);
        let big = format!("[{}]", vec!["\"https://x.example/\""; 4000].join(","));
        let app = axum::Router::new()
            .route(
                "/both.json",
                axum::routing::get(|| async { format!(r#"["{A}","{B}"]"#) }),
            )
            .route(
                "/only-a.json",
                axum::routing::get(|| async { format!(r#"["{A}"]"#) }),
            )
            .route(
                "/not-an-array.json",
                axum::routing::get(|| async { format!(r#"{{"redirect_uris":["{A}","{B}"]}}"#) }),
            )
            .route("/big.json", axum::routing::get(move || async move { big }))
            .route(
                "/moved.json",
                axum::routing::get(|| async {
                    (axum::http::StatusCode::FOUND, [("location", "/both.json")])
                }),
            )
            .route(
                "/bc",
                axum::routing::post(move |body: String| {
                    let logouts = Arc::clone(&logouts);
                    async move {
                        logouts.lock().expect("lock").push(body);
                        axum::http::StatusCode::OK
                    }
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }
}

/// `latchkey client create` for a pairwise client with `uris`, off the async runtime (the
/// CLI fetches from the server this runtime serves); its stdout, or its stderr on failure.
async fn create(dir: &std::path::Path, uris: &[&str], extra: &[&str]) -> Result<Value, String> {
    let mut args: Vec<String> = [
        "client",
        "create",
        "--name",
        "RP",
        "--json",
        "--scope",
        "openid",
        "--subject-type",
        "pairwise",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for uri in uris {
        args.extend(["--redirect-uri".to_owned(), (*uri).to_owned()]);
    }
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out, err) = cli_outcome(&dir, &args);
        if ok {
            Ok(serde_json::from_str(out.trim()).expect("json"))
        } else {
            Err(err)
        }
    })
    .await
    .expect("cli task")
}

/// Alice's ID-token `sub` at `client_id` (logging in when asked, approving), with
/// `redirect_uri`.
async fn sub_at(agent: &mut Agent, server: &Server, client: &Value, redirect_uri: &str) -> String {
    let client_id = client["client_id"].as_str().expect("id");
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", "openid")
        .append_pair("code_challenge", &s256_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .finish();
    let mut page = agent.get(&server.url(&format!("/authorize?{query}"))).await;
    if page.body.contains("name=\"password\"") {
        let after = agent
            .submit_login(&server.base, &page, "alice", "alice-password")
            .await;
        page = agent.get(&server.url(after.location())).await;
    }
    if page.status == 200 && page.body.contains("decision") {
        page = agent.submit_consent(&server.base, &page, "allow").await;
    }
    let url = url::Url::parse(page.location()).expect("redirect");
    let code = url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| panic!("no code: {}", page.location()));
    let tokens: Value = reqwest::Client::new()
        .post(server.url("/token"))
        .basic_auth(
            client_id,
            Some(client["client_secret"].as_str().expect("secret")),
        )
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("json");
    let id_token = tokens["id_token"].as_str().expect("id_token");
    let payload = id_token.split('.').nth(1).expect("payload");
    use base64::Engine as _;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64"),
    )
    .expect("json");
    claims["sub"].as_str().expect("sub").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sector_identifier_uri_is_fetched_checked_and_names_the_pairwise_sector() {
    let rp = Rp::default();
    let base = rp.start().await;
    let dir = data_dir();

    // Without the development switch, plain http is refused.
    let refused = create(
        dir.path(),
        &[A, B],
        &["--sector-identifier-uri", &format!("{base}/both.json")],
    )
    .await
    .expect_err("http refused");
    assert!(refused.contains("invalid_client_metadata"), "{refused}");

    std::fs::write(
        dir.path().join("latchkey.toml"),
        "[oidc]\nallow_http_sector_identifier_uri = true\n",
    )
    .expect("settings");
    // Two hosts and no sector: refused (§8.1).
    let err = create(dir.path(), &[A, B], &[])
        .await
        .expect_err("no sector");
    assert!(err.contains("sector_identifier_uri"), "{err}");
    // Documents that do not list every redirect URI, or cannot be read as one.
    for (path, why) in [
        ("only-a.json", "https://b.rp.example/cb"),
        ("not-an-array.json", "JSON array"),
        ("big.json", "larger than"),
        ("moved.json", "redirects are not followed"),
        ("missing.json", "404"),
    ] {
        let err = create(
            dir.path(),
            &[A, B],
            &["--sector-identifier-uri", &format!("{base}/{path}")],
        )
        .await
        .expect_err(path);
        assert!(err.contains("invalid_client_metadata"), "{path}: {err}");
        assert!(err.contains(why), "{path}: {err}");
    }
    let sector = format!("{base}/both.json");
    let both = create(
        dir.path(),
        &[A, B],
        &[
            "--sector-identifier-uri",
            &sector,
            "--backchannel-logout-uri",
            &format!("{base}/bc"),
        ],
    )
    .await
    .expect("listed: accepted");
    let only_b = create(dir.path(), &[B], &["--sector-identifier-uri", &sector])
        .await
        .expect("accepted");
    let other = create(dir.path(), &[C], &[]).await.expect("one host");
    let shown: Value = serde_json::from_str(&cli(
        dir.path(),
        &[
            "client",
            "update",
            both["client_id"].as_str().expect("id"),
            "--json",
        ],
        None,
    ))
    .expect("json");
    assert_eq!(shown["subject_type"], "pairwise");
    assert_eq!(shown["sector_identifier_uri"], sector.as_str());

    add_user(dir.path(), "alice", "alice-password");
    let server = Server::start_with(
        dir.path(),
        &[
            ("LATCHKEY_ADMIN__LISTEN", "127.0.0.1:0"),
            ("LATCHKEY_ADMIN__TOKEN", ADMIN_TOKEN),
        ],
    );
    std::fs::write(
        dir.path().join("latchkey.toml"),
        format!(
            "issuer = \"{}\"\n[oidc]\nallow_http_sector_identifier_uri = true\n",
            server.base
        ),
    )
    .expect("settings");
    let admin = server
        .banner
        .iter()
        .find_map(|l| l.strip_prefix("latchkey admin API on "))
        .expect("admin listener")
        .to_owned();

    // One sector, one pairwise sub; another sector, another.
    let mut agent = Agent::new();
    let sub_both = sub_at(&mut agent, &server, &both, A).await;
    let sub_b = sub_at(&mut agent, &server, &only_b, B).await;
    let sub_other = sub_at(&mut agent, &server, &other, C).await;
    assert_eq!(sub_both, sub_b, "the sector is the document's host");
    assert_ne!(sub_both, sub_other);
    assert_eq!(sub_both.len(), 43, "a pairwise value: {sub_both}");

    // The admin API refuses a change the document does not cover, and a new client too.
    let http = reqwest::Client::new();
    let id = both["client_id"].as_str().expect("id");
    let resp = http
        .patch(format!("{admin}/admin/clients/{id}"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"add_redirect_uris": [C]}))
        .send()
        .await
        .expect("admin");
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid_client_metadata") && e.contains(C)),
        "{body}"
    );
    let resp = http
        .post(format!("{admin}/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({
            "name": "RP", "redirect_uris": [A, C], "subject_type": "pairwise",
            "sector_identifier_uri": sector,
        }))
        .send()
        .await
        .expect("admin");
    assert_eq!(resp.status().as_u16(), 400);
    let resp = http
        .post(format!("{admin}/admin/clients"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({
            "name": "RP", "redirect_uris": [A], "subject_type": "pairwise",
            "sector_identifier_uri": sector,
        }))
        .send()
        .await
        .expect("admin");
    assert_eq!(resp.status().as_u16(), 201, "{:?}", resp.text().await);

    // Log out everywhere: the pairwise client is told about the user by its pairwise sub.
    let dir_path = dir.path().to_owned();
    let out =
        tokio::task::spawn_blocking(move || cli(&dir_path, &["user", "logout", "alice"], None))
            .await
            .expect("cli");
    assert!(out.contains("1 delivered"), "{out}");
    let mut body = None;
    for _ in 0..100 {
        if let Some(b) = rp.logouts.lock().expect("lock").first().cloned() {
            body = Some(b);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let body = body.expect("a logout token");
    let token = form_urlencoded::parse(body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .expect("logout_token");
    let jwks: jsonwebtoken::jwk::JwkSet = reqwest::get(server.url("/jwks"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let header = jsonwebtoken::decode_header(&token).expect("header");
    let key = jsonwebtoken::DecodingKey::from_jwk(
        jwks.find(header.kid.as_deref().expect("kid")).expect("key"),
    )
    .expect("key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[id]);
    validation.set_issuer(&[&server.base]);
    let claims: Value = jsonwebtoken::decode(&token, &key, &validation)
        .expect("verifies")
        .claims;
    assert_eq!(claims["sub"], sub_both.as_str(), "{claims}");
    assert!(claims["sid"].is_string() && claims.get("nonce").is_none());
}
