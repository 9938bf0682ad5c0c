//! Fresh, isolated databases for the tests of the server-backed stores (PostgreSQL, MySQL).
//!
//! Each test gets a database of its own, created on the server that an environment variable
//! names (`LATCHKEY_TEST_POSTGRES`, `LATCHKEY_TEST_MYSQL`), so tests can run in parallel and
//! never see each other's rows. The policy is the same for every backend:
//! - variable unset: the test prints a note and passes, so `cargo test` works anywhere;
//! - variable set but the server unreachable: the test fails, saying which variable and why,
//!   so a CI run that meant to test a backend cannot pass without testing it.
//!
//! Databases are named `lk_<unix seconds>_<pid>_<n>`. The conformance macro has no teardown
//! hook (the store is dropped inside it), so creating a database first drops, best-effort, the
//! `lk_` databases that nobody is connected to and that are over a minute old: what earlier
//! tests left behind. Tests that hold their store to the end drop their own database.

// Each test file uses the helpers of its own backend only.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long reaching the server may take before the test fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An unused database older than this was left behind by an earlier test (younger ones may
/// be between their creation and their first connection).
const STALE_AFTER_SECS: u64 = 60;

/// A database created for one test.
#[derive(Clone, Debug)]
pub struct FreshDatabase {
    /// Its name, `lk_…`.
    pub name: String,
    /// The server URL with the database in place of the one the variable named.
    pub url: String,
}

/// The server URL in `var`, or `None` (after a note) when the variable is unset or empty.
pub fn server_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            eprintln!("skipped: set {var} to a server URL to run this test");
            None
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A database name no other test, in this run or a concurrent one, uses.
fn fresh_name() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "lk_{}_{}_{}",
        unix_now(),
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether `name` is one of ours, created more than [`STALE_AFTER_SECS`] ago.
fn is_stale(name: &str) -> bool {
    let Some(created) = name
        .strip_prefix("lk_")
        .and_then(|rest| rest.split('_').next())
        .and_then(|secs| secs.parse::<u64>().ok())
    else {
        return false;
    };
    created + STALE_AFTER_SECS < unix_now()
}

/// `url` with its database (the path) replaced by `name`; the query string is kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    let mut out = format!("{}/{name}", &base[..path]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Awaits `connect`, failing the test with a message that names `var` if the server cannot
/// be reached.
async fn reach<C, E: std::fmt::Display>(
    var: &str,
    url: &str,
    connect: impl std::future::Future<Output = Result<C, E>>,
) -> C {
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => panic!("{var} is set, but the server at {url} cannot be used: {err}"),
        Err(_) => panic!(
            "{var} is set, but the server at {url} did not answer within {CONNECT_TIMEOUT:?}"
        ),
    }
}

/// Fresh PostgreSQL databases, on the server named by `LATCHKEY_TEST_POSTGRES`.
#[cfg(feature = "postgres")]
pub mod postgres {
    use super::{FreshDatabase, fresh_name, is_stale, reach, with_database};
    use sqlx::{AssertSqlSafe, Connection, PgConnection};

    /// The variable naming the test server.
    pub const VAR: &str = "LATCHKEY_TEST_POSTGRES";

    async fn admin(server: &str) -> PgConnection {
        reach(VAR, server, PgConnection::connect(server)).await
    }

    /// A new, empty database, or `None` (after a note) when [`VAR`] is unset.
    pub async fn fresh_database() -> Option<(String, FreshDatabase)> {
        let server = super::server_url(VAR)?;
        let mut admin = admin(&server).await;
        let ours: Vec<String> = sqlx::query_scalar(
            "SELECT datname FROM pg_database d WHERE datname LIKE 'lk\\_%'
             AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datname = d.datname)",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap_or_default();
        for stale in ours.iter().filter(|name| is_stale(name)) {
            let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {stale} WITH (FORCE)"
            )))
            .execute(&mut admin)
            .await;
        }
        let name = fresh_name();
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|err| panic!("{VAR}: cannot create database {name}: {err}"));
        let _ = admin.close().await;
        let url = with_database(&server, &name);
        Some((server, FreshDatabase { name, url }))
    }

    /// Drops `db`, best-effort; every store on it must be closed first.
    pub async fn drop_database(server: &str, db: &FreshDatabase) {
        let mut admin = admin(server).await;
        let _ = sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            db.name
        )))
        .execute(&mut admin)
        .await;
        let _ = admin.close().await;
    }
}

/// Fresh MySQL/MariaDB databases, on the server named by `LATCHKEY_TEST_MYSQL`.
#[cfg(feature = "mysql")]
pub mod mysql {
    use super::{FreshDatabase, fresh_name, is_stale, reach, with_database};
    use sqlx::{AssertSqlSafe, Connection, MySqlConnection};

    /// The variable naming the test server.
    pub const VAR: &str = "LATCHKEY_TEST_MYSQL";

    async fn admin(server: &str) -> MySqlConnection {
        reach(VAR, server, MySqlConnection::connect(server)).await
    }

    /// A new, empty database, or `None` (after a note) when [`VAR`] is unset.
    pub async fn fresh_database() -> Option<(String, FreshDatabase)> {
        let server = super::server_url(VAR)?;
        let mut admin = admin(&server).await;
        let ours: Vec<String> = sqlx::query_scalar(
            "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata s
             WHERE schema_name LIKE 'lk\\_%' AND NOT EXISTS
                 (SELECT 1 FROM information_schema.processlist p WHERE p.db = s.schema_name)",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap_or_default();
        for stale in ours.iter().filter(|name| is_stale(name)) {
            let _ = sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE IF EXISTS {stale}")))
                .execute(&mut admin)
                .await;
        }
        let name = fresh_name();
        sqlx::raw_sql(AssertSqlSafe(format!(
            "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )))
        .execute(&mut admin)
        .await
        .unwrap_or_else(|err| panic!("{VAR}: cannot create database {name}: {err}"));
        let _ = admin.close().await;
        let url = with_database(&server, &name);
        Some((server, FreshDatabase { name, url }))
    }

    /// Drops `db`, best-effort.
    pub async fn drop_database(server: &str, db: &FreshDatabase) {
        let mut admin = admin(server).await;
        let _ = sqlx::raw_sql(AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {}",
            db.name
        )))
        .execute(&mut admin)
        .await;
        let _ = admin.close().await;
    }
}

#[test]
fn the_database_is_swapped_and_the_query_kept() {
    assert_eq!(
        with_database("postgres://u@h:5432/postgres?sslmode=disable", "lk_1"),
        "postgres://u@h:5432/lk_1?sslmode=disable"
    );
    assert_eq!(
        with_database("mysql://root@h:3306", "lk_2"),
        "mysql://root@h:3306/lk_2"
    );
    assert!(is_stale("lk_1_2_3"));
    assert!(!is_stale(&fresh_name()));
    assert!(!is_stale("postgres"));
}
