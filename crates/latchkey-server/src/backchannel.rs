//! Delivery of back-channel logout tokens (OpenID Connect Back-Channel Logout 1.0 §2.5): the
//! server's [`LogoutSink`].
//!
//! The core decides who is told and signs the tokens; this module POSTs them, off the request
//! path. A logout hands its tokens to a bounded queue and returns at once; a worker takes them
//! from it and delivers each in its own task, at most [`DeliveryPolicy::concurrency`] at a
//! time, every attempt bounded by [`DeliveryPolicy::timeout`], retried with doubling backoff
//! up to [`DeliveryPolicy::attempts`] times when the relying party cannot be reached or
//! answers with a server error. A `4xx` is the RP refusing the token (§2.8: "If the logout
//! failed, the RP MUST return 400"): retrying would not change its mind. Failures are logged
//! with the client and the URI, never the token. When the queue is full, new tokens are
//! dropped and logged: a logout never waits on a relying party.

use latchkey_core::logout::{BackchannelLogout, LogoutSink};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// The bounds of back-channel delivery.
#[derive(Clone, Debug)]
pub struct DeliveryPolicy {
    /// How many tokens may wait for delivery; more are dropped.
    pub queue: usize,
    /// How many deliveries run at once.
    pub concurrency: usize,
    /// Attempts per token, the first included.
    pub attempts: u32,
    /// The wait before the second attempt; doubled before each next one.
    pub first_backoff: Duration,
    /// The limit of one attempt (connect, send, answer).
    pub timeout: Duration,
}

impl Default for DeliveryPolicy {
    /// 1024 queued, 16 at once, 5 attempts 1 s, 2 s, 4 s, 8 s apart, 5 s each: a token is
    /// delivered or given up within about 40 s, inside its 120 s lifetime.
    fn default() -> Self {
        Self {
            queue: 1024,
            concurrency: 16,
            attempts: 5,
            first_backoff: Duration::from_secs(1),
            timeout: Duration::from_secs(5),
        }
    }
}

/// The server's [`LogoutSink`]: a bounded queue in front of a delivery worker.
#[derive(Clone, Debug)]
pub struct BackchannelDelivery {
    queue: mpsc::Sender<BackchannelLogout>,
}

impl BackchannelDelivery {
    /// Starts the delivery worker on the current Tokio runtime.
    pub fn start(policy: DeliveryPolicy) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            // A relying party's redirect is not followed: the token goes to the registered URI.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(policy.timeout)
            .connect_timeout(policy.timeout)
            .build()?;
        let (queue, mut waiting) = mpsc::channel::<BackchannelLogout>(policy.queue.max(1));
        let slots = Arc::new(Semaphore::new(policy.concurrency.max(1)));
        tokio::spawn(async move {
            while let Some(logout) = waiting.recv().await {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let http = http.clone();
                let policy = policy.clone();
                tokio::spawn(async move {
                    deliver(&http, &logout, &policy).await;
                    drop(slot);
                });
            }
        });
        Ok(Self { queue })
    }
}

impl LogoutSink for BackchannelDelivery {
    fn deliver(&self, logout: BackchannelLogout) {
        if let Err(err) = self.queue.try_send(logout) {
            let (reason, logout) = match err {
                mpsc::error::TrySendError::Full(l) => ("the delivery queue is full", l),
                mpsc::error::TrySendError::Closed(l) => ("delivery has stopped", l),
            };
            tracing::warn!(
                client_id = %logout.client_id,
                reason,
                "back-channel logout dropped"
            );
        }
    }
}

/// Delivers one logout token with the policy's retries; logs the outcome.
async fn deliver(http: &reqwest::Client, logout: &BackchannelLogout, policy: &DeliveryPolicy) {
    let mut backoff = policy.first_backoff;
    for attempt in 1..=policy.attempts.max(1) {
        let sent = http
            .post(&logout.uri)
            .form(&[("logout_token", logout.logout_token.as_str())])
            .send()
            .await;
        let retry = match sent {
            // §2.8: "If the logout succeeded, the RP MUST respond with HTTP 200 OK"; 204 too.
            Ok(resp) if resp.status().is_success() => {
                tracing::info!(client_id = %logout.client_id, attempt, "back-channel logout delivered");
                return;
            }
            Ok(resp) if resp.status().is_server_error() => format!("status {}", resp.status()),
            Ok(resp) => {
                tracing::warn!(
                    client_id = %logout.client_id,
                    uri = %logout.uri,
                    status = resp.status().as_u16(),
                    "back-channel logout refused by the client"
                );
                return;
            }
            // The error names the URL, never the form body.
            Err(err) => err.without_url().to_string(),
        };
        if attempt == policy.attempts.max(1) {
            tracing::warn!(
                client_id = %logout.client_id,
                uri = %logout.uri,
                attempts = attempt,
                error = %retry,
                "back-channel logout failed; giving up"
            );
            return;
        }
        tracing::info!(client_id = %logout.client_id, attempt, error = %retry, "back-channel logout failed; retrying");
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2);
    }
}
