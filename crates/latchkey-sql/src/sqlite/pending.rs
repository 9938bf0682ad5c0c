//! Pending requests on SQLite ([`PendingStore`] for [`SqliteStore`]): reads run inline on the
//! read pool; saving, replacing and removing go through the group-commit writer, each one
//! guarded statement (see [`crate::pending_rows`]), and each batch sweeps expired rows.
//!
//! A save inserts with `ON CONFLICT DO NOTHING`, so a taken handle is the op's answer
//! ([`StoreErrorKind::Conflict`]) rather than a failed statement that would roll back the
//! whole batch.

use super::writer::{Answer, Op, Reply, change, sweep_limit};
use super::{SqliteStore, first};
use crate::error::from_rusqlite;
use crate::pending_rows::{self, pending_columns};
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::{PendingKind, PendingRecord, PendingStore, StoreError, StoreErrorKind};
use rusqlite::{Connection, params, params_from_iter};

/// A write of the pending-request store, run by the writer inside a batch, with its reply.
#[derive(Debug)]
pub(crate) enum Write {
    Save(PendingRecord, UnixTime, Reply<()>),
    Replace(PendingRecord, UnixTime, Reply<bool>),
    Remove {
        kind: PendingKind,
        digest: Digest,
        version: u64,
        now: UnixTime,
        reply: Reply<bool>,
    },
}

impl Write {
    /// The caller's `now`, which lets the batch sweep expired rows.
    pub(crate) fn now(&self) -> UnixTime {
        match self {
            Self::Save(_, now, _) | Self::Replace(_, now, _) | Self::Remove { now, .. } => *now,
        }
    }

    /// The write's reply.
    pub(crate) fn answer(&mut self) -> &mut dyn Answer {
        match self {
            Self::Save(_, _, reply) => reply,
            Self::Replace(_, _, reply) | Self::Remove { reply, .. } => reply,
        }
    }
}

/// Inserts unless a live row holds the digest or the lookup (any unique index).
const INSERT_IF_FREE: &str = concat!(
    "INSERT INTO pending_requests (",
    pending_columns!(),
    ") VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
);

/// Runs one write inside the writer's transaction and records its answer.
pub(crate) fn apply(conn: &Connection, write: &mut Write) -> rusqlite::Result<()> {
    match write {
        Write::Save(record, now, reply) => {
            let args = match pending_rows::pending_args(record) {
                Ok(args) => args,
                Err(err) => return reply.set(Err(err)),
            };
            change(
                conn,
                pending_rows::FORGET_EXPIRED,
                params![
                    record.digest.as_bytes().as_slice(),
                    record.lookup.as_ref().map(|l| l.as_bytes().as_slice()),
                    now.0
                ],
            )?;
            let inserted = change(conn, INSERT_IF_FREE, params_from_iter(args))?;
            reply.set(if inserted == 1 {
                Ok(())
            } else {
                Err(StoreError::new(
                    StoreErrorKind::Conflict,
                    "a live pending request has the same handle",
                ))
            })
        }
        Write::Replace(record, now, reply) => match pending_rows::replace_args(record, *now) {
            Ok(Some(args)) => {
                let changed = change(conn, pending_rows::REPLACE, params_from_iter(args))?;
                reply.set(Ok(changed == 1))
            }
            Ok(None) => reply.set(Ok(false)),
            Err(err) => reply.set(Err(err)),
        },
        Write::Remove {
            kind,
            digest,
            version,
            now,
            reply,
        } => {
            let Ok(version) = i64::try_from(*version) else {
                return reply.set(Ok(false)); // no stored version is that large
            };
            let removed = change(
                conn,
                pending_rows::REMOVE,
                params![digest.as_bytes().as_slice(), kind.as_str(), version, now.0],
            )?;
            reply.set(Ok(removed == 1))
        }
    }
}

/// Deletes up to [`sweep_limit!`] pending requests that expired by `now`.
pub(crate) fn sweep(conn: &Connection, now: UnixTime) -> rusqlite::Result<()> {
    change(
        conn,
        concat!(
            "DELETE FROM pending_requests WHERE rowid IN
                 (SELECT rowid FROM pending_requests WHERE expires_at <= ? LIMIT ",
            sweep_limit!(),
            ")"
        ),
        [now.0],
    )?;
    Ok(())
}

impl SqliteStore {
    /// Reads the live record `sql` selects by one digest (its digest or its lookup).
    fn read_pending(
        &self,
        sql: &str,
        key: &Digest,
        kind: PendingKind,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        self.inner.readers.read(|conn| {
            first(
                conn,
                sql,
                params![key.as_bytes().as_slice(), kind.as_str(), now.0],
                |row| pending_rows::pending(row),
            )
            .map_err(from_rusqlite)?
            .transpose()
        })
    }
}

impl PendingStore for SqliteStore {
    async fn save_pending(&self, record: &PendingRecord, now: UnixTime) -> Result<(), StoreError> {
        self.write(|reply| Op::Pending(Write::Save(record.clone(), now, reply)))
            .await
    }

    async fn find_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        self.read_pending(pending_rows::SELECT_BY_DIGEST, digest, kind, now)
    }

    async fn find_pending_by_lookup(
        &self,
        kind: PendingKind,
        lookup: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        self.read_pending(pending_rows::SELECT_BY_LOOKUP, lookup, kind, now)
    }

    async fn replace_pending(
        &self,
        record: &PendingRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.write(|reply| Op::Pending(Write::Replace(record.clone(), now, reply)))
            .await
    }

    async fn remove_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        version: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.write(|reply| {
            Op::Pending(Write::Remove {
                kind,
                digest: *digest,
                version,
                now,
                reply,
            })
        })
        .await
    }
}
