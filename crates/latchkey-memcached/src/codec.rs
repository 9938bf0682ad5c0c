//! The memcached item of a token or a code: the record's body in the core's one compact form
//! ([`latchkey_core::store::codec`], shared with Redis) plus everything that can make it
//! unusable: its revoked / rotated / used flags and the generations of its family, client and
//! subject at issue. Keeping the flags inside the one item means no eviction can separate a
//! token from its state.

use latchkey_core::secret::Digest;
use latchkey_core::store::StoreError;
use latchkey_core::store::codec::{self, CodeBody, TokenBody};
use latchkey_core::token::{CodeRecord, TokenRecord};
use serde::{Deserialize, Serialize};

/// A token as stored: the record, its state, and the generations it was issued under.
#[derive(Serialize, Deserialize)]
pub(crate) struct TokenEntry {
    /// The record's immutable part.
    pub(crate) t: TokenBody,
    /// Revoked.
    pub(crate) rv: bool,
    /// Rotated (a refresh token already exchanged).
    pub(crate) ro: bool,
    /// Generation of the family, the client and the subject at issue.
    pub(crate) g: Generations,
}

/// A code as stored: the record, whether it was taken, and its owners' generations.
#[derive(Serialize, Deserialize)]
pub(crate) struct CodeEntry {
    /// The record but its digest.
    pub(crate) c: CodeBody,
    /// Already taken.
    pub(crate) used: bool,
    /// Generation of the client and the subject at issue (no family: codes are not revoked
    /// by family).
    pub(crate) g: Generations,
}

/// The generation counters a record was issued under; a record whose generation no longer
/// matches the live counter (or whose counter is gone) is revoked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Generations {
    /// Family generation (tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) f: Option<u64>,
    /// Client generation.
    pub(crate) c: u64,
    /// Subject generation, when the record has a subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) s: Option<u64>,
}

impl TokenEntry {
    /// An entry for `record` in its current state, issued under `g`.
    pub(crate) fn new(record: &TokenRecord, g: Generations) -> Self {
        Self {
            t: TokenBody::of(record),
            rv: record.revoked,
            ro: record.rotated,
            g,
        }
    }

    /// The record with `digest`; `revoked` also when its generations say so.
    pub(crate) fn into_record(
        self,
        digest: Digest,
        revoked: bool,
    ) -> Result<TokenRecord, StoreError> {
        self.t.into_record(digest, self.rv || revoked, self.ro)
    }
}

impl CodeEntry {
    /// An untaken entry for `code`, issued under `g`.
    pub(crate) fn new(code: &CodeRecord, g: Generations) -> Self {
        Self {
            c: CodeBody::of(code),
            used: false,
            g,
        }
    }
}

/// Serializes an entry.
pub(crate) fn encode<T: Serialize>(entry: &T) -> Result<Vec<u8>, StoreError> {
    codec::to_json(entry).map(String::into_bytes)
}

/// Parses an entry read back from memcached; anything unreadable is corrupt.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    codec::from_json(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::store::StoreErrorKind;
    use latchkey_core::token::FamilyId;
    use latchkey_testkit::conformance::{code, pair};

    /// A token item exactly as this crate wrote it before the record form moved to the core.
    const TOKEN_ITEM_V1: &str = r#"{"t":{"k":"refresh_token","c":"client-1","s":"u-1","u":"alice","sc":"read","g":"authorization_code","f":"fam-1","i":1700000000,"e":1700003600,"fi":1699990000},"rv":false,"ro":true,"g":{"f":7,"c":2305843009213693952,"s":0}}"#;
    /// A code item exactly as this crate wrote it before the record form moved to the core.
    const CODE_ITEM_V1: &str = r#"{"c":{"c":"client-1","r":"https://app.example/cb","rs":false,"s":"u-1","u":"alice","sc":"read","f":"fam-3","i":1700000000,"e":1700000060},"used":true,"g":{"c":3,"s":4}}"#;

    #[test]
    fn items_written_before_the_move_still_decode_and_encode_the_same() {
        let entry: TokenEntry = decode(TOKEN_ITEM_V1.as_bytes()).expect("decode");
        assert!(entry.ro && !entry.rv);
        assert_eq!(
            entry.g,
            Generations {
                f: Some(7),
                c: 1 << 61,
                s: Some(0)
            }
        );
        assert_eq!(entry.t.family(), "fam-1");
        assert_eq!(encode(&entry).expect("encode"), TOKEN_ITEM_V1.as_bytes());
        let record = entry.into_record(Digest::of(b"t"), false).expect("record");
        assert!(record.rotated && !record.revoked);
        assert_eq!(record.family_issued_at.0, 1_699_990_000);

        let entry: CodeEntry = decode(CODE_ITEM_V1.as_bytes()).expect("decode");
        assert!(entry.used);
        assert_eq!(entry.c.client(), "client-1");
        assert_eq!(encode(&entry).expect("encode"), CODE_ITEM_V1.as_bytes());
    }

    #[test]
    fn entries_survive_the_round_trip() {
        let g = Generations {
            f: Some(7),
            c: 1 << 61,
            s: Some(0),
        };
        let tokens = pair("client-codec", &FamilyId("fam".into()));
        for record in tokens.records() {
            let encoded = encode(&TokenEntry::new(record, g)).expect("encode");
            let entry: TokenEntry = decode(&encoded).expect("decode");
            assert_eq!(entry.g, g);
            assert_eq!(
                entry.into_record(record.digest, false).expect("record"),
                *record
            );
            let entry: TokenEntry = decode(&encoded).expect("decode");
            assert!(
                entry
                    .into_record(record.digest, true)
                    .expect("record")
                    .revoked
            );
        }
        let (_, code) = code("client-codec", 60);
        let entry: CodeEntry =
            decode(&encode(&CodeEntry::new(&code, g)).expect("encode")).expect("decode");
        assert!(!entry.used);
        assert_eq!(entry.c.into_record(code.digest).expect("record"), code);
    }

    #[test]
    fn unreadable_entries_are_corrupt() {
        let err = decode::<TokenEntry>(b"{\"t\":{}}").err().map(|e| e.kind());
        assert_eq!(err, Some(StoreErrorKind::Corrupt));
        let newer = TOKEN_ITEM_V1.replacen(r#"{"t":{"#, r#"{"t":{"v":9,"#, 1);
        let err = decode::<TokenEntry>(newer.as_bytes())
            .err()
            .map(|e| e.kind());
        assert_eq!(err, Some(StoreErrorKind::Corrupt));
    }
}
