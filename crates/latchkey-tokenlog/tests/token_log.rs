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
        ..Options::default()
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

/// A copy of the log's files as they are now, while it is open: what a crash (SIGKILL) leaves
/// on disk, since every acknowledged write is in the files (and synced) by then.
fn crash_copy(dir: &std::path::Path) -> PathBuf {
    let copy = fresh_dir();
    for entry in std::fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        let name = path.file_name().expect("name").to_owned();
        if name != "LOCK" && path.is_file() {
            std::fs::copy(&path, copy.join(name)).expect("copy");
        }
    }
    copy
}

/// Preallocation on, a small segment and a small margin, no background sweeps.
fn preallocated() -> Options {
    Options {
        segment_bytes: 256 << 10,
        sweep_every: Duration::from_secs(3600),
        compact_below: 0.5,
        preallocate: 32 << 10,
    }
}

#[tokio::test]
async fn replay_stops_at_the_preallocated_zeros_after_a_crash() {
    let dir = fresh_dir();
    let log = TokenLog::open(&dir, preallocated()).expect("open");
    let mut saved = Vec::new();
    // Writes until the preallocator has zero-filled ahead of the writer (it runs beside the
    // writer; each save gives it another chance), bounded by a count, not a time.
    for i in 0..2_000 {
        let tokens = pair("client-p", &FamilyId(format!("p{i}")));
        log.save_tokens(&tokens, now()).await.expect("save");
        saved.push(tokens);
        if log.stats().bytes_preallocated > 0 && i >= 20 {
            break;
        }
    }
    assert!(log.stats().bytes_preallocated > 0, "{:?}", log.stats());
    let copy = crash_copy(&dir);
    let segment = newest_segment(&copy);
    let bytes = std::fs::read(&segment).expect("read");
    assert_eq!(
        bytes.last(),
        Some(&0),
        "the crash image ends in preallocated zeros"
    );
    drop(log);

    // The copy has no checkpoint newer than its log: the whole log is replayed.
    let _ = std::fs::remove_file(copy.join("checkpoint"));
    let len = bytes.len() as u64;
    let reopened = TokenLog::open(&copy, preallocated()).expect("reopen over zeros");
    assert_eq!(reopened.stats().tokens_from_checkpoint, 0);
    assert_eq!(
        std::fs::metadata(&segment).expect("stat").len(),
        len,
        "zeros after the end are kept, not cut"
    );
    for tokens in &saved {
        assert_eq!(
            reopened
                .find_token(&tokens.access.digest)
                .await
                .expect("find"),
            Some(tokens.access.clone())
        );
    }
    // Writing goes on into the preallocated space, and survives another reopen.
    let more = pair("client-p", &FamilyId("p-after".into()));
    reopened.save_tokens(&more, now()).await.expect("save");
    drop(reopened);
    let reopened = TokenLog::open(&copy, preallocated()).expect("reopen");
    assert!(
        reopened
            .find_token(&more.access.digest)
            .await
            .expect("find")
            .is_some()
    );
}

#[tokio::test]
async fn a_torn_write_inside_preallocated_space_is_cut_and_elsewhere_refused() {
    let dir = fresh_dir();
    let log = TokenLog::open(&dir, small()).expect("open");
    let mut saved = Vec::new();
    for i in 0..40 {
        let tokens = pair("client-z", &FamilyId(format!("z{i}")));
        log.save_tokens(&tokens, now()).await.expect("save");
        saved.push(tokens);
    }
    drop(log);
    std::fs::remove_file(dir.join("checkpoint")).expect("a clean close writes a checkpoint");
    let newest = newest_segment(&dir);
    let good = std::fs::metadata(&newest).expect("stat").len();

    // Zeros, then bytes a torn write left further on (its first pages never reached the disk).
    let mut bytes = std::fs::read(&newest).expect("read");
    bytes.extend_from_slice(&[0; 600]);
    bytes.extend_from_slice(&[7; 40]);
    bytes.extend_from_slice(&[0; 100]);
    std::fs::write(&newest, &bytes).expect("write");
    let log = TokenLog::open(&dir, small()).expect("a torn tail is cut");
    assert_eq!(std::fs::metadata(&newest).expect("stat").len(), good);
    for tokens in &saved {
        assert!(
            log.find_token(&tokens.access.digest)
                .await
                .expect("find")
                .is_some()
        );
    }
    drop(log);
    std::fs::remove_file(dir.join("checkpoint")).expect("checkpoint");

    // A sealed segment ends in zeros (its unused preallocated space): that is fine...
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    paths.sort();
    assert!(paths.len() > 2);
    let first = &paths[0];
    let mut bytes = std::fs::read(first).expect("read");
    bytes.extend_from_slice(&[0; 300]);
    std::fs::write(first, &bytes).expect("write");
    drop(TokenLog::open(&dir, small()).expect("zeros after a sealed segment's end"));
    std::fs::remove_file(dir.join("checkpoint")).expect("checkpoint");
    // ...but anything else after its end is corruption, not a torn write.
    bytes.extend_from_slice(&[9; 8]);
    std::fs::write(first, &bytes).expect("write");
    let err = TokenLog::open(&dir, small()).expect_err("data after a sealed segment's end");
    assert_eq!(err.kind(), StoreErrorKind::Corrupt);
}

#[tokio::test]
async fn a_clean_restart_loads_the_checkpoint_and_replays_only_what_follows() {
    let dir = fresh_dir();
    let log = TokenLog::open(&dir, small()).expect("open");
    let family = FamilyId("fam-cp".into());
    let first = pair("client-cp", &family);
    log.save_tokens(&first, now()).await.expect("save");
    let mut many = Vec::new();
    for i in 0..30 {
        let tokens = pair(&format!("client-{}", i % 3), &FamilyId(format!("cp-{i}")));
        log.save_tokens(&tokens, now()).await.expect("save");
        many.push(tokens);
    }
    assert!(
        log.revoke_token(&many[0].access.digest)
            .await
            .expect("revoke")
    );
    drop(log);
    assert!(dir.join("checkpoint").exists());

    let log = TokenLog::open(&dir, small()).expect("reopen");
    // Each pair is two tokens.
    assert_eq!(log.stats().tokens_from_checkpoint, 62);
    assert!(
        log.find_token(&many[0].access.digest)
            .await
            .expect("find")
            .expect("kept")
            .revoked
    );
    for tokens in &many[1..] {
        assert_eq!(
            log.find_token(&tokens.access.digest).await.expect("find"),
            Some(tokens.access.clone())
        );
    }
    // Changes after the checkpoint, with the hashes of families and subjects it was made
    // with: a family revoked by reuse, a client's tokens deleted.
    let old_refresh = first.refresh.as_ref().expect("refresh").digest;
    assert_eq!(
        log.rotate_refresh(&old_refresh, &pair("client-cp", &family), now())
            .await
            .expect("rotate"),
        Rotation::Rotated
    );
    assert_eq!(
        log.rotate_refresh(&old_refresh, &pair("client-cp", &family), now())
            .await
            .expect("rotate"),
        Rotation::Reused {
            family: family.clone()
        }
    );
    assert_eq!(
        log.delete_tokens_of(&TokenOwner::Client("client-2".into()))
            .await
            .expect("delete"),
        20
    );
    let late = pair("client-late", &FamilyId("late".into()));
    log.save_tokens(&late, now()).await.expect("save");

    // A crash now: the checkpoint on disk is the old one; the log after it is replayed.
    let copy = crash_copy(&dir);
    drop(log);
    let log = TokenLog::open(&copy, small()).expect("open the crash image");
    assert_eq!(log.stats().tokens_from_checkpoint, 62);
    assert!(
        log.find_token(&first.access.digest)
            .await
            .expect("find")
            .expect("kept")
            .revoked,
        "the family revoked after the checkpoint"
    );
    for (i, tokens) in many.iter().enumerate() {
        let found = log.find_token(&tokens.access.digest).await.expect("find");
        assert_eq!(found.is_none(), i % 3 == 2, "token {i}");
    }
    assert!(
        log.find_token(&late.access.digest)
            .await
            .expect("find")
            .is_some()
    );
}

#[tokio::test]
async fn a_checkpoint_that_does_not_match_is_not_used() {
    // Two logs with the same segment numbers.
    let (a, b) = (fresh_dir(), fresh_dir());
    let mut kept = Vec::new();
    for (dir, client) in [(&a, "client-a"), (&b, "client-b")] {
        let log = TokenLog::open(dir, small()).expect("open");
        for i in 0..20 {
            let tokens = pair(client, &FamilyId(format!("m{i}")));
            log.save_tokens(&tokens, now()).await.expect("save");
            kept.push(tokens);
        }
    }
    let (of_a, of_b) = kept.split_at(20);

    // A's checkpoint beside B's segments: B is replayed whole, none of A's tokens appear.
    std::fs::copy(a.join("checkpoint"), b.join("checkpoint")).expect("copy");
    let log = TokenLog::open(&b, small()).expect("open");
    assert_eq!(log.stats().tokens_from_checkpoint, 0);
    assert_eq!(log.stats().live_tokens, 40);
    assert_eq!(
        log.find_token(&of_a[0].access.digest).await.expect("find"),
        None
    );
    for tokens in of_b {
        assert!(
            log.find_token(&tokens.access.digest)
                .await
                .expect("find")
                .is_some()
        );
    }
    drop(log);

    // A damaged checkpoint: not used either.
    let path = a.join("checkpoint");
    let mut bytes = std::fs::read(&path).expect("read");
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&path, &bytes).expect("write");
    let log = TokenLog::open(&a, small()).expect("open");
    assert_eq!(log.stats().tokens_from_checkpoint, 0);
    assert_eq!(log.stats().live_tokens, 40);
    drop(log);
    // The clean close wrote a good one again.
    let log = TokenLog::open(&a, small()).expect("open");
    assert_eq!(log.stats().tokens_from_checkpoint, 40);
}

/// Every token of `all` as `log` finds it.
async fn found(
    log: &TokenLog,
    all: &[NewTokens],
) -> Vec<Option<latchkey_core::token::TokenRecord>> {
    let mut out = Vec::new();
    for tokens in all {
        out.push(log.find_token(&tokens.access.digest).await.expect("find"));
        if let Some(refresh) = &tokens.refresh {
            out.push(log.find_token(&refresh.digest).await.expect("find"));
        }
    }
    out
}

#[tokio::test]
async fn a_checkpoint_taken_while_serving_is_used_after_a_crash() {
    let dir = fresh_dir();
    let log = TokenLog::open(&dir, small()).expect("open");
    let family = FamilyId("fam-live".into());
    let first = pair("client-l", &family);
    log.save_tokens(&first, now()).await.expect("save");
    let mut all = vec![first.clone()];
    for i in 0..30 {
        let tokens = pair(&format!("client-{}", i % 3), &FamilyId(format!("l-{i}")));
        log.save_tokens(&tokens, now()).await.expect("save");
        all.push(tokens);
    }
    log.checkpoint().expect("checkpoint");
    assert_eq!(log.stats().checkpoints, 1);
    // After it: a reused refresh token revokes its family, a client's tokens are deleted,
    // more tokens come.
    let old_refresh = first.refresh.as_ref().expect("refresh").digest;
    let second = pair("client-l", &family);
    assert_eq!(
        log.rotate_refresh(&old_refresh, &second, now())
            .await
            .expect("rotate"),
        Rotation::Rotated
    );
    all.push(second.clone());
    assert_eq!(
        log.rotate_refresh(&old_refresh, &pair("client-l", &family), now())
            .await
            .expect("rotate"),
        Rotation::Reused {
            family: family.clone()
        }
    );
    assert_eq!(
        log.delete_tokens_of(&TokenOwner::Client("client-2".into()))
            .await
            .expect("delete"),
        20
    );
    for i in 0..5 {
        let tokens = pair("client-after", &FamilyId(format!("after-{i}")));
        log.save_tokens(&tokens, now()).await.expect("save");
        all.push(tokens);
    }
    let expected = found(&log, &all).await;
    // A crash now (the copy), and the same crash image without its checkpoint.
    let copy = crash_copy(&dir);
    let whole = crash_copy(&dir);
    std::fs::remove_file(whole.join("checkpoint")).expect("the checkpoint taken while serving");
    drop(log);

    let from_checkpoint = TokenLog::open(&copy, small()).expect("open the crash image");
    let replayed = TokenLog::open(&whole, small()).expect("open the crash image");
    let (with, without) = (from_checkpoint.stats(), replayed.stats());
    assert_eq!(with.tokens_from_checkpoint, 62, "{with:?}");
    assert_eq!(without.tokens_from_checkpoint, 0);
    assert!(
        with.bytes_replayed * 2 < without.bytes_replayed,
        "only the log after the checkpoint is replayed: {with:?} {without:?}"
    );
    assert_eq!(with.live_tokens, without.live_tokens);
    assert_eq!(found(&from_checkpoint, &all).await, expected);
    assert_eq!(found(&replayed, &all).await, expected);
    assert!(
        expected[0].as_ref().expect("kept").revoked,
        "the family revoked after it"
    );
    assert_eq!(expected.iter().filter(|t| t.is_none()).count(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_checkpoint_taken_during_writes_gives_what_a_whole_replay_gives() {
    let dir = fresh_dir();
    // More tokens than one slab chunk holds (8,192), so the checkpoint copies several chunks
    // while writes go on between them.
    let options = Options {
        segment_bytes: 1 << 20,
        ..small()
    };
    let log = TokenLog::open(&dir, options.clone()).expect("open");
    let writers: Vec<_> = (0..16)
        .map(|w| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in 0..600 {
                    let tokens = pair(&format!("client-{}", i % 4), &FamilyId(format!("w{w}-{i}")));
                    log.save_tokens(&tokens, now()).await.expect("save");
                    mine.push(tokens);
                }
                mine
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in writers {
        all.extend(w.await.expect("writer"));
    }
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checkpoints = {
        let (log, done) = (log.clone(), std::sync::Arc::clone(&done));
        tokio::task::spawn_blocking(move || {
            let mut taken = 0;
            while !done.load(Ordering::Relaxed) && taken < 200 {
                log.checkpoint().expect("checkpoint");
                taken += 1;
            }
            taken
        })
    };
    // Meanwhile: new tokens, revocations, rotations (some reused, revoking a family), and a
    // client's tokens deleted.
    let changers: Vec<_> = all
        .chunks(all.len() / 8)
        .enumerate()
        .map(|(c, part)| {
            let (log, part) = (log.clone(), part.to_vec());
            tokio::spawn(async move {
                let mut made = Vec::new();
                for (i, tokens) in part.iter().enumerate() {
                    match i % 5 {
                        0 => {
                            log.revoke_token(&tokens.access.digest)
                                .await
                                .expect("revoke");
                        }
                        1 => {
                            let old = tokens.refresh.as_ref().expect("refresh").digest;
                            let next =
                                pair(tokens.access.client_id.as_str(), &tokens.access.family);
                            log.rotate_refresh(&old, &next, now())
                                .await
                                .expect("rotate");
                            if i % 10 == 1 {
                                // Reused: the family is revoked.
                                let again = pair("client-0", &tokens.access.family);
                                log.rotate_refresh(&old, &again, now())
                                    .await
                                    .expect("rotate");
                            }
                            made.push(next);
                        }
                        2 => {
                            let tokens = pair("client-new", &FamilyId(format!("new-{c}-{i}")));
                            log.save_tokens(&tokens, now()).await.expect("save");
                            made.push(tokens);
                        }
                        _ => {}
                    }
                    if c == 3 && i == part.len() / 2 {
                        log.delete_tokens_of(&TokenOwner::Client("client-3".into()))
                            .await
                            .expect("delete");
                    }
                }
                made
            })
        })
        .collect();
    for c in changers {
        all.extend(c.await.expect("changer"));
    }
    done.store(true, Ordering::Relaxed);
    assert!(checkpoints.await.expect("checkpoints") > 0);
    let expected = found(&log, &all).await;
    let copy = crash_copy(&dir);
    let whole = crash_copy(&dir);
    std::fs::remove_file(whole.join("checkpoint")).expect("a checkpoint was taken");
    drop(log);

    let from_checkpoint = TokenLog::open(&copy, options.clone()).expect("open");
    let replayed = TokenLog::open(&whole, options).expect("open");
    assert!(from_checkpoint.stats().tokens_from_checkpoint > 0);
    assert_eq!(replayed.stats().tokens_from_checkpoint, 0);
    assert_eq!(
        from_checkpoint.stats().live_tokens,
        replayed.stats().live_tokens
    );
    assert_eq!(found(&from_checkpoint, &all).await, expected);
    assert_eq!(found(&replayed, &all).await, expected);
}

#[tokio::test]
async fn a_torn_checkpoint_is_not_used_and_a_half_written_one_is_ignored() {
    let dir = fresh_dir();
    let log = TokenLog::open(&dir, small()).expect("open");
    let mut all = Vec::new();
    for i in 0..40 {
        let tokens = pair("client-t", &FamilyId(format!("t{i}")));
        log.save_tokens(&tokens, now()).await.expect("save");
        all.push(tokens);
    }
    log.checkpoint().expect("checkpoint");
    for i in 0..10 {
        let tokens = pair("client-t", &FamilyId(format!("t-after-{i}")));
        log.save_tokens(&tokens, now()).await.expect("save");
        all.push(tokens);
    }
    let expected = found(&log, &all).await;
    assert!(expected.iter().all(Option::is_some));
    let good = std::fs::read(dir.join("checkpoint")).expect("read");

    // Torn (a crash in the middle of a rename the filesystem did not order, or a damaged
    // disk): the whole log is replayed.
    for cut in [1, 4, 100, good.len() / 2, good.len() - 8] {
        let copy = crash_copy(&dir);
        std::fs::write(copy.join("checkpoint"), &good[..good.len() - cut]).expect("write");
        let log = TokenLog::open(&copy, small()).expect("open");
        assert_eq!(log.stats().tokens_from_checkpoint, 0, "cut {cut}");
        assert_eq!(found(&log, &all).await, expected, "cut {cut}");
    }
    // Killed while writing the next checkpoint: its half-written file is never read, and the
    // one in place is used.
    let copy = crash_copy(&dir);
    std::fs::write(copy.join("checkpoint.tmp"), &good[..good.len() / 2]).expect("write");
    let log = TokenLog::open(&copy, small()).expect("open");
    assert_eq!(log.stats().tokens_from_checkpoint, 80);
    assert_eq!(found(&log, &all).await, expected);
}
