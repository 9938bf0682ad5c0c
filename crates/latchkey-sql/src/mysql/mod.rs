//! The MySQL/MariaDB store: for several `latchkey` nodes sharing one MySQL 8 or MariaDB 10.6+
//! database, so that nodes can be added or lost without losing state.
//!
//! Every node writes, so each operation is atomic in the database itself. MySQL has no
//! `RETURNING` on `UPDATE`, so both `take_code` and `rotate_refresh` are one transaction that
//! locks the row with `SELECT … FOR UPDATE` before deciding (see [`tokens`]); deleting a client
//! or user with its tokens, codes and consent is one transaction too.
//!
//! Sessions run at `READ COMMITTED`: correctness rests on those row locks, and without
//! REPEATABLE READ's gap locks, concurrent inserts and the expiry sweep do not block or
//! deadlock each other. (Binary logging must then be row-based or mixed, the defaults of
//! MySQL 8 and MariaDB.) Row-lock waits end after 5 s (`innodb_lock_wait_timeout`); with the
//! bounded pool of [`crate::pool`], an outage or a stuck lock becomes `Unavailable` within
//! seconds instead of a hang.
//!
//! Text uses the `utf8mb4_bin` collation, so names compare exactly; it still ignores trailing
//! spaces (PAD SPACE, in both MySQL and MariaDB), so lookups by user name and client id
//! re-check the match in Rust. Digests are stored as `BINARY(32)`; token and code values never
//! are.

mod migrate;
mod oauth1;
mod sessions;
mod tokens;

use crate::error::from_sqlx;
use crate::pool;
use crate::rows::{self, ClientRow, Columns, client_columns, user_columns};
use latchkey_core::client::Client;
use latchkey_core::clock::UnixTime;
use latchkey_core::scope::ScopeSet;
use latchkey_core::store::{ClientStore, ConsentRecord, ConsentStore, StoreError, UserStore};
use latchkey_core::user::User;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool};
use std::str::FromStr;

/// What every pooled connection sets before its first use; see the module docs.
const SESSION: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED; \
                       SET SESSION innodb_lock_wait_timeout = 5";

/// The MySQL/MariaDB store. Cloning is cheap and shares the connection pool; any number of
/// stores, in one process or on many nodes, may share one database.
#[derive(Clone, Debug)]
pub struct MySqlStore {
    pool: MySqlPool,
}

impl MySqlStore {
    /// Connects to the database at `url` (`mysql://user:password@host:port/database`), brings
    /// its schema up to date and returns the store. Fails with `Unavailable` after a few
    /// seconds if the server cannot be reached. Must be called inside a tokio runtime.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = MySqlConnectOptions::from_str(url).map_err(from_sqlx)?;
        let pool = pool::options()
            .after_connect(|conn, _meta| {
                Box::pin(async move { sqlx::raw_sql(SESSION).execute(conn).await.map(drop) })
            })
            .connect_with(options)
            .await
            .map_err(from_sqlx)?;
        if let Err(err) = migrate::run(&pool).await {
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
}

impl ClientStore for MySqlStore {
    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        // PAD SPACE: "abc " matched "abc".
        Ok(row
            .as_ref()
            .map(rows::client)
            .transpose()?
            .filter(|client| client.id.as_str() == id))
    }

    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        let row = ClientRow::encode(client)?;
        // `clients` has no unique key but its primary key, so the upsert can only hit `id`.
        sqlx::query(concat!(
            "INSERT INTO clients (",
            client_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON DUPLICATE KEY UPDATE
                 name = VALUES(name),
                 secret_digest = VALUES(secret_digest),
                 redirect_uris = VALUES(redirect_uris),
                 grant_types = VALUES(grant_types),
                 scopes = VALUES(scopes),
                 default_scopes = VALUES(default_scopes),
                 access_token_ttl = VALUES(access_token_ttl),
                 refresh_token_ttl = VALUES(refresh_token_ttl),
                 created_at = VALUES(created_at),
                 bind_tokens = VALUES(bind_tokens),
                 introspect = VALUES(introspect),
                 token_endpoint_auth_method = VALUES(token_endpoint_auth_method)"
        ))
        .bind(&row.id)
        .bind(&row.name)
        .bind(row.secret_digest.as_deref())
        .bind(&row.redirect_uris)
        .bind(&row.grant_types)
        .bind(row.scopes.as_deref())
        .bind(row.default_scopes.as_deref())
        .bind(row.access_token_ttl)
        .bind(row.refresh_token_ttl)
        .bind(row.created_at)
        .bind(row.bind_tokens)
        .bind(row.introspect)
        .bind(row.token_endpoint_auth_method)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(())
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        for sql in [
            "DELETE FROM tokens WHERE client_id = ?",
            "DELETE FROM codes WHERE client_id = ?",
            "DELETE FROM consents WHERE client_id = ?",
            "DELETE FROM oauth1_request_tokens WHERE client_id = ?",
            "DELETE FROM oauth1_access_tokens WHERE client_id = ?",
            "DELETE FROM oauth1_consumers WHERE client_id = ?",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        }
        let done = sqlx::query("DELETE FROM clients WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.iter().map(rows::client).collect()
    }
}

impl UserStore for MySqlStore {
    async fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username = ?"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        // PAD SPACE: "alice " matched "alice".
        Ok(row
            .as_ref()
            .map(rows::user)
            .transpose()?
            .filter(|user| user.username == username))
    }

    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        // Not `ON DUPLICATE KEY UPDATE`: it fires on the user-name key too, and would overwrite
        // the user who holds the name. An update by id (a rename, or a new password), else an
        // insert; a user name held by another id breaks the unique key either way, which is
        // reported as a Conflict, also when two nodes race.
        let updated = sqlx::query(
            "UPDATE users SET username = ?, password_hash = ?, created_at = ? WHERE id = ?",
        )
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(user.created_at.0)
        .bind(&user.id)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        // sqlx asks for CLIENT_FOUND_ROWS: an unchanged row still counts as matched.
        if updated.rows_affected() == 0 {
            sqlx::query(concat!(
                "INSERT INTO users (",
                user_columns!(),
                ") VALUES (?, ?, ?, ?)"
            ))
            .bind(&user.id)
            .bind(&user.username)
            .bind(&user.password_hash)
            .bind(user.created_at.0)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        }
        Ok(())
    }

    async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let row = sqlx::query("SELECT id, username FROM users WHERE username = ? FOR UPDATE")
            .bind(username)
            .fetch_optional(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        let id = match row {
            Some(row) if row.text("username")? == username => row.text("id")?,
            _ => {
                tx.rollback().await.map_err(from_sqlx)?;
                return Ok(false);
            }
        };
        for sql in [
            "DELETE FROM tokens WHERE subject = ?",
            "DELETE FROM codes WHERE subject = ?",
            "DELETE FROM consents WHERE subject = ?",
            "DELETE FROM oauth1_request_tokens WHERE subject = ?",
            "DELETE FROM oauth1_access_tokens WHERE subject = ?",
            "DELETE FROM sessions WHERE subject = ?",
            "DELETE FROM users WHERE id = ?",
        ] {
            sqlx::query(sql)
                .bind(&id)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(true)
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY username"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.iter().map(rows::user).collect()
    }

    async fn get_user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        // PAD SPACE (MySQL): compare exactly once decoded.
        Ok(row
            .as_ref()
            .map(rows::user)
            .transpose()?
            .filter(|user| user.id == id))
    }
}

impl ConsentStore for MySqlStore {
    async fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        let scope: Option<String> =
            sqlx::query_scalar("SELECT scope FROM consents WHERE subject = ? AND client_id = ?")
                .bind(subject)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(from_sqlx)?;
        scope.as_deref().map(rows::scope).transpose()
    }

    async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        scope: &ScopeSet,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        // The primary key is the only unique key, so the upsert can only hit that pair.
        sqlx::query(
            "INSERT INTO consents (subject, client_id, scope, granted_at) VALUES (?, ?, ?, ?)
             ON DUPLICATE KEY UPDATE scope = VALUES(scope), granted_at = VALUES(granted_at)",
        )
        .bind(subject)
        .bind(client_id)
        .bind(scope.to_string())
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(())
    }

    async fn revoke_consent(&self, subject: &str, client_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM consents WHERE subject = ? AND client_id = ?")
            .bind(subject)
            .bind(client_id)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_consents(&self, subject: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_id, scope, granted_at FROM consents WHERE subject = ?
             ORDER BY client_id",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.iter().map(rows::consent).collect()
    }
}
