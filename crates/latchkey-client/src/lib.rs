//! # latchkey-client
//!
//! The client side of OAuth for Rust services. Today it holds what a resource server needs to
//! check tokens against a remote authorization server: [`HttpIntrospector`], the RFC 7662 call
//! behind `latchkey_core::resource::remote::IntrospectionVerifier`.
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

use base64::Engine as _;
use latchkey_core::resource::remote::Introspector;
use latchkey_core::secret::Secret;
use latchkey_core::store::{StoreError, StoreErrorKind};
use std::time::Duration;

/// Calls an authorization server's introspection endpoint (RFC 7662), authenticated with
/// `client_secret_basic` as the resource server's own client.
#[derive(Clone)]
pub struct HttpIntrospector {
    http: reqwest::Client,
    endpoint: String,
    authorization: Secret,
}

impl HttpIntrospector {
    /// Introspects at `endpoint` as client `client_id` with `client_secret`, with a 5-second
    /// timeout per call.
    pub fn new(endpoint: impl Into<String>, client_id: &str, client_secret: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self::with_http_client(http, endpoint, client_id, client_secret)
    }

    /// The same with your own `reqwest::Client` (proxies, timeouts, roots).
    pub fn with_http_client(
        http: reqwest::Client,
        endpoint: impl Into<String>,
        client_id: &str,
        client_secret: &str,
    ) -> Self {
        Self {
            http,
            endpoint: endpoint.into(),
            authorization: Secret::new(basic(client_id, client_secret)),
        }
    }
}

impl std::fmt::Debug for HttpIntrospector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpIntrospector")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// `Authorization: Basic` with id and secret form-encoded first, as RFC 6749 §2.3.1 requires.
fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(id), enc(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

impl Introspector for HttpIntrospector {
    async fn introspect(&self, token: &Secret) -> Result<serde_json::Value, StoreError> {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token.expose())
            .append_pair("token_type_hint", "access_token")
            .finish();
        let resp = self
            .http
            .post(&self.endpoint)
            .header("authorization", self.authorization.expose())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                StoreError::new(
                    StoreErrorKind::Unavailable,
                    format!("introspection request failed: {e}"),
                )
            })?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!("introspection endpoint answered {status}"),
            ));
        }
        if !status.is_success() {
            // 401/400: our own credentials or request are wrong; retrying will not help.
            return Err(StoreError::new(
                StoreErrorKind::Other,
                format!("introspection endpoint refused the resource server: {status}"),
            ));
        }
        resp.json().await.map_err(|e| {
            StoreError::new(
                StoreErrorKind::Corrupt,
                format!("introspection answer is not JSON: {e}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn basic_credentials_are_form_encoded_before_base64() {
        use base64::Engine as _;
        let header = super::basic("my app", "s:e/cret");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(header.trim_start_matches("Basic "))
            .expect("base64");
        assert_eq!(
            String::from_utf8(raw).expect("utf-8"),
            "my+app:s%3Ae%2Fcret"
        );
    }
}
