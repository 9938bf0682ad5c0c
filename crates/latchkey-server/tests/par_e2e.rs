//! Pushed authorization requests (RFC 9126) through the real server: the client pushes its
//! parameters to `/par`, the browser brings the `request_uri` to `/authorize`, logs in and
//! consents, and the code is exchanged. A `request_uri` is single use, only its own client's,
//! and expires; a server that requires pushed requests refuses the others and says so in its
//! metadata.

mod common;

use common::agent::{Agent, Page};
use common::{CliClient, Server, add_user, create_client, data_dir};
use latchkey_core::pkce::s256_challenge;
use std::collections::BTreeMap;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1/callback";

struct Setup {
    _dir: tempfile::TempDir,
    server: Server,
    web: CliClient,
    other: CliClient,
}

fn setup(env: &[(&str, &str)]) -> Setup {
    let dir = data_dir();
    let args = [
        "--redirect-uri",
        REDIRECT,
        "--grant-type",
        "authorization_code",
        "--scope",
        "photos:read",
    ];
    let web = create_client(dir.path(), &args);
    let other = create_client(dir.path(), &args);
    add_user(dir.path(), "alice", "alice-password");
    let server = Server::start_with(dir.path(), env);
    Setup {
        _dir: dir,
        server,
        web,
        other,
    }
}

fn auth_params() -> Vec<(&'static str, String)> {
    vec![
        ("response_type", "code".into()),
        ("redirect_uri", REDIRECT.into()),
        ("scope", "photos:read".into()),
        ("state", "st-par".into()),
        ("code_challenge", s256_challenge(VERIFIER)),
        ("code_challenge_method", "S256".into()),
    ]
}

impl Setup {
    /// POSTs `form` to `/par` with `client`'s Basic credentials: status and JSON.
    async fn push(&self, client: &CliClient, form: &[(&str, String)]) -> (u16, serde_json::Value) {
        let resp = reqwest::Client::new()
            .post(self.server.url("/par"))
            .header("authorization", client.basic())
            .form(form)
            .send()
            .await
            .expect("server answers");
        let status = resp.status().as_u16();
        assert_eq!(
            resp.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store")
        );
        (status, resp.json().await.expect("json"))
    }

    /// Pushes the usual parameters for `client`; the `request_uri`.
    async fn request_uri(&self, client: &CliClient) -> String {
        let (status, json) = self.push(client, &auth_params()).await;
        assert_eq!(status, 201, "{json}");
        assert_eq!(json["expires_in"].as_u64(), Some(60));
        let uri = json["request_uri"].as_str().expect("request_uri");
        assert!(
            uri.starts_with("urn:ietf:params:oauth:request_uri:"),
            "{uri}"
        );
        uri.to_owned()
    }

    fn authorize_url(&self, client: &CliClient, request_uri: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("client_id", &client.id)
            .append_pair("request_uri", request_uri)
            .finish();
        self.server.url(&format!("/authorize?{query}"))
    }

    /// Logs Alice in from the login page `login`; the page the login leads to.
    async fn login(&self, agent: &mut Agent, login: &Page) -> Page {
        assert_eq!(login.status, 200, "{}", login.body);
        let after = agent
            .submit_login(&self.server.base, login, "alice", "alice-password")
            .await;
        assert_eq!(after.status, 303, "{}", after.body);
        agent.get(&self.server.url(after.location())).await
    }

    async fn consent(&self, agent: &mut Agent, consent: &Page) -> Page {
        assert_eq!(consent.status, 200, "{}", consent.body);
        agent
            .submit_consent(&self.server.base, consent, "allow")
            .await
    }
}

fn query_of(location: &str) -> BTreeMap<String, String> {
    let url = url::Url::parse(location).expect("absolute");
    url.query_pairs().into_owned().collect()
}

fn assert_error_page(page: &Page, code: &str) {
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(page.body.contains(code), "{}", page.body);
    assert!(page.headers.get("location").is_none(), "never redirected");
}

#[tokio::test]
async fn a_pushed_request_gets_a_code_once_and_only_for_its_client() {
    let s = setup(&[]);
    let metadata: serde_json::Value =
        reqwest::get(s.server.url("/.well-known/oauth-authorization-server"))
            .await
            .expect("answers")
            .json()
            .await
            .expect("json");
    assert_eq!(
        metadata["pushed_authorization_request_endpoint"],
        s.server.url("/par")
    );
    assert_eq!(metadata["require_pushed_authorization_requests"], false);

    let uri = s.request_uri(&s.web).await;
    // Another client presenting it gets nothing, and does not use it up.
    let mut stranger = Agent::new();
    let refused = stranger.get(&s.authorize_url(&s.other, &uri)).await;
    assert_error_page(&refused, "invalid_request_uri");

    let mut agent = Agent::new();
    let login = agent.get(&s.authorize_url(&s.web, &uri)).await;
    assert!(login.body.contains("Sign in"), "{}", login.body);
    // The browser may load the same request again before the user decides.
    let reload = agent.get(&s.authorize_url(&s.web, &uri)).await;
    assert_eq!(reload.status, 200);
    let consent = s.login(&mut agent, &login).await;
    assert!(consent.body.contains("photos:read"), "{}", consent.body);
    let done = s.consent(&mut agent, &consent).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert!(done.location().starts_with(REDIRECT), "{}", done.location());
    let params = query_of(done.location());
    assert_eq!(params["state"], "st-par");

    let tokens = reqwest::Client::new()
        .post(s.server.url("/token"))
        .header("authorization", s.web.basic())
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", params["code"].as_str()),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .expect("answers");
    assert_eq!(tokens.status(), 200);
    let tokens: serde_json::Value = tokens.json().await.expect("json");
    assert_eq!(tokens["scope"], "photos:read", "{tokens}");

    // Used: the logged-in browser cannot get a second code with it.
    let again = agent.get(&s.authorize_url(&s.web, &uri)).await;
    assert_error_page(&again, "invalid_request_uri");
    // Nor can the consent form be posted twice.
    let twice = s.consent(&mut agent, &consent).await;
    assert!(
        !twice.location().contains("code="),
        "a second code: {}",
        twice.location()
    );
}

#[tokio::test]
async fn pushing_is_authenticated_and_validated_like_authorize() {
    let s = setup(&[]);
    let http = reqwest::Client::new();
    let unauthenticated = http
        .post(s.server.url("/par"))
        .form(&auth_params())
        .send()
        .await
        .expect("answers");
    assert_eq!(unauthenticated.status(), 401);
    let json: serde_json::Value = unauthenticated.json().await.expect("json");
    assert_eq!(json["error"], "invalid_client");

    let mut evil = auth_params();
    evil[1].1 = "https://evil.example/cb".into();
    let (status, json) = s.push(&s.web, &evil).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("invalid_request"))
    );

    let mut scope = auth_params();
    scope[2].1 = "admin".into();
    let (status, json) = s.push(&s.web, &scope).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    let mut with_uri = auth_params();
    with_uri.push(("request_uri", "urn:ietf:params:oauth:request_uri:x".into()));
    let (status, json) = s.push(&s.web, &with_uri).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (400, Some("invalid_request"))
    );

    let mut agent = Agent::new();
    let made_up = agent
        .get(&s.authorize_url(&s.web, "urn:ietf:params:oauth:request_uri:made-up"))
        .await;
    assert_error_page(&made_up, "invalid_request_uri");
}

#[tokio::test]
async fn expired_and_unpushed_requests_are_refused_when_pushing_is_required() {
    let s = setup(&[
        ("LATCHKEY_PAR__TTL", "1"),
        ("LATCHKEY_PAR__REQUIRED", "true"),
    ]);
    let metadata: serde_json::Value =
        reqwest::get(s.server.url("/.well-known/openid-configuration"))
            .await
            .expect("answers")
            .json()
            .await
            .expect("json");
    assert_eq!(metadata["require_pushed_authorization_requests"], true);

    // Not pushed: refused back to the client.
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", &s.web.id)
        .extend_pairs(auth_params())
        .finish();
    let mut agent = Agent::new();
    let plain = agent
        .get(&s.server.url(&format!("/authorize?{query}")))
        .await;
    assert_eq!(plain.status, 302, "{}", plain.body);
    let params = query_of(plain.location());
    assert_eq!(params["error"], "invalid_request");
    assert!(!params.contains_key("code"));

    // Pushed, but brought after its one-second lifetime.
    let (status, json) = s.push(&s.web, &auth_params()).await;
    assert_eq!(status, 201, "{json}");
    assert_eq!(json["expires_in"].as_u64(), Some(1));
    let uri = json["request_uri"].as_str().expect("request_uri");
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let late = agent.get(&s.authorize_url(&s.web, uri)).await;
    assert_error_page(&late, "invalid_request_uri");
}
