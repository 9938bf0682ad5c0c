//! Audit events. The core emits them through an [`EventSink`]; nothing comes back, and no
//! event carries a secret, a token value or a password.

use crate::client::GrantType;

/// Something an operator may want in an audit trail.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
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

/// The most characters of an identifier a log line carries.
pub const MAX_LOGGED_CHARS: usize = 128;

/// `value` fit for a log line: control characters replaced by U+FFFD, and cut to
/// [`MAX_LOGGED_CHARS`] characters (ending in `…` when cut). Every identifier a client chose
/// (client ids, user names) goes through it before it is written, so no request makes a
/// long or forged line. Validation already refuses most such values; this is the bound on
/// what is left.
pub fn loggable(value: &str) -> std::borrow::Cow<'_, str> {
    let clean = value.chars().count() <= MAX_LOGGED_CHARS && !value.chars().any(char::is_control);
    if clean {
        return std::borrow::Cow::Borrowed(value);
    }
    let mut out: String = value
        .chars()
        .take(MAX_LOGGED_CHARS)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    if value.chars().nth(MAX_LOGGED_CHARS).is_some() {
        out.push('…');
    }
    std::borrow::Cow::Owned(out)
}

/// Where events go: a log, a queue, a metrics counter.
pub trait EventSink: Send + Sync + 'static {
    /// Receives one event. Must not block for long: it runs on the request path.
    fn emit(&self, event: &Event);

    /// Receives one event caused by a request from `client_ip` (the address behind the
    /// trusted proxies), for sinks that record where events came from. By default the
    /// address is dropped and [`EventSink::emit`] receives the event.
    fn emit_from(&self, event: &Event, client_ip: Option<std::net::IpAddr>) {
        let _ = client_ip;
        self.emit(event);
    }
}

/// Drops every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: &Event) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_14_logged_identifiers_are_bounded_and_on_one_line() {
        assert_eq!(loggable("alice"), "alice");
        let huge = "x".repeat(200 * 1024);
        let long = loggable(&huge);
        assert_eq!(long.chars().count(), MAX_LOGGED_CHARS + 1);
        assert!(long.ends_with('…'));
        assert_eq!(loggable("a\nevent=forged"), "a\u{FFFD}event=forged");
    }
}
