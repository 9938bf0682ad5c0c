//! A checkpoint of the index: the index as of one position of the log, so that a restart
//! loads it and replays only the log after that position instead of reading every segment.
//! The sweeper takes one while the log is served, once the log after the last checkpoint
//! is longer than a new one would be; a clean shutdown takes one too.
//!
//! # File
//! `dir/checkpoint`, written beside as `checkpoint.tmp` (entries streamed as they are
//! copied), synced, then renamed into place. All little-endian:
//!
//! ```text
//! magic "LKTCKP2\n"
//! | entries × (digest 32, family u64, subject u64, seg u32, off u32, len u32, expires u32,
//!              client u32, flags u8)
//! | trailer: hash key k0 u64 k1 u64 | position seg u32 off u32 | entries u32
//!            | segments u32 × (seg u32, size u32, head crc u32, tail crc u32)
//!            | clients u32 × (len u16, UTF-8)
//! | trailer length u32 | crc32c u32 of everything before
//! ```
//!
//! # Taken while serving
//! The entries are copied a slab chunk at a time, each under the lock for a few hundred
//! microseconds, so they are not one instant's index: each token's entry is as it stood at
//! some moment after the position. The copy keeps only tokens whose record lies before the
//! position (a token written after it is written again by the replay), and the file is put in
//! place only once the log is durable up to where the copy ended. Replaying the log from the
//! position over such a copy gives the index the log itself gives, because every operation
//! sets a state rather than changing it (a record replaces its token, a revocation or rotation
//! sets a flag, a deletion removes): applying again one the copy already saw changes nothing,
//! and a token moves to another slot only when written again, after the position.
//!
//! # Trust
//! A checkpoint is used only if it matches the segments on disk: its checksum holds, every
//! segment up to its position is one it lists, and each listed segment still on disk is at
//! least as long as it was and has the same first and last 4 KiB up to that length. A listed
//! segment may be gone (compaction deleted it once its live tokens were copied past the
//! position). After the replay every indexed token must be in a segment on disk. Anything else
//! and the log is replayed whole, as without a checkpoint: a checkpoint only saves time.

use crate::entry::{Entry, Index, REFRESH, REVOKED, ROTATED};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The first bytes of a checkpoint.
const MAGIC: &[u8; 8] = b"LKTCKP2\n";
/// The checkpoint's file name in the log's directory.
pub(crate) const FILE: &str = "checkpoint";
/// How many bytes at each end of a segment its identity check covers.
pub(crate) const PROBE: u64 = 4096;
/// The bytes before the first frame of a segment (its magic).
const HEADER: u32 = 8;
/// Bytes of one entry in the file.
pub(crate) const ENTRY_BYTES: usize = 32 + 8 + 8 + 4 * 5 + 1;
static CRC: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// A checkpoint is due once the log after the newest one holds this many times the bytes a
/// new checkpoint would, and at least [`MIN_LOG`]. A restart after a crash then replays at
/// most that much log (plus what came in while the checkpoint was written), which costs about
/// what loading the checkpoint does, so it stays within twice a clean restart. The price is
/// bytes written: with as many tokens live as expire, the checkpoints write `1 / LOG_RATIO`
/// bytes for each byte of log (sequentially, off the request path).
const LOG_RATIO: u64 = 1;
/// See [`LOG_RATIO`]: below this much log after the last checkpoint, replaying it costs
/// little (milliseconds).
const MIN_LOG: u64 = 8 << 20;

/// Whether a checkpoint is due, with `log_after` bytes of log after the newest one and
/// `live` tokens indexed.
pub(crate) fn due(log_after: u64, live: u64) -> bool {
    log_after >= MIN_LOG.max(live * ENTRY_BYTES as u64 * LOG_RATIO)
}

/// One segment as the checkpoint saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SegmentMark {
    /// The segment's number.
    pub seg: u32,
    /// Its valid length then (frames and header; no preallocated zeros).
    pub size: u32,
    /// CRC-32C of its first `min(size, PROBE)` bytes.
    pub head: u32,
    /// CRC-32C of its last `min(size, PROBE)` bytes before `size`.
    pub tail: u32,
}

impl SegmentMark {
    /// The mark of segment `seg` of valid length `size`, read through `read_at`.
    pub fn of(
        seg: u32,
        size: u32,
        read_at: impl Fn(&mut [u8], u64) -> std::io::Result<()>,
    ) -> std::io::Result<Self> {
        let span = u64::from(size).min(PROBE) as usize;
        let mut buf = vec![0u8; span];
        read_at(&mut buf, 0)?;
        let head = CRC.checksum(&buf);
        read_at(&mut buf, u64::from(size) - span as u64)?;
        let tail = CRC.checksum(&buf);
        Ok(Self {
            seg,
            size,
            head,
            tail,
        })
    }
}

/// What a checkpoint holds besides the index.
#[derive(Debug)]
pub(crate) struct Header {
    /// The key of the family and subject hashes the entries were made with.
    pub key: (u64, u64),
    /// The segment and offset of the log position: every token whose record lies before it
    /// is in the checkpoint (unless something after the position removed it).
    pub seg: u32,
    /// See `seg`.
    pub off: u32,
    /// Every segment up to `seg`.
    pub segments: Vec<SegmentMark>,
    /// The interned client ids, by number.
    pub clients: Vec<Box<str>>,
}

/// Appends `e` as a checkpoint entry to `out`.
pub(crate) fn encode_entry(out: &mut Vec<u8>, e: &Entry) {
    out.extend_from_slice(&e.digest);
    out.extend_from_slice(&e.family.to_le_bytes());
    out.extend_from_slice(&e.subject.to_le_bytes());
    for v in [e.seg, e.off, e.len, e.expires, e.client] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.push(e.flags & (REVOKED | ROTATED | REFRESH));
}

/// The trailer of a checkpoint of `count` entries: `header`, then its own length.
fn trailer(header: &Header, count: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + header.segments.len() * 16 + header.clients.len() * 24);
    out.extend_from_slice(&header.key.0.to_le_bytes());
    out.extend_from_slice(&header.key.1.to_le_bytes());
    out.extend_from_slice(&header.seg.to_le_bytes());
    out.extend_from_slice(&header.off.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&(header.segments.len() as u32).to_le_bytes());
    for m in &header.segments {
        for v in [m.seg, m.size, m.head, m.tail] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out.extend_from_slice(&(header.clients.len() as u32).to_le_bytes());
    for c in &header.clients {
        // Client ids are short (validated at registration); a longer one is cut, which only
        // makes the checkpoint fail to match its tokens' client and so unused.
        let bytes = &c.as_bytes()[..c.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let len = out.len() as u32;
    out.extend_from_slice(&len.to_le_bytes());
    out
}

/// A checkpoint being written: entries go to `checkpoint.tmp` as they come, so memory stays
/// at one slab chunk's worth whatever the index's size; [`Writer::finish`] puts it in place.
/// Dropped unfinished, it leaves a `.tmp` file that is never read (the next one replaces it).
pub(crate) struct Writer {
    file: File,
    dir: PathBuf,
    at: u64,
    count: u64,
    crc: crc::Digest<'static, u32, crc::Table<16>>,
}

impl Writer {
    /// Starts a checkpoint of the log in `dir`.
    pub fn create(dir: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(dir.join(format!("{FILE}.tmp")))?;
        let mut writer = Self {
            file,
            dir: dir.to_owned(),
            at: 0,
            count: 0,
            crc: CRC.digest(),
        };
        writer.append(MAGIC)?;
        Ok(writer)
    }

    fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.file.write_all_at(bytes, self.at)?;
        self.crc.update(bytes);
        self.at += bytes.len() as u64;
        Ok(())
    }

    /// Appends entries made by [`encode_entry`].
    pub fn entries(&mut self, encoded: &[u8]) -> std::io::Result<()> {
        debug_assert_eq!(encoded.len() % ENTRY_BYTES, 0);
        self.count += (encoded.len() / ENTRY_BYTES) as u64;
        self.append(encoded)
    }

    /// Writes the trailer and checksum, syncs, and renames the file into place: from here on
    /// a restart uses it.
    pub fn finish(mut self, header: &Header) -> std::io::Result<()> {
        let count = u32::try_from(self.count).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "too many tokens")
        })?;
        self.append(&trailer(header, count))?;
        let sum = self.crc.clone().finalize();
        self.file.write_all_at(&sum.to_le_bytes(), self.at)?;
        self.file.sync_all()?;
        std::fs::rename(self.dir.join(format!("{FILE}.tmp")), self.dir.join(FILE))?;
        File::open(&self.dir)?.sync_all()
    }
}

/// A cursor over a checkpoint's bytes; every read is bounds-checked.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or("cut short")?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u16(&mut self) -> Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        Ok(u64::from_le_bytes(w))
    }
}

/// The little-endian word at `at` of a slice known to be long enough.
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// The entry encoded in `b` (exactly [`ENTRY_BYTES`] long).
fn decode_entry(b: &[u8]) -> Entry {
    let mut digest = [0u8; 32];
    digest.copy_from_slice(&b[..32]);
    Entry {
        digest,
        family: u64_at(b, 32),
        subject: u64_at(b, 40),
        seg: u32_at(b, 48),
        off: u32_at(b, 52),
        len: u32_at(b, 56),
        expires: u32_at(b, 60),
        client: u32_at(b, 64),
        flags: b[68] & (REVOKED | ROTATED | REFRESH),
    }
}

/// A loaded checkpoint: its header, the index of its tokens, and the bytes of live records
/// in each of its segments (by position in `header.segments`).
pub(crate) struct Loaded {
    pub header: Header,
    pub index: Index,
    pub live: Vec<u64>,
}

/// Entries read per piece: about 1 MiB.
const PIECE_ENTRIES: usize = 16 << 10;

/// Reads the checkpoint at `path` into its header and an index of its tokens that expire
/// after `horizon` (Unix seconds), with room reserved for `extra(&header)` more tokens (those
/// the replay after it will add). `Ok(None)`: there is none; `Err` says why it cannot be used.
pub(crate) fn read(
    path: &Path,
    horizon: u32,
    extra: impl FnOnce(&Header) -> usize,
) -> Result<Option<Loaded>, String> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("open: {e}")),
    };
    let len = file.metadata().map_err(|e| format!("stat: {e}"))?.len();
    decode(len, |buf, at| file.read_exact_at(buf, at), horizon, extra).map(Some)
}

/// Decodes a checkpoint of `len` bytes read through `read_at`: the trailer first, then the
/// entries a piece at a time, straight into the index (no buffer of the whole file: its
/// pages would be faulted in only to be dropped), checking the checksum over all of it at the
/// end. An index built from a file that then fails the checksum is dropped.
fn decode(
    len: u64,
    read_at: impl Fn(&mut [u8], u64) -> std::io::Result<()>,
    horizon: u32,
    extra: impl FnOnce(&Header) -> usize,
) -> Result<Loaded, String> {
    let read = |buf: &mut [u8], at: u64| read_at(buf, at).map_err(|e| format!("read: {e}"));
    let min = (MAGIC.len() + 8) as u64;
    if len < min {
        return Err("not a checkpoint".into());
    }
    let mut magic = [0u8; MAGIC.len()];
    read(&mut magic, 0)?;
    if &magic != MAGIC {
        return Err("not a checkpoint".into());
    }
    let mut tail = [0u8; 8];
    read(&mut tail, len - 8)?;
    let (trailer_len, sum) = (u64::from(u32_at(&tail, 0)), u32_at(&tail, 4));
    let trailer_at = (len - 8)
        .checked_sub(trailer_len)
        .filter(|&at| at >= MAGIC.len() as u64)
        .ok_or("trailer longer than the file")?;
    let mut trailer = vec![0u8; trailer_len as usize];
    read(&mut trailer, trailer_at)?;
    let mut c = Cursor {
        bytes: &trailer,
        pos: 0,
    };
    let key = (c.u64()?, c.u64()?);
    let (seg, off) = (c.u32()?, c.u32()?);
    let count = c.u32()? as usize;
    if trailer_at - MAGIC.len() as u64 != count as u64 * ENTRY_BYTES as u64 {
        return Err("entry count does not match the file's length".into());
    }
    let listed = c.u32()? as usize;
    // Each count is bounded by the bytes left, so a bad count cannot reserve memory.
    let mut segments = Vec::with_capacity(listed.min(trailer.len() / 16));
    for _ in 0..listed {
        segments.push(SegmentMark {
            seg: c.u32()?,
            size: c.u32()?,
            head: c.u32()?,
            tail: c.u32()?,
        });
    }
    let listed = c.u32()? as usize;
    let mut clients = Vec::with_capacity(listed.min(trailer.len() / 2));
    for _ in 0..listed {
        let len = usize::from(c.u16()?);
        let name = std::str::from_utf8(c.take(len)?).map_err(|_| "client id is not UTF-8")?;
        clients.push(Box::<str>::from(name));
    }
    if c.pos != trailer.len() {
        return Err("trailer longer than its fields".into());
    }
    let header = Header {
        key,
        seg,
        off,
        segments,
        clients,
    };
    let mut crc = CRC.digest();
    crc.update(MAGIC);
    let mut index = Index::new();
    // `count` is bounded by the file's length (checked above).
    index.reserve(count.saturating_add(extra(&header)));
    let mut live = vec![0u64; header.segments.len()];
    let mut piece = vec![0u8; PIECE_ENTRIES.min(count) * ENTRY_BYTES];
    let mut at = MAGIC.len() as u64;
    while at < trailer_at {
        let n = (piece.len() as u64).min(trailer_at - at) as usize;
        let piece = &mut piece[..n];
        read(piece, at)?;
        crc.update(piece);
        at += n as u64;
        for r in piece.chunks_exact(ENTRY_BYTES) {
            add(&header, &mut index, &mut live, decode_entry(r), horizon)?;
        }
    }
    crc.update(&trailer);
    crc.update(&tail[..4]);
    if crc.finalize() != sum {
        return Err("checksum mismatch".into());
    }
    Ok(Loaded {
        header,
        index,
        live,
    })
}

/// Indexes `entry` if it expires after `horizon`, checking it against `header` and counting
/// its bytes in `live` (by position in `header.segments`).
fn add(
    header: &Header,
    index: &mut Index,
    live: &mut [u64],
    entry: Entry,
    horizon: u32,
) -> Result<(), String> {
    if entry.client as usize >= header.clients.len() {
        return Err("a token's client is not in the client table".into());
    }
    // A token's record must lie inside a segment the checkpoint saw, past its header: the
    // record is read back by this offset and length.
    let inside = header.segments.iter().position(|m| {
        m.seg == entry.seg
            && entry.off >= HEADER
            && u64::from(entry.off) + u64::from(entry.len) <= u64::from(m.size)
    });
    let Some(mark) = inside.filter(|_| entry.len > 0) else {
        return Err("a token's record is outside its segment".into());
    };
    if entry.expires <= horizon {
        return Ok(());
    }
    live[mark] += u64::from(entry.len);
    if index.insert(entry).is_some() {
        return Err("a token is listed twice".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a checkpoint held in memory.
    fn from_bytes(bytes: &[u8], horizon: u32) -> Result<Loaded, String> {
        let read_at = |buf: &mut [u8], at: u64| {
            let from = at as usize;
            let part = bytes
                .get(from..from + buf.len())
                .ok_or(std::io::ErrorKind::UnexpectedEof)?;
            buf.copy_from_slice(part);
            Ok(())
        };
        decode(bytes.len() as u64, read_at, horizon, |_| 0)
    }

    /// The bytes [`Writer`] writes for `header` and the tokens of `index`, in memory.
    fn encode(header: &Header, index: &Index) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        let slots = index.select(|_| true);
        for &slot in &slots {
            encode_entry(&mut out, index.entry(slot));
        }
        out.extend_from_slice(&trailer(header, slots.len() as u32));
        let sum = CRC.checksum(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    fn sample() -> (Header, Index) {
        let mut index = Index::new();
        for n in 0..50u8 {
            let mut digest = [n; 32];
            digest[0] = n.wrapping_mul(31);
            index.insert(Entry {
                digest,
                family: u64::from(n % 7) + 1,
                subject: u64::from(n % 3),
                seg: 1 + u32::from(n % 2),
                off: 8 + u32::from(n) * 100,
                len: 90,
                expires: if n % 5 == 0 { 10 } else { 1000 },
                client: u32::from(n % 2),
                flags: REFRESH,
            });
        }
        let header = Header {
            key: (7, 9),
            seg: 2,
            off: 5000,
            segments: vec![
                SegmentMark {
                    seg: 1,
                    size: 4900,
                    head: 1,
                    tail: 2,
                },
                SegmentMark {
                    seg: 2,
                    size: 5000,
                    head: 3,
                    tail: 4,
                },
            ],
            clients: vec!["a".into(), "client-b".into()],
        };
        (header, index)
    }

    #[test]
    fn round_trips_and_drops_what_expired() {
        let (header, index) = sample();
        let bytes = encode(&header, &index);
        let Loaded {
            header: back,
            index: loaded,
            live,
        } = from_bytes(&bytes, 100).expect("decodes");
        assert_eq!(back.key, (7, 9));
        assert_eq!((back.seg, back.off), (2, 5000));
        assert_eq!(back.segments, header.segments);
        assert_eq!(back.clients, header.clients);
        // Every fifth token expired at 10, before the horizon of 100.
        assert_eq!(loaded.len(), 40);
        // Segment 1 holds the even tokens: 25, of which 5 expired.
        assert_eq!(live, vec![20 * 90, 20 * 90]);
        for slot in index.select(|e| e.expires > 100) {
            let e = index.entry(slot);
            let found = loaded.find(&e.digest).expect("kept");
            let l = loaded.entry(found);
            assert_eq!(
                (
                    l.family, l.subject, l.seg, l.off, l.len, l.expires, l.client
                ),
                (
                    e.family, e.subject, e.seg, e.off, e.len, e.expires, e.client
                )
            );
            assert_eq!(l.flags & REFRESH, REFRESH);
        }
    }

    #[test]
    fn the_writer_writes_what_decode_reads() {
        let (header, index) = sample();
        let dir = std::env::temp_dir().join(format!(
            "latchkey-checkpoint-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        let mut writer = Writer::create(&dir).expect("create");
        let mut encoded = Vec::new();
        for (n, slot) in index.select(|_| true).into_iter().enumerate() {
            encode_entry(&mut encoded, index.entry(slot));
            // In several pieces, as the log streams them a slab chunk at a time.
            if n % 16 == 15 {
                writer.entries(&encoded).expect("write");
                encoded.clear();
            }
        }
        writer.entries(&encoded).expect("write");
        assert!(!dir.join(FILE).exists(), "in place only once finished");
        writer.finish(&header).expect("finish");
        let bytes = std::fs::read(dir.join(FILE)).expect("read");
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(bytes, encode(&header, &index));
        assert_eq!(from_bytes(&bytes, 100).expect("decodes").index.len(), 40);
    }

    #[test]
    fn refuses_any_damage() {
        let (header, index) = sample();
        let bytes = encode(&header, &index);
        for at in [
            0,
            9,
            30,
            bytes.len() / 2,
            bytes.len() - 30,
            bytes.len() - 6,
            bytes.len() - 1,
        ] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(from_bytes(&bad, 100).is_err(), "flipped byte {at} accepted");
        }
        for cut in [1, 10, ENTRY_BYTES, bytes.len() / 2, bytes.len() - 8] {
            assert!(
                from_bytes(&bytes[..bytes.len() - cut], 100).is_err(),
                "cut {cut} accepted"
            );
        }
        // A segment shorter than a token's record: the record would be read past its end.
        let (mut short, index) = sample();
        short.segments[1].size = 4000;
        assert!(from_bytes(&encode(&short, &index), 100).is_err());
        // A client number past the client table.
        let (mut few, index) = sample();
        few.clients.pop();
        assert!(from_bytes(&encode(&few, &index), 100).is_err());
        assert!(from_bytes(b"", 100).is_err());
    }

    #[test]
    fn is_due_once_the_log_after_it_outgrows_a_new_one() {
        // Small logs: not before the minimum.
        assert!(!due(MIN_LOG - 1, 10));
        assert!(due(MIN_LOG, 10));
        // 10^6 live tokens: a checkpoint of 69 MB, due after that much log.
        let size = 1_000_000 * ENTRY_BYTES as u64;
        assert!(!due(size - 1, 1_000_000));
        assert!(due(size, 1_000_000));
    }

    #[test]
    fn refuses_a_token_listed_twice() {
        let (header, index) = sample();
        let mut bytes = MAGIC.to_vec();
        let slot = index.select(|e| e.expires > 100)[0];
        encode_entry(&mut bytes, index.entry(slot));
        encode_entry(&mut bytes, index.entry(slot));
        bytes.extend_from_slice(&trailer(&header, 2));
        let sum = CRC.checksum(&bytes);
        bytes.extend_from_slice(&sum.to_le_bytes());
        assert!(from_bytes(&bytes, 100).is_err());
    }
}
