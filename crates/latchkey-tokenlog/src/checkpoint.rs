//! A checkpoint of the index: the index as it stood at one position of the log, written at a
//! clean shutdown, so that a restart loads it and replays only the log after that position
//! instead of reading every segment.
//!
//! # File
//! `dir/checkpoint`, written beside as `checkpoint.tmp`, synced, then renamed into place. All
//! little-endian:
//!
//! ```text
//! magic "LKTCKP1\n" | hash key k0 u64 k1 u64 | position seg u32 off u32
//! | segments u32 × (seg u32, size u32, head crc u32, tail crc u32)
//! | clients u32 × (len u16, UTF-8)
//! | entries u32 × (digest 32, family u64, subject u64, seg u32, off u32, len u32,
//!                  expires u32, client u32, flags u8)
//! | crc32c u32 of everything before
//! ```
//!
//! # Trust
//! A checkpoint is used only if it matches the segments on disk: its checksum holds, every
//! segment up to its position is one it lists, and each listed segment still on disk is at
//! least as long as it was and has the same first and last 4 KiB up to that length. A listed
//! segment may be gone (compaction deleted it once its live tokens were copied past the
//! position). After the replay every indexed token must be in a segment on disk. Anything else
//! and the log is replayed whole, as without a checkpoint.

use crate::entry::{Entry, Index};

/// The first bytes of a checkpoint.
const MAGIC: &[u8; 8] = b"LKTCKP1\n";
/// The checkpoint's file name in the log's directory.
pub(crate) const FILE: &str = "checkpoint";
/// How many bytes at each end of a segment its identity check covers.
pub(crate) const PROBE: u64 = 4096;
/// The bytes before the first frame of a segment (its magic).
const HEADER: u32 = 8;
/// Bytes of one entry in the file.
const ENTRY_BYTES: usize = 32 + 8 + 8 + 4 * 5 + 1;
const CRC: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

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
    /// The segment and offset of the log position: every frame before it is in the index.
    pub seg: u32,
    /// See `seg`.
    pub off: u32,
    /// Every segment up to `seg`.
    pub segments: Vec<SegmentMark>,
    /// The interned client ids, by number.
    pub clients: Vec<Box<str>>,
}

/// Encodes `header` and every token of `index` into a checkpoint's bytes.
pub(crate) fn encode(header: &Header, index: &Index) -> Vec<u8> {
    // Shard by shard of the digest tables: loading then fills one small table at a time,
    // which stays in cache, instead of touching every table for every token.
    let slots: Vec<u32> = (0..crate::entry::SHARDS)
        .flat_map(|shard| index.select_shard(shard, |_| true))
        .collect();
    let mut out = Vec::with_capacity(64 + slots.len() * ENTRY_BYTES);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&header.key.0.to_le_bytes());
    out.extend_from_slice(&header.key.1.to_le_bytes());
    out.extend_from_slice(&header.seg.to_le_bytes());
    out.extend_from_slice(&header.off.to_le_bytes());
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
    out.extend_from_slice(&(slots.len() as u32).to_le_bytes());
    for slot in slots {
        let e = index.entry(slot);
        out.extend_from_slice(&e.digest);
        out.extend_from_slice(&e.family.to_le_bytes());
        out.extend_from_slice(&e.subject.to_le_bytes());
        for v in [e.seg, e.off, e.len, e.expires, e.client] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(e.flags & (crate::entry::REVOKED | crate::entry::ROTATED | crate::entry::REFRESH));
    }
    let sum = CRC.checksum(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
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

/// Decodes a checkpoint into its header and an index of its tokens that expire after
/// `horizon` (Unix seconds). `Err` says why it cannot be used.
pub(crate) fn decode(bytes: &[u8], horizon: u32) -> Result<(Header, Index), String> {
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a checkpoint".into());
    }
    let (body, sum) = bytes.split_at(bytes.len() - 4);
    if CRC.checksum(body) != u32::from_le_bytes([sum[0], sum[1], sum[2], sum[3]]) {
        return Err("checksum mismatch".into());
    }
    let mut c = Cursor {
        bytes: body,
        pos: MAGIC.len(),
    };
    let key = (c.u64()?, c.u64()?);
    let (seg, off) = (c.u32()?, c.u32()?);
    let count = c.u32()? as usize;
    // Each count is bounded by the bytes left, so a bad count cannot reserve memory.
    let mut segments = Vec::with_capacity(count.min(body.len() / 16));
    for _ in 0..count {
        segments.push(SegmentMark {
            seg: c.u32()?,
            size: c.u32()?,
            head: c.u32()?,
            tail: c.u32()?,
        });
    }
    let count = c.u32()? as usize;
    let mut clients = Vec::with_capacity(count.min(body.len() / 2));
    for _ in 0..count {
        let len = usize::from(c.u16()?);
        let name = std::str::from_utf8(c.take(len)?).map_err(|_| "client id is not UTF-8")?;
        clients.push(Box::<str>::from(name));
    }
    let count = c.u32()? as usize;
    if body.len() - c.pos != count * ENTRY_BYTES {
        return Err("entry count does not match the file's length".into());
    }
    let mut index = Index::new();
    index.reserve(count);
    for _ in 0..count {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(c.take(32)?);
        let entry = Entry {
            digest,
            family: c.u64()?,
            subject: c.u64()?,
            seg: c.u32()?,
            off: c.u32()?,
            len: c.u32()?,
            expires: c.u32()?,
            client: c.u32()?,
            flags: c.take(1)?[0],
        };
        if entry.client as usize >= clients.len() {
            return Err("a token's client is not in the client table".into());
        }
        // A token's record must lie inside a segment the checkpoint saw, past its header: the
        // record is read back by this offset and length.
        let inside = segments.iter().any(|m| {
            m.seg == entry.seg
                && entry.off >= HEADER
                && u64::from(entry.off) + u64::from(entry.len) <= u64::from(m.size)
        });
        if !inside || entry.len == 0 {
            return Err("a token's record is outside its segment".into());
        }
        if entry.expires > horizon && index.insert(entry).is_some() {
            return Err("a token is listed twice".into());
        }
    }
    Ok((
        Header {
            key,
            seg,
            off,
            segments,
            clients,
        },
        index,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
                flags: crate::entry::REFRESH,
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
        let (back, loaded) = decode(&bytes, 100).expect("decodes");
        assert_eq!(back.key, (7, 9));
        assert_eq!((back.seg, back.off), (2, 5000));
        assert_eq!(back.segments, header.segments);
        assert_eq!(back.clients, header.clients);
        // Every fifth token expired at 10, before the horizon of 100.
        assert_eq!(loaded.len(), 40);
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
            assert_eq!(l.flags & crate::entry::REFRESH, crate::entry::REFRESH);
        }
    }

    #[test]
    fn refuses_any_damage() {
        let (header, index) = sample();
        let bytes = encode(&header, &index);
        for at in [0, 9, 30, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x40;
            assert!(decode(&bad, 100).is_err(), "flipped byte {at} accepted");
        }
        assert!(decode(&bytes[..bytes.len() - 10], 100).is_err());
        // A segment shorter than a token's record: the record would be read past its end.
        let (mut short, index) = sample();
        short.segments[1].size = 4000;
        assert!(decode(&encode(&short, &index), 100).is_err());
        assert!(decode(b"", 100).is_err());
    }
}
