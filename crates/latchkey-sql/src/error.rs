//! How database failures become [`StoreError`]s: the one mapping every SQL backend shares.
//!
//! The endpoints only care about the [`StoreErrorKind`]: an outage is `Unavailable` (the client
//! sees `temporarily_unavailable` and may retry), a uniqueness rule is `Conflict`, unreadable
//! data is `Corrupt`, and everything else is `Other`. The driver's message goes to the log only.
//! Errors that sqlx classifies itself (pool timeouts, I/O, unique violations) map the same for
//! PostgreSQL and MySQL; the codes a database reports differ, so each backend has its
//! classifier. The SQLite store runs on rusqlite, whose errors carry SQLite's result codes and
//! go through the same SQLite classifier.

use latchkey_core::store::{StoreError, StoreErrorKind};

/// Maps a sqlx error to the store error kind the protocol acts on.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn from_sqlx(err: sqlx::Error) -> StoreError {
    StoreError::new(kind_of(&err), err)
}

/// The kind of a sqlx error, without consuming it.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn kind_of(err: &sqlx::Error) -> StoreErrorKind {
    use sqlx::Error as E;
    match err {
        E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::WorkerCrashed | E::Tls(_) => {
            StoreErrorKind::Unavailable
        }
        E::ColumnDecode { .. } | E::Decode(_) | E::ColumnNotFound(_) => StoreErrorKind::Corrupt,
        E::Database(db) if db.is_unique_violation() => StoreErrorKind::Conflict,
        E::Database(db) => kind_of_database(db.as_ref()),
        _ => StoreErrorKind::Other,
    }
}

/// Classifies an error the database server reported, by backend: each reports its own codes.
#[cfg(any(feature = "postgres", feature = "mysql"))]
fn kind_of_database(db: &dyn sqlx::error::DatabaseError) -> StoreErrorKind {
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return kind_of_postgres_code(pg.code());
    }
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return kind_of_mysql_error(my.number(), my.code());
    }
    StoreErrorKind::Other
}

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

/// Classifies a PostgreSQL SQLSTATE (PostgreSQL manual, appendix A): what a retry may cure is
/// `Unavailable`.
#[cfg(feature = "postgres")]
fn kind_of_postgres_code(sqlstate: &str) -> StoreErrorKind {
    match sqlstate {
        // Connection exceptions, and insufficient resources (too many connections, disk full).
        s if s.starts_with("08") || s.starts_with("53") => StoreErrorKind::Unavailable,
        // Serialization failure, deadlock, lock_timeout, statement_timeout, and a server
        // shutting down or starting up.
        "40001" | "40P01" | "55P03" | "57014" | "57P01" | "57P02" | "57P03" => {
            StoreErrorKind::Unavailable
        }
        // data_corrupted, index_corrupted.
        "XX001" | "XX002" => StoreErrorKind::Corrupt,
        _ => StoreErrorKind::Other,
    }
}

/// Classifies a MySQL or MariaDB error by its number, then by its SQLSTATE class.
#[cfg(feature = "mysql")]
fn kind_of_mysql_error(number: u16, sqlstate: Option<&str>) -> StoreErrorKind {
    match number {
        // ER_CON_COUNT_ERROR, ER_SERVER_SHUTDOWN, ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK,
        // MariaDB's ER_CONNECTION_KILLED and ER_STATEMENT_TIMEOUT, MySQL's ER_QUERY_TIMEOUT.
        1040 | 1053 | 1205 | 1213 | 1927 | 1969 | 3024 => return StoreErrorKind::Unavailable,
        _ => {}
    }
    match sqlstate {
        // Connection exceptions, and transaction rollbacks (deadlocks, serialization).
        Some(s) if s.starts_with("08") || s.starts_with("40") => StoreErrorKind::Unavailable,
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

    #[cfg(any(feature = "postgres", feature = "mysql"))]
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

    #[cfg(feature = "postgres")]
    #[test]
    fn postgres_outages_and_lock_timeouts_are_unavailable() {
        for code in ["08006", "53300", "57P01", "40P01", "55P03", "57014"] {
            assert_eq!(
                kind_of_postgres_code(code),
                StoreErrorKind::Unavailable,
                "{code}"
            );
        }
        assert_eq!(kind_of_postgres_code("XX001"), StoreErrorKind::Corrupt);
        assert_eq!(kind_of_postgres_code("22021"), StoreErrorKind::Other);
    }

    #[cfg(feature = "mysql")]
    #[test]
    fn mysql_outages_and_lock_timeouts_are_unavailable() {
        assert_eq!(
            kind_of_mysql_error(1205, Some("HY000")),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            kind_of_mysql_error(1213, Some("40001")),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            kind_of_mysql_error(9999, Some("08S01")),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            kind_of_mysql_error(1406, Some("22001")),
            StoreErrorKind::Other
        );
    }
}
