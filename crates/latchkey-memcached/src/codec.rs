//! The compact JSON form of token and code entries, as stored in memcached.
//!
//! An entry is the record (minus its digest, which is the key) plus everything that can make
//! it unusable: its revoked / rotated / used flags and the generations of its family, client
//! and subject at issue. Keeping the flags inside the one item means no eviction can separate
//! a token from its state. Field names are one or two letters because every token pays for
//! them. (The Redis crate keeps the same record shapes; the stores share no code because each
//! depends on core only.)

use latchkey_core::client::{ClientId, GrantType};
use latchkey_core::clock::UnixTime;
use latchkey_core::pkce::{Challenge, Method};
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Digest;
use latchkey_core::store::{StoreError, StoreErrorKind};
use latchkey_core::token::{Binding, CodeRecord, FamilyId, TokenKind, TokenRecord};
use serde::{Deserialize, Serialize};

/// A token as stored: the record, its state, and the generations it was issued under.
#[derive(Serialize, Deserialize)]
pub(crate) struct TokenEntry {
    t: TokenBody,
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
    c: CodeBody,
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

/// The immutable part of a [`TokenRecord`].
#[derive(Clone, Serialize, Deserialize)]
struct TokenBody {
    k: String,
    c: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    s: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    u: Option<String>,
    sc: String,
    g: String,
    f: String,
    i: i64,
    e: i64,
    /// User-Agent digest and IP address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    b: Option<(String, String)>,
    /// When the family's first token was issued, when that is not `i` (absent in records
    /// written before it existed: then `i`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fi: Option<i64>,
}

/// The whole of a [`CodeRecord`] but its digest.
#[derive(Clone, Serialize, Deserialize)]
struct CodeBody {
    c: String,
    r: String,
    rs: bool,
    s: String,
    u: String,
    sc: String,
    /// PKCE method and challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    p: Option<(String, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    f: String,
    i: i64,
    e: i64,
}

impl TokenEntry {
    /// A fresh (unrevoked, unrotated) entry for `record`, issued under `g`.
    pub(crate) fn new(record: &TokenRecord, g: Generations) -> Self {
        Self {
            t: token_body(record),
            rv: record.revoked,
            ro: record.rotated,
            g,
        }
    }

    /// The record with `digest`; `revoked` when its generations say so.
    pub(crate) fn record(&self, digest: Digest, revoked: bool) -> Result<TokenRecord, StoreError> {
        decode_token(digest, &self.t, self.rv || revoked, self.ro)
    }

    /// The token kind name, as stored.
    pub(crate) fn kind(&self) -> &str {
        &self.t.k
    }

    /// The family, as stored.
    pub(crate) fn family(&self) -> &str {
        &self.t.f
    }

    /// The client id, as stored.
    pub(crate) fn client(&self) -> &str {
        &self.t.c
    }

    /// The subject, as stored.
    pub(crate) fn subject(&self) -> Option<&str> {
        self.t.s.as_deref()
    }

    /// When the token expires (unix seconds).
    pub(crate) fn expires_at(&self) -> UnixTime {
        UnixTime(self.t.e)
    }
}

impl CodeEntry {
    /// An untaken entry for `code`, issued under `g`.
    pub(crate) fn new(code: &CodeRecord, g: Generations) -> Self {
        Self {
            c: code_body(code),
            used: false,
            g,
        }
    }

    /// The code record with `digest`.
    pub(crate) fn record(&self, digest: Digest) -> Result<CodeRecord, StoreError> {
        decode_code(digest, &self.c)
    }

    /// The client id, as stored.
    pub(crate) fn client(&self) -> &str {
        &self.c.c
    }

    /// The subject, as stored.
    pub(crate) fn subject(&self) -> &str {
        &self.c.s
    }

    /// The family the code's tokens join.
    pub(crate) fn family(&self) -> &str {
        &self.c.f
    }

    /// When the code expires (unix seconds).
    pub(crate) fn expires_at(&self) -> UnixTime {
        UnixTime(self.c.e)
    }
}

/// Serializes an entry.
pub(crate) fn encode<T: Serialize>(entry: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(entry).map_err(|e| StoreError::new(StoreErrorKind::Other, e))
}

/// Parses an entry read back from memcached.
pub(crate) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(format_args!("entry: {e}")))
}

fn token_body(record: &TokenRecord) -> TokenBody {
    TokenBody {
        k: record.kind.as_str().to_owned(),
        c: record.client_id.as_str().to_owned(),
        s: record.subject.clone(),
        u: record.username.clone(),
        sc: record.scope.to_string(),
        g: record.grant_type.as_str().to_owned(),
        f: record.family.0.clone(),
        i: record.issued_at.0,
        e: record.expires_at.0,
        b: record
            .binding
            .as_ref()
            .map(|b| (b.user_agent.clone(), b.ip.clone())),
        fi: (record.family_issued_at != record.issued_at).then_some(record.family_issued_at.0),
    }
}

fn decode_token(
    digest: Digest,
    body: &TokenBody,
    revoked: bool,
    rotated: bool,
) -> Result<TokenRecord, StoreError> {
    let body = body.clone();
    Ok(TokenRecord {
        digest,
        kind: TokenKind::parse(&body.k).ok_or_else(|| corrupt("unknown token kind"))?,
        client_id: ClientId::parse(&body.c).map_err(|_| corrupt("malformed client id"))?,
        subject: body.s,
        username: body.u,
        scope: ScopeSet::parse(&body.sc).map_err(|_| corrupt("invalid scope"))?,
        grant_type: GrantType::parse(&body.g).ok_or_else(|| corrupt("unknown grant type"))?,
        family: FamilyId(body.f),
        family_issued_at: UnixTime(body.fi.unwrap_or(body.i)),
        issued_at: UnixTime(body.i),
        expires_at: UnixTime(body.e),
        revoked,
        rotated,
        binding: body.b.map(|(user_agent, ip)| Binding { user_agent, ip }),
    })
}

fn code_body(code: &CodeRecord) -> CodeBody {
    CodeBody {
        c: code.client_id.as_str().to_owned(),
        r: code.redirect_uri.clone(),
        rs: code.redirect_uri_sent,
        s: code.subject.clone(),
        u: code.username.clone(),
        sc: code.scope.to_string(),
        p: code
            .challenge
            .as_ref()
            .map(|c| (c.method.as_str().to_owned(), c.value.clone())),
        n: code.nonce.clone(),
        f: code.family.0.clone(),
        i: code.issued_at.0,
        e: code.expires_at.0,
    }
}

fn decode_code(digest: Digest, body: &CodeBody) -> Result<CodeRecord, StoreError> {
    let body = body.clone();
    let challenge = match body.p {
        None => None,
        Some((method, value)) => Some(Challenge {
            method: Method::parse(&method).ok_or_else(|| corrupt("unknown PKCE method"))?,
            value,
        }),
    };
    Ok(CodeRecord {
        digest,
        client_id: ClientId::parse(&body.c).map_err(|_| corrupt("malformed client id"))?,
        redirect_uri: body.r,
        redirect_uri_sent: body.rs,
        subject: body.s,
        username: body.u,
        scope: ScopeSet::parse(&body.sc).map_err(|_| corrupt("invalid scope"))?,
        challenge,
        nonce: body.n,
        family: FamilyId(body.f),
        issued_at: UnixTime(body.i),
        expires_at: UnixTime(body.e),
    })
}

/// Stored data that cannot be read back.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, format_args!("stored {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_testkit::conformance::{code, pair};

    #[test]
    fn entries_survive_the_round_trip() {
        let g = Generations {
            f: Some(7),
            c: 1 << 61,
            s: Some(0),
        };
        let tokens = pair("client-codec", &FamilyId("fam".into()));
        for record in tokens.records() {
            let entry: TokenEntry =
                decode(&encode(&TokenEntry::new(record, g)).expect("encode")).expect("decode");
            assert_eq!(entry.g, g);
            assert_eq!(entry.record(record.digest, false).expect("record"), *record);
            assert!(entry.record(record.digest, true).expect("record").revoked);
        }
        let (_, code) = code("client-codec", 60);
        let entry: CodeEntry =
            decode(&encode(&CodeEntry::new(&code, g)).expect("encode")).expect("decode");
        assert!(!entry.used);
        assert_eq!(entry.record(code.digest).expect("record"), code);
    }

    #[test]
    fn unreadable_entries_are_corrupt() {
        let err = decode::<TokenEntry>(b"{\"t\":{}}").err().map(|e| e.kind());
        assert_eq!(err, Some(StoreErrorKind::Corrupt));
    }
}
