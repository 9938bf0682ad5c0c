//! Rows of the SQLite schema, to and from the core's types.
//!
//! Parse at the edge: a row is decoded once, here, into a [`Client`], [`User`],
//! [`TokenRecord`], [`CodeRecord`] or consented [`ScopeSet`]; a value that does not decode (a
//! digest of the wrong length, an unknown grant type or PKCE method, a scope that does not
//! parse) is [`StoreErrorKind::Corrupt`], never a panic.
//!
//! [`StoreErrorKind::Corrupt`]: latchkey_core::store::StoreErrorKind::Corrupt

use crate::error::corrupt;
use latchkey_core::client::{Client, ClientId, GrantType};
use latchkey_core::clock::UnixTime;
use latchkey_core::pkce::{Challenge, Method};
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Digest;
use latchkey_core::store::{StoreError, StoreErrorKind};
use latchkey_core::token::{Binding, CodeRecord, FamilyId, TokenKind, TokenRecord};
use latchkey_core::user::User;
use sqlx::sqlite::{Sqlite, SqliteRow};
use sqlx::{Decode, Row, Type};
use std::collections::BTreeSet;

/// The columns of `clients`, in the order [`client`] reads them.
macro_rules! client_columns {
    () => {
        "id, name, secret_digest, redirect_uris, grant_types, scopes, default_scopes, \
         access_token_ttl, refresh_token_ttl, created_at, bind_tokens"
    };
}

/// The columns of `users`.
macro_rules! user_columns {
    () => {
        "id, username, password_hash, created_at"
    };
}

/// The columns of `tokens`, in the order `insert_token` binds them.
macro_rules! token_columns {
    () => {
        "digest, kind, client_id, subject, username, scope, grant_type, family, issued_at, \
         expires_at, revoked, rotated, bound_user_agent, bound_ip"
    };
}

/// The columns of `codes` that make a [`CodeRecord`] (not `used`), in the order `insert_code`
/// binds them.
macro_rules! code_columns {
    () => {
        "digest, client_id, redirect_uri, redirect_uri_sent, subject, username, scope, \
         challenge_method, challenge, nonce, family, issued_at, expires_at"
    };
}

pub(crate) use {client_columns, code_columns, token_columns, user_columns};

/// A client encoded for the `clients` table, built before the write is queued so that the
/// writer only runs SQL.
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
}

impl ClientRow {
    /// Encodes `client`; fails only for a lifetime beyond what SQLite's 64-bit integer holds.
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
        })
    }
}

/// Decodes a row selected with [`client_columns`].
pub(crate) fn client(row: &SqliteRow) -> Result<Client, StoreError> {
    let id: String = get(row, "id")?;
    let secret_digest: Option<Vec<u8>> = get(row, "secret_digest")?;
    let redirect_uris: String = get(row, "redirect_uris")?;
    let grant_types: String = get(row, "grant_types")?;
    let scopes: Option<String> = get(row, "scopes")?;
    let default_scopes: Option<String> = get(row, "default_scopes")?;
    let access_token_ttl: Option<i64> = get(row, "access_token_ttl")?;
    let refresh_token_ttl: Option<i64> = get(row, "refresh_token_ttl")?;
    Ok(Client {
        id: ClientId::parse(&id).map_err(|_| corrupt("stored client id is malformed"))?,
        name: get(row, "name")?,
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
        created_at: UnixTime(get(row, "created_at")?),
        bind_tokens: get(row, "bind_tokens")?,
    })
}

/// Decodes a row selected with [`user_columns`].
pub(crate) fn user(row: &SqliteRow) -> Result<User, StoreError> {
    Ok(User {
        id: get(row, "id")?,
        username: get(row, "username")?,
        password_hash: get(row, "password_hash")?,
        created_at: UnixTime(get(row, "created_at")?),
    })
}

/// Decodes a row selected with [`token_columns`].
pub(crate) fn token(row: &SqliteRow) -> Result<TokenRecord, StoreError> {
    let digest_bytes: Vec<u8> = get(row, "digest")?;
    let client_id: String = get(row, "client_id")?;
    let scope_text: String = get(row, "scope")?;
    let grant: String = get(row, "grant_type")?;
    Ok(TokenRecord {
        digest: digest(&digest_bytes)?,
        kind: token_kind(&get::<String>(row, "kind")?)?,
        client_id: ClientId::parse(&client_id)
            .map_err(|_| corrupt("stored token client id is malformed"))?,
        subject: get(row, "subject")?,
        username: get(row, "username")?,
        scope: scope(&scope_text)?,
        grant_type: grant_type(&grant)?,
        family: FamilyId(get(row, "family")?),
        issued_at: UnixTime(get(row, "issued_at")?),
        expires_at: UnixTime(get(row, "expires_at")?),
        revoked: get(row, "revoked")?,
        rotated: get(row, "rotated")?,
        binding: match (
            get::<Option<String>>(row, "bound_user_agent")?,
            get::<Option<String>>(row, "bound_ip")?,
        ) {
            (Some(user_agent), Some(ip)) => Some(Binding { user_agent, ip }),
            (None, None) => None,
            _ => return Err(corrupt("stored token binding is half set")),
        },
    })
}

/// Decodes a row selected with [`code_columns`].
pub(crate) fn code(row: &SqliteRow) -> Result<CodeRecord, StoreError> {
    let digest_bytes: Vec<u8> = get(row, "digest")?;
    let client_id: String = get(row, "client_id")?;
    let scope_text: String = get(row, "scope")?;
    let method: Option<String> = get(row, "challenge_method")?;
    let challenge: Option<String> = get(row, "challenge")?;
    Ok(CodeRecord {
        digest: digest(&digest_bytes)?,
        client_id: ClientId::parse(&client_id)
            .map_err(|_| corrupt("stored code client id is malformed"))?,
        redirect_uri: get(row, "redirect_uri")?,
        redirect_uri_sent: get(row, "redirect_uri_sent")?,
        subject: get(row, "subject")?,
        username: get(row, "username")?,
        scope: scope(&scope_text)?,
        challenge: pkce_challenge(method, challenge)?,
        nonce: get(row, "nonce")?,
        family: FamilyId(get(row, "family")?),
        issued_at: UnixTime(get(row, "issued_at")?),
        expires_at: UnixTime(get(row, "expires_at")?),
    })
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

/// Reads one column; a missing column or a value of the wrong type is corruption.
pub(crate) fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, StoreError>
where
    T: Decode<'r, Sqlite> + Type<Sqlite>,
{
    row.try_get(column)
        .map_err(|err| corrupt(format_args!("column {column}: {err}")))
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
