//! The signing keys as operators see and change them: `latchkey keys list|rotate|retire` and
//! `GET /admin/keys`, `POST /admin/keys/rotate`, `POST /admin/keys/{kid}/retire` both come
//! through here. Every change goes through the core's [`latchkey_core::jose::manage`], which
//! writes only when no other node changed the keys meanwhile; running servers load the new
//! set within a minute (their maintenance task), and a new key is published before it signs.

use super::{Admin, AdminError};
use latchkey_core::clock::{Clock, SystemClock, UnixTime};
use latchkey_core::jose::manage::{self, KeysError};
use latchkey_core::jose::{SigningAlg, SigningKey};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// One signing key, without its (sealed) private half.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct KeyView {
    /// The key id: the RFC 7638 thumbprint of its public key.
    pub kid: String,
    /// `ES256`, `RS256` or `EdDSA`.
    pub alg: String,
    /// `next` (published, not signing yet), `active` (signing), `retiring` (published so
    /// what it signed verifies, no longer signing) or `retired` (gone from the JWKS).
    pub state: String,
    /// When it was made and published (Unix seconds).
    pub created_at: i64,
    /// When it starts (or started) signing.
    pub activates_at: i64,
    /// When it stops signing, once a successor is scheduled.
    pub retires_at: Option<i64>,
    /// When it leaves the JWKS.
    pub removes_at: Option<i64>,
}

impl KeyView {
    fn of(key: &SigningKey, now: UnixTime) -> Self {
        Self {
            kid: key.kid.clone(),
            alg: key.alg.as_str().to_owned(),
            state: key.state(now).as_str().to_owned(),
            created_at: key.created_at.0,
            activates_at: key.activates_at.0,
            retires_at: key.retires_at.map(|t| t.0),
            removes_at: key.removes_at.map(|t| t.0),
        }
    }
}

/// A rotation to start.
#[derive(Clone, Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeys {
    /// The algorithm whose key rotates (default `ES256`).
    #[serde(default)]
    pub alg: Option<String>,
    /// Sign with the new key at once instead of after the publish-ahead time: for a key
    /// that must stop signing now (compromised). Relying parties that cached the JWKS may
    /// fail to verify its first tokens until they fetch it again.
    #[serde(default)]
    pub immediate: bool,
}

/// The algorithm named `alg`, or the default ES256.
pub fn signing_alg(alg: Option<&str>) -> Result<SigningAlg, AdminError> {
    match alg {
        None => Ok(SigningAlg::Es256),
        Some(name) => SigningAlg::parse(name).ok_or_else(|| {
            AdminError::Invalid(format!(
                "unknown signing algorithm {name:?}: ES256, RS256 or EdDSA"
            ))
        }),
    }
}

fn keys_error(err: KeysError) -> AdminError {
    match err {
        KeysError::Store(err) => AdminError::Store(err),
        KeysError::UnknownKey(kid) => {
            AdminError::NotFound(format!("no signing or next key {kid:?}"))
        }
        KeysError::Contended => AdminError::Conflict(err.to_string()),
        // A key that cannot be opened is a key-encryption key that does not match the store.
        other => AdminError::Invalid(other.to_string()),
    }
}

impl Admin {
    /// What key management needs beyond the store: the key-encryption key and the rotation
    /// policy of the settings.
    fn key_tools(
        &self,
    ) -> Result<
        (
            &latchkey_core::jose::Kek,
            &latchkey_core::jose::rotation::RotationPolicy,
        ),
        AdminError,
    > {
        match (&self.kek, &self.key_policy) {
            (Some(kek), Some(policy)) => Ok((kek, policy)),
            _ => Err(AdminError::Invalid(
                "signing keys need the server's key-encryption key and key settings".into(),
            )),
        }
    }

    fn views(keys: &[SigningKey], now: UnixTime) -> Vec<KeyView> {
        keys.iter().map(|k| KeyView::of(k, now)).collect()
    }

    /// The signing keys, oldest first, with their state now; creates the first keys on an
    /// empty store (as a starting server would).
    pub async fn list_keys(&self) -> Result<Vec<KeyView>, AdminError> {
        let (kek, policy) = self.key_tools()?;
        let now = SystemClock.now();
        let keys = manage::maintain(&self.store, kek, policy, now)
            .await
            .map_err(keys_error)?;
        Ok(Self::views(&keys, now))
    }

    /// Starts a rotation of `alg`'s key: a successor is published now and signs after the
    /// publish-ahead time (at once with `immediate`); the old key keeps being published until
    /// what it signed has expired.
    pub async fn rotate_keys(
        &self,
        alg: SigningAlg,
        immediate: bool,
    ) -> Result<Vec<KeyView>, AdminError> {
        let (kek, policy) = self.key_tools()?;
        if !policy.algs.contains(&alg) {
            return Err(AdminError::Invalid(format!(
                "{alg} is not among keys.algorithms"
            )));
        }
        let now = SystemClock.now();
        let keys = manage::rotate(&self.store, kek, policy, alg, immediate, now)
            .await
            .map_err(keys_error)?;
        self.audit("keys_rotated", alg.as_str());
        Ok(Self::views(&keys, now))
    }

    /// Retires key `kid`: it stops signing now (a successor takes over at once) and stays
    /// published until what it signed has expired.
    pub async fn retire_key(&self, kid: &str) -> Result<Vec<KeyView>, AdminError> {
        let (kek, policy) = self.key_tools()?;
        let now = SystemClock.now();
        let keys = manage::retire(&self.store, kek, policy, kid, now)
            .await
            .map_err(keys_error)?;
        self.audit("key_retired", kid);
        Ok(Self::views(&keys, now))
    }
}
