//! The SQLite store against the shared store conformance suite, plus what only a durable,
//! group-committing store must show: data survives a reopen, concurrent writes share commits,
//! expired codes are swept, undecodable rows are reported as corrupt, and a database from an
//! older schema is upgraded in place.

#![cfg(feature = "sqlite")]

use latchkey_core::client::NewClient;
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::entropy::OsEntropy;
use latchkey_core::scope::ScopeSet;
use latchkey_core::store::{
    ClientStore, CodeStore, CodeTake, ConsentStore, Rotation, StoreErrorKind, TokenStore, UserStore,
};
use latchkey_core::token::FamilyId;
use latchkey_core::user::User;
use latchkey_sql::SqliteStore;
use latchkey_testkit::conformance::{code, pair};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A path no other test uses, under cargo's scratch directory for integration tests.
fn fresh_path() -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("latchkey-sql");
    std::fs::create_dir_all(&dir).expect("create the scratch directory");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    dir.join(format!(
        "{}-{nanos}-{}.db",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ))
}

async fn fresh_store() -> SqliteStore {
    SqliteStore::open(fresh_path())
        .await
        .expect("open a fresh SQLite store")
}

latchkey_testkit::store_conformance!(fresh_store());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_closing_and_reopening_the_file() {
    let path = fresh_path();
    let now = SystemClock.now();
    let store = SqliteStore::open(&path).await.expect("open");
    let (client, _) = NewClient::confidential("Durable")
        .redirect_uris(["https://app.example/cb"])
        .build(&OsEntropy, now);
    store.put_client(&client).await.expect("put client");
    let user = User {
        id: "u-durable".into(),
        username: "durable".into(),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: now,
        claims: Default::default(),
    };
    store.put_user(&user).await.expect("put user");
    let family = FamilyId::generate(&OsEntropy);
    let first = pair(client.id.as_str(), &family);
    store.save_tokens(&first, now).await.expect("save");
    let old = first.refresh.as_ref().expect("refresh").digest;
    let second = pair(client.id.as_str(), &family);
    assert_eq!(
        store
            .rotate_refresh(&old, &second, now)
            .await
            .expect("rotate"),
        Rotation::Rotated
    );
    store.close().await;

    let store = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(
        store.get_client(client.id.as_str()).await.expect("get"),
        Some(client)
    );
    assert_eq!(store.get_user("durable").await.expect("get"), Some(user));
    let rotated = store.find_token(&old).await.expect("find").expect("kept");
    assert!(rotated.rotated, "the rotated flag was lost");
    for record in second.records() {
        assert_eq!(
            store
                .find_token(&record.digest)
                .await
                .expect("find")
                .as_ref(),
            Some(record)
        );
    }
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_commits() {
    let store = fresh_store().await;
    let now = SystemClock.now();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let store = store.clone();
        let tokens = pair("client-g", &FamilyId::generate(&OsEntropy));
        tasks.push(tokio::spawn(async move {
            store.save_tokens(&tokens, now).await.map(|()| tokens)
        }));
    }
    let mut saved = Vec::new();
    for task in tasks {
        saved.push(task.await.expect("task ran").expect("save"));
    }
    for tokens in &saved {
        for record in tokens.records() {
            assert_eq!(
                store
                    .find_token(&record.digest)
                    .await
                    .expect("find")
                    .as_ref(),
                Some(record)
            );
        }
    }
    let stats = store.stats();
    assert_eq!(stats.ops, 200);
    assert!(
        stats.batches < stats.ops,
        "no writes were grouped: {stats:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_write_fails_alone() {
    let store = fresh_store().await;
    let now = SystemClock.now();
    let taken = pair("client-d", &FamilyId::generate(&OsEntropy));
    store.save_tokens(&taken, now).await.expect("save");
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = store.clone();
        // One of them reuses a digest that is already stored.
        let tokens = if i == 25 {
            taken.clone()
        } else {
            pair("client-d", &FamilyId::generate(&OsEntropy))
        };
        tasks.push(tokio::spawn(async move {
            store.save_tokens(&tokens, now).await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let outcome = task.await.expect("task ran");
        if i == 25 {
            assert_eq!(
                outcome.expect_err("duplicate digest").kind(),
                StoreErrorKind::Conflict
            );
        } else {
            outcome.expect("the others are unaffected");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_after_close_are_unavailable() {
    let store = fresh_store().await;
    store.close().await;
    let err = store
        .save_tokens(
            &pair("client-z", &FamilyId::generate(&OsEntropy)),
            SystemClock.now(),
        )
        .await
        .expect_err("closed");
    assert_eq!(err.kind(), StoreErrorKind::Unavailable);
    assert_eq!(
        store.ping().await.expect_err("closed").kind(),
        StoreErrorKind::Unavailable
    );
    // Closing twice is harmless.
    store.close().await;
}

/// A second, raw connection to the store's file, to look at or damage rows directly.
fn raw(path: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open a raw connection");
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .expect("busy timeout");
    conn
}

fn code_rows(path: &Path) -> i64 {
    raw(path)
        .query_row("SELECT count(*) FROM codes", [], |row| row.get(0))
        .expect("count codes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn used_codes_survive_a_reopen_and_expired_codes_are_swept() {
    let path = fresh_path();
    let now = SystemClock.now();
    let store = SqliteStore::open(&path).await.expect("open");
    let (_, used) = code("client-sweep", 60);
    let (_, short) = code("client-sweep", 1);
    store.save_code(&used, now).await.expect("save");
    store.save_code(&short, now).await.expect("save");
    assert!(matches!(
        store
            .take_code(&used.digest, &used.client_id, now)
            .await
            .expect("take"),
        CodeTake::Taken(_)
    ));
    store.close().await;

    let store = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(
        store
            .take_code(&used.digest, &used.client_id, now)
            .await
            .expect("replay"),
        CodeTake::Replayed {
            family: used.family.clone()
        }
    );
    assert_eq!(code_rows(&path), 2);
    // A write whose `now` is past the short code's expiry sweeps it; the used one stays.
    let (_, later) = code("client-sweep", 60);
    store.save_code(&later, now.plus(5)).await.expect("save");
    assert_eq!(code_rows(&path), 2);
    assert_eq!(
        store
            .take_code(&short.digest, &short.client_id, now)
            .await
            .expect("take"),
        CodeTake::Invalid
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_code_and_consent_rows_are_corrupt() {
    let path = fresh_path();
    let now = SystemClock.now();
    let store = SqliteStore::open(&path).await.expect("open");
    let (_, record) = code("client-bad", 60);
    store.save_code(&record, now).await.expect("save");
    let scope = ScopeSet::parse("read").expect("valid");
    store
        .put_consent("user-bad", "client-bad", &scope, now)
        .await
        .expect("put");
    let conn = raw(&path);
    conn.execute("UPDATE codes SET challenge_method = 'bogus'", [])
        .expect("damage the code");
    conn.execute("UPDATE consents SET scope = 'no\"quotes'", [])
        .expect("damage the consent");
    drop(conn);
    assert_eq!(
        store
            .take_code(&record.digest, &record.client_id, now)
            .await
            .expect_err("corrupt code")
            .kind(),
        StoreErrorKind::Corrupt
    );
    assert_eq!(
        store
            .get_consent("user-bad", "client-bad")
            .await
            .expect_err("corrupt consent")
            .kind(),
        StoreErrorKind::Corrupt
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_1_database_is_upgraded_in_place() {
    let path = fresh_path();
    let now = SystemClock.now();
    let conn = rusqlite::Connection::open(&path).expect("create");
    conn.execute_batch(include_str!("../migrations/sqlite/0001_init.sql"))
        .expect("schema 1");
    conn.execute_batch(
        "CREATE TABLE latchkey_schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         );
         INSERT INTO latchkey_schema_migrations VALUES (1, 0);
         INSERT INTO users VALUES ('u-old', 'old', 'x', 0);",
    )
    .expect("record schema 1");
    conn.close().map_err(|(_, err)| err).expect("close");

    let store = SqliteStore::open(&path).await.expect("upgrade");
    assert!(store.get_user("old").await.expect("get").is_some());
    let (_, record) = code("client-up", 60);
    store.save_code(&record, now).await.expect("save");
    assert_eq!(
        store
            .take_code(&record.digest, &record.client_id, now)
            .await
            .expect("take"),
        CodeTake::Taken(record)
    );
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_a_consumer_from_schema_4_keeps_its_legacy_secret() {
    let path = fresh_path();
    let conn = rusqlite::Connection::open(&path).expect("create");
    for schema in [
        include_str!("../migrations/sqlite/0001_init.sql"),
        include_str!("../migrations/sqlite/0002_codes_and_consent.sql"),
        include_str!("../migrations/sqlite/0003_token_binding.sql"),
        include_str!("../migrations/sqlite/0004_oauth1.sql"),
    ] {
        conn.execute_batch(schema).expect("older schema");
    }
    conn.execute_batch(
        "CREATE TABLE latchkey_schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         );
         INSERT INTO latchkey_schema_migrations VALUES (1, 0), (2, 0), (3, 0), (4, 0);
         INSERT INTO oauth1_consumers VALUES ('legacy-consumer', NULL, 1600000000);",
    )
    .expect("a consumer registered before salts");
    conn.close().map_err(|(_, err)| err).expect("close");

    let store = SqliteStore::open(&path).await.expect("upgrade");
    latchkey_testkit::oauth1_conformance::oauth1_legacy_consumer_keeps_its_secret(store.clone())
        .await;
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_14_a_schema_4_database_keeps_its_clients_and_tokens() {
    let path = fresh_path();
    let now = SystemClock.now();
    let conn = rusqlite::Connection::open(&path).expect("create");
    for sql in [
        include_str!("../migrations/sqlite/0001_init.sql"),
        include_str!("../migrations/sqlite/0002_codes_and_consent.sql"),
        include_str!("../migrations/sqlite/0003_token_binding.sql"),
        include_str!("../migrations/sqlite/0004_oauth1.sql"),
    ] {
        conn.execute_batch(sql).expect("older schema");
    }
    conn.execute_batch(
        "CREATE TABLE latchkey_schema_migrations (
             version    INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL
         );
         INSERT INTO latchkey_schema_migrations VALUES (1, 0), (2, 0), (3, 0), (4, 0);",
    )
    .expect("record schema 4");
    conn.execute(
        "INSERT INTO clients (id, name, redirect_uris, grant_types, created_at)
         VALUES ('old-client', 'Old', '[]', 'client_credentials', 0)",
        [],
    )
    .expect("old client");
    conn.execute(
        "INSERT INTO tokens (digest, kind, client_id, scope, grant_type, family, issued_at,
                             expires_at)
         VALUES (zeroblob(32), 'refresh_token', 'old-client', '', 'password', 'fam', ?1, ?2)",
        [now.0 - 10, now.0 + 3600],
    )
    .expect("old token");
    conn.close().map_err(|(_, err)| err).expect("close");

    let store = SqliteStore::open(&path).await.expect("upgrade");
    let client = store
        .get_client("old-client")
        .await
        .expect("get")
        .expect("kept");
    assert!(
        !client.introspect,
        "old clients may not introspect others' tokens"
    );
    let token = store
        .find_token(&latchkey_core::secret::Digest::from_bytes([0; 32]))
        .await
        .expect("find")
        .expect("kept");
    assert_eq!(
        token.family_issued_at, token.issued_at,
        "an old token's family counts from its own issue"
    );
    store.close().await;
}

mod oauth1 {
    //! The OAuth 1.0a store on SQLite runs the shared OAuth 1.0a store suite.
    latchkey_testkit::oauth1_store_conformance!(async { super::fresh_store().await });
}

mod pending {
    //! Pending requests on SQLite run the shared pending-request suite.
    latchkey_testkit::pending_store_conformance!(async { Some(super::fresh_store().await) }, false);
}
