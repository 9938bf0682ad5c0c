//! The operations the log records, in a small binary form.
//!
//! A frame (one store call, applied all or nothing) holds one or more operations. A `PUT`
//! carries in fixed places what the index needs (digest, expiry, state flags, client, family,
//! subject), so a restart rebuilds the index without parsing JSON, followed by the record's
//! body in the shared compact form ([`latchkey_core::store::codec::encode_token`]), which is
//! parsed only when a token is looked up.
//!
//! ```text
//! PUT            1 | digest[32] | expires u32 | flags u8 | client s16 | family s16 | subject (0 | 1 s16) | body u32-len
//! REVOKE         2 | digest[32]
//! ROTATE         3 | digest[32]
//! REVOKE_FAMILY  4 | family s16
//! DELETE_CLIENT  5 | client s16
//! DELETE_SUBJECT 6 | subject s16
//! REVOKE_GRANT   7 | client s16 | subject s16
//! ```
//! (`s16`: a little-endian `u16` length, then that many bytes of UTF-8.)

use latchkey_core::store::{StoreError, StoreErrorKind};

/// Where a `PUT`'s flags byte sits, so compaction can rewrite a token's current state in place.
pub(crate) const PUT_FLAGS_AT: usize = 1 + 32 + 4;

const PUT: u8 = 1;
const REVOKE: u8 = 2;
const ROTATE: u8 = 3;
const REVOKE_FAMILY: u8 = 4;
const DELETE_CLIENT: u8 = 5;
const DELETE_SUBJECT: u8 = 6;
const REVOKE_GRANT: u8 = 7;

/// One operation, borrowed from a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op<'a> {
    /// A token issued (or moved by compaction, with its current flags).
    Put {
        digest: [u8; 32],
        expires: u32,
        flags: u8,
        client: &'a str,
        family: &'a str,
        subject: Option<&'a str>,
        body: &'a [u8],
    },
    /// One token revoked.
    Revoke([u8; 32]),
    /// A refresh token exchanged.
    Rotate([u8; 32]),
    /// Every token of a family revoked.
    RevokeFamily(&'a str),
    /// Every token of a client deleted.
    DeleteClient(&'a str),
    /// Every token of a subject deleted.
    DeleteSubject(&'a str),
    /// Every token of a client for a subject revoked.
    RevokeGrant(&'a str, &'a str),
}

fn corrupt(what: &str) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, format!("token log: {what}"))
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), StoreError> {
    let len = u16::try_from(s.len())
        .map_err(|_| StoreError::new(StoreErrorKind::Other, "token log: a field is over 64 KiB"))?;
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

impl Op<'_> {
    /// Appends the operation's binary form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), StoreError> {
        match *self {
            Op::Put {
                digest,
                expires,
                flags,
                client,
                family,
                subject,
                body,
            } => {
                out.push(PUT);
                out.extend_from_slice(&digest);
                out.extend_from_slice(&expires.to_le_bytes());
                out.push(flags);
                put_str(out, client)?;
                put_str(out, family)?;
                match subject {
                    None => out.push(0),
                    Some(s) => {
                        out.push(1);
                        put_str(out, s)?;
                    }
                }
                let len = u32::try_from(body.len())
                    .map_err(|_| StoreError::new(StoreErrorKind::Other, "token too large"))?;
                out.extend_from_slice(&len.to_le_bytes());
                out.extend_from_slice(body);
            }
            Op::Revoke(d) => {
                out.push(REVOKE);
                out.extend_from_slice(&d);
            }
            Op::Rotate(d) => {
                out.push(ROTATE);
                out.extend_from_slice(&d);
            }
            Op::RevokeFamily(f) => {
                out.push(REVOKE_FAMILY);
                put_str(out, f)?;
            }
            Op::DeleteClient(c) => {
                out.push(DELETE_CLIENT);
                put_str(out, c)?;
            }
            Op::DeleteSubject(s) => {
                out.push(DELETE_SUBJECT);
                put_str(out, s)?;
            }
            Op::RevokeGrant(c, s) => {
                out.push(REVOKE_GRANT);
                put_str(out, c)?;
                put_str(out, s)?;
            }
        }
        Ok(())
    }
}

/// Reads operations one by one from a frame's payload.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// How far the reader has read.
    pub fn position(&self) -> usize {
        self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= self.buf.len())
            .ok_or_else(|| corrupt("truncated operation"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, StoreError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, StoreError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn digest(&mut self) -> Result<[u8; 32], StoreError> {
        let mut d = [0u8; 32];
        d.copy_from_slice(self.take(32)?);
        Ok(d)
    }

    fn str(&mut self) -> Result<&'a str, StoreError> {
        let len = self.u16()? as usize;
        std::str::from_utf8(self.take(len)?).map_err(|_| corrupt("field is not UTF-8"))
    }

    /// The next operation and where it starts in the payload; `None` at the end.
    pub fn next_op(&mut self) -> Result<Option<(usize, Op<'a>)>, StoreError> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let start = self.pos;
        let op = match self.u8()? {
            PUT => {
                let digest = self.digest()?;
                let expires = self.u32()?;
                let flags = self.u8()?;
                let client = self.str()?;
                let family = self.str()?;
                let subject = match self.u8()? {
                    0 => None,
                    1 => Some(self.str()?),
                    _ => return Err(corrupt("bad subject marker")),
                };
                let len = self.u32()? as usize;
                let body = self.take(len)?;
                Op::Put {
                    digest,
                    expires,
                    flags,
                    client,
                    family,
                    subject,
                    body,
                }
            }
            REVOKE => Op::Revoke(self.digest()?),
            ROTATE => Op::Rotate(self.digest()?),
            REVOKE_FAMILY => Op::RevokeFamily(self.str()?),
            DELETE_CLIENT => Op::DeleteClient(self.str()?),
            DELETE_SUBJECT => Op::DeleteSubject(self.str()?),
            REVOKE_GRANT => Op::RevokeGrant(self.str()?, self.str()?),
            _ => return Err(corrupt("unknown operation")),
        };
        Ok(Some((start, op)))
    }
}

/// The family and body of the one `PUT` in `bytes` (a token's stored operation).
pub(crate) fn decode_put(bytes: &[u8]) -> Result<(&str, &[u8]), StoreError> {
    match Reader::new(bytes).next_op()? {
        Some((_, Op::Put { family, body, .. })) => Ok((family, body)),
        _ => Err(corrupt("index points at something other than a token")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_round_trips() {
        let ops = [
            Op::Put {
                digest: [7; 32],
                expires: 12,
                flags: 5,
                client: "c",
                family: "f",
                subject: Some("sübject"),
                body: b"{}",
            },
            Op::Put {
                digest: [8; 32],
                expires: 1,
                flags: 0,
                client: "c",
                family: "f",
                subject: None,
                body: b"",
            },
            Op::Revoke([1; 32]),
            Op::Rotate([2; 32]),
            Op::RevokeFamily("fam"),
            Op::DeleteClient("cl"),
            Op::DeleteSubject("su"),
            Op::RevokeGrant("cl", "su"),
        ];
        let mut buf = Vec::new();
        for op in &ops {
            op.encode(&mut buf).expect("encode");
        }
        assert_eq!(buf[PUT_FLAGS_AT], 5);
        let mut reader = Reader::new(&buf);
        for op in &ops {
            assert_eq!(reader.next_op().expect("decode").map(|(_, o)| o), Some(*op));
        }
        assert_eq!(reader.next_op().expect("end"), None);
        // Every truncation is an error, never a panic.
        for cut in 1..buf.len() {
            let mut reader = Reader::new(&buf[..cut]);
            let mut failed = false;
            for _ in 0..ops.len() {
                match reader.next_op() {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        failed = true;
                        break;
                    }
                }
            }
            assert!(failed || reader.pos == cut, "cut at {cut}");
        }
    }
}
