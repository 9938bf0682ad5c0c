//! Connection caps and time limits on the real binary: slowloris clients on a low descriptor
//! limit, the global cap, and request bodies that never finish.

mod common;

use common::{Server, data_dir};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

/// The server's address.
fn addr(server: &Server) -> SocketAddr {
    server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("socket address")
}

/// A connection from `source` (any port) to `server`.
async fn connect_from(source: &str, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().expect("address"))?;
    socket.connect(server).await
}

/// Opens `n` connections from `source` that each send half a request and then nothing.
async fn slowloris(source: &str, server: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        let Ok(mut stream) = connect_from(source, server).await else {
            continue;
        };
        // Refused connections may be closed before or after this write; either is fine.
        let _ = stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: latchkey\r\nX-Slow: ")
            .await;
        open.push(stream);
    }
    open
}

/// Whether the server closed `stream`: a read returns end of file or an error within
/// `within` (a bound for a hung test, not a measurement).
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(within, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A 408 or similar before the close is fine too; keep reading to the end.
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

async fn healthz(server: &Server) -> Result<u16, reqwest::Error> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    Ok(http
        .get(server.url("/healthz"))
        .send()
        .await?
        .status()
        .as_u16())
}

#[tokio::test]
async fn issue_14_slowloris_clients_are_capped_and_timed_out_while_healthz_answers() {
    let dir = data_dir();
    // 256 descriptors, as in the review; one attacker address opens 300 half-sent requests.
    let server = Server::start_limited(
        dir.path(),
        &[
            ("LATCHKEY_HTTP__HEADER_TIMEOUT", "2"),
            ("LATCHKEY_HTTP__MAX_CONNECTIONS_PER_IP", "32"),
        ],
        Some(256),
    );
    let target = addr(&server);
    let mut attack = slowloris("127.0.0.2", target, 300).await;
    assert!(
        attack.len() > 200,
        "the attacker could open its connections"
    );

    // Another client is still served while the attacker's connections are open.
    assert_eq!(healthz(&server).await.expect("healthz answers"), 200);

    // Every half-sent request is closed by the server: refused at once beyond the
    // per-address cap, or after the header timeout.
    let mut still_open = 0;
    for stream in &mut attack {
        if !closed_by_server(stream, Duration::from_secs(30)).await {
            still_open += 1;
        }
    }
    assert_eq!(still_open, 0, "connections the server never closed");
    assert_eq!(healthz(&server).await.expect("healthz answers"), 200);
}

#[tokio::test]
async fn issue_14_connections_beyond_the_global_cap_are_closed_at_once() {
    let dir = data_dir();
    let server = Server::start_with(
        dir.path(),
        &[
            ("LATCHKEY_HTTP__HEADER_TIMEOUT", "300"),
            ("LATCHKEY_HTTP__IDLE_TIMEOUT", "300"),
            ("LATCHKEY_HTTP__MAX_CONNECTIONS", "20"),
            ("LATCHKEY_HTTP__MAX_CONNECTIONS_PER_IP", "0"),
        ],
    );
    let target = addr(&server);
    let held = slowloris("127.0.0.1", target, 30).await;
    assert_eq!(held.len(), 30);
    // Ten of the thirty are over the cap and closed at once; the other twenty are held open
    // (their header timeout is five minutes).
    let mut checks = tokio::task::JoinSet::new();
    for mut stream in held {
        checks.spawn(async move {
            let closed = closed_by_server(&mut stream, Duration::from_secs(3)).await;
            (closed, stream)
        });
    }
    let mut closed = 0;
    let mut held = Vec::new();
    while let Some(done) = checks.join_next().await {
        let (was_closed, stream) = done.expect("check");
        closed += usize::from(was_closed);
        held.push(stream);
    }
    assert_eq!(closed, 10, "connections refused over a cap of 20");
    // While the cap is used up, a new connection is refused too...
    assert!(healthz(&server).await.is_err(), "served beyond the cap");
    // ...and served once a place is free.
    drop(held);
    let mut status = None;
    for _ in 0..50 {
        if let Ok(s) = healthz(&server).await {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, Some(200));
}

#[tokio::test]
async fn issue_14_a_body_that_never_finishes_is_answered_after_the_body_timeout() {
    let dir = data_dir();
    let server = Server::start_with(dir.path(), &[("LATCHKEY_HTTP__BODY_TIMEOUT", "1")]);
    let mut stream = TcpStream::connect(addr(&server)).await.expect("connects");
    stream
        .write_all(
            b"POST /token HTTP/1.1\r\nHost: latchkey\r\n\
              Content-Type: application/x-www-form-urlencoded\r\n\
              Content-Length: 100\r\n\r\ngrant_type=",
        )
        .await
        .expect("half a request");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server waited for the body forever");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}
