//! The replay cache on a database server ([`ReplayStore`] for [`SqlxStore`]): a key is an
//! insert that the primary key refuses while the remembered key is alive. The OAuth 1.0a
//! nonce check ([`latchkey_core::store::oauth1::OAuth1Store::insert_nonce`]) is the same step
//! on its own table, through [`SqlxStore::remember_in`]: one path, two tables, so that the
//! nonces a database already holds keep being refused.

use super::dialect::{Dialect, Upsert};
use super::{SqlxStore, commit, execute};
use crate::rows::args;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::{ReplayStore, StoreError};

impl<D: Dialect> SqlxStore<D> {
    /// Remembers `key` in `table` (columns `digest`, `expires_at`) until `expires_at`; `false`
    /// if it is remembered and alive at `now`. Then sweeps expired rows of `table`.
    pub(super) async fn remember_in(
        &self,
        table: &'static str,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        // A remembered key that has expired (but was not swept yet) counts as new.
        let inserted = match D::UPSERT {
            // One statement: the upsert overwrites only an expired row, and reports a row
            // only when it inserted or overwrote.
            Upsert::OnConflict => {
                let sql = format!(
                    "INSERT INTO {table} (digest, expires_at) VALUES (?, ?)
                     ON CONFLICT (digest) DO UPDATE SET expires_at = EXCLUDED.expires_at
                     WHERE {table}.expires_at <= ?"
                );
                self.execute(sql, &args![key, expires_at.0, now.0]).await?
            }
            // ON DUPLICATE KEY cannot tell an insert from a row left alone, so: forget an
            // expired row of the same key, then insert unless the primary key refuses.
            Upsert::OnDuplicateKey => {
                let mut tx = self.begin().await?;
                let forget = format!("DELETE FROM {table} WHERE digest = ? AND expires_at <= ?");
                execute::<D>(&mut tx, forget, &args![key, now.0]).await?;
                let insert =
                    format!("INSERT IGNORE INTO {table} (digest, expires_at) VALUES (?, ?)");
                let inserted = execute::<D>(&mut tx, insert, &args![key, expires_at.0]).await?;
                commit::<D>(tx).await?;
                inserted
            }
        };
        self.sweep(table, now).await;
        Ok(inserted == 1)
    }
}

impl<D: Dialect> ReplayStore for SqlxStore<D> {
    async fn remember_once(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.remember_in("replay_keys", key, expires_at, now).await
    }
}
