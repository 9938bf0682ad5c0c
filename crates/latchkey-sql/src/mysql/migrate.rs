//! The MySQL/MariaDB migration runner: applies the embedded `migrations/mysql/*.sql` files
//! that a database has not seen yet.
//!
//! Several nodes may start at once against one database. Each takes the named lock
//! `latchkey_schema` (`GET_LOCK`) on a dedicated connection before reading what was applied, so
//! the migrations run exactly once, and closes that connection at the end, which releases the
//! lock whatever happened. MySQL commits DDL implicitly, so a migration cannot be rolled back:
//! its statements are written to be idempotent instead, and one interrupted halfway (its version
//! not recorded) is simply run again by the next open.

use crate::error::from_sqlx;
use crate::migrate::{self, Migration};
use latchkey_core::store::{StoreError, StoreErrorKind};
use sqlx::{Connection, MySqlConnection, MySqlPool};

/// Every MySQL migration, in order. Append; never edit one that has shipped.
const MIGRATIONS: &[Migration] = &[
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
];

/// Brings the schema of the database behind `pool` up to date.
pub(crate) async fn run(pool: &MySqlPool) -> Result<(), StoreError> {
    // Detached: the connection is closed below instead of going back to the pool, so the
    // named lock ends with it.
    let mut conn = pool.acquire().await.map_err(from_sqlx)?.detach();
    let outcome = locked(&mut conn).await;
    if let Err(err) = conn.close().await {
        tracing::warn!(error = %err, "closing the MySQL migration connection failed");
    }
    outcome
}

async fn locked(conn: &mut MySqlConnection) -> Result<(), StoreError> {
    // Another node may be migrating: wait for it longer than a request would wait for a lock.
    let locked: Option<i64> =
        sqlx::query_scalar("SELECT CAST(GET_LOCK('latchkey_schema', 60) AS SIGNED)")
            .fetch_one(&mut *conn)
            .await
            .map_err(from_sqlx)?;
    if locked != Some(1) {
        return Err(StoreError::new(
            StoreErrorKind::Unavailable,
            "another node held the schema migration lock for 60 seconds",
        ));
    }
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS latchkey_schema_migrations (
             version    BIGINT NOT NULL PRIMARY KEY,
             applied_at BIGINT NOT NULL
         ) ENGINE = InnoDB",
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

async fn apply(conn: &mut MySqlConnection, migration: &Migration) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(migration.sql).execute(&mut *conn).await?;
    sqlx::query(
        "INSERT INTO latchkey_schema_migrations (version, applied_at)
         VALUES (?, UNIX_TIMESTAMP())",
    )
    .bind(migration.version)
    .execute(&mut *conn)
    .await?;
    tracing::info!(
        version = migration.version,
        name = migration.name,
        "applied MySQL schema migration"
    );
    Ok(())
}
