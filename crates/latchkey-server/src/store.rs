//! Store selection: one enum over the backends, delegating by `match` (static dispatch on
//! the hot path, DESIGN.md), chosen by the `store.url` setting.

use latchkey_core::client::Client;
use latchkey_core::clock::UnixTime;
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Digest;
use latchkey_core::store::memory::MemoryStore;
use latchkey_core::store::{
    ClientStore, CodeStore, CodeTake, ConsentStore, Rotation, StoreError, TokenOwner, TokenStore,
    UserStore,
};
use latchkey_core::token::{CodeRecord, FamilyId, NewTokens, TokenRecord};
use latchkey_core::user::User;
use latchkey_sql::SqliteStore;
use std::path::Path;

/// The store the server runs on.
#[derive(Clone, Debug)]
pub enum AnyStore {
    /// The embedded, durable SQLite store (the default).
    Sqlite(SqliteStore),
    /// Process memory: fast, and lost on exit.
    Memory(MemoryStore),
}

impl AnyStore {
    /// Opens the store named by `url`, or the embedded store in `data_dir` when `url` is unset.
    pub async fn open(url: Option<&str>, data_dir: &Path) -> anyhow::Result<Self> {
        match url {
            None => {
                std::fs::create_dir_all(data_dir).map_err(|e| {
                    anyhow::anyhow!("cannot create data directory {}: {e}", data_dir.display())
                })?;
                Ok(Self::Sqlite(
                    SqliteStore::open(data_dir.join("latchkey.db")).await?,
                ))
            }
            Some("memory:") => Ok(Self::Memory(MemoryStore::new())),
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) if !path.is_empty() => {
                    if let Some(parent) = Path::new(path).parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    Ok(Self::Sqlite(SqliteStore::open(path).await?))
                }
                _ => anyhow::bail!(
                    "unsupported store URL {url:?}: use sqlite:///path/to/file.db or memory:"
                ),
            },
        }
    }

    /// Finishes pending writes and closes connections.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Memory(_) => {}
        }
    }
}

macro_rules! delegate {
    ($self:ident, $store:ident => $call:expr) => {
        match $self {
            AnyStore::Sqlite($store) => $call,
            AnyStore::Memory($store) => $call,
        }
    };
}

impl ClientStore for AnyStore {
    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        delegate!(self, s => s.get_client(id).await)
    }
    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        delegate!(self, s => s.put_client(client).await)
    }
    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        delegate!(self, s => s.delete_client(id).await)
    }
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        delegate!(self, s => s.list_clients().await)
    }
}

impl UserStore for AnyStore {
    async fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        delegate!(self, s => s.get_user(username).await)
    }
    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        delegate!(self, s => s.put_user(user).await)
    }
    async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        delegate!(self, s => s.delete_user(username).await)
    }
    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        delegate!(self, s => s.list_users().await)
    }
}

impl TokenStore for AnyStore {
    async fn save_tokens(&self, tokens: &NewTokens, now: UnixTime) -> Result<(), StoreError> {
        delegate!(self, s => s.save_tokens(tokens, now).await)
    }
    async fn find_token(&self, digest: &Digest) -> Result<Option<TokenRecord>, StoreError> {
        delegate!(self, s => s.find_token(digest).await)
    }
    async fn rotate_refresh(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> Result<Rotation, StoreError> {
        delegate!(self, s => s.rotate_refresh(old, new, now).await)
    }
    async fn revoke_family(&self, family: &FamilyId) -> Result<u64, StoreError> {
        delegate!(self, s => s.revoke_family(family).await)
    }
    async fn revoke_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        delegate!(self, s => s.revoke_token(digest).await)
    }
    async fn delete_tokens_of(&self, owner: &TokenOwner) -> Result<u64, StoreError> {
        delegate!(self, s => s.delete_tokens_of(owner).await)
    }
    async fn ping(&self) -> Result<(), StoreError> {
        delegate!(self, s => s.ping().await)
    }
}

impl CodeStore for AnyStore {
    async fn save_code(&self, code: &CodeRecord, now: UnixTime) -> Result<(), StoreError> {
        delegate!(self, s => s.save_code(code, now).await)
    }
    async fn take_code(&self, digest: &Digest, now: UnixTime) -> Result<CodeTake, StoreError> {
        delegate!(self, s => s.take_code(digest, now).await)
    }
}

impl ConsentStore for AnyStore {
    async fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        delegate!(self, s => s.get_consent(subject, client_id).await)
    }
    async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        scope: &ScopeSet,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        delegate!(self, s => s.put_consent(subject, client_id, scope, now).await)
    }
    async fn revoke_consent(&self, subject: &str, client_id: &str) -> Result<bool, StoreError> {
        delegate!(self, s => s.revoke_consent(subject, client_id).await)
    }
}
