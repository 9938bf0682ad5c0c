//! The OAuth 1.0a store on a database server ([`OAuth1Store`] for [`SqlxStore`]), for several
//! nodes sharing one database. Approving a request token is one `UPDATE … WHERE verifier IS
//! NULL`; taking one is a take of its row (see [`super::take_row`]), so of racing takers
//! exactly one gets it; a nonce is an insert the primary key refuses while the remembered
//! nonce is alive (the replay cache's step, on the `oauth1_nonces` table). Writes that carry a `now` sweep expired
//! rows of their table, as the token writes do.

use super::dialect::{Dialect, upsert};
use super::{SqlxStore, commit, execute, execute_each, take_row};
use crate::rows::{
    self, CONSUMER_TOKENS, args, oauth1_access_columns, oauth1_consumer_columns,
    oauth1_request_columns,
};
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::StoreError;
use latchkey_core::store::oauth1::{AccessToken, Consumer, OAuth1Store, RequestToken};

impl<D: Dialect> OAuth1Store for SqlxStore<D> {
    async fn get_consumer(&self, client_id: &str) -> Result<Option<Consumer>, StoreError> {
        let sql = concat!(
            "SELECT ",
            oauth1_consumer_columns!(),
            " FROM oauth1_consumers WHERE client_id = ?"
        );
        let row = self.fetch_optional(sql, &args![client_id]).await?;
        row.as_ref().map(rows::oauth1_consumer).transpose()
    }

    async fn put_consumer(&self, c: &Consumer) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO oauth1_consumers (",
            oauth1_consumer_columns!(),
            ") VALUES (?, ?, ?, ?)"
        )
        .to_owned()
            + &upsert::<D>(
                "client_id",
                &["rsa_public_key", "created_at", "secret_salt"],
            );
        self.execute(sql, &rows::oauth1_consumer_args(c)).await?;
        Ok(())
    }

    async fn delete_consumer(&self, client_id: &str) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        execute_each::<D>(&mut tx, &CONSUMER_TOKENS, client_id).await?;
        let sql = "DELETE FROM oauth1_consumers WHERE client_id = ?";
        let deleted = execute::<D>(&mut tx, sql, &args![client_id]).await?;
        commit::<D>(tx).await?;
        Ok(deleted > 0)
    }

    async fn rotate_consumer_secret(
        &self,
        client_id: &str,
        salt: &str,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let sql = "UPDATE oauth1_consumers SET secret_salt = ? WHERE client_id = ?";
        // Whether MySQL counts matched or changed rows, a fresh random salt always changes
        // the row, so 0 means no such consumer.
        if execute::<D>(&mut tx, sql, &args![salt, client_id]).await? == 0 {
            return Ok(false);
        }
        execute_each::<D>(&mut tx, &CONSUMER_TOKENS, client_id).await?;
        commit::<D>(tx).await?;
        Ok(true)
    }

    async fn save_request_token(&self, t: &RequestToken, now: UnixTime) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO oauth1_request_tokens (",
            oauth1_request_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        );
        self.execute(sql, &rows::oauth1_request_args(t)).await?;
        self.sweep("oauth1_request_tokens", now).await;
        Ok(())
    }

    async fn find_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<RequestToken>, StoreError> {
        let sql = concat!(
            "SELECT ",
            oauth1_request_columns!(),
            " FROM oauth1_request_tokens WHERE digest = ? AND expires_at > ?"
        );
        let row = self.fetch_optional(sql, &args![digest, now.0]).await?;
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
        let sql = "UPDATE oauth1_request_tokens SET subject = ?, username = ?, verifier = ?
                   WHERE digest = ? AND verifier IS NULL AND expires_at > ?";
        let updated = self
            .execute(sql, &args![subject, username, verifier, digest, now.0])
            .await?;
        Ok(updated == 1)
    }

    async fn take_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<RequestToken>, StoreError> {
        let statements = (
            concat!(
                "SELECT ",
                oauth1_request_columns!(),
                " FROM oauth1_request_tokens WHERE digest = ?"
            ),
            "DELETE FROM oauth1_request_tokens WHERE digest = ?",
            oauth1_request_columns!(),
        );
        let row = match D::TAKE {
            // One statement: no transaction needed.
            super::dialect::Take::DeleteReturning => {
                take_row::<D>(&mut *self.conn().await?, statements, &args![digest]).await?
            }
            super::dialect::Take::LockThenDelete => {
                let mut tx = self.begin().await?;
                let row = take_row::<D>(&mut tx, statements, &args![digest]).await?;
                commit::<D>(tx).await?;
                row
            }
        };
        let token = row.as_ref().map(rows::oauth1_request_token).transpose()?;
        Ok(token.filter(|t| now < t.expires_at))
    }

    async fn save_access_token(&self, t: &AccessToken, now: UnixTime) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO oauth1_access_tokens (",
            oauth1_access_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        );
        self.execute(sql, &rows::oauth1_access_args(t)).await?;
        self.sweep("oauth1_access_tokens", now).await;
        Ok(())
    }

    async fn find_access_token(&self, digest: &Digest) -> Result<Option<AccessToken>, StoreError> {
        let sql = concat!(
            "SELECT ",
            oauth1_access_columns!(),
            " FROM oauth1_access_tokens WHERE digest = ?"
        );
        let row = self.fetch_optional(sql, &args![digest]).await?;
        row.as_ref().map(rows::oauth1_access_token).transpose()
    }

    async fn revoke_access_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        let sql = "UPDATE oauth1_access_tokens SET revoked = TRUE WHERE digest = ?";
        Ok(self.execute(sql, &args![digest]).await? > 0)
    }

    async fn insert_nonce(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.remember_in("oauth1_nonces", key, expires_at, now)
            .await
    }
}
