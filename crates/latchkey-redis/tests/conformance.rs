//! The Redis store against the fast-store conformance suite, plus what only Redis must show:
//! nothing outlives its records (index sets expire too), and an outage answers `Unavailable`
//! quickly and heals by itself once Redis is back.
//!
//! Selected by `LATCHKEY_TEST_REDIS` (e.g. `redis://127.0.0.1:6379`): unset, every test prints
//! a note and passes; set but unreachable, every test fails. Each test keys its data under a
//! fresh random prefix, so tests share one server without seeing each other. The outage test
//! also needs `redis-server` on the `PATH`: it runs its own server on a free port.

use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::entropy::{OsEntropy, random_hex};
use latchkey_core::store::{CodeStore, CodeTake, Rotation, StoreErrorKind, TokenStore};
use latchkey_core::token::{FamilyId, NewTokens, TokenKind};
use latchkey_redis::RedisStore;
use latchkey_testkit::conformance::{code, pair, record};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The configured Redis URL, or `None` (with a note) when the tests should skip.
fn redis_url() -> Option<String> {
    match std::env::var("LATCHKEY_TEST_REDIS") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped: set LATCHKEY_TEST_REDIS=redis://127.0.0.1:6379 to run the Redis tests"
            );
            None
        }
    }
}

fn fresh_prefix() -> String {
    format!("latchkey-test:{}", random_hex(&OsEntropy, 8))
}

async fn fresh_store() -> Option<RedisStore> {
    let url = redis_url()?;
    let store = RedisStore::connect(&url, &fresh_prefix())
        .await
        .unwrap_or_else(|err| {
            panic!("LATCHKEY_TEST_REDIS={url} is set, but that Redis cannot be used: {err}")
        });
    Some(store)
}

latchkey_testkit::fast_store_conformance!(fresh_store());

mod pending {
    //! Pending requests in Redis run the shared pending-request suite, with Redis's own expiry.
    latchkey_testkit::pending_store_conformance!(super::fresh_store(), true);
}

/// Redis can find a client's tokens for one subject (the intersection of its owner sets), so
/// it revokes a grant's tokens; memcached, which has no such index, does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_a_grant_can_be_revoked_without_touching_others() {
    let Some(store) = fresh_store().await else {
        return;
    };
    latchkey_testkit::conformance::tokens_of_a_grant_can_be_revoked_without_touching_others(store)
        .await;
}

/// Every key the store writes, index sets included, expires with the records it serves.
#[tokio::test]
async fn nothing_outlives_its_records() {
    let Some(url) = redis_url() else {
        return;
    };
    let prefix = fresh_prefix();
    let store = RedisStore::connect(&url, &prefix).await.expect("connect");
    let fam = FamilyId::generate(&OsEntropy);
    let short = NewTokens {
        access: record(TokenKind::Access, "client-b", &fam, 2).1,
        refresh: Some(record(TokenKind::Refresh, "client-b", &fam, 3).1),
    };
    store
        .save_tokens(&short, SystemClock.now())
        .await
        .expect("save");
    let (_, short_code) = code("client-b", 2);
    store
        .save_code(&short_code, SystemClock.now())
        .await
        .expect("save code");

    let client = redis::Client::open(url.as_str()).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let pattern = format!("{prefix}:*");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .expect("keys");
    // Two tokens and a code, their family and client, and two subjects (`pair` and `code`
    // issue for different users).
    assert_eq!(keys.len(), 7, "{keys:?}");
    for key in &keys {
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("ttl");
        assert!((0..=3).contains(&ttl), "{key} lives {ttl} s");
    }

    tokio::time::sleep(Duration::from_millis(4_100)).await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert!(keys.is_empty(), "keys outlived their records: {keys:?}");
}

/// A `redis-server` of our own, killed when dropped.
struct OwnRedis {
    child: Child,
    port: u16,
}

impl OwnRedis {
    fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("LATCHKEY_TEST_REDIS is set: redis-server must be on the PATH");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
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

/// With Redis gone, every call answers `Unavailable` within about the timeout, never hangs;
/// once Redis is back on the same port, the same store works again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_unavailable_quickly_and_heals_by_itself() {
    if redis_url().is_none() {
        return;
    }
    let mut server = OwnRedis::start(free_port());
    let url = format!("redis://127.0.0.1:{}", server.port);
    let timeout = Duration::from_millis(500);
    let store = RedisStore::connect_with_timeout(&url, &fresh_prefix(), timeout)
        .await
        .expect("connect");
    let saved = pair("client-outage", &FamilyId::generate(&OsEntropy));
    store
        .save_tokens(&saved, SystemClock.now())
        .await
        .expect("save");
    assert!(
        store
            .find_token(&saved.access.digest)
            .await
            .expect("find")
            .is_some()
    );

    server.stop();
    // Each call may wait out one timeout, plus a little for the reconnect attempt it starts.
    let bound = timeout * 2;
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
            started.elapsed() < bound * 4,
            "round {round}: four calls took {:?}",
            started.elapsed()
        );
    }

    let port = server.port;
    drop(server);
    let _server = OwnRedis::start(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(err) = store.ping().await {
        assert_eq!(err.kind(), StoreErrorKind::Unavailable);
        assert!(
            Instant::now() < deadline,
            "the store never reconnected: {err}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The restarted server kept nothing (no persistence) and knows no scripts: both come back.
    assert_eq!(
        store.find_token(&saved.access.digest).await.expect("find"),
        None
    );
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

/// Rate and failure counters: two handles (two server nodes) count into one window, which
/// Redis forgets when it ends; the same policy as the memory counters.
#[tokio::test]
async fn counters_are_shared_between_nodes_and_expire() {
    use latchkey_core::clock::UnixTime;
    use latchkey_core::limits::Counters;
    let Some(url) = redis_url() else {
        return;
    };
    let prefix = fresh_prefix();
    let node_a = RedisStore::connect(&url, &prefix).await.expect("connect");
    let node_b = RedisStore::connect(&url, &prefix).await.expect("connect");
    let now = UnixTime(1_000);
    let first = node_a.hit("k", 2, now).await.expect("hit");
    assert_eq!(first.count, 1);
    assert_eq!(first.last, now);
    let second = node_b.hit("k", 2, UnixTime(1_001)).await.expect("hit");
    assert_eq!(second.count, 2);
    assert_eq!(second.last, now, "the previous hit's time");
    let seen = node_a
        .peek("k", UnixTime(1_001))
        .await
        .expect("peek")
        .expect("open window");
    assert_eq!((seen.count, seen.last), (2, UnixTime(1_001)));
    assert!(node_a.peek("other", now).await.expect("peek").is_none());
    node_b.clear("k").await.expect("clear");
    assert!(node_a.peek("k", now).await.expect("peek").is_none());
    // Redis expires the window by itself.
    node_a.hit("gone", 1, now).await.expect("hit");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(node_a.peek("gone", now).await.expect("peek").is_none());
}

/// A reservation checks and counts in one step: 40 concurrent attempts from two nodes against
/// a gate of 10 reserve exactly 10; a refused one changes nothing; a refund takes one back;
/// the spacing of the backoff holds as in `Gate::refusal`.
#[tokio::test]
async fn issue_14_reservations_are_atomic_across_nodes() {
    use latchkey_core::clock::UnixTime;
    use latchkey_core::limits::{Counters, Gate, Reserve};
    let Some(url) = redis_url() else {
        return;
    };
    let prefix = fresh_prefix();
    let node_a = RedisStore::connect(&url, &prefix).await.expect("connect");
    let node_b = RedisStore::connect(&url, &prefix).await.expect("connect");
    let now = UnixTime(1_000);
    let gate = Gate {
        limit: 10,
        slow_after: u64::MAX,
        max_delay: 0,
    };
    let attempts = (0..40).map(|n| {
        let node = if n % 2 == 0 { &node_a } else { &node_b };
        node.reserve("pair", gate, 60, now)
    });
    let verdicts = futures_join_all(attempts).await;
    let reserved = verdicts
        .iter()
        .filter(|v| matches!(v, Ok(Reserve::Reserved)))
        .count();
    assert_eq!(reserved, 10, "{verdicts:?}");
    let seen = node_a.peek("pair", now).await.expect("peek").expect("open");
    assert_eq!(seen.count, 10, "refusals counted nothing");
    node_b.refund("pair").await.expect("refund");
    assert_eq!(
        node_a
            .reserve("pair", gate, 60, now)
            .await
            .expect("reserve"),
        Reserve::Reserved
    );
    // Spacing: after 2 failures, the next attempt waits 2 s after the last.
    let spaced = Gate {
        limit: u64::MAX,
        slow_after: 2,
        max_delay: 30,
    };
    for _ in 0..2 {
        assert_eq!(
            node_a
                .reserve("user", spaced, 60, now)
                .await
                .expect("reserve"),
            Reserve::Reserved
        );
    }
    assert_eq!(
        node_b
            .reserve("user", spaced, 60, now)
            .await
            .expect("reserve"),
        Reserve::Refused(UnixTime(1_002))
    );
    assert_eq!(
        node_b
            .reserve("user", spaced, 60, UnixTime(1_002))
            .await
            .expect("reserve"),
        Reserve::Reserved
    );
}

/// Polls every future to completion, concurrently, without another dependency.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut slots: Vec<Option<F::Output>> = handles.iter().map(|_| None).collect();
    let mut handles: Vec<_> = handles.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, handle) in slots.iter_mut().zip(handles.iter_mut()) {
            if let Some(f) = handle {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *slot = Some(v);
                        *handle = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    slots.into_iter().flatten().collect()
}
