//! Rows of `signing_keys`, to and from [`SigningKey`], for every SQL backend (see
//! [`crate::rows`] for the shapes). The set's generation lives in the one-row table
//! `signing_key_generation`, compared and bumped in the transaction that changes the keys.

use crate::error::corrupt;
use crate::rows::{Arg, Columns};
use latchkey_core::clock::UnixTime;
use latchkey_core::jose::{SigningAlg, SigningKey};
use latchkey_core::store::StoreError;

/// The columns of `signing_keys`, in the order [`signing_key`] reads them.
macro_rules! signing_key_columns {
    () => {
        "kid, alg, public_jwk, sealed_private, created_at, activates_at, retires_at, removes_at"
    };
}
pub(crate) use signing_key_columns;

/// Reads the generation (first, so a change made while the keys are read makes the caller's
/// guarded write fail rather than act on a mix).
pub(crate) const SELECT_GENERATION: &str =
    "SELECT generation FROM signing_key_generation WHERE id = 1";

/// Every key, ordered by `kid`.
pub(crate) const SELECT_KEYS: &str = concat!(
    "SELECT ",
    signing_key_columns!(),
    " FROM signing_keys ORDER BY kid"
);

/// Bumps the generation if it is still the one bound; changes one row or none.
pub(crate) const BUMP_GENERATION: &str =
    "UPDATE signing_key_generation SET generation = generation + 1 WHERE id = 1 AND generation = ?";

/// Deletes one key.
pub(crate) const DELETE_KEY: &str = "DELETE FROM signing_keys WHERE kid = ?";

/// The columns an upsert of a key replaces (all but `kid`).
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub(crate) const UPDATED_COLUMNS: [&str; 7] = [
    "alg",
    "public_jwk",
    "sealed_private",
    "created_at",
    "activates_at",
    "retires_at",
    "removes_at",
];

/// The values of [`signing_key_columns`], in order.
pub(crate) fn signing_key_args(key: &SigningKey) -> [Arg<'_>; 8] {
    [
        Arg::from(key.kid.as_str()),
        Arg::from(key.alg.as_str()),
        Arg::from(key.public_jwk.to_string()),
        Arg::from(key.sealed_private.as_slice()),
        Arg::from(key.created_at.0),
        Arg::from(key.activates_at.0),
        Arg::from(key.retires_at.map(|t| t.0)),
        Arg::from(key.removes_at.map(|t| t.0)),
    ]
}

/// A generation as stored (a 64-bit signed integer) and as the store trait reports it.
pub(crate) fn generation(stored: i64) -> u64 {
    u64::try_from(stored).unwrap_or(0)
}

/// A generation as bound: the stored value never goes past `i64::MAX` in practice.
pub(crate) fn generation_arg(generation: u64) -> i64 {
    i64::try_from(generation).unwrap_or(i64::MAX)
}

/// Decodes a row selected with [`signing_key_columns`].
pub(crate) fn signing_key(row: &impl Columns) -> Result<SigningKey, StoreError> {
    let alg = row.text("alg")?;
    let jwk = row.text("public_jwk")?;
    Ok(SigningKey {
        kid: row.text("kid")?,
        alg: SigningAlg::parse(&alg).ok_or_else(|| corrupt("stored key has an unknown alg"))?,
        public_jwk: serde_json::from_str(&jwk)
            .map_err(|_| corrupt("stored public JWK is not JSON"))?,
        sealed_private: row.bytes("sealed_private")?,
        created_at: UnixTime(row.int("created_at")?),
        activates_at: UnixTime(row.int("activates_at")?),
        retires_at: row.opt_int("retires_at")?.map(UnixTime),
        removes_at: row.opt_int("removes_at")?.map(UnixTime),
    })
}
