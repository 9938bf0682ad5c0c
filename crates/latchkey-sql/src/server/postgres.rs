//! The PostgreSQL dialect: for several `latchkey` nodes behind a load balancer sharing one
//! database: the nodes share clients, users and tokens through it.
//!
//! Sessions run with a lock timeout (5 s), a statement timeout (15 s) and an idle-in-transaction
//! timeout (30 s, so a node that dies inside a transaction frees its row locks). Digests are
//! stored as `BYTEA`; token and code values never are. DDL is transactional, so each migration
//! is applied whole or not at all; a session-level advisory lock lets one node migrate at a
//! time.

use super::dialect::{Conn, Dialect, Placeholders, Sweep, Take, Upsert, driver_calls, sealed};
use crate::migrate::Migration;
use latchkey_core::store::{StoreError, StoreErrorKind};
use sqlx::error::DatabaseError;

/// PostgreSQL, for [`super::PgStore`].
#[derive(Clone, Copy, Debug)]
pub struct PgDialect;

impl sealed::Sealed for PgDialect {}

/// The advisory lock that serialises migrations: "latchkey" in ASCII.
const LOCK_KEY: i64 = 0x6c61_7463_686b_6579;

impl Dialect for PgDialect {
    type Db = sqlx::Postgres;
    const NAME: &'static str = "postgres";
    const SESSION: &'static str = "SET lock_timeout = '5s'; \
                                   SET statement_timeout = '15s'; \
                                   SET idle_in_transaction_session_timeout = '30s'";
    const MIGRATIONS: &'static [Migration] = &[
        Migration {
            version: 1,
            name: "init",
            sql: include_str!("../../migrations/postgres/0001_init.sql"),
        },
        Migration {
            version: 2,
            name: "oauth1",
            sql: include_str!("../../migrations/postgres/0002_oauth1.sql"),
        },
        Migration {
            version: 3,
            name: "sessions",
            sql: include_str!("../../migrations/postgres/0003_sessions.sql"),
        },
        Migration {
            version: 4,
            name: "oauth1_secret_salt",
            sql: include_str!("../../migrations/postgres/0004_oauth1_secret_salt.sql"),
        },
        Migration {
            version: 5,
            name: "token_hardening",
            sql: include_str!("../../migrations/postgres/0005_token_hardening.sql"),
        },
        Migration {
            version: 6,
            name: "client_auth_method",
            sql: include_str!("../../migrations/postgres/0006_client_auth_method.sql"),
        },
        Migration {
            version: 7,
            name: "record_ext",
            sql: include_str!("../../migrations/postgres/0007_record_ext.sql"),
        },
        Migration {
            version: 8,
            name: "client_ext",
            sql: include_str!("../../migrations/postgres/0008_client_ext.sql"),
        },
        Migration {
            version: 9,
            name: "signing_keys",
            sql: include_str!("../../migrations/postgres/0009_signing_keys.sql"),
        },
        Migration {
            version: 10,
            name: "user_claims",
            sql: include_str!("../../migrations/postgres/0010_user_claims.sql"),
        },
        Migration {
            version: 11,
            name: "replay",
            sql: include_str!("../../migrations/postgres/0011_replay.sql"),
        },
        Migration {
            version: 12,
            name: "session_sid_clients",
            sql: include_str!("../../migrations/postgres/0012_session_sid_clients.sql"),
        },
        Migration {
            version: 13,
            name: "pending_requests",
            sql: include_str!("../../migrations/postgres/0013_pending_requests.sql"),
        },
        Migration {
            version: 14,
            name: "registration",
            sql: include_str!("../../migrations/postgres/0014_registration.sql"),
        },
        Migration {
            version: 15,
            name: "resources",
            sql: include_str!("../../migrations/postgres/0015_resources.sql"),
        },
    ];
    const SCHEMA_TABLE: &'static str = "CREATE TABLE IF NOT EXISTS latchkey_schema_migrations (
                                            version    BIGINT PRIMARY KEY,
                                            applied_at BIGINT NOT NULL
                                        )";
    const UNIX_NOW: &'static str = "EXTRACT(EPOCH FROM now())::BIGINT";
    const TRANSACTIONAL_DDL: bool = true;
    // Byte order, like the other stores, whatever the database's locale.
    const BYTE_ORDER: &'static str = " COLLATE \"C\"";
    const PLACEHOLDERS: Placeholders = Placeholders::Numbered;
    const UPSERT: Upsert = Upsert::OnConflict;
    const TAKE: Take = Take::DeleteReturning;
    const SWEEP: Sweep = Sweep::SkipLocked;

    async fn lock_schema(conn: &mut Conn<Self>) -> Result<(), StoreError> {
        // Another node may be migrating: wait for it longer than a request would wait for a
        // lock. The settings end with the connection, which the runner closes.
        Self::raw(
            conn,
            "SET lock_timeout = '60s'; SET statement_timeout = '60s'",
        )
        .await
        .map_err(super::dialect::from_sqlx::<Self>)?;
        sqlx::query("SELECT pg_advisory_lock($1)")
            .bind(LOCK_KEY)
            .execute(conn)
            .await
            .map_err(super::dialect::from_sqlx::<Self>)?;
        Ok(())
    }

    fn error_kind(db: &dyn DatabaseError) -> StoreErrorKind {
        match db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
            Some(pg) => kind_of_sqlstate(pg.code()),
            None => StoreErrorKind::Other,
        }
    }

    driver_calls!(sqlx::Postgres);
}

/// Classifies a PostgreSQL SQLSTATE (PostgreSQL manual, appendix A): what a retry may cure is
/// `Unavailable`.
fn kind_of_sqlstate(sqlstate: &str) -> StoreErrorKind {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_outages_and_lock_timeouts_are_unavailable() {
        for code in ["08006", "53300", "57P01", "40P01", "55P03", "57014"] {
            assert_eq!(
                kind_of_sqlstate(code),
                StoreErrorKind::Unavailable,
                "{code}"
            );
        }
        assert_eq!(kind_of_sqlstate("XX001"), StoreErrorKind::Corrupt);
        assert_eq!(kind_of_sqlstate("22021"), StoreErrorKind::Other);
    }
}
