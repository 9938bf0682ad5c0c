//! The single SQLite writer: group commit.
//!
//! Every write of a [`super::SqliteStore`] becomes an [`Op`] sent down one channel to one OS
//! thread (`latchkey-sqlite-writer`) that owns the only writing rusqlite connection. The thread
//! takes the first op, drains whatever else is already queued (up to [`MAX_BATCH`]), runs them
//! all in one `BEGIN IMMEDIATE` transaction, commits, and only then answers each op: a token is
//! acknowledged once it is durable, and one fsync pays for the whole batch.
//!
//! The thread calls SQLite directly, with a prepared statement cached per SQL text, so an
//! `INSERT` in a batch costs microseconds; the fsync at `COMMIT` blocks this thread only, never
//! a tokio worker, and the callers wait on their reply channel meanwhile.
//!
//! The ops are the writes of the store traits: clients and users (put, delete; deleting one
//! also deletes its tokens, codes and consent), tokens (save, rotate, revoke one or a family),
//! authorization codes (save, take) and consent (put, revoke). Because one thread runs every
//! write in order, multi-step operations such as `rotate_refresh` (read, check, mark, insert)
//! and `take_code` (read, check, mark used) are atomic without any lock of ours; the SQLite
//! write lock keeps other processes (the CLI) out for the length of a batch.
//!
//! Each op carries its own typed reply channel ([`Reply`]); its answer is computed inside the
//! batch, kept beside the channel, and sent only once the batch committed. A logical refusal
//! (a user name taken) writes nothing and does not disturb the batch. If a statement fails,
//! the batch is rolled back and each op is re-run in its own transaction, so one bad op fails
//! alone. If the transaction itself cannot begin or commit, every op of the batch gets that
//! error.
//!
//! Expiry lives here too: each batch that carries a `now` deletes up to [`sweep_limit!`] tokens
//! and up to [`sweep_limit!`] codes that expired by the largest `now` of the batch, so the tables
//! stay flat without a janitor. Used codes are kept until then, so a replay is recognised.

use super::first;
use crate::error::{from_rusqlite, kind_of_rusqlite};
use crate::rows::{self, ClientRow, Columns};
use latchkey_core::client::ClientId;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::{
    CodeTake, CodeVerdict, RefreshVerdict, Rotation, StoreError, StoreErrorKind, TokenOwner,
    code_verdict, refresh_verdict,
};
use latchkey_core::token::{CodeRecord, FamilyId, NewTokens, TokenRecord};
use latchkey_core::user::User;
use rusqlite::{Connection, params, params_from_iter};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// The most ops committed together; bounds the time one batch holds the write lock.
pub(crate) const MAX_BATCH: usize = 512;

/// The most expired rows of each table one batch deletes, so a backlog never stalls a batch.
///
/// A literal, `concat!`ed into the SQL rather than bound: SQLite folds a bound `LIMIT ?` into
/// the plan and so re-prepares the statement at every new binding, which cost a full parse
/// and code generation of each sweep statement at every batch.
macro_rules! sweep_limit {
    () => {
        1000
    };
}
pub(crate) use sweep_limit;

/// The channel one write's answer goes back on, typed by what the store trait returns, and
/// the answer once the writer computed it. The answer is sent only once its batch committed.
#[derive(Debug)]
pub(crate) struct Reply<T> {
    to: Option<oneshot::Sender<Result<T, StoreError>>>,
    answer: Option<Result<T, StoreError>>,
}

impl<T> Reply<T> {
    /// A reply, and the receiver its caller awaits.
    pub(crate) fn channel() -> (Self, oneshot::Receiver<Result<T, StoreError>>) {
        let (to, answer) = oneshot::channel();
        (
            Self {
                to: Some(to),
                answer: None,
            },
            answer,
        )
    }

    /// Records the answer computed inside the current transaction (replacing one computed in
    /// a batch that was rolled back). Always `Ok`: the shape every op's `apply` ends with.
    pub(crate) fn set(&mut self, answer: Result<T, StoreError>) -> rusqlite::Result<()> {
        self.answer = Some(answer);
        Ok(())
    }
}

/// What the writer does with a reply once its transaction is decided; the one place a reply
/// is handled without its type.
pub(crate) trait Answer {
    /// The transaction committed: sends the recorded answer.
    fn send(&mut self);
    /// The transaction failed: sends `err` instead.
    fn fail(&mut self, err: StoreError);
}

impl<T> Answer for Reply<T> {
    fn send(&mut self) {
        let answer = self.answer.take().unwrap_or_else(|| {
            Err(StoreError::new(
                StoreErrorKind::Other,
                "the SQLite writer committed an op without answering it",
            ))
        });
        if let Some(to) = self.to.take() {
            // The caller may have gone away; its write is durable all the same.
            let _ = to.send(answer);
        }
    }

    fn fail(&mut self, err: StoreError) {
        if let Some(to) = self.to.take() {
            let _ = to.send(Err(err));
        }
    }
}

/// One write, as the store traits describe it, with the reply its caller waits for.
#[derive(Debug)]
pub(crate) enum Op {
    PutClient(ClientRow, Reply<()>),
    DeleteClient(String, Reply<bool>),
    PutUser(User, Reply<()>),
    DeleteUser(String, Reply<bool>),
    DeleteTokensOf(TokenOwner, Reply<u64>),
    SaveTokens(NewTokens, UnixTime, Reply<()>),
    RotateRefresh {
        old: Digest,
        new: NewTokens,
        now: UnixTime,
        reply: Reply<Rotation>,
    },
    RevokeFamily(FamilyId, Reply<u64>),
    RevokeToken(Digest, Reply<bool>),
    SaveCode(CodeRecord, UnixTime, Reply<()>),
    TakeCode(Digest, ClientId, UnixTime, Reply<CodeTake>),
    PutConsent {
        subject: String,
        client_id: String,
        /// The scope, already in its stored (space-separated) form.
        scope: String,
        now: UnixTime,
        reply: Reply<()>,
    },
    RevokeConsent {
        subject: String,
        client_id: String,
        reply: Reply<bool>,
    },
    /// Revokes the tokens issued to a client for a subject and deletes their unused codes.
    RevokeGrant {
        client_id: String,
        subject: String,
        reply: Reply<u64>,
    },
    /// A write of the OAuth 1.0a store (see `super::oauth1`).
    OAuth1(super::oauth1::Write),
    /// A write of the login-session store (see `super::sessions`).
    Session(super::sessions::Write),
    /// A key for the replay cache or an OAuth 1.0a nonce (see `super::replay`).
    Remember(super::replay::Remember),
    /// A guarded write of the signing keys (see `super::keys`).
    Keys(super::keys::Write),
    /// A write of the pending-request store (see `super::pending`).
    Pending(super::pending::Write),
    /// A write of dynamic registration's records (see `super::registration`).
    Registration(super::registration::Write),
    /// A write of the run-time resource registry (see `super::resources`).
    Resource(super::resources::Write),
}

impl Op {
    /// The caller's `now`, for ops that carry one: the sweep of a batch uses the largest.
    fn now(&self) -> Option<UnixTime> {
        match self {
            Self::SaveTokens(_, now, _)
            | Self::RotateRefresh { now, .. }
            | Self::SaveCode(_, now, _)
            | Self::TakeCode(_, _, now, _)
            | Self::PutConsent { now, .. } => Some(*now),
            Self::OAuth1(write) => write.now(),
            Self::Session(write) => write.now(),
            Self::Remember(write) => Some(write.now),
            Self::Pending(write) => Some(write.now()),
            _ => None,
        }
    }

    /// The op's reply, to send or fail once its transaction is decided.
    fn answer(&mut self) -> &mut dyn Answer {
        match self {
            Self::PutClient(_, reply)
            | Self::PutUser(_, reply)
            | Self::SaveTokens(_, _, reply)
            | Self::SaveCode(_, _, reply)
            | Self::PutConsent { reply, .. } => reply,
            Self::DeleteClient(_, reply)
            | Self::DeleteUser(_, reply)
            | Self::RevokeToken(_, reply)
            | Self::RevokeConsent { reply, .. } => reply,
            Self::DeleteTokensOf(_, reply)
            | Self::RevokeFamily(_, reply)
            | Self::RevokeGrant { reply, .. } => reply,
            Self::RotateRefresh { reply, .. } => reply,
            Self::TakeCode(_, _, _, reply) => reply,
            Self::OAuth1(write) => write.answer(),
            Self::Session(write) => write.answer(),
            Self::Remember(write) => &mut write.reply,
            Self::Keys(write) => write.answer(),
            Self::Pending(write) => write.answer(),
            Self::Registration(write) => write.answer(),
            Self::Resource(write) => write.answer(),
        }
    }
}

/// What the store sends the writer.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A write to run (boxed: a queued shutdown need not take a write's room).
    Job(Box<Op>),
    /// Stop accepting writes, finish what is queued, close the connection.
    Shutdown,
}

/// Commit counters, shared with the store for [`super::WriterStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) batches: AtomicU64,
    pub(crate) ops: AtomicU64,
}

impl Counters {
    fn committed(&self, ops: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.ops
            .fetch_add(u64::try_from(ops).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

/// The writer thread's loop: runs until every sender is gone or a [`Msg::Shutdown`] arrives
/// and the queue is drained, then closes the connection. Blocks its thread: run it on a
/// dedicated one, never on a tokio worker.
pub(crate) fn run(conn: Connection, mut inbox: mpsc::Receiver<Msg>, counters: &Counters) {
    while let Some(first) = inbox.blocking_recv() {
        let mut jobs = Vec::new();
        let mut next = Some(first);
        while let Some(msg) = next {
            match msg {
                Msg::Job(op) => jobs.push(*op),
                // Refuse new sends; what is already queued is still received and run.
                Msg::Shutdown => inbox.close(),
            }
            next = if jobs.len() < MAX_BATCH {
                inbox.try_recv().ok()
            } else {
                None
            };
        }
        if !jobs.is_empty() {
            run_batch(&conn, jobs, counters);
        }
    }
    if let Err((_, err)) = conn.close() {
        tracing::warn!(error = %err, "closing the SQLite writer connection failed");
    }
}

/// Why a batch did not commit.
enum BatchError {
    /// `BEGIN` or `COMMIT` failed: the database is unusable right now, for every op alike.
    Transaction(rusqlite::Error),
    /// One statement failed; the batch was rolled back.
    Statement(rusqlite::Error),
}

fn run_batch(conn: &Connection, mut ops: Vec<Op>, counters: &Counters) {
    let sweep_at = ops.iter().filter_map(|op| op.now()).max();
    match attempt(conn, &mut ops, sweep_at) {
        Ok(()) => {
            counters.committed(ops.len());
            for op in &mut ops {
                op.answer().send();
            }
        }
        Err(BatchError::Transaction(err)) => {
            tracing::warn!(error = %err, ops = ops.len(), "SQLite write batch failed");
            let err = StoreError::new(kind_of_rusqlite(&err), err);
            for op in &mut ops {
                op.answer().fail(err.clone());
            }
        }
        Err(BatchError::Statement(err)) => {
            tracing::debug!(error = %err, ops = ops.len(), "SQLite batch rolled back; retrying each op alone");
            for op in &mut ops {
                alone(conn, op, counters);
            }
        }
    }
}

/// Runs all `ops` (and the sweep) in one transaction; their answers stand only if it returns
/// `Ok`, that is, once committed.
fn attempt(
    conn: &Connection,
    ops: &mut [Op],
    sweep_at: Option<UnixTime>,
) -> Result<(), BatchError> {
    execute(conn, "BEGIN IMMEDIATE").map_err(BatchError::Transaction)?;
    for op in ops {
        if let Err(err) = apply(conn, op) {
            rollback(conn);
            return Err(BatchError::Statement(err));
        }
    }
    if let Some(now) = sweep_at
        && let Err(err) = sweep(conn, now)
    {
        rollback(conn);
        return Err(BatchError::Statement(err));
    }
    if let Err(err) = execute(conn, "COMMIT") {
        rollback(conn);
        return Err(BatchError::Transaction(err));
    }
    Ok(())
}

/// Runs one op in its own transaction, after its batch failed, and answers it; a SQL error is
/// its own answer.
fn alone(conn: &Connection, op: &mut Op, counters: &Counters) {
    let outcome = execute(conn, "BEGIN IMMEDIATE").and_then(|()| {
        apply(conn, op)?;
        execute(conn, "COMMIT")
    });
    match outcome {
        Ok(()) => {
            counters.committed(1);
            op.answer().send();
        }
        Err(err) => {
            rollback(conn);
            tracing::debug!(error = %err, "SQLite write failed");
            op.answer().fail(from_rusqlite(err));
        }
    }
}

/// Runs one statement that takes no parameters (`BEGIN`, `COMMIT`, `ROLLBACK`).
fn execute(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    change(conn, sql, []).map(drop)
}

/// Ends the open transaction, if SQLite has not already ended it (it rolls back by itself
/// after some failures, such as a full disk).
fn rollback(conn: &Connection) {
    if !conn.is_autocommit()
        && let Err(err) = execute(conn, "ROLLBACK")
    {
        tracing::warn!(error = %err, "rolling back a SQLite write batch failed");
    }
}

/// Deletes up to [`sweep_limit!`] tokens and up to [`sweep_limit!`] codes that expired by
/// `now`, through the expiry indexes.
fn sweep(conn: &Connection, now: UnixTime) -> rusqlite::Result<()> {
    let tokens = change(
        conn,
        concat!(
            "DELETE FROM tokens WHERE rowid IN
                 (SELECT rowid FROM tokens WHERE expires_at <= ? LIMIT ",
            sweep_limit!(),
            ")"
        ),
        [now.0],
    )?;
    let codes = change(
        conn,
        concat!(
            "DELETE FROM codes WHERE rowid IN
                 (SELECT rowid FROM codes WHERE expires_at <= ? LIMIT ",
            sweep_limit!(),
            ")"
        ),
        [now.0],
    )?;
    super::oauth1::sweep(conn, now)?;
    super::sessions::sweep(conn, now)?;
    super::replay::sweep(conn, now)?;
    super::pending::sweep(conn, now)?;
    if tokens > 0 || codes > 0 {
        tracing::debug!(tokens, codes, "swept expired tokens and codes from SQLite");
    }
    Ok(())
}

/// Runs one statement with a cached prepared statement; the number of rows it changed.
pub(crate) fn change(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// A count of changed rows as the store traits report it.
fn count(rows: usize) -> u64 {
    u64::try_from(rows).unwrap_or(u64::MAX)
}

/// Runs one op inside the current transaction and records its answer. An `Err` is a SQL
/// failure (the batch must roll back); a refusal that wrote nothing is an answer.
fn apply(conn: &Connection, op: &mut Op) -> rusqlite::Result<()> {
    match op {
        Op::OAuth1(write) => super::oauth1::apply(conn, write),
        Op::Session(write) => super::sessions::apply(conn, write),
        Op::Remember(write) => super::replay::apply(conn, write),
        Op::Keys(write) => super::keys::apply(conn, write),
        Op::Pending(write) => super::pending::apply(conn, write),
        Op::Registration(write) => super::registration::apply(conn, write),
        Op::Resource(write) => super::resources::apply(conn, write),
        Op::PutClient(row, reply) => {
            put_client(conn, row)?;
            reply.set(Ok(()))
        }
        Op::DeleteClient(id, reply) => {
            for sql in rows::CLIENT_DEPENDENTS {
                change(conn, sql, [&*id])?;
            }
            let deleted = change(conn, "DELETE FROM clients WHERE id = ?", [&*id])?;
            reply.set(Ok(deleted > 0))
        }
        Op::PutUser(user, reply) => reply.set(put_user(conn, user)?),
        Op::DeleteUser(username, reply) => {
            let id = first(
                conn,
                "SELECT id FROM users WHERE username = ?",
                [&*username],
                |row| row.get::<_, String>(0),
            )?
            .transpose()?;
            let Some(id) = id else {
                return reply.set(Ok(false));
            };
            for sql in rows::USER_DEPENDENTS {
                change(conn, sql, [&id])?;
            }
            change(conn, "DELETE FROM users WHERE id = ?", [&id])?;
            reply.set(Ok(true))
        }
        Op::DeleteTokensOf(owner, reply) => {
            let ([tokens, codes], value) = rows::owner_deletes(owner);
            let deleted = change(conn, tokens, [value])?;
            change(conn, codes, [value])?;
            reply.set(Ok(count(deleted)))
        }
        Op::SaveTokens(tokens, _, reply) => {
            for record in tokens.records() {
                insert_token(conn, record)?;
            }
            reply.set(Ok(()))
        }
        Op::RotateRefresh {
            old,
            new,
            now,
            reply,
        } => reply.set(rotate_refresh(conn, old, new, *now)?),
        Op::RevokeFamily(family, reply) => {
            let revoked = revoke_family(conn, family)?;
            reply.set(Ok(count(revoked)))
        }
        Op::RevokeGrant {
            client_id,
            subject,
            reply,
        } => {
            let revoked = change(
                conn,
                "UPDATE tokens SET revoked = 1
                 WHERE client_id = ? AND subject = ? AND revoked = 0",
                [&*client_id, &*subject],
            )?;
            change(
                conn,
                "DELETE FROM codes WHERE client_id = ? AND subject = ?",
                [&*client_id, &*subject],
            )?;
            reply.set(Ok(count(revoked)))
        }
        Op::RevokeToken(digest, reply) => {
            let revoked = change(
                conn,
                "UPDATE tokens SET revoked = 1 WHERE digest = ?",
                [digest.as_bytes().as_slice()],
            )?;
            reply.set(Ok(revoked > 0))
        }
        Op::SaveCode(code, _, reply) => {
            insert_code(conn, code)?;
            reply.set(Ok(()))
        }
        Op::TakeCode(digest, client_id, now, reply) => {
            reply.set(take_code(conn, digest, client_id, *now)?)
        }
        Op::PutConsent {
            subject,
            client_id,
            scope,
            now,
            reply,
        } => {
            change(
                conn,
                "INSERT INTO consents (subject, client_id, scope, granted_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (subject, client_id) DO UPDATE SET
                     scope = excluded.scope,
                     granted_at = excluded.granted_at",
                params![&*subject, &*client_id, &*scope, now.0],
            )?;
            reply.set(Ok(()))
        }
        Op::RevokeConsent {
            subject,
            client_id,
            reply,
        } => {
            let deleted = change(
                conn,
                "DELETE FROM consents WHERE subject = ? AND client_id = ?",
                [&*subject, &*client_id],
            )?;
            reply.set(Ok(deleted > 0))
        }
    }
}

/// Revokes every token of `family` that is not revoked yet; how many there were.
fn revoke_family(conn: &Connection, family: &FamilyId) -> rusqlite::Result<usize> {
    change(
        conn,
        "UPDATE tokens SET revoked = 1 WHERE family = ? AND revoked = 0",
        [&family.0],
    )
}

fn put_client(conn: &Connection, row: &ClientRow) -> rusqlite::Result<()> {
    change(
        conn,
        concat!(
            "INSERT INTO clients (",
            rows::client_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET
                 bind_tokens = excluded.bind_tokens,
                 ext = excluded.ext,
                 token_endpoint_auth_method = excluded.token_endpoint_auth_method,
                 introspect = excluded.introspect,
                 name = excluded.name,
                 secret_digest = excluded.secret_digest,
                 redirect_uris = excluded.redirect_uris,
                 grant_types = excluded.grant_types,
                 scopes = excluded.scopes,
                 default_scopes = excluded.default_scopes,
                 access_token_ttl = excluded.access_token_ttl,
                 refresh_token_ttl = excluded.refresh_token_ttl,
                 created_at = excluded.created_at"
        ),
        params_from_iter(row.args()),
    )?;
    Ok(())
}

fn put_user(conn: &Connection, user: &User) -> rusqlite::Result<Result<(), StoreError>> {
    let owner = first(
        conn,
        "SELECT id FROM users WHERE username = ?",
        [&user.username],
        |row| row.get::<_, String>(0),
    )?
    .transpose()?;
    if owner.is_some_and(|id| id != user.id) {
        return Ok(Err(StoreError::new(
            StoreErrorKind::Conflict,
            "user name already taken",
        )));
    }
    // The same id with a new user name is a rename.
    change(
        conn,
        concat!(
            "INSERT INTO users (",
            rows::user_columns!(),
            ") VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET
                 username = excluded.username,
                 password_hash = excluded.password_hash,
                 created_at = excluded.created_at,
                 claims = excluded.claims"
        ),
        params_from_iter(rows::user_args(user).map_err(unencodable)?),
    )?;
    Ok(Ok(()))
}

/// A record whose values cannot be bound, as the error rusqlite reports for such a value.
fn unencodable(err: StoreError) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(err))
}

fn insert_token(conn: &Connection, record: &TokenRecord) -> rusqlite::Result<()> {
    change(
        conn,
        concat!(
            "INSERT INTO tokens (",
            rows::token_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        params_from_iter(rows::token_args(record).map_err(unencodable)?),
    )?;
    Ok(())
}

/// Rotation and reuse detection in one step (RFC 9700 §4.14.2), decided by the core's
/// [`refresh_verdict`]; atomic because the writer runs one op at a time inside the batch's
/// transaction.
fn rotate_refresh(
    conn: &Connection,
    old: &Digest,
    new: &NewTokens,
    now: UnixTime,
) -> rusqlite::Result<Result<Rotation, StoreError>> {
    let state = first(
        conn,
        "SELECT kind, revoked, rotated, expires_at, family FROM tokens WHERE digest = ?",
        [old.as_bytes().as_slice()],
        |row| -> Result<_, StoreError> {
            let verdict = refresh_verdict(
                rows::token_kind(&row.text("kind")?)?,
                row.flag("revoked")?,
                row.flag("rotated")?,
                UnixTime(row.int("expires_at")?),
                now,
            );
            Ok((verdict, FamilyId(row.text("family")?)))
        },
    )?;
    let (verdict, family) = match state {
        None => return Ok(Ok(Rotation::Invalid)),
        Some(Err(err)) => return Ok(Err(err)),
        Some(Ok(state)) => state,
    };
    Ok(Ok(match verdict {
        RefreshVerdict::Refuse => Rotation::Invalid,
        // A refresh token presented twice means one copy was stolen; revoke everything
        // descended from the same grant.
        RefreshVerdict::Reuse => {
            revoke_family(conn, &family)?;
            Rotation::Reused { family }
        }
        RefreshVerdict::Rotate => {
            change(
                conn,
                "UPDATE tokens SET rotated = 1 WHERE digest = ?",
                [old.as_bytes().as_slice()],
            )?;
            for record in new.records() {
                insert_token(conn, record)?;
            }
            Rotation::Rotated
        }
    }))
}

fn insert_code(conn: &Connection, code: &CodeRecord) -> rusqlite::Result<()> {
    change(
        conn,
        concat!(
            "INSERT INTO codes (",
            rows::code_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        params_from_iter(rows::code_args(code).map_err(unencodable)?),
    )?;
    Ok(())
}

/// Single-use redemption of an authorization code (RFC 6749 §4.1.2); atomic because the
/// writer runs one op at a time inside the batch's transaction. A used code stays (until the
/// sweep forgets it after expiry) so that a second redemption is reported as a replay.
fn take_code(
    conn: &Connection,
    digest: &Digest,
    client_id: &ClientId,
    now: UnixTime,
) -> rusqlite::Result<Result<CodeTake, StoreError>> {
    let found = first(
        conn,
        concat!(
            "SELECT ",
            rows::code_columns!(),
            ", used FROM codes WHERE digest = ?"
        ),
        [digest.as_bytes().as_slice()],
        |row| rows::code(row).and_then(|code| Ok((code, row.flag("used")?))),
    )?;
    let (code, used) = match found {
        None => return Ok(Ok(CodeTake::Invalid)),
        Some(Err(err)) => return Ok(Err(err)),
        Some(Ok(decoded)) => decoded,
    };
    let verdict = code_verdict(
        code.client_id.as_str(),
        code.expires_at,
        used,
        client_id.as_str(),
        now,
    );
    let take = match verdict {
        CodeVerdict::Refuse => CodeTake::Invalid,
        CodeVerdict::Replay => CodeTake::Replayed {
            family: code.family,
        },
        CodeVerdict::Take => {
            change(
                conn,
                "UPDATE codes SET used = 1 WHERE digest = ?",
                [digest.as_bytes().as_slice()],
            )?;
            CodeTake::Taken(code)
        }
    };
    Ok(Ok(take))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_sent_only_when_its_transaction_is_decided() {
        let (mut reply, mut answer) = Reply::<u64>::channel();
        reply.set(Ok(3)).expect("set");
        assert!(
            answer.try_recv().is_err(),
            "nothing is sent before the batch commits"
        );
        reply
            .set(Ok(4))
            .expect("set again, after a rolled-back batch");
        Answer::send(&mut reply);
        assert_eq!(answer.try_recv().expect("sent").expect("answer"), 4);

        let (mut reply, mut answer) = Reply::<bool>::channel();
        reply.set(Ok(true)).expect("set");
        reply.fail(StoreError::new(StoreErrorKind::Unavailable, "disk full"));
        assert_eq!(
            answer.try_recv().expect("sent").expect_err("failed").kind(),
            StoreErrorKind::Unavailable,
            "a failed commit overrides the answer computed inside it"
        );
    }
}
