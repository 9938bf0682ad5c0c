//! Audit events as structured log lines under the `latchkey::audit` target, and as metrics.
//! Events carry identifiers only, never a secret, a token or a password; each line names the
//! client address (`client_ip`) when the event came from a request, and identifiers a client
//! chose are cut to a bounded length ([`loggable`]).
//!
//! Admin changes are audited where they are made (`admin.rs`), for the CLI and the admin API
//! alike; a change made through the API names the caller's address too, which
//! [`admin_request_scope`] makes known to them for the length of the request.

use latchkey_core::events::{Event, EventSink, loggable};
use std::net::IpAddr;

tokio::task_local! {
    /// The client address of the admin API request being served on this task.
    static REQUEST_CLIENT: IpAddr;
}

/// Middleware of the admin listener: the request's client address (resolved through the
/// trusted proxies, as everywhere) is what [`request_client_ip`] returns while the request
/// is served, so admin audit lines name it without every operation taking it as an argument.
pub async fn admin_request_scope(
    axum::extract::State(proxies): axum::extract::State<
        std::sync::Arc<latchkey_core::net::TrustedProxies>,
    >,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match crate::access_log::client_ip(&proxies, &req) {
        Some(ip) => REQUEST_CLIENT.scope(ip, next.run(req)).await,
        None => next.run(req).await,
    }
}

/// The client address of the admin API request in progress, as an audit field; `None`
/// (the field is left out) for the CLI, which has no client address.
pub fn request_client_ip() -> Option<tracing::field::DisplayValue<IpAddr>> {
    REQUEST_CLIENT
        .try_with(|ip| *ip)
        .ok()
        .map(tracing::field::display)
}

/// Writes every core event to the log and counts it in the metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogEvents;

impl EventSink for LogEvents {
    fn emit(&self, event: &Event) {
        self.emit_from(event, None);
    }

    fn emit_from(&self, event: &Event, ip: Option<IpAddr>) {
        count(event);
        // Where the request came from, when there was one; absent from the line otherwise.
        let client_ip = ip.map(tracing::field::display);
        match event {
            Event::TokenIssued {
                client_id,
                grant_type,
                subject,
                with_refresh,
            } => {
                // One per issued token: written straight into the log queue when the
                // subscriber takes lines that way, with the fields of the `info!` below, in
                // its order (`crate::logging::direct`).
                let line = crate::logging::direct::callsite!(
                    "latchkey::audit",
                    tracing::Level::INFO,
                    [
                        "event",
                        "client_id",
                        "grant_type",
                        "subject",
                        "with_refresh",
                        "client_ip"
                    ]
                );
                let written = crate::logging::direct::write(line, |m| {
                    m.str("event", "token_issued")?;
                    m.str("client_id", &loggable(client_id))?;
                    m.str("grant_type", grant_type.as_str())?;
                    m.str("subject", subject.as_deref().unwrap_or(""))?;
                    m.bool("with_refresh", *with_refresh)?;
                    match ip {
                        Some(ip) => m.ip("client_ip", ip),
                        None => Ok(()),
                    }
                });
                if !written {
                    tracing::info!(
                        target: "latchkey::audit",
                        event = "token_issued",
                        client_id = %loggable(client_id),
                        grant_type = grant_type.as_str(),
                        subject = subject.as_deref().unwrap_or(""),
                        with_refresh,
                        client_ip,
                    );
                }
            }
            Event::RefreshReuseDetected { client_id, family } => tracing::warn!(
                target: "latchkey::audit",
                event = "refresh_reuse_detected",
                client_id = %loggable(client_id),
                family,
                client_ip,
            ),
            Event::CodeReplayed { client_id, family } => tracing::warn!(
                target: "latchkey::audit",
                event = "code_replayed",
                client_id = %loggable(client_id),
                family,
                client_ip,
            ),
            Event::ConsentGranted {
                client_id,
                subject,
                scope,
            } => tracing::info!(
                target: "latchkey::audit",
                event = "consent_granted",
                client_id = %loggable(client_id),
                subject,
                scope,
                client_ip,
            ),
            Event::ConsentDenied { client_id, subject } => tracing::info!(
                target: "latchkey::audit",
                event = "consent_denied",
                client_id = %loggable(client_id),
                subject,
                client_ip,
            ),
            Event::TokenRevoked {
                client_id,
                kind,
                revoked,
            } => tracing::info!(
                target: "latchkey::audit",
                event = "token_revoked",
                client_id = %loggable(client_id),
                kind = kind.as_str(),
                revoked,
                client_ip,
            ),
            // Refusals are counted, not audited: they are the client's mistakes, and the
            // token endpoint logs them at debug level already.
            Event::Refused { .. } => {}
            Event::ClientAuthFailed { client_id } => tracing::warn!(
                target: "latchkey::audit",
                event = "client_auth_failed",
                client_id = %loggable(client_id.as_deref().unwrap_or("")),
                client_ip,
            ),
            Event::UserAuthenticated { client_id, subject } => tracing::info!(
                target: "latchkey::audit",
                event = "user_authenticated",
                client_id = %loggable(client_id),
                subject,
                client_ip,
            ),
            Event::UserAuthThrottled {
                client_id,
                username,
            } => tracing::warn!(
                target: "latchkey::audit",
                event = "user_auth_throttled",
                client_id = %loggable(client_id),
                username = %loggable(username),
                client_ip,
            ),
            Event::UserAuthFailed {
                client_id,
                username,
            } => tracing::warn!(
                target: "latchkey::audit",
                event = "user_auth_failed",
                client_id = %loggable(client_id),
                username = %loggable(username),
                client_ip,
            ),
            // An event a later core adds: logged whole (events carry no secrets) until it
            // gets a line of its own.
            other => tracing::info!(
                target: "latchkey::audit",
                event = "other",
                detail = ?other,
                client_ip,
            ),
        }
    }
}

/// Counts an event in the metrics; labels come from fixed lists only.
fn count(event: &Event) {
    match event {
        Event::TokenIssued { grant_type, .. } => {
            static ISSUED: crate::metrics::Handles<&str, metrics::Counter> =
                std::sync::OnceLock::new();
            let grant_type = grant_type.as_str();
            crate::metrics::handle(
                &ISSUED,
                grant_type,
                || metrics::counter!("latchkey_tokens_issued_total", "grant_type" => grant_type),
            )
            .increment(1);
        }
        Event::Refused {
            endpoint,
            error,
            status,
        } => {
            metrics::counter!(
                "latchkey_refusals_total",
                "endpoint" => *endpoint,
                "error" => error.as_str(),
                "status" => status.to_string()
            )
            .increment(1);
        }
        Event::ClientAuthFailed { .. } => {
            metrics::counter!("latchkey_auth_failures_total", "kind" => "client").increment(1);
        }
        Event::UserAuthFailed { .. } => {
            metrics::counter!("latchkey_auth_failures_total", "kind" => "user").increment(1);
        }
        Event::RefreshReuseDetected { .. } => {
            metrics::counter!("latchkey_reuse_detected_total", "kind" => "refresh_token")
                .increment(1);
        }
        Event::CodeReplayed { .. } => {
            metrics::counter!("latchkey_reuse_detected_total", "kind" => "code").increment(1);
        }
        Event::TokenRevoked { .. } => {
            metrics::counter!("latchkey_revocations_total").increment(1);
        }
        Event::ConsentGranted { .. }
        | Event::ConsentDenied { .. }
        | Event::UserAuthenticated { .. }
        | Event::UserAuthThrottled { .. } => {}
        // Events a later core adds are not counted until they get a metric.
        _ => {}
    }
}
