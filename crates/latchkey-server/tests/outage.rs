//! A backend outage under a running server: while the token store (a Redis server this test
//! owns) is down, token requests get a clean 503 `temporarily_unavailable` quickly and
//! `/readyz` says 503; when it comes back, service resumes without restarting Latchkey.
//! Runs when `LATCHKEY_TEST_REDIS` is set (it needs the `redis-server` binary).

mod common;

use common::{Server, create_client, data_dir, post_token};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn start_redis(port: u16) -> Child {
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("LATCHKEY_TEST_REDIS is set, so redis-server must be installed");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

#[tokio::test]
async fn token_store_outage_gives_clean_503s_and_service_resumes() {
    if std::env::var("LATCHKEY_TEST_REDIS").is_err() {
        eprintln!("skipped: set LATCHKEY_TEST_REDIS to run");
        return;
    }
    let port = free_port();
    let mut redis = start_redis(port);
    let dir = data_dir();
    std::fs::write(
        dir.path().join("latchkey.toml"),
        format!("[store]\ntokens_url = \"redis://127.0.0.1:{port}\"\n"),
    )
    .expect("settings");
    let client = create_client(dir.path(), &[]);
    let server = Server::start(dir.path());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    let auth = client.basic();
    let cc = "grant_type=client_credentials";
    assert_eq!(post_token(&http, &server, Some(&auth), cc).await.0, 200);

    redis.kill().expect("kill redis");
    redis.wait().expect("reaped");
    for _ in 0..3 {
        let started = Instant::now();
        let (status, headers, body) = post_token(&http, &server, Some(&auth), cc).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (503, Some("temporarily_unavailable")),
            "{body}"
        );
        assert!(headers.contains_key("retry-after"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "an outage must not hang requests"
        );
    }
    let ready = http
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("answers");
    assert_eq!(ready.status(), 503);

    let mut redis = start_redis(port);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _, _) = post_token(&http, &server, Some(&auth), cc).await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service did not resume after the backend returned"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        http.get(server.url("/readyz"))
            .send()
            .await
            .expect("answers")
            .status(),
        200
    );
    let _ = redis.kill();
    let _ = redis.wait();
}
