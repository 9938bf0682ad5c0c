//! Rows of the Latchkey schema, to and from the core's types, for every SQL backend.
//!
//! Parse at the edge: a row is decoded once, here, into a [`Client`], [`User`],
//! [`TokenRecord`], [`CodeRecord`] or consented [`ScopeSet`]; a value that does not decode (a
//! digest of the wrong length, an unknown grant type or PKCE method, a scope that does not
//! parse) is [`StoreErrorKind::Corrupt`], never a panic.
//!
//! The three dialects name their columns alike and store the same shapes (text, bytes, 64-bit
//! integers, booleans), so one decoder serves them all: each backend's row type only says how
//! to read those shapes, through [`Columns`]. The way back is one encoder per record: the
//! values of its columns as [`Arg`]s, in the order of its column list, which each backend
//! binds to its placeholders.
//!
//! Token and code fields that came after the seam have no column of their own: they share
//! one nullable `ext` text column per table, which holds the core codec's extension object
//! ([`codec::encode_token_ext`], read back with [`codec::decode_token_ext`]; the same for
//! codes). A new record field goes into that object in the core (`TokenExt` / `CodeExt`) and
//! needs nothing here: no column, no migration, no change to these encoders. A row written
//! before the column existed reads it as `NULL`, the record's defaults.
//!
//! [`StoreErrorKind::Corrupt`]: latchkey_core::store::StoreErrorKind::Corrupt

use crate::error::corrupt;
use latchkey_core::attached::Attached;
use latchkey_core::client::{AuthMethod, Client, ClientId, ClientMetadata, GrantType};
use latchkey_core::clock::UnixTime;
use latchkey_core::pkce::{Challenge, Method};
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Digest;
use latchkey_core::session::SessionRecord;
use latchkey_core::store::oauth1::{AccessToken, Consumer, RequestToken};
use latchkey_core::store::{ConsentRecord, StoreError, StoreErrorKind, TokenOwner, codec};
use latchkey_core::token::{Binding, CodeRecord, FamilyId, TokenKind, TokenRecord};
use latchkey_core::user::User;
use std::borrow::Cow;
use std::collections::BTreeSet;

/// Reads the column shapes the schema uses out of one backend's row type; a missing column or
/// a value of the wrong type is corruption.
pub trait Columns {
    /// A `NOT NULL` text column.
    fn text(&self, column: &str) -> Result<String, StoreError>;
    /// A nullable text column.
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    /// A `NOT NULL` byte column.
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;
    /// A nullable byte column.
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// A `NOT NULL` 64-bit integer column.
    fn int(&self, column: &str) -> Result<i64, StoreError>;
    /// A nullable 64-bit integer column.
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    /// A `NOT NULL` boolean column.
    fn flag(&self, column: &str) -> Result<bool, StoreError>;
}

/// A value bound to a placeholder: the shapes the schema stores, each nullable.
#[derive(Clone, Debug)]
pub enum Arg<'a> {
    /// Text.
    Text(Option<Cow<'a, str>>),
    /// A 64-bit integer.
    Int(Option<i64>),
    /// A boolean.
    Flag(bool),
    /// Bytes (digests).
    Bytes(Option<&'a [u8]>),
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(value: &'a str) -> Self {
        Self::Text(Some(Cow::Borrowed(value)))
    }
}
impl<'a> From<&'a String> for Arg<'a> {
    fn from(value: &'a String) -> Self {
        Self::Text(Some(Cow::Borrowed(value)))
    }
}
impl From<String> for Arg<'_> {
    fn from(value: String) -> Self {
        Self::Text(Some(Cow::Owned(value)))
    }
}
impl<'a> From<Option<&'a str>> for Arg<'a> {
    fn from(value: Option<&'a str>) -> Self {
        Self::Text(value.map(Cow::Borrowed))
    }
}
impl From<Option<String>> for Arg<'_> {
    fn from(value: Option<String>) -> Self {
        Self::Text(value.map(Cow::Owned))
    }
}
impl From<i64> for Arg<'_> {
    fn from(value: i64) -> Self {
        Self::Int(Some(value))
    }
}
impl From<Option<i64>> for Arg<'_> {
    fn from(value: Option<i64>) -> Self {
        Self::Int(value)
    }
}
impl From<bool> for Arg<'_> {
    fn from(value: bool) -> Self {
        Self::Flag(value)
    }
}
impl<'a> From<&'a [u8]> for Arg<'a> {
    fn from(value: &'a [u8]) -> Self {
        Self::Bytes(Some(value))
    }
}
impl<'a> From<Option<&'a [u8]>> for Arg<'a> {
    fn from(value: Option<&'a [u8]>) -> Self {
        Self::Bytes(value)
    }
}
impl<'a> From<&'a Digest> for Arg<'a> {
    fn from(value: &'a Digest) -> Self {
        Self::Bytes(Some(value.as_bytes().as_slice()))
    }
}
impl<'a> From<Option<&'a Digest>> for Arg<'a> {
    fn from(value: Option<&'a Digest>) -> Self {
        Self::Bytes(value.map(|d| d.as_bytes().as_slice()))
    }
}

/// How the SQLite store binds an [`Arg`]: as rusqlite bound the same values (a boolean is an
/// integer 0 or 1).
#[cfg(feature = "sqlite")]
impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value, ValueRef};
        Ok(match self {
            Self::Text(Some(text)) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Self::Bytes(Some(bytes)) => ToSqlOutput::Borrowed(ValueRef::Blob(bytes)),
            Self::Int(Some(value)) => ToSqlOutput::Owned(Value::Integer(*value)),
            Self::Flag(value) => ToSqlOutput::Owned(Value::Integer(i64::from(*value))),
            Self::Text(None) | Self::Bytes(None) | Self::Int(None) => {
                ToSqlOutput::Owned(Value::Null)
            }
        })
    }
}

/// `[Arg::from(a), Arg::from(b), …]`: the arguments of one statement, in placeholder order.
macro_rules! args {
    ($($value:expr),* $(,)?) => {
        [$($crate::rows::Arg::from($value)),*]
    };
}
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) use args;

/// Implements [`Columns`] for a sqlx row type whose database decodes every shape.
#[cfg(any(feature = "postgres", feature = "mysql"))]
macro_rules! columns_for {
    ($row:ty) => {
        impl $crate::rows::Columns for $row {
            fn text(&self, column: &str) -> Result<String, StoreError> {
                $crate::rows::read(self, column)
            }
            fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
                $crate::rows::read(self, column)
            }
            fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
                $crate::rows::read(self, column)
            }
            fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
                $crate::rows::read(self, column)
            }
            fn int(&self, column: &str) -> Result<i64, StoreError> {
                $crate::rows::read(self, column)
            }
            fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
                $crate::rows::read(self, column)
            }
            fn flag(&self, column: &str) -> Result<bool, StoreError> {
                $crate::rows::read(self, column)
            }
        }
    };
}

#[cfg(feature = "postgres")]
columns_for!(sqlx::postgres::PgRow);
#[cfg(feature = "mysql")]
columns_for!(sqlx::mysql::MySqlRow);

/// Reads one column of a sqlx backend's row.
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) fn read<'r, R, T>(row: &'r R, column: &str) -> Result<T, StoreError>
where
    R: sqlx::Row,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    row.try_get(column)
        .map_err(|err| corrupt(format_args!("column {column}: {err}")))
}

/// The SQLite store's rows (rusqlite). The tables are `STRICT`, so a column holds the type
/// the schema gives it; anything else is reported as corrupt, never a panic.
#[cfg(feature = "sqlite")]
impl Columns for rusqlite::Row<'_> {
    fn text(&self, column: &str) -> Result<String, StoreError> {
        get(self, column)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError> {
        get(self, column)
    }
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError> {
        self.opt_bytes(column)?
            .ok_or_else(|| corrupt(format_args!("column {column}: NULL where bytes belong")))
    }
    fn opt_bytes(&self, column: &str) -> Result<Option<Vec<u8>>, StoreError> {
        use rusqlite::types::ValueRef;
        match self
            .get_ref(column)
            .map_err(|err| sqlite_column(column, err))?
        {
            ValueRef::Null => Ok(None),
            // sqlx read text as bytes too; keep accepting what it accepted.
            ValueRef::Blob(bytes) | ValueRef::Text(bytes) => Ok(Some(bytes.to_vec())),
            other => Err(corrupt(format_args!(
                "column {column}: {} where bytes belong",
                other.data_type()
            ))),
        }
    }
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        get(self, column)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError> {
        get(self, column)
    }
    fn flag(&self, column: &str) -> Result<bool, StoreError> {
        get(self, column)
    }
}

/// Reads one column of a SQLite row.
#[cfg(feature = "sqlite")]
fn get<T: rusqlite::types::FromSql>(
    row: &rusqlite::Row<'_>,
    column: &str,
) -> Result<T, StoreError> {
    row.get(column).map_err(|err| sqlite_column(column, err))
}

/// A column of a SQLite row that cannot be read: corrupt, whatever rusqlite's reason.
#[cfg(feature = "sqlite")]
fn sqlite_column(column: &str, err: rusqlite::Error) -> StoreError {
    corrupt(format_args!("column {column}: {err}"))
}

/// The columns of `clients`, in the order [`client`] reads them.
macro_rules! client_columns {
    () => {
        "id, name, secret_digest, redirect_uris, grant_types, scopes, default_scopes, \
         access_token_ttl, refresh_token_ttl, created_at, bind_tokens, introspect, \
         token_endpoint_auth_method, ext"
    };
}

/// The columns of `users`, in the order [`user_args`] binds them.
macro_rules! user_columns {
    () => {
        "id, username, password_hash, created_at, claims"
    };
}

/// The columns of `tokens`, in the order `insert_token` binds them.
macro_rules! token_columns {
    () => {
        "digest, kind, client_id, subject, username, scope, grant_type, family, issued_at, \
         expires_at, revoked, rotated, bound_user_agent, bound_ip, family_issued_at, ext"
    };
}

/// The columns of `codes` that make a [`CodeRecord`] (not `used`), in the order `insert_code`
/// binds them.
macro_rules! code_columns {
    () => {
        "digest, client_id, redirect_uri, redirect_uri_sent, subject, username, scope, \
         challenge_method, challenge, nonce, family, issued_at, expires_at, ext"
    };
}

/// The columns [`oauth1_consumer`] reads, in the order `put_consumer` binds them.
macro_rules! oauth1_consumer_columns {
    () => {
        "client_id, rsa_public_key, created_at, secret_salt"
    };
}
/// The columns [`oauth1_request_token`] reads, in SELECT order.
macro_rules! oauth1_request_columns {
    () => {
        "digest, client_id, callback, realms, subject, username, verifier, expires_at"
    };
}
/// The columns [`oauth1_access_token`] reads, in SELECT order.
macro_rules! oauth1_access_columns {
    () => {
        "digest, client_id, subject, username, realms, issued_at, expires_at, revoked"
    };
}

/// The columns of `sessions`, in the order [`session`] reads them.
macro_rules! session_columns {
    () => {
        "digest, subject, username, auth_time, expires_at, sid, clients"
    };
}

pub(crate) use session_columns;
pub(crate) use {
    client_columns, code_columns, oauth1_access_columns, oauth1_consumer_columns,
    oauth1_request_columns, token_columns, user_columns,
};

/// What every backend deletes with a client, besides its row, in the transaction that deletes
/// it: everything issued to it.
pub(crate) const CLIENT_DEPENDENTS: [&str; 7] = [
    "DELETE FROM tokens WHERE client_id = ?",
    "DELETE FROM codes WHERE client_id = ?",
    "DELETE FROM consents WHERE client_id = ?",
    "DELETE FROM oauth1_request_tokens WHERE client_id = ?",
    "DELETE FROM oauth1_access_tokens WHERE client_id = ?",
    "DELETE FROM oauth1_consumers WHERE client_id = ?",
    "DELETE FROM client_registrations WHERE client_id = ?",
];

/// What every backend deletes with a user, besides its row: everything issued for them, and
/// their sessions.
pub(crate) const USER_DEPENDENTS: [&str; 6] = [
    "DELETE FROM tokens WHERE subject = ?",
    "DELETE FROM codes WHERE subject = ?",
    "DELETE FROM consents WHERE subject = ?",
    "DELETE FROM oauth1_request_tokens WHERE subject = ?",
    "DELETE FROM oauth1_access_tokens WHERE subject = ?",
    "DELETE FROM sessions WHERE subject = ?",
];

/// What every backend deletes with an OAuth 1.0a consumer's registration, and when its secret
/// changes: the tokens obtained under it.
pub(crate) const CONSUMER_TOKENS: [&str; 2] = [
    "DELETE FROM oauth1_request_tokens WHERE client_id = ?",
    "DELETE FROM oauth1_access_tokens WHERE client_id = ?",
];

/// The statements of `TokenStore::delete_tokens_of` (tokens first, whose count is reported,
/// then codes) and the value they are bound to.
pub(crate) fn owner_deletes(owner: &TokenOwner) -> ([&'static str; 2], &str) {
    match owner {
        TokenOwner::Client(id) => (
            [
                "DELETE FROM tokens WHERE client_id = ?",
                "DELETE FROM codes WHERE client_id = ?",
            ],
            id,
        ),
        TokenOwner::Subject(id) => (
            [
                "DELETE FROM tokens WHERE subject = ?",
                "DELETE FROM codes WHERE subject = ?",
            ],
            id,
        ),
    }
}

/// A client encoded for the `clients` table (built before a SQLite write is queued, so that
/// the writer only runs SQL).
#[derive(Debug)]
pub(crate) struct ClientRow {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) secret_digest: Option<Vec<u8>>,
    pub(crate) redirect_uris: String,
    pub(crate) grant_types: String,
    pub(crate) scopes: Option<String>,
    pub(crate) default_scopes: Option<String>,
    pub(crate) access_token_ttl: Option<i64>,
    pub(crate) refresh_token_ttl: Option<i64>,
    pub(crate) created_at: i64,
    pub(crate) bind_tokens: bool,
    pub(crate) introspect: bool,
    pub(crate) token_endpoint_auth_method: Option<&'static str>,
    pub(crate) ext: Option<String>,
}

impl ClientRow {
    /// Encodes `client`; fails only for a lifetime beyond what a signed 64-bit integer holds.
    pub(crate) fn encode(client: &Client) -> Result<Self, StoreError> {
        let ttl = |ttl: Option<u64>| {
            ttl.map(i64::try_from).transpose().map_err(|_| {
                StoreError::new(StoreErrorKind::Other, "client token lifetime out of range")
            })
        };
        let redirect_uris = serde_json::to_string(&client.redirect_uris)
            .map_err(|err| StoreError::new(StoreErrorKind::Other, err))?;
        let grant_types: Vec<&str> = client.grant_types.iter().map(|g| g.as_str()).collect();
        Ok(Self {
            id: client.id.as_str().to_owned(),
            name: client.name.clone(),
            secret_digest: client.secret_digest.map(|d| d.as_bytes().to_vec()),
            redirect_uris,
            grant_types: grant_types.join(" "),
            scopes: client.scopes.as_ref().map(ToString::to_string),
            default_scopes: client.default_scopes.as_ref().map(ToString::to_string),
            access_token_ttl: ttl(client.access_token_ttl)?,
            refresh_token_ttl: ttl(client.refresh_token_ttl)?,
            created_at: client.created_at.0,
            bind_tokens: client.bind_tokens,
            introspect: client.introspect,
            token_endpoint_auth_method: client.token_endpoint_auth_method.map(AuthMethod::as_str),
            ext: codec::encode_client_ext(client)?,
        })
    }
}

impl ClientRow {
    /// The values of [`client_columns`], in order.
    pub(crate) fn args(&self) -> [Arg<'_>; 14] {
        args![
            &self.id,
            &self.name,
            self.secret_digest.as_deref(),
            &self.redirect_uris,
            &self.grant_types,
            self.scopes.as_deref(),
            self.default_scopes.as_deref(),
            self.access_token_ttl,
            self.refresh_token_ttl,
            self.created_at,
            self.bind_tokens,
            self.introspect,
            self.token_endpoint_auth_method,
            self.ext.as_deref(),
        ]
    }
}

/// The values of [`user_columns`], in order.
pub(crate) fn user_args(user: &User) -> Result<[Arg<'_>; 5], StoreError> {
    Ok(args![
        &user.id,
        &user.username,
        &user.password_hash,
        user.created_at.0,
        codec::encode_user_claims(&user.claims)?,
    ])
}

/// The values of [`token_columns`], in order.
pub(crate) fn token_args(record: &TokenRecord) -> Result<[Arg<'_>; 16], StoreError> {
    Ok(args![
        &record.digest,
        record.kind.as_str(),
        record.client_id.as_str(),
        record.subject.as_deref(),
        record.username.as_deref(),
        record.scope.to_string(),
        record.grant_type.as_str(),
        &record.family.0,
        record.issued_at.0,
        record.expires_at.0,
        record.revoked,
        record.rotated,
        record.binding.as_ref().map(|b| b.user_agent.as_str()),
        record.binding.as_ref().map(|b| b.ip.as_str()),
        record.family_issued_at.0,
        codec::encode_token_ext(record)?,
    ])
}

/// The values of [`code_columns`], in order.
pub(crate) fn code_args(code: &CodeRecord) -> Result<[Arg<'_>; 14], StoreError> {
    Ok(args![
        &code.digest,
        code.client_id.as_str(),
        &code.redirect_uri,
        code.redirect_uri_sent,
        &code.subject,
        &code.username,
        code.scope.to_string(),
        code.challenge.as_ref().map(|c| c.method.as_str()),
        code.challenge.as_ref().map(|c| c.value.as_str()),
        code.nonce.as_deref(),
        &code.family.0,
        code.issued_at.0,
        code.expires_at.0,
        codec::encode_code_ext(code)?,
    ])
}

/// The values of [`session_columns`], in order.
pub(crate) fn session_args(s: &SessionRecord) -> [Arg<'_>; 7] {
    args![
        &s.digest,
        &s.subject,
        &s.username,
        s.auth_time.0,
        s.expires_at.0,
        s.sid.as_str(),
        session_clients_text(&s.clients)
    ]
}

/// The `clients` column of a session: its client ids as a JSON array, `NULL` when none.
pub(crate) fn session_clients_text(clients: &[String]) -> Option<String> {
    if clients.is_empty() {
        return None;
    }
    serde_json::to_string(clients).ok()
}

/// Decodes the `clients` column of a session (`NULL`: none yet, as in rows written before
/// the column existed).
pub(crate) fn session_clients(text: Option<String>) -> Result<Vec<String>, StoreError> {
    match text {
        None => Ok(Vec::new()),
        Some(text) => {
            serde_json::from_str(&text).map_err(|_| corrupt("stored session clients are malformed"))
        }
    }
}

/// The values of [`oauth1_consumer_columns`], in order.
pub(crate) fn oauth1_consumer_args(c: &Consumer) -> [Arg<'_>; 4] {
    args![
        &c.client_id,
        c.rsa_public_key.as_deref(),
        c.created_at.0,
        c.secret_salt.as_deref()
    ]
}

/// The values of [`oauth1_request_columns`], in order.
pub(crate) fn oauth1_request_args(t: &RequestToken) -> [Arg<'_>; 8] {
    args![
        &t.digest,
        &t.client_id,
        &t.callback,
        t.realms.to_string(),
        t.subject.as_deref(),
        t.username.as_deref(),
        t.verifier.as_ref(),
        t.expires_at.0,
    ]
}

/// The values of [`oauth1_access_columns`], in order.
pub(crate) fn oauth1_access_args(t: &AccessToken) -> [Arg<'_>; 8] {
    args![
        &t.digest,
        &t.client_id,
        &t.subject,
        t.username.as_deref(),
        t.realms.to_string(),
        t.issued_at.0,
        t.expires_at.map(|e| e.0),
        t.revoked,
    ]
}

/// Decodes a row selected with [`client_columns`].
pub(crate) fn client(row: &impl Columns) -> Result<Client, StoreError> {
    let id = row.text("id")?;
    let secret_digest = row.opt_bytes("secret_digest")?;
    let redirect_uris = row.text("redirect_uris")?;
    let grant_types = row.text("grant_types")?;
    let scopes = row.opt_text("scopes")?;
    let default_scopes = row.opt_text("default_scopes")?;
    let access_token_ttl = row.opt_int("access_token_ttl")?;
    let refresh_token_ttl = row.opt_int("refresh_token_ttl")?;
    let ext = row.opt_text("ext")?;
    let mut client = Client {
        id: ClientId::parse(&id).map_err(|_| corrupt("stored client id is malformed"))?,
        name: row.text("name")?,
        secret_digest: secret_digest.as_deref().map(digest).transpose()?,
        redirect_uris: serde_json::from_str(&redirect_uris)
            .map_err(|err| corrupt(format_args!("stored redirect URIs: {err}")))?,
        grant_types: grant_types
            .split(' ')
            .filter(|name| !name.is_empty())
            .map(grant_type)
            .collect::<Result<BTreeSet<_>, _>>()?,
        scopes: scopes.as_deref().map(scope).transpose()?,
        default_scopes: default_scopes.as_deref().map(scope).transpose()?,
        access_token_ttl: access_token_ttl.map(seconds).transpose()?,
        refresh_token_ttl: refresh_token_ttl.map(seconds).transpose()?,
        created_at: UnixTime(row.int("created_at")?),
        bind_tokens: row.flag("bind_tokens")?,
        introspect: row.flag("introspect")?,
        token_endpoint_auth_method: row
            .opt_text("token_endpoint_auth_method")?
            .map(|name| {
                AuthMethod::parse(&name)
                    .ok_or_else(|| corrupt(format_args!("unknown auth method {name:?}")))
            })
            .transpose()?,
        metadata: ClientMetadata::default(),
    };
    codec::decode_client_ext(&mut client, ext.as_deref())?;
    Ok(client)
}

/// Decodes a row of `consents` selected as `client_id, scope, granted_at`.
pub(crate) fn consent(row: &impl Columns) -> Result<ConsentRecord, StoreError> {
    Ok(ConsentRecord {
        client_id: row.text("client_id")?,
        scope: scope(&row.text("scope")?)?,
        granted_at: UnixTime(row.int("granted_at")?),
    })
}

/// Decodes a row selected with [`user_columns`].
pub(crate) fn user(row: &impl Columns) -> Result<User, StoreError> {
    Ok(User {
        id: row.text("id")?,
        username: row.text("username")?,
        password_hash: row.text("password_hash")?,
        created_at: UnixTime(row.int("created_at")?),
        claims: codec::decode_user_claims(row.opt_text("claims")?.as_deref())?,
    })
}

/// Decodes a row selected with [`session_columns`].
pub(crate) fn session(row: &impl Columns) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        digest: digest(&row.bytes("digest")?)?,
        subject: row.text("subject")?,
        username: row.text("username")?,
        auth_time: UnixTime(row.int("auth_time")?),
        expires_at: UnixTime(row.int("expires_at")?),
        sid: row.text("sid")?,
        clients: session_clients(row.opt_text("clients")?)?,
    })
}

/// Decodes a row selected with [`token_columns`].
pub(crate) fn token(row: &impl Columns) -> Result<TokenRecord, StoreError> {
    let digest_bytes = row.bytes("digest")?;
    let client_id = row.text("client_id")?;
    let scope_text = row.text("scope")?;
    let grant = row.text("grant_type")?;
    let mut record = TokenRecord {
        digest: digest(&digest_bytes)?,
        kind: token_kind(&row.text("kind")?)?,
        client_id: ClientId::parse(&client_id)
            .map_err(|_| corrupt("stored token client id is malformed"))?,
        subject: row.opt_text("subject")?,
        username: row.opt_text("username")?,
        scope: scope(&scope_text)?,
        grant_type: grant_type(&grant)?,
        family: FamilyId(row.text("family")?),
        // Rows written before the column existed count their family from their own issue.
        family_issued_at: UnixTime(match row.opt_int("family_issued_at")? {
            Some(at) => at,
            None => row.int("issued_at")?,
        }),
        issued_at: UnixTime(row.int("issued_at")?),
        expires_at: UnixTime(row.int("expires_at")?),
        revoked: row.flag("revoked")?,
        rotated: row.flag("rotated")?,
        binding: match (row.opt_text("bound_user_agent")?, row.opt_text("bound_ip")?) {
            (Some(user_agent), Some(ip)) => Some(Binding { user_agent, ip }),
            (None, None) => None,
            _ => return Err(corrupt("stored token binding is half set")),
        },
        attached: Attached::new(),
        auth: None,
        cnf: None,
        audience: Default::default(),
        actor: None,
    };
    codec::decode_token_ext(&mut record, row.opt_text("ext")?.as_deref())?;
    Ok(record)
}

/// Decodes a row selected with [`code_columns`].
pub(crate) fn code(row: &impl Columns) -> Result<CodeRecord, StoreError> {
    let digest_bytes = row.bytes("digest")?;
    let client_id = row.text("client_id")?;
    let scope_text = row.text("scope")?;
    let method = row.opt_text("challenge_method")?;
    let challenge = row.opt_text("challenge")?;
    let mut code = CodeRecord {
        digest: digest(&digest_bytes)?,
        client_id: ClientId::parse(&client_id)
            .map_err(|_| corrupt("stored code client id is malformed"))?,
        redirect_uri: row.text("redirect_uri")?,
        redirect_uri_sent: row.flag("redirect_uri_sent")?,
        subject: row.text("subject")?,
        username: row.text("username")?,
        scope: scope(&scope_text)?,
        challenge: pkce_challenge(method, challenge)?,
        nonce: row.opt_text("nonce")?,
        family: FamilyId(row.text("family")?),
        issued_at: UnixTime(row.int("issued_at")?),
        expires_at: UnixTime(row.int("expires_at")?),
        attached: Attached::new(),
        auth: None,
        cnf: None,
        audience: Default::default(),
    };
    codec::decode_code_ext(&mut code, row.opt_text("ext")?.as_deref())?;
    Ok(code)
}

/// A stored PKCE challenge: method and value are both present or both absent.
fn pkce_challenge(
    method: Option<String>,
    value: Option<String>,
) -> Result<Option<Challenge>, StoreError> {
    match (method, value) {
        (None, None) => Ok(None),
        (Some(method), Some(value)) => Ok(Some(Challenge {
            method: Method::parse(&method)
                .ok_or_else(|| corrupt(format_args!("unknown PKCE method {method:?}")))?,
            value,
        })),
        _ => Err(corrupt("stored PKCE challenge lacks its method or value")),
    }
}

/// A stored digest: exactly 32 bytes.
pub(crate) fn digest(bytes: &[u8]) -> Result<Digest, StoreError> {
    Digest::from_slice(bytes).ok_or_else(|| corrupt("stored digest is not 32 bytes long"))
}

/// A stored token kind.
pub(crate) fn token_kind(name: &str) -> Result<TokenKind, StoreError> {
    TokenKind::parse(name).ok_or_else(|| corrupt(format_args!("unknown token kind {name:?}")))
}

fn grant_type(name: &str) -> Result<GrantType, StoreError> {
    GrantType::parse(name).ok_or_else(|| corrupt(format_args!("unknown grant type {name:?}")))
}

/// A stored space-separated scope.
pub(crate) fn scope(text: &str) -> Result<ScopeSet, StoreError> {
    ScopeSet::parse(text).map_err(|_| corrupt(format_args!("stored scope {text:?} is invalid")))
}

fn seconds(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt("stored token lifetime is negative"))
}

/// An OAuth 1.0a consumer from a row of [`oauth1_consumer_columns`].
pub(crate) fn oauth1_consumer(row: &impl Columns) -> Result<Consumer, StoreError> {
    Ok(Consumer {
        client_id: row.text("client_id")?,
        rsa_public_key: row.opt_text("rsa_public_key")?,
        created_at: UnixTime(row.int("created_at")?),
        secret_salt: row.opt_text("secret_salt")?,
    })
}

/// An OAuth 1.0a request token from a row of [`oauth1_request_columns`].
pub(crate) fn oauth1_request_token(row: &impl Columns) -> Result<RequestToken, StoreError> {
    Ok(RequestToken {
        digest: digest(&row.bytes("digest")?)?,
        client_id: row.text("client_id")?,
        callback: row.text("callback")?,
        realms: scope(&row.text("realms")?)?,
        subject: row.opt_text("subject")?,
        username: row.opt_text("username")?,
        verifier: row.opt_bytes("verifier")?.map(|b| digest(&b)).transpose()?,
        expires_at: UnixTime(row.int("expires_at")?),
    })
}

/// An OAuth 1.0a access token from a row of [`oauth1_access_columns`].
pub(crate) fn oauth1_access_token(row: &impl Columns) -> Result<AccessToken, StoreError> {
    Ok(AccessToken {
        digest: digest(&row.bytes("digest")?)?,
        client_id: row.text("client_id")?,
        subject: row.text("subject")?,
        username: row.opt_text("username")?,
        realms: scope(&row.text("realms")?)?,
        issued_at: UnixTime(row.int("issued_at")?),
        expires_at: row.opt_int("expires_at")?.map(UnixTime),
        revoked: row.flag("revoked")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_challenge_needs_both_halves_and_a_known_method() {
        assert_eq!(pkce_challenge(None, None).expect("none"), None);
        let both = pkce_challenge(Some("S256".into()), Some("abc".into())).expect("both");
        assert_eq!(both.map(|c| c.method), Some(Method::S256));
        for (method, value) in [
            (Some("S256".to_owned()), None),
            (None, Some("abc".to_owned())),
            (Some("s256".to_owned()), Some("abc".to_owned())),
        ] {
            assert_eq!(
                pkce_challenge(method, value).expect_err("corrupt").kind(),
                StoreErrorKind::Corrupt
            );
        }
    }
}
