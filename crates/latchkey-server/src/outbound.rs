//! Fetching what a client publishes (its metadata document, its `jwks_uri`, its
//! `sector_identifier_uri`): the one path every such fetch takes, and the one rule against
//! server-side request forgery.
//!
//! The URL is the client's, so: `https` only (plain `http` only where a development switch
//! allows it); the host is resolved here and every address must be public
//! ([`latchkey_core::net::is_public_address`]) unless a development switch allows private
//! ones; the connection goes to exactly the checked addresses (pinned, so a second lookup
//! cannot swap in another); no redirect is followed, no proxy used, no cookie or credential
//! sent; the whole fetch has a deadline and the body a size bound, checked as it arrives.
//!
//! Certificates are checked against the system's roots and, for hosts of a private PKI, the
//! CA certificates of `outbound.ca_file` ([`TrustedRoots`]), which add to the system's roots
//! and never replace them.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The largest `outbound.ca_file` read: a bundle of a few hundred certificates.
pub const MAX_CA_FILE_BYTES: u64 = 1024 * 1024;

/// `[outbound]`: how the server reaches what clients publish (metadata documents,
/// `jwks_uri`, `sector_identifier_uri`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundSettings {
    /// A PEM bundle of CA certificates trusted besides the system's roots, for clients
    /// whose hosts have certificates of a private PKI; at most [`MAX_CA_FILE_BYTES`].
    pub ca_file: Option<PathBuf>,
}

/// The CA certificates every outbound fetch trusts besides the system's roots: those of
/// `outbound.ca_file`, read and checked once at start, so a bad file stops the server then
/// rather than failing every fetch later.
#[derive(Clone, Default)]
pub struct TrustedRoots(Arc<[reqwest::Certificate]>);

impl std::fmt::Debug for TrustedRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustedRoots({} extra)", self.0.len())
    }
}

impl TrustedRoots {
    /// The roots of `settings`: none without `ca_file`; an error naming the file when it
    /// cannot be read, is too large, holds no certificate or one the TLS stack refuses.
    pub fn load(settings: &OutboundSettings) -> anyhow::Result<Self> {
        let Some(path) = &settings.ca_file else {
            return Ok(Self::default());
        };
        let name = path.display();
        let size = std::fs::metadata(path)
            .map_err(|e| anyhow::anyhow!("outbound.ca_file {name}: {e}"))?
            .len();
        if size > MAX_CA_FILE_BYTES {
            anyhow::bail!("outbound.ca_file {name}: larger than {MAX_CA_FILE_BYTES} bytes");
        }
        let pem =
            std::fs::read(path).map_err(|e| anyhow::anyhow!("outbound.ca_file {name}: {e}"))?;
        Self::from_pem(&pem).map_err(|e| anyhow::anyhow!("outbound.ca_file {name}: {e}"))
    }

    /// The roots of a PEM bundle, checked by building a client with them.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| format!("not a PEM bundle of certificates: {e}"))?;
        if certs.is_empty() {
            return Err("holds no PEM certificate".into());
        }
        reqwest::Client::builder()
            .tls_certs_merge(certs.iter().cloned())
            .build()
            .map_err(|e| format!("a certificate is refused: {e}"))?;
        Ok(Self(certs.into()))
    }

    /// How many certificates are added to the system's roots.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether only the system's roots are trusted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a fetch may reach, whom it trusts, and how long it may take.
#[derive(Clone, Debug)]
pub struct Outbound {
    /// Development only: plain-`http` URLs too.
    pub allow_http: bool,
    /// Development only: loopback, private and link-local addresses too.
    pub allow_private: bool,
    /// The deadline of the whole fetch: lookup, connection, TLS, body.
    pub timeout: Duration,
    /// CA certificates trusted besides the system's roots.
    pub roots: TrustedRoots,
}

/// A fetched body, with the response's `Cache-Control`.
#[derive(Debug)]
pub struct Fetched {
    /// The body, at most the bound asked for.
    pub body: Vec<u8>,
    /// The `Cache-Control` header, when there was one.
    pub cache_control: Option<String>,
}

/// Resolves the URL's host and returns its addresses, refusing any that is not public
/// (unless `allow_private`).
pub async fn addresses(url: &url::Url, allow_private: bool) -> Result<Vec<SocketAddr>, String> {
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs: Vec<SocketAddr> = match url.host() {
        Some(url::Host::Ipv4(ip)) => vec![SocketAddr::new(IpAddr::V4(ip), port)],
        Some(url::Host::Ipv6(ip)) => vec![SocketAddr::new(IpAddr::V6(ip), port)],
        Some(url::Host::Domain(name)) => tokio::net::lookup_host((name, port))
            .await
            .map_err(|_| "the host does not resolve".to_owned())?
            .collect(),
        None => return Err("no host".into()),
    };
    if addrs.is_empty() {
        return Err("the host has no address".into());
    }
    if !allow_private
        && let Some(bad) = addrs
            .iter()
            .find(|a| !latchkey_core::net::is_public_address(a.ip()))
    {
        // The address stays in the log: the client learns nothing of internal names.
        tracing::info!(address = %bad.ip(), "outbound fetch to a host that is not public refused");
        return Err("the host is not a public address".into());
    }
    Ok(addrs)
}

/// GETs `url` (the client's `what`, named in errors) under `rule`: a `200` answer's body of
/// at most `max_bytes`. The error is safe to show the client and the operator.
pub async fn fetch(
    what: &str,
    url: &url::Url,
    rule: &Outbound,
    accept: &str,
    max_bytes: usize,
) -> Result<Fetched, String> {
    match tokio::time::timeout(
        rule.timeout,
        fetch_within(what, url, rule, accept, max_bytes),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(format!("fetching the {what} timed out")),
    }
}

async fn fetch_within(
    what: &str,
    url: &url::Url,
    rule: &Outbound,
    accept: &str,
    max_bytes: usize,
) -> Result<Fetched, String> {
    match url.scheme() {
        "https" => {}
        "http" if rule.allow_http => {}
        other => return Err(format!("the {what} URL scheme {other} is not allowed")),
    }
    let addrs = addresses(url, rule.allow_private).await?;
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(rule.timeout)
        .connect_timeout(rule.timeout)
        .https_only(!rule.allow_http)
        .tls_certs_merge(rule.roots.0.iter().cloned());
    if let Some(url::Host::Domain(name)) = url.host() {
        builder = builder.resolve_to_addrs(name, &addrs);
    }
    let http = builder.build().map_err(|e| format!("client: {e}"))?;
    let mut response = http
        .get(url.clone())
        .header("accept", accept)
        .send()
        .await
        .map_err(|e| format!("fetching the {what} failed: {}", without_url(&e)))?;
    let status = response.status();
    if status.is_redirection() {
        return Err(format!(
            "the {what} URL redirects; redirects are not followed"
        ));
    }
    if status != reqwest::StatusCode::OK {
        return Err(format!("the {what} URL answered {}", status.as_u16()));
    }
    let too_big = || format!("the {what} is larger than {max_bytes} bytes");
    if response
        .content_length()
        .is_some_and(|n| n > max_bytes as u64)
    {
        return Err(too_big());
    }
    let cache_control = response
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("reading the {what} failed: {}", without_url(&e)))?
    {
        if body.len() + chunk.len() > max_bytes {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched {
        body,
        cache_control,
    })
}

/// A reqwest error's text without the URL (the caller logs it apart), with its innermost
/// cause, which says what went wrong (a certificate nobody trusted, a refused connection).
fn without_url(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    if let Some(url) = err.url() {
        text = text.replace(url.as_str(), "the URL");
    }
    let mut cause = std::error::Error::source(err);
    let mut innermost = None;
    // Bounded: an error chain is a few levels deep.
    for _ in 0..16 {
        let Some(next) = cause else { break };
        innermost = Some(next);
        cause = next.source();
    }
    if let Some(innermost) = innermost {
        text = format!("{text}: {innermost}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Outbound {
        Outbound {
            allow_http: false,
            allow_private: false,
            timeout: Duration::from_secs(2),
            roots: TrustedRoots::default(),
        }
    }

    #[tokio::test]
    async fn private_loopback_and_link_local_hosts_are_refused_before_connecting() {
        for url in [
            "https://127.0.0.1/jwks",
            "https://10.1.2.3/jwks",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/jwks",
            "https://localhost/jwks",
        ] {
            let url = url::Url::parse(url).expect("url");
            let err = fetch("jwks_uri", &url, &rule(), "application/json", 1024)
                .await
                .expect_err("refused");
            assert!(err.contains("not a public address"), "{url}: {err}");
        }
    }

    #[test]
    fn a_ca_file_must_hold_certificates_the_tls_stack_accepts() {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let pem = ca.self_signed(&ca_key).expect("certificate").pem();
        let two = format!("{pem}{pem}");
        assert_eq!(
            TrustedRoots::from_pem(two.as_bytes())
                .expect("a bundle")
                .len(),
            2
        );
        let err = TrustedRoots::from_pem(b"").expect_err("empty");
        assert!(err.contains("no PEM certificate"), "{err}");
        // A key alone is not a certificate.
        let err = TrustedRoots::from_pem(ca_key.serialize_pem().as_bytes()).expect_err("a key");
        assert!(err.contains("no PEM certificate"), "{err}");
        let broken = "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n";
        assert!(TrustedRoots::from_pem(broken.as_bytes()).is_err());
    }

    #[test]
    fn a_missing_or_oversize_ca_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("missing.pem");
        let settings = |path: &std::path::Path| OutboundSettings {
            ca_file: Some(path.to_owned()),
        };
        let err = TrustedRoots::load(&settings(&missing)).expect_err("missing");
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let big = dir.path().join("big.pem");
        std::fs::write(&big, vec![b'a'; MAX_CA_FILE_BYTES as usize + 1]).expect("write");
        let err = TrustedRoots::load(&settings(&big)).expect_err("oversize");
        assert!(err.to_string().contains("larger than"), "{err}");
        assert!(
            TrustedRoots::load(&OutboundSettings::default())
                .expect("no file: no extra roots")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn plain_http_needs_the_development_switch() {
        let url = url::Url::parse("http://127.0.0.1:9/jwks").expect("url");
        let err = fetch("jwks_uri", &url, &rule(), "application/json", 1024)
            .await
            .expect_err("refused");
        assert!(err.contains("scheme http is not allowed"), "{err}");
    }
}
