//! The one password-check path under pressure: concurrent guesses, lockouts scored per user
//! and address, and user names that must not reach a counter or a log.

use latchkey_core::clock::{ManualClock, UnixTime};
use latchkey_core::events::{Event, EventSink};
use latchkey_core::limits::{Backoff, Limits, MemoryCounters};
use latchkey_core::login::PasswordCheck;
use latchkey_core::provider::Provider;
use latchkey_core::secret::Secret;
use latchkey_core::store::StoreError;
use latchkey_core::store::memory::MemoryStore;
use latchkey_core::user::{AuthenticatedUser, UserAuthenticator};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Knows alice; every check takes a while, as Argon2 does, so concurrent checks overlap.
#[derive(Clone, Default)]
struct SlowUsers {
    checks: Arc<AtomicUsize>,
}

impl UserAuthenticator for SlowUsers {
    async fn authenticate(
        &self,
        username: &str,
        password: &Secret,
    ) -> Result<Option<AuthenticatedUser>, StoreError> {
        self.checks.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        Ok((username == "alice" && password.expose() == "right")
            .then(|| AuthenticatedUser::new("u-alice", "alice")))
    }
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn emit(&self, event: &Event) {
        self.0.lock().expect("events").push(event.clone());
    }
}

struct Kit {
    provider: Provider<MemoryStore, SlowUsers>,
    users: SlowUsers,
    clock: Arc<ManualClock>,
    events: Arc<Recorder>,
}

fn kit() -> Kit {
    let users = SlowUsers::default();
    let clock = Arc::new(ManualClock::new(UnixTime(1_000_000)));
    let events = Arc::new(Recorder::default());
    let mut limits = Limits::new(Arc::new(MemoryCounters::new()));
    limits.backoff = Some(Backoff::default());
    let provider = Provider::builder(MemoryStore::new(), users.clone())
        .clock(clock.clone())
        .events(events.clone())
        .limits(limits)
        .build()
        .expect("valid");
    Kit {
        provider,
        users,
        clock,
        events,
    }
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().expect("ip"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_concurrent_guesses_verify_at_most_the_limit() {
    let kit = kit();
    let tasks: Vec<_> = (0..40)
        .map(|n| {
            let p = kit.provider.clone();
            tokio::spawn(async move {
                p.check_password(
                    "alice",
                    &Secret::new(format!("guess{n}")),
                    ip("192.0.2.1"),
                    "c",
                )
                .await
            })
        })
        .collect();
    let mut throttled = 0;
    for task in tasks {
        match task.await.expect("joined").expect("checked") {
            PasswordCheck::Throttled(_) => throttled += 1,
            PasswordCheck::Wrong => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let checks = kit.users.checks.load(Ordering::SeqCst);
    let policy = Backoff::default();
    assert!(
        checks as u64 <= policy.slow_after,
        "{checks} passwords verified at once; the backoff admits {}",
        policy.slow_after
    );
    assert_eq!(throttled + checks, 40);
}

#[tokio::test]
async fn issue_14_failures_from_one_address_do_not_lock_the_owner_out_from_another() {
    let kit = kit();
    let p = &kit.provider;
    let wrong = Secret::new("wrong");
    // An attacker at one address spends the pair's whole budget, waiting out the spacing.
    let mut failures = 0;
    while failures < Backoff::default().max_failures {
        match p
            .check_password("alice", &wrong, ip("203.0.113.66"), "c")
            .await
            .expect("checked")
        {
            PasswordCheck::Wrong => failures += 1,
            PasswordCheck::Throttled(t) => kit.clock.advance(t.retry_after),
            other => panic!("unexpected {other:?}"),
        }
    }
    kit.clock.advance(Backoff::default().max_delay);
    let right = Secret::new("right");
    // That address stays locked out of alice, even with the right password...
    assert!(matches!(
        p.check_password("alice", &right, ip("203.0.113.66"), "c")
            .await
            .expect("checked"),
        PasswordCheck::Throttled(_)
    ));
    // ...but alice, from her own address, gets in once the per-user spacing has passed.
    assert!(matches!(
        p.check_password("alice", &right, ip("198.51.100.7"), "c")
            .await
            .expect("checked"),
        PasswordCheck::Ok(_)
    ));
}

#[tokio::test]
async fn issue_14_malformed_user_names_are_neither_checked_counted_nor_logged() {
    let kit = kit();
    let p = &kit.provider;
    for name in [
        "a".repeat(64 * 1024),
        "bob\nfake=line".to_owned(),
        String::new(),
    ] {
        let checked = p
            .check_password(&name, &Secret::new("x"), ip("192.0.2.5"), "c")
            .await
            .expect("checked");
        assert_eq!(checked, PasswordCheck::Wrong);
    }
    assert_eq!(kit.users.checks.load(Ordering::SeqCst), 0, "no lookup");
    assert!(kit.events.0.lock().expect("events").is_empty(), "no event");
}

#[tokio::test]
async fn every_check_is_audited() {
    let kit = kit();
    let p = &kit.provider;
    let _ = p
        .check_password("alice", &Secret::new("wrong"), ip("192.0.2.5"), "c")
        .await;
    let _ = p
        .check_password("alice", &Secret::new("right"), ip("192.0.2.5"), "c")
        .await;
    let events = kit.events.0.lock().expect("events").clone();
    assert!(matches!(&events[0], Event::UserAuthFailed { username, .. } if username == "alice"));
    assert!(matches!(&events[1], Event::UserAuthenticated { subject, .. } if subject == "u-alice"));
}
