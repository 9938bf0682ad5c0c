//! # latchkey-core
//!
//! The protocol core of Latchkey, an OAuth 2.0 authorization server (RFC 6749, RFC 9700).
//!
//! This crate does no network or file I/O and knows no web framework: an adapter turns a
//! framework request into an [`http::HttpRequest`], calls an endpoint on a
//! [`provider::Provider`], and turns the [`http::HttpResponse`] back. Storage is reached only
//! through the traits in [`store`]; [`store::memory`] is the reference implementation.
//! Time and randomness are injected too: the code reads them only through the provider's
//! [`clock::Clock`] and [`entropy::Entropy`], which the builder defaults to the system clock
//! and the operating system's generator, and which tests replace with fixed ones.
//!
//! ```
//! use latchkey_core::prelude::*;
//!
//! # tokio_test_block_on(async {
//! let store = MemoryStore::new();
//! let provider = Provider::builder(store.clone(), NoUsers)
//!     .issuer("https://auth.example.com")
//!     .build()
//!     .expect("valid configuration");
//!
//! // Register a confidential client allowed the client_credentials grant.
//! let (client, secret) = NewClient::confidential("inventory-sync")
//!     .grant_types([GrantType::ClientCredentials])
//!     .build(provider.entropy(), provider.clock().now());
//! store.put_client(&client).await.expect("memory store accepts the client");
//!
//! let request = HttpRequest::post_form(
//!     "/token",
//!     format!("grant_type=client_credentials&client_id={}&client_secret={}",
//!         client.id, secret.expect("confidential clients get a secret").expose()),
//! );
//! let response = provider.token(&request).await;
//! assert_eq!(response.status, 200);
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
//! # }
//! ```

pub mod access_jwt;
pub mod attached;
pub mod claims;
pub mod client;
pub mod client_assertion;
pub mod client_metadata;
pub mod clock;
pub mod config;
pub mod device;
pub mod dpop;
pub mod endpoint;
pub mod entropy;
pub mod error;
pub mod events;
pub mod extras;
pub mod form_post;
pub mod generator;
pub mod grant;
pub mod http;
pub mod indicator;
pub mod jar;
pub mod jose;
pub mod limits;
pub mod login;
pub mod logout;
pub mod mtls;
pub mod net;
pub mod oidc;
pub mod params;
pub mod password;
pub mod pkce;
pub mod proto;
pub mod provider;
pub mod redirect;
pub mod registration;
pub mod resource;
pub mod scope;
pub mod secret;
pub mod session;
pub mod store;
pub mod token;
pub mod user;

/// The names most embedders need, in one import.
pub mod prelude {
    pub use crate::claims::{ClaimsQuery, ClaimsRequest, ClaimsSource, ClaimsTarget, UserClaims};
    pub use crate::client::{Client, ClientId, ClientType, GrantType, NewClient};
    pub use crate::clock::{Clock, ManualClock, SystemClock, UnixTime};
    pub use crate::config::{Config, ConfigError};
    pub use crate::endpoint::authorize::{AuthorizeOutcome, Decision};
    pub use crate::entropy::{Entropy, OsEntropy, SeededEntropy};
    pub use crate::error::{ErrorCode, OAuthError};
    pub use crate::events::{Event, EventSink, NoEvents};
    pub use crate::http::{HttpRequest, HttpResponse, Method};
    pub use crate::provider::{Provider, ProviderBuilder};
    pub use crate::scope::ScopeSet;
    pub use crate::secret::Secret;
    pub use crate::store::memory::MemoryStore;
    pub use crate::store::{
        ClientStore, CodeStore, ConsentStore, ProviderStore, SessionStore, StoreError,
        StoreErrorKind, TokenStore, UserStore,
    };
    pub use crate::user::{
        AuthenticatedUser, Blocking, Inline, NoUsers, StoreUsers, User, UserAuthenticator,
    };
}
