//! The one replay cache: "remember this key until T, and tell me if it was already there", in
//! one atomic step, in every backend.
//!
//! A client assertion's `jti` (RFC 7523 §3 item 7, OIDC Core §9), a DPoP proof's `jti`
//! (RFC 9449 §11.1) and an OAuth 1.0a nonce (RFC 5849 §3.3) are all the same thing: a value
//! the server must accept once while it could still be presented. Each caller turns its value
//! into a [`Digest`] with [`replay_key`], whose first part names the use, so the uses never
//! collide; the store only ever sees digests, never the value itself.
//!
//! Backends: [`MemoryReplayCache`] here (the memory store holds one), a table in every SQL
//! store, `SET NX PX` in Redis and `add` with an expiry in memcached. A remembered key that
//! has expired counts as new ([`super::expired`]), so a store that has not swept it yet gives
//! the same answer as one that has.

use super::{StoreError, StoreErrorKind, expired};
use crate::clock::UnixTime;
use crate::secret::Digest;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// Keys presented once: client-assertion and DPoP `jti`s, nonces.
pub trait ReplayStore: Send + Sync + 'static {
    /// In one atomic step: remembers `key` until `expires_at` and answers `true` if it was not
    /// remembered at `now` (fresh), or leaves it alone and answers `false` (a replay). Of
    /// several simultaneous calls with the same key, exactly one answers `true`.
    fn remember_once(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The digest a use of the replay cache remembers: SHA-256 over `domain` and each part, every
/// one prefixed by its length, so no two different lists give the same input and no use can
/// spend another use's key (`domain` names the use, e.g. `"client-assertion"`).
pub fn replay_key(domain: &str, parts: &[&str]) -> Digest {
    let mut input = Vec::with_capacity(64);
    for part in std::iter::once(domain).chain(parts.iter().copied()) {
        input.extend_from_slice(&(part.len() as u64).to_be_bytes());
        input.extend_from_slice(part.as_bytes());
    }
    Digest::of(&input)
}

/// The bounded in-memory replay cache: the reference implementation, held by
/// [`super::memory::MemoryStore`]. Cloning shares it.
///
/// Every call first forgets the keys expired at `now` (found through an index ordered by
/// expiry). When [`MemoryReplayCache::capacity`] live keys are held it refuses new ones with
/// [`StoreErrorKind::Unavailable`]: forgetting a live key would let its replay through, so a
/// full cache fails closed.
#[derive(Clone, Debug)]
pub struct MemoryReplayCache {
    inner: Arc<Mutex<Keys>>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Keys {
    live: std::collections::HashMap<[u8; 32], UnixTime>,
    by_expiry: BTreeSet<(UnixTime, [u8; 32])>,
}

impl Default for MemoryReplayCache {
    fn default() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }
}

impl MemoryReplayCache {
    /// How many live keys a default cache holds: about 100 MB at most.
    pub const DEFAULT_CAPACITY: usize = 1 << 20;

    /// A cache holding at most `capacity` live keys.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Arc::default(),
            capacity,
        }
    }

    /// The most live keys held.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many keys are held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.lock().live.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Keys> {
        // Each update is one insert pair or one removal pair: a poisoned lock is still whole.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`ReplayStore::remember_once`], synchronously (the memory stores call it under no
    /// other lock).
    pub fn remember(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut keys = self.lock();
        while let Some(&(at, k)) = keys.by_expiry.first() {
            if !expired(at, now) {
                break;
            }
            keys.by_expiry.pop_first();
            keys.live.remove(&k);
        }
        let key = *key.as_bytes();
        if let Some(&at) = keys.live.get(&key)
            && !expired(at, now)
        {
            return Ok(false);
        }
        if expired(expires_at, now) {
            // Already dead: nothing to remember, and nothing can replay it later.
            return Ok(true);
        }
        if keys.live.len() >= self.capacity {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "replay cache full",
            ));
        }
        keys.live.insert(key, expires_at);
        keys.by_expiry.insert((expires_at, key));
        Ok(true)
    }
}

impl ReplayStore for MemoryReplayCache {
    async fn remember_once(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.remember(key, expires_at, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_different_uses_or_splits_differ() {
        let a = replay_key("client-assertion", &["c", "j"]);
        assert_eq!(a, replay_key("client-assertion", &["c", "j"]));
        assert_ne!(a, replay_key("dpop", &["c", "j"]));
        assert_ne!(a, replay_key("client-assertion", &["cj"]));
        assert_ne!(replay_key("x", &["ab", "c"]), replay_key("x", &["a", "bc"]));
    }

    #[test]
    fn a_full_cache_refuses_rather_than_forgets() {
        let cache = MemoryReplayCache::with_capacity(2);
        let now = UnixTime(100);
        for k in [b"a", b"b"] {
            assert_eq!(
                cache.remember(&Digest::of(k), now.plus(10), now).ok(),
                Some(true)
            );
        }
        let err = cache
            .remember(&Digest::of(b"c"), now.plus(10), now)
            .expect_err("full");
        assert_eq!(err.kind(), StoreErrorKind::Unavailable);
        // Once the first keys expire, the sweep makes room.
        let later = now.plus(10);
        assert_eq!(
            cache
                .remember(&Digest::of(b"c"), later.plus(10), later)
                .ok(),
            Some(true)
        );
        assert_eq!(cache.len(), 1);
    }
}
