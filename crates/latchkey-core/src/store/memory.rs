//! The in-memory store: the reference implementation of every store trait.
//!
//! It is bounded: each write first forgets records that have expired, found through an
//! index ordered by expiry, so memory stays flat under a constant load. All state sits behind
//! one mutex, held only for map operations (never across an `await`), which makes every
//! method trivially atomic.
//!
//! Tokens are kept compactly (about 100 bytes each, index included) in the slab of the
//! compact index, which grows by chunks and by one shard of its tables at a time, so no write
//! rehashes or moves every token under the lock (see `memory_tokens.rs`); a write forgets at
//! most 256 expired tokens. Code and session maps hash by the digest's own bytes (a SHA-256
//! output is already uniformly random, so SipHash would only add work).
//!
//! The rules are the core's: [`super::refresh_verdict`] and [`code_verdict`] decide rotations
//! and code redemptions, [`expired`] decides what a sweep forgets.

use super::memory_tokens::Tokens;
use super::{
    ClientStore, CodeStore, CodeTake, CodeVerdict, ConsentRecord, ConsentStore, Rotation,
    SessionStore, StoreError, StoreErrorKind, TokenOwner, TokenStore, UserStore, code_verdict,
    expired,
};
use super::{PendingKind, PendingRecord};
use crate::client::{Client, ClientId};
use crate::clock::UnixTime;
use crate::scope::ScopeSet;
use crate::secret::Digest;
use crate::session::SessionRecord;
use crate::token::{CodeRecord, FamilyId, NewTokens, TokenRecord};
use crate::user::User;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

/// How many expired tokens one write forgets at most: bounds the work a write does under the
/// lock (a million tokens expiring in the same second go a batch per write), and is far above
/// the one or two tokens a write adds, so the store shrinks back under a constant load.
const SWEEP_BUDGET: usize = 256;

/// Hashes a digest key by eight of its own bytes; only for keys that are SHA-256 outputs of
/// random values, which nobody can choose.
#[derive(Clone, Copy, Debug, Default)]
struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        // The 32 bytes of the key; the length prefix arrives as a separate, shorter write.
        if let Some(word) = bytes.get(8..16).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            self.0 = u64::from_le_bytes(word);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by digests.
type DigestMap<V> = HashMap<[u8; 32], V, BuildHasherDefault<DigestHasher>>;

/// A store that lives in process memory; cloning shares it. Lost on restart.
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    /// The replay cache, behind its own lock: it is never touched together with the rest.
    replay: super::replay::MemoryReplayCache,
    /// Pushed authorization requests and device authorizations, behind their own lock too.
    pending: super::pending::MemoryPendingStore,
    /// Dynamic registration's records, behind their own lock.
    registrations: crate::registration::store::MemoryRegistrations,
    /// Resources registered at run time, behind their own lock.
    resources: super::resources::MemoryResources,
}

#[derive(Debug, Default)]
struct State {
    clients: BTreeMap<String, Client>,
    users: BTreeMap<String, User>,
    /// The tokens, in the compact form of [`super::memory_tokens`].
    tokens: Tokens,
    /// Codes with a "used" flag; used codes stay until expiry so replays are recognised.
    codes: DigestMap<(CodeRecord, bool)>,
    codes_by_expiry: BTreeSet<(UnixTime, [u8; 32])>,
    /// Remembered consent by (subject, client id), with when it was given.
    consents: HashMap<(String, String), (ScopeSet, UnixTime)>,
    /// Login sessions by digest, and the same keys by expiry for the sweep.
    sessions: DigestMap<SessionRecord>,
    sessions_by_expiry: BTreeSet<(UnixTime, [u8; 32])>,
    /// Session digests by their public `sid`, for [`SessionStore::add_session_client`].
    sessions_by_sid: std::collections::HashMap<String, [u8; 32]>,
    /// Signing keys and their generation.
    keys: super::keys::KeyTable,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many token records are held, expired ones not yet swept included.
    pub fn token_count(&self) -> usize {
        self.lock().tokens.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a map half-updated (each update is a
        // single insert or remove), so a poisoned lock is safe to keep using.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn sweep_codes(&mut self, now: UnixTime) {
        while let Some(&(expiry, key)) = self.codes_by_expiry.first() {
            if !expired(expiry, now) {
                break;
            }
            self.codes_by_expiry.pop_first();
            self.codes.remove(&key);
        }
    }

    fn sweep_sessions(&mut self, now: UnixTime) {
        while let Some(&(expiry, key)) = self.sessions_by_expiry.first() {
            if !expired(expiry, now) {
                break;
            }
            self.sessions_by_expiry.pop_first();
            self.remove_session(&key);
        }
    }

    /// Removes one session and its index entries; returns it as it was.
    fn remove_session(&mut self, key: &[u8; 32]) -> Option<SessionRecord> {
        let session = self.sessions.remove(key)?;
        self.sessions_by_expiry.remove(&(session.expires_at, *key));
        if self.sessions_by_sid.get(&session.sid) == Some(key) {
            self.sessions_by_sid.remove(&session.sid);
        }
        Some(session)
    }

    fn remove_sessions_of(&mut self, subject: &str) -> Vec<SessionRecord> {
        let doomed: Vec<[u8; 32]> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.subject == subject)
            .map(|(k, _)| *k)
            .collect();
        doomed
            .iter()
            .filter_map(|key| self.remove_session(key))
            .collect()
    }

    fn remove_codes_where(&mut self, pred: impl Fn(&CodeRecord) -> bool) {
        let doomed: Vec<(UnixTime, [u8; 32])> = self
            .codes
            .iter()
            .filter(|(_, (c, _))| pred(c))
            .map(|(k, (c, _))| (c.expires_at, *k))
            .collect();
        for (expiry, key) in doomed {
            self.codes.remove(&key);
            self.codes_by_expiry.remove(&(expiry, key));
        }
    }

    /// Forgets every token and code issued to `owner`; returns how many tokens went.
    fn remove_issued_to(&mut self, owner: &TokenOwner) -> u64 {
        match owner {
            TokenOwner::Client(id) => self.remove_codes_where(|c| c.client_id.as_str() == id),
            TokenOwner::Subject(id) => self.remove_codes_where(|c| c.subject == *id),
        }
        self.tokens.remove_issued_to(owner)
    }
}

impl super::ReplayStore for MemoryStore {
    async fn remember_once(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.replay.remember(key, expires_at, now)
    }
}

impl super::PendingStore for MemoryStore {
    async fn save_pending(&self, record: &PendingRecord, now: UnixTime) -> Result<(), StoreError> {
        self.pending.save(record, now)
    }

    async fn find_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        Ok(self.pending.find(kind, digest, now))
    }

    async fn find_pending_by_lookup(
        &self,
        kind: PendingKind,
        lookup: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        Ok(self.pending.find_by_lookup(kind, lookup, now))
    }

    async fn replace_pending(
        &self,
        record: &PendingRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        Ok(self.pending.replace(record, now))
    }

    async fn remove_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        version: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        Ok(self.pending.remove(kind, digest, version, now))
    }
}

impl ClientStore for MemoryStore {
    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        Ok(self.lock().clients.get(id).cloned())
    }

    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        self.lock()
            .clients
            .insert(client.id.as_str().to_owned(), client.clone());
        Ok(())
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let existed = state.clients.remove(id).is_some();
        state.remove_issued_to(&TokenOwner::Client(id.to_owned()));
        state.consents.retain(|(_, client), _| client != id);
        self.registrations.forget(id);
        Ok(existed)
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        Ok(self.lock().clients.values().cloned().collect())
    }
}

impl super::ResourceStore for MemoryStore {
    async fn create_resource(
        &self,
        resource: &crate::indicator::RegisteredResource,
    ) -> Result<bool, StoreError> {
        self.resources.create_resource(resource).await
    }

    async fn update_resource(
        &self,
        resource: &crate::indicator::RegisteredResource,
    ) -> Result<bool, StoreError> {
        self.resources.update_resource(resource).await
    }

    async fn get_resource(
        &self,
        id: &str,
    ) -> Result<Option<crate::indicator::RegisteredResource>, StoreError> {
        self.resources.get_resource(id).await
    }

    async fn list_resources(
        &self,
    ) -> Result<Vec<crate::indicator::RegisteredResource>, StoreError> {
        self.resources.list_resources().await
    }

    async fn delete_resource(&self, id: &str) -> Result<bool, StoreError> {
        self.resources.delete_resource(id).await
    }
}

impl crate::registration::store::RegistrationStore for MemoryStore {
    async fn save_initial_token(
        &self,
        token: &crate::registration::store::InitialAccessToken,
    ) -> Result<(), StoreError> {
        self.registrations.save_initial_token(token).await
    }

    async fn use_initial_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<crate::registration::store::InitialAccessToken>, StoreError> {
        self.registrations.use_initial_token(digest, now).await
    }

    async fn list_initial_tokens(
        &self,
    ) -> Result<Vec<crate::registration::store::InitialAccessToken>, StoreError> {
        self.registrations.list_initial_tokens().await
    }

    async fn delete_initial_token(&self, id: &str) -> Result<bool, StoreError> {
        self.registrations.delete_initial_token(id).await
    }

    async fn put_registration(
        &self,
        registration: &crate::registration::store::ClientRegistration,
    ) -> Result<(), StoreError> {
        self.registrations.put_registration(registration).await
    }

    async fn swap_registration(
        &self,
        expected: &Digest,
        next: &crate::registration::store::ClientRegistration,
    ) -> Result<bool, StoreError> {
        self.registrations.swap_registration(expected, next).await
    }

    async fn get_registration(
        &self,
        client_id: &str,
    ) -> Result<Option<crate::registration::store::ClientRegistration>, StoreError> {
        self.registrations.get_registration(client_id).await
    }

    async fn delete_registration(&self, client_id: &str) -> Result<bool, StoreError> {
        self.registrations.delete_registration(client_id).await
    }

    async fn touch_registration(&self, client_id: &str, day: UnixTime) -> Result<(), StoreError> {
        self.registrations.touch_registration(client_id, day).await
    }

    async fn unused_registrations(
        &self,
        before: UnixTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.registrations.unused_registrations(before, limit).await
    }
}

impl UserStore for MemoryStore {
    async fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self.lock().users.get(username).cloned())
    }

    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        let mut state = self.lock();
        if let Some(existing) = state.users.get(&user.username)
            && existing.id != user.id
        {
            return Err(StoreError::new(
                StoreErrorKind::Conflict,
                "user name already taken",
            ));
        }
        // A rename keeps the id: drop the entry under the old name.
        state.users.retain(|_, u| u.id != user.id);
        state.users.insert(user.username.clone(), user.clone());
        Ok(())
    }

    async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        let mut state = self.lock();
        let Some(user) = state.users.remove(username) else {
            return Ok(false);
        };
        state.remove_issued_to(&TokenOwner::Subject(user.id.clone()));
        state.consents.retain(|(subject, _), _| *subject != user.id);
        state.remove_sessions_of(&user.id);
        Ok(true)
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        Ok(self.lock().users.values().cloned().collect())
    }

    async fn get_user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        Ok(self.lock().users.values().find(|u| u.id == id).cloned())
    }
}

impl SessionStore for MemoryStore {
    async fn save_session(&self, session: &SessionRecord, now: UnixTime) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.sweep_sessions(now);
        let key = *session.digest.as_bytes();
        state.sessions_by_expiry.insert((session.expires_at, key));
        state.sessions_by_sid.insert(session.sid.clone(), key);
        state.sessions.insert(key, session.clone());
        Ok(())
    }

    async fn load_session(&self, digest: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.lock().sessions.get(digest.as_bytes()).cloned())
    }

    async fn delete_session(&self, digest: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        Ok(self.lock().remove_session(digest.as_bytes()))
    }

    async fn delete_sessions_of(&self, subject: &str) -> Result<Vec<SessionRecord>, StoreError> {
        Ok(self.lock().remove_sessions_of(subject))
    }

    async fn add_session_client(&self, sid: &str, client_id: &str) -> Result<(), StoreError> {
        let mut state = self.lock();
        let Some(key) = state.sessions_by_sid.get(sid).copied() else {
            return Ok(());
        };
        if let Some(session) = state.sessions.get_mut(&key)
            && let Some(clients) = crate::session::add_client(&session.clients, client_id)
        {
            session.clients = clients;
        }
        Ok(())
    }
}

impl super::KeyStore for MemoryStore {
    async fn list_keys(&self) -> Result<super::StoredKeys, StoreError> {
        Ok(self.lock().keys.list())
    }

    async fn update_keys_if_current(
        &self,
        generation: u64,
        update: &super::KeyUpdate,
    ) -> Result<bool, StoreError> {
        Ok(self.lock().keys.update_if_current(generation, update))
    }
}

impl TokenStore for MemoryStore {
    async fn save_tokens(&self, tokens: &NewTokens, now: UnixTime) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.tokens.sweep(now, SWEEP_BUDGET);
        for record in tokens.records() {
            state.tokens.insert(record);
        }
        Ok(())
    }

    async fn find_token(&self, digest: &Digest) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.lock().tokens.find(digest.as_bytes()))
    }

    async fn rotate_refresh(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> Result<Rotation, StoreError> {
        let mut state = self.lock();
        state.tokens.sweep(now, SWEEP_BUDGET);
        Ok(state.tokens.rotate(old.as_bytes(), new, now))
    }

    async fn revoke_family(&self, family: &FamilyId) -> Result<u64, StoreError> {
        Ok(self.lock().tokens.revoke_family(family))
    }

    async fn delete_tokens_of(&self, owner: &TokenOwner) -> Result<u64, StoreError> {
        Ok(self.lock().remove_issued_to(owner))
    }

    async fn revoke_tokens_of_grant(
        &self,
        client_id: &str,
        subject: &str,
    ) -> Result<u64, StoreError> {
        let mut state = self.lock();
        let revoked = state.tokens.revoke_of_grant(client_id, subject);
        state.remove_codes_where(|c| c.client_id.as_str() == client_id && c.subject == subject);
        Ok(revoked)
    }

    async fn revoke_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        Ok(self.lock().tokens.revoke(digest.as_bytes()))
    }
}

impl CodeStore for MemoryStore {
    async fn save_code(&self, code: &CodeRecord, now: UnixTime) -> Result<(), StoreError> {
        let mut state = self.lock();
        state.sweep_codes(now);
        let key = *code.digest.as_bytes();
        state.codes_by_expiry.insert((code.expires_at, key));
        state.codes.insert(key, (code.clone(), false));
        Ok(())
    }

    async fn take_code(
        &self,
        digest: &Digest,
        client_id: &ClientId,
        now: UnixTime,
    ) -> Result<CodeTake, StoreError> {
        let mut state = self.lock();
        state.sweep_codes(now);
        let Some((code, used)) = state.codes.get_mut(digest.as_bytes()) else {
            return Ok(CodeTake::Invalid);
        };
        let verdict = code_verdict(
            code.client_id.as_str(),
            code.expires_at,
            *used,
            client_id.as_str(),
            now,
        );
        Ok(match verdict {
            CodeVerdict::Refuse => CodeTake::Invalid,
            CodeVerdict::Replay => CodeTake::Replayed {
                family: code.family.clone(),
            },
            CodeVerdict::Take => {
                *used = true;
                CodeTake::Taken(code.clone())
            }
        })
    }
}

impl ConsentStore for MemoryStore {
    async fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        Ok(self
            .lock()
            .consents
            .get(&(subject.to_owned(), client_id.to_owned()))
            .map(|(scope, _)| scope.clone()))
    }

    async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        scope: &ScopeSet,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.lock().consents.insert(
            (subject.to_owned(), client_id.to_owned()),
            (scope.clone(), now),
        );
        Ok(())
    }

    async fn revoke_consent(&self, subject: &str, client_id: &str) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .consents
            .remove(&(subject.to_owned(), client_id.to_owned()))
            .is_some())
    }

    async fn list_consents(&self, subject: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        let mut listed: Vec<ConsentRecord> = self
            .lock()
            .consents
            .iter()
            .filter(|((s, _), _)| s == subject)
            .map(|((_, client_id), (scope, granted_at))| ConsentRecord {
                client_id: client_id.clone(),
                scope: scope.clone(),
                granted_at: *granted_at,
            })
            .collect();
        listed.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        Ok(listed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn digest_hasher_uses_the_key_bytes() {
        let build = BuildHasherDefault::<DigestHasher>::default();
        let mut key = [0u8; 32];
        key[8..16].copy_from_slice(&7u64.to_le_bytes());
        assert_eq!(build.hash_one(key), 7);
        key[9] = 1;
        assert_eq!(build.hash_one(key), 7 + 256);
    }
}
