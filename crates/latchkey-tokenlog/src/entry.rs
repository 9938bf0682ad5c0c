//! The token log's entry in the compact index ([`latchkey_core::store::compact`]): where a
//! token's record is in the log, with what the store decides on without reading it (expiry,
//! state, client, family, subject). The record itself (scope, subject, attached data…) stays
//! in the log file and is read back by offset when a token is looked up.

use latchkey_core::store::compact::{self, CompactEntry};

pub(crate) use latchkey_core::store::compact::SHARDS;

/// Every live token of the log, by digest and by family.
pub(crate) type Index = compact::Index<Entry>;

/// Flag: the token is revoked.
pub(crate) const REVOKED: u8 = 1;
/// Flag: the refresh token was exchanged.
pub(crate) const ROTATED: u8 = 2;
/// Flag: the token is a refresh token (else an access token).
pub(crate) const REFRESH: u8 = 4;

/// One live token, in 72 bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Entry {
    /// SHA-256 of the token value.
    pub digest: [u8; 32],
    /// Keyed hash of the family id.
    pub family: u64,
    /// Keyed hash of the subject; 0 when the token has none.
    pub subject: u64,
    /// The segment holding the token's `PUT` operation.
    pub seg: u32,
    /// Where in the segment the operation starts.
    pub off: u32,
    /// The operation's length.
    pub len: u32,
    /// When the token expires, in Unix seconds.
    pub expires: u32,
    /// The interned client id.
    pub client: u32,
    /// [`REVOKED`], [`ROTATED`], [`REFRESH`].
    pub flags: u8,
}

impl Entry {
    /// Whether the token may still be used at `now` (Unix seconds).
    pub fn active(&self, now: u32) -> bool {
        self.flags & (REVOKED | ROTATED) == 0 && self.expires > now
    }
}

impl CompactEntry for Entry {
    fn digest(&self) -> &[u8; 32] {
        &self.digest
    }

    /// The family's keyed hash, uniform in every bit.
    fn family_key(&self) -> u64 {
        self.family
    }
}

/// Sets state flags on an indexed token.
pub(crate) trait SetFlags {
    /// Sets the flags in `flags` on the token in `slot`.
    fn set_flags(&mut self, slot: u32, flags: u8);
}

impl SetFlags for Index {
    fn set_flags(&mut self, slot: u32, flags: u8) {
        self.update(slot, |e| e.flags |= flags);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_stays_72_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 72);
    }

    #[test]
    fn set_flags_adds_to_the_flags_there() {
        let mut index = Index::new();
        index.insert(Entry {
            digest: [3; 32],
            flags: REFRESH,
            expires: 10,
            ..Entry::default()
        });
        let slot = index.find(&[3; 32]).expect("indexed");
        assert!(index.entry(slot).active(9));
        index.set_flags(slot, REVOKED);
        assert_eq!(index.entry(slot).flags, REFRESH | REVOKED);
        assert!(!index.entry(slot).active(9));
    }
}
