//! Registered clients (RFC 6749 §2) and client authentication (§2.3).
//!
//! Confidential clients hold a generated high-entropy secret, stored only as its SHA-256
//! digest and checked in constant time. Public clients hold none and authenticate with `none`.

pub use crate::client_metadata::ClientMetadata;
use crate::clock::UnixTime;
use crate::entropy::{Entropy, random_hex, random_token};
use crate::error::OAuthError;
use crate::http::HttpRequest;
use crate::params::Params;
use crate::scope::ScopeSet;
use crate::secret::{Digest, Secret};
use base64::Engine as _;
use std::collections::BTreeSet;

/// A client identifier as registered.
///
/// Shared, not copied: every token record, grant and audit event of a client holds the
/// same allocation, so cloning one on the token path costs a reference count.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(std::sync::Arc<str>);

impl ClientId {
    /// Accepts an identifier of 1 to 255 printable ASCII characters (RFC 6749 App. A.1: VSCHAR).
    pub fn parse(raw: &str) -> Result<Self, OAuthError> {
        Self::check(raw)?;
        Ok(Self(raw.into()))
    }

    /// The rule of [`ClientId::parse`], without making an identifier: for a request that
    /// only needs to know whether the id it names is well-formed.
    pub fn check(raw: &str) -> Result<(), OAuthError> {
        if raw.is_empty() || raw.len() > 255 || !raw.bytes().all(|b| (0x20..=0x7E).contains(&b)) {
            return Err(OAuthError::invalid_client("malformed client_id"));
        }
        Ok(())
    }

    /// The identifier.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether a client can keep a secret (RFC 6749 §2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientType {
    /// Holds a secret and authenticates with it.
    Confidential,
    /// Cannot keep a secret (browser and native apps); authenticates with `none`.
    Public,
}

/// The grant types a client may be allowed, named as in RFC 7591 §2.
///
/// The six grants the core implements are variants of their own; any other grant is an
/// [`GrantType::Extension`] named by its absolute URI (RFC 6749 §4.5), served by a handler the
/// embedder registers (see [`crate::grant::extension`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum GrantType {
    /// `authorization_code` (RFC 6749 §4.1).
    AuthorizationCode,
    /// `implicit` (RFC 6749 §4.2); off unless a client is allowed it (RFC 9700 §2.1.2).
    Implicit,
    /// `password`, the resource owner password credentials grant (RFC 6749 §4.3); off unless
    /// a client is allowed it (RFC 9700 §2.4).
    Password,
    /// `client_credentials` (RFC 6749 §4.4).
    ClientCredentials,
    /// `refresh_token` (RFC 6749 §6).
    RefreshToken,
    /// `urn:ietf:params:oauth:grant-type:device_code`, the device authorization grant
    /// (RFC 8628 §3.4), for devices without a browser or with limited input.
    DeviceCode,
    /// An extension grant (RFC 6749 §4.5), such as
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer`.
    Extension(ExtensionGrantType),
}

impl GrantType {
    /// Every grant type the core implements itself, in a stable order (extension grants are
    /// the embedder's and are not listed).
    pub const ALL: [GrantType; 6] = [
        Self::AuthorizationCode,
        Self::Implicit,
        Self::Password,
        Self::ClientCredentials,
        Self::RefreshToken,
        Self::DeviceCode,
    ];

    /// The name used on the wire and in settings: the RFC 6749 name, or an extension grant's
    /// URI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthorizationCode => "authorization_code",
            Self::Implicit => "implicit",
            Self::Password => "password",
            Self::ClientCredentials => "client_credentials",
            Self::RefreshToken => "refresh_token",
            Self::DeviceCode => crate::device::GRANT_TYPE,
            Self::Extension(uri) => uri.as_str(),
        }
    }

    /// Parses a grant type name: one of [`GrantType::ALL`], or an absolute URI that
    /// [`ExtensionGrantType::parse`] accepts.
    ///
    /// Stores and settings call this; the token endpoint never does with what a client sent
    /// (it looks the name up among the grants registered on the provider), so no request can
    /// make the process remember a new extension name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|g| g.as_str() == name)
            .or_else(|| ExtensionGrantType::parse(name).map(Self::Extension))
    }
}

impl std::fmt::Display for GrantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name of an extension grant (RFC 6749 §4.5): an absolute URI of at most
/// [`ExtensionGrantType::MAX_LEN`] bytes.
///
/// It is a two-byte `Copy` handle, so [`GrantType`] stays small in every token record: each
/// distinct name is kept once for the life of the process, and two values with the same name
/// are equal. The names come from the provider's registrations, the settings and stored
/// records, never straight from a request, and at most [`ExtensionGrantType::MAX_NAMES`]
/// distinct ones are kept, so this memory is bounded.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExtensionGrantType(u16);

impl ExtensionGrantType {
    /// The longest name accepted: every store keeps a token's grant type in a column of 64
    /// bytes (MySQL's `VARCHAR(64)`). The URIs the IETF registered (`device_code`,
    /// `token-exchange`, `jwt-bearer`, `saml2-bearer`) are 41 to 47 bytes.
    pub const MAX_LEN: usize = 64;

    /// How many distinct extension names one process keeps; past that, new names do not
    /// parse.
    pub const MAX_NAMES: usize = 1024;

    /// Accepts an absolute URI (RFC 3986 §4.3: a scheme, `:`, then at least one character,
    /// no fragment) of visible ASCII characters and at most [`ExtensionGrantType::MAX_LEN`]
    /// bytes. `None` otherwise, or when [`ExtensionGrantType::MAX_NAMES`] other names are
    /// already kept.
    pub fn parse(uri: &str) -> Option<Self> {
        let (scheme, rest) = uri.split_once(':')?;
        let mut scheme_bytes = scheme.bytes();
        let scheme_ok = scheme_bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && scheme_bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_ok
            || rest.is_empty()
            || uri.len() > Self::MAX_LEN
            || !uri.bytes().all(|b| b.is_ascii_graphic() && b != b'#')
        {
            return None;
        }
        NAMES.intern(uri).map(Self)
    }

    /// The URI.
    pub fn as_str(self) -> &'static str {
        NAMES.name(self.0)
    }
}

/// Ordered by name, so a client's list of grants reads the same in every process.
impl Ord for ExtensionGrantType {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialOrd for ExtensionGrantType {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl std::fmt::Debug for ExtensionGrantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ExtensionGrantType")
            .field(&self.as_str())
            .finish()
    }
}

impl std::fmt::Display for ExtensionGrantType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The extension grant names this process keeps, by index. Reading a name is a lock-free
/// load; adding one takes a lock and happens once per distinct name.
struct ExtensionNames {
    slots: [std::sync::OnceLock<Box<str>>; ExtensionGrantType::MAX_NAMES],
    len: std::sync::atomic::AtomicUsize,
    adding: std::sync::Mutex<()>,
}

static NAMES: ExtensionNames = ExtensionNames {
    slots: [const { std::sync::OnceLock::new() }; ExtensionGrantType::MAX_NAMES],
    len: std::sync::atomic::AtomicUsize::new(0),
    adding: std::sync::Mutex::new(()),
};

impl ExtensionNames {
    /// The names kept so far.
    fn kept(&self) -> &[std::sync::OnceLock<Box<str>>] {
        let len = self.len.load(std::sync::atomic::Ordering::Acquire);
        self.slots.get(..len).unwrap_or(&[])
    }

    fn find(&self, name: &str) -> Option<u16> {
        let at = self
            .kept()
            .iter()
            .position(|slot| slot.get().is_some_and(|kept| **kept == *name))?;
        u16::try_from(at).ok()
    }

    /// The index of `name`, kept now if it was not; `None` once the table is full.
    fn intern(&self, name: &str) -> Option<u16> {
        if let Some(at) = self.find(name) {
            return Some(at);
        }
        // A poisoned lock only means another thread panicked while adding; the table is whole.
        let _adding = self
            .adding
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(at) = self.find(name) {
            return Some(at);
        }
        let len = self.len.load(std::sync::atomic::Ordering::Acquire);
        let at = u16::try_from(len).ok()?;
        self.slots.get(len)?.set(name.into()).ok()?;
        self.len
            .store(len + 1, std::sync::atomic::Ordering::Release);
        Some(at)
    }

    /// The name at `index`, which [`ExtensionNames::intern`] returned.
    fn name(&'static self, index: u16) -> &'static str {
        self.slots
            .get(usize::from(index))
            .and_then(std::sync::OnceLock::get)
            .map_or("", |name| name)
    }
}

/// How a client authenticates at the token, introspection and revocation endpoints: its
/// `token_endpoint_auth_method` (RFC 7591 §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AuthMethod {
    /// `client_secret_basic`: the secret in the `Authorization: Basic` header (RFC 6749 §2.3.1).
    ClientSecretBasic,
    /// `client_secret_post`: `client_id` and `client_secret` in the request body.
    ClientSecretPost,
    /// `none`: a public client names itself with `client_id` only.
    None,
    /// `private_key_jwt`: a JWT signed with one of the client's registered keys (RFC 7523
    /// §2.2, OpenID Connect Core §9); see [`crate::client_assertion`].
    PrivateKeyJwt,
    /// `client_secret_jwt`: a JWT with an HMAC keyed by the client secret (OpenID Connect
    /// Core §9); see [`crate::client_assertion`].
    ClientSecretJwt,
    /// `tls_client_auth`: a TLS client certificate from a trusted CA, with the registered
    /// subject DN or SAN (RFC 8705 §2.1); see [`crate::mtls`].
    TlsClientAuth,
    /// `self_signed_tls_client_auth`: a TLS client certificate registered in the client's
    /// `jwks` (RFC 8705 §2.2); see [`crate::mtls`].
    SelfSignedTlsClientAuth,
}

impl AuthMethod {
    /// Every method, in a stable order.
    pub const ALL: [AuthMethod; 7] = [
        Self::ClientSecretBasic,
        Self::ClientSecretPost,
        Self::None,
        Self::PrivateKeyJwt,
        Self::ClientSecretJwt,
        Self::TlsClientAuth,
        Self::SelfSignedTlsClientAuth,
    ];

    /// The name used in RFC 7591 metadata, on the wire and in settings.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
            Self::PrivateKeyJwt => "private_key_jwt",
            Self::ClientSecretJwt => "client_secret_jwt",
            Self::TlsClientAuth => "tls_client_auth",
            Self::SelfSignedTlsClientAuth => "self_signed_tls_client_auth",
        }
    }

    /// Parses a method name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }
}

impl std::fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest lifetime a client may set for its tokens, as for the server-wide lifetimes.
pub const MAX_CLIENT_TOKEN_TTL: u64 = 10 * 365 * 24 * 3600;

/// Why a client's registration breaks a rule of [`Client::validate`]; the message names the
/// setting and is meant for the operator who made it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRegistration(pub String);

/// A registered client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// The client identifier.
    pub id: ClientId,
    /// A human-readable name, shown on consent pages.
    pub name: String,
    /// SHA-256 of the client secret; `None` for public clients.
    pub secret_digest: Option<Digest>,
    /// Registered redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// The grants this client may use.
    pub grant_types: BTreeSet<GrantType>,
    /// The scopes this client may be granted; `None` means the server's available scopes.
    pub scopes: Option<ScopeSet>,
    /// Scopes granted when a request names none; `None` means the server's defaults.
    pub default_scopes: Option<ScopeSet>,
    /// Access-token lifetime for this client in seconds; `None` means the server's.
    pub access_token_ttl: Option<u64>,
    /// Refresh-token lifetime for this client in seconds; `None` means the server's.
    pub refresh_token_ttl: Option<u64>,
    /// Bind this client's tokens to the User-Agent and IP address they were issued to
    /// (basic_oauth): a token used from elsewhere is revoked.
    pub bind_tokens: bool,
    /// May introspect tokens issued to other clients (a resource server, RFC 7662 §4). Any
    /// confidential client may introspect its own tokens; without this flag it learns nothing
    /// about anyone else's.
    pub introspect: bool,
    /// The one way this client must authenticate (RFC 7591 §2); `None` means its type's
    /// default: `client_secret_basic` or `client_secret_post` for a confidential client,
    /// `none` for a public one. Checked by [`Credentials::verify`].
    pub token_endpoint_auth_method: Option<AuthMethod>,
    /// When the client was registered.
    pub created_at: UnixTime,
    /// Everything else registered for the client (keys, OpenID Connect and logout settings),
    /// stored as one object.
    pub metadata: ClientMetadata,
}

impl Client {
    /// Confidential when it has a secret or authenticates with its own key pair
    /// (`private_key_jwt`, or a TLS client certificate), public otherwise.
    pub fn client_type(&self) -> ClientType {
        if self.secret_digest.is_some()
            || matches!(
                self.token_endpoint_auth_method,
                Some(
                    AuthMethod::PrivateKeyJwt
                        | AuthMethod::TlsClientAuth
                        | AuthMethod::SelfSignedTlsClientAuth
                )
            )
        {
            ClientType::Confidential
        } else {
            ClientType::Public
        }
    }

    /// Whether the client may use `grant`.
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// Whether the client may authenticate with `method`: its registered method if it has
    /// one, otherwise what its type allows (a secret in the header or the body for a
    /// confidential client, `none` for a public one). The JWT methods need keys or a sealed
    /// secret that only their registration provides, so they are never a default.
    pub fn accepts(&self, method: AuthMethod) -> bool {
        match (self.token_endpoint_auth_method, self.client_type()) {
            (Some(registered), _) => registered == method,
            (None, ClientType::Confidential) => matches!(
                method,
                AuthMethod::ClientSecretBasic | AuthMethod::ClientSecretPost
            ),
            (None, ClientType::Public) => method == AuthMethod::None,
        }
    }

    /// The rules every registration obeys, checked when a client is created and again after
    /// every update, so both go through one path: a name of 1 to 255 bytes; redirect URIs
    /// that [`crate::redirect::is_registrable`] accepts (matched exactly later); no
    /// `client_credentials` or introspection for a public client; an authentication method
    /// that fits the client's type; token lifetimes from 1 second to ten years.
    pub fn validate(&self) -> Result<(), InvalidRegistration> {
        let invalid = |m: String| Err(InvalidRegistration(m));
        if self.name.trim().is_empty() || self.name.len() > 255 {
            return invalid("name must be 1 to 255 bytes".into());
        }
        for uri in &self.redirect_uris {
            if !crate::redirect::is_registrable(uri) {
                return invalid(format!(
                    "redirect URI {uri:?} must be absolute, without a fragment, and not javascript:/data:"
                ));
            }
        }
        let public = self.client_type() == ClientType::Public;
        if public && self.allows(GrantType::ClientCredentials) {
            return invalid("public clients cannot use client_credentials (RFC 6749 §4.4)".into());
        }
        if public && self.introspect {
            return invalid(
                "public clients cannot introspect: they do not authenticate (RFC 7662 §2.1)".into(),
            );
        }
        match (self.token_endpoint_auth_method, public) {
            (Some(AuthMethod::None), false) => {
                return invalid(
                    "token_endpoint_auth_method none is for public clients: a confidential client authenticates with its secret".into(),
                );
            }
            (
                Some(
                    m @ (AuthMethod::ClientSecretBasic
                    | AuthMethod::ClientSecretPost
                    | AuthMethod::ClientSecretJwt),
                ),
                true,
            ) => {
                return invalid(format!(
                    "token_endpoint_auth_method {m} needs a secret: public clients use none"
                ));
            }
            _ => {}
        }
        match self.token_endpoint_auth_method {
            // RFC 7523 §2.2 / OpenID Connect Core §9: the client proves itself with a key
            // registered beforehand, inline (`jwks`) or at a `jwks_uri`.
            Some(AuthMethod::PrivateKeyJwt) => match &self.metadata.jwks {
                Some(jwks) => {
                    if let Err(e) = crate::client_assertion::parse_jwks(jwks) {
                        return invalid(e);
                    }
                }
                None if self.metadata.jwks_uri.is_none() => {
                    return invalid(
                        "token_endpoint_auth_method private_key_jwt needs jwks or jwks_uri".into(),
                    );
                }
                None => {}
            },
            // The HMAC needs the secret itself: it is kept sealed (see
            // `client_assertion::seal_secret`).
            Some(AuthMethod::ClientSecretJwt) if self.metadata.sealed_secret.is_none() => {
                return invalid(
                    "token_endpoint_auth_method client_secret_jwt needs the sealed secret".into(),
                );
            }
            _ => {}
        }
        for (name, ttl) in [
            ("access_token_ttl", self.access_token_ttl),
            ("refresh_token_ttl", self.refresh_token_ttl),
        ] {
            if ttl.is_some_and(|t| !(1..=MAX_CLIENT_TOKEN_TTL).contains(&t)) {
                return invalid(format!(
                    "{name} must be 1 to {MAX_CLIENT_TOKEN_TTL} seconds"
                ));
            }
        }
        // A JWT access token is checked by resource servers without the store, where the
        // User-Agent and address binding lives: a bound token must stay opaque.
        if self.bind_tokens
            && self.metadata.access_token_format() == crate::access_jwt::AccessTokenFormat::Jwt
        {
            return invalid(
                "bound tokens must be opaque: access_token_format jwt and bind_tokens exclude each other"
                    .into(),
            );
        }
        self.metadata.validate().map_err(InvalidRegistration)?;
        crate::mtls::check_registration(self).map_err(InvalidRegistration)?;
        crate::oidc::subject::check_registration(self).map_err(InvalidRegistration)
    }

    /// Rotation: gives a confidential client a new random secret and returns it (to be shown
    /// once); only its digest is kept, so the old secret stops working when the client is
    /// stored again. `None` for a public client, which has no secret to rotate.
    pub fn rotate_secret(&mut self, entropy: &dyn Entropy) -> Option<Secret> {
        self.secret_digest?;
        let secret = new_secret(entropy);
        self.secret_digest = Some(secret.digest());
        Some(secret)
    }
}

/// A new client secret: 256 bits from `entropy`, base64url.
fn new_secret(entropy: &dyn Entropy) -> Secret {
    Secret::new(random_token(entropy, 32))
}

/// A builder for new clients, which generates the identifier and secret.
#[derive(Clone, Debug)]
pub struct NewClient {
    name: String,
    client_type: ClientType,
    id: Option<String>,
    redirect_uris: Vec<String>,
    grant_types: Option<BTreeSet<GrantType>>,
    scopes: Option<ScopeSet>,
    default_scopes: Option<ScopeSet>,
    access_token_ttl: Option<u64>,
    refresh_token_ttl: Option<u64>,
    token_endpoint_auth_method: Option<AuthMethod>,
    bind_tokens: bool,
    introspect: bool,
    metadata: ClientMetadata,
}

impl NewClient {
    /// A confidential client; by default allowed `client_credentials`, `authorization_code`
    /// and `refresh_token`.
    pub fn confidential(name: impl Into<String>) -> Self {
        Self::with_type(name, ClientType::Confidential)
    }

    /// A public client; by default allowed `authorization_code` and `refresh_token`.
    pub fn public(name: impl Into<String>) -> Self {
        Self::with_type(name, ClientType::Public)
    }

    fn with_type(name: impl Into<String>, client_type: ClientType) -> Self {
        Self {
            name: name.into(),
            client_type,
            id: None,
            redirect_uris: Vec::new(),
            grant_types: None,
            scopes: None,
            default_scopes: None,
            access_token_ttl: None,
            refresh_token_ttl: None,
            token_endpoint_auth_method: None,
            bind_tokens: false,
            introspect: false,
            metadata: ClientMetadata::default(),
        }
    }

    /// The lifetime of this client's access tokens in seconds, instead of the server's.
    pub fn access_token_ttl(mut self, secs: u64) -> Self {
        self.access_token_ttl = Some(secs);
        self
    }

    /// The lifetime of this client's refresh tokens in seconds, instead of the server's.
    pub fn refresh_token_ttl(mut self, secs: u64) -> Self {
        self.refresh_token_ttl = Some(secs);
        self
    }

    /// The one authentication method the client must use (RFC 7591 §2), instead of any its
    /// type allows.
    pub fn token_endpoint_auth_method(mut self, method: AuthMethod) -> Self {
        self.token_endpoint_auth_method = Some(method);
        self
    }

    /// Lets the client introspect tokens issued to other clients (for resource servers).
    pub fn introspect(mut self, allowed: bool) -> Self {
        self.introspect = allowed;
        self
    }

    /// Binds the client's tokens to the User-Agent and IP address they were issued to.
    pub fn bind_tokens(mut self, bind: bool) -> Self {
        self.bind_tokens = bind;
        self
    }

    /// Registers the client's other metadata (keys, OpenID Connect and logout settings).
    pub fn metadata(mut self, metadata: ClientMetadata) -> Self {
        self.metadata = metadata;
        self
    }

    /// Uses a chosen identifier instead of a generated one.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The grants the client may use.
    pub fn grant_types(mut self, grants: impl IntoIterator<Item = GrantType>) -> Self {
        self.grant_types = Some(grants.into_iter().collect());
        self
    }

    /// The redirect URIs the client registers.
    pub fn redirect_uris<S: Into<String>>(mut self, uris: impl IntoIterator<Item = S>) -> Self {
        self.redirect_uris = uris.into_iter().map(Into::into).collect();
        self
    }

    /// The scopes the client may be granted.
    pub fn scopes(mut self, scopes: ScopeSet) -> Self {
        self.scopes = Some(scopes);
        self
    }

    /// The scopes granted when a request names none.
    pub fn default_scopes(mut self, scopes: ScopeSet) -> Self {
        self.default_scopes = Some(scopes);
        self
    }

    /// Creates the client. The secret (for confidential clients) is returned once and never
    /// stored: only its digest is in the [`Client`].
    pub fn build(self, entropy: &dyn Entropy, now: UnixTime) -> (Client, Option<Secret>) {
        let secret = match (self.client_type, self.token_endpoint_auth_method) {
            // A key pair authenticates the client: a secret would be one more thing to leak.
            (
                _,
                Some(
                    AuthMethod::PrivateKeyJwt
                    | AuthMethod::TlsClientAuth
                    | AuthMethod::SelfSignedTlsClientAuth,
                ),
            )
            | (ClientType::Public, _) => None,
            // 512 bits, so HS512 has a key as long as its hash (RFC 7518 §3.2).
            (ClientType::Confidential, Some(AuthMethod::ClientSecretJwt)) => {
                Some(Secret::new(random_token(entropy, 64)))
            }
            (ClientType::Confidential, _) => Some(new_secret(entropy)),
        };
        let grant_types = self.grant_types.unwrap_or_else(|| match self.client_type {
            ClientType::Confidential => [
                GrantType::ClientCredentials,
                GrantType::AuthorizationCode,
                GrantType::RefreshToken,
            ]
            .into(),
            ClientType::Public => [GrantType::AuthorizationCode, GrantType::RefreshToken].into(),
        });
        let client = Client {
            id: ClientId(self.id.unwrap_or_else(|| random_hex(entropy, 16)).into()),
            name: self.name,
            secret_digest: secret.as_ref().map(Secret::digest),
            redirect_uris: self.redirect_uris,
            grant_types,
            scopes: self.scopes,
            default_scopes: self.default_scopes,
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            bind_tokens: self.bind_tokens,
            introspect: self.introspect,
            token_endpoint_auth_method: self.token_endpoint_auth_method,
            created_at: now,
            metadata: self.metadata,
        };
        (client, secret)
    }
}

/// The credentials a request presented, before they are checked against a client.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// `client_secret_basic`: the `Authorization: Basic` header (RFC 6749 §2.3.1).
    Basic {
        /// The form-decoded client identifier.
        id: String,
        /// The form-decoded secret.
        secret: Secret,
    },
    /// `client_secret_post`: `client_id` and `client_secret` in the body.
    Post {
        /// The client identifier.
        id: String,
        /// The secret.
        secret: Secret,
    },
    /// `none`: a public client names itself with `client_id` only.
    None {
        /// The client identifier.
        id: String,
    },
    /// `private_key_jwt` or `client_secret_jwt`: `client_assertion_type` and
    /// `client_assertion` in the body (RFC 7521 §4.2, RFC 7523 §2.2), checked by
    /// [`crate::client_assertion::verify`].
    Assertion {
        /// The client identifier: the assertion's `sub`.
        id: String,
        /// The method its `alg` implies.
        method: AuthMethod,
        /// The JWT, as a bearer credential never logged.
        assertion: Secret,
    },
}

impl Credentials {
    /// The authentication method these credentials use.
    pub fn method(&self) -> AuthMethod {
        match self {
            Self::Basic { .. } => AuthMethod::ClientSecretBasic,
            Self::Post { .. } => AuthMethod::ClientSecretPost,
            Self::None { .. } => AuthMethod::None,
            Self::Assertion { method, .. } => *method,
        }
    }

    /// The identifier the client claims.
    pub fn client_id(&self) -> &str {
        match self {
            Self::Basic { id, .. }
            | Self::Post { id, .. }
            | Self::None { id }
            | Self::Assertion { id, .. } => id,
        }
    }

    /// Reads the credentials of a request. `Ok(None)` when it presents none at all.
    ///
    /// RFC 6749 §2.3: "The client MUST NOT use more than one authentication method in each
    /// request": a Basic header together with `client_secret` in the body is refused. The
    /// client id must be a well-formed [`ClientId`] (1 to 255 printable ASCII characters), or
    /// the request is refused with `invalid_client` before the id is counted, looked up or
    /// logged.
    pub fn from_request(req: &HttpRequest, params: &Params) -> Result<Option<Self>, OAuthError> {
        let credentials = Self::read(req, params)?;
        if let Some(c) = &credentials {
            ClientId::check(c.client_id())?;
        }
        Ok(credentials)
    }

    fn read(req: &HttpRequest, params: &Params) -> Result<Option<Self>, OAuthError> {
        if req.header_count("authorization") > 1 {
            return Err(OAuthError::invalid_request("repeated Authorization header"));
        }
        if params.contains("client_assertion") || params.contains("client_assertion_type") {
            return Self::read_assertion(req, params).map(Some);
        }
        if let Some(header) = req.header("authorization") {
            let (id, secret) = decode_basic(header)?;
            if params.contains("client_secret") {
                return Err(OAuthError::invalid_request(
                    "more than one client authentication method used",
                ));
            }
            if params.get("client_id").is_some_and(|body_id| body_id != id) {
                return Err(OAuthError::invalid_request(
                    "client_id in the body differs from the Authorization header",
                ));
            }
            return Ok(Some(Self::Basic { id, secret }));
        }
        match (params.get("client_id"), params.get("client_secret")) {
            (Some(id), Some(secret)) => Ok(Some(Self::Post {
                id: id.to_owned(),
                secret: Secret::new(secret),
            })),
            (Some(id), None) => Ok(Some(Self::None { id: id.to_owned() })),
            (None, Some(_)) => Err(OAuthError::invalid_request(
                "client_secret sent without client_id",
            )),
            (None, None) => Ok(None),
        }
    }

    /// RFC 7521 §4.2 / RFC 7523 §2.2: `client_assertion_type` must be the JWT type and
    /// `client_assertion` one JWT; `client_id` is optional and, when sent, must be the
    /// assertion's subject. No other method may be used at the same time (RFC 6749 §2.3).
    fn read_assertion(req: &HttpRequest, params: &Params) -> Result<Self, OAuthError> {
        use crate::client_assertion::{ASSERTION_TYPE, peek};
        if req.header("authorization").is_some() || params.contains("client_secret") {
            return Err(OAuthError::invalid_request(
                "more than one client authentication method used",
            ));
        }
        match params.get("client_assertion_type") {
            Some(ASSERTION_TYPE) => {}
            Some(_) => {
                return Err(OAuthError::invalid_client(
                    "unsupported client_assertion_type",
                ));
            }
            None => {
                return Err(OAuthError::invalid_request(
                    "client_assertion without client_assertion_type",
                ));
            }
        }
        let Some(assertion) = params.get("client_assertion") else {
            return Err(OAuthError::invalid_request(
                "client_assertion_type without client_assertion",
            ));
        };
        let peeked = peek(assertion)?;
        if params
            .get("client_id")
            .is_some_and(|id| id != peeked.subject)
        {
            return Err(OAuthError::invalid_client(
                "client_id differs from the client assertion's subject",
            ));
        }
        Ok(Self::Assertion {
            id: peeked.subject,
            method: peeked.method,
            assertion: Secret::new(assertion),
        })
    }

    /// The method rule, which every endpoint that authenticates a client applies first: the
    /// method must be one the client accepts ([`Client::accepts`]: its registered
    /// `token_endpoint_auth_method`, or what its type allows). Refused with the same
    /// `invalid_client` (401 and a `WWW-Authenticate: Basic` challenge) as a wrong secret.
    pub fn verify_method(&self, client: &Client) -> Result<(), OAuthError> {
        if client.accepts(self.method()) {
            Ok(())
        } else {
            Err(OAuthError::invalid_client(
                "client authentication method not allowed for this client",
            ))
        }
    }

    /// Checks these credentials against the registered `client`: first the method rule
    /// ([`Credentials::verify_method`]), then the secret must match. An assertion is refused
    /// here: its checks need a clock, keys and the replay cache, and run in
    /// [`crate::endpoint::token::authenticate_client`], the one path every endpoint uses.
    pub fn verify(&self, client: &Client) -> Result<(), OAuthError> {
        self.verify_method(client)?;
        // Without a registered method, the client's type decides (what `accepts` states).
        match (self, &client.secret_digest) {
            (Self::Basic { secret, .. } | Self::Post { secret, .. }, Some(digest)) => {
                if digest.matches(secret) {
                    Ok(())
                } else {
                    Err(OAuthError::invalid_client("client authentication failed"))
                }
            }
            (Self::None { .. }, None) => Ok(()),
            // A public client has no secret to check: presenting one is a misconfiguration
            // we refuse rather than ignore.
            (Self::Basic { .. } | Self::Post { .. }, None) => {
                Err(OAuthError::invalid_client("client authentication failed"))
            }
            (Self::None { .. }, Some(_)) => {
                Err(OAuthError::invalid_client("client authentication required"))
            }
            (Self::Assertion { .. }, _) => Err(OAuthError::invalid_client(
                "client assertion must be verified with its keys",
            )),
        }
    }
}

/// The longest `Authorization: Basic` header read.
const MAX_BASIC_LEN: usize = 8 * 1024;

/// Decodes `Authorization: Basic`, form-decoding id and secret as RFC 6749 §2.3.1 requires
/// ("encoded using the application/x-www-form-urlencoded encoding algorithm").
fn decode_basic(header: &str) -> Result<(String, Secret), OAuthError> {
    let bad = || OAuthError::invalid_client("malformed Basic authorization header");
    // A client id of at most 255 characters and a secret of at most 1 KiB, form-encoded
    // (3 bytes a character at worst) and base64-encoded, fit in this.
    if header.len() > MAX_BASIC_LEN {
        return Err(bad());
    }
    let (scheme, value) = header.trim().split_once(' ').ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_client(
            "unsupported authorization scheme at this endpoint",
        ));
    }
    // Decoded into one buffer that becomes the secret's own storage: the id is copied out
    // and the buffer cut down to the secret, so a request pays one allocation for both
    // unless a part is form-encoded.
    let mut raw = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .map_err(|_| bad())?;
    let colon = raw.iter().position(|&b| b == b':').ok_or_else(bad)?;
    let id = form_decode(raw.get(..colon).ok_or_else(bad)?).ok_or_else(bad)?;
    if id.is_empty() {
        return Err(bad());
    }
    raw.drain(..=colon);
    let secret = if raw.iter().any(|&b| b == b'%' || b == b'+') {
        form_decode(&raw).ok_or_else(bad)?
    } else {
        String::from_utf8(raw).map_err(|_| bad())?
    };
    Ok((id, Secret::new(secret)))
}

/// Form-decodes one part of a Basic credential (RFC 6749 §2.3.1): `+` is a space and `%XX`
/// a byte; the result must be UTF-8.
fn form_decode(raw: &[u8]) -> Option<String> {
    if !raw.iter().any(|&b| b == b'%' || b == b'+') {
        return std::str::from_utf8(raw).ok().map(str::to_owned);
    }
    let spaced: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&spaced)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;
    use crate::error::ErrorCode;

    fn basic(id: &str, secret: &str) -> String {
        let raw = format!("{id}:{secret}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }

    fn creds(req: HttpRequest) -> Result<Option<Credentials>, OAuthError> {
        let params = Params::parse(&req.body)?;
        Credentials::from_request(&req, &params)
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let req = HttpRequest::post_form("/token", "grant_type=x")
            .with_header("authorization", basic("my%20app", "p%3Ass+word"));
        let Ok(Some(Credentials::Basic { id, secret })) = creds(req) else {
            panic!("expected Basic credentials");
        };
        assert_eq!(id, "my app");
        assert_eq!(secret.expose(), "p:ss word");
        // `%2B` is a plus sign, a `+` a space; a plain pair is taken as it is.
        for (raw_id, raw_secret, want_id, want_secret) in [
            ("a%2Bb", "s+%2B", "a+b", "s +"),
            ("plain", "s3cr3t:with:colons", "plain", "s3cr3t:with:colons"),
        ] {
            let req = HttpRequest::post_form("/token", "grant_type=x")
                .with_header("authorization", basic(raw_id, raw_secret));
            let Ok(Some(Credentials::Basic { id, secret })) = creds(req) else {
                panic!("expected Basic credentials");
            };
            assert_eq!((id.as_str(), secret.expose()), (want_id, want_secret));
        }
    }

    #[test]
    fn two_methods_at_once_are_refused() {
        let req = HttpRequest::post_form("/token", "client_secret=x")
            .with_header("authorization", basic("a", "b"));
        assert_eq!(
            creds(req).expect_err("two methods").code(),
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn malformed_basic_header_is_invalid_client() {
        let encoded = |raw: &[u8]| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            )
        };
        let (no_colon, not_utf8) = (encoded(b"no-colon"), encoded(b"id:\xff"));
        for header in [
            "Basic !!!",
            "Basic",
            "Bearer abc",
            &basic("", "x"),
            &no_colon,
            &basic("id", "%FF"),
            &not_utf8,
        ] {
            let req = HttpRequest::post_form("/token", "").with_header("authorization", header);
            assert_eq!(
                creds(req).expect_err(header).code(),
                ErrorCode::InvalidClient
            );
        }
    }

    #[test]
    fn secret_check_distinguishes_client_types() {
        let e = SeededEntropy::new(1);
        let (conf, secret) = NewClient::confidential("c").build(&e, UnixTime(0));
        let secret = secret.expect("confidential clients get a secret");
        let (public, none) = NewClient::public("p").build(&e, UnixTime(0));
        assert!(none.is_none());
        let good = Credentials::Post {
            id: conf.id.to_string(),
            secret: secret.clone(),
        };
        assert!(good.verify(&conf).is_ok());
        let wrong = Credentials::Post {
            id: conf.id.to_string(),
            secret: Secret::new("nope"),
        };
        assert!(wrong.verify(&conf).is_err());
        assert!(
            Credentials::None {
                id: conf.id.to_string()
            }
            .verify(&conf)
            .is_err()
        );
        assert!(
            Credentials::None {
                id: public.id.to_string()
            }
            .verify(&public)
            .is_ok()
        );
        assert!(good.verify(&public).is_err());
    }

    #[test]
    fn extension_grant_names_are_short_absolute_uris() {
        for good in [
            "urn:ietf:params:oauth:grant-type:device_code",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "https://example.com/grants/magic",
            "x:y",
        ] {
            let parsed = GrantType::parse(good).expect(good);
            assert_eq!(parsed.as_str(), good);
            assert_eq!(
                parsed,
                GrantType::parse(good).expect(good),
                "one name, one value"
            );
        }
        let too_long = format!("urn:{}", "a".repeat(ExtensionGrantType::MAX_LEN));
        for bad in [
            "",
            "device_code",
            ":nothing",
            "urn:",
            "1urn:x",
            "urn:a b",
            "urn:a#frag",
            "urn:\u{e9}",
            "ur n:x",
            too_long.as_str(),
        ] {
            assert_eq!(GrantType::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            GrantType::parse("refresh_token"),
            Some(GrantType::RefreshToken)
        );
    }

    #[test]
    fn a_registered_auth_method_is_the_only_one_accepted() {
        let e = SeededEntropy::new(3);
        for registered in [AuthMethod::ClientSecretBasic, AuthMethod::ClientSecretPost] {
            let (client, secret) = NewClient::confidential("c")
                .token_endpoint_auth_method(registered)
                .build(&e, UnixTime(0));
            let secret = secret.expect("confidential");
            let id = client.id.to_string();
            let basic = Credentials::Basic {
                id: id.clone(),
                secret: secret.clone(),
            };
            let post = Credentials::Post { id, secret };
            for (creds, method) in [
                (&basic, AuthMethod::ClientSecretBasic),
                (&post, AuthMethod::ClientSecretPost),
            ] {
                let verdict = creds.verify(&client);
                if method == registered {
                    assert!(
                        verdict.is_ok(),
                        "{method} refused for a {registered} client"
                    );
                } else {
                    let err = verdict.expect_err("the other method is refused");
                    assert_eq!(err.code(), ErrorCode::InvalidClient);
                    assert_eq!(err.status(), 401);
                    assert!(
                        err.headers()
                            .iter()
                            .any(|(n, v)| n == "www-authenticate" && v.starts_with("Basic "))
                    );
                }
            }
        }
    }

    #[test]
    fn without_a_registered_method_the_client_type_decides() {
        let e = SeededEntropy::new(4);
        let (conf, _) = NewClient::confidential("c").build(&e, UnixTime(0));
        let (public, _) = NewClient::public("p").build(&e, UnixTime(0));
        assert!(conf.accepts(AuthMethod::ClientSecretBasic));
        assert!(conf.accepts(AuthMethod::ClientSecretPost));
        assert!(!conf.accepts(AuthMethod::None));
        assert!(public.accepts(AuthMethod::None));
        assert!(!public.accepts(AuthMethod::ClientSecretBasic));
        assert!(!public.accepts(AuthMethod::ClientSecretPost));
    }

    #[test]
    fn validation_refuses_what_a_registration_may_not_hold() {
        let e = SeededEntropy::new(5);
        let (good, _) = NewClient::confidential("c")
            .redirect_uris(["https://app.example/cb"])
            .access_token_ttl(60)
            .refresh_token_ttl(3600)
            .build(&e, UnixTime(0));
        assert_eq!(good.validate(), Ok(()));
        assert_eq!(good.access_token_ttl, Some(60));
        assert_eq!(good.refresh_token_ttl, Some(3600));
        type Breaks = fn(&mut Client);
        let broken: [(&str, Breaks); 8] = [
            ("name", |c| c.name = " ".into()),
            ("redirect URI", |c| {
                c.redirect_uris = vec!["https://app.example/cb#f".into()]
            }),
            ("access_token_ttl", |c| c.access_token_ttl = Some(0)),
            ("refresh_token_ttl", |c| {
                c.refresh_token_ttl = Some(MAX_CLIENT_TOKEN_TTL + 1)
            }),
            ("none is for public", |c| {
                c.token_endpoint_auth_method = Some(AuthMethod::None)
            }),
            ("client_credentials", |c| {
                c.secret_digest = None;
                c.grant_types = [GrantType::ClientCredentials].into();
            }),
            ("introspect", |c| {
                c.secret_digest = None;
                c.grant_types = [GrantType::AuthorizationCode].into();
                c.introspect = true;
            }),
            ("needs a secret", |c| {
                c.secret_digest = None;
                c.grant_types = [GrantType::AuthorizationCode].into();
                c.token_endpoint_auth_method = Some(AuthMethod::ClientSecretPost);
            }),
        ];
        for (needle, breaks) in broken {
            let mut client = good.clone();
            breaks(&mut client);
            let err = client.validate().expect_err(needle);
            assert!(err.0.contains(needle), "{needle}: {err}");
        }
    }

    #[test]
    fn auth_method_names_round_trip() {
        for m in AuthMethod::ALL {
            assert_eq!(AuthMethod::parse(m.as_str()), Some(m));
        }
        assert_eq!(
            AuthMethod::parse("tls_client_auth"),
            Some(AuthMethod::TlsClientAuth)
        );
        assert_eq!(AuthMethod::parse("attest_jwt_client_auth"), None);
    }
}
