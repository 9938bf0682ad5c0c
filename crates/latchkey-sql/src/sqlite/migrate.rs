//! The SQLite migration runner: applies the embedded `migrations/sqlite/*.sql` files that a
//! database has not seen yet, each in its own `BEGIN IMMEDIATE` transaction.
//!
//! Two processes may open the same file at once (the server and the CLI); the write lock taken
//! by `BEGIN IMMEDIATE` and a re-check inside the transaction make sure each migration is
//! applied exactly once.

use crate::error::from_rusqlite;
use crate::migrate::{self, Migration};
use latchkey_core::store::StoreError;
use rusqlite::Connection;

/// Every SQLite migration, in order. Append; never edit one that has shipped.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../../migrations/sqlite/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "codes_and_consent",
        sql: include_str!("../../migrations/sqlite/0002_codes_and_consent.sql"),
    },
    Migration {
        version: 3,
        name: "token_binding",
        sql: include_str!("../../migrations/sqlite/0003_token_binding.sql"),
    },
    Migration {
        version: 4,
        name: "oauth1",
        sql: include_str!("../../migrations/sqlite/0004_oauth1.sql"),
    },
    Migration {
        version: 5,
        name: "sessions",
        sql: include_str!("../../migrations/sqlite/0005_sessions.sql"),
    },
    Migration {
        version: 6,
        name: "oauth1_secret_salt",
        sql: include_str!("../../migrations/sqlite/0006_oauth1_secret_salt.sql"),
    },
    Migration {
        version: 7,
        name: "token_hardening",
        sql: include_str!("../../migrations/sqlite/0007_token_hardening.sql"),
    },
    Migration {
        version: 8,
        name: "client_auth_method",
        sql: include_str!("../../migrations/sqlite/0008_client_auth_method.sql"),
    },
    Migration {
        version: 9,
        name: "record_ext",
        sql: include_str!("../../migrations/sqlite/0009_record_ext.sql"),
    },
    Migration {
        version: 10,
        name: "client_ext",
        sql: include_str!("../../migrations/sqlite/0010_client_ext.sql"),
    },
    Migration {
        version: 11,
        name: "signing_keys",
        sql: include_str!("../../migrations/sqlite/0011_signing_keys.sql"),
    },
    Migration {
        version: 12,
        name: "user_claims",
        sql: include_str!("../../migrations/sqlite/0012_user_claims.sql"),
    },
    Migration {
        version: 13,
        name: "replay",
        sql: include_str!("../../migrations/sqlite/0013_replay.sql"),
    },
    Migration {
        version: 14,
        name: "session_sid_clients",
        sql: include_str!("../../migrations/sqlite/0014_session_sid_clients.sql"),
    },
    Migration {
        version: 15,
        name: "pending_requests",
        sql: include_str!("../../migrations/sqlite/0015_pending_requests.sql"),
    },
    Migration {
        version: 16,
        name: "registration",
        sql: include_str!("../../migrations/sqlite/0016_registration.sql"),
    },
    Migration {
        version: 17,
        name: "resources",
        sql: include_str!("../../migrations/sqlite/0017_resources.sql"),
    },
    Migration {
        version: 18,
        name: "client_changes",
        sql: include_str!("../../migrations/sqlite/0018_client_changes.sql"),
    },
];

/// Brings the schema of the database behind `conn` up to date.
pub(crate) fn run(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS latchkey_schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         )",
    )
    .map_err(from_rusqlite)?;
    let applied = applied(conn).map_err(from_rusqlite)?;
    for migration in migrate::plan(MIGRATIONS, &applied)? {
        apply(conn, migration).map_err(from_rusqlite)?;
    }
    Ok(())
}

fn applied(conn: &Connection) -> rusqlite::Result<Vec<i64>> {
    let mut statement = conn.prepare("SELECT version FROM latchkey_schema_migrations")?;
    let versions = statement.query_map([], |row| row.get(0))?;
    versions.collect()
}

fn apply(conn: &Connection, migration: &Migration) -> rusqlite::Result<()> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    match apply_in_transaction(conn, migration) {
        Ok(true) => {
            if let Err(err) = conn.execute_batch("COMMIT") {
                rollback(conn);
                return Err(err);
            }
            tracing::info!(
                version = migration.version,
                name = migration.name,
                "applied SQLite schema migration"
            );
            Ok(())
        }
        Ok(false) => {
            rollback(conn);
            Ok(())
        }
        Err(err) => {
            rollback(conn);
            Err(err)
        }
    }
}

/// Runs `migration` inside the open transaction; `false` if another process got there first.
fn apply_in_transaction(conn: &Connection, migration: &Migration) -> rusqlite::Result<bool> {
    // Another process may have applied it between our read and taking the write lock.
    let mut check =
        conn.prepare("SELECT version FROM latchkey_schema_migrations WHERE version = ?")?;
    if check.exists([migration.version])? {
        return Ok(false);
    }
    conn.execute_batch(migration.sql)?;
    conn.execute(
        "INSERT INTO latchkey_schema_migrations (version, applied_at)
         VALUES (?, CAST(strftime('%s', 'now') AS INTEGER))",
        [migration.version],
    )?;
    Ok(true)
}

/// Ends the migration's transaction if SQLite has not already ended it.
fn rollback(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(err) = conn.execute_batch("ROLLBACK")
    {
        tracing::warn!(error = %err, "rolling back a SQLite schema migration failed");
    }
}
