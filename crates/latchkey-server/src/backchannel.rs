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
//!
//! The server runs one delivery for its whole life. A CLI command that ends sessions
//! (`latchkey user logout|passwd|delete`) runs its own, with the same policy, and before it
//! exits waits for it to finish ([`BackchannelDelivery::finish`]), at most
//! [`DeliveryPolicy::worst_case`]: the tokens are never left to a process that has gone.

use latchkey_core::logout::{BackchannelLogout, LogoutSink};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc};

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

impl DeliveryPolicy {
    /// The longest one token can take, from its first attempt to giving up: every attempt
    /// at its time limit plus every wait between them.
    pub fn worst_case(&self) -> Duration {
        let attempts = self.attempts.max(1);
        let mut total = self.timeout.saturating_mul(attempts);
        let mut backoff = self.first_backoff;
        for _ in 1..attempts {
            total = total.saturating_add(backoff);
            backoff = backoff.saturating_mul(2);
        }
        total
    }
}

/// How the tokens handed to one [`BackchannelDelivery`] fared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryReport {
    /// Accepted by the relying party (`2xx`).
    pub delivered: u64,
    /// Refused by the relying party (`4xx` or a redirect): not retried.
    pub refused: u64,
    /// Unreachable or a server error on every attempt.
    pub failed: u64,
    /// Never sent: the queue was full or delivery had stopped.
    pub dropped: u64,
    /// Still being delivered when [`BackchannelDelivery::finish`] stopped waiting.
    pub unfinished: u64,
}

/// The counters of a delivery, shared with its tasks.
#[derive(Debug, Default)]
struct Tally {
    queued: AtomicU64,
    delivered: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    /// Woken each time a token's delivery ends.
    settled: Notify,
}

impl Tally {
    fn settled_count(&self) -> u64 {
        self.delivered.load(Ordering::Acquire)
            + self.refused.load(Ordering::Acquire)
            + self.failed.load(Ordering::Acquire)
    }

    fn report(&self) -> DeliveryReport {
        let settled = self.settled_count();
        DeliveryReport {
            delivered: self.delivered.load(Ordering::Acquire),
            refused: self.refused.load(Ordering::Acquire),
            failed: self.failed.load(Ordering::Acquire),
            dropped: self.dropped.load(Ordering::Acquire),
            unfinished: self.queued.load(Ordering::Acquire).saturating_sub(settled),
        }
    }
}

/// How one token's delivery ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Refused,
    Failed,
}

/// The server's [`LogoutSink`]: a bounded queue in front of a delivery worker.
#[derive(Clone, Debug)]
pub struct BackchannelDelivery {
    queue: mpsc::Sender<BackchannelLogout>,
    tally: Arc<Tally>,
    policy: DeliveryPolicy,
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
        let tally = Arc::new(Tally::default());
        let worker_tally = Arc::clone(&tally);
        let worker_policy = policy.clone();
        tokio::spawn(async move {
            let (policy, tally) = (worker_policy, worker_tally);
            while let Some(logout) = waiting.recv().await {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let http = http.clone();
                let policy = policy.clone();
                let tally = Arc::clone(&tally);
                tokio::spawn(async move {
                    let counter = match deliver(&http, &logout, &policy).await {
                        Outcome::Delivered => &tally.delivered,
                        Outcome::Refused => &tally.refused,
                        Outcome::Failed => &tally.failed,
                    };
                    counter.fetch_add(1, Ordering::AcqRel);
                    tally.settled.notify_waiters();
                    drop(slot);
                });
            }
        });
        Ok(Self {
            queue,
            tally,
            policy,
        })
    }

    /// How the tokens handed over so far fared.
    pub fn report(&self) -> DeliveryReport {
        self.tally.report()
    }

    /// Waits until every token handed over so far is delivered or given up, but no longer
    /// than `limit`; then reports. What is still running when `limit` passes is counted as
    /// `unfinished` (and goes on until the process exits).
    pub async fn finish(&self, limit: Duration) -> DeliveryReport {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the check, so an ending between the two is not missed.
            let settled = self.tally.settled.notified();
            let report = self.tally.report();
            if report.unfinished == 0 {
                return report;
            }
            if tokio::time::timeout_at(deadline, settled).await.is_err() {
                return self.tally.report();
            }
        }
    }

    /// [`BackchannelDelivery::finish`] with the policy's [`DeliveryPolicy::worst_case`] and
    /// a second to spare: long enough for every retry of the tokens handed over.
    pub async fn finish_within_policy(&self) -> DeliveryReport {
        self.finish(self.policy.worst_case() + Duration::from_secs(1))
            .await
    }
}

impl LogoutSink for BackchannelDelivery {
    fn deliver(&self, logout: BackchannelLogout) {
        // Counted before it is sent, so `finish` never sees a token's end before its start.
        self.tally.queued.fetch_add(1, Ordering::AcqRel);
        if let Err(err) = self.queue.try_send(logout) {
            self.tally.queued.fetch_sub(1, Ordering::AcqRel);
            self.tally.dropped.fetch_add(1, Ordering::AcqRel);
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

/// Delivers one logout token with the policy's retries; logs and returns the outcome.
async fn deliver(
    http: &reqwest::Client,
    logout: &BackchannelLogout,
    policy: &DeliveryPolicy,
) -> Outcome {
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
                return Outcome::Delivered;
            }
            Ok(resp) if resp.status().is_server_error() => format!("status {}", resp.status()),
            Ok(resp) => {
                tracing::warn!(
                    client_id = %logout.client_id,
                    uri = %logout.uri,
                    status = resp.status().as_u16(),
                    "back-channel logout refused by the client"
                );
                return Outcome::Refused;
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
            return Outcome::Failed;
        }
        tracing::info!(client_id = %logout.client_id, attempt, error = %retry, "back-channel logout failed; retrying");
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2);
    }
    Outcome::Failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_policy_gives_up_within_the_token_lifetime() {
        let policy = DeliveryPolicy::default();
        // 5 attempts of 5 s, waits of 1 + 2 + 4 + 8 s.
        assert_eq!(policy.worst_case(), Duration::from_secs(40));
        assert!(
            policy.worst_case().as_secs() < latchkey_core::logout::backchannel::LOGOUT_TOKEN_TTL
        );
        let once = DeliveryPolicy {
            attempts: 1,
            ..DeliveryPolicy::default()
        };
        assert_eq!(once.worst_case(), Duration::from_secs(5));
    }
}
