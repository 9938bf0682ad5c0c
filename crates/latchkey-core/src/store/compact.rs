//! A compact index of live tokens: a fixed-size entry per token in a slab that grows by
//! chunks, found by digest and by family through sharded hash tables that hold only slot
//! numbers. The memory store and the token log both keep their tokens in it, each with its own
//! entry type ([`CompactEntry`]).
//!
//! A family's tokens are a doubly linked list through the slots (two `u32` beside each
//! entry), and its table holds one slot per family, the list's head: a refresh family that
//! keeps thousands of rotated tokens until they expire costs one probe to add, remove or
//! find a token, not a walk past every token of the family under the same hash.
//!
//! Nothing here is boxed per token. A table grows by rehashing itself, which on one table of a
//! million slots would stall every request for tens of milliseconds; split into [`SHARDS`]
//! tables, each growth moves 1/256 of the slots. The slab never moves an entry: it adds a
//! chunk. Which slots hold a token is kept in a bitmap beside each chunk, so an entry type
//! needs no "free" marker of its own.

use hashbrown::HashTable;

/// How many hash tables the digest and family lookups are split into.
pub const SHARDS: usize = 256;
/// Entries per slab chunk.
const CHUNK: usize = 8192;
/// Words of a chunk's occupancy bitmap.
const WORDS: usize = CHUNK / 64;

/// What the index needs to know of an entry: its digest and its family's key. Everything else
/// in the entry is the store's own.
pub trait CompactEntry: Default {
    /// SHA-256 of the token value: the lookup key. Its byte 0 picks the entry's digest table
    /// and bytes 8..16 are its hash, so it must be uniformly random (a digest of a value the
    /// server made), as token digests are.
    fn digest(&self) -> &[u8; 32];

    /// A 64-bit key of the token's family: tokens with the same family have the same key.
    /// Its top byte picks the entry's family table, so it must spread evenly (a keyed hash, or
    /// random bits of the family id). Different families may share a key; callers of
    /// [`Index::family`] compare the entries' families themselves when that matters.
    fn family_key(&self) -> u64;
}

/// The digest's own bits as its hash: token digests are SHA-256 outputs of server-made random
/// values, so they are uniform already; the table compares whole digests on lookup.
fn digest_hash(digest: &[u8; 32]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&digest[8..16]);
    u64::from_le_bytes(word)
}

/// The family table a key belongs to.
fn family_shard(key: u64) -> usize {
    (key >> 56) as usize
}

/// No slot: the end of a family's list.
const NONE: u32 = u32::MAX;

/// A slab chunk: [`CHUNK`] entries, the bitmap of those that hold a token, and each slot's
/// neighbours in its family's list (`(previous, next)`, [`NONE`] at the ends).
struct Chunk<E> {
    entries: Box<[E]>,
    occupied: Box<[u64; WORDS]>,
    links: Box<[(u32, u32)]>,
}

impl<E: CompactEntry> Chunk<E> {
    fn new() -> Self {
        Self {
            entries: std::iter::repeat_with(E::default).take(CHUNK).collect(),
            occupied: Box::new([0; WORDS]),
            links: vec![(NONE, NONE); CHUNK].into_boxed_slice(),
        }
    }

    fn is_occupied(&self, at: usize) -> bool {
        self.occupied[at / 64] & (1 << (at % 64)) != 0
    }

    fn set_occupied(&mut self, at: usize, occupied: bool) {
        if occupied {
            self.occupied[at / 64] |= 1 << (at % 64);
        } else {
            self.occupied[at / 64] &= !(1 << (at % 64));
        }
    }
}

/// Every live token, by digest and by family.
pub struct Index<E> {
    chunks: Vec<Chunk<E>>,
    /// Slots handed out so far (free ones included).
    used: u32,
    free: Vec<u32>,
    by_digest: Vec<HashTable<u32>>,
    /// The head slot of each family's list, by family key.
    by_family: Vec<HashTable<u32>>,
    live: usize,
}

impl<E: CompactEntry> Default for Index<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E> std::fmt::Debug for Index<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("live", &self.live)
            .field("slots", &self.used)
            .finish_non_exhaustive()
    }
}

impl<E: CompactEntry> Index<E> {
    /// An empty index.
    pub fn new() -> Self {
        Self {
            chunks: Vec::new(),
            used: 0,
            free: Vec::new(),
            by_digest: (0..SHARDS).map(|_| HashTable::new()).collect(),
            by_family: (0..SHARDS).map(|_| HashTable::new()).collect(),
            live: 0,
        }
    }

    /// How many tokens are indexed.
    pub fn len(&self) -> usize {
        self.live
    }

    /// Whether no token is indexed.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Makes room for `additional` more tokens at once, so that loading a known number of
    /// them (a checkpoint) does not grow every table step by step, rehashing as it goes.
    pub fn reserve(&mut self, additional: usize) {
        let per_shard = additional / SHARDS + additional / SHARDS / 4 + 1;
        let chunks = &self.chunks;
        let at = |s: u32| &chunks[s as usize / CHUNK].entries[s as usize % CHUNK];
        for table in &mut self.by_digest {
            table.reserve(per_shard, |&s| digest_hash(at(s).digest()));
        }
        for table in &mut self.by_family {
            table.reserve(per_shard, |&s| at(s).family_key());
        }
    }

    /// The entry in `slot` (a default entry if the slot is free).
    ///
    /// # Panics
    /// If `slot` was never handed out by this index.
    pub fn entry(&self, slot: u32) -> &E {
        &self.chunks[slot as usize / CHUNK].entries[slot as usize % CHUNK]
    }

    /// Whether `slot` holds a token: slots of removed tokens are reused, so a slot number kept
    /// aside (in an expiry list, say) may since have been freed.
    pub fn is_occupied(&self, slot: u32) -> bool {
        self.chunks
            .get(slot as usize / CHUNK)
            .is_some_and(|c| c.is_occupied(slot as usize % CHUNK))
    }

    fn entry_mut(&mut self, slot: u32) -> &mut E {
        &mut self.chunks[slot as usize / CHUNK].entries[slot as usize % CHUNK]
    }

    /// Changes the entry in `slot` in place, through `change`, which must leave its digest
    /// and family key as they were (use [`Index::insert`] to change those).
    pub fn update<R>(&mut self, slot: u32, change: impl FnOnce(&mut E) -> R) -> R {
        let entry = self.entry_mut(slot);
        let (digest, family) = (*entry.digest(), entry.family_key());
        let out = change(&mut *entry);
        debug_assert!(*entry.digest() == digest && entry.family_key() == family);
        out
    }

    /// The slot of the token with `digest`.
    pub fn find(&self, digest: &[u8; 32]) -> Option<u32> {
        let chunks = &self.chunks;
        self.by_digest[digest[0] as usize]
            .find(digest_hash(digest), |&slot| {
                chunks[slot as usize / CHUNK].entries[slot as usize % CHUNK].digest() == digest
            })
            .copied()
    }

    /// Indexes `entry`, replacing the token with the same digest; returns the entry replaced.
    pub fn insert(&mut self, entry: E) -> Option<E> {
        self.insert_slot(entry).1
    }

    /// Indexes `entry`, replacing the token with the same digest; returns the slot the entry
    /// went into and the entry replaced.
    pub fn insert_slot(&mut self, entry: E) -> (u32, Option<E>) {
        if let Some(slot) = self.find(entry.digest()) {
            let (old_family, new_family) = (self.entry(slot).family_key(), entry.family_key());
            if old_family != new_family {
                self.unlink_family(slot, old_family);
            }
            let old = std::mem::replace(self.entry_mut(slot), entry);
            if old_family != new_family {
                self.link_family(slot, new_family);
            }
            return (slot, Some(old));
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                if self.used as usize == self.chunks.len() * CHUNK {
                    self.chunks.push(Chunk::new());
                }
                self.used += 1;
                self.used - 1
            }
        };
        let (digest, family) = (*entry.digest(), entry.family_key());
        *self.entry_mut(slot) = entry;
        self.chunks[slot as usize / CHUNK].set_occupied(slot as usize % CHUNK, true);
        let chunks = &self.chunks;
        self.by_digest[digest[0] as usize].insert_unique(digest_hash(&digest), slot, |&s| {
            digest_hash(chunks[s as usize / CHUNK].entries[s as usize % CHUNK].digest())
        });
        self.link_family(slot, family);
        self.live += 1;
        (slot, None)
    }

    fn links(&self, slot: u32) -> (u32, u32) {
        self.chunks[slot as usize / CHUNK].links[slot as usize % CHUNK]
    }

    fn links_mut(&mut self, slot: u32) -> &mut (u32, u32) {
        &mut self.chunks[slot as usize / CHUNK].links[slot as usize % CHUNK]
    }

    /// Puts `slot` at the head of its family's list (the entry in it must already have the
    /// family key `family`).
    fn link_family(&mut self, slot: u32, family: u64) {
        let chunks = &self.chunks;
        let key_of = |s: u32| chunks[s as usize / CHUNK].entries[s as usize % CHUNK].family_key();
        let head = match self.by_family[family_shard(family)]
            .find_mut(family, |&s| key_of(s) == family)
        {
            Some(head) => std::mem::replace(head, slot),
            None => {
                self.by_family[family_shard(family)].insert_unique(family, slot, |&s| key_of(s));
                NONE
            }
        };
        *self.links_mut(slot) = (NONE, head);
        if head != NONE {
            self.links_mut(head).0 = slot;
        }
    }

    /// Takes `slot` out of the list of family `family` (the key its entry has now).
    fn unlink_family(&mut self, slot: u32, family: u64) {
        let (previous, next) = self.links(slot);
        if previous == NONE {
            // The head: the table points at the next one, or forgets the family.
            if let Ok(found) =
                self.by_family[family_shard(family)].find_entry(family, |&s| s == slot)
            {
                if next == NONE {
                    found.remove();
                } else {
                    *found.into_mut() = next;
                }
            }
        } else {
            self.links_mut(previous).1 = next;
        }
        if next != NONE {
            self.links_mut(next).0 = previous;
        }
        *self.links_mut(slot) = (NONE, NONE);
    }

    /// Forgets the token in `slot` and returns it.
    ///
    /// # Panics
    /// If `slot` was never handed out by this index.
    pub fn remove(&mut self, slot: u32) -> E {
        let (digest, family) = {
            let entry = self.entry(slot);
            (*entry.digest(), entry.family_key())
        };
        if let Ok(found) =
            self.by_digest[digest[0] as usize].find_entry(digest_hash(&digest), |&s| s == slot)
        {
            found.remove();
        }
        self.unlink_family(slot, family);
        let chunk = &mut self.chunks[slot as usize / CHUNK];
        let entry = std::mem::take(&mut chunk.entries[slot as usize % CHUNK]);
        if chunk.is_occupied(slot as usize % CHUNK) {
            chunk.set_occupied(slot as usize % CHUNK, false);
            self.free.push(slot);
            self.live -= 1;
        }
        entry
    }

    /// The slots of the tokens whose family key is `family`, newest first.
    pub fn family(&self, family: u64) -> Vec<u32> {
        let chunks = &self.chunks;
        let mut out = Vec::new();
        let mut at = self.by_family[family_shard(family)]
            .find(family, |&s| {
                chunks[s as usize / CHUNK].entries[s as usize % CHUNK].family_key() == family
            })
            .copied()
            .unwrap_or(NONE);
        while at != NONE {
            out.push(at);
            at = self.links(at).1;
        }
        out
    }

    /// The slots of the tokens `pick` selects, among every indexed token. Scans the slab:
    /// for the rare operations that select by owner (a client or user deleted, consent
    /// withdrawn).
    pub fn select(&self, mut pick: impl FnMut(&E) -> bool) -> Vec<u32> {
        let mut out = Vec::new();
        for chunk in 0..self.chunks.len() {
            if let Some(slots) = self.select_chunk(chunk, &mut pick) {
                out.extend(slots);
            }
        }
        out
    }

    /// The slots of shard `shard` of the digest tables whose entries `pick` selects: lets a
    /// sweep go one shard at a time, each a short step.
    pub fn select_shard(&self, shard: usize, mut pick: impl FnMut(&E) -> bool) -> Vec<u32> {
        self.by_digest[shard]
            .iter()
            .copied()
            .filter(|&s| pick(self.entry(s)))
            .collect()
    }

    /// The slots in slab chunk `chunk` whose entries `pick` selects (`None` past the last
    /// chunk): lets compaction go one chunk at a time.
    pub fn select_chunk(&self, chunk: usize, mut pick: impl FnMut(&E) -> bool) -> Option<Vec<u32>> {
        let found = self.chunks.get(chunk)?;
        Some(
            found
                .entries
                .iter()
                .enumerate()
                .filter(|&(i, e)| found.is_occupied(i) && pick(e))
                .map(|(i, _)| (chunk * CHUNK + i) as u32)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy, Debug, Default, PartialEq)]
    struct Entry {
        digest: [u8; 32],
        family: u64,
        expires: u32,
    }

    impl CompactEntry for Entry {
        fn digest(&self) -> &[u8; 32] {
            &self.digest
        }

        fn family_key(&self) -> u64 {
            self.family
        }
    }

    fn entry(n: u8, family: u64) -> Entry {
        let mut digest = [n; 32];
        digest[0] = n.wrapping_mul(7);
        Entry {
            digest,
            family,
            expires: 100,
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
        assert!(index.is_occupied(slot));
        assert_eq!(index.remove(slot), entry(5, 9));
        assert!(!index.is_occupied(slot));
        assert_eq!(index.find(&entry(5, 0).digest), None);
        assert!(index.family(9).is_empty());
        // The freed slot is reused.
        assert_eq!(index.insert_slot(entry(250, 1)), (slot, None));
        assert_eq!(index.find(&entry(250, 1).digest), Some(slot));
        assert_eq!(index.select(|e| e.family == 1).len(), 68);
        index.update(slot, |e| e.expires = 7);
        assert_eq!(index.entry(slot).expires, 7);
    }

    #[test]
    fn grows_past_one_chunk_without_moving_entries() {
        let mut index = Index::new();
        let mut digests = Vec::new();
        for n in 0..(CHUNK as u32 + 10) {
            let mut digest = [0u8; 32];
            digest[..4].copy_from_slice(&n.to_le_bytes());
            digest[8..12].copy_from_slice(&n.wrapping_mul(2_654_435_761).to_le_bytes());
            digests.push(digest);
            index.insert(Entry {
                digest,
                family: u64::from(n) << 40,
                expires: n,
            });
        }
        assert_eq!(index.len(), CHUNK + 10);
        for (n, digest) in digests.iter().enumerate() {
            let slot = index.find(digest).expect("indexed");
            assert_eq!(index.entry(slot).expires, n as u32);
        }
        assert_eq!(index.select_chunk(1, |_| true).map(|s| s.len()), Some(10));
        assert_eq!(index.select_chunk(2, |_| true), None);
        let in_shard: usize = (0..SHARDS)
            .map(|s| index.select_shard(s, |_| true).len())
            .sum();
        assert_eq!(in_shard, CHUNK + 10);
    }

    /// Random inserts, replacements (moving a token to another family) and removals against
    /// a plain model: every family's list holds exactly the model's tokens, whichever of its
    /// head, middle or tail went.
    #[test]
    fn family_lists_match_a_model_through_random_changes() {
        use std::collections::{BTreeMap, BTreeSet};
        let mut index = Index::new();
        // digest byte -> family
        let mut model: BTreeMap<u8, u64> = BTreeMap::new();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let n = (next() % 251) as u8;
            // Few families (and two with the same shard), so lists grow long.
            let family = [1u64, 2, 3, 1 << 56 | 1][(next() % 4) as usize];
            match next() % 3 {
                0 | 1 => {
                    index.insert(entry(n, family));
                    model.insert(n, family);
                }
                _ => {
                    if let Some(slot) = index.find(&entry(n, 0).digest) {
                        index.remove(slot);
                    }
                    model.remove(&n);
                }
            }
        }
        assert_eq!(index.len(), model.len());
        for family in [1u64, 2, 3, 1 << 56 | 1, 99] {
            let listed: BTreeSet<[u8; 32]> = index
                .family(family)
                .into_iter()
                .map(|slot| index.entry(slot).digest)
                .collect();
            let expected: BTreeSet<[u8; 32]> = model
                .iter()
                .filter(|&(_, &f)| f == family)
                .map(|(&n, _)| entry(n, 0).digest)
                .collect();
            assert_eq!(listed, expected, "family {family}");
            assert_eq!(index.family(family).len(), expected.len(), "no slot twice");
        }
    }
}
