//! Client and consent management on the real binary (issue 15): updating a client from the
//! CLI and the admin API (one validation path, the secret never touched, every change
//! audited), per-client lifetimes, the per-client `token_endpoint_auth_method` enforced at
//! the token, introspection and revocation endpoints, and a user's consents listed and
//! revoked from the CLI, the admin API and the "apps you allowed" page, revoking the tokens
//! the consent produced.

mod common;

use common::agent::Agent;
use common::{Server, add_user, cli, cli_outcome, data_dir};
use latchkey_core::pkce::s256_challenge;
use std::collections::BTreeMap;

const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789abcdef";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

fn start(dir: &std::path::Path) -> (Server, String) {
    let server = Server::start_with(
        dir,
        &[
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
    (server, admin)
}

/// Calls the admin API; returns the status and the JSON body (`null` when there is none).
async fn admin_call(
    admin: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{admin}{path}"))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let resp = req.send().await.expect("admin answers");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or_default())
}

fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// POSTs `form` to `path`, authenticating with Basic (`Some`) or in the body (`None`, the
/// form carries the credentials); returns status, `WWW-Authenticate` and JSON.
async fn post(
    server: &Server,
    path: &str,
    basic_auth: Option<String>,
    form: &[(&str, &str)],
) -> (u16, Option<String>, serde_json::Value) {
    let mut req = reqwest::Client::new().post(server.url(path)).form(form);
    if let Some(auth) = basic_auth {
        req = req.header("authorization", auth);
    }
    let resp = req.send().await.expect("server answers");
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, challenge, resp.json().await.unwrap_or_default())
}

#[tokio::test]
async fn clients_are_updated_from_the_cli_and_the_api_and_their_auth_method_is_enforced() {
    let dir = data_dir();
    // Created with a lifetime and an auth method, from the CLI.
    let out = cli(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "Lifetimes",
            "--json",
            "--grant-type",
            "client_credentials",
            "--redirect-uri",
            "https://app.example/cb",
            "--access-token-ttl",
            "120",
            "--token-endpoint-auth-method",
            "client_secret_post",
        ],
        None,
    );
    let created: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    let id = created["client_id"].as_str().expect("id").to_owned();
    let secret = created["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();
    let shown = cli(dir.path(), &["client", "show", &id], None);
    assert!(shown.contains("access_ttl:     120s"), "{shown}");
    assert!(
        shown.contains("auth_method:    client_secret_post"),
        "{shown}"
    );

    let (server, admin) = start(dir.path());
    let by_post = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
    ];
    let (status, _, tokens) = post(&server, "/token", None, &by_post).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["expires_in"], 120, "the client's own lifetime");
    let access = tokens["access_token"].as_str().expect("token").to_owned();

    // The other method is refused at every endpoint that authenticates the client.
    let grant = [("grant_type", "client_credentials")];
    let introspect = [("token", access.as_str())];
    for (path, form) in [
        ("/token", &grant[..]),
        ("/introspect", &introspect[..]),
        ("/revoke", &introspect[..]),
    ] {
        let (status, challenge, body) = post(&server, path, Some(basic(&id, &secret)), form).await;
        assert_eq!(status, 401, "{path}: {body}");
        assert_eq!(body["error"], "invalid_client", "{path}");
        assert!(
            challenge
                .as_deref()
                .is_some_and(|c| c.starts_with("Basic ")),
            "{path}: {challenge:?}"
        );
    }
    // The registered method still works there.
    let mut introspect_post = by_post[1..].to_vec();
    introspect_post.push(("token", &access));
    let (status, _, described) = post(&server, "/introspect", None, &introspect_post).await;
    assert_eq!(status, 200);
    assert_eq!(described["active"], true, "{described}");

    // CLI update: name, redirect URIs added and removed, a scope, the lifetime reset, the
    // method switched; the JSON answer shows the client as it now is.
    let (ok, stdout, stderr) = cli_outcome(
        dir.path(),
        &[
            "client",
            "update",
            &id,
            "--json",
            "--name",
            "Renamed",
            "--add-redirect-uri",
            "https://app.example/other",
            "--remove-redirect-uri",
            "https://app.example/cb",
            "--scope",
            "read write",
            "--reset",
            "access-token-ttl",
            "--token-endpoint-auth-method",
            "client_secret_basic",
        ],
    );
    assert!(ok, "{stderr}");
    let updated: serde_json::Value = serde_json::from_str(stdout.trim()).expect("JSON");
    assert_eq!(updated["name"], "Renamed");
    assert_eq!(
        updated["redirect_uris"],
        serde_json::json!(["https://app.example/other"])
    );
    assert_eq!(updated["scope"], "read write");
    assert_eq!(updated["access_token_ttl"], serde_json::Value::Null);
    assert_eq!(updated["token_endpoint_auth_method"], "client_secret_basic");
    let audit = stderr
        .lines()
        .find(|l| l.contains("client_updated"))
        .unwrap_or_else(|| panic!("no audit line: {stderr}"));
    assert!(
        audit.contains("latchkey::audit") && audit.contains(&id),
        "{audit}"
    );
    assert!(audit.contains("token_endpoint_auth_method"), "{audit}");
    assert!(!stderr.contains(&secret), "a secret reached the log");

    // The secret did not change; the method did: post is refused now, basic works, and the
    // server's lifetime applies again.
    let (status, _, body) = post(&server, "/token", None, &by_post).await;
    assert_eq!(status, 401, "{body}");
    let (status, _, tokens) = post(&server, "/token", Some(basic(&id, &secret)), &grant).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["expires_in"], 3600);

    // The same validation as on creation, on either path; nothing is stored when it fails.
    for bad in [
        vec!["--add-redirect-uri", "https://app.example/cb#fragment"],
        vec!["--remove-redirect-uri", "https://app.example/never"],
        vec!["--token-endpoint-auth-method", "none"],
        vec!["--access-token-ttl", "0"],
        vec!["--grant-type", "telepathy"],
        vec!["--scope", "x", "--reset", "scope"],
    ] {
        let mut args = vec!["client", "update", id.as_str()];
        args.extend(bad.iter().copied());
        let (ok, _, stderr) = cli_outcome(dir.path(), &args);
        assert!(!ok, "{bad:?} was accepted");
        assert!(stderr.contains("latchkey:"), "{bad:?}: {stderr}");
    }
    let (ok, _, _) = cli_outcome(
        dir.path(),
        &["client", "update", "no-such-client", "--name", "x"],
    );
    assert!(!ok);

    // The admin API: PATCH with `null` back to the default and new lifetimes.
    let path = format!("/admin/clients/{id}");
    let (status, view) = admin_call(
        &admin,
        reqwest::Method::PATCH,
        &path,
        Some(serde_json::json!({
            "redirect_uris": ["https://app.example/a", "http://127.0.0.1/cb"],
            "token_endpoint_auth_method": null,
            "access_token_ttl": 90,
            "refresh_token_ttl": 7200,
            "bind_tokens": false,
        })),
    )
    .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["token_endpoint_auth_method"], serde_json::Value::Null);
    assert_eq!(view["access_token_ttl"], 90);
    assert_eq!(view["refresh_token_ttl"], 7200);
    assert_eq!(view["name"], "Renamed", "what the body does not name stays");
    assert!(view.get("client_secret").is_none());
    for body in [
        serde_json::json!({ "redirect_uris": ["javascript:alert(1)"] }),
        serde_json::json!({ "token_endpoint_auth_method": "private_key_jwt" }),
        serde_json::json!({ "refresh_token_ttl": 0 }),
        serde_json::json!({ "client_secret": "chosen" }),
        serde_json::json!({ "name": "" }),
    ] {
        let (status, answer) =
            admin_call(&admin, reqwest::Method::PATCH, &path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {answer}");
    }
    let (status, _) = admin_call(
        &admin,
        reqwest::Method::PATCH,
        "/admin/clients/nobody",
        Some(serde_json::json!({ "name": "x" })),
    )
    .await;
    assert_eq!(status, 404);
    // Both methods work again (the type's default); the secret is still the first one.
    let (status, _, tokens) = post(&server, "/token", None, &by_post).await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["expires_in"], 90);
    let (status, _, _) = post(&server, "/token", Some(basic(&id, &secret)), &grant).await;
    assert_eq!(status, 200);

    // Created through the API with the new settings; a public client cannot take a secret
    // method, nor a confidential one `none`.
    let (status, created) = admin_call(
        &admin,
        reqwest::Method::POST,
        "/admin/clients",
        Some(serde_json::json!({
            "name": "API basic-only",
            "grant_types": ["client_credentials"],
            "access_token_ttl": 300,
            "token_endpoint_auth_method": "client_secret_basic",
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(created["access_token_ttl"], 300);
    let api_id = created["client_id"].as_str().expect("id");
    let api_secret = created["client_secret"].as_str().expect("secret");
    let (status, _, _) = post(
        &server,
        "/token",
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", api_id),
            ("client_secret", api_secret),
        ],
    )
    .await;
    assert_eq!(status, 401);
    for body in [
        serde_json::json!({ "name": "p", "public": true, "token_endpoint_auth_method": "client_secret_basic" }),
        serde_json::json!({ "name": "c", "token_endpoint_auth_method": "none" }),
    ] {
        let (status, answer) =
            admin_call(&admin, reqwest::Method::POST, "/admin/clients", Some(body)).await;
        assert_eq!(status, 400, "{answer}");
    }

    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("log");
    let api_audit = log
        .lines()
        .find(|l| l.contains("client_updated") && l.contains("\"api\""))
        .unwrap_or_else(|| panic!("no API audit line in {log}"));
    assert!(api_audit.contains("redirect_uris"), "{api_audit}");
    assert!(!log.contains(&secret), "a secret reached the log");
}

/// The code flow for a confidential client, remembering consent; returns the token response.
async fn authorize(
    server: &Server,
    agent: &mut Agent,
    id: &str,
    secret: &str,
) -> serde_json::Value {
    let redirect = "http://127.0.0.1:41234/callback";
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", id)
        .append_pair("redirect_uri", redirect)
        .append_pair("scope", "photos:read")
        .append_pair("state", "s")
        .append_pair("code_challenge", &s256_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .finish();
    let mut page = agent.get(&server.url(&format!("/authorize?{query}"))).await;
    if page.body.contains("Sign in") {
        let after = agent
            .submit_login(&server.base, &page, "alice", "alice-password")
            .await;
        assert_eq!(after.status, 303, "{}", after.body);
        page = agent.get(&server.url(after.location())).await;
    }
    assert_eq!(page.status, 200, "the consent page is shown: {}", page.body);
    assert!(page.body.contains("name=\"decision\""), "{}", page.body);
    let done = agent
        .post(
            &server.url("/consent"),
            &[
                ("csrf_token", &page.field("csrf_token")),
                ("request", &page.field("request")),
                ("decision", "allow"),
                ("remember", "yes"),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let params: BTreeMap<String, String> = url::Url::parse(done.location())
        .expect("absolute")
        .query_pairs()
        .into_owned()
        .collect();
    let (status, _, tokens) = post(
        server,
        "/token",
        Some(basic(id, secret)),
        &[
            ("grant_type", "authorization_code"),
            ("code", &params["code"]),
            ("redirect_uri", redirect),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    tokens
}

/// Whether the access and the refresh token of `tokens` are still active, by admin
/// introspection (which, unlike refreshing, changes nothing).
async fn still_work(admin: &str, tokens: &serde_json::Value) -> (bool, bool) {
    let mut active = [false; 2];
    for (i, kind) in ["access_token", "refresh_token"].into_iter().enumerate() {
        let (status, described) = admin_call(
            admin,
            reqwest::Method::POST,
            "/admin/tokens/introspect",
            Some(serde_json::json!({ "token": tokens[kind] })),
        )
        .await;
        assert_eq!(status, 200, "{described}");
        active[i] = described["active"] == true;
    }
    (active[0], active[1])
}

#[tokio::test]
async fn consents_are_listed_and_revoked_from_the_page_the_api_and_the_cli_with_their_tokens() {
    let dir = data_dir();
    let out = cli(
        dir.path(),
        &[
            "client",
            "create",
            "--json",
            "--name",
            "Shop <One>",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "photos:read photos:write",
        ],
        None,
    );
    let created: serde_json::Value = serde_json::from_str(out.trim()).expect("JSON");
    let client = common::CliClient {
        id: created["client_id"].as_str().expect("id").to_owned(),
        secret: created["client_secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
    };
    add_user(dir.path(), "alice", "alice-password");
    let (server, admin) = start(dir.path());
    let (id, secret) = (client.id.as_str(), client.secret.as_str());

    // Not signed in: the page says so and lists nothing.
    let mut agent = Agent::new();
    let anonymous = agent.get(&server.url("/apps")).await;
    assert_eq!(anonymous.status, 200);
    assert!(
        anonymous.body.contains("You are not signed in"),
        "{}",
        anonymous.body
    );

    // 1. The page.
    let tokens = authorize(&server, &mut agent, id, secret).await;
    assert_eq!(still_work(&admin, &tokens).await, (true, true));
    let page = agent.get(&server.url("/apps")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Shop &lt;One&gt;"),
        "escaped: {}",
        page.body
    );
    assert!(page.body.contains("photos:read"), "{}", page.body);
    assert!(page.body.contains(" UTC"), "{}", page.body);
    assert_eq!(page.field("client_id"), id);
    assert!(page.headers["content-security-policy"].to_str().is_ok());
    // Without the CSRF token, or from another site: refused, nothing revoked.
    let forged = agent.post(&server.url("/apps"), &[("client_id", id)]).await;
    assert_eq!(forged.status, 403);
    let cross = agent
        .post_with(
            &server.url("/apps"),
            &[("csrf_token", &page.field("csrf_token")), ("client_id", id)],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(cross.status, 403);
    assert_eq!(still_work(&admin, &tokens).await, (true, true));
    let revoked = agent
        .post(
            &server.url("/apps"),
            &[("csrf_token", &page.field("csrf_token")), ("client_id", id)],
        )
        .await;
    assert_eq!(revoked.status, 303, "{}", revoked.body);
    assert_eq!(revoked.location(), "/apps");
    // The audit line says who withdrew it and from where.
    let mut log = String::new();
    for _ in 0..50 {
        log = std::fs::read_to_string(dir.path().join("server.log")).expect("server log");
        if log.contains("consent_revoked") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let line = log
        .lines()
        .find(|l| l.contains("consent_revoked") && l.contains("latchkey::audit"))
        .unwrap_or_else(|| panic!("no consent_revoked audit line in:\n{log}"));
    assert!(
        line.contains("\"client_ip\":\"127.0.0.1\""),
        "client address in {line}"
    );
    let after = agent.get(&server.url("/apps")).await;
    assert!(
        after.body.contains("You have not allowed"),
        "{}",
        after.body
    );
    assert_eq!(
        still_work(&admin, &tokens).await,
        (false, false),
        "revoking access revokes the tokens the consent produced"
    );
    let (status, _, refused) = post(
        &server,
        "/token",
        Some(basic(id, secret)),
        &[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                tokens["refresh_token"].as_str().expect("refresh"),
            ),
        ],
    )
    .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    // 2. The admin API; the consent page is asked again, since the consent was forgotten.
    let tokens = authorize(&server, &mut agent, id, secret).await;
    let (status, listed) = admin_call(
        &admin,
        reqwest::Method::GET,
        "/admin/users/alice/consents",
        None,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed[0]["client_id"], id);
    assert_eq!(listed[0]["client_name"], "Shop <One>");
    assert_eq!(listed[0]["scope"], "photos:read");
    assert!(listed[0]["granted_at"].as_i64().is_some_and(|t| t > 0));
    let path = format!("/admin/users/alice/consents/{id}");
    let (status, answer) = admin_call(&admin, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["tokens_revoked"], 2, "{answer}");
    assert_eq!(still_work(&admin, &tokens).await, (false, false));
    let (status, _) = admin_call(&admin, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(status, 404);
    let (status, _) = admin_call(
        &admin,
        reqwest::Method::GET,
        "/admin/users/nobody/consents",
        None,
    )
    .await;
    assert_eq!(status, 404);

    // 3. The CLI.
    let tokens = authorize(&server, &mut agent, id, secret).await;
    let listed = cli(dir.path(), &["consent", "list", "alice"], None);
    assert!(
        listed.contains(id) && listed.contains("photos:read"),
        "{listed}"
    );
    assert!(listed.contains("Shop <One>"), "{listed}");
    let (ok, stdout, stderr) = cli_outcome(dir.path(), &["consent", "revoke", "alice", id]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("2 token(s)"), "{stdout}");
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("consent_revoked") && l.contains("latchkey::audit")),
        "{stderr}"
    );
    assert_eq!(still_work(&admin, &tokens).await, (false, false));
    let listed = cli(dir.path(), &["consent", "list", "alice"], None);
    assert!(listed.contains("has allowed no clients"), "{listed}");
    let (ok, _, _) = cli_outcome(dir.path(), &["consent", "revoke", "alice", id]);
    assert!(!ok, "nothing left to revoke");
}

/// The admin API manages signing keys like the CLI: listed with their state, rotated (the
/// successor waits as `next`, or signs at once with `immediate`), retired; an unknown
/// algorithm is 400 and an unknown key id 404. The JWKS follows once the server reloads.
#[tokio::test]
async fn signing_keys_are_listed_rotated_and_retired_through_the_admin_api() {
    let dir = data_dir();
    let (_server, admin) = start(dir.path());
    let (status, keys) = admin_call(&admin, reqwest::Method::GET, "/admin/keys", None).await;
    assert_eq!(status, 200, "{keys}");
    let keys = keys.as_array().expect("list").clone();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0]["state"], "active");
    let old = keys[0]["kid"].as_str().expect("kid").to_owned();

    let (status, rotated) = admin_call(
        &admin,
        reqwest::Method::POST,
        "/admin/keys/rotate",
        Some(serde_json::json!({"alg": "ES256", "immediate": true})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    let rotated = rotated.as_array().expect("list").clone();
    let active: Vec<&str> = rotated
        .iter()
        .filter(|k| k["state"] == "active")
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(active.len(), 1, "{rotated:?}");
    assert_ne!(
        active[0], old,
        "an immediate rotation signs with the new key at once"
    );
    let new = active[0].to_owned();

    let (status, body) = admin_call(
        &admin,
        reqwest::Method::POST,
        "/admin/keys/rotate",
        Some(serde_json::json!({"alg": "HS256"})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = admin_call(
        &admin,
        reqwest::Method::POST,
        "/admin/keys/no-such-kid/retire",
        None,
    )
    .await;
    assert_eq!(status, 404, "{body}");

    let (status, retired) = admin_call(
        &admin,
        reqwest::Method::POST,
        &format!("/admin/keys/{new}/retire"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{retired}");
    let state = |kid: &str| {
        retired
            .as_array()
            .and_then(|a| a.iter().find(|k| k["kid"] == kid))
            .and_then(|k| k["state"].as_str())
            .map(str::to_owned)
    };
    assert_eq!(state(&new).as_deref(), Some("retiring"));
}
