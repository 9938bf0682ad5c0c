//! Login sessions on SQLite ([`SessionStore`] for [`SqliteStore`]): reads run inline on the
//! read pool, writes go through the group-commit writer like every other write, and each
//! batch that carries a `now` sweeps expired sessions.

use super::writer::{Op, Outcome, Reply, change, sweep_limit};
use super::{SqliteStore, first};
use crate::error::from_rusqlite;
use crate::rows;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::session::SessionRecord;
use latchkey_core::store::{SessionStore, StoreError, StoreErrorKind};
use rusqlite::{Connection, params_from_iter};

/// A write of the session store, run by the writer inside a batch.
#[derive(Debug)]
pub(crate) enum Write {
    Save(SessionRecord, UnixTime),
    Delete(Digest),
    DeleteOf(String),
}

impl Write {
    /// The caller's `now`, which lets the batch sweep expired rows.
    pub(crate) fn now(&self) -> Option<UnixTime> {
        match self {
            Self::Save(_, now) => Some(*now),
            _ => None,
        }
    }
}

/// Runs one write inside the writer's transaction.
pub(crate) fn apply(conn: &Connection, write: &Write) -> rusqlite::Result<Reply> {
    match write {
        Write::Save(s, _) => {
            change(
                conn,
                concat!(
                    "INSERT INTO sessions (",
                    rows::session_columns!(),
                    ") VALUES (?, ?, ?, ?, ?)"
                ),
                params_from_iter(rows::session_args(s)),
            )?;
            Ok(Ok(Outcome::Done))
        }
        Write::Delete(digest) => {
            let deleted = change(
                conn,
                "DELETE FROM sessions WHERE digest = ?",
                [digest.as_bytes().as_slice()],
            )?;
            Ok(Ok(Outcome::Existed(deleted > 0)))
        }
        Write::DeleteOf(subject) => {
            let deleted = change(conn, "DELETE FROM sessions WHERE subject = ?", [subject])?;
            Ok(Ok(Outcome::Count(
                u64::try_from(deleted).unwrap_or(u64::MAX),
            )))
        }
    }
}

/// Deletes up to [`sweep_limit!`] sessions that expired by `now`.
pub(crate) fn sweep(conn: &Connection, now: UnixTime) -> rusqlite::Result<()> {
    change(
        conn,
        concat!(
            "DELETE FROM sessions WHERE rowid IN
                 (SELECT rowid FROM sessions WHERE expires_at <= ? LIMIT ",
            sweep_limit!(),
            ")"
        ),
        [now.0],
    )?;
    Ok(())
}

fn mismatch(outcome: Outcome) -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        format_args!("unexpected SQLite writer outcome {outcome:?}"),
    )
}

impl SessionStore for SqliteStore {
    async fn save_session(&self, session: &SessionRecord, now: UnixTime) -> Result<(), StoreError> {
        match self
            .write(Op::Session(Write::Save(session.clone(), now)))
            .await?
        {
            Outcome::Done => Ok(()),
            other => Err(mismatch(other)),
        }
    }

    async fn load_session(&self, digest: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        self.inner.readers.read(|conn| {
            let sql = concat!(
                "SELECT ",
                rows::session_columns!(),
                " FROM sessions WHERE digest = ?"
            );
            first(conn, sql, [digest.as_bytes().as_slice()], |row| {
                rows::session(row)
            })
            .map_err(from_rusqlite)?
            .transpose()
        })
    }

    async fn delete_session(&self, digest: &Digest) -> Result<bool, StoreError> {
        match self.write(Op::Session(Write::Delete(*digest))).await? {
            Outcome::Existed(existed) => Ok(existed),
            other => Err(mismatch(other)),
        }
    }

    async fn delete_sessions_of(&self, subject: &str) -> Result<u64, StoreError> {
        match self
            .write(Op::Session(Write::DeleteOf(subject.to_owned())))
            .await?
        {
            Outcome::Count(count) => Ok(count),
            other => Err(mismatch(other)),
        }
    }
}
