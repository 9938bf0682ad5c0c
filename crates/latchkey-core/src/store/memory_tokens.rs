//! The memory store's tokens, about 100 bytes each: one fixed-size entry per token in the slab
//! of the compact index ([`super::compact`]), found by digest and by family through its
//! sharded tables, and forgotten after expiry through a list of slots per expiry second.
//!
//! An entry holds the token's digest, its family id packed into 16 bytes (the 32 hex digits
//! of the ids [`FamilyId::generate`] makes), its times as `u32` seconds, its state flags, and
//! one shared pointer to a [`Shape`]: the client, subject, user name, scope, audience and
//! grant that many tokens have in common, interned so that every token of one shape holds one
//! allocation. What few tokens carry (a binding, attached data, an authentication context, a
//! confirmation key, an actor, a family id of another form, times past 2106) sits in one
//! boxed [`Rare`] that is there only when one of them is.
//!
//! Nothing here moves or rehashes everything at once: the index grows by chunks and by one
//! shard of its tables at a time, the shape tables are sharded too, and a sweep forgets at
//! most a given number of tokens per call.

use super::compact::{CompactEntry, Index};
use super::{RefreshVerdict, Rotation, TokenOwner, expired, refresh_verdict};
use crate::attached::Attached;
use crate::client::{ClientId, GrantType};
use crate::clock::UnixTime;
use crate::indicator::AudienceSet;
use crate::oidc::AuthContext;
use crate::scope::ScopeSet;
use crate::token::{Actor, Binding, Confirmation, FamilyId, NewTokens, TokenKind, TokenRecord};
use hashbrown::HashTable;
use std::collections::BTreeMap;
// Shapes and odd family ids are hashed with foldhash, seeded at random per table: a shape's
// parts come from the store's own records (a client, an authenticated user, a granted scope),
// so SipHash's stronger resistance to chosen keys would buy nothing for its several times
// the cost on every token written.
use hashbrown::DefaultHashBuilder as RandomState;
use std::hash::BuildHasher;
use std::sync::Arc;

/// Flag: a refresh token (else an access token).
const REFRESH: u8 = 1;
/// Flag: revoked.
const REVOKED: u8 = 2;
/// Flag: a refresh token already exchanged.
const ROTATED: u8 = 4;
/// Flag: the family id is packed in [`Compact::family`] (else it is in [`Rare::family`]).
const PACKED_FAMILY: u8 = 8;

/// How many tables the shapes are split into (a power of two): growing one rehashes a 64th.
const SHAPE_SHARDS: usize = 64;

/// What the tokens of one grant to one party have in common, held once for all of them.
#[derive(Debug)]
struct Shape {
    client_id: ClientId,
    subject: Option<Box<str>>,
    username: Option<Box<str>>,
    scope: ScopeSet,
    audience: AudienceSet,
    grant_type: GrantType,
}

/// The parts of a [`Shape`] as borrowed from a record: what interning hashes and compares.
type ShapeKey<'a> = (
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    &'a ScopeSet,
    &'a AudienceSet,
    GrantType,
);

impl Shape {
    fn key(&self) -> ShapeKey<'_> {
        (
            self.client_id.as_str(),
            self.subject.as_deref(),
            self.username.as_deref(),
            &self.scope,
            &self.audience,
            self.grant_type,
        )
    }
}

fn record_key(record: &TokenRecord) -> ShapeKey<'_> {
    (
        record.client_id.as_str(),
        record.subject.as_deref(),
        record.username.as_deref(),
        &record.scope,
        &record.audience,
        record.grant_type,
    )
}

/// The interned shapes; a shape is dropped when its last token goes.
#[derive(Debug)]
struct Shapes {
    tables: Vec<HashTable<Arc<Shape>>>,
    hasher: RandomState,
}

impl Default for Shapes {
    fn default() -> Self {
        Self {
            tables: (0..SHAPE_SHARDS).map(|_| HashTable::new()).collect(),
            hasher: RandomState::default(),
        }
    }
}

impl Shapes {
    fn table(hash: u64) -> usize {
        (hash >> 58) as usize % SHAPE_SHARDS
    }

    /// The shared shape of `record`, made if no live token has it yet.
    fn intern(&mut self, record: &TokenRecord) -> Arc<Shape> {
        let key = record_key(record);
        let hash = self.hasher.hash_one(key);
        let hasher = &self.hasher;
        let table = &mut self.tables[Self::table(hash)];
        if let Some(shape) = table.find(hash, |s| s.key() == key) {
            return Arc::clone(shape);
        }
        let shape = Arc::new(Shape {
            client_id: record.client_id.clone(),
            subject: record.subject.as_deref().map(Box::from),
            username: record.username.as_deref().map(Box::from),
            scope: record.scope.clone(),
            audience: record.audience.clone(),
            grant_type: record.grant_type,
        });
        table.insert_unique(hash, Arc::clone(&shape), |s| hasher.hash_one(s.key()));
        shape
    }

    /// Lets go of one token's hold on `shape`, forgetting the shape if no token holds it now.
    fn release(&mut self, shape: Arc<Shape>) {
        // Only the table and token entries hold shapes, all behind the store's lock, so the
        // count is exact: 2 is the table's and this token's.
        if Arc::strong_count(&shape) == 2 {
            let hash = self.hasher.hash_one(shape.key());
            if let Ok(found) =
                self.tables[Self::table(hash)].find_entry(hash, |s| Arc::ptr_eq(s, &shape))
            {
                found.remove();
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.tables.iter().map(HashTable::len).sum()
    }
}

/// What few tokens carry, out of line.
#[derive(Debug, Default, PartialEq)]
struct Rare {
    /// The family id when it is not 32 lowercase hex digits, with its key.
    family: Option<(FamilyId, u64)>,
    /// Issue, family issue and expiry times, when one of them does not fit `u32` seconds.
    times: Option<[UnixTime; 3]>,
    binding: Option<Binding>,
    attached: Attached,
    auth: Option<Box<AuthContext>>,
    cnf: Option<Confirmation>,
    actor: Option<Box<Actor>>,
}

/// One token in the slab.
#[derive(Debug, Default)]
struct Compact {
    digest: [u8; 32],
    /// The family id's 32 hex digits as 16 bytes, when [`PACKED_FAMILY`] is set.
    family: [u8; 16],
    /// `None` only in a free slot.
    shape: Option<Arc<Shape>>,
    rare: Option<Box<Rare>>,
    issued_at: u32,
    family_issued_at: u32,
    expires_at: u32,
    flags: u8,
}

impl CompactEntry for Compact {
    fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    fn family_key(&self) -> u64 {
        if self.flags & PACKED_FAMILY != 0 {
            packed_key(&self.family)
        } else {
            self.rare
                .as_ref()
                .and_then(|r| r.family.as_ref())
                .map_or(0, |(_, key)| *key)
        }
    }
}

impl Compact {
    /// Issue, family issue and expiry times.
    fn times(&self) -> [UnixTime; 3] {
        match self.rare.as_ref().and_then(|r| r.times) {
            Some(times) => times,
            None => [self.issued_at, self.family_issued_at, self.expires_at]
                .map(|t| UnixTime(i64::from(t))),
        }
    }

    fn expires_at(&self) -> UnixTime {
        self.times()[2]
    }

    fn revoked(&self) -> bool {
        self.flags & REVOKED != 0
    }

    fn kind(&self) -> TokenKind {
        if self.flags & REFRESH != 0 {
            TokenKind::Refresh
        } else {
            TokenKind::Access
        }
    }

    fn family_is(&self, family: &FamilyId) -> bool {
        if self.flags & PACKED_FAMILY != 0 {
            pack_family(family) == Some(self.family)
        } else {
            self.rare
                .as_ref()
                .and_then(|r| r.family.as_ref())
                .is_some_and(|(f, _)| f == family)
        }
    }

    fn client_is(&self, client_id: &str) -> bool {
        self.shape
            .as_ref()
            .is_some_and(|s| s.client_id.as_str() == client_id)
    }

    fn subject_is(&self, subject: &str) -> bool {
        self.shape
            .as_ref()
            .is_some_and(|s| s.subject.as_deref() == Some(subject))
    }
}

/// The key of a packed family id: its last 8 bytes, the random part of a generated id.
fn packed_key(family: &[u8; 16]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&family[8..]);
    u64::from_le_bytes(word)
}

/// The 16 bytes of a family id of 32 lowercase hex digits; `None` for any other form.
fn pack_family(family: &FamilyId) -> Option<[u8; 16]> {
    let digits = family.0.as_bytes();
    if digits.len() != 32 {
        return None;
    }
    let nibble = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 16];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

/// The family id packed by [`pack_family`].
fn unpack_family(packed: &[u8; 16]) -> FamilyId {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for byte in packed {
        id.push(char::from(HEX[usize::from(byte >> 4)]));
        id.push(char::from(HEX[usize::from(byte & 15)]));
    }
    FamilyId(id)
}

/// The family id of `entry`.
fn family_of(entry: &Compact) -> FamilyId {
    match entry.rare.as_ref().and_then(|r| r.family.as_ref()) {
        Some((family, _)) if entry.flags & PACKED_FAMILY == 0 => family.clone(),
        _ => unpack_family(&entry.family),
    }
}

/// A time as `u32` seconds, if it fits.
fn secs(time: UnixTime) -> Option<u32> {
    u32::try_from(time.0).ok()
}

/// Every token of a memory store.
#[derive(Debug, Default)]
pub(super) struct Tokens {
    index: Index<Compact>,
    /// Slots by the second their token expires; a slot may have been freed or reused since,
    /// which the sweep checks.
    by_expiry: BTreeMap<u32, Vec<u32>>,
    shapes: Shapes,
    /// Keys the family ids that do not pack.
    hasher: RandomState,
}

impl Tokens {
    /// How many tokens are held, expired ones not yet swept included.
    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    /// The key of `family` in the index.
    fn family_key(&self, family: &FamilyId) -> u64 {
        match pack_family(family) {
            Some(packed) => packed_key(&packed),
            None => self.hasher.hash_one(family.0.as_str()),
        }
    }

    /// Stores `record`, replacing the token with the same digest.
    pub(super) fn insert(&mut self, record: &TokenRecord) {
        let mut flags = 0;
        match record.kind {
            TokenKind::Access => {}
            TokenKind::Refresh => flags |= REFRESH,
        }
        if record.revoked {
            flags |= REVOKED;
        }
        if record.rotated {
            flags |= ROTATED;
        }
        let mut rare = Rare {
            binding: record.binding.clone(),
            attached: record.attached.clone(),
            auth: record.auth.clone(),
            cnf: record.cnf.clone(),
            actor: record.actor.clone(),
            ..Rare::default()
        };
        let packed = pack_family(&record.family);
        match packed {
            Some(_) => flags |= PACKED_FAMILY,
            None => rare.family = Some((record.family.clone(), self.family_key(&record.family))),
        }
        let times = [record.issued_at, record.family_issued_at, record.expires_at];
        let short = times.map(secs);
        let [Some(issued_at), Some(family_issued_at), Some(expires_at)] = short else {
            rare.times = Some(times);
            return self.put(record, packed, flags, [0; 3], Some(rare));
        };
        let rare = (rare != Rare::default()).then_some(rare);
        self.put(
            record,
            packed,
            flags,
            [issued_at, family_issued_at, expires_at],
            rare,
        );
    }

    fn put(
        &mut self,
        record: &TokenRecord,
        packed: Option<[u8; 16]>,
        flags: u8,
        [issued_at, family_issued_at, expires_at]: [u32; 3],
        rare: Option<Rare>,
    ) {
        let entry = Compact {
            digest: *record.digest.as_bytes(),
            family: packed.unwrap_or_default(),
            shape: Some(self.shapes.intern(record)),
            rare: rare.map(Box::new),
            issued_at,
            family_issued_at,
            expires_at,
            flags,
        };
        let second = wheel_second(entry.expires_at());
        let (slot, old) = self.index.insert_slot(entry);
        if let Some(shape) = old.and_then(|old| old.shape) {
            self.shapes.release(shape);
        }
        self.by_expiry.entry(second).or_default().push(slot);
    }

    /// The record of the token with `digest`, whatever its state.
    pub(super) fn find(&self, digest: &[u8; 32]) -> Option<TokenRecord> {
        let slot = self.index.find(digest)?;
        let entry = self.index.entry(slot);
        let shape = entry.shape.as_ref()?;
        let rare = entry.rare.as_deref();
        let [issued_at, family_issued_at, expires_at] = entry.times();
        let family = family_of(entry);
        Some(TokenRecord {
            digest: crate::secret::Digest::from_bytes(entry.digest),
            kind: entry.kind(),
            client_id: shape.client_id.clone(),
            subject: shape.subject.as_deref().map(String::from),
            username: shape.username.as_deref().map(String::from),
            scope: shape.scope.clone(),
            grant_type: shape.grant_type,
            family,
            family_issued_at,
            issued_at,
            expires_at,
            revoked: entry.flags & REVOKED != 0,
            rotated: entry.flags & ROTATED != 0,
            binding: rare.and_then(|r| r.binding.clone()),
            attached: rare.map(|r| r.attached.clone()).unwrap_or_default(),
            auth: rare.and_then(|r| r.auth.clone()),
            cnf: rare.and_then(|r| r.cnf.clone()),
            audience: shape.audience.clone(),
            actor: rare.and_then(|r| r.actor.clone()),
        })
    }

    /// Forgets the token in `slot`.
    fn remove(&mut self, slot: u32) {
        if let Some(shape) = self.index.remove(slot).shape {
            self.shapes.release(shape);
        }
    }

    /// Forgets up to `budget` tokens that have expired at `now`, soonest expiry first: bounds
    /// the work one write does under the lock, while sweeping faster than a constant load
    /// issues so memory stays flat.
    pub(super) fn sweep(&mut self, now: UnixTime, mut budget: usize) {
        while budget > 0 {
            let slot = {
                let Some(mut first) = self.by_expiry.first_entry() else {
                    return;
                };
                if i64::from(*first.key()) > now.0 {
                    return;
                }
                match first.get_mut().pop() {
                    Some(slot) => slot,
                    None => {
                        first.remove();
                        continue;
                    }
                }
            };
            budget -= 1;
            // The slot may have been freed, or reused by a token expiring later (listed
            // under its own second).
            if self.index.is_occupied(slot) && expired(self.index.entry(slot).expires_at(), now) {
                self.remove(slot);
            }
        }
    }

    /// [`super::TokenStore::rotate_refresh`]'s step, under the store's lock.
    pub(super) fn rotate(&mut self, old: &[u8; 32], new: &NewTokens, now: UnixTime) -> Rotation {
        let Some(slot) = self.index.find(old) else {
            return Rotation::Invalid;
        };
        let entry = self.index.entry(slot);
        match refresh_verdict(
            entry.kind(),
            entry.revoked(),
            entry.flags & ROTATED != 0,
            entry.expires_at(),
            now,
        ) {
            RefreshVerdict::Refuse => Rotation::Invalid,
            RefreshVerdict::Reuse => {
                let family = family_of(entry);
                self.revoke_family(&family);
                Rotation::Reused { family }
            }
            RefreshVerdict::Rotate => {
                self.index.update(slot, |e| e.flags |= ROTATED);
                for record in new.records() {
                    self.insert(record);
                }
                Rotation::Rotated
            }
        }
    }

    /// Revokes every token of `family`; returns how many were not revoked yet.
    pub(super) fn revoke_family(&mut self, family: &FamilyId) -> u64 {
        let mut revoked = 0;
        for slot in self.index.family(self.family_key(family)) {
            let entry = self.index.entry(slot);
            if entry.family_is(family) && !entry.revoked() {
                self.index.update(slot, |e| e.flags |= REVOKED);
                revoked += 1;
            }
        }
        revoked
    }

    /// Revokes the token with `digest`; `false` if there is none.
    pub(super) fn revoke(&mut self, digest: &[u8; 32]) -> bool {
        let Some(slot) = self.index.find(digest) else {
            return false;
        };
        self.index.update(slot, |e| e.flags |= REVOKED);
        true
    }

    /// Forgets every token issued to `owner`; returns how many went.
    pub(super) fn remove_issued_to(&mut self, owner: &TokenOwner) -> u64 {
        let doomed = match owner {
            TokenOwner::Client(id) => self.index.select(|e| e.client_is(id)),
            TokenOwner::Subject(id) => self.index.select(|e| e.subject_is(id)),
        };
        for &slot in &doomed {
            self.remove(slot);
        }
        u64::try_from(doomed.len()).unwrap_or(u64::MAX)
    }

    /// Revokes every token issued to `client_id` for `subject`; returns how many were not
    /// revoked yet.
    pub(super) fn revoke_of_grant(&mut self, client_id: &str, subject: &str) -> u64 {
        let slots = self
            .index
            .select(|e| !e.revoked() && e.client_is(client_id) && e.subject_is(subject));
        for &slot in &slots {
            self.index.update(slot, |e| e.flags |= REVOKED);
        }
        u64::try_from(slots.len()).unwrap_or(u64::MAX)
    }
}

/// The expiry second a token is listed under: its expiry, clamped into `u32` seconds (a
/// token expiring past 2106 is listed at the last second, and kept until deleted).
fn wheel_second(expires_at: UnixTime) -> u32 {
    u32::try_from(expires_at.0.max(0)).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::OsEntropy;
    use crate::secret::Digest;

    fn digest(n: u32) -> [u8; 32] {
        Digest::of(&n.to_le_bytes()).as_bytes().to_owned()
    }

    fn record(n: u32, family: &FamilyId, expires_at: i64) -> TokenRecord {
        TokenRecord {
            attached: Attached::new(),
            auth: None,
            cnf: None,
            digest: Digest::from_bytes(digest(n)),
            kind: TokenKind::Access,
            client_id: ClientId::parse("c").expect("valid"),
            subject: None,
            username: None,
            scope: ScopeSet::parse("read").expect("valid"),
            grant_type: GrantType::ClientCredentials,
            family: family.clone(),
            family_issued_at: UnixTime(1),
            issued_at: UnixTime(1),
            expires_at: UnixTime(expires_at),
            revoked: false,
            rotated: false,
            binding: None,
            audience: AudienceSet::default(),
            actor: None,
        }
    }

    #[test]
    fn an_entry_stays_80_bytes() {
        assert_eq!(std::mem::size_of::<Compact>(), 80);
    }

    #[test]
    fn generated_family_ids_pack_and_others_do_not() {
        let family = FamilyId::generate(&OsEntropy);
        let packed = pack_family(&family).expect("32 hex digits");
        assert_eq!(unpack_family(&packed), family);
        for other in [
            "f",
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcdeg",
        ] {
            assert_eq!(pack_family(&FamilyId(other.into())), None, "{other}");
        }
    }

    #[test]
    fn a_plain_record_reads_back_as_stored_without_a_rare_part() {
        let mut tokens = Tokens::default();
        let stored = record(1, &FamilyId::generate(&OsEntropy), 100);
        tokens.insert(&stored);
        assert_eq!(tokens.find(&digest(1)), Some(stored));
        let slot = tokens.index.find(&digest(1)).expect("indexed");
        assert!(tokens.index.entry(slot).rare.is_none());
    }

    #[test]
    fn every_field_reads_back_as_stored() {
        let mut tokens = Tokens::default();
        let mut attached = serde_json::Map::new();
        attached.insert("tenant".into(), "acme".into());
        let full = TokenRecord {
            attached: Attached::try_from(attached).expect("small"),
            auth: Some(Box::new(AuthContext {
                acr: Some("urn:mace:incommon:iap:silver".into()),
                amr: vec!["pwd".into()],
                ..AuthContext::default()
            })),
            cnf: Some(Confirmation::Jkt("thumb".into())),
            kind: TokenKind::Refresh,
            subject: Some("user-1".into()),
            username: Some("alice".into()),
            grant_type: GrantType::AuthorizationCode,
            family_issued_at: UnixTime(-5),
            revoked: true,
            rotated: true,
            binding: Some(Binding {
                user_agent: "ua".into(),
                ip: "127.0.0.1".into(),
            }),
            audience: AudienceSet::of(["https://api.example"]),
            actor: Some(Box::new(Actor {
                sub: "svc".into(),
                client_id: None,
                act: None,
            })),
            ..record(2, &FamilyId("not hex".into()), i64::from(u32::MAX) + 10)
        };
        tokens.insert(&full);
        assert_eq!(tokens.find(&digest(2)), Some(full.clone()));
        assert_eq!(tokens.revoke_family(&FamilyId("not hex".into())), 0);
        assert_eq!(
            tokens.remove_issued_to(&TokenOwner::Subject("user-1".into())),
            1
        );
        assert_eq!(tokens.find(&digest(2)), None);
        assert_eq!(tokens.shapes.len(), 0);
    }

    #[test]
    fn tokens_of_one_shape_share_it_until_the_last_goes() {
        let mut tokens = Tokens::default();
        for n in 0..3 {
            tokens.insert(&record(n, &FamilyId::generate(&OsEntropy), 10));
        }
        let other = TokenRecord {
            subject: Some("u".into()),
            ..record(3, &FamilyId::generate(&OsEntropy), 20)
        };
        tokens.insert(&other);
        assert_eq!(tokens.shapes.len(), 2);
        // Replacing a token with the same digest keeps one hold on the shape.
        tokens.insert(&record(0, &FamilyId::generate(&OsEntropy), 10));
        assert_eq!(tokens.len(), 4);
        tokens.sweep(UnixTime(10), usize::MAX);
        assert_eq!(tokens.len(), 1);
        assert_eq!(tokens.shapes.len(), 1);
        assert_eq!(tokens.find(&digest(3)), Some(other));
    }

    #[test]
    fn a_sweep_forgets_at_most_its_budget_and_only_expired_tokens() {
        let mut tokens = Tokens::default();
        for n in 0..10 {
            tokens.insert(&record(n, &FamilyId::generate(&OsEntropy), 5));
        }
        tokens.insert(&record(10, &FamilyId::generate(&OsEntropy), 50));
        tokens.sweep(UnixTime(4), usize::MAX);
        assert_eq!(tokens.len(), 11, "nothing has expired at 4");
        tokens.sweep(UnixTime(5), 4);
        assert_eq!(tokens.len(), 7);
        tokens.sweep(UnixTime(5), 100);
        assert_eq!(tokens.len(), 1);
        // A freed slot reused by a later token is not swept with the earlier second.
        tokens.insert(&record(11, &FamilyId::generate(&OsEntropy), 5));
        tokens.remove_issued_to(&TokenOwner::Client("c".into()));
        tokens.insert(&record(12, &FamilyId::generate(&OsEntropy), 60));
        tokens.sweep(UnixTime(6), usize::MAX);
        assert!(tokens.find(&digest(12)).is_some());
        assert!(!tokens.by_expiry.contains_key(&5), "second 5 was swept");
    }

    #[test]
    fn family_revocation_reaches_exactly_the_family() {
        let mut tokens = Tokens::default();
        let family = FamilyId::generate(&OsEntropy);
        // Same random half, another counter half: another family with the same key.
        let mut twin = family.0.clone();
        twin.replace_range(0..1, if twin.starts_with('0') { "1" } else { "0" });
        let twin = FamilyId(twin);
        tokens.insert(&record(1, &family, 9));
        tokens.insert(&record(2, &family, 9));
        tokens.insert(&record(3, &twin, 9));
        assert_eq!(tokens.revoke_family(&family), 2);
        assert_eq!(tokens.revoke_family(&family), 0, "already revoked");
        assert!(tokens.find(&digest(1)).is_some_and(|r| r.revoked));
        assert!(tokens.find(&digest(3)).is_some_and(|r| !r.revoked));
    }
}
