//! The single SQLite writer: group commit (DESIGN.md, "Performance budget").
//!
//! Every write of a [`super::SqliteStore`] becomes an [`Op`] sent down one channel to one task
//! that owns the only writing connection. The task takes the first op, drains whatever else is
//! already queued (up to [`MAX_BATCH`]), runs them all in one `BEGIN IMMEDIATE` transaction,
//! commits, and only then answers each op: a token is acknowledged once it is durable, and one
//! fsync pays for the whole batch.
//!
//! The ops are the writes of the store traits: clients and users (put, delete; deleting one
//! also deletes its tokens, codes and consent), tokens (save, rotate, revoke one or a family),
//! authorization codes (save, take) and consent (put, revoke). Because one task runs every
//! write in order, multi-step operations such as `rotate_refresh` (read, check, mark, insert)
//! and `take_code` (read, check, mark used) are atomic without any lock of ours; the SQLite
//! write lock keeps other processes (the CLI) out for the length of a batch.
//!
//! Each op's outcome is computed inside the batch. A logical refusal (a user name taken) writes
//! nothing and does not disturb the batch. If a statement fails, the batch is rolled back and
//! each op is re-run in its own transaction, so one bad op fails alone. If the transaction
//! itself cannot begin or commit, every op of the batch gets that error.
//!
//! Expiry lives here too: each batch that carries a `now` deletes up to [`SWEEP_LIMIT`] tokens
//! and up to [`SWEEP_LIMIT`] codes that expired by the largest `now` of the batch, so the tables
//! stay flat without a janitor. Used codes are kept until then, so a replay is recognised.

use crate::error::{from_sqlx, kind_of};
use crate::rows::{self, ClientRow, Columns};
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::{CodeTake, Rotation, StoreError, StoreErrorKind, TokenOwner};
use latchkey_core::token::{CodeRecord, FamilyId, NewTokens, TokenKind, TokenRecord};
use latchkey_core::user::User;
use sqlx::{Connection, SqliteConnection};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};

/// The most ops committed together; bounds the time one batch holds the write lock.
pub(crate) const MAX_BATCH: usize = 512;

/// The most expired rows of each table one batch deletes, so a backlog never stalls a batch.
pub(crate) const SWEEP_LIMIT: i64 = 1000;

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
    TakeCode(Digest, UnixTime),
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
    /// A write of the OAuth 1.0a store (see `super::oauth1`).
    OAuth1(super::oauth1::Write),
}

impl Op {
    /// The caller's `now`, for ops that carry one: the sweep of a batch uses the largest.
    fn now(&self) -> Option<UnixTime> {
        match self {
            Self::SaveTokens(_, now)
            | Self::RotateRefresh { now, .. }
            | Self::SaveCode(_, now)
            | Self::TakeCode(_, now)
            | Self::PutConsent { now, .. } => Some(*now),
            Self::OAuth1(write) => write.now(),
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

/// The writer task: runs until every sender is gone or a [`Msg::Shutdown`] arrives and the
/// queue is drained, then closes the connection.
pub(crate) async fn run(
    mut conn: SqliteConnection,
    mut inbox: mpsc::Receiver<Msg>,
    counters: Arc<Counters>,
) {
    while let Some(first) = inbox.recv().await {
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
            run_batch(&mut conn, jobs, &counters).await;
        }
    }
    if let Err(err) = conn.close().await {
        tracing::warn!(error = %err, "closing the SQLite writer connection failed");
    }
}

/// Why a batch did not commit.
enum BatchError {
    /// `BEGIN` or `COMMIT` failed: the database is unusable right now, for every op alike.
    Transaction(sqlx::Error),
    /// One statement failed; the batch was rolled back.
    Statement(sqlx::Error),
}

async fn run_batch(conn: &mut SqliteConnection, jobs: Vec<Job>, counters: &Counters) {
    let sweep_at = jobs.iter().filter_map(|job| job.op.now()).max();
    match attempt(conn, &jobs, sweep_at).await {
        Ok(replies) => {
            counters.committed(jobs.len());
            for (job, reply) in jobs.into_iter().zip(replies) {
                // The caller may have gone away; its write is durable all the same.
                let _ = job.reply.send(reply);
            }
        }
        Err(BatchError::Transaction(err)) => {
            tracing::warn!(error = %err, ops = jobs.len(), "SQLite write batch failed");
            let err = StoreError::new(kind_of(&err), err);
            for job in jobs {
                let _ = job.reply.send(Err(err.clone()));
            }
        }
        Err(BatchError::Statement(err)) => {
            tracing::debug!(error = %err, ops = jobs.len(), "SQLite batch rolled back; retrying each op alone");
            for job in jobs {
                let reply = alone(conn, &job.op, counters).await;
                let _ = job.reply.send(reply);
            }
        }
    }
}

/// Runs all `jobs` (and the sweep) in one transaction; the replies are valid only if it
/// returns `Ok`, that is, once committed.
async fn attempt(
    conn: &mut SqliteConnection,
    jobs: &[Job],
    sweep_at: Option<UnixTime>,
) -> Result<Vec<Reply>, BatchError> {
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(BatchError::Transaction)?;
    let mut replies = Vec::with_capacity(jobs.len());
    for job in jobs {
        match apply(&mut tx, &job.op).await {
            Ok(reply) => replies.push(reply),
            Err(err) => {
                rollback(tx).await;
                return Err(BatchError::Statement(err));
            }
        }
    }
    if let Some(now) = sweep_at
        && let Err(err) = sweep(&mut tx, now).await
    {
        rollback(tx).await;
        return Err(BatchError::Statement(err));
    }
    tx.commit().await.map_err(BatchError::Transaction)?;
    Ok(replies)
}

/// Runs one op in its own transaction, after its batch failed; a SQL error is its own answer.
async fn alone(conn: &mut SqliteConnection, op: &Op, counters: &Counters) -> Reply {
    let mut tx = conn
        .begin_with("BEGIN IMMEDIATE")
        .await
        .map_err(from_sqlx)?;
    match apply(&mut tx, op).await {
        Ok(reply) => {
            tx.commit().await.map_err(from_sqlx)?;
            counters.committed(1);
            reply
        }
        Err(err) => {
            rollback(tx).await;
            tracing::debug!(error = %err, "SQLite write failed");
            Err(from_sqlx(err))
        }
    }
}

async fn rollback(tx: sqlx::Transaction<'_, sqlx::Sqlite>) {
    if let Err(err) = tx.rollback().await {
        tracing::warn!(error = %err, "rolling back a SQLite write batch failed");
    }
}

/// Deletes up to [`SWEEP_LIMIT`] tokens and up to [`SWEEP_LIMIT`] codes that expired by
/// `now`, through the expiry indexes.
async fn sweep(conn: &mut SqliteConnection, now: UnixTime) -> Result<(), sqlx::Error> {
    let tokens = sqlx::query(
        "DELETE FROM tokens WHERE rowid IN
             (SELECT rowid FROM tokens WHERE expires_at <= ? LIMIT ?)",
    )
    .bind(now.0)
    .bind(SWEEP_LIMIT)
    .execute(&mut *conn)
    .await?;
    let codes = sqlx::query(
        "DELETE FROM codes WHERE rowid IN
             (SELECT rowid FROM codes WHERE expires_at <= ? LIMIT ?)",
    )
    .bind(now.0)
    .bind(SWEEP_LIMIT)
    .execute(&mut *conn)
    .await?;
    super::oauth1::sweep(conn, now, SWEEP_LIMIT).await?;
    if tokens.rows_affected() > 0 || codes.rows_affected() > 0 {
        tracing::debug!(
            tokens = tokens.rows_affected(),
            codes = codes.rows_affected(),
            "swept expired tokens and codes from SQLite"
        );
    }
    Ok(())
}

/// Runs one op inside the current transaction. The outer `Err` is a SQL failure (the batch
/// must roll back); the inner one is a refusal that wrote nothing.
async fn apply(conn: &mut SqliteConnection, op: &Op) -> Result<Reply, sqlx::Error> {
    match op {
        Op::OAuth1(write) => super::oauth1::apply(conn, write).await,
        Op::PutClient(row) => {
            put_client(conn, row).await?;
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
                sqlx::query(sql).bind(id).execute(&mut *conn).await?;
            }
            let done = sqlx::query("DELETE FROM clients WHERE id = ?")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            Ok(Ok(Outcome::Existed(done.rows_affected() > 0)))
        }
        Op::PutUser(user) => put_user(conn, user).await,
        Op::DeleteUser(username) => {
            let id: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE username = ?")
                .bind(username)
                .fetch_optional(&mut *conn)
                .await?;
            let Some(id) = id else {
                return Ok(Ok(Outcome::Existed(false)));
            };
            for sql in [
                "DELETE FROM tokens WHERE subject = ?",
                "DELETE FROM codes WHERE subject = ?",
                "DELETE FROM consents WHERE subject = ?",
                "DELETE FROM oauth1_access_tokens WHERE subject = ?",
                "DELETE FROM oauth1_request_tokens WHERE subject = ?",
            ] {
                sqlx::query(sql).bind(&id).execute(&mut *conn).await?;
            }
            sqlx::query("DELETE FROM users WHERE id = ?")
                .bind(&id)
                .execute(&mut *conn)
                .await?;
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
            let done = sqlx::query(tokens).bind(value).execute(&mut *conn).await?;
            sqlx::query(codes).bind(value).execute(&mut *conn).await?;
            Ok(Ok(Outcome::Count(done.rows_affected())))
        }
        Op::SaveTokens(tokens, _) => {
            for record in tokens.records() {
                insert_token(conn, record).await?;
            }
            Ok(Ok(Outcome::Done))
        }
        Op::RotateRefresh { old, new, now } => rotate_refresh(conn, old, new, *now).await,
        Op::RevokeFamily(family) => {
            let done =
                sqlx::query("UPDATE tokens SET revoked = 1 WHERE family = ? AND revoked = 0")
                    .bind(&family.0)
                    .execute(&mut *conn)
                    .await?;
            Ok(Ok(Outcome::Count(done.rows_affected())))
        }
        Op::RevokeToken(digest) => {
            let done = sqlx::query("UPDATE tokens SET revoked = 1 WHERE digest = ?")
                .bind(digest.as_bytes().as_slice())
                .execute(&mut *conn)
                .await?;
            Ok(Ok(Outcome::Existed(done.rows_affected() > 0)))
        }
        Op::SaveCode(code, _) => {
            insert_code(conn, code).await?;
            Ok(Ok(Outcome::Done))
        }
        Op::TakeCode(digest, now) => take_code(conn, digest, *now).await,
        Op::PutConsent {
            subject,
            client_id,
            scope,
            now,
        } => {
            sqlx::query(
                "INSERT INTO consents (subject, client_id, scope, granted_at) VALUES (?, ?, ?, ?)
                 ON CONFLICT (subject, client_id) DO UPDATE SET
                     scope = excluded.scope,
                     granted_at = excluded.granted_at",
            )
            .bind(subject)
            .bind(client_id)
            .bind(scope)
            .bind(now.0)
            .execute(&mut *conn)
            .await?;
            Ok(Ok(Outcome::Done))
        }
        Op::RevokeConsent { subject, client_id } => {
            let done = sqlx::query("DELETE FROM consents WHERE subject = ? AND client_id = ?")
                .bind(subject)
                .bind(client_id)
                .execute(&mut *conn)
                .await?;
            Ok(Ok(Outcome::Existed(done.rows_affected() > 0)))
        }
    }
}

async fn put_client(conn: &mut SqliteConnection, row: &ClientRow) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO clients (",
        rows::client_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET
             bind_tokens = excluded.bind_tokens,
             name = excluded.name,
             secret_digest = excluded.secret_digest,
             redirect_uris = excluded.redirect_uris,
             grant_types = excluded.grant_types,
             scopes = excluded.scopes,
             default_scopes = excluded.default_scopes,
             access_token_ttl = excluded.access_token_ttl,
             refresh_token_ttl = excluded.refresh_token_ttl,
             created_at = excluded.created_at"
    ))
    .bind(&row.id)
    .bind(&row.name)
    .bind(row.secret_digest.as_deref())
    .bind(&row.redirect_uris)
    .bind(&row.grant_types)
    .bind(row.scopes.as_deref())
    .bind(row.default_scopes.as_deref())
    .bind(row.access_token_ttl)
    .bind(row.refresh_token_ttl)
    .bind(row.created_at)
    .bind(row.bind_tokens)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn put_user(conn: &mut SqliteConnection, user: &User) -> Result<Reply, sqlx::Error> {
    let owner: Option<String> = sqlx::query_scalar("SELECT id FROM users WHERE username = ?")
        .bind(&user.username)
        .fetch_optional(&mut *conn)
        .await?;
    if owner.is_some_and(|id| id != user.id) {
        return Ok(Err(StoreError::new(
            StoreErrorKind::Conflict,
            "user name already taken",
        )));
    }
    // The same id with a new user name is a rename.
    sqlx::query(concat!(
        "INSERT INTO users (",
        rows::user_columns!(),
        ") VALUES (?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET
             username = excluded.username,
             password_hash = excluded.password_hash,
             created_at = excluded.created_at"
    ))
    .bind(&user.id)
    .bind(&user.username)
    .bind(&user.password_hash)
    .bind(user.created_at.0)
    .execute(&mut *conn)
    .await?;
    Ok(Ok(Outcome::Done))
}

async fn insert_token(
    conn: &mut SqliteConnection,
    record: &TokenRecord,
) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO tokens (",
        rows::token_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(record.digest.as_bytes().as_slice())
    .bind(record.kind.as_str())
    .bind(record.client_id.as_str())
    .bind(record.subject.as_deref())
    .bind(record.username.as_deref())
    .bind(record.scope.to_string())
    .bind(record.grant_type.as_str())
    .bind(&record.family.0)
    .bind(record.issued_at.0)
    .bind(record.expires_at.0)
    .bind(record.revoked)
    .bind(record.rotated)
    .bind(record.binding.as_ref().map(|b| b.user_agent.as_str()))
    .bind(record.binding.as_ref().map(|b| b.ip.as_str()))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Rotation and reuse detection in one step (RFC 9700 §4.14.2); atomic because the writer
/// runs one op at a time inside the batch's transaction.
async fn rotate_refresh(
    conn: &mut SqliteConnection,
    old: &Digest,
    new: &NewTokens,
    now: UnixTime,
) -> Result<Reply, sqlx::Error> {
    let row = sqlx::query(
        "SELECT kind, revoked, rotated, expires_at, family FROM tokens WHERE digest = ?",
    )
    .bind(old.as_bytes().as_slice())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Ok(Outcome::Rotation(Rotation::Invalid)));
    };
    let state = (|| -> Result<_, StoreError> {
        Ok((
            rows::token_kind(&row.text("kind")?)?,
            row.flag("revoked")?,
            row.flag("rotated")?,
            UnixTime(row.int("expires_at")?),
            FamilyId(row.text("family")?),
        ))
    })();
    let (kind, revoked, rotated, expires_at, family) = match state {
        Ok(state) => state,
        Err(err) => return Ok(Err(err)),
    };
    if kind != TokenKind::Refresh || revoked || now >= expires_at {
        return Ok(Ok(Outcome::Rotation(Rotation::Invalid)));
    }
    if rotated {
        // RFC 9700 §4.14.2: a refresh token presented twice means one copy was stolen;
        // revoke everything descended from the same grant.
        sqlx::query("UPDATE tokens SET revoked = 1 WHERE family = ?")
            .bind(&family.0)
            .execute(&mut *conn)
            .await?;
        return Ok(Ok(Outcome::Rotation(Rotation::Reused { family })));
    }
    sqlx::query("UPDATE tokens SET rotated = 1 WHERE digest = ?")
        .bind(old.as_bytes().as_slice())
        .execute(&mut *conn)
        .await?;
    for record in new.records() {
        insert_token(conn, record).await?;
    }
    Ok(Ok(Outcome::Rotation(Rotation::Rotated)))
}

async fn insert_code(conn: &mut SqliteConnection, code: &CodeRecord) -> Result<(), sqlx::Error> {
    sqlx::query(concat!(
        "INSERT INTO codes (",
        rows::code_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
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
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Single-use redemption of an authorization code (RFC 6749 §4.1.2); atomic because the
/// writer runs one op at a time inside the batch's transaction. A used code stays (until the
/// sweep forgets it after expiry) so that a second redemption is reported as a replay.
async fn take_code(
    conn: &mut SqliteConnection,
    digest: &Digest,
    now: UnixTime,
) -> Result<Reply, sqlx::Error> {
    let row = sqlx::query(concat!(
        "SELECT ",
        rows::code_columns!(),
        ", used FROM codes WHERE digest = ?"
    ))
    .bind(digest.as_bytes().as_slice())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(Ok(Outcome::Code(Box::new(CodeTake::Invalid))));
    };
    let (code, used) = match rows::code(&row).and_then(|code| Ok((code, row.flag("used")?))) {
        Ok(decoded) => decoded,
        Err(err) => return Ok(Err(err)),
    };
    if now >= code.expires_at {
        return Ok(Ok(Outcome::Code(Box::new(CodeTake::Invalid))));
    }
    if used {
        return Ok(Ok(Outcome::Code(Box::new(CodeTake::Replayed {
            family: code.family,
        }))));
    }
    sqlx::query("UPDATE codes SET used = 1 WHERE digest = ?")
        .bind(digest.as_bytes().as_slice())
        .execute(&mut *conn)
        .await?;
    Ok(Ok(Outcome::Code(Box::new(CodeTake::Taken(code)))))
}
