//! The [`Provider`]: configuration, store, user authenticator, clock, randomness, event
//! sink and the embedder's extensions (token generator, response extras, extension grants,
//! claims source) in one cheap-to-clone handle, with one method per endpoint.

use crate::access_jwt::{AccessTokenFormat, JwtAccessTokens};
use crate::claims::ClaimsSource;
use crate::claims::source::DynClaimsSource;
use crate::client::{Client, ExtensionGrantType, GrantType};
use crate::clock::{Clock, SystemClock, UnixTime};
use crate::config::{Config, ConfigError, GrantLifetimes};
use crate::entropy::{Entropy, OsEntropy};
use crate::error::OAuthError;
use crate::events::{Event, EventSink, NoEvents};
use crate::extras::{ExtraMembers, ResponseContext, ResponseExtras};
use crate::generator::{OpaqueTokens, TokenContext, TokenGenerator, check_value};
use crate::grant::extension::{ExtensionGrant, ExtensionGrants};
use crate::http::{HttpRequest, HttpResponse};
use crate::jose::{JwsSigner, KeySet, SigningAlg};
use crate::proto::TokenResponse;
use crate::scope::ScopeSet;
use crate::store::ProviderStore;
use crate::token::{Grant, Minted, TokenKind, mint, minted};
use crate::user::UserAuthenticator;
use std::sync::{Arc, PoisonError, RwLock};

/// An OAuth 2.0 authorization server, ready to answer requests.
///
/// Build one with [`Provider::builder`], share it (cloning is cheap), and call an endpoint
/// such as [`Provider::token`] with each [`HttpRequest`].
pub struct Provider<S, U> {
    inner: Arc<Inner<S, U>>,
    /// The address of the client whose request this handle serves, for the audit events it
    /// emits; `None` on the shared handle (see [`Provider::serving`]).
    client_ip: Option<std::net::IpAddr>,
}

impl<S, U> Clone for Provider<S, U> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            client_ip: self.client_ip,
        }
    }
}

struct Inner<S, U> {
    config: Config,
    store: S,
    users: U,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    events: Arc<dyn EventSink>,
    limits: Option<crate::limits::Limits>,
    /// `None`: the built-in 256-bit random values, minted without a virtual call.
    generator: Option<Arc<dyn TokenGenerator>>,
    extras: Option<Arc<dyn ResponseExtras>>,
    extension_grants: ExtensionGrants<S>,
    /// What signs the provider's JWTs; swapped whole when the keys change (see
    /// [`Provider::set_signer`]).
    signer: RwLock<Arc<dyn JwsSigner>>,
    /// `None`: claims come from the user records of `store`.
    claims: Option<Arc<dyn DynClaimsSource>>,
    /// The key-encryption key and `jwks_uri` fetcher that client assertions need.
    assertion_keys: crate::client_assertion::AssertionKeys,
    /// Where the logout tokens of ended sessions go (see [`crate::logout`]).
    logout_sink: Arc<dyn crate::logout::LogoutSink>,
    /// The `aud` of JWT access tokens: [`Config::access_token_audience`] or the issuer.
    jwt_audience: Arc<str>,
    /// Dynamic client registration, when on (see [`crate::registration`]).
    registration: Option<crate::registration::RegistrationPolicy>,
    /// Whether clients may name themselves by the URL of their metadata document.
    client_id_documents: bool,
}

impl<S: ProviderStore, U: UserAuthenticator> Provider<S, U> {
    /// Starts building a provider on `store`, checking resource owners with `users`.
    pub fn builder(store: S, users: U) -> ProviderBuilder<S, U> {
        ProviderBuilder {
            config: Config::default(),
            store,
            users,
            clock: Arc::new(SystemClock),
            entropy: Arc::new(OsEntropy),
            events: Arc::new(NoEvents),
            limits: None,
            generator: None,
            extras: None,
            extension_grants: ExtensionGrants::default(),
            signer: None,
            claims: None,
            assertion_keys: Default::default(),
            logout_sink: Arc::new(crate::logout::NoLogoutDelivery),
            registration_errors: Vec::new(),
            registration: None,
            client_id_documents: false,
        }
    }

    /// The token endpoint (RFC 6749 §3.2): answers every request, valid or not, with the
    /// RFC response; never panics.
    pub async fn token(&self, req: &HttpRequest) -> HttpResponse {
        crate::endpoint::token::handle(&self.serving(req), req).await
    }

    /// The authorization endpoint (RFC 6749 §3.1): validates the request and either
    /// redirects, asks for an error page, or asks the embedder to log the user in or to get
    /// their consent. See [`crate::endpoint::authorize`].
    pub async fn authorize(
        &self,
        req: &HttpRequest,
        user: Option<&crate::user::AuthenticatedUser>,
        decision: Option<crate::endpoint::authorize::Decision>,
    ) -> crate::endpoint::authorize::AuthorizeOutcome {
        crate::endpoint::authorize::handle(&self.serving(req), req, user, decision).await
    }

    /// The authorization endpoint for a login whose age is known ([`crate::session`] keeps
    /// it): honours `prompt=login` and `max_age`. See
    /// [`crate::endpoint::authorize::handle_with`].
    pub async fn authorize_with(
        &self,
        req: &HttpRequest,
        auth: Option<crate::endpoint::authorize::Authentication<'_>>,
        decision: Option<crate::endpoint::authorize::Decision>,
    ) -> crate::endpoint::authorize::AuthorizeOutcome {
        crate::endpoint::authorize::handle_with(self, req, auth, decision).await
    }

    /// Continues an authorization request that waited on the user (login, consent) from its
    /// [`crate::endpoint::authorize::Pending`] value, without parsing the client's parameters
    /// again. See [`crate::endpoint::authorize::resume`].
    pub async fn resume_authorize(
        &self,
        req: &HttpRequest,
        pending: crate::endpoint::authorize::Pending,
        auth: Option<crate::endpoint::authorize::Authentication<'_>>,
        decision: Option<crate::endpoint::authorize::Decision>,
    ) -> crate::endpoint::authorize::AuthorizeOutcome {
        crate::endpoint::authorize::resume(&self.serving(req), req, pending, auth, decision).await
    }

    /// The pushed authorization request endpoint (RFC 9126): stores a client's authorization
    /// parameters and answers the `request_uri` that `/authorize` then takes. See
    /// [`crate::endpoint::authorize::pushed`].
    pub async fn pushed_authorization(&self, req: &HttpRequest) -> HttpResponse {
        crate::endpoint::authorize::pushed::handle(&self.serving(req), req).await
    }

    /// A response for an authorization error that must not go back to the client: a
    /// redirect to the configured `error_uri`, or a minimal HTML page.
    pub fn error_page(&self, err: &OAuthError) -> HttpResponse {
        crate::endpoint::authorize::error_page(self.inner.config.error_uri.as_deref(), err)
    }

    /// The revocation endpoint (RFC 7009).
    pub async fn revoke(&self, req: &HttpRequest) -> HttpResponse {
        crate::endpoint::revoke::handle(&self.serving(req), req).await
    }

    /// The introspection endpoint (RFC 7662).
    pub async fn introspect(&self, req: &HttpRequest) -> HttpResponse {
        crate::endpoint::introspect::handle(&self.serving(req), req).await
    }

    /// The metadata document (RFC 8414).
    pub fn metadata(&self) -> HttpResponse {
        crate::endpoint::metadata::handle(self)
    }

    /// The metadata document at the request path `path`: RFC 8414's and OpenID Connect
    /// Discovery's well-known paths, also with the issuer's path inserted; 404 elsewhere.
    /// See [`crate::endpoint::metadata::serves`].
    pub fn discovery(&self, path: &str) -> HttpResponse {
        crate::endpoint::metadata::handle_path(self, path)
    }

    /// The UserInfo endpoint (OpenID Connect Core §5.3). See [`crate::endpoint::userinfo`].
    pub async fn userinfo(&self, req: &HttpRequest) -> HttpResponse {
        crate::endpoint::userinfo::handle(&self.serving(req), req).await
    }

    /// The JWK Set at `jwks_uri` (RFC 7517 §5): the public keys that verify what this
    /// provider signs. See [`crate::endpoint::jwks`].
    pub fn jwks(&self) -> HttpResponse {
        crate::endpoint::jwks::handle(self)
    }

    /// A verifier of this provider's access tokens, for in-process bearer guards.
    pub fn verifier(&self) -> crate::resource::StoreVerifier<S>
    where
        S: Clone,
    {
        crate::resource::StoreVerifier::new(self.inner.store.clone(), Arc::clone(&self.inner.clock))
    }

    /// An in-process bearer guard for `realm` over this provider's tokens, believing the
    /// configured trusted proxies.
    pub fn guard(
        &self,
        realm: impl Into<String>,
    ) -> crate::resource::Guard<crate::resource::StoreVerifier<S>>
    where
        S: Clone,
    {
        self.with_dpop(
            crate::resource::Guard::new(self.verifier(), realm)
                .trusted_proxies(self.inner.config.trusted_proxies.clone()),
        )
    }

    /// `guard` checking DPoP proofs with this provider's settings and replay cache, for
    /// resources served at the issuer's origin, when DPoP is on.
    fn with_dpop<V: crate::resource::TokenVerifier>(
        &self,
        guard: crate::resource::Guard<V>,
    ) -> crate::resource::Guard<V>
    where
        S: Clone,
    {
        match self.dpop_guard() {
            Some(dpop) => guard.with_dpop(dpop),
            None => guard,
        }
    }

    /// What an in-process guard needs to check DPoP proofs (RFC 9449 §7): this provider's
    /// DPoP settings and replay cache, for resources at the issuer's origin. `None` while
    /// DPoP is off. A guard for resources at another origin builds its own
    /// [`crate::resource::dpop::DpopGuard`].
    pub fn dpop_guard(&self) -> Option<crate::resource::dpop::DpopGuard>
    where
        S: Clone,
    {
        let config = &self.inner.config;
        if !config.dpop.enabled {
            return None;
        }
        let origin = url::Url::parse(&config.issuer)
            .map(|u| u.origin().ascii_serialization())
            .unwrap_or_else(|_| config.issuer.clone());
        Some(crate::resource::dpop::DpopGuard::new(
            config.dpop.clone(),
            self.inner.store.clone(),
            Arc::clone(&self.inner.clock),
            &origin,
        ))
    }

    /// An in-process bearer guard for `realm` that verifies JWT access tokens locally
    /// (RFC 9068 §4) with this provider's keys, issuer and audience, without a store lookup,
    /// and opaque tokens through the store as [`Provider::guard`] does. A revoked JWT keeps
    /// working until it expires unless the verifier checks the store too (see
    /// [`crate::resource::jwt::JwtVerifier::check_store`] and [`Provider::jwt_verifier`]).
    pub fn jwt_guard(
        &self,
        realm: impl Into<String>,
    ) -> crate::resource::Guard<
        crate::resource::jwt::JwtVerifier<Self, crate::resource::StoreVerifier<S>>,
    >
    where
        S: Clone,
    {
        self.with_dpop(
            crate::resource::Guard::new(self.jwt_verifier(), realm)
                .trusted_proxies(self.inner.config.trusted_proxies.clone()),
        )
    }

    /// The verifier of [`Provider::jwt_guard`], to configure before making a guard of it.
    pub fn jwt_verifier(
        &self,
    ) -> crate::resource::jwt::JwtVerifier<Self, crate::resource::StoreVerifier<S>>
    where
        S: Clone,
    {
        crate::resource::jwt::JwtVerifier::new(
            self.clone(),
            self.verifier(),
            self.inner.config.issuer.clone(),
            self.access_token_audience(),
            Arc::clone(&self.inner.clock),
        )
    }

    /// The rate limits and password backoff in force, if any.
    pub fn limits(&self) -> Option<&crate::limits::Limits> {
        self.inner.limits.as_ref()
    }

    /// The dynamic registration policy, when registration is on.
    pub fn registration_policy(&self) -> Option<&crate::registration::RegistrationPolicy> {
        self.inner.registration.as_ref()
    }

    /// Whether client ID metadata documents are accepted (see
    /// [`ProviderBuilder::client_id_metadata_documents`]).
    pub fn client_id_metadata_documents(&self) -> bool {
        self.inner.client_id_documents
    }

    /// The address of the client that sent `req`, believing the configured trusted proxies.
    pub fn client_ip(&self, req: &HttpRequest) -> Option<std::net::IpAddr> {
        self.inner.config.trusted_proxies.client_ip(req)
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The registry for a request naming `requested` resources (RFC 8707): each one the
    /// configuration defines, else the one stored at run time
    /// ([`crate::store::ResourceStore`]); one that is neither is left out, so
    /// [`crate::indicator::Resources::authorize`] refuses it with `invalid_target`. A resource
    /// of the configuration wins over a stored one with the same identifier. Reads the store
    /// only for identifiers the configuration does not know: a request without `resource`
    /// costs nothing.
    pub async fn resources_for(
        &self,
        requested: &[crate::indicator::ResourceUri],
    ) -> Result<crate::indicator::Resources, OAuthError> {
        let configured = &self.inner.config.resources;
        let mut found = Vec::with_capacity(requested.len());
        for uri in requested {
            if let Some(resource) = configured.get(uri.as_str()) {
                found.push(resource.clone());
            } else if let Some(resource) = self.inner.store.get_resource(uri.as_str()).await? {
                // Byte-for-byte, whatever the database's collation compared.
                if resource.id == *uri {
                    found.push(resource);
                }
            }
        }
        Ok(crate::indicator::Resources::new(found))
    }

    /// What client assertions are checked with besides the store (see
    /// [`ProviderBuilder::assertion_keys`]).
    pub fn assertion_keys(&self) -> &crate::client_assertion::AssertionKeys {
        &self.inner.assertion_keys
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The resource-owner authenticator. Only [`Provider::check_password`] may call it: a
    /// password verified anywhere else would skip the backoff and the audit.
    pub(crate) fn users(&self) -> &U {
        &self.inner.users
    }

    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        self.inner.clock.as_ref()
    }

    /// The random source.
    pub fn entropy(&self) -> &dyn Entropy {
        self.inner.entropy.as_ref()
    }

    /// What signs this provider's JWTs (ID tokens, JWT access tokens, logout tokens) and
    /// publishes its JWKS, as it is now. Hold the returned handle for one request only: the
    /// signer may be swapped at any time (see [`Provider::set_signer`]).
    pub fn signer(&self) -> Arc<dyn JwsSigner> {
        let guard = self
            .inner
            .signer
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&guard)
    }

    /// Where the logout tokens of ended sessions go (see [`crate::logout`]).
    pub fn logout_sink(&self) -> &dyn crate::logout::LogoutSink {
        self.inner.logout_sink.as_ref()
    }

    /// The `aud` of this provider's JWT access tokens ([`Config::access_token_audience`], or
    /// the issuer): what an in-process guard expects.
    pub fn access_token_audience(&self) -> &str {
        &self.inner.jwt_audience
    }

    /// Replaces the signer for every clone of this provider: the server calls it when the
    /// stored keys change (a rotation here or on another node). Requests already holding the
    /// old signer finish with it.
    pub fn set_signer(&self, signer: Arc<dyn JwsSigner>) {
        let mut guard = self
            .inner
            .signer
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        *guard = signer;
    }

    /// This provider, serving `req`: the audit events it emits carry the request's client
    /// address. Every endpoint method serves through one.
    pub fn serving(&self, req: &HttpRequest) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            client_ip: self.client_ip(req),
        }
    }

    /// Sends an audit event to the sink, with the client address of the request served.
    pub fn emit(&self, event: Event) {
        self.inner.events.emit_from(&event, self.client_ip);
    }

    /// Sends an audit event caused by a request from `client_ip`.
    pub fn emit_from(&self, event: Event, client_ip: Option<std::net::IpAddr>) {
        self.inner.events.emit_from(&event, client_ip);
    }

    /// The scopes `client` may be granted.
    pub fn allowed_scopes<'a>(&'a self, client: &'a Client) -> &'a ScopeSet {
        client
            .scopes
            .as_ref()
            .unwrap_or(&self.inner.config.available_scopes)
    }

    /// The scopes `client` gets when it asks for none.
    pub fn default_scopes<'a>(&'a self, client: &'a Client) -> &'a ScopeSet {
        client
            .default_scopes
            .as_ref()
            .unwrap_or(&self.inner.config.default_scopes)
    }

    /// Access-token lifetime for `client` in a family started by `grant`. The first that is
    /// set wins: the client's own ([`Client::access_token_ttl`]), the grant type's
    /// ([`Config::grant_lifetimes`]), the server's ([`Config::access_token_ttl`]).
    pub fn access_ttl(&self, client: &Client, grant: GrantType) -> u64 {
        client
            .access_token_ttl
            .or_else(|| self.grant_lifetimes(grant).access_token_ttl)
            .unwrap_or(self.inner.config.access_token_ttl)
    }

    /// Refresh-token lifetime for `client` in a family started by `grant` that starts now:
    /// the client's, else the grant type's, else the server's, never more than the family's
    /// maximum lifetime.
    pub fn refresh_ttl(&self, client: &Client, grant: GrantType) -> u64 {
        client
            .refresh_token_ttl
            .or_else(|| self.grant_lifetimes(grant).refresh_token_ttl)
            .unwrap_or(self.inner.config.refresh_token_ttl)
            .min(self.inner.config.refresh_token_max_lifetime)
    }

    /// The configured lifetimes of `grant`'s families (none set when it has no entry).
    fn grant_lifetimes(&self, grant: GrantType) -> GrantLifetimes {
        let lifetimes = &self.inner.config.grant_lifetimes;
        if lifetimes.is_empty() {
            // The usual case, answered without a lookup.
            return GrantLifetimes::default();
        }
        lifetimes.get(&grant).copied().unwrap_or_default()
    }

    /// Refresh-token lifetime for `client` at `now` in a family started by `grant` whose
    /// first token was issued at `family_issued_at`: [`Provider::refresh_ttl`], cut so the
    /// token ends no later than the family's absolute maximum lifetime; `None` once that has
    /// passed.
    pub fn refresh_ttl_in_family(
        &self,
        client: &Client,
        grant: GrantType,
        family_issued_at: UnixTime,
        now: UnixTime,
    ) -> Option<u64> {
        let family_ends = family_issued_at.plus(self.inner.config.refresh_token_max_lifetime);
        let left = u64::try_from(family_ends.0.saturating_sub(now.0)).ok()?;
        (left > 0).then(|| self.refresh_ttl(client, grant).min(left))
    }

    /// The claims source plugged in with [`ProviderBuilder::claims_source`], if any.
    pub(crate) fn claims_source(&self) -> Option<&dyn DynClaimsSource> {
        self.inner.claims.as_deref()
    }

    /// The extension grants registered with [`ProviderBuilder::extension_grant`].
    pub fn extension_grants(&self) -> &ExtensionGrants<S> {
        &self.inner.extension_grants
    }

    /// Mints the token values of `grant` at `now` with the configured generator (256 random
    /// bits each by default), and the records that hold their digests. `request_grant` is the
    /// grant type of the token request (`refresh_token` on a rotation).
    pub(crate) fn mint(
        &self,
        grant: &Grant,
        request_grant: GrantType,
        now: UnixTime,
    ) -> Result<Minted, OAuthError> {
        // The one rule of the access-token format: a `jwt` client's access tokens are signed
        // JWTs (RFC 9068); everything else comes from the configured generator.
        let jwt = match grant.access_token_format {
            AccessTokenFormat::Jwt => Some(JwtAccessTokens::new(
                self.signer(),
                Arc::clone(&self.inner.jwt_audience),
            )),
            AccessTokenFormat::Opaque => None,
        };
        let generator = match (&self.inner.generator, &jwt) {
            (None, None) => return Ok(mint(grant, self.entropy(), now)),
            (Some(generator), _) => generator.as_ref(),
            (None, Some(_)) => &OpaqueTokens,
        };
        let access_generator: &dyn TokenGenerator = match &jwt {
            Some(jwt) => jwt,
            None => generator,
        };
        let family_issued_at = grant.family_issued_at.unwrap_or(now);
        let generate = |generator: &dyn TokenGenerator, kind: TokenKind, ttl: u64| {
            let ctx = TokenContext {
                kind,
                grant,
                request_grant,
                issuer: &self.inner.config.issuer,
                issued_at: now,
                expires_at: now.plus(ttl),
                family_issued_at,
            };
            let value = generator.generate(&ctx, self.entropy())?;
            check_value(&value, kind)?;
            Ok::<_, OAuthError>(value)
        };
        let access = generate(access_generator, TokenKind::Access, grant.access_ttl)?;
        let refresh = grant
            .refresh_ttl
            .map(|ttl| generate(generator, TokenKind::Refresh, ttl))
            .transpose()?;
        Ok(minted(grant, access, refresh, now))
    }

    /// The token response for tokens minted from `grant` and stored, with the members the
    /// [`ProviderBuilder::response_extras`] hook adds.
    pub(crate) fn token_response(
        &self,
        grant: Grant,
        minted: Minted,
        request_grant: GrantType,
        now: UnixTime,
    ) -> TokenResponse {
        let mut extra = ExtraMembers::new();
        if let Some(extras) = &self.inner.extras {
            let ctx = ResponseContext {
                grant: &grant,
                request_grant,
                issued_at: now,
                with_refresh: minted.refresh_token.is_some(),
            };
            extras.extras(&ctx, &mut extra);
        }
        // RFC 9449 §5.1: a DPoP-bound access token is of type `DPoP`.
        let token_type = match grant.cnf.as_ref().and_then(crate::token::Confirmation::jkt) {
            Some(_) => crate::proto::TokenType::Dpop,
            None => crate::proto::TokenType::Bearer,
        };
        TokenResponse {
            token_type,
            access_token: minted.access_token,
            expires_in: grant.access_ttl,
            refresh_token: minted.refresh_token,
            scope: grant.scope,
            id_token: None,
            extra,
            issued_token_type: None,
        }
    }

    /// Mints the tokens of `grant`, a family's first issuance, stores them durably, and only
    /// then builds the response: a token the client sees is a token the store holds.
    pub async fn issue(&self, grant: Grant) -> Result<TokenResponse, OAuthError> {
        let now = self.clock().now();
        let minted = self.mint(&grant, grant.grant_type, now)?;
        self.store().save_tokens(&minted.records, now).await?;
        self.emit(Event::TokenIssued {
            client_id: grant.client_id.to_string(),
            grant_type: grant.grant_type,
            subject: grant.subject.clone(),
            with_refresh: minted.refresh_token.is_some(),
        });
        let request_grant = grant.grant_type;
        Ok(self.token_response(grant, minted, request_grant, now))
    }
}

/// Builds a [`Provider`]; every setting has a secure default.
pub struct ProviderBuilder<S, U> {
    config: Config,
    store: S,
    users: U,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    events: Arc<dyn EventSink>,
    limits: Option<crate::limits::Limits>,
    generator: Option<Arc<dyn TokenGenerator>>,
    extras: Option<Arc<dyn ResponseExtras>>,
    extension_grants: ExtensionGrants<S>,
    signer: Option<Arc<dyn JwsSigner>>,
    claims: Option<Arc<dyn DynClaimsSource>>,
    assertion_keys: crate::client_assertion::AssertionKeys,
    logout_sink: Arc<dyn crate::logout::LogoutSink>,
    /// Extension grants that could not be registered; `build` reports the first.
    registration_errors: Vec<ConfigError>,
    registration: Option<crate::registration::RegistrationPolicy>,
    /// Whether clients may name themselves by the URL of their metadata document.
    client_id_documents: bool,
}

impl<S: ProviderStore, U: UserAuthenticator> ProviderBuilder<S, U> {
    /// Replaces the whole configuration.
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// The issuer identifier (RFC 8414 §2).
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.config.issuer = issuer.into();
        self
    }

    /// Access-token lifetime in seconds.
    pub fn access_token_ttl(mut self, secs: u64) -> Self {
        self.config.access_token_ttl = secs;
        self
    }

    /// Refresh-token lifetime in seconds.
    pub fn refresh_token_ttl(mut self, secs: u64) -> Self {
        self.config.refresh_token_ttl = secs;
        self
    }

    /// Lifetimes of the tokens in families `grant` starts, over the server-wide ones and
    /// under a client's own (see [`Config::grant_lifetimes`]).
    pub fn grant_lifetimes(mut self, grant: GrantType, lifetimes: GrantLifetimes) -> Self {
        self.config.grant_lifetimes.insert(grant, lifetimes);
        self
    }

    /// Makes token values with `generator` instead of 256 random bits (see
    /// [`crate::generator`]). Stores still keep only digests.
    pub fn token_generator(mut self, generator: impl TokenGenerator) -> Self {
        self.generator = Some(Arc::new(generator));
        self
    }

    /// Adds members to every token response with `extras` (see [`crate::extras`]); standard
    /// members cannot be changed.
    pub fn response_extras(mut self, extras: impl ResponseExtras) -> Self {
        self.extras = Some(Arc::new(extras));
        self
    }

    /// Serves `grant_type=<uri>` at the token endpoint with `handler` (RFC 6749 §4.5; see
    /// [`crate::grant::extension`]). `uri` must be an absolute URI of at most
    /// [`ExtensionGrantType::MAX_LEN`] bytes, registered once; otherwise
    /// [`ProviderBuilder::build`] fails. Clients still need the URI among their grant types.
    pub fn extension_grant(mut self, uri: &str, handler: impl ExtensionGrant<S>) -> Self {
        let registered = ExtensionGrantType::parse(uri)
            .is_some_and(|grant| self.extension_grants.register(grant, Arc::new(handler)));
        if !registered {
            self.registration_errors
                .push(ConfigError::ExtensionGrant(uri.to_owned()));
        }
        self
    }

    /// Takes the claims about users (OpenID Connect ID tokens and userinfo) from `source`
    /// instead of the built-in user records (see [`crate::claims::source`]).
    pub fn claims_source(mut self, source: impl ClaimsSource) -> Self {
        self.claims = Some(Arc::new(source));
        self
    }

    /// Scopes clients may request unless they have their own list.
    pub fn available_scopes(mut self, scopes: ScopeSet) -> Self {
        self.config.available_scopes = scopes;
        self
    }

    /// Scopes granted when a request names none.
    pub fn default_scopes(mut self, scopes: ScopeSet) -> Self {
        self.config.default_scopes = scopes;
        self
    }

    /// A page explaining errors, sent as `error_uri`.
    pub fn error_uri(mut self, uri: impl Into<String>) -> Self {
        self.config.error_uri = Some(uri.into());
        self
    }

    /// The clock (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The random source (default: the operating system's).
    pub fn entropy(mut self, entropy: Arc<dyn Entropy>) -> Self {
        self.entropy = entropy;
        self
    }

    /// Where audit events go (default: nowhere).
    pub fn events(mut self, events: Arc<dyn EventSink>) -> Self {
        self.events = events;
        self
    }

    /// Rate limits on client requests and backoff on failed password checks (default: none;
    /// the `latchkey` server turns the backoff on). See [`crate::limits`].
    pub fn limits(mut self, limits: crate::limits::Limits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// What signs the provider's JWTs and publishes its JWKS (see [`crate::jose`]): the
    /// server's [`KeySet`] of stored keys, or an external KMS. Without one, [`build`] makes a
    /// fresh in-memory ES256 [`KeySet`], so tests and embedders work out of the box; its
    /// tokens stop verifying when the process ends and other processes cannot verify them.
    ///
    /// [`build`]: ProviderBuilder::build
    pub fn signer(mut self, signer: Arc<dyn JwsSigner>) -> Self {
        self.signer = Some(signer);
        self
    }

    /// What client authentication by JWT needs beyond the store (see
    /// [`crate::client_assertion`]): the key-encryption key that opens `client_secret_jwt`
    /// secrets and the fetcher of `jwks_uri` key sets. Without them, clients of those kinds
    /// cannot authenticate; inline-`jwks` `private_key_jwt` clients need neither.
    pub fn assertion_keys(mut self, keys: crate::client_assertion::AssertionKeys) -> Self {
        self.assertion_keys = keys;
        self
    }

    /// Who delivers the back-channel logout tokens of ended sessions (OpenID Connect
    /// Back-Channel Logout; see [`crate::logout`]). Default: nobody, they are dropped.
    pub fn logout_sink(mut self, sink: Arc<dyn crate::logout::LogoutSink>) -> Self {
        self.logout_sink = sink;
        self
    }

    /// Turns on dynamic client registration (RFC 7591, RFC 7592) under `policy`: the
    /// registration endpoint is advertised, and [`Provider::register`] answers.
    pub fn registration(mut self, policy: crate::registration::RegistrationPolicy) -> Self {
        self.registration = Some(policy);
        self
    }

    /// Advertises `client_id_metadata_document_supported` (draft-ietf-oauth-client-id-
    /// metadata-document §6): the embedder resolves such client ids into the store before
    /// the endpoints look them up (see [`crate::registration::document`]).
    pub fn client_id_metadata_documents(mut self, on: bool) -> Self {
        self.client_id_documents = on;
        self
    }

    /// Validates the configuration and builds the provider.
    pub fn build(mut self) -> Result<Provider<S, U>, ConfigError> {
        if let Some(err) = self.registration_errors.into_iter().next() {
            return Err(err);
        }
        crate::oidc::prepare_config(&mut self.config, self.entropy.as_ref());
        self.config.validate()?;
        let signer = match self.signer {
            Some(signer) => signer,
            None => Arc::new(
                KeySet::generate(&[SigningAlg::Es256], Arc::clone(&self.clock))
                    .map_err(|e| ConfigError::Signer(e.to_string()))?,
            ),
        };
        let jwt_audience: Arc<str> = self
            .config
            .access_token_audience
            .as_deref()
            .unwrap_or(&self.config.issuer)
            .into();
        Ok(Provider {
            inner: Arc::new(Inner {
                jwt_audience,
                config: self.config,
                store: self.store,
                users: self.users,
                clock: self.clock,
                entropy: self.entropy,
                events: self.events,
                limits: self.limits,
                generator: self.generator,
                extras: self.extras,
                extension_grants: self.extension_grants,
                signer: RwLock::new(signer),
                claims: self.claims,
                assertion_keys: self.assertion_keys,
                logout_sink: self.logout_sink,
                registration: self.registration,
                client_id_documents: self.client_id_documents,
            }),
            client_ip: None,
        })
    }
}
