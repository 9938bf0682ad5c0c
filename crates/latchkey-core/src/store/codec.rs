//! The one compact persisted form of token and code records, shared by the stores that keep
//! records as values (Redis, memcached).
//!
//! A record becomes a small JSON object ([`TokenBody`], [`CodeBody`]) holding what never
//! changes about it. The digest is left out (it is the key) and so is the mutable state
//! (revoked, rotated, used): each store keeps that where its atomic step can reach it (Redis
//! in hash fields its Lua scripts flip, memcached beside the body in the one item it
//! compares-and-sets). Field names are one or two letters because every token pays for them.
//!
//! # Versions
//! A body may carry a leading `"v"`: the version of its form. Version 1 is the form written
//! before the field existed, so it is written without `"v"`, byte for byte as before, and a
//! value written by any earlier server decodes. A body whose version is newer than
//! [`VERSION`] is refused as [`StoreErrorKind::Corrupt`] rather than misread.
//!
//! Adding a field does not need a new version: it goes in as an `Option` (or a default) that
//! is skipped when empty, so old values decode with the default and older servers ignore it.
//! Only a change in the meaning of an existing field bumps [`VERSION`].
//!
//! # Fields without a column of their own
//! Fields added to the records since the seam (data attached at authorization,
//! [`TokenRecord::attached`] / [`CodeRecord::attached`], as `"a"`; OpenID Connect's
//! authentication context, [`TokenRecord::auth`] / [`CodeRecord::auth`], as `"o"`; later a
//! DPoP key thumbprint) live in [`TokenExt`] / [`CodeExt`],
//! nested in the body under `"x"`. Redis and memcached store them with no change of their
//! own. The SQL stores, which give every older field a column, keep them in one nullable `ext`
//! text column holding exactly [`encode_token_ext`] / [`encode_code_ext`] (`NULL` when empty)
//! and read it back with [`decode_token_ext`] / [`decode_code_ext`].
//!
//! So a further record field touches the record (`crate::token`), its line in the `*Ext`
//! struct here with the two lines of its `of` / `apply`, and the places that build the record
//! (the grant or endpoint that sets it): no store, column, key or migration. It must be an
//! `Option` or have a default that is skipped when empty, so that rows and values written
//! before it existed read as "not set".
//!
//! # User claims
//! A user's OpenID Connect claims ([`UserClaims`]) are one JSON object in every backend: the
//! SQL stores keep [`encode_user_claims`] in a nullable `claims` column (`NULL`: none) and
//! read it back with [`decode_user_claims`].
//!
//! Decoding never panics: malformed JSON, an unknown kind, grant, PKCE method or version,
//! and a malformed client id or scope are all [`StoreErrorKind::Corrupt`].

use super::{StoreError, StoreErrorKind};
use crate::attached::Attached;
use crate::claims::UserClaims;
use crate::client::{Client, ClientId, ClientMetadata, GrantType};
use crate::clock::UnixTime;
use crate::indicator::AudienceSet;
use crate::oidc::AuthContext;
use crate::pkce::{Challenge, Method};
use crate::scope::ScopeSet;
use crate::secret::Digest;
use crate::token::{Actor, Binding, CodeRecord, Confirmation, FamilyId, TokenKind, TokenRecord};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};

/// The newest version of the form this code writes and reads; also the version of a body
/// written without `"v"`.
pub const VERSION: u8 = 1;

/// The immutable part of a [`TokenRecord`], as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenBody {
    /// The form's version when it is not 1 (see [`VERSION`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "known_version"
    )]
    v: Option<u8>,
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
    /// The fields without a column of their own.
    #[serde(default, skip_serializing_if = "TokenExt::is_empty")]
    x: TokenExt,
}

/// The fields of a [`TokenRecord`] that the SQL stores keep in one `ext` column instead of a
/// column each (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenExt {
    /// [`TokenRecord::attached`].
    #[serde(default, skip_serializing_if = "Attached::is_empty")]
    a: Attached,
    /// [`TokenRecord::auth`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    o: Option<Box<AuthContext>>,
    /// [`TokenRecord::cnf`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<Confirmation>,
    /// [`TokenRecord::audience`].
    #[serde(default, skip_serializing_if = "AudienceSet::is_empty")]
    r: AudienceSet,
    /// [`TokenRecord::actor`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ac: Option<Box<Actor>>,
}

/// The whole of a [`CodeRecord`] but its digest, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeBody {
    /// The form's version when it is not 1 (see [`VERSION`]).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "known_version"
    )]
    v: Option<u8>,
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
    /// The fields without a column of their own.
    #[serde(default, skip_serializing_if = "CodeExt::is_empty")]
    x: CodeExt,
}

/// The fields of a [`CodeRecord`] that the SQL stores keep in one `ext` column instead of a
/// column each (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeExt {
    /// [`CodeRecord::attached`].
    #[serde(default, skip_serializing_if = "Attached::is_empty")]
    a: Attached,
    /// [`CodeRecord::auth`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    o: Option<Box<AuthContext>>,
    /// [`CodeRecord::cnf`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    c: Option<Confirmation>,
    /// [`CodeRecord::audience`].
    #[serde(default, skip_serializing_if = "AudienceSet::is_empty")]
    r: AudienceSet,
}

impl TokenExt {
    /// The extension fields of `record`.
    pub fn of(record: &TokenRecord) -> Self {
        Self {
            a: record.attached.clone(),
            o: record.auth.clone(),
            c: record.cnf.clone(),
            r: record.audience.clone(),
            ac: record.actor.clone(),
        }
    }

    /// Sets the extension fields of `record` from these.
    pub fn apply(self, record: &mut TokenRecord) {
        record.attached = self.a;
        record.auth = self.o;
        record.cnf = self.c;
        record.audience = self.r;
        record.actor = self.ac;
    }

    /// Whether every field holds its default, so nothing needs storing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl CodeExt {
    /// The extension fields of `code`.
    pub fn of(code: &CodeRecord) -> Self {
        Self {
            a: code.attached.clone(),
            o: code.auth.clone(),
            c: code.cnf.clone(),
            r: code.audience.clone(),
        }
    }

    /// Sets the extension fields of `code` from these.
    pub fn apply(self, code: &mut CodeRecord) {
        code.attached = self.a;
        code.auth = self.o;
        code.cnf = self.c;
        code.audience = self.r;
    }

    /// Whether every field holds its default, so nothing needs storing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl TokenBody {
    /// The body of `record`.
    pub fn of(record: &TokenRecord) -> Self {
        Self {
            v: None,
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
            x: TokenExt::of(record),
        }
    }

    /// The record with `digest` and the given state, checking every field.
    pub fn into_record(
        self,
        digest: Digest,
        revoked: bool,
        rotated: bool,
    ) -> Result<TokenRecord, StoreError> {
        let mut record = TokenRecord {
            digest,
            kind: self.kind()?,
            client_id: ClientId::parse(&self.c).map_err(|_| corrupt("malformed client id"))?,
            subject: self.s,
            username: self.u,
            scope: ScopeSet::parse(&self.sc).map_err(|_| corrupt("invalid scope"))?,
            grant_type: GrantType::parse(&self.g).ok_or_else(|| corrupt("unknown grant type"))?,
            family: FamilyId(self.f),
            family_issued_at: UnixTime(self.fi.unwrap_or(self.i)),
            issued_at: UnixTime(self.i),
            expires_at: UnixTime(self.e),
            revoked,
            rotated,
            binding: self.b.map(|(user_agent, ip)| Binding { user_agent, ip }),
            attached: Attached::new(),
            auth: None,
            cnf: None,
            audience: AudienceSet::empty(),
            actor: None,
        };
        self.x.apply(&mut record);
        Ok(record)
    }

    /// The token's kind.
    pub fn kind(&self) -> Result<TokenKind, StoreError> {
        TokenKind::parse(&self.k).ok_or_else(|| corrupt("unknown token kind"))
    }

    /// The family, as stored.
    pub fn family(&self) -> &str {
        &self.f
    }

    /// The client id, as stored.
    pub fn client(&self) -> &str {
        &self.c
    }

    /// The subject, as stored.
    pub fn subject(&self) -> Option<&str> {
        self.s.as_deref()
    }

    /// When the token expires.
    pub fn expires_at(&self) -> UnixTime {
        UnixTime(self.e)
    }
}

impl CodeBody {
    /// The body of `code`.
    pub fn of(code: &CodeRecord) -> Self {
        Self {
            v: None,
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
            x: CodeExt::of(code),
        }
    }

    /// The record with `digest`, checking every field.
    pub fn into_record(self, digest: Digest) -> Result<CodeRecord, StoreError> {
        let challenge = match self.p {
            None => None,
            Some((method, value)) => Some(Challenge {
                method: Method::parse(&method).ok_or_else(|| corrupt("unknown PKCE method"))?,
                value,
            }),
        };
        let mut code = CodeRecord {
            digest,
            client_id: ClientId::parse(&self.c).map_err(|_| corrupt("malformed client id"))?,
            redirect_uri: self.r,
            redirect_uri_sent: self.rs,
            subject: self.s,
            username: self.u,
            scope: ScopeSet::parse(&self.sc).map_err(|_| corrupt("invalid scope"))?,
            challenge,
            nonce: self.n,
            family: FamilyId(self.f),
            issued_at: UnixTime(self.i),
            expires_at: UnixTime(self.e),
            attached: Attached::new(),
            auth: None,
            cnf: None,
            audience: AudienceSet::empty(),
        };
        self.x.apply(&mut code);
        Ok(code)
    }

    /// The client id, as stored.
    pub fn client(&self) -> &str {
        &self.c
    }

    /// The subject, as stored.
    pub fn subject(&self) -> &str {
        &self.s
    }

    /// The family the code's tokens join.
    pub fn family(&self) -> &str {
        &self.f
    }

    /// When the code expires.
    pub fn expires_at(&self) -> UnixTime {
        UnixTime(self.e)
    }
}

/// The JSON of a token record, without its digest and mutable state.
pub fn encode_token(record: &TokenRecord) -> Result<String, StoreError> {
    to_json(&TokenBody::of(record))
}

/// Rebuilds a token record from its digest, [`encode_token`]'s JSON and its state.
pub fn decode_token(
    digest: Digest,
    json: &str,
    revoked: bool,
    rotated: bool,
) -> Result<TokenRecord, StoreError> {
    from_json::<TokenBody>(json.as_bytes())?.into_record(digest, revoked, rotated)
}

/// The JSON of a code record, without its digest and used flag.
pub fn encode_code(code: &CodeRecord) -> Result<String, StoreError> {
    to_json(&CodeBody::of(code))
}

/// Rebuilds a code record from its digest and [`encode_code`]'s JSON.
pub fn decode_code(digest: Digest, json: &str) -> Result<CodeRecord, StoreError> {
    from_json::<CodeBody>(json.as_bytes())?.into_record(digest)
}

/// The `ext` column of a token record: its [`TokenExt`] as JSON, `None` when empty.
pub fn encode_token_ext(record: &TokenRecord) -> Result<Option<String>, StoreError> {
    let ext = TokenExt::of(record);
    if ext.is_empty() {
        return Ok(None);
    }
    to_json(&ext).map(Some)
}

/// Sets the fields of `record` that live in the `ext` column read back as `column`.
pub fn decode_token_ext(record: &mut TokenRecord, column: Option<&str>) -> Result<(), StoreError> {
    if let Some(json) = column {
        from_json::<TokenExt>(json.as_bytes())?.apply(record);
    }
    Ok(())
}

/// The `ext` column of a client: its [`ClientMetadata`] as JSON, `None` when nothing is
/// registered.
pub fn encode_client_ext(client: &Client) -> Result<Option<String>, StoreError> {
    if client.metadata.is_empty() {
        return Ok(None);
    }
    to_json(&client.metadata).map(Some)
}

/// Sets the metadata of `client` from its `ext` column read back as `column`.
pub fn decode_client_ext(client: &mut Client, column: Option<&str>) -> Result<(), StoreError> {
    if let Some(json) = column {
        client.metadata = from_json::<ClientMetadata>(json.as_bytes())?;
    }
    Ok(())
}

/// The `ext` column of a code record: its [`CodeExt`] as JSON, `None` when empty.
pub fn encode_code_ext(code: &CodeRecord) -> Result<Option<String>, StoreError> {
    let ext = CodeExt::of(code);
    if ext.is_empty() {
        return Ok(None);
    }
    to_json(&ext).map(Some)
}

/// Sets the fields of `code` that live in the `ext` column read back as `column`.
pub fn decode_code_ext(code: &mut CodeRecord, column: Option<&str>) -> Result<(), StoreError> {
    if let Some(json) = column {
        from_json::<CodeExt>(json.as_bytes())?.apply(code);
    }
    Ok(())
}

/// The `claims` column of a user: its [`UserClaims`] as JSON, `None` when it has none. Every
/// backend stores this one form.
pub fn encode_user_claims(claims: &UserClaims) -> Result<Option<String>, StoreError> {
    if claims.is_empty() {
        return Ok(None);
    }
    to_json(claims).map(Some)
}

/// The claims of a user whose `claims` column reads back as `column`: none for `NULL`.
/// Members a later version added are ignored; a wrong type is [`StoreErrorKind::Corrupt`].
pub fn decode_user_claims(column: Option<&str>) -> Result<UserClaims, StoreError> {
    column.map_or(Ok(UserClaims::default()), |json| from_json(json.as_bytes()))
}

/// Serializes a stored value (a body, or a store's own entry around one).
pub fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::new(StoreErrorKind::Other, e))
}

/// Parses a stored value; anything unreadable is [`StoreErrorKind::Corrupt`].
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| corrupt(format_args!("record: {e}")))
}

/// Stored data that cannot be read back.
pub fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::new(StoreErrorKind::Corrupt, format_args!("stored {what}"))
}

/// Reads `"v"`, refusing a version this code does not know.
fn known_version<'de, D: Deserializer<'de>>(de: D) -> Result<Option<u8>, D::Error> {
    let version = u8::deserialize(de)?;
    if version == 0 || version > VERSION {
        return Err(serde::de::Error::custom(format_args!(
            "record form version {version}; this server reads up to {VERSION}"
        )));
    }
    Ok(Some(version))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A token as `main` encoded it before the form moved here: every optional field present.
    const REFRESH_V1: &str = r#"{"k":"refresh_token","c":"client-1","s":"u-1","u":"alice","sc":"read write","g":"authorization_code","f":"fam-1","i":1700000000,"e":1700003600,"b":["0f1e","203.0.113.9"],"fi":1699990000}"#;
    /// A `client_credentials` token as `main` encoded it: no optional field.
    const ACCESS_V1: &str = r#"{"k":"access_token","c":"svc","sc":"read","g":"client_credentials","f":"fam-2","i":1700000000,"e":1700000600}"#;
    /// A code as `main` encoded it, with PKCE and a nonce.
    const CODE_V1: &str = r#"{"c":"client-1","r":"https://app.example/cb","rs":true,"s":"u-1","u":"alice","sc":"read","p":["S256","E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGjSMZveGQ"],"n":"n-0S6","f":"fam-3","i":1700000000,"e":1700000060}"#;

    fn digest() -> Digest {
        Digest::of(b"value")
    }

    #[test]
    fn values_written_before_the_version_field_decode_and_encode_the_same() {
        let refresh = decode_token(digest(), REFRESH_V1, true, false).expect("decode");
        assert_eq!(
            refresh,
            TokenRecord {
                digest: digest(),
                kind: TokenKind::Refresh,
                client_id: ClientId::parse("client-1").expect("valid"),
                subject: Some("u-1".into()),
                username: Some("alice".into()),
                scope: ScopeSet::parse("write read").expect("valid"),
                grant_type: GrantType::AuthorizationCode,
                family: FamilyId("fam-1".into()),
                family_issued_at: UnixTime(1_699_990_000),
                issued_at: UnixTime(1_700_000_000),
                expires_at: UnixTime(1_700_003_600),
                revoked: true,
                rotated: false,
                binding: Some(Binding {
                    user_agent: "0f1e".into(),
                    ip: "203.0.113.9".into(),
                }),
                attached: Attached::new(),
                auth: None,
                cnf: None,
                audience: Default::default(),
                actor: None,
            }
        );
        // Written back byte for byte: a server still running the old code reads it.
        assert_eq!(encode_token(&refresh).expect("encode"), REFRESH_V1);

        let access = decode_token(digest(), ACCESS_V1, false, false).expect("decode");
        assert_eq!(access.kind, TokenKind::Access);
        assert_eq!(access.subject, None);
        assert_eq!(access.family_issued_at, access.issued_at);
        assert_eq!(access.binding, None);
        assert_eq!(encode_token(&access).expect("encode"), ACCESS_V1);

        let code = decode_code(digest(), CODE_V1).expect("decode");
        assert_eq!(
            code,
            CodeRecord {
                digest: digest(),
                client_id: ClientId::parse("client-1").expect("valid"),
                redirect_uri: "https://app.example/cb".into(),
                redirect_uri_sent: true,
                subject: "u-1".into(),
                username: "alice".into(),
                scope: ScopeSet::parse("read").expect("valid"),
                challenge: Some(Challenge {
                    method: Method::S256,
                    value: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGjSMZveGQ".into(),
                }),
                nonce: Some("n-0S6".into()),
                family: FamilyId("fam-3".into()),
                issued_at: UnixTime(1_700_000_000),
                expires_at: UnixTime(1_700_000_060),
                attached: Attached::new(),
                auth: None,
                cnf: None,
                audience: Default::default(),
            }
        );
        assert_eq!(encode_code(&code).expect("encode"), CODE_V1);
    }

    #[test]
    fn an_explicit_version_one_reads_like_none() {
        let json = REFRESH_V1.replacen('{', r#"{"v":1,"#, 1);
        assert_eq!(
            decode_token(digest(), &json, false, false).expect("decode"),
            decode_token(digest(), REFRESH_V1, false, false).expect("decode")
        );
    }

    #[test]
    fn unknown_versions_are_corrupt_not_misread() {
        for version in ["0", "2", "255", "256", "\"1\""] {
            let token = ACCESS_V1.replacen('{', &format!(r#"{{"v":{version},"#), 1);
            let err = decode_token(digest(), &token, false, false).expect_err("refused");
            assert_eq!(err.kind(), StoreErrorKind::Corrupt, "token v={version}");
            let code = CODE_V1.replacen('{', &format!(r#"{{"v":{version},"#), 1);
            let err = decode_code(digest(), &code).expect_err("refused");
            assert_eq!(err.kind(), StoreErrorKind::Corrupt, "code v={version}");
        }
    }

    #[test]
    fn fields_unknown_to_this_version_are_ignored() {
        // A later server may add fields (in "x" or beside it) without a new version.
        let json = ACCESS_V1.replacen('{', r#"{"x":{"at":1},"zz":true,"#, 1);
        let record = decode_token(digest(), &json, false, false).expect("decode");
        assert_eq!(encode_token(&record).expect("encode"), ACCESS_V1);
    }

    #[test]
    fn unreadable_records_are_corrupt() {
        let cases: [(&str, bool); 9] = [
            ("not json", true),
            (r#"{"k":1}"#, true),
            (&ACCESS_V1.replace("access_token", "id_token"), true),
            (&ACCESS_V1.replace("client_credentials", "magic"), true),
            (
                &ACCESS_V1.replace(r#""sc":"read""#, r#""sc":"re\"ad""#),
                true,
            ),
            (&ACCESS_V1.replace(r#""c":"svc""#, r#""c":"""#), true),
            (&CODE_V1.replace("S256", "MD5"), false),
            (&CODE_V1.replace(r#""rs":true"#, r#""rs":"yes""#), false),
            ("", false),
        ];
        for (json, token) in cases {
            let err = if token {
                decode_token(digest(), json, false, false).expect_err(json)
            } else {
                decode_code(digest(), json).expect_err(json)
            };
            assert_eq!(err.kind(), StoreErrorKind::Corrupt, "{json}");
        }
    }

    #[test]
    fn the_authentication_context_lives_in_x_and_in_the_ext_column() {
        let auth = AuthContext::login(Some(UnixTime(1_699_999_000)), &["pwd"], None, Some("s"));
        let mut token = decode_token(digest(), REFRESH_V1, false, false).expect("decode");
        token.auth = Some(Box::new(auth.clone()));
        let body = encode_token(&token).expect("encode");
        assert!(
            body.ends_with(r#","x":{"o":{"t":1699999000,"m":["pwd"],"s":"s"}}}"#),
            "{body}"
        );
        assert_eq!(
            decode_token(digest(), &body, false, false).expect("decode"),
            token
        );
        let column = encode_token_ext(&token).expect("encode").expect("not null");
        let mut read = decode_token(digest(), REFRESH_V1, false, false).expect("decode");
        decode_token_ext(&mut read, Some(&column)).expect("column");
        assert_eq!(read, token);

        let mut code = decode_code(digest(), CODE_V1).expect("decode");
        code.auth = Some(Box::new(auth));
        let column = encode_code_ext(&code).expect("encode").expect("not null");
        let mut read = decode_code(digest(), CODE_V1).expect("decode");
        decode_code_ext(&mut read, Some(&column)).expect("column");
        assert_eq!(read, code);
        assert_eq!(
            decode_code(digest(), &encode_code(&code).expect("enc")).expect("dec"),
            code
        );
    }

    #[test]
    fn attached_data_lives_in_x_and_in_the_ext_column() {
        let attached = Attached::from_json(r#"{"tenant":"acme","roles":["a","b"]}"#).expect("ok");
        let mut token = decode_token(digest(), REFRESH_V1, false, true).expect("decode");
        token.attached = attached.clone();
        let body = encode_token(&token).expect("encode");
        assert!(
            body.ends_with(r#","x":{"a":{"roles":["a","b"],"tenant":"acme"}}}"#),
            "{body}"
        );
        assert_eq!(
            decode_token(digest(), &body, false, true).expect("decode"),
            token
        );
        let column = encode_token_ext(&token).expect("encode").expect("not null");
        assert_eq!(column, r#"{"a":{"roles":["a","b"],"tenant":"acme"}}"#);
        let mut read = decode_token(digest(), REFRESH_V1, false, true).expect("decode");
        decode_token_ext(&mut read, Some(&column)).expect("column");
        assert_eq!(read, token);

        let mut code = decode_code(digest(), CODE_V1).expect("decode");
        code.attached = attached;
        let body = encode_code(&code).expect("encode");
        assert_eq!(decode_code(digest(), &body).expect("decode"), code);
        let column = encode_code_ext(&code).expect("encode").expect("not null");
        let mut read = decode_code(digest(), CODE_V1).expect("decode");
        decode_code_ext(&mut read, Some(&column)).expect("column");
        assert_eq!(read, code);

        // Attached data beyond the bounds, or not an object, is corrupt when read back.
        let mut read = decode_code(digest(), CODE_V1).expect("decode");
        for bad in [r#"{"a":[1]}"#, r#"{"a":"x"}"#] {
            let err = decode_code_ext(&mut read, Some(bad)).expect_err(bad);
            assert_eq!(err.kind(), StoreErrorKind::Corrupt);
        }
    }

    #[test]
    fn user_claims_column_is_null_when_empty_and_reads_back() {
        assert_eq!(
            encode_user_claims(&UserClaims::new()).expect("encode"),
            None
        );
        assert_eq!(decode_user_claims(None).expect("null"), UserClaims::new());
        let claims = UserClaims::from_json(r#"{"email":"a@b.example","address":{"country":"NZ"}}"#)
            .expect("valid");
        let column = encode_user_claims(&claims)
            .expect("encode")
            .expect("not null");
        assert_eq!(
            column,
            r#"{"email":"a@b.example","address":{"country":"NZ"}}"#
        );
        assert_eq!(decode_user_claims(Some(&column)).expect("decode"), claims);
        // A member a later server added is ignored; a wrong type is corrupt.
        let later = decode_user_claims(Some(r#"{"email":"a@b.example","x_new":1}"#));
        assert_eq!(later.expect("decode").email.as_deref(), Some("a@b.example"));
        let err = decode_user_claims(Some(r#"{"email_verified":"yes"}"#)).expect_err("bad");
        assert_eq!(err.kind(), StoreErrorKind::Corrupt);
    }

    #[test]
    fn ext_columns_are_null_while_no_field_needs_one() {
        let token = decode_token(digest(), REFRESH_V1, false, false).expect("decode");
        assert_eq!(encode_token_ext(&token).expect("encode"), None);
        let mut read = token.clone();
        decode_token_ext(&mut read, None).expect("null column");
        decode_token_ext(&mut read, Some("{}")).expect("empty column");
        assert_eq!(read, token);
        let err = decode_token_ext(&mut read, Some("[")).expect_err("bad");
        assert_eq!(err.kind(), StoreErrorKind::Corrupt);

        let code = decode_code(digest(), CODE_V1).expect("decode");
        assert_eq!(encode_code_ext(&code).expect("encode"), None);
        let mut read = code.clone();
        decode_code_ext(&mut read, Some("{}")).expect("empty column");
        assert_eq!(read, code);
    }
}
