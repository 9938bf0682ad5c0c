//! The database-server stores (PostgreSQL and MySQL/MariaDB, one implementation over a
//! dialect) against the shared store conformance suite, each test on a database of its own,
//! plus what only a database shared by several server nodes must show: two stores on one
//! database see each other's writes at once and race fairly, a closed store and an unreachable
//! server answer `Unavailable` within seconds; and, because MySQL collations ignore trailing
//! spaces, that names still match exactly there.
//!
//! Every test runs once per backend (the modules `postgres` and `mysql`). Set
//! `LATCHKEY_TEST_POSTGRES` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`) and
//! `LATCHKEY_TEST_MYSQL` (e.g. `mysql://root@127.0.0.1:3306/test`) to server URLs to run them;
//! unset, each test that needs its server prints a note and passes.

#![cfg(all(feature = "postgres", feature = "mysql"))]

mod common;

use common::FreshDatabase;
use latchkey_core::client::NewClient;
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::entropy::OsEntropy;
use latchkey_core::store::{
    ClientStore, CodeStore, CodeTake, Rotation, StoreErrorKind, TokenStore, UserStore,
};
use latchkey_core::token::FamilyId;
use latchkey_core::user::User;
use latchkey_sql::{Dialect, MySqlDialect, PgDialect, SqlxStore};
use latchkey_testkit::conformance::{code, pair};
use std::time::{Duration, Instant};

/// A database server the suite runs on, and how to make fresh databases on it.
trait Server: Dialect {
    /// The backend's name, in messages.
    const LABEL: &'static str;
    /// A URL where nothing listens (port 1 of the loopback address).
    const UNREACHABLE: &'static str;
    /// The schema of version 2, and a consumer registered before secret salts (issue 14).
    const SCHEMA_2: [&'static str; 3];
    /// A new, empty database, or `None` (after a note) when no server is configured.
    async fn fresh_database() -> Option<(String, FreshDatabase)>;
    /// Drops `db`, best-effort; every store on it must be closed first.
    async fn drop_database(server: &str, db: &FreshDatabase);
    /// Runs `sql` (several statements) on the database at `url`.
    async fn run_sql(url: &str, sql: &'static str);
}

impl Server for PgDialect {
    const LABEL: &'static str = "PostgreSQL";
    const UNREACHABLE: &'static str = "postgres://latchkey@127.0.0.1:1/latchkey";
    const SCHEMA_2: [&'static str; 3] = [
        include_str!("../migrations/postgres/0001_init.sql"),
        include_str!("../migrations/postgres/0002_oauth1.sql"),
        "CREATE TABLE latchkey_schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);
         INSERT INTO latchkey_schema_migrations VALUES (1, 0), (2, 0);
         INSERT INTO oauth1_consumers VALUES ('legacy-consumer', NULL, 1600000000);",
    ];
    async fn fresh_database() -> Option<(String, FreshDatabase)> {
        common::postgres::fresh_database().await
    }
    async fn drop_database(server: &str, db: &FreshDatabase) {
        common::postgres::drop_database(server, db).await;
    }
    async fn run_sql(url: &str, sql: &'static str) {
        let pool = sqlx::PgPool::connect(url).await.expect("connect");
        sqlx::raw_sql(sql).execute(&pool).await.expect("run SQL");
        pool.close().await;
    }
}

impl Server for MySqlDialect {
    const LABEL: &'static str = "MySQL/MariaDB";
    const UNREACHABLE: &'static str = "mysql://latchkey@127.0.0.1:1/latchkey";
    const SCHEMA_2: [&'static str; 3] = [
        include_str!("../migrations/mysql/0001_init.sql"),
        include_str!("../migrations/mysql/0002_oauth1.sql"),
        "CREATE TABLE latchkey_schema_migrations (version BIGINT NOT NULL PRIMARY KEY, applied_at BIGINT NOT NULL) ENGINE = InnoDB;
         INSERT INTO latchkey_schema_migrations VALUES (1, 0), (2, 0);
         INSERT INTO oauth1_consumers VALUES ('legacy-consumer', NULL, 1600000000);",
    ];
    async fn fresh_database() -> Option<(String, FreshDatabase)> {
        common::mysql::fresh_database().await
    }
    async fn drop_database(server: &str, db: &FreshDatabase) {
        common::mysql::drop_database(server, db).await;
    }
    async fn run_sql(url: &str, sql: &'static str) {
        let pool = sqlx::MySqlPool::connect(url).await.expect("connect");
        sqlx::raw_sql(sql).execute(&pool).await.expect("run SQL");
        pool.close().await;
    }
}

/// A store on a fresh database, or `None` when no server is configured.
async fn fresh_store<D: Server>() -> Option<SqlxStore<D>> {
    let (_, db) = D::fresh_database().await?;
    Some(
        SqlxStore::<D>::open(&db.url)
            .await
            .unwrap_or_else(|err| panic!("open a {} store on {}: {err}", D::LABEL, db.url)),
    )
}

async fn two_nodes_on_one_database_see_each_others_writes<D: Server>() {
    let Some((server, db)) = D::fresh_database().await else {
        return;
    };
    // Both nodes start at once: the migration lock lets exactly one of them migrate.
    let (a, b) = tokio::join!(SqlxStore::<D>::open(&db.url), SqlxStore::<D>::open(&db.url));
    let (a, b) = (a.expect("open node a"), b.expect("open node b"));
    let now = SystemClock.now();

    let family = FamilyId::generate(&OsEntropy);
    let first = pair("client-nodes", &family);
    a.save_tokens(&first, now).await.expect("save on a");
    assert_eq!(
        b.find_token(&first.access.digest).await.expect("find on b"),
        Some(first.access.clone()),
        "a token saved on one node is found on the other"
    );
    assert!(
        a.revoke_token(&first.access.digest)
            .await
            .expect("revoke on a")
    );
    assert!(
        b.find_token(&first.access.digest)
            .await
            .expect("find on b")
            .expect("known")
            .revoked,
        "a revoke on one node is seen on the other"
    );
    let old = first.refresh.as_ref().expect("refresh").digest;
    assert_eq!(
        a.rotate_refresh(&old, &pair("client-nodes", &family), now)
            .await
            .expect("rotate on a"),
        Rotation::Rotated
    );
    assert_eq!(
        b.rotate_refresh(&old, &pair("client-nodes", &family), now)
            .await
            .expect("rotate again on b"),
        Rotation::Reused { family },
        "a refresh token rotated on one node is a reuse on the other"
    );

    // Eight takers spread over both nodes: exactly one gets the code.
    let (_, record) = code("client-nodes", 60);
    a.save_code(&record, now).await.expect("save code on a");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let node = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (digest, client) = (record.digest, record.client_id.clone());
        tasks.push(tokio::spawn(async move {
            node.take_code(&digest, &client, now).await
        }));
    }
    let mut taken = 0;
    for task in tasks {
        match task.await.expect("task ran").expect("take") {
            CodeTake::Taken(_) => taken += 1,
            CodeTake::Replayed { family } => assert_eq!(family, record.family),
            CodeTake::Invalid => panic!("a saved, unexpired code was invalid"),
        }
    }
    assert_eq!(taken, 1, "exactly one node redeems the code");

    a.close().await;
    b.close().await;
    D::drop_database(&server, &db).await;
}

async fn calls_after_close_are_unavailable<D: Server>() {
    let Some((server, db)) = D::fresh_database().await else {
        return;
    };
    let store = SqlxStore::<D>::open(&db.url).await.expect("open");
    store.close().await;
    assert_eq!(
        store.ping().await.expect_err("closed").kind(),
        StoreErrorKind::Unavailable
    );
    let err = store
        .save_tokens(
            &pair("client-z", &FamilyId::generate(&OsEntropy)),
            SystemClock.now(),
        )
        .await
        .expect_err("closed");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    D::drop_database(&server, &db).await;
}

/// Needs no server: nothing listens on port 1 of the loopback address.
async fn an_unreachable_server_is_unavailable_within_seconds<D: Server>() {
    let started = Instant::now();
    let err = SqlxStore::<D>::open(D::UNREACHABLE)
        .await
        .expect_err("nothing listens on port 1");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable, "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}

async fn issue_14_a_consumer_from_schema_2_keeps_its_legacy_secret<D: Server>() {
    let Some((server, db)) = D::fresh_database().await else {
        return;
    };
    for schema in D::SCHEMA_2 {
        // The schema and a consumer from before secret salts.
        D::run_sql(&db.url, schema).await;
    }
    let store = SqlxStore::<D>::open(&db.url).await.expect("upgrade");
    latchkey_testkit::oauth1_conformance::oauth1_legacy_consumer_keeps_its_secret(store.clone())
        .await;
    store.close().await;
    D::drop_database(&server, &db).await;
}

/// The suite of one backend: the shared conformance suites, then the tests above.
macro_rules! server_suite {
    ($backend:ident, $dialect:ty) => {
        mod $backend {
            use super::*;

            // `return` leaves the test itself: with no server configured, it passes without
            // running.
            latchkey_testkit::store_conformance!(std::future::ready(
                match fresh_store::<$dialect>().await {
                    Some(store) => store,
                    None => return,
                }
            ));

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn two_nodes_on_one_database_see_each_others_writes() {
                super::two_nodes_on_one_database_see_each_others_writes::<$dialect>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn calls_after_close_are_unavailable() {
                super::calls_after_close_are_unavailable::<$dialect>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_unreachable_server_is_unavailable_within_seconds() {
                super::an_unreachable_server_is_unavailable_within_seconds::<$dialect>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn issue_14_a_consumer_from_schema_2_keeps_its_legacy_secret() {
                super::issue_14_a_consumer_from_schema_2_keeps_its_legacy_secret::<$dialect>()
                    .await;
            }

            mod oauth1 {
                //! The OAuth 1.0a store on this backend runs the shared OAuth 1.0a store suite.
                latchkey_testkit::oauth1_store_conformance!(std::future::ready(
                    match super::fresh_store::<$dialect>().await {
                        Some(store) => store,
                        None => return,
                    }
                ));
            }

            mod pending {
                //! Pending requests on this backend run the shared pending-request suite.
                latchkey_testkit::pending_store_conformance!(
                    super::fresh_store::<$dialect>(),
                    false
                );
            }
        }
    };
}

server_suite!(postgres, latchkey_sql::PgDialect);
server_suite!(mysql, latchkey_sql::MySqlDialect);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_names_match_exactly_despite_trailing_space_padding() {
    let Some((server, db)) = MySqlDialect::fresh_database().await else {
        return;
    };
    let store = SqlxStore::<MySqlDialect>::open(&db.url)
        .await
        .expect("open");
    let now = SystemClock.now();
    let user = User {
        id: "u-pad".into(),
        username: "alice".into(),
        password_hash: "x".into(),
        created_at: now,
        claims: Default::default(),
    };
    store.put_user(&user).await.expect("put user");
    assert_eq!(store.get_user("alice ").await.expect("get"), None);
    assert!(!store.delete_user("alice ").await.expect("delete"));
    assert_eq!(store.get_user("alice").await.expect("get"), Some(user));
    let (client, _) = NewClient::public("Padded").build(&OsEntropy, now);
    store.put_client(&client).await.expect("put client");
    let padded = format!("{} ", client.id);
    assert_eq!(store.get_client(&padded).await.expect("get"), None);
    assert_eq!(
        store.get_client(client.id.as_str()).await.expect("get"),
        Some(client)
    );
    store.close().await;
    MySqlDialect::drop_database(&server, &db).await;
}
