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
//! - **Failure backoff**: every password check is an attempt *reserved* before the password is
//!   verified, atomically in the counter store, so concurrent guesses cannot all pass one check
//!   ([`Counters::reserve`]); a right password takes the reservation back. Attempts are scored
//!   three ways:
//!   - per **user name** (from anywhere): after `slow_after` failures each attempt must wait 2, 4,
//!     8… seconds (up to `max_delay`) after the previous one. This only slows: failures from
//!     elsewhere never lock the owner out;
//!   - per **(user name, address)**: after `max_failures` failures that pair is refused until the
//!     window ends;
//!   - per **address** (any user names): after `max_failures_per_ip` failures it is refused until
//!     the window ends.
//!
//! A counter key's size never depends on what a client sent: user names are hashed (SHA-256),
//! addresses are their octets in hex, and a client id is itself when short (client ids are
//! printable ASCII, at most 255 characters) or hashed when long. When the counter store cannot answer (or
//! the memory table is full), request rates let traffic through and password checks are refused:
//! rates protect capacity, the backoff protects secrets.

use crate::clock::UnixTime;
use crate::error::{ErrorCode, OAuthError};
use crate::store::{StoreError, StoreErrorKind};
use sha2::{Digest as _, Sha256};
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

/// When a key's failures refuse a new attempt: at `limit` failures until its window ends, and
/// after `slow_after` failures until 2, 4, 8… seconds (at most `max_delay`) after the last one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gate {
    /// Failures at which every attempt is refused until the window ends (`u64::MAX`: never).
    pub limit: u64,
    /// Failures after which attempts are spaced out (`u64::MAX`: never).
    pub slow_after: u64,
    /// The longest spacing, in seconds.
    pub max_delay: u64,
}

impl Gate {
    /// When an attempt may be made again, if not now, for a key with `count` failures in a
    /// window ending at `resets_at`, the last at `last`. Backends that cannot run Rust (the
    /// Redis script) restate exactly this rule.
    pub fn refusal(
        &self,
        count: u64,
        last: UnixTime,
        resets_at: UnixTime,
        now: UnixTime,
    ) -> Option<UnixTime> {
        if count >= self.limit {
            return Some(resets_at);
        }
        if count >= self.slow_after {
            // 2, 4, 8… seconds: never less than 2, so a retry within the same clock second is
            // never let through by rounding.
            let doublings = u32::try_from(count - self.slow_after).unwrap_or(u32::MAX);
            let delay = 1u64
                .checked_shl(doublings)
                .unwrap_or(u64::MAX)
                .saturating_mul(2)
                .min(self.max_delay);
            let next = last.plus(delay);
            if now < next {
                return Some(next);
            }
        }
        None
    }
}

/// What [`Counters::reserve`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reserve {
    /// The attempt was counted.
    Reserved,
    /// Nothing was counted; an attempt may be made again at this time.
    Refused(UnixTime),
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
    /// In one atomic step: refuses when [`Gate::refusal`] refuses the key's open window
    /// (changing nothing), else adds one hit as [`Counters::hit`] does. Check and count are
    /// one step, so N concurrent attempts never all pass a gate that admits fewer.
    fn reserve<'a>(
        &'a self,
        key: &'a str,
        gate: Gate,
        window: u64,
        now: UnixTime,
    ) -> CounterFuture<'a, Reserve>;
    /// Takes back one hit (never below zero): a reserved attempt that was not a failure.
    fn refund<'a>(&'a self, key: &'a str) -> CounterFuture<'a, ()>;
}

/// A request rate: at most `requests` per `window` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per window.
    pub requests: u64,
    /// The window, in seconds.
    pub window: u64,
}

/// The failure backoff policy for password checks (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// Failures per user name (from any address) after which each attempt waits 2, 4, 8…
    /// seconds after the previous one.
    pub slow_after: u64,
    /// The longest wait between attempts, in seconds.
    pub max_delay: u64,
    /// Failures per user name from one address after which that address's attempts for that
    /// user name are refused until the window ends.
    pub max_failures: u64,
    /// Failures from one address (any user names) after which it is refused.
    pub max_failures_per_ip: u64,
    /// How long failures are remembered, in seconds.
    pub window: u64,
}

impl Default for Backoff {
    /// 3 free failures, then waits up to 30 s; 10 failures per user and address, or 50 per
    /// address, lock that pair (or address) for the rest of 15 minutes.
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
    /// Backoff on failed password checks (the password grant and the login pages).
    pub backoff: Option<Backoff>,
    /// Failed client authentications per (client id, address): past it, that pair is refused
    /// before its credentials are looked at, until the window ends. Counted apart from
    /// `per_client`, which counts only authenticated requests, so that nobody can spend a
    /// client's budget by presenting its id with a wrong secret.
    pub client_auth_failures: Option<Rate>,
    /// Wrong user codes entered on the device verification page (RFC 8628 §5.1: "the
    /// authorization server MUST rate-limit user_code attempts"), per address and in total;
    /// see [`Limits::reserve_user_code`].
    pub user_code_guesses: Option<UserCodeGuesses>,
    /// Client registrations (RFC 7591) per address, so that nobody fills the store with
    /// anonymous registrations.
    pub registrations_per_ip: Option<Rate>,
}

/// How many wrong user codes (RFC 8628 §5.1) are allowed before the verification page
/// refuses to look codes up until the window ends: per address, and from everywhere together
/// (so that guesses spread over many addresses still meet a bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserCodeGuesses {
    /// Wrong codes per address per window.
    pub per_ip: Rate,
    /// Wrong codes from all addresses per window.
    pub global: Rate,
}

impl Default for UserCodeGuesses {
    /// 10 wrong codes per address and 1000 in total per 10 minutes: with 8-character codes
    /// (20^8 values) and a few hundred live codes, an attacker needs on the order of a
    /// hundred thousand windows for an even chance at one.
    fn default() -> Self {
        Self {
            per_ip: Rate {
                requests: 10,
                window: 600,
            },
            global: Rate {
                requests: 1000,
                window: 600,
            },
        }
    }
}

/// A user-code lookup reserved by [`Limits::reserve_user_code`]: it counts as a wrong code
/// until [`Limits::settle_user_code`] says the code was right.
#[derive(Debug)]
#[must_use = "a reserved user-code lookup is settled once the code was looked up"]
pub struct UserCodeAttempt {
    keys: Vec<String>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("per_client", &self.per_client)
            .field("per_ip", &self.per_ip)
            .field("backoff", &self.backoff)
            .field("client_auth_failures", &self.client_auth_failures)
            .field("user_code_guesses", &self.user_code_guesses)
            .field("registrations_per_ip", &self.registrations_per_ip)
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

/// A password attempt reserved by [`Limits::reserve_password`]; settle it with
/// [`Limits::settle_password`] once the password was checked.
#[derive(Debug)]
#[must_use = "a reserved attempt is settled once the password was checked"]
pub struct PasswordAttempt {
    user: String,
    pair: String,
    ip: Option<String>,
}

impl Limits {
    /// No request rate, the default backoff, counting in `counters`.
    pub fn new(counters: Arc<dyn Counters>) -> Self {
        Self {
            counters,
            per_client: None,
            per_ip: None,
            backoff: Some(Backoff::default()),
            client_auth_failures: None,
            user_code_guesses: Some(UserCodeGuesses::default()),
            registrations_per_ip: None,
        }
    }

    /// Reserves one user-code lookup from `ip`, or refuses it when the address's or
    /// everyone's wrong codes reached their bound in the window. Check and count are one
    /// atomic step per key ([`Counters::reserve`]), so concurrent guesses cannot all pass.
    /// A counter store that cannot answer refuses (the codes are secrets, as passwords are).
    pub async fn reserve_user_code(
        &self,
        ip: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<Result<UserCodeAttempt, Throttled>, StoreError> {
        let Some(policy) = self.user_code_guesses else {
            return Ok(Ok(UserCodeAttempt { keys: Vec::new() }));
        };
        let gate = |rate: Rate| Gate {
            limit: rate.requests,
            slow_after: u64::MAX,
            max_delay: 0,
        };
        let gates = [
            ip.map(|ip| {
                (
                    ip_key("fail:user-code:ip:", ip).as_str().to_owned(),
                    policy.per_ip,
                )
            }),
            Some(("fail:user-code:all".to_owned(), policy.global)),
        ];
        let mut reserved: Vec<String> = Vec::with_capacity(2);
        for (k, rate) in gates.into_iter().flatten() {
            let verdict = match self
                .counters
                .reserve(&k, gate(rate), rate.window, now)
                .await
            {
                Ok(verdict) => verdict,
                Err(err) => {
                    self.refund_all(&reserved.iter().map(String::as_str).collect::<Vec<_>>())
                        .await;
                    return Err(err);
                }
            };
            match verdict {
                Reserve::Reserved => reserved.push(k),
                Reserve::Refused(at) => {
                    self.refund_all(&reserved.iter().map(String::as_str).collect::<Vec<_>>())
                        .await;
                    return Ok(Err(until(now, at)));
                }
            }
        }
        Ok(Ok(UserCodeAttempt { keys: reserved }))
    }

    /// Settles a reserved lookup: a wrong code stays counted; a right one is taken back.
    pub async fn settle_user_code(&self, attempt: UserCodeAttempt, right: bool) {
        if right {
            self.refund_all(&attempt.keys.iter().map(String::as_str).collect::<Vec<_>>())
                .await;
        }
    }

    /// Whether `client_id` from `ip` may try to authenticate: refused once its failures reach
    /// `client_auth_failures` in the window. Counts nothing.
    pub async fn may_authenticate_client(
        &self,
        client_id: &str,
        ip: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<Result<(), Throttled>, StoreError> {
        let Some(rate) = self.client_auth_failures else {
            return Ok(Ok(()));
        };
        let key = client_failure_key(client_id, ip);
        match self.counters.peek(key.as_str(), now).await? {
            Some(w) if w.count >= rate.requests => Ok(Err(until(now, w.resets_at))),
            _ => Ok(Ok(())),
        }
    }

    /// Counts one failed authentication of `client_id` from `ip`.
    pub async fn client_auth_failed(
        &self,
        client_id: &str,
        ip: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let Some(rate) = self.client_auth_failures else {
            return Ok(());
        };
        self.counters
            .hit(client_failure_key(client_id, ip).as_str(), rate.window, now)
            .await
            .map(|_| ())
    }

    /// Counts one request of `client_id`; refuses it past the client's rate.
    pub async fn by_client(
        &self,
        client_id: &str,
        now: UnixTime,
    ) -> Result<Result<(), Throttled>, StoreError> {
        // The key is made only when the rate is on.
        let Some(rate) = self.per_client else {
            return Ok(Ok(()));
        };
        let key = client_key("rate:client:", None, client_id);
        self.rate(key.as_str(), Some(rate), now).await
    }

    /// Counts one request from `ip`; refuses it past the address's rate.
    pub async fn by_ip(
        &self,
        ip: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<Result<(), Throttled>, StoreError> {
        let (Some(ip), Some(rate)) = (ip, self.per_ip) else {
            return Ok(Ok(()));
        };
        self.rate(ip_key("rate:ip:", ip).as_str(), Some(rate), now)
            .await
    }

    /// Counts one registration request from `ip`; refuses it past
    /// [`Limits::registrations_per_ip`].
    pub async fn registrations_by_ip(
        &self,
        ip: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<Result<(), Throttled>, StoreError> {
        let Some(ip) = ip else { return Ok(Ok(())) };
        self.rate(
            ip_key("rate:register:", ip).as_str(),
            self.registrations_per_ip,
            now,
        )
        .await
    }

    async fn rate(
        &self,
        key: &str,
        rate: Option<Rate>,
        now: UnixTime,
    ) -> Result<Result<(), Throttled>, StoreError> {
        let Some(rate) = rate else { return Ok(Ok(())) };
        let window = self.counters.hit(key, rate.window, now).await?;
        if window.count > rate.requests {
            return Ok(Err(until(now, window.resets_at)));
        }
        Ok(Ok(()))
    }

    /// Reserves one password attempt for `username` from `ip`, or refuses it. The attempt
    /// counts as a failure until [`Limits::settle_password`] says it succeeded. `Ok(Ok(None))`
    /// when no backoff is configured.
    pub async fn reserve_password(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        now: UnixTime,
    ) -> Result<Result<Option<PasswordAttempt>, Throttled>, StoreError> {
        let Some(policy) = self.backoff else {
            return Ok(Ok(None));
        };
        let ip_text = ip.map(|ip| ip.to_string()).unwrap_or_default();
        let attempt = PasswordAttempt {
            user: key("fail:user:", &[username.as_bytes()]),
            pair: key("fail:pair:", &[username.as_bytes(), ip_text.as_bytes()]),
            ip: ip.map(|ip| ip_key("fail:ip:", ip).as_str().to_owned()),
        };
        let never = u64::MAX;
        let gates = [
            attempt.ip.as_deref().map(|k| {
                (
                    k,
                    Gate {
                        limit: policy.max_failures_per_ip,
                        slow_after: never,
                        max_delay: 0,
                    },
                )
            }),
            Some((
                attempt.pair.as_str(),
                Gate {
                    limit: policy.max_failures,
                    slow_after: never,
                    max_delay: 0,
                },
            )),
            Some((
                attempt.user.as_str(),
                Gate {
                    limit: never,
                    slow_after: policy.slow_after,
                    max_delay: policy.max_delay,
                },
            )),
        ];
        let mut reserved: Vec<&str> = Vec::with_capacity(3);
        for (k, gate) in gates.into_iter().flatten() {
            let verdict = match self.counters.reserve(k, gate, policy.window, now).await {
                Ok(verdict) => verdict,
                Err(err) => {
                    self.refund_all(&reserved).await;
                    return Err(err);
                }
            };
            match verdict {
                Reserve::Reserved => reserved.push(k),
                Reserve::Refused(at) => {
                    self.refund_all(&reserved).await;
                    return Ok(Err(until(now, at)));
                }
            }
        }
        Ok(Ok(Some(attempt)))
    }

    /// Settles a reserved attempt: a failure stays counted; a success clears the user name's
    /// scores (per user and per user and address) and takes back the address's reservation.
    pub async fn settle_password(
        &self,
        attempt: PasswordAttempt,
        ok: bool,
    ) -> Result<(), StoreError> {
        if !ok {
            return Ok(());
        }
        self.counters.clear(&attempt.user).await?;
        self.counters.clear(&attempt.pair).await?;
        if let Some(ip) = &attempt.ip {
            self.counters.refund(ip).await?;
        }
        Ok(())
    }

    async fn refund_all(&self, keys: &[&str]) {
        for k in keys {
            if let Err(err) = self.counters.refund(k).await {
                tracing::warn!(error = %err, "a refused password attempt could not be refunded");
            }
        }
    }
}

/// A counter key: `prefix` and the SHA-256 of `parts` (each length-prefixed, so that no two
/// different lists of parts make the same key), in hex. Its size never depends on the input.
fn key(prefix: &str, parts: &[&[u8]]) -> String {
    let mut hash = Sha256::new();
    for part in parts {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let mut key = String::with_capacity(prefix.len() + 64);
    key.push_str(prefix);
    key.push_str(&crate::entropy::hex(&hash.finalize()));
    key
}

/// The most bytes of a [`CounterKey`]: the longest prefix, an IPv6 address's 32 hex digits,
/// two separators and a client id's 64 characters or SHA-256 hex digits.
const KEY_CAP: usize = 128;

/// The longest client id a counter key holds as it is; a longer one is hashed, so a key's
/// size never depends on what a client sent.
const LITERAL_ID_MAX: usize = 64;

/// A counter key of at most [`KEY_CAP`] ASCII bytes, made on the stack: the keys every token,
/// introspection and revocation request makes cost neither a hash nor an allocation.
struct CounterKey {
    len: usize,
    bytes: [u8; KEY_CAP],
}

impl CounterKey {
    fn new(prefix: &str) -> Self {
        let mut key = Self {
            len: 0,
            bytes: [0; KEY_CAP],
        };
        key.push(prefix);
        key
    }

    /// Appends `part` when it is ASCII and fits; says whether it did.
    fn push(&mut self, part: &str) -> bool {
        let end = self.len + part.len();
        match self.bytes.get_mut(self.len..end) {
            Some(room) if part.is_ascii() => {
                room.copy_from_slice(part.as_bytes());
                self.len = end;
                true
            }
            _ => false,
        }
    }

    /// Appends `bytes` as lowercase hex digits, two a byte, as far as they fit.
    fn push_hex(&mut self, bytes: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for b in bytes {
            if let Some([high, low]) = self.bytes.get_mut(self.len..self.len + 2) {
                *high = DIGITS[usize::from(b >> 4)];
                *low = DIGITS[usize::from(b & 0xf)];
                self.len += 2;
            }
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII is ever pushed, so the bytes are always UTF-8.
        self.bytes
            .get(..self.len)
            .and_then(|bytes| std::str::from_utf8(bytes).ok())
            .unwrap_or_default()
    }
}

/// An address's octets (4 or 16; none without an address): they name it as well as its text
/// and cost no formatting.
fn with_octets<T>(ip: Option<IpAddr>, f: impl FnOnce(&[u8]) -> T) -> T {
    match ip {
        Some(IpAddr::V4(ip)) => f(&ip.octets()),
        Some(IpAddr::V6(ip)) => f(&ip.octets()),
        None => f(&[]),
    }
}

/// The key of a count per client (and per address, when `octets` is given): `prefix`, the
/// address's octets in hex and `:`, then `=` and the client id itself when it is at most
/// [`LITERAL_ID_MAX`] printable ASCII characters, else `#` and its SHA-256 in hex. Hex digits
/// hold no `:` and the two forms start differently, so no two (address, id) pairs share a
/// key, and a key's size is bounded whatever the id.
fn client_key(prefix: &str, octets: Option<&[u8]>, client_id: &str) -> CounterKey {
    let mut key = CounterKey::new(prefix);
    if let Some(octets) = octets {
        key.push_hex(octets);
        key.push(":");
    }
    let literal =
        client_id.len() <= LITERAL_ID_MAX && client_id.bytes().all(|b| (0x20..=0x7E).contains(&b));
    if !(literal && key.push("=") && key.push(client_id)) {
        key.len = prefix.len() + octets.map_or(0, |o| 2 * o.len() + 1);
        key.push("#");
        key.push_hex(&Sha256::digest(client_id.as_bytes()));
    }
    key
}

/// The key of failed authentications of a client from an address. It counts with the request
/// rates (not in the failure table password checks need): client secrets are high-entropy, so
/// this counter protects capacity and the log, and fails open.
fn client_failure_key(client_id: &str, ip: Option<IpAddr>) -> CounterKey {
    with_octets(ip, |octets| {
        client_key("rate:client-fail:", Some(octets), client_id)
    })
}

/// An address's key: `prefix` and the address's octets in hex (8 digits for IPv4, 32 for
/// IPv6, so an IPv4-mapped IPv6 address counts apart from its IPv4 form, as the address the
/// connection came from).
fn ip_key(prefix: &str, ip: IpAddr) -> CounterKey {
    let mut key = CounterKey::new(prefix);
    with_octets(Some(ip), |octets| key.push_hex(octets));
    key
}

fn until(now: UnixTime, at: UnixTime) -> Throttled {
    Throttled {
        retry_after: now.seconds_until(at).max(1),
    }
}

/// The default most keys a [`MemoryCounters`] table holds (about 15 MB).
pub const DEFAULT_MAX_KEYS: usize = 100_000;

/// Request-rate keys per shard below which a table is not split further: a small table gains
/// nothing from shards, and its bound stays exact.
const KEYS_PER_SHARD: usize = 4096;

/// The most shards of the request-rate table.
const MAX_SHARDS: usize = 16;

/// The table size at which a table of one shard starts sweeping ended windows; a table of
/// `n` shards sweeps each at `1/n` of it.
const SWEEP_FLOOR: usize = 1024;

/// Counters in process memory, for one node. Bounded: a window is forgotten when it ends,
/// the table sweeps itself when it grows, and it never holds more than its maximum number of
/// keys. The keys of failed password checks (`fail:`) live in a table of their own, so that
/// a flood of request-rate keys cannot fill the table password checks need. A full table
/// refuses new keys with an error: request rates then let traffic through, password checks
/// are refused (the policy of the module documentation).
///
/// The request-rate table, which every token, revocation and introspection request hits when
/// rates are on, is split into up to 16 shards, each behind its own lock and bounded to its
/// share of the maximum, so that concurrent requests rarely wait for one another. A key's
/// shard is chosen by a hash keyed with a random seed of the process, so nobody can aim keys
/// at one shard.
#[derive(Debug)]
pub struct MemoryCounters {
    rates: Box<[Mutex<Table>]>,
    /// Chooses a key's shard of `rates`.
    shard_of: std::collections::hash_map::RandomState,
    /// The most keys of one shard of `rates`.
    shard_max: usize,
    /// The least size at which a shard of `rates` sweeps.
    shard_sweep_floor: usize,
    failures: Mutex<Table>,
    max_keys: usize,
}

impl Default for MemoryCounters {
    fn default() -> Self {
        Self::with_max_keys(DEFAULT_MAX_KEYS)
    }
}

#[derive(Debug, Default)]
struct Table {
    windows: HashMap<String, Window>,
    /// Sweep when the table reaches this size; doubles with the live set.
    sweep_at: usize,
    /// When a full table was last swept: it is swept at most once a second.
    swept_full: Option<UnixTime>,
}

impl Table {
    /// Makes room for `key` if it is new: sweeps ended windows as the table grows (from
    /// `sweep_floor` keys on), and refuses a new key when the table is full of live ones.
    fn room_for(
        &mut self,
        key: &str,
        now: UnixTime,
        max_keys: usize,
        sweep_floor: usize,
    ) -> Result<(), StoreError> {
        if self.windows.contains_key(key) {
            return Ok(());
        }
        let full = self.windows.len() >= max_keys;
        if full && self.swept_full == Some(now) {
            return Err(table_full());
        }
        if full || self.windows.len() >= self.sweep_at.max(sweep_floor) {
            self.windows.retain(|_, w| w.resets_at > now);
            self.sweep_at = self.windows.len().saturating_mul(2);
            if full {
                self.swept_full = Some(now);
            }
        }
        if self.windows.len() >= max_keys {
            return Err(table_full());
        }
        Ok(())
    }
}

fn table_full() -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, "counter table full")
}

impl MemoryCounters {
    /// An empty table of at most [`DEFAULT_MAX_KEYS`] keys (per kind).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty table of at most `max_keys` request-rate keys (rounded up to whole shards)
    /// and as many failure keys.
    pub fn with_max_keys(max_keys: usize) -> Self {
        let max_keys = max_keys.max(1);
        let shards = (max_keys / KEYS_PER_SHARD).clamp(1, MAX_SHARDS);
        Self {
            rates: (0..shards).map(|_| Mutex::default()).collect(),
            shard_of: std::collections::hash_map::RandomState::new(),
            shard_max: max_keys.div_ceil(shards),
            shard_sweep_floor: (SWEEP_FLOOR / shards).max(1),
            failures: Mutex::default(),
            max_keys,
        }
    }

    /// How many keys have an open window; for tests and metrics.
    pub fn len(&self) -> usize {
        self.rates
            .iter()
            .chain(std::iter::once(&self.failures))
            .map(|t| t.lock().map(|t| t.windows.len()).unwrap_or(0))
            .sum()
    }

    /// Whether no key has an open window.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Runs `f` on the table of `key` (with that table's most keys and sweep floor).
    fn with<T>(
        &self,
        key: &str,
        f: impl FnOnce(&mut Table, usize, usize) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let (table, max_keys, sweep_floor) = if key.starts_with("fail:") {
            (&self.failures, self.max_keys, SWEEP_FLOOR)
        } else {
            let shard = match self.rates.len() {
                1 => 0,
                n => {
                    use std::hash::BuildHasher as _;
                    // The remainder is below `n`, a `usize`.
                    (self.shard_of.hash_one(key) % n as u64) as usize
                }
            };
            let table = self
                .rates
                .get(shard)
                .ok_or_else(|| StoreError::new(StoreErrorKind::Unavailable, "no counter shard"))?;
            (table, self.shard_max, self.shard_sweep_floor)
        };
        let mut table = table
            .lock()
            .map_err(|_| StoreError::new(StoreErrorKind::Unavailable, "counter table poisoned"))?;
        f(&mut table, max_keys, sweep_floor)
    }
}

impl Counters for MemoryCounters {
    fn hit<'a>(&'a self, key: &'a str, window: u64, now: UnixTime) -> CounterFuture<'a, Window> {
        let result = self.with(key, |t, max, floor| {
            t.room_for(key, now, max, floor)?;
            Ok(open(t, key, window, now, |w| {
                w.count += 1;
                let seen = *w;
                w.last = now;
                seen
            }))
        });
        Box::pin(std::future::ready(result))
    }

    fn peek<'a>(&'a self, key: &'a str, now: UnixTime) -> CounterFuture<'a, Option<Window>> {
        let result = self.with(key, |t, _, _| {
            Ok(t.windows.get(key).copied().filter(|w| w.resets_at > now))
        });
        Box::pin(std::future::ready(result))
    }

    fn clear<'a>(&'a self, key: &'a str) -> CounterFuture<'a, ()> {
        let result = self.with(key, |t, _, _| {
            t.windows.remove(key);
            Ok(())
        });
        Box::pin(std::future::ready(result))
    }

    fn reserve<'a>(
        &'a self,
        key: &'a str,
        gate: Gate,
        window: u64,
        now: UnixTime,
    ) -> CounterFuture<'a, Reserve> {
        let result = self.with(key, |t, max, floor| {
            if let Some(w) = t.windows.get(key).filter(|w| w.resets_at > now)
                && let Some(at) = gate.refusal(w.count, w.last, w.resets_at, now)
            {
                return Ok(Reserve::Refused(at));
            }
            t.room_for(key, now, max, floor)?;
            open(t, key, window, now, |w| {
                w.count += 1;
                w.last = now;
            });
            Ok(Reserve::Reserved)
        });
        Box::pin(std::future::ready(result))
    }

    fn refund<'a>(&'a self, key: &'a str) -> CounterFuture<'a, ()> {
        let result = self.with(key, |t, _, _| {
            if let Some(w) = t.windows.get_mut(key) {
                w.count = w.count.saturating_sub(1);
            }
            Ok(())
        });
        Box::pin(std::future::ready(result))
    }
}

/// Applies `f` to the key's open window, a fresh one if it had none or its window ended. The
/// key is copied only when it is new: a key that keeps hitting costs one lookup and no
/// allocation.
fn open<T>(
    t: &mut Table,
    key: &str,
    window: u64,
    now: UnixTime,
    f: impl FnOnce(&mut Window) -> T,
) -> T {
    if let Some(w) = t.windows.get_mut(key) {
        if w.resets_at <= now {
            *w = fresh(now, window);
        }
        return f(w);
    }
    let mut w = fresh(now, window);
    let out = f(&mut w);
    t.windows.insert(key.to_owned(), w);
    out
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
    fn client_failures_refuse_one_client_from_one_address_until_the_window_ends() {
        let (mut limits, _) = limits();
        limits.client_auth_failures = Some(Rate {
            requests: 2,
            window: 10,
        });
        let here: Option<IpAddr> = Some("192.0.2.1".parse().expect("ip"));
        let there: Option<IpAddr> = Some("2001:db8::1".parse().expect("ip"));
        let may = |id: &str, ip, t| block(limits.may_authenticate_client(id, ip, UnixTime(t)));
        for _ in 0..2 {
            assert_eq!(may("app", here, 0).expect("counted"), Ok(()));
            block(limits.client_auth_failed("app", here, UnixTime(0))).expect("counted");
        }
        assert_eq!(
            may("app", here, 3).expect("counted"),
            Err(Throttled { retry_after: 7 })
        );
        // Another address, another client, no address: each counts apart.
        assert_eq!(may("app", there, 3).expect("counted"), Ok(()));
        assert_eq!(may("other", here, 3).expect("counted"), Ok(()));
        assert_eq!(may("app", None, 3).expect("counted"), Ok(()));
        assert_eq!(may("app", here, 10).expect("counted"), Ok(()));
    }

    #[test]
    fn client_keys_are_short_for_any_id_and_never_shared() {
        let v4: Option<IpAddr> = Some("192.0.2.1".parse().expect("ip"));
        let v6: Option<IpAddr> = Some("2001:db8::1".parse().expect("ip"));
        assert_eq!(
            client_failure_key("app", v4).as_str(),
            "rate:client-fail:c0000201:=app"
        );
        assert_eq!(
            client_failure_key("app", None).as_str(),
            "rate:client-fail::=app"
        );
        assert_eq!(
            client_key("rate:client:", None, "app").as_str(),
            "rate:client:=app"
        );
        assert_eq!(
            ip_key("rate:ip:", "192.0.2.1".parse().expect("ip")).as_str(),
            "rate:ip:c0000201"
        );
        // A long or non-ASCII id is hashed: the key's size stays bounded.
        for id in [
            "c".repeat(255),
            "c".repeat(64 * 1024),
            "\u{e9}t\u{e9}".to_owned(),
        ] {
            let key = client_failure_key(&id, v6);
            let hashed = format!(
                "rate:client-fail:20010db8000000000000000000000001:#{}",
                crate::entropy::hex(&Sha256::digest(id.as_bytes()))
            );
            assert_eq!(key.as_str(), hashed);
            assert!(key.as_str().len() <= KEY_CAP);
        }
        // The longest literal id with the longest address fits.
        let longest = "x".repeat(LITERAL_ID_MAX);
        assert!(
            client_failure_key(&longest, v6)
                .as_str()
                .ends_with(&longest)
        );
        // Distinct pairs, distinct keys.
        let keys: std::collections::HashSet<String> = [
            client_failure_key("a", v4),
            client_failure_key("a", v6),
            client_failure_key("a", None),
            client_failure_key("b", v4),
            client_failure_key(&"a".repeat(65), v4),
            client_failure_key(&"a".repeat(64), v4),
        ]
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
        assert_eq!(keys.len(), 6);
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

    /// Reserves and settles one attempt as a failure (`Ok(false)`), a success (`Ok(true)`),
    /// or reports the refusal.
    fn attempt(limits: &Limits, user: &str, ip: &str, ok: bool, t: i64) -> Result<(), Throttled> {
        let ip: Option<IpAddr> = Some(ip.parse().expect("ip"));
        let reserved = block(limits.reserve_password(user, ip, UnixTime(t))).expect("counted")?;
        let reserved = reserved.expect("backoff on");
        block(limits.settle_password(reserved, ok)).expect("settled");
        Ok(())
    }

    #[test]
    fn failures_slow_then_lock_the_pair_and_success_clears() {
        let (limits, _) = limits();
        let a = "192.0.2.1";
        let fail = |t: i64| attempt(&limits, "alice", a, false, t);
        assert_eq!(fail(0), Ok(()));
        assert_eq!(fail(0), Ok(()));
        // Two failures: the third attempt waits 2 s after the last failure.
        assert_eq!(fail(0), Err(Throttled { retry_after: 2 }));
        assert_eq!(fail(1), Err(Throttled { retry_after: 1 }));
        assert_eq!(fail(2), Ok(()));
        // Three failures: 4 s.
        assert_eq!(fail(5), Err(Throttled { retry_after: 1 }));
        assert_eq!(fail(6), Ok(()));
        // Four failures: 8 s, capped at max_delay.
        assert_eq!(fail(7), Err(Throttled { retry_after: 7 }));
        assert_eq!(fail(14), Ok(()));
        // Five failures from this address: the pair is locked until the window (opened at 0)
        // ends at 100.
        assert_eq!(fail(50), Err(Throttled { retry_after: 50 }));
        assert_eq!(attempt(&limits, "alice", a, true, 100), Ok(()));
        // A success clears the user's count.
        assert_eq!(fail(100), Ok(()));
        assert_eq!(fail(100), Ok(()));
        // (Even the right password waits out the spacing.)
        assert!(attempt(&limits, "alice", a, true, 101).is_err());
        assert_eq!(attempt(&limits, "alice", a, true, 102), Ok(()));
        assert_eq!(fail(102), Ok(()));
        assert_eq!(fail(102), Ok(()));
    }

    #[test]
    fn issue_14_a_lock_from_one_address_does_not_lock_the_user_from_another() {
        let (limits, _) = limits();
        let attacker = "203.0.113.66";
        let owner = "198.51.100.7";
        let mut t = 0;
        let mut failures = 0;
        while failures < 5 {
            match attempt(&limits, "alice", attacker, false, t) {
                Ok(()) => failures += 1,
                Err(throttled) => t += i64::try_from(throttled.retry_after).expect("small"),
            }
        }
        // The attacker's address is locked out of alice until the window ends...
        t += 8;
        assert!(attempt(&limits, "alice", attacker, true, t).is_err());
        // ...while alice, from her own address, only waits out the per-user spacing.
        assert_eq!(attempt(&limits, "alice", owner, true, t), Ok(()));
    }

    #[test]
    fn issue_14_concurrent_attempts_cannot_all_pass_one_check() {
        let (limits, _) = limits();
        let ip: Option<IpAddr> = Some("192.0.2.40".parse().expect("ip"));
        // 40 attempts reserved at once, none settled yet (their passwords are being checked):
        // only the spacing's free attempts are let through.
        let reserved: Vec<_> = (0..40)
            .filter_map(|_| {
                block(limits.reserve_password("alice", ip, UnixTime(0)))
                    .expect("counted")
                    .ok()
            })
            .collect();
        assert_eq!(reserved.len(), 2, "slow_after attempts pass, then the wait");
    }

    #[test]
    fn one_address_guessing_many_users_is_locked_out() {
        let (limits, _) = limits();
        for n in 0..7 {
            assert_eq!(
                attempt(&limits, &format!("user{n}"), "192.0.2.9", false, 0),
                Ok(())
            );
        }
        assert!(attempt(&limits, "fresh", "192.0.2.9", true, 1).is_err());
        assert_eq!(attempt(&limits, "fresh", "192.0.2.10", true, 1), Ok(()));
    }

    #[test]
    fn issue_14_counter_keys_have_a_fixed_size_and_the_table_a_maximum() {
        let counters = Arc::new(MemoryCounters::with_max_keys(10));
        let mut limits = Limits::new(counters.clone());
        limits.per_client = Some(Rate {
            requests: 3,
            window: 10,
        });
        let huge = "c".repeat(64 * 1024);
        let k = key("rate:client:", &[huge.as_bytes()]);
        assert_eq!(k.len(), "rate:client:".len() + 64);
        // Request rates fill their table; past the maximum they fail (and are let through
        // by the caller) instead of growing.
        for n in 0..10 {
            let id = format!("{huge}{n}");
            assert_eq!(
                block(limits.by_client(&id, UnixTime(0))).expect("room"),
                Ok(())
            );
        }
        assert!(block(limits.by_client("one more", UnixTime(0))).is_err());
        assert_eq!(counters.len(), 10);
        // Password checks count in a table of their own, untouched by the flood...
        assert_eq!(attempt(&limits, "alice", "192.0.2.1", false, 0), Ok(()));
        // ...which, when full, refuses the check (fail closed).
        let same: Option<IpAddr> = Some("192.0.2.1".parse().expect("ip"));
        for n in 0..4 {
            let _ = block(limits.reserve_password(&format!("user{n}"), same, UnixTime(0)));
        }
        let ip: Option<IpAddr> = Some("192.0.2.99".parse().expect("ip"));
        assert!(block(limits.reserve_password("zed", ip, UnixTime(0))).is_err());
        // Ended windows make room again.
        assert!(block(limits.by_client("later", UnixTime(10))).is_ok());
    }

    #[test]
    fn the_rate_table_is_sharded_and_counts_exactly_under_concurrency() {
        let counters = Arc::new(MemoryCounters::new());
        assert_eq!(counters.rates.len(), MAX_SHARDS);
        // Keys spread over every shard, and each is counted once.
        for n in 0..20_000 {
            block(counters.hit(&format!("rate:ip:k{n}"), 10, UnixTime(0))).expect("hit");
        }
        assert_eq!(counters.len(), 20_000);
        assert!(
            counters
                .rates
                .iter()
                .all(|shard| !shard.lock().expect("lock").windows.is_empty())
        );
        // Hits on one key from several threads are all counted.
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let counters = Arc::clone(&counters);
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        block(counters.hit("rate:client:shared", 10, UnixTime(0))).expect("hit");
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("thread");
        }
        let seen = block(counters.peek("rate:client:shared", UnixTime(0))).expect("peek");
        assert_eq!(seen.map(|w| w.count), Some(4000));
        // A small table stays one shard, with an exact bound.
        assert_eq!(MemoryCounters::with_max_keys(10).rates.len(), 1);
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
