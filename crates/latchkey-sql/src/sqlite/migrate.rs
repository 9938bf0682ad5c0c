//! The SQLite migration runner: applies the embedded `migrations/sqlite/*.sql` files that a
//! database has not seen yet, each in its own `BEGIN IMMEDIATE` transaction.
//!
//! Two processes may open the same file at once (the server and the CLI); the write lock taken
//! by `BEGIN IMMEDIATE` and a re-check inside the transaction make sure each migration is
//! applied exactly once.

use crate::error::from_sqlx;
use crate::migrate::{self, Migration};
use latchkey_core::store::StoreError;
use sqlx::{Connection, SqliteConnection};

/// Every SQLite migration, in order. Append; never edit one that has shipped.
const MIGRATIONS: &[Migration] = &[
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
];

/// Brings the schema of the database behind `conn` up to date.
pub(crate) async fn run(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS latchkey_schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         )",
    )
    .execute(&mut *conn)
    .await
    .map_err(from_sqlx)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM latchkey_schema_migrations")
        .fetch_all(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    for migration in migrate::plan(MIGRATIONS, &applied)? {
        apply(conn, migration).await.map_err(from_sqlx)?;
    }
    Ok(())
}

async fn apply(conn: &mut SqliteConnection, migration: &Migration) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    // Another process may have applied it between our read and taking the write lock.
    let done: Option<i64> =
        sqlx::query_scalar("SELECT version FROM latchkey_schema_migrations WHERE version = ?")
            .bind(migration.version)
            .fetch_optional(&mut *tx)
            .await?;
    if done.is_some() {
        return tx.rollback().await;
    }
    sqlx::raw_sql(migration.sql).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO latchkey_schema_migrations (version, applied_at)
         VALUES (?, CAST(strftime('%s', 'now') AS INTEGER))",
    )
    .bind(migration.version)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(
        version = migration.version,
        name = migration.name,
        "applied SQLite schema migration"
    );
    Ok(())
}
