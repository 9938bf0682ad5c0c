//! What a client lookup costs on the embedded store, with and without the in-process client
//! cache, and what the two ways of noticing a change made by another process cost: the
//! trigger-kept `client_changes` counter (what the store reads) and `PRAGMA data_version`.
//!
//! ```sh
//! cargo run --release -p latchkey-sql --example client_lookup [ITERATIONS]
//! ```
//!
//! Each figure is the best of five rounds (wall-clock nanoseconds per call on this thread), so
//! a busy machine inflates them all alike; compare them with one another.

use latchkey_core::client::NewClient;
use latchkey_core::clock::UnixTime;
use latchkey_core::store::ClientStore as _;
use latchkey_sql::SqliteStore;
use rusqlite::{Connection, OpenFlags};
use std::time::{Duration, Instant};

/// The best of five rounds of `n` calls of `f`, in nanoseconds per call; `between` runs
/// before each call, outside the timing.
fn best(n: u32, mut between: impl FnMut(), mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let mut spent = Duration::ZERO;
            for _ in 0..n {
                between();
                let start = Instant::now();
                f();
                spent += start.elapsed();
            }
            spent.as_nanos() as f64 / f64::from(n)
        })
        .fold(f64::INFINITY, f64::min)
}

/// The output of a future that is ready at its first poll (or at a later one: it is polled
/// until it is).
fn ready<T>(f: impl std::future::Future<Output = T>) -> T {
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(20_000);
    let dir = std::env::temp_dir().join(format!("latchkey-client-lookup-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("latchkey.db");
    let store = SqliteStore::open(&path).await?;
    let (client, _) = NewClient::confidential("bench")
        .id("bench-client")
        .redirect_uris(["https://app.example/cb"])
        .build(&latchkey_core::entropy::OsEntropy, UnixTime(1_000));
    store.put_client(&client).await?;

    // "Another process": a connection of its own that changes rows.
    let other = Connection::open(&path)?;
    other.busy_timeout(Duration::from_secs(5))?;
    let touch_client = || {
        other
            .execute(
                "UPDATE clients SET name = name WHERE id = 'bench-client'",
                [],
            )
            .map(|_| ())
            .expect("update");
    };
    let touch_other_table = || {
        other
            .execute(
                "INSERT OR REPLACE INTO replay_keys (digest, expires_at) VALUES (zeroblob(32), 0)",
                [],
            )
            .map(|_| ())
            .expect("insert");
    };
    // A read connection as the store's readers open theirs.
    let reader = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    reader.pragma_update(None, "query_only", "ON")?;
    let counter = || {
        let mut statement = reader
            .prepare_cached("SELECT n FROM client_changes WHERE id = 0")
            .expect("prepare");
        let n: i64 = statement.query_row([], |row| row.get(0)).expect("counter");
        std::hint::black_box(n);
    };
    let data_version = || {
        let mut statement = reader
            .prepare_cached("PRAGMA data_version")
            .expect("prepare");
        let n: i64 = statement
            .query_row([], |row| row.get(0))
            .expect("data_version");
        std::hint::black_box(n);
    };
    let lookup = || {
        // The embedded store reads inline: the future is ready at its first poll.
        let found = ready(store.get_client("bench-client"));
        assert!(found.expect("lookup").is_some());
    };

    println!("ns per call, best of 5 rounds of {n}:");
    println!(
        "  get_client, cached (no change)        {:>8.0}",
        best(n, || {}, lookup)
    );
    println!(
        "  get_client, the client changed before  {:>8.0}",
        best(n, touch_client, lookup)
    );
    println!(
        "  change counter read, no commit         {:>8.0}",
        best(n, || {}, counter)
    );
    println!(
        "  change counter read, after a commit    {:>8.0}",
        best(n, touch_other_table, counter)
    );
    println!(
        "  PRAGMA data_version, no commit         {:>8.0}",
        best(n, || {}, data_version)
    );
    println!(
        "  PRAGMA data_version, after a commit    {:>8.0}",
        best(n, touch_other_table, data_version)
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
