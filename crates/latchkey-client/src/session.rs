//! Authenticated requests (Flask-OAuthlib's `remote.get(...)`, `request(..., format=...)`):
//! the token comes from the application's [`TokenHook`] (its `tokengetter`), is refreshed
//! shortly before it expires and once more on a 401 `invalid_token` (RFC 6750 §3.1), and the
//! refreshed token goes back through the hook.

use crate::app::RemoteApp;
use crate::error::ClientError;
use crate::http::{HttpClient, Method, Request, Response};
use crate::token::Token;
use std::future::Future;
use std::sync::Mutex;

/// Where the application keeps the current user's token: a session, a database row, a
/// cache. One hook value stands for one user's token at this provider.
pub trait TokenHook: Send + Sync {
    /// The token to use, if there is one.
    fn load(&self) -> impl Future<Output = Result<Option<Token>, ClientError>> + Send;
    /// Keeps a new or refreshed token.
    fn save(&self, token: &Token) -> impl Future<Output = Result<(), ClientError>> + Send;
}

/// A [`TokenHook`] holding one token in memory: for scripts, service accounts and tests.
#[derive(Debug, Default)]
pub struct MemoryTokens(Mutex<Option<Token>>);

impl MemoryTokens {
    /// Holds `token`.
    pub fn new(token: Token) -> Self {
        Self(Mutex::new(Some(token)))
    }

    /// The token held now.
    pub fn current(&self) -> Option<Token> {
        self.0.lock().ok().and_then(|t| t.clone())
    }
}

impl TokenHook for MemoryTokens {
    async fn load(&self) -> Result<Option<Token>, ClientError> {
        Ok(self.current())
    }

    async fn save(&self, token: &Token) -> Result<(), ClientError> {
        let mut slot = self
            .0
            .lock()
            .map_err(|_| ClientError::TokenHook("token mutex poisoned".into()))?;
        *slot = Some(token.clone());
        Ok(())
    }
}

/// A request body, as Flask-OAuthlib's `format` chose it.
#[derive(Clone, Debug, PartialEq)]
pub enum Body {
    /// No body.
    Empty,
    /// `application/x-www-form-urlencoded` (`format='urlencoded'`).
    Form(Vec<(String, String)>),
    /// `application/json` (`format='json'`).
    Json(serde_json::Value),
    /// Bytes with their own content type, sent as they are.
    Raw {
        /// The `Content-Type`.
        content_type: String,
        /// The bytes.
        bytes: Vec<u8>,
    },
}

impl Body {
    /// A form body from pairs.
    pub fn form<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self::Form(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    pub(crate) fn apply(self, mut req: Request) -> Request {
        match self {
            Self::Empty => req,
            Self::Form(pairs) => req.with_form(&pairs),
            Self::Json(value) => req.with_json(&value),
            Self::Raw {
                content_type,
                bytes,
            } => {
                req.body = bytes;
                req.set_header("content-type", content_type);
                req
            }
        }
    }
}

/// Requests on behalf of the user whose token `hook` holds; see [`RemoteApp::session`].
pub struct Session<'a, H, T> {
    app: &'a RemoteApp<H>,
    hook: &'a T,
}

impl<H, T> std::fmt::Debug for Session<'_, H, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("app", &self.app).finish()
    }
}

impl<'a, H: HttpClient, T: TokenHook> Session<'a, H, T> {
    pub(crate) fn new(app: &'a RemoteApp<H>, hook: &'a T) -> Self {
        Self { app, hook }
    }

    /// `GET url`.
    pub async fn get(&self, url: &str) -> Result<Response, ClientError> {
        self.request(Method::Get, url, Body::Empty, &[]).await
    }

    /// `POST url` with `body`.
    pub async fn post(&self, url: &str, body: Body) -> Result<Response, ClientError> {
        self.request(Method::Post, url, body, &[]).await
    }

    /// `PUT url` with `body`.
    pub async fn put(&self, url: &str, body: Body) -> Result<Response, ClientError> {
        self.request(Method::Put, url, body, &[]).await
    }

    /// `PATCH url` with `body`.
    pub async fn patch(&self, url: &str, body: Body) -> Result<Response, ClientError> {
        self.request(Method::Patch, url, body, &[]).await
    }

    /// `DELETE url`.
    pub async fn delete(&self, url: &str) -> Result<Response, ClientError> {
        self.request(Method::Delete, url, Body::Empty, &[]).await
    }

    /// The userinfo endpoint's answer as JSON.
    pub async fn userinfo(&self) -> Result<serde_json::Value, ClientError> {
        let ep = self.app.endpoints().await?;
        let Some(url) = ep.userinfo_url.clone() else {
            return Err(ClientError::Config(
                "the provider has no userinfo endpoint configured".into(),
            ));
        };
        let resp = self.get(&url).await?;
        if !resp.is_success() {
            return Err(crate::app::provider_error(&resp));
        }
        resp.json()
            .map_err(|e| ClientError::InvalidResponse(format!("userinfo is not JSON: {e}")))
    }

    /// Sends a request with the user's token. `url` may be relative to the app's
    /// `api_base_url`. A token about to expire is refreshed first; a 401 `invalid_token` makes
    /// one refresh and one retry.
    pub async fn request(
        &self,
        method: Method,
        url: &str,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Result<Response, ClientError> {
        let url = self.resolve(url)?;
        let mut req = body.apply(Request::new(method, url));
        for (name, value) in headers {
            req.set_header(name, *value);
        }
        let token = self.token().await?;
        let resp = self.send_with(&mut req, &token).await?;
        if !rejects_token(&resp) || token.refresh_token.is_none() {
            return Ok(resp);
        }
        let fresh = self.refresh_after_rejection(&token).await?;
        self.send_with(&mut req, &fresh).await
    }

    /// Sends `req` with `token`: a DPoP-bound token (RFC 9449 §7.1) as `DPoP` with a proof,
    /// any other in the app's scheme.
    async fn send_with(&self, req: &mut Request, token: &Token) -> Result<Response, ClientError> {
        if token.token_type.eq_ignore_ascii_case("dpop") && self.app.dpop().is_some() {
            req.set_header("authorization", token.authorization(Some("DPoP")));
            return self
                .app
                .send_with_proof(req, Some(&token.access_token))
                .await;
        }
        let scheme = &self.app.config().auth_scheme;
        req.set_header("authorization", token.authorization(Some(scheme)));
        self.app.send(req.clone()).await
    }

    /// The user's token, refreshed first if it expires within the app's leeway.
    pub async fn token(&self) -> Result<Token, ClientError> {
        let token = self.hook.load().await?.ok_or(ClientError::NoToken)?;
        if !self.due(&token) {
            return Ok(token);
        }
        let _guard = self.app.refresh_lock.lock().await;
        // Another request may have refreshed while this one waited.
        let token = self.hook.load().await?.ok_or(ClientError::NoToken)?;
        if !self.due(&token) {
            return Ok(token);
        }
        let fresh = self.app.refresh(&token).await?;
        self.hook.save(&fresh).await?;
        Ok(fresh)
    }

    fn due(&self, token: &Token) -> bool {
        token.refresh_token.is_some()
            && token.expires_within(self.app.clock().now(), self.app.config().refresh_leeway)
    }

    async fn refresh_after_rejection(&self, rejected: &Token) -> Result<Token, ClientError> {
        let _guard = self.app.refresh_lock.lock().await;
        let current = self.hook.load().await?.ok_or(ClientError::NoToken)?;
        if current.access_token != rejected.access_token {
            return Ok(current);
        }
        let fresh = self.app.refresh(&current).await?;
        self.hook.save(&fresh).await?;
        Ok(fresh)
    }

    fn resolve(&self, url: &str) -> Result<String, ClientError> {
        if url.starts_with("https://") || url.starts_with("http://") {
            return Ok(url.to_owned());
        }
        let Some(base) = &self.app.config().api_base_url else {
            return Err(ClientError::Config(format!(
                "{url:?} is relative and the app has no api_base_url"
            )));
        };
        let base =
            url::Url::parse(base).map_err(|e| ClientError::Config(format!("api_base_url: {e}")))?;
        base.join(url.trim_start_matches('/'))
            .map(String::from)
            .map_err(|e| ClientError::Config(format!("{url:?}: {e}")))
    }
}

/// RFC 6750 §3.1: a 401 whose challenge says `error="invalid_token"` (expired, revoked).
fn rejects_token(resp: &Response) -> bool {
    resp.status == 401
        && resp
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("www-authenticate"))
            .any(|(_, v)| v.contains("invalid_token"))
}
