//! The PostgreSQL migration runner: applies the embedded `migrations/postgres/*.sql` files that
//! a database has not seen yet, each in its own transaction (DDL is transactional in
//! PostgreSQL, so a migration is applied whole or not at all).
//!
//! Several nodes may start at once against one database. Each takes a session-level advisory
//! lock on a dedicated connection before reading what was applied, so the migrations run
//! exactly once, and closes that connection at the end, which releases the lock whatever
//! happened.

use crate::error::from_sqlx;
use crate::migrate::{self, Migration};
use latchkey_core::store::StoreError;
use sqlx::{Connection, PgConnection, PgPool};

/// Every PostgreSQL migration, in order. Append; never edit one that has shipped.
const MIGRATIONS: &[Migration] = &[
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
];

/// The advisory lock that serialises migrations: "latchkey" in ASCII.
const LOCK_KEY: i64 = 0x6c61_7463_686b_6579;

/// Brings the schema of the database behind `pool` up to date.
pub(crate) async fn run(pool: &PgPool) -> Result<(), StoreError> {
    // Detached: the connection is closed below instead of going back to the pool, so the
    // session lock and the longer timeouts set on it end with it.
    let mut conn = pool.acquire().await.map_err(from_sqlx)?.detach();
    let outcome = locked(&mut conn).await;
    if let Err(err) = conn.close().await {
        tracing::warn!(error = %err, "closing the PostgreSQL migration connection failed");
    }
    outcome
}

async fn locked(conn: &mut PgConnection) -> Result<(), StoreError> {
    // Another node may be migrating: wait for it longer than a request would wait for a lock.
    sqlx::raw_sql("SET lock_timeout = '60s'; SET statement_timeout = '60s'")
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(LOCK_KEY)
        .execute(&mut *conn)
        .await
        .map_err(from_sqlx)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS latchkey_schema_migrations (
             version    BIGINT PRIMARY KEY,
             applied_at BIGINT NOT NULL
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

async fn apply(conn: &mut PgConnection, migration: &Migration) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    sqlx::raw_sql(migration.sql).execute(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO latchkey_schema_migrations (version, applied_at)
         VALUES ($1, EXTRACT(EPOCH FROM now())::BIGINT)",
    )
    .bind(migration.version)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(
        version = migration.version,
        name = migration.name,
        "applied PostgreSQL schema migration"
    );
    Ok(())
}
