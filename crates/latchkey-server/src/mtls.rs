//! TLS client certificates for mutual-TLS client authentication and certificate-bound tokens
//! (RFC 8705), as the server's transport hands them to the core.
//!
//! With `tls.client_certificates = "optional"` the server's own TLS asks every client for a
//! certificate but requires none, so browsers and clients without one are served as before.
//! Any certificate the client proves it holds (the handshake signature is checked) is
//! accepted at the TLS layer: whether it authenticates anybody is the registration's decision
//! in the core. Its chain is verified here, once per connection, against the CA roots of
//! `tls.client_ca_file` (for `tls_client_auth`); the verdict travels with the certificate.
//!
//! Behind a TLS-terminating proxy, the certificate comes in `tls.client_cert_header`, believed
//! only from `trusted_proxies` (the rule is [`TrustedProxies::forwarded_client_cert`]) and
//! verified against the same roots.

use latchkey_core::mtls::ClientCertificate;
use latchkey_core::net::TrustedProxies;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::DistinguishedName;
use tokio_rustls::rustls::client::danger::HandshakeSignatureValid;
use tokio_rustls::rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, UnixTime};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::server::danger::{ClientCertVerified, ClientCertVerifier};

/// The most intermediates a client may send along with its certificate.
const MAX_INTERMEDIATES: usize = 8;

/// How client certificates are obtained and judged; built once from the settings.
#[derive(Clone)]
pub struct ClientCerts {
    /// Ask for certificates in the server's own TLS handshakes.
    pub request_in_handshake: bool,
    /// The chain verifier for `tls_client_auth`, when CA roots are configured.
    roots: Option<Arc<dyn ClientCertVerifier>>,
    /// The header a trusted TLS-terminating proxy puts the certificate in.
    header: Option<String>,
}

impl std::fmt::Debug for ClientCerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCerts")
            .field("request_in_handshake", &self.request_in_handshake)
            .field("roots", &self.roots.is_some())
            .field("header", &self.header)
            .finish()
    }
}

impl ClientCerts {
    /// From the settings: whether handshakes ask for certificates, the PEM file of CA roots,
    /// and the proxy's header.
    pub fn new(
        request_in_handshake: bool,
        ca_file: Option<&Path>,
        header: Option<&str>,
    ) -> anyhow::Result<Self> {
        let roots = match ca_file {
            None => None,
            Some(path) => {
                let mut store = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path)
                    .map_err(|e| anyhow::anyhow!("tls.client_ca_file {}: {e}", path.display()))?
                {
                    let cert = cert.map_err(|e| {
                        anyhow::anyhow!("tls.client_ca_file {}: {e}", path.display())
                    })?;
                    store.add(cert).map_err(|e| {
                        anyhow::anyhow!("tls.client_ca_file {}: {e}", path.display())
                    })?;
                }
                if store.is_empty() {
                    anyhow::bail!("tls.client_ca_file {} holds no certificate", path.display());
                }
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(store),
                    Arc::new(provider()),
                )
                .build()
                .map_err(|e| anyhow::anyhow!("tls.client_ca_file {}: {e}", path.display()))?;
                Some(verifier)
            }
        };
        let header = match header.map(str::trim) {
            None | Some("") => None,
            Some(name) => {
                let valid = name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
                if !valid {
                    anyhow::bail!("tls.client_cert_header {name:?} is not a header name");
                }
                Some(name.to_ascii_lowercase())
            }
        };
        Ok(Self {
            request_in_handshake,
            roots,
            header,
        })
    }

    /// Whether certificates reach the core at all (the metadata then advertises mutual TLS).
    pub fn enabled(&self) -> bool {
        self.request_in_handshake || self.header.is_some()
    }

    /// The TLS layer's verifier: offers client authentication, requires none, and accepts any
    /// certificate whose key signed the handshake.
    pub fn handshake_verifier(&self) -> Arc<dyn ClientCertVerifier> {
        Arc::new(AcceptAny {
            algorithms: provider().signature_verification_algorithms,
        })
    }

    /// The certificate of a chain a client presented (leaf first), with the chain verdict.
    pub fn judge(&self, chain: &[CertificateDer<'_>]) -> Option<Arc<ClientCertificate>> {
        let (leaf, intermediates) = chain.split_first()?;
        let verified = intermediates.len() <= MAX_INTERMEDIATES
            && self.roots.as_ref().is_some_and(|roots| {
                roots
                    .verify_client_cert(leaf, intermediates, UnixTime::now())
                    .is_ok()
            });
        ClientCertificate::new(leaf.to_vec(), verified).map(Arc::new)
    }

    /// What the proxy header says, when this server reads one: `Some(certificate or none)`
    /// for a request from a trusted proxy (its word replaces the connection's own
    /// certificate, which is the proxy's), `None` when the connection's certificate stands.
    pub fn from_proxy(
        &self,
        trusted: &TrustedProxies,
        view: &latchkey_core::http::HttpRequest,
    ) -> Option<Option<Arc<ClientCertificate>>> {
        let header = self.header.as_deref()?;
        if !view.peer.is_some_and(|p| trusted.trusts(p.ip())) {
            return None;
        }
        Some(
            trusted
                .forwarded_client_cert(view, header)
                .and_then(|der| self.judge(&[CertificateDer::from(der)])),
        )
    }

    /// The header name, lowercase, when one is configured.
    pub fn header(&self) -> Option<&str> {
        self.header.as_deref()
    }
}

/// The crypto provider of the server's TLS (aws-lc-rs).
fn provider() -> CryptoProvider {
    CryptoProvider::get_default()
        .map(|p| (**p).clone())
        .unwrap_or_else(rustls::crypto::aws_lc_rs::default_provider)
}

/// Asks for a certificate, requires none, accepts any the client holds the key of.
#[derive(Debug)]
struct AcceptAny {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AcceptAny {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Parsed by the signature check that follows; bounded here.
        if end_entity.len() > latchkey_core::mtls::MAX_CERTIFICATE_LEN {
            return Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::BadEncoding,
            ));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
