//! Remote token introspection (RFC 7662) for resource servers: [`HttpIntrospector`], the
//! call behind `latchkey_core::resource::remote::IntrospectionVerifier`.

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
