//! Online backups of the embedded store: a consistent copy of the database file taken while
//! the server keeps writing, and the check a copy must pass before it is restored.
//!
//! The copy is SQLite's `VACUUM INTO` on a connection of its own: it reads one snapshot of the
//! database (in WAL mode the writer goes on committing meanwhile, and nothing it commits after
//! the snapshot began is in the copy) and writes it, compacted, to a new file. A copy is only
//! ever a whole, committed state.

use super::{connect, create_private};
use crate::error::from_rusqlite;
use latchkey_core::store::{StoreError, StoreErrorKind};
use rusqlite::OpenFlags;
use std::path::Path;

/// What a database file holds, as far as a backup cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DatabaseInfo {
    /// The newest schema migration applied to it.
    pub schema_version: i64,
}

/// Writes a consistent copy of the database at `source` to `dest`, a file that must not exist
/// yet (created readable by its owner only: it holds password and secret hashes), and returns
/// what the copy holds. The store at `source` may be open and in use by a server meanwhile.
pub fn snapshot(source: &Path, dest: &Path) -> Result<DatabaseInfo, StoreError> {
    if dest.exists() {
        return Err(StoreError::new(
            StoreErrorKind::Conflict,
            format_args!("{} exists already", dest.display()),
        ));
    }
    if !source.exists() {
        return Err(StoreError::new(
            StoreErrorKind::Other,
            format_args!("there is no store at {}", source.display()),
        ));
    }
    // An empty private file first, so that the copy is never readable by others, not even
    // while it is being written; VACUUM INTO writes into an existing empty file.
    create_private(dest)?;
    let conn = connect(source, OpenFlags::empty()).map_err(from_rusqlite)?;
    let dest_text = dest.to_str().ok_or_else(|| {
        StoreError::new(StoreErrorKind::Other, "the backup path is not valid UTF-8")
    })?;
    if let Err(err) = conn.execute("VACUUM INTO ?1", [dest_text]) {
        let _ = std::fs::remove_file(dest);
        return Err(from_rusqlite(err));
    }
    drop(conn);
    check(dest)
}

/// Checks a database file before it is used: SQLite's `integrity_check` passes and it carries
/// Latchkey's schema. The file is opened read-only and not changed.
pub fn check(path: &Path) -> Result<DatabaseInfo, StoreError> {
    let corrupt = |why: String| StoreError::new(StoreErrorKind::Corrupt, why);
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(from_rusqlite)?;
    let verdict: String = conn
        .query_row("PRAGMA integrity_check(1)", [], |row| row.get(0))
        .map_err(|e| corrupt(format!("{}: {e}", path.display())))?;
    if verdict != "ok" {
        return Err(corrupt(format!(
            "{} fails SQLite's integrity check: {verdict}",
            path.display()
        )));
    }
    let schema_version: Option<i64> = conn
        .query_row(
            "SELECT max(version) FROM latchkey_schema_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(|e| corrupt(format!("{} is not a Latchkey store: {e}", path.display())))?;
    let schema_version = schema_version
        .ok_or_else(|| corrupt(format!("{} has no schema version", path.display())))?;
    Ok(DatabaseInfo { schema_version })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sqlite::SqliteStore;
    use latchkey_core::client::NewClient;
    use latchkey_core::store::ClientStore;

    #[tokio::test]
    async fn a_snapshot_of_an_open_store_holds_its_data_and_passes_the_check() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("latchkey.db");
        let store = SqliteStore::open(&db).await.expect("open");
        let client = NewClient::public("backup-test")
            .build(
                &latchkey_core::entropy::OsEntropy,
                latchkey_core::clock::UnixTime(1),
            )
            .0;
        store.put_client(&client).await.expect("put");
        let copy = dir.path().join("copy.db");
        let info = snapshot(&db, &copy).expect("snapshot while open");
        let newest = crate::sqlite::migrate::MIGRATIONS.last().map(|m| m.version);
        assert_eq!(Some(info.schema_version), newest);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&copy).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "the copy is private: {mode:o}");
        }
        store.close().await;
        let restored = SqliteStore::open(&copy).await.expect("the copy opens");
        assert_eq!(
            restored.get_client(client.id.as_str()).await.expect("get"),
            Some(client)
        );
        restored.close().await;

        assert_eq!(
            snapshot(&db, &copy).expect_err("exists").kind(),
            StoreErrorKind::Conflict,
            "a backup never overwrites a file"
        );
        let garbage = dir.path().join("garbage.db");
        std::fs::write(&garbage, b"SQLite format 3\0 but not really").expect("write");
        assert!(check(&garbage).is_err());
        let empty = dir.path().join("empty.db");
        rusqlite::Connection::open(&empty)
            .and_then(|c| c.execute_batch("CREATE TABLE t (x)"))
            .expect("another database");
        assert_eq!(
            check(&empty).expect_err("not ours").kind(),
            StoreErrorKind::Corrupt
        );
    }
}
