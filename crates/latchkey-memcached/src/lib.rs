//! A memcached store for Latchkey's hot, short-lived state: issued tokens and authorization
//! codes.
//!
//! [`MemcachedStore`] implements [`TokenStore`], [`CodeStore`], the replay cache
//! ([`ReplayStore`]) and pending requests ([`latchkey_core::store::PendingStore`], see
//! `pending`) only; clients, users and
//! consent belong in SQL, and the server's composite store sends each trait to its backend.
//! memcached is a cache, not a database, and this store is built around what that means.
//!
//! # How it works
//! - **Native TTL.** Each token and code item expires at its record's `expires_at` (memcached
//!   takes relative seconds up to 30 days and an absolute unix time beyond).
//! - **State lives in the item.** A token's revoked / rotated flags and a code's used flag
//!   are inside the one item with the record, changed by compare-and-set (`mg … c` then
//!   `ms … C<cas>`). Of concurrent rotations or redemptions exactly one CAS succeeds; the
//!   others see the new version and answer `Reused` / `Replayed`. (A separate `rotated:` or
//!   `used:` marker key made with `add` would decide the winner just as well, but memcached
//!   can evict the marker and the token independently, and an evicted marker would let a
//!   refresh token rotate twice; one item cannot be half evicted.)
//! - **Generations instead of indexes.** memcached cannot list a family's or an owner's keys,
//!   so each family, client and subject has a generation counter (`gf:`, `gc:`, `gs:` + the
//!   SHA-256 of its name). A token or code stores the generations it was issued under, and
//!   every read checks them with one multi-get: [`TokenStore::revoke_family`] and
//!   [`TokenStore::delete_tokens_of`] just `incr` the counter, and every record issued before
//!   is revoked at once. A counter lives at least as long as the records that refer to it
//!   (its TTL is pushed out by CAS when a longer-lived record is issued).
//! - **A pool** of `pool_size` connections (one `async_memcached::Client` each), reconnected
//!   when one breaks. Every wait (for a connection, to connect, for each reply) is bounded by
//!   the timeout ([`DEFAULT_TIMEOUT`] unless [`MemcachedStore::connect_with_timeout`] says
//!   otherwise) and an outage answers [`StoreErrorKind::Unavailable`], never a hang.
//!
//! # What evictions do to users
//! memcached evicts items when its memory is full, even before they expire. Every case fails
//! closed, so an eviction can log someone out but never let a revoked token back in:
//! - **A token or code is evicted**: it is unknown, as if expired. The user signs in (or
//!   authorizes) again. A refresh token that vanished cannot be replayed either.
//! - **A generation counter is evicted**: every record that refers to it reads as revoked,
//!   because a record is valid only while its stored generation *equals* the live counter,
//!   and a missing counter equals nothing. A new counter starts at a fresh random 62-bit
//!   value, never at a number an older record could hold, so an evicted counter of a revoked
//!   family cannot come back as "not revoked". The cost is that an evicted counter also logs
//!   out that family's, client's or subject's live tokens; counters are small and read on
//!   every request, so an LRU keeps them longer than the tokens.
//! - **A family member list is evicted**: [`TokenStore::revoke_family`] still revokes the
//!   family (through its counter) but may report a smaller count; the list exists only to
//!   count.
//!
//! # Limits
//! - **Replay keys can be evicted.** [`ReplayStore::remember_once`] is an `add` (meta set
//!   `ME`) with the key's lifetime, atomic in memcached: of racing callers exactly one adds
//!   it. But a key evicted under memory pressure, or lost in a restart, is forgotten early,
//!   and its `jti` or nonce would then be accepted again within its lifetime. Size memcached
//!   so it does not evict, or keep the replay cache in Redis or SQL where that matters.
//! - Not durable: a memcached restart forgets every token and code (everyone signs in again).
//! - [`TokenStore::delete_tokens_of`] revokes everything of the owner but returns 0: memcached
//!   cannot count what it cannot list. [`TokenStore::revoke_family`]'s count is best effort.
//! - Expiry follows the memcached clock (relative TTLs are computed from this machine's
//!   clock); keep clocks in sync. A revoked or rotated token reads back until it expires.
//! - A call that timed out may still have been applied (an unknown outcome). A rotation is
//!   two steps here (mark the old token rotated, then store the new ones): if the second
//!   fails, the client gets an error, and its retry reads as a reuse that revokes the family,
//!   so the user signs in again. Nothing is left half-usable.
//! - One server (or a proxy in front of several, such as mcrouter, that keeps each key on one
//!   server); `async_memcached` connects over IPv4 TCP or a Unix socket.

mod codec;
mod generation;
mod pending;
mod pool;

use codec::{CodeEntry, Generations, TokenEntry};
use generation::{
    GENERATION_SLACK, Generation, append_or_add, ensure_generation, exptime, lives_until,
    parse_generation, system_now,
};
use latchkey_core::client::ClientId;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::{
    CodeStore, CodeTake, CodeVerdict, RefreshVerdict, ReplayStore, Rotation, StoreError,
    StoreErrorKind, TokenOwner, TokenStore, code_verdict, refresh_verdict,
};
use latchkey_core::token::{CodeRecord, FamilyId, NewTokens};
use pool::{Conn, Pool, Write};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How long each wait (for a pooled connection, to connect, for one reply) may take before
/// the call fails as [`StoreErrorKind::Unavailable`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// How often a compare-and-set is retried against concurrent writers before giving up.
pub(crate) const CAS_ATTEMPTS: usize = 16;

/// The longest key prefix accepted (memcached keys are at most 250 bytes).
const MAX_PREFIX: usize = 64;

/// Tokens and authorization codes in memcached: native TTLs, compare-and-set for single use,
/// generation counters for revocation.
///
/// Cloning is cheap and shares the connection pool.
#[derive(Clone, Debug)]
pub struct MemcachedStore {
    pool: Arc<Pool>,
    /// The key prefix, with its trailing `:`.
    prefix: Arc<str>,
}

impl MemcachedStore {
    /// Connects to memcached at `addr` (`host:port`, `tcp://host:port` or `unix:///path`)
    /// with a pool of `pool_size` connections (at least one), keeping every key under
    /// `key_prefix:`, with the [`DEFAULT_TIMEOUT`]. One connection is opened right away, so
    /// an unreachable server fails here, as [`StoreErrorKind::Unavailable`].
    ///
    /// The prefix is 1 to 64 printable ASCII characters without spaces.
    pub async fn connect(
        addr: &str,
        key_prefix: &str,
        pool_size: usize,
    ) -> Result<Self, StoreError> {
        Self::connect_with_timeout(addr, key_prefix, pool_size, DEFAULT_TIMEOUT).await
    }

    /// [`MemcachedStore::connect`] with another bound on each wait.
    pub async fn connect_with_timeout(
        addr: &str,
        key_prefix: &str,
        pool_size: usize,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        if key_prefix.is_empty()
            || key_prefix.len() > MAX_PREFIX
            || !key_prefix.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                "memcached key prefix must be 1 to 64 printable ASCII characters, no spaces",
            ));
        }
        let dsn = if addr.contains("://") {
            addr.to_owned()
        } else {
            format!("tcp://{addr}")
        };
        let store = Self {
            pool: Arc::new(Pool::new(dsn, pool_size, timeout)),
            prefix: Arc::from(format!("{key_prefix}:")),
        };
        store.ping().await?;
        Ok(store)
    }

    /// The key of a token or code item.
    fn item_key(&self, kind: &str, digest: &Digest) -> String {
        format!("{}{kind}{}", self.prefix, digest.to_hex())
    }

    /// The key of a counter or list named by an arbitrary string (hashed: keys may not hold
    /// spaces, and client ids and subjects may).
    fn named_key(&self, kind: &str, name: &str) -> String {
        format!(
            "{}{kind}{}",
            self.prefix,
            Digest::of(name.as_bytes()).to_hex()
        )
    }

    fn family_gen(&self, family: &str) -> String {
        self.named_key("gf:", family)
    }

    fn client_gen(&self, client: &str) -> String {
        self.named_key("gc:", client)
    }

    fn subject_gen(&self, subject: &str) -> String {
        self.named_key("gs:", subject)
    }

    fn family_list(&self, family: &str) -> String {
        self.named_key("fm:", family)
    }

    /// Whether the counters named by `wanted` still hold the generations stored in a record.
    async fn generations_live(
        &self,
        conn: &mut Conn<'_>,
        wanted: Vec<(String, u64)>,
    ) -> Result<bool, StoreError> {
        let keys: Vec<String> = wanted.iter().map(|(key, _)| key.clone()).collect();
        let found = conn.get_multi(&keys, &["v"]).await?;
        Ok(wanted.iter().all(|(key, generation)| {
            found.get(key).and_then(|item| parse_generation(item).ok()) == Some(*generation)
        }))
    }

    /// The counters a token entry must still match, or `None` if the entry is inconsistent.
    fn token_generations(&self, entry: &TokenEntry) -> Option<Vec<(String, u64)>> {
        let mut wanted = vec![
            (self.family_gen(entry.t.family()), entry.g.f?),
            (self.client_gen(entry.t.client()), entry.g.c),
        ];
        match (entry.t.subject(), entry.g.s) {
            (Some(subject), Some(generation)) => {
                wanted.push((self.subject_gen(subject), generation));
            }
            (None, None) => {}
            _ => return None,
        }
        Some(wanted)
    }

    /// Whether a token entry has not been revoked through its family, client or subject.
    async fn token_live(
        &self,
        conn: &mut Conn<'_>,
        entry: &TokenEntry,
    ) -> Result<bool, StoreError> {
        match self.token_generations(entry) {
            Some(wanted) => self.generations_live(conn, wanted).await,
            None => Ok(false),
        }
    }

    /// The current generation of each counter in `needs`, each made to live at least until
    /// the paired unix time: created (at a random start) if missing, extended if too short.
    async fn ensure_generations(
        &self,
        conn: &mut Conn<'_>,
        needs: &HashMap<String, i64>,
    ) -> Result<HashMap<String, Generation>, StoreError> {
        let keys: Vec<String> = needs.keys().cloned().collect();
        let found = conn.get_multi(&keys, &["v", "c", "t"]).await?;
        let now = system_now();
        let mut out = HashMap::with_capacity(needs.len());
        for (key, &until) in needs {
            let generation = match found.get(key) {
                Some(item) if lives_until(item, now) >= until => Generation {
                    value: parse_generation(item)?,
                    extended_ttl: None,
                },
                _ => ensure_generation(conn, key, until).await?,
            };
            out.insert(key.clone(), generation);
        }
        Ok(out)
    }

    /// Stores `tokens` on `conn`: counters first, then the items, then the family lists.
    async fn save_tokens_on(
        &self,
        conn: &mut Conn<'_>,
        tokens: &NewTokens,
    ) -> Result<(), StoreError> {
        let mut needs: HashMap<String, i64> = HashMap::new();
        let mut need = |key: String, until: UnixTime| {
            let entry = needs.entry(key).or_insert(until.0);
            *entry = (*entry).max(until.0);
        };
        for record in tokens.records() {
            need(self.family_gen(&record.family.0), record.expires_at);
            need(
                self.client_gen(record.client_id.as_str()),
                record.expires_at,
            );
            if let Some(subject) = &record.subject {
                need(self.subject_gen(subject), record.expires_at);
            }
        }
        let generations = self.ensure_generations(conn, &needs).await?;
        let value_of = |key: &str| {
            generations
                .get(key)
                .map(|g| g.value)
                .ok_or_else(|| StoreError::new(StoreErrorKind::Other, "generation not fetched"))
        };

        let now = system_now();
        let mut lists: HashMap<String, (String, i64)> = HashMap::new();
        for record in tokens.records() {
            let Some(ttl) = exptime(record.expires_at.0, now) else {
                continue; // already expired: nothing to keep
            };
            let family_gen = self.family_gen(&record.family.0);
            let g = Generations {
                f: Some(value_of(&family_gen)?),
                c: value_of(&self.client_gen(record.client_id.as_str()))?,
                s: match &record.subject {
                    Some(subject) => Some(value_of(&self.subject_gen(subject))?),
                    None => None,
                },
            };
            let entry = TokenEntry::new(record, g);
            let key = self.item_key("t:", &record.digest);
            match conn
                .set(&key, &codec::encode(&entry)?, &[format!("T{ttl}")])
                .await?
            {
                Write::Stored => {}
                refused => return Err(unexpected("token write", refused)),
            }
            let list = lists
                .entry(record.family.0.clone())
                .or_insert_with(|| (String::new(), record.expires_at.0));
            list.0.push_str(&record.digest.to_hex());
            list.1 = list.1.max(record.expires_at.0);
        }

        // The family lists only count what `revoke_family` revoked: best effort.
        for (family, (digests, until)) in lists {
            let key = self.family_list(&family);
            let extended = generations
                .get(&self.family_gen(&family))
                .and_then(|g| g.extended_ttl);
            let ttl = extended.or_else(|| exptime(until.saturating_add(GENERATION_SLACK), now));
            let Some(ttl) = ttl else { continue };
            append_or_add(conn, &key, digests.as_bytes(), ttl).await?;
            if let Some(ttl) = extended {
                conn.get(&key, &[&format!("T{ttl}")]).await?;
            }
        }
        Ok(())
    }

    /// Bumps the family counter: every token issued in the family before is revoked.
    async fn bump_family(&self, conn: &mut Conn<'_>, family: &str) -> Result<bool, StoreError> {
        Ok(conn.incr(&self.family_gen(family)).await?.is_some())
    }
}

/// Too many concurrent writers won every compare-and-set; the caller may retry.
pub(crate) fn contended(what: &str) -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        format_args!("memcached {what}: too much contention"),
    )
}

/// A write refused for a reason the operation rules out.
fn unexpected(what: &str, refused: Write) -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        format_args!("memcached {what}: {refused:?}"),
    )
}

impl TokenStore for MemcachedStore {
    async fn save_tokens(&self, tokens: &NewTokens, _now: UnixTime) -> Result<(), StoreError> {
        let mut conn = self.pool.get().await?;
        self.save_tokens_on(&mut conn, tokens).await
    }

    async fn find_token(
        &self,
        digest: &Digest,
    ) -> Result<Option<latchkey_core::token::TokenRecord>, StoreError> {
        let mut conn = self.pool.get().await?;
        let Some(item) = conn.get(&self.item_key("t:", digest), &["v"]).await? else {
            return Ok(None);
        };
        let Some(data) = item.data else {
            return Ok(None);
        };
        let entry: TokenEntry = codec::decode(&data)?;
        let live = self.token_live(&mut conn, &entry).await?;
        entry.into_record(*digest, !live).map(Some)
    }

    async fn rotate_refresh(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> Result<Rotation, StoreError> {
        let mut conn = self.pool.get().await?;
        let key = self.item_key("t:", old);
        for _ in 0..CAS_ATTEMPTS {
            let Some(item) = conn.get(&key, &["v", "c"]).await? else {
                return Ok(Rotation::Invalid);
            };
            let (Some(data), Some(cas)) = (item.data, item.cas) else {
                return Ok(Rotation::Invalid);
            };
            let mut entry: TokenEntry = codec::decode(&data)?;
            // A token revoked through its family, client or subject counts as revoked.
            let revoked = entry.rv || !self.token_live(&mut conn, &entry).await?;
            let verdict = refresh_verdict(
                entry.t.kind()?,
                revoked,
                entry.ro,
                entry.t.expires_at(),
                now,
            );
            match verdict {
                RefreshVerdict::Refuse => return Ok(Rotation::Invalid),
                RefreshVerdict::Reuse => {
                    // RFC 9700 §4.14.2: a consumed refresh token presented again revokes its
                    // family.
                    let family = FamilyId(entry.t.family().to_owned());
                    self.bump_family(&mut conn, &family.0).await?;
                    return Ok(Rotation::Reused { family });
                }
                RefreshVerdict::Rotate => {}
            }
            let Some(ttl) = exptime(entry.t.expires_at().0, system_now()) else {
                return Ok(Rotation::Invalid);
            };
            entry.ro = true;
            let flags = [format!("T{ttl}"), format!("C{cas}")];
            match conn.set(&key, &codec::encode(&entry)?, &flags).await? {
                Write::Stored => {
                    self.save_tokens_on(&mut conn, new).await?;
                    return Ok(Rotation::Rotated);
                }
                // Another rotation got there first: read again, and see it as a reuse.
                Write::Exists => continue,
                Write::NotFound | Write::NotStored => return Ok(Rotation::Invalid),
            }
        }
        Err(contended("rotation"))
    }

    async fn revoke_family(&self, family: &FamilyId) -> Result<u64, StoreError> {
        let mut conn = self.pool.get().await?;
        // Count first (best effort, from the family list), then revoke for certain.
        let current = conn
            .get(&self.family_gen(&family.0), &["v"])
            .await?
            .and_then(|item| parse_generation(&item).ok());
        let mut count = 0;
        if let Some(current) = current
            && let Some(list) = conn.get(&self.family_list(&family.0), &["v"]).await?
            && let Some(data) = list.data
        {
            let mut keys: Vec<String> = data
                .chunks_exact(64)
                .filter_map(|hex| std::str::from_utf8(hex).ok())
                .filter_map(Digest::from_hex)
                .map(|digest| self.item_key("t:", &digest))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            for item in conn.get_multi(&keys, &["v"]).await?.into_values() {
                if let Some(data) = item.data
                    && let Ok(entry) = codec::decode::<TokenEntry>(&data)
                    && !entry.rv
                    && entry.g.f == Some(current)
                {
                    count += 1;
                }
            }
        }
        if self.bump_family(&mut conn, &family.0).await? {
            Ok(count)
        } else {
            // No counter: every token of the family already reads as revoked.
            Ok(0)
        }
    }

    async fn revoke_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await?;
        let key = self.item_key("t:", digest);
        for _ in 0..CAS_ATTEMPTS {
            let Some(item) = conn.get(&key, &["v", "c"]).await? else {
                return Ok(false);
            };
            let (Some(data), Some(cas)) = (item.data, item.cas) else {
                return Ok(false);
            };
            let mut entry: TokenEntry = codec::decode(&data)?;
            if entry.rv {
                return Ok(true);
            }
            let Some(ttl) = exptime(entry.t.expires_at().0, system_now()) else {
                return Ok(true); // expiring this very second
            };
            entry.rv = true;
            let flags = [format!("T{ttl}"), format!("C{cas}")];
            match conn.set(&key, &codec::encode(&entry)?, &flags).await? {
                Write::Stored => return Ok(true),
                Write::Exists => continue,
                Write::NotFound | Write::NotStored => return Ok(false),
            }
        }
        Err(contended("token revocation"))
    }

    async fn delete_tokens_of(&self, owner: &TokenOwner) -> Result<u64, StoreError> {
        let key = match owner {
            TokenOwner::Client(id) => self.client_gen(id),
            TokenOwner::Subject(id) => self.subject_gen(id),
        };
        let mut conn = self.pool.get().await?;
        // A missing counter already makes every record of the owner unusable.
        conn.incr(&key).await?;
        Ok(0)
    }

    /// memcached cannot find a subject's tokens at one client (it cannot list keys, and a
    /// record carries one counter per family, client and subject, none per pair). Withdrawing
    /// a consent therefore bumps the **subject's** counter: every token and code of that user,
    /// at every client, stops working, and the user signs in again elsewhere. That errs on the
    /// side of the user who asked to cut access; Redis and the SQL stores revoke exactly the
    /// pair. The count is not known (0).
    async fn revoke_tokens_of_grant(
        &self,
        _client_id: &str,
        subject: &str,
    ) -> Result<u64, StoreError> {
        self.delete_tokens_of(&TokenOwner::Subject(subject.to_owned()))
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.pool.get().await?.version().await
    }
}

impl ReplayStore for MemcachedStore {
    async fn remember_once(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        // The lifetime is relative to the core's `now`, as the caller judged expiry with it.
        let Some(ttl) = exptime(expires_at.0, now.0) else {
            return Ok(true); // already expired: nothing to remember, nothing can replay it
        };
        let mut conn = self.pool.get().await?;
        let key = self.item_key("rp:", key);
        match conn
            .set(&key, b"1", &["ME".to_owned(), format!("T{ttl}")])
            .await?
        {
            Write::Stored => Ok(true),
            Write::NotStored | Write::Exists => Ok(false),
            refused => Err(unexpected("replay key add", refused)),
        }
    }
}

impl CodeStore for MemcachedStore {
    async fn save_code(&self, code: &CodeRecord, _now: UnixTime) -> Result<(), StoreError> {
        let now = system_now();
        let Some(ttl) = exptime(code.expires_at.0, now) else {
            return Ok(()); // already expired: nothing to keep
        };
        let mut conn = self.pool.get().await?;
        let client_key = self.client_gen(code.client_id.as_str());
        let subject_key = self.subject_gen(&code.subject);
        let needs = HashMap::from([
            (client_key.clone(), code.expires_at.0),
            (subject_key.clone(), code.expires_at.0),
        ]);
        let generations = self.ensure_generations(&mut conn, &needs).await?;
        let value_of = |key: &str| {
            generations
                .get(key)
                .map(|g| g.value)
                .ok_or_else(|| StoreError::new(StoreErrorKind::Other, "generation not fetched"))
        };
        let g = Generations {
            f: None,
            c: value_of(&client_key)?,
            s: Some(value_of(&subject_key)?),
        };
        let entry = CodeEntry::new(code, g);
        let key = self.item_key("c:", &code.digest);
        match conn
            .set(&key, &codec::encode(&entry)?, &[format!("T{ttl}")])
            .await?
        {
            Write::Stored => Ok(()),
            refused => Err(unexpected("code write", refused)),
        }
    }

    async fn take_code(
        &self,
        digest: &Digest,
        client_id: &ClientId,
        now: UnixTime,
    ) -> Result<CodeTake, StoreError> {
        let mut conn = self.pool.get().await?;
        let key = self.item_key("c:", digest);
        for _ in 0..CAS_ATTEMPTS {
            let Some(item) = conn.get(&key, &["v", "c"]).await? else {
                return Ok(CodeTake::Invalid);
            };
            let (Some(data), Some(cas)) = (item.data, item.cas) else {
                return Ok(CodeTake::Invalid);
            };
            let mut entry: CodeEntry = codec::decode(&data)?;
            let verdict = code_verdict(
                entry.c.client(),
                entry.c.expires_at(),
                entry.used,
                client_id.as_str(),
                now,
            );
            if verdict == CodeVerdict::Refuse {
                return Ok(CodeTake::Invalid);
            }
            let Some(subject_generation) = entry.g.s else {
                return Ok(CodeTake::Invalid);
            };
            let wanted = vec![
                (self.client_gen(entry.c.client()), entry.g.c),
                (self.subject_gen(entry.c.subject()), subject_generation),
            ];
            if !self.generations_live(&mut conn, wanted).await? {
                return Ok(CodeTake::Invalid); // its client or user was deleted
            }
            if verdict == CodeVerdict::Replay {
                return Ok(CodeTake::Replayed {
                    family: FamilyId(entry.c.family().to_owned()),
                });
            }
            let Some(ttl) = exptime(entry.c.expires_at().0, system_now()) else {
                return Ok(CodeTake::Invalid);
            };
            // The used code stays until it expires, so a replay is recognised.
            entry.used = true;
            let flags = [format!("T{ttl}"), format!("C{cas}")];
            match conn.set(&key, &codec::encode(&entry)?, &flags).await? {
                Write::Stored => return Ok(CodeTake::Taken(entry.c.into_record(*digest)?)),
                // Another redemption got there first: read again, and see it as a replay.
                Write::Exists => continue,
                Write::NotFound | Write::NotStored => return Ok(CodeTake::Invalid),
            }
        }
        Err(contended("code redemption"))
    }
}
