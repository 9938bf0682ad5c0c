//! The signing-key checks of the store conformance suite ([`crate::store_conformance!`] runs
//! them with the rest): keys read back byte for byte, every change is guarded by the set's
//! generation, and nodes rotating at once create one key.

use latchkey_core::clock::{Clock, ManualClock, UnixTime};
use latchkey_core::jose::manage::maintain;
use latchkey_core::jose::rotation::RotationPolicy;
use latchkey_core::jose::{Expect, Kek, KeySet, SigningAlg, SigningKey};
use latchkey_core::store::{KeyUpdate, Store};
use std::sync::Arc;

/// The time the key checks run at.
const T0: UnixTime = UnixTime(1_800_000_000);

fn kek() -> Kek {
    Kek::from_bytes([0x5a; 32])
}

fn generate(alg: SigningAlg) -> SigningKey {
    SigningKey::generate(alg, &kek(), T0, T0).expect("key generation")
}

/// Keys read back exactly (sealed bytes, public JWK, every time, `None`s), ordered by `kid`;
/// an upsert replaces a key, a delete removes it, and each write bumps the generation.
pub async fn signing_keys_round_trip_exactly<S: Store>(store: S) {
    let empty = store.list_keys().await.expect("list");
    assert!(empty.keys.is_empty());
    let a = generate(SigningAlg::Es256);
    let mut b = generate(SigningAlg::Rs256);
    b.retires_at = Some(T0.plus(100));
    b.removes_at = Some(T0.plus(200));
    let c = generate(SigningAlg::EdDsa);
    let put = KeyUpdate {
        put: vec![a.clone(), b.clone(), c.clone()],
        delete: Vec::new(),
    };
    assert!(
        store
            .update_keys_if_current(empty.generation, &put)
            .await
            .expect("put")
    );
    let stored = store.list_keys().await.expect("list");
    assert_ne!(stored.generation, empty.generation);
    let mut want = vec![a.clone(), b.clone(), c.clone()];
    want.sort_by(|x, y| x.kid.cmp(&y.kid));
    assert_eq!(stored.keys, want);

    // An upsert of a (retiring it) and a delete of c, in one write.
    let mut retired = a.clone();
    retired.retires_at = Some(T0.plus(5));
    retired.removes_at = Some(T0.plus(50));
    let change = KeyUpdate {
        put: vec![retired.clone()],
        delete: vec![c.kid.clone()],
    };
    assert!(
        store
            .update_keys_if_current(stored.generation, &change)
            .await
            .expect("update")
    );
    let after = store.list_keys().await.expect("list");
    let mut want = vec![retired, b];
    want.sort_by(|x, y| x.kid.cmp(&y.kid));
    assert_eq!(after.keys, want);

    // What was stored opens with the key-encryption key and signs.
    let clock = Arc::new(ManualClock::new(T0));
    let set = KeySet::from_records(&after.keys, &kek(), SigningAlg::Es256, clock.clone())
        .expect("stored keys open");
    let jwt = set
        .sign(
            Some(SigningAlg::Es256),
            "JWT",
            &serde_json::json!({"sub": "s", "exp": T0.0 + 60}),
        )
        .expect("sign");
    set.verify::<serde_json::Value>(&jwt, &Expect::new("JWT", clock.now()))
        .expect("verify");
}

/// A write made against an old generation is refused and changes nothing.
pub async fn stale_key_updates_are_refused<S: Store>(store: S) {
    let start = store.list_keys().await.expect("list");
    let first = KeyUpdate {
        put: vec![generate(SigningAlg::Es256)],
        delete: Vec::new(),
    };
    assert!(
        store
            .update_keys_if_current(start.generation, &first)
            .await
            .expect("first")
    );
    let now = store.list_keys().await.expect("list");
    let stale = KeyUpdate {
        put: vec![generate(SigningAlg::Es256)],
        delete: now.keys.iter().map(|k| k.kid.clone()).collect(),
    };
    assert!(
        !store
            .update_keys_if_current(start.generation, &stale)
            .await
            .expect("stale")
    );
    assert_eq!(store.list_keys().await.expect("list"), now);
}

/// Several nodes running the maintenance pass at once on an empty store create exactly one
/// key per algorithm.
pub async fn concurrent_key_maintenance_creates_one_key_per_alg<S: Store>(store: S) {
    let policy = RotationPolicy {
        algs: vec![SigningAlg::Es256, SigningAlg::EdDsa],
        ..RotationPolicy::default()
    };
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            let policy = policy.clone();
            tokio::spawn(async move { maintain(&store, &kek(), &policy, T0).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task").expect("maintain");
    }
    let keys = store.list_keys().await.expect("list").keys;
    let mut algs: Vec<SigningAlg> = keys.iter().map(|k| k.alg).collect();
    algs.sort();
    assert_eq!(algs, [SigningAlg::Es256, SigningAlg::EdDsa], "{keys:?}");
}
