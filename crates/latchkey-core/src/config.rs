//! Provider configuration, with RFC 9700 defaults, validated once when the provider is built.

use crate::client::GrantType;
use crate::scope::ScopeSet;
use std::collections::BTreeMap;

/// Server-wide settings of a [`crate::provider::Provider`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The issuer identifier (RFC 8414 §2): an `https` URL, or `http` on loopback for
    /// development, with no query or fragment.
    pub issuer: String,
    /// Access-token lifetime in seconds (default one hour).
    pub access_token_ttl: u64,
    /// Refresh-token lifetime in seconds (default 30 days); each rotation starts a new one,
    /// up to [`Config::refresh_token_max_lifetime`].
    pub refresh_token_ttl: u64,
    /// Lifetimes for the tokens of one grant type (python-oauth2's `expires_in` per grant),
    /// over [`Config::access_token_ttl`] and [`Config::refresh_token_ttl`]; empty by default.
    ///
    /// An entry applies to every token of a family the grant started, rotations included: a
    /// refresh exchange in a `password` family uses the `password` entry. So `refresh_token`,
    /// which starts no family, takes no entry. A client's own lifetimes
    /// ([`crate::client::Client::access_token_ttl`]) win over an entry: client, then grant,
    /// then server ([`crate::provider::Provider::access_ttl`]).
    pub grant_lifetimes: BTreeMap<GrantType, GrantLifetimes>,
    /// Absolute lifetime of a grant family in seconds (default 90 days): however often its
    /// refresh token is rotated, none outlives the family's first issuance plus this, so a
    /// stolen refresh token cannot be kept alive for ever (RFC 9700 §4.14.2).
    pub refresh_token_max_lifetime: u64,
    /// Scopes a client may request when it has no list of its own.
    pub available_scopes: ScopeSet,
    /// Scopes granted when a request names none and the client has no defaults of its own.
    pub default_scopes: ScopeSet,
    /// A page explaining errors, sent as `error_uri` (Flask-OAuthlib's `OAUTH2_PROVIDER_ERROR_URI`).
    /// Authorization errors that must not go back to the client are redirected there.
    pub error_uri: Option<String>,
    /// Authorization-code lifetime in seconds (default 60; RFC 6749 §4.1.2 recommends at
    /// most ten minutes, RFC 9700 far less).
    pub code_ttl: u64,
    /// Require PKCE from confidential clients too (public clients always need it).
    pub require_pkce: bool,
    /// Accept the `plain` PKCE method (off: only `S256`, RFC 9700 §2.1.1).
    pub allow_plain_pkce: bool,
    /// Proxies whose `X-Forwarded-For`/`Forwarded` headers are believed.
    pub trusted_proxies: crate::net::TrustedProxies,
    /// Server-wide switch for the implicit grant (`response_type=token`), off by default
    /// (RFC 9700 §2.1.2 says not to use it). Off, no client gets it even when allowed it, and
    /// the metadata does not advertise it.
    pub implicit_grant: bool,
    /// Server-wide switch for the password grant, off by default (RFC 9700 §2.4: "MUST NOT
    /// be used"). Off, no client gets it even when allowed it, and the metadata does not
    /// advertise it.
    pub password_grant: bool,
    /// OpenID Connect on (the default): the scope values of [`crate::oidc::OIDC_SCOPES`]
    /// (`openid`, `profile`, `email`, `address`, `phone`, `offline_access`) join
    /// [`Config::available_scopes`] when the provider is built, a grant with `openid` gets an
    /// ID token, and discovery is served. Off, `openid` is an ordinary scope like any other.
    pub oidc: bool,
    /// ID-token lifetime in seconds (default one hour, at most a day). An ID token is read
    /// once, when the client receives it; an hour leaves room for clock skew and slow
    /// clients, matches the access token's default, and stays well inside the time a retired
    /// signing key is kept published.
    pub id_token_ttl: u64,
    /// The secret salt of pairwise subject identifiers (OpenID Connect Core §8.1, see
    /// [`crate::oidc::subject`]). It must stay the same for ever (a new salt gives every user
    /// new identifiers at every pairwise client) and be the same on every node. `None`: the
    /// builder draws a random one, kept only in memory, like the default signer.
    pub pairwise_salt: Option<crate::secret::Secret>,
    /// The `aud` of JWT access tokens (RFC 9068 §3) whose request named no `resource` (RFC
    /// 8707; one that did gets those resources, see [`crate::access_jwt`]). `None` (the
    /// default): the issuer.
    pub access_token_audience: Option<String>,
    /// The authentication context classes (OpenID Connect Core §2 `acr`) this provider's
    /// logins achieve, advertised as `acr_values_supported`. The first is the class of the
    /// built-in password login (`latchkey-ui`), default [`crate::endpoint::authorize::PASSWORD_ACR`]; an
    /// embedder whose login achieves others lists them and states the one achieved on each
    /// [`crate::endpoint::authorize::Authentication::acr`]. An essential `acr` none of these
    /// can meet is refused up front (`unmet_authentication_requirements`). Each value at most
    /// 255 bytes, no spaces; at most 16.
    pub acr_values: Vec<String>,
    /// Lifetime in seconds of a pushed authorization request's `request_uri` (RFC 9126 §2.2
    /// `expires_in`; default 60, at most 600).
    pub par_ttl: u64,
    /// Require every client to push its authorization requests (RFC 9126 §5
    /// `require_pushed_authorization_requests`); a client can also be required alone (its
    /// metadata of the same name).
    pub require_pushed_authorization_requests: bool,
    /// The device authorization grant (RFC 8628): on by default (a client still needs the
    /// grant type to use it), with its lifetimes and user-code shape.
    pub device: DeviceConfig,
    /// Mutual TLS (RFC 8705) on: the embedding server hands TLS client certificates to the
    /// core (see [`crate::mtls`]). The metadata then lists `tls_client_auth` and
    /// `self_signed_tls_client_auth` and `tls_client_certificate_bound_access_tokens`. Off (the
    /// default), no request carries a certificate, so such clients cannot authenticate.
    pub mtls: bool,
    /// The resources clients may name with `resource` (RFC 8707, see [`crate::indicator`]);
    /// empty by default, when every `resource` parameter is refused with `invalid_target`.
    pub resources: crate::indicator::Resources,
    /// DPoP (RFC 9449): proof algorithms, `iat` window and server nonces. On by default:
    /// a client that sends a proof gets tokens bound to its key.
    pub dpop: crate::dpop::DpopConfig,
    /// The languages the user-facing pages speak (BCP 47 tags), published as
    /// `ui_locales_supported` (RFC 8414 §2, OpenID Connect Discovery §3); empty: not
    /// published. The pages choose among them; the core only advertises them.
    pub ui_locales: Vec<String>,
    /// Signed request objects (JAR, RFC 9101): on by default, with the algorithms accepted,
    /// the longest `exp` horizon, and whether every client must send one.
    pub request_objects: crate::jar::RequestObjectConfig,
}

/// Settings of the device authorization grant (RFC 8628), in [`Config::device`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Serve the grant and its device authorization endpoint, and advertise both.
    pub enabled: bool,
    /// Seconds a device code and its user code stay valid (default 600, 10 to 3600).
    pub lifetime: u64,
    /// Seconds a device waits between polls at first (default 5, 1 to 60; RFC 8628 §3.2);
    /// a device that polls faster is told `slow_down` and waits 5 seconds more.
    pub interval: u64,
    /// Characters of a user code from [`crate::device::USER_CODE_ALPHABET`] (default 8, as
    /// RFC 8628 §6.1 suggests: about 34.5 bits; 6 to 16).
    pub user_code_length: usize,
    /// Where the user enters the code (`verification_uri`, RFC 8628 §3.2); `None` (the
    /// default): the built-in page at `<issuer>/device`. An embedder with its own page sets
    /// it and drives [`crate::device::verify`] from that page.
    pub verification_uri: Option<String>,
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            lifetime: 600,
            interval: 5,
            user_code_length: 8,
            verification_uri: None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".into(),
            access_token_ttl: 3600,
            refresh_token_ttl: 30 * 24 * 3600,
            grant_lifetimes: BTreeMap::new(),
            refresh_token_max_lifetime: 90 * 24 * 3600,
            available_scopes: ScopeSet::empty(),
            default_scopes: ScopeSet::empty(),
            error_uri: None,
            code_ttl: 60,
            require_pkce: false,
            allow_plain_pkce: false,
            trusted_proxies: crate::net::TrustedProxies::default(),
            implicit_grant: false,
            password_grant: false,
            oidc: true,
            id_token_ttl: 3600,
            pairwise_salt: None,
            access_token_audience: None,
            acr_values: vec![crate::endpoint::authorize::PASSWORD_ACR.to_owned()],
            par_ttl: 60,
            require_pushed_authorization_requests: false,
            device: DeviceConfig::default(),
            mtls: false,
            resources: crate::indicator::Resources::default(),
            dpop: crate::dpop::DpopConfig::default(),
            ui_locales: Vec::new(),
            request_objects: crate::jar::RequestObjectConfig::default(),
        }
    }
}

/// Token lifetimes for one grant type, in [`Config::grant_lifetimes`]; `None` leaves the
/// server-wide lifetime in force.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GrantLifetimes {
    /// Access-token lifetime in seconds.
    pub access_token_ttl: Option<u64>,
    /// Refresh-token lifetime in seconds (still cut at
    /// [`Config::refresh_token_max_lifetime`]).
    pub refresh_token_ttl: Option<u64>,
}

/// A configuration that cannot be served.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer is not a valid issuer identifier.
    #[error("issuer must be an https URL (or http on localhost) without query or fragment: {0}")]
    Issuer(String),
    /// A lifetime is zero or absurdly long.
    #[error("{0} must be at least 1 second and at most 10 years")]
    Lifetime(&'static str),
    /// Default scopes that no client could be granted.
    #[error("default scopes {0:?} are not among the available scopes")]
    DefaultScopes(String),
    /// The error URI is not an absolute http(s) URL.
    #[error("error_uri must be an absolute http(s) URL: {0}")]
    ErrorUri(String),
    /// Lifetimes for a grant type that never starts a family of tokens, or that never issues
    /// the token they are for.
    #[error("grant_lifetimes: {0}")]
    GrantLifetimes(String),
    /// An extension grant registered under a name that is not an absolute URI of at most 64
    /// bytes, or registered twice.
    #[error("extension grant {0:?}: not an absolute URI of at most 64 bytes, or registered twice")]
    ExtensionGrant(String),
    /// A `[device]` setting out of its range.
    #[error("device: {0}")]
    Device(&'static str),
    /// The pairwise salt is too short to be a secret.
    #[error("pairwise_salt must be at least 16 bytes")]
    PairwiseSalt,
    /// An `acr_values` entry is empty, too long or has spaces, or there are too many.
    #[error("acr_values: at most 16 values of 1 to 255 bytes without spaces: {0:?}")]
    AcrValues(String),
    /// The DPoP settings cannot be served.
    #[error("{0}")]
    Dpop(String),
    /// No signer was given and the default in-memory keys could not be generated.
    #[error("signing keys: {0}")]
    Signer(String),
    /// The request object settings cannot be served.
    #[error("{0}")]
    RequestObjects(String),
}

impl Config {
    /// Whether the server offers `grant` at all. A client's own list of grants narrows this,
    /// never widens it; the endpoints and the metadata both ask here, so what is advertised is
    /// what is served.
    pub fn grant_enabled(&self, grant: GrantType) -> bool {
        match grant {
            GrantType::Implicit => self.implicit_grant,
            GrantType::Password => self.password_grant,
            GrantType::DeviceCode => self.device.enabled,
            _ => true,
        }
    }

    /// Checks the configuration; the provider refuses to start on an error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_issuer(&self.issuer)?;
        if !(1..=TEN_YEARS).contains(&self.access_token_ttl) {
            return Err(ConfigError::Lifetime("access_token_ttl"));
        }
        if !(1..=600).contains(&self.code_ttl) {
            return Err(ConfigError::Lifetime("code_ttl (at most 600)"));
        }
        if !(1..=600).contains(&self.par_ttl) {
            return Err(ConfigError::Lifetime("par_ttl (at most 600)"));
        }
        if !(1..=TEN_YEARS).contains(&self.refresh_token_ttl) {
            return Err(ConfigError::Lifetime("refresh_token_ttl"));
        }
        if !(1..=24 * 3600).contains(&self.id_token_ttl) {
            return Err(ConfigError::Lifetime("id_token_ttl (at most a day)"));
        }
        if self
            .pairwise_salt
            .as_ref()
            .is_some_and(|s| s.expose().len() < 16)
        {
            return Err(ConfigError::PairwiseSalt);
        }
        self.dpop.validate().map_err(ConfigError::Dpop)?;
        self.request_objects
            .validate()
            .map_err(ConfigError::RequestObjects)?;
        if !(1..=TEN_YEARS).contains(&self.refresh_token_max_lifetime) {
            return Err(ConfigError::Lifetime("refresh_token_max_lifetime"));
        }
        for (grant, lifetimes) in &self.grant_lifetimes {
            validate_grant_lifetimes(*grant, lifetimes)?;
        }
        if !self.default_scopes.is_subset(&self.available_scopes) {
            return Err(ConfigError::DefaultScopes(
                self.default_scopes.missing_from(&self.available_scopes),
            ));
        }
        validate_device(&self.device)?;
        if let Some(uri) = &self.error_uri
            && (!(uri.starts_with("https://") || uri.starts_with("http://")) || uri.contains(' '))
        {
            return Err(ConfigError::ErrorUri(uri.clone()));
        }
        if let Some(bad) = self.acr_values.iter().find(|v| {
            v.is_empty() || v.len() > 255 || v.chars().any(|c| c == ' ' || c.is_control())
        }) {
            return Err(ConfigError::AcrValues(bad.clone()));
        }
        if self.acr_values.len() > 16 {
            return Err(ConfigError::AcrValues(self.acr_values.join(" ")));
        }
        Ok(())
    }
}

/// The longest lifetime any setting accepts: ten years.
const TEN_YEARS: u64 = 10 * 365 * 24 * 3600;

fn validate_grant_lifetimes(
    grant: GrantType,
    lifetimes: &GrantLifetimes,
) -> Result<(), ConfigError> {
    let bad = |why: &str| Err(ConfigError::GrantLifetimes(format!("{grant}: {why}")));
    match grant {
        GrantType::RefreshToken => {
            return bad(
                "a refresh exchange keeps the lifetimes of the grant that started its family; set them there",
            );
        }
        // RFC 6749 §4.2.2 and §4.4.3: these grants issue no refresh token.
        GrantType::Implicit | GrantType::ClientCredentials
            if lifetimes.refresh_token_ttl.is_some() =>
        {
            return bad("this grant issues no refresh token");
        }
        _ => {}
    }
    let in_range = |ttl: Option<u64>| ttl.is_none_or(|secs| (1..=TEN_YEARS).contains(&secs));
    if !in_range(lifetimes.access_token_ttl) || !in_range(lifetimes.refresh_token_ttl) {
        return bad("lifetimes must be at least 1 second and at most 10 years");
    }
    Ok(())
}

fn validate_device(device: &DeviceConfig) -> Result<(), ConfigError> {
    if !(10..=3600).contains(&device.lifetime) {
        return Err(ConfigError::Device("lifetime must be 10 to 3600 seconds"));
    }
    if !(1..=60).contains(&device.interval) {
        return Err(ConfigError::Device("interval must be 1 to 60 seconds"));
    }
    if !(6..=16).contains(&device.user_code_length) {
        return Err(ConfigError::Device("user_code_length must be 6 to 16"));
    }
    if let Some(uri) = &device.verification_uri
        && (!(uri.starts_with("https://") || uri.starts_with("http://"))
            || uri.contains([' ', '?', '#']))
    {
        return Err(ConfigError::Device(
            "verification_uri must be an absolute http(s) URL without query or fragment",
        ));
    }
    Ok(())
}

fn validate_issuer(issuer: &str) -> Result<(), ConfigError> {
    let bad = || ConfigError::Issuer(issuer.to_owned());
    let rest = if let Some(rest) = issuer.strip_prefix("https://") {
        rest
    } else if let Some(rest) = issuer.strip_prefix("http://") {
        // Plain HTTP only for development on this machine.
        if !is_loopback_authority(rest.split(['/', '?', '#']).next().unwrap_or("")) {
            return Err(bad());
        }
        rest
    } else {
        return Err(bad());
    };
    if rest.is_empty() || rest.contains(['?', '#', ' ', '@']) || issuer.ends_with('/') {
        return Err(bad());
    }
    Ok(())
}

/// Whether `authority` (`host[:port]`, no user information) names this machine: `localhost`
/// or a loopback address (`127.0.0.0/8`, `[::1]`). The host is parsed, not matched by
/// prefix: `127.evil.example` is a name anyone can register.
fn is_loopback_authority(authority: &str) -> bool {
    let (host, port, bracketed) = match authority.strip_prefix('[') {
        Some(v6) => {
            let Some((host, after)) = v6.split_once(']') else {
                return false;
            };
            let port = match after.strip_prefix(':') {
                Some(port) => port,
                None if after.is_empty() => "",
                None => return false,
            };
            (host, port, true)
        }
        None => {
            let (host, port) = authority.split_once(':').unwrap_or((authority, ""));
            (host, port, false)
        }
    };
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    if bracketed {
        return host
            .parse::<std::net::Ipv6Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    }
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_configuration_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn issuer_rules() {
        for good in [
            "https://auth.example.com",
            "https://a.example/tenant",
            "http://localhost:8080",
            "http://[::1]:9",
            "http://127.0.0.1:8080",
            "http://127.1.2.3",
            "http://localhost",
            "http://[::1]/tenant",
        ] {
            let c = Config {
                issuer: good.into(),
                ..Config::default()
            };
            assert_eq!(c.validate(), Ok(()), "{good}");
        }
        for bad in [
            "http://auth.example.com",
            "https://a.example?x=1",
            "https://a.example/",
            "ftp://x",
            "https://",
        ] {
            let c = Config {
                issuer: bad.into(),
                ..Config::default()
            };
            assert!(c.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn issue_14_only_loopback_hosts_may_use_plain_http() {
        for bad in [
            "http://127.evil.example",
            "http://127.0.0.1.evil.example",
            "http://localhost.evil.example",
            "http://127.0.0.1@evil.example",
            "http://localhost:8080@evil.example",
            "http://[::1].evil.example",
            "http://[::2]:80",
            "http://localhost:80x",
            "http://128.0.0.1",
        ] {
            let c = Config {
                issuer: bad.into(),
                ..Config::default()
            };
            assert!(c.validate().is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_must_be_available() {
        let c = Config {
            default_scopes: ["read"].into_iter().collect(),
            ..Config::default()
        };
        assert!(matches!(c.validate(), Err(ConfigError::DefaultScopes(_))));
    }

    #[test]
    fn grant_lifetimes_are_checked() {
        let with = |grant, access, refresh| Config {
            grant_lifetimes: [(
                grant,
                GrantLifetimes {
                    access_token_ttl: access,
                    refresh_token_ttl: refresh,
                },
            )]
            .into(),
            ..Config::default()
        };
        assert_eq!(
            with(GrantType::Password, Some(300), Some(600)).validate(),
            Ok(())
        );
        assert_eq!(
            with(GrantType::ClientCredentials, Some(60), None).validate(),
            Ok(())
        );
        for bad in [
            with(GrantType::RefreshToken, Some(60), None),
            with(GrantType::ClientCredentials, None, Some(60)),
            with(GrantType::Implicit, Some(60), Some(60)),
            with(GrantType::Password, Some(0), None),
            with(GrantType::AuthorizationCode, None, Some(TEN_YEARS + 1)),
        ] {
            assert!(
                matches!(bad.validate(), Err(ConfigError::GrantLifetimes(_))),
                "{:?}",
                bad.grant_lifetimes
            );
        }
    }
}
