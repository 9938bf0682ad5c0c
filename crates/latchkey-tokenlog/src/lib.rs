//! The embedded token store: an append-only, group-committed log of token records with a
//! compact in-memory index.
//!
//! Tokens are written once, read by digest, changed only by revocation and rotation, and most
//! die unused at expiry. A B-tree keyed by digest (SQLite) pays for that with a page write per
//! token at a random leaf; this store appends a ~200-byte record to a file instead, syncs once
//! for every record waiting (group commit), and keeps a 72-byte entry per live token in memory
//! (in core's compact index, [`latchkey_core::store::compact`]), with the record's body read
//! back from the file by offset when a token is looked up. A restart loads the index from the
//! newest checkpoint (`checkpoint.rs`: taken while serving, once the log after the last one
//! is as long as a new one, and at a clean shutdown) and replays only the log after it (no JSON
//! parsed), after a crash too. A background thread forgets expired tokens, compacts old
//! segments a batch at a time and writes the checkpoints, and another zero-fills the active
//! segment ahead of the writer, so no request waits on any of them.
//!
//! The promise is the durable stores' own: a call returns only once its record is on disk
//! (`fdatasync`), so an acknowledged token, revocation or rotation survives a crash (see
//! `log.rs` for why applying to the index before the sync is safe).
//!
//! [`TokenLog`] implements [`TokenStore`]; [`LogTokens`] pairs it with another store for
//! codes, replay keys and pending requests (the server uses its SQLite store), so it can be the
//! fast half of a [`latchkey_core::store::tiered::Tiered`] store:
//!
//! ```no_run
//! use latchkey_core::store::memory::MemoryStore;
//! use latchkey_core::store::tiered::Tiered;
//! use latchkey_core::store::Store;
//! use latchkey_tokenlog::{LogTokens, Options, TokenLog};
//!
//! fn runs_on<S: Store>(_: &S) {}
//! let durable = MemoryStore::new();
//! let log = TokenLog::open("/var/lib/latchkey/tokens".as_ref(), Options::default()).unwrap();
//! runs_on(&Tiered::new(durable.clone(), LogTokens::new(log, durable)));
//! ```
//!
//! Family ids and subjects are kept in the index as 64-bit hashes keyed randomly per process;
//! two that collide would have their tokens revoked together (never one's tokens granted to
//! the other), at odds of about one in 10^7 for a million live families.

mod checkpoint;
mod entry;
mod log;
mod ops;

pub use log::{Options, Stats, segment_name, snapshot};

use latchkey_core::client::ClientId;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::codec::{decode_token, encode_token};
use latchkey_core::store::{
    CodeStore, CodeTake, PendingKind, PendingRecord, PendingStore, RefreshVerdict, ReplayStore,
    Rotation, StoreError, StoreErrorKind, TokenOwner, TokenStore, refresh_verdict,
};
use latchkey_core::token::{CodeRecord, FamilyId, NewTokens, TokenKind, TokenRecord};
use log::{Located, Log, secs};
use ops::{Op, decode_put};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How long a command run beside the server waits for the server to apply the revocation or
/// deletion it posted (the server looks every [`Options::sweep_every`], a second by default).
const POSTED_WAIT: Duration = Duration::from_secs(5);

/// The token log, open: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct TokenLog {
    log: Arc<Log>,
}

impl std::fmt::Debug for TokenLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenLog")
            .field("dir", &self.log.shared.dir())
            .finish_non_exhaustive()
    }
}

impl TokenLog {
    /// Opens the log in `dir` (created if missing), replaying it into memory. Blocks while it
    /// reads the files: call it at start, before serving.
    pub fn open(dir: &Path, options: Options) -> Result<Self, StoreError> {
        Ok(Self {
            log: Arc::new(Log::open(dir, options)?),
        })
    }

    /// What the log did since it was opened.
    pub fn stats(&self) -> Stats {
        self.log.shared.stats()
    }

    /// Forgets expired tokens, applies changes posted by followers, compacts the oldest
    /// segment and writes a checkpoint if one is due now, as the background thread
    /// does every [`Options::sweep_every`]: for tests and maintenance commands.
    pub fn maintain(&self) -> Result<(), StoreError> {
        if self.log.follower {
            return Ok(());
        }
        log::sweep(&self.log.shared);
        log::ingest_inbox(&self.log.shared)?;
        log::compact(&self.log.shared)?;
        log::checkpoint_if_due(&self.log.shared)
    }

    /// Writes a checkpoint of the index now (as the background thread does once the log has
    /// grown enough since the last one), so that a restart, after a crash too, replays only
    /// the log written after it: for tests and maintenance commands. Blocks while it writes.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        if self.log.follower {
            return Ok(());
        }
        log::write_checkpoint(&self.log.shared, false)
    }

    /// Applies `ops` as one frame and waits until it is durable; returns how many tokens were
    /// active before the frame revoked or deleted them. `now` moves the expiry horizon.
    async fn write(&self, ops: &[Op<'_>], now: Option<UnixTime>) -> Result<u64, StoreError> {
        let mut payload = Vec::with_capacity(256);
        for op in ops {
            op.encode(&mut payload)?;
        }
        let shared = &self.log.shared;
        if self.log.follower {
            return self.post(&payload);
        }
        let segment_bytes = shared.options().segment_bytes;
        let (count, end) = {
            let mut inner = shared.lock();
            if let Some(now) = now {
                inner.horizon = inner.horizon.max(secs(now.0));
            }
            inner.commit(&payload, segment_bytes)?
        };
        shared.queued();
        shared.durable(end).await?;
        Ok(count)
    }

    /// A follower's write: applied to its own view, posted to the holder's inbox. Counts are
    /// those of the follower's view.
    fn post(&self, payload: &[u8]) -> Result<u64, StoreError> {
        if !log::postable(payload)? {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "the token log is held by a running server: issue tokens through it",
            ));
        }
        let shared = &self.log.shared;
        let count = shared.lock().apply(payload, 0, 0)?;
        let posted = log::post_to_inbox(shared.dir(), payload)?;
        // A revocation is in force when the command that made it returns: wait for the
        // holder to apply the change (it removes the file then), a few sweep intervals at
        // most. Past that the change stays posted, durable, and is applied at the holder's
        // next sweep or start; the caller is told so.
        let deadline = std::time::Instant::now() + POSTED_WAIT;
        while posted.exists() {
            if std::time::Instant::now() >= deadline {
                tracing::warn!(
                    file = %posted.display(),
                    "token log: the running server has not applied this change yet; \
                     it will at its next sweep or start"
                );
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(count)
    }

    /// Reads the record of the token at `located`, with its current state `flags`.
    fn record(
        &self,
        located: Located,
        digest: &Digest,
        flags: u8,
    ) -> Result<TokenRecord, StoreError> {
        let bytes = located.read()?;
        let (_, body) = decode_put(&bytes)?;
        let json = std::str::from_utf8(body)
            .map_err(|_| StoreError::new(StoreErrorKind::Corrupt, "token body is not UTF-8"))?;
        decode_token(
            *digest,
            json,
            flags & index_flags::REVOKED != 0,
            flags & index_flags::ROTATED != 0,
        )
    }
}

use crate::entry as index_flags;

fn put<'a>(record: &'a TokenRecord, body: &'a str) -> Op<'a> {
    let mut flags = 0;
    if record.kind == TokenKind::Refresh {
        flags |= index_flags::REFRESH;
    }
    if record.revoked {
        flags |= index_flags::REVOKED;
    }
    if record.rotated {
        flags |= index_flags::ROTATED;
    }
    Op::Put {
        digest: *record.digest.as_bytes(),
        expires: secs(record.expires_at.0),
        flags,
        client: record.client_id.as_str(),
        family: &record.family.0,
        subject: record.subject.as_deref(),
        body: body.as_bytes(),
    }
}

impl TokenStore for TokenLog {
    async fn save_tokens(&self, tokens: &NewTokens, now: UnixTime) -> Result<(), StoreError> {
        let access = encode_token(&tokens.access)?;
        let refresh = tokens.refresh.as_ref().map(encode_token).transpose()?;
        let mut ops = vec![put(&tokens.access, &access)];
        if let (Some(record), Some(body)) = (&tokens.refresh, &refresh) {
            ops.push(put(record, body));
        }
        self.write(&ops, Some(now)).await.map(|_| ())
    }

    async fn find_token(&self, digest: &Digest) -> Result<Option<TokenRecord>, StoreError> {
        let (located, flags) = {
            let inner = self.log.shared.lock();
            inner.check()?;
            let Some(slot) = inner.index.find(digest.as_bytes()) else {
                return Ok(None);
            };
            let entry = *inner.index.entry(slot);
            if entry.expires <= inner.horizon {
                return Ok(None);
            }
            (inner.locate(slot)?, entry.flags)
        };
        self.record(located, digest, flags).map(Some)
    }

    async fn rotate_refresh(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> Result<Rotation, StoreError> {
        let access = encode_token(&new.access)?;
        let refresh = new.refresh.as_ref().map(encode_token).transpose()?;
        let mut payload = Vec::with_capacity(512);
        let shared = &self.log.shared;
        let segment_bytes = shared.options().segment_bytes;
        if self.log.follower {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "the token log is held by a running server: refresh tokens through it",
            ));
        }
        let (outcome, end) = {
            let mut inner = shared.lock();
            inner.check()?;
            inner.horizon = inner.horizon.max(secs(now.0));
            let Some(slot) = inner.index.find(old.as_bytes()) else {
                return Ok(Rotation::Invalid);
            };
            let entry = *inner.index.entry(slot);
            let kind = if entry.flags & index_flags::REFRESH != 0 {
                TokenKind::Refresh
            } else {
                TokenKind::Access
            };
            let verdict = refresh_verdict(
                kind,
                entry.flags & index_flags::REVOKED != 0,
                entry.flags & index_flags::ROTATED != 0,
                UnixTime(i64::from(entry.expires)),
                UnixTime(i64::from(inner.horizon)),
            );
            match verdict {
                RefreshVerdict::Refuse => return Ok(Rotation::Invalid),
                RefreshVerdict::Rotate => {
                    Op::Rotate(*old.as_bytes()).encode(&mut payload)?;
                    put(&new.access, &access).encode(&mut payload)?;
                    if let (Some(record), Some(body)) = (&new.refresh, &refresh) {
                        put(record, body).encode(&mut payload)?;
                    }
                    let (_, end) = inner.commit(&payload, segment_bytes)?;
                    (Rotation::Rotated, end)
                }
                RefreshVerdict::Reuse => {
                    // The family's name is in the stored record; reading it under the lock
                    // keeps the check and the revocation one step (a rare path).
                    let bytes = inner.locate(slot)?.read()?;
                    let family = FamilyId(decode_put(&bytes)?.0.to_owned());
                    Op::RevokeFamily(&family.0).encode(&mut payload)?;
                    let (_, end) = inner.commit(&payload, segment_bytes)?;
                    (Rotation::Reused { family }, end)
                }
            }
        };
        shared.queued();
        shared.durable(end).await?;
        Ok(outcome)
    }

    async fn revoke_family(&self, family: &FamilyId) -> Result<u64, StoreError> {
        self.write(&[Op::RevokeFamily(&family.0)], None).await
    }

    async fn revoke_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        {
            let inner = self.log.shared.lock();
            inner.check()?;
            match inner.index.find(digest.as_bytes()) {
                Some(slot) if inner.index.entry(slot).expires > inner.horizon => {}
                _ => return Ok(false),
            }
        }
        self.write(&[Op::Revoke(*digest.as_bytes())], None).await?;
        Ok(true)
    }

    async fn delete_tokens_of(&self, owner: &TokenOwner) -> Result<u64, StoreError> {
        let op = match owner {
            TokenOwner::Client(id) => Op::DeleteClient(id),
            TokenOwner::Subject(id) => Op::DeleteSubject(id),
        };
        self.write(&[op], None).await
    }

    async fn revoke_tokens_of_grant(
        &self,
        client_id: &str,
        subject: &str,
    ) -> Result<u64, StoreError> {
        self.write(&[Op::RevokeGrant(client_id, subject)], None)
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.log.shared.lock().check()
    }
}

/// A [`TokenLog`] opened on first use: a command that never touches tokens (adding a client
/// while the server runs) does not read the log. Only one process can hold a log; a command
/// run while the server holds it opens it as a follower: it reads what is on disk and posts
/// its revocations and deletions (a client or user deleted, consent withdrawn, a token
/// revoked) to the server, which applies them within a second ([`Options::sweep_every`]), or
/// at its next start. The command waits (a few seconds at most) until the server has applied
/// them, so a revocation is in force when the command returns.
#[derive(Clone, Debug)]
pub struct LazyTokenLog {
    cell: Arc<(std::sync::OnceLock<TokenLog>, std::sync::Mutex<()>)>,
    dir: std::path::PathBuf,
    options: Options,
}

impl LazyTokenLog {
    /// The log in `dir`, to be opened with `options` when first needed.
    pub fn new(dir: &Path, options: Options) -> Self {
        Self {
            cell: Arc::default(),
            dir: dir.to_owned(),
            options,
        }
    }

    /// A log already open.
    pub fn opened(log: TokenLog) -> Self {
        let cell: Arc<(std::sync::OnceLock<TokenLog>, std::sync::Mutex<()>)> = Arc::default();
        let dir = log.log.shared.dir().to_owned();
        let options = log.log.shared.options().clone();
        let _ = cell.0.set(log);
        Self { cell, dir, options }
    }

    /// The log, opened (and replayed) now if it was not yet.
    pub fn get(&self) -> Result<&TokenLog, StoreError> {
        if let Some(log) = self.cell.0.get() {
            return Ok(log);
        }
        let _opening = self.cell.1.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(log) = self.cell.0.get() {
            return Ok(log);
        }
        let log = match log::try_lock(&self.dir)? {
            Some(lock) => {
                drop(lock);
                TokenLog::open(&self.dir, self.options.clone())?
            }
            None => {
                tracing::info!(
                    dir = %self.dir.display(),
                    "token log held by the running server: reading it, and posting revocations to it"
                );
                TokenLog {
                    log: Arc::new(Log::open_follower(&self.dir, self.options.clone())?),
                }
            }
        };
        Ok(self.cell.0.get_or_init(|| log))
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Tokens in a [`TokenLog`]; authorization codes, replay keys and pending requests in `R`:
/// the fast half of the server's embedded store, with `R` its SQLite store. Deleting or
/// revoking the tokens of an owner or grant does it in both (`R` keeps their codes).
#[derive(Clone, Debug)]
pub struct LogTokens<R> {
    log: LazyTokenLog,
    rest: R,
}

impl<R> LogTokens<R> {
    /// Tokens in `log`, the rest in `rest`.
    pub fn new(log: TokenLog, rest: R) -> Self {
        Self::lazy(LazyTokenLog::opened(log), rest)
    }

    /// Tokens in `log`, opened when first needed; the rest in `rest`.
    pub fn lazy(log: LazyTokenLog, rest: R) -> Self {
        Self { log, rest }
    }

    /// The token log, opened now if it was not yet.
    pub fn log(&self) -> Result<&TokenLog, StoreError> {
        self.log.get()
    }
}

impl<R: TokenStore> TokenStore for LogTokens<R> {
    async fn save_tokens(&self, tokens: &NewTokens, now: UnixTime) -> Result<(), StoreError> {
        self.log.get()?.save_tokens(tokens, now).await
    }

    async fn find_token(&self, digest: &Digest) -> Result<Option<TokenRecord>, StoreError> {
        self.log.get()?.find_token(digest).await
    }

    async fn rotate_refresh(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> Result<Rotation, StoreError> {
        self.log.get()?.rotate_refresh(old, new, now).await
    }

    async fn revoke_family(&self, family: &FamilyId) -> Result<u64, StoreError> {
        self.log.get()?.revoke_family(family).await
    }

    async fn revoke_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        self.log.get()?.revoke_token(digest).await
    }

    async fn delete_tokens_of(&self, owner: &TokenOwner) -> Result<u64, StoreError> {
        let n = self.log.get()?.delete_tokens_of(owner).await?;
        Ok(n + self.rest.delete_tokens_of(owner).await?)
    }

    /// Revokes in both: `rest` invalidates the grant's unredeemed codes.
    async fn revoke_tokens_of_grant(
        &self,
        client_id: &str,
        subject: &str,
    ) -> Result<u64, StoreError> {
        let n = self
            .log
            .get()?
            .revoke_tokens_of_grant(client_id, subject)
            .await?;
        Ok(n + self.rest.revoke_tokens_of_grant(client_id, subject).await?)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.log.get()?.ping().await?;
        self.rest.ping().await
    }
}

impl<R: CodeStore> CodeStore for LogTokens<R> {
    async fn save_code(&self, code: &CodeRecord, now: UnixTime) -> Result<(), StoreError> {
        self.rest.save_code(code, now).await
    }

    async fn take_code(
        &self,
        digest: &Digest,
        client_id: &ClientId,
        now: UnixTime,
    ) -> Result<CodeTake, StoreError> {
        self.rest.take_code(digest, client_id, now).await
    }
}

impl<R: ReplayStore> ReplayStore for LogTokens<R> {
    async fn remember_once(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.rest.remember_once(key, expires_at, now).await
    }
}

impl<R: PendingStore> PendingStore for LogTokens<R> {
    async fn save_pending(&self, record: &PendingRecord, now: UnixTime) -> Result<(), StoreError> {
        self.rest.save_pending(record, now).await
    }

    async fn find_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        self.rest.find_pending(kind, digest, now).await
    }

    async fn find_pending_by_lookup(
        &self,
        kind: PendingKind,
        lookup: &Digest,
        now: UnixTime,
    ) -> Result<Option<PendingRecord>, StoreError> {
        self.rest.find_pending_by_lookup(kind, lookup, now).await
    }

    async fn replace_pending(
        &self,
        record: &PendingRecord,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.rest.replace_pending(record, now).await
    }

    async fn remove_pending(
        &self,
        kind: PendingKind,
        digest: &Digest,
        version: u64,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.rest.remove_pending(kind, digest, version, now).await
    }
}
