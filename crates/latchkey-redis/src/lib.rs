//! A Redis store for Latchkey's hot, short-lived state: issued tokens and authorization codes.
//!
//! [`RedisStore`] implements [`TokenStore`], [`CodeStore`], the replay cache
//! ([`ReplayStore`]) and pending requests ([`latchkey_core::store::PendingStore`]) only.
//! Clients, users and consent are long-lived and belong in SQL; the server's composite store
//! sends each trait to its backend: clients and users in SQL, tokens and codes here.
//!
//! # Why Redis, and how
//! - **Native TTL.** Every token and code key expires at its record's `expires_at`
//!   (`PEXPIREAT`), and every index set expires with its longest-lived member, so memory stays
//!   flat under a constant load with no sweeper.
//! - **Atomic steps as Lua scripts** (see `scripts`): `save_tokens`, `rotate_refresh` (check,
//!   mark rotated, store the new tokens, or revoke the family on reuse), `revoke_family`,
//!   `revoke_token`, `delete_tokens_of` and `take_code` each run as one script, which Redis
//!   executes without interleaving anything else. A used code stays, marked used, until it
//!   expires, so a replay is recognised.
//! - **Records in the core's compact form** ([`latchkey_core::store::codec`], shared with
//!   memcached); the mutable state (revoked, rotated, used) sits in hash fields beside it, so
//!   the scripts flip it without decoding anything.
//! - **Indexes as sets**: `fam:<id>` (token digests of a grant family), `client:<id>` and
//!   `sub:<id>` (tokens and codes of an owner), so revocation and owner deletion touch exactly
//!   the right keys.
//! - **Bounded calls.** Every command runs under a response timeout ([`DEFAULT_TIMEOUT`] unless
//!   [`RedisStore::connect_with_timeout`] says otherwise). An outage answers
//!   [`StoreErrorKind::Unavailable`] within that time, never a hang, and the
//!   [`redis::aio::ConnectionManager`] reconnects by itself once Redis is back; the scripts are
//!   loaded again if the restarted server has forgotten them.
//!
//! # Limits
//! - **Expiry follows the Redis clock.** Keys vanish when Redis's clock passes `expires_at`;
//!   the `now` the core passes only decides whether a record still present is usable, so keep
//!   the server clocks in sync (NTP).
//! - **A timeout is an unknown outcome.** A write that timed out may still have been applied
//!   (for a rotation, the client's retry then looks like a reuse and revokes its family, which
//!   errs on the safe side).
//! - **Durability is Redis's.** Tokens are acknowledged once Redis has them in memory. With
//!   `appendonly yes` and `appendfsync everysec`, a crash loses at most about a second of
//!   writes: new tokens and codes (users sign in again) but also revocations and rotations,
//!   so run `appendfsync always` where a lost revocation is not acceptable.
//! - **No evictions.** Run Redis with `maxmemory-policy noeviction` (writes then fail as
//!   `Unavailable` when memory is full). An eviction policy could drop a family set, and the
//!   family could then no longer be revoked as a whole.
//! - **Single Redis, not Cluster.** Scripts build member keys from the prefix at run time,
//!   which a single server (or a Sentinel-managed primary) allows and Redis Cluster does not.
//! - Index sets keep the digests of expired members until the set itself expires (revocation
//!   drops them as it goes); a family that rotates often for a month carries that history.

mod counters;
mod error;
mod pending;
mod scripts;

use latchkey_core::client::ClientId;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::codec;
use latchkey_core::store::{
    CodeStore, CodeTake, ReplayStore, Rotation, StoreError, StoreErrorKind, TokenOwner, TokenStore,
};
use latchkey_core::token::{CodeRecord, FamilyId, NewTokens, TokenRecord};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use scripts::Scripts;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// How long one command may take, connecting included, before it fails as
/// [`StoreErrorKind::Unavailable`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Tokens and authorization codes in Redis, with native expiry and atomic Lua scripts.
///
/// Cloning is cheap and shares one multiplexed, self-reconnecting connection.
#[derive(Clone)]
pub struct RedisStore {
    conn: ConnectionManager,
    /// The key prefix, with its trailing `:`.
    prefix: Arc<str>,
    timeout: Duration,
    scripts: Arc<Scripts>,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[:password@]host[:port][/db]`, or `rediss://`
    /// where the redis crate is built with TLS) and keeps every key under `key_prefix:`, with
    /// the [`DEFAULT_TIMEOUT`] on every command. Fails as [`StoreErrorKind::Unavailable`] when
    /// Redis does not answer.
    pub async fn connect(url: &str, key_prefix: &str) -> Result<Self, StoreError> {
        Self::connect_with_timeout(url, key_prefix, DEFAULT_TIMEOUT).await
    }

    /// [`RedisStore::connect`] with another bound on each command (and on connecting).
    pub async fn connect_with_timeout(
        url: &str,
        key_prefix: &str,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)
            .map_err(|e| StoreError::new(StoreErrorKind::Other, format_args!("redis url: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = bounded(
            "connect",
            timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .await?;
        Ok(Self {
            conn,
            prefix: Arc::from(format!("{key_prefix}:")),
            timeout,
            scripts: Arc::new(Scripts::new()),
        })
    }

    /// The full name of the key `kind` + `id` under the prefix.
    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}{id}", self.prefix)
    }

    /// Runs `script` with the prefix and `args`, within the timeout.
    async fn run<T: redis::FromRedisValue, A: redis::ToRedisArgs>(
        &self,
        what: &str,
        script: &redis::Script,
        args: Vec<A>,
    ) -> Result<T, StoreError> {
        let mut invocation = script.prepare_invoke();
        invocation.arg(&*self.prefix);
        for arg in args {
            invocation.arg(arg);
        }
        let mut conn = self.conn.clone();
        bounded(what, self.timeout, invocation.invoke_async(&mut conn)).await
    }
}

/// Awaits a Redis call for at most `limit`.
async fn bounded<T>(
    what: &str,
    limit: Duration,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(error::from_redis(what, &err)),
        Err(_) => Err(error::timed_out(what, limit)),
    }
}

/// The 8 script arguments that describe one token (see `scripts::PRELUDE`).
fn token_args(record: &TokenRecord, args: &mut Vec<String>) -> Result<(), StoreError> {
    args.push(record.digest.to_hex());
    args.push(codec::encode_token(record)?);
    args.push(record.kind.as_str().to_owned());
    args.push(record.family.0.clone());
    args.push(record.client_id.as_str().to_owned());
    args.push(if record.subject.is_some() { "1" } else { "0" }.to_owned());
    args.push(record.subject.clone().unwrap_or_default());
    args.push(record.expires_at.0.to_string());
    Ok(())
}

/// A count and the argument list of every record of `tokens`.
fn tokens_args(tokens: &NewTokens, args: &mut Vec<String>) -> Result<(), StoreError> {
    args.push(tokens.records().count().to_string());
    for record in tokens.records() {
        token_args(record, args)?;
    }
    Ok(())
}

/// A script reply of the form `{tag, value?}`.
fn tagged(reply: &[String]) -> (&str, Option<&str>) {
    (
        reply.first().map_or("", String::as_str),
        reply.get(1).map(String::as_str),
    )
}

impl TokenStore for RedisStore {
    async fn save_tokens(&self, tokens: &NewTokens, _now: UnixTime) -> Result<(), StoreError> {
        let mut args = Vec::with_capacity(17);
        tokens_args(tokens, &mut args)?;
        let _: i64 = self
            .run("save_tokens", &self.scripts.save_tokens, args)
            .await?;
        Ok(())
    }

    async fn find_token(&self, digest: &Digest) -> Result<Option<TokenRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let query = redis::cmd("HMGET")
            .arg(self.key("t:", &digest.to_hex()))
            .arg("r")
            .arg("rv")
            .arg("ro")
            .to_owned();
        let (json, revoked, rotated): (Option<String>, Option<String>, Option<String>) =
            bounded("find_token", self.timeout, query.query_async(&mut conn)).await?;
        let Some(json) = json else {
            return Ok(None);
        };
        codec::decode_token(
            *digest,
            &json,
            revoked.as_deref() == Some("1"),
            rotated.as_deref() == Some("1"),
        )
        .map(Some)
    }

    async fn rotate_refresh(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> Result<Rotation, StoreError> {
        let mut args = vec![old.to_hex(), now.0.to_string()];
        tokens_args(new, &mut args)?;
        let reply: Vec<String> = self
            .run("rotate_refresh", &self.scripts.rotate_refresh, args)
            .await?;
        match tagged(&reply) {
            ("rotated", _) => Ok(Rotation::Rotated),
            ("reused", Some(family)) => Ok(Rotation::Reused {
                family: FamilyId(family.to_owned()),
            }),
            ("invalid", _) => Ok(Rotation::Invalid),
            _ => Err(codec::corrupt("reply of the rotation script")),
        }
    }

    async fn revoke_family(&self, family: &FamilyId) -> Result<u64, StoreError> {
        self.run(
            "revoke_family",
            &self.scripts.revoke_family,
            vec![family.0.clone()],
        )
        .await
    }

    async fn revoke_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        let known: i64 = self
            .run(
                "revoke_token",
                &self.scripts.revoke_token,
                vec![digest.to_hex()],
            )
            .await?;
        Ok(known == 1)
    }

    async fn delete_tokens_of(&self, owner: &TokenOwner) -> Result<u64, StoreError> {
        let set = match owner {
            TokenOwner::Client(id) => format!("client:{id}"),
            TokenOwner::Subject(id) => format!("sub:{id}"),
        };
        self.run("delete_tokens_of", &self.scripts.delete_owner, vec![set])
            .await
    }

    async fn revoke_tokens_of_grant(
        &self,
        client_id: &str,
        subject: &str,
    ) -> Result<u64, StoreError> {
        self.run(
            "revoke_tokens_of_grant",
            &self.scripts.revoke_grant,
            vec![client_id.to_owned(), subject.to_owned()],
        )
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = bounded(
            "ping",
            self.timeout,
            redis::cmd("PING").query_async(&mut conn),
        )
        .await?;
        Ok(())
    }
}

/// The replay cache: one `SET key 1 NX PX ttl`, which Redis applies atomically, so of racing
/// callers exactly one sets the key. The lifetime is relative (`expires_at - now`), so it
/// follows the core's clock, not Redis's.
impl ReplayStore for RedisStore {
    async fn remember_once(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let ttl_ms = expires_at.0.saturating_sub(now.0).saturating_mul(1000);
        if ttl_ms == 0 {
            // Already expired: nothing to remember, nothing can replay it later.
            return Ok(true);
        }
        let mut conn = self.conn.clone();
        let query = redis::cmd("SET")
            .arg(self.key("rp:", &key.to_hex()))
            .arg("1")
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms)
            .to_owned();
        let set: Option<String> =
            bounded("remember_once", self.timeout, query.query_async(&mut conn)).await?;
        Ok(set.is_some())
    }
}

impl CodeStore for RedisStore {
    async fn save_code(&self, code: &CodeRecord, _now: UnixTime) -> Result<(), StoreError> {
        let args = vec![
            code.digest.to_hex(),
            codec::encode_code(code)?,
            code.family.0.clone(),
            code.client_id.as_str().to_owned(),
            code.subject.clone(),
            code.expires_at.0.to_string(),
        ];
        let _: i64 = self.run("save_code", &self.scripts.save_code, args).await?;
        Ok(())
    }

    async fn take_code(
        &self,
        digest: &Digest,
        client_id: &ClientId,
        now: UnixTime,
    ) -> Result<CodeTake, StoreError> {
        let reply: Vec<String> = self
            .run(
                "take_code",
                &self.scripts.take_code,
                vec![
                    digest.to_hex(),
                    now.0.to_string(),
                    client_id.as_str().to_owned(),
                ],
            )
            .await?;
        match tagged(&reply) {
            ("taken", Some(json)) => Ok(CodeTake::Taken(codec::decode_code(*digest, json)?)),
            ("replayed", Some(family)) => Ok(CodeTake::Replayed {
                family: FamilyId(family.to_owned()),
            }),
            ("invalid", _) => Ok(CodeTake::Invalid),
            _ => Err(codec::corrupt("reply of the code script")),
        }
    }
}
