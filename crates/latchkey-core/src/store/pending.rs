//! The one pending-request record: what waits, for a short time, on a person or on a later
//! request. A pushed authorization request (RFC 9126) waits for the browser to come to
//! `/authorize` with its `request_uri`; a device authorization (RFC 8628) waits for the user to
//! enter its `user_code` and approve, while the device polls with its `device_code`.
//!
//! Both are the same shape: a record found by the digest of a secret handle (the
//! `request_uri`'s random part, the `device_code`), optionally also by the digest of a second,
//! human-typed handle (the `user_code`), with a body only the core reads, a lifetime, and a
//! version. Every change is a compare-and-swap on that version ([`PendingStore::replace_pending`],
//! [`PendingStore::remove_pending`]), so "single use" and "tokens exactly once, also under
//! concurrent polling" are the store's atomic step: of two callers that read version `n`, only
//! one can move it on.
//!
//! The store sees digests and an opaque body; what the body means (the stored authorization
//! parameters, a device's approval) and every rule about it (expiry, polling interval, who may
//! take it) lives with the feature that uses it, in the core.

use super::{StoreError, StoreErrorKind, expired};
use crate::client::ClientId;
use crate::clock::UnixTime;
use crate::secret::Digest;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// What kind of request a [`PendingRecord`] holds; part of its identity, so one feature can
/// never read another's records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PendingKind {
    /// A pushed authorization request (RFC 9126).
    PushedAuthorization,
    /// A device authorization (RFC 8628).
    DeviceAuthorization,
}

impl PendingKind {
    /// The name stored with the record.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PushedAuthorization => "par",
            Self::DeviceAuthorization => "device",
        }
    }

    /// The kind a stored name stands for.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "par" => Some(Self::PushedAuthorization),
            "device" => Some(Self::DeviceAuthorization),
            _ => None,
        }
    }
}

/// A request waiting on a person or a later request, as a store keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingRecord {
    /// SHA-256 of the secret handle (a `request_uri`'s random part, a `device_code`): the
    /// primary key.
    pub digest: Digest,
    /// SHA-256 of a second handle a person types (a device's normalized `user_code`), unique
    /// among live records; `None` when the record has none.
    pub lookup: Option<Digest>,
    /// What the record holds.
    pub kind: PendingKind,
    /// The client that made the request: only it may use the record.
    pub client_id: ClientId,
    /// The feature's own state, in its versioned compact form; the store never reads it.
    pub body: Vec<u8>,
    /// When the record stops counting; a store may forget it after this.
    pub expires_at: UnixTime,
    /// Starts at 0 and goes up by one with every replacement: the compare-and-swap token.
    pub version: u64,
}

impl PendingRecord {
    /// The first byte of [`PendingRecord::to_compact`]'s output: the form's version.
    const COMPACT_VERSION: u8 = 1;

    /// The record in its one compact form for key-value backends (memcached), everything but
    /// the digest (the key already holds it): a version byte, the kind, the client id, the
    /// lookup, the expiry, the version, then the body.
    pub fn to_compact(&self) -> Vec<u8> {
        let kind = self.kind.as_str().as_bytes();
        let client = self.client_id.as_str().as_bytes();
        let mut out = Vec::with_capacity(64 + client.len() + self.body.len());
        out.push(Self::COMPACT_VERSION);
        // Kind names are a few ASCII bytes and client ids at most 255 (ClientId::parse).
        out.push(u8::try_from(kind.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(kind);
        out.push(u8::try_from(client.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(client);
        match &self.lookup {
            Some(lookup) => {
                out.push(1);
                out.extend_from_slice(lookup.as_bytes());
            }
            None => out.push(0),
        }
        out.extend_from_slice(&self.expires_at.0.to_be_bytes());
        out.extend_from_slice(&self.version.to_be_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    /// Reads [`PendingRecord::to_compact`]'s output back as the record keyed by `digest`;
    /// anything else is [`StoreErrorKind::Corrupt`].
    pub fn from_compact(digest: Digest, bytes: &[u8]) -> Result<Self, StoreError> {
        let corrupt = || super::codec::corrupt("pending request");
        let mut rest = bytes;
        let mut take = |n: usize| -> Result<&[u8], StoreError> {
            let (head, tail) = rest.split_at_checked(n).ok_or_else(corrupt)?;
            rest = tail;
            Ok(head)
        };
        if take(1)? != [Self::COMPACT_VERSION] {
            return Err(corrupt());
        }
        let kind_len = usize::from(take(1)?[0]);
        let kind = std::str::from_utf8(take(kind_len)?)
            .ok()
            .and_then(PendingKind::parse)
            .ok_or_else(corrupt)?;
        let client_len = usize::from(take(1)?[0]);
        let client_id = std::str::from_utf8(take(client_len)?)
            .ok()
            .and_then(|raw| ClientId::parse(raw).ok())
            .ok_or_else(corrupt)?;
        let lookup = match take(1)? {
            [0] => None,
            [1] => Some(Digest::from_slice(take(32)?).ok_or_else(corrupt)?),
            _ => return Err(corrupt()),
        };
        let expires_at = i64::from_be_bytes(take(8)?.try_into().map_err(|_| corrupt())?);
        let version = u64::from_be_bytes(take(8)?.try_into().map_err(|_| corrupt())?);
        Ok(Self {
            digest,
            lookup,
            kind,
            client_id,
            body: rest.to_vec(),
            expires_at: UnixTime(expires_at),
            version,
        })
    }
}

/// Requests that wait: pushed authorization requests and device authorizations.
///
/// Every backend implements it with one atomic step per method; an expired record reads as
/// absent ([`expired`]) whether or not it was swept yet.
pub trait PendingStore: Send + Sync + 'static {
    /// Stores a new record. Fails with [`StoreErrorKind::Conflict`] when a live record has
    /// the same digest, or the same `lookup` (the caller then draws a new handle).
    fn save_pending(
        &self,
        record: &PendingRecord,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The live record of `kind` whose handle has `digest`.
    fn find_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<PendingRecord>, StoreError>> + Send;

    /// The live record of `kind` whose second handle has `lookup`.
    fn find_pending_by_lookup(
        &self,
        kind: PendingKind,
        lookup: &Digest,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<PendingRecord>, StoreError>> + Send;

    /// Replaces the live record with `record.digest` by `record` (whose `version` must be one
    /// more than the stored one's) if the stored version is still `record.version - 1`.
    /// Answers whether it did; `false` when another caller got there first or the record is
    /// gone. `lookup`, `kind` and `client_id` never change.
    fn replace_pending(
        &self,
        record: &PendingRecord,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes the live record of `kind` with `digest` if its version is still `version`.
    /// Answers whether it did: of several callers, exactly one gets `true` (single use).
    fn remove_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        version: u64,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The bounded in-memory pending-request store: the reference implementation. Cloning shares
/// it.
///
/// Every write first forgets the records expired at `now`. When as many live records as its
/// capacity are held a new one is refused with [`StoreErrorKind::Unavailable`] (these records
/// are short-lived; a full store means a flood, and refusing is what bounds it).
#[derive(Clone, Debug)]
pub struct MemoryPendingStore {
    inner: Arc<Mutex<Records>>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Records {
    by_digest: HashMap<[u8; 32], PendingRecord>,
    by_lookup: HashMap<[u8; 32], [u8; 32]>,
}

impl Records {
    fn sweep(&mut self, now: UnixTime) {
        let Self {
            by_digest,
            by_lookup,
        } = self;
        by_digest.retain(|_, r| {
            let live = !expired(r.expires_at, now);
            if !live && let Some(lookup) = &r.lookup {
                by_lookup.remove(lookup.as_bytes());
            }
            live
        });
    }

    fn live(&self, kind: PendingKind, digest: &[u8; 32], now: UnixTime) -> Option<&PendingRecord> {
        self.by_digest
            .get(digest)
            .filter(|r| r.kind == kind && !expired(r.expires_at, now))
    }

    fn remove(&mut self, digest: &[u8; 32]) {
        if let Some(record) = self.by_digest.remove(digest)
            && let Some(lookup) = &record.lookup
        {
            self.by_lookup.remove(lookup.as_bytes());
        }
    }
}

impl Default for MemoryPendingStore {
    fn default() -> Self {
        Self::with_capacity(Self::DEFAULT_CAPACITY)
    }
}

impl MemoryPendingStore {
    /// How many live records a default store holds.
    pub const DEFAULT_CAPACITY: usize = 100_000;

    /// A store holding at most `capacity` live records.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            inner: Arc::default(),
            capacity,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Records> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`PendingStore::save_pending`], synchronously.
    pub fn save(&self, record: &PendingRecord, now: UnixTime) -> Result<(), StoreError> {
        let mut records = self.lock();
        records.sweep(now);
        let digest = *record.digest.as_bytes();
        if records.by_digest.contains_key(&digest)
            || record
                .lookup
                .as_ref()
                .is_some_and(|l| records.by_lookup.contains_key(l.as_bytes()))
        {
            return Err(StoreError::new(
                StoreErrorKind::Conflict,
                "a live pending request has the same handle",
            ));
        }
        if records.by_digest.len() >= self.capacity {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "the pending-request store is full",
            ));
        }
        if let Some(lookup) = &record.lookup {
            records.by_lookup.insert(*lookup.as_bytes(), digest);
        }
        records.by_digest.insert(digest, record.clone());
        Ok(())
    }

    /// [`PendingStore::find_pending`], synchronously.
    pub fn find(&self, kind: PendingKind, digest: &Digest, now: UnixTime) -> Option<PendingRecord> {
        self.lock().live(kind, digest.as_bytes(), now).cloned()
    }

    /// [`PendingStore::find_pending_by_lookup`], synchronously.
    pub fn find_by_lookup(
        &self,
        kind: PendingKind,
        lookup: &Digest,
        now: UnixTime,
    ) -> Option<PendingRecord> {
        let records = self.lock();
        let digest = records.by_lookup.get(lookup.as_bytes())?;
        records.live(kind, digest, now).cloned()
    }

    /// [`PendingStore::replace_pending`], synchronously.
    pub fn replace(&self, record: &PendingRecord, now: UnixTime) -> bool {
        let mut records = self.lock();
        let digest = *record.digest.as_bytes();
        let Some(stored) = records.live(record.kind, &digest, now) else {
            return false;
        };
        if record.version != stored.version + 1 {
            return false;
        }
        let replacement = PendingRecord {
            lookup: stored.lookup,
            client_id: stored.client_id.clone(),
            ..record.clone()
        };
        records.by_digest.insert(digest, replacement);
        true
    }

    /// [`PendingStore::remove_pending`], synchronously.
    pub fn remove(&self, kind: PendingKind, digest: &Digest, version: u64, now: UnixTime) -> bool {
        let mut records = self.lock();
        let key = *digest.as_bytes();
        match records.live(kind, &key, now) {
            Some(stored) if stored.version == version => {
                records.remove(&key);
                true
            }
            _ => false,
        }
    }
}

impl PendingStore for MemoryPendingStore {
    async fn save_pending(&self, record: &PendingRecord, now: UnixTime) -> Result<(), StoreError> {
        self.save(record, now)
    }

    async fn find_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        Ok(self.find(kind, digest, now))
    }

    async fn find_pending_by_lookup(
        &self,
        kind: PendingKind,
        lookup: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        Ok(self.find_by_lookup(kind, lookup, now))
    }

    async fn replace_pending(
        &self,
        record: &PendingRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        Ok(self.replace(record, now))
    }

    async fn remove_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        version: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        Ok(self.remove(kind, digest, version, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(lookup: Option<Digest>) -> PendingRecord {
        PendingRecord {
            digest: Digest::of(b"handle"),
            lookup,
            kind: PendingKind::DeviceAuthorization,
            client_id: ClientId::parse("client-\u{7e}1").expect("valid"),
            body: (0..=255u8).collect(),
            expires_at: UnixTime(1_700_000_000),
            version: u64::MAX - 1,
        }
    }

    #[test]
    fn the_compact_form_reads_back_exactly() {
        for r in [record(None), record(Some(Digest::of(b"user code")))] {
            let bytes = r.to_compact();
            assert_eq!(
                PendingRecord::from_compact(r.digest, &bytes).expect("decode"),
                r
            );
        }
    }

    #[test]
    fn a_damaged_compact_form_is_corrupt() {
        let bytes = record(Some(Digest::of(b"x"))).to_compact();
        let digest = Digest::of(b"handle");
        for cut in [0, 1, 5, 20, 40] {
            let err = PendingRecord::from_compact(digest, &bytes[..cut]).expect_err("cut");
            assert_eq!(err.kind(), StoreErrorKind::Corrupt, "cut at {cut}");
        }
        let mut future = bytes.clone();
        future[0] = 2;
        assert!(PendingRecord::from_compact(digest, &future).is_err());
    }
}
