//! A remote app: one provider's configuration plus the HTTP client, clock and randomness, and
//! every step that talks to the provider: discovery, the code flow, the other grants,
//! refresh, revocation and the device flow. The protocol itself is in [`crate::flow`],
//! [`crate::token`] and [`crate::device`]; this module only sends what they build.

use crate::config::AppConfig;
use crate::device::{DeviceAuthorization, Poll};
use crate::discovery::{self, Metadata};
use crate::error::{ClientError, ErrorCode, ProviderError};
use crate::flow::{self, Authorization, PendingLogin};
use crate::http::{HttpClient, Request, Response};
use crate::session::{Session, TokenHook};
use crate::token::Token;
use latchkey_core::clock::Clock;
use latchkey_core::entropy::Entropy;
use latchkey_core::secret::Secret;
use std::sync::Arc;

/// Clock skew allowed when checking an ID token's `exp`.
const ID_TOKEN_LEEWAY: u64 = 60;

/// The endpoints in use: configured, or discovered from the issuer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// The issuer, if known; the callback's `iss` is checked against it.
    pub issuer: Option<String>,
    /// The authorization endpoint.
    pub authorize_url: Option<String>,
    /// The token endpoint.
    pub token_url: Option<String>,
    /// The revocation endpoint.
    pub revocation_url: Option<String>,
    /// The introspection endpoint.
    pub introspection_url: Option<String>,
    /// The userinfo endpoint.
    pub userinfo_url: Option<String>,
    /// The device authorization endpoint.
    pub device_authorization_url: Option<String>,
    /// The callback must carry `iss`.
    pub require_iss: bool,
}

impl Endpoints {
    fn from_config(c: &AppConfig) -> Self {
        Self {
            issuer: c.issuer.clone(),
            authorize_url: c.authorize_url.clone(),
            token_url: c.token_url.clone(),
            revocation_url: c.revocation_url.clone(),
            introspection_url: c.introspection_url.clone(),
            userinfo_url: c.userinfo_url.clone(),
            device_authorization_url: c.device_authorization_url.clone(),
            require_iss: c.require_iss,
        }
    }

    /// Configured values win; discovery fills the gaps.
    fn merge(mut self, m: Metadata) -> Self {
        let fill = |slot: &mut Option<String>, found: Option<String>| {
            if slot.is_none() {
                *slot = found;
            }
        };
        fill(&mut self.authorize_url, m.authorization_endpoint);
        fill(&mut self.token_url, m.token_endpoint);
        fill(&mut self.revocation_url, m.revocation_endpoint);
        fill(&mut self.introspection_url, m.introspection_endpoint);
        fill(&mut self.userinfo_url, m.userinfo_endpoint);
        fill(
            &mut self.device_authorization_url,
            m.device_authorization_endpoint,
        );
        self.require_iss |= m.authorization_response_iss_parameter_supported;
        self
    }

    fn need<'a>(slot: &'a Option<String>, what: &str) -> Result<&'a str, ClientError> {
        slot.as_deref()
            .ok_or_else(|| ClientError::Config(format!("the provider has no {what} configured")))
    }
}

/// One provider the application signs users in with or calls (Flask-OAuthlib's
/// `OAuthRemoteApp`). Get one from the [`OAuth`](crate::OAuth) registry or build it directly.
pub struct RemoteApp<H> {
    name: String,
    config: AppConfig,
    http: Arc<H>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    endpoints: tokio::sync::OnceCell<Endpoints>,
    /// Serializes refreshes, so two requests that find the same expired token do not both
    /// spend its refresh token (a rotating server would see a reuse and revoke the family).
    pub(crate) refresh_lock: tokio::sync::Mutex<()>,
}

impl<H> std::fmt::Debug for RemoteApp<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteApp")
            .field("name", &self.name)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

impl<H: HttpClient> RemoteApp<H> {
    /// A remote app; `config` is validated first.
    pub fn new(
        name: impl Into<String>,
        config: AppConfig,
        http: Arc<H>,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Result<Self, ClientError> {
        config.validate()?;
        Ok(Self {
            name: name.into(),
            config,
            http,
            clock,
            entropy,
            endpoints: tokio::sync::OnceCell::new(),
            refresh_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// The name it is registered under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its configuration.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// The clock expiry decisions use.
    pub fn clock(&self) -> &dyn Clock {
        &*self.clock
    }

    /// The endpoints, discovering them from the issuer on first use when the configuration
    /// lacks the authorization or token endpoint.
    pub async fn endpoints(&self) -> Result<&Endpoints, ClientError> {
        self.endpoints
            .get_or_try_init(|| async {
                let configured = Endpoints::from_config(&self.config);
                let complete = configured.authorize_url.is_some() && configured.token_url.is_some();
                match (&self.config.issuer, complete) {
                    (Some(issuer), false) => Ok(configured.merge(self.discover(issuer).await?)),
                    _ => Ok(configured),
                }
            })
            .await
    }

    /// Fetches the issuer's metadata (RFC 8414, then OpenID Connect Discovery).
    pub async fn discover(&self, issuer: &str) -> Result<Metadata, ClientError> {
        for url in discovery::metadata_urls(issuer)? {
            let resp = self.http.send(discovery::metadata_request(&url)).await?;
            if let Some(meta) = discovery::parse_metadata(issuer, &resp)? {
                return Ok(meta);
            }
        }
        Err(ClientError::InvalidResponse(format!(
            "no metadata found for issuer {issuer:?}"
        )))
    }

    /// Starts a login: the URL to send the user agent to, and what to keep for the
    /// callback. `scopes` of `None` requests the default scopes; `extra` adds parameters
    /// (`prompt`, `login_hint` ...).
    pub async fn authorize(
        &self,
        redirect_uri: &str,
        scopes: Option<&[&str]>,
        extra: &[(&str, &str)],
    ) -> Result<Authorization, ClientError> {
        let ep = self.endpoints().await?;
        let url = Endpoints::need(&ep.authorize_url, "authorization endpoint")?;
        flow::authorization(
            &self.config,
            url,
            redirect_uri,
            scopes,
            extra,
            &*self.entropy,
        )
    }

    /// Finishes a login: checks the callback (its query string, or the form body of a
    /// `form_post` callback) against `pending` and exchanges the code for a token.
    pub async fn finish_login(
        &self,
        pending: &PendingLogin,
        callback: &str,
    ) -> Result<Token, ClientError> {
        let ep = self.endpoints().await?;
        let params = flow::callback_params(callback);
        let code = flow::finish(pending, &params, ep.issuer.as_deref(), ep.require_iss)?;
        let token = self.exchange_code(&code, pending).await?;
        if let Some(id_token) = &token.id_token {
            crate::id_token::check_id_token(
                id_token,
                &self.config.client_id,
                ep.issuer.as_deref(),
                pending.nonce.as_deref(),
                self.clock.now(),
                ID_TOKEN_LEEWAY,
            )?;
        }
        Ok(token)
    }

    /// Exchanges an authorization code (RFC 6749 §4.1.3) with the PKCE verifier.
    pub async fn exchange_code(
        &self,
        code: &str,
        pending: &PendingLogin,
    ) -> Result<Token, ClientError> {
        self.token(flow::code_grant(code, pending)).await
    }

    /// The client credentials grant (RFC 6749 §4.4).
    pub async fn client_credentials(&self, scopes: Option<&[&str]>) -> Result<Token, ClientError> {
        let mut grant = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
        self.add_scope(&mut grant, scopes);
        self.token(grant).await
    }

    /// The resource owner password credentials grant (RFC 6749 §4.3); RFC 9700 §2.4 says not
    /// to use it, but some first-party setups still do.
    pub async fn password(
        &self,
        username: &str,
        password: &Secret,
        scopes: Option<&[&str]>,
    ) -> Result<Token, ClientError> {
        let mut grant = vec![
            ("grant_type".to_owned(), "password".to_owned()),
            ("username".to_owned(), username.to_owned()),
            ("password".to_owned(), password.expose().to_owned()),
        ];
        self.add_scope(&mut grant, scopes);
        self.token(grant).await
    }

    /// Refreshes `token` (RFC 6749 §6). When the provider does not send a new refresh token,
    /// the old one is kept (it stays valid); a rotating provider's new one replaces it.
    pub async fn refresh(&self, token: &Token) -> Result<Token, ClientError> {
        let Some(refresh) = &token.refresh_token else {
            return Err(ClientError::Provider(ProviderError {
                description: Some("the token has no refresh token".into()),
                ..ProviderError::new(ErrorCode::InvalidGrant)
            }));
        };
        let mut fresh = self.token(flow::refresh_grant(refresh, None)).await?;
        if fresh.refresh_token.is_none() {
            fresh.refresh_token = Some(refresh.clone());
        }
        if fresh.scope.is_none() {
            // RFC 6749 §5.1: without `scope`, the scope is the one previously granted.
            fresh.scope.clone_from(&token.scope);
        }
        Ok(fresh)
    }

    /// Revokes `token` (RFC 7009): its refresh token first (which, on most servers, revokes
    /// the access tokens issued from it), then the access token.
    pub async fn revoke(&self, token: &Token) -> Result<(), ClientError> {
        let ep = self.endpoints().await?;
        let url = Endpoints::need(&ep.revocation_url, "revocation endpoint")?;
        if let Some(refresh) = &token.refresh_token {
            self.revoke_one(url, refresh, "refresh_token").await?;
        }
        self.revoke_one(url, &token.access_token, "access_token")
            .await
    }

    async fn revoke_one(&self, url: &str, token: &Secret, hint: &str) -> Result<(), ClientError> {
        let req = flow::revocation_request(&self.config, url, token, hint)?;
        let resp = self.http.send(req).await?;
        // RFC 7009 §2.2: 200 whether or not the token was valid.
        if resp.is_success() {
            return Ok(());
        }
        Err(provider_error(&resp))
    }

    /// Asks for a device code and user code (RFC 8628 §3.1).
    pub async fn device_authorization(
        &self,
        scopes: Option<&[&str]>,
    ) -> Result<DeviceAuthorization, ClientError> {
        let ep = self.endpoints().await?;
        let url = Endpoints::need(
            &ep.device_authorization_url,
            "device authorization endpoint",
        )?;
        let mut params = Vec::new();
        self.add_scope(&mut params, scopes);
        let req = flow::authenticated_request(
            &self.config,
            url,
            crate::config::TokenMethod::Post,
            params,
        )?;
        let resp = self.http.send(req).await?;
        DeviceAuthorization::from_response(&resp)
    }

    /// Polls the token endpoint until the user approves the device (RFC 8628 §3.4-3.5),
    /// waiting `interval` seconds between polls (5 more after each `slow_down`), and gives up
    /// with `expired_token` once the device code's lifetime has passed.
    pub async fn poll_device(&self, device: &DeviceAuthorization) -> Result<Token, ClientError> {
        let deadline =
            tokio::time::Instant::now() + std::time::Duration::from_secs(device.expires_in);
        let mut interval = device.interval;
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(interval)).await;
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Provider(ProviderError {
                    description: Some("the device code expired before the user approved".into()),
                    ..ProviderError::new(ErrorCode::ExpiredToken)
                }));
            }
            match crate::device::next_step(self.token(device.grant()).await, &mut interval)? {
                Poll::Done(token) => return Ok(token),
                Poll::Wait(_) => {}
            }
        }
    }

    /// Calls the token endpoint with `grant` and reads the token.
    pub async fn token(&self, grant: Vec<(String, String)>) -> Result<Token, ClientError> {
        let ep = self.endpoints().await?;
        let url = Endpoints::need(&ep.token_url, "token endpoint")?;
        let req = flow::token_request(&self.config, url, grant)?;
        let resp = self.http.send(req).await?;
        Token::from_response(&resp, self.clock.now())
    }

    /// Authenticated requests with the tokens that `hook` loads and saves.
    pub fn session<'a, T: TokenHook>(&'a self, hook: &'a T) -> Session<'a, H, T> {
        Session::new(self, hook)
    }

    /// Sends a request as is (the session adds the token).
    pub(crate) async fn send(&self, req: Request) -> Result<Response, ClientError> {
        Ok(self.http.send(req).await?)
    }

    fn add_scope(&self, params: &mut Vec<(String, String)>, scopes: Option<&[&str]>) {
        let scope = match scopes {
            Some(list) => self.config.join_scopes(list),
            None => self.config.join_scopes(&self.config.scopes),
        };
        if !scope.is_empty() {
            params.push(("scope".into(), scope));
        }
    }
}

/// The OAuth error in an error answer, or an `InvalidResponse` naming the status.
pub(crate) fn provider_error(resp: &Response) -> ClientError {
    crate::token::response_fields(resp)
        .ok()
        .and_then(|fields| crate::token::error_in(&fields, resp))
        .map_or_else(
            || ClientError::InvalidResponse(format!("the provider answered {}", resp.status)),
            ClientError::Provider,
        )
}
