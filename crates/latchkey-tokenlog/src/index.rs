//! The in-memory index of live tokens: a fixed-size entry per token in a slab that grows by
//! chunks, found by digest and by family through sharded hash tables that hold only slot
//! numbers.
//!
//! Nothing here is boxed per token. A table grows by rehashing itself, which on one table of a
//! million slots would stall every request for tens of milliseconds; split into [`SHARDS`]
//! tables, each growth moves 1/256 of the slots. The slab never moves an entry: it adds a
//! chunk. The record itself (scope, subject, attached data…) stays in the log file and is read
//! back by offset when a token is looked up.

use hashbrown::HashTable;

/// How many hash tables the digest and family lookups are split into.
pub(crate) const SHARDS: usize = 256;
/// Entries per slab chunk.
const CHUNK: usize = 8192;

/// Flag: the token is revoked.
pub(crate) const REVOKED: u8 = 1;
/// Flag: the refresh token was exchanged.
pub(crate) const ROTATED: u8 = 2;
/// Flag: the token is a refresh token (else an access token).
pub(crate) const REFRESH: u8 = 4;
/// Flag: the slot holds a token (free slots have it clear).
const OCCUPIED: u8 = 0x80;

/// One live token, in 72 bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Entry {
    /// SHA-256 of the token value.
    pub digest: [u8; 32],
    /// Keyed hash of the family id.
    pub family: u64,
    /// Keyed hash of the subject; 0 when the token has none.
    pub subject: u64,
    /// The segment holding the token's `PUT` operation.
    pub seg: u32,
    /// Where in the segment the operation starts.
    pub off: u32,
    /// The operation's length.
    pub len: u32,
    /// When the token expires, in Unix seconds.
    pub expires: u32,
    /// The interned client id.
    pub client: u32,
    /// [`REVOKED`], [`ROTATED`], [`REFRESH`].
    pub flags: u8,
}

impl Entry {
    /// Whether the token may still be used at `now` (Unix seconds).
    pub fn active(&self, now: u32) -> bool {
        self.flags & (REVOKED | ROTATED) == 0 && self.expires > now
    }
}

/// The digest's own bits as its hash: token digests are SHA-256 outputs of server-made random
/// values, so they are uniform already; the table compares whole digests on lookup.
fn digest_hash(digest: &[u8; 32]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&digest[8..16]);
    u64::from_le_bytes(word)
}

/// Every live token, by digest and by family.
#[derive(Default)]
pub(crate) struct Index {
    chunks: Vec<Box<[Entry]>>,
    /// Slots handed out so far (free ones included).
    used: u32,
    free: Vec<u32>,
    by_digest: Vec<HashTable<u32>>,
    by_family: Vec<HashTable<u32>>,
    live: usize,
}

impl Index {
    /// An empty index.
    pub fn new() -> Self {
        Self {
            by_digest: (0..SHARDS).map(|_| HashTable::new()).collect(),
            by_family: (0..SHARDS).map(|_| HashTable::new()).collect(),
            ..Self::default()
        }
    }

    /// How many tokens are indexed.
    pub fn len(&self) -> usize {
        self.live
    }

    /// The entry in `slot`.
    pub fn entry(&self, slot: u32) -> &Entry {
        &self.chunks[slot as usize / CHUNK][slot as usize % CHUNK]
    }

    fn entry_mut(&mut self, slot: u32) -> &mut Entry {
        &mut self.chunks[slot as usize / CHUNK][slot as usize % CHUNK]
    }

    /// The slot of the token with `digest`.
    pub fn find(&self, digest: &[u8; 32]) -> Option<u32> {
        let chunks = &self.chunks;
        self.by_digest[digest[0] as usize]
            .find(digest_hash(digest), |&slot| {
                chunks[slot as usize / CHUNK][slot as usize % CHUNK].digest == *digest
            })
            .copied()
    }

    /// Makes room for `additional` more tokens at once, so that loading a known number of
    /// them (a checkpoint) does not grow every table step by step, rehashing as it goes.
    pub fn reserve(&mut self, additional: usize) {
        let per_shard = additional / SHARDS + additional / SHARDS / 4 + 1;
        let chunks = &self.chunks;
        let at = |s: u32| &chunks[s as usize / CHUNK][s as usize % CHUNK];
        for table in &mut self.by_digest {
            table.reserve(per_shard, |&s| digest_hash(&at(s).digest));
        }
        for table in &mut self.by_family {
            table.reserve(per_shard, |&s| at(s).family);
        }
    }

    /// Sets the flags in `flags` on the token in `slot`.
    pub fn set_flags(&mut self, slot: u32, flags: u8) {
        self.entry_mut(slot).flags |= flags;
    }

    /// Indexes `entry`, replacing the token with the same digest; returns the entry replaced.
    pub fn insert(&mut self, mut entry: Entry) -> Option<Entry> {
        entry.flags |= OCCUPIED;
        if let Some(slot) = self.find(&entry.digest) {
            let old = *self.entry(slot);
            if old.family != entry.family {
                self.unlink_family(slot, old.family);
                self.link_family(slot, entry.family);
            }
            *self.entry_mut(slot) = entry;
            return Some(old);
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                if self.used as usize == self.chunks.len() * CHUNK {
                    self.chunks
                        .push(vec![Entry::default(); CHUNK].into_boxed_slice());
                }
                self.used += 1;
                self.used - 1
            }
        };
        *self.entry_mut(slot) = entry;
        let chunks = &self.chunks;
        self.by_digest[entry.digest[0] as usize].insert_unique(
            digest_hash(&entry.digest),
            slot,
            |&s| digest_hash(&chunks[s as usize / CHUNK][s as usize % CHUNK].digest),
        );
        self.link_family(slot, entry.family);
        self.live += 1;
        None
    }

    fn link_family(&mut self, slot: u32, family: u64) {
        let chunks = &self.chunks;
        self.by_family[(family >> 56) as usize].insert_unique(family, slot, |&s| {
            chunks[s as usize / CHUNK][s as usize % CHUNK].family
        });
    }

    fn unlink_family(&mut self, slot: u32, family: u64) {
        if let Ok(found) =
            self.by_family[(family >> 56) as usize].find_entry(family, |&s| s == slot)
        {
            found.remove();
        }
    }

    /// Forgets the token in `slot` and returns it.
    pub fn remove(&mut self, slot: u32) -> Entry {
        let entry = *self.entry(slot);
        if let Ok(found) = self.by_digest[entry.digest[0] as usize]
            .find_entry(digest_hash(&entry.digest), |&s| s == slot)
        {
            found.remove();
        }
        self.unlink_family(slot, entry.family);
        *self.entry_mut(slot) = Entry::default();
        self.free.push(slot);
        self.live -= 1;
        entry
    }

    /// The slots of the tokens whose family hashes to `family`.
    pub fn family(&self, family: u64) -> Vec<u32> {
        let chunks = &self.chunks;
        self.by_family[(family >> 56) as usize]
            .iter_hash(family)
            .copied()
            .filter(|&s| chunks[s as usize / CHUNK][s as usize % CHUNK].family == family)
            .collect()
    }

    /// The slots of the tokens `keep` says no to, among every indexed token. Scans the slab:
    /// for the rare operations that select by owner (a client or user deleted, consent
    /// withdrawn).
    pub fn select(&self, mut pick: impl FnMut(&Entry) -> bool) -> Vec<u32> {
        let mut out = Vec::new();
        for slot in 0..self.used {
            let entry = self.entry(slot);
            if entry.flags & OCCUPIED != 0 && pick(entry) {
                out.push(slot);
            }
        }
        out
    }

    /// The slots of shard `shard` of the digest tables whose entries `pick` selects: lets a
    /// sweep go one shard at a time, each a short step.
    pub fn select_shard(&self, shard: usize, mut pick: impl FnMut(&Entry) -> bool) -> Vec<u32> {
        self.by_digest[shard]
            .iter()
            .copied()
            .filter(|&s| pick(self.entry(s)))
            .collect()
    }

    /// The slots in slab chunk `chunk` whose entries `pick` selects (`None` past the last
    /// chunk): lets compaction go one chunk at a time.
    pub fn select_chunk(
        &self,
        chunk: usize,
        mut pick: impl FnMut(&Entry) -> bool,
    ) -> Option<Vec<u32>> {
        let entries = self.chunks.get(chunk)?;
        Some(
            entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.flags & OCCUPIED != 0 && pick(e))
                .map(|(i, _)| (chunk * CHUNK + i) as u32)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, family: u64) -> Entry {
        let mut digest = [n; 32];
        digest[0] = n.wrapping_mul(7);
        Entry {
            digest,
            family,
            expires: 100,
            ..Entry::default()
        }
    }

    #[test]
    fn finds_replaces_and_removes() {
        let mut index = Index::new();
        for n in 0..200u8 {
            assert!(index.insert(entry(n, u64::from(n % 3))).is_none());
        }
        assert_eq!(index.len(), 200);
        let slot = index.find(&entry(5, 0).digest).expect("indexed");
        assert_eq!(index.entry(slot).digest, entry(5, 0).digest);
        assert_eq!(index.family(2).len(), 66);
        // Replacing moves the token to its new family and keeps one entry.
        assert!(index.insert(entry(5, 9)).is_some());
        assert_eq!(index.len(), 200);
        assert_eq!(index.family(9), vec![slot]);
        assert_eq!(index.family(2).len(), 65);
        index.remove(slot);
        assert_eq!(index.find(&entry(5, 0).digest), None);
        assert!(index.family(9).is_empty());
        // The freed slot is reused.
        index.insert(entry(250, 1));
        assert_eq!(index.find(&entry(250, 1).digest), Some(slot));
        assert_eq!(index.select(|e| e.family == 1).len(), 68);
    }
}
