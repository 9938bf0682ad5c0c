//! The OAuth 1.0a store conformance suite, run once per backend by
//! [`crate::oauth1_store_conformance!`]: consumers, single-use request tokens, revocable
//! access tokens and replay-proof nonces.

use latchkey_core::clock::{Clock, SystemClock, UnixTime};
use latchkey_core::entropy::{OsEntropy, random_token};
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Digest;
use latchkey_oauth1::store::{AccessToken, Consumer, OAuth1Store, RequestToken};

/// Runs the OAuth 1.0a store suite against the store built by `$make` (an async expression
/// evaluated once per test, yielding a fresh store).
#[macro_export]
macro_rules! oauth1_store_conformance {
    ($make:expr) => {
        $crate::oauth1_store_conformance!(@tests $make;
            oauth1_consumers_round_trip,
            oauth1_request_tokens_are_authorized_once_and_taken_once,
            oauth1_expired_request_tokens_are_unusable,
            oauth1_concurrent_takes_have_exactly_one_winner,
            oauth1_access_tokens_read_back_and_revoke,
            oauth1_nonces_refuse_replays_until_they_expire,
            oauth1_deleting_a_consumer_deletes_its_tokens,
            oauth1_rotating_a_consumer_secret_drops_its_tokens,
            oauth1_expired_access_tokens_are_forgotten,
        );
    };
    (@tests $make:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let store = $make.await;
                $crate::oauth1_conformance::$name(store).await;
            }
        )*
    };
}

fn now() -> UnixTime {
    SystemClock.now()
}

fn fresh_digest() -> Digest {
    Digest::of(random_token(&OsEntropy, 16).as_bytes())
}

/// A request token of `client_id`, not yet authorized, living `ttl` seconds from `now`.
pub fn request_token(client_id: &str, now: UnixTime, ttl: u64) -> RequestToken {
    RequestToken {
        digest: fresh_digest(),
        client_id: client_id.to_owned(),
        callback: "https://printer.example.com/ready?x=1".into(),
        realms: ScopeSet::parse("photos profile").unwrap_or_else(|_| ScopeSet::empty()),
        subject: None,
        username: None,
        verifier: None,
        expires_at: now.plus(ttl),
    }
}

/// An access token of `client_id` for `subject`.
pub fn access_token(client_id: &str, subject: &str, expires_at: Option<UnixTime>) -> AccessToken {
    AccessToken {
        digest: fresh_digest(),
        client_id: client_id.to_owned(),
        subject: subject.to_owned(),
        username: Some("ålice".into()),
        realms: ScopeSet::parse("photos").unwrap_or_else(|_| ScopeSet::empty()),
        issued_at: now(),
        expires_at,
        revoked: false,
    }
}

/// Registrations read back exactly, are replaced, and are deleted.
pub async fn oauth1_consumers_round_trip(store: impl OAuth1Store) {
    let mut consumer = Consumer::new(
        format!("c-{}", random_token(&OsEntropy, 6)),
        None,
        &OsEntropy,
        now(),
    );
    assert!(
        consumer.secret_salt.is_some(),
        "a new registration has a salt"
    );
    assert_eq!(
        store.get_consumer(&consumer.client_id).await.ok(),
        Some(None)
    );
    store.put_consumer(&consumer).await.expect("put");
    assert_eq!(
        store.get_consumer(&consumer.client_id).await.expect("get"),
        Some(consumer.clone())
    );
    consumer.rsa_public_key =
        Some("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----".into());
    consumer.secret_salt = Some("another-salt".into());
    consumer.created_at = consumer.created_at.plus(5);
    store.put_consumer(&consumer).await.expect("replace");
    assert_eq!(
        store.get_consumer(&consumer.client_id).await.expect("get"),
        Some(consumer.clone())
    );
    assert!(
        store
            .delete_consumer(&consumer.client_id)
            .await
            .expect("delete")
    );
    assert!(
        !store
            .delete_consumer(&consumer.client_id)
            .await
            .expect("delete")
    );
    assert_eq!(
        store.get_consumer(&consumer.client_id).await.ok(),
        Some(None)
    );
}

/// Approval happens once; the take returns the approved token once, then nothing.
pub async fn oauth1_request_tokens_are_authorized_once_and_taken_once(store: impl OAuth1Store) {
    let now = now();
    let token = request_token("printer", now, 600);
    store.save_request_token(&token, now).await.expect("save");
    assert_eq!(
        store
            .find_request_token(&token.digest, now)
            .await
            .expect("find"),
        Some(token.clone())
    );
    let verifier = fresh_digest();
    assert!(
        store
            .authorize_request_token(&token.digest, "user-1", "alice", &verifier, now)
            .await
            .expect("authorize")
    );
    assert!(
        !store
            .authorize_request_token(&token.digest, "user-2", "mallory", &fresh_digest(), now)
            .await
            .expect("second authorize"),
        "a request token is authorized once"
    );
    let taken = store
        .take_request_token(&token.digest, now)
        .await
        .expect("take")
        .expect("present");
    assert_eq!(taken.subject.as_deref(), Some("user-1"));
    assert_eq!(taken.username.as_deref(), Some("alice"));
    assert_eq!(taken.verifier, Some(verifier));
    assert_eq!(taken.callback, token.callback);
    assert_eq!(taken.realms, token.realms);
    assert_eq!(
        store
            .take_request_token(&token.digest, now)
            .await
            .expect("take"),
        None
    );
    assert_eq!(
        store
            .find_request_token(&token.digest, now)
            .await
            .expect("find"),
        None
    );
}

/// An expired request token can be neither found, approved nor taken.
pub async fn oauth1_expired_request_tokens_are_unusable(store: impl OAuth1Store) {
    let now = now();
    let token = request_token("printer", now, 10);
    store.save_request_token(&token, now).await.expect("save");
    let later = now.plus(11);
    assert_eq!(
        store
            .find_request_token(&token.digest, later)
            .await
            .expect("find"),
        None
    );
    assert!(
        !store
            .authorize_request_token(&token.digest, "u", "u", &fresh_digest(), later)
            .await
            .expect("authorize")
    );
    assert_eq!(
        store
            .take_request_token(&token.digest, later)
            .await
            .expect("take"),
        None
    );
}

/// Two takes racing: exactly one gets the token.
pub async fn oauth1_concurrent_takes_have_exactly_one_winner(store: impl OAuth1Store) {
    let now = now();
    let token = request_token("printer", now, 600);
    store.save_request_token(&token, now).await.expect("save");
    let (a, b) = tokio::join!(
        store.take_request_token(&token.digest, now),
        store.take_request_token(&token.digest, now)
    );
    let winners = [a.expect("take"), b.expect("take")]
        .iter()
        .filter(|t| t.is_some())
        .count();
    assert_eq!(winners, 1);
}

/// Access tokens read back exactly, and revocation sticks.
pub async fn oauth1_access_tokens_read_back_and_revoke(store: impl OAuth1Store) {
    let now = now();
    for expires_at in [None, Some(now.plus(3600))] {
        let token = access_token("printer", "user-1", expires_at);
        store.save_access_token(&token, now).await.expect("save");
        let found = store
            .find_access_token(&token.digest)
            .await
            .expect("find")
            .expect("present");
        assert_eq!(found, token);
        assert!(found.is_active(now));
        assert!(
            store
                .revoke_access_token(&token.digest)
                .await
                .expect("revoke")
        );
        let found = store
            .find_access_token(&token.digest)
            .await
            .expect("find")
            .expect("present");
        assert!(found.revoked);
        assert!(!found.is_active(now));
    }
    assert!(
        !store
            .revoke_access_token(&fresh_digest())
            .await
            .expect("revoke")
    );
}

/// An access token past its expiry is forgotten by a later write (bounded stores): token
/// credentials have a lifetime, and the store does not keep them after it.
pub async fn oauth1_expired_access_tokens_are_forgotten(store: impl OAuth1Store) {
    let now = now();
    let short = access_token("printer", "user-1", Some(now.plus(10)));
    store.save_access_token(&short, now).await.expect("save");
    let later = now.plus(11);
    let next = access_token("printer", "user-1", Some(later.plus(3600)));
    store.save_access_token(&next, later).await.expect("save");
    assert_eq!(
        store.find_access_token(&short.digest).await.expect("find"),
        None,
        "an expired access token is forgotten"
    );
    assert!(
        store
            .find_access_token(&next.digest)
            .await
            .expect("find")
            .is_some()
    );
}

/// A nonce is accepted once while remembered, and again once it has expired.
pub async fn oauth1_nonces_refuse_replays_until_they_expire(store: impl OAuth1Store) {
    let now = now();
    let key = fresh_digest();
    assert!(
        store
            .insert_nonce(&key, now.plus(300), now)
            .await
            .expect("insert")
    );
    assert!(
        !store
            .insert_nonce(&key, now.plus(300), now)
            .await
            .expect("replay"),
        "a replayed nonce is refused"
    );
    assert!(
        store
            .insert_nonce(&fresh_digest(), now.plus(300), now)
            .await
            .expect("another nonce")
    );
    let later = now.plus(301);
    assert!(
        store
            .insert_nonce(&key, later.plus(300), later)
            .await
            .expect("after expiry"),
        "an expired nonce is forgotten"
    );
}

/// Deleting a consumer takes its request and access tokens with it.
pub async fn oauth1_deleting_a_consumer_deletes_its_tokens(store: impl OAuth1Store) {
    let now = now();
    let client_id = format!("c-{}", random_token(&OsEntropy, 6));
    store
        .put_consumer(&Consumer::new(client_id.clone(), None, &OsEntropy, now))
        .await
        .expect("put");
    let request = request_token(&client_id, now, 600);
    let access = access_token(&client_id, "user-1", None);
    let other = access_token("someone-else", "user-1", None);
    store.save_request_token(&request, now).await.expect("save");
    store.save_access_token(&access, now).await.expect("save");
    store.save_access_token(&other, now).await.expect("save");
    assert!(store.delete_consumer(&client_id).await.expect("delete"));
    assert_eq!(
        store
            .find_request_token(&request.digest, now)
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store.find_access_token(&access.digest).await.expect("find"),
        None
    );
    assert!(
        store
            .find_access_token(&other.digest)
            .await
            .expect("find")
            .is_some()
    );
}

/// Rotating a consumer's secret replaces its salt and deletes its request and access tokens
/// (obtained under the old secret), leaving other consumers' tokens alone; an unknown
/// consumer is `false`. A registration without a salt (from before salts existed) reads back
/// as such and can be rotated.
pub async fn oauth1_rotating_a_consumer_secret_drops_its_tokens(store: impl OAuth1Store) {
    let now = now();
    let client_id = format!("c-{}", random_token(&OsEntropy, 6));
    let legacy = Consumer {
        client_id: client_id.clone(),
        rsa_public_key: None,
        created_at: now,
        secret_salt: None,
    };
    store.put_consumer(&legacy).await.expect("put");
    assert_eq!(
        store.get_consumer(&client_id).await.expect("get"),
        Some(legacy.clone())
    );
    let request = request_token(&client_id, now, 600);
    let access = access_token(&client_id, "user-1", None);
    let other = access_token("someone-else", "user-1", None);
    store.save_request_token(&request, now).await.expect("save");
    store.save_access_token(&access, now).await.expect("save");
    store.save_access_token(&other, now).await.expect("save");
    assert!(
        store
            .rotate_consumer_secret(&client_id, "fresh-salt")
            .await
            .expect("rotate")
    );
    let rotated = store
        .get_consumer(&client_id)
        .await
        .expect("get")
        .expect("still registered");
    assert_eq!(rotated.secret_salt.as_deref(), Some("fresh-salt"));
    assert_eq!(rotated.rsa_public_key, legacy.rsa_public_key);
    assert_eq!(
        store
            .find_request_token(&request.digest, now)
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        store.find_access_token(&access.digest).await.expect("find"),
        None
    );
    assert!(
        store
            .find_access_token(&other.digest)
            .await
            .expect("find")
            .is_some()
    );
    assert!(
        !store
            .rotate_consumer_secret("no-such-consumer", "salt")
            .await
            .expect("rotate")
    );
}

/// The consumer `legacy-consumer`, registered with `created_at` 1600000000 and no RSA key in
/// a database from before secret salts (each backend's test writes that row with the old
/// schema, then opens the store, which migrates): it reads back without a salt, so its
/// secret is still the legacy one, and a rotation gives it a salt and a new secret.
pub async fn oauth1_legacy_consumer_keeps_its_secret(store: impl OAuth1Store) {
    let consumer = store
        .get_consumer(LEGACY_CONSUMER)
        .await
        .expect("read")
        .expect("kept by the migration");
    assert_eq!(consumer.secret_salt, None);
    assert_eq!(consumer.created_at, UnixTime(1_600_000_000));
    let key = latchkey_oauth1::OAuth1Key::new(std::array::from_fn(|i| i as u8));
    // HMAC-SHA256(key 0..32, "latchkey oauth1 consumer" 0 "legacy-consumer"), base64url: the
    // secret this consumer was given before the upgrade.
    assert_eq!(
        key.consumer_secret(&consumer).expose(),
        "-Ayw_Rfvk45pXb6M8PFVXjEWat7EpMxcuZI-jv3gBfE"
    );
    assert!(
        store
            .rotate_consumer_secret(LEGACY_CONSUMER, "new-salt")
            .await
            .expect("rotate")
    );
    let rotated = store
        .get_consumer(LEGACY_CONSUMER)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(rotated.secret_salt.as_deref(), Some("new-salt"));
    assert_ne!(
        key.consumer_secret(&rotated).expose(),
        "-Ayw_Rfvk45pXb6M8PFVXjEWat7EpMxcuZI-jv3gBfE"
    );
}

/// The client id of the consumer [`oauth1_legacy_consumer_keeps_its_secret`] expects.
pub const LEGACY_CONSUMER: &str = "legacy-consumer";
