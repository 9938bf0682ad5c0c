//! Wire types of the token endpoint, parsed once at the edge (RFC 6749 §4.3-§4.4, §5, §6).

use crate::client::ExtensionGrantType;
use crate::error::OAuthError;
use crate::params::{Params, printable};
use crate::scope::ScopeSet;
use crate::secret::Secret;

/// A token request, by `grant_type`.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TokenRequest {
    /// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5).
    AuthorizationCode {
        /// The code from the authorization response.
        code: Secret,
        /// The redirect URI, which must repeat the one of the authorization request.
        redirect_uri: Option<String>,
        /// The PKCE verifier.
        code_verifier: Option<String>,
    },
    /// `grant_type=client_credentials` (RFC 6749 §4.4.2).
    ClientCredentials {
        /// The requested scope, if any.
        scope: Option<ScopeSet>,
    },
    /// `grant_type=password` (RFC 6749 §4.3.2).
    Password {
        /// The resource owner's user name.
        username: String,
        /// The resource owner's password.
        password: Secret,
        /// The requested scope, if any.
        scope: Option<ScopeSet>,
    },
    /// `grant_type=refresh_token` (RFC 6749 §6).
    RefreshToken {
        /// The refresh token presented.
        refresh_token: Secret,
        /// A narrower scope, if requested.
        scope: Option<ScopeSet>,
    },
    /// `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4): a device
    /// polling for the user's answer.
    DeviceCode {
        /// The device code from the device authorization response.
        device_code: Secret,
    },
    /// An extension grant registered on the provider (RFC 6749 §4.5); its handler reads the
    /// rest of the parameters.
    Extension {
        /// The grant type, one the provider serves.
        grant_type: ExtensionGrantType,
        /// The requested scope, if any.
        scope: Option<ScopeSet>,
    },
}

impl TokenRequest {
    /// Parses the body parameters of a token request for one of the standard grants.
    pub fn from_params(params: &Params) -> Result<Self, OAuthError> {
        Self::from_params_with(params, |_| None)
    }

    /// Parses the body parameters of a token request; `extension` names the extension grant
    /// a `grant_type` is, if the provider serves one by that name (the standard names never
    /// reach it).
    pub fn from_params_with(
        params: &Params,
        extension: impl FnOnce(&str) -> Option<ExtensionGrantType>,
    ) -> Result<Self, OAuthError> {
        let grant_type = params.require("grant_type")?;
        let scope = params.get("scope").map(ScopeSet::parse).transpose()?;
        match grant_type {
            "authorization_code" => Ok(Self::AuthorizationCode {
                code: Secret::new(params.require("code")?),
                redirect_uri: params.get("redirect_uri").map(str::to_owned),
                code_verifier: params.get("code_verifier").map(str::to_owned),
            }),
            "client_credentials" => Ok(Self::ClientCredentials { scope }),
            "password" => Ok(Self::Password {
                username: params.require("username")?.to_owned(),
                password: Secret::new(params.require("password")?),
                scope,
            }),
            "refresh_token" => Ok(Self::RefreshToken {
                refresh_token: Secret::new(params.require("refresh_token")?),
                scope,
            }),
            crate::device::GRANT_TYPE => Ok(Self::DeviceCode {
                device_code: Secret::new(params.require("device_code")?),
            }),
            other => match extension(other) {
                Some(grant_type) => Ok(Self::Extension { grant_type, scope }),
                None => Err(OAuthError::new(
                    crate::error::ErrorCode::UnsupportedGrantType,
                    format!("grant_type '{}' is not supported", printable(other)),
                )),
            },
        }
    }

    /// The grant type this request uses.
    pub fn grant_type(&self) -> crate::client::GrantType {
        use crate::client::GrantType;
        match self {
            Self::AuthorizationCode { .. } => GrantType::AuthorizationCode,
            Self::ClientCredentials { .. } => GrantType::ClientCredentials,
            Self::Password { .. } => GrantType::Password,
            Self::RefreshToken { .. } => GrantType::RefreshToken,
            Self::DeviceCode { .. } => GrantType::DeviceCode,
            Self::Extension { grant_type, .. } => GrantType::Extension(*grant_type),
        }
    }
}

/// The `token_type` of a token response (RFC 6749 §7.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenType {
    /// A bearer token (RFC 6750).
    #[default]
    Bearer,
    /// A DPoP-bound token (RFC 9449 §5.1).
    Dpop,
    /// A token that is not an access token (RFC 8693 §2.2.1: "If the issued token is not an
    /// access token or usable as an access token, then the token_type value N_A is used").
    NotApplicable,
}

impl TokenType {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bearer => "Bearer",
            Self::Dpop => "DPoP",
            Self::NotApplicable => "N_A",
        }
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Debug)]
pub struct TokenResponse {
    /// `Bearer`, or `DPoP` for a token bound to a DPoP key.
    pub token_type: TokenType,
    /// The access token.
    pub access_token: Secret,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token, if issued.
    pub refresh_token: Option<Secret>,
    /// The granted scope.
    pub scope: ScopeSet,
    /// The ID token, when the grant's scope has `openid` (OpenID Connect Core §3.1.3.3).
    pub id_token: Option<String>,
    /// Members a [`crate::extras::ResponseExtras`] hook added; never a standard one.
    pub extra: crate::extras::ExtraMembers,
    /// The type of the issued token, for a token exchange (RFC 8693 §2.2.1:
    /// `issued_token_type`, REQUIRED there); `None` for every other grant.
    pub issued_token_type: Option<&'static str>,
}

/// The bytes a token response's body is given at first: room for an access and a refresh
/// token, their lifetime, type and a scope of a few words.
const RESPONSE_CAPACITY: usize = 256;

impl TokenResponse {
    /// The JSON response, with `Cache-Control: no-store` and `Pragma: no-cache`.
    pub fn to_http(&self) -> crate::http::HttpResponse {
        /// The RFC 6749 §5.1 body, serialized straight from borrowed fields (no
        /// intermediate JSON tree on the hot path); keys in alphabetical order.
        #[derive(serde::Serialize)]
        struct Wire<'a> {
            access_token: &'a str,
            expires_in: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            id_token: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            issued_token_type: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            refresh_token: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            scope: Option<ScopeText<'a>>,
            token_type: &'static str,
        }
        use crate::scope::ScopeText;
        let wire = Wire {
            access_token: self.access_token.expose(),
            expires_in: self.expires_in,
            id_token: self.id_token.as_deref(),
            issued_token_type: self.issued_token_type,
            refresh_token: self.refresh_token.as_ref().map(|r| r.expose()),
            scope: (!self.scope.is_empty()).then_some(ScopeText(&self.scope)),
            token_type: self.token_type.as_str(),
        };
        let body = if self.extra.is_empty() {
            // One buffer the size of a usual answer (two 43-character tokens, a scope), so
            // the body is written without growing it.
            let mut body = Vec::with_capacity(RESPONSE_CAPACITY);
            serde_json::to_writer(&mut body, &wire).map(|()| body)
        } else {
            serde_json::to_value(&wire).and_then(|value| {
                let serde_json::Value::Object(standard) = value else {
                    return serde_json::to_vec(&value);
                };
                // Sorted whatever order serde_json's map keeps. `ExtraMembers` holds no
                // standard name; `or_insert` keeps the standard value even so.
                let mut members: std::collections::BTreeMap<String, serde_json::Value> =
                    standard.into_iter().collect();
                for (name, extra) in self.extra.iter() {
                    members
                        .entry(name.to_owned())
                        .or_insert_with(|| extra.clone());
                }
                serde_json::to_vec(&members)
            })
        };
        match body {
            Ok(body) => crate::http::HttpResponse::json_bytes_no_store(body),
            // Strings and integers always serialize; this arm exists so no path can panic.
            Err(_) => crate::error::OAuthError::server_error().to_response(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_response_body_is_the_json_object_with_sorted_keys() {
        let full = TokenResponse {
            token_type: TokenType::Bearer,
            access_token: Secret::new("at"),
            expires_in: 3600,
            refresh_token: Some(Secret::new("rt")),
            scope: ScopeSet::parse("write read").expect("valid"),
            id_token: None,
            extra: Default::default(),
            issued_token_type: None,
        }
        .to_http();
        assert_eq!(
            String::from_utf8(full.body.clone()).expect("utf-8"),
            r#"{"access_token":"at","expires_in":3600,"refresh_token":"rt","scope":"read write","token_type":"Bearer"}"#
        );
        assert_eq!(full.header("cache-control"), Some("no-store"));
        assert_eq!(full.header("pragma"), Some("no-cache"));
        assert_eq!(full.header("content-type"), Some("application/json"));

        let bare = TokenResponse {
            token_type: TokenType::Bearer,
            access_token: Secret::new("a\"t"),
            expires_in: 60,
            refresh_token: None,
            scope: ScopeSet::empty(),
            id_token: None,
            extra: Default::default(),
            issued_token_type: None,
        }
        .to_http();
        assert_eq!(
            String::from_utf8(bare.body).expect("utf-8"),
            r#"{"access_token":"a\"t","expires_in":60,"token_type":"Bearer"}"#
        );
    }

    #[test]
    fn extra_members_join_the_sorted_body() {
        let mut extra = crate::extras::ExtraMembers::new();
        extra.insert("user_id", 1234);
        extra.insert("aardvark", serde_json::json!({"nested": true}));
        let response = TokenResponse {
            token_type: TokenType::Bearer,
            access_token: Secret::new("at"),
            expires_in: 60,
            refresh_token: None,
            scope: ScopeSet::empty(),
            id_token: Some("h.p.s".into()),
            extra,
            issued_token_type: None,
        }
        .to_http();
        assert_eq!(
            String::from_utf8(response.body).expect("utf-8"),
            r#"{"aardvark":{"nested":true},"access_token":"at","expires_in":60,"id_token":"h.p.s","token_type":"Bearer","user_id":1234}"#
        );
    }
}
