//! `latchkey backup` and `latchkey restore` on the real binary: a copy taken while the server
//! issues tokens holds every token acknowledged before it began, and the restored store works
//! with the old credentials (client secrets, passwords, signing keys).

mod common;

use common::{
    PASSWORD_GRANT, Server, add_user, cli, cli_outcome, create_client, data_dir, post_token,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

async fn introspect(
    http: &reqwest::Client,
    server: &Server,
    basic: &str,
    token: &str,
) -> serde_json::Value {
    http.post(server.url("/introspect"))
        .header("authorization", basic)
        .form(&[("token", token)])
        .send()
        .await
        .expect("server answers")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_under_load_restores_into_a_working_store() {
    let original = data_dir();
    let client = create_client(
        original.path(),
        &[
            "--grant-type",
            "client_credentials",
            "--grant-type",
            "password",
        ],
    );
    add_user(original.path(), "dana", "correct horse battery staple");
    let server = Arc::new(Server::start_with(original.path(), &[PASSWORD_GRANT]));
    let http = reqwest::Client::new();
    let body = "grant_type=client_credentials";
    let (status, _, first) = post_token(&http, &server, Some(&client.basic()), body).await;
    assert_eq!(status, 200, "{first}");
    let kids = server.jwks_kids().await;
    assert!(!kids.is_empty());

    // Tokens keep being issued while the backup runs.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (server, stop, basic, http) = (
            Arc::clone(&server),
            Arc::clone(&stop),
            client.basic(),
            http.clone(),
        );
        tokio::spawn(async move {
            let mut issued = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (status, _, json) = post_token(&http, &server, Some(&basic), body).await;
                assert_eq!(status, 200, "{json}");
                issued.push(json["access_token"].as_str().expect("token").to_owned());
            }
            issued
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let backup_root = data_dir();
    let backup_dir = backup_root.path().join("nightly");
    let copy_path = backup_dir.to_str().expect("utf-8").to_owned();
    // Every token answered before the backup starts must be in it.
    let before_backup = {
        let (_, _, json) = post_token(&http, &server, Some(&client.basic()), body).await;
        json["access_token"].as_str().expect("token").to_owned()
    };
    let dir = original.path().to_owned();
    let said = tokio::task::spawn_blocking(move || cli(&dir, &["backup", &copy_path], None))
        .await
        .expect("backup ran");
    stop.store(true, Ordering::Relaxed);
    let during = load.await.expect("load ran");
    assert!(during.len() > 1, "tokens were issued during the backup");
    assert!(said.contains("Backed up the store"), "{said}");
    assert!(
        said.contains("kek") && said.contains("session.key"),
        "{said}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        for entry in std::fs::read_dir(&backup_dir).expect("backup dir") {
            let path = entry.expect("entry").path();
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} is private", path.display());
        }
        let mode = std::fs::metadata(&backup_dir)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the backup directory is private");
    }
    let copy_path = backup_dir.to_str().expect("utf-8");

    // A backup never goes into a directory with something in it.
    let (ok, _, err) = cli_outcome(original.path(), &["backup", copy_path]);
    assert!(!ok && err.contains("not empty"), "{err}");

    let (ok, out, err) = cli_outcome(original.path(), &["restore", "--check", copy_path]);
    assert!(ok && out.contains("sound backup"), "{out}{err}");

    // Restored into a new data directory, with the server still running on the old one.
    let restored = data_dir();
    let said = cli(restored.path(), &["restore", copy_path], None);
    assert!(said.contains("Restored the store"), "{said}");
    let (ok, _, err) = cli_outcome(restored.path(), &["restore", copy_path]);
    assert!(
        !ok && err.contains("restore into a new data directory"),
        "a store is never overwritten: {err}"
    );

    let copy = Server::start_with(restored.path(), &[PASSWORD_GRANT]);
    for token in [
        first["access_token"].as_str().expect("token"),
        &before_backup,
    ] {
        let answer = introspect(&http, &copy, &client.basic(), token).await;
        assert_eq!(answer["active"], true, "{answer}");
    }
    // The old secret still authenticates the client, the old password the user.
    let (status, _, json) = post_token(&http, &copy, Some(&client.basic()), body).await;
    assert_eq!(status, 200, "{json}");
    let (status, _, json) = post_token(
        &http,
        &copy,
        Some(&client.basic()),
        "grant_type=password&username=dana&password=correct+horse+battery+staple",
    )
    .await;
    assert_eq!(status, 200, "{json}");
    // The same signing keys: relying parties' cached JWKS stay right.
    assert_eq!(copy.jwks_kids().await, kids);
    copy.kill();
    if let Ok(server) = Arc::try_unwrap(server) {
        server.kill();
    }
}

#[test]
fn a_damaged_backup_and_a_foreign_store_are_refused() {
    let original = data_dir();
    create_client(original.path(), &["--grant-type", "client_credentials"]);
    let root = data_dir();
    let backup_dir = root.path().join("b");
    let path = backup_dir.to_str().expect("utf-8");
    cli(original.path(), &["backup", path], None);

    // One flipped byte in the database.
    let db = backup_dir.join("latchkey.db");
    let mut bytes = std::fs::read(&db).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&db, bytes).expect("write");
    let (ok, _, err) = cli_outcome(original.path(), &["restore", "--check", path]);
    assert!(!ok && err.contains("damaged"), "{err}");
    let fresh = data_dir();
    let (ok, _, err) = cli_outcome(fresh.path(), &["restore", path]);
    assert!(!ok && err.contains("damaged"), "{err}");
    assert!(
        !fresh.path().join("latchkey.db").exists(),
        "nothing is restored from a damaged backup"
    );

    // Not a backup at all.
    let (ok, _, err) = cli_outcome(
        fresh.path(),
        &["restore", root.path().to_str().expect("utf-8")],
    );
    assert!(!ok && err.contains("not a Latchkey backup"), "{err}");

    // PostgreSQL and MySQL have their own tools; the URL's password is never printed.
    let (ok, _, err) = cli_outcome(
        fresh.path(),
        &[
            "--config",
            "/dev/null",
            "backup",
            fresh.path().join("x").to_str().expect("utf-8"),
        ],
    );
    assert!(!ok && err.contains("there is no store"), "{err}");
    let settings = fresh.path().join("pg.toml");
    std::fs::write(
        &settings,
        "[store]\nurl = \"postgres://latchkey:hunter2@db.internal/latchkey\"\n",
    )
    .expect("settings");
    let (ok, _, err) = cli_outcome(
        fresh.path(),
        &[
            "--config",
            settings.to_str().expect("utf-8"),
            "backup",
            fresh.path().join("y").to_str().expect("utf-8"),
        ],
    );
    assert!(!ok && err.contains("pg_dump"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}
