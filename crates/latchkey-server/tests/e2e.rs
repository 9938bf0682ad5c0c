//! End-to-end: the real `latchkey` binary, its CLI and HTTP, on the embedded store.

mod common;

use common::{PASSWORD_GRANT, Server, add_user, cli, create_client, data_dir, post_token};
use latchkey_core::secret::Secret;
use latchkey_core::store::TokenStore;

#[tokio::test]
async fn first_start_says_what_to_do_next() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains("latchkey client create")),
        "banner: {:?}",
        server.banner
    );
    let health = reqwest::get(server.url("/healthz")).await.expect("answers");
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn cli_client_gets_tokens_with_basic_and_with_post() {
    let dir = data_dir();
    let client = create_client(dir.path(), &["--scope", "read write"]);
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();

    let (status, headers, body) = post_token(
        &http,
        &server,
        Some(&client.basic()),
        "grant_type=client_credentials&scope=read",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["pragma"], "no-cache");

    let form = format!(
        "grant_type=client_credentials&scope=read+write&client_id={}&client_secret={}",
        client.id, client.secret
    );
    let (status, _, body) = post_token(&http, &server, None, &form).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "read write");

    let listed = cli(dir.path(), &["client", "list"], None);
    assert!(listed.contains(&client.id));
    assert!(
        !listed.contains(&client.secret),
        "list must never show a secret"
    );
}

#[tokio::test]
async fn issue_14_password_and_implicit_grants_are_off_and_unadvertised_by_default() {
    let dir = data_dir();
    let client = create_client(dir.path(), &["--grant-type", "password"]);
    add_user(dir.path(), "alice", "correct horse battery");
    let login = "grant_type=password&username=alice&password=correct+horse+battery";
    let http = reqwest::Client::new();
    let metadata = |server: &Server| {
        let url = server.url("/.well-known/oauth-authorization-server");
        let http = http.clone();
        async move {
            let doc: serde_json::Value = http
                .get(url)
                .send()
                .await
                .expect("answer")
                .json()
                .await
                .expect("json");
            doc
        }
    };

    let server = Server::start(dir.path());
    let doc = metadata(&server).await;
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    let grants = doc["grant_types_supported"].as_array().expect("grants");
    assert!(
        !grants.iter().any(|g| g == "password" || g == "implicit"),
        "{grants:?}"
    );
    let (status, _, refused) = post_token(&http, &server, Some(&client.basic()), login).await;
    assert_eq!(
        (status, refused["error"].as_str()),
        (400, Some("unsupported_grant_type")),
        "a client allowed the password grant still cannot use it: {refused}"
    );
    drop(server);

    let server = Server::start_with(dir.path(), &[PASSWORD_GRANT]);
    let doc = metadata(&server).await;
    let grants = doc["grant_types_supported"].as_array().expect("grants");
    assert!(grants.iter().any(|g| g == "password"), "{grants:?}");
    let (status, _, tokens) = post_token(&http, &server, Some(&client.basic()), login).await;
    assert_eq!(status, 200, "{tokens}");
}

#[tokio::test]
async fn password_grant_then_rotation_then_reuse_revokes_the_family() {
    let dir = data_dir();
    let client = create_client(
        dir.path(),
        &["--grant-type", "password", "--grant-type", "refresh_token"],
    );
    add_user(dir.path(), "alice", "correct horse battery");
    let server = Server::start_with(dir.path(), &[PASSWORD_GRANT]);
    let http = reqwest::Client::new();
    let auth = client.basic();

    let (status, _, first) = post_token(
        &http,
        &server,
        Some(&auth),
        "grant_type=password&username=alice&password=correct+horse+battery",
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let rt1 = first["refresh_token"].as_str().expect("refresh token");

    let (status, _, second) = post_token(
        &http,
        &server,
        Some(&auth),
        &format!("grant_type=refresh_token&refresh_token={rt1}"),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let rt2 = second["refresh_token"]
        .as_str()
        .expect("rotated refresh token");
    assert_ne!(rt1, rt2);

    // Replaying the first refresh token is refused and revokes the family...
    let (status, _, replay) = post_token(
        &http,
        &server,
        Some(&auth),
        &format!("grant_type=refresh_token&refresh_token={rt1}"),
    )
    .await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // ...so the legitimate successor stops working too.
    let (status, _, after) = post_token(
        &http,
        &server,
        Some(&auth),
        &format!("grant_type=refresh_token&refresh_token={rt2}"),
    )
    .await;
    assert_eq!(
        (status, after["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // Tokens live in the token log; beside the running server it opens as a follower.
    let store = latchkey_tokenlog::LazyTokenLog::new(
        &dir.path().join("tokens"),
        latchkey_tokenlog::Options::default(),
    );
    let store = store.get().expect("open the token log");
    let access = Secret::new(second["access_token"].as_str().expect("token")).digest();
    let record = store
        .find_token(&access)
        .await
        .expect("find")
        .expect("known");
    assert!(
        record.revoked,
        "the access token of the replayed family is revoked"
    );

    // The audit trail saw all of it, and the log holds no secret of any kind.
    server.terminate();
    let log = std::fs::read_to_string(dir.path().join("server.log")).expect("server log");
    assert!(log.contains("refresh_reuse_detected"), "reuse not audited");
    for secret in [
        client.secret.as_str(),
        "correct horse battery",
        "correct+horse+battery",
        rt1,
        rt2,
        first["access_token"].as_str().expect("token"),
        second["access_token"].as_str().expect("token"),
    ] {
        assert!(!log.contains(secret), "a secret reached the log");
    }
}

#[tokio::test]
async fn user_passwd_and_delete_take_effect_on_a_running_server() {
    let dir = data_dir();
    let client = create_client(dir.path(), &["--grant-type", "password"]);
    add_user(dir.path(), "frank", "old-password");
    let server = Server::start_with(dir.path(), &[PASSWORD_GRANT]);
    let http = reqwest::Client::new();
    let auth = client.basic();
    let login = |pw: &str| format!("grant_type=password&username=frank&password={pw}");
    assert_eq!(
        post_token(&http, &server, Some(&auth), &login("old-password"))
            .await
            .0,
        200
    );

    cli(
        dir.path(),
        &["user", "passwd", "frank", "--password-stdin"],
        Some("new-password\n"),
    );
    let (status, _, body) = post_token(&http, &server, Some(&auth), &login("old-password")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert_eq!(
        post_token(&http, &server, Some(&auth), &login("new-password"))
            .await
            .0,
        200
    );

    assert!(cli(dir.path(), &["user", "list"], None).contains("frank"));
    cli(dir.path(), &["user", "delete", "frank"], None);
    let (status, _, _) = post_token(&http, &server, Some(&auth), &login("new-password")).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn concurrent_use_of_one_refresh_token_yields_exactly_one_pair() {
    let dir = data_dir();
    let client = create_client(
        dir.path(),
        &["--grant-type", "password", "--grant-type", "refresh_token"],
    );
    add_user(dir.path(), "bob", "pw-of-bob");
    let server = Server::start_with(dir.path(), &[PASSWORD_GRANT]);
    let http = reqwest::Client::new();
    let auth = client.basic();
    let (_, _, tokens) = post_token(
        &http,
        &server,
        Some(&auth),
        "grant_type=password&username=bob&password=pw-of-bob",
    )
    .await;
    let rt = tokens["refresh_token"]
        .as_str()
        .expect("refresh token")
        .to_owned();
    let body = format!("grant_type=refresh_token&refresh_token={rt}");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (http, url, auth, body) = (
            http.clone(),
            server.url("/token"),
            auth.clone(),
            body.clone(),
        );
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .header("authorization", auth)
                .body(body)
                .send()
                .await
                .expect("answers")
                .status()
                .as_u16()
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.expect("task"));
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 400).count(),
        7,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn sigkill_right_after_an_answer_loses_nothing() {
    let dir = data_dir();
    let client = create_client(
        dir.path(),
        &[
            "--grant-type",
            "password",
            "--grant-type",
            "refresh_token",
            "--grant-type",
            "client_credentials",
        ],
    );
    add_user(dir.path(), "carol", "pw-of-carol");
    let server = Server::start_with(dir.path(), &[PASSWORD_GRANT]);
    let http = reqwest::Client::new();
    let auth = client.basic();
    let (_, _, cc) = post_token(&http, &server, Some(&auth), "grant_type=client_credentials").await;
    let (status, _, pw) = post_token(
        &http,
        &server,
        Some(&auth),
        "grant_type=password&username=carol&password=pw-of-carol",
    )
    .await;
    assert_eq!(status, 200, "{pw}");
    server.kill();

    let server = Server::start_with(dir.path(), &[PASSWORD_GRANT]);
    let store = latchkey_tokenlog::LazyTokenLog::new(
        &dir.path().join("tokens"),
        latchkey_tokenlog::Options::default(),
    );
    let store = store.get().expect("open the token log");
    let now = latchkey_core::clock::Clock::now(&latchkey_core::clock::SystemClock);
    for token in [
        &cc["access_token"],
        &pw["access_token"],
        &pw["refresh_token"],
    ] {
        let digest = Secret::new(token.as_str().expect("token")).digest();
        let record = store.find_token(&digest).await.expect("find");
        assert!(
            record.is_some_and(|r| r.is_active(now)),
            "a token answered before SIGKILL was lost"
        );
    }
    let rt = pw["refresh_token"].as_str().expect("refresh token");
    let (status, _, body) = post_token(
        &http,
        &server,
        Some(&auth),
        &format!("grant_type=refresh_token&refresh_token={rt}"),
    )
    .await;
    assert_eq!(status, 200, "refresh after restart: {body}");
}

#[tokio::test]
async fn sigterm_stops_the_server_cleanly() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test]
async fn a_clean_stop_leaves_a_checkpoint_the_next_start_loads() {
    let dir = data_dir();
    let client = create_client(dir.path(), &["--grant-type", "client_credentials"]);
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let (status, _, cc) = post_token(
        &http,
        &server,
        Some(&client.basic()),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200, "{cc}");
    assert!(server.terminate().success());

    // The token log's index, as the stopped server left it: loaded, not replayed.
    assert!(dir.path().join("tokens/checkpoint").is_file());
    let log = latchkey_tokenlog::TokenLog::open(
        &dir.path().join("tokens"),
        latchkey_tokenlog::Options::default(),
    )
    .expect("open the token log");
    assert_eq!(log.stats().tokens_from_checkpoint, 1);
    let digest = Secret::new(cc["access_token"].as_str().expect("token")).digest();
    let now = latchkey_core::clock::Clock::now(&latchkey_core::clock::SystemClock);
    assert!(
        log.find_token(&digest)
            .await
            .expect("find")
            .is_some_and(|r| r.is_active(now))
    );
}

#[tokio::test]
async fn deleting_a_client_with_the_cli_invalidates_it() {
    let dir = data_dir();
    let client = create_client(dir.path(), &[]);
    let server = Server::start(dir.path());
    let http = reqwest::Client::new();
    let (status, _, _) = post_token(
        &http,
        &server,
        Some(&client.basic()),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(status, 200);
    let shown = cli(dir.path(), &["client", "show", &client.id], None);
    assert!(shown.contains("confidential") && !shown.contains(&client.secret));
    cli(dir.path(), &["client", "delete", &client.id], None);
    let (status, _, body) = post_token(
        &http,
        &server,
        Some(&client.basic()),
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
}

#[tokio::test]
async fn migrate_prepares_the_store_and_readyz_reports_it() {
    let dir = data_dir();
    let out = cli(dir.path(), &["migrate"], None);
    assert!(out.contains("up to date"), "{out}");
    assert!(
        dir.path().join("latchkey.db").exists(),
        "migrate created the embedded store"
    );
    let server = Server::start(dir.path());
    let ready = reqwest::get(server.url("/readyz")).await.expect("answers");
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["status"], "ready");
}
