//! What dynamic registration keeps (RFC 7591 §3, RFC 7592 §1): initial access tokens, and
//! for each self-registered client the digest of its registration access token and when it
//! was last used. Both live beside the client records, not in them, so a client registered
//! by an operator carries nothing of this, and a backend only stores rows: the rules
//! (single use, expiry, which clients are swept) are in [`crate::registration`].
//!
//! Only SHA-256 digests of the tokens are kept; the values are shown once.

use crate::clock::UnixTime;
use crate::secret::Digest;
use crate::store::StoreError;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

/// An initial access token (RFC 7591 §3): what an operator hands out so that a developer
/// may register a client when registration is not open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialAccessToken {
    /// A public handle, to list and revoke the token (never the token itself).
    pub id: String,
    /// SHA-256 of the token.
    pub digest: Digest,
    /// What the operator wrote about it (who it is for).
    pub description: String,
    /// When it was made.
    pub created_at: UnixTime,
    /// When it stops working; `None`: never.
    pub expires_at: Option<UnixTime>,
    /// How many more registrations it allows; `None`: any number.
    pub uses_left: Option<u64>,
}

/// The registration of one self-registered client (RFC 7592 §1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRegistration {
    /// The client.
    pub client_id: String,
    /// SHA-256 of its registration access token.
    pub token_digest: Digest,
    /// When it was registered.
    pub created_at: UnixTime,
    /// The start of the last day (UTC) on which it was registered or got a token.
    pub last_used: UnixTime,
    /// The initial access token it was registered with, if any.
    pub initial_token: Option<String>,
}

/// Stores initial access tokens and client registrations.
///
/// Deleting a client ([`crate::store::ClientStore::delete_client`]) also deletes its
/// registration in every backend.
pub trait RegistrationStore: Send + Sync + 'static {
    /// Saves a new initial access token.
    fn save_initial_token(
        &self,
        token: &InitialAccessToken,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// In one atomic step: finds the token with `digest` that has not expired at `now` and
    /// has uses left, takes one use, and returns it as it was before. `None` otherwise
    /// (unknown, expired or used up). Two concurrent calls never both take its last use.
    fn use_initial_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<InitialAccessToken>, StoreError>> + Send;

    /// Every initial access token, by id.
    fn list_initial_tokens(
        &self,
    ) -> impl Future<Output = Result<Vec<InitialAccessToken>, StoreError>> + Send;

    /// Deletes an initial access token; whether it existed.
    fn delete_initial_token(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Saves (inserts or replaces) a client's registration.
    fn put_registration(
        &self,
        registration: &ClientRegistration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// In one atomic step: replaces the registration of `next.client_id` with `next` only
    /// when the token digest stored for it is still `expected`; whether it did (`false` when
    /// the client has no registration or its token changed).
    ///
    /// The client configuration endpoint spends a registration access token with it (RFC 7592
    /// §3: the token rotates on every update, and is burnt by a delete), so of two requests
    /// that present the same token, exactly one is served.
    fn swap_registration(
        &self,
        expected: &Digest,
        next: &ClientRegistration,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// A client's registration.
    fn get_registration(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<ClientRegistration>, StoreError>> + Send;

    /// Deletes a client's registration; whether it existed.
    fn delete_registration(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Moves `last_used` of a client's registration forward to `day` (never back); nothing
    /// when the client has no registration.
    fn touch_registration(
        &self,
        client_id: &str,
        day: UnixTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` clients whose registration was last used before `before`.
    fn unused_registrations(
        &self,
        before: UnixTime,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;
}

/// The registrations of the memory store ([`crate::store::memory::MemoryStore`]), behind
/// their own lock.
#[derive(Clone, Debug, Default)]
pub struct MemoryRegistrations {
    state: Arc<Mutex<RegistrationState>>,
}

#[derive(Debug, Default)]
struct RegistrationState {
    initial: BTreeMap<String, InitialAccessToken>,
    clients: BTreeMap<String, ClientRegistration>,
}

impl MemoryRegistrations {
    fn lock(&self) -> std::sync::MutexGuard<'_, RegistrationState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets a client's registration (when the client is deleted).
    pub fn forget(&self, client_id: &str) -> bool {
        self.lock().clients.remove(client_id).is_some()
    }
}

impl RegistrationStore for MemoryRegistrations {
    async fn save_initial_token(&self, token: &InitialAccessToken) -> Result<(), StoreError> {
        self.lock().initial.insert(token.id.clone(), token.clone());
        Ok(())
    }

    async fn use_initial_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<InitialAccessToken>, StoreError> {
        let mut state = self.lock();
        let Some(token) = state.initial.values_mut().find(|t| t.digest == *digest) else {
            return Ok(None);
        };
        if !usable(token, now) {
            return Ok(None);
        }
        let before = token.clone();
        if let Some(left) = &mut token.uses_left {
            *left -= 1;
        }
        Ok(Some(before))
    }

    async fn list_initial_tokens(&self) -> Result<Vec<InitialAccessToken>, StoreError> {
        Ok(self.lock().initial.values().cloned().collect())
    }

    async fn delete_initial_token(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().initial.remove(id).is_some())
    }

    async fn put_registration(&self, registration: &ClientRegistration) -> Result<(), StoreError> {
        self.lock()
            .clients
            .insert(registration.client_id.clone(), registration.clone());
        Ok(())
    }

    async fn swap_registration(
        &self,
        expected: &Digest,
        next: &ClientRegistration,
    ) -> Result<bool, StoreError> {
        let mut state = self.lock();
        match state.clients.get_mut(&next.client_id) {
            Some(current) if current.token_digest == *expected => {
                *current = next.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn get_registration(
        &self,
        client_id: &str,
    ) -> Result<Option<ClientRegistration>, StoreError> {
        Ok(self.lock().clients.get(client_id).cloned())
    }

    async fn delete_registration(&self, client_id: &str) -> Result<bool, StoreError> {
        Ok(self.forget(client_id))
    }

    async fn touch_registration(&self, client_id: &str, day: UnixTime) -> Result<(), StoreError> {
        if let Some(r) = self.lock().clients.get_mut(client_id)
            && r.last_used < day
        {
            r.last_used = day;
        }
        Ok(())
    }

    async fn unused_registrations(
        &self,
        before: UnixTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .lock()
            .clients
            .values()
            .filter(|r| r.last_used < before)
            .take(limit)
            .map(|r| r.client_id.clone())
            .collect())
    }
}

/// Whether an initial access token may be used at `now`: not expired, and a use left. The
/// SQL backends state the same condition in their `UPDATE … WHERE`.
pub fn usable(token: &InitialAccessToken, now: UnixTime) -> bool {
    token.expires_at.is_none_or(|at| now < at) && token.uses_left.is_none_or(|left| left > 0)
}
