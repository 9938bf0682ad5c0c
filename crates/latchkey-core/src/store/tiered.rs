//! A store made of two: a durable one for what lives long (clients, users, consent, login
//! sessions, signing keys) and a fast one for what is hot and short-lived (tokens, codes, the
//! replay cache and pending requests).
//!
//! [`Tiered`] sends each trait to the store that keeps it, and holds the one rule that spans
//! both: deleting a client or a user deletes what was issued to them, wherever it lives. Its
//! `delete_client` and `delete_user` first call [`TokenStore::delete_tokens_of`] on the fast
//! store, then delete in the durable store (which forgets the consent and sessions it keeps).
//! In that order a failure leaves the client or user in place, to be deleted again, and never
//! leaves tokens of a deleted one usable.
//!
//! ```
//! use latchkey_core::store::memory::MemoryStore;
//! use latchkey_core::store::tiered::Tiered;
//! use latchkey_core::store::Store;
//!
//! fn runs_on<S: Store>(_: &S) {}
//! // In the server the durable store is SQL and the fast one Redis or memcached.
//! let store = Tiered::new(MemoryStore::new(), MemoryStore::new());
//! runs_on(&store);
//! ```

use super::{
    ClientStore, CodeStore, CodeTake, ConsentRecord, ConsentStore, PendingKind, PendingRecord,
    PendingStore, Rotation, SessionStore, StoreError, TokenOwner, TokenStore, UserStore,
};
use crate::client::{Client, ClientId};
use crate::clock::UnixTime;
use crate::scope::ScopeSet;
use crate::secret::Digest;
use crate::session::SessionRecord;
use crate::token::{CodeRecord, FamilyId, NewTokens, TokenRecord};
use crate::user::User;

/// Clients, users, consent, sessions and keys in `D`; tokens, codes, replay keys and pending
/// requests in `F`.
#[derive(Clone, Debug)]
pub struct Tiered<D, F> {
    durable: D,
    fast: F,
}

impl<D, F> Tiered<D, F> {
    /// Keeps long-lived records in `durable` and tokens and codes in `fast`.
    pub fn new(durable: D, fast: F) -> Self {
        Self { durable, fast }
    }

    /// The store of clients, users, consent and sessions.
    pub fn durable(&self) -> &D {
        &self.durable
    }

    /// The store of tokens and codes.
    pub fn fast(&self) -> &F {
        &self.fast
    }
}

/// Replayable keys live as long as the tokens they guard: in the fast store.
impl<D: Send + Sync + 'static, F: super::ReplayStore> super::ReplayStore for Tiered<D, F> {
    async fn remember_once(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.fast.remember_once(key, expires_at, now).await
    }
}

/// Pending requests (pushed authorization requests, device authorizations) live seconds to
/// minutes and are taken once, like codes: in the fast store.
impl<D: Send + Sync + 'static, F: PendingStore> PendingStore for Tiered<D, F> {
    async fn save_pending(&self, record: &PendingRecord, now: UnixTime) -> Result<(), StoreError> {
        self.fast.save_pending(record, now).await
    }

    async fn find_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        self.fast.find_pending(kind, digest, now).await
    }

    async fn find_pending_by_lookup(
        &self,
        kind: PendingKind,
        lookup: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        self.fast.find_pending_by_lookup(kind, lookup, now).await
    }

    async fn replace_pending(
        &self,
        record: &PendingRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.fast.replace_pending(record, now).await
    }

    async fn remove_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        version: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.fast.remove_pending(kind, digest, version, now).await
    }
}

impl<D: ClientStore, F: TokenStore> ClientStore for Tiered<D, F> {
    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        self.durable.get_client(id).await
    }

    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        self.durable.put_client(client).await
    }

    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        self.fast
            .delete_tokens_of(&TokenOwner::Client(id.to_owned()))
            .await?;
        self.durable.delete_client(id).await
    }

    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        self.durable.list_clients().await
    }
}

impl<D: UserStore, F: TokenStore> UserStore for Tiered<D, F> {
    async fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.durable.get_user(username).await
    }

    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        self.durable.put_user(user).await
    }

    async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        let Some(user) = self.durable.get_user(username).await? else {
            return Ok(false);
        };
        self.fast
            .delete_tokens_of(&TokenOwner::Subject(user.id))
            .await?;
        self.durable.delete_user(username).await
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.durable.list_users().await
    }

    async fn get_user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        self.durable.get_user_by_id(id).await
    }
}

impl<D: Send + Sync + 'static, F: TokenStore> TokenStore for Tiered<D, F> {
    async fn save_tokens(&self, tokens: &NewTokens, now: UnixTime) -> Result<(), StoreError> {
        self.fast.save_tokens(tokens, now).await
    }

    async fn find_token(&self, digest: &Digest) -> Result<Option<TokenRecord>, StoreError> {
        self.fast.find_token(digest).await
    }

    async fn rotate_refresh(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> Result<Rotation, StoreError> {
        self.fast.rotate_refresh(old, new, now).await
    }

    async fn revoke_family(&self, family: &FamilyId) -> Result<u64, StoreError> {
        self.fast.revoke_family(family).await
    }

    async fn revoke_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        self.fast.revoke_token(digest).await
    }

    async fn delete_tokens_of(&self, owner: &TokenOwner) -> Result<u64, StoreError> {
        self.fast.delete_tokens_of(owner).await
    }

    async fn revoke_tokens_of_grant(
        &self,
        client_id: &str,
        subject: &str,
    ) -> Result<u64, StoreError> {
        self.fast.revoke_tokens_of_grant(client_id, subject).await
    }

    /// Pings the fast store only: the durable store's traits do not include one. A caller
    /// that can reach the durable store's own `ping` checks it too (the server does).
    async fn ping(&self) -> Result<(), StoreError> {
        self.fast.ping().await
    }
}

impl<D: Send + Sync + 'static, F: CodeStore> CodeStore for Tiered<D, F> {
    async fn save_code(&self, code: &CodeRecord, now: UnixTime) -> Result<(), StoreError> {
        self.fast.save_code(code, now).await
    }

    async fn take_code(
        &self,
        digest: &Digest,
        client_id: &ClientId,
        now: UnixTime,
    ) -> Result<CodeTake, StoreError> {
        self.fast.take_code(digest, client_id, now).await
    }
}

impl<D: ConsentStore, F: Send + Sync + 'static> ConsentStore for Tiered<D, F> {
    async fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        self.durable.get_consent(subject, client_id).await
    }

    async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        scope: &ScopeSet,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.durable
            .put_consent(subject, client_id, scope, now)
            .await
    }

    async fn revoke_consent(&self, subject: &str, client_id: &str) -> Result<bool, StoreError> {
        self.durable.revoke_consent(subject, client_id).await
    }

    async fn list_consents(&self, subject: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        self.durable.list_consents(subject).await
    }
}

/// Login sessions live with users, never in the fast store: a session must end when its user
/// does, and outlive a cache eviction.
impl<D: SessionStore, F: Send + Sync + 'static> SessionStore for Tiered<D, F> {
    async fn save_session(&self, session: &SessionRecord, now: UnixTime) -> Result<(), StoreError> {
        self.durable.save_session(session, now).await
    }

    async fn load_session(&self, digest: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        self.durable.load_session(digest).await
    }

    async fn delete_session(&self, digest: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        self.durable.delete_session(digest).await
    }

    async fn delete_sessions_of(&self, subject: &str) -> Result<Vec<SessionRecord>, StoreError> {
        self.durable.delete_sessions_of(subject).await
    }

    async fn add_session_client(&self, sid: &str, client_id: &str) -> Result<(), StoreError> {
        self.durable.add_session_client(sid, client_id).await
    }
}

/// Signing keys live in the durable store: a key evicted from a cache would leave every token
/// it signed unverifiable.
impl<D: super::KeyStore, F: Send + Sync + 'static> super::KeyStore for Tiered<D, F> {
    async fn list_keys(&self) -> Result<super::StoredKeys, StoreError> {
        self.durable.list_keys().await
    }

    async fn update_keys_if_current(
        &self,
        generation: u64,
        update: &super::KeyUpdate,
    ) -> Result<bool, StoreError> {
        self.durable
            .update_keys_if_current(generation, update)
            .await
    }
}

/// Registrations live as long as their clients: in the durable store.
impl<D: crate::registration::store::RegistrationStore, F: Send + Sync + 'static>
    crate::registration::store::RegistrationStore for Tiered<D, F>
{
    async fn save_initial_token(
        &self,
        token: &crate::registration::store::InitialAccessToken,
    ) -> Result<(), StoreError> {
        self.durable.save_initial_token(token).await
    }

    async fn use_initial_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<crate::registration::store::InitialAccessToken>, StoreError> {
        self.durable.use_initial_token(digest, now).await
    }

    async fn list_initial_tokens(
        &self,
    ) -> Result<Vec<crate::registration::store::InitialAccessToken>, StoreError> {
        self.durable.list_initial_tokens().await
    }

    async fn delete_initial_token(&self, id: &str) -> Result<bool, StoreError> {
        self.durable.delete_initial_token(id).await
    }

    async fn put_registration(
        &self,
        registration: &crate::registration::store::ClientRegistration,
    ) -> Result<(), StoreError> {
        self.durable.put_registration(registration).await
    }

    async fn swap_registration(
        &self,
        expected: &Digest,
        next: &crate::registration::store::ClientRegistration,
    ) -> Result<bool, StoreError> {
        self.durable.swap_registration(expected, next).await
    }

    async fn get_registration(
        &self,
        client_id: &str,
    ) -> Result<Option<crate::registration::store::ClientRegistration>, StoreError> {
        self.durable.get_registration(client_id).await
    }

    async fn delete_registration(&self, client_id: &str) -> Result<bool, StoreError> {
        self.durable.delete_registration(client_id).await
    }

    async fn touch_registration(&self, client_id: &str, day: UnixTime) -> Result<(), StoreError> {
        self.durable.touch_registration(client_id, day).await
    }

    async fn unused_registrations(
        &self,
        before: UnixTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.durable.unused_registrations(before, limit).await
    }
}

/// Run-time resources are configuration: in the durable store.
impl<D: super::ResourceStore, F: Send + Sync + 'static> super::ResourceStore for Tiered<D, F> {
    async fn create_resource(
        &self,
        resource: &crate::indicator::RegisteredResource,
    ) -> Result<bool, StoreError> {
        self.durable.create_resource(resource).await
    }

    async fn update_resource(
        &self,
        resource: &crate::indicator::RegisteredResource,
    ) -> Result<bool, StoreError> {
        self.durable.update_resource(resource).await
    }

    async fn get_resource(
        &self,
        id: &str,
    ) -> Result<Option<crate::indicator::RegisteredResource>, StoreError> {
        self.durable.get_resource(id).await
    }

    async fn list_resources(
        &self,
    ) -> Result<Vec<crate::indicator::RegisteredResource>, StoreError> {
        self.durable.list_resources().await
    }

    async fn delete_resource(&self, id: &str) -> Result<bool, StoreError> {
        self.durable.delete_resource(id).await
    }
}
