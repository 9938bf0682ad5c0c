//! The read side of the SQLite store: a small pool of read-only connections, used inline.
//!
//! A read takes an idle connection (or opens one if none is free), runs its query right there
//! on the caller's thread with a cached statement, and puts the connection back. In WAL mode a
//! reader sees the last commit and never waits for the writer, and a point read by primary key
//! costs a few microseconds of CPU, less than waking another thread to run it would (sqlx's
//! SQLite driver hops to a worker thread for every statement). The one case where a read can
//! block is SQLite waiting up to the busy timeout for another process that is recovering the
//! WAL, which is rare and bounded.
//!
//! Connections are opened with `query_only`, so a mistake here is an error, not a second
//! writer racing the group-commit one.

use super::connect as connect_file;
use crate::error::{from_rusqlite, unavailable};
use latchkey_core::store::StoreError;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Idle read connections kept for the next read; more are opened under a burst of
/// concurrent reads and closed again when they come back to a full pool.
const MAX_IDLE: usize = 4;

/// The pool of read-only connections of one store.
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Set by [`Readers::close`]: reads are refused, connections that come back are closed.
    closed: AtomicBool,
}

impl Readers {
    /// A pool for the file at `path`, starting with the connection `first`.
    pub(super) fn new(path: PathBuf, first: Connection) -> Self {
        Self {
            path,
            idle: Mutex::new(vec![first]),
            closed: AtomicBool::new(false),
        }
    }

    /// Runs `query` on a read connection, on this thread.
    pub(super) fn read<T>(
        &self,
        query: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(unavailable("the SQLite store is closed"));
        }
        let idle = self.lock().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => connect(&self.path).map_err(from_rusqlite)?,
        };
        let answer = query(&conn);
        self.put_back(conn);
        answer
    }

    /// Closes every idle connection and refuses later reads; a read still running closes
    /// its connection when it is done.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let idle = std::mem::take(&mut *self.lock());
        for conn in idle {
            close(conn);
        }
    }

    fn put_back(&self, conn: Connection) {
        // A read leaves no transaction open; a connection that has one is not reused.
        let reusable = conn.is_autocommit() && !self.closed.load(Ordering::Acquire);
        let surplus = if reusable {
            let mut idle = self.lock();
            if idle.len() < MAX_IDLE {
                idle.push(conn);
                None
            } else {
                Some(conn)
            }
        } else {
            Some(conn)
        };
        // Closed outside the lock: closing is a system call or two.
        if let Some(conn) = surplus {
            close(conn);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        // The lock only guards a push or a pop, which cannot leave the list half changed.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Opens a read-only connection to the store's file.
pub(super) fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let conn = connect_file(path, OpenFlags::empty())?;
    conn.pragma_update(None, "query_only", "ON")?;
    Ok(conn)
}

fn close(conn: Connection) {
    if let Err((_, err)) = conn.close() {
        tracing::warn!(error = %err, "closing a SQLite read connection failed");
    }
}
