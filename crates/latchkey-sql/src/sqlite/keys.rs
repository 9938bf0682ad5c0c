//! Signing keys on SQLite ([`KeyStore`] for [`SqliteStore`]): the list is read inline on the
//! read pool, and a guarded update is one write of the group-commit writer, so comparing the
//! generation, writing the keys and bumping it happen in one transaction.

use super::writer::{Answer, Op, Reply, change};
use super::{SqliteStore, all, first};
use crate::error::from_rusqlite;
use crate::key_rows::{
    self, BUMP_GENERATION, DELETE_KEY, SELECT_GENERATION, SELECT_KEYS, signing_key_columns,
};
use latchkey_core::store::{KeyStore, KeyUpdate, StoreError, StoredKeys};
use rusqlite::{Connection, params_from_iter};

/// A write of the key store, run by the writer inside a batch, with its reply.
#[derive(Debug)]
pub(crate) struct Write {
    generation: u64,
    update: KeyUpdate,
    reply: Reply<bool>,
}

impl Write {
    /// The write's reply.
    pub(crate) fn answer(&mut self) -> &mut dyn Answer {
        &mut self.reply
    }
}

/// Runs one guarded update inside the writer's transaction: nothing is written unless the
/// generation still matches.
pub(crate) fn apply(conn: &Connection, write: &mut Write) -> rusqlite::Result<()> {
    let bumped = change(
        conn,
        BUMP_GENERATION,
        [key_rows::generation_arg(write.generation)],
    )?;
    if bumped == 0 {
        return write.reply.set(Ok(false));
    }
    for key in &write.update.put {
        change(
            conn,
            concat!(
                "INSERT OR REPLACE INTO signing_keys (",
                signing_key_columns!(),
                ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ),
            params_from_iter(key_rows::signing_key_args(key)),
        )?;
    }
    for kid in &write.update.delete {
        change(conn, DELETE_KEY, [kid.as_str()])?;
    }
    write.reply.set(Ok(true))
}

impl KeyStore for SqliteStore {
    async fn list_keys(&self) -> Result<StoredKeys, StoreError> {
        self.inner.readers.read(|conn| {
            let generation = first(conn, SELECT_GENERATION, [], |row| row.get::<_, i64>(0))
                .map_err(from_rusqlite)?
                .transpose()
                .map_err(from_rusqlite)?
                .unwrap_or(0);
            Ok(StoredKeys {
                generation: key_rows::generation(generation),
                keys: all(conn, SELECT_KEYS, |row| key_rows::signing_key(row))?,
            })
        })
    }

    async fn update_keys_if_current(
        &self,
        generation: u64,
        update: &KeyUpdate,
    ) -> Result<bool, StoreError> {
        self.write(|reply| {
            Op::Keys(Write {
                generation,
                update: update.clone(),
                reply,
            })
        })
        .await
    }
}
