//! The signing keys' store ([`KeyStore`]): few records, long-lived, shared by every node.
//!
//! Every change to the set is guarded by a generation number: a node reads the keys and their
//! generation, plans (see [`crate::jose::rotation`]), and writes only if nobody changed the set
//! meanwhile. Two nodes rotating at once therefore never both create a key: the second one's
//! write is refused, it reads again and finds nothing left to do.
//!
//! Keys live in the durable store (SQL, or memory), never in a fast one that may evict them: a
//! lost key would make every token it signed unverifiable.

use super::StoreError;
use crate::jose::SigningKey;
use std::collections::BTreeMap;
use std::future::Future;

/// The stored keys and the generation of the set they form.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredKeys {
    /// Bumped by every successful [`KeyStore::update_keys_if_current`].
    pub generation: u64,
    /// Every stored key, ordered by `kid`.
    pub keys: Vec<SigningKey>,
}

/// One change of the key set, written all or nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyUpdate {
    /// Records to insert, or to replace (same `kid`).
    pub put: Vec<SigningKey>,
    /// `kid`s of records to delete.
    pub delete: Vec<String>,
}

impl KeyUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.put.is_empty() && self.delete.is_empty()
    }
}

/// The provider's signing keys (see [`crate::jose`]).
pub trait KeyStore: Send + Sync + 'static {
    /// Every stored key, ordered by `kid`, and the generation of the set.
    fn list_keys(&self) -> impl Future<Output = Result<StoredKeys, StoreError>> + Send;

    /// In one atomic step: if the set's generation is still `generation`, applies `update`
    /// (upserts, then deletes) and bumps the generation, returning `true`; otherwise changes
    /// nothing and returns `false`, and the caller reads the keys again.
    fn update_keys_if_current(
        &self,
        generation: u64,
        update: &KeyUpdate,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// An in-memory key set with its generation: the [`KeyStore`] of the memory store, and the
/// rule every backend follows (compare the generation, upsert, delete, bump).
#[derive(Clone, Debug, Default)]
pub(crate) struct KeyTable {
    generation: u64,
    keys: BTreeMap<String, SigningKey>,
}

impl KeyTable {
    pub(crate) fn list(&self) -> StoredKeys {
        StoredKeys {
            generation: self.generation,
            keys: self.keys.values().cloned().collect(),
        }
    }

    pub(crate) fn update_if_current(&mut self, generation: u64, update: &KeyUpdate) -> bool {
        if generation != self.generation {
            return false;
        }
        for key in &update.put {
            self.keys.insert(key.kid.clone(), key.clone());
        }
        for kid in &update.delete {
            self.keys.remove(kid);
        }
        self.generation = self.generation.wrapping_add(1);
        true
    }
}
