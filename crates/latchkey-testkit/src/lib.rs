//! Test support for Latchkey: a provider on the memory store with a fixed clock and seeded
//! randomness ([`TestKit`]), token-record fixtures, and the store conformance suite that
//! every backend runs ([`store_conformance!`]).

pub mod conformance;

use base64::Engine as _;
use latchkey_core::client::{Client, GrantType, NewClient};
use latchkey_core::clock::{Clock, ManualClock, UnixTime};
use latchkey_core::entropy::SeededEntropy;
use latchkey_core::http::{HttpRequest, HttpResponse};
use latchkey_core::password;
use latchkey_core::prelude::{ClientStore, MemoryStore, Provider, UserStore};
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Secret;
use latchkey_core::user::{Inline, StoreUsers, User};
use std::sync::Arc;

/// The instant every [`TestKit`] clock starts at: 2026-01-01T00:00:00Z.
pub const START: UnixTime = UnixTime(1_767_225_600);

/// The provider type the kit builds.
pub type TestProvider = Provider<MemoryStore, StoreUsers<MemoryStore, Inline>>;

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
    /// A kit with scopes `read write admin` available and `read` by default.
    pub fn new() -> Self {
        let store = MemoryStore::new();
        let clock = Arc::new(ManualClock::new(START));
        let provider = Provider::builder(store.clone(), StoreUsers::new(store.clone(), Inline))
            .issuer("https://auth.example.test")
            .available_scopes(scopes("read write admin"))
            .default_scopes(scopes("read"))
            .clock(clock.clone())
            .entropy(Arc::new(SeededEntropy::new(42)))
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
