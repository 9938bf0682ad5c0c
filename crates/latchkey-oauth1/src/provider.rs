//! The OAuth 1.0a provider (RFC 5849 §2 and §3): temporary credentials, resource-owner
//! authorization, token credentials, signed resource requests and revocation.
//!
//! Like the OAuth 2.0 core it does no I/O of its own: every endpoint takes the core's
//! [`HttpRequest`] and returns an [`HttpResponse`] (or, for authorization, an
//! [`AuthorizeOutcome`] that the pages render). Checks run in a fixed order: parameters,
//! consumer, signature method (PLAINTEXT only where the server's transport rule allows it),
//! timestamp window, token, signature,
//! and only then the nonce, so that unsigned requests cannot use up nonces.
//!
//! Secrets are never stored. Each token secret is derived from the provider's 32-byte key
//! with HMAC-SHA256 over a label and the token's random identifier; the consumer secret over
//! a label, the client id and the registration's random salt ([`Consumer::secret_salt`]), so
//! re-registering an id or rotating the secret yields a new one. The store keeps only SHA-256
//! digests of token identifiers, as for OAuth 2.0 tokens.

use crate::error::{OAuth1Error, Problem};
use crate::request::SignedRequest;
use crate::signature::{RsaPublicKey, Secrets, SignatureMethod, VerifyKey};
use crate::store::{AccessToken, Consumer, OAuth1Store, RequestToken};
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use latchkey_core::client::Client;
use latchkey_core::clock::{Clock, SystemClock, UnixTime};
use latchkey_core::entropy::{Entropy, OsEntropy, random_token};
use latchkey_core::http::{HttpRequest, HttpResponse, Method};
use latchkey_core::params::Params;
use latchkey_core::resource;
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::{Digest, Secret};
use latchkey_core::store::ClientStore;
use latchkey_core::user::AuthenticatedUser;
use std::sync::Arc;

/// Where the provider's endpoints are mounted, relative to the base URL.
pub const REQUEST_TOKEN_PATH: &str = "/oauth1/request_token";
/// The resource-owner authorization page.
pub const AUTHORIZE_PATH: &str = "/oauth1/authorize";
/// The token-credentials exchange.
pub const ACCESS_TOKEN_PATH: &str = "/oauth1/access_token";
/// Revocation of token credentials by the consumer.
pub const REVOKE_PATH: &str = "/oauth1/revoke";

/// Settings of an [`OAuth1Provider`].
#[derive(Clone, Debug)]
pub struct OAuth1Config {
    /// The public base URL (scheme, host, port, path prefix) requests are signed against,
    /// e.g. `https://auth.example.com`; the request path is appended to it.
    pub base_url: String,
    /// The realm named in `WWW-Authenticate` challenges.
    pub challenge_realm: String,
    /// How far a timestamp may be from the server's clock, in seconds (both directions).
    pub timestamp_window: u64,
    /// How long temporary credentials (and their verifier) live, in seconds.
    pub request_token_ttl: u64,
    /// Lifetime of token credentials in seconds ([`DEFAULT_ACCESS_TOKEN_TTL`] unless set);
    /// `None` for tokens that last until revoked, the old OAuth 1.0a custom, which an
    /// embedder must choose explicitly.
    pub access_token_ttl: Option<u64>,
    /// Realms consumers may ask for unless their client registration lists its own scopes.
    pub available_realms: ScopeSet,
    /// Realms granted when a request names none, unless the client has its own defaults.
    pub default_realms: ScopeSet,
}

/// How long token credentials live by default: 30 days. A leaked token credential keeps
/// working until it expires, so "until revoked" is not a default.
pub const DEFAULT_ACCESS_TOKEN_TTL: u64 = 30 * 24 * 3600;

impl OAuth1Config {
    /// Defaults: a five-minute timestamp window, ten-minute request tokens, 30-day access
    /// tokens, no realms.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            challenge_realm: "latchkey".into(),
            timestamp_window: 300,
            request_token_ttl: 600,
            access_token_ttl: Some(DEFAULT_ACCESS_TOKEN_TTL),
            available_realms: ScopeSet::empty(),
            default_realms: ScopeSet::empty(),
        }
    }
}

/// The key from which consumer and token secrets are derived; several nodes must share it.
#[derive(Clone)]
pub struct OAuth1Key([u8; 32]);

impl OAuth1Key {
    /// Wraps 32 key bytes (e.g. read from the server's key file).
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    pub fn generate(entropy: &dyn Entropy) -> Self {
        let mut bytes = [0u8; 32];
        entropy.fill(&mut bytes);
        Self(bytes)
    }

    /// The key bytes, for saving.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The secret for `label` and public identifier `id`: base64url of
    /// HMAC-SHA256(key, label ‖ 0 ‖ id).
    fn derive(&self, label: &str, id: &str) -> Secret {
        let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(&self.0) else {
            // HMAC accepts keys of any length; this branch cannot be reached.
            return Secret::new(String::new());
        };
        mac.update(label.as_bytes());
        mac.update(&[0]);
        mac.update(id.as_bytes());
        Secret::new(
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()),
        )
    }

    /// The consumer secret of a registration (RFC 5849 §3.4.2 "client shared-secret"):
    /// HMAC over the client id and the registration's salt, so that a new registration of
    /// the same id, or a rotation, gives a new secret. A registration without a salt (made
    /// before salts existed) keeps the legacy secret, derived from the client id alone.
    pub fn consumer_secret(&self, consumer: &Consumer) -> Secret {
        self.consumer_secret_with(&consumer.client_id, consumer.secret_salt.as_deref())
    }

    fn consumer_secret_with(&self, client_id: &str, salt: Option<&str>) -> Secret {
        match salt {
            // Client ids are printable ASCII, so the 0 byte separates the two unambiguously.
            Some(salt) => self.derive(
                "latchkey oauth1 consumer v2",
                &format!("{client_id}\0{salt}"),
            ),
            None => self.derive("latchkey oauth1 consumer", client_id),
        }
    }
}

impl std::fmt::Debug for OAuth1Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OAuth1Key(***)")
    }
}

/// What the authorization endpoint wants done next.
#[derive(Clone, Debug)]
pub enum AuthorizeOutcome {
    /// Nobody is logged in: show the login page, then come back to `oauth_token`.
    Login {
        /// The consumer asking.
        client: Box<Client>,
        /// The request token, to come back with.
        oauth_token: String,
    },
    /// Ask the logged-in user to approve `realms` for `client`.
    Consent {
        /// The consumer asking.
        client: Box<Client>,
        /// The realms asked for (shown like OAuth 2.0 scopes).
        realms: ScopeSet,
        /// The request token, to post back with the decision.
        oauth_token: String,
        /// Where the user will be sent: the callback's host, or `oob`.
        callback_host: String,
    },
    /// Approved, with a callback: redirect there (303) with `oauth_token` and `oauth_verifier`.
    Redirect(HttpResponse),
    /// Approved, out of band (`oob`): show the verifier for the user to type into the consumer.
    ShowVerifier {
        /// The consumer's name.
        client_name: String,
        /// The verifier.
        verifier: String,
    },
    /// The request cannot go on: show an error page.
    Error(OAuth1Error),
}

/// The OAuth 1.0a provider over a store of clients and OAuth 1.0a state; cheap to clone.
pub struct OAuth1Provider<S> {
    inner: Arc<Inner<S>>,
}

impl<S> Clone for OAuth1Provider<S> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<S> {
    config: OAuth1Config,
    store: S,
    key: OAuth1Key,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
}

/// A request whose consumer is registered, not yet authenticated.
struct Known {
    client: Client,
    consumer: Consumer,
    signed: SignedRequest,
}

/// The consumer of an authenticated request, and the request.
struct Authenticated {
    client: Client,
    signed: SignedRequest,
}

impl<S: ClientStore + OAuth1Store> OAuth1Provider<S> {
    /// A provider on `store`, deriving secrets from `key`, on the system clock and the
    /// operating system's randomness.
    pub fn new(config: OAuth1Config, store: S, key: OAuth1Key) -> Self {
        Self::with_clock(
            config,
            store,
            key,
            Arc::new(SystemClock),
            Arc::new(OsEntropy),
        )
    }

    /// A provider with an injected clock and random source (for tests).
    pub fn with_clock(
        config: OAuth1Config,
        store: S,
        key: OAuth1Key,
        clock: Arc<dyn Clock>,
        entropy: Arc<dyn Entropy>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                store,
                key,
                clock,
                entropy,
            }),
        }
    }

    /// The settings.
    pub fn config(&self) -> &OAuth1Config {
        &self.inner.config
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The secret-derivation key (to hand a new consumer its secret).
    pub fn key(&self) -> &OAuth1Key {
        &self.inner.key
    }

    fn now(&self) -> UnixTime {
        self.inner.clock.now()
    }

    /// Turns OAuth 1.0a on for a registered client, with an RSA public key (PEM) if it
    /// signs with RSA-SHA1; returns the consumer secret for HMAC and PLAINTEXT.
    pub async fn register_consumer(
        &self,
        client_id: &str,
        rsa_public_key: Option<&str>,
    ) -> Result<Secret, OAuth1Error> {
        let rsa_public_key = match rsa_public_key {
            Some(pem) => Some(
                RsaPublicKey::from_pem(pem)
                    .map_err(|e| OAuth1Error::rejected("rsa_public_key").with_detail(e))?
                    .to_pem()
                    .to_owned(),
            ),
            None => None,
        };
        let consumer = Consumer::new(
            client_id,
            rsa_public_key,
            self.inner.entropy.as_ref(),
            self.now(),
        );
        self.inner.store.put_consumer(&consumer).await?;
        Ok(self.inner.key.consumer_secret(&consumer))
    }

    /// Gives a consumer a new secret: a fresh salt, and every request and access token it
    /// holds is deleted (they were obtained under the old secret). Returns the new consumer
    /// secret, or `None` if `client_id` is not a consumer.
    pub async fn rotate_consumer_secret(
        &self,
        client_id: &str,
    ) -> Result<Option<Secret>, OAuth1Error> {
        let inner = &self.inner;
        Ok(
            rotate_consumer_secret(&inner.store, &inner.key, inner.entropy.as_ref(), client_id)
                .await?,
        )
    }

    /// The consumer of a signed request, checked before anything else about it.
    async fn consumer(&self, signed: SignedRequest) -> Result<Known, OAuth1Error> {
        let store = &self.inner.store;
        let client = store.get_client(&signed.consumer_key).await?;
        let consumer = store.get_consumer(&signed.consumer_key).await?;
        let (Some(client), Some(consumer)) = (client, consumer) else {
            return Err(OAuth1Error::new(Problem::ConsumerKeyUnknown));
        };
        Ok(Known {
            client,
            consumer,
            signed,
        })
    }

    /// Authenticates a request from a known consumer: method, timestamp, the signature
    /// under `token_secret` (the secret of the request's `oauth_token`, if any), then the
    /// nonce.
    async fn authenticate(
        &self,
        token_secret: Option<&Secret>,
        known: Known,
    ) -> Result<Authenticated, OAuth1Error> {
        let Known {
            client,
            consumer,
            signed,
        } = known;
        // RFC 5849 §3.4.4: PLAINTEXT "does not employ a signature algorithm. It MUST be
        // used with a transport-layer mechanism such as TLS or SSL". Which transport is safe
        // enough is the embedding server's one transport rule (TLS, or plain HTTP where the
        // server allows it, e.g. from loopback), decided before the request got here.
        if signed.method == SignatureMethod::Plaintext && !signed.transport_allowed {
            return Err(OAuth1Error::new(Problem::SignatureMethodRejected)
                .with_detail("PLAINTEXT over a transport the server does not accept"));
        }
        self.check_timestamp(&signed)?;
        let consumer_secret = self.inner.key.consumer_secret(&consumer);
        let rsa;
        let key = match signed.method {
            SignatureMethod::RsaSha1 => {
                let Some(pem) = consumer.rsa_public_key.as_deref() else {
                    return Err(OAuth1Error::new(Problem::SignatureMethodRejected)
                        .with_detail("no RSA key registered"));
                };
                rsa = RsaPublicKey::from_pem(pem)
                    .map_err(|e| OAuth1Error::new(Problem::ServerError).with_detail(e))?;
                VerifyKey::Rsa(&rsa)
            }
            // A consumer that registered an RSA key signs with it: a shared-secret signature
            // from it is refused, so its OAuth 2.0 secret cannot stand in for its key.
            _ if consumer.rsa_public_key.is_some() => {
                return Err(OAuth1Error::new(Problem::SignatureMethodRejected)
                    .with_detail("this consumer signs with RSA-SHA1"));
            }
            _ => VerifyKey::Secrets(Secrets::new(
                consumer_secret.expose(),
                token_secret.map(Secret::expose).unwrap_or(""),
            )),
        };
        if !signed
            .method
            .verify(&signed.base_string, &signed.signature, &key)
        {
            return Err(OAuth1Error::new(Problem::SignatureInvalid));
        }
        self.check_nonce(&signed).await?;
        Ok(Authenticated { client, signed })
    }

    /// RFC 5849 §3.3: the server may reject requests with stale timestamps.
    fn check_timestamp(&self, signed: &SignedRequest) -> Result<(), OAuth1Error> {
        let Some(ts) = signed.timestamp else {
            return Ok(());
        };
        let now = self.now().0;
        let window = i64::try_from(self.inner.config.timestamp_window).unwrap_or(i64::MAX);
        if ts < now.saturating_sub(window) || ts > now.saturating_add(window) {
            return Err(OAuth1Error::new(Problem::TimestampRefused).with_advice(
                "oauth_acceptable_timestamps",
                format!(
                    "{}-{}",
                    now.saturating_sub(window),
                    now.saturating_add(window)
                ),
            ));
        }
        Ok(())
    }

    /// RFC 5849 §3.3: "The nonce value MUST be unique across all requests with the same
    /// timestamp, client credentials, and token combinations."
    async fn check_nonce(&self, signed: &SignedRequest) -> Result<(), OAuth1Error> {
        let (Some(ts), Some(nonce)) = (signed.timestamp, signed.nonce.as_deref()) else {
            return Ok(());
        };
        let key = format!(
            "{}\0{}\0{ts}\0{nonce}",
            signed.consumer_key,
            signed.token.as_deref().unwrap_or("")
        );
        let now = self.now();
        // Kept until the timestamp leaves the window: after that it is refused anyway.
        let expires_at = UnixTime(ts.max(now.0)).plus(self.inner.config.timestamp_window + 1);
        if !self
            .inner
            .store
            .insert_nonce(&Digest::of(key.as_bytes()), expires_at, now)
            .await?
        {
            return Err(OAuth1Error::new(Problem::NonceUsed));
        }
        Ok(())
    }

    fn parse(&self, req: &HttpRequest) -> Result<SignedRequest, OAuth1Error> {
        SignedRequest::parse(req, &self.inner.config.base_url)?
            .ok_or_else(|| OAuth1Error::absent("oauth_consumer_key"))
    }

    fn request_secret(&self, token: &str) -> Secret {
        self.inner.key.derive("latchkey oauth1 request", token)
    }

    fn access_secret(&self, token: &str) -> Secret {
        self.inner.key.derive("latchkey oauth1 access", token)
    }

    fn answer(&self, result: Result<HttpResponse, OAuth1Error>) -> HttpResponse {
        match result {
            Ok(response) => response,
            Err(err) => {
                tracing::info!(
                    oauth_problem = err.problem().as_str(),
                    detail = err.detail().unwrap_or(""),
                    "oauth1 request refused"
                );
                err.to_response(&self.inner.config.challenge_realm)
            }
        }
    }

    /// The temporary-credentials endpoint (RFC 5849 §2.1).
    pub async fn request_token(&self, req: &HttpRequest) -> HttpResponse {
        let result = self.request_token_inner(req).await;
        self.answer(result)
    }

    async fn request_token_inner(&self, req: &HttpRequest) -> Result<HttpResponse, OAuth1Error> {
        // RFC 5849 §2.1: "the client makes an authenticated ... HTTP "POST" request".
        if req.method != Method::Post {
            return Ok(method_not_allowed());
        }
        let signed = self.parse(req)?;
        if signed.token.is_some() {
            return Err(OAuth1Error::rejected("oauth_token"));
        }
        let known = self.consumer(signed).await?;
        let Authenticated { client, signed } = self.authenticate(None, known).await?;
        let Some(callback) = signed.oauth.get("oauth_callback").cloned() else {
            return Err(OAuth1Error::absent("oauth_callback"));
        };
        check_callback(&client, &callback)?;
        let realms = self.requested_realms(&client, &signed)?;
        let now = self.now();
        let token = random_token(self.inner.entropy.as_ref(), 24);
        self.inner
            .store
            .save_request_token(
                &RequestToken {
                    digest: Digest::of(token.as_bytes()),
                    client_id: client.id.to_string(),
                    callback,
                    realms,
                    subject: None,
                    username: None,
                    verifier: None,
                    expires_at: now.plus(self.inner.config.request_token_ttl),
                },
                now,
            )
            .await?;
        tracing::info!(client_id = %client.id, "oauth1 temporary credentials issued");
        Ok(form_response(&[
            ("oauth_token", token.as_str()),
            ("oauth_token_secret", self.request_secret(&token).expose()),
            ("oauth_callback_confirmed", "true"),
        ]))
    }

    /// The realms (scopes) of a temporary-credentials request: its `scope` parameter,
    /// space-separated, sent once in the query or the form body, where the signature covers
    /// it; the client's (or the server's) defaults when none. The `realm` of the
    /// `Authorization` header is not signed (RFC 5849 §3.4.1.3.1 leaves it out of the base
    /// string), so anyone relaying the request could change it: it names the protection
    /// realm only and grants nothing.
    fn requested_realms(
        &self,
        client: &Client,
        signed: &SignedRequest,
    ) -> Result<ScopeSet, OAuth1Error> {
        let mut sent = signed
            .other
            .iter()
            .filter(|(name, _)| name == "scope")
            .map(|(_, value)| value.as_str());
        let asked = sent.next();
        if sent.next().is_some() {
            return Err(OAuth1Error::rejected("scope").with_detail("scope sent twice"));
        }
        let config = &self.inner.config;
        let allowed = client.scopes.as_ref().unwrap_or(&config.available_realms);
        let realms = match asked.filter(|r| !r.trim().is_empty()) {
            Some(raw) => ScopeSet::parse(raw.trim()).map_err(|_| OAuth1Error::rejected("scope"))?,
            None => client
                .default_scopes
                .clone()
                .unwrap_or_else(|| config.default_realms.clone()),
        };
        if !realms.is_subset(allowed) {
            return Err(OAuth1Error::rejected("scope"));
        }
        Ok(realms)
    }

    /// The resource-owner authorization endpoint (RFC 5849 §2.2). `oauth_token` comes from
    /// the query (or the consent form); `user` is whoever is logged in; `decision` is the
    /// consent form's answer (`Some(true)` to allow).
    pub async fn authorize(
        &self,
        req: &HttpRequest,
        user: Option<&AuthenticatedUser>,
        decision: Option<bool>,
    ) -> AuthorizeOutcome {
        match self.authorize_inner(req, user, decision).await {
            Ok(outcome) => outcome,
            Err(err) => AuthorizeOutcome::Error(err),
        }
    }

    async fn authorize_inner(
        &self,
        req: &HttpRequest,
        user: Option<&AuthenticatedUser>,
        decision: Option<bool>,
    ) -> Result<AuthorizeOutcome, OAuth1Error> {
        let params = if req.method == Method::Post && req.has_form_body() {
            Params::parse(&req.body)
        } else {
            Params::parse(req.query.as_bytes())
        }
        .map_err(|_| OAuth1Error::rejected("oauth_token"))?;
        let Some(oauth_token) = params.get("oauth_token").map(str::to_owned) else {
            return Err(OAuth1Error::absent("oauth_token"));
        };
        let digest = Digest::of(oauth_token.as_bytes());
        let now = self.now();
        let store = &self.inner.store;
        let Some(token) = store.find_request_token(&digest, now).await? else {
            return Err(OAuth1Error::new(Problem::TokenRejected));
        };
        if token.verifier.is_some() {
            // Already authorized: a request token is authorized once.
            return Err(OAuth1Error::new(Problem::TokenRejected));
        }
        let Some(client) = store.get_client(&token.client_id).await? else {
            return Err(OAuth1Error::new(Problem::TokenRejected));
        };
        let Some(user) = user else {
            return Ok(AuthorizeOutcome::Login {
                client: Box::new(client),
                oauth_token,
            });
        };
        match decision {
            None => Ok(AuthorizeOutcome::Consent {
                client: Box::new(client),
                realms: token.realms,
                oauth_token,
                callback_host: callback_host(&token.callback),
            }),
            Some(false) => {
                store.take_request_token(&digest, now).await?;
                tracing::info!(client_id = %client.id, "oauth1 authorization refused by the user");
                Err(OAuth1Error::new(Problem::UserRefused))
            }
            Some(true) => {
                let verifier = random_token(self.inner.entropy.as_ref(), 16);
                if !store
                    .authorize_request_token(
                        &digest,
                        &user.subject,
                        &user.username,
                        &Digest::of(verifier.as_bytes()),
                        now,
                    )
                    .await?
                {
                    return Err(OAuth1Error::new(Problem::TokenRejected));
                }
                tracing::info!(client_id = %client.id, subject = %user.subject, "oauth1 request token authorized");
                if token.callback == "oob" {
                    return Ok(AuthorizeOutcome::ShowVerifier {
                        client_name: client.name,
                        verifier,
                    });
                }
                let location = with_query(
                    &token.callback,
                    &[
                        ("oauth_token", oauth_token.as_str()),
                        ("oauth_verifier", verifier.as_str()),
                    ],
                );
                Ok(AuthorizeOutcome::Redirect(HttpResponse {
                    status: 303,
                    headers: vec![
                        ("location".into(), location),
                        ("cache-control".into(), "no-store".into()),
                    ],
                    body: Vec::new(),
                }))
            }
        }
    }

    /// The token-credentials endpoint (RFC 5849 §2.3): exchanges an authorized request
    /// token and its verifier, once, for an access token.
    pub async fn access_token(&self, req: &HttpRequest) -> HttpResponse {
        let result = self.access_token_inner(req).await;
        self.answer(result)
    }

    async fn access_token_inner(&self, req: &HttpRequest) -> Result<HttpResponse, OAuth1Error> {
        if req.method != Method::Post {
            return Ok(method_not_allowed());
        }
        let signed = self.parse(req)?;
        let Some(token_value) = signed.token.clone() else {
            return Err(OAuth1Error::absent("oauth_token"));
        };
        let Some(verifier) = signed.oauth.get("oauth_verifier").cloned() else {
            return Err(OAuth1Error::absent("oauth_verifier"));
        };
        let known = self.consumer(signed).await?;
        let digest = Digest::of(token_value.as_bytes());
        let now = self.now();
        let store = &self.inner.store;
        let found = store.find_request_token(&digest, now).await?;
        let Some(found) = found.filter(|t| t.client_id == known.signed.consumer_key) else {
            return Err(OAuth1Error::new(Problem::TokenRejected));
        };
        if found.verifier.is_none() {
            return Err(OAuth1Error::new(Problem::TokenRejected)
                .with_detail("request token not authorized yet"));
        }
        let secret = self.request_secret(&token_value);
        let Authenticated { client, .. } = self.authenticate(Some(&secret), known).await?;
        // Single use: whatever happens next, this request token is spent.
        let Some(token) = store.take_request_token(&digest, now).await? else {
            return Err(OAuth1Error::new(Problem::TokenRejected));
        };
        // RFC 5849 §2.3: "the server MUST verify ... the validity of the verification code".
        let (Some(expected), Some(subject)) = (token.verifier, token.subject) else {
            return Err(OAuth1Error::new(Problem::TokenRejected));
        };
        if expected != Digest::of(verifier.as_bytes()) {
            return Err(OAuth1Error::new(Problem::VerifierInvalid));
        }
        let access = random_token(self.inner.entropy.as_ref(), 32);
        store
            .save_access_token(
                &AccessToken {
                    digest: Digest::of(access.as_bytes()),
                    client_id: client.id.to_string(),
                    subject,
                    username: token.username,
                    realms: token.realms,
                    issued_at: now,
                    expires_at: self.inner.config.access_token_ttl.map(|ttl| now.plus(ttl)),
                    revoked: false,
                },
                now,
            )
            .await?;
        tracing::info!(client_id = %client.id, "oauth1 token credentials issued");
        Ok(form_response(&[
            ("oauth_token", access.as_str()),
            ("oauth_token_secret", self.access_secret(&access).expose()),
        ]))
    }

    /// Checks a signed request to a protected resource (RFC 5849 §3.2) and that its token
    /// grants every realm in `required`. The answer is the token's grant, in the shape the
    /// OAuth 2.0 guards hand to handlers (realms as scopes).
    pub async fn verify(
        &self,
        req: &HttpRequest,
        required: &ScopeSet,
    ) -> Result<resource::AccessToken, OAuth1Error> {
        let signed = SignedRequest::parse(req, &self.inner.config.base_url)?
            .ok_or_else(|| OAuth1Error::absent("oauth_consumer_key"))?;
        let known = self.consumer(signed).await?;
        let (record, known) = self.active_access_token(known).await?;
        let secret = self.access_secret(known.signed.token.as_deref().unwrap_or_default());
        self.authenticate(Some(&secret), known).await?;
        if !required.is_subset(&record.realms) {
            return Err(OAuth1Error::new(Problem::PermissionDenied)
                .with_advice("oauth_realms_required", required.to_string()));
        }
        Ok(resource::AccessToken {
            expires_at: self.expiry_of(&record).unwrap_or(UnixTime(i64::MAX)),
            subject: Some(record.subject),
            username: record.username,
            client_id: record.client_id,
            scope: record.realms,
            binding: None,
            cnf: None,
            // OAuth 1.0a has no resource indicators or delegation.
            audience: Vec::new(),
            actor: None,
        })
    }

    /// When an access token expires: its own expiry, or, for one stored without any (issued
    /// before token credentials had a lifetime), its issue time plus today's lifetime, so
    /// that no token outlives the setting.
    fn expiry_of(&self, token: &AccessToken) -> Option<UnixTime> {
        token.expires_at.or_else(|| {
            self.inner
                .config
                .access_token_ttl
                .map(|ttl| token.issued_at.plus(ttl))
        })
    }

    async fn active_access_token(&self, known: Known) -> Result<(AccessToken, Known), OAuth1Error> {
        let Some(token) = known.signed.token.as_deref() else {
            return Err(OAuth1Error::absent("oauth_token"));
        };
        let record = self
            .inner
            .store
            .find_access_token(&Digest::of(token.as_bytes()))
            .await?;
        let now = self.now();
        match record {
            Some(r)
                if r.is_active(now)
                    && self.expiry_of(&r).is_none_or(|at| now < at)
                    && r.client_id == known.signed.consumer_key =>
            {
                Ok((r, known))
            }
            _ => Err(OAuth1Error::new(Problem::TokenRejected)),
        }
    }

    /// Revocation by the consumer: a signed `POST` with the access token revokes it (the
    /// OAuth 1.0a counterpart of RFC 7009). Answers 200 with an empty body.
    pub async fn revoke(&self, req: &HttpRequest) -> HttpResponse {
        let result = async {
            if req.method != Method::Post {
                return Ok(method_not_allowed());
            }
            let known = self.consumer(self.parse(req)?).await?;
            let (record, known) = self.active_access_token(known).await?;
            let secret = self.access_secret(known.signed.token.as_deref().unwrap_or_default());
            self.authenticate(Some(&secret), known).await?;
            self.inner.store.revoke_access_token(&record.digest).await?;
            tracing::info!(client_id = %record.client_id, "oauth1 token credentials revoked");
            Ok(form_response(&[]))
        }
        .await;
        self.answer(result)
    }
}

/// Gives the consumer `client_id` of `store` a fresh secret salt, deleting its request and
/// access tokens in the same step; returns the new consumer secret derived with `key`, or
/// `None` if it is not a consumer. The one rotation path, for the provider and for
/// administration tools that hold the key but run no provider.
pub async fn rotate_consumer_secret<S: OAuth1Store>(
    store: &S,
    key: &OAuth1Key,
    entropy: &dyn Entropy,
    client_id: &str,
) -> Result<Option<Secret>, latchkey_core::store::StoreError> {
    let salt = crate::store::new_secret_salt(entropy);
    if !store.rotate_consumer_secret(client_id, &salt).await? {
        return Ok(None);
    }
    Ok(Some(key.consumer_secret_with(client_id, Some(&salt))))
}

/// RFC 5849 §2.1: `oauth_callback` is "an absolute URI" or `oob`. A URI must be one of the
/// client's registered redirect URIs, exactly (as RFC 9700 asks of OAuth 2.0): a consumer
/// that registered none can only use `oob`, so a stolen request can never send the verifier
/// to a host of the thief's choosing.
fn check_callback(client: &Client, callback: &str) -> Result<(), OAuth1Error> {
    if callback == "oob" {
        return Ok(());
    }
    let Ok(url) = url::Url::parse(callback) else {
        return Err(OAuth1Error::rejected("oauth_callback"));
    };
    if !matches!(url.scheme(), "http" | "https") || url.fragment().is_some() {
        return Err(OAuth1Error::rejected("oauth_callback"));
    }
    if !client.redirect_uris.iter().any(|u| u == callback) {
        return Err(OAuth1Error::rejected("oauth_callback").with_detail(
            if client.redirect_uris.is_empty() {
                "no callback registered: only oob"
            } else {
                "callback not registered"
            },
        ));
    }
    Ok(())
}

fn callback_host(callback: &str) -> String {
    url::Url::parse(callback)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| callback.to_owned())
}

/// `base` with `pairs` appended to its query.
fn with_query(base: &str, pairs: &[(&str, &str)]) -> String {
    match url::Url::parse(base) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            url.to_string()
        }
        Err(_) => base.to_owned(),
    }
}

/// A 200 `application/x-www-form-urlencoded` response, never cached (RFC 5849 §2.1, §2.3).
fn form_response(pairs: &[(&str, &str)]) -> HttpResponse {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    HttpResponse {
        status: 200,
        headers: vec![
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("cache-control".into(), "no-store".into()),
        ],
        body: body.into_bytes(),
    }
}

fn method_not_allowed() -> HttpResponse {
    HttpResponse {
        status: 405,
        headers: vec![("allow".into(), "POST".into())],
        body: Vec::new(),
    }
}
