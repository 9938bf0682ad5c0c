//! The compact JSON form of token and code records, as stored in Redis.
//!
//! Only what never changes goes into the JSON: the digest is the key, and the mutable state
//! (revoked, rotated, used) lives in separate hash fields that the Lua scripts flip without
//! decoding anything. Field names are one or two letters because every token pays for them.

use latchkey_core::client::{ClientId, GrantType};
use latchkey_core::clock::UnixTime;
use latchkey_core::pkce::{Challenge, Method};
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Digest;
use latchkey_core::store::{StoreError, StoreErrorKind};
use latchkey_core::token::{Binding, CodeRecord, FamilyId, TokenKind, TokenRecord};
use serde::{Deserialize, Serialize};

/// The immutable part of a [`TokenRecord`].
#[derive(Serialize, Deserialize)]
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
#[derive(Serialize, Deserialize)]
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

/// The JSON of a token record, without its digest and mutable flags.
pub(crate) fn encode_token(record: &TokenRecord) -> Result<String, StoreError> {
    let body = TokenBody {
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
    };
    serde_json::to_string(&body).map_err(|e| StoreError::new(StoreErrorKind::Other, e))
}

/// Rebuilds a token record from its digest, JSON and flags.
pub(crate) fn decode_token(
    digest: Digest,
    json: &str,
    revoked: bool,
    rotated: bool,
) -> Result<TokenRecord, StoreError> {
    let body: TokenBody =
        serde_json::from_str(json).map_err(|e| corrupt(format_args!("token: {e}")))?;
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

/// The JSON of a code record, without its digest.
pub(crate) fn encode_code(code: &CodeRecord) -> Result<String, StoreError> {
    let body = CodeBody {
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
    };
    serde_json::to_string(&body).map_err(|e| StoreError::new(StoreErrorKind::Other, e))
}

/// Rebuilds a code record from its digest and JSON.
pub(crate) fn decode_code(digest: Digest, json: &str) -> Result<CodeRecord, StoreError> {
    let body: CodeBody =
        serde_json::from_str(json).map_err(|e| corrupt(format_args!("code: {e}")))?;
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
    fn records_survive_the_round_trip() {
        let tokens = pair("client-codec", &FamilyId("fam".into()));
        for record in tokens.records() {
            let json = encode_token(record).expect("encode");
            assert_eq!(
                decode_token(record.digest, &json, false, false).expect("decode"),
                *record
            );
        }
        let (_, code) = code("client-codec", 60);
        let json = encode_code(&code).expect("encode");
        assert_eq!(decode_code(code.digest, &json).expect("decode"), code);
    }

    #[test]
    fn unreadable_records_are_corrupt() {
        let err = decode_token(Digest::of(b"x"), "{\"k\":1}", false, false).expect_err("bad");
        assert_eq!(err.kind(), StoreErrorKind::Corrupt);
        let err = decode_code(Digest::of(b"x"), "not json").expect_err("bad");
        assert_eq!(err.kind(), StoreErrorKind::Corrupt);
    }
}
