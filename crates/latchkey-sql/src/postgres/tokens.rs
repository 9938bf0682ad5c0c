//! Tokens and authorization codes on PostgreSQL: the operations whose atomicity matters when
//! several nodes race for the same row.
//!
//! - `take_code` is one transaction: `SELECT … FOR UPDATE` locks the code's row, the core's
//!   [`code_verdict`] decides on what it read (a locking read sees the latest committed row),
//!   and only a take commits `UPDATE … SET used`. Racing takers queue on the row lock; the
//!   first marks it used and every later one sees a replay (or, from another client, nothing).
//! - `rotate_refresh` is one transaction that locks the old token with `SELECT … FOR UPDATE`,
//!   then either marks it rotated and inserts the new tokens, or (already rotated: a replay,
//!   RFC 9700 §4.14.2) revokes the whole family before committing.
//! - `save_tokens` is one multi-row `INSERT`, so an issuance is stored all or nothing.
//!
//! Expiry lives here too: each write that carries a `now` then deletes up to
//! [`SWEEP_LIMIT`](crate::pool::SWEEP_LIMIT) expired rows of its table, skipping rows another
//! node is already deleting (`FOR UPDATE SKIP LOCKED`), so the tables stay flat without a
//! janitor and sweeps on several nodes never wait for each other.

use super::PgStore;
use crate::error::from_sqlx;
use crate::pool::{self, SWEEP_LIMIT};
use crate::rows::{self, Columns, code_columns, token_columns};
use latchkey_core::client::ClientId;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::{
    CodeStore, CodeTake, CodeVerdict, Rotation, StoreError, TokenOwner, TokenStore, code_verdict,
};
use latchkey_core::token::{CodeRecord, FamilyId, NewTokens, TokenKind, TokenRecord};
use sqlx::{Postgres, QueryBuilder};

impl TokenStore for PgStore {
    async fn save_tokens(&self, tokens: &NewTokens, now: UnixTime) -> Result<(), StoreError> {
        insert_tokens(tokens)
            .build()
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        self.sweep_tokens(now).await;
        Ok(())
    }

    async fn find_token(&self, digest: &Digest) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE digest = $1"
        ))
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        row.as_ref().map(rows::token).transpose()
    }

    async fn rotate_refresh(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> Result<Rotation, StoreError> {
        let rotation = self.rotate(old, new, now).await?;
        self.sweep_tokens(now).await;
        Ok(rotation)
    }

    async fn revoke_family(&self, family: &FamilyId) -> Result<u64, StoreError> {
        let done =
            sqlx::query("UPDATE tokens SET revoked = true WHERE family = $1 AND NOT revoked")
                .bind(&family.0)
                .execute(&self.pool)
                .await
                .map_err(from_sqlx)?;
        Ok(done.rows_affected())
    }

    async fn revoke_tokens_of_grant(
        &self,
        client_id: &str,
        subject: &str,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let done = sqlx::query(
            "UPDATE tokens SET revoked = true
             WHERE client_id = $1 AND subject = $2 AND NOT revoked",
        )
        .bind(client_id)
        .bind(subject)
        .execute(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        sqlx::query("DELETE FROM codes WHERE client_id = $1 AND subject = $2")
            .bind(client_id)
            .bind(subject)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(done.rows_affected())
    }

    async fn revoke_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE tokens SET revoked = true WHERE digest = $1")
            .bind(digest.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_tokens_of(&self, owner: &TokenOwner) -> Result<u64, StoreError> {
        let (tokens, codes, value) = match owner {
            TokenOwner::Client(id) => (
                "DELETE FROM tokens WHERE client_id = $1",
                "DELETE FROM codes WHERE client_id = $1",
                id,
            ),
            TokenOwner::Subject(id) => (
                "DELETE FROM tokens WHERE subject = $1",
                "DELETE FROM codes WHERE subject = $1",
                id,
            ),
        };
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let done = sqlx::query(tokens)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        sqlx::query(codes)
            .bind(value)
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(done.rows_affected())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }
}

impl CodeStore for PgStore {
    async fn save_code(&self, code: &CodeRecord, now: UnixTime) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO codes (",
            code_columns!(),
            ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
        ))
        .bind(code.digest.as_bytes().as_slice())
        .bind(code.client_id.as_str())
        .bind(&code.redirect_uri)
        .bind(code.redirect_uri_sent)
        .bind(&code.subject)
        .bind(&code.username)
        .bind(code.scope.to_string())
        .bind(code.challenge.as_ref().map(|c| c.method.as_str()))
        .bind(code.challenge.as_ref().map(|c| c.value.as_str()))
        .bind(code.nonce.as_deref())
        .bind(&code.family.0)
        .bind(code.issued_at.0)
        .bind(code.expires_at.0)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        self.sweep_codes(now).await;
        Ok(())
    }

    async fn take_code(
        &self,
        digest: &Digest,
        client_id: &ClientId,
        now: UnixTime,
    ) -> Result<CodeTake, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let row = sqlx::query(concat!(
            "SELECT ",
            code_columns!(),
            ", used FROM codes WHERE digest = $1 FOR UPDATE"
        ))
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let Some(row) = row else {
            tx.rollback().await.map_err(from_sqlx)?;
            return Ok(CodeTake::Invalid);
        };
        let code = rows::code(&row)?;
        let verdict = code_verdict(
            code.client_id.as_str(),
            code.expires_at,
            row.flag("used")?,
            client_id.as_str(),
            now,
        );
        let take = match verdict {
            CodeVerdict::Refuse => CodeTake::Invalid,
            CodeVerdict::Replay => CodeTake::Replayed {
                family: code.family,
            },
            CodeVerdict::Take => {
                sqlx::query("UPDATE codes SET used = true WHERE digest = $1")
                    .bind(digest.as_bytes().as_slice())
                    .execute(&mut *tx)
                    .await
                    .map_err(from_sqlx)?;
                tx.commit().await.map_err(from_sqlx)?;
                return Ok(CodeTake::Taken(code));
            }
        };
        tx.rollback().await.map_err(from_sqlx)?;
        Ok(take)
    }
}

impl PgStore {
    /// Rotation and reuse detection in one transaction (RFC 9700 §4.14.2). The old token's row
    /// stays locked until commit, so concurrent rotations of it run one after another, and each
    /// later one sees it rotated.
    async fn rotate(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.pool.begin().await.map_err(from_sqlx)?;
        let row = sqlx::query(
            "SELECT kind, revoked, rotated, expires_at, family FROM tokens
             WHERE digest = $1 FOR UPDATE",
        )
        .bind(old.as_bytes().as_slice())
        .fetch_optional(&mut *tx)
        .await
        .map_err(from_sqlx)?;
        let Some(row) = row else {
            tx.rollback().await.map_err(from_sqlx)?;
            return Ok(Rotation::Invalid);
        };
        let kind = rows::token_kind(&row.text("kind")?)?;
        let expires_at = UnixTime(row.int("expires_at")?);
        if kind != TokenKind::Refresh || row.flag("revoked")? || now >= expires_at {
            tx.rollback().await.map_err(from_sqlx)?;
            return Ok(Rotation::Invalid);
        }
        if row.flag("rotated")? {
            // A refresh token presented twice means one copy was stolen; revoke everything
            // descended from the same grant, in the same transaction.
            let family = FamilyId(row.text("family")?);
            sqlx::query("UPDATE tokens SET revoked = true WHERE family = $1 AND NOT revoked")
                .bind(&family.0)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlx)?;
            tx.commit().await.map_err(from_sqlx)?;
            return Ok(Rotation::Reused { family });
        }
        sqlx::query("UPDATE tokens SET rotated = true WHERE digest = $1")
            .bind(old.as_bytes().as_slice())
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        insert_tokens(new)
            .build()
            .execute(&mut *tx)
            .await
            .map_err(from_sqlx)?;
        tx.commit().await.map_err(from_sqlx)?;
        Ok(Rotation::Rotated)
    }

    /// Deletes up to [`SWEEP_LIMIT`] tokens that expired by `now`.
    async fn sweep_tokens(&self, now: UnixTime) {
        let outcome = sqlx::query(
            "DELETE FROM tokens WHERE digest IN (
                 SELECT digest FROM tokens WHERE expires_at <= $1
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now.0)
        .bind(SWEEP_LIMIT)
        .execute(&self.pool)
        .await;
        pool::swept("postgres", "tokens", outcome.map(|d| d.rows_affected()));
    }

    /// Deletes up to [`SWEEP_LIMIT`] codes that expired by `now`, used or not.
    async fn sweep_codes(&self, now: UnixTime) {
        let outcome = sqlx::query(
            "DELETE FROM codes WHERE digest IN (
                 SELECT digest FROM codes WHERE expires_at <= $1
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now.0)
        .bind(SWEEP_LIMIT)
        .execute(&self.pool)
        .await;
        pool::swept("postgres", "codes", outcome.map(|d| d.rows_affected()));
    }
}

/// One `INSERT` of every record of an issuance: stored all or nothing without a transaction.
fn insert_tokens(tokens: &NewTokens) -> QueryBuilder<Postgres> {
    let mut insert = QueryBuilder::new(concat!("INSERT INTO tokens (", token_columns!(), ") "));
    insert.push_values(tokens.records(), |mut row, record| {
        row.push_bind(record.digest.as_bytes().as_slice())
            .push_bind(record.kind.as_str())
            .push_bind(record.client_id.as_str())
            .push_bind(record.subject.as_deref())
            .push_bind(record.username.as_deref())
            .push_bind(record.scope.to_string())
            .push_bind(record.grant_type.as_str())
            .push_bind(record.family.0.as_str())
            .push_bind(record.issued_at.0)
            .push_bind(record.expires_at.0)
            .push_bind(record.revoked)
            .push_bind(record.rotated)
            .push_bind(record.binding.as_ref().map(|b| b.user_agent.as_str()))
            .push_bind(record.binding.as_ref().map(|b| b.ip.as_str()))
            .push_bind(record.family_issued_at.0);
    });
    insert
}
