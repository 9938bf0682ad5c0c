//! The stores for database servers, on sqlx: [`PgStore`] (PostgreSQL) and [`MySqlStore`]
//! (MySQL 8, MariaDB 10.6+), for several `latchkey` nodes sharing one database.
//!
//! Both are one implementation, [`SqlxStore`], over a [`Dialect`] that holds what differs
//! (see [`dialect`]). There is no single writer to lean on, as SQLite has: every node writes,
//! so each operation is atomic in the database itself: a single statement, or a transaction
//! holding the rows it decides on with `SELECT … FOR UPDATE` (see [`tokens`]). Deleting a
//! client or user with what was issued to them is one transaction.
//!
//! Each write that carries a `now` then deletes a bounded number of expired rows of its table
//! (see [`SqlxStore::sweep`]). Connection pools are bounded and give up after a few seconds
//! ([`crate::pool`]), and sessions bound lock waits, so an outage or a stuck lock becomes
//! `Unavailable` within seconds instead of a hang.

pub(crate) mod dialect;
mod keys;
mod migrate;
#[cfg(feature = "mysql")]
mod mysql;
mod oauth1;
mod pending;
#[cfg(feature = "postgres")]
mod postgres;
mod registration;
mod replay;
mod resources;
mod sessions;
mod tokens;

pub use dialect::Dialect;
use dialect::{Conn, Row, Take, Upsert, from_sqlx, statement, upsert};
#[cfg(feature = "mysql")]
pub use mysql::MySqlDialect;
#[cfg(feature = "postgres")]
pub use postgres::PgDialect;

use crate::pool::{self, SWEEP_LIMIT};
use crate::rows::{
    self, Arg, CLIENT_DEPENDENTS, ClientRow, Columns, USER_DEPENDENTS, args, client_columns,
    user_columns,
};
use latchkey_core::client::Client;
use latchkey_core::clock::UnixTime;
use latchkey_core::scope::ScopeSet;
use latchkey_core::store::{
    ClientStore, ConsentRecord, ConsentStore, StoreError, UserStore, codec,
};
use latchkey_core::user::User;
use sqlx::pool::PoolConnection;
use sqlx::{Pool, Transaction};
use std::borrow::Cow;

/// The PostgreSQL store. Cloning is cheap and shares the connection pool; any number of stores,
/// in one process or on many nodes, may share one database.
#[cfg(feature = "postgres")]
pub type PgStore = SqlxStore<PgDialect>;

/// The MySQL/MariaDB store. Cloning is cheap and shares the connection pool; any number of
/// stores, in one process or on many nodes, may share one database.
#[cfg(feature = "mysql")]
pub type MySqlStore = SqlxStore<MySqlDialect>;

/// A store on a database server of dialect `D`: [`PgStore`] or [`MySqlStore`].
pub struct SqlxStore<D: Dialect> {
    pool: Pool<D::Db>,
}

impl<D: Dialect> Clone for SqlxStore<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
        }
    }
}

impl<D: Dialect> std::fmt::Debug for SqlxStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlxStore")
            .field("dialect", &D::NAME)
            .field("pool", &self.pool)
            .finish()
    }
}

impl<D: Dialect> SqlxStore<D> {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, or
    /// `mysql://…`), brings its schema up to date and returns the store. Fails with
    /// `Unavailable` after a few seconds if the server cannot be reached. Must be called
    /// inside a tokio runtime.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options: <Conn<D> as sqlx::Connection>::Options =
            url.parse().map_err(from_sqlx::<D>)?;
        let pool = pool::options::<D::Db>()
            .after_connect(|conn, _meta| Box::pin(D::raw(conn, D::SESSION)))
            .connect_with(options)
            .await
            .map_err(from_sqlx::<D>)?;
        if let Err(err) = migrate::run::<D>(&pool).await {
            pool.close().await;
            return Err(err);
        }
        Ok(Self { pool })
    }

    /// Closes every connection, waiting for those in use to come back; calls made afterwards
    /// fail with `Unavailable`. Call it once the server stops accepting requests.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn conn(&self) -> Result<PoolConnection<D::Db>, StoreError> {
        self.pool.acquire().await.map_err(from_sqlx::<D>)
    }

    /// Starts a transaction.
    async fn begin(&self) -> Result<Transaction<'static, D::Db>, StoreError> {
        self.pool.begin().await.map_err(from_sqlx::<D>)
    }

    /// Runs one statement on its own; how many rows it changed.
    async fn execute(
        &self,
        sql: impl Into<Cow<'static, str>>,
        args: &[Arg<'_>],
    ) -> Result<u64, StoreError> {
        execute::<D>(&mut *self.conn().await?, sql, args).await
    }

    /// Runs one query on its own; its first row.
    async fn fetch_optional(
        &self,
        sql: impl Into<Cow<'static, str>>,
        args: &[Arg<'_>],
    ) -> Result<Option<Row<D>>, StoreError> {
        fetch_optional::<D>(&mut *self.conn().await?, sql, args).await
    }

    /// Runs one query on its own; every row.
    async fn fetch_all(
        &self,
        sql: impl Into<Cow<'static, str>>,
        args: &[Arg<'_>],
    ) -> Result<Vec<Row<D>>, StoreError> {
        D::fetch_all(&mut *self.conn().await?, statement::<D>(sql), args)
            .await
            .map_err(from_sqlx::<D>)
    }

    /// Deletes up to [`SWEEP_LIMIT`] rows of `table` that expired by `now` (see
    /// [`dialect::Sweep`]). A failed sweep does not fail the write it followed: that write is
    /// already committed, and the next write sweeps again.
    async fn sweep(&self, table: &'static str, now: UnixTime) {
        let outcome = self
            .execute(dialect::sweep::<D>(table, SWEEP_LIMIT), &args![now.0])
            .await;
        pool::swept(D::NAME, table, outcome);
    }
}

/// Runs one statement on `conn`; how many rows it changed.
async fn execute<D: Dialect>(
    conn: &mut Conn<D>,
    sql: impl Into<Cow<'static, str>>,
    args: &[Arg<'_>],
) -> Result<u64, StoreError> {
    D::execute(conn, statement::<D>(sql), args)
        .await
        .map_err(from_sqlx::<D>)
}

/// Runs one query on `conn`; its first row.
async fn fetch_optional<D: Dialect>(
    conn: &mut Conn<D>,
    sql: impl Into<Cow<'static, str>>,
    args: &[Arg<'_>],
) -> Result<Option<Row<D>>, StoreError> {
    D::fetch_optional(conn, statement::<D>(sql), args)
        .await
        .map_err(from_sqlx::<D>)
}

/// Runs each statement of `sql` with the one argument `value`, in order.
async fn execute_each<D: Dialect>(
    conn: &mut Conn<D>,
    sql: &[&'static str],
    value: &str,
) -> Result<(), StoreError> {
    for sql in sql {
        execute::<D>(conn, *sql, &args![value]).await?;
    }
    Ok(())
}

async fn commit<D: Dialect>(tx: Transaction<'static, D::Db>) -> Result<(), StoreError> {
    tx.commit().await.map_err(from_sqlx::<D>)
}

async fn rollback<D: Dialect>(tx: Transaction<'static, D::Db>) -> Result<(), StoreError> {
    tx.rollback().await.map_err(from_sqlx::<D>)
}

/// Removes and returns, in one atomic step, the row that `select` (a `SELECT columns FROM
/// table WHERE …` without its `FOR UPDATE`) finds, and that `keep` accepts: one
/// `DELETE … RETURNING`, or a locking read and a `DELETE` in one transaction (see
/// [`dialect::Take`]). `delete` is the `DELETE FROM table WHERE …` with the same condition and
/// arguments.
async fn take_row<D: Dialect>(
    conn: &mut Conn<D>,
    (select, delete, columns): (&'static str, &'static str, &'static str),
    args: &[Arg<'_>],
) -> Result<Option<Row<D>>, StoreError> {
    match D::TAKE {
        Take::DeleteReturning => {
            fetch_optional::<D>(conn, format!("{delete} RETURNING {columns}"), args).await
        }
        Take::LockThenDelete => {
            let row = fetch_optional::<D>(conn, format!("{select} FOR UPDATE"), args).await?;
            if row.is_some() {
                execute::<D>(conn, delete, args).await?;
            }
            Ok(row)
        }
    }
}

impl<D: Dialect> ClientStore for SqlxStore<D> {
    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let sql = concat!("SELECT ", client_columns!(), " FROM clients WHERE id = ?");
        let row = self.fetch_optional(sql, &args![id]).await?;
        // MySQL's PAD SPACE: "abc " matched "abc"; compare exactly once decoded.
        Ok(row
            .as_ref()
            .map(rows::client)
            .transpose()?
            .filter(|client| client.id.as_str() == id))
    }

    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        let row = ClientRow::encode(client)?;
        // `clients` has no unique key but its primary key, so every upsert resolves on `id`.
        let sql = concat!(
            "INSERT INTO clients (",
            client_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        .to_owned()
            + &upsert::<D>(
                "id",
                &[
                    "name",
                    "secret_digest",
                    "redirect_uris",
                    "grant_types",
                    "scopes",
                    "default_scopes",
                    "access_token_ttl",
                    "refresh_token_ttl",
                    "created_at",
                    "bind_tokens",
                    "introspect",
                    "token_endpoint_auth_method",
                    "ext",
                ],
            );
        self.execute(sql, &row.args()).await?;
        Ok(())
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        execute_each::<D>(&mut tx, &CLIENT_DEPENDENTS, id).await?;
        let deleted = execute::<D>(&mut tx, "DELETE FROM clients WHERE id = ?", &args![id]).await?;
        commit::<D>(tx).await?;
        Ok(deleted > 0)
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let sql = format!(
            concat!("SELECT ", client_columns!(), " FROM clients ORDER BY id{}"),
            D::BYTE_ORDER
        );
        let rows = self.fetch_all(sql, &[]).await?;
        rows.iter().map(rows::client).collect()
    }
}

impl<D: Dialect> UserStore for SqlxStore<D> {
    async fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE username = ?");
        let row = self.fetch_optional(sql, &args![username]).await?;
        // MySQL's PAD SPACE: "alice " matched "alice".
        Ok(row
            .as_ref()
            .map(rows::user)
            .transpose()?
            .filter(|user| user.username == username))
    }

    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        // The same id with a new user name is a rename. A user name held by another id breaks
        // the unique key, which is reported as a Conflict, also when two nodes race.
        let insert = concat!(
            "INSERT INTO users (",
            user_columns!(),
            ") VALUES (?, ?, ?, ?, ?)"
        );
        let values = rows::user_args(user)?;
        match D::UPSERT {
            Upsert::OnConflict => {
                let sql = insert.to_owned()
                    + &upsert::<D>("id", &["username", "password_hash", "created_at", "claims"]);
                self.execute(sql, &values).await?;
            }
            // Not `ON DUPLICATE KEY UPDATE`: it fires on the user-name key too, and would
            // overwrite the user who holds the name. An update by id (a rename, or a new
            // password), else an insert.
            Upsert::OnDuplicateKey => {
                let updated = self
                    .execute(
                        "UPDATE users SET username = ?, password_hash = ?, created_at = ?,
                         claims = ? WHERE id = ?",
                        &args![
                            &user.username,
                            &user.password_hash,
                            user.created_at.0,
                            codec::encode_user_claims(&user.claims)?,
                            &user.id
                        ],
                    )
                    .await?;
                // sqlx asks MySQL for CLIENT_FOUND_ROWS: an unchanged row still counts.
                if updated == 0 {
                    self.execute(insert, &values).await?;
                }
            }
        }
        Ok(())
    }

    async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let taken = take_row::<D>(
            &mut tx,
            (
                "SELECT id, username FROM users WHERE username = ?",
                "DELETE FROM users WHERE username = ?",
                "id, username",
            ),
            &args![username],
        )
        .await?;
        // MySQL's PAD SPACE: "alice " matched "alice", and is no such user.
        let id = match taken {
            Some(row) if row.text("username")? == username => row.text("id")?,
            _ => {
                rollback::<D>(tx).await?;
                return Ok(false);
            }
        };
        execute_each::<D>(&mut tx, &USER_DEPENDENTS, &id).await?;
        commit::<D>(tx).await?;
        Ok(true)
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let sql = format!(
            concat!(
                "SELECT ",
                user_columns!(),
                " FROM users ORDER BY username{}"
            ),
            D::BYTE_ORDER
        );
        let rows = self.fetch_all(sql, &[]).await?;
        rows.iter().map(rows::user).collect()
    }

    async fn get_user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?");
        let row = self.fetch_optional(sql, &args![id]).await?;
        // MySQL's PAD SPACE: compare exactly once decoded.
        Ok(row
            .as_ref()
            .map(rows::user)
            .transpose()?
            .filter(|user| user.id == id))
    }
}

impl<D: Dialect> ConsentStore for SqlxStore<D> {
    async fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        let row = self
            .fetch_optional(
                "SELECT scope FROM consents WHERE subject = ? AND client_id = ?",
                &args![subject, client_id],
            )
            .await?;
        row.map(|row| rows::scope(&row.text("scope")?)).transpose()
    }

    async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        scope: &ScopeSet,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        // The primary key is the only unique key, so every upsert resolves on that pair.
        let sql = "INSERT INTO consents (subject, client_id, scope, granted_at) VALUES (?, ?, ?, ?)"
            .to_owned()
            + &upsert::<D>("subject, client_id", &["scope", "granted_at"]);
        self.execute(sql, &args![subject, client_id, scope.to_string(), now.0])
            .await?;
        Ok(())
    }

    async fn revoke_consent(&self, subject: &str, client_id: &str) -> Result<bool, StoreError> {
        let deleted = self
            .execute(
                "DELETE FROM consents WHERE subject = ? AND client_id = ?",
                &args![subject, client_id],
            )
            .await?;
        Ok(deleted > 0)
    }

    async fn list_consents(&self, subject: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        let sql = format!(
            "SELECT client_id, scope, granted_at FROM consents WHERE subject = ?
             ORDER BY client_id{}",
            D::BYTE_ORDER
        );
        let rows = self.fetch_all(sql, &args![subject]).await?;
        rows.iter().map(rows::consent).collect()
    }
}
