//! What differs between PostgreSQL and MySQL/MariaDB, and nothing else.
//!
//! The server stores ([`super::SqlxStore`]) run one implementation of every operation; a
//! [`Dialect`] says how its SQL is spelled and which strategy an atomic step takes where the two
//! databases cannot share one:
//!
//! | | PostgreSQL | MySQL / MariaDB |
//! |---|---|---|
//! | placeholders | `$1, $2, …` | `?` |
//! | upsert | `ON CONFLICT (key) DO UPDATE SET c = EXCLUDED.c` | `ON DUPLICATE KEY UPDATE c = VALUES(c)` (fires on *any* unique key) |
//! | take a row | `DELETE … RETURNING` | `SELECT … FOR UPDATE`, then `DELETE`, in one transaction (no `RETURNING`) |
//! | expiry sweep | `DELETE … WHERE key IN (SELECT … LIMIT n FOR UPDATE SKIP LOCKED)` | `DELETE … ORDER BY expires_at LIMIT n` (no `LIMIT` in an `IN` subquery) |
//! | byte order of text | `COLLATE "C"` | the column's `utf8mb4_bin` |
//! | migrations | transactional DDL, an advisory lock | DDL commits itself, `GET_LOCK` |
//! | errors | SQLSTATE | error number, then SQLSTATE class |
//!
//! SQL text in the store is written once with `?` placeholders (and no `?` in literals);
//! [`statement`] renders it for the dialect. Booleans are written `TRUE`, which both accept.
//! Values are bound through [`Arg`], so the store code never names a driver's types.

use crate::migrate::Migration;
use crate::rows::{Arg, Columns};
use latchkey_core::store::{StoreError, StoreErrorKind};
use sqlx::error::DatabaseError;
use sqlx::{AssertSqlSafe, Database, SqlSafeStr as _, SqlStr};
use std::borrow::Cow;
use std::future::Future;

/// A connection of dialect `D`'s driver.
pub type Conn<D> = <<D as Dialect>::Db as Database>::Connection;
/// A row of dialect `D`'s driver.
pub type Row<D> = <<D as Dialect>::Db as Database>::Row;

/// How placeholders are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placeholders {
    /// `$1, $2, …` (PostgreSQL).
    Numbered,
    /// `?` (MySQL).
    Question,
}

/// How an insert that may meet an existing row is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upsert {
    /// `ON CONFLICT (key) DO UPDATE …`: resolves on the named key only, and may carry a
    /// `WHERE` that leaves the existing row alone (PostgreSQL).
    OnConflict,
    /// `ON DUPLICATE KEY UPDATE …`: resolves on whichever unique key the row breaks (MySQL).
    OnDuplicateKey,
}

/// How a row is removed and returned in one atomic step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// One `DELETE … RETURNING` statement (PostgreSQL).
    DeleteReturning,
    /// A transaction: `SELECT … FOR UPDATE` locks the row, then `DELETE` (MySQL).
    LockThenDelete,
}

/// How the bounded expiry sweep picks its rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sweep {
    /// A subquery with `LIMIT … FOR UPDATE SKIP LOCKED`: sweeps on several nodes never wait
    /// for each other (PostgreSQL).
    SkipLocked,
    /// `DELETE … ORDER BY expires_at LIMIT n`, oldest first through the expiry index (MySQL,
    /// which allows no `LIMIT` in an `IN` subquery).
    OrderedLimit,
}

pub(super) mod sealed {
    /// Only this crate's dialects implement [`super::Dialect`].
    pub trait Sealed {}
}

/// A database server's SQL dialect and driver: what [`super::SqlxStore`] needs to know to run
/// on it. Implemented by `PgDialect` and `MySqlDialect` (one per cargo feature); sealed.
pub trait Dialect: sealed::Sealed + Send + Sync + Sized + 'static {
    /// The sqlx driver.
    type Db: Database<Row: Columns>;
    /// The backend's name, for logs.
    const NAME: &'static str;
    /// What every pooled connection runs before its first use (timeouts, isolation).
    const SESSION: &'static str;
    /// Every migration of this dialect, in order. Append; never edit one that has shipped.
    const MIGRATIONS: &'static [Migration];
    /// The statement creating the table of applied migrations, if missing.
    const SCHEMA_TABLE: &'static str;
    /// An SQL expression for the current Unix time in seconds.
    const UNIX_NOW: &'static str;
    /// Whether DDL is transactional, so that a migration can run in one transaction.
    const TRANSACTIONAL_DDL: bool;
    /// Appended to `ORDER BY` on a text column so that it sorts by bytes, like every store.
    const BYTE_ORDER: &'static str;
    /// How placeholders are written.
    const PLACEHOLDERS: Placeholders;
    /// How an upsert is written.
    const UPSERT: Upsert;
    /// How a row is taken.
    const TAKE: Take;
    /// How the expiry sweep picks its rows.
    const SWEEP: Sweep;

    /// Waits (up to a minute) for the lock that lets one node at a time migrate; it is held
    /// until `conn` closes.
    fn lock_schema(conn: &mut Conn<Self>) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Classifies an error the database server reported.
    fn error_kind(db: &dyn DatabaseError) -> StoreErrorKind;

    /// Runs one statement with `args` bound; how many rows it changed.
    fn execute<'c>(
        conn: &'c mut Conn<Self>,
        sql: SqlStr,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send + 'c;

    /// Runs one query with `args` bound; its first row, if any.
    fn fetch_optional<'c>(
        conn: &'c mut Conn<Self>,
        sql: SqlStr,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Option<Row<Self>>, sqlx::Error>> + Send + 'c;

    /// Runs one query with `args` bound; every row.
    fn fetch_all<'c>(
        conn: &'c mut Conn<Self>,
        sql: SqlStr,
        args: &[Arg<'_>],
    ) -> impl Future<Output = Result<Vec<Row<Self>>, sqlx::Error>> + Send + 'c;

    /// Runs statements that take no parameters, several at once (sessions, migrations).
    fn raw<'c>(
        conn: &'c mut Conn<Self>,
        sql: &'static str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send + 'c;
}

/// `text`, written with `?` placeholders, in `D`'s syntax. Borrowed text stays borrowed where
/// the dialect writes `?` too.
pub fn statement<D: Dialect>(text: impl Into<Cow<'static, str>>) -> SqlStr {
    let text = text.into();
    match D::PLACEHOLDERS {
        Placeholders::Question => AssertSqlSafe(text).into_sql_str(),
        Placeholders::Numbered => {
            let mut numbered = String::with_capacity(text.len() + 16);
            for (number, piece) in (0..).zip(text.split('?')) {
                if number > 0 {
                    numbered.push('$');
                    numbered.push_str(&number.to_string());
                }
                numbered.push_str(piece);
            }
            AssertSqlSafe(numbered).into_sql_str()
        }
    }
}

/// The clause that turns `INSERT INTO table …` into an upsert on `key`, replacing `columns`.
pub fn upsert<D: Dialect>(key: &str, columns: &[&str]) -> String {
    match D::UPSERT {
        Upsert::OnConflict => {
            let set: Vec<String> = columns
                .iter()
                .map(|c| format!("{c} = EXCLUDED.{c}"))
                .collect();
            format!(" ON CONFLICT ({key}) DO UPDATE SET {}", set.join(", "))
        }
        Upsert::OnDuplicateKey => {
            let set: Vec<String> = columns
                .iter()
                .map(|c| format!("{c} = VALUES({c})"))
                .collect();
            format!(" ON DUPLICATE KEY UPDATE {}", set.join(", "))
        }
    }
}

/// Deletes up to `limit` rows of `table` (keyed by `digest`) that expired by the bound `now`.
pub fn sweep<D: Dialect>(table: &str, limit: i64) -> String {
    match D::SWEEP {
        Sweep::SkipLocked => format!(
            "DELETE FROM {table} WHERE digest IN (
                 SELECT digest FROM {table} WHERE expires_at <= ?
                 ORDER BY expires_at LIMIT {limit} FOR UPDATE SKIP LOCKED)"
        ),
        Sweep::OrderedLimit => {
            format!("DELETE FROM {table} WHERE expires_at <= ? ORDER BY expires_at LIMIT {limit}")
        }
    }
}

/// A query with `args` bound, for a driver that stores every [`Arg`] shape.
pub fn bound<DB>(sql: SqlStr, args: &[Arg<'_>]) -> sqlx::query::Query<'static, DB, DB::Arguments>
where
    DB: Database,
    for<'t> Option<&'t str>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<&'t [u8]>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<i64>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> bool: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut query = sqlx::query(sql);
    for arg in args {
        query = match arg {
            Arg::Text(value) => query.bind(value.as_deref()),
            Arg::Int(value) => query.bind(*value),
            Arg::Flag(value) => query.bind(*value),
            Arg::Bytes(value) => query.bind(*value),
        };
    }
    query
}

/// The driver calls of [`Dialect`], the same for every sqlx driver: expands inside
/// `impl Dialect for …` with the driver's database type.
macro_rules! driver_calls {
    ($db:ty) => {
        fn execute<'c>(
            conn: &'c mut $crate::server::dialect::Conn<Self>,
            sql: ::sqlx::SqlStr,
            args: &[$crate::rows::Arg<'_>],
        ) -> impl ::std::future::Future<Output = Result<u64, ::sqlx::Error>> + Send + 'c {
            let query = $crate::server::dialect::bound::<$db>(sql, args);
            async move { Ok(query.execute(conn).await?.rows_affected()) }
        }

        fn fetch_optional<'c>(
            conn: &'c mut $crate::server::dialect::Conn<Self>,
            sql: ::sqlx::SqlStr,
            args: &[$crate::rows::Arg<'_>],
        ) -> impl ::std::future::Future<
            Output = Result<Option<$crate::server::dialect::Row<Self>>, ::sqlx::Error>,
        > + Send
        + 'c {
            $crate::server::dialect::bound::<$db>(sql, args).fetch_optional(conn)
        }

        fn fetch_all<'c>(
            conn: &'c mut $crate::server::dialect::Conn<Self>,
            sql: ::sqlx::SqlStr,
            args: &[$crate::rows::Arg<'_>],
        ) -> impl ::std::future::Future<
            Output = Result<Vec<$crate::server::dialect::Row<Self>>, ::sqlx::Error>,
        > + Send
        + 'c {
            $crate::server::dialect::bound::<$db>(sql, args).fetch_all(conn)
        }

        fn raw<'c>(
            conn: &'c mut $crate::server::dialect::Conn<Self>,
            sql: &'static str,
        ) -> impl ::std::future::Future<Output = Result<(), ::sqlx::Error>> + Send + 'c {
            async move { ::sqlx::raw_sql(sql).execute(conn).await.map(drop) }
        }
    };
}
pub(crate) use driver_calls;

/// Maps a sqlx error to the store error kind the protocol acts on: what sqlx classifies
/// itself (pool timeouts, I/O, unique violations) alike for every dialect, what the server
/// reported by the dialect's codes. The driver's message goes to the log only.
pub fn from_sqlx<D: Dialect>(err: sqlx::Error) -> StoreError {
    StoreError::new(kind_of::<D>(&err), err)
}

/// The kind of a sqlx error, without consuming it.
pub fn kind_of<D: Dialect>(err: &sqlx::Error) -> StoreErrorKind {
    use sqlx::Error as E;
    match err {
        E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::WorkerCrashed | E::Tls(_) => {
            StoreErrorKind::Unavailable
        }
        E::ColumnDecode { .. } | E::Decode(_) | E::ColumnNotFound(_) => StoreErrorKind::Corrupt,
        E::Database(db) if db.is_unique_violation() => StoreErrorKind::Conflict,
        E::Database(db) => D::error_kind(db.as_ref()),
        _ => StoreErrorKind::Other,
    }
}

#[cfg(all(test, feature = "postgres", feature = "mysql"))]
mod tests {
    use super::*;
    use crate::server::{MySqlDialect, PgDialect};

    #[test]
    fn placeholders_are_numbered_for_postgres_and_kept_for_mysql() {
        let sql = "UPDATE t SET a = ? WHERE b = ? AND c = ?";
        assert_eq!(
            statement::<PgDialect>(sql).as_str(),
            "UPDATE t SET a = $1 WHERE b = $2 AND c = $3"
        );
        assert_eq!(statement::<MySqlDialect>(sql).as_str(), sql);
        assert_eq!(statement::<PgDialect>("SELECT 1").as_str(), "SELECT 1");
    }

    #[test]
    fn upserts_name_their_key_where_the_dialect_can() {
        assert_eq!(
            upsert::<PgDialect>("subject, client_id", &["scope", "granted_at"]),
            " ON CONFLICT (subject, client_id) DO UPDATE SET scope = EXCLUDED.scope, \
             granted_at = EXCLUDED.granted_at"
        );
        assert_eq!(
            upsert::<MySqlDialect>("subject, client_id", &["scope", "granted_at"]),
            " ON DUPLICATE KEY UPDATE scope = VALUES(scope), granted_at = VALUES(granted_at)"
        );
    }

    #[test]
    fn outages_are_unavailable_and_decoding_is_corrupt() {
        assert_eq!(
            kind_of::<PgDialect>(&sqlx::Error::PoolTimedOut),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            kind_of::<MySqlDialect>(&sqlx::Error::PoolClosed),
            StoreErrorKind::Unavailable
        );
        assert_eq!(
            kind_of::<PgDialect>(&sqlx::Error::Decode("bad".into())),
            StoreErrorKind::Corrupt
        );
        assert_eq!(
            kind_of::<MySqlDialect>(&sqlx::Error::RowNotFound),
            StoreErrorKind::Other
        );
    }
}
