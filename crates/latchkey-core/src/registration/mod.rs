//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).
//!
//! A client POSTs its metadata as JSON to the registration endpoint; the server checks it
//! against the operator's [`RegistrationPolicy`] ([`request`]), stores a [`Client`] and
//! answers with the client information: the `client_id`, a generated `client_secret` for a
//! confidential client (shown once, stored as a digest), and a registration access token with
//! the URL of the client configuration endpoint (RFC 7592 §3), where the client reads,
//! updates or deletes its registration with that token as a bearer.
//!
//! Registration is open to anyone when the policy says so, or else needs an initial access
//! token the operator issued ([`store::InitialAccessToken`], RFC 7591 §3). Self-registered
//! clients that go unused for [`RegistrationPolicy::unused_ttl`] are deleted by
//! [`sweep_unused`]; use is counted per day ([`UseTracker`]), so tracking it costs no write
//! per token request.
//!
//! The HTTP endpoints are [`Provider::register`] and [`Provider::configure_client`]; the
//! adapter only routes to them.

pub mod document;
pub mod request;
pub mod statement;
pub mod store;

use crate::client::{AuthMethod, Client, GrantType};
use crate::clock::UnixTime;
use crate::entropy::{random_hex, random_token};
use crate::error::{ErrorCode, OAuthError};
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::provider::Provider;
use crate::scope::ScopeSet;
use crate::secret::Secret;
use crate::store::ProviderStore;
use crate::user::UserAuthenticator;
use request::{RegistrationRequest, invalid_metadata, invalid_redirect};
use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use store::{ClientRegistration, RegistrationStore};

/// The path of the registration endpoint, relative to the issuer; a client's configuration
/// endpoint is this path, `/`, and its `client_id` (percent-encoded).
pub const REGISTER_PATH: &str = "/register";

/// The shortest day: use is recorded with this resolution.
pub const DAY: i64 = 24 * 3600;

/// What self-registered clients may ask for, and how long unused ones are kept.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistrationPolicy {
    /// Anyone may register (RFC 7591 §3: "open registration"); otherwise an initial access
    /// token is required.
    pub open: bool,
    /// The grant types a client may register (also subject to the server's switches).
    pub grant_types: BTreeSet<GrantType>,
    /// The `token_endpoint_auth_method`s a client may register.
    pub auth_methods: BTreeSet<AuthMethod>,
    /// The scopes a client may register; `None`: the server's available scopes.
    pub scopes: Option<ScopeSet>,
    /// `http` redirect URIs on a loopback host (`127.0.0.1`, `[::1]`, `localhost`), for
    /// native apps (RFC 8252 §7.3) and local tools.
    pub allow_loopback: bool,
    /// Private-use URI schemes in reverse-domain form (`com.example.app:/cb`) for public
    /// native clients (RFC 8252 §7.1).
    pub allow_private_use_schemes: bool,
    /// Plain `http` redirect URIs on any host: for development only.
    pub allow_http: bool,
    /// The most redirect URIs one client may register.
    pub max_redirect_uris: usize,
    /// Seconds after its last use (registration or token) when a self-registered client is
    /// deleted; 0 keeps them forever.
    pub unused_ttl: u64,
    /// The software statements accepted (RFC 7591 §2.3); by default none.
    pub software_statements: statement::StatementPolicy,
}

impl Default for RegistrationPolicy {
    /// Closed (initial access tokens required); `authorization_code` and `refresh_token`;
    /// public clients, secrets and keys (`none`, `client_secret_basic`,
    /// `client_secret_post`, `private_key_jwt`); loopback and private-use redirects; unused
    /// clients deleted after 30 days.
    fn default() -> Self {
        Self {
            open: false,
            grant_types: [GrantType::AuthorizationCode, GrantType::RefreshToken].into(),
            auth_methods: [
                AuthMethod::None,
                AuthMethod::ClientSecretBasic,
                AuthMethod::ClientSecretPost,
                AuthMethod::PrivateKeyJwt,
            ]
            .into(),
            scopes: None,
            allow_loopback: true,
            allow_private_use_schemes: true,
            allow_http: false,
            max_redirect_uris: 16,
            unused_ttl: 30 * DAY as u64,
            software_statements: statement::StatementPolicy::default(),
        }
    }
}

impl RegistrationPolicy {
    /// Checks one redirect URI of a client that is `public` (or not): absolute, no fragment,
    /// and of a kind the policy allows: `https`; `http` on a loopback host; a private-use
    /// scheme for a public client. Refused with `invalid_redirect_uri`.
    pub fn check_redirect_uri(&self, uri: &str, public: bool) -> Result<(), OAuthError> {
        if uri.len() > crate::client_metadata::MAX_VALUE_LEN
            || !crate::redirect::is_registrable(uri)
        {
            return Err(invalid_redirect(format!(
                "redirect URI {uri:?} must be absolute, without a fragment, and at most {} bytes",
                crate::client_metadata::MAX_VALUE_LEN
            )));
        }
        let Ok(url) = url::Url::parse(uri) else {
            return Err(invalid_redirect("redirect URI is not a URI"));
        };
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.allow_http => Ok(()),
            // RFC 8252 §7.3: loopback redirects, any port.
            "http" if self.allow_loopback && is_loopback(&url) => Ok(()),
            "http" => Err(invalid_redirect(format!(
                "redirect URI {uri:?}: http is allowed only on a loopback host; use https"
            ))),
            // RFC 8252 §7.1: "a URI scheme based on a domain name under their control,
            // expressed in reverse order".
            scheme if self.allow_private_use_schemes && public && scheme.contains('.') => Ok(()),
            scheme if scheme.contains('.') && self.allow_private_use_schemes => {
                Err(invalid_redirect(format!(
                    "redirect URI {uri:?}: private-use schemes are for public clients (token_endpoint_auth_method none)"
                )))
            }
            _ => Err(invalid_redirect(format!(
                "redirect URI {uri:?}: use https, a loopback http URI, or a private-use scheme such as com.example.app:/callback"
            ))),
        }
    }

    /// Checks a URI the server will call (`jwks_uri`, `backchannel_logout_uri`): https only,
    /// unless plain http is allowed for development.
    pub fn check_fetched_uri(&self, name: &str, uri: &str) -> Result<(), OAuthError> {
        let ok = url::Url::parse(uri).is_ok_and(|u| {
            u.has_host() && (u.scheme() == "https" || (self.allow_http && u.scheme() == "http"))
        });
        if ok {
            Ok(())
        } else {
            Err(invalid_metadata(format!("{name} must be an https URL")))
        }
    }
}

/// Whether the URL's host is a loopback address or `localhost`.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The start of the UTC day of `now`: what [`ClientRegistration::last_used`] holds.
pub fn day_of(now: UnixTime) -> UnixTime {
    UnixTime(now.0 - now.0.rem_euclid(DAY))
}

/// Remembers, per process, the last day each client's use was written, so that a busy
/// client costs one [`RegistrationStore::touch_registration`] a day per node, not one per
/// token. Bounded: past `capacity` clients it forgets them all and starts again (which
/// costs one more write per client, never a missed one).
#[derive(Debug)]
pub struct UseTracker {
    seen: Mutex<HashMap<String, UnixTime>>,
    capacity: usize,
}

impl UseTracker {
    /// A tracker of at most `capacity` clients.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// The day to write for `client_id` used at `now`, or `None` when it was written for that
    /// day already.
    pub fn needs_touch(&self, client_id: &str, now: UnixTime) -> Option<UnixTime> {
        let day = day_of(now);
        let mut seen = self
            .seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.get(client_id) == Some(&day) {
            return None;
        }
        if seen.len() >= self.capacity && !seen.contains_key(client_id) {
            seen.clear();
        }
        seen.insert(client_id.to_owned(), day);
        Some(day)
    }
}

/// Deletes up to `limit` self-registered clients unused since `policy.unused_ttl` before
/// `now`, with everything issued to them; returns their ids. Nothing when the policy keeps
/// them forever.
pub async fn sweep_unused<S: crate::store::ClientStore + RegistrationStore>(
    store: &S,
    policy: &RegistrationPolicy,
    now: UnixTime,
    limit: usize,
) -> Result<Vec<String>, crate::store::StoreError> {
    if policy.unused_ttl == 0 {
        return Ok(Vec::new());
    }
    let ttl = i64::try_from(policy.unused_ttl).unwrap_or(i64::MAX);
    let before = UnixTime(now.0.saturating_sub(ttl));
    let ids = store.unused_registrations(before, limit).await?;
    for id in &ids {
        // The client first: deleting it deletes its registration too; a registration left
        // without its client (a crash between two writes) is deleted here.
        store.delete_client(id).await?;
        store.delete_registration(id).await?;
    }
    Ok(ids)
}

/// Makes an initial access token: the value to hand out once, and the record to store.
pub fn new_initial_token(
    entropy: &dyn crate::entropy::Entropy,
    description: &str,
    now: UnixTime,
    ttl: Option<u64>,
    uses: Option<u64>,
) -> (Secret, store::InitialAccessToken) {
    let value = Secret::new(random_token(entropy, 32));
    let record = store::InitialAccessToken {
        id: random_hex(entropy, 8),
        digest: value.digest(),
        description: description.to_owned(),
        created_at: now,
        expires_at: ttl.map(|t| now.plus(t)),
        uses_left: uses,
    };
    (value, record)
}

impl<S: ProviderStore + RegistrationStore, U: UserAuthenticator> Provider<S, U> {
    /// The registration endpoint (RFC 7591 §3): `POST` a JSON object of client metadata.
    pub async fn register(&self, req: &HttpRequest) -> HttpResponse {
        let result = self.register_inner(req).await;
        self.answer("register", result)
    }

    /// The client configuration endpoint (RFC 7592 §2) of `client_id`: `GET` reads, `PUT`
    /// replaces, `DELETE` deletes the registration, with the registration access token as
    /// the bearer.
    pub async fn configure_client(&self, req: &HttpRequest, client_id: &str) -> HttpResponse {
        let result = self.configure_inner(req, client_id).await;
        self.answer("register", result)
    }

    fn answer(
        &self,
        endpoint: &'static str,
        result: Result<HttpResponse, OAuthError>,
    ) -> HttpResponse {
        match result {
            Ok(response) => response,
            Err(err) => {
                if err.code() == ErrorCode::ServerError {
                    tracing::error!(
                        endpoint,
                        detail = err.detail().unwrap_or(""),
                        "registration failed"
                    );
                } else {
                    tracing::debug!(endpoint, error = %err, "registration refused");
                }
                self.emit(crate::events::Event::Refused {
                    endpoint,
                    error: err.code(),
                    status: err.status(),
                });
                err.to_response(None)
            }
        }
    }

    fn policy(&self) -> Result<&RegistrationPolicy, OAuthError> {
        self.registration_policy().ok_or_else(|| {
            OAuthError::invalid_request("dynamic client registration is not enabled")
                .with_status(404)
        })
    }

    async fn register_inner(&self, req: &HttpRequest) -> Result<HttpResponse, OAuthError> {
        let policy = self.policy()?;
        if req.method != Method::Post {
            return Err(OAuthError::invalid_request("use POST")
                .with_status(405)
                .with_header("allow", "POST"));
        }
        let now = self.clock().now();
        if let Some(limits) = self.limits() {
            match limits.registrations_by_ip(self.client_ip(req), now).await {
                Ok(Ok(())) => {}
                Ok(Err(throttled)) => return Err(throttled.to_error()),
                // Rates protect capacity: a counter outage lets traffic through.
                Err(err) => tracing::warn!(error = %err, "registration rate not counted"),
            }
        }
        let presented = bearer(req)?;
        if presented.is_none() && !policy.open {
            return Err(invalid_token(
                "an initial access token is required to register",
            ));
        }
        let mut parsed = RegistrationRequest::parse(&req.body)?;
        if let Some(name) = parsed.server_issued_member() {
            return Err(invalid_metadata(format!("{name} is issued by the server")));
        }
        let statement = apply_statement(policy, &mut parsed, now)?;
        let id = random_hex(self.entropy(), 16);
        let mut built = parsed.to_client(policy, self.config(), &id, now)?;
        built.client.metadata.software_statement = statement;
        let (client, secret) =
            self.with_secret(built.client.clone(), built.needs_secret(), None)?;
        client.validate().map_err(|e| invalid_metadata(e.0))?;
        // The request is valid: only now is a use of the initial access token spent, so
        // bad input loses nothing.
        let initial_token = match presented {
            None => None,
            Some(token) => match self.store().use_initial_token(&token.digest(), now).await? {
                Some(record) => Some(record.id),
                None => return Err(invalid_token("the initial access token is invalid")),
            },
        };
        let access = Secret::new(random_token(self.entropy(), 32));
        let registration = ClientRegistration {
            client_id: id.clone(),
            token_digest: access.digest(),
            created_at: now,
            last_used: day_of(now),
            initial_token,
        };
        // The registration first: if storing the client fails, the sweep removes the
        // registration left behind; the other order could leave a client no sweep finds.
        self.store().put_registration(&registration).await?;
        self.store().put_client(&client).await?;
        tracing::info!(client_id = %id, "client registered");
        let body = self.client_information(
            &client,
            &built.response_types,
            secret.as_ref(),
            Some(&access),
        );
        Ok(HttpResponse::json_no_store(201, &body))
    }

    async fn configure_inner(
        &self,
        req: &HttpRequest,
        client_id: &str,
    ) -> Result<HttpResponse, OAuthError> {
        let policy = self.policy()?;
        let Some(token) = bearer(req)? else {
            return Err(invalid_token("the registration access token is required"));
        };
        // RFC 7592 §3: an unknown client and a wrong token get the same answer.
        let registration = self.store().get_registration(client_id).await?;
        let client = self.store().get_client(client_id).await?;
        let (Some(registration), Some(client)) = (registration, client) else {
            return Err(invalid_token("the registration access token is invalid"));
        };
        if registration.token_digest != token.digest() {
            return Err(invalid_token("the registration access token is invalid"));
        }
        match req.method {
            Method::Get => {
                let types = response_types_of(&client, self.config());
                let body = self.client_information(&client, &types, None, None);
                Ok(HttpResponse::json_no_store(200, &body))
            }
            Method::Other(ref m) if m == "PUT" => {
                self.update(policy, req, client, registration).await
            }
            Method::Other(ref m) if m == "DELETE" => {
                // The token is burnt first, in one atomic step: of a DELETE and a PUT (or two
                // DELETEs) that present the same token, only one is served.
                let burnt = ClientRegistration {
                    token_digest: Secret::new(random_token(self.entropy(), 32)).digest(),
                    ..registration.clone()
                };
                if !self
                    .store()
                    .swap_registration(&registration.token_digest, &burnt)
                    .await?
                {
                    return Err(invalid_token("the registration access token is invalid"));
                }
                self.store().delete_client(client_id).await?;
                self.store().delete_registration(client_id).await?;
                tracing::info!(client_id, "client deregistered");
                Ok(HttpResponse {
                    status: 204,
                    headers: vec![("cache-control".into(), "no-store".into())],
                    body: Vec::new(),
                })
            }
            _ => Err(OAuthError::invalid_request("use GET, PUT or DELETE")
                .with_status(405)
                .with_header("allow", "GET, PUT, DELETE")),
        }
    }

    /// RFC 7592 §2.2: the request replaces the client's metadata; it names the client and,
    /// for a confidential client, may repeat its secret, which must then be right.
    async fn update(
        &self,
        policy: &RegistrationPolicy,
        req: &HttpRequest,
        current: Client,
        registration: ClientRegistration,
    ) -> Result<HttpResponse, OAuthError> {
        let mut parsed = RegistrationRequest::parse(&req.body)?;
        if parsed.client_id() != Some(current.id.as_str()) {
            return Err(invalid_metadata(
                "client_id must be the client's identifier",
            ));
        }
        if let Some(name) = parsed.server_issued_member() {
            return Err(invalid_metadata(format!(
                "{name} must not be sent in an update"
            )));
        }
        if let Some(secret) = parsed.client_secret()
            && !current.secret_digest.is_some_and(|d| d.matches(&secret))
        {
            return Err(invalid_metadata("client_secret does not match"));
        }
        let statement = apply_statement(policy, &mut parsed, self.clock().now())?;
        let mut built = parsed.to_client(
            policy,
            self.config(),
            current.id.as_str(),
            current.created_at,
        )?;
        built.client.metadata.software_statement = statement;
        let (client, secret) =
            self.with_secret(built.client.clone(), built.needs_secret(), Some(&current))?;
        client.validate().map_err(|e| invalid_metadata(e.0))?;
        // RFC 7592 §3: "the authorization server MAY issue a new registration access token";
        // this one always does, so a token seen once in an update's request is spent. The
        // swap spends it in one atomic step before anything changes: of two requests that
        // present the same token, only one gets past it.
        let access = Secret::new(random_token(self.entropy(), 32));
        let rotated = ClientRegistration {
            token_digest: access.digest(),
            last_used: day_of(self.clock().now()).max(registration.last_used),
            ..registration.clone()
        };
        if !self
            .store()
            .swap_registration(&registration.token_digest, &rotated)
            .await?
        {
            return Err(invalid_token("the registration access token is invalid"));
        }
        if let Err(err) = self.store().put_client(&client).await {
            // The update did not happen: give the presented token back, so the client can
            // try again with the token it holds.
            if let Err(undo) = self
                .store()
                .swap_registration(&rotated.token_digest, &registration)
                .await
            {
                tracing::warn!(client_id = %client.id, error = %undo, "restoring a registration access token failed");
            }
            return Err(err.into());
        }
        tracing::info!(client_id = %client.id, "client registration updated, access token rotated");
        let body = self.client_information(
            &client,
            &built.response_types,
            secret.as_ref(),
            Some(&access),
        );
        Ok(HttpResponse::json_no_store(200, &body))
    }

    /// Gives `client` the secret its method needs: the current one kept when it has one
    /// (a digest cannot be shown again, so it is not returned), a new one otherwise.
    fn with_secret(
        &self,
        mut client: Client,
        needs_secret: bool,
        current: Option<&Client>,
    ) -> Result<(Client, Option<Secret>), OAuthError> {
        let method = client.token_endpoint_auth_method;
        let keep = current.filter(|c| {
            c.secret_digest.is_some()
                && (method != Some(AuthMethod::ClientSecretJwt)
                    || c.metadata.sealed_secret.is_some())
        });
        if !needs_secret {
            return Ok((client, None));
        }
        if let Some(current) = keep {
            client.secret_digest = current.secret_digest;
            client.metadata.sealed_secret = current.metadata.sealed_secret.clone();
            return Ok((client, None));
        }
        let secret = if method == Some(AuthMethod::ClientSecretJwt) {
            // 512 bits, so HS512 has a key as long as its hash (RFC 7518 §3.2).
            let secret = Secret::new(random_token(self.entropy(), 64));
            let Some(kek) = &self.assertion_keys().kek else {
                return Err(invalid_metadata(
                    "token_endpoint_auth_method client_secret_jwt is not available",
                ));
            };
            client.metadata.sealed_secret = Some(crate::client_assertion::seal_secret(
                kek,
                client.id.as_str(),
                &secret,
            )?);
            secret
        } else {
            Secret::new(random_token(self.entropy(), 32))
        };
        client.secret_digest = Some(secret.digest());
        Ok((client, Some(secret)))
    }

    /// The client information response (RFC 7591 §3.2.1, RFC 7592 §3).
    fn client_information(
        &self,
        client: &Client,
        response_types: &[crate::endpoint::authorize::ResponseType],
        secret: Option<&Secret>,
        access: Option<&Secret>,
    ) -> serde_json::Value {
        let mut body = serde_json::to_value(&client.metadata).unwrap_or_default();
        if let Some(members) = body.as_object_mut() {
            // Sealed under the server's key: never leaves it.
            members.remove("sealed_secret");
            members.remove("access_token_format");
        }
        body["client_id"] = client.id.as_str().into();
        body["client_id_issued_at"] = client.created_at.0.into();
        body["client_name"] = client.name.as_str().into();
        body["redirect_uris"] = client.redirect_uris.clone().into();
        body["grant_types"] = client
            .grant_types
            .iter()
            .map(|g| g.as_str())
            .collect::<Vec<_>>()
            .into();
        body["response_types"] = response_types
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>()
            .into();
        let method = client
            .token_endpoint_auth_method
            .unwrap_or(AuthMethod::ClientSecretBasic);
        body["token_endpoint_auth_method"] = method.as_str().into();
        if let Some(scopes) = &client.scopes {
            body["scope"] = scopes.to_string().into();
        }
        if let Some(secret) = secret {
            body["client_secret"] = secret.expose().into();
        }
        if client.secret_digest.is_some() {
            // RFC 7591 §3.2.1: 0 is "will not expire"; unused clients expire as a whole.
            body["client_secret_expires_at"] = 0.into();
        }
        if let Some(access) = access {
            body["registration_access_token"] = access.expose().into();
        }
        body["registration_client_uri"] = format!(
            "{}{REGISTER_PATH}/{}",
            self.config().issuer,
            percent_encode(client.id.as_str())
        )
        .into();
        body
    }
}

/// RFC 7591 §2.3: checks the request's software statement against `policy` and lays the
/// metadata it carries over the members sent in the clear, so the registration policy judges
/// the merged metadata; returns the statement as sent, to keep with the client and return
/// (RFC 7591 §3.2.1). Refuses a request without one when the policy requires it.
fn apply_statement(
    policy: &RegistrationPolicy,
    parsed: &mut RegistrationRequest,
    now: UnixTime,
) -> Result<Option<String>, OAuthError> {
    let statements = &policy.software_statements;
    let Some(statement) = parsed.software_statement()? else {
        if statements.required {
            return Err(OAuthError::new(
                ErrorCode::InvalidSoftwareStatement,
                "this server requires a software statement",
            ));
        }
        return Ok(None);
    };
    if statements.trusted.is_empty() {
        return Err(OAuthError::new(
            ErrorCode::UnapprovedSoftwareStatement,
            "software statements are not accepted by this server",
        ));
    }
    let claims = statements.verify(&statement, now)?;
    parsed.overlay(claims);
    Ok(Some(statement))
}

/// The response types a stored client's grants allow, for reading a registration back.
fn response_types_of(
    client: &Client,
    config: &crate::config::Config,
) -> Vec<crate::endpoint::authorize::ResponseType> {
    crate::endpoint::authorize::ResponseType::ALL
        .into_iter()
        .filter(|t| t.enabled_in(config) && t.grants().all(|g| client.allows(g)))
        .collect()
}

/// `invalid_token` (RFC 6750 §3.1, as RFC 7591 §3 and RFC 7592 §2 require) with its
/// challenge.
fn invalid_token(description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidToken, description).with_header(
        "www-authenticate",
        format!("Bearer error=\"invalid_token\", error_description=\"{description}\""),
    )
}

/// The bearer token of the request: an initial or registration access token.
fn bearer(req: &HttpRequest) -> Result<Option<Secret>, OAuthError> {
    crate::resource::bearer_token(req)
        .map_err(|_| OAuthError::invalid_request("malformed Authorization header"))
}

/// Percent-encodes a client id for a path segment.
fn percent_encode(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
