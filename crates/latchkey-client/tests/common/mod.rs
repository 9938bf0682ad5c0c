//! The real `latchkey` server in-process on port 0 (the router `latchkey serve` builds, with
//! OAuth 1.0a beside OAuth 2.0, from default settings on the memory store), with `/api/me`
//! protected by the bearer guard (which also accepts OAuth 1.0a-signed requests) next to it,
//! plus a scripted user agent for the login and consent pages.
#![allow(dead_code)]

use axum::extract::State;
use axum::routing::get;
use latchkey_axum::OAuth1Guard;
use latchkey_axum::guard::{Authenticated, BearerGuard};
use latchkey_core::client::{GrantType, NewClient};
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::entropy::OsEntropy;
use latchkey_core::resource::{Guard, StoreVerifier};
use latchkey_core::secret::Secret;
use latchkey_core::store::{ClientStore, UserStore};
use latchkey_core::user::User;
use latchkey_server::Settings;
use latchkey_server::store::AnyStore;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

pub const REDIRECT: &str = "http://127.0.0.1:41234/callback";
pub const USER: &str = "alice";
pub const PASSWORD: &str = "alice-password";

/// A running server, stopped when dropped.
pub struct TestServer {
    pub base: String,
    pub store: AnyStore,
    settings: Settings,
    _dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A registered client.
pub struct TestClient {
    pub id: String,
    pub secret: Option<String>,
}

impl TestServer {
    /// Starts the server with a user `alice`.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts the server with settings changed by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Settings)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = Settings {
            data_dir: dir.path().to_owned(),
            ..Settings::default()
        };
        settings.store.url = Some("memory:".into());
        // The client's password() call is under test, so the server offers that grant (off
        // by default).
        settings.grants.password = true;
        tweak(&mut settings);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let local = listener.local_addr().expect("address");
        let store = AnyStore::from_settings(&settings).await.expect("store");
        let counters = latchkey_server::app::open_counters(&settings)
            .await
            .expect("counters");
        let provider =
            latchkey_server::build_provider(&settings, store.clone(), Some(local), counters)
                .expect("provider");
        let ui = latchkey_server::build_ui(&settings, provider.clone()).expect("pages");
        let oauth1 = latchkey_server::app::build_oauth1(&settings, store.clone(), &provider)
            .expect("oauth1");
        let verifier = StoreVerifier::new(store.clone(), Arc::new(SystemClock));
        // DPoP-bound tokens (RFC 9449) are checked with the provider's settings and store.
        let core_guard = match provider.dpop_guard() {
            Some(dpop) => Guard::new(verifier, "api").with_dpop(dpop),
            None => Guard::new(verifier, "api"),
        };
        let guard = BearerGuard::new(core_guard).with_oauth1(OAuth1Guard::new(oauth1.clone()));
        let api = axum::Router::new()
            .route(
                "/api/me",
                get(me).post(echo).put(echo).patch(echo).delete(echo),
            )
            // The layer (unlike the extractor alone) reads a form body, which an OAuth 1.0a
            // signature covers.
            .layer(guard.require(""))
            .with_state(guard);
        let app = latchkey_server::app::app_with_oauth1(
            provider,
            ui,
            oauth1,
            &settings.cors,
            latchkey_server::app::Surroundings::permissive(),
            Vec::new(),
        )
        .expect("app")
        .merge(api);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
        });
        let server = Self {
            base: format!("http://{local}"),
            store,
            settings,
            _dir: dir,
            stop: Some(stop),
        };
        server.add_user(USER, PASSWORD).await;
        server
    }

    /// The URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Registers a client.
    pub async fn client(&self, new: NewClient) -> TestClient {
        let (client, secret) = new.build(&OsEntropy, SystemClock.now());
        self.store.put_client(&client).await.expect("client stored");
        TestClient {
            id: client.id.as_str().to_owned(),
            secret: secret.as_ref().map(|s| s.expose().to_owned()),
        }
    }

    /// A confidential client for every grant this crate tests, with `scopes`.
    pub async fn confidential(&self, scopes: &str) -> TestClient {
        self.client(
            NewClient::confidential("Client Test")
                .grant_types([
                    GrantType::AuthorizationCode,
                    GrantType::ClientCredentials,
                    GrantType::Password,
                    GrantType::RefreshToken,
                ])
                .redirect_uris([REDIRECT])
                .scopes(latchkey_core::scope::ScopeSet::parse(scopes).expect("scopes")),
        )
        .await
    }

    /// A public client (PKCE, no secret).
    pub async fn public(&self, scopes: &str) -> TestClient {
        self.client(
            NewClient::public("Public Test")
                .redirect_uris([REDIRECT])
                .scopes(latchkey_core::scope::ScopeSet::parse(scopes).expect("scopes")),
        )
        .await
    }

    /// Registers an OAuth 1.0a consumer (as `latchkey client create --oauth1` does), allowed
    /// `scopes` (its realms) and redirecting to [`REDIRECT`]; with `rsa_public_key`, it signs
    /// with RSA-SHA1.
    pub async fn oauth1_consumer(&self, scopes: &str, rsa_public_key: Option<&str>) -> TestClient {
        let key = latchkey_server::app::oauth1_key(&self.settings).expect("oauth1 key");
        let admin = latchkey_server::admin::Admin::new(self.store.clone(), &self.base, "test")
            .with_oauth1_key(key);
        let created = admin
            .create_client(latchkey_server::admin::ClientSpec {
                name: "OAuth1 Test".into(),
                public: false,
                grant_types: Vec::new(),
                redirect_uris: vec![REDIRECT.into()],
                scope: Some(scopes.into()),
                default_scope: None,
                bind_tokens: false,
                introspect: false,
                id: None,
                oauth1: true,
                rsa_public_key: rsa_public_key.map(str::to_owned),
                ..Default::default()
            })
            .await
            .expect("consumer created");
        TestClient {
            id: created.client.client_id.clone(),
            secret: created.oauth1_consumer_secret,
        }
    }

    /// Adds a user.
    pub async fn add_user(&self, username: &str, password: &str) {
        let password = Secret::new(password);
        let hash = tokio::task::spawn_blocking(move || {
            latchkey_core::password::hash(&password, &OsEntropy)
        })
        .await
        .expect("joined")
        .expect("hashed");
        let user = User {
            id: format!("sub-{username}"),
            username: username.to_owned(),
            password_hash: hash,
            created_at: SystemClock.now(),
            claims: Default::default(),
        };
        self.store.put_user(&user).await.expect("user stored");
    }

    /// What the server says about an access token (RFC 7662), asked as `client`.
    pub async fn introspect(&self, client: &TestClient, token: &str) -> serde_json::Value {
        reqwest::Client::new()
            .post(self.url("/introspect"))
            .basic_auth(&client.id, client.secret.as_deref())
            .form(&[("token", token)])
            .send()
            .await
            .expect("answers")
            .json()
            .await
            .expect("json")
    }
}

async fn me(Authenticated(token): Authenticated) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "sub": token.subject,
        "username": token.username,
        "client_id": token.client_id,
        "scope": token.scope.to_string(),
    }))
}

async fn echo(
    State(_guard): State<BearerGuard>,
    Authenticated(token): Authenticated,
    method: axum::http::Method,
    headers: axum::http::HeaderMap,
    body: String,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "method": method.as_str(),
        "content_type": headers.get("content-type").and_then(|v| v.to_str().ok()),
        "body": body,
        "sub": token.subject,
    }))
}

/// A user agent that keeps cookies and never follows redirects by itself.
pub struct Agent {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

/// A page the agent got.
pub struct Page {
    pub status: u16,
    pub location: String,
    pub body: String,
}

impl Page {
    /// The value of the hidden input `name`.
    pub fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in {}", self.body))
            + marker.len();
        let end = self.body[start..].find('"').expect("closing quote") + start;
        self.body[start..end]
            .replace("&amp;", "&")
            .replace("&quot;", "\"")
            .replace("&#x27;", "'")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&#x2f;", "/")
    }
}

impl Agent {
    pub fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookies: BTreeMap::new(),
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let resp = req.header("cookie", cookie).send().await.expect("answers");
        for value in resp.headers().get_all("set-cookie") {
            let pair = value
                .to_str()
                .expect("ascii")
                .split(';')
                .next()
                .expect("pair");
            let (name, value) = pair.split_once('=').expect("name=value");
            if value.is_empty() {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        Page {
            status: resp.status().as_u16(),
            location: resp
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            body: resp.text().await.expect("body"),
        }
    }

    pub async fn get(&mut self, url: &str) -> Page {
        let req = self.http.get(url);
        self.send(req).await
    }

    pub async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> Page {
        let req = self.http.post(url).form(form);
        self.send(req).await
    }

    /// Follows an authorization URL as alice: logs in, allows (or denies) on the consent
    /// page, and returns the redirect to the client's callback.
    pub async fn authorize(&mut self, server: &TestServer, url: &str, allow: bool) -> String {
        self.approve(server, url, allow, "").await
    }

    /// Answers a device's `user_code` as alice on the verification page (RFC 8628 §3.3):
    /// enters the code, signs in, and allows (or denies); returns the final page.
    pub async fn approve_device(
        &mut self,
        server: &TestServer,
        user_code: &str,
        allow: bool,
    ) -> Page {
        let form = self.get(&server.url("/device")).await;
        assert_eq!(form.status, 200, "code form: {}", form.body);
        let login = self
            .post(
                &server.url("/device"),
                &[
                    ("csrf_token", &form.field("csrf_token")),
                    ("user_code", user_code),
                ],
            )
            .await;
        assert_eq!(login.status, 200, "login page: {}", login.body);
        let after = self
            .post(
                &server.url("/device/login"),
                &[
                    ("csrf_token", &login.field("csrf_token")),
                    ("request", &login.field("request")),
                    ("username", USER),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(after.status, 303, "login: {}", after.body);
        let consent = self.get(&server.url(&after.location)).await;
        assert_eq!(consent.status, 200, "consent page: {}", consent.body);
        self.post(
            &server.url("/device"),
            &[
                ("csrf_token", &consent.field("csrf_token")),
                ("user_code", &consent.field("user_code")),
                ("decision", if allow { "allow" } else { "deny" }),
            ],
        )
        .await
    }

    /// The same through the OAuth 1.0a pages, under `/oauth1`.
    pub async fn authorize_oauth1(&mut self, server: &TestServer, url: &str) -> String {
        self.approve(server, url, true, "/oauth1").await
    }

    async fn approve(
        &mut self,
        server: &TestServer,
        url: &str,
        allow: bool,
        prefix: &str,
    ) -> String {
        let login = self.get(url).await;
        assert_eq!(login.status, 200, "login page: {}", login.body);
        let after = self
            .post(
                &server.url(&format!("{prefix}/login")),
                &[
                    ("csrf_token", &login.field("csrf_token")),
                    ("request", &login.field("request")),
                    ("username", USER),
                    ("password", PASSWORD),
                ],
            )
            .await;
        assert_eq!(after.status, 303, "login: {}", after.body);
        let consent = self.get(&server.url(&after.location)).await;
        assert_eq!(consent.status, 200, "consent page: {}", consent.body);
        // The OAuth 2.0 consent form posts to its own route; the OAuth 1.0a one to its page.
        let decide = if prefix.is_empty() {
            "/consent".to_owned()
        } else {
            format!("{prefix}/authorize")
        };
        let done = self
            .post(
                &server.url(&decide),
                &[
                    ("csrf_token", &consent.field("csrf_token")),
                    ("request", &consent.field("request")),
                    ("decision", if allow { "allow" } else { "deny" }),
                ],
            )
            .await;
        assert_eq!(done.status, 303, "consent: {}", done.body);
        assert!(done.location.starts_with(REDIRECT), "{}", done.location);
        done.location
    }
}

/// The query of a callback URL.
pub fn callback_query(location: &str) -> String {
    url::Url::parse(location)
        .expect("absolute")
        .query()
        .unwrap_or("")
        .to_owned()
}
