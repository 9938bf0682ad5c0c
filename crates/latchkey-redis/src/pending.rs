//! Pending requests in Redis ([`PendingStore`] for [`RedisStore`]): a hash per record under
//! `pd:<digest>`, and a pointer `pl:<lookup>` to the digest for records with a second handle,
//! both expiring with the record (`PEXPIRE`, a lifetime relative to the core's `now`).
//!
//! Saving, replacing and removing are Lua scripts (see `scripts`), so the check (is a live
//! record there, at which version) and the change are one step: of callers racing on one
//! version exactly one wins. Reads are plain `HMGET`s that check kind and expiry against the
//! core's `now`; a lookup is followed only to a record whose own `l` field names it, so a
//! pointer left behind never finds a record that is not its own.

use crate::{RedisStore, bounded};
use latchkey_core::client::ClientId;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::{PendingKind, PendingRecord, PendingStore, StoreError, codec};

/// A lifetime from `now` to `expires_at`, in milliseconds (0 when already past).
fn ttl_ms(expires_at: UnixTime, now: UnixTime) -> i64 {
    expires_at
        .0
        .saturating_sub(now.0)
        .max(0)
        .saturating_mul(1000)
}

/// The fields of a pending hash, in the order [`RedisStore::read_pending`] asks for them.
type Fields = (
    Option<String>,
    Option<String>,
    Option<String>,
    Option<Vec<u8>>,
    Option<i64>,
    Option<u64>,
);

impl RedisStore {
    /// The live record of `kind` with `digest`, whose lookup (when `lookup` is given) is it.
    async fn read_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        lookup: Option<&Digest>,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let query = redis::cmd("HMGET")
            .arg(self.key("pd:", &digest.to_hex()))
            .arg(&["k", "c", "l", "b", "x", "v"][..])
            .to_owned();
        let (k, c, l, b, x, v): Fields =
            bounded("find_pending", self.timeout, query.query_async(&mut conn)).await?;
        let Some(k) = k else {
            return Ok(None);
        };
        let (Some(c), Some(l), Some(body), Some(x), Some(version)) = (c, l, b, x, v) else {
            return Err(codec::corrupt("pending request"));
        };
        let stored = PendingKind::parse(&k).ok_or_else(|| codec::corrupt("pending kind"))?;
        let expires_at = UnixTime(x);
        if stored != kind || latchkey_core::store::expired(expires_at, now) {
            return Ok(None);
        }
        let stored_lookup = match l.as_str() {
            "" => None,
            hex => Some(Digest::from_hex(hex).ok_or_else(|| codec::corrupt("pending lookup"))?),
        };
        if lookup.is_some() && stored_lookup.as_ref() != lookup {
            return Ok(None); // a pointer left behind by another record
        }
        Ok(Some(PendingRecord {
            digest: *digest,
            lookup: stored_lookup,
            kind,
            client_id: ClientId::parse(&c).map_err(|_| codec::corrupt("pending client"))?,
            body,
            expires_at,
            version,
        }))
    }
}

impl PendingStore for RedisStore {
    async fn save_pending(&self, record: &PendingRecord, now: UnixTime) -> Result<(), StoreError> {
        let ttl = ttl_ms(record.expires_at, now);
        if ttl == 0 {
            return Ok(()); // already expired: it would read as absent
        }
        let args: Vec<Vec<u8>> = vec![
            record.digest.to_hex().into_bytes(),
            record.kind.as_str().as_bytes().to_vec(),
            record.client_id.as_str().as_bytes().to_vec(),
            record
                .lookup
                .map(|l| l.to_hex().into_bytes())
                .unwrap_or_default(),
            record.body.clone(),
            record.expires_at.0.to_string().into_bytes(),
            record.version.to_string().into_bytes(),
            now.0.to_string().into_bytes(),
            ttl.to_string().into_bytes(),
        ];
        let saved: i64 = self
            .run("save_pending", &self.scripts.save_pending, args)
            .await?;
        if saved == 1 {
            Ok(())
        } else {
            Err(StoreError::new(
                latchkey_core::store::StoreErrorKind::Conflict,
                "a live pending request has the same handle",
            ))
        }
    }

    async fn find_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        self.read_pending(kind, digest, None, now).await
    }

    async fn find_pending_by_lookup(
        &self,
        kind: PendingKind,
        lookup: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let query = redis::cmd("GET")
            .arg(self.key("pl:", &lookup.to_hex()))
            .to_owned();
        let owner: Option<String> =
            bounded("find_pending", self.timeout, query.query_async(&mut conn)).await?;
        let Some(digest) = owner.as_deref().and_then(Digest::from_hex) else {
            return Ok(None);
        };
        self.read_pending(kind, &digest, Some(lookup), now).await
    }

    async fn replace_pending(
        &self,
        record: &PendingRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let Some(previous) = record.version.checked_sub(1) else {
            return Ok(false);
        };
        let args: Vec<Vec<u8>> = vec![
            record.digest.to_hex().into_bytes(),
            record.kind.as_str().as_bytes().to_vec(),
            now.0.to_string().into_bytes(),
            previous.to_string().into_bytes(),
            record.version.to_string().into_bytes(),
            record.body.clone(),
            record.expires_at.0.to_string().into_bytes(),
            ttl_ms(record.expires_at, now).to_string().into_bytes(),
        ];
        let replaced: i64 = self
            .run("replace_pending", &self.scripts.replace_pending, args)
            .await?;
        Ok(replaced == 1)
    }

    async fn remove_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        version: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let args = vec![
            digest.to_hex(),
            kind.as_str().to_owned(),
            now.0.to_string(),
            version.to_string(),
        ];
        let removed: i64 = self
            .run("remove_pending", &self.scripts.remove_pending, args)
            .await?;
        Ok(removed == 1)
    }
}
