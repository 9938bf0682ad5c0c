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
    Delete(Digest, Reply<Option<SessionRecord>>),
    DeleteOf(String, Reply<Vec<SessionRecord>>),
    AddClient(String, String, Reply<()>),
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
            Self::AddClient(_, _, reply) => reply,
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
                    ") VALUES (?, ?, ?, ?, ?, ?, ?)"
                ),
                params_from_iter(rows::session_args(s)),
            )?;
            reply.set(Ok(()))
        }
        Write::Delete(digest, reply) => {
            let sql = concat!(
                "DELETE FROM sessions WHERE digest = ? RETURNING ",
                rows::session_columns!()
            );
            let ended = all_rows(conn, sql, [digest.as_bytes().as_slice()])?;
            reply.set(ended.map(|mut all| all.pop()))
        }
        Write::DeleteOf(subject, reply) => {
            let sql = concat!(
                "DELETE FROM sessions WHERE subject = ? RETURNING ",
                rows::session_columns!()
            );
            let ended = all_rows(conn, sql, [&*subject])?;
            reply.set(ended)
        }
        Write::AddClient(sid, client_id, reply) => {
            let clients = first(
                conn,
                "SELECT clients FROM sessions WHERE sid = ?",
                [&*sid],
                |row| row.get::<_, Option<String>>(0),
            )?
            .transpose()?;
            let Some(clients) = clients else {
                return reply.set(Ok(()));
            };
            let next = rows::session_clients(clients)
                .map(|clients| latchkey_core::session::add_client(&clients, client_id));
            match next {
                Ok(Some(next)) => {
                    change(
                        conn,
                        "UPDATE sessions SET clients = ? WHERE sid = ?",
                        rusqlite::params![rows::session_clients_text(&next), &*sid],
                    )?;
                    reply.set(Ok(()))
                }
                Ok(None) => reply.set(Ok(())),
                Err(err) => reply.set(Err(err)),
            }
        }
    }
}

/// Runs a statement that returns session rows (`… RETURNING` the session columns) and decodes
/// them; a row that does not decode is the answer's error, not the transaction's.
fn all_rows(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Result<Vec<SessionRecord>, StoreError>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut found = statement.query(params)?;
    let mut out = Vec::new();
    while let Some(row) = found.next()? {
        match rows::session(row) {
            Ok(session) => out.push(session),
            Err(err) => return Ok(Err(err)),
        }
    }
    Ok(Ok(out))
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

    async fn delete_session(&self, digest: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        self.write(|reply| Op::Session(Write::Delete(*digest, reply)))
            .await
    }

    async fn delete_sessions_of(&self, subject: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.write(|reply| Op::Session(Write::DeleteOf(subject.to_owned(), reply)))
            .await
    }

    async fn add_session_client(&self, sid: &str, client_id: &str) -> Result<(), StoreError> {
        self.write(|reply| {
            Op::Session(Write::AddClient(
                sid.to_owned(),
                client_id.to_owned(),
                reply,
            ))
        })
        .await
    }
}
