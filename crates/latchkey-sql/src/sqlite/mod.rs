//! The embedded SQLite store: what `latchkey serve` runs on with zero configuration.
//!
//! One file, crash-safe (WAL journal, `synchronous=FULL`), readable with the `sqlite3` CLI.
//! It runs on rusqlite, called directly, not through an async driver:
//!
//! - Writes go to one OS thread that owns the only writing connection and commits them in
//!   batches (group commit, see [`writer`]), so a token costs a share of one fsync instead of a
//!   whole one and is answered only once durable.
//! - Reads run inline, on the caller's thread, on a connection taken from a small pool of
//!   read-only ones (see [`readers`]). In WAL mode a read never waits for the writer, and a
//!   point read by primary key costs a few microseconds; handing it to another thread, as an
//!   async driver does (sqlx runs each SQLite statement on a per-connection worker thread),
//!   costs many times the read itself (BENCHMARKS.md has the figures).
//!
//! A `busy_timeout` lets a second process (the CLI) use the same file while the server runs.

pub mod backup;
mod client_cache;
mod keys;
mod migrate;
mod oauth1;
mod pending;
mod readers;
mod registration;
mod replay;
mod resources;
mod sessions;
mod writer;

use crate::error::{from_rusqlite, unavailable};
use crate::rows::{self, ClientRow, client_columns, token_columns, user_columns};
use latchkey_core::client::{Client, ClientId};
use latchkey_core::clock::UnixTime;
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Digest;
use latchkey_core::store::{
    ClientStore, CodeStore, CodeTake, ConsentRecord, ConsentStore, Rotation, StoreError,
    TokenOwner, TokenStore, UserStore,
};
use latchkey_core::token::{CodeRecord, FamilyId, NewTokens, TokenRecord};
use latchkey_core::user::User;
use readers::Readers;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use writer::{Counters, Msg, Op, Reply};

/// How long a connection waits for another process's lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes that may wait for the writer before senders are made to wait too.
const QUEUE: usize = 4096;

/// Prepared statements each connection keeps: more than the writer's distinct statements
/// (about 50), so none is ever prepared twice.
const STATEMENT_CACHE: usize = 96;

/// The SQLite store. Cloning is cheap and shares the file, the writer and the read pool.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writes: mpsc::Sender<Msg>,
    readers: Readers,
    /// Decoded clients, checked against the `client_changes` counter on every read.
    clients: client_cache::ClientCache,
    counters: Arc<Counters>,
    /// Fires once the writer thread has closed its connection; taken by [`SqliteStore::close`].
    writer_done: Mutex<Option<oneshot::Receiver<()>>>,
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
    /// up to date. Must be called inside a tokio runtime: opening and migrating run on its
    /// blocking pool; the writer then gets a thread of its own.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let opening = path.clone();
        let (conn, reader) = tokio::task::spawn_blocking(move || open_files(&opening))
            .await
            .map_err(|err| unavailable(format_args!("opening the SQLite store failed: {err}")))??;
        let counters = Arc::new(Counters::default());
        let (writes, inbox) = mpsc::channel(QUEUE);
        let (done, writer_done) = oneshot::channel();
        let writer_counters = Arc::clone(&counters);
        std::thread::Builder::new()
            .name("latchkey-sqlite-writer".into())
            .spawn(move || {
                writer::run(conn, inbox, &writer_counters);
                // The connection is closed by now; `close()` may return.
                let _ = done.send(());
            })
            .map_err(|err| unavailable(format_args!("cannot start the SQLite writer: {err}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                readers: Readers::new(path.clone(), reader),
                clients: client_cache::ClientCache::default(),
                path,
                writes,
                counters,
                writer_done: Mutex::new(Some(writer_done)),
            }),
        })
    }

    /// Shuts the store down gracefully: new writes are refused (`Unavailable`), the writes
    /// already queued are committed and answered, then every connection is closed. Call it
    /// once the server stops accepting requests.
    pub async fn close(&self) {
        // Fails only if the writer is already gone, which is the state we want.
        let _ = self.inner.writes.send(Msg::Shutdown).await;
        let writer_done = self
            .inner
            .writer_done
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(writer_done) = writer_done
            && writer_done.await.is_err()
        {
            tracing::warn!("the SQLite writer thread stopped without closing its connection");
        }
        self.inner.readers.close();
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

    /// Queues the op that `op` makes around its reply channel for the writer, and waits until
    /// its batch is committed: the answer comes back as the type the op's reply carries.
    async fn write<T>(&self, op: impl FnOnce(Reply<T>) -> Op) -> Result<T, StoreError> {
        let (reply, answer) = Reply::channel();
        self.inner
            .writes
            .send(Msg::Job(Box::new(op(reply))))
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

/// The writer's page cache, in KiB (SQLite's negative `cache_size`); grows only as used.
const WRITER_CACHE_KIB: i64 = -65_536;

/// Opens the writing connection (creating the file, switching it to WAL, migrating it) and a
/// first reader, so that a file the readers cannot open fails `open` rather than a request.
fn open_files(path: &Path) -> Result<(Connection, Connection), StoreError> {
    create_private(path)?;
    let conn = connect(path, OpenFlags::SQLITE_OPEN_CREATE).map_err(from_rusqlite)?;
    // WAL is a property of the file: set once here, every later connection reads in it.
    let journal: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(from_rusqlite)?;
    if !journal.eq_ignore_ascii_case("wal") {
        tracing::warn!(journal, path = %path.display(), "SQLite refused the WAL journal");
    }
    migrate::run(&conn)?;
    // The writer's page cache holds the indexes that every token insert walks (the digest's
    // is written at random places); SQLite's default of 2 MiB is about 45,000 live tokens'
    // worth, after which each insert reads its pages back from the file.
    conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)
        .map_err(from_rusqlite)?;
    let reader = readers::connect(path).map_err(from_rusqlite)?;
    Ok((conn, reader))
}

/// Creates the database file, if missing, readable and writable by its owner only (0600 on
/// Unix): it holds client records, password hashes and token hashes. SQLite gives the `-wal`
/// and `-shm` files it creates beside it the same mode. An existing file that others may read
/// is reported, not changed (the operator may have meant it).
fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            if let Ok(meta) = std::fs::metadata(path) {
                use std::os::unix::fs::PermissionsExt as _;
                if meta.permissions().mode() & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        "the SQLite store is readable by other users; chmod 600 it and its -wal and -shm files"
                    );
                }
            }
            Ok(())
        }
        Err(err) => Err(unavailable(format_args!(
            "cannot create {}: {err}",
            path.display()
        ))),
    }
}

/// Opens a connection to the file at `path` with the settings every connection of the store
/// shares: `synchronous=FULL` (a commit is on disk before it is answered), the
/// `foreign_keys` pragma on (no table declares a foreign key: the store deletes what a client
/// or user owns itself), and a wait of [`BUSY_TIMEOUT`] for another process's lock. `extra`
/// adds open flags (`SQLITE_OPEN_CREATE` for the writer).
fn connect(path: &Path, extra: OpenFlags) -> rusqlite::Result<Connection> {
    // No SQLITE_OPEN_URI: the path is a file name, never a `file:` URI with options.
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | extra;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Runs a query with a cached statement and decodes its first row, if there is one. The
/// outer error is SQLite's; `decode` reports its own in `T`.
fn first<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl FnOnce(&rusqlite::Row<'_>) -> T,
) -> rusqlite::Result<Option<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    let mut rows = statement.query(params)?;
    Ok(rows.next()?.map(decode))
}

/// Runs a query with a cached statement and decodes every row.
fn all<T>(
    conn: &Connection,
    sql: &str,
    decode: impl Fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    all_with(conn, sql, [], decode)
}

/// Runs a query with a cached statement and `params`, and decodes every row.
fn all_with<T>(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
    decode: impl Fn(&rusqlite::Row<'_>) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut statement = conn.prepare_cached(sql).map_err(from_rusqlite)?;
    let mut rows = statement.query(params).map_err(from_rusqlite)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(from_rusqlite)? {
        out.push(decode(row)?);
    }
    Ok(out)
}

impl ClientStore for SqliteStore {
    /// From the in-process cache when no client changed since it was filled (see
    /// the `client_cache` module): the change counter is read first, then, on a miss, the row.
    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        self.inner.readers.read(|conn| {
            // `None` (the counter row deleted by hand): the cache is not used.
            let count: Option<i64> = first(conn, client_cache::COUNTER_SQL, [], |row| row.get(0))
                .map_err(from_rusqlite)?
                .transpose()
                .map_err(from_rusqlite)?;
            let cache = &self.inner.clients;
            if let Some(client) = cache.get(count, id) {
                return Ok(Some(client));
            }
            let sql = concat!("SELECT ", client_columns!(), " FROM clients WHERE id = ?");
            let client = first(conn, sql, [id], |row| rows::client(row))
                .map_err(from_rusqlite)?
                .transpose()?;
            if let Some(client) = &client {
                cache.put(count, client);
            }
            Ok(client)
        })
    }

    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        let row = ClientRow::encode(client)?;
        self.write(|reply| Op::PutClient(row, reply)).await
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        self.write(|reply| Op::DeleteClient(id.to_owned(), reply))
            .await
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        self.inner.readers.read(|conn| {
            let sql = concat!("SELECT ", client_columns!(), " FROM clients ORDER BY id");
            all(conn, sql, |row| rows::client(row))
        })
    }
}

impl UserStore for SqliteStore {
    async fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.inner.readers.read(|conn| {
            let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE username = ?");
            first(conn, sql, [username], |row| rows::user(row))
                .map_err(from_rusqlite)?
                .transpose()
        })
    }

    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.write(|reply| Op::PutUser(user.clone(), reply)).await
    }

    async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        self.write(|reply| Op::DeleteUser(username.to_owned(), reply))
            .await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.inner.readers.read(|conn| {
            let sql = concat!("SELECT ", user_columns!(), " FROM users ORDER BY username");
            all(conn, sql, |row| rows::user(row))
        })
    }

    async fn get_user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.inner.readers.read(|conn| {
            let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE id = ?");
            first(conn, sql, [id], |row| rows::user(row))
                .map_err(from_rusqlite)?
                .transpose()
        })
    }
}

impl TokenStore for SqliteStore {
    async fn save_tokens(&self, tokens: &NewTokens, now: UnixTime) -> Result<(), StoreError> {
        self.write(|reply| Op::SaveTokens(tokens.clone(), now, reply))
            .await
    }

    async fn find_token(&self, digest: &Digest) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.readers.read(|conn| {
            let sql = concat!("SELECT ", token_columns!(), " FROM tokens WHERE digest = ?");
            first(conn, sql, [digest.as_bytes().as_slice()], |row| {
                rows::token(row)
            })
            .map_err(from_rusqlite)?
            .transpose()
        })
    }

    async fn rotate_refresh(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> Result<Rotation, StoreError> {
        self.write(|reply| Op::RotateRefresh {
            old: *old,
            new: new.clone(),
            now,
            reply,
        })
        .await
    }

    async fn revoke_family(&self, family: &FamilyId) -> Result<u64, StoreError> {
        self.write(|reply| Op::RevokeFamily(family.clone(), reply))
            .await
    }

    async fn revoke_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        self.write(|reply| Op::RevokeToken(*digest, reply)).await
    }

    async fn delete_tokens_of(&self, owner: &TokenOwner) -> Result<u64, StoreError> {
        self.write(|reply| Op::DeleteTokensOf(owner.clone(), reply))
            .await
    }

    async fn revoke_tokens_of_grant(
        &self,
        client_id: &str,
        subject: &str,
    ) -> Result<u64, StoreError> {
        self.write(|reply| Op::RevokeGrant {
            client_id: client_id.to_owned(),
            subject: subject.to_owned(),
            reply,
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.inner.writes.is_closed() {
            return Err(unavailable("the SQLite store is closed"));
        }
        self.inner.readers.read(|conn| {
            first(conn, "SELECT 1", [], |_| ()).map_err(from_rusqlite)?;
            Ok(())
        })
    }
}

impl CodeStore for SqliteStore {
    async fn save_code(&self, code: &CodeRecord, now: UnixTime) -> Result<(), StoreError> {
        self.write(|reply| Op::SaveCode(code.clone(), now, reply))
            .await
    }

    async fn take_code(
        &self,
        digest: &Digest,
        client_id: &ClientId,
        now: UnixTime,
    ) -> Result<CodeTake, StoreError> {
        self.write(|reply| Op::TakeCode(*digest, client_id.clone(), now, reply))
            .await
    }
}

impl ConsentStore for SqliteStore {
    async fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        self.inner.readers.read(|conn| {
            let sql = "SELECT scope FROM consents WHERE subject = ? AND client_id = ?";
            first(conn, sql, [subject, client_id], |row| {
                rows::scope(&rows::Columns::text(row, "scope")?)
            })
            .map_err(from_rusqlite)?
            .transpose()
        })
    }

    async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        scope: &ScopeSet,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.write(|reply| Op::PutConsent {
            subject: subject.to_owned(),
            client_id: client_id.to_owned(),
            scope: scope.to_string(),
            now,
            reply,
        })
        .await
    }

    async fn revoke_consent(&self, subject: &str, client_id: &str) -> Result<bool, StoreError> {
        self.write(|reply| Op::RevokeConsent {
            subject: subject.to_owned(),
            client_id: client_id.to_owned(),
            reply,
        })
        .await
    }

    async fn list_consents(&self, subject: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        self.inner.readers.read(|conn| {
            let sql = "SELECT client_id, scope, granted_at FROM consents WHERE subject = ?1
                       ORDER BY client_id";
            all_with(conn, sql, [subject], |row| rows::consent(row))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_db(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!(
            "latchkey-sql-unit-{name}-{}-{:?}.db",
            std::process::id(),
            std::thread::current().id()
        ));
        remove_db(&path);
        path
    }

    fn remove_db(path: &Path) {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }

    fn new_client(id: &str) -> Client {
        latchkey_core::client::NewClient::confidential("cached")
            .id(id)
            .build(&latchkey_core::entropy::OsEntropy, UnixTime(1_000))
            .0
    }

    /// Two stores on one file stand for the server and the CLI run beside it: each has its
    /// own connections and its own cache, as two processes do.
    #[tokio::test]
    async fn a_cached_client_changed_or_deleted_elsewhere_is_read_anew_at_once() {
        let path = temp_db("client-cache");
        let server = SqliteStore::open(&path).await.expect("open");
        let cli = SqliteStore::open(&path).await.expect("open");
        let client = new_client("svc-1");
        cli.put_client(&client).await.expect("put");

        let read = server.get_client("svc-1").await.expect("read");
        assert_eq!(read.as_ref(), Some(&client));
        assert_eq!(server.inner.clients.len(), 1, "the client is cached");
        assert_eq!(
            server.get_client("svc-1").await.expect("read").as_ref(),
            Some(&client)
        );

        // The other store rotates the secret: the next read has the new digest.
        let rotated = Client {
            secret_digest: new_client("svc-1").secret_digest,
            ..client.clone()
        };
        assert_ne!(rotated.secret_digest, client.secret_digest);
        cli.put_client(&rotated).await.expect("rotate");
        let read = server.get_client("svc-1").await.expect("read");
        assert_eq!(read.map(|c| c.secret_digest), Some(rotated.secret_digest));

        // A change to another client empties the cache too (one counter for the table).
        server.get_client("svc-1").await.expect("read");
        cli.put_client(&new_client("svc-2")).await.expect("put");
        server.get_client("svc-2").await.expect("read");
        assert_eq!(server.inner.clients.len(), 1, "emptied, then svc-2 only");

        // Deleted elsewhere: gone at the next read.
        server.get_client("svc-1").await.expect("read");
        assert!(cli.delete_client("svc-1").await.expect("delete"));
        assert_eq!(server.get_client("svc-1").await.expect("read"), None);

        // The store's own writes move the counter as well.
        server.put_client(&client).await.expect("put");
        server.get_client("svc-1").await.expect("read");
        server.put_client(&rotated).await.expect("rotate");
        let read = server.get_client("svc-1").await.expect("read");
        assert_eq!(read.map(|c| c.secret_digest), Some(rotated.secret_digest));

        // Unknown ids are not cached.
        let before = server.inner.clients.len();
        assert_eq!(server.get_client("no-such").await.expect("read"), None);
        assert_eq!(server.inner.clients.len(), before);

        server.close().await;
        cli.close().await;
        remove_db(&path);
    }

    /// A change made outside the store, as with the `sqlite3` shell, reaches the cache
    /// through the triggers.
    #[tokio::test]
    async fn a_client_changed_by_hand_in_sql_is_read_anew() {
        let path = temp_db("client-cache-sql");
        let store = SqliteStore::open(&path).await.expect("open");
        store.put_client(&new_client("svc-1")).await.expect("put");
        let read = store
            .get_client("svc-1")
            .await
            .expect("read")
            .expect("client");
        assert_eq!(read.name, "cached");
        let shell = Connection::open(&path).expect("open");
        shell.busy_timeout(BUSY_TIMEOUT).expect("busy timeout");
        shell
            .execute("UPDATE clients SET name = 'renamed' WHERE id = 'svc-1'", [])
            .expect("update");
        drop(shell);
        let read = store
            .get_client("svc-1")
            .await
            .expect("read")
            .expect("client");
        assert_eq!(read.name, "renamed");
        store.close().await;
        remove_db(&path);
    }

    #[tokio::test]
    async fn open_makes_a_durable_wal_file_that_waits_for_locks() {
        let path = std::env::temp_dir().join(format!(
            "latchkey-sql-unit-{}-{:?}.db",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_file(&path);
        let store = SqliteStore::open(&path).await.expect("open");
        let pragma = |sql: &'static str| -> String {
            store
                .inner
                .readers
                .read(|conn| {
                    conn.query_row(sql, [], |row| row.get::<_, rusqlite::types::Value>(0))
                        .map(|value| format!("{value:?}"))
                        .map_err(from_rusqlite)
                })
                .expect(sql)
        };
        assert_eq!(pragma("PRAGMA journal_mode"), r#"Text("wal")"#);
        // 2 is FULL: the WAL is synced at every commit.
        assert_eq!(pragma("PRAGMA synchronous"), "Integer(2)");
        assert_eq!(pragma("PRAGMA busy_timeout"), "Integer(5000)");
        assert_eq!(pragma("PRAGMA foreign_keys"), "Integer(1)");
        // Readers cannot write, not even by mistake.
        assert_eq!(pragma("PRAGMA query_only"), "Integer(1)");
        let versions = store
            .inner
            .readers
            .read(|conn| {
                all(
                    conn,
                    "SELECT version FROM latchkey_schema_migrations ORDER BY version",
                    |row| rows::Columns::int(row, "version"),
                )
            })
            .expect("versions");
        let known: Vec<i64> = super::migrate::MIGRATIONS
            .iter()
            .map(|m| m.version)
            .collect();
        assert_eq!(versions, known);
        store.close().await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
        }
    }
}
