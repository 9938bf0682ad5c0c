//! Settings: built-in defaults, then a TOML file, then `LATCHKEY_*` environment variables
//! (`LATCHKEY_SECTION__KEY` for nested keys), then command-line flags. Zero configuration
//! gives a working server on the embedded store in `./latchkey-data`.

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use latchkey_core::client::GrantType;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod resources;
pub mod token_exchange;

/// Everything the `latchkey` binary can be told.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on, e.g. `127.0.0.1:8080` (port 0 picks a free port).
    pub listen: String,
    /// Directory of the embedded store.
    pub data_dir: PathBuf,
    /// The issuer URL; derived from the listen address on loopback when unset.
    pub issuer: Option<String>,
    /// Which store to use.
    pub store: StoreSettings,
    /// Token lifetimes.
    pub tokens: TokenSettings,
    /// Scope policy.
    pub scopes: ScopeSettings,
    /// A page explaining errors, sent as `error_uri` in error responses.
    pub error_uri: Option<String>,
    /// Reverse proxies (addresses or networks such as `10.0.0.0/8`) whose
    /// `X-Forwarded-For`/`Forwarded` headers are believed; nobody else's are.
    pub trusted_proxies: Vec<String>,
    /// The header the trusted proxies set to name the client: `x-forwarded-for` (with
    /// `X-Forwarded-Proto`) or `forwarded` (RFC 7239). The other one is ignored, since a
    /// client can send it through the proxy.
    pub forwarded_header: String,
    /// Logging.
    pub log: LogSettings,
    /// PKCE policy.
    pub pkce: PkceSettings,
    /// Server-wide switches for the legacy grants.
    pub grants: GrantSettings,
    /// Login and consent pages.
    pub ui: UiSettings,
    /// Cross-origin access for browser apps served from other origins.
    pub cors: CorsSettings,
    /// HTTPS and the plain-HTTP rule.
    pub tls: TlsSettings,
    /// Request rates and password backoff.
    pub limits: LimitSettings,
    /// Seconds in-flight requests get to finish after SIGTERM/SIGINT before the process exits.
    pub shutdown_grace: u64,
    /// Collect Prometheus metrics, served at `/metrics` on the admin listener (never on the
    /// OAuth listener, which faces the internet).
    pub metrics: bool,
    /// The admin HTTP API.
    pub admin: AdminSettings,
    /// OAuth 1.0a.
    pub oauth1: OAuth1Settings,
    /// Connection caps and time limits of the HTTP listeners.
    pub http: HttpSettings,
    /// Lets `private_key_jwt` clients register a plain-`http` `jwks_uri` (tests, loopback);
    /// off by default: keys fetched without TLS could be swapped on the way.
    pub allow_http_jwks_uri: bool,
    /// The signing keys of ID tokens and JWT access tokens.
    pub keys: KeySettings,
    /// OpenID Connect.
    pub oidc: OidcSettings,
    /// Pushed authorization requests (RFC 9126).
    pub par: ParSettings,
    /// The device authorization grant (RFC 8628).
    pub device: DeviceSettings,
    /// Dynamic client registration (RFC 7591, RFC 7592).
    pub registration: crate::registration::RegistrationSettings,
    /// Clients named by the URL of their client ID metadata document.
    pub client_id_metadata: crate::client_documents::ClientDocumentSettings,
    /// Fetches of what clients publish (documents, `jwks_uri`, `sector_identifier_uri`).
    pub outbound: crate::outbound::OutboundSettings,
    /// The resources clients may name with `resource` (RFC 8707), `[[resources]]` tables.
    pub resources: Vec<resources::ResourceSettings>,
    /// Seconds the protected-resource metadata (RFC 9728) of the stored resources is served
    /// from memory before the store is read again (0: read on every request; at most 3600):
    /// a resource added or removed by another process is seen within this time.
    pub resource_metadata_ttl: u64,
    /// DPoP (RFC 9449): sender-constrained tokens.
    pub dpop: DpopSettings,
    /// Development only: lets the `jwks_uri` of `private_key_jwt` clients be fetched from
    /// loopback, private and link-local addresses; off by default (server-side request
    /// forgery: the URI is the client's).
    pub allow_private_jwks_uri: bool,
    /// Traces: export of the request spans over OTLP (`[tracing.otlp]`), off by default.
    pub tracing: crate::telemetry::TracingSettings,
    /// Signed request objects (JAR, RFC 9101).
    pub request_objects: RequestObjectSettings,
    /// Token exchange (RFC 8693): the external issuers whose tokens may be exchanged.
    pub token_exchange: token_exchange::TokenExchangeSettings,
}

/// Signed request objects (JAR, RFC 9101): the `request` parameter at `/authorize` and
/// `/par`, a JWT signed with a key of the client's registered `jwks`/`jwks_uri`.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RequestObjectSettings {
    /// Off, `request` is refused with `request_not_supported` and not advertised.
    pub enabled: bool,
    /// Refuse authorization requests that are not signed request objects, for every client
    /// (a client can be required alone with its `require_signed_request_object` metadata).
    pub required: bool,
    /// The signing algorithms accepted (`ES256`, `ES384`, `EdDSA`, `RS256`, `RS384`,
    /// `RS512`, `PS256`, `PS384`, `PS512`; never `none` or an HMAC).
    pub algs: Vec<String>,
    /// How far ahead a request object's `exp` may be, in seconds (60 to 86400).
    pub max_lifetime: u64,
}

impl Default for RequestObjectSettings {
    fn default() -> Self {
        let core = latchkey_core::jar::RequestObjectConfig::default();
        Self {
            enabled: core.enabled,
            required: core.required,
            algs: core.algs,
            max_lifetime: core.max_lifetime,
        }
    }
}

impl RequestObjectSettings {
    /// The core configuration these settings stand for.
    pub fn config(&self) -> latchkey_core::jar::RequestObjectConfig {
        latchkey_core::jar::RequestObjectConfig {
            enabled: self.enabled,
            required: self.required,
            algs: self.algs.clone(),
            max_lifetime: self.max_lifetime,
        }
    }
}

/// Pushed authorization requests (RFC 9126): `POST /par` is always served; these set how long
/// a `request_uri` lives and whether every client must push.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ParSettings {
    /// Seconds a `request_uri` stays usable at `/authorize` (`expires_in`, at most 600).
    pub ttl: u64,
    /// Refuse `/authorize` requests that were not pushed, for every client (a client can be
    /// required alone with its `require_pushed_authorization_requests` metadata).
    pub required: bool,
}

impl Default for ParSettings {
    fn default() -> Self {
        let core = latchkey_core::config::Config::default();
        Self {
            ttl: core.par_ttl,
            required: core.require_pushed_authorization_requests,
        }
    }
}

/// The device authorization grant (RFC 8628): devices get a code at `/device_authorization`,
/// users enter it at `/device`, devices poll `/token`. On by default; a client still needs
/// the grant (`latchkey client create --grant device_code`).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceSettings {
    /// Off, the endpoint, the page and the grant are refused and not advertised.
    pub enabled: bool,
    /// Seconds a device code and its user code stay valid (10 to 3600).
    pub lifetime: u64,
    /// Seconds a device waits between polls (1 to 60); too fast, it must wait 5 s more.
    pub interval: u64,
    /// Characters of a user code (6 to 16), from `BCDFGHJKLMNPQRSTVWXZ`, shown as `XXXX-XXXX`.
    pub user_code_length: usize,
    /// The page users enter codes on, if not the built-in `<issuer>/device`.
    pub verification_uri: Option<String>,
    /// Wrong user codes from one address per `wrong_code_window` before its lookups are
    /// refused (429) until the window ends (0: no limit per address).
    pub max_wrong_codes_per_ip: u64,
    /// Wrong user codes from all addresses together per `wrong_code_window` (0: no limit).
    pub max_wrong_codes: u64,
    /// How long wrong codes are counted, in seconds.
    pub wrong_code_window: u64,
}

impl Default for DeviceSettings {
    fn default() -> Self {
        let config = latchkey_core::config::DeviceConfig::default();
        let guesses = latchkey_core::limits::UserCodeGuesses::default();
        Self {
            enabled: config.enabled,
            lifetime: config.lifetime,
            interval: config.interval,
            user_code_length: config.user_code_length,
            verification_uri: None,
            max_wrong_codes_per_ip: guesses.per_ip.requests,
            max_wrong_codes: guesses.global.requests,
            wrong_code_window: guesses.per_ip.window,
        }
    }
}

/// DPoP (RFC 9449): on by default. A client that sends a `DPoP` proof to `/token` gets
/// tokens bound to its key (`token_type: DPoP`), usable only with proofs of that key.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DpopSettings {
    /// Off, `DPoP` headers are ignored and the metadata does not advertise DPoP.
    pub enabled: bool,
    /// The proof algorithms accepted (`ES256`, `ES384`, `EdDSA`, `RS256`, `RS384`, `RS512`,
    /// `PS256`, `PS384`, `PS512`), advertised as `dpop_signing_alg_values_supported`.
    pub algs: Vec<String>,
    /// How far a proof's `iat` may be from now, in seconds (1 to 600).
    pub proof_max_age: u64,
    /// Require a server nonce (`DPoP-Nonce`) in every proof.
    pub require_nonce: bool,
    /// How long one nonce window lasts, in seconds; a nonce works in its window and the next.
    pub nonce_lifetime: u64,
    /// The secret nonces are minted under, at least 16 bytes. Prefer
    /// `LATCHKEY_DPOP__NONCE_SECRET`; unset, it is derived from the key-encryption key, so it
    /// is the same on every node sharing that key.
    pub nonce_secret: Option<String>,
}

impl Default for DpopSettings {
    fn default() -> Self {
        let core = latchkey_core::dpop::DpopConfig::default();
        Self {
            enabled: core.enabled,
            algs: core.algs,
            proof_max_age: core.proof_max_age,
            require_nonce: core.require_nonce,
            nonce_lifetime: core.nonce_lifetime,
            nonce_secret: None,
        }
    }
}

/// OpenID Connect: on by default (`openid`, `profile`, `email`, `address`, `phone` and
/// `offline_access` become available scopes, ID tokens are issued for `openid`, `/userinfo`
/// and `/.well-known/openid-configuration` are served).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OidcSettings {
    /// Off, the server is a plain OAuth 2.0 server and `openid` an ordinary scope.
    pub enabled: bool,
    /// ID-token lifetime in seconds (at most a day).
    pub id_token_ttl: u64,
    /// The secret salt of pairwise subject identifiers, at least 16 bytes. Prefer
    /// `LATCHKEY_OIDC__PAIRWISE_SALT`; unset, it is derived from the key-encryption key
    /// (`[keys] kek` or `<data_dir>/kek`), so it is the same on every node sharing that key.
    /// Never change it: every pairwise subject would change with it.
    pub pairwise_salt: Option<String>,
    /// The authentication context classes (`acr`) logins achieve, advertised as
    /// `acr_values_supported`; the first is the one the built-in password login yields
    /// (default `urn:latchkey:acr:password`; e.g. `"1"` or an operator's URI). An essential
    /// `acr` none of them meets is refused with `unmet_authentication_requirements`.
    pub acr_values: Vec<String>,
    /// Development only: lets a client's `sector_identifier_uri` on a loopback host
    /// (`127.0.0.1`, `[::1]`, `localhost`) be fetched over plain `http`. Off by default:
    /// anywhere else, and always in production, it must be `https`.
    pub allow_http_sector_identifier_uri: bool,
}

impl Default for OidcSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            id_token_ttl: 3600,
            pairwise_salt: None,
            acr_values: vec![latchkey_core::endpoint::authorize::PASSWORD_ACR.to_owned()],
            allow_http_sector_identifier_uri: false,
        }
    }
}

/// The signing keys: which algorithms, how they rotate, and the key-encryption key that seals
/// their private halves in the store. Durations are in seconds.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct KeySettings {
    /// Algorithms to keep a signing key for (`ES256`, `RS256`, `EdDSA`); the first is the
    /// default.
    pub algorithms: Vec<latchkey_core::jose::SigningAlg>,
    /// How long a key signs before its successor takes over.
    pub rotation_period: u64,
    /// How long a new key is published in the JWKS before it signs (at least 600: twice the
    /// JWKS cache lifetime).
    pub publish_ahead: u64,
    /// How long a retired key stays published: at least the longest lifetime of anything it
    /// signed. The access-token lifetimes of `[tokens]` are added automatically; raise this
    /// for clients with longer lifetimes of their own.
    pub keep_retired: u64,
    /// The key-encryption key, 32 bytes in base64. Prefer `LATCHKEY_KEYS__KEK`; unset, the
    /// server reads `<data_dir>/kek`, creating it (mode 0600) on first start. Every node
    /// sharing a store needs the same one.
    pub kek: Option<String>,
}

impl Default for KeySettings {
    fn default() -> Self {
        let policy = latchkey_core::jose::rotation::RotationPolicy::default();
        Self {
            algorithms: policy.algs,
            rotation_period: policy.period,
            publish_ahead: policy.publish_ahead,
            keep_retired: policy.max_token_lifetime,
            kek: None,
        }
    }
}

/// OAuth 1.0a (RFC 5849) token credentials.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OAuth1Settings {
    /// Lifetime of OAuth 1.0a access tokens (token credentials), in seconds; 0 for tokens
    /// that last until revoked (not recommended).
    pub access_ttl: u64,
}

impl Default for OAuth1Settings {
    fn default() -> Self {
        Self {
            access_ttl: latchkey_oauth1::DEFAULT_ACCESS_TOKEN_TTL,
        }
    }
}

/// Connection caps and time limits, so that clients that send slowly (slowloris) or open many
/// connections cannot hold the server's descriptors. Durations are in seconds.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Time a new connection has to deliver its first request's headers, and an HTTP/1.1
    /// connection to deliver each next request's headers once the previous one is answered.
    pub header_timeout: u64,
    /// Time a connection may stay without a byte read or written before it is closed.
    pub idle_timeout: u64,
    /// Time a request body may take to arrive once its endpoint waits for it.
    pub body_timeout: u64,
    /// Connections open at once on the OAuth listener; 0 derives the cap from the open-file
    /// limit (three quarters of what is left after 64 descriptors). Further connections are
    /// closed as soon as they are accepted.
    pub max_connections: usize,
    /// Connections open at once from one client address (an IPv6 client counts by its /64);
    /// 0 turns this cap off. `trusted_proxies` are exempt.
    pub max_connections_per_ip: usize,
    /// HTTP/2: streams one connection may have open at once.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: the largest header list a request may send, in bytes.
    pub http2_max_header_list_size: u32,
    /// HTTP/2: seconds between keep-alive pings to detect dead peers; 0 (the default) sends
    /// none, and `idle_timeout` closes silent connections. Answered pings keep a connection
    /// open past `idle_timeout`.
    pub http2_keep_alive_interval: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            header_timeout: 10,
            idle_timeout: 60,
            body_timeout: 30,
            max_connections: 0,
            max_connections_per_ip: 64,
            http2_max_concurrent_streams: 100,
            http2_max_header_list_size: 16 * 1024,
            http2_keep_alive_interval: 0,
        }
    }
}

/// The admin HTTP API: clients, users, revocation and introspection, on a listener of its
/// own (off unless `listen` is set), for callers holding the admin token.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    /// Where the admin API listens, e.g. `127.0.0.1:8081`; unset: no admin API.
    pub listen: Option<String>,
    /// The bearer token admin calls must carry (at least 32 characters). Prefer
    /// `token_file` or `LATCHKEY_ADMIN__TOKEN` to writing it in the settings file.
    pub token: Option<String>,
    /// A file holding the admin token (surrounding whitespace ignored).
    pub token_file: Option<PathBuf>,
}

impl AdminSettings {
    /// The admin token, from `token` or `token_file`; the API refuses to start without one.
    pub fn load_token(&self) -> anyhow::Result<latchkey_core::secret::Secret> {
        let token = match (&self.token, &self.token_file) {
            (Some(t), None) => t.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("admin.token_file {}: {e}", path.display()))?
                .trim()
                .to_owned(),
            (Some(_), Some(_)) => anyhow::bail!("set admin.token or admin.token_file, not both"),
            (None, None) => anyhow::bail!(
                "admin.listen is set but no admin.token or admin.token_file: the admin API needs a token"
            ),
        };
        if token.len() < 32 {
            anyhow::bail!("the admin token must be at least 32 characters");
        }
        Ok(latchkey_core::secret::Secret::new(token))
    }
}

/// HTTPS. With `cert_file` and `key_file` the server speaks only HTTPS; without them it
/// speaks plain HTTP, and OAuth endpoints answer only loopback clients, requests a trusted
/// proxy forwarded from HTTPS, or anyone when `allow_insecure_http` is set.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of the leaf certificate.
    pub key_file: Option<PathBuf>,
    /// Seconds between checks of the files for a new certificate (0: only on SIGHUP).
    pub reload_interval: u64,
    /// Development only: answer OAuth requests over plain HTTP from any address
    /// (pyramid_oauth2_provider's `require_ssl = false`).
    pub allow_insecure_http: bool,
    /// Whether the server's TLS asks clients for a certificate (RFC 8705 mutual TLS): `off`
    /// (the default) or `optional` (asked for, never required, so browsers are served as
    /// before). Needs `cert_file`.
    pub client_certificates: ClientCertificates,
    /// PEM CA certificates that issue the certificates of `tls_client_auth` clients; without
    /// it only `self_signed_tls_client_auth` clients can authenticate by certificate.
    pub client_ca_file: Option<PathBuf>,
    /// Behind a TLS-terminating proxy: the header in which it forwards the client certificate
    /// as URL-encoded PEM (nginx: `proxy_set_header X-Client-Cert $ssl_client_escaped_cert;`).
    /// Believed only from `trusted_proxies`.
    pub client_cert_header: Option<String>,
}

/// Whether TLS handshakes ask for a client certificate.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientCertificates {
    /// Never asked for.
    #[default]
    Off,
    /// Asked for in every handshake, never required.
    Optional,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self {
            cert_file: None,
            key_file: None,
            reload_interval: 10,
            allow_insecure_http: false,
            client_certificates: ClientCertificates::Off,
            client_ca_file: None,
            client_cert_header: None,
        }
    }
}

impl TlsSettings {
    /// The client-certificate rules these settings describe (see [`crate::mtls`]).
    pub fn client_certs(
        &self,
        trusted_proxies: &[String],
    ) -> anyhow::Result<crate::mtls::ClientCerts> {
        let asked = self.client_certificates == ClientCertificates::Optional;
        if asked && self.cert_file.is_none() {
            anyhow::bail!(
                "tls.client_certificates = \"optional\" needs tls.cert_file and tls.key_file"
            );
        }
        if self.client_cert_header.is_some() && trusted_proxies.is_empty() {
            anyhow::bail!(
                "tls.client_cert_header is believed only from trusted_proxies: list them"
            );
        }
        crate::mtls::ClientCerts::new(
            asked,
            self.client_ca_file.as_deref(),
            self.client_cert_header.as_deref(),
        )
    }
}

/// Request rates on the token, revocation and introspection endpoints, and backoff on failed
/// password checks (password grant and login page). A limit of 0 turns it off.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Where counts are kept: `memory` (this process), or `redis://host:6379` so that every
    /// node shares them.
    pub store: String,
    /// Authenticated requests per client per `window`.
    pub per_client: u64,
    /// Requests per client address per `window`.
    pub per_ip: u64,
    /// The window of the two request rates, in seconds.
    pub window: u64,
    /// Failed client authentications per client id and address per `window`; past it that
    /// pair is refused (429) until the window ends. Counted apart from `per_client`, which
    /// counts authenticated requests only.
    pub client_auth_failures: u64,
    /// Failures per user name (from any address) before attempts must wait 2, 4, 8… seconds.
    pub login_slow_after: u64,
    /// The longest such wait, in seconds.
    pub login_max_delay: u64,
    /// Failures per user name from one address before that address's attempts for that user
    /// name are refused for the rest of the window (0 turns the backoff off).
    pub login_max_failures: u64,
    /// Failures from one address (any user names) before it is refused.
    pub login_max_failures_per_ip: u64,
    /// How long failures are remembered, in seconds.
    pub login_window: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        let backoff = latchkey_core::limits::Backoff::default();
        Self {
            store: "memory".into(),
            per_client: 6000,
            per_ip: 6000,
            window: 60,
            client_auth_failures: 10,
            login_slow_after: backoff.slow_after,
            login_max_delay: backoff.max_delay,
            login_max_failures: backoff.max_failures,
            login_max_failures_per_ip: backoff.max_failures_per_ip,
            login_window: backoff.window,
        }
    }
}

/// Cross-origin resource sharing, for single-page apps on other origins than this server
/// (their `fetch` calls to `/token` and `/revoke` need it).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct CorsSettings {
    /// Origins (`https://app.example.com`, scheme, host and port only) whose pages may call
    /// the token, revocation and metadata endpoints. Empty (the default): no CORS headers.
    /// In the environment: `LATCHKEY_CORS__ALLOWED_ORIGINS='[https://a.example, https://b.example]'`
    /// (a single origin may be given without brackets).
    #[serde(deserialize_with = "one_or_many")]
    pub allowed_origins: Vec<String>,
}

/// A list, or one string holding comma-separated items (as an environment variable is apt to).
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(list) => list,
        OneOrMany::One(text) => text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    })
}

/// PKCE policy (RFC 7636, RFC 9700 §2.1.1). Public clients always need S256.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PkceSettings {
    /// Require PKCE from confidential clients too.
    pub require_all: bool,
    /// Accept the `plain` method (not recommended).
    pub allow_plain: bool,
}

/// Server-wide switches for the grants RFC 9700 retires (§2.1.2 implicit, §2.4 password). Off,
/// a grant is refused even to clients allowed it and is not advertised in the metadata.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct GrantSettings {
    /// Offer the implicit grant (`response_type=token`) to clients allowed it.
    pub implicit: bool,
    /// Offer the resource owner password credentials grant to clients allowed it.
    pub password: bool,
    /// Offer token exchange (RFC 8693) to clients allowed
    /// `urn:ietf:params:oauth:grant-type:token-exchange` with a `token_exchange` policy.
    pub token_exchange: bool,
}

/// Login and consent pages.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct UiSettings {
    /// A directory whose `login.html`, `consent.html`, `error.html`, `logout.html`,
    /// `logged_out.html` or `base.html` replace the built-in templates.
    pub templates_dir: Option<PathBuf>,
    /// How long a login lasts, in seconds.
    pub session_ttl: u64,
    /// The file holding the 32-byte key that signs session cookies; created on first start.
    /// Default: `<data_dir>/session.key`. Several nodes must share one.
    pub session_key_file: Option<PathBuf>,
    /// Descriptions shown next to scopes on the consent page.
    pub scope_descriptions: std::collections::BTreeMap<String, String>,
    /// A directory of message catalogs, `<tag>.toml` (e.g. `de.toml`, `pt-BR.toml`), whose
    /// strings override the built-in ones or add a language; see the README's "Languages".
    pub locales_dir: Option<PathBuf>,
    /// The language of pages whose request matches none the server speaks (a shipped tag
    /// such as `en`, `de`, `fr`, `es`, `ja`, `zh-Hans`, or one added in `locales_dir`).
    pub default_locale: String,
}

impl Default for UiSettings {
    fn default() -> Self {
        Self {
            templates_dir: None,
            session_ttl: 12 * 3600,
            session_key_file: None,
            scope_descriptions: std::collections::BTreeMap::new(),
            locales_dir: None,
            default_locale: latchkey_ui::i18n::REFERENCE.to_owned(),
        }
    }
}

/// Store selection.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSettings {
    /// The durable store of clients, users and consent (and of tokens, unless `tokens_url`
    /// says otherwise): `sqlite:///path/to/file.db`, `postgres://…`, `mysql://…` (MariaDB too),
    /// or `memory:` (lost on exit). Unset: the embedded SQLite store at `<data_dir>/latchkey.db`.
    pub url: Option<String>,
    /// Where tokens live: a fast store for tokens and authorization codes
    /// (`redis://host:6379`, `memcache://host:11211`), the token log (`log:` for
    /// `<data_dir>/tokens`, `log:///path`), or `durable:` (in the durable store, with the
    /// rest). Unset: the token log with the embedded store (unless its database predates the
    /// log), the durable store otherwise.
    pub tokens_url: Option<String>,
    /// The key prefix in the fast store, so several deployments can share one server.
    pub key_prefix: String,
}

impl Default for StoreSettings {
    fn default() -> Self {
        Self {
            url: None,
            tokens_url: None,
            key_prefix: "latchkey".into(),
        }
    }
}

/// Token lifetimes, in seconds.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// Access-token lifetime.
    pub access_ttl: u64,
    /// Refresh-token lifetime; each rotation starts a new one, up to `refresh_max_lifetime`.
    pub refresh_ttl: u64,
    /// Absolute lifetime of a grant family: no rotated refresh token outlives the family's
    /// first issuance plus this.
    pub refresh_max_lifetime: u64,
    /// Authorization-code lifetime (at most 600).
    pub code_ttl: u64,
    /// Lifetimes for the tokens of one grant type (`[tokens.per_grant.password]`, or
    /// `[tokens.per_grant."urn:…"]` for an extension grant), over `access_ttl` and
    /// `refresh_ttl`; a client's own lifetimes win over these. An entry holds for every token
    /// of a family its grant started, rotations included, so `refresh_token` takes none.
    pub per_grant: BTreeMap<String, GrantTtlSettings>,
    /// The `aud` of JWT access tokens (RFC 9068; clients registered with
    /// `access_token_format = jwt`): the resource servers' identifier. Unset: the issuer.
    pub jwt_audience: Option<String>,
}

/// Token lifetimes of one grant type, in seconds; an unset one is the server-wide lifetime.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct GrantTtlSettings {
    /// Access-token lifetime.
    pub access_ttl: Option<u64>,
    /// Refresh-token lifetime (still ended by `refresh_max_lifetime`).
    pub refresh_ttl: Option<u64>,
}

impl TokenSettings {
    /// `per_grant` for the core's configuration; an unknown grant name is an error (the
    /// lifetimes themselves are checked when the provider is built).
    pub fn grant_lifetimes(
        &self,
    ) -> anyhow::Result<BTreeMap<GrantType, latchkey_core::config::GrantLifetimes>> {
        self.per_grant
            .iter()
            .map(|(name, ttl)| {
                let grant = GrantType::parse(name).ok_or_else(|| {
                    anyhow::anyhow!(
                        "tokens.per_grant: {name:?} is neither a grant type nor an absolute URI of at most 64 bytes"
                    )
                })?;
                let lifetimes = latchkey_core::config::GrantLifetimes {
                    access_token_ttl: ttl.access_ttl,
                    refresh_token_ttl: ttl.refresh_ttl,
                };
                Ok((grant, lifetimes))
            })
            .collect()
    }
}

impl Default for TokenSettings {
    fn default() -> Self {
        let core = latchkey_core::config::Config::default();
        Self {
            access_ttl: core.access_token_ttl,
            refresh_ttl: core.refresh_token_ttl,
            refresh_max_lifetime: core.refresh_token_max_lifetime,
            code_ttl: core.code_ttl,
            per_grant: BTreeMap::new(),
            jwt_audience: None,
        }
    }
}

/// Scope policy (python-oauth2's available/default sets).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ScopeSettings {
    /// Scopes any client may request unless it has its own list.
    pub available: Vec<String>,
    /// Scopes granted when a request names none.
    pub default: Vec<String>,
}

/// Log output.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `auto` (text on a terminal, JSON otherwise), `json` or `text`.
    pub format: LogFormat,
    /// A `RUST_LOG`-style filter; `RUST_LOG` itself wins when set.
    pub filter: String,
    /// One access line per request (target `latchkey::access`, level `info`): method, route
    /// pattern, status, duration, request id and client address; never the query string,
    /// a header or a credential. On by default; `LATCHKEY_LOG__ACCESS=false` turns it off.
    pub access: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Auto,
            filter: "info".into(),
            access: true,
        }
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Text on a terminal, JSON lines otherwise.
    Auto,
    /// JSON lines.
    Json,
    /// Human-readable text.
    Text,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("latchkey-data"),
            issuer: None,
            store: StoreSettings::default(),
            tokens: TokenSettings::default(),
            scopes: ScopeSettings::default(),
            error_uri: None,
            trusted_proxies: Vec::new(),
            forwarded_header: "x-forwarded-for".into(),
            log: LogSettings::default(),
            pkce: PkceSettings::default(),
            grants: GrantSettings::default(),
            ui: UiSettings::default(),
            cors: CorsSettings::default(),
            tls: TlsSettings::default(),
            limits: LimitSettings::default(),
            shutdown_grace: 10,
            metrics: true,
            admin: AdminSettings::default(),
            oauth1: OAuth1Settings::default(),
            http: HttpSettings::default(),
            allow_http_jwks_uri: false,
            keys: KeySettings::default(),
            oidc: OidcSettings::default(),
            par: ParSettings::default(),
            device: DeviceSettings::default(),
            registration: Default::default(),
            client_id_metadata: Default::default(),
            outbound: Default::default(),
            resources: Vec::new(),
            resource_metadata_ttl: 10,
            dpop: DpopSettings::default(),
            allow_private_jwks_uri: false,
            tracing: Default::default(),
            request_objects: RequestObjectSettings::default(),
            token_exchange: Default::default(),
        }
    }
}

/// Values given on the command line, which override every other source.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<String>,
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
}

impl Settings {
    /// Loads the settings. `config` is a TOML file that must exist; without it,
    /// `./latchkey.toml` is read if present.
    pub fn load(config: Option<&Path>, overrides: &Overrides) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        figment = match config {
            Some(path) => figment.merge(Toml::file_exact(path)),
            None => figment.merge(Toml::file("latchkey.toml")),
        };
        // Only variables that name a setting: others (LATCHKEY_TEST_* for the test suite, or
        // LATCHKEY_PORT=tcp://… that Kubernetes injects for a Service named `latchkey`) are
        // not meant for us; [`Settings::ignored_env`] lists them for a warning.
        let known = KnownKeys::new();
        figment = figment.merge(
            Env::prefixed("LATCHKEY_")
                .split("__")
                .filter(move |key| known.contains(key.as_str())),
        );
        if let Some(listen) = &overrides.listen {
            figment = figment.merge(Serialized::default("listen", listen));
        }
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(Serialized::default("data_dir", dir));
        }
        figment.extract().map_err(Box::new)
    }
}

impl Settings {
    /// The `LATCHKEY_*` environment variables [`Settings::load`] ignored because they name no
    /// setting (unknown keys in a settings file stay an error). `LATCHKEY_TEST_*` variables,
    /// which select the test suite's backends, are not listed.
    pub fn ignored_env() -> Vec<String> {
        let known = KnownKeys::new();
        let mut ignored: Vec<String> = std::env::vars_os()
            .filter_map(|(name, _)| name.into_string().ok())
            .filter(|name| {
                name.strip_prefix("LATCHKEY_").is_some_and(|key| {
                    let key = key.to_ascii_lowercase();
                    !key.starts_with("test_") && !known.contains(&key.replace("__", "."))
                })
            })
            .collect();
        ignored.sort();
        ignored
    }
}

/// The setting keys an environment variable may name: a top-level key, or a key of a
/// section (deeper levels, such as the scopes of `ui.scope_descriptions`, are free-form).
#[derive(Clone, Debug)]
struct KnownKeys(serde_json::Value);

impl KnownKeys {
    fn new() -> Self {
        Self(serde_json::to_value(Settings::default()).unwrap_or_default())
    }

    /// Whether the dotted `key` (`tokens.access_ttl`) names a setting.
    fn contains(&self, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        let mut parts = key.split('.');
        let Some(top) = parts.next().and_then(|k| self.0.get(k)) else {
            return false;
        };
        match (parts.next(), top) {
            (None, _) => true,
            (Some(field), serde_json::Value::Object(section)) => section.contains_key(field),
            (Some(_), _) => false,
        }
    }
}

const REDACTED: &str = "<redacted>";

/// `url` with the password of its user information replaced by `<redacted>`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let shown = if userinfo.contains(':') {
                format!("{user}:{REDACTED}")
            } else {
                user.to_owned()
            };
            format!("{scheme}://{shown}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// `text` with the password of every URL in it replaced by `<redacted>`. Start-up errors
/// quote the store and Redis URLs they could not use; this is applied to every error the
/// binary prints, so no message (ours or a library's) shows a password.
pub fn redact_urls_in(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let start = rest[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
            .map_or(0, |i| i + 1);
        let after = &rest[at + 3..];
        let authority = after
            .find(|c: char| c.is_whitespace() || "\"'`<>/?#\\".contains(c))
            .unwrap_or(after.len());
        let end = at + 3 + authority;
        out.push_str(&rest[..start]);
        out.push_str(&redact_url(&rest[start..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

impl Settings {
    /// These settings as TOML, with every secret (admin token, passwords in store URLs)
    /// replaced by `<redacted>`: what `latchkey config show` prints.
    pub fn redacted_toml(&self) -> anyhow::Result<String> {
        let mut shown = self.clone();
        shown.store.url = shown.store.url.as_deref().map(redact_url);
        shown.store.tokens_url = shown.store.tokens_url.as_deref().map(redact_url);
        shown.limits.store = redact_url(&shown.limits.store);
        if shown.admin.token.is_some() {
            shown.admin.token = Some(REDACTED.into());
        }
        if shown.keys.kek.is_some() {
            shown.keys.kek = Some(REDACTED.into());
        }
        if shown.oidc.pairwise_salt.is_some() {
            shown.oidc.pairwise_salt = Some(REDACTED.into());
        }
        if shown.dpop.nonce_secret.is_some() {
            shown.dpop.nonce_secret = Some(REDACTED.into());
        }
        Ok(toml::to_string(&shown)?)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's test jail returns its own large error type
mod tests {
    use super::*;

    #[test]
    fn file_then_env_then_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "latchkey.toml",
                "listen = \"127.0.0.1:9000\"\n[tokens]\naccess_ttl = 60\n[scopes]\navailable = [\"read\"]\n",
            )?;
            jail.set_env("LATCHKEY_TOKENS__REFRESH_TTL", "120");
            jail.set_env("LATCHKEY_TEST_POSTGRES", "postgres://ignored");
            let s = Settings::load(None, &Overrides::default()).expect("loads");
            assert_eq!(s.listen, "127.0.0.1:9000");
            assert_eq!(s.tokens.access_ttl, 60);
            assert_eq!(s.tokens.refresh_ttl, 120);
            assert_eq!(s.scopes.available, vec!["read".to_string()]);
            let flags = Overrides {
                listen: Some("127.0.0.1:0".into()),
                data_dir: Some("/tmp/x".into()),
            };
            let s = Settings::load(None, &flags).expect("loads");
            assert_eq!(s.listen, "127.0.0.1:0");
            assert_eq!(s.data_dir, PathBuf::from("/tmp/x"));
            Ok(())
        });
    }

    #[test]
    fn per_grant_lifetimes_from_file_and_env() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "latchkey.toml",
                "[tokens.per_grant.password]\naccess_ttl = 300\nrefresh_ttl = 86400\n\
                 [tokens.per_grant.\"urn:ietf:params:oauth:grant-type:device_code\"]\naccess_ttl = 600\n",
            )?;
            jail.set_env(
                "LATCHKEY_TOKENS__PER_GRANT__CLIENT_CREDENTIALS__ACCESS_TTL",
                "60",
            );
            let s = Settings::load(None, &Overrides::default()).expect("loads");
            let lifetimes = s.tokens.grant_lifetimes().expect("known grants");
            let ttl = |grant: &str| lifetimes[&GrantType::parse(grant).expect("a grant")];
            assert_eq!(ttl("password").access_token_ttl, Some(300));
            assert_eq!(ttl("password").refresh_token_ttl, Some(86400));
            assert_eq!(ttl("client_credentials").access_token_ttl, Some(60));
            assert_eq!(ttl("client_credentials").refresh_token_ttl, None);
            assert_eq!(
                ttl("urn:ietf:params:oauth:grant-type:device_code").access_token_ttl,
                Some(600)
            );
            assert_eq!(lifetimes.len(), 3);
            Ok(())
        });
        let mut tokens = TokenSettings::default();
        assert!(tokens.grant_lifetimes().expect("none").is_empty());
        tokens
            .per_grant
            .insert("pasword".into(), GrantTtlSettings::default());
        assert!(tokens.grant_lifetimes().is_err(), "a typo is an error");
    }

    #[test]
    fn cors_origins_from_file_and_env() {
        figment::Jail::expect_with(|jail| {
            assert!(
                Settings::load(None, &Overrides::default())
                    .expect("loads")
                    .cors
                    .allowed_origins
                    .is_empty()
            );
            jail.create_file(
                "latchkey.toml",
                "[cors]\nallowed_origins = [\"https://app.example\"]\n",
            )?;
            let s = Settings::load(None, &Overrides::default()).expect("loads");
            assert_eq!(s.cors.allowed_origins, vec!["https://app.example"]);
            jail.set_env(
                "LATCHKEY_CORS__ALLOWED_ORIGINS",
                "[http://127.0.0.1:5173, https://b.example]",
            );
            let s = Settings::load(None, &Overrides::default()).expect("loads");
            assert_eq!(
                s.cors.allowed_origins,
                vec!["http://127.0.0.1:5173", "https://b.example"]
            );
            jail.set_env("LATCHKEY_CORS__ALLOWED_ORIGINS", "https://c.example");
            let s = Settings::load(None, &Overrides::default()).expect("loads");
            assert_eq!(s.cors.allowed_origins, vec!["https://c.example"]);
            Ok(())
        });
    }

    #[test]
    fn issue_14_stray_latchkey_variables_are_ignored_and_named() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("LATCHKEY_PORT", "tcp://10.0.0.1:8080");
            jail.set_env("LATCHKEY_SERVICE_HOST", "10.0.0.1");
            jail.set_env("LATCHKEY_TOKENS__ACCESS_TLL", "60");
            jail.set_env("LATCHKEY_TOKENS__ACCESS_TTL", "61");
            jail.set_env("LATCHKEY_UI__SCOPE_DESCRIPTIONS__READ", "Read things");
            let s = Settings::load(None, &Overrides::default()).expect("loads");
            assert_eq!(s.tokens.access_ttl, 61);
            assert_eq!(
                s.ui.scope_descriptions.get("read").map(String::as_str),
                Some("Read things")
            );
            let ignored = Settings::ignored_env();
            for name in [
                "LATCHKEY_PORT",
                "LATCHKEY_SERVICE_HOST",
                "LATCHKEY_TOKENS__ACCESS_TLL",
            ] {
                assert!(ignored.contains(&name.to_owned()), "{ignored:?}");
            }
            assert!(!ignored.iter().any(|n| n == "LATCHKEY_TOKENS__ACCESS_TTL"));
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_errors_not_silence() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("latchkey.toml", "[tokens]\naccess_tll = 60\n")?;
            let err = Settings::load(None, &Overrides::default()).expect_err("typo refused");
            assert!(err.to_string().contains("access_tll"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn config_show_redacts_every_secret() {
        let mut s = Settings::default();
        s.store.url = Some("postgres://latchkey:hunter2@db.internal:5432/auth".into());
        s.store.tokens_url = Some("redis://:r3dis-pass@cache:6379/0".into());
        s.limits.store = "redis://user:limits-pass@cache:6379".into();
        s.admin.token = Some("an-admin-token-that-is-long-enough-xyz".into());
        let shown = s.redacted_toml().expect("serializes");
        for secret in ["hunter2", "r3dis-pass", "limits-pass", "an-admin-token"] {
            assert!(!shown.contains(secret), "{secret} shown:\n{shown}");
        }
        assert!(
            shown.contains("postgres://latchkey:<redacted>@db.internal:5432/auth"),
            "{shown}"
        );
        assert!(
            shown.contains("redis://:<redacted>@cache:6379/0"),
            "{shown}"
        );
        // What is shown reads back as settings.
        let back: Settings = toml::from_str(&shown).expect("round trip");
        assert_eq!(back.listen, s.listen);
    }

    #[test]
    fn issue_14_passwords_in_urls_are_redacted_from_error_text() {
        let text = "unsupported store.url \"ftp://admin:hunter2@db.internal/x\": \
                    limits.store redis://:r3dis@cache:6379/0 failed; see https://example.com/a@b";
        let shown = redact_urls_in(text);
        assert!(
            !shown.contains("hunter2") && !shown.contains("r3dis"),
            "{shown}"
        );
        assert!(
            shown.contains("ftp://admin:<redacted>@db.internal/x"),
            "{shown}"
        );
        assert!(
            shown.contains("redis://:<redacted>@cache:6379/0"),
            "{shown}"
        );
        assert!(shown.contains("https://example.com/a@b"), "{shown}");
        assert_eq!(redact_urls_in("no url here"), "no url here");
    }

    #[test]
    fn the_readme_settings_example_is_valid() {
        let readme = include_str!("../../../README.md");
        let section = readme
            .split("## Settings")
            .nth(1)
            .expect("README has a Settings section");
        let example = section
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("a toml block");
        figment::Jail::expect_with(|jail| {
            jail.create_file("latchkey.toml", example)?;
            let s = Settings::load(None, &Overrides::default()).expect("the example loads");
            assert_eq!(s.shutdown_grace, 10);
            assert_eq!(s.limits.login_window, 900);
            assert_eq!(s.admin.listen.as_deref(), Some("127.0.0.1:8081"));
            Ok(())
        });
    }

    #[test]
    fn explicit_config_file_must_exist() {
        assert!(
            Settings::load(
                Some(Path::new("/nonexistent/latchkey.toml")),
                &Overrides::default()
            )
            .is_err()
        );
    }
}
