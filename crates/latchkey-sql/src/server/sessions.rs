//! Login sessions on a database server ([`SessionStore`] for [`SqlxStore`]). Saving a session
//! then sweeps expired ones (see [`SqlxStore::sweep`]). Ending sessions reads the rows it
//! deletes in the same transaction (`SELECT … FOR UPDATE`, then `DELETE`), so the clients to
//! notify are exactly those recorded before the end; recording a client locks the row the
//! same way, so two clients recorded at once are both kept.

use super::dialect::Dialect;
use super::{SqlxStore, commit, execute, fetch_optional};
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
            ") VALUES (?, ?, ?, ?, ?, ?, ?)"
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

    async fn delete_session(&self, digest: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        let select = concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE digest = ? FOR UPDATE"
        );
        let mut tx = self.begin().await?;
        let row = fetch_optional::<D>(&mut tx, select, &args![digest]).await?;
        if row.is_some() {
            execute::<D>(
                &mut tx,
                "DELETE FROM sessions WHERE digest = ?",
                &args![digest],
            )
            .await?;
        }
        commit::<D>(tx).await?;
        row.as_ref().map(rows::session).transpose()
    }

    async fn delete_sessions_of(&self, subject: &str) -> Result<Vec<SessionRecord>, StoreError> {
        let select = concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE subject = ? FOR UPDATE"
        );
        let mut tx = self.begin().await?;
        let found = D::fetch_all(
            &mut *tx,
            super::dialect::statement::<D>(select),
            &args![subject],
        )
        .await
        .map_err(super::dialect::from_sqlx::<D>)?;
        if !found.is_empty() {
            execute::<D>(
                &mut tx,
                "DELETE FROM sessions WHERE subject = ?",
                &args![subject],
            )
            .await?;
        }
        commit::<D>(tx).await?;
        found
            .iter()
            .map(rows::session)
            .collect::<Result<Vec<_>, _>>()
            // MySQL's PAD SPACE: "alice " matched "alice".
            .map(|all| all.into_iter().filter(|s| s.subject == subject).collect())
    }

    async fn add_session_client(&self, sid: &str, client_id: &str) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let row = fetch_optional::<D>(
            &mut tx,
            "SELECT clients FROM sessions WHERE sid = ? FOR UPDATE",
            &args![sid],
        )
        .await?;
        let Some(row) = row else {
            return commit::<D>(tx).await;
        };
        let clients = rows::session_clients(rows::Columns::opt_text(&row, "clients")?)?;
        if let Some(next) = latchkey_core::session::add_client(&clients, client_id) {
            execute::<D>(
                &mut tx,
                "UPDATE sessions SET clients = ? WHERE sid = ?",
                &args![rows::session_clients_text(&next), sid],
            )
            .await?;
        }
        commit::<D>(tx).await
    }
}
