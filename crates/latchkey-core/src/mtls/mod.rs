//! Mutual-TLS client authentication and certificate-bound tokens (RFC 8705).
//!
//! The adapter hands the client certificate of a request to the core as a
//! [`ClientCertificate`] on [`crate::http::HttpRequest::client_cert`]: the DER bytes the TLS
//! layer (or a trusted TLS-terminating proxy) received, and whether the server verified its
//! chain against the configured CA roots. The core does no I/O and no chain building; it
//! decides with what it was given:
//!
//! * [`authenticate`]: `tls_client_auth` (§2.1: a verified chain and the one registered
//!   subject DN or SAN) and `self_signed_tls_client_auth` (§2.2: the certificate registered in
//!   the client's `jwks`), called by the one client-authentication path of the token,
//!   introspection, revocation and PAR endpoints;
//! * [`token_confirmation`] and [`refresh_confirmation`]: the `cnf.x5t#S256` of tokens issued
//!   to a client registered with `tls_client_certificate_bound_access_tokens` (§3), and the
//!   rule that a public client's bound refresh token needs the same certificate (§4);
//! * [`confirm_presenter`]: the resource guards' check that a certificate-bound token comes
//!   with its certificate (§3), in constant time.

mod identity;

pub use identity::{CertificateIdentity, MAX_CERTIFICATE_LEN, SubjectRule, registered_rule};

use crate::client::{AuthMethod, Client, ClientType};
use crate::error::OAuthError;
use crate::http::HttpRequest;
use crate::token::Confirmation;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq;

/// The client certificate of a request, as the adapter received it.
///
/// `chain_verified` is the server's verdict, not the client's claim: the TLS layer (or the
/// server, for a certificate forwarded by a trusted proxy) checked the chain up to one of the
/// CA roots configured for `tls_client_auth`, at the current time. A certificate that did not
/// verify still authenticates `self_signed_tls_client_auth` clients, which register the
/// certificate itself.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    der: Vec<u8>,
    chain_verified: bool,
}

impl ClientCertificate {
    /// The end-entity certificate in DER, with the server's chain verdict. `None` for an empty
    /// certificate or one longer than [`MAX_CERTIFICATE_LEN`].
    pub fn new(der: Vec<u8>, chain_verified: bool) -> Option<Self> {
        (!der.is_empty() && der.len() <= MAX_CERTIFICATE_LEN).then_some(Self {
            der,
            chain_verified,
        })
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Whether the server verified the chain against its `tls_client_auth` CA roots.
    pub fn chain_verified(&self) -> bool {
        self.chain_verified
    }

    /// The certificate's `x5t#S256` (RFC 8705 §3.1): base64url of the SHA-256 of its DER form.
    pub fn thumbprint(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(&self.der))
    }

    /// The confirmation that binds a token to this certificate.
    pub fn confirmation(&self) -> Confirmation {
        Confirmation::X5tS256(self.thumbprint())
    }
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint())
            .field("chain_verified", &self.chain_verified)
            .finish()
    }
}

/// The DER certificate in a header a TLS-terminating proxy sets: the URL-encoded PEM that
/// nginx sends as `$ssl_client_escaped_cert` (and other proxies can be told to), a PEM, or
/// bare base64 DER. `None` when the value holds no single certificate of at most
/// [`MAX_CERTIFICATE_LEN`] bytes.
///
/// Whether the header is believed at all is [`crate::net::TrustedProxies`]'s decision.
pub fn decode_forwarded_certificate(value: &str) -> Option<Vec<u8>> {
    // Base64 of the longest certificate, PEM lines and URL escapes fit in four times its size.
    if value.is_empty() || value.len() > MAX_CERTIFICATE_LEN * 4 {
        return None;
    }
    let decoded = percent_encoding::percent_decode_str(value)
        .decode_utf8()
        .ok()?;
    let text = decoded.trim();
    let body = match text.strip_prefix("-----BEGIN CERTIFICATE-----") {
        Some(rest) => rest.trim_end().strip_suffix("-----END CERTIFICATE-----")?,
        None => text,
    };
    // A second certificate (a chain) is not ours to pick from.
    if body.contains("-----") {
        return None;
    }
    let b64: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    (!der.is_empty() && der.len() <= MAX_CERTIFICATE_LEN).then_some(der)
}

/// Whether `method` is one of the two mutual-TLS methods.
pub fn is_tls_method(method: AuthMethod) -> bool {
    matches!(
        method,
        AuthMethod::TlsClientAuth | AuthMethod::SelfSignedTlsClientAuth
    )
}

/// Authenticates `client`, registered with a mutual-TLS `token_endpoint_auth_method`, by the
/// certificate of the request (RFC 8705 §2). Every refusal is `invalid_client`, as for a wrong
/// secret.
pub fn authenticate(client: &Client, cert: Option<&ClientCertificate>) -> Result<(), OAuthError> {
    let failed = || OAuthError::invalid_client("client authentication failed");
    let Some(cert) = cert else {
        return Err(OAuthError::invalid_client(
            "a client certificate is required for this client",
        ));
    };
    match client.token_endpoint_auth_method {
        // RFC 8705 §2.1: "the client is successfully authenticated if the certificate that it
        // presented during the handshake matches the expected certificate subject" after
        // "PKI path validation".
        Some(AuthMethod::TlsClientAuth) => {
            if !cert.chain_verified() {
                return Err(failed());
            }
            let rule = registered_rule(&client.metadata).map_err(|_| failed())?;
            let identity = CertificateIdentity::parse(cert.der()).ok_or_else(failed)?;
            if identity.matches(&rule) {
                Ok(())
            } else {
                Err(failed())
            }
        }
        // RFC 8705 §2.2: "the certificate ... matches one of the certificates registered"; no
        // chain is built, the registration is the trust.
        Some(AuthMethod::SelfSignedTlsClientAuth) => {
            if self_signed_registered(client, cert) {
                Ok(())
            } else {
                Err(failed())
            }
        }
        _ => Err(failed()),
    }
}

/// Whether `cert` is one the client registered for `self_signed_tls_client_auth`: the first
/// `x5c` entry of a key in its `jwks`, or a key's `x5t#S256`.
fn self_signed_registered(client: &Client, cert: &ClientCertificate) -> bool {
    let Some(keys) = client
        .metadata
        .jwks
        .as_ref()
        .and_then(|jwks| jwks.get("keys"))
        .and_then(|keys| keys.as_array())
    else {
        return false;
    };
    let thumbprint = cert.thumbprint();
    keys.iter().any(|key| {
        let by_x5c = key
            .get("x5c")
            .and_then(|x5c| x5c.get(0))
            .and_then(|first| first.as_str())
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .is_some_and(|der| bool::from(der.ct_eq(cert.der())));
        let by_thumbprint = key
            .get("x5t#S256")
            .and_then(|t| t.as_str())
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(thumbprint.as_bytes())));
        by_x5c || by_thumbprint
    })
}

/// Whether the client's registration (RFC 8705 §2.1.1 / §2.2.1 metadata) is sound: a
/// `tls_client_auth` client names exactly one subject rule, a `self_signed_tls_client_auth`
/// client registers its certificates inline in `jwks` (as `x5c` or `x5t#S256`).
pub fn check_registration(client: &Client) -> Result<(), String> {
    match client.token_endpoint_auth_method {
        Some(AuthMethod::TlsClientAuth) => registered_rule(&client.metadata).map(|_| ()),
        Some(AuthMethod::SelfSignedTlsClientAuth) => {
            let has_certificate = client
                .metadata
                .jwks
                .as_ref()
                .and_then(|jwks| jwks.get("keys"))
                .and_then(|keys| keys.as_array())
                .is_some_and(|keys| {
                    keys.iter()
                        .any(|k| k.get("x5c").is_some() || k.get("x5t#S256").is_some())
                });
            if has_certificate {
                Ok(())
            } else {
                Err("token_endpoint_auth_method self_signed_tls_client_auth needs jwks with a key carrying x5c or x5t#S256".into())
            }
        }
        _ => Ok(()),
    }
}

/// The confirmation of the tokens a token request gets (RFC 8705 §3): the presented
/// certificate's `x5t#S256` when the client registered
/// `tls_client_certificate_bound_access_tokens`, `None` otherwise. Such a client that presents
/// no certificate is refused (`invalid_request`): its registration promises bound tokens, and
/// a bearer token would break that promise.
pub fn token_confirmation(
    client: &Client,
    req: &HttpRequest,
) -> Result<Option<Confirmation>, OAuthError> {
    if !client.metadata.tls_client_certificate_bound_access_tokens {
        return Ok(None);
    }
    match req.client_cert.as_deref() {
        Some(cert) => Ok(Some(cert.confirmation())),
        None => Err(OAuthError::invalid_request(
            "this client's tokens are bound to its TLS client certificate: present one",
        )),
    }
}

/// The confirmation of the tokens a refresh issues, from the family's (`bound`) and the one of
/// this request (`presented`, from [`token_confirmation`]).
///
/// RFC 8705 §4: a public client's refresh token is bound to its certificate, so it is
/// refused (`invalid_grant`) without the same one. A confidential client proves itself at
/// every refresh; its new access token is bound to the certificate it presents now, which
/// lets it roll its certificate over.
pub fn refresh_confirmation(
    client: &Client,
    bound: Option<&Confirmation>,
    presented: Option<Confirmation>,
) -> Result<Option<Confirmation>, OAuthError> {
    let Some(Confirmation::X5tS256(expected)) = bound else {
        return Ok(presented.or_else(|| bound.cloned()));
    };
    if client.client_type() == ClientType::Public {
        let same = presented
            .as_ref()
            .and_then(Confirmation::x5t_s256)
            .is_some_and(|x5t| bool::from(x5t.as_bytes().ct_eq(expected.as_bytes())));
        if !same {
            return Err(OAuthError::invalid_grant(
                "the refresh token is bound to another client certificate",
            ));
        }
    }
    Ok(presented.or_else(|| bound.cloned()))
}

/// Whether a certificate-bound token was presented with its certificate (RFC 8705 §3: "the
/// protected resource MUST obtain the client certificate ... and ensure that it matches the
/// certificate associated with the access token"). Tokens bound otherwise, or not at all, pass
/// here. The thumbprints are compared in constant time.
pub fn confirm_presenter(cnf: Option<&Confirmation>, req: &HttpRequest) -> bool {
    let Some(expected) = cnf.and_then(Confirmation::x5t_s256) else {
        return true;
    };
    req.client_cert
        .as_deref()
        .is_some_and(|cert| bool::from(cert.thumbprint().as_bytes().ct_eq(expected.as_bytes())))
}

#[cfg(test)]
mod tests;
