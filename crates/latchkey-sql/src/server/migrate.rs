//! The migration runner of the database servers: applies the embedded migrations of the
//! dialect (`migrations/<dialect>/*.sql`) that a database has not seen yet.
//!
//! Several nodes may start at once against one database. Each takes the dialect's schema lock
//! on a dedicated connection before reading what was applied, so the migrations run exactly
//! once, and closes that connection at the end, which releases the lock whatever happened.
//! Where DDL is transactional (PostgreSQL) each migration is one transaction, applied whole
//! or not at all; elsewhere (MySQL) its statements are written to be idempotent, and one
//! interrupted halfway (its version not recorded) is simply run again by the next open.

use super::dialect::{Conn, Dialect, from_sqlx, statement};
use super::execute;
use crate::migrate::{self, Migration};
use latchkey_core::store::StoreError;
use sqlx::{Connection, Pool};

/// Brings the schema of the database behind `pool` up to date.
pub(super) async fn run<D: Dialect>(pool: &Pool<D::Db>) -> Result<(), StoreError> {
    // Detached: the connection is closed below instead of going back to the pool, so the
    // lock and the longer timeouts set on it end with it.
    let mut conn = pool.acquire().await.map_err(from_sqlx::<D>)?.detach();
    let outcome = locked::<D>(&mut conn).await;
    if let Err(err) = conn.close().await {
        tracing::warn!(backend = D::NAME, error = %err, "closing the migration connection failed");
    }
    outcome
}

async fn locked<D: Dialect>(conn: &mut Conn<D>) -> Result<(), StoreError> {
    D::lock_schema(conn).await?;
    D::raw(conn, D::SCHEMA_TABLE)
        .await
        .map_err(from_sqlx::<D>)?;
    let rows = D::fetch_all(
        conn,
        statement::<D>("SELECT version FROM latchkey_schema_migrations"),
        &[],
    )
    .await
    .map_err(from_sqlx::<D>)?;
    let applied = rows
        .iter()
        .map(|row| crate::rows::Columns::int(row, "version"))
        .collect::<Result<Vec<i64>, _>>()?;
    for migration in migrate::plan(D::MIGRATIONS, &applied)? {
        apply::<D>(conn, migration).await?;
    }
    Ok(())
}

async fn apply<D: Dialect>(conn: &mut Conn<D>, migration: &Migration) -> Result<(), StoreError> {
    if D::TRANSACTIONAL_DDL {
        let mut tx = conn.begin().await.map_err(from_sqlx::<D>)?;
        record::<D>(&mut tx, migration).await?;
        tx.commit().await.map_err(from_sqlx::<D>)?;
    } else {
        record::<D>(conn, migration).await?;
    }
    tracing::info!(
        backend = D::NAME,
        version = migration.version,
        name = migration.name,
        "applied schema migration"
    );
    Ok(())
}

/// Runs `migration` and records it as applied.
async fn record<D: Dialect>(conn: &mut Conn<D>, migration: &Migration) -> Result<(), StoreError> {
    D::raw(conn, migration.sql).await.map_err(from_sqlx::<D>)?;
    let sql = format!(
        "INSERT INTO latchkey_schema_migrations (version, applied_at) VALUES (?, {})",
        D::UNIX_NOW
    );
    execute::<D>(conn, sql, &crate::rows::args![migration.version]).await?;
    Ok(())
}
