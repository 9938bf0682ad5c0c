//! Audit events as structured log lines under the `latchkey::audit` target. Events carry
//! identifiers only, never a secret, a token or a password.

use latchkey_core::events::{Event, EventSink};

/// Writes every core event to the log.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogEvents;

impl EventSink for LogEvents {
    fn emit(&self, event: &Event) {
        match event {
            Event::TokenIssued {
                client_id,
                grant_type,
                subject,
                with_refresh,
            } => tracing::info!(
                target: "latchkey::audit",
                event = "token_issued",
                client_id,
                grant_type = grant_type.as_str(),
                subject = subject.as_deref().unwrap_or(""),
                with_refresh,
            ),
            Event::RefreshReuseDetected { client_id, family } => tracing::warn!(
                target: "latchkey::audit",
                event = "refresh_reuse_detected",
                client_id,
                family,
            ),
            Event::CodeReplayed { client_id, family } => tracing::warn!(
                target: "latchkey::audit",
                event = "code_replayed",
                client_id,
                family,
            ),
            Event::ConsentGranted {
                client_id,
                subject,
                scope,
            } => tracing::info!(
                target: "latchkey::audit",
                event = "consent_granted",
                client_id,
                subject,
                scope,
            ),
            Event::ConsentDenied { client_id, subject } => tracing::info!(
                target: "latchkey::audit",
                event = "consent_denied",
                client_id,
                subject,
            ),
            Event::TokenRevoked {
                client_id,
                kind,
                revoked,
            } => tracing::info!(
                target: "latchkey::audit",
                event = "token_revoked",
                client_id,
                kind = kind.as_str(),
                revoked,
            ),
            Event::ClientAuthFailed { client_id } => tracing::warn!(
                target: "latchkey::audit",
                event = "client_auth_failed",
                client_id = client_id.as_deref().unwrap_or(""),
            ),
            Event::UserAuthFailed {
                client_id,
                username,
            } => tracing::warn!(
                target: "latchkey::audit",
                event = "user_auth_failed",
                client_id,
                username,
            ),
        }
    }
}
