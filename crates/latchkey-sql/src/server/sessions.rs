//! Login sessions on a database server ([`SessionStore`] for [`SqlxStore`]). Each operation is
//! one statement; saving a session then sweeps expired ones (see [`SqlxStore::sweep`]).

use super::SqlxStore;
use super::dialect::Dialect;
use crate::rows::{self, args, session_columns};
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::session::SessionRecord;
use latchkey_core::store::{SessionStore, StoreError};

impl<D: Dialect> SessionStore for SqlxStore<D> {
    async fn save_session(&self, s: &SessionRecord, now: UnixTime) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO sessions (",
            session_columns!(),
            ") VALUES (?, ?, ?, ?, ?)"
        );
        self.execute(sql, &rows::session_args(s)).await?;
        self.sweep("sessions", now).await;
        Ok(())
    }

    async fn load_session(&self, digest: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        let sql = concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE digest = ?"
        );
        let row = self.fetch_optional(sql, &args![digest]).await?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn delete_session(&self, digest: &Digest) -> Result<bool, StoreError> {
        let sql = "DELETE FROM sessions WHERE digest = ?";
        Ok(self.execute(sql, &args![digest]).await? > 0)
    }

    async fn delete_sessions_of(&self, subject: &str) -> Result<u64, StoreError> {
        let sql = "DELETE FROM sessions WHERE subject = ?";
        self.execute(sql, &args![subject]).await
    }
}
