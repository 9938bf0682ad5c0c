//! What can go wrong talking to a provider, typed: the RFC 6749 §5.2 / §4.1.2.1 error codes
//! become [`ErrorCode`] variants, so an application can `match` on `access_denied` or
//! `invalid_grant` instead of comparing strings.

use crate::http::TransportError;

/// The error codes of RFC 6749 (§4.1.2.1, §5.2), RFC 6750 §3.1, RFC 8628 §3.5 and OpenID
/// Connect Core §3.1.2.6; anything else is kept as [`ErrorCode::Other`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// `invalid_request`
    InvalidRequest,
    /// `invalid_client`
    InvalidClient,
    /// `invalid_grant`: the code, refresh token or credentials are wrong or spent.
    InvalidGrant,
    /// `unauthorized_client`
    UnauthorizedClient,
    /// `unsupported_grant_type`
    UnsupportedGrantType,
    /// `unsupported_response_type`
    UnsupportedResponseType,
    /// `invalid_scope`
    InvalidScope,
    /// `access_denied`: the user (or policy) said no.
    AccessDenied,
    /// `server_error`
    ServerError,
    /// `temporarily_unavailable`
    TemporarilyUnavailable,
    /// `invalid_token` (RFC 6750): the access token is expired, revoked or unknown.
    InvalidToken,
    /// `insufficient_scope` (RFC 6750)
    InsufficientScope,
    /// `authorization_pending` (RFC 8628): keep polling.
    AuthorizationPending,
    /// `slow_down` (RFC 8628): keep polling, 5 seconds slower.
    SlowDown,
    /// `expired_token` (RFC 8628): the device code expired; start again.
    ExpiredToken,
    /// `login_required` (OpenID Connect)
    LoginRequired,
    /// `consent_required` (OpenID Connect)
    ConsentRequired,
    /// `interaction_required` (OpenID Connect)
    InteractionRequired,
    /// Any other code, as the provider sent it.
    Other(String),
}

impl ErrorCode {
    /// Parses a wire code.
    pub fn parse(raw: &str) -> Self {
        match raw {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "unsupported_response_type" => Self::UnsupportedResponseType,
            "invalid_scope" => Self::InvalidScope,
            "access_denied" => Self::AccessDenied,
            "server_error" => Self::ServerError,
            "temporarily_unavailable" => Self::TemporarilyUnavailable,
            "invalid_token" => Self::InvalidToken,
            "insufficient_scope" => Self::InsufficientScope,
            "authorization_pending" => Self::AuthorizationPending,
            "slow_down" => Self::SlowDown,
            "expired_token" => Self::ExpiredToken,
            "login_required" => Self::LoginRequired,
            "consent_required" => Self::ConsentRequired,
            "interaction_required" => Self::InteractionRequired,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The wire code.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::AccessDenied => "access_denied",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InvalidToken => "invalid_token",
            Self::InsufficientScope => "insufficient_scope",
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::ExpiredToken => "expired_token",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::InteractionRequired => "interaction_required",
            Self::Other(code) => code,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error the provider answered with, from a redirect or an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderError {
    /// The code.
    pub code: ErrorCode,
    /// `error_description`, if any.
    pub description: Option<String>,
    /// `error_uri`, if any.
    pub uri: Option<String>,
    /// The HTTP status, when it came from an endpoint (not from a redirect).
    pub status: Option<u16>,
}

impl ProviderError {
    /// An error with only a code.
    pub fn new(code: ErrorCode) -> Self {
        Self {
            code,
            description: None,
            uri: None,
            status: None,
        }
    }

    /// Reads `error`, `error_description` and `error_uri` from JSON or form fields.
    pub(crate) fn from_fields(
        get: impl Fn(&str) -> Option<String>,
        status: Option<u16>,
    ) -> Option<Self> {
        let code = get("error")?;
        Some(Self {
            code: ErrorCode::parse(&code),
            description: get("error_description"),
            uri: get("error_uri"),
            status,
        })
    }
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(d) = &self.description {
            write!(f, ": {d}")?;
        }
        Ok(())
    }
}

/// Everything the client can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No response: connection, TLS or timeout.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// The provider answered with an OAuth error.
    #[error("the provider answered {0}")]
    Provider(ProviderError),
    /// The callback's `state` is not the one this login started with: a forged or replayed
    /// callback (CSRF, RFC 6749 §10.12).
    #[error("the callback's state does not match the login it claims to finish")]
    StateMismatch,
    /// The callback's `iss` is not the provider's issuer (RFC 9207): a mix-up attack.
    #[error("the callback's issuer {got:?} is not the expected {expected:?}")]
    IssuerMismatch {
        /// The issuer the app was configured or discovered with.
        expected: String,
        /// What the callback said (`None`: absent although the provider promised it).
        got: Option<String>,
    },
    /// The ID token is not the provider's or does not belong to this login (signature,
    /// issuer, audience, expiry, nonce ...; OpenID Connect Core §3.1.3.7).
    #[error("the ID token is not valid for this login: {0}")]
    IdToken(#[from] crate::id_token::IdTokenError),
    /// The callback has neither `code` nor `error`.
    #[error("the callback has no code")]
    MissingCode,
    /// The provider's answer could not be understood.
    #[error("unexpected response from the provider: {0}")]
    InvalidResponse(String),
    /// The remote app is not configured for what was asked.
    #[error("configuration: {0}")]
    Config(String),
    /// No remote app of that name is registered.
    #[error("no remote app named {0:?}")]
    UnknownApp(String),
    /// The token hook has no token for this request.
    #[error("no token available; sign in first")]
    NoToken,
    /// The application's token hook failed.
    #[error("token hook: {0}")]
    TokenHook(String),
}

impl ClientError {
    /// The provider's error code, if this is a provider error.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self {
            Self::Provider(e) => Some(&e.code),
            _ => None,
        }
    }
}
