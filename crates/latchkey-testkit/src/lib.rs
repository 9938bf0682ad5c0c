//! Test support for Latchkey: a provider on the memory store with a fixed clock and seeded
//! randomness ([`TestKit`]), token-record fixtures, and the store conformance suite that
//! every backend runs ([`store_conformance!`]).

pub mod conformance;
pub mod http_cases;
pub mod key_conformance;
pub mod oauth1_conformance;
pub mod oauth1_kit;
pub mod pending_conformance;
pub mod registration_conformance;
pub mod resource_conformance;

use base64::Engine as _;
use latchkey_core::client::{Client, GrantType, NewClient};
use latchkey_core::clock::{Clock, ManualClock, UnixTime};
use latchkey_core::endpoint::authorize::{AuthorizeOutcome, Decision};
use latchkey_core::entropy::SeededEntropy;
use latchkey_core::http::{HttpRequest, HttpResponse};
use latchkey_core::password;
use latchkey_core::prelude::{ClientStore, MemoryStore, Provider, UserStore};
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Secret;
use latchkey_core::user::{AuthenticatedUser, Inline, StoreUsers, User};
use std::sync::Arc;

/// The instant every [`TestKit`] clock starts at: 2026-01-01T00:00:00Z.
pub const START: UnixTime = UnixTime(1_767_225_600);

/// The provider type the kit builds.
pub type TestProvider = Provider<MemoryStore, StoreUsers<MemoryStore, Inline>>;

/// The builder of a [`TestProvider`].
pub type TestProviderBuilder =
    latchkey_core::provider::ProviderBuilder<MemoryStore, StoreUsers<MemoryStore, Inline>>;

/// A provider on a fresh memory store, with a clock that moves only when told and seeded
/// randomness, plus helpers to register clients and users and call the token endpoint.
pub struct TestKit {
    /// The store behind the provider.
    pub store: MemoryStore,
    /// The provider's clock.
    pub clock: Arc<ManualClock>,
    /// The provider.
    pub provider: TestProvider,
}

/// A registered client with its secret, as a test holds it.
#[derive(Clone, Debug)]
pub struct TestClient {
    /// The stored client.
    pub client: Client,
    /// The secret, for confidential clients.
    pub secret: Option<Secret>,
}

impl TestClient {
    /// The client identifier.
    pub fn id(&self) -> &str {
        self.client.id.as_str()
    }

    /// An `Authorization: Basic` value for this client (form-encoded as RFC 6749 §2.3.1 says).
    pub fn basic(&self) -> String {
        let secret = self.secret.as_ref().map(Secret::expose).unwrap_or("");
        let raw = format!("{}:{}", form_encode(self.id()), form_encode(secret));
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

impl Default for TestKit {
    fn default() -> Self {
        Self::new()
    }
}

impl TestKit {
    /// A kit with scopes `read write admin` available, `read` by default, and every grant on.
    pub fn new() -> Self {
        Self::with_config(|_| {})
    }

    /// A kit whose configuration `adjust` changes after the defaults above are set.
    pub fn with_config(adjust: impl FnOnce(&mut latchkey_core::config::Config)) -> Self {
        Self::with_builder(adjust, |builder| builder)
    }

    /// A kit whose configuration `adjust` changes, built by a provider builder that `extend`
    /// adds to (a token generator, response extras, extension grants).
    pub fn with_builder(
        adjust: impl FnOnce(&mut latchkey_core::config::Config),
        extend: impl FnOnce(TestProviderBuilder) -> TestProviderBuilder,
    ) -> Self {
        let store = MemoryStore::new();
        let clock = Arc::new(ManualClock::new(START));
        let mut config = latchkey_core::config::Config {
            issuer: "https://auth.example.test".into(),
            available_scopes: scopes("read write admin"),
            default_scopes: scopes("read"),
            // Every grant is on, so each flow can be tested; a test turns one off to see the
            // server-wide switch (off by default outside the kit).
            implicit_grant: true,
            password_grant: true,
            ..latchkey_core::config::Config::default()
        };
        adjust(&mut config);
        let builder = Provider::builder(store.clone(), StoreUsers::new(store.clone(), Inline))
            .config(config)
            .clock(clock.clone())
            .entropy(Arc::new(SeededEntropy::new(42)))
            // As the server does: OpenID Connect claims come from the user records.
            .claims_source(StoreUsers::new(store.clone(), Inline));
        let provider = extend(builder)
            .build()
            .expect("test configuration is valid");
        Self {
            store,
            clock,
            provider,
        }
    }

    /// The current time on the kit's clock.
    pub fn now(&self) -> UnixTime {
        self.clock.now()
    }

    /// Registers a confidential client allowed every grant but implicit.
    pub async fn confidential_client(&self) -> TestClient {
        self.register(NewClient::confidential("Test Service").grant_types([
            GrantType::ClientCredentials,
            GrantType::Password,
            GrantType::RefreshToken,
            GrantType::AuthorizationCode,
        ]))
        .await
    }

    /// Registers a resource server: a confidential client allowed to introspect other
    /// clients' tokens.
    pub async fn resource_server(&self) -> TestClient {
        self.register(
            NewClient::confidential("Test API")
                .grant_types([GrantType::ClientCredentials])
                .introspect(true),
        )
        .await
    }

    /// Registers a public client allowed password and refresh.
    pub async fn public_client(&self) -> TestClient {
        self.register(
            NewClient::public("Test App")
                .grant_types([GrantType::Password, GrantType::RefreshToken]),
        )
        .await
    }

    /// Registers a client built by `new`.
    pub async fn register(&self, new: NewClient) -> TestClient {
        let (client, secret) = new.build(self.provider.entropy(), self.now());
        self.store
            .put_client(&client)
            .await
            .expect("memory store accepts clients");
        TestClient { client, secret }
    }

    /// Adds a built-in user with `password`.
    pub async fn user(&self, username: &str, password: &str) -> User {
        let user = User {
            id: format!("user-{username}"),
            username: username.to_owned(),
            password_hash: password::hash(&Secret::new(password), self.provider.entropy())
                .expect("hashing works"),
            created_at: self.now(),
            claims: Default::default(),
        };
        self.store
            .put_user(&user)
            .await
            .expect("memory store accepts users");
        user
    }

    /// POSTs `body` to the token endpoint with `client`'s Basic credentials.
    pub async fn token(&self, client: &TestClient, body: &str) -> HttpResponse {
        self.provider
            .token(
                &HttpRequest::post_form("/token", body)
                    .with_header("authorization", client.basic()),
            )
            .await
    }

    /// POSTs `body` to the token endpoint with no client authentication header.
    pub async fn token_post(&self, body: &str) -> HttpResponse {
        self.provider
            .token(&HttpRequest::post_form("/token", body))
            .await
    }
}

/// The redirect URI every kit client registers.
pub const REDIRECT_URI: &str = "https://app.example.test/callback";

/// A PKCE verifier for tests (RFC 7636 Appendix B).
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

impl TestKit {
    /// Registers a confidential web client with [`REDIRECT_URI`], allowed the code and
    /// refresh grants.
    pub async fn web_client(&self) -> TestClient {
        self.register(
            NewClient::confidential("Web App")
                .redirect_uris([REDIRECT_URI])
                .grant_types([GrantType::AuthorizationCode, GrantType::RefreshToken]),
        )
        .await
    }

    /// Registers a public single-page app with [`REDIRECT_URI`], allowed the code and refresh
    /// grants.
    pub async fn spa_client(&self) -> TestClient {
        self.register(
            NewClient::public("Single Page App")
                .redirect_uris([REDIRECT_URI])
                .grant_types([GrantType::AuthorizationCode, GrantType::RefreshToken]),
        )
        .await
    }

    /// A logged-in user (no store record needed for the authorization endpoint).
    pub fn alice(&self) -> AuthenticatedUser {
        AuthenticatedUser::new("user-alice", "alice")
    }

    /// GETs `/authorize?{query}` as `user`, with the consent `decision`.
    pub async fn authorize(
        &self,
        query: &str,
        user: Option<&AuthenticatedUser>,
        decision: Option<Decision>,
    ) -> AuthorizeOutcome {
        let mut req = HttpRequest::new(latchkey_core::http::Method::Get, "/authorize");
        req.query = query.to_owned();
        self.provider.authorize(&req, user, decision).await
    }

    /// Runs a code request for `client` through login and consent (approving), and returns
    /// the code. `extra` is appended to the query (e.g. `&scope=write`).
    pub async fn code_for(&self, client: &TestClient, extra: &str) -> String {
        let query = format!(
            "response_type=code&client_id={}&state=xyz&code_challenge={}&code_challenge_method=S256{extra}",
            form_encode(client.id()),
            latchkey_core::pkce::s256_challenge(VERIFIER),
        );
        let outcome = self
            .authorize(
                &query,
                Some(&self.alice()),
                Some(Decision::Allow { remember: false }),
            )
            .await;
        let params = redirect_params(&outcome);
        assert_eq!(params.get("state").map(String::as_str), Some("xyz"));
        params
            .get("code")
            .cloned()
            .unwrap_or_else(|| panic!("no code in {params:?}"))
    }
}

/// The parameters of a redirect outcome, from its query or fragment; panics if the outcome
/// is not a redirect (tests only).
pub fn redirect_params(outcome: &AuthorizeOutcome) -> std::collections::BTreeMap<String, String> {
    let AuthorizeOutcome::Redirect(resp) = outcome else {
        panic!("expected a redirect, got {outcome:?}");
    };
    location_params(resp)
}

/// The parameters in a response's `Location`, from its query or fragment.
pub fn location_params(resp: &HttpResponse) -> std::collections::BTreeMap<String, String> {
    let location = resp.header("location").expect("a Location header");
    let url = url::Url::parse(location).expect("an absolute Location");
    let mut params: std::collections::BTreeMap<String, String> =
        url.query_pairs().into_owned().collect();
    if let Some(fragment) = url.fragment() {
        params.extend(form_urlencoded_pairs(fragment));
    }
    params
}

fn form_urlencoded_pairs(raw: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect()
}

/// Parses a space-delimited scope string; panics on a malformed one (tests only).
pub fn scopes(raw: &str) -> ScopeSet {
    ScopeSet::parse(raw).expect("test scopes are well formed")
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Assertions on token-endpoint responses that read like the behaviour they check.
pub trait ResponseExt {
    /// Asserts a 200 and returns the JSON body.
    fn expect_ok(&self) -> serde_json::Value;
    /// Asserts an error with `code` and returns the JSON body.
    fn expect_error(&self, code: &str) -> serde_json::Value;
}

impl ResponseExt for HttpResponse {
    fn expect_ok(&self) -> serde_json::Value {
        let body = self.json_body();
        assert_eq!(
            self.status, 200,
            "expected success, got {} {body}",
            self.status
        );
        body
    }

    fn expect_error(&self, code: &str) -> serde_json::Value {
        let body = self.json_body();
        assert_eq!(body["error"], code, "status {} body {body}", self.status);
        body
    }
}
