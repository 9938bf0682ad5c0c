//! Rows of `pending_requests`, to and from [`PendingRecord`], and the statements every SQL
//! backend runs on them (SQLite through its writer, PostgreSQL and MySQL through sqlx): one
//! statement per step of [`latchkey_core::store::PendingStore`], each atomic on its own.
//!
//! Every read and every guarded write carries the caller's `now` (`expires_at > ?`), so a row
//! that expired but was not swept yet reads as absent; a new record first deletes expired rows
//! holding its digest or lookup ([`FORGET_EXPIRED`]), so they never block it.

use crate::error::corrupt;
use crate::rows::{Arg, Columns};
use latchkey_core::client::ClientId;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::{PendingKind, PendingRecord, StoreError, StoreErrorKind};

/// The columns of `pending_requests`, in the order [`pending`] reads them.
macro_rules! pending_columns {
    () => {
        "digest, kind, lookup, client_id, body, expires_at, version"
    };
}
#[cfg(feature = "sqlite")]
pub(crate) use pending_columns;

/// The live record of a kind by digest: digest, kind, now.
pub(crate) const SELECT_BY_DIGEST: &str = concat!(
    "SELECT ",
    pending_columns!(),
    " FROM pending_requests WHERE digest = ? AND kind = ? AND expires_at > ?"
);

/// The live record of a kind by lookup: lookup, kind, now.
pub(crate) const SELECT_BY_LOOKUP: &str = concat!(
    "SELECT ",
    pending_columns!(),
    " FROM pending_requests WHERE lookup = ? AND kind = ? AND expires_at > ?"
);

/// Deletes the expired rows that hold a new record's digest or lookup: digest, lookup, now.
pub(crate) const FORGET_EXPIRED: &str =
    "DELETE FROM pending_requests WHERE (digest = ? OR lookup = ?) AND expires_at <= ?";

/// Inserts a record ([`pending_args`]); a live one with the same digest or lookup makes it a
/// unique violation. (The SQLite store inserts with its own conflict clause.)
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) const INSERT: &str = concat!(
    "INSERT INTO pending_requests (",
    pending_columns!(),
    ") VALUES (?, ?, ?, ?, ?, ?, ?)"
);

/// The compare-and-swap: body, expires_at, new version, digest, kind, expected version, now.
/// Changes one row or none.
pub(crate) const REPLACE: &str = "UPDATE pending_requests SET body = ?, expires_at = ?, version = ? \
     WHERE digest = ? AND kind = ? AND version = ? AND expires_at > ?";

/// The single-use removal: digest, kind, version, now. Deletes one row or none.
pub(crate) const REMOVE: &str = "DELETE FROM pending_requests \
     WHERE digest = ? AND kind = ? AND version = ? AND expires_at > ?";

/// A record's version as a column value.
pub(crate) fn version(version: u64) -> Result<i64, StoreError> {
    i64::try_from(version).map_err(|_| {
        StoreError::new(
            StoreErrorKind::Other,
            "a pending request's version is past what SQL stores",
        )
    })
}

/// The arguments of `INSERT`.
pub(crate) fn pending_args(record: &PendingRecord) -> Result<[Arg<'_>; 7], StoreError> {
    Ok([
        Arg::from(&record.digest),
        Arg::from(record.kind.as_str()),
        Arg::from(record.lookup.as_ref()),
        Arg::from(record.client_id.as_str()),
        Arg::from(record.body.as_slice()),
        Arg::from(record.expires_at.0),
        Arg::from(version(record.version)?),
    ])
}

/// The arguments of [`REPLACE`] for `record`; `None` when its version cannot follow any
/// stored one (0).
pub(crate) fn replace_args(
    record: &PendingRecord,
    now: UnixTime,
) -> Result<Option<[Arg<'_>; 7]>, StoreError> {
    let Some(previous) = record.version.checked_sub(1) else {
        return Ok(None);
    };
    Ok(Some([
        Arg::from(record.body.as_slice()),
        Arg::from(record.expires_at.0),
        Arg::from(version(record.version)?),
        Arg::from(&record.digest),
        Arg::from(record.kind.as_str()),
        Arg::from(version(previous)?),
        Arg::from(now.0),
    ]))
}

/// Reads one row of [`pending_columns!`].
pub(crate) fn pending(row: &impl Columns) -> Result<PendingRecord, StoreError> {
    let digest = Digest::from_slice(&row.bytes("digest")?)
        .ok_or_else(|| corrupt("pending request digest"))?;
    let lookup = match row.opt_bytes("lookup")? {
        Some(bytes) => {
            Some(Digest::from_slice(&bytes).ok_or_else(|| corrupt("pending request lookup"))?)
        }
        None => None,
    };
    let kind =
        PendingKind::parse(&row.text("kind")?).ok_or_else(|| corrupt("pending request kind"))?;
    let client_id = ClientId::parse(&row.text("client_id")?)
        .map_err(|_| corrupt("pending request client id"))?;
    let version =
        u64::try_from(row.int("version")?).map_err(|_| corrupt("pending request version"))?;
    Ok(PendingRecord {
        digest,
        lookup,
        kind,
        client_id,
        body: row.bytes("body")?,
        expires_at: UnixTime(row.int("expires_at")?),
        version,
    })
}
