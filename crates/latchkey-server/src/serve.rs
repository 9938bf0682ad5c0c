//! The connection loop both listeners run: accept, admit under the connection caps, TLS
//! when configured, then HTTP/1.1 or HTTP/2 with time limits, and a drain on shutdown.
//!
//! `axum::serve` runs hyper without a timer, so no header timeout applies, and it serves
//! every connection it is offered: a slowloris client that keeps requests half-sent holds
//! its connections forever and, with enough of them, takes every descriptor the process has.
//! Here:
//! - every connection holds a place under a global cap and under its peer's cap (an IPv6
//!   peer counts by its /64); when either is used up the connection is accepted and closed
//!   at once, so a flood from one address cannot shut out the others;
//! - a connection must deliver its first request's headers within `header_timeout` (this
//!   also bounds the HTTP/2 preface and the protocol detection), and hyper's HTTP/1 timer
//!   gives each later request the same time from the moment the server waits for it;
//! - a connection on which nothing is read or written for `idle_timeout` is closed;
//! - a request body must arrive within `body_timeout` of the moment the handler first waits
//!   for it; a late body fails the read, which the endpoints answer with `invalid_request`;
//! - accept errors (descriptors exhausted) back off instead of spinning.

use crate::tls::Certificates;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use latchkey_core::net::TrustedProxies;
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// How long a client may take over its TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The longest pause between two failed accepts (the first pause is 10 ms, then doubling).
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// The time limits and caps a listener applies, from the `[http]` settings.
#[derive(Clone, Debug)]
pub struct ServeLimits {
    /// Time to deliver a request's headers (and, on HTTP/1.1, to start the next request).
    pub header_timeout: Duration,
    /// Time a connection may stay without a byte read or written.
    pub idle_timeout: Duration,
    /// Time a request body may take once its handler waits for it.
    pub body_timeout: Duration,
    /// Connections open at once on this listener.
    pub max_connections: usize,
    /// Connections open at once from one peer address (0: no such cap).
    pub max_connections_per_ip: usize,
    /// Peers the per-address cap does not apply to: the trusted proxies, which carry many
    /// clients' connections.
    pub exempt: TrustedProxies,
    /// HTTP/2: streams one connection may have open at once.
    pub http2_max_concurrent_streams: u32,
    /// HTTP/2: the largest header list a request may send, in bytes.
    pub http2_max_header_list_size: u32,
    /// HTTP/2: interval of keep-alive pings (`None`: no pings).
    pub http2_keep_alive_interval: Option<Duration>,
}

impl ServeLimits {
    /// The limits of `settings`, with the global cap derived from the open-file limit when
    /// `max_connections` is 0.
    pub fn from_settings(http: &crate::settings::HttpSettings, exempt: TrustedProxies) -> Self {
        let secs = |s: u64| Duration::from_secs(s.max(1));
        Self {
            header_timeout: secs(http.header_timeout),
            idle_timeout: secs(http.idle_timeout),
            body_timeout: secs(http.body_timeout),
            max_connections: if http.max_connections == 0 {
                derived_max_connections()
            } else {
                http.max_connections
            },
            max_connections_per_ip: http.max_connections_per_ip,
            exempt,
            http2_max_concurrent_streams: http.http2_max_concurrent_streams.max(1),
            http2_max_header_list_size: http.http2_max_header_list_size.max(1024),
            http2_keep_alive_interval: (http.http2_keep_alive_interval > 0)
                .then(|| Duration::from_secs(http.http2_keep_alive_interval)),
        }
    }

    /// The same limits for the admin listener, whose callers are few: at most 64 connections
    /// (taken from the descriptors the OAuth listener's derived cap leaves free).
    pub fn for_admin(&self) -> Self {
        Self {
            max_connections: self.max_connections.min(64),
            ..self.clone()
        }
    }
}

/// The global cap when none is configured: three quarters of the open-file limit left after
/// 64 descriptors for the store, the log and the admin listener; 1024 when the limit is
/// unknown.
fn derived_max_connections() -> usize {
    #[cfg(unix)]
    {
        let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
        let soft = limit.current.unwrap_or(u64::MAX);
        let usable = soft.saturating_sub(64).saturating_mul(3) / 4;
        usize::try_from(usable).unwrap_or(usize::MAX).max(16)
    }
    #[cfg(not(unix))]
    {
        1024
    }
}

/// Serves `app` on `tcp` (over TLS with `certs`) under `limits` until `stop` turns true,
/// then stops accepting, asks every connection to finish its requests and waits for them.
/// `app` is a `Router` (the admin listener's) or the main listener's
/// [`crate::app::App`], which needs no router around it.
pub async fn serve<A>(
    tcp: TcpListener,
    app: A,
    certs: Option<Arc<Certificates>>,
    limits: ServeLimits,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()>
where
    A: Application,
{
    let builder = Arc::new(http_builder(&limits));
    let gate = Arc::new(Gate::new(&limits));
    let limits = Arc::new(limits);
    // Every connection task holds a receiver; the sender's `closed()` is the drain.
    let (open_tx, open_rx) = watch::channel(());
    let mut backoff = Duration::ZERO;
    loop {
        let accepted = tokio::select! {
            accepted = tcp.accept() => accepted,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => {
                backoff = Duration::ZERO;
                conn
            }
            // The client gave up before we accepted: nothing to do.
            Err(err) if is_connection_error(&err) => continue,
            // Out of descriptors (or memory): accepting again at once would fail again and
            // spin; wait, longer each time, for connections to close.
            Err(err) => {
                backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                tracing::warn!(error = %err, pause_ms = backoff.as_millis() as u64, "accept failed");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => continue,
                    _ = stop.wait_for(|stop| *stop) => break,
                }
            }
        };
        let Some(ticket) = gate.admit(peer.ip()) else {
            // Dropping the stream closes it: the peer learns at once, and the descriptor
            // comes back.
            metrics::counter!("latchkey_connections_refused_total").increment(1);
            tracing::debug!(%peer, "connection refused: connection cap reached");
            continue;
        };
        let conn = Connection {
            peer,
            app: app.clone(),
            builder: Arc::clone(&builder),
            limits: Arc::clone(&limits),
            stop: stop.clone(),
            _ticket: ticket,
            _open: open_rx.clone(),
        };
        let certs = certs.clone();
        tokio::spawn(async move {
            match certs {
                None => conn.serve(stream, None).await,
                Some(certs) => {
                    let acceptor = tokio_rustls::TlsAcceptor::from(certs.current());
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            // RFC 8705: the client's certificate, judged once per connection.
                            let client_cert = certs.client_certs().and_then(|rules| {
                                rules.judge(tls.get_ref().1.peer_certificates()?)
                            });
                            conn.serve(tls, client_cert).await
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, error = %err, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    // Release the port, then wait for the connections to finish what they started.
    drop(tcp);
    drop(open_rx);
    open_tx.closed().await;
    Ok(())
}

/// The HTTP/1.1 and HTTP/2 settings, built once per listener.
fn http_builder(limits: &ServeLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_header_list_size(limits.http2_max_header_list_size)
        .keep_alive_interval(limits.http2_keep_alive_interval)
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// What [`serve`] can serve: a cloneable service of axum requests that never fails.
pub trait Application:
    tower::Service<
        axum::http::Request<Body>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static
{
}

impl<A> Application for A where
    A: tower::Service<
            axum::http::Request<Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// One admitted connection: what its task needs, and the places it holds until it ends.
struct Connection<A> {
    peer: SocketAddr,
    app: A,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<ServeLimits>,
    stop: watch::Receiver<bool>,
    _ticket: Ticket,
    _open: watch::Receiver<()>,
}

impl<A: Application> Connection<A> {
    async fn serve<I>(
        mut self,
        io: I,
        client_cert: Option<Arc<latchkey_core::mtls::ClientCertificate>>,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let peer = self.peer;
        let body_timeout = self.limits.body_timeout;
        let started = Arc::new(AtomicBool::new(false));
        let service = {
            let started = Arc::clone(&started);
            let app = self.app.clone();
            hyper::service::service_fn(move |mut req: axum::http::Request<Incoming>| {
                use tower::ServiceExt as _;
                started.store(true, Ordering::Relaxed);
                req.extensions_mut().insert(ConnectInfo(peer));
                if let Some(cert) = &client_cert {
                    req.extensions_mut().insert(Arc::clone(cert));
                }
                let req = req.map(|body| Body::new(BodyDeadline::new(body, body_timeout)));
                app.clone().oneshot(req)
            })
        };
        let io = TokioIo::new(IdleIo::new(io, self.limits.idle_timeout));
        let conn = self.builder.serve_connection(io, service);
        let mut conn = std::pin::pin!(conn);
        // Until its first request arrives a connection has `header_timeout`, whatever the
        // protocol: hyper's HTTP/1 timer starts only after protocol detection, and HTTP/2
        // has none.
        let first = tokio::time::sleep(self.limits.header_timeout);
        let mut first = std::pin::pin!(first);
        let mut waiting_first = true;
        let mut draining = false;
        loop {
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::trace!(%peer, error = %err, "connection ended");
                    }
                    break;
                }
                () = &mut first, if waiting_first => {
                    waiting_first = false;
                    if !started.load(Ordering::Relaxed) {
                        tracing::debug!(%peer, "no request within the header timeout; closing");
                        break;
                    }
                }
                _ = self.stop.wait_for(|stop| *stop), if !draining => {
                    draining = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// The connection counts, overall and per peer.
struct Gate {
    open: AtomicUsize,
    max: usize,
    per_ip: usize,
    exempt: TrustedProxies,
    peers: Mutex<HashMap<IpAddr, usize>>,
}

/// A place under the caps, given back when the connection ends.
struct Ticket {
    gate: Arc<Gate>,
    peer: Option<IpAddr>,
}

impl Gate {
    fn new(limits: &ServeLimits) -> Self {
        Self {
            open: AtomicUsize::new(0),
            max: limits.max_connections.max(1),
            per_ip: limits.max_connections_per_ip,
            exempt: limits.exempt.clone(),
            peers: Mutex::new(HashMap::new()),
        }
    }

    /// A place for a connection from `ip`, or `None` when a cap is reached.
    fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Ticket> {
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < self.max).then_some(open + 1)
            });
        if admitted.is_err() {
            return None;
        }
        let mut ticket = Ticket {
            gate: Arc::clone(self),
            peer: None,
        };
        if self.per_ip == 0 || self.exempt.trusts(ip) {
            return Some(ticket);
        }
        let key = peer_key(ip);
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        let count = peers.entry(key).or_insert(0);
        if *count >= self.per_ip {
            return None; // the ticket's drop gives the global place back
        }
        *count += 1;
        ticket.peer = Some(key);
        Some(ticket)
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(key) = self.peer {
            let mut peers = self.gate.peers.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(count) = peers.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    peers.remove(&key);
                }
            }
        }
        self.gate.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The key a peer is counted under: its IPv4 address, or the /64 of its IPv6 address (one
/// host commonly holds a whole /64).
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
        v4 => v4,
    }
}

/// A stream that fails with `TimedOut` once nothing has been read or written on it for
/// `idle`. The clock is read on each transfer; the one timer is armed when the stream first
/// waits and re-armed only when it fires early.
struct IdleIo<I> {
    inner: I,
    idle: Duration,
    last: Instant,
    timer: Option<Pin<Box<Sleep>>>,
}

impl<I> IdleIo<I> {
    fn new(inner: I, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            last: Instant::now(),
            timer: None,
        }
    }

    /// Called when the stream would wait: `Ready(Err)` once it has been idle too long.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            let deadline = self.last + self.idle;
            let timer = self
                .timer
                .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if Instant::now() >= deadline {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for too long",
                ));
            }
            timer.as_mut().reset(deadline);
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for IdleIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending => this.poll_idle(cx).map(Err),
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.last = Instant::now();
                }
                Poll::Ready(Ok(()))
            }
            failed => failed,
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for IdleIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Pending => this.poll_idle(cx).map(Err),
            done => {
                this.last = Instant::now();
                done
            }
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Pending => this.poll_idle(cx).map(Err),
            done => {
                this.last = Instant::now();
                done
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.poll_idle(cx).map(Err),
            done => done,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A request body that fails once it has kept its reader waiting for `limit`. Nothing is
/// armed while the body is already buffered (the common case: a small form that came with
/// its headers); the timer starts the first time the reader has to wait.
struct BodyDeadline {
    inner: Incoming,
    limit: Duration,
    timer: Option<Pin<Box<Sleep>>>,
}

impl BodyDeadline {
    fn new(inner: Incoming, limit: Duration) -> Self {
        Self {
            inner,
            limit,
            timer: None,
        }
    }
}

/// The error of a body that did not arrive within `http.body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl http_body::Body for BodyDeadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {}
            Poll::Ready(frame) => return Poll::Ready(frame.map(|f| f.map_err(Into::into))),
        }
        let limit = this.limit;
        let timer = this
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize, per_ip: usize, exempt: &[&str]) -> ServeLimits {
        ServeLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_connections: max,
            max_connections_per_ip: per_ip,
            exempt: TrustedProxies::parse(exempt).expect("networks"),
            http2_max_concurrent_streams: 100,
            http2_max_header_list_size: 16384,
            http2_keep_alive_interval: None,
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("address")
    }

    #[test]
    fn a_peer_is_capped_and_others_still_get_in() {
        let gate = Arc::new(Gate::new(&limits(10, 2, &["10.0.0.1"])));
        let a1 = gate.admit(ip("192.0.2.1")).expect("first");
        let _a2 = gate.admit(ip("192.0.2.1")).expect("second");
        assert!(gate.admit(ip("192.0.2.1")).is_none(), "third from one peer");
        let _b = gate.admit(ip("192.0.2.2")).expect("another peer");
        // A refused peer does not keep a global place.
        assert_eq!(gate.open.load(Ordering::Acquire), 3);
        drop(a1);
        let _a3 = gate.admit(ip("192.0.2.1")).expect("a place came back");
        // The trusted proxy carries many clients: no per-address cap.
        let proxy: Vec<_> = (0..5)
            .map(|_| gate.admit(ip("10.0.0.1")).expect("proxy"))
            .collect();
        assert_eq!(proxy.len(), 5);
        // The global cap holds for everyone.
        let _c = gate.admit(ip("192.0.2.3")).expect("ninth");
        let _d = gate.admit(ip("192.0.2.5")).expect("tenth");
        assert!(gate.admit(ip("192.0.2.4")).is_none(), "eleventh");
        assert!(
            gate.admit(ip("10.0.0.1")).is_none(),
            "eleventh, from the proxy"
        );
    }

    #[test]
    fn ipv6_peers_count_by_their_64() {
        let gate = Arc::new(Gate::new(&limits(10, 1, &[])));
        let _a = gate.admit(ip("2001:db8:1:2::1")).expect("first");
        assert!(gate.admit(ip("2001:db8:1:2::ffff")).is_none(), "same /64");
        let _b = gate.admit(ip("2001:db8:1:3::1")).expect("another /64");
        assert_eq!(peer_key(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn the_derived_cap_leaves_descriptors_free() {
        let derived = derived_max_connections();
        assert!(derived >= 16);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_stream_times_out_and_a_busy_one_does_not() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (client, server) = tokio::io::duplex(64);
        let mut server = IdleIo::new(server, Duration::from_secs(60));
        let mut client = client;
        let mut buf = [0u8; 8];
        // Bytes keep it alive past the idle time in total.
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(40)).await;
            client.write_all(b"x").await.expect("write");
            assert_eq!(server.read(&mut buf).await.expect("read"), 1);
        }
        // Silence ends it.
        let err = server.read(&mut buf).await.expect_err("idle");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
