//! How database failures become [`StoreError`]s: the one mapping every SQL backend shares.
//!
//! The endpoints only care about the [`StoreErrorKind`]: an outage is `Unavailable` (the client
//! sees `temporarily_unavailable` and may retry), a uniqueness rule is `Conflict`, unreadable
//! data is `Corrupt`, and everything else is `Other`. The driver's message goes to the log only.
//! The SQLite store runs on rusqlite, whose errors carry SQLite's result codes; the stores on
//! sqlx map what sqlx classifies itself alike and the codes a server reports by their dialect
//! (`server::dialect::from_sqlx`).

use latchkey_core::store::{StoreError, StoreErrorKind};

/// Maps a rusqlite error (the SQLite store) to the store error kind the protocol acts on.
#[cfg(feature = "sqlite")]
pub(crate) fn from_rusqlite(err: rusqlite::Error) -> StoreError {
    StoreError::new(kind_of_rusqlite(&err), err)
}

/// The kind of a rusqlite error, without consuming it: what SQLite reported goes by its result
/// code, a value that does not fit the Rust type it is read into is corruption.
#[cfg(feature = "sqlite")]
pub(crate) fn kind_of_rusqlite(err: &rusqlite::Error) -> StoreErrorKind {
    use rusqlite::Error as E;
    match err {
        E::SqliteFailure(failure, _) => match failure.extended_code {
            // SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY: what sqlx reported as a
            // unique violation (a duplicate token digest, a user name taken).
            2067 | 1555 => StoreErrorKind::Conflict,
            code => kind_of_sqlite_code(code),
        },
        E::FromSqlConversionFailure(..)
        | E::IntegralValueOutOfRange(..)
        | E::Utf8Error(..)
        | E::InvalidColumnType(..)
        | E::InvalidColumnName(_)
        | E::InvalidColumnIndex(_) => StoreErrorKind::Corrupt,
        _ => StoreErrorKind::Other,
    }
}

/// Classifies an SQLite result code by its primary part (the low byte of an extended code).
/// The numbers are SQLite's stable public result codes.
#[cfg(feature = "sqlite")]
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

/// The store is closed or shutting down: it cannot accept this call.
#[cfg(feature = "sqlite")]
pub(crate) fn unavailable(what: impl std::fmt::Display) -> StoreError {
    StoreError::new(StoreErrorKind::Unavailable, what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "sqlite")]
    #[test]
    fn sqlite_codes_are_classified_by_their_primary_part() {
        // SQLITE_BUSY_SNAPSHOT (517) is a kind of SQLITE_BUSY.
        assert_eq!(kind_of_sqlite_code(517), StoreErrorKind::Unavailable);
        assert_eq!(kind_of_sqlite_code(11), StoreErrorKind::Corrupt);
        assert_eq!(kind_of_sqlite_code(1), StoreErrorKind::Other);
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn rusqlite_errors_keep_the_kinds_sqlx_gave_them() {
        let failure =
            |extended| rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(extended), None);
        // SQLITE_BUSY, SQLITE_LOCKED_SHAREDCACHE, SQLITE_IOERR_FSYNC.
        for code in [5, 262, 1034] {
            assert_eq!(
                kind_of_rusqlite(&failure(code)),
                StoreErrorKind::Unavailable,
                "{code}"
            );
        }
        assert_eq!(kind_of_rusqlite(&failure(2067)), StoreErrorKind::Conflict);
        assert_eq!(kind_of_rusqlite(&failure(1555)), StoreErrorKind::Conflict);
        // SQLITE_CONSTRAINT_CHECK is a refused value, not a conflict.
        assert_eq!(kind_of_rusqlite(&failure(275)), StoreErrorKind::Other);
        assert_eq!(kind_of_rusqlite(&failure(11)), StoreErrorKind::Corrupt);
        assert_eq!(
            kind_of_rusqlite(&rusqlite::Error::InvalidColumnType(
                0,
                "digest".into(),
                rusqlite::types::Type::Text
            )),
            StoreErrorKind::Corrupt
        );
        assert_eq!(
            kind_of_rusqlite(&rusqlite::Error::QueryReturnedNoRows),
            StoreErrorKind::Other
        );
    }
}
