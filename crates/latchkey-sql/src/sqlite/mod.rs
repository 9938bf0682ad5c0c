//! The embedded SQLite store: what `latchkey serve` runs on with zero configuration.
//!
//! One file, crash-safe (WAL journal, `synchronous=FULL`), readable with the `sqlite3` CLI.
//! Writes go through one writer task that commits them in batches (group commit, see
//! [`writer`]), so a token costs a share of one fsync instead of a whole one and is answered
//! only once durable. Reads go through a small pool of read-only connections, which WAL lets
//! run alongside the writer. A `busy_timeout` lets a second process (the CLI) use the same
//! file while the server runs.

mod migrate;
mod oauth1;
mod writer;

use crate::error::{from_sqlx, unavailable};
use crate::rows::{self, ClientRow, client_columns, token_columns, user_columns};
use latchkey_core::client::Client;
use latchkey_core::clock::UnixTime;
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Digest;
use latchkey_core::store::{
    ClientStore, CodeStore, CodeTake, ConsentStore, Rotation, StoreError, StoreErrorKind,
    TokenOwner, TokenStore, UserStore,
};
use latchkey_core::token::{CodeRecord, FamilyId, NewTokens, TokenRecord};
use latchkey_core::user::User;
use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use writer::{Counters, Job, Msg, Op, Outcome};

/// How long a connection waits for another process's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read connections; WAL lets them all read while the writer writes.
const READERS: u32 = 4;

/// Writes that may wait for the writer before senders are made to wait too.
const QUEUE: usize = 4096;

/// The SQLite store. Cloning is cheap and shares the file, the writer and the read pool.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writes: mpsc::Sender<Msg>,
    readers: SqlitePool,
    counters: Arc<Counters>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// How many write transactions the writer committed and how many writes they carried: with
/// group commit, `batches` grows slower than `ops` under concurrent load. For tests and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Committed write transactions.
    pub batches: u64,
    /// Writes answered from those transactions.
    pub ops: u64,
}

impl SqliteStore {
    /// Opens the store in the file at `path`, creating it if missing, and brings its schema
    /// up to date. Must be called inside a tokio runtime, which runs the writer task.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let base = SqliteConnectOptions::new()
            .filename(&path)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .synchronous(SqliteSynchronous::Full);
        let mut conn = base
            .clone()
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .connect()
            .await
            .map_err(from_sqlx)?;
        migrate::run(&mut conn).await?;
        // Readers never write: `query_only` turns a mistake into an error, not a second writer.
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(BUSY_TIMEOUT)
            .connect_with(base.pragma("query_only", "ON"))
            .await
            .map_err(from_sqlx)?;
        let counters = Arc::new(Counters::default());
        let (writes, inbox) = mpsc::channel(QUEUE);
        let writer = tokio::spawn(writer::run(conn, inbox, Arc::clone(&counters)));
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                writes,
                readers,
                counters,
                writer: Mutex::new(Some(writer)),
            }),
        })
    }

    /// Shuts the store down gracefully: new writes are refused (`Unavailable`), the writes
    /// already queued are committed and answered, then every connection is closed. Call it
    /// once the server stops accepting requests.
    pub async fn close(&self) {
        // Fails only if the writer is already gone, which is the state we want.
        let _ = self.inner.writes.send(Msg::Shutdown).await;
        let writer = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(writer) = writer
            && let Err(err) = writer.await
        {
            tracing::warn!(error = %err, "the SQLite writer task failed");
        }
        self.inner.readers.close().await;
    }

    /// Counters of the group-commit writer since the store was opened.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.inner.counters.batches.load(Ordering::Relaxed),
            ops: self.inner.counters.ops.load(Ordering::Relaxed),
        }
    }

    /// The database file, for logs and the CLI.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Queues `op` for the writer and waits until its batch is committed.
    async fn write(&self, op: Op) -> Result<Outcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .writes
            .send(Msg::Job(Box::new(Job { op, reply })))
            .await
            .map_err(|_| unavailable("the SQLite store is closed"))?;
        answer
            .await
            .map_err(|_| unavailable("the SQLite writer stopped before answering"))?
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("stats", &self.stats())
            .finish()
    }
}

/// An answer of the wrong shape from the writer: a bug of ours, reported rather than panicked.
fn mismatch(outcome: Outcome) -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        format_args!("unexpected SQLite writer outcome {outcome:?}"),
    )
}

fn done(outcome: Outcome) -> Result<(), StoreError> {
    match outcome {
        Outcome::Done => Ok(()),
        other => Err(mismatch(other)),
    }
}

fn existed(outcome: Outcome) -> Result<bool, StoreError> {
    match outcome {
        Outcome::Existed(existed) => Ok(existed),
        other => Err(mismatch(other)),
    }
}

impl ClientStore for SqliteStore {
    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.inner.readers)
        .await
        .map_err(from_sqlx)?;
        row.as_ref().map(rows::client).transpose()
    }

    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        done(
            self.write(Op::PutClient(ClientRow::encode(client)?))
                .await?,
        )
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        existed(self.write(Op::DeleteClient(id.to_owned())).await?)
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            client_columns!(),
            " FROM clients ORDER BY id"
        ))
        .fetch_all(&self.inner.readers)
        .await
        .map_err(from_sqlx)?;
        rows.iter().map(rows::client).collect()
    }
}

impl UserStore for SqliteStore {
    async fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users WHERE username = ?"
        ))
        .bind(username)
        .fetch_optional(&self.inner.readers)
        .await
        .map_err(from_sqlx)?;
        row.as_ref().map(rows::user).transpose()
    }

    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        done(self.write(Op::PutUser(user.clone())).await?)
    }

    async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        existed(self.write(Op::DeleteUser(username.to_owned())).await?)
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            " FROM users ORDER BY username"
        ))
        .fetch_all(&self.inner.readers)
        .await
        .map_err(from_sqlx)?;
        rows.iter().map(rows::user).collect()
    }
}

impl TokenStore for SqliteStore {
    async fn save_tokens(&self, tokens: &NewTokens, now: UnixTime) -> Result<(), StoreError> {
        done(self.write(Op::SaveTokens(tokens.clone(), now)).await?)
    }

    async fn find_token(&self, digest: &Digest) -> Result<Option<TokenRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            token_columns!(),
            " FROM tokens WHERE digest = ?"
        ))
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(&self.inner.readers)
        .await
        .map_err(from_sqlx)?;
        row.as_ref().map(rows::token).transpose()
    }

    async fn rotate_refresh(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> Result<Rotation, StoreError> {
        let op = Op::RotateRefresh {
            old: *old,
            new: new.clone(),
            now,
        };
        match self.write(op).await? {
            Outcome::Rotation(rotation) => Ok(rotation),
            other => Err(mismatch(other)),
        }
    }

    async fn revoke_family(&self, family: &FamilyId) -> Result<u64, StoreError> {
        match self.write(Op::RevokeFamily(family.clone())).await? {
            Outcome::Count(count) => Ok(count),
            other => Err(mismatch(other)),
        }
    }

    async fn revoke_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        existed(self.write(Op::RevokeToken(*digest)).await?)
    }

    async fn delete_tokens_of(&self, owner: &TokenOwner) -> Result<u64, StoreError> {
        match self.write(Op::DeleteTokensOf(owner.clone())).await? {
            Outcome::Count(count) => Ok(count),
            other => Err(mismatch(other)),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.inner.writes.is_closed() {
            return Err(unavailable("the SQLite store is closed"));
        }
        sqlx::query("SELECT 1")
            .execute(&self.inner.readers)
            .await
            .map_err(from_sqlx)?;
        Ok(())
    }
}

impl CodeStore for SqliteStore {
    async fn save_code(&self, code: &CodeRecord, now: UnixTime) -> Result<(), StoreError> {
        done(self.write(Op::SaveCode(code.clone(), now)).await?)
    }

    async fn take_code(&self, digest: &Digest, now: UnixTime) -> Result<CodeTake, StoreError> {
        match self.write(Op::TakeCode(*digest, now)).await? {
            Outcome::Code(take) => Ok(*take),
            other => Err(mismatch(other)),
        }
    }
}

impl ConsentStore for SqliteStore {
    async fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        let scope: Option<String> =
            sqlx::query_scalar("SELECT scope FROM consents WHERE subject = ? AND client_id = ?")
                .bind(subject)
                .bind(client_id)
                .fetch_optional(&self.inner.readers)
                .await
                .map_err(from_sqlx)?;
        scope.as_deref().map(rows::scope).transpose()
    }

    async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        scope: &ScopeSet,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        done(
            self.write(Op::PutConsent {
                subject: subject.to_owned(),
                client_id: client_id.to_owned(),
                scope: scope.to_string(),
                now,
            })
            .await?,
        )
    }

    async fn revoke_consent(&self, subject: &str, client_id: &str) -> Result<bool, StoreError> {
        existed(
            self.write(Op::RevokeConsent {
                subject: subject.to_owned(),
                client_id: client_id.to_owned(),
            })
            .await?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_makes_a_durable_wal_file_that_waits_for_locks() {
        let path = std::env::temp_dir().join(format!(
            "latchkey-sql-unit-{}-{:?}.db",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        let store = SqliteStore::open(&path).await.expect("open");
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.inner.readers)
            .await
            .expect("journal_mode");
        assert_eq!(journal, "wal");
        let pragma = |sql: &'static str| {
            let store = store.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&store.inner.readers)
                    .await
                    .expect(sql)
            }
        };
        // 2 is FULL: the WAL is synced at every commit.
        assert_eq!(pragma("PRAGMA synchronous").await, 2);
        assert_eq!(pragma("PRAGMA busy_timeout").await, 5000);
        assert_eq!(pragma("PRAGMA foreign_keys").await, 1);
        let versions: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM latchkey_schema_migrations")
                .fetch_all(&store.inner.readers)
                .await
                .expect("versions");
        assert_eq!(versions, vec![1, 2, 3, 4]);
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
