//! Pending requests on a database server ([`PendingStore`] for [`SqlxStore`]): every step is
//! one guarded statement (see [`crate::pending_rows`]), atomic in the database whichever node
//! runs it: a second live record with a taken digest or lookup is a unique violation
//! ([`latchkey_core::store::StoreErrorKind::Conflict`]), and of several nodes replacing or
//! removing one version, the database lets exactly one change the row. Saving a record then
//! sweeps expired ones (see [`SqlxStore::sweep`]).

use super::SqlxStore;
use super::dialect::Dialect;
use crate::pending_rows::{self, pending_args, replace_args};
use crate::rows::args;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::{PendingKind, PendingRecord, PendingStore, StoreError};

impl<D: Dialect> SqlxStore<D> {
    /// The live record `sql` selects by one digest (its digest or its lookup).
    async fn read_pending(
        &self,
        sql: &'static str,
        key: &Digest,
        kind: PendingKind,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        let row = self
            .fetch_optional(sql, &args![key, kind.as_str(), now.0])
            .await?;
        row.as_ref().map(pending_rows::pending).transpose()
    }
}

impl<D: Dialect> PendingStore for SqlxStore<D> {
    async fn save_pending(&self, record: &PendingRecord, now: UnixTime) -> Result<(), StoreError> {
        // Expired rows holding either handle go first, so they never block the new one.
        self.execute(
            pending_rows::FORGET_EXPIRED,
            &args![&record.digest, record.lookup.as_ref(), now.0],
        )
        .await?;
        self.execute(pending_rows::INSERT, &pending_args(record)?)
            .await?;
        self.sweep("pending_requests", now).await;
        Ok(())
    }

    async fn find_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        self.read_pending(pending_rows::SELECT_BY_DIGEST, digest, kind, now)
            .await
    }

    async fn find_pending_by_lookup(
        &self,
        kind: PendingKind,
        lookup: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        self.read_pending(pending_rows::SELECT_BY_LOOKUP, lookup, kind, now)
            .await
    }

    async fn replace_pending(
        &self,
        record: &PendingRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let Some(args) = replace_args(record, now)? else {
            return Ok(false);
        };
        Ok(self.execute(pending_rows::REPLACE, &args).await? == 1)
    }

    async fn remove_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        version: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let Ok(version) = i64::try_from(version) else {
            return Ok(false); // no stored version is that large
        };
        let removed = self
            .execute(
                pending_rows::REMOVE,
                &args![digest, kind.as_str(), version, now.0],
            )
            .await?;
        Ok(removed == 1)
    }
}
