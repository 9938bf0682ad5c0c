//! The in-memory OAuth 1.0a store: the reference implementation of [`OAuth1Store`].
//!
//! Bounded like the core's memory store: every write first forgets expired request tokens,
//! access tokens and nonces, so memory stays flat under a constant load.

use super::{AccessToken, Consumer, OAuth1Store, RequestToken};
use crate::clock::UnixTime;
use crate::secret::Digest;
use crate::store::StoreError;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// OAuth 1.0a state in process memory; cloning shares it. Lost on restart.
#[derive(Clone, Debug, Default)]
pub struct MemoryOAuth1Store {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    consumers: BTreeMap<String, Consumer>,
    request_tokens: HashMap<[u8; 32], RequestToken>,
    access_tokens: HashMap<[u8; 32], AccessToken>,
    nonces: HashMap<[u8; 32], UnixTime>,
    /// Everything that expires, by expiry: (when, kind, key).
    by_expiry: BTreeSet<(UnixTime, u8, [u8; 32])>,
}

const REQUEST: u8 = 0;
const ACCESS: u8 = 1;
const NONCE: u8 = 2;

impl MemoryOAuth1Store {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many records of every kind are held (for tests of boundedness).
    pub fn len(&self) -> usize {
        let s = self.lock();
        s.request_tokens.len() + s.access_tokens.len() + s.nonces.len()
    }

    /// Whether the store holds no token or nonce.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every request and access token of resource owner `subject` (when the user is
    /// deleted); returns how many went.
    pub fn delete_tokens_of_subject(&self, subject: &str) -> usize {
        let mut s = self.lock();
        let before = s.request_tokens.len() + s.access_tokens.len();
        s.request_tokens
            .retain(|_, t| t.subject.as_deref() != Some(subject));
        s.access_tokens.retain(|_, t| t.subject != subject);
        before - (s.request_tokens.len() + s.access_tokens.len())
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Each update is a single insert or remove, so a poisoned lock is safe to keep using.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn sweep(&mut self, now: UnixTime) {
        while let Some(&(at, kind, key)) = self.by_expiry.first() {
            if at > now {
                break;
            }
            self.by_expiry.pop_first();
            match kind {
                REQUEST => {
                    self.request_tokens.remove(&key);
                }
                ACCESS => {
                    self.access_tokens.remove(&key);
                }
                _ => {
                    self.nonces.remove(&key);
                }
            }
        }
    }
}

impl OAuth1Store for MemoryOAuth1Store {
    async fn get_consumer(&self, client_id: &str) -> Result<Option<Consumer>, StoreError> {
        Ok(self.lock().consumers.get(client_id).cloned())
    }

    async fn put_consumer(&self, consumer: &Consumer) -> Result<(), StoreError> {
        self.lock()
            .consumers
            .insert(consumer.client_id.clone(), consumer.clone());
        Ok(())
    }

    async fn delete_consumer(&self, client_id: &str) -> Result<bool, StoreError> {
        let mut s = self.lock();
        s.request_tokens.retain(|_, t| t.client_id != client_id);
        s.access_tokens.retain(|_, t| t.client_id != client_id);
        Ok(s.consumers.remove(client_id).is_some())
    }

    async fn rotate_consumer_secret(
        &self,
        client_id: &str,
        salt: &str,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let Some(consumer) = s.consumers.get_mut(client_id) else {
            return Ok(false);
        };
        consumer.secret_salt = Some(salt.to_owned());
        s.request_tokens.retain(|_, t| t.client_id != client_id);
        s.access_tokens.retain(|_, t| t.client_id != client_id);
        Ok(true)
    }

    async fn save_request_token(
        &self,
        token: &RequestToken,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        s.sweep(now);
        let key = *token.digest.as_bytes();
        s.by_expiry.insert((token.expires_at, REQUEST, key));
        s.request_tokens.insert(key, token.clone());
        Ok(())
    }

    async fn find_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<RequestToken>, StoreError> {
        Ok(self
            .lock()
            .request_tokens
            .get(digest.as_bytes())
            .filter(|t| now < t.expires_at)
            .cloned())
    }

    async fn authorize_request_token(
        &self,
        digest: &Digest,
        subject: &str,
        username: &str,
        verifier: &Digest,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        let Some(token) = s.request_tokens.get_mut(digest.as_bytes()) else {
            return Ok(false);
        };
        if now >= token.expires_at || token.verifier.is_some() {
            return Ok(false);
        }
        token.subject = Some(subject.to_owned());
        token.username = Some(username.to_owned());
        token.verifier = Some(*verifier);
        Ok(true)
    }

    async fn take_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<RequestToken>, StoreError> {
        let mut s = self.lock();
        let token = s.request_tokens.remove(digest.as_bytes());
        if let Some(t) = &token {
            s.by_expiry
                .remove(&(t.expires_at, REQUEST, *digest.as_bytes()));
        }
        Ok(token.filter(|t| now < t.expires_at))
    }

    async fn save_access_token(
        &self,
        token: &AccessToken,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        let mut s = self.lock();
        s.sweep(now);
        let key = *token.digest.as_bytes();
        if let Some(at) = token.expires_at {
            s.by_expiry.insert((at, ACCESS, key));
        }
        s.access_tokens.insert(key, token.clone());
        Ok(())
    }

    async fn find_access_token(&self, digest: &Digest) -> Result<Option<AccessToken>, StoreError> {
        Ok(self.lock().access_tokens.get(digest.as_bytes()).cloned())
    }

    async fn revoke_access_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        let mut s = self.lock();
        match s.access_tokens.get_mut(digest.as_bytes()) {
            Some(token) => {
                token.revoked = true;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn insert_nonce(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut s = self.lock();
        s.sweep(now);
        let key = *key.as_bytes();
        if s.nonces.contains_key(&key) {
            return Ok(false);
        }
        s.nonces.insert(key, expires_at);
        s.by_expiry.insert((expires_at, NONCE, key));
        Ok(true)
    }
}
