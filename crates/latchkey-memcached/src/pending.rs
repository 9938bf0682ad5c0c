//! Pending requests in memcached ([`PendingStore`] for [`MemcachedStore`]).
//!
//! A record is one item `pd:<digest>` holding the core's compact form
//! ([`PendingRecord::to_compact`]) and expiring with it; a record with a second handle also
//! has a pointer item `pl:<lookup>` holding its digest. Every change is a compare-and-set on
//! the record's item (`mg … c`, then `ms … C<cas>`): of callers racing on one version exactly
//! one CAS succeeds, the others read again and see the version moved. Removal is a CAS that
//! expires the item at once (`T-1`).
//!
//! The pointer is checked after every read: a lookup finds a record only if that record names
//! the lookup itself, so a pointer left behind (by a refused save, or a record replaced after
//! its expiry) never finds another record. A save takes a lookup only from a pointer whose
//! record is gone *and* readable as not live; a pointer whose record is missing counts as
//! taken (it may be a save still under way, or an evicted record), which fails closed: the
//! caller draws a new handle.
//!
//! Like tokens and codes, records can be evicted under memory pressure (the person then starts
//! over) and expire by the memcached clock.

use crate::generation::exptime;
use crate::pool::{Conn, Write};
use crate::{CAS_ATTEMPTS, MemcachedStore, contended};
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::{
    PendingKind, PendingRecord, PendingStore, StoreError, StoreErrorKind, expired,
};

fn taken() -> StoreError {
    StoreError::new(
        StoreErrorKind::Conflict,
        "a live pending request has the same handle",
    )
}

impl MemcachedStore {
    /// The record stored under `digest` (of any kind, live or not), with its CAS value.
    async fn read_record(
        &self,
        conn: &mut Conn<'_>,
        digest: &Digest,
    ) -> Result<Option<(PendingRecord, u64)>, StoreError> {
        let Some(item) = conn.get(&self.item_key("pd:", digest), &["v", "c"]).await? else {
            return Ok(None);
        };
        let (Some(data), Some(cas)) = (item.data, item.cas) else {
            return Ok(None);
        };
        Ok(Some((PendingRecord::from_compact(*digest, &data)?, cas)))
    }

    /// The digest the lookup pointer names, with the pointer's CAS value.
    async fn read_pointer(
        &self,
        conn: &mut Conn<'_>,
        lookup: &Digest,
    ) -> Result<Option<(Option<Digest>, u64)>, StoreError> {
        let Some(item) = conn.get(&self.item_key("pl:", lookup), &["v", "c"]).await? else {
            return Ok(None);
        };
        let (Some(data), Some(cas)) = (item.data, item.cas) else {
            return Ok(None);
        };
        let owner = std::str::from_utf8(&data).ok().and_then(Digest::from_hex);
        Ok(Some((owner, cas)))
    }

    /// Points `lookup` at `record`'s digest, unless a live record holds it.
    async fn claim_lookup(
        &self,
        conn: &mut Conn<'_>,
        record: &PendingRecord,
        lookup: &Digest,
        ttl: i64,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let key = self.item_key("pl:", lookup);
        let value = record.digest.to_hex();
        for _ in 0..CAS_ATTEMPTS {
            match conn
                .set(
                    &key,
                    value.as_bytes(),
                    &["ME".to_owned(), format!("T{ttl}")],
                )
                .await?
            {
                Write::Stored => return Ok(()),
                Write::NotStored | Write::Exists => {}
                Write::NotFound => continue,
            }
            let Some((owner, cas)) = self.read_pointer(conn, lookup).await? else {
                continue; // gone meanwhile: add again
            };
            if let Some(owner) = owner {
                match self.read_record(conn, &owner).await? {
                    // A save under way, or an evicted record: fail closed.
                    None => return Err(taken()),
                    Some((held, _))
                        if held.lookup.as_ref() == Some(lookup)
                            && !expired(held.expires_at, now) =>
                    {
                        return Err(taken());
                    }
                    Some(_) => {} // left behind: take it over
                }
            }
            let flags = [format!("C{cas}"), format!("T{ttl}")];
            if conn.set(&key, value.as_bytes(), &flags).await? == Write::Stored {
                return Ok(());
            }
        }
        Err(contended("pending lookup"))
    }

    /// Expires the lookup pointer at once if it still names `digest`.
    async fn release_lookup(
        &self,
        conn: &mut Conn<'_>,
        lookup: &Digest,
        digest: &Digest,
    ) -> Result<(), StoreError> {
        if let Some((Some(owner), cas)) = self.read_pointer(conn, lookup).await?
            && owner == *digest
        {
            let key = self.item_key("pl:", lookup);
            // Another writer that moved it meanwhile keeps it.
            conn.set(&key, b"", &[format!("C{cas}"), "T-1".to_owned()])
                .await?;
        }
        Ok(())
    }

    /// The live record of `kind` at `digest` and its CAS value.
    async fn live_record(
        &self,
        conn: &mut Conn<'_>,
        kind: PendingKind,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<(PendingRecord, u64)>, StoreError> {
        Ok(self
            .read_record(conn, digest)
            .await?
            .filter(|(r, _)| r.kind == kind && !expired(r.expires_at, now)))
    }
}

impl PendingStore for MemcachedStore {
    async fn save_pending(&self, record: &PendingRecord, now: UnixTime) -> Result<(), StoreError> {
        // The lifetime is relative to the core's `now`, as the caller judged expiry with it.
        let Some(ttl) = exptime(record.expires_at.0, now.0) else {
            return Ok(()); // already expired: it would read as absent
        };
        let mut conn = self.pool.get().await?;
        if let Some(lookup) = &record.lookup {
            self.claim_lookup(&mut conn, record, lookup, ttl, now)
                .await?;
        }
        let key = self.item_key("pd:", &record.digest);
        let value = record.to_compact();
        for _ in 0..CAS_ATTEMPTS {
            match conn
                .set(&key, &value, &["ME".to_owned(), format!("T{ttl}")])
                .await?
            {
                Write::Stored => return Ok(()),
                Write::NotStored | Write::Exists => {}
                Write::NotFound => continue,
            }
            let Some((held, cas)) = self.read_record(&mut conn, &record.digest).await? else {
                continue;
            };
            if !expired(held.expires_at, now) {
                return Err(taken());
            }
            let flags = [format!("C{cas}"), format!("T{ttl}")];
            if conn.set(&key, &value, &flags).await? == Write::Stored {
                return Ok(());
            }
        }
        Err(contended("pending save"))
    }

    async fn find_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        let mut conn = self.pool.get().await?;
        Ok(self
            .live_record(&mut conn, kind, digest, now)
            .await?
            .map(|(r, _)| r))
    }

    async fn find_pending_by_lookup(
        &self,
        kind: PendingKind,
        lookup: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        let mut conn = self.pool.get().await?;
        let Some((Some(owner), _)) = self.read_pointer(&mut conn, lookup).await? else {
            return Ok(None);
        };
        Ok(self
            .live_record(&mut conn, kind, &owner, now)
            .await?
            .map(|(r, _)| r)
            // Check after read: only the record that names this lookup is its owner.
            .filter(|r| r.lookup.as_ref() == Some(lookup)))
    }

    async fn replace_pending(
        &self,
        record: &PendingRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await?;
        let key = self.item_key("pd:", &record.digest);
        for _ in 0..CAS_ATTEMPTS {
            let Some((stored, cas)) = self
                .live_record(&mut conn, record.kind, &record.digest, now)
                .await?
            else {
                return Ok(false);
            };
            if stored.version.checked_add(1) != Some(record.version) {
                return Ok(false);
            }
            let next = PendingRecord {
                lookup: stored.lookup,
                client_id: stored.client_id.clone(),
                ..record.clone()
            };
            let ttl = exptime(next.expires_at.0, now.0);
            let lifetime = ttl.map_or_else(|| "T-1".to_owned(), |t| format!("T{t}"));
            match conn
                .set(&key, &next.to_compact(), &[format!("C{cas}"), lifetime])
                .await?
            {
                Write::Stored => {
                    if let (Some(lookup), Some(ttl)) = (&next.lookup, ttl) {
                        // The pointer lives as long as its record (a touch: `mg … T`).
                        conn.get(&self.item_key("pl:", lookup), &[&format!("T{ttl}")])
                            .await?;
                    }
                    return Ok(true);
                }
                // Another writer got there first: read again, and see the version moved.
                Write::Exists => continue,
                Write::NotFound | Write::NotStored => return Ok(false),
            }
        }
        Err(contended("pending replacement"))
    }

    async fn remove_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        version: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await?;
        let key = self.item_key("pd:", digest);
        for _ in 0..CAS_ATTEMPTS {
            let Some((stored, cas)) = self.live_record(&mut conn, kind, digest, now).await? else {
                return Ok(false);
            };
            if stored.version != version {
                return Ok(false);
            }
            match conn
                .set(&key, b"", &[format!("C{cas}"), "T-1".to_owned()])
                .await?
            {
                Write::Stored => {
                    if let Some(lookup) = &stored.lookup {
                        self.release_lookup(&mut conn, lookup, digest).await?;
                    }
                    return Ok(true);
                }
                Write::Exists => continue,
                Write::NotFound | Write::NotStored => return Ok(false),
            }
        }
        Err(contended("pending removal"))
    }
}
