//! What a remote resource server calls: token introspection (RFC 7662) with
//! [`HttpIntrospector`], the call behind `latchkey_core::resource::remote::IntrospectionVerifier`,
//! and the provider's JWK Set with [`HttpKeySetFetcher`], the fetch behind
//! `latchkey_core::resource::jwt::RemoteJwks` (local verification of JWT access tokens).

use crate::flow::basic;
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

/// Fetches a provider's JWK Set (its `jwks_uri`) for
/// `latchkey_core::resource::jwt::RemoteJwks`, bounded: 5 seconds per fetch, at most
/// [`HttpKeySetFetcher::MAX_BYTES`] of body, no redirects followed (the URI is configured by
/// the resource server's operator, and a redirect could lead anywhere).
#[derive(Clone, Debug)]
pub struct HttpKeySetFetcher {
    http: reqwest::Client,
}

impl HttpKeySetFetcher {
    /// The largest JWK Set read: far above a few keys, far below a memory risk.
    pub const MAX_BYTES: usize = 64 * 1024;

    /// A fetcher with a 5-second timeout and no redirects.
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self { http }
    }

    /// The same with your own `reqwest::Client` (proxies, roots, timeouts).
    pub fn with_http_client(http: reqwest::Client) -> Self {
        Self { http }
    }
}

impl Default for HttpKeySetFetcher {
    fn default() -> Self {
        Self::new()
    }
}

impl latchkey_core::resource::jwt::KeySetFetcher for HttpKeySetFetcher {
    async fn fetch(&self, uri: &str) -> Result<serde_json::Value, String> {
        let mut resp = self
            .http
            .get(uri)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| format!("JWK Set request failed: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("JWK Set endpoint answered {}", resp.status()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| format!("JWK Set read failed: {e}"))?
        {
            if body.len() + chunk.len() > Self::MAX_BYTES {
                return Err(format!("JWK Set larger than {} bytes", Self::MAX_BYTES));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("JWK Set is not JSON: {e}"))
    }
}
