//! The OAuth 1.0a store on MySQL and MariaDB ([`OAuth1Store`] for [`MySqlStore`]), for several
//! nodes sharing one database. Approving a request token is one `UPDATE … WHERE verifier IS
//! NULL`; taking one is a transaction that locks the row (`SELECT … FOR UPDATE`) and deletes
//! it, so of racing takers exactly one gets it; a nonce is an `INSERT IGNORE` after deleting
//! an expired row of the same key, so the primary key refuses a replay. Writes that carry a `now` sweep expired rows of their
//! table, as the token writes do.

use super::MySqlStore;
use crate::error::from_sqlx;
use crate::pool::{self, SWEEP_LIMIT};
use crate::rows;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::StoreError;
use latchkey_core::store::oauth1::{AccessToken, Consumer, OAuth1Store, RequestToken};

impl MySqlStore {
    /// Deletes up to [`SWEEP_LIMIT`] expired rows of one OAuth 1.0a table.
    async fn sweep_oauth1(&self, sql: &'static str, table: &str, now: UnixTime) {
        let outcome = sqlx::query(sql)
            .bind(now.0)
            .bind(SWEEP_LIMIT)
            .execute(&self.pool)
            .await;
        pool::swept("mysql", table, outcome.map(|d| d.rows_affected()));
    }
}

impl OAuth1Store for MySqlStore {
    async fn get_consumer(&self, client_id: &str) -> Result<Option<Consumer>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            rows::oauth1_consumer_columns!(),
            " FROM oauth1_consumers WHERE client_id = ?"
        ))
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        row.as_ref().map(rows::oauth1_consumer).transpose()
    }

    async fn put_consumer(&self, c: &Consumer) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO oauth1_consumers (",
            rows::oauth1_consumer_columns!(),
            ") VALUES (?, ?, ?, ?)
             ON DUPLICATE KEY UPDATE
                 rsa_public_key = VALUES(rsa_public_key),
                 created_at = VALUES(created_at),
                 secret_salt = VALUES(secret_salt)"
        ))
        .bind(&c.client_id)
        .bind(c.rsa_public_key.as_deref())
        .bind(c.created_at.0)
        .bind(c.secret_salt.as_deref())
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(())
    }

    async fn delete_consumer(&self, client_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        for sql in [
            "DELETE FROM oauth1_request_tokens WHERE client_id = ?",
            "DELETE FROM oauth1_access_tokens WHERE client_id = ?",
        ] {
            sqlx::query(sql)
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        }
        let done = sqlx::query("DELETE FROM oauth1_consumers WHERE client_id = ?")
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(done.rows_affected() > 0)
    }

    async fn rotate_consumer_secret(
        &self,
        client_id: &str,
        salt: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let updated =
            sqlx::query("UPDATE oauth1_consumers SET secret_salt = ? WHERE client_id = ?")
                .bind(salt)
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        if updated.rows_affected() == 0 {
            // Whether MySQL counts matched or changed rows, a fresh random salt always
            // changes the row, so 0 means no such consumer.
            return Ok(false);
        }
        for sql in [
            "DELETE FROM oauth1_request_tokens WHERE client_id = ?",
            "DELETE FROM oauth1_access_tokens WHERE client_id = ?",
        ] {
            sqlx::query(sql)
                .bind(client_id)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        }
        tx.commit().await.map_err(from_sqlx)?;
        Ok(true)
    }

    async fn save_request_token(&self, t: &RequestToken, now: UnixTime) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO oauth1_request_tokens (",
            rows::oauth1_request_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(t.digest.as_bytes().as_slice())
        .bind(&t.client_id)
        .bind(&t.callback)
        .bind(t.realms.to_string())
        .bind(t.subject.as_deref())
        .bind(t.username.as_deref())
        .bind(t.verifier.as_ref().map(|v| v.as_bytes().to_vec()))
        .bind(t.expires_at.0)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        self.sweep_oauth1(
            "DELETE FROM oauth1_request_tokens WHERE expires_at <= ? ORDER BY expires_at LIMIT ?",
            "oauth1_request_tokens",
            now,
        )
        .await;
        Ok(())
    }

    async fn find_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<RequestToken>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            rows::oauth1_request_columns!(),
            " FROM oauth1_request_tokens WHERE digest = ? AND expires_at > ?"
        ))
        .bind(digest.as_bytes().as_slice())
        .bind(now.0)
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        row.as_ref().map(rows::oauth1_request_token).transpose()
    }

    async fn authorize_request_token(
        &self,
        digest: &Digest,
        subject: &str,
        username: &str,
        verifier: &Digest,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE oauth1_request_tokens SET subject = ?, username = ?, verifier = ?
             WHERE digest = ? AND verifier IS NULL AND expires_at > ?",
        )
        .bind(subject)
        .bind(username)
        .bind(verifier.as_bytes().as_slice())
        .bind(digest.as_bytes().as_slice())
        .bind(now.0)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        Ok(done.rows_affected() == 1)
    }

    async fn take_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<RequestToken>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let row = sqlx::query(concat!(
            "SELECT ",
            rows::oauth1_request_columns!(),
            " FROM oauth1_request_tokens WHERE digest = ? FOR UPDATE"
        ))
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let Some(row) = row else {
            tx.commit().await.map_err(from_sqlx)?;
            return Ok(None);
        };
        let token = rows::oauth1_request_token(&row)?;
        sqlx::query("DELETE FROM oauth1_request_tokens WHERE digest = ?")
            .bind(digest.as_bytes().as_slice())
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok((now < token.expires_at).then_some(token))
    }

    async fn save_access_token(&self, t: &AccessToken, now: UnixTime) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO oauth1_access_tokens (",
            rows::oauth1_access_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        ))
        .bind(t.digest.as_bytes().as_slice())
        .bind(&t.client_id)
        .bind(&t.subject)
        .bind(t.username.as_deref())
        .bind(t.realms.to_string())
        .bind(t.issued_at.0)
        .bind(t.expires_at.map(|e| e.0))
        .bind(t.revoked)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        self.sweep_oauth1(
            "DELETE FROM oauth1_access_tokens WHERE expires_at <= ? ORDER BY expires_at LIMIT ?",
            "oauth1_access_tokens",
            now,
        )
        .await;
        Ok(())
    }

    async fn find_access_token(&self, digest: &Digest) -> Result<Option<AccessToken>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            rows::oauth1_access_columns!(),
            " FROM oauth1_access_tokens WHERE digest = ?"
        ))
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        row.as_ref().map(rows::oauth1_access_token).transpose()
    }

    async fn revoke_access_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE oauth1_access_tokens SET revoked = TRUE WHERE digest = ?")
            .bind(digest.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(done.rows_affected() > 0)
    }

    async fn insert_nonce(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        // A remembered nonce that has expired (but was not swept yet) counts as new.
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        sqlx::query("DELETE FROM oauth1_nonces WHERE digest = ? AND expires_at <= ?")
            .bind(key.as_bytes().as_slice())
            .bind(now.0)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        let done =
            sqlx::query("INSERT IGNORE INTO oauth1_nonces (digest, expires_at) VALUES (?, ?)")
                .bind(key.as_bytes().as_slice())
                .bind(expires_at.0)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        self.sweep_oauth1(
            "DELETE FROM oauth1_nonces WHERE expires_at <= ? ORDER BY expires_at LIMIT ?",
            "oauth1_nonces",
            now,
        )
        .await;
        Ok(done.rows_affected() == 1)
    }
}
