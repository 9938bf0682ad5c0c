//! OAuth errors: the RFC error codes, a safe description for the client, a private detail for
//! the log, and the HTTP status each one maps to (RFC 6749 §4.1.2.1, §5.2; RFC 6750 §3.1).

use crate::http::HttpResponse;
use std::borrow::Cow;

/// The error codes of RFC 6749, RFC 6750 and RFC 7009, as sent in `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// The request is malformed: missing, repeated or invalid parameters.
    InvalidRequest,
    /// Client authentication failed (RFC 6749 §5.2).
    InvalidClient,
    /// The grant (code, refresh token, password) is invalid, expired or revoked.
    InvalidGrant,
    /// The client may not use this grant type or response type.
    UnauthorizedClient,
    /// The grant type is not supported by the server.
    UnsupportedGrantType,
    /// The requested scope is unknown, malformed or beyond what is allowed.
    InvalidScope,
    /// The resource owner or server denied the request.
    AccessDenied,
    /// The response type is not supported by the server.
    UnsupportedResponseType,
    /// The server met an unexpected condition.
    ServerError,
    /// The server cannot handle the request now (overload, store outage).
    TemporarilyUnavailable,
    /// The access token is invalid, expired or revoked (RFC 6750 §3.1).
    InvalidToken,
    /// The access token lacks the scope the resource needs (RFC 6750 §3.1).
    InsufficientScope,
    /// The token type cannot be revoked (RFC 7009 §2.2.1).
    UnsupportedTokenType,
    /// `prompt=none` was sent but the user is not logged in (OpenID Connect Core §3.1.2.6).
    LoginRequired,
    /// `prompt=none` was sent but the user has not consented (OpenID Connect Core §3.1.2.6).
    ConsentRequired,
    /// `prompt=none` was sent but the request needs a page the user must act on other than
    /// login or consent, such as confirming the account (OpenID Connect Core §3.1.2.6).
    InteractionRequired,
    /// The `request` parameter (a request object) is not supported (OpenID Connect Core
    /// §3.1.2.6, §6).
    RequestNotSupported,
    /// The `request_uri` parameter is not supported (OpenID Connect Core §3.1.2.6, §6).
    RequestUriNotSupported,
    /// The `registration` parameter is not supported (OpenID Connect Core §3.1.2.6, §7.2.1).
    RegistrationNotSupported,
    /// The authentication the client asked for as essential (an `acr` of OpenID Connect Core
    /// §5.5.1.1) cannot be met (OpenID Connect Core Error Code
    /// unmet_authentication_requirements 1.0).
    UnmetAuthenticationRequirements,
    /// The `request_uri` names no usable pushed request: unknown, expired, already used or
    /// another client's (RFC 9101 §7, used by RFC 9126 §4).
    InvalidRequestUri,
    /// The device authorization is still waiting on the user (RFC 8628 §3.5).
    AuthorizationPending,
    /// The device polls too fast; it must wait 5 seconds longer from now on (RFC 8628 §3.5).
    SlowDown,
    /// The device code expired; the device starts a new authorization (RFC 8628 §3.5).
    ExpiredToken,
    /// A redirect URI of a registration request is refused (RFC 7591 §3.2.2).
    InvalidRedirectUri,
    /// A metadata value of a registration request is refused (RFC 7591 §3.2.2).
    InvalidClientMetadata,
    /// The software statement of a registration request is invalid (RFC 7591 §3.2.2).
    InvalidSoftwareStatement,
    /// The software statement is not approved by this server (RFC 7591 §3.2.2).
    UnapprovedSoftwareStatement,
    /// The requested resource is invalid, unknown, or not one this client may get a token
    /// for (RFC 8707 §2, RFC 8693 §2.2.2).
    InvalidTarget,
    /// The DPoP proof is missing where required, malformed or invalid (RFC 9449 §5, §7.1).
    InvalidDpopProof,
    /// The DPoP proof must carry the server's nonce given in `DPoP-Nonce` (RFC 9449 §8).
    UseDpopNonce,
    /// The request object (`request`, RFC 9101) is invalid: unsigned, signed with an
    /// algorithm or key not allowed, expired, or naming another client or server
    /// (RFC 9101 §6.3, §7; OpenID Connect Core §3.1.2.6).
    InvalidRequestObject,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::UnsupportedTokenType => "unsupported_token_type",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InteractionRequired => "interaction_required",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
            Self::RegistrationNotSupported => "registration_not_supported",
            Self::UnmetAuthenticationRequirements => "unmet_authentication_requirements",
            Self::InvalidRequestUri => "invalid_request_uri",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidSoftwareStatement => "invalid_software_statement",
            Self::UnapprovedSoftwareStatement => "unapproved_software_statement",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::InvalidRequestObject => "invalid_request_object",
        }
    }

    /// The HTTP status this code is answered with at the token endpoint and by resources.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidClient | Self::InvalidToken => 401,
            Self::InsufficientScope | Self::AccessDenied => 403,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
            _ => 400,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth error: what the client is told, and what only the log may see.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{code}: {}", description.as_deref().unwrap_or(""))]
pub struct OAuthError {
    code: ErrorCode,
    description: Option<Cow<'static, str>>,
    detail: Option<String>,
    status: Option<u16>,
    headers: Vec<(String, String)>,
}

impl OAuthError {
    /// An error with `code` and a description safe to show the client.
    pub fn new(code: ErrorCode, description: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            description: Some(description.into()),
            detail: None,
            status: None,
            headers: Vec::new(),
        }
    }

    /// `invalid_request` with a description.
    pub fn invalid_request(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// `invalid_client`: answered with 401 and `WWW-Authenticate: Basic` (RFC 6749 §5.2).
    pub fn invalid_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidClient, description).with_header(
            "www-authenticate",
            "Basic realm=\"latchkey\", charset=\"UTF-8\"",
        )
    }

    /// `invalid_grant` with a description.
    pub fn invalid_grant(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidGrant, description)
    }

    /// `invalid_scope` with a description.
    pub fn invalid_scope(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidScope, description)
    }

    /// `unauthorized_client` with a description.
    pub fn unauthorized_client(description: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::UnauthorizedClient, description)
    }

    /// `server_error`: the client learns nothing more; attach the cause with
    /// [`OAuthError::with_detail`] for the log.
    pub fn server_error() -> Self {
        Self::new(
            ErrorCode::ServerError,
            "the server met an unexpected condition",
        )
    }

    /// `temporarily_unavailable` (503): a store or dependency is down; try again later.
    pub fn temporarily_unavailable() -> Self {
        Self::new(
            ErrorCode::TemporarilyUnavailable,
            "the service is temporarily unavailable",
        )
        .with_header("retry-after", "1")
    }

    /// Attaches a private detail: logged, never sent.
    pub fn with_detail(mut self, detail: impl std::fmt::Display) -> Self {
        self.detail = Some(detail.to_string());
        self
    }

    /// Overrides the HTTP status (e.g. 405 for a wrong method).
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The error code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The description sent to the client.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The private detail, for the log.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// Extra response headers (`WWW-Authenticate`, `Allow`, `Retry-After`).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        self.status.unwrap_or_else(|| self.code.status())
    }

    /// The JSON error response of RFC 6749 §5.2, with `error_uri` when one is configured.
    pub fn to_response(&self, error_uri: Option<&str>) -> HttpResponse {
        let mut body = serde_json::json!({ "error": self.code.as_str() });
        if let Some(d) = &self.description {
            body["error_description"] = crate::params::printable_long(d).into();
        }
        if let Some(uri) = error_uri {
            body["error_uri"] = uri.into();
        }
        let mut response = HttpResponse::json_no_store(self.status(), &body);
        response.headers.extend(self.headers.iter().cloned());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_client_is_401_with_basic_challenge() {
        let r = OAuthError::invalid_client("unknown client").to_response(None);
        assert_eq!(r.status, 401);
        assert!(
            r.header("www-authenticate")
                .is_some_and(|v| v.starts_with("Basic"))
        );
        assert_eq!(r.json_body()["error"], "invalid_client");
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }

    #[test]
    fn detail_is_never_sent() {
        let r = OAuthError::server_error()
            .with_detail("db password is hunter2")
            .to_response(Some("https://docs.example/errors"));
        let body = String::from_utf8_lossy(&r.body);
        assert!(!body.contains("hunter2"));
        assert_eq!(r.status, 500);
        assert_eq!(r.json_body()["error_uri"], "https://docs.example/errors");
    }
}
