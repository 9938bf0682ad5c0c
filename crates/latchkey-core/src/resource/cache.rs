//! A short, bounded cache in front of a [`TokenVerifier`].
//!
//! Remote introspection costs a round trip per request; caching answers for a few seconds
//! removes most of them. The price is that a revoked token keeps working for at most
//! `max_age` (never past its own expiry), which the embedder chooses. The cache holds at most
//! `capacity` entries, evicting the oldest, so its memory is bounded whatever the traffic.

use super::{TokenVerifier, Verified};
use crate::clock::{Clock, UnixTime};
use crate::secret::{Digest, Secret};
use crate::store::StoreError;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// A verifier whose answers are remembered for at most `max_age` seconds.
pub struct CachedVerifier<V> {
    inner: V,
    clock: Arc<dyn Clock>,
    max_age: u64,
    capacity: usize,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    map: HashMap<Digest, (Verified, UnixTime)>,
    order: VecDeque<Digest>,
}

impl<V> CachedVerifier<V> {
    /// Caches `inner`'s answers for `max_age` seconds, keeping at most `capacity` of them.
    pub fn new(inner: V, clock: Arc<dyn Clock>, max_age: u64, capacity: usize) -> Self {
        Self {
            inner,
            clock,
            max_age,
            capacity: capacity.max(1),
            entries: Mutex::new(Entries::default()),
        }
    }

    /// How many answers are cached.
    pub fn len(&self) -> usize {
        self.lock().map.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<V: TokenVerifier> TokenVerifier for CachedVerifier<V> {
    async fn verify(&self, token: &Secret) -> Result<Verified, StoreError> {
        let key = token.digest();
        let now = self.clock.now();
        if let Some((verdict, until)) = self.lock().map.get(&key).cloned()
            && now < until
        {
            return Ok(verdict);
        }
        let verdict = self.inner.verify(token).await?;
        let mut until = now.plus(self.max_age);
        if let Verified::Active(access) = &verdict {
            until = until.min(access.expires_at);
        }
        let mut entries = self.lock();
        if entries.map.insert(key, (verdict.clone(), until)).is_none() {
            entries.order.push_back(key);
        }
        while entries.map.len() > self.capacity {
            let Some(oldest) = entries.order.pop_front() else {
                break;
            };
            entries.map.remove(&oldest);
        }
        Ok(verdict)
    }

    async fn revoke(&self, token: &Secret) -> Result<(), StoreError> {
        let key = token.digest();
        self.lock().map.remove(&key);
        self.inner.revoke(token).await
    }
}
