//! Tokens and authorization codes on a database server: the operations whose atomicity
//! matters when several nodes race for the same row.
//!
//! - `take_code` is one transaction: `SELECT … FOR UPDATE` locks the code's row, the core's
//!   [`code_verdict`] decides on what it read (a locking read sees the latest committed row),
//!   and only a take commits `UPDATE … SET used`. Racing takers queue on the row lock; the
//!   first marks it used and every later one sees a replay (or, from another client, nothing).
//! - `rotate_refresh` is the same shape on the old refresh token, decided by the core's
//!   [`refresh_verdict`]: mark it rotated and insert the new tokens, or (already rotated: a
//!   replay, RFC 9700 §4.14.2) revoke the whole family, before committing.
//! - `save_tokens` is one multi-row `INSERT`, so an issuance is stored all or nothing.
//!
//! Each write that carries a `now` then sweeps its table (see [`SqlxStore::sweep`]).

use super::dialect::{Conn, Dialect};
use super::{SqlxStore, commit, execute, fetch_optional, rollback};
use crate::rows::{self, Columns, args, code_columns, token_columns};
use latchkey_core::client::ClientId;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::{
    CodeStore, CodeTake, CodeVerdict, RefreshVerdict, Rotation, StoreError, TokenOwner, TokenStore,
    code_verdict, refresh_verdict,
};
use latchkey_core::token::{CodeRecord, FamilyId, NewTokens, TokenRecord};

/// One row of `tokens` in an `INSERT`.
macro_rules! token_row {
    () => {
        "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    };
}

/// Inserts every record of an issuance with one statement: stored all or nothing without a
/// transaction.
async fn insert_tokens<D: Dialect>(
    conn: &mut Conn<D>,
    tokens: &NewTokens,
) -> Result<(), StoreError> {
    let mut args = Vec::with_capacity(32);
    for record in tokens.records() {
        args.extend(rows::token_args(record)?);
    }
    let sql = match &tokens.refresh {
        None => concat!(
            "INSERT INTO tokens (",
            token_columns!(),
            ") VALUES ",
            token_row!()
        ),
        Some(_) => concat!(
            "INSERT INTO tokens (",
            token_columns!(),
            ") VALUES ",
            token_row!(),
            ", ",
            token_row!()
        ),
    };
    execute::<D>(conn, sql, &args).await?;
    Ok(())
}

impl<D: Dialect> TokenStore for SqlxStore<D> {
    async fn save_tokens(&self, tokens: &NewTokens, now: UnixTime) -> Result<(), StoreError> {
        insert_tokens::<D>(&mut *self.conn().await?, tokens).await?;
        self.sweep("tokens", now).await;
        Ok(())
    }

    async fn find_token(&self, digest: &Digest) -> Result<Option<TokenRecord>, StoreError> {
        let sql = concat!("SELECT ", token_columns!(), " FROM tokens WHERE digest = ?");
        let row = self.fetch_optional(sql, &args![digest]).await?;
        row.as_ref().map(rows::token).transpose()
    }

    async fn rotate_refresh(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> Result<Rotation, StoreError> {
        let rotation = self.rotate(old, new, now).await?;
        self.sweep("tokens", now).await;
        Ok(rotation)
    }

    async fn revoke_family(&self, family: &FamilyId) -> Result<u64, StoreError> {
        revoke_family::<D>(&mut *self.conn().await?, family).await
    }

    async fn revoke_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        // sqlx asks MySQL for CLIENT_FOUND_ROWS: a token already revoked still counts as found.
        let revoked = self
            .execute(
                "UPDATE tokens SET revoked = TRUE WHERE digest = ?",
                &args![digest],
            )
            .await?;
        Ok(revoked > 0)
    }

    async fn delete_tokens_of(&self, owner: &TokenOwner) -> Result<u64, StoreError> {
        let ([tokens, codes], value) = rows::owner_deletes(owner);
        let mut tx = self.begin().await?;
        let deleted = execute::<D>(&mut tx, tokens, &args![value]).await?;
        execute::<D>(&mut tx, codes, &args![value]).await?;
        commit::<D>(tx).await?;
        Ok(deleted)
    }

    async fn revoke_tokens_of_grant(
        &self,
        client_id: &str,
        subject: &str,
    ) -> Result<u64, StoreError> {
        let mut tx = self.begin().await?;
        let revoked = execute::<D>(
            &mut tx,
            "UPDATE tokens SET revoked = TRUE
             WHERE client_id = ? AND subject = ? AND NOT revoked",
            &args![client_id, subject],
        )
        .await?;
        execute::<D>(
            &mut tx,
            "DELETE FROM codes WHERE client_id = ? AND subject = ?",
            &args![client_id, subject],
        )
        .await?;
        commit::<D>(tx).await?;
        Ok(revoked)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.execute("SELECT 1", &[]).await?;
        Ok(())
    }
}

/// Revokes every token of `family` that is not revoked yet; how many there were.
async fn revoke_family<D: Dialect>(
    conn: &mut Conn<D>,
    family: &FamilyId,
) -> Result<u64, StoreError> {
    execute::<D>(
        conn,
        "UPDATE tokens SET revoked = TRUE WHERE family = ? AND NOT revoked",
        &args![&family.0],
    )
    .await
}

impl<D: Dialect> CodeStore for SqlxStore<D> {
    async fn save_code(&self, code: &CodeRecord, now: UnixTime) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO codes (",
            code_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        self.execute(sql, &rows::code_args(code)?).await?;
        self.sweep("codes", now).await;
        Ok(())
    }

    async fn take_code(
        &self,
        digest: &Digest,
        client_id: &ClientId,
        now: UnixTime,
    ) -> Result<CodeTake, StoreError> {
        let mut tx = self.begin().await?;
        let sql = concat!(
            "SELECT ",
            code_columns!(),
            ", used FROM codes WHERE digest = ? FOR UPDATE"
        );
        let Some(row) = fetch_optional::<D>(&mut tx, sql, &args![digest]).await? else {
            rollback::<D>(tx).await?;
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
                let sql = "UPDATE codes SET used = TRUE WHERE digest = ?";
                execute::<D>(&mut tx, sql, &args![digest]).await?;
                commit::<D>(tx).await?;
                return Ok(CodeTake::Taken(code));
            }
        };
        rollback::<D>(tx).await?;
        Ok(take)
    }
}

impl<D: Dialect> SqlxStore<D> {
    /// Rotation and reuse detection in one transaction (RFC 9700 §4.14.2). The old token's row
    /// stays locked until commit, so concurrent rotations of it run one after another, and each
    /// later one sees it rotated.
    async fn rotate(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.begin().await?;
        let sql = "SELECT kind, revoked, rotated, expires_at, family FROM tokens
                   WHERE digest = ? FOR UPDATE";
        let Some(row) = fetch_optional::<D>(&mut tx, sql, &args![old]).await? else {
            rollback::<D>(tx).await?;
            return Ok(Rotation::Invalid);
        };
        let verdict = refresh_verdict(
            rows::token_kind(&row.text("kind")?)?,
            row.flag("revoked")?,
            row.flag("rotated")?,
            UnixTime(row.int("expires_at")?),
            now,
        );
        let rotation = match verdict {
            RefreshVerdict::Refuse => {
                rollback::<D>(tx).await?;
                return Ok(Rotation::Invalid);
            }
            // A refresh token presented twice means one copy was stolen; revoke everything
            // descended from the same grant, in the same transaction.
            RefreshVerdict::Reuse => {
                let family = FamilyId(row.text("family")?);
                revoke_family::<D>(&mut tx, &family).await?;
                Rotation::Reused { family }
            }
            RefreshVerdict::Rotate => {
                let sql = "UPDATE tokens SET rotated = TRUE WHERE digest = ?";
                execute::<D>(&mut tx, sql, &args![old]).await?;
                insert_tokens::<D>(&mut tx, new).await?;
                Rotation::Rotated
            }
        };
        commit::<D>(tx).await?;
        Ok(rotation)
    }
}
