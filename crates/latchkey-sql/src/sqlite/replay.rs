//! The replay cache on SQLite ([`ReplayStore`] for [`SqliteStore`]): remembering a key is one
//! upsert through the group-commit writer that overwrites only an expired row, so it reports
//! a changed row exactly when the key was fresh. The OAuth 1.0a nonce check is the same write
//! on its own table ([`Table::OAuth1Nonces`]), so nonces a database already holds keep being
//! refused; each batch that carries a `now` sweeps expired keys.

use super::SqliteStore;
use super::writer::{Op, Reply, change, sweep_limit};
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::{ReplayStore, StoreError};
use rusqlite::{Connection, params};

/// Where a key is remembered.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Table {
    /// `replay_keys`: client-assertion and DPoP `jti`s.
    ReplayKeys,
    /// `oauth1_nonces`: OAuth 1.0a nonces, in the table they always had.
    OAuth1Nonces,
}

impl Table {
    /// The upsert that remembers a key (a literal per table, so its prepared statement is
    /// cached).
    fn upsert(self) -> &'static str {
        match self {
            Self::ReplayKeys => {
                "INSERT INTO replay_keys (digest, expires_at) VALUES (?, ?)
                 ON CONFLICT (digest) DO UPDATE SET expires_at = excluded.expires_at
                 WHERE replay_keys.expires_at <= ?"
            }
            Self::OAuth1Nonces => {
                "INSERT INTO oauth1_nonces (digest, expires_at) VALUES (?, ?)
                 ON CONFLICT (digest) DO UPDATE SET expires_at = excluded.expires_at
                 WHERE oauth1_nonces.expires_at <= ?"
            }
        }
    }
}

/// Remember `key` in `table` until `expires_at`, run by the writer inside a batch.
#[derive(Debug)]
pub(crate) struct Remember {
    pub(crate) table: Table,
    pub(crate) key: Digest,
    pub(crate) expires_at: UnixTime,
    pub(crate) now: UnixTime,
    pub(crate) reply: Reply<bool>,
}

/// Runs one [`Remember`] inside the writer's transaction and records its answer.
pub(crate) fn apply(conn: &Connection, write: &mut Remember) -> rusqlite::Result<()> {
    // A remembered key that has expired (but was not swept yet) counts as new.
    let inserted = change(
        conn,
        write.table.upsert(),
        params![
            write.key.as_bytes().as_slice(),
            write.expires_at.0,
            write.now.0
        ],
    )?;
    write.reply.set(Ok(inserted == 1))
}

/// Deletes up to [`sweep_limit!`] expired rows of `replay_keys` (`oauth1_nonces` is swept
/// with the OAuth 1.0a tables).
pub(crate) fn sweep(conn: &Connection, now: UnixTime) -> rusqlite::Result<()> {
    change(
        conn,
        concat!(
            "DELETE FROM replay_keys WHERE rowid IN
                 (SELECT rowid FROM replay_keys WHERE expires_at <= ? LIMIT ",
            sweep_limit!(),
            ")"
        ),
        [now.0],
    )?;
    Ok(())
}

impl SqliteStore {
    /// Remembers `key` in `table` through the writer; `false` if it is alive there.
    pub(crate) async fn remember_in(
        &self,
        table: Table,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.write(|reply| {
            Op::Remember(Remember {
                table,
                key: *key,
                expires_at,
                now,
                reply,
            })
        })
        .await
    }
}

impl ReplayStore for SqliteStore {
    async fn remember_once(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.remember_in(Table::ReplayKeys, key, expires_at, now)
            .await
    }
}
