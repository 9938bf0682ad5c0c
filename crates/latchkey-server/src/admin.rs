//! Administration: clients, users, revocation and introspection, as one set of operations
//! that the CLI (`latchkey client …`, `latchkey user …`) and the admin HTTP API both call.
//! Every change is written to the audit log with who made it (`cli` or `api`).

use crate::store::AnyStore;
use latchkey_core::client::{AuthMethod, Client, ClientId, ClientType, GrantType, NewClient};
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::entropy::OsEntropy;
use latchkey_core::password;
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Secret;
use latchkey_core::store::{
    ClientStore, ConsentStore, SessionStore, StoreError, TokenStore, UserStore, withdraw_consent,
};
use latchkey_core::token::TokenKind;
use latchkey_core::user::User;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use utoipa::ToSchema;

mod keys;
mod protocol;
mod registration;
mod resources;
mod sector;
mod users;

pub use keys::{KeyView, RotateKeys, signing_alg};
pub use registration::{CreatedInitialToken, InitialTokenView, NewInitialToken};
pub use resources::{ResourceSource, ResourceSpec, ResourceUpdate, ResourceView};
pub use users::UserUpdate;

/// Why an administrative operation failed; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request is malformed or names impossible settings (400).
    #[error("{0}")]
    Invalid(String),
    /// No such client or user (404).
    #[error("{0}")]
    NotFound(String),
    /// It exists already (409).
    #[error("{0}")]
    Conflict(String),
    /// The store failed (503).
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// A client to register.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// Display name, shown on consent pages.
    pub name: String,
    /// A public client (browser or native app): no secret.
    #[serde(default)]
    pub public: bool,
    /// Grants the client may use: `authorization_code`, `client_credentials`, `password`,
    /// `refresh_token`, `implicit`. Empty: `client_credentials`, `authorization_code` and
    /// `refresh_token` (public clients: `authorization_code` and `refresh_token`).
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Redirect URIs, matched exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Scopes the client may be granted, space-separated (default: the server's).
    pub scope: Option<String>,
    /// Scopes granted when a request names none (default: the server's).
    pub default_scope: Option<String>,
    /// Bind tokens to the User-Agent and address they were issued to.
    #[serde(default)]
    pub bind_tokens: bool,
    /// May introspect tokens issued to other clients (a resource server); confidential only.
    #[serde(default)]
    pub introspect: bool,
    /// Lifetime of this client's access tokens in seconds (default: the server's).
    pub access_token_ttl: Option<u64>,
    /// Lifetime of this client's refresh tokens in seconds (default: the server's).
    pub refresh_token_ttl: Option<u64>,
    /// The one way the client authenticates (RFC 7591 §2): `client_secret_basic`,
    /// `client_secret_post`, `none` (public clients), `private_key_jwt` (with `jwks` or
    /// `jwks_uri`) or `client_secret_jwt`. Default: either secret method for a
    /// confidential client, `none` for a public one.
    pub token_endpoint_auth_method: Option<String>,
    /// A client id to use instead of a generated one.
    pub id: Option<String>,
    /// Also an OAuth 1.0a consumer: the client id is its consumer key; its consumer secret
    /// (derived from the server's OAuth 1.0a key and a random salt of this registration) is
    /// returned beside the OAuth 2.0 client secret, and differs from it.
    #[serde(default)]
    pub oauth1: bool,
    /// The PEM RSA public key of an OAuth 1.0a consumer that signs with RSA-SHA1 (implies
    /// `oauth1`).
    #[serde(default)]
    pub rsa_public_key: Option<String>,
    /// The client's public keys as a JWK Set (RFC 7591 §2 `jwks`), for `private_key_jwt`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its JWK Set (RFC 7591 §2 `jwks_uri`), for
    /// `private_key_jwt`.
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// Where users may be sent after logging out (OpenID Connect RP-Initiated Logout §3.1),
    /// matched exactly.
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// Where the server POSTs logout tokens when a session the client got tokens in ends
    /// (OpenID Connect Back-Channel Logout §2.2).
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// Whether its logout tokens must name the session (`sid`); Latchkey's always do.
    #[serde(default)]
    pub backchannel_logout_session_required: bool,
    /// The format of the client's access tokens: `opaque` (the default) or `jwt` (RFC 9068,
    /// signed with the server's keys, verifiable by resource servers without calling back).
    #[serde(default)]
    pub access_token_format: Option<String>,
    /// `public` (the default: every client sees a user's stable id) or `pairwise` (OpenID
    /// Connect Core §8.1: each sector sees its own `sub`).
    #[serde(default)]
    pub subject_type: Option<String>,
    /// An `https` URL of a JSON array listing every redirect URI of the client, fetched and
    /// checked at registration; its host is the client's pairwise sector (OpenID Connect
    /// Core §8.1).
    #[serde(default)]
    pub sector_identifier_uri: Option<String>,
    /// For `tls_client_auth` (RFC 8705 §2.1.2): the certificate's subject DN (RFC 4514).
    /// One of this and the `tls_client_auth_san_*` values.
    #[serde(default)]
    pub tls_client_auth_subject_dn: Option<String>,
    /// For `tls_client_auth`: a DNS name in the certificate's SAN.
    #[serde(default)]
    pub tls_client_auth_san_dns: Option<String>,
    /// For `tls_client_auth`: a URI in the certificate's SAN.
    #[serde(default)]
    pub tls_client_auth_san_uri: Option<String>,
    /// For `tls_client_auth`: an IP address in the certificate's SAN.
    #[serde(default)]
    pub tls_client_auth_san_ip: Option<String>,
    /// For `tls_client_auth`: an email address in the certificate's SAN.
    #[serde(default)]
    pub tls_client_auth_san_email: Option<String>,
    /// Bind the client's access tokens (and a public client's refresh tokens) to its TLS
    /// client certificate (RFC 8705 §3).
    #[serde(default)]
    pub tls_client_certificate_bound_access_tokens: bool,
    /// What the client may do with token exchange (RFC 8693): the `token_exchange` policy
    /// object (see the README).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub token_exchange: Option<serde_json::Value>,
    /// Every token request of the client must carry a DPoP proof, so all its access tokens
    /// are bound to its key (RFC 9449 §5.2).
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// The client may start an authorization only with a pushed request (RFC 9126 §6).
    #[serde(default)]
    pub require_pushed_authorization_requests: bool,
    /// Every authorization request of the client must be a signed request object (RFC 9101
    /// §10.5); needs `jwks` or `jwks_uri`.
    #[serde(default)]
    pub require_signed_request_object: bool,
    /// The one JWS `alg` the client signs request objects with (asymmetric, never `none`).
    #[serde(default)]
    pub request_object_signing_alg: Option<String>,
}

/// A registered client as administrators see it: never its secret.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ClientView {
    /// The client identifier.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// `confidential` or `public`.
    pub client_type: &'static str,
    /// Grants it may use.
    pub grant_types: Vec<&'static str>,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Scopes it may be granted; absent: the server's.
    pub scope: Option<String>,
    /// Scopes granted when a request names none; absent: the server's.
    pub default_scope: Option<String>,
    /// Whether its tokens are bound to User-Agent and address.
    pub bind_tokens: bool,
    /// Whether it may introspect tokens issued to other clients (a resource server).
    pub introspect: bool,
    /// Lifetime of its access tokens in seconds; absent: the server's.
    pub access_token_ttl: Option<u64>,
    /// Lifetime of its refresh tokens in seconds; absent: the server's.
    pub refresh_token_ttl: Option<u64>,
    /// The one way it must authenticate; absent: what its type allows
    /// (`client_secret_basic` or `client_secret_post`, or `none` for a public client).
    pub token_endpoint_auth_method: Option<&'static str>,
    /// The format of its access tokens: `opaque` or `jwt` (RFC 9068).
    pub access_token_format: &'static str,
    /// `pairwise` when it sees pairwise subjects (OpenID Connect Core §8); absent: public.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_type: Option<String>,
    /// The URL whose host is its pairwise sector, checked at registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sector_identifier_uri: Option<String>,
    /// The certificate subject rule of a `tls_client_auth` client (RFC 8705 §2.1.2), as
    /// `name=value` (`tls_client_auth_san_dns=svc.example`).
    pub tls_client_auth: Option<String>,
    /// Whether its tokens are bound to its TLS client certificate (RFC 8705 §3).
    pub tls_client_certificate_bound_access_tokens: bool,
    /// Its token exchange policy (RFC 8693); absent: it may exchange nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub token_exchange: Option<serde_json::Value>,
    /// Whether every token request must carry a DPoP proof (RFC 9449 §5.2).
    pub dpop_bound_access_tokens: bool,
    /// Registration time, seconds since the epoch.
    pub created_at: i64,
    /// Whether it may start an authorization only with a pushed request (RFC 9126 §6).
    pub require_pushed_authorization_requests: bool,
    /// Whether its authorization requests must be signed request objects (RFC 9101 §10.5).
    pub require_signed_request_object: bool,
    /// The one `alg` its request objects may be signed with; absent: any the server accepts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object_signing_alg: Option<String>,
}

impl From<&Client> for ClientView {
    fn from(c: &Client) -> Self {
        Self {
            client_id: c.id.to_string(),
            name: c.name.clone(),
            client_type: client_type(c),
            grant_types: c.grant_types.iter().map(|g| g.as_str()).collect(),
            redirect_uris: c.redirect_uris.clone(),
            scope: c.scopes.as_ref().map(ToString::to_string),
            default_scope: c.default_scopes.as_ref().map(ToString::to_string),
            bind_tokens: c.bind_tokens,
            introspect: c.introspect,
            access_token_ttl: c.access_token_ttl,
            refresh_token_ttl: c.refresh_token_ttl,
            token_endpoint_auth_method: c.token_endpoint_auth_method.map(AuthMethod::as_str),
            access_token_format: c.metadata.access_token_format().as_str(),
            subject_type: c.metadata.subject_type.clone(),
            sector_identifier_uri: c.metadata.sector_identifier_uri.clone(),
            tls_client_auth: tls_rule(&c.metadata),
            tls_client_certificate_bound_access_tokens: c
                .metadata
                .tls_client_certificate_bound_access_tokens,
            token_exchange: c
                .metadata
                .token_exchange
                .as_ref()
                .and_then(|p| serde_json::to_value(p).ok()),
            dpop_bound_access_tokens: c.metadata.dpop_bound_access_tokens,
            created_at: c.created_at.0,
            require_pushed_authorization_requests: c.metadata.require_pushed_authorization_requests,
            require_signed_request_object: c.metadata.require_signed_request_object,
            request_object_signing_alg: c.metadata.request_object_signing_alg.clone(),
        }
    }
}

/// A new client with its secret, which is shown this once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient {
    /// The client.
    #[serde(flatten)]
    pub client: ClientView,
    /// The OAuth 2.0 secret of a confidential client.
    pub client_secret: Option<String>,
    /// Whether it is also an OAuth 1.0a consumer (with `client_id` as its consumer key).
    pub oauth1: bool,
    /// The OAuth 1.0a consumer secret (HMAC-SHA1, HMAC-SHA256 and PLAINTEXT signatures), when
    /// it is a consumer that signs with a shared secret; absent for RSA-SHA1 consumers.
    pub oauth1_consumer_secret: Option<String>,
}

/// New secrets of a client after a rotation, shown this once; the old ones no longer work.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The client identifier.
    pub client_id: String,
    /// The new OAuth 2.0 client secret.
    pub client_secret: String,
    /// The new OAuth 1.0a consumer secret, when the client is a consumer that signs with a
    /// shared secret (its OAuth 1.0a tokens were revoked with the old secret).
    pub oauth1_consumer_secret: Option<String>,
}

/// Changes to a registered client: what is absent stays as it is. The secret is not among
/// them (`rotate_secret` changes it) and neither is the client's type. The result must pass
/// the same checks as a new registration ([`Client::validate`]).
///
/// In JSON, `null` for `scope`, `default_scope`, `access_token_ttl`, `refresh_token_ttl` or
/// `token_endpoint_auth_method` returns that setting to the server's default.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientUpdate {
    /// A new display name.
    pub name: Option<String>,
    /// Replaces every redirect URI with these (applied before the removals and additions).
    pub redirect_uris: Option<Vec<String>>,
    /// Redirect URIs to register in addition; one already registered is kept once.
    #[serde(default)]
    pub add_redirect_uris: Vec<String>,
    /// Registered redirect URIs to remove; naming one that is not registered is an error.
    #[serde(default)]
    pub remove_redirect_uris: Vec<String>,
    /// Replaces the grants the client may use.
    pub grant_types: Option<Vec<String>>,
    /// The scopes the client may be granted, space-separated; `null`: the server's.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub scope: Option<Option<String>>,
    /// The scopes granted when a request names none; `null`: the server's.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub default_scope: Option<Option<String>>,
    /// Lifetime of access tokens in seconds; `null`: the server's.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub access_token_ttl: Option<Option<u64>>,
    /// Lifetime of refresh tokens in seconds; `null`: the server's.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>)]
    pub refresh_token_ttl: Option<Option<u64>>,
    /// `client_secret_basic`, `client_secret_post` or `none`; `null`: what the type allows.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub token_endpoint_auth_method: Option<Option<String>>,
    /// Bind tokens to the User-Agent and address they were issued to.
    pub bind_tokens: Option<bool>,
    /// May introspect tokens issued to other clients; confidential only.
    pub introspect: Option<bool>,
    /// Replaces the post-logout redirect URIs (OpenID Connect RP-Initiated Logout §3.1).
    pub post_logout_redirect_uris: Option<Vec<String>>,
    /// Sets (a string) or removes (`null`) the back-channel logout URI.
    #[serde(default, deserialize_with = "present")]
    pub backchannel_logout_uri: Option<Option<String>>,
    /// Whether logout tokens must carry `sid`.
    pub backchannel_logout_session_required: Option<bool>,
    /// The format of access tokens: `opaque` or `jwt` (RFC 9068).
    pub access_token_format: Option<String>,
    /// `public` or `pairwise` subject identifiers; `null`: public.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub subject_type: Option<Option<String>>,
    /// Sets (fetched and checked again) or removes (`null`) the `sector_identifier_uri`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub sector_identifier_uri: Option<Option<String>>,
    /// Sets (an object) or removes (`null`) the token exchange policy (RFC 8693).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub token_exchange: Option<Option<serde_json::Value>>,
    /// Sets (a string) or removes (`null`) the `tls_client_auth` subject DN rule (RFC 8705
    /// §2.1.2). Setting any `tls_client_auth_*` rule replaces the one registered.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub tls_client_auth_subject_dn: Option<Option<String>>,
    /// Sets or removes the SAN DNS name rule.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub tls_client_auth_san_dns: Option<Option<String>>,
    /// Sets or removes the SAN URI rule.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub tls_client_auth_san_uri: Option<Option<String>>,
    /// Sets or removes the SAN IP address rule.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub tls_client_auth_san_ip: Option<Option<String>>,
    /// Sets or removes the SAN email rule.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub tls_client_auth_san_email: Option<Option<String>>,
    /// Bind access tokens to the TLS client certificate (RFC 8705 §3).
    pub tls_client_certificate_bound_access_tokens: Option<bool>,
    /// Require a DPoP proof on every token request (RFC 9449 §5.2).
    pub dpop_bound_access_tokens: Option<bool>,
    /// Accept only pushed authorization requests from the client (RFC 9126 §6).
    pub require_pushed_authorization_requests: Option<bool>,
    /// Accept only signed request objects from the client (RFC 9101 §10.5).
    pub require_signed_request_object: Option<bool>,
    /// Sets (an `alg`) or removes (`null`: any the server accepts) the client's
    /// `request_object_signing_alg`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub request_object_signing_alg: Option<Option<String>>,
}

/// Reads a field that is present (`Some`), possibly as `null` (`Some(None)`); an absent field
/// is `None` through `#[serde(default)]`.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A remembered consent as administrators see it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ConsentView {
    /// The client the user allowed.
    pub client_id: String,
    /// The client's display name; absent if the client is gone.
    pub client_name: Option<String>,
    /// The scopes allowed, space-separated.
    pub scope: String,
    /// When the consent was given, seconds since the epoch.
    pub granted_at: i64,
}

/// What revoking a consent took back.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RevokedConsent {
    /// The client whose access ended.
    pub client_id: String,
    /// How many of the user's tokens at that client were revoked (access and refresh).
    pub tokens_revoked: u64,
}

/// Client writes that read a client and write it back whole (update, secret rotation) take
/// this lock, so that within one process neither undoes the other: an update cannot restore a
/// secret that was just rotated away, nor a rotation restore settings just changed.
static CLIENT_WRITES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A built-in user as administrators see it: never the password hash.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UserView {
    /// The stable subject identifier put into tokens.
    pub subject: String,
    /// The login name.
    pub username: String,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
    /// The OpenID Connect standard claims set for the user (OpenID Connect Core §5.1), by
    /// name; released to clients by the scopes they were granted.
    #[schema(value_type = Object)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            subject: u.id.clone(),
            username: u.username.clone(),
            created_at: u.created_at.0,
            claims: u.claims.to_map(),
        }
    }
}

/// `confidential` or `public`.
pub fn client_type(c: &Client) -> &'static str {
    match c.client_type() {
        ClientType::Confidential => "confidential",
        ClientType::Public => "public",
    }
}

/// The administrative operations over one store, on behalf of `actor` (for the audit log).
#[derive(Clone, Debug)]
pub struct Admin {
    store: AnyStore,
    issuer: String,
    actor: &'static str,
    oauth1_key: Option<latchkey_oauth1::OAuth1Key>,
    /// The running provider, when there is one (the admin API): ending sessions through it
    /// sends their back-channel logouts.
    provider: Option<RunningProvider>,
    /// The key-encryption key that seals the secrets of `client_secret_jwt` clients.
    kek: Option<latchkey_core::jose::Kek>,
    /// How signing keys rotate (the `[keys]` settings), for key management.
    key_policy: Option<latchkey_core::jose::rotation::RotationPolicy>,
    /// Whether a loopback `sector_identifier_uri` may be fetched over plain `http`.
    allow_http_sector: bool,
    /// The CA certificates of `outbound.ca_file`, for fetching `sector_identifier_uri`.
    outbound_roots: crate::outbound::TrustedRoots,
    /// The resources of the settings: the read-only part of the registry.
    configured_resources: latchkey_core::indicator::Resources,
}

/// The running provider an [`Admin`] ends sessions through.
#[derive(Clone)]
struct RunningProvider(crate::app::AppProvider);

impl std::fmt::Debug for RunningProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RunningProvider")
    }
}

impl Admin {
    /// Operations on `store`; `issuer` goes into introspection answers; `actor` names the
    /// caller in the audit log (`cli` or `api`).
    pub fn new(store: AnyStore, issuer: impl Into<String>, actor: &'static str) -> Self {
        Self {
            store,
            issuer: issuer.into(),
            actor,
            oauth1_key: None,
            provider: None,
            kek: None,
            key_policy: None,
            allow_http_sector: false,
            outbound_roots: crate::outbound::TrustedRoots::default(),
            configured_resources: latchkey_core::indicator::Resources::default(),
        }
    }

    /// Manages signing keys with the `[keys]` settings' rotation policy (and the
    /// key-encryption key of [`Admin::with_kek`]).
    pub fn with_key_policy(
        mut self,
        policy: latchkey_core::jose::rotation::RotationPolicy,
    ) -> Self {
        self.key_policy = Some(policy);
        self
    }

    /// Seals the secrets of `client_secret_jwt` clients with `kek` (the server's
    /// key-encryption key), which they need: their assertions are checked with the secret
    /// itself. Without it, such clients cannot be created.
    pub fn with_kek(mut self, kek: latchkey_core::jose::Kek) -> Self {
        self.kek = Some(kek);
        self
    }

    /// Keeps `secret` sealed on `client` when its assertions are HMACs of it
    /// (`client_secret_jwt`); nothing for any other client.
    fn seal_if_needed(
        &self,
        client: &mut latchkey_core::client::Client,
        secret: Option<&latchkey_core::secret::Secret>,
    ) -> Result<(), AdminError> {
        if client.token_endpoint_auth_method != Some(AuthMethod::ClientSecretJwt) {
            return Ok(());
        }
        let (Some(kek), Some(secret)) = (&self.kek, secret) else {
            return Err(AdminError::Invalid(
                "client_secret_jwt needs the server's key-encryption key to seal the secret".into(),
            ));
        };
        let sealed = latchkey_core::client_assertion::seal_secret(kek, client.id.as_str(), secret)
            .map_err(|e| AdminError::Invalid(e.to_string()))?;
        client.metadata.sealed_secret = Some(sealed);
        Ok(())
    }

    /// Ends login sessions through `provider`, which tells the clients that got tokens in
    /// them (OpenID Connect Back-Channel Logout).
    pub fn with_provider(mut self, provider: crate::app::AppProvider) -> Self {
        self.provider = Some(RunningProvider(provider));
        self
    }

    /// Ends every login session of `subject`: through the provider when there is one (which
    /// sends the back-channel logouts), else in the store alone. Returns how many ended.
    ///
    /// The CLI and the admin API both pass a provider, so both go through the core's one
    /// path, [`latchkey_core::logout::end_sessions_of`]; an `Admin` built without one (a
    /// library caller) ends the sessions and logs that nobody was told.
    async fn end_sessions_of(&self, subject: &str) -> Result<u64, AdminError> {
        let ended = match &self.provider {
            Some(RunningProvider(p)) => latchkey_core::logout::end_sessions_of(p, subject).await?,
            None => {
                let ended = self.store.delete_sessions_of(subject).await?;
                if ended.iter().any(|s| !s.clients.is_empty()) {
                    tracing::warn!(
                        "sessions ended without a provider: no back-channel logout is sent"
                    );
                }
                ended
            }
        };
        Ok(u64::try_from(ended.len()).unwrap_or(u64::MAX))
    }

    /// Allows registering OAuth 1.0a consumers, whose secrets derive from `key`.
    pub fn with_oauth1_key(mut self, key: latchkey_oauth1::OAuth1Key) -> Self {
        self.oauth1_key = Some(key);
        self
    }

    fn audit(&self, action: &'static str, target: &str) {
        tracing::info!(
            target: "latchkey::audit",
            event = "admin_change",
            actor = self.actor,
            client_ip = crate::audit::request_client_ip(),
            action,
            target,
        );
    }

    /// Registers a client and returns it with its secret.
    pub async fn create_client(&self, spec: ClientSpec) -> Result<CreatedClient, AdminError> {
        let invalid = |m: String| AdminError::Invalid(m);
        let mut new = if spec.public {
            NewClient::public(&spec.name)
        } else {
            NewClient::confidential(&spec.name)
        };
        if !spec.grant_types.is_empty() {
            new = new.grant_types(grant_types(&spec.grant_types)?);
        }
        new = new
            .redirect_uris(spec.redirect_uris.clone())
            .bind_tokens(spec.bind_tokens)
            .introspect(spec.introspect);
        if let Some(scope) = &spec.scope {
            new = new.scopes(scope_set("scope", scope)?);
        }
        if let Some(scope) = &spec.default_scope {
            new = new.default_scopes(scope_set("default_scope", scope)?);
        }
        if let Some(ttl) = spec.access_token_ttl {
            new = new.access_token_ttl(ttl);
        }
        if let Some(ttl) = spec.refresh_token_ttl {
            new = new.refresh_token_ttl(ttl);
        }
        if let Some(method) = &spec.token_endpoint_auth_method {
            new = new.token_endpoint_auth_method(auth_method(method)?);
        }
        if let Some(id) = &spec.id {
            ClientId::parse(id)
                .map_err(|_| invalid("id must be 1-255 printable ASCII characters".into()))?;
            if self.store.get_client(id).await?.is_some() {
                return Err(AdminError::Conflict(format!(
                    "a client with id {id:?} already exists"
                )));
            }
            new = new.id(id);
        }
        let oauth1 = spec.oauth1 || spec.rsa_public_key.is_some();
        let oauth1_key = match (oauth1, &self.oauth1_key) {
            (false, _) => None,
            (true, None) => return Err(invalid("OAuth 1.0a is not enabled here".into())),
            (true, Some(_)) if spec.public => {
                return Err(invalid(
                    "an OAuth 1.0a consumer holds a secret: not public".into(),
                ));
            }
            (true, Some(key)) => Some(key),
        };
        if let Some(pem) = &spec.rsa_public_key {
            latchkey_oauth1::signature::RsaPublicKey::from_pem(pem).map_err(|e| {
                invalid(format!(
                    "rsa_public_key: {e} (expected a PEM RSA public key)"
                ))
            })?;
        }
        if spec.jwks.is_some() || spec.jwks_uri.is_some() {
            let mut metadata = latchkey_core::client::ClientMetadata::default();
            metadata.jwks = spec.jwks.clone();
            metadata.jwks_uri = spec.jwks_uri.clone();
            new = new.metadata(metadata);
        }
        let now = SystemClock.now();
        // The OAuth 2.0 secret is random and kept only as a hash, as for every client.
        let (mut client, secret) = new.build(&OsEntropy, now);
        let logout = &mut client.metadata;
        logout.post_logout_redirect_uris = spec.post_logout_redirect_uris.clone();
        logout.backchannel_logout_uri = spec.backchannel_logout_uri.clone();
        logout.backchannel_logout_session_required = spec.backchannel_logout_session_required;
        self.seal_if_needed(&mut client, secret.as_ref())?;
        if let Some(format) = &spec.access_token_format {
            client.metadata.access_token_format = access_token_format(format)?;
        }
        client.metadata.subject_type = spec.subject_type.clone();
        client.metadata.sector_identifier_uri = spec.sector_identifier_uri.clone();
        let tls = &mut client.metadata;
        tls.tls_client_auth_subject_dn = spec.tls_client_auth_subject_dn.clone();
        tls.tls_client_auth_san_dns = spec.tls_client_auth_san_dns.clone();
        tls.tls_client_auth_san_uri = spec.tls_client_auth_san_uri.clone();
        tls.tls_client_auth_san_ip = spec.tls_client_auth_san_ip.clone();
        tls.tls_client_auth_san_email = spec.tls_client_auth_san_email.clone();
        tls.tls_client_certificate_bound_access_tokens =
            spec.tls_client_certificate_bound_access_tokens;
        if let Some(policy) = &spec.token_exchange {
            client.metadata.token_exchange = Some(exchange_policy(policy)?);
        }
        client.metadata.dpop_bound_access_tokens = spec.dpop_bound_access_tokens;
        client.metadata.require_pushed_authorization_requests =
            spec.require_pushed_authorization_requests;
        client.metadata.require_signed_request_object = spec.require_signed_request_object;
        client.metadata.request_object_signing_alg = spec.request_object_signing_alg.clone();
        client.validate().map_err(|e| invalid(e.0))?;
        self.check_sector_identifier(&client).await?;
        self.store.put_client(&client).await?;
        let mut consumer_secret = None;
        if let Some(key) = oauth1_key {
            use latchkey_oauth1::store::OAuth1Store;
            // OAuth 1.0a needs the consumer secret itself at every request (HMAC): it is
            // derived from the server's key and this registration's random salt rather than
            // stored, so a client created again under the same id gets a new one.
            let rsa_public_key = spec.rsa_public_key.as_deref().map(|p| p.trim().to_owned());
            let shared_secret = rsa_public_key.is_none();
            let consumer = latchkey_oauth1::store::Consumer::new(
                client.id.as_str(),
                rsa_public_key,
                &OsEntropy,
                now,
            );
            self.store.put_consumer(&consumer).await?;
            if shared_secret {
                consumer_secret = Some(key.consumer_secret(&consumer));
            }
        }
        self.audit("client_created", client.id.as_str());
        Ok(CreatedClient {
            client: ClientView::from(&client),
            client_secret: secret.as_ref().map(|s| s.expose().to_owned()),
            oauth1,
            oauth1_consumer_secret: consumer_secret.as_ref().map(|s| s.expose().to_owned()),
        })
    }

    /// Rotates a confidential client's secrets: a new random OAuth 2.0 secret (only its hash
    /// is stored; the old secret stops working at once) and, for an OAuth 1.0a consumer that
    /// signs with a shared secret, a new consumer secret, its request and access tokens
    /// deleted with the old one. Tokens the client holds from OAuth 2.0 grants stay valid:
    /// they do not depend on its secret, and refreshing them needs the new one. An RSA-SHA1
    /// consumer's OAuth 1.0a credential is its key, which this does not change.
    pub async fn rotate_secret(&self, id: &str) -> Result<RotatedSecret, AdminError> {
        use latchkey_oauth1::store::OAuth1Store;
        let _writing = CLIENT_WRITES.lock().await;
        let Some(mut client) = self.store.get_client(id).await? else {
            return Err(AdminError::NotFound(format!("no client with id {id:?}")));
        };
        let Some(secret) = client.rotate_secret(&OsEntropy) else {
            return Err(AdminError::Invalid(format!(
                "client {id:?} is public: it has no secret to rotate"
            )));
        };
        self.seal_if_needed(&mut client, Some(&secret))?;
        let consumer = self.store.get_consumer(id).await?;
        let shared_secret_consumer = consumer.is_some_and(|c| c.rsa_public_key.is_none());
        let oauth1_key = match (shared_secret_consumer, &self.oauth1_key) {
            (true, None) => {
                return Err(AdminError::Invalid(
                    "client is an OAuth 1.0a consumer, but OAuth 1.0a is not enabled here".into(),
                ));
            }
            (true, Some(key)) => Some(key),
            (false, _) => None,
        };
        self.store.put_client(&client).await?;
        let mut consumer_secret = None;
        if let Some(key) = oauth1_key {
            consumer_secret =
                latchkey_oauth1::provider::rotate_consumer_secret(&self.store, key, &OsEntropy, id)
                    .await?;
        }
        self.audit("client_secret_rotated", id);
        Ok(RotatedSecret {
            client_id: id.to_owned(),
            client_secret: secret.expose().to_owned(),
            oauth1_consumer_secret: consumer_secret.as_ref().map(|s| s.expose().to_owned()),
        })
    }

    /// Every registered client.
    pub async fn list_clients(&self) -> Result<Vec<ClientView>, AdminError> {
        Ok(self
            .store
            .list_clients()
            .await?
            .iter()
            .map(ClientView::from)
            .collect())
    }

    /// One client.
    pub async fn get_client(&self, id: &str) -> Result<ClientView, AdminError> {
        match self.store.get_client(id).await? {
            Some(c) => Ok(ClientView::from(&c)),
            None => Err(AdminError::NotFound(format!("no client with id {id:?}"))),
        }
    }

    /// Changes a client's settings and returns it as it now is. The secret is never touched.
    /// The changed client must pass [`Client::validate`], the check a new registration
    /// passes, or nothing is stored. Tokens already issued keep the scope and lifetime they
    /// were issued with; a grant type taken away stops working at the client's next request.
    pub async fn update_client(
        &self,
        id: &str,
        update: ClientUpdate,
    ) -> Result<ClientView, AdminError> {
        let invalid = |m: String| AdminError::Invalid(m);
        let _writing = CLIENT_WRITES.lock().await;
        let Some(mut client) = self.store.get_client(id).await? else {
            return Err(AdminError::NotFound(format!("no client with id {id:?}")));
        };
        let before = client.clone();
        protocol::apply(&update, &mut client.metadata);
        if let Some(name) = update.name {
            client.name = name;
        }
        if let Some(uris) = update.redirect_uris {
            client.redirect_uris = uris;
        }
        for uri in &update.remove_redirect_uris {
            let registered = client.redirect_uris.len();
            client.redirect_uris.retain(|u| u != uri);
            if client.redirect_uris.len() == registered {
                return Err(invalid(format!("redirect URI {uri:?} is not registered")));
            }
        }
        for uri in update.add_redirect_uris {
            if !client.redirect_uris.contains(&uri) {
                client.redirect_uris.push(uri);
            }
        }
        if let Some(grants) = &update.grant_types {
            client.grant_types = grant_types(grants)?;
        }
        if let Some(scope) = update.scope {
            client.scopes = scope.map(|s| scope_set("scope", &s)).transpose()?;
        }
        if let Some(scope) = update.default_scope {
            client.default_scopes = scope.map(|s| scope_set("default_scope", &s)).transpose()?;
        }
        if let Some(ttl) = update.access_token_ttl {
            client.access_token_ttl = ttl;
        }
        if let Some(ttl) = update.refresh_token_ttl {
            client.refresh_token_ttl = ttl;
        }
        if let Some(method) = update.token_endpoint_auth_method {
            client.token_endpoint_auth_method = method.as_deref().map(auth_method).transpose()?;
        }
        if let Some(bind) = update.bind_tokens {
            client.bind_tokens = bind;
        }
        if let Some(introspect) = update.introspect {
            client.introspect = introspect;
        }
        if let Some(uris) = update.post_logout_redirect_uris {
            client.metadata.post_logout_redirect_uris = uris;
        }
        if let Some(uri) = update.backchannel_logout_uri {
            client.metadata.backchannel_logout_uri = uri;
        }
        if let Some(required) = update.backchannel_logout_session_required {
            client.metadata.backchannel_logout_session_required = required;
        }
        if let Some(format) = &update.access_token_format {
            client.metadata.access_token_format = access_token_format(format)?;
        }
        if let Some(kind) = update.subject_type {
            client.metadata.subject_type = kind;
        }
        if let Some(uri) = update.sector_identifier_uri {
            client.metadata.sector_identifier_uri = uri;
        }
        if let Some(policy) = &update.token_exchange {
            client.metadata.token_exchange = policy.as_ref().map(exchange_policy).transpose()?;
        }
        debug_assert_eq!(client.secret_digest, before.secret_digest);
        client.validate().map_err(|e| invalid(e.0))?;
        // The document must still list every redirect URI when either changed.
        if client.redirect_uris != before.redirect_uris
            || client.metadata.sector_identifier_uri != before.metadata.sector_identifier_uri
        {
            self.check_sector_identifier(&client).await?;
        }
        let changed = changed_settings(&before, &client);
        if !changed.is_empty() {
            self.store.put_client(&client).await?;
        }
        tracing::info!(
            target: "latchkey::audit",
            event = "admin_change",
            actor = self.actor,
            client_ip = crate::audit::request_client_ip(),
            action = "client_updated",
            target = id,
            changed = changed.join(","),
        );
        Ok(ClientView::from(&client))
    }

    /// The consents `username` has remembered, with each client's name.
    pub async fn list_consents(&self, username: &str) -> Result<Vec<ConsentView>, AdminError> {
        let user = self.user(username).await?;
        let mut views = Vec::new();
        for consent in self.store.list_consents(&user.id).await? {
            let client_name = self
                .store
                .get_client(&consent.client_id)
                .await?
                .map(|c| c.name);
            views.push(ConsentView {
                client_id: consent.client_id,
                client_name,
                scope: consent.scope.to_string(),
                granted_at: consent.granted_at.0,
            });
        }
        Ok(views)
    }

    /// Withdraws `username`'s consent to `client_id` ([`withdraw_consent`]): every token that
    /// client holds for the user (access and refresh, and unused codes) is revoked, and the
    /// next authorization asks the user again. Not found when no consent is remembered.
    pub async fn revoke_consent(
        &self,
        username: &str,
        client_id: &str,
    ) -> Result<RevokedConsent, AdminError> {
        let user = self.user(username).await?;
        if self.store.get_consent(&user.id, client_id).await?.is_none() {
            return Err(AdminError::NotFound(format!(
                "user {username:?} has no remembered consent for client {client_id:?}"
            )));
        }
        let withdrawn = withdraw_consent(&self.store, &user.id, client_id).await?;
        tracing::info!(
            target: "latchkey::audit",
            event = "admin_change",
            actor = self.actor,
            client_ip = crate::audit::request_client_ip(),
            action = "consent_revoked",
            target = username,
            client_id,
            tokens_revoked = withdrawn.tokens,
        );
        Ok(RevokedConsent {
            client_id: client_id.to_owned(),
            tokens_revoked: withdrawn.tokens,
        })
    }

    async fn user(&self, username: &str) -> Result<User, AdminError> {
        self.store
            .get_user(username)
            .await?
            .ok_or_else(|| AdminError::NotFound(format!("no user {username:?}")))
    }

    /// Deletes a client and every token issued to it.
    pub async fn delete_client(&self, id: &str) -> Result<(), AdminError> {
        if !self.store.delete_client(id).await? {
            return Err(AdminError::NotFound(format!("no client with id {id:?}")));
        }
        self.audit("client_deleted", id);
        Ok(())
    }

    /// Adds a user with an Argon2id hash of `password` and no claims.
    pub async fn add_user(&self, username: &str, password: Secret) -> Result<UserView, AdminError> {
        self.add_user_with_claims(username, password, &serde_json::Map::new())
            .await
    }

    /// Replaces a user's password.
    pub async fn set_password(&self, username: &str, password: Secret) -> Result<(), AdminError> {
        if password.expose().is_empty() {
            return Err(AdminError::Invalid("the password must not be empty".into()));
        }
        let Some(mut user) = self.store.get_user(username).await? else {
            return Err(AdminError::NotFound(format!("no user {username:?}")));
        };
        user.password_hash = hash(password).await?;
        self.store.put_user(&user).await?;
        // Whoever logged in with the old password is logged out.
        self.end_sessions_of(&user.id).await?;
        self.audit("user_password_changed", username);
        Ok(())
    }

    /// Ends every login session of a user ("log out everywhere"); returns how many there were.
    /// Tokens already issued stay valid until they expire or are revoked.
    pub async fn logout_user(&self, username: &str) -> Result<u64, AdminError> {
        let Some(user) = self.store.get_user(username).await? else {
            return Err(AdminError::NotFound(format!("no user {username:?}")));
        };
        let ended = self.end_sessions_of(&user.id).await?;
        self.audit("user_logged_out", username);
        Ok(ended)
    }

    /// Deletes a user, every token issued for them and their login sessions.
    pub async fn delete_user(&self, username: &str) -> Result<(), AdminError> {
        // The sessions end first, so that their clients are told.
        if let Some(user) = self.store.get_user(username).await? {
            self.end_sessions_of(&user.id).await?;
        }
        if !self.store.delete_user(username).await? {
            return Err(AdminError::NotFound(format!("no user {username:?}")));
        }
        self.audit("user_deleted", username);
        Ok(())
    }

    /// Every built-in user.
    pub async fn list_users(&self) -> Result<Vec<UserView>, AdminError> {
        Ok(self
            .store
            .list_users()
            .await?
            .iter()
            .map(UserView::from)
            .collect())
    }

    /// Revokes a token whoever it was issued to; a refresh token takes its family (every
    /// token of the grant). Returns how many tokens stopped working (0 for an unknown one).
    pub async fn revoke(&self, token: &Secret) -> Result<u64, AdminError> {
        let Some(record) = self.store.find_token(&token.digest()).await? else {
            return self.revoke_oauth1(token).await;
        };
        let revoked = match record.kind {
            TokenKind::Refresh => self.store.revoke_family(&record.family).await?,
            // An access token, or a kind a later core adds: that token alone.
            _ => u64::from(self.store.revoke_token(&record.digest).await?),
        };
        tracing::info!(
            target: "latchkey::audit",
            event = "token_revoked",
            actor = self.actor,
            client_ip = crate::audit::request_client_ip(),
            client_id = record.client_id.as_str(),
            kind = record.kind.as_str(),
            revoked,
        );
        Ok(revoked)
    }

    /// Revokes OAuth 1.0a token credentials (the `oauth_token` value); 0 if unknown.
    async fn revoke_oauth1(&self, token: &Secret) -> Result<u64, AdminError> {
        use latchkey_oauth1::store::OAuth1Store;
        let digest = token.digest();
        let Some(record) = self.store.find_access_token(&digest).await? else {
            return Ok(0);
        };
        let revoked = u64::from(!record.revoked && self.store.revoke_access_token(&digest).await?);
        tracing::info!(
            target: "latchkey::audit",
            event = "token_revoked",
            actor = self.actor,
            client_ip = crate::audit::request_client_ip(),
            client_id = record.client_id.as_str(),
            kind = "oauth1_access",
            revoked,
        );
        Ok(revoked)
    }

    /// The RFC 7662 description of a token, `{"active": false}` when it is not active.
    pub async fn introspect(&self, token: &Secret) -> Result<serde_json::Value, AdminError> {
        let now = SystemClock.now();
        Ok(match self.store.find_token(&token.digest()).await? {
            Some(record) if record.is_active(now) => {
                latchkey_core::endpoint::introspect::describe(&record, &self.issuer)
            }
            _ => serde_json::json!({ "active": false }),
        })
    }
}

/// Parses grant type names.
fn grant_types(names: &[String]) -> Result<BTreeSet<GrantType>, AdminError> {
    names
        .iter()
        .map(|g| {
            // `device_code` is short for the device grant's URN (RFC 8628 §3.4).
            let g = if g == "device_code" {
                latchkey_core::device::GRANT_TYPE
            } else {
                g
            };
            GrantType::parse(g)
                .ok_or_else(|| AdminError::Invalid(format!("unknown grant type {g:?}")))
        })
        .collect()
}

/// Parses a space-separated scope setting called `setting`.
fn scope_set(setting: &str, raw: &str) -> Result<ScopeSet, AdminError> {
    ScopeSet::parse(raw).map_err(|e| AdminError::Invalid(format!("{setting}: {e}")))
}

/// Parses a `token_endpoint_auth_method` name.
fn auth_method(name: &str) -> Result<AuthMethod, AdminError> {
    AuthMethod::parse(name).ok_or_else(|| {
        AdminError::Invalid(format!(
            "unknown token_endpoint_auth_method {name:?}: use client_secret_basic, client_secret_post, none, private_key_jwt, client_secret_jwt, tls_client_auth or self_signed_tls_client_auth"
        ))
    })
}

/// The names of the settings that differ between `before` and `after`, for the audit log.
fn changed_settings(before: &Client, after: &Client) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut note = |name, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    note("name", before.name != after.name);
    note("redirect_uris", before.redirect_uris != after.redirect_uris);
    note("grant_types", before.grant_types != after.grant_types);
    note("scope", before.scopes != after.scopes);
    note(
        "default_scope",
        before.default_scopes != after.default_scopes,
    );
    note(
        "access_token_ttl",
        before.access_token_ttl != after.access_token_ttl,
    );
    note(
        "refresh_token_ttl",
        before.refresh_token_ttl != after.refresh_token_ttl,
    );
    note(
        "token_endpoint_auth_method",
        before.token_endpoint_auth_method != after.token_endpoint_auth_method,
    );
    note("bind_tokens", before.bind_tokens != after.bind_tokens);
    note("introspect", before.introspect != after.introspect);
    note("metadata", before.metadata != after.metadata);
    note(
        "access_token_format",
        before.metadata.access_token_format() != after.metadata.access_token_format(),
    );
    changed
}

/// A `token_exchange` policy object, read strictly (unknown members are refused).
fn exchange_policy(
    value: &serde_json::Value,
) -> Result<latchkey_core::grant::token_exchange::ExchangePolicy, AdminError> {
    serde_json::from_value(value.clone())
        .map_err(|e| AdminError::Invalid(format!("token_exchange: {e}")))
}

/// The registered value of an `access_token_format`: `None` for `opaque` (the default, so
/// nothing is stored), `jwt` kept.
fn access_token_format(name: &str) -> Result<Option<String>, AdminError> {
    use latchkey_core::access_jwt::AccessTokenFormat;
    match AccessTokenFormat::parse(name) {
        Some(AccessTokenFormat::Opaque) => Ok(None),
        Some(format) => Ok(Some(format.as_str().to_owned())),
        None => Err(AdminError::Invalid(format!(
            "unknown access_token_format {name:?}: use opaque or jwt"
        ))),
    }
}

async fn hash(password: Secret) -> Result<String, AdminError> {
    tokio::task::spawn_blocking(move || password::hash(&password, &OsEntropy))
        .await
        .map_err(|e| AdminError::Invalid(format!("hashing failed: {e}")))?
        .map_err(|e| AdminError::Invalid(format!("hashing failed: {e}")))
}

/// The registered `tls_client_auth` subject rule as `name=value`, for the admin view.
fn tls_rule(meta: &latchkey_core::client::ClientMetadata) -> Option<String> {
    [
        (
            "tls_client_auth_subject_dn",
            &meta.tls_client_auth_subject_dn,
        ),
        ("tls_client_auth_san_dns", &meta.tls_client_auth_san_dns),
        ("tls_client_auth_san_uri", &meta.tls_client_auth_san_uri),
        ("tls_client_auth_san_ip", &meta.tls_client_auth_san_ip),
        ("tls_client_auth_san_email", &meta.tls_client_auth_san_email),
    ]
    .into_iter()
    .find_map(|(name, value)| value.as_ref().map(|v| format!("{name}={v}")))
}
