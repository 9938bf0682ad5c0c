//! Measures the token log on the client-credentials workload, against the SQLite store:
//! fsyncs and bytes written per token, memory per live token, restart (replay) time.
//!
//! ```text
//! cargo run --release -p latchkey-tokenlog --example tokenlog_bench -- [log|sqlite] [N] [WRITERS]
//! cargo run --release -p latchkey-tokenlog --example tokenlog_bench -- seed DIR N [WRITERS]
//! cargo run --release -p latchkey-tokenlog --example tokenlog_bench -- open DIR
//! ```
//!
//! `TOKENLOG_PREALLOCATE=0` turns preallocation off (the segment then grows with each
//! group commit), for a before/after of it with one build.
//!
//! `log` (default) issues N tokens (default 10^6) from WRITERS concurrent tasks (default 64)
//! in a child process, kills it (SIGKILL) once every token is acknowledged, then opens the log
//! three times and times each open: after the crash (from the checkpoint the log took while
//! it was written, and the log after it), after a clean shutdown (from the checkpoint the
//! close wrote), and with no checkpoint (the whole log replayed); `sqlite` issues them into the
//! SQLite store instead. `seed DIR N [WRITERS]` leaves a log of N live tokens in DIR, closed
//! cleanly, for a server to start on (`bench/run.py`'s growth runs); `open DIR` times one
//! open of it (under `perf record`, say). Under `valgrind --tool=callgrind` with a small N, the instruction counts per token
//! of the two modes compare the stores' CPU cost (the setup's share is the same in both).

use latchkey_core::client::{ClientId, GrantType};
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::entropy::{OsEntropy, random_token};
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Secret;
use latchkey_core::store::TokenStore;
use latchkey_core::token::{FamilyId, NewTokens, TokenKind, TokenRecord};
use latchkey_tokenlog::{Options, TokenLog};
use std::time::Instant;

/// Resident memory of this process, in bytes.
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// CPU time of this process so far, user and kernel, in seconds (`/proc/self/stat` counts in
/// `USER_HZ` ticks, 100 a second on Linux): the figure that holds on a shared machine, where
/// wall time does not.
fn cpu() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let field = |n: usize| -> f64 {
        rest.split_whitespace()
            .nth(n)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 100.0
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (field(11), field(12))
}

/// Bytes this process caused to be written to storage so far (`/proc/self/io` `write_bytes`).
fn write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("write_bytes: "))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The log's options: the defaults, with `TOKENLOG_PREALLOCATE` (bytes) if set.
fn options() -> Options {
    let mut options = Options::default();
    if let Some(bytes) = std::env::var("TOKENLOG_PREALLOCATE")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        options.preallocate = bytes;
    }
    options
}

/// A client-credentials access token as the grant makes it.
fn token() -> NewTokens {
    let now = SystemClock.now();
    NewTokens {
        access: TokenRecord {
            digest: Secret::new(random_token(&OsEntropy, 32)).digest(),
            kind: TokenKind::Access,
            client_id: ClientId::parse("bench-client").expect("client id"),
            subject: None,
            username: None,
            scope: ScopeSet::parse("read").expect("scope"),
            grant_type: GrantType::ClientCredentials,
            family: FamilyId::generate(&OsEntropy),
            family_issued_at: now,
            issued_at: now,
            expires_at: now.plus(86_400),
            revoked: false,
            rotated: false,
            binding: None,
            attached: Default::default(),
            auth: None,
            cnf: None,
            audience: Default::default(),
            actor: None,
        },
        refresh: None,
    }
}

async fn issue<S: TokenStore + Clone>(store: S, n: usize, writers: usize) -> f64 {
    let started = Instant::now();
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            let count = n / writers + usize::from(w < n % writers);
            tokio::spawn(async move {
                for _ in 0..count {
                    store
                        .save_tokens(&token(), SystemClock.now())
                        .await
                        .expect("save");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("writer");
    }
    started.elapsed().as_secs_f64()
}

/// Opens the log in `dir`, issues `n` tokens from `writers` tasks and prints what it cost.
async fn fill(dir: &std::path::Path, n: usize, writers: usize) -> TokenLog {
    let base = rss();
    let (user0, sys0) = cpu();
    let written0 = write_bytes();
    let log = TokenLog::open(dir, options()).expect("open");
    let secs = issue(log.clone(), n, writers).await;
    let stats = log.stats();
    // What the kernel wrote for the writes so far (the page cache is flushed by the fsyncs,
    // so nothing acknowledged is still pending).
    let written = write_bytes() - written0;
    let (user1, sys1) = cpu();
    println!(
        "cpu: {:.1} us user + {:.1} us kernel per token; {:.1} bytes written per token \
         (/proc/self/io write_bytes, checkpoints included)",
        (user1 - user0) * 1e6 / n as f64,
        (sys1 - sys0) * 1e6 / n as f64,
        written as f64 / n as f64,
    );
    println!(
        "log: {n} tokens in {secs:.2} s ({:.0}/s); {:.4} fsyncs and {:.1} bytes written \
         (+ {:.1} preallocated) per token; {} frames, {} fsyncs, {} checkpoints; RSS {:.1} B \
         per live token while writing",
        n as f64 / secs,
        stats.fsyncs as f64 / n as f64,
        stats.bytes_written as f64 / n as f64,
        stats.bytes_preallocated as f64 / n as f64,
        stats.frames,
        stats.fsyncs,
        stats.checkpoints,
        (rss().saturating_sub(base)) as f64 / n as f64,
    );
    log
}

/// Opens the log in `dir` and prints what the open cost; returns the log.
fn restart(dir: &std::path::Path, label: &str) -> TokenLog {
    let before = rss();
    let (user0, sys0) = cpu();
    let started = Instant::now();
    let log = TokenLog::open(dir, options()).expect("reopen");
    let replay = started.elapsed();
    let (user1, sys1) = cpu();
    let after = rss();
    let stats = log.stats();
    println!(
        "restart, {label}: {} live tokens ({} from the checkpoint, {:.1} MB of log replayed) \
         in {:.0} ms wall, {:.0} ms CPU ({:.0} user + {:.0} kernel); RSS after {:.1} B per \
         live token",
        stats.live_tokens,
        stats.tokens_from_checkpoint,
        stats.bytes_replayed as f64 / 1e6,
        replay.as_secs_f64() * 1000.0,
        (user1 - user0 + sys1 - sys0) * 1000.0,
        (user1 - user0) * 1000.0,
        (sys1 - sys0) * 1000.0,
        after.saturating_sub(before) as f64 / stats.live_tokens.max(1) as f64,
    );
    log
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mode = args.get(1).map_or("log", String::as_str);
    if mode == "fill" || mode == "seed" {
        // `fill DIR N WRITERS`: the child `log` kills; `seed DIR N [WRITERS]`: a log of N live
        // tokens, closed cleanly, for a server to start on (`bench/run.py`'s growth runs).
        let dir = std::path::PathBuf::from(args.get(2).expect("a directory"));
        let n: usize = args.get(3).and_then(|a| a.parse().ok()).expect("a count");
        let writers: usize = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(64);
        let log = fill(&dir, n, writers).await;
        if mode == "seed" {
            drop(log);
            return;
        }
        println!("filled");
        // Killed here by the parent (SIGKILL), log open.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    if mode == "open" {
        // `open DIR`: times one open of the log in DIR (for a profiler), and leaves it as it
        // was (no close, so no new checkpoint).
        let dir = std::path::PathBuf::from(args.get(2).expect("a directory"));
        let log = restart(&dir, "open");
        std::mem::forget(log);
        std::process::exit(0);
    }
    let n: usize = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let writers: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(64);
    let dir = std::env::temp_dir().join(format!("tokenlog-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    match mode {
        "sqlite" => {
            let store = latchkey_sql::SqliteStore::open(dir.join("latchkey.db"))
                .await
                .expect("open sqlite");
            let secs = issue(store.clone(), n, writers).await;
            println!(
                "sqlite: {n} tokens in {secs:.2} s ({:.0}/s)",
                n as f64 / secs
            );
            store.close().await;
        }
        _ => {
            // The tokens are issued by a child process, killed (SIGKILL) once they are all
            // acknowledged: the first restart is a restart after a crash, from whatever
            // checkpoint the child's log took while it was written.
            let mut child = std::process::Command::new(std::env::current_exe().expect("self"))
                .args([
                    "fill",
                    &dir.to_string_lossy(),
                    &n.to_string(),
                    &writers.to_string(),
                ])
                .stdout(std::process::Stdio::piped())
                .spawn()
                .expect("start the child");
            let out = child.stdout.take().expect("child's output");
            for line in std::io::BufRead::lines(std::io::BufReader::new(out)) {
                let line = line.expect("child's output");
                if line == "filled" {
                    break;
                }
                println!("{line}");
            }
            child.kill().expect("SIGKILL the child");
            child.wait().expect("reap the child");
            let log = restart(&dir, "after SIGKILL");
            // A checkpoint of the whole index, as the log takes while serving.
            let (user0, sys0) = cpu();
            let started = Instant::now();
            log.checkpoint().expect("checkpoint");
            let (user1, sys1) = cpu();
            println!(
                "checkpoint of {} tokens: {:.1} MB in {:.0} ms wall, {:.0} ms CPU ({:.0} user + \
                 {:.0} kernel)",
                log.stats().live_tokens,
                std::fs::metadata(dir.join("checkpoint")).map_or(0, |m| m.len()) as f64 / 1e6,
                started.elapsed().as_secs_f64() * 1000.0,
                (user1 - user0 + sys1 - sys0) * 1000.0,
                (user1 - user0) * 1000.0,
                (sys1 - sys0) * 1000.0,
            );
            // The clean close writes a checkpoint at the log's end.
            drop(log);
            drop(restart(&dir, "after a clean shutdown"));
            // Without any checkpoint: the whole log replayed.
            let _ = std::fs::remove_file(dir.join("checkpoint"));
            drop(restart(&dir, "whole log (no checkpoint)"));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
