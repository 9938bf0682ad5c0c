//! Key operations against a [`KeyStore`]: the scheduled maintenance pass, an operator's
//! rotation and retirement. Each reads the keys, decides with the pure functions of
//! [`super::rotation`], generates what must be generated, and writes the change only if the
//! set did not change meanwhile ([`KeyStore::update_keys_if_current`]); a lost race is read
//! and decided again. The CLI, the admin API and the server's background task all come here,
//! so the rules live once.

use super::kek::Kek;
use super::key::SigningKey;
use super::rotation::{self, KeyChange, RotationPolicy};
use super::{JoseError, SigningAlg};
use crate::clock::UnixTime;
use crate::store::{KeyStore, KeyUpdate, StoreError};

/// How often a write that lost a race is decided again before giving up.
const ATTEMPTS: usize = 5;

/// Why a key operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeysError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be generated or opened (a wrong key-encryption key, most often).
    #[error(transparent)]
    Jose(#[from] JoseError),
    /// Other nodes kept changing the keys; try again.
    #[error("the signing keys kept changing under this operation; try again")]
    Contended,
    /// No key with this `kid` is signing or waiting to sign.
    #[error("no signing or next key {0:?}")]
    UnknownKey(String),
}

/// The records `changes` produce from `records`: keys generated for `Create` (sealed under
/// `kek`), records updated for `Activate` and `Retire`, `kid`s for `Delete`.
pub fn materialize(
    changes: &[KeyChange],
    records: &[SigningKey],
    kek: &Kek,
    now: UnixTime,
) -> Result<KeyUpdate, JoseError> {
    let mut update = KeyUpdate::default();
    for change in changes {
        match change {
            KeyChange::Create { alg, activates_at } => {
                update
                    .put
                    .push(SigningKey::generate(*alg, kek, now, *activates_at)?);
            }
            KeyChange::Delete { kid } => update.delete.push(kid.clone()),
            other => {
                // Apply to the record as already changed in this update, if it was.
                let current = records.iter().find_map(|r| {
                    let pending = update.put.iter().find(|p| p.kid == r.kid).unwrap_or(r);
                    other.apply_to(pending)
                });
                if let Some(changed) = current {
                    update.put.retain(|p| p.kid != changed.kid);
                    update.put.push(changed);
                }
            }
        }
    }
    Ok(update)
}

/// Reads the keys, lets `decide` choose changes, writes them if the set did not change
/// meanwhile; repeats on a lost race. Returns the keys as stored afterwards.
async fn change<S: KeyStore>(
    store: &S,
    kek: &Kek,
    now: UnixTime,
    mut decide: impl FnMut(&[SigningKey]) -> Result<Vec<KeyChange>, KeysError>,
) -> Result<Vec<SigningKey>, KeysError> {
    for _ in 0..ATTEMPTS {
        let stored = store.list_keys().await?;
        let changes = decide(&stored.keys)?;
        if changes.is_empty() {
            return Ok(stored.keys);
        }
        let update = materialize(&changes, &stored.keys, kek, now)?;
        if store
            .update_keys_if_current(stored.generation, &update)
            .await?
        {
            for change in &changes {
                tracing::info!(?change, "signing keys changed");
            }
            return Ok(store.list_keys().await?.keys);
        }
    }
    Err(KeysError::Contended)
}

/// One maintenance pass at `now`: applies [`rotation::plan`] (first keys on an empty store,
/// successors ahead of time, retirements, removals) and returns the stored keys. Safe to run
/// on every node at once.
pub async fn maintain<S: KeyStore>(
    store: &S,
    kek: &Kek,
    policy: &RotationPolicy,
    now: UnixTime,
) -> Result<Vec<SigningKey>, KeysError> {
    change(store, kek, now, |keys| {
        Ok(rotation::plan(keys, now, policy))
    })
    .await
}

/// An operator's rotation of `alg` (see [`rotation::rotate`]), followed by a maintenance pass.
pub async fn rotate<S: KeyStore>(
    store: &S,
    kek: &Kek,
    policy: &RotationPolicy,
    alg: SigningAlg,
    immediate: bool,
    now: UnixTime,
) -> Result<Vec<SigningKey>, KeysError> {
    change(store, kek, now, |keys| {
        Ok(rotation::rotate(keys, alg, now, policy, immediate))
    })
    .await?;
    maintain(store, kek, policy, now).await
}

/// An operator's retirement of key `kid` (see [`rotation::retire`]): it stops signing now, and
/// the maintenance pass that follows gives its algorithm a new signing key.
pub async fn retire<S: KeyStore>(
    store: &S,
    kek: &Kek,
    policy: &RotationPolicy,
    kid: &str,
    now: UnixTime,
) -> Result<Vec<SigningKey>, KeysError> {
    change(store, kek, now, |keys| {
        rotation::retire(keys, kid, now, policy)
            .map(|c| vec![c])
            .ok_or_else(|| KeysError::UnknownKey(kid.to_owned()))
    })
    .await?;
    maintain(store, kek, policy, now).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::jose::{Expect, JwsSigner, KeySet, KeyState};
    use crate::store::memory::MemoryStore;
    use std::sync::Arc;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    fn policy() -> RotationPolicy {
        RotationPolicy {
            algs: vec![SigningAlg::Es256],
            period: 10_000,
            publish_ahead: 1_000,
            max_token_lifetime: 600,
        }
    }

    #[test]
    fn a_token_signed_before_rotation_verifies_after_it_until_its_key_is_removed() {
        block_on(async {
            let store = MemoryStore::new();
            let kek = Kek::from_bytes([8; 32]);
            let clock = Arc::new(ManualClock::new(UnixTime(1_000_000)));
            let p = policy();
            let view = |keys: &[SigningKey]| -> Arc<dyn JwsSigner> {
                Arc::new(
                    KeySet::from_records(keys, &kek, SigningAlg::Es256, clock.clone())
                        .expect("keys open"),
                )
            };
            let keys = maintain(&store, &kek, &p, clock.now())
                .await
                .expect("first");
            assert_eq!(keys.len(), 1);
            let first_kid = keys[0].kid.clone();
            let signer = view(&keys);
            let claims = serde_json::json!({"sub": "alice", "exp": clock.now().0 + 600});
            let old_token = signer.sign(None, "JWT", &claims).expect("sign");

            // `publish_ahead` before the period ends, a successor is published; at the end it
            // signs.
            clock.advance(9_000);
            let keys = maintain(&store, &kek, &p, clock.now())
                .await
                .expect("publish");
            assert_eq!(keys.len(), 2);
            clock.advance(1_000);
            let keys = maintain(&store, &kek, &p, clock.now())
                .await
                .expect("rotate");
            assert_eq!(keys.len(), 2);
            let signer = view(&keys);
            let expect = Expect::new("JWT", clock.now()).allow_expired();
            assert!(
                signer
                    .verify::<serde_json::Value>(&old_token, &expect)
                    .is_ok()
            );
            let new_token = signer.sign(None, "JWT", &claims).expect("sign");
            assert_ne!(
                jsonwebtoken::decode_header(&new_token)
                    .ok()
                    .and_then(|h| h.kid),
                Some(first_kid.clone())
            );
            // The old key is published until its last token expired, then deleted.
            let published = |s: &Arc<dyn JwsSigner>| {
                s.jwks()["keys"]
                    .as_array()
                    .map(|k| k.iter().any(|k| k["kid"] == first_kid.as_str()))
            };
            assert_eq!(published(&signer), Some(true));
            clock.advance(599);
            assert_eq!(
                published(&signer),
                Some(true),
                "retiring key still published"
            );
            clock.advance(1);
            assert_eq!(
                published(&signer),
                Some(false),
                "removed after max lifetime"
            );
            let keys = maintain(&store, &kek, &p, clock.now())
                .await
                .expect("remove");
            assert_eq!(keys.len(), 1);
            assert!(keys.iter().all(|k| k.kid != first_kid));
        });
    }

    #[test]
    fn two_nodes_maintaining_at_once_create_one_key() {
        block_on(async {
            let store = MemoryStore::new();
            let kek = Kek::from_bytes([8; 32]);
            let now = UnixTime(5);
            // Node B reads, node A writes first: B's stale write is refused.
            let stale = store.list_keys().await.expect("list");
            maintain(&store, &kek, &policy(), now).await.expect("A");
            let b = materialize(&rotation::plan(&stale.keys, now, &policy()), &[], &kek, now)
                .expect("B plans");
            assert!(
                !store
                    .update_keys_if_current(stale.generation, &b)
                    .await
                    .expect("B writes")
            );
            let keys = maintain(&store, &kek, &policy(), now)
                .await
                .expect("B again");
            assert_eq!(keys.len(), 1);
        });
    }

    #[test]
    fn retiring_by_hand_replaces_the_signer_at_once() {
        block_on(async {
            let store = MemoryStore::new();
            let kek = Kek::from_bytes([8; 32]);
            let now = UnixTime(5);
            let keys = maintain(&store, &kek, &policy(), now).await.expect("first");
            let kid = keys[0].kid.clone();
            let keys = retire(&store, &kek, &policy(), &kid, now)
                .await
                .expect("retire");
            let states: Vec<(bool, KeyState)> =
                keys.iter().map(|k| (k.kid == kid, k.state(now))).collect();
            assert!(states.contains(&(true, KeyState::Retiring)));
            assert!(states.contains(&(false, KeyState::Active)));
            assert!(matches!(
                retire(&store, &kek, &policy(), &kid, now).await,
                Err(KeysError::UnknownKey(_))
            ));
        });
    }
}
