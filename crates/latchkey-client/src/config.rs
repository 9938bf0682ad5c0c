//! How a remote app is described: endpoints, credentials, scopes and the provider's quirks.
//! [`AppConfig`] is built in code (or from a [`preset`](crate::presets)); [`AppSettings`] is
//! the same read from a settings file, with secrets as plain strings until they are wrapped.

use crate::assertion::ClientKey;
use crate::error::ClientError;
use crate::jose::SigningAlg;
use latchkey_core::secret::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;

/// How the client proves its identity at the token endpoint (RFC 6749 §2.3.1, RFC 7523 §2.2,
/// OpenID Connect Core §9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientAuth {
    /// `Authorization: Basic` with the form-encoded id and secret: RFC 6749's recommended way.
    #[default]
    ClientSecretBasic,
    /// `client_id` and `client_secret` in the form body (GitHub, LinkedIn, Slack, Apple ...).
    ClientSecretPost,
    /// A public client: only `client_id` in the body.
    None,
    /// A JWT signed with the client's private key ([`AppConfig::client_key`]): the secret
    /// never leaves the client, and a captured assertion expires within a minute.
    PrivateKeyJwt,
    /// A JWT with an HS256 MAC keyed with the client secret: the secret itself is never sent.
    ClientSecretJwt,
}

/// What a client assertion names as its audience (`aud`, RFC 7523 §3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AssertionAudience {
    /// The token endpoint URL, as OpenID Connect Core §9 says it "SHOULD" be.
    #[default]
    TokenEndpoint,
    /// The issuer identifier, for servers that want only it (RFC 7523bis).
    Issuer,
}

/// The HTTP method of the token request. RFC 6749 says POST; Facebook's Graph API also takes
/// GET with the parameters in the query, as Flask-OAuthlib's `access_token_method` allowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TokenMethod {
    /// `POST` with a form body.
    #[default]
    Post,
    /// `GET` with the parameters in the query string.
    Get,
}

/// Everything the client needs to know about one remote app.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppConfig {
    /// The issuer (RFC 8414 / OpenID Connect). With no endpoints configured, they are
    /// discovered from it; the callback's `iss` is checked against it (RFC 9207).
    pub issuer: Option<String>,
    /// The authorization endpoint.
    pub authorize_url: Option<String>,
    /// The token endpoint.
    pub token_url: Option<String>,
    /// The revocation endpoint (RFC 7009).
    pub revocation_url: Option<String>,
    /// The introspection endpoint (RFC 7662).
    pub introspection_url: Option<String>,
    /// The OpenID Connect userinfo endpoint, or the provider's "who am I" API.
    pub userinfo_url: Option<String>,
    /// The device authorization endpoint (RFC 8628).
    pub device_authorization_url: Option<String>,
    /// Relative URLs given to the request helpers are resolved against this (Flask-OAuthlib's
    /// `base_url`).
    pub api_base_url: Option<String>,
    /// The client identifier.
    pub client_id: String,
    /// The client secret; `None` for public clients.
    pub client_secret: Option<Secret>,
    /// How the client authenticates at the token, revocation and introspection endpoints.
    pub client_auth: ClientAuth,
    /// The private key of `private_key_jwt`.
    pub client_key: Option<ClientKey>,
    /// The `aud` of client assertions.
    pub assertion_audience: AssertionAudience,
    /// Where the provider publishes the keys its ID tokens are signed with (OpenID Connect
    /// Discovery §3 `jwks_uri`); discovered from the issuer when not set.
    pub jwks_uri: Option<String>,
    /// The client's registered `id_token_signed_response_alg` (OpenID Connect Registration
    /// §2): when set, the only algorithm its ID tokens are accepted in. HS256 needs the
    /// client secret.
    pub id_token_signed_response_alg: Option<SigningAlg>,
    /// Scopes requested when the caller names none.
    pub scopes: Vec<String>,
    /// What joins scopes on the wire: a space (RFC 6749 §3.3), or a comma for providers that
    /// want one (Weibo, Douban, old Facebook).
    pub scope_separator: String,
    /// Extra query parameters of every authorization request (`access_type=offline` ...).
    pub authorize_params: BTreeMap<String, String>,
    /// Extra parameters of every token request.
    pub token_params: BTreeMap<String, String>,
    /// Extra headers of every token request (GitHub: `Accept: application/json`).
    pub token_headers: BTreeMap<String, String>,
    /// The HTTP method of token requests.
    pub token_method: TokenMethod,
    /// Send PKCE S256 (RFC 7636) with the code flow. On by default (RFC 9700 §2.1.1).
    pub pkce: bool,
    /// The provider refuses the code flow without PKCE (X/Twitter): turning `pkce` off is a
    /// configuration error.
    pub pkce_required: bool,
    /// OpenID Connect: send a `nonce` with the authorization request.
    pub openid: bool,
    /// The callback must carry `iss` (RFC 9207); set from discovery when the provider
    /// advertises `authorization_response_iss_parameter_supported`.
    pub require_iss: bool,
    /// The scheme of the `Authorization` header on API calls: `Bearer`, or `OAuth2` for Weibo.
    pub auth_scheme: String,
    /// Refresh tokens this many seconds before they expire.
    pub refresh_leeway: u64,
}

impl AppConfig {
    /// A confidential client with `client_secret_basic`, no endpoints yet.
    pub fn new(client_id: impl Into<String>, client_secret: Option<&str>) -> Self {
        Self {
            issuer: None,
            authorize_url: None,
            token_url: None,
            revocation_url: None,
            introspection_url: None,
            userinfo_url: None,
            device_authorization_url: None,
            api_base_url: None,
            client_id: client_id.into(),
            client_auth: if client_secret.is_some() {
                ClientAuth::ClientSecretBasic
            } else {
                ClientAuth::None
            },
            client_secret: client_secret.map(Secret::new),
            client_key: None,
            assertion_audience: AssertionAudience::TokenEndpoint,
            jwks_uri: None,
            id_token_signed_response_alg: None,
            scopes: Vec::new(),
            scope_separator: " ".into(),
            authorize_params: BTreeMap::new(),
            token_params: BTreeMap::new(),
            token_headers: BTreeMap::new(),
            token_method: TokenMethod::Post,
            pkce: true,
            pkce_required: false,
            openid: false,
            require_iss: false,
            auth_scheme: "Bearer".into(),
            refresh_leeway: crate::token::DEFAULT_REFRESH_LEEWAY,
        }
    }

    /// Sets the authorization and token endpoints.
    pub fn endpoints(mut self, authorize_url: &str, token_url: &str) -> Self {
        self.authorize_url = Some(authorize_url.into());
        self.token_url = Some(token_url.into());
        self
    }

    /// Sets the issuer; endpoints not configured are discovered from it.
    pub fn issuer(mut self, issuer: &str) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Sets the default scopes.
    pub fn scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the client authentication method.
    pub fn client_auth(mut self, auth: ClientAuth) -> Self {
        self.client_auth = auth;
        self
    }

    /// Authenticates with `private_key_jwt`, signing with `key`.
    pub fn private_key(mut self, key: ClientKey) -> Self {
        self.client_key = Some(key);
        self.client_auth = ClientAuth::PrivateKeyJwt;
        self
    }

    /// Sets where the provider's signing keys are published.
    pub fn jwks_uri(mut self, jwks_uri: &str) -> Self {
        self.jwks_uri = Some(jwks_uri.into());
        self
    }

    /// Joins scopes as the provider wants them.
    pub fn join_scopes<S: AsRef<str>>(&self, scopes: &[S]) -> String {
        scopes
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(&self.scope_separator)
    }

    /// Checks what can be checked without the network.
    pub fn validate(&self) -> Result<(), ClientError> {
        if self.client_id.is_empty() {
            return Err(ClientError::Config("client_id is empty".into()));
        }
        if self.pkce_required && !self.pkce {
            return Err(ClientError::Config(
                "this provider requires PKCE; `pkce` cannot be turned off".into(),
            ));
        }
        let needs_secret = matches!(
            self.client_auth,
            ClientAuth::ClientSecretBasic
                | ClientAuth::ClientSecretPost
                | ClientAuth::ClientSecretJwt
        );
        if needs_secret && self.client_secret.is_none() {
            return Err(ClientError::Config(
                "client_secret_basic/post/jwt need a client_secret (use client_auth = \"none\" for a public client)".into(),
            ));
        }
        if self.client_auth == ClientAuth::PrivateKeyJwt && self.client_key.is_none() {
            return Err(ClientError::Config(
                "private_key_jwt needs a client_key".into(),
            ));
        }
        // OpenID Connect Core §10.1: an HS256 ID token is keyed with the client secret.
        if self.id_token_signed_response_alg == Some(SigningAlg::HS256)
            && self.client_secret.is_none()
        {
            return Err(ClientError::Config(
                "id_token_signed_response_alg HS256 needs a client_secret".into(),
            ));
        }
        if self.issuer.is_none() && (self.authorize_url.is_none() && self.token_url.is_none()) {
            return Err(ClientError::Config(
                "configure an issuer to discover from, or the endpoints".into(),
            ));
        }
        for url in [
            &self.issuer,
            &self.authorize_url,
            &self.token_url,
            &self.revocation_url,
            &self.introspection_url,
            &self.userinfo_url,
            &self.device_authorization_url,
            &self.api_base_url,
            &self.jwks_uri,
        ]
        .into_iter()
        .flatten()
        {
            let parsed = url::Url::parse(url)
                .map_err(|e| ClientError::Config(format!("{url:?} is not a URL: {e}")))?;
            if !matches!(parsed.scheme(), "https" | "http") {
                return Err(ClientError::Config(format!("{url:?} is not http(s)")));
            }
        }
        Ok(())
    }
}

/// One remote app as written in a settings file, e.g. in TOML:
///
/// ```toml
/// [github]
/// preset = "github"
/// client_id = "Iv1.8a61f9b3a7aba766"
/// client_secret = "..."
///
/// [corp]
/// issuer = "https://login.example.com"
/// client_id = "portal"
/// client_secret = "..."
/// scopes = ["openid", "email"]
/// ```
///
/// Fields left out come from the preset, then from discovery, then from the defaults of
/// [`AppConfig::new`].
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AppSettings {
    /// A [preset](crate::presets) name such as `github` or `entra_id`.
    pub preset: Option<String>,
    /// Values for the preset's placeholders, e.g. `{ tenant = "contoso.onmicrosoft.com" }`.
    pub placeholders: BTreeMap<String, String>,
    /// See [`AppConfig::issuer`].
    pub issuer: Option<String>,
    /// See [`AppConfig::authorize_url`].
    pub authorize_url: Option<String>,
    /// See [`AppConfig::token_url`].
    pub token_url: Option<String>,
    /// See [`AppConfig::revocation_url`].
    pub revocation_url: Option<String>,
    /// See [`AppConfig::introspection_url`].
    pub introspection_url: Option<String>,
    /// See [`AppConfig::userinfo_url`].
    pub userinfo_url: Option<String>,
    /// See [`AppConfig::device_authorization_url`].
    pub device_authorization_url: Option<String>,
    /// See [`AppConfig::api_base_url`].
    pub api_base_url: Option<String>,
    /// See [`AppConfig::client_id`].
    pub client_id: String,
    /// See [`AppConfig::client_secret`].
    pub client_secret: Option<String>,
    /// See [`AppConfig::client_auth`].
    pub client_auth: Option<ClientAuth>,
    /// See [`AppConfig::scopes`].
    pub scopes: Option<Vec<String>>,
    /// See [`AppConfig::jwks_uri`].
    pub jwks_uri: Option<String>,
    /// See [`AppConfig::id_token_signed_response_alg`].
    pub id_token_signed_response_alg: Option<SigningAlg>,
    /// The private key of `private_key_jwt` (setting it selects that method unless
    /// `client_auth` says otherwise).
    pub private_key: Option<KeySettings>,
    /// See [`AppConfig::assertion_audience`].
    pub assertion_audience: Option<AssertionAudience>,
    /// Merged over the preset's [`AppConfig::authorize_params`].
    pub authorize_params: BTreeMap<String, String>,
    /// Merged over the preset's [`AppConfig::token_params`].
    pub token_params: BTreeMap<String, String>,
    /// Merged over the preset's [`AppConfig::token_headers`].
    pub token_headers: BTreeMap<String, String>,
    /// See [`AppConfig::pkce`].
    pub pkce: Option<bool>,
    /// See [`AppConfig::openid`].
    pub openid: Option<bool>,
}

impl std::fmt::Debug for AppSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppSettings")
            .field("preset", &self.preset)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("has_client_secret", &self.client_secret.is_some())
            .finish_non_exhaustive()
    }
}

/// The client's private key in a settings file, e.g. in TOML:
///
/// ```toml
/// [corp.private_key]
/// pem_file = "/etc/portal/corp-client-key.pem"
/// kid = "portal-2025"
/// alg = "ES256"
/// ```
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySettings {
    /// The PEM text itself (prefer `pem_file`: a key does not belong in a config file).
    #[serde(default)]
    pub pem: Option<String>,
    /// A file holding the PEM.
    #[serde(default)]
    pub pem_file: Option<std::path::PathBuf>,
    /// The key id the provider knows the public key under.
    #[serde(default)]
    pub kid: Option<String>,
    /// The signature algorithm.
    pub alg: SigningAlg,
}

impl std::fmt::Debug for KeySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySettings")
            .field("pem_file", &self.pem_file)
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl KeySettings {
    /// Reads the key.
    pub fn load(&self) -> Result<ClientKey, ClientError> {
        let pem = match (&self.pem, &self.pem_file) {
            (Some(pem), None) => pem.clone(),
            (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
                ClientError::Config(format!("private key file {}: {e}", path.display()))
            })?,
            _ => {
                return Err(ClientError::Config(
                    "private_key needs exactly one of pem and pem_file".into(),
                ));
            }
        };
        ClientKey::from_pem(&pem, self.alg, self.kid.as_deref())
    }
}

impl AppSettings {
    /// Turns the settings into a configuration, starting from the preset if one is named.
    pub fn into_config(self) -> Result<AppConfig, ClientError> {
        let secret = self.client_secret.as_deref();
        let mut config = match &self.preset {
            Some(name) => {
                let preset = crate::presets::find(name)
                    .ok_or_else(|| ClientError::Config(format!("unknown preset {name:?}")))?;
                preset.config_with(&self.client_id, secret, &self.placeholders)?
            }
            None => AppConfig::new(self.client_id.clone(), secret),
        };
        let set = |slot: &mut Option<String>, value: Option<String>| {
            if value.is_some() {
                *slot = value;
            }
        };
        set(&mut config.issuer, self.issuer);
        set(&mut config.authorize_url, self.authorize_url);
        set(&mut config.token_url, self.token_url);
        set(&mut config.revocation_url, self.revocation_url);
        set(&mut config.introspection_url, self.introspection_url);
        set(&mut config.userinfo_url, self.userinfo_url);
        set(
            &mut config.device_authorization_url,
            self.device_authorization_url,
        );
        set(&mut config.api_base_url, self.api_base_url);
        set(&mut config.jwks_uri, self.jwks_uri);
        if let Some(alg) = self.id_token_signed_response_alg {
            config.id_token_signed_response_alg = Some(alg);
        }
        if let Some(key) = &self.private_key {
            config = config.private_key(key.load()?);
        }
        if let Some(audience) = self.assertion_audience {
            config.assertion_audience = audience;
        }
        if let Some(auth) = self.client_auth {
            config.client_auth = auth;
        }
        if let Some(scopes) = self.scopes {
            config.scopes = scopes;
        }
        config.authorize_params.extend(self.authorize_params);
        config.token_params.extend(self.token_params);
        config.token_headers.extend(self.token_headers);
        if let Some(pkce) = self.pkce {
            config.pkce = pkce;
        }
        if let Some(openid) = self.openid {
            config.openid = openid;
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_fill_a_preset_and_override_it() {
        let settings: AppSettings = serde_json::from_value(serde_json::json!({
            "preset": "github",
            "client_id": "Iv1.abc",
            "client_secret": "shh",
            "scopes": ["repo"],
            "authorize_params": { "allow_signup": "false" }
        }))
        .expect("parses");
        let config = settings.into_config().expect("valid");
        assert_eq!(
            config.authorize_url.as_deref(),
            Some("https://github.com/login/oauth/authorize")
        );
        assert_eq!(config.scopes, vec!["repo"]);
        assert_eq!(config.authorize_params["allow_signup"], "false");
        assert_eq!(config.token_headers["accept"], "application/json");
        assert_eq!(config.client_secret, Some(Secret::new("shh")));
    }

    #[test]
    fn settings_with_only_an_issuer_are_valid_and_typos_are_refused() {
        let settings: AppSettings = serde_json::from_value(serde_json::json!({
            "issuer": "https://login.example.com",
            "client_id": "portal",
            "client_auth": "none"
        }))
        .expect("parses");
        let config = settings.into_config().expect("valid");
        assert_eq!(config.issuer.as_deref(), Some("https://login.example.com"));
        assert!(
            serde_json::from_value::<AppSettings>(serde_json::json!({
                "client_id": "x", "token_ulr": "https://x"
            }))
            .is_err()
        );
    }

    #[test]
    fn invalid_configurations_are_refused_before_any_request() {
        let no_endpoints = AppConfig::new("id", Some("s"));
        assert!(matches!(
            no_endpoints.validate(),
            Err(ClientError::Config(_))
        ));
        let mut no_secret = AppConfig::new("id", Some("s")).issuer("https://a.example");
        no_secret.client_secret = None;
        assert!(no_secret.validate().is_err());
        let bad_url = AppConfig::new("id", None).endpoints("javascript:alert(1)", "https://t");
        assert!(bad_url.validate().is_err());
        let mut no_pkce = crate::presets::find("x")
            .expect("preset")
            .config("id", None)
            .expect("config");
        no_pkce.pkce = false;
        assert!(no_pkce.validate().is_err());
    }
}
