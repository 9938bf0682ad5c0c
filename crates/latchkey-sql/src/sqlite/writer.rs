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
//! Each op's outcome is computed inside the batch. A logical refusal (a user name taken) writes
//! nothing and does not disturb the batch. If a statement fails, the batch is rolled back and
//! each op is re-run in its own transaction, so one bad op fails alone. If the transaction
//! itself cannot begin or commit, every op of the batch gets that error.
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
    CodeTake, CodeVerdict, Rotation, StoreError, StoreErrorKind, TokenOwner, code_verdict,
};
use latchkey_core::token::{CodeRecord, FamilyId, NewTokens, TokenKind, TokenRecord};
use latchkey_core::user::User;
use rusqlite::{Connection, params};
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

/// One write, as the store traits describe it.
#[derive(Debug)]
pub(crate) enum Op {
    PutClient(ClientRow),
    DeleteClient(String),
    PutUser(User),
    DeleteUser(String),
    DeleteTokensOf(TokenOwner),
    SaveTokens(NewTokens, UnixTime),
    RotateRefresh {
        old: Digest,
        new: NewTokens,
        now: UnixTime,
    },
    RevokeFamily(FamilyId),
    RevokeToken(Digest),
    SaveCode(CodeRecord, UnixTime),
    TakeCode(Digest, ClientId, UnixTime),
    PutConsent {
        subject: String,
        client_id: String,
        /// The scope, already in its stored (space-separated) form.
        scope: String,
        now: UnixTime,
    },
    RevokeConsent {
        subject: String,
        client_id: String,
    },
    /// Revokes the tokens issued to a client for a subject and deletes their unused codes.
    RevokeGrant {
        client_id: String,
        subject: String,
    },
    /// A write of the OAuth 1.0a store (see `super::oauth1`).
    OAuth1(super::oauth1::Write),
    /// A write of the login-session store (see `super::sessions`).
    Session(super::sessions::Write),
}

impl Op {
    /// The caller's `now`, for ops that carry one: the sweep of a batch uses the largest.
    fn now(&self) -> Option<UnixTime> {
        match self {
            Self::SaveTokens(_, now)
            | Self::RotateRefresh { now, .. }
            | Self::SaveCode(_, now)
            | Self::TakeCode(_, _, now)
            | Self::PutConsent { now, .. } => Some(*now),
            Self::OAuth1(write) => write.now(),
            Self::Session(write) => write.now(),
            _ => None,
        }
    }
}

/// What a committed op answers.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The op had nothing to report beyond success.
    Done,
    /// Whether the row the op targeted existed.
    Existed(bool),
    /// How many rows the op changed.
    Count(u64),
    /// The outcome of a refresh-token rotation.
    Rotation(Rotation),
    /// The outcome of redeeming an authorization code (boxed: a taken code is large).
    Code(Box<CodeTake>),
    /// The OAuth 1.0a request token an op took, if any.
    RequestToken(Option<Box<latchkey_oauth1::store::RequestToken>>),
}

/// The answer to one op, sent after its batch committed (or failed).
pub(crate) type Reply = Result<Outcome, StoreError>;

/// An op with the channel its answer goes back on.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) op: Op,
    pub(crate) reply: oneshot::Sender<Reply>,
}

/// What the store sends the writer.
#[derive(Debug)]
pub(crate) enum Msg {
    /// A write to run (boxed: a queued shutdown need not take a job's room).
    Job(Box<Job>),
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
                Msg::Job(job) => jobs.push(*job),
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

fn run_batch(conn: &Connection, jobs: Vec<Job>, counters: &Counters) {
    let sweep_at = jobs.iter().filter_map(|job| job.op.now()).max();
    match attempt(conn, &jobs, sweep_at) {
        Ok(replies) => {
            counters.committed(jobs.len());
            for (job, reply) in jobs.into_iter().zip(replies) {
                // The caller may have gone away; its write is durable all the same.
                let _ = job.reply.send(reply);
            }
        }
        Err(BatchError::Transaction(err)) => {
            tracing::warn!(error = %err, ops = jobs.len(), "SQLite write batch failed");
            let err = StoreError::new(kind_of_rusqlite(&err), err);
            for job in jobs {
                let _ = job.reply.send(Err(err.clone()));
            }
        }
        Err(BatchError::Statement(err)) => {
            tracing::debug!(error = %err, ops = jobs.len(), "SQLite batch rolled back; retrying each op alone");
            for job in jobs {
                let reply = alone(conn, &job.op, counters);
                let _ = job.reply.send(reply);
            }
        }
    }
}

/// Runs all `jobs` (and the sweep) in one transaction; the replies are valid only if it
/// returns `Ok`, that is, once committed.
fn attempt(
    conn: &Connection,
    jobs: &[Job],
    sweep_at: Option<UnixTime>,
) -> Result<Vec<Reply>, BatchError> {
    execute(conn, "BEGIN IMMEDIATE").map_err(BatchError::Transaction)?;
    let mut replies = Vec::with_capacity(jobs.len());
    for job in jobs {
        match apply(conn, &job.op) {
            Ok(reply) => replies.push(reply),
            Err(err) => {
                rollback(conn);
                return Err(BatchError::Statement(err));
            }
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
    Ok(replies)
}

/// Runs one op in its own transaction, after its batch failed; a SQL error is its own answer.
fn alone(conn: &Connection, op: &Op, counters: &Counters) -> Reply {
    execute(conn, "BEGIN IMMEDIATE").map_err(from_rusqlite)?;
    match apply(conn, op) {
        Ok(reply) => {
            if let Err(err) = execute(conn, "COMMIT") {
                rollback(conn);
                return Err(from_rusqlite(err));
            }
            counters.committed(1);
            reply
        }
        Err(err) => {
            rollback(conn);
            tracing::debug!(error = %err, "SQLite write failed");
            Err(from_rusqlite(err))
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

/// Runs one op inside the current transaction. The outer `Err` is a SQL failure (the batch
/// must roll back); the inner one is a refusal that wrote nothing.
fn apply(conn: &Connection, op: &Op) -> rusqlite::Result<Reply> {
    match op {
        Op::OAuth1(write) => super::oauth1::apply(conn, write),
        Op::Session(write) => super::sessions::apply(conn, write),
        Op::PutClient(row) => {
            put_client(conn, row)?;
            Ok(Ok(Outcome::Done))
        }
        Op::DeleteClient(id) => {
            for sql in [
                "DELETE FROM tokens WHERE client_id = ?",
                "DELETE FROM codes WHERE client_id = ?",
                "DELETE FROM consents WHERE client_id = ?",
                "DELETE FROM oauth1_request_tokens WHERE client_id = ?",
                "DELETE FROM oauth1_access_tokens WHERE client_id = ?",
                "DELETE FROM oauth1_consumers WHERE client_id = ?",
            ] {
                change(conn, sql, [id])?;
            }
            let deleted = change(conn, "DELETE FROM clients WHERE id = ?", [id])?;
            Ok(Ok(Outcome::Existed(deleted > 0)))
        }
        Op::PutUser(user) => put_user(conn, user),
        Op::DeleteUser(username) => {
            let id = first(
                conn,
                "SELECT id FROM users WHERE username = ?",
                [username],
                |row| row.get::<_, String>(0),
            )?
            .transpose()?;
            let Some(id) = id else {
                return Ok(Ok(Outcome::Existed(false)));
            };
            for sql in [
                "DELETE FROM tokens WHERE subject = ?",
                "DELETE FROM codes WHERE subject = ?",
                "DELETE FROM consents WHERE subject = ?",
                "DELETE FROM oauth1_access_tokens WHERE subject = ?",
                "DELETE FROM oauth1_request_tokens WHERE subject = ?",
                "DELETE FROM sessions WHERE subject = ?",
            ] {
                change(conn, sql, [&id])?;
            }
            change(conn, "DELETE FROM users WHERE id = ?", [&id])?;
            Ok(Ok(Outcome::Existed(true)))
        }
        Op::DeleteTokensOf(owner) => {
            let (tokens, codes, value) = match owner {
                TokenOwner::Client(id) => (
                    "DELETE FROM tokens WHERE client_id = ?",
                    "DELETE FROM codes WHERE client_id = ?",
                    id,
                ),
                TokenOwner::Subject(id) => (
                    "DELETE FROM tokens WHERE subject = ?",
                    "DELETE FROM codes WHERE subject = ?",
                    id,
                ),
            };
            let deleted = change(conn, tokens, [value])?;
            change(conn, codes, [value])?;
            Ok(Ok(Outcome::Count(count(deleted))))
        }
        Op::SaveTokens(tokens, _) => {
            for record in tokens.records() {
                insert_token(conn, record)?;
            }
            Ok(Ok(Outcome::Done))
        }
        Op::RotateRefresh { old, new, now } => rotate_refresh(conn, old, new, *now),
        Op::RevokeFamily(family) => {
            let revoked = change(
                conn,
                "UPDATE tokens SET revoked = 1 WHERE family = ? AND revoked = 0",
                [&family.0],
            )?;
            Ok(Ok(Outcome::Count(count(revoked))))
        }
        Op::RevokeToken(digest) => {
            let revoked = change(
                conn,
                "UPDATE tokens SET revoked = 1 WHERE digest = ?",
                [digest.as_bytes().as_slice()],
            )?;
            Ok(Ok(Outcome::Existed(revoked > 0)))
        }
        Op::SaveCode(code, _) => {
            insert_code(conn, code)?;
            Ok(Ok(Outcome::Done))
        }
        Op::TakeCode(digest, client_id, now) => take_code(conn, digest, client_id, *now),
        Op::PutConsent {
            subject,
            client_id,
            scope,
            now,
        } => {
            change(
                conn,
                "INSERT INTO consents (subject, client_id, scope, granted_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (subject, client_id) DO UPDATE SET
                     scope = excluded.scope,
                     granted_at = excluded.granted_at",
                params![subject, client_id, scope, now.0],
            )?;
            Ok(Ok(Outcome::Done))
        }
        Op::RevokeGrant { client_id, subject } => {
            let revoked = change(
                conn,
                "UPDATE tokens SET revoked = 1
                 WHERE client_id = ? AND subject = ? AND revoked = 0",
                [client_id, subject],
            )?;
            change(
                conn,
                "DELETE FROM codes WHERE client_id = ? AND subject = ?",
                [client_id, subject],
            )?;
            Ok(Ok(Outcome::Count(count(revoked))))
        }
        Op::RevokeConsent { subject, client_id } => {
            let deleted = change(
                conn,
                "DELETE FROM consents WHERE subject = ? AND client_id = ?",
                [subject, client_id],
            )?;
            Ok(Ok(Outcome::Existed(deleted > 0)))
        }
    }
}

fn put_client(conn: &Connection, row: &ClientRow) -> rusqlite::Result<()> {
    change(
        conn,
        concat!(
            "INSERT INTO clients (",
            rows::client_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET
                 bind_tokens = excluded.bind_tokens,
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
        params![
            row.id,
            row.name,
            row.secret_digest.as_deref(),
            row.redirect_uris,
            row.grant_types,
            row.scopes.as_deref(),
            row.default_scopes.as_deref(),
            row.access_token_ttl,
            row.refresh_token_ttl,
            row.created_at,
            row.bind_tokens,
            row.introspect,
            row.token_endpoint_auth_method,
        ],
    )?;
    Ok(())
}

fn put_user(conn: &Connection, user: &User) -> rusqlite::Result<Reply> {
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
            ") VALUES (?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET
                 username = excluded.username,
                 password_hash = excluded.password_hash,
                 created_at = excluded.created_at"
        ),
        params![
            user.id,
            user.username,
            user.password_hash,
            user.created_at.0
        ],
    )?;
    Ok(Ok(Outcome::Done))
}

fn insert_token(conn: &Connection, record: &TokenRecord) -> rusqlite::Result<()> {
    change(
        conn,
        concat!(
            "INSERT INTO tokens (",
            rows::token_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        params![
            record.digest.as_bytes().as_slice(),
            record.kind.as_str(),
            record.client_id.as_str(),
            record.subject.as_deref(),
            record.username.as_deref(),
            record.scope.to_string(),
            record.grant_type.as_str(),
            record.family.0,
            record.issued_at.0,
            record.expires_at.0,
            record.revoked,
            record.rotated,
            record.binding.as_ref().map(|b| b.user_agent.as_str()),
            record.binding.as_ref().map(|b| b.ip.as_str()),
            record.family_issued_at.0,
        ],
    )?;
    Ok(())
}

/// Rotation and reuse detection in one step (RFC 9700 §4.14.2); atomic because the writer
/// runs one op at a time inside the batch's transaction.
fn rotate_refresh(
    conn: &Connection,
    old: &Digest,
    new: &NewTokens,
    now: UnixTime,
) -> rusqlite::Result<Reply> {
    let state = first(
        conn,
        "SELECT kind, revoked, rotated, expires_at, family FROM tokens WHERE digest = ?",
        [old.as_bytes().as_slice()],
        |row| -> Result<_, StoreError> {
            Ok((
                rows::token_kind(&row.text("kind")?)?,
                row.flag("revoked")?,
                row.flag("rotated")?,
                UnixTime(row.int("expires_at")?),
                FamilyId(row.text("family")?),
            ))
        },
    )?;
    let (kind, revoked, rotated, expires_at, family) = match state {
        None => return Ok(Ok(Outcome::Rotation(Rotation::Invalid))),
        Some(Err(err)) => return Ok(Err(err)),
        Some(Ok(state)) => state,
    };
    if kind != TokenKind::Refresh || revoked || now >= expires_at {
        return Ok(Ok(Outcome::Rotation(Rotation::Invalid)));
    }
    if rotated {
        // RFC 9700 §4.14.2: a refresh token presented twice means one copy was stolen;
        // revoke everything descended from the same grant.
        change(
            conn,
            "UPDATE tokens SET revoked = 1 WHERE family = ?",
            [&family.0],
        )?;
        return Ok(Ok(Outcome::Rotation(Rotation::Reused { family })));
    }
    change(
        conn,
        "UPDATE tokens SET rotated = 1 WHERE digest = ?",
        [old.as_bytes().as_slice()],
    )?;
    for record in new.records() {
        insert_token(conn, record)?;
    }
    Ok(Ok(Outcome::Rotation(Rotation::Rotated)))
}

fn insert_code(conn: &Connection, code: &CodeRecord) -> rusqlite::Result<()> {
    change(
        conn,
        concat!(
            "INSERT INTO codes (",
            rows::code_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        ),
        params![
            code.digest.as_bytes().as_slice(),
            code.client_id.as_str(),
            code.redirect_uri,
            code.redirect_uri_sent,
            code.subject,
            code.username,
            code.scope.to_string(),
            code.challenge.as_ref().map(|c| c.method.as_str()),
            code.challenge.as_ref().map(|c| c.value.as_str()),
            code.nonce.as_deref(),
            code.family.0,
            code.issued_at.0,
            code.expires_at.0,
        ],
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
) -> rusqlite::Result<Reply> {
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
        None => return Ok(Ok(Outcome::Code(Box::new(CodeTake::Invalid)))),
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
    Ok(Ok(Outcome::Code(Box::new(take))))
}
