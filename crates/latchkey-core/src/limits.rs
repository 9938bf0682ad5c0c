//! Rate limits on the endpoints where clients authenticate, and backoff on failed password checks.
//!
//! RFC 6749 §4.3.2: for the password grant "the authorization server MUST protect the endpoint
//! against brute force attacks (e.g., using rate-limitation or generating alerts)"; §10.10 asks
//! the same of every credential guess. [`Limits`] holds the policy; the counts live behind the
//! [`Counters`] trait: [`MemoryCounters`] for one process, a shared store (Redis) when several
//! nodes must see the same counts.
//!
//! Two mechanisms:
//! - **Request rates**: at most `n` requests to the token, revocation and introspection endpoints per window per client and per address,
//!   in fixed windows. Past the limit the endpoint answers 429 with `Retry-After`.
//! - **Failure backoff**: failed password checks are counted per user name and per address.
//!   After `slow_after` failures a user must wait 2, 4, 8… seconds (up to `max_delay`) between
//!   attempts; after `max_failures` (or `max_failures_per_ip` from one address) every attempt
//!   is refused until the window ends. A success clears the user's count.

use crate::clock::UnixTime;
use crate::error::{ErrorCode, OAuthError};
use crate::store::StoreError;
use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// A boxed future: counters are used through `dyn`, so one provider type serves every backend.
pub type CounterFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// One key's count in its current window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Hits in the window, this one included.
    pub count: u64,
    /// When the window ends and the count starts again from zero.
    pub resets_at: UnixTime,
    /// When the key was hit last before now (the window's start if never).
    pub last: UnixTime,
}

/// Counts hits per key in fixed windows that start at a key's first hit.
///
/// Implementations must be atomic per key (two nodes hitting at once both count) and must
/// forget a key when its window ends, so memory stays bounded.
pub trait Counters: Send + Sync + 'static {
    /// Adds one hit to `key`, opening a window of `window` seconds if none is open, and
    /// returns the window as it is after the hit.
    fn hit<'a>(&'a self, key: &'a str, window: u64, now: UnixTime) -> CounterFuture<'a, Window>;
    /// The key's open window, if any, without counting.
    fn peek<'a>(&'a self, key: &'a str, now: UnixTime) -> CounterFuture<'a, Option<Window>>;
    /// Forgets the key.
    fn clear<'a>(&'a self, key: &'a str) -> CounterFuture<'a, ()>;
}

/// A request rate: at most `requests` per `window` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per window.
    pub requests: u64,
    /// The window, in seconds.
    pub window: u64,
}

/// The failure backoff policy for password checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Failures per user name after which each attempt waits 2, 4, 8… seconds.
    pub slow_after: u64,
    /// The longest wait between attempts, in seconds.
    pub max_delay: u64,
    /// Failures per user name after which attempts are refused until the window ends.
    pub max_failures: u64,
    /// Failures from one address (any user names) after which it is refused.
    pub max_failures_per_ip: u64,
    /// How long failures are remembered, in seconds.
    pub window: u64,
}

impl Default for Backoff {
    /// 3 free failures, then waits up to 30 s; 10 failures per user or 50 per address lock
    /// for the rest of 15 minutes.
    fn default() -> Self {
        Self {
            slow_after: 3,
            max_delay: 30,
            max_failures: 10,
            max_failures_per_ip: 50,
            window: 900,
        }
    }
}

/// What the limits allow, and where they count.
#[derive(Clone)]
pub struct Limits {
    counters: Arc<dyn Counters>,
    /// Requests per client to the endpoints where clients authenticate (token, revocation,
    /// introspection).
    pub per_client: Option<Rate>,
    /// Requests per address to those endpoints.
    pub per_ip: Option<Rate>,
    /// Backoff on failed password checks (the password grant and the login page).
    pub backoff: Option<Backoff>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("per_client", &self.per_client)
            .field("per_ip", &self.per_ip)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

/// A refusal: the caller should answer 429 with `Retry-After: retry_after`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds until a new attempt can succeed (at least 1).
    pub retry_after: u64,
}

impl Throttled {
    /// The RFC 6749 error for an endpoint: 429, `Retry-After`, `temporarily_unavailable`.
    pub fn to_error(self) -> OAuthError {
        OAuthError::new(
            ErrorCode::TemporarilyUnavailable,
            "too many requests; retry later",
        )
        .with_status(429)
        .with_header("retry-after", self.retry_after.to_string())
    }
}

impl Limits {
    /// No request rate, the default backoff, counting in `counters`.
    pub fn new(counters: Arc<dyn Counters>) -> Self {
        Self {
            counters,
            per_client: None,
            per_ip: None,
            backoff: Some(Backoff::default()),
        }
    }

    /// Counts one request of `client_id`; refuses it past the client's rate.
    pub async fn by_client(
        &self,
        client_id: &str,
        now: UnixTime,
    ) -> Result<Result<(), Throttled>, StoreError> {
        self.rate("rate:client:", client_id, self.per_client, now)
            .await
    }

    /// Counts one request from `ip`; refuses it past the address's rate.
    pub async fn by_ip(
        &self,
        ip: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<Result<(), Throttled>, StoreError> {
        let Some(ip) = ip else { return Ok(Ok(())) };
        self.rate("rate:ip:", &ip.to_string(), self.per_ip, now)
            .await
    }

    async fn rate(
        &self,
        prefix: &str,
        id: &str,
        rate: Option<Rate>,
        now: UnixTime,
    ) -> Result<Result<(), Throttled>, StoreError> {
        let Some(rate) = rate else { return Ok(Ok(())) };
        let key = format!("{prefix}{id}");
        let window = self.counters.hit(&key, rate.window, now).await?;
        if window.count > rate.requests {
            return Ok(Err(until(now, window.resets_at)));
        }
        Ok(Ok(()))
    }

    /// Whether a password check for `username` from `ip` may be made now.
    pub async fn may_try_password(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<Result<(), Throttled>, StoreError> {
        let Some(policy) = self.backoff else {
            return Ok(Ok(()));
        };
        if let Some(ip) = ip
            && let Some(w) = self.counters.peek(&ip_key(ip), now).await?
            && w.count >= policy.max_failures_per_ip
        {
            return Ok(Err(until(now, w.resets_at)));
        }
        let Some(w) = self.counters.peek(&user_key(username), now).await? else {
            return Ok(Ok(()));
        };
        if w.count >= policy.max_failures {
            return Ok(Err(until(now, w.resets_at)));
        }
        if w.count >= policy.slow_after {
            // 2, 4, 8… seconds: never less than 2, so a retry within the same clock second
            // is never let through by rounding.
            let doublings = u32::try_from(w.count - policy.slow_after).unwrap_or(u32::MAX);
            let delay = 2u64
                .checked_shl(doublings)
                .unwrap_or(u64::MAX)
                .min(policy.max_delay);
            let next = w.last.plus(delay);
            if now < next {
                return Ok(Err(until(now, next)));
            }
        }
        Ok(Ok(()))
    }

    /// Records the outcome of a password check: a failure counts against the user name and
    /// the address, a success clears the user name's count.
    pub async fn password_checked(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        ok: bool,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let Some(policy) = self.backoff else {
            return Ok(());
        };
        if ok {
            return self.counters.clear(&user_key(username)).await;
        }
        self.counters
            .hit(&user_key(username), policy.window, now)
            .await?;
        if let Some(ip) = ip {
            self.counters.hit(&ip_key(ip), policy.window, now).await?;
        }
        Ok(())
    }
}

fn user_key(username: &str) -> String {
    format!("fail:user:{username}")
}

fn ip_key(ip: IpAddr) -> String {
    format!("fail:ip:{ip}")
}

fn until(now: UnixTime, at: UnixTime) -> Throttled {
    Throttled {
        retry_after: now.seconds_until(at).max(1),
    }
}

/// Counters in process memory, for one node. Bounded: a window is forgotten when it ends,
/// and the table sweeps itself when it grows.
#[derive(Debug, Default)]
pub struct MemoryCounters {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    windows: HashMap<String, Window>,
    /// Sweep when the table reaches this size; doubles with the live set.
    sweep_at: usize,
}

impl MemoryCounters {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many keys have an open window; for tests and metrics.
    pub fn len(&self) -> usize {
        self.table.lock().map(|t| t.windows.len()).unwrap_or(0)
    }

    /// Whether no key has an open window.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with<T>(&self, f: impl FnOnce(&mut Table) -> T) -> Result<T, StoreError> {
        let mut table = self.table.lock().map_err(|_| {
            StoreError::new(
                crate::store::StoreErrorKind::Unavailable,
                "counter table poisoned",
            )
        })?;
        Ok(f(&mut table))
    }
}

impl Counters for MemoryCounters {
    fn hit<'a>(&'a self, key: &'a str, window: u64, now: UnixTime) -> CounterFuture<'a, Window> {
        let result = self.with(|t| {
            if t.windows.len() >= t.sweep_at.max(1024) {
                t.windows.retain(|_, w| w.resets_at > now);
                t.sweep_at = t.windows.len().saturating_mul(2);
            }
            let w = t
                .windows
                .entry(key.to_owned())
                .and_modify(|w| {
                    if w.resets_at <= now {
                        *w = fresh(now, window);
                    }
                })
                .or_insert_with(|| fresh(now, window));
            w.count += 1;
            let seen = *w;
            w.last = now;
            Window {
                last: seen.last,
                ..seen
            }
        });
        Box::pin(std::future::ready(result))
    }

    fn peek<'a>(&'a self, key: &'a str, now: UnixTime) -> CounterFuture<'a, Option<Window>> {
        let result = self.with(|t| t.windows.get(key).copied().filter(|w| w.resets_at > now));
        Box::pin(std::future::ready(result))
    }

    fn clear<'a>(&'a self, key: &'a str) -> CounterFuture<'a, ()> {
        let result = self.with(|t| {
            t.windows.remove(key);
        });
        Box::pin(std::future::ready(result))
    }
}

fn fresh(now: UnixTime, window: u64) -> Window {
    Window {
        count: 0,
        resets_at: now.plus(window.max(1)),
        last: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> (Limits, Arc<MemoryCounters>) {
        let counters = Arc::new(MemoryCounters::new());
        let mut limits = Limits::new(counters.clone());
        limits.backoff = Some(Backoff {
            slow_after: 2,
            max_delay: 8,
            max_failures: 5,
            max_failures_per_ip: 7,
            window: 100,
        });
        limits.per_client = Some(Rate {
            requests: 3,
            window: 10,
        });
        (limits, counters)
    }

    fn block<T>(f: impl Future<Output = T>) -> T {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn token_rate_refuses_past_the_limit_until_the_window_ends() {
        let (limits, _) = limits();
        let t = UnixTime(1000);
        for _ in 0..3 {
            assert_eq!(block(limits.by_client("c", t)).expect("ok"), Ok(()));
        }
        assert_eq!(
            block(limits.by_client("c", UnixTime(1004))).expect("ok"),
            Err(Throttled { retry_after: 6 })
        );
        // Another client has its own budget.
        assert_eq!(block(limits.by_client("d", t)).expect("ok"), Ok(()));
        assert_eq!(
            block(limits.by_client("c", UnixTime(1010))).expect("ok"),
            Ok(())
        );
    }

    #[test]
    fn failures_slow_then_lock_and_success_clears() {
        let (limits, _) = limits();
        let ip: Option<IpAddr> = Some("192.0.2.1".parse().expect("ip"));
        let fail = |t: i64| {
            block(limits.password_checked("alice", ip, false, UnixTime(t))).expect("counted");
        };
        let may = |t: i64| block(limits.may_try_password("alice", ip, UnixTime(t))).expect("ok");
        fail(0);
        fail(0);
        // Two failures: the third attempt waits 2 s after the last failure.
        assert_eq!(may(0), Err(Throttled { retry_after: 2 }));
        assert_eq!(may(1), Err(Throttled { retry_after: 1 }));
        assert_eq!(may(2), Ok(()));
        fail(2);
        // Three failures: 4 s.
        assert_eq!(may(5), Err(Throttled { retry_after: 1 }));
        assert_eq!(may(6), Ok(()));
        fail(6);
        // Four failures: 8 s, capped at max_delay.
        assert_eq!(may(7), Err(Throttled { retry_after: 7 }));
        fail(14);
        // Five failures: locked until the window (opened at 0) ends at 100.
        assert_eq!(may(50), Err(Throttled { retry_after: 50 }));
        assert_eq!(may(100), Ok(()));
        // A success clears the user's count.
        fail(100);
        fail(100);
        block(limits.password_checked("alice", ip, true, UnixTime(100))).expect("cleared");
        assert_eq!(may(100), Ok(()));
    }

    #[test]
    fn one_address_guessing_many_users_is_locked_out() {
        let (limits, _) = limits();
        let ip: Option<IpAddr> = Some("192.0.2.9".parse().expect("ip"));
        for n in 0..7 {
            block(limits.password_checked(&format!("user{n}"), ip, false, UnixTime(0)))
                .expect("counted");
        }
        assert!(block(limits.may_try_password("fresh", ip, UnixTime(1))).is_ok_and(|r| r.is_err()));
        let other: Option<IpAddr> = Some("192.0.2.10".parse().expect("ip"));
        assert_eq!(
            block(limits.may_try_password("fresh", other, UnixTime(1))).expect("ok"),
            Ok(())
        );
    }

    #[test]
    fn memory_counters_forget_ended_windows() {
        let counters = MemoryCounters::new();
        for n in 0..5000 {
            block(counters.hit(&format!("k{n}"), 10, UnixTime(0))).expect("hit");
        }
        assert!(counters.len() <= 5000);
        for n in 0..4000 {
            block(counters.hit(&format!("later{n}"), 10, UnixTime(100))).expect("hit");
        }
        assert!(
            counters.len() < 5000,
            "ended windows were swept: {}",
            counters.len()
        );
    }
}
