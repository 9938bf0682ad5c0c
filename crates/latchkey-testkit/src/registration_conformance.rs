//! The dynamic-registration part of the store conformance suite (run by
//! [`crate::store_conformance!`]): initial access tokens are spent atomically, and a
//! client's registration reads back, ages by its last use, and goes with its client.

use latchkey_core::client::NewClient;
use latchkey_core::clock::{Clock, SystemClock, UnixTime};
use latchkey_core::entropy::OsEntropy;
use latchkey_core::registration::store::{ClientRegistration, RegistrationStore};
use latchkey_core::registration::{self, day_of};
use latchkey_core::secret::Secret;
use latchkey_core::store::Store;

fn now() -> UnixTime {
    SystemClock.now()
}

/// A registration reads back exactly, its last use only moves forward, the sweep's query
/// finds it by that day, and deleting its client deletes it.
pub async fn registrations_round_trip_and_go_with_their_client<S: Store + RegistrationStore>(
    store: S,
) {
    let at = now();
    let (client, _) = NewClient::public("self-registered")
        .redirect_uris(["https://app.example/cb"])
        .build(&OsEntropy, at);
    let id = client.id.as_str().to_owned();
    let registration = ClientRegistration {
        client_id: id.clone(),
        token_digest: Secret::new("registration-token").digest(),
        created_at: at,
        last_used: day_of(at),
        initial_token: Some("abc123".into()),
    };
    store.put_registration(&registration).await.expect("put");
    store.put_client(&client).await.expect("put client");
    assert_eq!(
        store.get_registration(&id).await.expect("get"),
        Some(registration.clone())
    );
    assert_eq!(store.get_registration("other").await.expect("get"), None);

    let later = UnixTime(day_of(at).0 + 3 * registration::DAY);
    store.touch_registration(&id, later).await.expect("touch");
    store
        .touch_registration(&id, day_of(at))
        .await
        .expect("touch back");
    let read = store
        .get_registration(&id)
        .await
        .expect("get")
        .expect("some");
    assert_eq!(read.last_used, later, "last use never moves back");

    assert!(
        store
            .unused_registrations(later, 10)
            .await
            .expect("unused")
            .is_empty()
    );
    assert_eq!(
        store
            .unused_registrations(UnixTime(later.0 + 1), 10)
            .await
            .expect("unused"),
        vec![id.clone()]
    );

    // Replacing keeps one row.
    let mut replaced = read.clone();
    replaced.token_digest = Secret::new("new-token").digest();
    store.put_registration(&replaced).await.expect("replace");
    assert_eq!(
        store.get_registration(&id).await.expect("get"),
        Some(replaced)
    );

    assert!(store.delete_client(&id).await.expect("delete client"));
    assert_eq!(store.get_registration(&id).await.expect("get"), None);
    assert!(!store.delete_registration(&id).await.expect("delete again"));
}

/// A counted initial access token gives exactly its uses, an expired one none, an uncounted
/// one any number; tokens are listed and deleted by id.
pub async fn initial_tokens_are_spent_once_per_use<S: Store + RegistrationStore>(store: S) {
    let at = now();
    let (two, record) =
        registration::new_initial_token(&OsEntropy, "two uses", at, Some(600), Some(2));
    store.save_initial_token(&record).await.expect("save");
    let two = two.digest();
    let spend = || store.use_initial_token(&two, at);
    assert_eq!(
        spend().await.expect("use").map(|t| t.id),
        Some(record.id.clone())
    );
    assert!(spend().await.expect("use").is_some());
    assert!(spend().await.expect("use").is_none(), "no third use");
    let listed = store.list_initial_tokens().await.expect("list");
    let stored = listed.iter().find(|t| t.id == record.id).expect("listed");
    assert_eq!(stored.uses_left, Some(0));
    assert_eq!(stored.description, "two uses");

    let (expiring, record) = registration::new_initial_token(&OsEntropy, "", at, Some(60), None);
    store.save_initial_token(&record).await.expect("save");
    assert!(
        store
            .use_initial_token(&expiring.digest(), at.plus(59))
            .await
            .expect("use")
            .is_some()
    );
    assert!(
        store
            .use_initial_token(&expiring.digest(), at.plus(60))
            .await
            .expect("use")
            .is_none(),
        "expired at its expiry"
    );

    let (forever, record) = registration::new_initial_token(&OsEntropy, "", at, None, None);
    store.save_initial_token(&record).await.expect("save");
    for _ in 0..3 {
        assert!(
            store
                .use_initial_token(&forever.digest(), at)
                .await
                .expect("use")
                .is_some()
        );
    }
    assert!(
        store
            .delete_initial_token(&record.id)
            .await
            .expect("delete")
    );
    assert!(
        store
            .use_initial_token(&forever.digest(), at)
            .await
            .expect("use")
            .is_none()
    );
    assert!(
        !store
            .delete_initial_token(&record.id)
            .await
            .expect("delete")
    );
    assert!(
        store
            .use_initial_token(&Secret::new("unknown").digest(), at)
            .await
            .expect("use")
            .is_none()
    );
}

/// Concurrent uses of a token with three uses left: exactly three succeed.
pub async fn concurrent_initial_token_uses_never_overspend<S: Store + RegistrationStore>(store: S) {
    let at = now();
    let (value, record) = registration::new_initial_token(&OsEntropy, "", at, None, Some(3));
    store.save_initial_token(&record).await.expect("save");
    let digest = value.digest();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store.use_initial_token(&digest, at).await
        }));
    }
    let mut spent = 0;
    for task in tasks {
        if task.await.expect("task ran").expect("use").is_some() {
            spent += 1;
        }
    }
    assert_eq!(spent, 3, "exactly the uses the token had");
}

/// A registration is swapped only from the token digest it holds: of concurrent swaps from
/// one digest (two updates, or an update and a delete, presenting one registration access
/// token) exactly one wins and its record is the one stored; a swap from a spent digest, or
/// for a client without a registration, changes nothing.
pub async fn concurrent_registration_swaps_have_exactly_one_winner<S: Store + RegistrationStore>(
    store: S,
) {
    let at = now();
    let id = format!("swap-{}", latchkey_core::entropy::random_hex(&OsEntropy, 8));
    let presented = Secret::new("registration-token").digest();
    let registration = ClientRegistration {
        client_id: id.clone(),
        token_digest: presented,
        created_at: at,
        last_used: day_of(at),
        initial_token: None,
    };
    store.put_registration(&registration).await.expect("put");
    let mut tasks = Vec::new();
    for n in 0..8u8 {
        let store = store.clone();
        let next = ClientRegistration {
            token_digest: Secret::new(format!("rotated-{n}")).digest(),
            last_used: UnixTime(day_of(at).0 + i64::from(n) * registration::DAY),
            ..registration.clone()
        };
        tasks.push(tokio::spawn(async move {
            let won = store
                .swap_registration(&presented, &next)
                .await
                .expect("swap");
            (won, next)
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (won, next) = task.await.expect("task ran");
        if won {
            winners.push(next);
        }
    }
    assert_eq!(winners.len(), 1, "exactly one swap from one digest wins");
    let stored = store.get_registration(&id).await.expect("get");
    assert_eq!(
        stored.as_ref(),
        winners.first(),
        "the winner's record is stored"
    );

    // The presented digest is spent.
    assert!(
        !store
            .swap_registration(&presented, &registration)
            .await
            .expect("swap")
    );
    assert_eq!(
        store.get_registration(&id).await.expect("get").as_ref(),
        winners.first()
    );
    // No registration, nothing to swap (and nothing created).
    let absent = ClientRegistration {
        client_id: format!("{id}-absent"),
        ..registration.clone()
    };
    assert!(
        !store
            .swap_registration(&presented, &absent)
            .await
            .expect("swap")
    );
    assert_eq!(
        store
            .get_registration(&absent.client_id)
            .await
            .expect("get"),
        None
    );
    assert!(store.delete_registration(&id).await.expect("delete"));
}
