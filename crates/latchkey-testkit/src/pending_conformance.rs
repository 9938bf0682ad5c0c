//! The conformance checks of [`PendingStore`]: pushed authorization requests and device
//! authorizations behave the same in every backend. Run by [`crate::pending_store_conformance!`].
//!
//! Stores with native TTLs (Redis, memcached) cannot be moved by the injected `now`; their
//! expiry check is [`pending_records_expire_by_themselves`], which sleeps past a real
//! two-second lifetime, instead of [`expired_pending_records_are_absent`].

use latchkey_core::client::ClientId;
use latchkey_core::clock::{Clock, SystemClock, UnixTime};
use latchkey_core::entropy::{OsEntropy, random_token};
use latchkey_core::secret::Digest;
use latchkey_core::store::{PendingKind, PendingRecord, PendingStore, StoreErrorKind};

/// Runs every pending-request check against the store built by `$make` (an async expression
/// yielding `Option<store>`; `None` skips, the expression says why). `native_ttl` selects the
/// expiry check: `false` for stores that honour the injected clock, `true` for TTL stores.
///
/// ```ignore
/// latchkey_testkit::pending_store_conformance!(async { Some(MemoryStore::new()) }, false);
/// ```
#[macro_export]
macro_rules! pending_store_conformance {
    ($make:expr, false) => {
        $crate::pending_store_conformance!(@tests $make; expired_pending_records_are_absent);
    };
    ($make:expr, true) => {
        $crate::pending_store_conformance!(@tests $make; pending_records_expire_by_themselves);
    };
    (@tests $make:expr; $expiry:ident) => {
        $crate::pending_store_conformance!(@each $make;
            pending_records_read_back_exactly,
            pending_handles_are_unique_while_live,
            pending_kinds_do_not_see_each_other,
            pending_replacement_is_compare_and_swap,
            pending_removal_is_single_use,
            concurrent_pending_removal_has_exactly_one_winner,
            concurrent_pending_replacement_has_exactly_one_winner,
            $expiry,
        );
    };
    (@each $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(store) = $make.await else {
                    return;
                };
                $crate::pending_conformance::$name(store).await;
            }
        )*
    };
}

fn now() -> UnixTime {
    SystemClock.now()
}

fn handle() -> Digest {
    Digest::of(random_token(&OsEntropy, 32).as_bytes())
}

/// A device authorization living `ttl` seconds, with a user-code lookup and a body of every
/// byte value.
pub fn device(ttl: u64) -> PendingRecord {
    PendingRecord {
        digest: handle(),
        lookup: Some(handle()),
        kind: PendingKind::DeviceAuthorization,
        client_id: ClientId::parse("device-client").expect("valid test client id"),
        body: (0..=255u8).collect(),
        expires_at: now().plus(ttl),
        version: 0,
    }
}

/// A pushed authorization request living `ttl` seconds, without a lookup.
pub fn pushed(ttl: u64) -> PendingRecord {
    PendingRecord {
        digest: handle(),
        lookup: None,
        kind: PendingKind::PushedAuthorization,
        client_id: ClientId::parse("par-client").expect("valid test client id"),
        body: br#"{"v":1,"p":[["response_type","code"],["scope","read \xc3\xbc"]]}"#.to_vec(),
        expires_at: now().plus(ttl),
        version: 0,
    }
}

/// A record reads back field for field by its digest, and by its lookup when it has one.
pub async fn pending_records_read_back_exactly<S: PendingStore>(store: S) {
    let at = now();
    let (d, p) = (device(600), pushed(60));
    store.save_pending(&d, at).await.expect("save");
    store.save_pending(&p, at).await.expect("save");
    let kind = PendingKind::DeviceAuthorization;
    assert_eq!(
        store.find_pending(kind, &d.digest, at).await.expect("find"),
        Some(d.clone())
    );
    let lookup = d.lookup.expect("device records have a lookup");
    assert_eq!(
        store
            .find_pending_by_lookup(kind, &lookup, at)
            .await
            .expect("find"),
        Some(d.clone())
    );
    assert_eq!(
        store
            .find_pending(PendingKind::PushedAuthorization, &p.digest, at)
            .await
            .expect("find"),
        Some(p)
    );
    assert_eq!(
        store.find_pending(kind, &handle(), at).await.expect("find"),
        None,
        "an unknown handle is absent"
    );
    assert_eq!(
        store
            .find_pending_by_lookup(kind, &handle(), at)
            .await
            .expect("find"),
        None
    );
}

/// A second live record with the same digest, or the same lookup, is a conflict; the first
/// stays as it was.
pub async fn pending_handles_are_unique_while_live<S: PendingStore>(store: S) {
    let at = now();
    let first = device(600);
    store.save_pending(&first, at).await.expect("save");
    let same_digest = PendingRecord {
        lookup: Some(handle()),
        body: b"other".to_vec(),
        ..first.clone()
    };
    let err = store
        .save_pending(&same_digest, at)
        .await
        .expect_err("same digest");
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
    let same_lookup = PendingRecord {
        digest: handle(),
        ..first.clone()
    };
    let err = store
        .save_pending(&same_lookup, at)
        .await
        .expect_err("same lookup");
    assert_eq!(err.kind(), StoreErrorKind::Conflict);
    let kind = PendingKind::DeviceAuthorization;
    assert_eq!(
        store
            .find_pending(kind, &first.digest, at)
            .await
            .expect("find"),
        Some(first.clone())
    );
    assert_eq!(
        store
            .find_pending(kind, &same_lookup.digest, at)
            .await
            .expect("find"),
        None,
        "the refused record was not stored"
    );
}

/// A record of one kind is invisible to the other kind's reads and writes.
pub async fn pending_kinds_do_not_see_each_other<S: PendingStore>(store: S) {
    let at = now();
    let d = device(600);
    store.save_pending(&d, at).await.expect("save");
    let par = PendingKind::PushedAuthorization;
    assert_eq!(
        store.find_pending(par, &d.digest, at).await.expect("find"),
        None
    );
    let lookup = d.lookup.expect("lookup");
    assert_eq!(
        store
            .find_pending_by_lookup(par, &lookup, at)
            .await
            .expect("find"),
        None
    );
    assert!(
        !store
            .remove_pending(par, &d.digest, 0, at)
            .await
            .expect("remove"),
        "another kind cannot remove it"
    );
    let wrong_kind = PendingRecord {
        kind: par,
        version: 1,
        ..d.clone()
    };
    assert!(
        !store
            .replace_pending(&wrong_kind, at)
            .await
            .expect("replace"),
        "another kind cannot replace it"
    );
    assert_eq!(
        store
            .find_pending(PendingKind::DeviceAuthorization, &d.digest, at)
            .await
            .expect("find"),
        Some(d)
    );
}

/// A replacement succeeds only as the next version of what is stored; a stale one (same or
/// skipped version) changes nothing. Lookup and client stay the record's own.
pub async fn pending_replacement_is_compare_and_swap<S: PendingStore>(store: S) {
    let at = now();
    let d = device(600);
    store.save_pending(&d, at).await.expect("save");
    let next = PendingRecord {
        body: b"approved".to_vec(),
        expires_at: at.plus(300),
        version: 1,
        ..d.clone()
    };
    assert!(store.replace_pending(&next, at).await.expect("replace"));
    let kind = PendingKind::DeviceAuthorization;
    assert_eq!(
        store.find_pending(kind, &d.digest, at).await.expect("find"),
        Some(next.clone())
    );
    let lookup = d.lookup.expect("lookup");
    assert_eq!(
        store
            .find_pending_by_lookup(kind, &lookup, at)
            .await
            .expect("find"),
        Some(next.clone()),
        "the lookup finds the replacement"
    );
    for stale in [1, 3] {
        let attempt = PendingRecord {
            body: b"stale".to_vec(),
            version: stale,
            ..d.clone()
        };
        assert!(
            !store.replace_pending(&attempt, at).await.expect("replace"),
            "version {stale} is not the next one"
        );
    }
    assert_eq!(
        store.find_pending(kind, &d.digest, at).await.expect("find"),
        Some(next)
    );
    let unknown = PendingRecord {
        version: 1,
        ..device(600)
    };
    assert!(
        !store.replace_pending(&unknown, at).await.expect("replace"),
        "an absent record is not created by a replacement"
    );
    assert_eq!(
        store
            .find_pending(kind, &unknown.digest, at)
            .await
            .expect("find"),
        None
    );
}

/// A record is removed once, at its current version only; it is then gone by digest and by
/// lookup, and its lookup is free again.
pub async fn pending_removal_is_single_use<S: PendingStore>(store: S) {
    let at = now();
    let kind = PendingKind::DeviceAuthorization;
    let d = device(600);
    store.save_pending(&d, at).await.expect("save");
    assert!(
        !store
            .remove_pending(kind, &d.digest, 1, at)
            .await
            .expect("remove"),
        "a stale version does not remove it"
    );
    assert!(
        store
            .remove_pending(kind, &d.digest, 0, at)
            .await
            .expect("remove")
    );
    assert!(
        !store
            .remove_pending(kind, &d.digest, 0, at)
            .await
            .expect("remove"),
        "removed once only"
    );
    assert_eq!(
        store.find_pending(kind, &d.digest, at).await.expect("find"),
        None
    );
    let lookup = d.lookup.expect("lookup");
    assert_eq!(
        store
            .find_pending_by_lookup(kind, &lookup, at)
            .await
            .expect("find"),
        None
    );
    let reuse = PendingRecord {
        digest: handle(),
        ..d.clone()
    };
    store
        .save_pending(&reuse, at)
        .await
        .expect("a removed record's lookup can be used again");
}

/// Of many simultaneous removals at one version, exactly one succeeds.
pub async fn concurrent_pending_removal_has_exactly_one_winner<S: PendingStore + Clone>(store: S) {
    let at = now();
    let p = pushed(60);
    store.save_pending(&p, at).await.expect("save");
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, digest) = (store.clone(), p.digest);
        tasks.push(tokio::spawn(async move {
            store
                .remove_pending(PendingKind::PushedAuthorization, &digest, 0, at)
                .await
        }));
    }
    let mut won = 0;
    for task in tasks {
        if task.await.expect("task ran").expect("remove") {
            won += 1;
        }
    }
    assert_eq!(won, 1, "exactly one concurrent removal must win");
}

/// Of many simultaneous replacements from one version, exactly one succeeds, and the stored
/// record is the winner's.
pub async fn concurrent_pending_replacement_has_exactly_one_winner<S: PendingStore + Clone>(
    store: S,
) {
    let at = now();
    let d = device(600);
    store.save_pending(&d, at).await.expect("save");
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let store = store.clone();
        let next = PendingRecord {
            body: vec![i],
            version: 1,
            ..d.clone()
        };
        tasks.push(tokio::spawn(async move {
            let won = store.replace_pending(&next, at).await;
            (i, won)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (i, won) = task.await.expect("task ran");
        if won.expect("replace") {
            winners.push(i);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one concurrent replacement must win"
    );
    let stored = store
        .find_pending(PendingKind::DeviceAuthorization, &d.digest, at)
        .await
        .expect("find")
        .expect("still there");
    assert_eq!(stored.body, vec![winners[0]]);
    assert_eq!(stored.version, 1);
}

/// A record is absent from its expiry on, by the `now` the core passes, and then frees its
/// digest and lookup for a new record.
pub async fn expired_pending_records_are_absent<S: PendingStore>(store: S) {
    let at = now();
    let kind = PendingKind::DeviceAuthorization;
    let d = PendingRecord {
        expires_at: at.plus(10),
        ..device(10)
    };
    store.save_pending(&d, at).await.expect("save");
    let before = at.plus(9);
    assert!(
        store
            .find_pending(kind, &d.digest, before)
            .await
            .expect("find")
            .is_some(),
        "alive one second before its expiry"
    );
    let after = at.plus(10);
    assert_eq!(
        store
            .find_pending(kind, &d.digest, after)
            .await
            .expect("find"),
        None
    );
    let lookup = d.lookup.expect("lookup");
    assert_eq!(
        store
            .find_pending_by_lookup(kind, &lookup, after)
            .await
            .expect("find"),
        None
    );
    let next = PendingRecord {
        version: 1,
        ..d.clone()
    };
    assert!(
        !store.replace_pending(&next, after).await.expect("replace"),
        "an expired record cannot be replaced"
    );
    assert!(
        !store
            .remove_pending(kind, &d.digest, 0, after)
            .await
            .expect("remove"),
        "nor removed as if it were live"
    );
    let again = PendingRecord {
        expires_at: after.plus(60),
        ..d
    };
    store
        .save_pending(&again, after)
        .await
        .expect("an expired record's handles can be used again");
}

/// A TTL store forgets a record by itself once its lifetime has passed.
pub async fn pending_records_expire_by_themselves<S: PendingStore>(store: S) {
    let at = now();
    let kind = PendingKind::DeviceAuthorization;
    let short = PendingRecord {
        expires_at: at.plus(2),
        ..device(2)
    };
    let lasting = device(300);
    store.save_pending(&short, at).await.expect("save");
    store.save_pending(&lasting, at).await.expect("save");
    // Two whole seconds of lifetime plus slack for a once-a-second clock.
    tokio::time::sleep(std::time::Duration::from_millis(3_100)).await;
    let later = now();
    assert_eq!(
        store
            .find_pending(kind, &short.digest, later)
            .await
            .expect("find"),
        None
    );
    let lookup = short.lookup.expect("lookup");
    assert_eq!(
        store
            .find_pending_by_lookup(kind, &lookup, later)
            .await
            .expect("find"),
        None
    );
    assert!(
        store
            .find_pending(kind, &lasting.digest, later)
            .await
            .expect("find")
            .is_some()
    );
}
