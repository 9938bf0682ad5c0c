//! # latchkey-client
//!
//! The client side of OAuth 2.0 for Rust services that sign their users in with other
//! providers or call their APIs (what Flask-OAuthlib's `OAuth`, `OAuthRemoteApp` and
//! `contrib.apps` are for Python), plus [`HttpIntrospector`] for resource servers that check
//! tokens remotely.
//!
//! - [`OAuth`]: remote apps by name, configured in code ([`AppConfig`]), from a
//!   [preset](presets) (GitHub, Google, Entra ID, ...), from settings ([`AppSettings`]), or
//!   from just an issuer URL whose endpoints are discovered (RFC 8414 / OpenID Connect).
//! - [`RemoteApp`]: the authorization code flow with `state`, PKCE S256 and `nonce`;
//!   callback checks (CSRF `state`, RFC 9207 `iss`, typed `error`s); client credentials,
//!   password, refresh, revocation and the device flow (RFC 8628).
//! - [`Session`]: GET/POST/PUT/PATCH/DELETE with the user's token from your [`TokenHook`],
//!   refreshed before it expires and once on a 401 `invalid_token`.
//!
//! The protocol steps are pure functions ([`flow`], [`token`], [`device`], [`discovery`]);
//! the HTTP part is the [`HttpClient`] trait, implemented on reqwest with rustls by
//! [`ReqwestClient`] behind the default `reqwest` feature.
//!
//! ## Signing users in with GitHub
//!
//! ```no_run
//! use latchkey_client::{MemoryTokens, OAuth, PendingLogin};
//!
//! # async fn demo() -> Result<(), latchkey_client::ClientError> {
//! let mut oauth = OAuth::new();
//! let github = oauth.register_preset("github", "github", "Iv1.8a61f9b3a7aba766", Some("secret"))?;
//!
//! // 1. Send the user to GitHub; keep `pending` in the server-side session.
//! let login = github.authorize("https://app.example.com/callback", None, &[]).await?;
//! let (redirect_to, pending): (String, PendingLogin) = (login.url, login.pending);
//! # let _ = redirect_to;
//!
//! // 2. On the callback, check state and exchange the code.
//! let callback_query = "code=...&state=...";
//! let token = github.finish_login(&pending, callback_query).await?;
//!
//! // 3. Call the API with the token (your TokenHook would load it from your database).
//! let tokens = MemoryTokens::new(token);
//! let me = github.session(&tokens).get("user").await?.json();
//! # let _ = me;
//! # Ok(()) }
//! ```
//!
//! ## Any OpenID Connect or RFC 8414 provider, from its issuer
//!
//! ```no_run
//! use latchkey_client::{AppConfig, OAuth};
//!
//! # async fn demo() -> Result<(), latchkey_client::ClientError> {
//! let mut oauth = OAuth::new();
//! let corp = oauth.register(
//!     "corp",
//!     AppConfig::new("portal", Some("secret"))
//!         .issuer("https://login.example.com")
//!         .scopes(["openid", "email"]),
//! )?;
//! let service_token = corp.client_credentials(Some(&["reports:read"])).await?;
//! # let _ = service_token;
//! # Ok(()) }
//! ```
//!
//! ## Keeping tokens where your application keeps them
//!
//! ```no_run
//! use latchkey_client::{Body, ClientError, RemoteApp, ReqwestClient, Token, TokenHook};
//!
//! /// One user's token at one provider, in the application's database.
//! struct UserTokens {
//!     user_id: i64,
//! }
//!
//! impl TokenHook for UserTokens {
//!     async fn load(&self) -> Result<Option<Token>, ClientError> {
//!         // SELECT token_json FROM tokens WHERE user_id = $1, then serde_json::from_str
//!         Ok(None)
//!     }
//!     async fn save(&self, token: &Token) -> Result<(), ClientError> {
//!         // UPSERT serde_json::to_string(token)
//!         let _ = (self.user_id, token);
//!         Ok(())
//!     }
//! }
//!
//! # async fn demo(github: &RemoteApp<ReqwestClient>) -> Result<(), ClientError> {
//! let tokens = UserTokens { user_id: 42 };
//! let api = github.session(&tokens);
//! let me = api.get("user").await?.json();
//! api.post("user/repos", Body::Json(serde_json::json!({ "name": "hello" }))).await?;
//! # let _ = me;
//! # Ok(()) }
//! ```
//!
//! ## Checking tokens remotely (resource servers)
//!
//! ```no_run
//! use latchkey_client::HttpIntrospector;
//! use latchkey_core::clock::SystemClock;
//! use latchkey_core::resource::Guard;
//! use latchkey_core::resource::cache::CachedVerifier;
//! use latchkey_core::resource::remote::IntrospectionVerifier;
//! use std::sync::Arc;
//!
//! let introspector = HttpIntrospector::new(
//!     "https://auth.example.com/introspect",
//!     "photo-api",
//!     "the resource server's client secret",
//! );
//! // Answers are cached for at most 10 seconds: a revoked token is refused within 10 s.
//! let verifier = CachedVerifier::new(
//!     IntrospectionVerifier::new(introspector),
//!     Arc::new(SystemClock),
//!     10,
//!     100_000,
//! );
//! let guard = Guard::new(verifier, "photos");
//! # let _ = guard;
//! ```

// On docs.rs (`--cfg docsrs`, nightly), items behind a feature are labelled with it.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod app;
pub mod assertion;
pub mod config;
pub mod device;
pub mod discovery;
pub mod dpop;
pub mod error;
pub mod flow;
pub mod http;
pub mod id_token;
#[cfg(feature = "reqwest")]
mod introspect;
pub mod jose;
pub mod jwks;
#[cfg(feature = "oauth1")]
pub mod oauth1;
pub mod presets;
pub mod registry;
pub mod session;
pub mod token;

pub use app::{Endpoints, RemoteApp};
pub use assertion::ClientKey;
pub use config::{AppConfig, AppSettings, AssertionAudience, ClientAuth, KeySettings, TokenMethod};
pub use device::DeviceAuthorization;
pub use error::{ClientError, ErrorCode, ProviderError};
pub use flow::{Authorization, PendingLogin};
#[cfg(feature = "reqwest")]
pub use http::ReqwestClient;
pub use http::{HttpClient, Method, Request, Response, TransportError};
pub use id_token::IdTokenError;
#[cfg(feature = "reqwest")]
pub use introspect::{HttpIntrospector, HttpKeySetFetcher};
pub use jose::SigningAlg;
pub use registry::OAuth;
pub use session::{Body, MemoryTokens, Session, TokenHook};
pub use token::Token;

/// The crate's README, compiled as doc tests so its examples cannot rot. The repository's
/// README carries the same text (checked by a test below).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

#[cfg(test)]
mod readme {
    #[test]
    fn the_repository_readme_carries_the_crate_readme() {
        let crate_readme = include_str!("../README.md");
        let body = crate_readme
            .split_once('\n')
            .map_or("", |(_, rest)| rest)
            .trim_end();
        assert!(
            include_str!("../../../README.md").contains(body),
            "README.md's latchkey-client section differs from crates/latchkey-client/README.md"
        );
    }
}
