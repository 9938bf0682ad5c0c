//! HTTPS on loopback, as a host of a private PKI serves it: a test CA made here (rcgen)
//! issues a certificate for `127.0.0.1` and `localhost` ([`LoopbackCertificate`]), and an
//! axum app is served with it ([`HttpsHost`]). The CA's PEM is what the server must be told to
//! trust (`outbound.ca_file`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::rustls;

/// An axum app served over HTTPS on loopback until the test's runtime ends.
pub struct HttpsHost {
    pub addr: SocketAddr,
    /// The PEM certificate of the CA that issued the host's certificate.
    pub ca_pem: String,
}

impl HttpsHost {
    /// Serves the app `app(base)` makes, where `base` is the host's own `https://` URL.
    pub async fn start(app: impl FnOnce(&str) -> axum::Router) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = app(&format!("https://{addr}"));
        let certificate = LoopbackCertificate::generate();
        let ca_pem = certificate.ca_pem.clone();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(certificate.server_config()));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let app = app.clone();
                tokio::spawn(async move {
                    // A client that does not trust the CA ends here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
                });
            }
        });
        Self { addr, ca_pem }
    }

    /// The host's URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// Writes the CA's PEM into `dir`, for `outbound.ca_file`; returns its path.
    pub fn write_ca(&self, dir: &Path) -> PathBuf {
        let path = dir.join("private-ca.pem");
        std::fs::write(&path, &self.ca_pem).expect("CA file written");
        path
    }
}

/// A new test CA, and a certificate it issued for `127.0.0.1` and `localhost`.
pub struct LoopbackCertificate {
    /// The CA's certificate, PEM.
    pub ca_pem: String,
    /// The loopback certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PKCS#8 PEM.
    pub key_pem: String,
    cert_der: rustls::pki_types::CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl LoopbackCertificate {
    pub fn generate() -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("CA key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Latchkey private PKI test CA");
        ca.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
        let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
        let key = rcgen::KeyPair::generate().expect("key");
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("params")
            .signed_by(&key, &issuer)
            .expect("certificate");
        Self {
            ca_pem: ca_cert.pem(),
            cert_pem: leaf.pem(),
            key_pem: key.serialize_pem(),
            cert_der: leaf.der().clone(),
            key_der: key.serialize_der(),
        }
    }

    /// A TLS server configuration presenting the loopback certificate.
    pub fn server_config(&self) -> rustls::ServerConfig {
        rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert_der.clone()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(self.key_der.clone()).into(),
            )
            .expect("TLS configuration")
    }

    /// Writes the certificate and its key into `dir`: their paths.
    pub fn write(&self, dir: &Path) -> (PathBuf, PathBuf) {
        let cert = dir.join("host.pem");
        let key = dir.join("host.key");
        std::fs::write(&cert, &self.cert_pem).expect("certificate written");
        std::fs::write(&key, &self.key_pem).expect("key written");
        (cert, key)
    }
}
