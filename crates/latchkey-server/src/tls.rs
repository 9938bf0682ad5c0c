//! Transport security: HTTPS served by the server itself (rustls) with certificates that
//! reload without a restart, and the rule that OAuth endpoints refuse plain HTTP.
//!
//! RFC 6749 §3.1 and §3.2 require TLS for the authorization and token endpoints; §10.3–10.5
//! explain why (tokens and codes travel in these requests). pyramid_oauth2_provider refused
//! plain HTTP unless `require_ssl = false`; we refuse it unless the client is on loopback (a
//! developer's own machine) or `tls.allow_insecure_http` is set. Behind a reverse proxy, the
//! protocol the nearest trusted proxy reports (`X-Forwarded-Proto`, or `Forwarded: proto=`
//! with `forwarded_header = "forwarded"`) is believed, and only from `trusted_proxies`.

use crate::mtls::ClientCerts;
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
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The certificate and key in force, reloaded from their files when they change.
#[derive(Debug)]
pub struct Certificates {
    cert: PathBuf,
    key: PathBuf,
    client_certs: Option<Arc<ClientCerts>>,
    state: RwLock<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    config: Arc<ServerConfig>,
    stamp: (Option<SystemTime>, Option<SystemTime>),
}

impl Certificates {
    /// Loads a PEM certificate chain and its PEM private key (PKCS#8, PKCS#1 or SEC1).
    /// With `client_certs` that ask in the handshake, clients are asked for a certificate
    /// (RFC 8705; see [`crate::mtls`]).
    pub fn load(
        cert: &Path,
        key: &Path,
        client_certs: Option<Arc<ClientCerts>>,
    ) -> anyhow::Result<Self> {
        let client_certs = client_certs.filter(|c| c.request_in_handshake);
        let config = server_config(cert, key, client_certs.as_deref())?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            client_certs,
            state: RwLock::new(Loaded {
                config,
                stamp: stamp(cert, key),
            }),
        })
    }

    /// The client-certificate rules of handshakes, when they ask for certificates.
    pub fn client_certs(&self) -> Option<&Arc<ClientCerts>> {
        self.client_certs.as_ref()
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
        match server_config(&self.cert, &self.key, self.client_certs.as_deref()) {
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

fn server_config(
    cert: &Path,
    key: &Path,
    client_certs: Option<&ClientCerts>,
) -> anyhow::Result<Arc<ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| anyhow::anyhow!("tls.cert_file {}: {e}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("tls.cert_file {}: {e}", cert.display()))?;
    if chain.is_empty() {
        anyhow::bail!("tls.cert_file {} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| anyhow::anyhow!("tls.key_file {}: {e}", key.display()))?;
    let builder = ServerConfig::builder();
    let builder = match client_certs {
        Some(c) => builder.with_client_cert_verifier(c.handshake_verifier()),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| anyhow::anyhow!("TLS certificate and key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
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
    /// Where client certificates come from (RFC 8705), when mutual TLS is on.
    pub client_certs: Option<Arc<ClientCerts>>,
}

/// Paths that stay reachable over plain HTTP: probes and scrapes carry no credentials.
const PLAIN_HTTP_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// Middleware: `admit` as an axum `from_fn` layer (the admin listener's).
pub async fn enforce(
    State(policy): State<Arc<Transport>>,
    mut req: Request,
    next: Next,
) -> Response {
    match admit(&policy, &mut req) {
        Ok(()) => next.run(req).await,
        Err(refused) => refused.into_response(),
    }
}

/// [`admit`]'s refusal: plain HTTP where HTTPS is required. Its response is 403 with an
/// RFC 6749 `invalid_request` body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HttpsRequired;

impl IntoResponse for HttpsRequired {
    fn into_response(self) -> Response {
        https_required()
    }
}

/// The transport rule: marks requests that came over TLS (the listener's own, or a trusted
/// proxy's) with [`Tls`], and refuses plain HTTP on every other path from non-loopback
/// clients ([`HttpsRequired`]). The plain-HTTP requests it lets through to OAuth paths
/// are marked [`PlainHttpAllowed`], so the OAuth 1.0a PLAINTEXT check follows this one rule.
/// It does no I/O, so the layers around the endpoints call it without a future of its own.
pub(crate) fn admit<B>(
    policy: &Transport,
    req: &mut axum::http::Request<B>,
) -> Result<(), HttpsRequired> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(a)| *a);
    // Forwarding headers matter only from a trusted proxy; for anyone else the peer is the
    // client, so the common case reads no header and allocates nothing.
    let view = peer
        .filter(|p| policy.trusted.trusts(p.ip()))
        .map(|_| headers_view(req, peer));
    let secure = policy.tls_listener
        || view
            .as_ref()
            .is_some_and(|v| policy.trusted.forwarded_https(v));
    // RFC 8705 behind a proxy: a trusted proxy's header replaces the connection's own
    // certificate (which is the proxy's); nobody else's header is read.
    if let (Some(certs), Some(view)) = (&policy.client_certs, &view) {
        let mut view = view.clone();
        if let Some(name) = certs.header() {
            for value in req.headers().get_all(name) {
                if let Ok(v) = value.to_str() {
                    view.headers.push((name.to_owned(), v.to_owned()));
                }
            }
        }
        if let Some(forwarded) = certs.from_proxy(&policy.trusted, &view) {
            req.extensions_mut()
                .remove::<Arc<latchkey_core::mtls::ClientCertificate>>();
            if let Some(cert) = forwarded {
                req.extensions_mut().insert(cert);
            }
        }
    }
    if secure {
        req.extensions_mut().insert(Tls);
    } else if !policy.allow_insecure_http && !PLAIN_HTTP_PATHS.contains(&req.uri().path()) {
        let client = match &view {
            Some(view) => policy.trusted.client_ip(view),
            None => peer.map(|p| p.ip()),
        };
        let from_loopback = client.is_some_and(|ip| ip.is_loopback());
        if !from_loopback {
            return Err(HttpsRequired);
        }
        // This rule's decision, for rules that need a safe transport (OAuth 1.0a PLAINTEXT).
        req.extensions_mut().insert(PlainHttpAllowed);
    } else if policy.allow_insecure_http {
        req.extensions_mut().insert(PlainHttpAllowed);
    }
    Ok(())
}

/// The forwarding headers of `req` as the core's request type, for [`TrustedProxies`].
fn headers_view<B>(req: &axum::http::Request<B>, peer: Option<SocketAddr>) -> HttpRequest {
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
            client_certs: None,
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

    #[tokio::test]
    async fn issue_14_a_client_claim_of_https_behind_a_proxy_is_not_believed() {
        let proxy = || plain(&["10.0.0.0/8"]);
        // The client's `Forwarded: proto=https` passes through a proxy that sets
        // X-Forwarded-*; the proxy says the request came over plain HTTP.
        let spoof = [
            ("forwarded", "for=127.0.0.1;proto=https"),
            ("x-forwarded-for", "198.51.100.4"),
            ("x-forwarded-proto", "http"),
        ];
        assert_eq!(
            status_from("10.0.0.2:5000", proxy(), "/token", &spoof).await,
            403
        );
        // A client-written first X-Forwarded-Proto value is not the proxy's.
        let first = [
            ("x-forwarded-for", "198.51.100.4"),
            ("x-forwarded-proto", "https, http"),
        ];
        assert_eq!(
            status_from("10.0.0.2:5000", proxy(), "/token", &first).await,
            403
        );
        // Nor can the client pass as loopback with a chain of its own.
        let loopback = [("x-forwarded-for", "127.0.0.1, 198.51.100.4")];
        assert_eq!(
            status_from("10.0.0.2:5000", proxy(), "/token", &loopback).await,
            403
        );
    }
}
