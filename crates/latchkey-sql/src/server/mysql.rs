//! The MySQL/MariaDB dialect: for several `latchkey` nodes sharing one MySQL 8 or MariaDB 10.6+
//! database.
//!
//! MySQL has no `RETURNING` (on `UPDATE` or, in MySQL 8, on `DELETE`), so taking a row is one
//! transaction that locks it with `SELECT … FOR UPDATE` before deleting it.
//!
//! Sessions run at `READ COMMITTED`: correctness rests on row locks, and without REPEATABLE
//! READ's gap locks, concurrent inserts and the expiry sweep do not block or deadlock each
//! other. (Binary logging must then be row-based or mixed, the defaults of MySQL 8 and
//! MariaDB.) Row-lock waits end after 5 s (`innodb_lock_wait_timeout`).
//!
//! Text uses the `utf8mb4_bin` collation, so names compare exactly; it still ignores trailing
//! spaces (PAD SPACE, in both MySQL and MariaDB), so lookups by user name and client id
//! re-check the match in Rust. Digests are stored as `BINARY(32)`; token and code values never
//! are. MySQL commits DDL implicitly, so a migration cannot be rolled back: its statements are
//! written to be idempotent instead, and one interrupted halfway (its version not recorded) is
//! simply run again by the next open. The named lock `latchkey_schema` (`GET_LOCK`) lets one
//! node migrate at a time.

use super::dialect::{Conn, Dialect, Placeholders, Sweep, Take, Upsert, driver_calls, sealed};
use crate::migrate::Migration;
use latchkey_core::store::{StoreError, StoreErrorKind};
use sqlx::error::DatabaseError;

/// MySQL 8 and MariaDB 10.6 or later, for [`super::MySqlStore`].
#[derive(Clone, Copy, Debug)]
pub struct MySqlDialect;

impl sealed::Sealed for MySqlDialect {}

impl Dialect for MySqlDialect {
    type Db = sqlx::MySql;
    const NAME: &'static str = "mysql";
    const SESSION: &'static str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
                                   SET SESSION innodb_lock_wait_timeout = 5";
    const MIGRATIONS: &'static [Migration] = &[
        Migration {
            version: 1,
            name: "init",
            sql: include_str!("../../migrations/mysql/0001_init.sql"),
        },
        Migration {
            version: 2,
            name: "oauth1",
            sql: include_str!("../../migrations/mysql/0002_oauth1.sql"),
        },
        Migration {
            version: 3,
            name: "sessions",
            sql: include_str!("../../migrations/mysql/0003_sessions.sql"),
        },
        Migration {
            version: 4,
            name: "oauth1_secret_salt",
            sql: include_str!("../../migrations/mysql/0004_oauth1_secret_salt.sql"),
        },
        Migration {
            version: 5,
            name: "token_hardening",
            sql: include_str!("../../migrations/mysql/0005_token_hardening.sql"),
        },
        Migration {
            version: 6,
            name: "client_auth_method",
            sql: include_str!("../../migrations/mysql/0006_client_auth_method.sql"),
        },
        Migration {
            version: 7,
            name: "record_ext",
            sql: include_str!("../../migrations/mysql/0007_record_ext.sql"),
        },
        Migration {
            version: 8,
            name: "client_ext",
            sql: include_str!("../../migrations/mysql/0008_client_ext.sql"),
        },
        Migration {
            version: 9,
            name: "signing_keys",
            sql: include_str!("../../migrations/mysql/0009_signing_keys.sql"),
        },
        Migration {
            version: 10,
            name: "user_claims",
            sql: include_str!("../../migrations/mysql/0010_user_claims.sql"),
        },
        Migration {
            version: 11,
            name: "replay",
            sql: include_str!("../../migrations/mysql/0011_replay.sql"),
        },
        Migration {
            version: 12,
            name: "session_sid_clients",
            sql: include_str!("../../migrations/mysql/0012_session_sid_clients.sql"),
        },
        Migration {
            version: 13,
            name: "pending_requests",
            sql: include_str!("../../migrations/mysql/0013_pending_requests.sql"),
        },
        Migration {
            version: 14,
            name: "registration",
            sql: include_str!("../../migrations/mysql/0014_registration.sql"),
        },
        Migration {
            version: 15,
            name: "resources",
            sql: include_str!("../../migrations/mysql/0015_resources.sql"),
        },
    ];
    const SCHEMA_TABLE: &'static str = "CREATE TABLE IF NOT EXISTS latchkey_schema_migrations (
                                            version    BIGINT NOT NULL PRIMARY KEY,
                                            applied_at BIGINT NOT NULL
                                        ) ENGINE = InnoDB";
    const UNIX_NOW: &'static str = "UNIX_TIMESTAMP()";
    const TRANSACTIONAL_DDL: bool = false;
    // The columns' utf8mb4_bin collation already sorts by bytes.
    const BYTE_ORDER: &'static str = "";
    const PLACEHOLDERS: Placeholders = Placeholders::Question;
    const UPSERT: Upsert = Upsert::OnDuplicateKey;
    const TAKE: Take = Take::LockThenDelete;
    const SWEEP: Sweep = Sweep::OrderedLimit;

    async fn lock_schema(conn: &mut Conn<Self>) -> Result<(), StoreError> {
        // Another node may be migrating: wait for it longer than a request would wait.
        let locked: Option<i64> =
            sqlx::query_scalar("SELECT CAST(GET_LOCK('latchkey_schema', 60) AS SIGNED)")
                .fetch_one(conn)
                .await
                .map_err(super::dialect::from_sqlx::<Self>)?;
        if locked != Some(1) {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "another node held the schema migration lock for 60 seconds",
            ));
        }
        Ok(())
    }

    fn error_kind(db: &dyn DatabaseError) -> StoreErrorKind {
        match db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
            Some(my) => kind_of_error(my.number(), my.code()),
            None => StoreErrorKind::Other,
        }
    }

    driver_calls!(sqlx::MySql);
}

/// Classifies a MySQL or MariaDB error by its number, then by its SQLSTATE class.
fn kind_of_error(number: u16, sqlstate: Option<&str>) -> StoreErrorKind {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_outages_and_lock_timeouts_are_unavailable() {
        assert_eq!(
            kind_of_error(1205, Some("HY000")),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            kind_of_error(1213, Some("40001")),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            kind_of_error(9999, Some("08S01")),
            StoreErrorKind::Unavailable
        );
        assert_eq!(kind_of_error(1406, Some("22001")), StoreErrorKind::Other);
    }
}
