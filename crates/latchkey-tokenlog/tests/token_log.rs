//! The token log against the shared store conformance suite (tokens in the log; clients,
//! users, codes and the rest in SQLite, as the server runs it), plus what only a log must
//! show: state survives a reopen, an unfinished write at the end is cut off, corruption
//! elsewhere is refused, and compaction deletes old segments without losing a token's state.

use latchkey_core::clock::{Clock, SystemClock, UnixTime};
use latchkey_core::store::tiered::Tiered;
use latchkey_core::store::{Rotation, StoreErrorKind, TokenOwner, TokenStore};
use latchkey_core::token::{FamilyId, NewTokens, TokenKind};
use latchkey_sql::SqliteStore;
use latchkey_testkit::conformance::{pair, record};
use latchkey_tokenlog::{LogTokens, Options, TokenLog};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// A directory no other test uses, under cargo's scratch directory for integration tests.
fn fresh_dir() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "latchkey-tokenlog/{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    dir
}

async fn fresh_store() -> Tiered<SqliteStore, LogTokens<SqliteStore>> {
    let dir = fresh_dir();
    let sqlite = SqliteStore::open(dir.join("latchkey.db"))
        .await
        .expect("open sqlite");
    let log = TokenLog::open(&dir.join("tokens"), Options::default()).expect("open log");
    Tiered::new(sqlite.clone(), LogTokens::new(log, sqlite))
}

latchkey_testkit::store_conformance!(fresh_store());

fn now() -> UnixTime {
    SystemClock.now()
}

/// Small segments and no background sweeps: the tests drive maintenance themselves.
fn small() -> Options {
    Options {
        segment_bytes: 4096,
        sweep_every: Duration::from_secs(3600),
        compact_below: 0.5,
    }
}

fn segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .expect("list")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
        })
        .count()
}

#[tokio::test]
async fn every_acknowledged_change_survives_a_reopen() {
    let dir = fresh_dir();
    let log = TokenLog::open(&dir, small()).expect("open");
    let family = FamilyId("fam-reopen".into());
    let first = pair("client-r", &family);
    log.save_tokens(&first, now()).await.expect("save");
    let old_refresh = first.refresh.as_ref().expect("refresh").digest;
    let second = pair("client-r", &family);
    assert_eq!(
        log.rotate_refresh(&old_refresh, &second, now())
            .await
            .expect("rotate"),
        Rotation::Rotated
    );
    let other = pair("client-o", &FamilyId("fam-other".into()));
    log.save_tokens(&other, now()).await.expect("save");
    assert!(
        log.revoke_token(&other.access.digest)
            .await
            .expect("revoke")
    );
    // Enough tokens to fill several segments.
    let mut many = Vec::new();
    for i in 0..60 {
        let tokens = pair(&format!("client-{}", i % 4), &FamilyId(format!("fam-{i}")));
        log.save_tokens(&tokens, now()).await.expect("save");
        many.push(tokens);
    }
    assert_eq!(
        log.delete_tokens_of(&TokenOwner::Client("client-3".into()))
            .await
            .expect("delete"),
        30
    );
    let stats = log.stats();
    assert!(stats.segments > 3, "{stats:?}");
    assert!(stats.fsyncs >= stats.segments, "{stats:?}");
    drop(log);

    let log = TokenLog::open(&dir, small()).expect("reopen");
    let found = log
        .find_token(&old_refresh)
        .await
        .expect("find")
        .expect("kept");
    assert!(found.rotated && !found.revoked);
    assert_eq!(
        log.find_token(&second.access.digest).await.expect("find"),
        Some(second.access.clone())
    );
    assert!(
        log.find_token(&other.access.digest)
            .await
            .expect("find")
            .expect("kept")
            .revoked
    );
    for (i, tokens) in many.iter().enumerate() {
        let found = log.find_token(&tokens.access.digest).await.expect("find");
        if i % 4 == 3 {
            assert_eq!(found, None, "a deleted client's token came back");
        } else {
            assert_eq!(found, Some(tokens.access.clone()));
        }
    }
    // Reuse detection still works after the reopen, on the state replayed.
    assert_eq!(
        log.rotate_refresh(&old_refresh, &pair("client-r", &family), now())
            .await
            .expect("rotate"),
        Rotation::Reused { family }
    );
    drop(log);
    let log = TokenLog::open(&dir, small()).expect("reopen");
    let second_refresh = second.refresh.as_ref().expect("refresh").digest;
    assert!(
        log.find_token(&second_refresh)
            .await
            .expect("find")
            .expect("kept")
            .revoked,
        "the family revocation was lost"
    );
}

fn newest_segment(dir: &std::path::Path) -> PathBuf {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    paths.sort();
    paths.pop().expect("a segment")
}

#[tokio::test]
async fn an_unfinished_write_at_the_end_is_cut_off() {
    let dir = fresh_dir();
    let log = TokenLog::open(&dir, Options::default()).expect("open");
    let kept = pair("client-t", &FamilyId("fam-t".into()));
    log.save_tokens(&kept, now()).await.expect("save");
    drop(log);
    let path = newest_segment(&dir);
    let good = std::fs::metadata(&path).expect("stat").len();
    // A frame header promising more bytes than were written, as a crash mid-write leaves it.
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.extend_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9, 9]);
    std::fs::write(&path, &bytes).expect("write");

    let log = TokenLog::open(&dir, Options::default()).expect("reopen");
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), good);
    assert_eq!(
        log.find_token(&kept.access.digest).await.expect("find"),
        Some(kept.access.clone())
    );
    // And writing goes on after the cut.
    let more = pair("client-t", &FamilyId("fam-t2".into()));
    log.save_tokens(&more, now()).await.expect("save");
    drop(log);
    let log = TokenLog::open(&dir, Options::default()).expect("reopen");
    assert!(
        log.find_token(&more.access.digest)
            .await
            .expect("find")
            .is_some()
    );
}

#[tokio::test]
async fn corruption_before_the_end_is_refused() {
    let dir = fresh_dir();
    let log = TokenLog::open(&dir, small()).expect("open");
    for i in 0..40 {
        log.save_tokens(&pair("client-c", &FamilyId(format!("f{i}"))), now())
            .await
            .expect("save");
    }
    drop(log);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    let first = &paths[0];
    let mut bytes = std::fs::read(first).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(first, &bytes).expect("write");
    let err = TokenLog::open(&dir, small()).expect_err("corrupt log must not open");
    assert_eq!(err.kind(), StoreErrorKind::Corrupt);
}

#[tokio::test]
async fn compaction_deletes_old_segments_and_keeps_every_live_token() {
    let dir = fresh_dir();
    let log = TokenLog::open(&dir, small()).expect("open");
    // Short-lived tokens fill the first segments, a few long-lived ones are mixed in.
    let mut lasting = Vec::new();
    for i in 0..80 {
        let ttl = if i % 10 == 0 { 3600 } else { 1 };
        let tokens = NewTokens {
            access: record(
                TokenKind::Access,
                "client-k",
                &FamilyId(format!("k{i}")),
                ttl,
            )
            .1,
            refresh: None,
        };
        log.save_tokens(&tokens, now()).await.expect("save");
        if ttl > 1 {
            lasting.push(tokens.access);
        }
    }
    assert!(log.revoke_token(&lasting[0].digest).await.expect("revoke"));
    let before = segments(&dir);
    assert!(before > 4, "{before} segments");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    // One compaction step per call, oldest segment first.
    for _ in 0..before {
        log.maintain().expect("maintain");
    }
    let after = segments(&dir);
    assert!(after < before, "{before} -> {after} segments");
    assert!(log.stats().segments_compacted > 0);
    assert_eq!(log.stats().live_tokens, lasting.len() as u64);
    drop(log);
    let log = TokenLog::open(&dir, small()).expect("reopen");
    for (i, token) in lasting.iter().enumerate() {
        let found = log
            .find_token(&token.digest)
            .await
            .expect("find")
            .expect("a live token was lost by compaction");
        assert_eq!(found.revoked, i == 0, "state lost by compaction");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_share_fsyncs() {
    let dir = fresh_dir();
    let log = TokenLog::open(&dir, Options::default()).expect("open");
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move {
                for j in 0..20 {
                    let tokens = pair("client-g", &FamilyId(format!("g{i}-{j}")));
                    log.save_tokens(&tokens, now()).await.expect("save");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let stats = log.stats();
    assert_eq!(stats.frames, 64 * 20);
    assert!(stats.fsyncs < stats.frames, "no group commit: {stats:?}");
}

#[tokio::test]
async fn one_process_holds_a_log_at_a_time() {
    let dir = fresh_dir();
    let log = TokenLog::open(&dir, small()).expect("open");
    let err = TokenLog::open(&dir, small()).expect_err("a second writer must be refused");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    drop(log);
    let log = TokenLog::open(&dir, small()).expect("free once the first is closed");
    let tokens = pair("client-l", &FamilyId("fam-l".into()));
    log.save_tokens(&tokens, now()).await.expect("save");
}

#[tokio::test]
async fn a_command_beside_the_server_reads_the_log_and_posts_its_deletions() {
    let dir = fresh_dir();
    let server = TokenLog::open(&dir, small()).expect("open");
    let doomed = pair("client-doomed", &FamilyId("fam-d".into()));
    let kept = pair("client-kept", &FamilyId("fam-k".into()));
    server.save_tokens(&doomed, now()).await.expect("save");
    server.save_tokens(&kept, now()).await.expect("save");

    let command = latchkey_tokenlog::LazyTokenLog::new(&dir, small());
    let follower = command
        .get()
        .expect("a follower opens while the server holds the log");
    assert_eq!(
        follower
            .find_token(&kept.access.digest)
            .await
            .expect("find"),
        Some(kept.access.clone())
    );
    assert_eq!(
        follower
            .delete_tokens_of(&TokenOwner::Client("client-doomed".into()))
            .await
            .expect("posted"),
        2
    );
    // A follower never issues tokens.
    let err = follower
        .save_tokens(&pair("client-kept", &FamilyId("fam-x".into())), now())
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);

    // The server applies the posted deletion at its next sweep.
    assert!(
        server
            .find_token(&doomed.access.digest)
            .await
            .expect("find")
            .is_some()
    );
    server.maintain().expect("maintain");
    assert_eq!(
        server
            .find_token(&doomed.access.digest)
            .await
            .expect("find"),
        None
    );
    assert!(
        server
            .find_token(&kept.access.digest)
            .await
            .expect("find")
            .is_some()
    );
    drop(server);
    let server = TokenLog::open(&dir, small()).expect("reopen");
    assert_eq!(
        server
            .find_token(&doomed.access.digest)
            .await
            .expect("find"),
        None
    );

    // Posted while no server runs: applied at the next start, before anything is served.
    drop(server);
    let holder = TokenLog::open(&dir, small()).expect("open");
    let command = latchkey_tokenlog::LazyTokenLog::new(&dir, small());
    command
        .get()
        .expect("follower")
        .revoke_token(&kept.access.digest)
        .await
        .expect("posted");
    drop(holder);
    let server = TokenLog::open(&dir, small()).expect("reopen");
    assert!(
        server
            .find_token(&kept.access.digest)
            .await
            .expect("find")
            .expect("kept")
            .revoked
    );
}
