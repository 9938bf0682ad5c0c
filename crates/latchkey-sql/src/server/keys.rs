//! Signing keys on a database server ([`KeyStore`] for [`SqlxStore`]). A guarded update is one
//! transaction that first bumps the generation row `WHERE generation = ?`: the row lock makes
//! a concurrent update from another node wait, then find the generation moved and change
//! nothing.

use super::dialect::{Dialect, upsert};
use super::{SqlxStore, commit, execute, rollback};
use crate::key_rows::{
    self, BUMP_GENERATION, DELETE_KEY, SELECT_GENERATION, SELECT_KEYS, UPDATED_COLUMNS,
    signing_key_columns,
};
use crate::rows::{Columns, args};
use latchkey_core::store::{KeyStore, KeyUpdate, StoreError, StoredKeys};

impl<D: Dialect> KeyStore for SqlxStore<D> {
    async fn list_keys(&self) -> Result<StoredKeys, StoreError> {
        // The generation first: a change landing between the two reads fails the caller's
        // guarded write instead of being half seen.
        let generation = match self.fetch_optional(SELECT_GENERATION, &[]).await? {
            Some(row) => row.int("generation")?,
            None => 0,
        };
        let rows = self.fetch_all(SELECT_KEYS, &[]).await?;
        Ok(StoredKeys {
            generation: key_rows::generation(generation),
            keys: rows
                .iter()
                .map(key_rows::signing_key)
                .collect::<Result<_, _>>()?,
        })
    }

    async fn update_keys_if_current(
        &self,
        generation: u64,
        update: &KeyUpdate,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin().await?;
        let bumped = execute::<D>(
            &mut tx,
            BUMP_GENERATION,
            &args![key_rows::generation_arg(generation)],
        )
        .await?;
        if bumped == 0 {
            rollback::<D>(tx).await?;
            return Ok(false);
        }
        let insert = concat!(
            "INSERT INTO signing_keys (",
            signing_key_columns!(),
            ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        .to_owned()
            + &upsert::<D>("kid", &UPDATED_COLUMNS);
        for key in &update.put {
            execute::<D>(&mut tx, insert.clone(), &key_rows::signing_key_args(key)).await?;
        }
        for kid in &update.delete {
            execute::<D>(&mut tx, DELETE_KEY, &args![kid.as_str()]).await?;
        }
        commit::<D>(tx).await?;
        Ok(true)
    }
}
