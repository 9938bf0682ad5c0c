//! Store selection: a durable store for clients, users, consent, login sessions and signing
//! keys (SQLite,
//! PostgreSQL, MySQL/MariaDB or memory), optionally with a fast store for tokens, codes, replay
//! keys and pending requests (Redis or memcached). Enums delegate by `match`: static dispatch on the hot path.
//!
//! With a fast store, the two are combined by the core's [`Tiered`], which holds the rule that
//! deleting a client or a user also deletes its tokens and codes in the fast store.
//!
//! The embedded default keeps tokens in the token log (`latchkey_tokenlog`, in
//! `<data_dir>/tokens`) and the rest, codes included, in SQLite: see [`token_layout`].

use latchkey_core::client::{Client, ClientId};
use latchkey_core::clock::UnixTime;
use latchkey_core::indicator::RegisteredResource;
use latchkey_core::registration::store::{
    ClientRegistration, InitialAccessToken, RegistrationStore,
};
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Digest;
use latchkey_core::session::SessionRecord;
use latchkey_core::store::ResourceStore;
use latchkey_core::store::memory::MemoryStore;
use latchkey_core::store::tiered::Tiered;
use latchkey_core::store::{
    ClientStore, CodeStore, CodeTake, ConsentRecord, ConsentStore, KeyStore, KeyUpdate,
    PendingKind, PendingRecord, PendingStore, ReplayStore, Rotation, SessionStore, StoreError,
    StoredKeys, TokenOwner, TokenStore, UserStore,
};
use latchkey_core::token::{CodeRecord, FamilyId, NewTokens, TokenRecord};
use latchkey_core::user::User;
use latchkey_memcached::MemcachedStore;
use latchkey_oauth1::memory::MemoryOAuth1Store;
use latchkey_oauth1::store::{AccessToken, Consumer, OAuth1Store, RequestToken};
use latchkey_redis::RedisStore;
use latchkey_sql::{MySqlStore, PgStore, SqliteStore};
use latchkey_tokenlog::{LazyTokenLog, LogTokens};
use std::path::Path;

/// Where clients, users and consent live.
#[derive(Clone, Debug)]
pub enum Durable {
    /// The embedded SQLite store (the default).
    Sqlite(SqliteStore),
    /// PostgreSQL: several server nodes can share it.
    Postgres(PgStore),
    /// MySQL or MariaDB.
    MySql(MySqlStore),
    /// Process memory: lost on exit.
    Memory(MemoryStore),
}

/// Where tokens and codes live when a fast store is configured.
#[derive(Clone, Debug)]
pub enum Fast {
    /// Redis, with native expiry.
    Redis(RedisStore),
    /// memcached: evictions can end sessions early (see the crate's documentation).
    Memcached(MemcachedStore),
    /// The token log for tokens; codes, replay keys and pending requests in the durable store.
    Log(LogTokens<Durable>),
}

/// Where tokens go, as `store.tokens_url` and the data directory decide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenLayout {
    /// In the durable store, with everything else (`tokens_url = "durable:"`, and an embedded
    /// database created before the token log existed).
    Durable,
    /// In the token log in this directory (`tokens_url = "log:"` or `"log:///path"`, and the
    /// embedded default).
    Log(std::path::PathBuf),
    /// In the fast store at this URL (Redis, memcached).
    Fast(String),
}

/// Where tokens go. With `tokens_url` unset, the embedded store (no `url`) keeps them in the
/// token log at `<data_dir>/tokens`, unless `latchkey.db` already exists without that
/// directory: a database from before the log keeps its tokens in SQLite (its issued tokens
/// stay valid) until the operator sets `tokens_url = "log:"`. A networked durable store keeps
/// them itself (several nodes share it; a log is one process's).
pub fn token_layout(url: Option<&str>, tokens_url: Option<&str>, data_dir: &Path) -> TokenLayout {
    match tokens_url {
        Some("durable:") => TokenLayout::Durable,
        Some("log:") => TokenLayout::Log(data_dir.join("tokens")),
        Some(other) => match other.strip_prefix("log://") {
            Some(path) => TokenLayout::Log(path.into()),
            None => TokenLayout::Fast(other.to_owned()),
        },
        None if url.is_none()
            && (data_dir.join("tokens").is_dir() || !data_dir.join("latchkey.db").exists()) =>
        {
            TokenLayout::Log(data_dir.join("tokens"))
        }
        None => TokenLayout::Durable,
    }
}

/// How the stores are combined.
#[derive(Clone, Debug)]
enum Layout {
    /// The durable store keeps tokens and codes too.
    Single(Durable),
    /// Tokens and codes in a fast store, the rest in the durable one.
    Tiered(Tiered<Durable, Fast>),
}

/// The store the server runs on.
#[derive(Clone, Debug)]
pub struct AnyStore {
    layout: Layout,
    /// OAuth 1.0a state when the durable store is memory (the SQL stores hold their own).
    oauth1_memory: MemoryOAuth1Store,
}

/// Creates `dir` and its missing parents readable by the owner only (0700 on Unix): it holds
/// the database, its journal and the keys. An existing directory is left as it is.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

impl AnyStore {
    /// Opens the durable store named by `url` (the embedded store in `data_dir` when unset)
    /// and the fast store named by `tokens_url`, if any.
    pub async fn open(
        url: Option<&str>,
        tokens_url: Option<&str>,
        key_prefix: &str,
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        let durable = match url {
            None => {
                create_private_dir(data_dir).map_err(|e| {
                    anyhow::anyhow!("cannot create data directory {}: {e}", data_dir.display())
                })?;
                if tokens_url.is_none() && !data_dir.join("latchkey.db").exists() {
                    // A new embedded store: its tokens go to the log from the start, whichever
                    // command creates it (see `token_layout`).
                    create_private_dir(&data_dir.join("tokens")).map_err(|e| {
                        anyhow::anyhow!("cannot create the token log directory: {e}")
                    })?;
                }
                Durable::Sqlite(SqliteStore::open(data_dir.join("latchkey.db")).await?)
            }
            Some("memory:") => Durable::Memory(MemoryStore::new()),
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Durable::Postgres(PgStore::open(url).await?)
            }
            Some(url) if url.starts_with("mysql://") || url.starts_with("mariadb://") => {
                Durable::MySql(MySqlStore::open(&url.replacen("mariadb://", "mysql://", 1)).await?)
            }
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) if !path.is_empty() => {
                    if let Some(parent) = Path::new(path).parent() {
                        create_private_dir(parent)?;
                    }
                    Durable::Sqlite(SqliteStore::open(path).await?)
                }
                _ => anyhow::bail!(
                    "unsupported store.url {url:?}: use sqlite:///path, postgres://…, mysql://… or memory:"
                ),
            },
        };
        let prefix = format!("{}:", key_prefix.trim_end_matches(':'));
        let fast = match token_layout(url, tokens_url, data_dir) {
            TokenLayout::Durable => None,
            TokenLayout::Log(dir) => {
                create_private_dir(&dir).map_err(|e| {
                    anyhow::anyhow!("cannot create token log directory {}: {e}", dir.display())
                })?;
                Some(Fast::Log(LogTokens::lazy(
                    LazyTokenLog::new(&dir, latchkey_tokenlog::Options::default()),
                    durable.clone(),
                )))
            }
            TokenLayout::Fast(url)
                if url.starts_with("redis://") || url.starts_with("rediss://") =>
            {
                Some(Fast::Redis(RedisStore::connect(&url, &prefix).await?))
            }
            TokenLayout::Fast(url) => match url
                .strip_prefix("memcache://")
                .or_else(|| url.strip_prefix("memcached://"))
            {
                Some(addr) if !addr.is_empty() => Some(Fast::Memcached(
                    MemcachedStore::connect(addr, &prefix, 8).await?,
                )),
                _ => anyhow::bail!(
                    "unsupported store.tokens_url {url:?}: use redis://host:port, memcache://host:port, log:, log:///path or durable:"
                ),
            },
        };
        let layout = match fast {
            None => Layout::Single(durable),
            Some(fast) => Layout::Tiered(Tiered::new(durable, fast)),
        };
        Ok(Self {
            layout,
            oauth1_memory: MemoryOAuth1Store::new(),
        })
    }

    /// Opens the stores the settings name.
    pub async fn from_settings(settings: &crate::settings::Settings) -> anyhow::Result<Self> {
        Self::open(
            settings.store.url.as_deref(),
            settings.store.tokens_url.as_deref(),
            &settings.store.key_prefix,
            &settings.data_dir,
        )
        .await
    }

    /// Opens the token log now, if tokens live in one: the server replays it before serving
    /// (and fails at start if another process holds it); commands open it on first use.
    pub fn open_token_log(&self) -> anyhow::Result<()> {
        if let Layout::Tiered(tiered) = &self.layout
            && let Fast::Log(log) = tiered.fast()
        {
            let started = std::time::Instant::now();
            let stats = log.log()?.stats();
            tracing::info!(
                live_tokens = stats.live_tokens,
                segments = stats.segments,
                replay_ms = started.elapsed().as_millis() as u64,
                "token log open"
            );
        }
        Ok(())
    }

    /// The store of clients, users, consent and sessions.
    fn durable(&self) -> &Durable {
        match &self.layout {
            Layout::Single(durable) => durable,
            Layout::Tiered(tiered) => tiered.durable(),
        }
    }

    /// Finishes pending writes and closes connections.
    pub async fn close(&self) {
        match self.durable() {
            Durable::Sqlite(s) => s.close().await,
            Durable::Postgres(s) => s.close().await,
            Durable::MySql(s) => s.close().await,
            Durable::Memory(_) => {}
        }
    }
}

/// Delegates to the durable store's backend. The futures of the networked backends are
/// boxed: they are kilobytes (a driver's whole request state), and unboxed they would make
/// every `AnyStore` future, and every future that awaits one up to the HTTP handler, as large,
/// copied at each level on every request, also on the memory and SQLite stores (BENCHMARKS.md
/// has the sizes). One allocation is nothing next to a network round trip.
macro_rules! durable {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Durable::Sqlite($s) => $call,
            Durable::Postgres($s) => Box::pin(async { $call }).await,
            Durable::MySql($s) => Box::pin(async { $call }).await,
            Durable::Memory($s) => $call,
        }
    };
}

/// Delegates to the fast store's backend (boxed, see [`durable`]).
macro_rules! fast {
    ($self:ident, $s:ident => $call:expr) => {
        match $self {
            Fast::Redis($s) => Box::pin(async { $call }).await,
            Fast::Memcached($s) => Box::pin(async { $call }).await,
            Fast::Log($s) => $call,
        }
    };
}

/// Delegates to the layout: the single store, or the [`Tiered`] pair, which sends each call
/// to the store that keeps it.
macro_rules! layout {
    ($self:ident, $s:ident => $call:expr) => {
        match &$self.layout {
            Layout::Single($s) => $call,
            Layout::Tiered($s) => $call,
        }
    };
}

impl ClientStore for Durable {
    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        durable!(self, s => s.get_client(id).await)
    }
    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        durable!(self, s => s.put_client(client).await)
    }
    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        durable!(self, s => s.delete_client(id).await)
    }
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        durable!(self, s => s.list_clients().await)
    }
}

impl UserStore for Durable {
    async fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        durable!(self, s => s.get_user(username).await)
    }
    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        durable!(self, s => s.put_user(user).await)
    }
    async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        durable!(self, s => s.delete_user(username).await)
    }
    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        durable!(self, s => s.list_users().await)
    }
    async fn get_user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        durable!(self, s => s.get_user_by_id(id).await)
    }
}

impl SessionStore for Durable {
    async fn save_session(&self, session: &SessionRecord, now: UnixTime) -> Result<(), StoreError> {
        durable!(self, s => s.save_session(session, now).await)
    }
    async fn load_session(&self, digest: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        durable!(self, s => s.load_session(digest).await)
    }
    async fn delete_session(&self, digest: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        durable!(self, s => s.delete_session(digest).await)
    }
    async fn delete_sessions_of(&self, subject: &str) -> Result<Vec<SessionRecord>, StoreError> {
        durable!(self, s => s.delete_sessions_of(subject).await)
    }
    async fn add_session_client(&self, sid: &str, client_id: &str) -> Result<(), StoreError> {
        durable!(self, s => s.add_session_client(sid, client_id).await)
    }
}

impl KeyStore for Durable {
    async fn list_keys(&self) -> Result<StoredKeys, StoreError> {
        durable!(self, s => s.list_keys().await)
    }
    async fn update_keys_if_current(
        &self,
        generation: u64,
        update: &KeyUpdate,
    ) -> Result<bool, StoreError> {
        durable!(self, s => s.update_keys_if_current(generation, update).await)
    }
}

impl ConsentStore for Durable {
    async fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        durable!(self, s => s.get_consent(subject, client_id).await)
    }
    async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        scope: &ScopeSet,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        durable!(self, s => s.put_consent(subject, client_id, scope, now).await)
    }
    async fn revoke_consent(&self, subject: &str, client_id: &str) -> Result<bool, StoreError> {
        durable!(self, s => s.revoke_consent(subject, client_id).await)
    }
    async fn list_consents(&self, subject: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        durable!(self, s => s.list_consents(subject).await)
    }
}

/// Implements [`TokenStore`], [`CodeStore`], [`ReplayStore`] and [`PendingStore`] for an enum
/// by delegating with `$by`.
macro_rules! token_and_code_store {
    ($ty:ty, $by:ident) => {
        impl TokenStore for $ty {
            async fn save_tokens(&self, tokens: &NewTokens, now: UnixTime) -> Result<(), StoreError> {
                $by!(self, s => s.save_tokens(tokens, now).await)
            }
            async fn find_token(&self, digest: &Digest) -> Result<Option<TokenRecord>, StoreError> {
                $by!(self, s => s.find_token(digest).await)
            }
            async fn rotate_refresh(
                &self,
                old: &Digest,
                new: &NewTokens,
                now: UnixTime,
            ) -> Result<Rotation, StoreError> {
                $by!(self, s => s.rotate_refresh(old, new, now).await)
            }
            async fn revoke_family(&self, family: &FamilyId) -> Result<u64, StoreError> {
                $by!(self, s => s.revoke_family(family).await)
            }
            async fn revoke_token(&self, digest: &Digest) -> Result<bool, StoreError> {
                $by!(self, s => s.revoke_token(digest).await)
            }
            async fn delete_tokens_of(&self, owner: &TokenOwner) -> Result<u64, StoreError> {
                $by!(self, s => s.delete_tokens_of(owner).await)
            }
            async fn revoke_tokens_of_grant(
                &self,
                client_id: &str,
                subject: &str,
            ) -> Result<u64, StoreError> {
                $by!(self, s => s.revoke_tokens_of_grant(client_id, subject).await)
            }
            async fn ping(&self) -> Result<(), StoreError> {
                $by!(self, s => s.ping().await)
            }
        }

        impl ReplayStore for $ty {
            async fn remember_once(
                &self,
                key: &Digest,
                expires_at: UnixTime,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                $by!(self, s => s.remember_once(key, expires_at, now).await)
            }
        }

        impl PendingStore for $ty {
            async fn save_pending(
                &self,
                record: &PendingRecord,
                now: UnixTime,
            ) -> Result<(), StoreError> {
                $by!(self, s => s.save_pending(record, now).await)
            }
            async fn find_pending(
                &self,
                kind: PendingKind,
                digest: &Digest,
                now: UnixTime,
            ) -> Result<Option<PendingRecord>, StoreError> {
                $by!(self, s => s.find_pending(kind, digest, now).await)
            }
            async fn find_pending_by_lookup(
                &self,
                kind: PendingKind,
                lookup: &Digest,
                now: UnixTime,
            ) -> Result<Option<PendingRecord>, StoreError> {
                $by!(self, s => s.find_pending_by_lookup(kind, lookup, now).await)
            }
            async fn replace_pending(
                &self,
                record: &PendingRecord,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                $by!(self, s => s.replace_pending(record, now).await)
            }
            async fn remove_pending(
                &self,
                kind: PendingKind,
                digest: &Digest,
                version: u64,
                now: UnixTime,
            ) -> Result<bool, StoreError> {
                $by!(self, s => s.remove_pending(kind, digest, version, now).await)
            }
        }

        impl CodeStore for $ty {
            async fn save_code(&self, code: &CodeRecord, now: UnixTime) -> Result<(), StoreError> {
                $by!(self, s => s.save_code(code, now).await)
            }
            async fn take_code(
                &self,
                digest: &Digest,
                client_id: &ClientId,
                now: UnixTime,
            ) -> Result<CodeTake, StoreError> {
                $by!(self, s => s.take_code(digest, client_id, now).await)
            }
        }
    };
}

token_and_code_store!(Durable, durable);
token_and_code_store!(Fast, fast);

impl ClientStore for AnyStore {
    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        crate::metrics::timed("get_client", self.durable().get_client(id)).await
    }
    async fn put_client(&self, client: &Client) -> Result<(), StoreError> {
        crate::metrics::timed("put_client", self.durable().put_client(client)).await
    }
    async fn delete_client(&self, id: &str) -> Result<bool, StoreError> {
        if let Durable::Memory(_) = self.durable() {
            self.oauth1_memory.delete_consumer(id).await?;
        }
        crate::metrics::timed("delete_client", async {
            layout!(self, s => s.delete_client(id).await)
        })
        .await
    }
    async fn list_clients(&self) -> Result<Vec<Client>, StoreError> {
        crate::metrics::timed("list_clients", self.durable().list_clients()).await
    }
}

impl UserStore for AnyStore {
    async fn get_user(&self, username: &str) -> Result<Option<User>, StoreError> {
        crate::metrics::timed("get_user", self.durable().get_user(username)).await
    }
    async fn put_user(&self, user: &User) -> Result<(), StoreError> {
        crate::metrics::timed("put_user", self.durable().put_user(user)).await
    }
    async fn delete_user(&self, username: &str) -> Result<bool, StoreError> {
        if let Durable::Memory(_) = self.durable()
            && let Some(user) = self.get_user(username).await?
        {
            self.oauth1_memory.delete_tokens_of_subject(&user.id);
        }
        crate::metrics::timed("delete_user", async {
            layout!(self, s => s.delete_user(username).await)
        })
        .await
    }
    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        crate::metrics::timed("list_users", self.durable().list_users()).await
    }
    async fn get_user_by_id(&self, id: &str) -> Result<Option<User>, StoreError> {
        crate::metrics::timed("get_user_by_id", self.durable().get_user_by_id(id)).await
    }
}

/// Login sessions live with users in the durable store, never in the fast one: a session
/// must end when its user does, and outlive a cache eviction.
impl SessionStore for AnyStore {
    async fn save_session(&self, session: &SessionRecord, now: UnixTime) -> Result<(), StoreError> {
        crate::metrics::timed("save_session", self.durable().save_session(session, now)).await
    }
    async fn load_session(&self, digest: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        crate::metrics::timed("load_session", self.durable().load_session(digest)).await
    }
    async fn delete_session(&self, digest: &Digest) -> Result<Option<SessionRecord>, StoreError> {
        crate::metrics::timed("delete_session", self.durable().delete_session(digest)).await
    }
    async fn delete_sessions_of(&self, subject: &str) -> Result<Vec<SessionRecord>, StoreError> {
        crate::metrics::timed(
            "delete_sessions_of",
            self.durable().delete_sessions_of(subject),
        )
        .await
    }
    async fn add_session_client(&self, sid: &str, client_id: &str) -> Result<(), StoreError> {
        crate::metrics::timed(
            "add_session_client",
            self.durable().add_session_client(sid, client_id),
        )
        .await
    }
}

/// Replay keys live with the tokens: in the fast store when there is one ([`Tiered`]).
impl ReplayStore for AnyStore {
    async fn remember_once(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        crate::metrics::timed("remember_once", async {
            layout!(self, s => s.remember_once(key, expires_at, now).await)
        })
        .await
    }
}

/// Pending requests live with codes: in the fast store when there is one ([`Tiered`]).
impl PendingStore for AnyStore {
    async fn save_pending(&self, record: &PendingRecord, now: UnixTime) -> Result<(), StoreError> {
        crate::metrics::timed("save_pending", async {
            layout!(self, s => s.save_pending(record, now).await)
        })
        .await
    }
    async fn find_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        crate::metrics::timed("find_pending", async {
            layout!(self, s => s.find_pending(kind, digest, now).await)
        })
        .await
    }
    async fn find_pending_by_lookup(
        &self,
        kind: PendingKind,
        lookup: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        crate::metrics::timed("find_pending_by_lookup", async {
            layout!(self, s => s.find_pending_by_lookup(kind, lookup, now).await)
        })
        .await
    }
    async fn replace_pending(
        &self,
        record: &PendingRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        crate::metrics::timed("replace_pending", async {
            layout!(self, s => s.replace_pending(record, now).await)
        })
        .await
    }
    async fn remove_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        version: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        crate::metrics::timed("remove_pending", async {
            layout!(self, s => s.remove_pending(kind, digest, version, now).await)
        })
        .await
    }
}

/// Signing keys live in the durable store, never in the fast one: an evicted key would leave
/// every token it signed unverifiable.
impl KeyStore for AnyStore {
    async fn list_keys(&self) -> Result<StoredKeys, StoreError> {
        self.durable().list_keys().await
    }
    async fn update_keys_if_current(
        &self,
        generation: u64,
        update: &KeyUpdate,
    ) -> Result<bool, StoreError> {
        self.durable()
            .update_keys_if_current(generation, update)
            .await
    }
}

impl TokenStore for AnyStore {
    async fn save_tokens(&self, tokens: &NewTokens, now: UnixTime) -> Result<(), StoreError> {
        crate::metrics::timed("save_tokens", async {
            layout!(self, s => s.save_tokens(tokens, now).await)
        })
        .await
    }
    async fn find_token(&self, digest: &Digest) -> Result<Option<TokenRecord>, StoreError> {
        crate::metrics::timed("find_token", async {
            layout!(self, s => s.find_token(digest).await)
        })
        .await
    }
    async fn rotate_refresh(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> Result<Rotation, StoreError> {
        crate::metrics::timed("rotate_refresh", async {
            layout!(self, s => s.rotate_refresh(old, new, now).await)
        })
        .await
    }
    async fn revoke_family(&self, family: &FamilyId) -> Result<u64, StoreError> {
        crate::metrics::timed("revoke_family", async {
            layout!(self, s => s.revoke_family(family).await)
        })
        .await
    }
    async fn revoke_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        crate::metrics::timed("revoke_token", async {
            layout!(self, s => s.revoke_token(digest).await)
        })
        .await
    }
    async fn delete_tokens_of(&self, owner: &TokenOwner) -> Result<u64, StoreError> {
        crate::metrics::timed("delete_tokens_of", async {
            layout!(self, s => s.delete_tokens_of(owner).await)
        })
        .await
    }
    async fn revoke_tokens_of_grant(
        &self,
        client_id: &str,
        subject: &str,
    ) -> Result<u64, StoreError> {
        crate::metrics::timed("revoke_tokens_of_grant", async {
            layout!(self, s => s.revoke_tokens_of_grant(client_id, subject).await)
        })
        .await
    }
    /// Both stores must answer (the [`Tiered`] pair pings only the fast one).
    async fn ping(&self) -> Result<(), StoreError> {
        self.durable().ping().await?;
        match &self.layout {
            Layout::Single(_) => Ok(()),
            Layout::Tiered(tiered) => tiered.fast().ping().await,
        }
    }
}

impl CodeStore for AnyStore {
    async fn save_code(&self, code: &CodeRecord, now: UnixTime) -> Result<(), StoreError> {
        crate::metrics::timed("save_code", async {
            layout!(self, s => s.save_code(code, now).await)
        })
        .await
    }
    async fn take_code(
        &self,
        digest: &Digest,
        client_id: &ClientId,
        now: UnixTime,
    ) -> Result<CodeTake, StoreError> {
        crate::metrics::timed("take_code", async {
            layout!(self, s => s.take_code(digest, client_id, now).await)
        })
        .await
    }
}

impl ConsentStore for AnyStore {
    async fn get_consent(
        &self,
        subject: &str,
        client_id: &str,
    ) -> Result<Option<ScopeSet>, StoreError> {
        crate::metrics::timed(
            "get_consent",
            self.durable().get_consent(subject, client_id),
        )
        .await
    }
    async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        scope: &ScopeSet,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        crate::metrics::timed(
            "put_consent",
            self.durable().put_consent(subject, client_id, scope, now),
        )
        .await
    }
    async fn revoke_consent(&self, subject: &str, client_id: &str) -> Result<bool, StoreError> {
        crate::metrics::timed(
            "revoke_consent",
            self.durable().revoke_consent(subject, client_id),
        )
        .await
    }
    async fn list_consents(&self, subject: &str) -> Result<Vec<ConsentRecord>, StoreError> {
        crate::metrics::timed("list_consents", self.durable().list_consents(subject)).await
    }
}

/// OAuth 1.0a state lives with the durable store (every SQL store has its tables); with the
/// memory store, in a memory store of its own.
macro_rules! oauth1 {
    ($self:ident, $s:ident => $call:expr) => {
        match $self.durable() {
            Durable::Sqlite($s) => $call,
            Durable::Postgres($s) => $call,
            Durable::MySql($s) => $call,
            Durable::Memory(_) => {
                let $s = &$self.oauth1_memory;
                $call
            }
        }
    };
}

impl OAuth1Store for AnyStore {
    async fn get_consumer(&self, client_id: &str) -> Result<Option<Consumer>, StoreError> {
        oauth1!(self, s => s.get_consumer(client_id).await)
    }
    async fn put_consumer(&self, consumer: &Consumer) -> Result<(), StoreError> {
        oauth1!(self, s => s.put_consumer(consumer).await)
    }
    async fn delete_consumer(&self, client_id: &str) -> Result<bool, StoreError> {
        oauth1!(self, s => s.delete_consumer(client_id).await)
    }
    async fn rotate_consumer_secret(
        &self,
        client_id: &str,
        salt: &str,
    ) -> Result<bool, StoreError> {
        oauth1!(self, s => s.rotate_consumer_secret(client_id, salt).await)
    }
    async fn save_request_token(
        &self,
        token: &RequestToken,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        oauth1!(self, s => s.save_request_token(token, now).await)
    }
    async fn find_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<RequestToken>, StoreError> {
        oauth1!(self, s => s.find_request_token(digest, now).await)
    }
    async fn authorize_request_token(
        &self,
        digest: &Digest,
        subject: &str,
        username: &str,
        verifier: &Digest,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        oauth1!(self, s => s.authorize_request_token(digest, subject, username, verifier, now).await)
    }
    async fn take_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<RequestToken>, StoreError> {
        oauth1!(self, s => s.take_request_token(digest, now).await)
    }
    async fn save_access_token(
        &self,
        token: &AccessToken,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        oauth1!(self, s => s.save_access_token(token, now).await)
    }
    async fn find_access_token(&self, digest: &Digest) -> Result<Option<AccessToken>, StoreError> {
        oauth1!(self, s => s.find_access_token(digest).await)
    }
    async fn revoke_access_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        oauth1!(self, s => s.revoke_access_token(digest).await)
    }
    async fn insert_nonce(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        oauth1!(self, s => s.insert_nonce(key, expires_at, now).await)
    }
}

/// Implements [`RegistrationStore`] for an enum by delegating every call through `$by`.
macro_rules! registration_store {
    ($ty:ty, $self:ident, $s:ident => $target:expr) => {
        impl RegistrationStore for $ty {
            async fn save_initial_token(&$self, token: &InitialAccessToken) -> Result<(), StoreError> {
                let $s = $target;
                durable!($s, s => s.save_initial_token(token).await)
            }
            async fn use_initial_token(
                &$self,
                digest: &Digest,
                now: UnixTime,
            ) -> Result<Option<InitialAccessToken>, StoreError> {
                let $s = $target;
                durable!($s, s => s.use_initial_token(digest, now).await)
            }
            async fn list_initial_tokens(&$self) -> Result<Vec<InitialAccessToken>, StoreError> {
                let $s = $target;
                durable!($s, s => s.list_initial_tokens().await)
            }
            async fn delete_initial_token(&$self, id: &str) -> Result<bool, StoreError> {
                let $s = $target;
                durable!($s, s => s.delete_initial_token(id).await)
            }
            async fn put_registration(&$self, registration: &ClientRegistration) -> Result<(), StoreError> {
                let $s = $target;
                durable!($s, s => s.put_registration(registration).await)
            }
            async fn swap_registration(
                &$self,
                expected: &Digest,
                next: &ClientRegistration,
            ) -> Result<bool, StoreError> {
                let $s = $target;
                durable!($s, s => s.swap_registration(expected, next).await)
            }
            async fn get_registration(
                &$self,
                client_id: &str,
            ) -> Result<Option<ClientRegistration>, StoreError> {
                let $s = $target;
                durable!($s, s => s.get_registration(client_id).await)
            }
            async fn delete_registration(&$self, client_id: &str) -> Result<bool, StoreError> {
                let $s = $target;
                durable!($s, s => s.delete_registration(client_id).await)
            }
            async fn touch_registration(&$self, client_id: &str, day: UnixTime) -> Result<(), StoreError> {
                let $s = $target;
                durable!($s, s => s.touch_registration(client_id, day).await)
            }
            async fn unused_registrations(
                &$self,
                before: UnixTime,
                limit: usize,
            ) -> Result<Vec<String>, StoreError> {
                let $s = $target;
                durable!($s, s => s.unused_registrations(before, limit).await)
            }
        }
    };
}

// Registrations live with their clients, in the durable store.
registration_store!(Durable, self, d => self);
registration_store!(AnyStore, self, d => self.durable());

/// Implements [`ResourceStore`] for an enum by delegating every call to its durable store.
macro_rules! resource_store {
    ($ty:ty, $self:ident, $s:ident => $target:expr) => {
        impl ResourceStore for $ty {
            async fn create_resource(&$self, resource: &RegisteredResource) -> Result<bool, StoreError> {
                let $s = $target;
                durable!($s, s => s.create_resource(resource).await)
            }
            async fn update_resource(&$self, resource: &RegisteredResource) -> Result<bool, StoreError> {
                let $s = $target;
                durable!($s, s => s.update_resource(resource).await)
            }
            async fn get_resource(&$self, id: &str) -> Result<Option<RegisteredResource>, StoreError> {
                let $s = $target;
                durable!($s, s => s.get_resource(id).await)
            }
            async fn list_resources(&$self) -> Result<Vec<RegisteredResource>, StoreError> {
                let $s = $target;
                durable!($s, s => s.list_resources().await)
            }
            async fn delete_resource(&$self, id: &str) -> Result<bool, StoreError> {
                let $s = $target;
                durable!($s, s => s.delete_resource(id).await)
            }
        }
    };
}

// Run-time resources are configuration: in the durable store.
resource_store!(Durable, self, d => self);
resource_store!(AnyStore, self, d => self.durable());
