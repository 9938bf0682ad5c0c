//! Login sessions on SQLite ([`SessionStore`] for [`SqliteStore`]): reads run inline on the
//! read pool, writes go through the group-commit writer like every other write, and each
//! batch that carries a `now` sweeps expired sessions.

use super::writer::{Answer, Op, Reply, change, sweep_limit};
use super::{SqliteStore, first};
use crate::error::from_rusqlite;
use crate::rows;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::session::SessionRecord;
use latchkey_core::store::{SessionStore, StoreError};
use rusqlite::{Connection, params_from_iter};

/// A write of the session store, run by the writer inside a batch, with its reply.
#[derive(Debug)]
pub(crate) enum Write {
    Save(SessionRecord, UnixTime, Reply<()>),
    Delete(Digest, Reply<bool>),
    DeleteOf(String, Reply<u64>),
}

impl Write {
    /// The caller's `now`, which lets the batch sweep expired rows.
    pub(crate) fn now(&self) -> Option<UnixTime> {
        match self {
            Self::Save(_, now, _) => Some(*now),
            _ => None,
        }
    }

    /// The write's reply.
    pub(crate) fn answer(&mut self) -> &mut dyn Answer {
        match self {
            Self::Save(_, _, reply) => reply,
            Self::Delete(_, reply) => reply,
            Self::DeleteOf(_, reply) => reply,
        }
    }
}

/// Runs one write inside the writer's transaction and records its answer.
pub(crate) fn apply(conn: &Connection, write: &mut Write) -> rusqlite::Result<()> {
    match write {
        Write::Save(s, _, reply) => {
            change(
                conn,
                concat!(
                    "INSERT INTO sessions (",
                    rows::session_columns!(),
                    ") VALUES (?, ?, ?, ?, ?)"
                ),
                params_from_iter(rows::session_args(s)),
            )?;
            reply.set(Ok(()))
        }
        Write::Delete(digest, reply) => {
            let deleted = change(
                conn,
                "DELETE FROM sessions WHERE digest = ?",
                [digest.as_bytes().as_slice()],
            )?;
            reply.set(Ok(deleted > 0))
        }
        Write::DeleteOf(subject, reply) => {
            let deleted = change(conn, "DELETE FROM sessions WHERE subject = ?", [&*subject])?;
            reply.set(Ok(u64::try_from(deleted).unwrap_or(u64::MAX)))
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

impl SessionStore for SqliteStore {
    async fn save_session(&self, session: &SessionRecord, now: UnixTime) -> Result<(), StoreError> {
        self.write(|reply| Op::Session(Write::Save(session.clone(), now, reply)))
            .await
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
        self.write(|reply| Op::Session(Write::Delete(*digest, reply)))
            .await
    }

    async fn delete_sessions_of(&self, subject: &str) -> Result<u64, StoreError> {
        self.write(|reply| Op::Session(Write::DeleteOf(subject.to_owned(), reply)))
            .await
    }
}
