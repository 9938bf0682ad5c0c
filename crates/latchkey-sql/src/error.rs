//! How sqlx failures become [`StoreError`]s: the one mapping every SQL backend shares.
//!
//! The endpoints only care about the [`StoreErrorKind`]: an outage is `Unavailable` (the client
//! sees `temporarily_unavailable` and may retry), a uniqueness rule is `Conflict`, unreadable
//! data is `Corrupt`, and everything else is `Other`. The sqlx message goes to the log only.

use latchkey_core::store::{StoreError, StoreErrorKind};

/// Maps a sqlx error to the store error kind the protocol acts on.
pub(crate) fn from_sqlx(err: sqlx::Error) -> StoreError {
    StoreError::new(kind_of(&err), err)
}

/// The kind of a sqlx error, without consuming it.
pub(crate) fn kind_of(err: &sqlx::Error) -> StoreErrorKind {
    use sqlx::Error as E;
    match err {
        E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::WorkerCrashed | E::Tls(_) => {
            StoreErrorKind::Unavailable
        }
        E::ColumnDecode { .. } | E::Decode(_) | E::ColumnNotFound(_) => StoreErrorKind::Corrupt,
        E::Database(db) if db.is_unique_violation() => StoreErrorKind::Conflict,
        E::Database(db) => db
            .code()
            .and_then(|code| code.parse::<i32>().ok())
            .map_or(StoreErrorKind::Other, kind_of_sqlite_code),
        _ => StoreErrorKind::Other,
    }
}

/// Classifies an SQLite result code by its primary part (the low byte of an extended code).
///
/// PostgreSQL and MySQL report different codes; their modules add their own classifier when
/// they arrive. The numbers are SQLite's stable public result codes.
fn kind_of_sqlite_code(code: i32) -> StoreErrorKind {
    match code & 0xff {
        // SQLITE_BUSY, SQLITE_LOCKED: another connection holds the lock past busy_timeout.
        // SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN: the disk, not the data, is the problem.
        5 | 6 | 10 | 13 | 14 => StoreErrorKind::Unavailable,
        // SQLITE_CORRUPT, SQLITE_NOTADB.
        11 | 26 => StoreErrorKind::Corrupt,
        _ => StoreErrorKind::Other,
    }
}

/// A stored value that cannot be turned back into its Rust type.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, what)
}

/// The writer is gone or shutting down: the store cannot accept this write.
pub(crate) fn unavailable(what: impl std::fmt::Display) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_are_unavailable_and_decoding_is_corrupt() {
        assert_eq!(
            kind_of(&sqlx::Error::PoolTimedOut),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            kind_of(&sqlx::Error::PoolClosed),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            kind_of(&sqlx::Error::Decode("bad".into())),
            StoreErrorKind::Corrupt
        );
        assert_eq!(kind_of(&sqlx::Error::RowNotFound), StoreErrorKind::Other);
    }

    #[test]
    fn sqlite_codes_are_classified_by_their_primary_part() {
        // SQLITE_BUSY_SNAPSHOT (517) is a kind of SQLITE_BUSY.
        assert_eq!(kind_of_sqlite_code(517), StoreErrorKind::Unavailable);
        assert_eq!(kind_of_sqlite_code(11), StoreErrorKind::Corrupt);
        assert_eq!(kind_of_sqlite_code(1), StoreErrorKind::Other);
    }
}
