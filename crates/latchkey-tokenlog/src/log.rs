//! The log itself: segment files, the group-committing writer thread, replay at start, and the
//! background sweeper that forgets expired tokens and compacts old segments.
//!
//! # Files
//! `dir/NNNNNNNNNN.log`, numbered from 1. Each starts with [`MAGIC`], then frames:
//! `len u32 | crc32c u32 | payload` (little-endian; the checksum covers the payload; a payload
//! is never empty), then zeros: eight zero bytes where a frame header would be mark the end
//! of the written log. A frame is one store call and is applied all or nothing: at start a
//! frame cut short or failing its checksum at the end of the newest segment, or bytes other
//! than zeros after its end, are a write the crash interrupted, never acknowledged, and are
//! cut off; anywhere else they are corruption and the store refuses to open.
//!
//! # Preallocation
//! A background thread keeps the active segment zero-filled (written and synced, not just
//! `fallocate`d, whose unwritten extents would be converted at the first write) a few MiB
//! ahead of the writer, up to the segment's size, so a group commit writes into blocks the
//! file already has and its `fdatasync` flushes data only: no new size or extent to journal.
//! A clean shutdown cuts the unused zeros off the newest segment.
//!
//! # Durability
//! A store call applies its frame to the index and queues it under one lock, so the log's order
//! is the order of the index's changes; then it waits until the writer reports the frame's end
//! durable. The writer takes everything queued, writes it, `fdatasync`s once, and wakes every
//! waiter whose frame is now on disk: one fsync for all the records waiting (group commit).
//! Because the log is written in order, an acknowledged frame implies every earlier frame is
//! durable too, which is what makes applying before the fsync safe: nothing that depends on a
//! frame is acknowledged before it.
//!
//! Hand-offs are kept few, since the writer often shares a core with the request threads: a
//! store call wakes the writer only if it sleeps (one wake-up call per group, none while it is
//! busy), the writer woken by a group's first frame yields once so that the request threads can
//! queue the rest of the group first, and all of a group's waiters are woken by one `watch`
//! update.
//!
//! # Compaction
//! Only the oldest sealed segment is compacted: its tokens still live are appended again with
//! their current state (a batch per step, under the lock for microseconds), and once those
//! copies are durable the segment file is deleted. Operations in a newer segment never refer to
//! a token whose only copy is older than them, so deleting the oldest segment loses nothing.
//!
//! # Checkpoints
//! The sweeper writes a checkpoint of the index (`checkpoint.rs`) once the log after the last
//! one is as long as a new one would be, copying the index a slab chunk per lock; the close
//! writes one too. An open loads the newest that matches the segments on disk and replays only
//! the log after its position; without one, the whole log.

use crate::checkpoint;
use crate::entry::{Entry, Index, REFRESH, REVOKED, ROTATED, SHARDS, SetFlags};
use crate::ops::{Op, PUT_FLAGS_AT, Reader, decode_put};
use latchkey_core::store::{StoreError, StoreErrorKind};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// The first bytes of every segment.
pub(crate) const MAGIC: &[u8; 8] = b"LKTLOG1\n";
const HEADER: u32 = MAGIC.len() as u32;
const FRAME_HEADER: usize = 8;
/// The largest frame accepted (a single issuance; far above any real token).
const MAX_FRAME: usize = 64 << 20;
const CRC: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// How the log is laid out and maintained.
#[derive(Clone, Debug)]
pub struct Options {
    /// A segment is sealed once it holds this many bytes (then the next one starts).
    pub segment_bytes: u32,
    /// How often the sweeper forgets expired tokens and looks for a segment to compact.
    pub sweep_every: Duration,
    /// The oldest sealed segment is compacted once less than this share of its bytes is live.
    pub compact_below: f64,
    /// How far ahead of the writer the active segment is kept zero-filled, in bytes (0: not
    /// at all; the file then grows with every group commit).
    pub preallocate: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
            sweep_every: Duration::from_secs(1),
            compact_below: 0.5,
            preallocate: 4 << 20,
        }
    }
}

/// Counters of what the log did since it was opened, for benchmarks and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames appended (one per store call that changed something).
    pub frames: u64,
    /// Bytes written to segment files (frames, headers, compaction copies).
    pub bytes_written: u64,
    /// `fdatasync` calls on segment files (directory syncs not included).
    pub fsyncs: u64,
    /// Tokens currently indexed.
    pub live_tokens: u64,
    /// Segment files on disk.
    pub segments: u64,
    /// Segments deleted by compaction.
    pub segments_compacted: u64,
    /// Zero bytes written ahead of the writer ([`Options::preallocate`]).
    pub bytes_preallocated: u64,
    /// Tokens loaded from a checkpoint at open (0: the whole log was replayed).
    pub tokens_from_checkpoint: u64,
    /// Bytes of log replayed at open (the log after the checkpoint, or all of it).
    pub bytes_replayed: u64,
    /// Checkpoints written since the log was opened.
    pub checkpoints: u64,
}

/// A queued piece of a segment, not yet written.
struct Chunk {
    seg: u32,
    start: u32,
    bytes: Vec<u8>,
}

#[derive(Default, Clone, Copy)]
struct SegInfo {
    /// Bytes appended (header included).
    size: u64,
    /// Bytes of `PUT`s of tokens still indexed.
    live: u64,
}

pub(crate) struct Inner {
    pub index: Index,
    segs: BTreeMap<u32, SegInfo>,
    files: HashMap<u32, Arc<File>>,
    active: u32,
    active_len: u32,
    pending: Vec<Chunk>,
    inflight: Option<Arc<Vec<Chunk>>>,
    /// The latest `now` seen, in Unix seconds: a token expired by then is forgotten.
    pub horizon: u32,
    failed: Option<String>,
    shutdown: bool,
    /// The position (`seg << 32 | offset`) up to which the log is durable.
    durable: u64,
    clients: HashMap<Box<str>, u32>,
    frames: u64,
    /// The key of the hash of family ids and subjects: random for a new log, the checkpoint's
    /// when the index is loaded from one (its entries hold hashes made with it).
    hash_key: (u64, u64),
    /// Tokens loaded from a checkpoint at open.
    from_checkpoint: u64,
    /// Threads in [`Shared::durable_blocking`]: the writer wakes them only when there are any.
    blocking_waiters: u32,
    /// The position (`seg << 32 | offset`) of the newest checkpoint on disk; 0 for none.
    checkpointed: u64,
    /// Checkpoints written since the log was opened.
    checkpoints: u64,
    /// Bytes of log replayed at open.
    replayed: u64,
}

/// The preallocator's view of the active segment, under its own lock: the writer holds it
/// while it writes a batch, the preallocator while it writes zeros, so the two never write
/// the same bytes at once and zeros never land on frames.
struct Prep {
    seg: u32,
    file: Option<Arc<File>>,
    /// The end of what the writer has written into `seg`.
    written: u64,
    /// The file holds written zeros (or frames) up to here.
    zeroed: u64,
    /// The writer asked for more zeros (it came within half the margin of `zeroed`). Nothing
    /// is written before the first ask: opening a log changes none of its files.
    asked: bool,
    shutdown: bool,
}

pub(crate) struct Shared {
    pub inner: Mutex<Inner>,
    prep: Mutex<Prep>,
    /// Wakes the preallocator when the writer comes near the end of the zeros.
    prep_cv: Condvar,
    /// Wakes the writer when something is queued while it sleeps ([`Shared::queued`]), and at
    /// shutdown. The sweeper waits on its own condvar: a store call wakes one thread, at most.
    wake: Condvar,
    /// Whether the writer is waiting on `wake` (set under the state's lock before it waits,
    /// cleared by the first [`Shared::queued`] after): store calls that queue while the writer
    /// is busy make no wake-up call, which is a futex syscall each even with no one waiting.
    writer_idle: AtomicBool,
    /// Wakes the sweeper at shutdown.
    sweeper_cv: Condvar,
    /// Wakes threads waiting for durability (the compactor), when there are any
    /// ([`Inner::blocking_waiters`]).
    durable_cv: Condvar,
    durable_tx: watch::Sender<u64>,
    dir: PathBuf,
    options: Options,
    bytes_written: AtomicU64,
    fsyncs: AtomicU64,
    compacted: AtomicU64,
    preallocated: AtomicU64,
    /// Held while a checkpoint is written.
    checkpointing: Mutex<()>,
}

fn io_err(what: &str, err: impl std::fmt::Display) -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        format!("token log: {what}: {err}"),
    )
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, format!("token log: {what}"))
}

/// `t` as Unix seconds in a `u32` (clamped: 0 before 1970, the maximum after 2106).
pub(crate) fn secs(t: i64) -> u32 {
    t.clamp(0, i64::from(u32::MAX)) as u32
}

/// The current time in Unix seconds.
pub(crate) fn wall_clock() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| secs(d.as_secs() as i64))
        .unwrap_or(0)
}

fn seg_path(dir: &Path, seg: u32) -> PathBuf {
    dir.join(segment_name(seg))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Inner {
    fn fresh() -> Self {
        Self {
            index: Index::new(),
            segs: BTreeMap::new(),
            files: HashMap::new(),
            active: 0,
            active_len: 0,
            pending: Vec::new(),
            inflight: None,
            horizon: 0,
            failed: None,
            shutdown: false,
            durable: 0,
            clients: HashMap::new(),
            frames: 0,
            from_checkpoint: 0,
            blocking_waiters: 0,
            checkpointed: 0,
            checkpoints: 0,
            replayed: 0,
            hash_key: {
                use latchkey_core::entropy::Entropy as _;
                let mut bytes = [0u8; 16];
                latchkey_core::entropy::OsEntropy.fill(&mut bytes);
                let (k0, k1) = bytes.split_at(8);
                let word = |b: &[u8]| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(b);
                    u64::from_le_bytes(w)
                };
                (word(k0), word(k1))
            },
        }
    }

    /// The keyed hash of a family id or subject (never 0, which stands for "none").
    pub fn key(&self, s: &str) -> u64 {
        // SipHash-2-4 with the log's key: std's keyed SipHash is deprecated only in favour of
        // `DefaultHasher`, which cannot be given a key, and the key must outlive the process
        // for a checkpoint to be reusable.
        #[allow(deprecated)]
        let mut hasher = std::hash::SipHasher::new_with_keys(self.hash_key.0, self.hash_key.1);
        std::hash::Hasher::write(&mut hasher, s.as_bytes());
        std::hash::Hasher::finish(&hasher).max(1)
    }

    fn intern(&mut self, client: &str) -> u32 {
        if let Some(&id) = self.clients.get(client) {
            return id;
        }
        let id = self.clients.len() as u32;
        self.clients.insert(client.into(), id);
        id
    }

    /// Fails if a write has failed: the index may then be ahead of the disk, and only a
    /// restart (which replays what is on disk) makes them agree again.
    pub fn check(&self) -> Result<(), StoreError> {
        match &self.failed {
            Some(why) => Err(StoreError::new(StoreErrorKind::Unavailable, why)),
            None => Ok(()),
        }
    }

    fn dropped(&mut self, old: &Entry) {
        if let Some(info) = self.segs.get_mut(&old.seg) {
            info.live = info.live.saturating_sub(u64::from(old.len));
        }
    }

    /// Applies the operations of one frame whose payload starts at `(seg, base)`: the one
    /// code path for live calls and replay. Returns how many tokens were active before the
    /// frame revoked or deleted them.
    pub fn apply(&mut self, payload: &[u8], seg: u32, base: u32) -> Result<u64, StoreError> {
        let now = self.horizon;
        let mut count = 0;
        let mut reader = Reader::new(payload);
        while let Some((at, op)) = reader.next_op()? {
            match op {
                Op::Put {
                    digest,
                    expires,
                    flags,
                    client,
                    family,
                    subject,
                    ..
                } => {
                    let end = reader.position();
                    let len = (end - at) as u32;
                    if expires <= now {
                        if let Some(slot) = self.index.find(&digest) {
                            let old = self.index.remove(slot);
                            self.dropped(&old);
                        }
                        continue;
                    }
                    let entry = Entry {
                        digest,
                        family: self.key(family),
                        subject: subject.map_or(0, |s| self.key(s)),
                        seg,
                        off: base + at as u32,
                        len,
                        expires,
                        client: self.intern(client),
                        flags: flags & (REVOKED | ROTATED | REFRESH),
                    };
                    if let Some(old) = self.index.insert(entry) {
                        self.dropped(&old);
                    }
                    if let Some(info) = self.segs.get_mut(&seg) {
                        info.live += u64::from(len);
                    }
                }
                Op::Revoke(digest) => {
                    if let Some(slot) = self.index.find(&digest) {
                        if self.index.entry(slot).active(now) {
                            count += 1;
                        }
                        self.index.set_flags(slot, REVOKED);
                    }
                }
                Op::Rotate(digest) => {
                    if let Some(slot) = self.index.find(&digest) {
                        self.index.set_flags(slot, ROTATED);
                    }
                }
                Op::RevokeFamily(family) => {
                    for slot in self.index.family(self.key(family)) {
                        if self.index.entry(slot).active(now) {
                            count += 1;
                        }
                        self.index.set_flags(slot, REVOKED);
                    }
                }
                Op::DeleteClient(client) => {
                    if let Some(&id) = self.clients.get(client) {
                        for slot in self.index.select(|e| e.client == id) {
                            let old = self.index.remove(slot);
                            count += u64::from(old.active(now));
                            self.dropped(&old);
                        }
                    }
                }
                Op::DeleteSubject(subject) => {
                    let key = self.key(subject);
                    for slot in self.index.select(|e| e.subject == key) {
                        let old = self.index.remove(slot);
                        count += u64::from(old.active(now));
                        self.dropped(&old);
                    }
                }
                Op::RevokeGrant(client, subject) => {
                    if let Some(&id) = self.clients.get(client) {
                        let key = self.key(subject);
                        for slot in self.index.select(|e| e.client == id && e.subject == key) {
                            if self.index.entry(slot).active(now) {
                                count += 1;
                            }
                            self.index.set_flags(slot, REVOKED);
                        }
                    }
                }
            }
        }
        Ok(count)
    }

    /// Applies `payload` as one frame and queues it; returns the count from [`Inner::apply`]
    /// and the position the caller must see durable before acknowledging.
    pub fn commit(&mut self, payload: &[u8], segment_bytes: u32) -> Result<(u64, u64), StoreError> {
        self.check()?;
        if payload.is_empty() {
            // Eight zero bytes are the end of the log: an empty frame would be read as that.
            return Err(StoreError::new(
                StoreErrorKind::Other,
                "token log: empty frame",
            ));
        }
        let frame_len = FRAME_HEADER + payload.len();
        if frame_len > MAX_FRAME {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                "token log: frame too large",
            ));
        }
        if u64::from(self.active_len) + frame_len as u64 > u64::from(segment_bytes)
            && self.active_len > HEADER
        {
            self.active += 1;
            self.active_len = HEADER;
            self.segs.insert(
                self.active,
                SegInfo {
                    size: u64::from(HEADER),
                    live: 0,
                },
            );
        }
        let (seg, start) = (self.active, self.active_len);
        let count = self.apply(payload, seg, start + FRAME_HEADER as u32)?;
        let mut frame = Vec::with_capacity(frame_len);
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&CRC.checksum(payload).to_le_bytes());
        frame.extend_from_slice(payload);
        match self.pending.last_mut() {
            Some(chunk) if chunk.seg == seg => chunk.bytes.extend_from_slice(&frame),
            _ => self.pending.push(Chunk {
                seg,
                start,
                bytes: frame,
            }),
        }
        self.active_len += frame_len as u32;
        self.frames += 1;
        if let Some(info) = self.segs.get_mut(&seg) {
            info.size += frame_len as u64;
        }
        Ok((count, (u64::from(seg) << 32) | u64::from(self.active_len)))
    }

    /// Where the bytes of the token in `slot` are: queued (copied out now) or in a file.
    pub fn locate(&self, slot: u32) -> Result<Located, StoreError> {
        let e = self.index.entry(slot);
        let within = |c: &Chunk| {
            c.seg == e.seg
                && e.off >= c.start
                && (e.off - c.start) as usize + e.len as usize <= c.bytes.len()
        };
        let copy = |c: &Chunk| {
            let from = (e.off - c.start) as usize;
            c.bytes[from..from + e.len as usize].to_vec()
        };
        if let Some(c) = self.pending.iter().find(|c| within(c)) {
            return Ok(Located::Bytes(copy(c)));
        }
        if let Some(c) = self
            .inflight
            .as_ref()
            .and_then(|i| i.iter().find(|c| within(c)))
        {
            return Ok(Located::Bytes(copy(c)));
        }
        let file = self
            .files
            .get(&e.seg)
            .ok_or_else(|| corrupt(format!("segment {} is missing", e.seg)))?;
        Ok(Located::File(Arc::clone(file), e.off, e.len))
    }
}

/// Where a token's stored operation is.
pub(crate) enum Located {
    /// Not written yet: a copy.
    Bytes(Vec<u8>),
    /// In a segment file, at an offset, of a length.
    File(Arc<File>, u32, u32),
}

impl Located {
    /// The operation's bytes.
    pub fn read(self) -> Result<Vec<u8>, StoreError> {
        match self {
            Located::Bytes(b) => Ok(b),
            Located::File(file, off, len) => {
                let mut buf = vec![0u8; len as usize];
                file.read_exact_at(&mut buf, u64::from(off))
                    .map_err(|e| io_err("read", e))?;
                Ok(buf)
            }
        }
    }
}

/// The open log: what the store handle holds.
pub(crate) struct Log {
    pub shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// Holds the directory's lock: one process writes a log.
    _lock: Option<File>,
    /// Whether another process holds the log (see [`Log::open_follower`]).
    pub follower: bool,
}

impl Drop for Log {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.shared.inner.lock() {
            inner.shutdown = true;
        }
        if let Ok(mut prep) = self.shared.prep.lock() {
            prep.shutdown = true;
        }
        self.shared.wake.notify_all();
        self.shared.sweeper_cv.notify_all();
        self.shared.prep_cv.notify_all();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if !self.follower {
            // The threads are gone and everything queued is written: cut the unused zeros off
            // the newest segment, so a closed log holds its frames only.
            let prep = self.shared.prep.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(file) = &prep.file
                && prep.zeroed > prep.written
                && prep.written > 0
            {
                let cut = file.set_len(prep.written).and_then(|()| file.sync_all());
                if let Err(err) = cut {
                    tracing::warn!(error = %err, "token log: could not cut the unused preallocated space");
                }
            }
            drop(prep);
            if let Err(err) = write_checkpoint(&self.shared, true) {
                tracing::warn!(error = %err, "token log: could not write a checkpoint; the next start replays the log since the last one");
            }
        }
    }
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, replays it and starts its threads.
    pub fn open(dir: &Path, options: Options) -> Result<Self, StoreError> {
        match try_lock(dir)? {
            Some(lock) => Self::open_locked(dir, options, Some(lock)),
            None => Err(StoreError::new(
                StoreErrorKind::Unavailable,
                format!(
                    "token log {} is in use by another process; only one server at a time can \
                     write it",
                    dir.display()
                ),
            )),
        }
    }

    /// Opens the log as a follower, while another process (the server) holds it: a read-only
    /// replay of what is on disk now, without threads; its revocations and deletions are
    /// posted to the holder's inbox ([`post_to_inbox`]). What a command run beside the server
    /// uses.
    pub fn open_follower(dir: &Path, options: Options) -> Result<Self, StoreError> {
        // The holder may delete a compacted segment between the listing and the read.
        let mut tries = 0;
        loop {
            match Self::open_locked(dir, options.clone(), None) {
                Err(err) if tries < 3 && err.kind() == StoreErrorKind::Unavailable => tries += 1,
                other => return other,
            }
        }
    }

    /// Opens the log; `lock` is the directory's lock, `None` for a follower.
    fn open_locked(dir: &Path, options: Options, lock: Option<File>) -> Result<Self, StoreError> {
        let follower = lock.is_none();
        let Loaded {
            mut inner,
            prep_zeroed,
            last,
        } = match load(dir, follower, true)? {
            Some(loaded) => loaded,
            None => load(dir, follower, false)?
                .ok_or_else(|| corrupt("replay without a checkpoint asked for one"))?,
        };
        inner.durable = (u64::from(inner.active) << 32) | u64::from(inner.active_len);
        let (durable_tx, _) = watch::channel(inner.durable);
        let prep = Prep {
            seg: inner.active,
            file: inner.files.get(&inner.active).cloned(),
            written: u64::from(inner.active_len),
            zeroed: prep_zeroed,
            asked: false,
            shutdown: false,
        };
        let shared = Arc::new(Shared {
            inner: Mutex::new(inner),
            prep: Mutex::new(prep),
            prep_cv: Condvar::new(),
            wake: Condvar::new(),
            writer_idle: AtomicBool::new(false),
            sweeper_cv: Condvar::new(),
            durable_cv: Condvar::new(),
            durable_tx,
            dir: dir.to_owned(),
            options,
            bytes_written: AtomicU64::new(0),
            fsyncs: AtomicU64::new(0),
            compacted: AtomicU64::new(0),
            preallocated: AtomicU64::new(0),
            checkpointing: Mutex::new(()),
        });
        if follower {
            return Ok(Self {
                shared,
                threads: Vec::new(),
                _lock: None,
                follower: true,
            });
        }
        if last.is_none() {
            // The first segment exists (with its header) before anything is acknowledged.
            let file = create_segment(&shared, 1).map_err(|e| io_err("create segment", e))?;
            shared.lock().files.insert(1, Arc::clone(&file));
            shared.prep.lock().unwrap_or_else(|p| p.into_inner()).file = Some(file);
        }
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("token-log-writer".into())
                .spawn(move || writer(&shared))
                .map_err(|e| io_err("start writer", e))?
        };
        let sweeper = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("token-log-sweeper".into())
                .spawn(move || sweeper(&shared))
                .map_err(|e| io_err("start sweeper", e))?
        };
        let preallocator = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("token-log-prealloc".into())
                .spawn(move || preallocator(&shared))
                .map_err(|e| io_err("start preallocator", e))?
        };
        let log = Self {
            shared,
            threads: vec![writer, sweeper, preallocator],
            _lock: lock,
            follower: false,
        };
        // What commands posted while no server ran is applied before anything is served.
        ingest_inbox(&log.shared)?;
        Ok(log)
    }
}

/// The state read from disk at open.
struct Loaded {
    inner: Inner,
    /// How far the newest segment holds written bytes (frames, then zeros).
    prep_zeroed: u64,
    /// The newest segment's number, if there is one.
    last: Option<u32>,
}

/// Reads the log in `dir` into memory: from the checkpoint and the log after it when
/// `use_checkpoint` and the checkpoint matches, else every segment. `None`: the checkpoint
/// matched its segments but not the replay after it; load again without it.
fn load(dir: &Path, follower: bool, use_checkpoint: bool) -> Result<Option<Loaded>, StoreError> {
    let mut inner = Inner::fresh();
    let mut prep_zeroed = u64::from(HEADER);
    inner.horizon = wall_clock();
    let mut numbers: Vec<u32> = std::fs::read_dir(dir)
        .map_err(|e| io_err("list directory", e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".log")?.parse().ok()
        })
        .collect();
    numbers.sort_unstable();
    let last = numbers.last().copied();
    let checkpoint_path = dir.join(checkpoint::FILE);
    if last.is_none() && !follower {
        // A new log: a checkpoint left from an old one must not meet its segments.
        match std::fs::remove_file(&checkpoint_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_err("remove checkpoint", e));
            }
            _ => {}
        }
    }
    // Each segment's length on disk, to size the index before it is filled.
    let sizes: Vec<(u32, u64)> = numbers
        .iter()
        .map(|&seg| Ok((seg, std::fs::metadata(seg_path(dir, seg))?.len())))
        .collect::<std::io::Result<_>>()
        .map_err(|e| io_err("stat segment", e))?;
    // With a checkpoint that matches, segments before its position are not read.
    let mut resume: Option<(u32, u32)> = None;
    // Segments the checkpoint lists that compaction has deleted since.
    let mut gone = Vec::new();
    if use_checkpoint && last.is_some() {
        match load_checkpoint(&checkpoint_path, &numbers, &sizes, inner.horizon) {
            Ok(None) => {}
            Ok(Some(checkpoint::Loaded {
                header,
                index,
                live,
            })) => {
                inner.hash_key = header.key;
                inner.from_checkpoint = index.len() as u64;
                inner.index = index;
                inner.clients = header
                    .clients
                    .into_iter()
                    .enumerate()
                    .map(|(i, c)| (c, i as u32))
                    .collect();
                for (mark, live) in header.segments.iter().zip(live) {
                    if numbers.binary_search(&mark.seg).is_err() {
                        gone.push(mark.seg);
                        continue;
                    }
                    if mark.seg < header.seg {
                        let file = OpenOptions::new()
                            .read(true)
                            .write(!follower)
                            .open(seg_path(dir, mark.seg))
                            .map_err(|e| io_err("open segment", e))?;
                        inner.files.insert(mark.seg, Arc::new(file));
                    }
                    if mark.seg <= header.seg {
                        inner.segs.insert(
                            mark.seg,
                            SegInfo {
                                size: u64::from(mark.size),
                                live,
                            },
                        );
                    }
                }
                inner.checkpointed = position(header.seg, header.off);
                resume = Some((header.seg, header.off));
            }
            Err(why) => {
                tracing::warn!(reason = %why, "token log: not using the checkpoint; replaying the whole log");
            }
        }
    }
    if resume.is_none() {
        inner.index.reserve(tokens_in(log_after(&sizes, 0, 0)));
    }
    for &seg in &numbers {
        let from = match resume {
            Some((at, _)) if seg < at => continue,
            Some((at, off)) if seg == at => off as usize,
            _ => MAGIC.len(),
        };
        let path = seg_path(dir, seg);
        let file = OpenOptions::new()
            .read(true)
            .write(!follower)
            .open(&path)
            .map_err(|e| io_err("open segment", e))?;
        let bytes = match resume {
            Some((at, off)) if seg == at => read_after(&file, off),
            _ => std::fs::read(&path),
        }
        .map_err(|e| io_err("read segment", e))?;
        inner.segs.entry(seg).or_default();
        let valid = if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
            if follower && Some(seg) == last {
                // The holder is creating it.
                bytes.len()
            } else if Some(seg) == last && MAGIC.starts_with(&bytes[..bytes.len().min(MAGIC.len())])
            {
                // Created, but the crash cut its header short: nothing was in it yet.
                file.write_all_at(MAGIC, 0)
                    .map_err(|e| io_err("write", e))?;
                file.sync_all().map_err(|e| io_err("sync", e))?;
                HEADER as usize
            } else {
                return Err(corrupt(format!(
                    "{} is not a token log segment",
                    path.display()
                )));
            }
        } else {
            replay(&mut inner, &bytes, from, seg, Some(seg) == last)?
        };
        let mut zeroed = bytes.len() as u64;
        if !zeros(&bytes[valid..]) && !follower {
            tracing::warn!(
                segment = seg,
                cut = bytes.len() - valid,
                "token log: cutting off an unfinished write at the end of the log"
            );
            file.set_len(valid as u64)
                .map_err(|e| io_err("truncate", e))?;
            file.sync_all().map_err(|e| io_err("sync", e))?;
            zeroed = valid as u64;
        }
        prep_zeroed = zeroed;
        if let Some(info) = inner.segs.get_mut(&seg) {
            info.size = valid as u64;
        }
        inner.replayed += valid.saturating_sub(from) as u64;
        inner.files.insert(seg, Arc::new(file));
        inner.active = seg;
        inner.active_len = valid as u32;
    }
    if last.is_none() {
        inner.active = 1;
        inner.active_len = HEADER;
        inner.segs.insert(
            1,
            SegInfo {
                size: u64::from(HEADER),
                live: 0,
            },
        );
    }
    if resume.is_some() && !gone.is_empty() {
        // Every other segment a checkpointed token can be in was opened above.
        let dangling = inner.index.select(|e| gone.contains(&e.seg));
        if !dangling.is_empty() {
            tracing::warn!(
                tokens = dangling.len(),
                "token log: the checkpoint names segments no longer on disk; replaying the whole log"
            );
            return Ok(None);
        }
    }
    Ok(Some(Loaded {
        inner,
        prep_zeroed,
        last,
    }))
}

/// Reads the checkpoint at `path` and checks it against the segments `numbers` on disk (see
/// [`checkpoint`] for what must match). `Ok(None)`: there is none.
fn load_checkpoint(
    path: &Path,
    numbers: &[u32],
    sizes: &[(u32, u64)],
    horizon: u32,
) -> Result<Option<checkpoint::Loaded>, String> {
    let Some(loaded) = checkpoint::read(path, horizon, |header| {
        tokens_in(log_after(sizes, header.seg, header.off))
    })?
    else {
        return Ok(None);
    };
    let header = &loaded.header;
    for &seg in numbers.iter().filter(|&&n| n <= header.seg) {
        if !header.segments.iter().any(|m| m.seg == seg) {
            return Err(format!("segment {seg} is not in it"));
        }
    }
    for mark in &header.segments {
        if !numbers.contains(&mark.seg) {
            continue;
        }
        let file = File::open(seg_path(path.parent().unwrap_or(path), mark.seg))
            .map_err(|e| format!("open segment {}: {e}", mark.seg))?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        if len < u64::from(mark.size) || u64::from(mark.size) < u64::from(HEADER) {
            return Err(format!("segment {} is shorter than it was", mark.seg));
        }
        let now = checkpoint::SegmentMark::of(mark.seg, mark.size, |buf, off| {
            file.read_exact_at(buf, off)
        })
        .map_err(|e| format!("read segment {}: {e}", mark.seg))?;
        if now != *mark {
            return Err(format!("segment {} is not the one it saw", mark.seg));
        }
    }
    Ok(Some(loaded))
}

/// The bytes of the segments in `sizes` (number, length) after offset `off` of segment `seg`.
fn log_after(sizes: &[(u32, u64)], seg: u32, off: u32) -> u64 {
    sizes
        .iter()
        .map(|&(s, len)| match s.cmp(&seg) {
            std::cmp::Ordering::Less => 0,
            std::cmp::Ordering::Equal => len.saturating_sub(u64::from(off)),
            std::cmp::Ordering::Greater => len,
        })
        .sum()
}

/// How many tokens `bytes` of log hold at most, about: a token's frame is ~240 bytes, so
/// the index reserved for this many is not grown (rehashed) during the replay.
fn tokens_in(bytes: u64) -> usize {
    usize::try_from(bytes / 200).unwrap_or(usize::MAX)
}

/// The log position of `off` in segment `seg`, ordered as the log is.
fn position(seg: u32, off: u32) -> u64 {
    (u64::from(seg) << 32) | u64::from(off)
}

/// Takes a checkpoint if one is due ([`checkpoint::due`]); what the sweeper runs after each
/// compaction step.
pub(crate) fn checkpoint_if_due(shared: &Shared) -> Result<(), StoreError> {
    let due = {
        let inner = shared.lock();
        let (seg, off) = ((inner.checkpointed >> 32) as u32, inner.checkpointed as u32);
        let after: u64 = inner
            .segs
            .range(seg..)
            .map(|(&s, info)| {
                if s == seg {
                    info.size.saturating_sub(u64::from(off))
                } else {
                    info.size
                }
            })
            .sum();
        checkpoint::due(after, inner.index.len() as u64)
    };
    if due {
        write_checkpoint(shared, false)?;
    }
    Ok(())
}

/// Writes a checkpoint of the index as of the log's current end (see [`checkpoint`]), while
/// the log goes on serving: the entries are copied a slab chunk per lock, streamed to the
/// file, and the file is put in place once the log is durable up to where the copy ended.
/// Unless `closing` (the log's threads are gone), a shutdown abandons it.
pub(crate) fn write_checkpoint(shared: &Shared, closing: bool) -> Result<(), StoreError> {
    write_checkpoint_between(shared, closing, &mut |_| {})
}

/// [`write_checkpoint`], calling `between(chunk)` (without the lock) before copying each slab
/// chunk after the first: where tests make changes while the copy goes on.
fn write_checkpoint_between(
    shared: &Shared,
    closing: bool,
    between: &mut dyn FnMut(usize),
) -> Result<(), StoreError> {
    // One at a time: they share the file they are written to.
    let _one = shared
        .checkpointing
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let start = {
        let inner = shared.lock();
        if inner.failed.is_some() {
            return Ok(());
        }
        let start = position(inner.active, inner.active_len);
        if inner.checkpointed == start {
            // The one on disk is as of this position already.
            return Ok(());
        }
        start
    };
    let io = |e: std::io::Error| io_err("write checkpoint", e);
    let mut writer = checkpoint::Writer::create(&shared.dir).map_err(io)?;
    let mut encoded = Vec::new();
    for chunk in 0.. {
        encoded.clear();
        if chunk > 0 {
            between(chunk);
        }
        {
            let inner = shared.lock();
            if (inner.shutdown && !closing) || inner.failed.is_some() {
                // Left for the close (or the next start) to do.
                return Ok(());
            }
            // A token whose record is past `start` is written again by the replay from it.
            let Some(slots) = inner
                .index
                .select_chunk(chunk, |e| position(e.seg, e.off) < start)
            else {
                break;
            };
            encoded.reserve(slots.len() * checkpoint::ENTRY_BYTES);
            for slot in slots {
                checkpoint::encode_entry(&mut encoded, inner.index.entry(slot));
            }
        }
        writer.entries(&encoded).map_err(io)?;
    }
    // The copy may hold changes made after `start` (a revocation, say): the checkpoint goes in
    // place only once they are durable, so it never holds what a crash would undo.
    let end = {
        let inner = shared.lock();
        position(inner.active, inner.active_len)
    };
    shared.durable_blocking(end)?;
    let (seg, off) = ((start >> 32) as u32, start as u32);
    let (marks, clients, key) = {
        let inner = shared.lock();
        let marks: Vec<(u32, u32, Arc<File>)> = inner
            .segs
            .range(..=seg)
            .filter_map(|(&s, info)| {
                let size = if s == seg { off } else { info.size as u32 };
                Some((s, size, Arc::clone(inner.files.get(&s)?)))
            })
            .collect();
        let mut clients = vec![Box::<str>::from(""); inner.clients.len()];
        for (name, &id) in &inner.clients {
            clients[id as usize] = name.clone();
        }
        (marks, clients, inner.hash_key)
    };
    let mut segments = Vec::with_capacity(marks.len());
    for (s, size, file) in marks {
        segments.push(
            checkpoint::SegmentMark::of(s, size, |buf, at| file.read_exact_at(buf, at))
                .map_err(io)?,
        );
    }
    let header = checkpoint::Header {
        key,
        seg,
        off,
        segments,
        clients,
    };
    writer.finish(&header).map_err(io)?;
    let mut inner = shared.lock();
    inner.checkpointed = inner.checkpointed.max(start);
    inner.checkpoints += 1;
    tracing::debug!(segment = seg, offset = off, "token log: wrote a checkpoint");
    Ok(())
}

/// The segment in `file` as a buffer of its length with only the bytes from `off` read (and
/// its header, which the checkpoint's mark of it matched): the checkpoint covers the rest, and
/// the zeros the buffer holds there are never touched, so never even paged in.
fn read_after(file: &File, off: u32) -> std::io::Result<Vec<u8>> {
    // Offsets in a segment are `u32`: a longer file is cut to that in the buffer.
    let len = file.metadata()?.len().min(u64::from(u32::MAX)) as usize;
    let mut bytes = vec![0u8; len];
    let off = (off as usize).clamp(MAGIC.len().min(len), len);
    file.read_exact_at(&mut bytes[off..], off as u64)?;
    let head = MAGIC.len().min(len);
    bytes[..head].copy_from_slice(&MAGIC[..head]);
    Ok(bytes)
}

/// Whether `bytes` are all zeros.
fn zeros(bytes: &[u8]) -> bool {
    // A branch-free OR over each block (which the compiler vectorizes), so a 64 MiB
    // preallocated tail is checked at memory speed.
    bytes
        .chunks(4096)
        .all(|block| block.iter().fold(0u8, |acc, &b| acc | b) == 0)
}

/// Replays the frames of one segment from `from`; returns the length of its valid prefix. A bad frame at
/// the end of the newest segment is an unfinished write; anywhere else it is corruption.
fn replay(
    inner: &mut Inner,
    bytes: &[u8],
    from: usize,
    seg: u32,
    newest: bool,
) -> Result<usize, StoreError> {
    let mut pos = from.max(MAGIC.len());
    while pos < bytes.len() {
        let bad = |what: &str| -> Result<usize, StoreError> {
            if newest {
                Ok(pos)
            } else {
                Err(corrupt(format!("segment {seg} at {pos}: {what}")))
            }
        };
        if zeros(&bytes[pos..(pos + FRAME_HEADER).min(bytes.len())]) {
            // The end of what was written; only zeros (preallocated space) may follow.
            if zeros(&bytes[pos..]) {
                return Ok(pos);
            }
            return bad("data after the end of the log");
        }
        if bytes.len() - pos < FRAME_HEADER {
            return bad("frame header cut short");
        }
        let len = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let sum = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]);
        let start = pos + FRAME_HEADER;
        if len > MAX_FRAME || bytes.len() - start < len {
            return bad("frame cut short");
        }
        let payload = &bytes[start..start + len];
        if CRC.checksum(payload) != sum {
            return bad("checksum mismatch");
        }
        inner.apply(payload, seg, start as u32)?;
        pos = start + len;
    }
    Ok(pos)
}

impl Shared {
    /// Locks the state; a thread that panicked while holding the lock leaves it usable (the
    /// state is checked by `failed`, and every change is made in one step).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the writer if it sleeps: something was queued. Called after the queueing lock is
    /// released. The writer sets its idle flag under that lock only when it finds nothing
    /// queued, and then waits without releasing it in between, so a caller that queued under
    /// the lock either is seen by the writer's check or sees the flag set here; only the first
    /// caller to see it makes the wake-up call.
    pub fn queued(&self) {
        if self.writer_idle.swap(false, Ordering::SeqCst) {
            self.wake.notify_one();
        }
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The options the log was opened with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Waits until the log is durable up to `pos`.
    pub async fn durable(&self, pos: u64) -> Result<(), StoreError> {
        let mut rx = self.durable_tx.subscribe();
        let seen = *rx
            .wait_for(|&p| p >= pos)
            .await
            .map_err(|_| StoreError::new(StoreErrorKind::Unavailable, "token log closed"))?;
        if seen == u64::MAX {
            self.lock().check()?;
        }
        Ok(())
    }

    /// Blocks the calling (non-async) thread until the log is durable up to `pos`.
    fn durable_blocking(&self, pos: u64) -> Result<(), StoreError> {
        let mut inner = self.lock();
        while inner.durable < pos && inner.failed.is_none() && !inner.shutdown {
            inner.blocking_waiters += 1;
            inner = self
                .durable_cv
                .wait(inner)
                .unwrap_or_else(|p| p.into_inner());
            inner.blocking_waiters -= 1;
        }
        inner.check()?;
        if inner.durable < pos {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "token log closed",
            ));
        }
        Ok(())
    }

    /// What the log did so far.
    pub fn stats(&self) -> Stats {
        let inner = self.lock();
        Stats {
            frames: inner.frames,
            bytes_written: self.bytes_written.load(Ordering::Relaxed),
            fsyncs: self.fsyncs.load(Ordering::Relaxed),
            live_tokens: inner.index.len() as u64,
            segments: inner.files.len() as u64,
            segments_compacted: self.compacted.load(Ordering::Relaxed),
            bytes_preallocated: self.preallocated.load(Ordering::Relaxed),
            tokens_from_checkpoint: inner.from_checkpoint,
            bytes_replayed: inner.replayed,
            checkpoints: inner.checkpoints,
        }
    }
}

fn create_segment(shared: &Shared, seg: u32) -> std::io::Result<Arc<File>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(seg_path(&shared.dir, seg))?;
    file.write_all_at(MAGIC, 0)?;
    file.sync_all()?;
    sync_dir(&shared.dir)?;
    shared
        .bytes_written
        .fetch_add(MAGIC.len() as u64, Ordering::Relaxed);
    shared.fsyncs.fetch_add(1, Ordering::Relaxed);
    Ok(Arc::new(file))
}

/// The writer thread: writes whatever is queued, syncs once, reports the new durable end.
fn writer(shared: &Shared) {
    loop {
        let batch = {
            let mut inner = shared.lock();
            let mut slept = false;
            while inner.pending.is_empty() && !inner.shutdown {
                shared.writer_idle.store(true, Ordering::SeqCst);
                inner = shared.wake.wait(inner).unwrap_or_else(|p| p.into_inner());
                shared.writer_idle.store(false, Ordering::SeqCst);
                slept = true;
            }
            if slept && !inner.shutdown {
                // Woken by the first frame of a group: let the thread that queued it (and the
                // others runnable on this core) queue more before the group is taken, rather
                // than syncing one frame while the rest wait for the next sync. Where the
                // writer has a core of its own this returns at once.
                drop(inner);
                std::thread::yield_now();
                inner = shared.lock();
            }
            if inner.pending.is_empty() {
                return;
            }
            let batch = Arc::new(std::mem::take(&mut inner.pending));
            inner.inflight = Some(Arc::clone(&batch));
            batch
        };
        match write_batch(shared, &batch) {
            Ok(end) => {
                let mut inner = shared.lock();
                inner.inflight = None;
                inner.durable = end;
                let blocked = inner.blocking_waiters > 0;
                drop(inner);
                if blocked {
                    shared.durable_cv.notify_all();
                }
                shared.durable_tx.send_replace(end);
            }
            Err(err) => {
                tracing::error!(error = %err, "token log: write failed; the token store is unavailable until restarted");
                let mut inner = shared.lock();
                inner.failed = Some(format!("token log write failed: {err}"));
                drop(inner);
                shared.durable_cv.notify_all();
                shared.durable_tx.send_replace(u64::MAX);
                return;
            }
        }
    }
}

fn write_batch(shared: &Shared, batch: &[Chunk]) -> std::io::Result<u64> {
    let mut touched: Vec<Arc<File>> = Vec::new();
    let mut end = 0;
    // Held while writing (not while syncing): the preallocator writes no zeros meanwhile.
    let mut prep = shared.prep.lock().unwrap_or_else(|p| p.into_inner());
    for chunk in batch {
        let existing = shared.lock().files.get(&chunk.seg).cloned();
        let file = match existing {
            Some(file) => file,
            None => {
                // A new segment: the previous one is complete; make it durable first so the
                // log stays a prefix on disk.
                for f in touched.drain(..) {
                    f.sync_data()?;
                    shared.fsyncs.fetch_add(1, Ordering::Relaxed);
                }
                let file = create_segment(shared, chunk.seg)?;
                shared.lock().files.insert(chunk.seg, Arc::clone(&file));
                *prep = Prep {
                    seg: chunk.seg,
                    file: Some(Arc::clone(&file)),
                    written: u64::from(HEADER),
                    zeroed: u64::from(HEADER),
                    asked: false,
                    shutdown: prep.shutdown,
                };
                file
            }
        };
        file.write_all_at(&chunk.bytes, u64::from(chunk.start))?;
        if chunk.seg == prep.seg {
            prep.written = prep
                .written
                .max(u64::from(chunk.start) + chunk.bytes.len() as u64);
        }
        shared
            .bytes_written
            .fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
        if !touched.iter().any(|f| Arc::ptr_eq(f, &file)) {
            touched.push(file);
        }
        end = (u64::from(chunk.seg) << 32) | u64::from(chunk.start + chunk.bytes.len() as u32);
    }
    let ahead = u64::from(shared.options.preallocate);
    let wanted = (prep.written + ahead).min(u64::from(shared.options.segment_bytes));
    let wake = ahead > 0 && prep.zeroed < wanted && prep.zeroed < prep.written + ahead / 2;
    prep.asked |= wake;
    drop(prep);
    if wake {
        shared.prep_cv.notify_one();
    }
    for f in touched {
        f.sync_data()?;
        shared.fsyncs.fetch_add(1, Ordering::Relaxed);
    }
    Ok(end)
}

/// Zeros are written in pieces of this size, each under the preallocation lock.
const ZERO_PIECE: usize = 256 << 10;
/// A page of the page cache: the size of each write of zeros.
const PAGE: usize = 4096;

/// The preallocator thread: when woken by the writer, zero-fills the active segment up to
/// [`Options::preallocate`] bytes past the writer (at most to the segment's size) and syncs it,
/// so the writer's own syncs find the blocks and the file size already on disk.
fn preallocator(shared: &Shared) {
    let ahead = u64::from(shared.options.preallocate);
    let limit = u64::from(shared.options.segment_bytes);
    let zeros = vec![0u8; ZERO_PIECE];
    loop {
        let mut prep = shared.prep.lock().unwrap_or_else(|p| p.into_inner());
        // Woken below half the distance, it fills up to the whole: a few large writes and
        // syncs per segment, not one per group commit.
        while !prep.shutdown
            && (!prep.asked || prep.zeroed >= (prep.written + ahead / 2).min(limit))
        {
            prep = shared.prep_cv.wait(prep).unwrap_or_else(|p| p.into_inner());
        }
        if prep.shutdown {
            return;
        }
        prep.asked = false;
        let (seg, target) = (prep.seg, (prep.written + ahead).min(limit));
        let Some(file) = prep.file.clone() else {
            return;
        };
        // A piece at a time, releasing the lock between pieces so the writer is never held
        // up for long; each starts past whatever the writer wrote meanwhile.
        let mut wrote = 0u64;
        loop {
            let from = prep.zeroed.max(prep.written);
            if prep.seg != seg || prep.shutdown || from >= target {
                break;
            }
            let len = (target - from).min(ZERO_PIECE as u64);
            // Page by page: one large write makes the page cache use large folios, and then
            // every group commit that touches one writes the whole folio back (tens of KiB
            // per fsync instead of the pages the frames are in).
            let written = zeros[..len as usize]
                .chunks(PAGE)
                .enumerate()
                .try_for_each(|(i, page)| file.write_all_at(page, from + (i * PAGE) as u64));
            if let Err(err) = written {
                // Only speed is lost: the writer's own syncs then commit the growth.
                tracing::warn!(error = %err, "token log: could not preallocate; going on without");
                return;
            }
            prep.zeroed = from + len;
            wrote += len;
            drop(prep);
            prep = shared.prep.lock().unwrap_or_else(|p| p.into_inner());
        }
        drop(prep);
        if wrote > 0 {
            shared.preallocated.fetch_add(wrote, Ordering::Relaxed);
            match file.sync_data() {
                Ok(()) => {
                    shared.fsyncs.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => {
                    tracing::warn!(error = %err, "token log: could not sync preallocated space")
                }
            }
        }
    }
}

/// The sweeper thread: forgets expired tokens one shard at a time, then compacts the oldest
/// sealed segment when little of it is live.
fn sweeper(shared: &Shared) {
    loop {
        {
            let inner = shared.lock();
            let (inner, _) = shared
                .sweeper_cv
                .wait_timeout_while(inner, shared.options.sweep_every, |i| !i.shutdown)
                .unwrap_or_else(|p| p.into_inner());
            if inner.shutdown {
                return;
            }
        }
        sweep(shared);
        if let Err(err) = ingest_inbox(shared) {
            tracing::warn!(error = %err, "token log: could not apply a posted change; retrying later");
        }
        if let Err(err) = compact(shared) {
            tracing::warn!(error = %err, "token log: compaction failed; retrying later");
        }
        if let Err(err) = checkpoint_if_due(shared) {
            tracing::warn!(error = %err, "token log: could not write a checkpoint; retrying later");
        }
    }
}

/// Forgets every token expired by now, one shard per lock.
pub(crate) fn sweep(shared: &Shared) {
    for shard in 0..SHARDS {
        let mut inner = shared.lock();
        let now = inner.horizon.max(wall_clock());
        inner.horizon = now;
        for slot in inner.index.select_shard(shard, |e| e.expires <= now) {
            let old = inner.index.remove(slot);
            inner.dropped(&old);
        }
    }
}

/// Compacts the oldest sealed segment, if it is worth it: deletes it when nothing in it is
/// live, or copies its live tokens forward when less than `compact_below` of it is.
pub(crate) fn compact(shared: &Shared) -> Result<(), StoreError> {
    let (seg, info) = {
        let inner = shared.lock();
        inner.check()?;
        let Some((&seg, &info)) = inner.segs.iter().next() else {
            return Ok(());
        };
        // Sealed and fully written: the active segment, and one still being written, stay.
        if seg == inner.active || (inner.durable >> 32) as u32 <= seg {
            return Ok(());
        }
        (seg, info)
    };
    if info.live > 0 && (info.live as f64) >= shared.options.compact_below * info.size as f64 {
        return Ok(());
    }
    let segment_bytes = shared.options.segment_bytes;
    let mut chunk = 0;
    let mut last_end = 0;
    loop {
        let picked = {
            let inner = shared.lock();
            let Some(slots) = inner.index.select_chunk(chunk, |e| e.seg == seg) else {
                break;
            };
            slots
                .into_iter()
                .map(|s| {
                    let e = *inner.index.entry(s);
                    inner.locate(s).map(|l| (e, l))
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        chunk += 1;
        if picked.is_empty() {
            continue;
        }
        // Read outside the lock, then copy forward what is unchanged since.
        let mut read = Vec::with_capacity(picked.len());
        for (e, located) in picked {
            read.push((e, located.read()?));
        }
        let mut inner = shared.lock();
        let mut payload = Vec::new();
        for (e, mut bytes) in read {
            let Some(slot) = inner.index.find(&e.digest) else {
                continue;
            };
            let now = *inner.index.entry(slot);
            if now.seg != e.seg || now.off != e.off || bytes.len() <= PUT_FLAGS_AT {
                continue;
            }
            decode_put(&bytes)?;
            bytes[PUT_FLAGS_AT] = now.flags & (REVOKED | ROTATED | REFRESH);
            payload.extend_from_slice(&bytes);
            if payload.len() > 1 << 20 {
                let (_, end) = inner.commit(&payload, segment_bytes)?;
                last_end = end;
                payload.clear();
            }
        }
        if !payload.is_empty() {
            let (_, end) = inner.commit(&payload, segment_bytes)?;
            last_end = end;
        }
        drop(inner);
        shared.queued();
    }
    if last_end > 0 {
        shared.durable_blocking(last_end)?;
    }
    {
        let mut inner = shared.lock();
        let live = inner.segs.get(&seg).map_or(0, |i| i.live);
        if live > 0 {
            // A token of this segment was written meanwhile by replay order; try next time.
            return Ok(());
        }
        inner.segs.remove(&seg);
        inner.files.remove(&seg);
    }
    std::fs::remove_file(seg_path(&shared.dir, seg)).map_err(|e| io_err("delete segment", e))?;
    sync_dir(&shared.dir).map_err(|e| io_err("sync directory", e))?;
    shared.compacted.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(segment = seg, "token log: compacted a segment");
    Ok(())
}

/// Takes the directory's lock; `None` when another process holds it.
pub(crate) fn try_lock(dir: &Path) -> Result<Option<File>, StoreError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_err("create directory", e))?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join("LOCK"))
        .map_err(|e| io_err("open lock file", e))?;
    match lock.try_lock() {
        Ok(()) => Ok(Some(lock)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err("lock", e)),
    }
}

const INBOX_PREFIX: &str = "inbox-";
const INBOX_SUFFIX: &str = ".ops";

/// Whether the operations in `payload` may come from a follower: revocations and deletions
/// only, never a token.
pub(crate) fn postable(payload: &[u8]) -> Result<bool, StoreError> {
    let mut reader = Reader::new(payload);
    while let Some((_, op)) = reader.next_op()? {
        if matches!(op, Op::Put { .. } | Op::Rotate(_)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Posts a follower's frame to the holder: a file in the log's directory, durable (synced and
/// renamed into place) before this returns, whose path is returned. The holder applies it
/// within a sweep interval (and then removes the file), or at its next start.
pub(crate) fn post_to_inbox(dir: &Path, payload: &[u8]) -> Result<std::path::PathBuf, StoreError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let name = format!(
        "{INBOX_PREFIX}{nanos:024}-{}{INBOX_SUFFIX}",
        std::process::id()
    );
    let tmp = dir.join(format!("{name}.tmp"));
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&CRC.checksum(payload).to_le_bytes());
    frame.extend_from_slice(payload);
    let write = || -> std::io::Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all_at(&frame, 0)?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(&name))?;
        sync_dir(dir)
    };
    write().map_err(|e| io_err("post to the server's inbox", e))?;
    Ok(dir.join(name))
}

/// Applies the frames followers posted, oldest first, each durable before its file goes. A
/// file that fails its checksum or holds anything but revocations and deletions is renamed
/// `.bad` and left for the operator.
pub(crate) fn ingest_inbox(shared: &Shared) -> Result<(), StoreError> {
    let mut names: Vec<String> = std::fs::read_dir(&shared.dir)
        .map_err(|e| io_err("list directory", e))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(INBOX_PREFIX) && n.ends_with(INBOX_SUFFIX))
        .collect();
    names.sort();
    for name in names {
        let path = shared.dir.join(&name);
        let bytes = std::fs::read(&path).map_err(|e| io_err("read inbox", e))?;
        let payload = bytes.get(FRAME_HEADER..).unwrap_or_default();
        let sound = bytes.len() >= FRAME_HEADER
            && u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize
                == payload.len()
            && u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]])
                == CRC.checksum(payload)
            && !payload.is_empty()
            && postable(payload).unwrap_or(false);
        if !sound {
            tracing::error!(file = %name, "token log: ignoring a malformed posted change");
            std::fs::rename(&path, shared.dir.join(format!("{name}.bad")))
                .map_err(|e| io_err("rename", e))?;
            continue;
        }
        let end = {
            let mut inner = shared.lock();
            let now = wall_clock();
            inner.horizon = inner.horizon.max(now);
            inner.commit(payload, shared.options.segment_bytes)?.1
        };
        shared.queued();
        shared.durable_blocking(end)?;
        std::fs::remove_file(&path).map_err(|e| io_err("remove inbox file", e))?;
        tracing::info!(file = %name, "token log: applied a change posted by a command");
    }
    Ok(())
}

/// The segments of the log in `dir` as they are now, each cut to its whole frames, oldest
/// first: a copy the server may go on writing beside (a backup). Every frame durable before
/// the call is in it. Safe while another process holds the log: a segment its compaction
/// deletes meanwhile makes the copy start again.
pub fn snapshot(dir: &Path) -> Result<Vec<(u32, Vec<u8>)>, StoreError> {
    let mut tries = 0;
    'again: loop {
        let mut numbers: Vec<u32> = std::fs::read_dir(dir)
            .map_err(|e| io_err("list directory", e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".log")?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        let mut out = Vec::with_capacity(numbers.len());
        for seg in numbers {
            let mut bytes = match std::fs::read(seg_path(dir, seg)) {
                Ok(bytes) => bytes,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 5 => {
                    tries += 1;
                    continue 'again;
                }
                Err(e) => return Err(io_err("read segment", e)),
            };
            if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
                continue;
            }
            let mut pos = MAGIC.len();
            while bytes.len() - pos >= FRAME_HEADER {
                let len = u32::from_le_bytes([
                    bytes[pos],
                    bytes[pos + 1],
                    bytes[pos + 2],
                    bytes[pos + 3],
                ]) as usize;
                let sum = u32::from_le_bytes([
                    bytes[pos + 4],
                    bytes[pos + 5],
                    bytes[pos + 6],
                    bytes[pos + 7],
                ]);
                let start = pos + FRAME_HEADER;
                if len == 0
                    || len > MAX_FRAME
                    || bytes.len() - start < len
                    || CRC.checksum(&bytes[start..start + len]) != sum
                {
                    break;
                }
                pos = start + len;
            }
            bytes.truncate(pos);
            out.push((seg, bytes));
        }
        return Ok(out);
    }
}

/// The file name of segment `seg`.
pub fn segment_name(seg: u32) -> String {
    format!("{seg:010}.log")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame of `PUT`s of the tokens numbered `from..to` (for client `client-{n % 3}`,
    /// family `family-{n % 100}`), an hour from now.
    fn puts(from: u32, to: u32) -> Vec<u8> {
        let mut payload = Vec::new();
        for n in from..to {
            let (client, family) = (format!("client-{}", n % 3), format!("family-{}", n % 100));
            Op::Put {
                digest: digest(n),
                expires: wall_clock() + 3600,
                flags: 0,
                client: &client,
                family: &family,
                subject: None,
                body: b"{}",
            }
            .encode(&mut payload)
            .expect("encode");
        }
        payload
    }

    /// The digest of token `n`: spread over the digest tables.
    fn digest(n: u32) -> [u8; 32] {
        let mut d = [0u8; 32];
        d[..4].copy_from_slice(&n.to_le_bytes());
        d[..8].copy_from_slice(
            &u64::from(n)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .to_le_bytes(),
        );
        d[8..16].copy_from_slice(
            &u64::from(n)
                .wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
                .to_le_bytes(),
        );
        d
    }

    /// Applies `payload` and waits until it is durable, as a store call does.
    fn write(shared: &Shared, payload: &[u8]) {
        let end = shared
            .lock()
            .commit(payload, shared.options.segment_bytes)
            .expect("commit")
            .1;
        shared.queued();
        shared.durable_blocking(end).expect("durable");
    }

    /// Every indexed token of `inner` with what a restart must give back (family hashes
    /// aside: a log replayed without its checkpoint hashes them with a new key).
    fn tokens(inner: &Inner) -> Vec<([u8; 32], u32, u32, u8, u32)> {
        let mut out: Vec<_> = inner
            .index
            .select(|_| true)
            .into_iter()
            .map(|slot| {
                let e = inner.index.entry(slot);
                (e.digest, e.seg, e.off, e.flags, e.expires)
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Asserts that two lists of [`tokens`] are the same, naming the first difference.
    fn same(got: &[([u8; 32], u32, u32, u8, u32)], expected: &[([u8; 32], u32, u32, u8, u32)]) {
        assert_eq!(got.len(), expected.len(), "token counts");
        if let Some(i) = (0..got.len()).find(|&i| got[i] != expected[i]) {
            panic!("token {i}: {:?} instead of {:?}", got[i], expected[i]);
        }
    }

    #[test]
    fn changes_made_while_a_checkpoint_is_copied_come_back_from_the_log_after_it() {
        let dir = std::env::temp_dir().join(format!(
            "latchkey-tokenlog-unit-{}-{}",
            std::process::id(),
            wall_clock()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let options = Options {
            segment_bytes: 1 << 20,
            sweep_every: Duration::from_secs(3600),
            ..Options::default()
        };
        let log = Log::open(&dir, options).expect("open");
        let shared = &log.shared;
        // Three slab chunks' worth (8,192 tokens each).
        for from in (0..20_000).step_by(1000) {
            write(shared, &puts(from, from + 1000));
        }
        // While the copy is between chunks: a token of a chunk copied already and one of a
        // chunk not yet copied revoked, a family revoked, a client's tokens deleted, new tokens
        // (in the slots the deletion freed, some of them in copied chunks).
        write_checkpoint_between(shared, false, &mut |chunk| {
            if chunk == 1 {
                let mut payload = Vec::new();
                for op in [
                    Op::Revoke(digest(5)),
                    Op::Revoke(digest(19_000)),
                    Op::RevokeFamily("family-7"),
                    Op::DeleteClient("client-2"),
                ] {
                    op.encode(&mut payload).expect("encode");
                }
                write(shared, &payload);
                write(shared, &puts(30_000, 31_000));
            }
        })
        .expect("checkpoint");
        write(shared, &puts(40_000, 40_010));
        let expected = tokens(&shared.lock());
        assert_eq!(shared.lock().checkpoints, 1);

        // What a crash leaves: read as a follower does, with the checkpoint and without.
        let from_checkpoint = load(&dir, true, true).expect("load").expect("loaded");
        assert!(from_checkpoint.inner.from_checkpoint > 10_000);
        same(&tokens(&from_checkpoint.inner), &expected);
        let whole = load(&dir, true, false).expect("load").expect("loaded");
        assert_eq!(whole.inner.from_checkpoint, 0);
        same(&tokens(&whole.inner), &expected);
        drop(log);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
