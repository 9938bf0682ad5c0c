//! Login sessions on PostgreSQL ([`SessionStore`] for [`PgStore`]). Each operation is one
//! statement; saving a session then sweeps up to [`SWEEP_LIMIT`] expired ones, skipping rows
//! another node is already deleting.

use super::PgStore;
use crate::error::from_sqlx;
use crate::pool::{self, SWEEP_LIMIT};
use crate::rows;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::session::SessionRecord;
use latchkey_core::store::{SessionStore, StoreError};

impl SessionStore for PgStore {
    async fn save_session(&self, s: &SessionRecord, now: UnixTime) -> Result<(), StoreError> {
        sqlx::query(concat!(
            "INSERT INTO sessions (",
            rows::session_columns!(),
            ") VALUES ($1, $2, $3, $4, $5)"
        ))
        .bind(s.digest.as_bytes().as_slice())
        .bind(&s.subject)
        .bind(&s.username)
        .bind(s.auth_time.0)
        .bind(s.expires_at.0)
        .execute(&self.pool)
        .await
        .map_err(from_sqlx)?;
        let outcome = sqlx::query(
            "DELETE FROM sessions WHERE digest IN (
                 SELECT digest FROM sessions WHERE expires_at <= $1
                 ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
        )
        .bind(now.0)
        .bind(SWEEP_LIMIT)
        .execute(&self.pool)
        .await;
        pool::swept("postgres", "sessions", outcome.map(|d| d.rows_affected()));
        Ok(())
    }

    async fn load_session(&self, digest: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            rows::session_columns!(),
            " FROM sessions WHERE digest = $1"
        ))
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(&self.pool)
        .await
        .map_err(from_sqlx)?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn delete_session(&self, digest: &Digest) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE digest = $1")
            .bind(digest.as_bytes().as_slice())
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_sessions_of(&self, subject: &str) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM sessions WHERE subject = $1")
            .bind(subject)
            .execute(&self.pool)
            .await
            .map_err(from_sqlx)?;
        Ok(done.rows_affected())
    }
}
