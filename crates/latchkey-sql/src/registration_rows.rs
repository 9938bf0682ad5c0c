//! Rows of `registration_initial_tokens` and `client_registrations` (dynamic client
//! registration, RFC 7591/7592), to and from the core's records, for every SQL backend. The
//! rules (which token is usable, which clients are swept) are the core's
//! ([`latchkey_core::registration`]); these are only the statements.

use crate::rows::{Arg, Columns, digest};
use latchkey_core::clock::UnixTime;
use latchkey_core::registration::store::{ClientRegistration, InitialAccessToken};
use latchkey_core::secret::Digest;
use latchkey_core::store::StoreError;

/// The columns of `registration_initial_tokens`, in the order [`initial_token_args`] binds.
macro_rules! initial_token_columns {
    () => {
        "id, digest, description, created_at, expires_at, uses_left"
    };
}

/// The columns of `client_registrations`, in the order [`registration_args`] binds.
macro_rules! registration_columns {
    () => {
        "client_id, token_digest, created_at, last_used, initial_token"
    };
}
pub(crate) use registration_columns;

/// Inserts an initial access token.
pub(crate) const INSERT_INITIAL: &str = concat!(
    "INSERT INTO registration_initial_tokens (",
    initial_token_columns!(),
    ") VALUES (?, ?, ?, ?, ?, ?)"
);

/// The initial access token with a digest (without the `FOR UPDATE` a server adds).
pub(crate) const SELECT_INITIAL_BY_DIGEST: &str = concat!(
    "SELECT ",
    initial_token_columns!(),
    " FROM registration_initial_tokens WHERE digest = ?"
);

/// Takes one use of a token that counts its uses.
pub(crate) const SPEND_INITIAL: &str = "UPDATE registration_initial_tokens SET uses_left = uses_left - 1 WHERE id = ? AND uses_left > 0";

/// Every initial access token, by id.
pub(crate) const SELECT_INITIALS: &str = concat!(
    "SELECT ",
    initial_token_columns!(),
    " FROM registration_initial_tokens ORDER BY id"
);

/// Deletes one initial access token.
pub(crate) const DELETE_INITIAL: &str = "DELETE FROM registration_initial_tokens WHERE id = ?";

/// One client's registration.
pub(crate) const SELECT_REGISTRATION: &str = concat!(
    "SELECT ",
    registration_columns!(),
    " FROM client_registrations WHERE client_id = ?"
);

/// Replaces a registration only while its token digest is the expected one: token digest,
/// created at, last used, initial token, then the client id and the expected digest.
pub(crate) const SWAP_REGISTRATION: &str = "UPDATE client_registrations SET token_digest = ?, created_at = ?, last_used = ?, initial_token = ? WHERE client_id = ? AND token_digest = ?";

/// Deletes one client's registration.
pub(crate) const DELETE_REGISTRATION: &str = "DELETE FROM client_registrations WHERE client_id = ?";

/// Moves a registration's last use forward (never back): day, client id, day.
pub(crate) const TOUCH_REGISTRATION: &str =
    "UPDATE client_registrations SET last_used = ? WHERE client_id = ? AND last_used < ?";

/// The clients unused before a time, oldest first: before, then the limit.
pub(crate) const SELECT_UNUSED: &str = "SELECT client_id FROM client_registrations WHERE last_used < ? ORDER BY last_used, client_id LIMIT ?";

/// The columns an upsert of a registration replaces (all but `client_id`).
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) const UPDATED_REGISTRATION_COLUMNS: [&str; 4] =
    ["token_digest", "created_at", "last_used", "initial_token"];

/// The values of [`initial_token_columns`], in order.
pub(crate) fn initial_token_args(token: &InitialAccessToken) -> [Arg<'_>; 6] {
    [
        Arg::from(token.id.as_str()),
        Arg::from(&token.digest),
        Arg::from(token.description.as_str()),
        Arg::from(token.created_at.0),
        Arg::from(token.expires_at.map(|t| t.0)),
        Arg::from(
            token
                .uses_left
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        ),
    ]
}

/// Decodes a row selected with [`initial_token_columns`].
pub(crate) fn initial_token(row: &impl Columns) -> Result<InitialAccessToken, StoreError> {
    Ok(InitialAccessToken {
        id: row.text("id")?,
        digest: digest(&row.bytes("digest")?)?,
        description: row.text("description")?,
        created_at: UnixTime(row.int("created_at")?),
        expires_at: row.opt_int("expires_at")?.map(UnixTime),
        uses_left: row
            .opt_int("uses_left")?
            .map(|n| u64::try_from(n).unwrap_or(0)),
    })
}

/// The values of [`registration_columns`], in order.
pub(crate) fn registration_args(r: &ClientRegistration) -> [Arg<'_>; 5] {
    [
        Arg::from(r.client_id.as_str()),
        Arg::from(&r.token_digest),
        Arg::from(r.created_at.0),
        Arg::from(r.last_used.0),
        Arg::from(r.initial_token.as_deref()),
    ]
}

/// The values of [`SWAP_REGISTRATION`], in order.
pub(crate) fn swap_args<'a>(expected: &'a Digest, r: &'a ClientRegistration) -> [Arg<'a>; 6] {
    [
        Arg::from(&r.token_digest),
        Arg::from(r.created_at.0),
        Arg::from(r.last_used.0),
        Arg::from(r.initial_token.as_deref()),
        Arg::from(r.client_id.as_str()),
        Arg::from(expected),
    ]
}

/// Decodes a row selected with [`registration_columns`].
pub(crate) fn registration(row: &impl Columns) -> Result<ClientRegistration, StoreError> {
    Ok(ClientRegistration {
        client_id: row.text("client_id")?,
        token_digest: digest(&row.bytes("token_digest")?)?,
        created_at: UnixTime(row.int("created_at")?),
        last_used: UnixTime(row.int("last_used")?),
        initial_token: row.opt_text("initial_token")?,
    })
}

/// A row limit as bound.
pub(crate) fn limit_arg(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
