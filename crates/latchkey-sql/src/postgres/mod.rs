//! The PostgreSQL store: for several `latchkey` nodes behind a load balancer sharing one
//! database, so that nodes can be added or lost without losing state.
//!
//! There is no single writer to lean on, as SQLite has: every node writes, so each operation
//! is atomic in the database itself. `take_code` and `rotate_refresh` are each one transaction
//! that locks the code's or old token's row with `SELECT … FOR UPDATE` (see [`tokens`]), and
//! deleting a client or user with its tokens, codes and consent is one transaction.
//!
//! Sessions run with a lock timeout (5 s), a statement timeout (15 s) and an idle-in-transaction
//! timeout (30 s, so a node that dies inside a transaction frees its row locks); with the
//! bounded pool of [`crate::pool`], an outage or a stuck lock becomes `Unavailable` within
//! seconds instead of a hang. Digests are stored as `BYTEA`; token and code values never are.

mod migrate;
mod oauth1;
mod sessions;
mod tokens;

use crate::error::from_sqlx;
use crate::pool;
use crate::rows::{self, ClientRow, client_columns, user_columns};
use latchkey_core::client::Client;
use latchkey_core::clock::UnixTime;
use latchkey_core::scope::ScopeSet;
use latchkey_core::store::{ClientStore, ConsentRecord, ConsentStore, StoreError, UserStore};
use latchkey_core::user::User;
use sqlx::postgres::{PgConnectOptions, PgPool};
use std::str::FromStr;

/// What every pooled connection sets before its first use; see the module docs.
const SESSION: &str = "SET lock_timeout = '5s'; \
                       SET statement_timeout = '15s'; \
                       SET idle_in_transaction_session_timeout = '30s'";

/// The PostgreSQL store. Cloning is cheap and shares the connection pool; any number of stores,
/// in one process or on many nodes, may share one database.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`),
    /// brings its schema up to date and returns the store. Fails with `Unavailable` after a
    /// few seconds if the server cannot be reached. Must be called inside a tokio runtime.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url).map_err(from_sqlx)?;
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

impl ClientStore for PgStore {
    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        row.as_ref().map(rows::client).transpose()
    }

    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        let row = ClientRow::encode(client)?;
        sqlx::query(concat!(
            "INSERT INTO clients (",
            client_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (id) DO UPDATE SET
                 name = EXCLUDED.name,
                 secret_digest = EXCLUDED.secret_digest,
                 redirect_uris = EXCLUDED.redirect_uris,
                 grant_types = EXCLUDED.grant_types,
                 scopes = EXCLUDED.scopes,
                 default_scopes = EXCLUDED.default_scopes,
                 access_token_ttl = EXCLUDED.access_token_ttl,
                 refresh_token_ttl = EXCLUDED.refresh_token_ttl,
                 created_at = EXCLUDED.created_at,
                 bind_tokens = EXCLUDED.bind_tokens,
                 introspect = EXCLUDED.introspect,
                 token_endpoint_auth_method = EXCLUDED.token_endpoint_auth_method"
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
            "DELETE FROM tokens WHERE client_id = $1",
            "DELETE FROM codes WHERE client_id = $1",
            "DELETE FROM consents WHERE client_id = $1",
            "DELETE FROM oauth1_request_tokens WHERE client_id = $1",
            "DELETE FROM oauth1_access_tokens WHERE client_id = $1",
            "DELETE FROM oauth1_consumers WHERE client_id = $1",
        ] {
            sqlx::query(sql)
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        }
        let done = sqlx::query("DELETE FROM clients WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        // COLLATE "C": byte order, like the other stores, whatever the database's locale.
        let rows = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients ORDER BY id COLLATE \"C\""
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.iter().map(rows::client).collect()
    }
}

impl UserStore for PgStore {
    async fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username = $1"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        // The same id with a new user name is a rename. A user name held by another id breaks
        // the UNIQUE constraint, which is reported as a Conflict, also when two nodes race.
        sqlx::query(concat!(
            "INSERT INTO users (",
            user_columns!(),
            ") VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET
                 username = EXCLUDED.username,
                 password_hash = EXCLUDED.password_hash,
                 created_at = EXCLUDED.created_at"
        ))
        .bind(&user.id)
        .bind(&user.username)
        .bind(&user.password_hash)
        .bind(user.created_at.0)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(())
    }

    async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let id: Option<String> =
            sqlx::query_scalar("DELETE FROM users WHERE username = $1 RETURNING id")
                .bind(username)
                .fetch_optional(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        let Some(id) = id else {
            tx.rollback().await.map_err(from_sqlx)?;
            return Ok(false);
        };
        for sql in [
            "DELETE FROM tokens WHERE subject = $1",
            "DELETE FROM codes WHERE subject = $1",
            "DELETE FROM consents WHERE subject = $1",
            "DELETE FROM oauth1_request_tokens WHERE subject = $1",
            "DELETE FROM oauth1_access_tokens WHERE subject = $1",
            "DELETE FROM sessions WHERE subject = $1",
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
            " FROM users ORDER BY username COLLATE \"C\""
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
            " FROM users WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        row.as_ref().map(rows::user).transpose()
    }
}

impl ConsentStore for PgStore {
    async fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        let scope: Option<String> =
            sqlx::query_scalar("SELECT scope FROM consents WHERE subject = $1 AND client_id = $2")
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
        sqlx::query(
            "INSERT INTO consents (subject, client_id, scope, granted_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (subject, client_id) DO UPDATE SET
                 scope = EXCLUDED.scope,
                 granted_at = EXCLUDED.granted_at",
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
        let done = sqlx::query("DELETE FROM consents WHERE subject = $1 AND client_id = $2")
            .bind(subject)
            .bind(client_id)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(done.rows_affected() > 0)
    }

    async fn list_consents(&self, subject: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT client_id, scope, granted_at FROM consents WHERE subject = $1
             ORDER BY client_id COLLATE \"C\"",
        )
        .bind(subject)
        .fetch_all(&self.pool)
        .await
        .map_err(from_sqlx)?;
        rows.iter().map(rows::consent).collect()
    }
}
