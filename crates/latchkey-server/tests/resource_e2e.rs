//! Resource indicators (RFC 8707), protected-resource metadata (RFC 9728) and token exchange
//! (RFC 8693) through the real binary: `[[resources]]` settings, the metadata documents, an
//! MCP-style client naming its resource at `/authorize` and `/token`, each subject token type
//! exchanged, delegation with `act`, and one refusal per rule with its RFC error code; a
//! trusted external issuer's JWT verified with keys from its `jwks_uri` served here, and each
//! `requested_token_type`.

mod common;

use common::agent::Agent;
use common::{CliClient, Server, add_user, cli, create_client, data_dir, post_token};
use latchkey_core::clock::{Clock as _, SystemClock};
use latchkey_core::jose::{JwsSigner as _, KeySet, SigningAlg};
use latchkey_core::pkce::s256_challenge;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const MCP: &str = "https://mcp.example.test/tools/mcp";
const API: &str = "https://api.example.test/";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const AT: &str = "urn:ietf:params:oauth:token-type:access_token";
const RT: &str = "urn:ietf:params:oauth:token-type:refresh_token";
const IDT: &str = "urn:ietf:params:oauth:token-type:id_token";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:41234/callback";

struct Env {
    dir: tempfile::TempDir,
    server: Server,
    http: reqwest::Client,
}

fn start() -> Env {
    start_with("")
}

/// [`start`] with `extra` at the head of the settings file (top-level keys, then tables).
fn start_with(extra: &str) -> Env {
    let dir = data_dir();
    std::fs::write(
        dir.path().join("latchkey.toml"),
        format!(
            r#"{extra}
[scopes]
available = ["read", "write"]
default = ["read"]

[grants]
password = true
token_exchange = true

[[resources]]
id = "{MCP}"
name = "Tools"
scopes = ["read", "write"]
serve_metadata = true

[[resources]]
id = "{API}"
scopes = ["read"]
"#
        ),
    )
    .expect("settings");
    add_user(dir.path(), "alice", "alice-password");
    let server = Server::start(dir.path());
    Env {
        dir,
        server,
        http: reqwest::Client::new(),
    }
}

fn enc(v: &str) -> String {
    form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

impl Env {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.server.url(path))
            .send()
            .await
            .expect("answer");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    async fn token(&self, client: &CliClient, body: &str) -> (u16, Value) {
        let (status, _, json) =
            post_token(&self.http, &self.server, Some(&client.basic()), body).await;
        (status, json)
    }

    async fn introspect(&self, rs: &CliClient, token: &str) -> Value {
        self.http
            .post(self.server.url("/introspect"))
            .header("authorization", rs.basic())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", enc(token)))
            .send()
            .await
            .expect("introspect")
            .json()
            .await
            .expect("json")
    }

    /// Runs `/authorize` with `extra` through login and consent as alice; the redirect's
    /// query parameters.
    async fn authorize(
        &self,
        client_id: &str,
        scope: &str,
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", REDIRECT)
            .append_pair("scope", scope)
            .append_pair("state", "st")
            .append_pair("nonce", "n")
            .append_pair("code_challenge", &s256_challenge(VERIFIER))
            .append_pair("code_challenge_method", "S256")
            .extend_pairs(extra)
            .finish();
        let mut agent = Agent::new();
        let mut page = agent
            .get(&self.server.url(&format!("/authorize?{query}")))
            .await;
        if page.status == 200 && page.body.contains("name=\"password\"") {
            let after = agent
                .post(
                    &self.server.url("/login"),
                    &[
                        ("csrf_token", &page.field("csrf_token")),
                        ("request", &page.field("request")),
                        ("username", "alice"),
                        ("password", "alice-password"),
                    ],
                )
                .await;
            assert_eq!(after.status, 303, "{}", after.body);
            let consent = agent.get(&self.server.url(after.location())).await;
            page = agent
                .post(
                    &self.server.url("/consent"),
                    &[
                        ("csrf_token", &consent.field("csrf_token")),
                        ("request", &consent.field("request")),
                        ("decision", "allow"),
                    ],
                )
                .await;
        }
        let location = page.location().to_owned();
        assert!(
            location.starts_with(REDIRECT),
            "{} {}",
            page.status,
            page.body
        );
        let query = location.split_once('?').map(|(_, q)| q).unwrap_or("");
        form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect()
    }

    /// A client made through the CLI with a token exchange policy.
    fn exchanger(&self, name: &str, policy: Option<Value>) -> CliClient {
        let mut args = vec![
            "--grant-type".to_owned(),
            EXCHANGE.to_owned(),
            "--grant-type".to_owned(),
            "client_credentials".to_owned(),
        ];
        if let Some(policy) = policy {
            let path = self.dir.path().join(format!("{name}.json"));
            std::fs::write(&path, policy.to_string()).expect("policy file");
            args.push("--token-exchange-policy".into());
            args.push(path.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        create_client(self.dir.path(), &args)
    }
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn full_policy() -> Value {
    json!({
        "subject_token_types": ["access_token", "refresh_token", "id_token", "jwt"],
        "actor_token_types": ["access_token"],
        "subject_clients": ["*"],
        "audiences": [API],
        "impersonation": true,
        "delegation": true,
    })
}

#[tokio::test]
async fn metadata_lists_the_resources_and_serves_their_rfc9728_documents() {
    let env = start();
    let (status, meta) = env.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(status, 200);
    assert_eq!(meta["protected_resources"], json!([MCP, API]));
    assert!(
        meta["grant_types_supported"]
            .as_array()
            .expect("list")
            .contains(&json!(EXCHANGE)),
        "{meta}"
    );
    let (status, doc) = env
        .get("/.well-known/oauth-protected-resource/tools/mcp")
        .await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["resource"], MCP);
    assert_eq!(doc["authorization_servers"], json!([env.server.base]));
    assert_eq!(doc["scopes_supported"], json!(["read", "write"]));
    assert_eq!(doc["resource_name"], "Tools");
    // Only resources with serve_metadata are published.
    let (status, _) = env.get("/.well-known/oauth-protected-resource").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn an_mcp_client_names_its_resource_at_authorize_and_token_and_the_token_is_for_it() {
    let env = start();
    let out = cli(
        env.dir.path(),
        &[
            "client",
            "create",
            "--name",
            "MCP client",
            "--public",
            "--json",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
            "--scope",
            "read write",
        ],
        None,
    );
    let public: Value = serde_json::from_str(out.trim()).expect("json");
    let client_id = public["client_id"].as_str().expect("id");
    let rs = create_client(
        env.dir.path(),
        &["--grant-type", "client_credentials", "--introspect"],
    );

    let params = env.authorize(client_id, "read", &[("resource", MCP)]).await;
    let code = param(&params, "code").expect("code");
    let body = format!(
        "grant_type=authorization_code&client_id={}&code={code}&code_verifier={VERIFIER}&redirect_uri={}&resource={}",
        enc(client_id),
        enc(REDIRECT),
        enc(MCP)
    );
    let (status, _, tokens) = post_token(&env.http, &env.server, None, &body).await;
    assert_eq!(status, 200, "{tokens}");
    let info = env
        .introspect(&rs, tokens["access_token"].as_str().expect("at"))
        .await;
    assert_eq!(info["aud"], MCP, "{info}");
    // A refresh cannot reach a resource the user did not authorize.
    let refresh = tokens["refresh_token"].as_str().expect("rt");
    let (status, _, refused) = post_token(
        &env.http,
        &env.server,
        None,
        &format!(
            "grant_type=refresh_token&client_id={}&refresh_token={}&resource={}",
            enc(client_id),
            enc(refresh),
            enc(API)
        ),
    )
    .await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("invalid_target"))
    );

    // An unknown resource goes back to the client as invalid_target.
    let params = env
        .authorize(
            client_id,
            "read",
            &[("resource", "https://unknown.example/")],
        )
        .await;
    assert_eq!(param(&params, "error"), Some("invalid_target"));
    assert_eq!(param(&params, "state"), Some("st"));
}

#[tokio::test]
async fn the_token_endpoint_refuses_bad_targets_with_rfc_errors() {
    let env = start();
    let client = create_client(env.dir.path(), &["--grant-type", "client_credentials"]);
    let cases = [
        (
            "unknown resource",
            format!("resource={}", enc("https://nowhere.example/")),
            "invalid_target",
        ),
        (
            "relative resource",
            "resource=%2Fapi".to_owned(),
            "invalid_target",
        ),
        (
            "fragment",
            format!("resource={}", enc("https://api.example.test/#x")),
            "invalid_target",
        ),
        (
            "scope the resource does not accept",
            format!("scope=write&resource={}", enc(API)),
            "invalid_scope",
        ),
    ];
    for (why, params, error) in cases {
        let (status, body) = env
            .token(&client, &format!("grant_type=client_credentials&{params}"))
            .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some(error)),
            "{why}: {body}"
        );
    }
    let (status, body) = env
        .token(
            &client,
            &format!(
                "grant_type=client_credentials&resource={}&resource={}",
                enc(API),
                enc(MCP)
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn token_exchange_takes_each_token_type_delegates_with_act_and_refuses_per_policy() {
    let env = start();
    let rs = create_client(
        env.dir.path(),
        &["--grant-type", "client_credentials", "--introspect"],
    );
    // The user's tokens: access and refresh from the password grant, an ID token from the
    // code flow, and a JWT access token of a client.
    let frontend = create_client(
        env.dir.path(),
        &["--grant-type", "password", "--grant-type", "refresh_token"],
    );
    let (status, user) = env
        .token(
            &frontend,
            "grant_type=password&username=alice&password=alice-password&scope=read",
        )
        .await;
    assert_eq!(status, 200, "{user}");
    let out = cli(
        env.dir.path(),
        &[
            "client",
            "create",
            "--name",
            "RP",
            "--json",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--grant-type",
            "authorization_code",
            "--scope",
            "openid read",
        ],
        None,
    );
    let rp: Value = serde_json::from_str(out.trim()).expect("json");
    let rp = CliClient {
        id: rp["client_id"].as_str().expect("id").to_owned(),
        secret: rp["client_secret"].as_str().expect("secret").to_owned(),
    };
    let params = env.authorize(&rp.id, "openid read", &[]).await;
    let (status, oidc) = env
        .token(
            &rp,
            &format!(
                "grant_type=authorization_code&code={}&code_verifier={VERIFIER}&redirect_uri={}",
                param(&params, "code").expect("code"),
                enc(REDIRECT)
            ),
        )
        .await;
    assert_eq!(status, 200, "{oidc}");
    let jwt_client = create_client(
        env.dir.path(),
        &[
            "--grant-type",
            "client_credentials",
            "--access-token-format",
            "jwt",
        ],
    );
    let (_, jwt) = env
        .token(&jwt_client, "grant_type=client_credentials&scope=read")
        .await;

    // An ID token has no scope: widening to `read` (at most) is what this policy allows.
    let mut policy = full_policy();
    policy["widen_scope"] = json!(true);
    policy["scopes"] = json!(["read"]);
    let gateway = env.exchanger("gateway", Some(policy.clone()));
    // `client update` replaces the policy and shows it as it was given.
    let file = env.dir.path().join("gateway.json");
    let shown: Value = serde_json::from_str(
        cli(
            env.dir.path(),
            &[
                "client",
                "update",
                &gateway.id,
                "--token-exchange-policy",
                &file.display().to_string(),
                "--json",
            ],
            None,
        )
        .trim(),
    )
    .expect("json");
    assert_eq!(shown["token_exchange"]["audiences"], policy["audiences"]);
    assert_eq!(shown["token_exchange"]["widen_scope"], true);
    let exchange = |subject: &str, kind: &str, extra: &str| {
        format!(
            "grant_type={}&subject_token={}&subject_token_type={}&resource={}{extra}",
            enc(EXCHANGE),
            enc(subject),
            enc(kind),
            enc(API)
        )
    };
    for (subject, kind, sub) in [
        (user["access_token"].as_str().expect("at"), AT, None),
        (user["refresh_token"].as_str().expect("rt"), RT, None),
        (oidc["id_token"].as_str().expect("id token"), IDT, None),
        (
            jwt["access_token"].as_str().expect("jwt"),
            JWT,
            Some(jwt_client.id.as_str()),
        ),
    ] {
        let (status, body) = env
            .token(&gateway, &exchange(subject, kind, "&scope=read"))
            .await;
        assert_eq!(status, 200, "{kind}: {body}");
        assert_eq!(body["issued_token_type"], AT, "{kind}");
        let info = env
            .introspect(&rs, body["access_token"].as_str().expect("at"))
            .await;
        assert_eq!(info["aud"], API, "{kind}");
        assert_eq!(info["client_id"], gateway.id.as_str());
        assert_eq!(info["scope"], "read");
        match sub {
            Some(sub) => assert_eq!(info["sub"], sub, "{kind}"),
            None => assert!(
                info["sub"].as_str().is_some_and(|s| !s.is_empty()),
                "{kind}"
            ),
        }
    }
    // The user's subject is the same whichever token stood for them.
    let via_access = env
        .introspect(&rs, user["access_token"].as_str().expect("at"))
        .await;

    // Delegation: the gateway's own token as the actor.
    let (_, own) = env.token(&gateway, "grant_type=client_credentials").await;
    let (status, delegated) = env
        .token(
            &gateway,
            &exchange(
                user["access_token"].as_str().expect("at"),
                AT,
                &format!(
                    "&actor_token={}&actor_token_type={}",
                    enc(own["access_token"].as_str().expect("at")),
                    enc(AT)
                ),
            ),
        )
        .await;
    assert_eq!(status, 200, "{delegated}");
    let info = env
        .introspect(&rs, delegated["access_token"].as_str().expect("at"))
        .await;
    assert_eq!(info["sub"], via_access["sub"]);
    assert_eq!(
        info["act"],
        json!({"sub": gateway.id, "client_id": gateway.id})
    );

    // One refusal per policy rule, each with its RFC error code.
    let at = user["access_token"].as_str().expect("at");
    let with = |changes: Value| {
        let mut p = full_policy();
        for (k, v) in changes.as_object().expect("object") {
            p[k] = v.clone();
        }
        Some(p)
    };
    let actor = format!(
        "&actor_token={}&actor_token_type={}",
        enc(own["access_token"].as_str().expect("at")),
        enc(AT)
    );
    let cases: Vec<(&str, Option<Value>, String, &str)> = vec![
        (
            "no policy",
            None,
            exchange(at, AT, ""),
            "unauthorized_client",
        ),
        (
            "only its own tokens",
            with(json!({"subject_clients": []})),
            exchange(at, AT, ""),
            "invalid_request",
        ),
        (
            "type not allowed",
            with(json!({"subject_token_types": ["id_token"]})),
            exchange(at, AT, ""),
            "invalid_request",
        ),
        (
            "no delegation",
            with(json!({"delegation": false, "actor_token_types": []})),
            exchange(at, AT, &actor),
            "invalid_request",
        ),
        (
            "no impersonation",
            with(json!({"impersonation": false})),
            exchange(at, AT, ""),
            "invalid_request",
        ),
        (
            "audience outside the policy",
            with(json!({"audiences": [MCP]})),
            exchange(at, AT, ""),
            "invalid_target",
        ),
        (
            "wider scope",
            with(json!({})),
            exchange(at, AT, "&scope=read%20write"),
            "invalid_scope",
        ),
        (
            "invalid subject token",
            with(json!({})),
            exchange("not-a-token", AT, ""),
            "invalid_request",
        ),
    ];
    for (i, (why, policy, body, error)) in cases.into_iter().enumerate() {
        let client = env.exchanger(&format!("refused-{i}"), policy);
        let (status, answer) = env.token(&client, &body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(error)),
            "{why}: {answer}"
        );
    }
}

/// Serves `jwks` at `/jwks` on loopback, counting requests: the external issuer's keys.
async fn serve_jwks(jwks: Value) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let body = jwks.to_string();
            async move { ([("content-type", "application/json")], body) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/jwks"), hits)
}

#[tokio::test]
async fn token_exchange_trusts_an_external_issuer_at_its_jwks_uri_and_issues_each_type() {
    const CORP: &str = "https://idp.corp.example";
    let corp = KeySet::generate(&[SigningAlg::Es256], Arc::new(SystemClock)).expect("keys");
    let (jwks_uri, hits) = serve_jwks(corp.jwks()).await;
    // Loopback keys need both development switches, as a client's jwks_uri would.
    let env = start_with(&format!(
        r#"
allow_http_jwks_uri = true
allow_private_jwks_uri = true

[[token_exchange.trusted_issuers]]
alias = "corp"
issuer = "{CORP}"
jwks_uri = "{jwks_uri}"
algs = ["ES256"]
audience = "latchkey"
max_age = 600
"#
    ));
    let rs = create_client(
        env.dir.path(),
        &["--grant-type", "client_credentials", "--introspect"],
    );
    let mut policy = full_policy();
    policy["trusted_issuers"] = json!(["corp"]);
    policy["requested_token_types"] = json!(["refresh_token", "id_token", "jwt"]);
    policy["widen_scope"] = json!(true);
    let file = env.dir.path().join("gateway.json");
    std::fs::write(&file, policy.to_string()).expect("policy file");
    let gateway = create_client(
        env.dir.path(),
        &[
            "--grant-type",
            EXCHANGE,
            "--grant-type",
            "refresh_token",
            "--scope",
            "openid read",
            "--token-exchange-policy",
            &file.display().to_string(),
        ],
    );
    let now = SystemClock.now().0;
    let external = |sub: &str, keys: &KeySet| {
        keys.sign(
            Some(SigningAlg::Es256),
            "JWT",
            &json!({"iss": CORP, "sub": sub, "aud": "latchkey", "iat": now, "exp": now + 300}),
        )
        .expect("signed")
    };
    let exchange = |subject: &str, kind: &str, extra: &str| {
        format!(
            "grant_type={}&subject_token={}&subject_token_type={}{extra}",
            enc(EXCHANGE),
            enc(subject),
            enc(kind)
        )
    };

    // The external JWT, verified with the keys fetched from the jwks_uri.
    let (status, body) = env
        .token(
            &gateway,
            &exchange(
                &external("emp-7", &corp),
                JWT,
                &format!("&scope=read&resource={}", enc(API)),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["issued_token_type"], AT);
    let info = env
        .introspect(&rs, body["access_token"].as_str().expect("at"))
        .await;
    assert_eq!(info["sub"], "corp:emp-7");
    assert_eq!(info["aud"], API);
    assert_eq!(hits.load(Ordering::SeqCst), 1, "fetched once, then cached");
    // Signed by a key the issuer does not publish: refused without a word about keys.
    let stranger = KeySet::generate(&[SigningAlg::Es256], Arc::new(SystemClock)).expect("keys");
    let (status, body) = env
        .token(&gateway, &exchange(&external("emp-7", &stranger), JWT, ""))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    assert!(
        !body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("key")
    );

    // Each requested_token_type, from the user's own access token.
    let frontend = create_client(
        env.dir.path(),
        &["--grant-type", "password", "--scope", "openid read"],
    );
    let (status, user) = env
        .token(
            &frontend,
            "grant_type=password&username=alice&password=alice-password&scope=openid%20read",
        )
        .await;
    assert_eq!(status, 200, "{user}");
    let at = user["access_token"].as_str().expect("at");
    let (status, jwt) = env
        .token(
            &gateway,
            &exchange(
                at,
                AT,
                &format!("&scope=read&requested_token_type={}", enc(JWT)),
            ),
        )
        .await;
    assert_eq!(status, 200, "{jwt}");
    assert_eq!(
        (
            jwt["issued_token_type"].as_str(),
            jwt["token_type"].as_str()
        ),
        (Some(JWT), Some("Bearer"))
    );
    assert_eq!(
        jwt["access_token"]
            .as_str()
            .expect("jwt")
            .split('.')
            .count(),
        3
    );
    let (status, id) = env
        .token(
            &gateway,
            &exchange(
                at,
                AT,
                &format!("&scope=openid&requested_token_type={}", enc(IDT)),
            ),
        )
        .await;
    assert_eq!(status, 200, "{id}");
    assert_eq!(
        (id["issued_token_type"].as_str(), id["token_type"].as_str()),
        (Some(IDT), Some("N_A"))
    );
    let (status, rt) = env
        .token(
            &gateway,
            &exchange(
                at,
                AT,
                &format!("&scope=read&requested_token_type={}", enc(RT)),
            ),
        )
        .await;
    assert_eq!(status, 200, "{rt}");
    assert_eq!(
        (rt["issued_token_type"].as_str(), rt["token_type"].as_str()),
        (Some(RT), Some("N_A"))
    );
    let (status, refreshed) = env
        .token(
            &gateway,
            &format!(
                "grant_type=refresh_token&refresh_token={}",
                enc(rt["access_token"].as_str().expect("rt"))
            ),
        )
        .await;
    assert_eq!(
        status, 200,
        "the exchanged refresh token works: {refreshed}"
    );
    // Not for the external subject.
    let (status, body) = env
        .token(
            &gateway,
            &exchange(
                &external("emp-7", &corp),
                JWT,
                &format!("&requested_token_type={}", enc(RT)),
            ),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
}
