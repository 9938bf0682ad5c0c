//! A remote app: one provider's configuration plus the HTTP client, clock and randomness, and
//! every step that talks to the provider: discovery, the code flow, the other grants,
//! refresh, revocation and the device flow. The protocol itself is in [`crate::flow`],
//! [`crate::token`] and [`crate::device`]; this module only sends what they build.

use crate::config::{AppConfig, AssertionAudience, ClientAuth};
use crate::device::{DeviceAuthorization, Poll};
use crate::discovery::{self, Metadata};
use crate::error::{ClientError, ErrorCode, ProviderError};
use crate::flow::{self, Authorization, PendingLogin};
use crate::http::{HttpClient, Request, Response};
use crate::id_token::{AlgPolicy, Claims, Expectations, Keys};
use crate::jwks::{JwksCache, PublicKey};
use crate::session::{Session, TokenHook};
use crate::token::Token;
use latchkey_core::clock::Clock;
use latchkey_core::entropy::Entropy;
use latchkey_core::secret::Secret;
use std::sync::Arc;

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
    /// Where the provider's ID-token signing keys are published.
    pub jwks_uri: Option<String>,
    /// The provider's `id_token_signing_alg_values_supported` (empty: not discovered).
    pub id_token_signing_alg_values_supported: Vec<String>,
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
            jwks_uri: c.jwks_uri.clone(),
            id_token_signing_alg_values_supported: Vec::new(),
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
        fill(&mut self.jwks_uri, m.jwks_uri);
        self.id_token_signing_alg_values_supported = m.id_token_signing_alg_values_supported;
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
    /// The provider's signing keys; the lock also makes concurrent logins that miss a key
    /// wait for one fetch instead of each fetching.
    jwks: tokio::sync::Mutex<JwksCache>,
    /// Serializes refreshes, so two requests that find the same expired token do not both
    /// spend its refresh token (a rotating server would see a reuse and revoke the family).
    pub(crate) refresh_lock: tokio::sync::Mutex<()>,
    /// The DPoP key, when tokens are to be bound to one (RFC 9449).
    dpop: Option<crate::dpop::Dpop>,
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
            jwks: tokio::sync::Mutex::new(JwksCache::new()),
            refresh_lock: tokio::sync::Mutex::new(()),
            dpop: None,
        })
    }

    /// Binds this app's tokens to `dpop`'s key (RFC 9449): proofs on every token request,
    /// `dpop_jkt` on logins, and DPoP-bound tokens sent with proofs by sessions.
    pub fn with_dpop(mut self, dpop: crate::dpop::Dpop) -> Self {
        self.dpop = Some(dpop);
        self
    }

    /// The DPoP key, if any (see [`RemoteApp::with_dpop`]).
    pub fn dpop(&self) -> Option<&crate::dpop::Dpop> {
        self.dpop.as_ref()
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
    /// lacks the authorization or token endpoint (or, for OpenID Connect, the `jwks_uri`).
    pub async fn endpoints(&self) -> Result<&Endpoints, ClientError> {
        self.endpoints
            .get_or_try_init(|| async {
                let configured = Endpoints::from_config(&self.config);
                let complete = configured.authorize_url.is_some()
                    && configured.token_url.is_some()
                    && (!self.config.openid || configured.jwks_uri.is_some());
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
        // RFC 9449 §10: the code is bound to the key too.
        let mut extra = extra.to_vec();
        if let Some(dpop) = &self.dpop {
            extra.push(("dpop_jkt", dpop.jkt()));
        }
        flow::authorization(
            &self.config,
            url,
            redirect_uri,
            scopes,
            &extra,
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
            let expect = Expectations {
                nonce: pending.nonce.as_deref(),
                max_age: pending.max_age,
                access_token: Some(token.access_token.expose()),
                ..Expectations::new(
                    &self.config.client_id,
                    ep.issuer.as_deref(),
                    self.clock.now(),
                )
            };
            self.verify_id_token(id_token, &expect).await?;
        }
        Ok(token)
    }

    /// Verifies an ID token of this provider (OpenID Connect Core §3.1.3.7): its algorithm
    /// is one the provider advertises (RS256 if unknown) or the one the client registered,
    /// never `none`, HS256 only for a client with a secret registered for it; its signature
    /// verifies with a key of the provider's JWK Set (fetched and cached, refetched once on
    /// an unknown `kid`) or the client secret; then its claims meet `expect`. Returns the
    /// claims.
    pub async fn verify_id_token(
        &self,
        id_token: &str,
        expect: &Expectations<'_>,
    ) -> Result<Claims, ClientError> {
        let ep = self.endpoints().await?;
        let header = crate::id_token::decode_unverified(id_token)?;
        let policy = AlgPolicy {
            advertised: ep.id_token_signing_alg_values_supported.clone(),
            registered: self.config.id_token_signed_response_alg,
            has_secret: self.config.client_secret.is_some(),
        };
        let alg = policy.accept(&header.alg)?;
        let claims = match &self.config.client_secret {
            Some(secret) if alg.is_symmetric() => crate::id_token::verify(
                id_token,
                alg,
                Keys::Secret(secret.expose().as_bytes()),
                expect,
            )?,
            _ => {
                let keys = self.signing_keys(ep, header.kid.as_deref(), alg).await?;
                crate::id_token::verify(id_token, alg, Keys::Public(&keys), expect)?
            }
        };
        Ok(claims)
    }

    /// The provider's keys that may verify a token with `kid` and `alg`: from the cache,
    /// fetched when stale, and refetched once (within the cooldown) when none fits, as after
    /// a key rotation at the provider (OpenID Connect Core §10.1.1).
    async fn signing_keys(
        &self,
        ep: &Endpoints,
        kid: Option<&str>,
        alg: crate::jose::SigningAlg,
    ) -> Result<Vec<Arc<PublicKey>>, ClientError> {
        let Some(uri) = ep.jwks_uri.as_deref() else {
            return Err(ClientError::Config(
                "the provider's jwks_uri is unknown, so its ID tokens cannot be verified: \
                 configure an issuer to discover it from, or jwks_uri"
                    .into(),
            ));
        };
        let mut cache = self.jwks.lock().await;
        let now = self.clock.now();
        let fetched = cache.is_stale(now);
        if fetched {
            self.fetch_keys(&mut cache, uri, now).await?;
        }
        let found = cache.candidates(kid, alg);
        if !found.is_empty() || fetched || !cache.take_refetch(now) {
            return Ok(found);
        }
        self.fetch_keys(&mut cache, uri, now).await?;
        Ok(cache.candidates(kid, alg))
    }

    /// Fetches the key set into `cache`; a failure is recorded so the next attempt waits.
    async fn fetch_keys(
        &self,
        cache: &mut JwksCache,
        uri: &str,
        now: latchkey_core::clock::UnixTime,
    ) -> Result<(), ClientError> {
        let fetched = match self.http.send(crate::jwks::key_set_request(uri)).await {
            Ok(resp) => cache.store(&resp, now),
            Err(e) => Err(e.into()),
        };
        if fetched.is_err() {
            cache.fetch_failed(now);
        }
        fetched
    }

    /// The client assertion for one request, when the client authenticates with a JWT.
    fn assertion(&self, ep: &Endpoints) -> Result<Option<Secret>, ClientError> {
        if !matches!(
            self.config.client_auth,
            ClientAuth::PrivateKeyJwt | ClientAuth::ClientSecretJwt
        ) {
            return Ok(None);
        }
        let audience = match self.config.assertion_audience {
            AssertionAudience::Issuer => Endpoints::need(&ep.issuer, "issuer")?,
            _ => Endpoints::need(&ep.token_url, "token endpoint")?,
        };
        crate::assertion::client_assertion(&self.config, audience, self.clock.now(), &*self.entropy)
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
    /// the old one is kept (it stays valid); a rotating provider's new one replaces it. A new
    /// ID token is verified and must name the same user and authentication (OpenID Connect
    /// Core §12.2); without one, the old one is kept.
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
        match (&fresh.id_token, &token.id_token) {
            (Some(id_token), original) => {
                let issuer = self.endpoints().await?.issuer.clone();
                let expect = Expectations {
                    access_token: Some(fresh.access_token.expose()),
                    ..Expectations::new(&self.config.client_id, issuer.as_deref(), self.clock.now())
                };
                let claims = self.verify_id_token(id_token, &expect).await?;
                if let Some(original) = original {
                    let before = crate::id_token::decode_unverified(original)?.claims;
                    crate::id_token::check_refreshed(&before, &claims)?;
                }
            }
            (None, original) => fresh.id_token.clone_from(original),
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
        let assertion = self.assertion(self.endpoints().await?)?;
        let req = flow::revocation_request(&self.config, url, token, hint, assertion.as_ref())?;
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
        let assertion = self.assertion(ep)?;
        let req = flow::authenticated_request(
            &self.config,
            url,
            crate::config::TokenMethod::Post,
            params,
            assertion.as_ref(),
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
        let assertion = self.assertion(ep)?;
        let mut req = flow::token_request(&self.config, url, grant, assertion.as_ref())?;
        let resp = self.send_with_proof(&mut req, None).await?;
        Token::from_response(&resp, self.clock.now())
    }

    /// Authenticated requests with the tokens that `hook` loads and saves.
    pub fn session<'a, T: TokenHook>(&'a self, hook: &'a T) -> Session<'a, H, T> {
        Session::new(self, hook)
    }

    /// Sends `req`, with a DPoP proof (for `access_token`, if any) when the app has a key,
    /// retrying once with the server's nonce when it asks for one.
    pub(crate) async fn send_with_proof(
        &self,
        req: &mut Request,
        access_token: Option<&Secret>,
    ) -> Result<Response, ClientError> {
        let Some(dpop) = &self.dpop else {
            return Ok(self.http.send(req.clone()).await?);
        };
        dpop.sign(req, access_token, self.clock.now())?;
        let resp = self.http.send(req.clone()).await?;
        if !dpop.learn(req, &resp) {
            return Ok(resp);
        }
        dpop.sign(req, access_token, self.clock.now())?;
        let resp = self.http.send(req.clone()).await?;
        dpop.learn(req, &resp);
        Ok(resp)
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
