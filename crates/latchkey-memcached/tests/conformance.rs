//! The memcached store against the fast-store conformance suite, plus what only memcached
//! must show: lifetimes past 30 days (absolute expiry) work, an evicted generation counter
//! never un-revokes anything, and an outage answers `Unavailable` quickly and heals by itself.
//!
//! Selected by `LATCHKEY_TEST_MEMCACHED` (e.g. `127.0.0.1:11211`): unset, every test prints a
//! note and passes; set but unreachable, every test fails. Each test keys its data under a
//! fresh random prefix. The outage test also needs `memcached` on the `PATH`: it runs its own
//! server on a free port.

use async_memcached::MetaProtocol as _;
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::entropy::{OsEntropy, random_hex};
use latchkey_core::secret::Digest;
use latchkey_core::store::{CodeStore, CodeTake, Rotation, StoreErrorKind, TokenOwner, TokenStore};
use latchkey_core::token::{FamilyId, NewTokens, TokenKind};
use latchkey_memcached::MemcachedStore;
use latchkey_testkit::conformance::{code, pair, record};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The configured memcached address, or `None` (with a note) when the tests should skip.
fn memcached_addr() -> Option<String> {
    match std::env::var("LATCHKEY_TEST_MEMCACHED") {
        Ok(addr) if !addr.is_empty() => Some(addr),
        _ => {
            eprintln!(
                "skipped: set LATCHKEY_TEST_MEMCACHED=127.0.0.1:11211 to run the memcached tests"
            );
            None
        }
    }
}

fn fresh_prefix() -> String {
    format!("lk-test-{}", random_hex(&OsEntropy, 8))
}

async fn connect(addr: &str, prefix: &str) -> MemcachedStore {
    MemcachedStore::connect(addr, prefix, 4)
        .await
        .unwrap_or_else(|err| {
            panic!(
                "LATCHKEY_TEST_MEMCACHED={addr} is set, but that memcached cannot be used: {err}"
            )
        })
}

async fn fresh_store() -> Option<MemcachedStore> {
    let addr = memcached_addr()?;
    Some(connect(&addr, &fresh_prefix()).await)
}

latchkey_testkit::fast_store_conformance!(fresh_store());

mod pending {
    //! Pending requests in memcached run the shared pending-request suite, with memcached's own
    //! expiry.
    latchkey_testkit::pending_store_conformance!(super::fresh_store(), true);
}

/// A 40-day refresh token is stored with an absolute expiry and reads back.
#[tokio::test]
async fn lifetimes_past_thirty_days_are_kept() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let fam = FamilyId::generate(&OsEntropy);
    let long = NewTokens {
        access: record(TokenKind::Access, "client-long", &fam, 3600).1,
        refresh: Some(record(TokenKind::Refresh, "client-long", &fam, 40 * 86_400).1),
    };
    store
        .save_tokens(&long, SystemClock.now())
        .await
        .expect("save");
    let refresh = long.refresh.as_ref().expect("refresh");
    assert_eq!(
        store
            .find_token(&refresh.digest)
            .await
            .expect("find")
            .as_ref(),
        Some(refresh)
    );
}

/// Simulates memcached evicting the counters of a revoked family and of a deleted owner:
/// their tokens stay revoked, also after new tokens bring a counter back.
#[tokio::test]
async fn evicted_counters_never_unrevoke() {
    let Some(addr) = memcached_addr() else {
        return;
    };
    let prefix = fresh_prefix();
    let store = connect(&addr, &prefix).await;
    let mut raw = async_memcached::Client::new(format!("tcp://{addr}"))
        .await
        .expect("raw connection");
    let counter =
        |kind: &str, name: &str| format!("{prefix}:{kind}{}", Digest::of(name.as_bytes()).to_hex());

    let fam = FamilyId::generate(&OsEntropy);
    let revoked = pair("client-evict", &fam);
    store
        .save_tokens(&revoked, SystemClock.now())
        .await
        .expect("save");
    assert_eq!(store.revoke_family(&fam).await.expect("revoke"), 2);
    raw.meta_delete(counter("gf:", &fam.0), false, None, None)
        .await
        .expect("evict the family counter");
    let later = pair("client-evict", &fam);
    store
        .save_tokens(&later, SystemClock.now())
        .await
        .expect("save");
    for r in revoked.records() {
        let found = store
            .find_token(&r.digest)
            .await
            .expect("find")
            .expect("known");
        assert!(
            found.revoked,
            "an evicted counter un-revoked a {:?} token",
            found.kind
        );
    }
    assert!(
        store
            .find_token(&later.access.digest)
            .await
            .expect("find")
            .is_some_and(|r| r.is_active(SystemClock.now())),
        "tokens issued after the eviction work"
    );

    // A live token whose client counter is evicted fails closed: it reads as revoked.
    let other = pair("client-evict-2", &FamilyId::generate(&OsEntropy));
    store
        .save_tokens(&other, SystemClock.now())
        .await
        .expect("save");
    store
        .delete_tokens_of(&TokenOwner::Client("client-evict-2".into()))
        .await
        .expect("delete");
    raw.meta_delete(counter("gc:", "client-evict-2"), false, None, None)
        .await
        .expect("evict the client counter");
    store
        .save_tokens(
            &pair("client-evict-2", &FamilyId::generate(&OsEntropy)),
            SystemClock.now(),
        )
        .await
        .expect("save");
    for r in other.records() {
        let found = store
            .find_token(&r.digest)
            .await
            .expect("find")
            .expect("known");
        assert!(found.revoked, "a deleted client's token came back");
    }
    let old = other.refresh.as_ref().expect("refresh").digest;
    assert_eq!(
        store
            .rotate_refresh(
                &old,
                &pair("client-evict-2", &FamilyId::generate(&OsEntropy)),
                SystemClock.now()
            )
            .await
            .expect("rotate"),
        Rotation::Invalid
    );
}

/// A `memcached` of our own, killed when dropped.
struct OwnMemcached {
    child: Child,
    port: u16,
}

impl OwnMemcached {
    fn start(port: u16) -> Self {
        let child = Command::new("memcached")
            .args([
                "-l",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-m",
                "16",
                "-U",
                "0",
            ])
            // memcached refuses to run as root without a user to switch to.
            .args(["-u", "nobody"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("LATCHKEY_TEST_MEMCACHED is set: memcached must be on the PATH");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "memcached did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnMemcached {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// With memcached gone, every call answers `Unavailable` within about the timeout; once it
/// is back on the same port, the same store works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_unavailable_quickly_and_heals_by_itself() {
    if memcached_addr().is_none() {
        return;
    }
    let mut server = OwnMemcached::start(free_port());
    let addr = format!("127.0.0.1:{}", server.port);
    let timeout = Duration::from_millis(500);
    let store = MemcachedStore::connect_with_timeout(&addr, &fresh_prefix(), 2, timeout)
        .await
        .expect("connect");
    let saved = pair("client-outage", &FamilyId::generate(&OsEntropy));
    store
        .save_tokens(&saved, SystemClock.now())
        .await
        .expect("save");

    server.stop();
    for round in 0..3 {
        let started = Instant::now();
        let find = store.find_token(&saved.access.digest).await;
        assert_eq!(
            find.as_ref().map_err(|e| e.kind()).err(),
            Some(StoreErrorKind::Unavailable),
            "round {round}: find during the outage gave {find:?}"
        );
        let save = store
            .save_tokens(
                &pair("client-outage", &FamilyId::generate(&OsEntropy)),
                SystemClock.now(),
            )
            .await;
        assert_eq!(
            save.map_err(|e| e.kind()).err(),
            Some(StoreErrorKind::Unavailable)
        );
        let (_, a_code) = code("client-outage", 60);
        let take = store
            .take_code(&a_code.digest, &a_code.client_id, SystemClock.now())
            .await;
        assert_eq!(
            take.map_err(|e| e.kind()).err(),
            Some(StoreErrorKind::Unavailable)
        );
        let ping = store.ping().await;
        assert_eq!(
            ping.map_err(|e| e.kind()).err(),
            Some(StoreErrorKind::Unavailable)
        );
        assert!(
            started.elapsed() < timeout * 8,
            "round {round}: four calls took {:?}",
            started.elapsed()
        );
    }

    let port = server.port;
    drop(server);
    let _server = OwnMemcached::start(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(err) = store.ping().await {
        assert_eq!(err.kind(), StoreErrorKind::Unavailable);
        assert!(
            Instant::now() < deadline,
            "the store never reconnected: {err}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every pooled connection works again, not only the one that answered the ping.
    for _ in 0..4 {
        assert_eq!(
            store.find_token(&saved.access.digest).await.expect("find"),
            None
        );
    }
    let fam = FamilyId::generate(&OsEntropy);
    let first = pair("client-outage", &fam);
    store
        .save_tokens(&first, SystemClock.now())
        .await
        .expect("save after the restart");
    let old = first.refresh.as_ref().expect("refresh").digest;
    assert_eq!(
        store
            .rotate_refresh(&old, &pair("client-outage", &fam), SystemClock.now())
            .await
            .expect("rotate after the restart"),
        Rotation::Rotated
    );
    let (_, a_code) = code("client-outage", 60);
    store
        .save_code(&a_code, SystemClock.now())
        .await
        .expect("save code");
    assert!(matches!(
        store
            .take_code(&a_code.digest, &a_code.client_id, SystemClock.now())
            .await
            .expect("take"),
        CodeTake::Taken(_)
    ));
}

/// Withdrawing a consent on memcached revokes the user's tokens at that client, and (memcached
/// cannot single out the pair) at every other client too; other users' tokens keep working.
#[tokio::test]
async fn withdrawing_a_consent_revokes_the_users_tokens() {
    let Some(store) = fresh_store().await else {
        return;
    };
    let now = SystemClock.now();
    let issue = |client: &str, subject: &str| {
        let mut tokens = pair(client, &FamilyId::generate(&OsEntropy));
        tokens.access.subject = Some(subject.to_owned());
        if let Some(refresh) = tokens.refresh.as_mut() {
            refresh.subject = Some(subject.to_owned());
        }
        tokens
    };
    let withdrawn = issue("client-consent", "user-carol");
    let elsewhere = issue("client-other", "user-carol");
    let someone_else = issue("client-consent", "user-dave");
    for tokens in [&withdrawn, &elsewhere, &someone_else] {
        store.save_tokens(tokens, now).await.expect("save");
    }
    store
        .revoke_tokens_of_grant("client-consent", "user-carol")
        .await
        .expect("memcached revokes rather than failing");
    let active = |digest| {
        let store = &store;
        async move {
            store
                .find_token(digest)
                .await
                .expect("find")
                .is_some_and(|r| r.is_active(SystemClock.now()))
        }
    };
    for r in withdrawn.records().chain(elsewhere.records()) {
        assert!(
            !active(&r.digest).await,
            "carol's {:?} token still works",
            r.kind
        );
    }
    for r in someone_else.records() {
        assert!(
            active(&r.digest).await,
            "dave's {:?} token was revoked",
            r.kind
        );
    }
}
