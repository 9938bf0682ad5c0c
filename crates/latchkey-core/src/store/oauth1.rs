//! What the OAuth 1.0a provider (`latchkey-oauth1`) persists, and the store trait every
//! backend implements. It lives beside the other store traits so that a backend depends on
//! the core only; `latchkey_oauth1::store` re-exports it.
//!
//! Consumers are ordinary registered clients ([`crate::client::Client`]) plus a
//! [`Consumer`] record that turns OAuth 1.0a on for them and holds their RSA public key.
//! Tokens are kept by the SHA-256 [`Digest`] of their identifier, never the identifier
//! itself; their secrets are not stored at all (the provider derives them from its key).
//! Nor is the consumer secret: it is derived from the key, the client id and the
//! registration's random [`Consumer::secret_salt`], so a new registration of the same id, or
//! a rotation, gives a new secret.
//!
//! Method names state their atomicity, as in the core: [`OAuth1Store::take_request_token`]
//! consumes a request token in one step, [`OAuth1Store::insert_nonce`] fails on a duplicate,
//! [`OAuth1Store::rotate_consumer_secret`] changes the salt and drops the consumer's tokens
//! together.

pub mod memory;

use crate::clock::UnixTime;
use crate::entropy::{Entropy, random_token};
use crate::scope::ScopeSet;
use crate::secret::Digest;
use crate::store::StoreError;
use std::future::Future;

/// A client's OAuth 1.0a registration: its presence allows the client to act as a consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consumer {
    /// The client identifier, used as `oauth_consumer_key`.
    pub client_id: String,
    /// The PEM RSA public key for RSA-SHA1, when the consumer signs with RSA.
    pub rsa_public_key: Option<String>,
    /// When OAuth 1.0a was enabled for the client.
    pub created_at: UnixTime,
    /// The random value of this registration that the consumer secret is derived with (see
    /// `latchkey_oauth1::OAuth1Key::consumer_secret`); a new one on every registration and
    /// rotation.
    /// `None` for consumers registered before salts existed, whose secret is derived from
    /// the client id alone (the legacy derivation) until their secret is rotated.
    pub secret_salt: Option<String>,
}

impl Consumer {
    /// A new registration of `client_id` at `now`, with a fresh random secret salt: the one
    /// way consumers are made, so that no two registrations share a secret.
    pub fn new(
        client_id: impl Into<String>,
        rsa_public_key: Option<String>,
        entropy: &dyn Entropy,
        now: UnixTime,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            rsa_public_key,
            created_at: now,
            secret_salt: Some(new_secret_salt(entropy)),
        }
    }
}

/// A fresh random secret salt (128 bits, base64url), for a registration or a rotation.
pub fn new_secret_salt(entropy: &dyn Entropy) -> String {
    random_token(entropy, 16)
}

/// Temporary credentials (RFC 5849 §2.1), from issue to exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestToken {
    /// SHA-256 of the `oauth_token` value.
    pub digest: Digest,
    /// The consumer it was issued to.
    pub client_id: String,
    /// `oauth_callback`: an absolute URI or `oob`.
    pub callback: String,
    /// The realms asked for.
    pub realms: ScopeSet,
    /// After authorization: the resource owner's id.
    pub subject: Option<String>,
    /// After authorization: the resource owner's user name.
    pub username: Option<String>,
    /// After authorization: SHA-256 of the `oauth_verifier`.
    pub verifier: Option<Digest>,
    /// When it stops being usable (authorized or not).
    pub expires_at: UnixTime,
}

/// Token credentials (RFC 5849 §2.3): an access token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessToken {
    /// SHA-256 of the `oauth_token` value.
    pub digest: Digest,
    /// The consumer it was issued to.
    pub client_id: String,
    /// The resource owner's id.
    pub subject: String,
    /// The resource owner's user name.
    pub username: Option<String>,
    /// The realms granted.
    pub realms: ScopeSet,
    /// When it was issued.
    pub issued_at: UnixTime,
    /// When it expires; `None` for a token issued without a lifetime (the provider then
    /// applies its configured lifetime from `issued_at`, unless it has none).
    pub expires_at: Option<UnixTime>,
    /// Whether it was revoked.
    pub revoked: bool,
}

impl AccessToken {
    /// Whether the token may be used at `now`.
    pub fn is_active(&self, now: UnixTime) -> bool {
        !self.revoked && self.expires_at.is_none_or(|at| now < at)
    }
}

/// The OAuth 1.0a state: consumers, request tokens, access tokens and nonces.
pub trait OAuth1Store: Send + Sync + 'static {
    /// The OAuth 1.0a registration of `client_id`, if it has one.
    fn get_consumer(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<Option<Consumer>, StoreError>> + Send;

    /// Inserts or replaces a registration.
    fn put_consumer(
        &self,
        consumer: &Consumer,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Removes a registration and every token issued to the consumer; `false` if none.
    fn delete_consumer(
        &self,
        client_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// In one step: replaces the consumer's secret salt with `salt` (so its consumer secret
    /// changes) and deletes every request and access token issued to it, which were
    /// obtained under the old secret. `false` if there is no such consumer.
    fn rotate_consumer_secret(
        &self,
        client_id: &str,
        salt: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Stores new temporary credentials.
    fn save_request_token(
        &self,
        token: &RequestToken,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The unexpired request token with `digest`, not consumed.
    fn find_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<RequestToken>, StoreError>> + Send;

    /// In one step: records the resource owner's approval on an unexpired request token that
    /// was not yet approved. `false` if there is no such token (unknown, expired, already
    /// approved): a request token is authorized once.
    fn authorize_request_token(
        &self,
        digest: &Digest,
        subject: &str,
        username: &str,
        verifier: &Digest,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// In one step: removes and returns the unexpired request token with `digest`. A second
    /// take of the same token gets `None`: request tokens are single use.
    fn take_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> impl Future<Output = Result<Option<RequestToken>, StoreError>> + Send;

    /// Stores a new access token.
    fn save_access_token(
        &self,
        token: &AccessToken,
        now: UnixTime,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The access token with `digest`, whatever its state.
    fn find_access_token(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = Result<Option<AccessToken>, StoreError>> + Send;

    /// Revokes an access token; `false` if it was unknown.
    fn revoke_access_token(
        &self,
        digest: &Digest,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Remembers a nonce (the digest of consumer, token, timestamp and nonce) until
    /// `expires_at`. `false` if it is already remembered: the request is a replay.
    fn insert_nonce(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Clients from one store and OAuth 1.0a state from another: how an embedder adds OAuth 1.0a
/// to a provider store it already has (e.g. the core's memory store with a
/// [`memory::MemoryOAuth1Store`]). Cloning clones both halves.
#[derive(Clone, Debug, Default)]
pub struct WithOAuth1<C, O> {
    /// Where clients are registered.
    pub clients: C,
    /// Where OAuth 1.0a state lives.
    pub oauth1: O,
}

impl<C: crate::store::ClientStore, O: Send + Sync + 'static> crate::store::ClientStore
    for WithOAuth1<C, O>
{
    async fn get_client(&self, id: &str) -> Result<Option<crate::client::Client>, StoreError> {
        self.clients.get_client(id).await
    }
    async fn put_client(&self, client: &crate::client::Client) -> Result<(), StoreError> {
        self.clients.put_client(client).await
    }
    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        self.clients.delete_client(id).await
    }
    async fn list_clients(&self) -> Result<Vec<crate::client::Client>, StoreError> {
        self.clients.list_clients().await
    }
}

impl<C: Send + Sync + 'static, O: OAuth1Store> OAuth1Store for WithOAuth1<C, O> {
    async fn get_consumer(&self, client_id: &str) -> Result<Option<Consumer>, StoreError> {
        self.oauth1.get_consumer(client_id).await
    }
    async fn put_consumer(&self, consumer: &Consumer) -> Result<(), StoreError> {
        self.oauth1.put_consumer(consumer).await
    }
    async fn delete_consumer(&self, client_id: &str) -> Result<bool, StoreError> {
        self.oauth1.delete_consumer(client_id).await
    }
    async fn rotate_consumer_secret(
        &self,
        client_id: &str,
        salt: &str,
    ) -> Result<bool, StoreError> {
        self.oauth1.rotate_consumer_secret(client_id, salt).await
    }
    async fn save_request_token(
        &self,
        token: &RequestToken,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.oauth1.save_request_token(token, now).await
    }
    async fn find_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<RequestToken>, StoreError> {
        self.oauth1.find_request_token(digest, now).await
    }
    async fn authorize_request_token(
        &self,
        digest: &Digest,
        subject: &str,
        username: &str,
        verifier: &Digest,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.oauth1
            .authorize_request_token(digest, subject, username, verifier, now)
            .await
    }
    async fn take_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<RequestToken>, StoreError> {
        self.oauth1.take_request_token(digest, now).await
    }
    async fn save_access_token(
        &self,
        token: &AccessToken,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.oauth1.save_access_token(token, now).await
    }
    async fn find_access_token(&self, digest: &Digest) -> Result<Option<AccessToken>, StoreError> {
        self.oauth1.find_access_token(digest).await
    }
    async fn revoke_access_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        self.oauth1.revoke_access_token(digest).await
    }
    async fn insert_nonce(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.oauth1.insert_nonce(key, expires_at, now).await
    }
}
