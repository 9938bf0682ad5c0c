//! Audit events. The core emits them through an [`EventSink`]; nothing comes back, and no
//! event carries a secret, a token value or a password.

use crate::client::GrantType;

/// Something an operator may want in an audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Tokens were issued by a grant.
    TokenIssued {
        /// The client.
        client_id: String,
        /// The grant used.
        grant_type: GrantType,
        /// The resource owner, if any.
        subject: Option<String>,
        /// Whether a refresh token was included.
        with_refresh: bool,
    },
    /// A refresh token was presented again after rotation; its family was revoked.
    RefreshReuseDetected {
        /// The client that presented it.
        client_id: String,
        /// The revoked family.
        family: String,
    },
    /// An authorization code was presented again; the tokens issued from it were revoked.
    CodeReplayed {
        /// The client that presented it.
        client_id: String,
        /// The revoked family.
        family: String,
    },
    /// A resource owner approved a client's authorization request.
    ConsentGranted {
        /// The client.
        client_id: String,
        /// The resource owner.
        subject: String,
        /// The approved scope, space-delimited.
        scope: String,
    },
    /// A resource owner denied a client's authorization request.
    ConsentDenied {
        /// The client.
        client_id: String,
        /// The resource owner.
        subject: String,
    },
    /// A client revoked a token (RFC 7009).
    TokenRevoked {
        /// The client.
        client_id: String,
        /// What was presented.
        kind: crate::token::TokenKind,
        /// How many tokens stopped working (a refresh token takes its family).
        revoked: u64,
    },
    /// A client failed to authenticate.
    ClientAuthFailed {
        /// The identifier it claimed, if any.
        client_id: Option<String>,
    },
    /// An endpoint refused a request with an RFC 6749 error (for metrics: which errors, how
    /// often). Carries no client input.
    Refused {
        /// The endpoint: `token`, `revoke` or `introspect`.
        endpoint: &'static str,
        /// The error answered.
        error: crate::error::ErrorCode,
        /// The HTTP status answered (429 for a rate limit).
        status: u16,
    },
    /// A resource owner's password was right (the login pages and the password grant).
    UserAuthenticated {
        /// The client that asked (empty when unknown).
        client_id: String,
        /// The resource owner.
        subject: String,
    },
    /// A password check was refused unmade: too many failures for the user name or address.
    UserAuthThrottled {
        /// The client that asked (empty when unknown).
        client_id: String,
        /// The user name tried.
        username: String,
    },
    /// A resource owner's password was wrong or the user unknown.
    UserAuthFailed {
        /// The client that asked.
        client_id: String,
        /// The user name tried (not secret, but may be mistyped passwords: log with care).
        username: String,
    },
}

/// Where events go: a log, a queue, a metrics counter.
pub trait EventSink: Send + Sync + 'static {
    /// Receives one event. Must not block for long: it runs on the request path.
    fn emit(&self, event: &Event);
}

/// Drops every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: &Event) {}
}
