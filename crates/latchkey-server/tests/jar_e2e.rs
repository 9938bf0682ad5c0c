//! Signed request objects (JAR, RFC 9101) through the real server: a client registered from
//! the CLI with its JWK Set signs its authorization request, sends it as `request` to
//! `/authorize` (or pushes it to `/par`), and gets a code for exactly the signed parameters.
//! Each broken object is refused with `invalid_request_object` on a page that never
//! redirects; a client required to sign (`require_signed_request_object`, switched by
//! `latchkey client update`) gets nothing without one.

mod common;

use common::agent::{Agent, Page};
use common::{CliClient, Server, add_user, cli, cli_outcome, create_client, data_dir};
use latchkey_core::clock::SystemClock;
use latchkey_core::jose::{JwsSigner as _, KeySet, SigningAlg};
use latchkey_core::pkce::s256_challenge;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1/callback";

struct Setup {
    dir: tempfile::TempDir,
    server: Server,
    keys: KeySet,
    /// Signs with any key of its set.
    web: CliClient,
    /// Must sign, with ES256 only.
    strict: CliClient,
    issuer: String,
}

async fn setup() -> Setup {
    let dir = data_dir();
    let keys = KeySet::generate(
        &[SigningAlg::Es256, SigningAlg::Rs256],
        Arc::new(SystemClock),
    )
    .expect("keys");
    let jwks_file = dir.path().join("client-jwks.json");
    std::fs::write(&jwks_file, keys.jwks().to_string()).expect("write jwks");
    let jwks = jwks_file.to_str().expect("utf-8 path");
    let args = [
        "--redirect-uri",
        REDIRECT,
        "--grant-type",
        "authorization_code",
        "--scope",
        "photos:read photos:write",
        "--jwks-file",
        jwks,
    ];
    let web = create_client(dir.path(), &args);
    let mut strict_args = args.to_vec();
    strict_args.extend([
        "--require-signed-request-object",
        "--request-object-signing-alg",
        "ES256",
    ]);
    let strict = create_client(dir.path(), &strict_args);
    add_user(dir.path(), "alice", "alice-password");
    let server = Server::start(dir.path());
    let metadata = metadata(&server).await;
    let issuer = metadata["issuer"].as_str().expect("issuer").to_owned();
    Setup {
        dir,
        server,
        keys,
        web,
        strict,
        issuer,
    }
}

async fn metadata(server: &Server) -> Value {
    reqwest::get(server.url("/.well-known/openid-configuration"))
        .await
        .expect("answers")
        .json()
        .await
        .expect("json")
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

impl Setup {
    fn claims(&self, client: &CliClient) -> Value {
        let now = now();
        json!({
            "iss": client.id,
            "aud": self.issuer,
            "exp": now + 300,
            "iat": now,
            "nbf": now,
            "client_id": client.id,
            "response_type": "code",
            "redirect_uri": REDIRECT,
            "scope": "photos:read",
            "state": "st-jar",
            "code_challenge": s256_challenge(VERIFIER),
            "code_challenge_method": "S256",
        })
    }

    fn sign(&self, alg: SigningAlg, claims: &Value) -> String {
        self.keys
            .sign(Some(alg), "oauth-authz-req+jwt", claims)
            .expect("sign")
    }

    fn authorize_url(&self, pairs: &[(&str, &str)]) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            query.append_pair(k, v);
        }
        self.server.url(&format!("/authorize?{}", query.finish()))
    }

    fn object_url(&self, client: &CliClient, object: &str) -> String {
        self.authorize_url(&[("client_id", &client.id), ("request", object)])
    }

    /// Logs Alice in and allows; the final redirect's query.
    async fn login_and_allow(&self, agent: &mut Agent, login: &Page) -> BTreeMap<String, String> {
        assert_eq!(login.status, 200, "{}", login.body);
        let after = agent
            .submit_login(&self.server.base, login, "alice", "alice-password")
            .await;
        assert_eq!(after.status, 303, "{}", after.body);
        let consent = agent.get(&self.server.url(after.location())).await;
        assert_eq!(consent.status, 200, "{}", consent.body);
        let done = agent
            .submit_consent(&self.server.base, &consent, "allow")
            .await;
        assert_eq!(done.status, 303, "{}", done.body);
        query_of(done.location())
    }

    async fn exchange(&self, client: &CliClient, code: &str) -> Value {
        let resp = reqwest::Client::new()
            .post(self.server.url("/token"))
            .header("authorization", client.basic())
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ])
            .send()
            .await
            .expect("answers");
        assert_eq!(resp.status(), 200);
        resp.json().await.expect("json")
    }
}

fn query_of(location: &str) -> BTreeMap<String, String> {
    let url = url::Url::parse(location).expect("absolute");
    url.query_pairs().into_owned().collect()
}

fn assert_error_page(page: &Page, code: &str, what: &str) {
    assert_eq!(page.status, 400, "{what}: {}", page.body);
    assert!(page.body.contains(code), "{what}: {}", page.body);
    assert!(
        page.headers.get("location").is_none(),
        "{what}: never redirected"
    );
}

#[tokio::test]
async fn a_signed_request_object_gets_a_code_for_exactly_its_parameters() {
    let s = setup().await;
    let metadata = metadata(&s.server).await;
    assert_eq!(metadata["request_parameter_supported"], true);
    assert_eq!(metadata["require_signed_request_object"], false);
    assert_eq!(metadata["request_uri_parameter_supported"], false);
    let algs = metadata["request_object_signing_alg_values_supported"].to_string();
    assert!(algs.contains("ES256") && !algs.contains("none"), "{algs}");

    let object = s.sign(SigningAlg::Rs256, &s.claims(&s.web));
    // Outside parameters do not count (RFC 9101 §6.3): not this scope, not this state.
    let url = s.authorize_url(&[
        ("client_id", &s.web.id),
        ("request", &object),
        ("scope", "photos:write"),
        ("state", "outside"),
    ]);
    let mut agent = Agent::new();
    let login = agent.get(&url).await;
    assert!(login.body.contains("Sign in"), "{}", login.body);
    let params = s.login_and_allow(&mut agent, &login).await;
    assert_eq!(params["state"], "st-jar");
    let tokens = s.exchange(&s.web, &params["code"]).await;
    assert_eq!(tokens["scope"], "photos:read", "{tokens}");
}

#[tokio::test]
async fn each_broken_request_object_is_refused_with_its_error() {
    let s = setup().await;
    let now = now();
    let with = |name: &str, value: Value| {
        let mut claims = s.claims(&s.web);
        claims[name] = value;
        claims
    };
    let unsigned = {
        use base64::Engine as _;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        format!(
            "{}.{}.",
            b64(&json!({"alg": "none"})),
            b64(&s.claims(&s.web))
        )
    };
    let stranger = KeySet::generate(&[SigningAlg::Es256], Arc::new(SystemClock)).expect("keys");
    let cases = [
        ("alg none", s.web.id.clone(), unsigned),
        (
            "a key the client did not register",
            s.web.id.clone(),
            stranger
                .sign(Some(SigningAlg::Es256), "JWT", &s.claims(&s.web))
                .expect("sign"),
        ),
        (
            "iss another client",
            s.web.id.clone(),
            s.sign(SigningAlg::Es256, &with("iss", json!(s.strict.id))),
        ),
        (
            "aud another server",
            s.web.id.clone(),
            s.sign(
                SigningAlg::Es256,
                &with("aud", json!("https://other.example")),
            ),
        ),
        (
            "expired",
            s.web.id.clone(),
            s.sign(SigningAlg::Es256, &with("exp", json!(now - 120))),
        ),
        (
            "exp hours ahead",
            s.web.id.clone(),
            s.sign(SigningAlg::Es256, &with("exp", json!(now + 3 * 3600))),
        ),
        (
            "nbf in the future",
            s.web.id.clone(),
            s.sign(SigningAlg::Es256, &with("nbf", json!(now + 900))),
        ),
        (
            "client_id claim of another client",
            s.web.id.clone(),
            s.sign(SigningAlg::Es256, &with("client_id", json!(s.strict.id))),
        ),
        (
            "one client's object under another client_id",
            s.strict.id.clone(),
            s.sign(SigningAlg::Es256, &s.claims(&s.web)),
        ),
        (
            "RS256 from a client registered for ES256",
            s.strict.id.clone(),
            s.sign(SigningAlg::Rs256, &s.claims(&s.strict)),
        ),
    ];
    let mut agent = Agent::new();
    for (what, client_id, object) in cases {
        let url = s.authorize_url(&[("client_id", &client_id), ("request", &object)]);
        let page = agent.get(&url).await;
        assert_error_page(&page, "invalid_request_object", what);
    }
    // request and request_uri together, and a request_uri by reference: plain refusals.
    let object = s.sign(SigningAlg::Es256, &s.claims(&s.web));
    let both = s.authorize_url(&[
        ("client_id", &s.web.id),
        ("request", &object),
        ("request_uri", "https://rp.example/req.jwt"),
    ]);
    assert_error_page(&agent.get(&both).await, "invalid_request", "both");
}

#[tokio::test]
async fn a_pushed_request_object_runs_and_a_broken_one_is_refused_as_json() {
    let s = setup().await;
    let push = |object: String| {
        let req = reqwest::Client::new()
            .post(s.server.url("/par"))
            .header("authorization", s.web.basic())
            .form(&[("request", object)]);
        async move {
            let resp = req.send().await.expect("answers");
            let status = resp.status().as_u16();
            (status, resp.json::<Value>().await.expect("json"))
        }
    };
    let (status, json) = push(s.sign(SigningAlg::Es256, &s.claims(&s.web))).await;
    assert_eq!(status, 201, "{json}");
    let uri = json["request_uri"].as_str().expect("request_uri");
    let mut agent = Agent::new();
    let login = agent
        .get(&s.authorize_url(&[("client_id", &s.web.id), ("request_uri", uri)]))
        .await;
    let params = s.login_and_allow(&mut agent, &login).await;
    assert_eq!(params["state"], "st-jar");
    s.exchange(&s.web, &params["code"]).await;

    let mut claims = s.claims(&s.web);
    claims["aud"] = json!("https://other.example");
    let (status, json) = push(s.sign(SigningAlg::Es256, &claims)).await;
    assert_eq!(status, 400, "{json}");
    assert_eq!(json["error"], "invalid_request_object");
}

#[tokio::test]
async fn a_client_required_to_sign_is_refused_until_client_update_lifts_it() {
    let s = setup().await;
    let plain = |client: &CliClient| {
        s.authorize_url(&[
            ("client_id", &client.id),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("scope", "photos:read"),
            ("state", "st-plain"),
            ("code_challenge", &s256_challenge(VERIFIER)),
            ("code_challenge_method", "S256"),
        ])
    };
    let mut agent = Agent::new();
    let refused = agent.get(&plain(&s.strict)).await;
    assert_eq!(refused.status, 302, "{}", refused.body);
    let params = query_of(refused.location());
    assert_eq!(params["error"], "invalid_request");
    assert_eq!(params["state"], "st-plain");
    // Signed with its one algorithm, it passes.
    let object = s.sign(SigningAlg::Es256, &s.claims(&s.strict));
    let login = agent.get(&s.object_url(&s.strict, &object)).await;
    assert!(login.body.contains("Sign in"), "{}", login.body);

    // The operator lifts the requirement and the alg pin, and requires PAR instead.
    let out = cli(
        s.dir.path(),
        &[
            "client",
            "update",
            &s.strict.id,
            "--require-signed-request-object",
            "false",
            "--reset",
            "request-object-signing-alg",
            "--require-par",
            "true",
            "--dpop-bound-access-tokens",
            "true",
            "--json",
        ],
        None,
    );
    let view: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(view["require_signed_request_object"], false, "{view}");
    assert_eq!(
        view["require_pushed_authorization_requests"], true,
        "{view}"
    );
    assert_eq!(view["dpop_bound_access_tokens"], true, "{view}");
    assert!(view.get("request_object_signing_alg").is_none(), "{view}");
    let now_par = agent.get(&plain(&s.strict)).await;
    assert_eq!(
        query_of(now_par.location())["error_description"],
        "this client must push its authorization requests (PAR, RFC 9126)"
    );
    // Contradictions and unusable values are refused, and change nothing.
    let (ok, _, err) = cli_outcome(
        s.dir.path(),
        &[
            "client",
            "update",
            &s.strict.id,
            "--request-object-signing-alg",
            "none",
        ],
    );
    assert!(!ok && err.contains("request_object_signing_alg"), "{err}");
    let (ok, _, err) = cli_outcome(
        s.dir.path(),
        &[
            "client",
            "update",
            &s.strict.id,
            "--tls-san-dns",
            "svc.example",
            "--reset",
            "tls-client-auth",
        ],
    );
    assert!(!ok && err.contains("contradict"), "{err}");
    let out = cli(
        s.dir.path(),
        &[
            "client",
            "update",
            &s.strict.id,
            "--tls-san-dns",
            "svc.example",
            "--tls-bound-tokens",
            "true",
            "--json",
        ],
        None,
    );
    let view: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(
        view["tls_client_auth"], "tls_client_auth_san_dns=svc.example",
        "{view}"
    );
    assert_eq!(view["tls_client_certificate_bound_access_tokens"], true);
    let out = cli(
        s.dir.path(),
        &[
            "client",
            "update",
            &s.strict.id,
            "--tls-subject-dn",
            "CN=svc,O=Example",
            "--json",
        ],
        None,
    );
    let view: Value = serde_json::from_str(out.trim()).expect("json");
    assert_eq!(
        view["tls_client_auth"], "tls_client_auth_subject_dn=CN=svc,O=Example",
        "a new rule replaces the old: {view}"
    );
}
