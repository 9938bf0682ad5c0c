//! Provider presets: the endpoints, default scopes and quirks of well-known providers, as a
//! table of data ([`PRESETS`]). They cover the OAuth 2 apps of Flask-OAuthlib's
//! `contrib.apps` that still exist (GitHub, Google, Facebook, LinkedIn, Dropbox, Weibo,
//! Douban; Twitter is now X with OAuth 2 and PKCE) and today's common ones (Microsoft
//! Entra ID, GitLab, Discord, Slack, Apple).
//!
//! A preset gives a complete [`AppConfig`]; the application adds its client id and secret
//! and may change anything. URLs with `{name}` placeholders (Entra ID's `{tenant}`) are
//! filled from the placeholders given, or from the preset's defaults.

use crate::config::{AppConfig, ClientAuth, TokenMethod};
use crate::error::ClientError;
use std::collections::BTreeMap;

/// One provider, as data.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    /// The name used in settings (`preset = "github"`).
    pub name: &'static str,
    /// The issuer, for OpenID Connect providers (checked against a callback's `iss`).
    pub issuer: Option<&'static str>,
    /// The authorization endpoint.
    pub authorize_url: &'static str,
    /// The token endpoint.
    pub token_url: &'static str,
    /// The RFC 7009 revocation endpoint, when the provider has a standard one.
    pub revocation_url: Option<&'static str>,
    /// Where the signed-in user's profile is read.
    pub userinfo_url: Option<&'static str>,
    /// Where an OpenID Connect provider publishes its ID-token signing keys.
    pub jwks_uri: Option<&'static str>,
    /// The RFC 8628 device authorization endpoint, when the provider has one.
    pub device_authorization_url: Option<&'static str>,
    /// The base of the provider's API, for relative URLs in requests.
    pub api_base_url: Option<&'static str>,
    /// Scopes requested by default.
    pub scopes: &'static [&'static str],
    /// What joins scopes.
    pub scope_separator: &'static str,
    /// How the client authenticates at the token endpoint.
    pub client_auth: ClientAuth,
    /// The token request's method.
    pub token_method: TokenMethod,
    /// Extra authorization parameters.
    pub authorize_params: &'static [(&'static str, &'static str)],
    /// Extra token request headers.
    pub token_headers: &'static [(&'static str, &'static str)],
    /// The provider refuses the code flow without PKCE.
    pub pkce_required: bool,
    /// OpenID Connect: a `nonce` goes with the authorization request.
    pub openid: bool,
    /// The `Authorization` scheme on API calls.
    pub auth_scheme: &'static str,
    /// Placeholders in the URLs, with their default values.
    pub placeholders: &'static [(&'static str, &'static str)],
    /// Placeholder values that stand for many tenants (Entra ID's `common`): with one of them
    /// the issuer is each user's own tenant, so no single issuer can be checked.
    pub multi_tenant_values: &'static [&'static str],
    /// What an application must know about this provider.
    pub notes: &'static str,
}

const BASE: Preset = Preset {
    name: "",
    issuer: None,
    authorize_url: "",
    token_url: "",
    revocation_url: None,
    userinfo_url: None,
    jwks_uri: None,
    device_authorization_url: None,
    api_base_url: None,
    scopes: &[],
    scope_separator: " ",
    client_auth: ClientAuth::ClientSecretBasic,
    token_method: TokenMethod::Post,
    authorize_params: &[],
    token_headers: &[],
    pkce_required: false,
    openid: false,
    auth_scheme: "Bearer",
    placeholders: &[],
    multi_tenant_values: &[],
    notes: "",
};

/// Every preset.
pub const PRESETS: &[Preset] = &[
    Preset {
        name: "github",
        authorize_url: "https://github.com/login/oauth/authorize",
        token_url: "https://github.com/login/oauth/access_token",
        userinfo_url: Some("https://api.github.com/user"),
        device_authorization_url: Some("https://github.com/login/device/code"),
        api_base_url: Some("https://api.github.com/"),
        scopes: &["user:email"],
        client_auth: ClientAuth::ClientSecretPost,
        token_headers: &[("accept", "application/json")],
        notes: "The token endpoint answers form-encoded unless asked for JSON, and answers \
                errors with status 200. OAuth App tokens do not expire and there is no RFC 7009 \
                revocation endpoint.",
        ..BASE
    },
    Preset {
        name: "google",
        issuer: Some("https://accounts.google.com"),
        authorize_url: "https://accounts.google.com/o/oauth2/v2/auth",
        token_url: "https://oauth2.googleapis.com/token",
        revocation_url: Some("https://oauth2.googleapis.com/revoke"),
        userinfo_url: Some("https://openidconnect.googleapis.com/v1/userinfo"),
        jwks_uri: Some("https://www.googleapis.com/oauth2/v3/certs"),
        device_authorization_url: Some("https://oauth2.googleapis.com/device/code"),
        api_base_url: Some("https://www.googleapis.com/"),
        scopes: &["openid", "email", "profile"],
        authorize_params: &[("access_type", "offline")],
        openid: true,
        notes: "A refresh token is issued only with access_type=offline (set here), and only \
                on the first consent unless prompt=consent is added.",
        ..BASE
    },
    Preset {
        name: "facebook",
        authorize_url: "https://www.facebook.com/v21.0/dialog/oauth",
        token_url: "https://graph.facebook.com/v21.0/oauth/access_token",
        userinfo_url: Some("https://graph.facebook.com/v21.0/me?fields=id,name,email"),
        api_base_url: Some("https://graph.facebook.com/v21.0/"),
        scopes: &["email", "public_profile"],
        scope_separator: ",",
        client_auth: ClientAuth::ClientSecretPost,
        token_method: TokenMethod::Get,
        notes: "The token endpoint is called with GET and the parameters in the query; older \
                API versions answered form-encoded with `expires` instead of `expires_in`. \
                Scopes are comma-separated. No refresh tokens: exchange for a long-lived token.",
        ..BASE
    },
    Preset {
        name: "entra_id",
        issuer: Some("https://login.microsoftonline.com/{tenant}/v2.0"),
        authorize_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        token_url: "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        userinfo_url: Some("https://graph.microsoft.com/oidc/userinfo"),
        jwks_uri: Some("https://login.microsoftonline.com/{tenant}/discovery/v2.0/keys"),
        device_authorization_url: Some(
            "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/devicecode",
        ),
        api_base_url: Some("https://graph.microsoft.com/v1.0/"),
        scopes: &["openid", "profile", "email", "offline_access"],
        openid: true,
        placeholders: &[("tenant", "common")],
        multi_tenant_values: &["common", "organizations", "consumers"],
        notes: "`{tenant}` is a tenant id or domain, or common, organizations or consumers. \
                A refresh token needs the offline_access scope. There is no RFC 7009 revocation. \
                With a multi-tenant value the issuer differs per user, so it is not checked.",
        ..BASE
    },
    Preset {
        name: "gitlab",
        issuer: Some("https://gitlab.com"),
        authorize_url: "https://gitlab.com/oauth/authorize",
        token_url: "https://gitlab.com/oauth/token",
        revocation_url: Some("https://gitlab.com/oauth/revoke"),
        userinfo_url: Some("https://gitlab.com/oauth/userinfo"),
        device_authorization_url: Some("https://gitlab.com/oauth/authorize_device"),
        api_base_url: Some("https://gitlab.com/api/v4/"),
        scopes: &["read_user"],
        notes: "Self-managed GitLab: use `issuer = \"https://gitlab.example.com\"` to discover \
                its endpoints instead of this preset. Access tokens expire after two hours.",
        ..BASE
    },
    Preset {
        name: "linkedin",
        issuer: Some("https://www.linkedin.com/oauth"),
        authorize_url: "https://www.linkedin.com/oauth/v2/authorization",
        token_url: "https://www.linkedin.com/oauth/v2/accessToken",
        revocation_url: Some("https://www.linkedin.com/oauth/v2/revoke"),
        userinfo_url: Some("https://api.linkedin.com/v2/userinfo"),
        jwks_uri: Some("https://www.linkedin.com/oauth/openid/jwks"),
        api_base_url: Some("https://api.linkedin.com/v2/"),
        scopes: &["openid", "profile", "email"],
        client_auth: ClientAuth::ClientSecretPost,
        openid: true,
        notes: "Sign In with LinkedIn using OpenID Connect (the r_basicprofile scope of \
                Flask-OAuthlib's days is gone). Credentials go in the form body.",
        ..BASE
    },
    Preset {
        name: "dropbox",
        authorize_url: "https://www.dropbox.com/oauth2/authorize",
        token_url: "https://api.dropboxapi.com/oauth2/token",
        api_base_url: Some("https://api.dropboxapi.com/2/"),
        userinfo_url: Some("https://api.dropboxapi.com/2/users/get_current_account"),
        authorize_params: &[("token_access_type", "offline")],
        notes: "Scopes are chosen in the app console, so none are sent by default. A refresh \
                token needs token_access_type=offline (set here). Revocation is the API call \
                POST /2/auth/token/revoke, not RFC 7009. API calls are POSTs, even reads.",
        ..BASE
    },
    Preset {
        name: "x",
        authorize_url: "https://x.com/i/oauth2/authorize",
        token_url: "https://api.x.com/2/oauth2/token",
        revocation_url: Some("https://api.x.com/2/oauth2/revoke"),
        userinfo_url: Some("https://api.x.com/2/users/me"),
        api_base_url: Some("https://api.x.com/2/"),
        scopes: &["tweet.read", "users.read", "offline.access"],
        pkce_required: true,
        notes: "X (Twitter) OAuth 2.0 requires PKCE. A refresh token needs offline.access. \
                Public clients use client_auth = \"none\"; confidential ones Basic.",
        ..BASE
    },
    Preset {
        name: "weibo",
        authorize_url: "https://api.weibo.com/oauth2/authorize",
        token_url: "https://api.weibo.com/oauth2/access_token",
        userinfo_url: Some("https://api.weibo.com/2/account/get_uid.json"),
        api_base_url: Some("https://api.weibo.com/2/"),
        scopes: &["email"],
        scope_separator: ",",
        client_auth: ClientAuth::ClientSecretPost,
        auth_scheme: "OAuth2",
        notes: "The token answer has no token_type, says uid and remind_in, and may come as \
                text/plain. API calls want `Authorization: OAuth2 <token>`, not Bearer. \
                Scopes are comma-separated.",
        ..BASE
    },
    Preset {
        name: "douban",
        authorize_url: "https://www.douban.com/service/auth2/auth",
        token_url: "https://www.douban.com/service/auth2/token",
        userinfo_url: Some("https://api.douban.com/v2/user/~me"),
        api_base_url: Some("https://api.douban.com/"),
        scopes: &["douban_basic_common"],
        scope_separator: ",",
        client_auth: ClientAuth::ClientSecretPost,
        notes: "The token answer adds douban_user_id and douban_user_name. Scopes are \
                comma-separated. Credentials go in the form body.",
        ..BASE
    },
    Preset {
        name: "discord",
        authorize_url: "https://discord.com/oauth2/authorize",
        token_url: "https://discord.com/api/oauth2/token",
        revocation_url: Some("https://discord.com/api/oauth2/token/revoke"),
        userinfo_url: Some("https://discord.com/api/users/@me"),
        api_base_url: Some("https://discord.com/api/"),
        scopes: &["identify", "email"],
        notes: "Token and revocation requests must be form-encoded (JSON is refused). \
                prompt=none skips the consent screen for users who already authorized.",
        ..BASE
    },
    Preset {
        name: "slack",
        issuer: Some("https://slack.com"),
        authorize_url: "https://slack.com/openid/connect/authorize",
        token_url: "https://slack.com/api/openid.connect.token",
        userinfo_url: Some("https://slack.com/api/openid.connect.userInfo"),
        jwks_uri: Some("https://slack.com/openid/connect/keys"),
        api_base_url: Some("https://slack.com/api/"),
        scopes: &["openid", "profile", "email"],
        client_auth: ClientAuth::ClientSecretPost,
        openid: true,
        notes: "Sign in with Slack (OpenID Connect). Slack's Web API answers errors with \
                status 200 and {\"ok\": false, \"error\": ...}. Revocation is the API method \
                auth.revoke, not RFC 7009.",
        ..BASE
    },
    Preset {
        name: "apple",
        issuer: Some("https://appleid.apple.com"),
        authorize_url: "https://appleid.apple.com/auth/authorize",
        token_url: "https://appleid.apple.com/auth/token",
        revocation_url: Some("https://appleid.apple.com/auth/revoke"),
        jwks_uri: Some("https://appleid.apple.com/auth/keys"),
        scopes: &["name", "email"],
        client_auth: ClientAuth::ClientSecretPost,
        authorize_params: &[("response_mode", "form_post")],
        openid: true,
        notes: "The client secret is an ES256-signed JWT the application makes from its key \
                (at most six months valid). With the name or email scope the callback is a \
                POST (response_mode=form_post): pass its form body to the callback handler. \
                The user's name is sent only on the first sign-in. No userinfo endpoint.",
        ..BASE
    },
];

/// The preset called `name` (`twitter` is accepted for `x`, `microsoft` and `azure` for
/// `entra_id`).
pub fn find(name: &str) -> Option<&'static Preset> {
    let name = match name {
        "twitter" => "x",
        "microsoft" | "azure" | "azure_ad" => "entra_id",
        other => other,
    };
    PRESETS.iter().find(|p| p.name == name)
}

impl Preset {
    /// The configuration for this provider with the placeholders' defaults.
    pub fn config(
        &self,
        client_id: &str,
        client_secret: Option<&str>,
    ) -> Result<AppConfig, ClientError> {
        self.config_with(client_id, client_secret, &BTreeMap::new())
    }

    /// The configuration for this provider, with `placeholders` filling the URLs.
    pub fn config_with(
        &self,
        client_id: &str,
        client_secret: Option<&str>,
        placeholders: &BTreeMap<String, String>,
    ) -> Result<AppConfig, ClientError> {
        for name in placeholders.keys() {
            if !self.placeholders.iter().any(|(p, _)| p == name) {
                return Err(ClientError::Config(format!(
                    "preset {} has no placeholder {name:?}",
                    self.name
                )));
            }
        }
        let fill = |url: &str| -> Result<String, ClientError> {
            let mut out = url.to_owned();
            for (name, default) in self.placeholders {
                let value = placeholders.get(*name).map_or(*default, String::as_str);
                if value.is_empty() || value.contains(['/', '?', '#', '@', ' ']) {
                    return Err(ClientError::Config(format!(
                        "placeholder {name} = {value:?} must be a plain path segment"
                    )));
                }
                out = out.replace(&format!("{{{name}}}"), value);
            }
            Ok(out)
        };
        let opt = |url: Option<&str>| url.map(fill).transpose();
        let multi_tenant = self.placeholders.iter().any(|(name, default)| {
            let value = placeholders.get(*name).map_or(*default, String::as_str);
            self.multi_tenant_values.contains(&value)
        });
        let mut config = AppConfig::new(client_id, client_secret);
        config.issuer = if multi_tenant {
            None
        } else {
            opt(self.issuer)?
        };
        config.authorize_url = Some(fill(self.authorize_url)?);
        config.token_url = Some(fill(self.token_url)?);
        config.revocation_url = opt(self.revocation_url)?;
        config.userinfo_url = opt(self.userinfo_url)?;
        config.jwks_uri = opt(self.jwks_uri)?;
        config.device_authorization_url = opt(self.device_authorization_url)?;
        config.api_base_url = opt(self.api_base_url)?;
        config.scopes = self.scopes.iter().map(|s| (*s).to_owned()).collect();
        config.scope_separator = self.scope_separator.to_owned();
        if client_secret.is_some() {
            config.client_auth = self.client_auth;
        }
        config.token_method = self.token_method;
        config.authorize_params = pairs(self.authorize_params);
        config.token_headers = pairs(self.token_headers);
        config.pkce_required = self.pkce_required;
        config.openid = self.openid;
        config.auth_scheme = self.auth_scheme.to_owned();
        Ok(config)
    }
}

fn pairs(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}
