//! Transport security: HTTPS served by the server itself (rustls) with certificates that
//! reload without a restart, and the rule that OAuth endpoints refuse plain HTTP.
//!
//! RFC 6749 §3.1 and §3.2 require TLS for the authorization and token endpoints; §10.3–10.5
//! explain why (tokens and codes travel in these requests). pyramid_oauth2_provider refused
//! plain HTTP unless `require_ssl = false`; we refuse it unless the client is on loopback (a
//! developer's own machine) or `tls.allow_insecure_http` is set. Behind a reverse proxy,
//! `X-Forwarded-Proto` and `Forwarded: proto=` are believed only from `trusted_proxies`.

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use latchkey_axum::{PlainHttpAllowed, Tls};
use latchkey_core::http::{HttpRequest, Method};
use latchkey_core::net::TrustedProxies;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

/// How long a client may take over its TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The certificate and key in force, reloaded from their files when they change.
#[derive(Debug)]
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    state: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    config: Arc<ServerConfig>,
    stamp: (Option<SystemTime>, Option<SystemTime>),
}

impl Certificates {
    /// Loads a PEM certificate chain and its PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub fn load(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let config = server_config(cert, key)?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            state: RwLock::new(Loaded {
                config,
                stamp: stamp(cert, key),
            }),
        })
    }

    /// The configuration new connections use.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.state.read() {
            Ok(s) => Arc::clone(&s.config),
            Err(poisoned) => Arc::clone(&poisoned.into_inner().config),
        }
    }

    /// Reloads the files if `force` or if either changed since the last load. A bad new
    /// pair is reported and the old one kept: a typo never takes the server offline.
    /// Connections already open keep the configuration they started with.
    pub fn reload(&self, force: bool) -> bool {
        let now = stamp(&self.cert, &self.key);
        let changed = match self.state.read() {
            Ok(s) => s.stamp != now,
            Err(_) => true,
        };
        if !force && !changed {
            return false;
        }
        match server_config(&self.cert, &self.key) {
            Ok(config) => {
                if let Ok(mut s) = self.state.write() {
                    *s = Loaded { config, stamp: now };
                }
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(err) => {
                tracing::error!(error = %err, "TLS certificate reload failed; keeping the old one");
                false
            }
        }
    }
}

fn stamp(cert: &Path, key: &Path) -> (Option<SystemTime>, Option<SystemTime>) {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(cert), modified(key))
}

fn server_config(cert: &Path, key: &Path) -> anyhow::Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| anyhow::anyhow!("tls.cert_file {}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("tls.cert_file {}: {e}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("tls.cert_file {} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("tls.key_file {}: {e}", key.display()))?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| anyhow::anyhow!("TLS certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A listener that hands axum finished TLS connections. Handshakes run in their own tasks,
/// so a slow or silent client never holds up the others.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp`, handshaking with the certificates current at each connection.
    pub fn new(tcp: TcpListener, certs: Arc<Certificates>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(256);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = tcp.accept() => accepted,
                    // The server stopped listening: release the port.
                    () = tx.closed() => break,
                };
                let (stream, peer) = match accepted {
                    Ok(c) => c,
                    Err(err) => {
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(certs.current());
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, error = %err, "TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The acceptor task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The peer address of a TLS connection, as axum's connect info (axum implements that only
/// for its own TCP listener); [`peer_as_socket_addr`] republishes it as
/// `ConnectInfo<SocketAddr>`, which the adapters read.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// Request mapper: copies [`PeerAddr`] into `ConnectInfo<SocketAddr>`.
pub async fn peer_as_socket_addr(mut req: Request) -> Request {
    if let Some(ConnectInfo(PeerAddr(addr))) = req.extensions().get::<ConnectInfo<PeerAddr>>() {
        let addr = *addr;
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    req
}

/// Reloads `certs` every `interval` when the files changed, and at once on SIGHUP.
pub fn spawn_reloader(certs: Arc<Certificates>, interval: Duration) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut hup) = signal(SignalKind::hangup()) {
            let certs = Arc::clone(&certs);
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    certs.reload(true);
                }
            });
        }
    }
    if interval.is_zero() {
        return;
    }
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            certs.reload(false);
        }
    });
}

/// What the transport rule needs to know.
#[derive(Clone, Debug)]
pub struct Transport {
    /// The listener itself serves TLS.
    pub tls_listener: bool,
    /// Proxies whose forwarding headers are believed.
    pub trusted: TrustedProxies,
    /// Serve OAuth endpoints over plain HTTP to anyone (development only).
    pub allow_insecure_http: bool,
}

/// Paths that stay reachable over plain HTTP: probes and scrapes carry no credentials.
const PLAIN_HTTP_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// Middleware: marks requests that came over TLS (the listener's own, or a trusted proxy's)
/// with [`Tls`], and refuses plain HTTP on every other path from non-loopback clients. The
/// plain-HTTP requests it lets through to OAuth paths are marked [`PlainHttpAllowed`], so
/// the OAuth 1.0a PLAINTEXT check follows this one rule.
pub async fn enforce(
    State(policy): State<Arc<Transport>>,
    mut req: Request,
    next: Next,
) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| *a);
    // Forwarding headers matter only from a trusted proxy; for anyone else the peer is the
    // client, so the common case reads no header and allocates nothing.
    let view = peer
        .filter(|p| policy.trusted.trusts(p.ip()))
        .map(|_| headers_view(&req, peer));
    let secure = policy.tls_listener || view.as_ref().is_some_and(forwarded_https);
    if secure {
        req.extensions_mut().insert(Tls);
    } else if !policy.allow_insecure_http && !PLAIN_HTTP_PATHS.contains(&req.uri().path()) {
        let client = match &view {
            Some(view) => policy.trusted.client_ip(view),
            None => peer.map(|p| p.ip()),
        };
        let from_loopback = client.is_some_and(|ip| ip.is_loopback());
        if !from_loopback {
            return https_required();
        }
        // This rule's decision, for rules that need a safe transport (OAuth 1.0a PLAINTEXT).
        req.extensions_mut().insert(PlainHttpAllowed);
    } else if policy.allow_insecure_http {
        req.extensions_mut().insert(PlainHttpAllowed);
    }
    next.run(req).await
}

/// The forwarding headers of `req` as the core's request type, for [`TrustedProxies`].
fn headers_view(req: &Request, peer: Option<SocketAddr>) -> HttpRequest {
    let mut view = HttpRequest::new(Method::Get, req.uri().path());
    view.peer = peer;
    for name in ["forwarded", "x-forwarded-for", "x-forwarded-proto"] {
        for value in req.headers().get_all(name) {
            if let Ok(v) = value.to_str() {
                view.headers.push((name.to_owned(), v.to_owned()));
            }
        }
    }
    view
}

/// Whether the edge proxy received the request over HTTPS: the first `proto=` of `Forwarded`,
/// else the first value of `X-Forwarded-Proto`.
fn forwarded_https(view: &HttpRequest) -> bool {
    let from_forwarded = view
        .headers
        .iter()
        .filter(|(n, _)| n == "forwarded")
        .flat_map(|(_, v)| v.split(','))
        .find_map(|element| {
            element.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("proto")
                    .then(|| v.trim().trim_matches('"').to_owned())
            })
        });
    let proto = from_forwarded.or_else(|| {
        view.header("x-forwarded-proto")
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_owned())
    });
    proto.is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn https_required() -> Response {
    let body = serde_json::json!({
        "error": "invalid_request",
        "error_description": "HTTPS is required",
    });
    (
        axum::http::StatusCode::FORBIDDEN,
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(headers: &[(&str, &str)]) -> HttpRequest {
        let mut v = HttpRequest::new(Method::Get, "/token");
        for (n, val) in headers {
            v.headers.push(((*n).to_owned(), (*val).to_owned()));
        }
        v
    }

    async fn status_from(
        peer: &str,
        policy: Transport,
        path: &str,
        headers: &[(&str, &str)],
    ) -> u16 {
        use tower::ServiceExt as _;
        let app = axum::Router::new()
            .route("/token", axum::routing::post(|| async { "issued" }))
            .route("/healthz", axum::routing::get(|| async { "ok" }))
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(policy),
                enforce,
            ));
        let method = if path == "/token" { "POST" } else { "GET" };
        let mut req = axum::http::Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let mut req = req.body(axum::body::Body::empty()).expect("request");
        let peer: SocketAddr = peer.parse().expect("address");
        req.extensions_mut().insert(ConnectInfo(peer));
        app.oneshot(req)
            .await
            .expect("infallible")
            .status()
            .as_u16()
    }

    fn plain(trusted: &[&str]) -> Transport {
        Transport {
            tls_listener: false,
            trusted: TrustedProxies::parse(trusted).expect("networks"),
            allow_insecure_http: false,
        }
    }

    #[tokio::test]
    async fn plain_http_from_a_non_loopback_peer_is_refused() {
        assert_eq!(
            status_from("192.0.2.7:5000", plain(&[]), "/token", &[]).await,
            403
        );
        // Its own claim of HTTPS is not believed.
        let claim = [("x-forwarded-proto", "https")];
        assert_eq!(
            status_from("192.0.2.7:5000", plain(&[]), "/token", &claim).await,
            403
        );
        // Probes are not OAuth endpoints.
        assert_eq!(
            status_from("192.0.2.7:5000", plain(&[]), "/healthz", &[]).await,
            200
        );
        assert_eq!(
            status_from("127.0.0.1:5000", plain(&[]), "/token", &[]).await,
            200
        );
        assert_eq!(
            status_from("[::1]:5000", plain(&[]), "/token", &[]).await,
            200
        );
        // A trusted proxy that terminated TLS is believed.
        let proxied = [
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "198.51.100.4"),
        ];
        assert_eq!(
            status_from("10.0.0.2:5000", plain(&["10.0.0.0/8"]), "/token", &proxied).await,
            200
        );
        // The development switch serves everyone.
        let mut dev = plain(&[]);
        dev.allow_insecure_http = true;
        assert_eq!(status_from("192.0.2.7:5000", dev, "/token", &[]).await, 200);
        // A TLS listener is secure by itself.
        let mut tls = plain(&[]);
        tls.tls_listener = true;
        assert_eq!(status_from("192.0.2.7:5000", tls, "/token", &[]).await, 200);
    }

    #[test]
    fn forwarded_proto_is_read_from_the_edge_proxy() {
        assert!(forwarded_https(&view(&[("x-forwarded-proto", "https")])));
        assert!(forwarded_https(&view(&[(
            "forwarded",
            "for=192.0.2.1;proto=https, for=10.0.0.2;proto=http"
        )])));
        assert!(!forwarded_https(&view(&[("x-forwarded-proto", "http")])));
        assert!(!forwarded_https(&view(&[])));
    }
}
