//! OAuth 1.0a request signing and verification (RFC 5849 §3.4), shared by the client (which
//! signs) and the provider (which verifies). Pure: no I/O, no clock, no randomness.
//!
//! A signature covers the *signature base string* (§3.4.1): the request method, the base
//! string URI, and the normalised parameters from the query, a form body and the
//! `Authorization: OAuth` header. It is then signed with HMAC-SHA1 (§3.4.2), HMAC-SHA256
//! (a common extension), RSA-SHA1 (§3.4.3) or PLAINTEXT (§3.4.4, only over TLS).
//!
//! ```
//! use latchkey_oauth1::signature::{base_string, Secrets, SignatureMethod};
//!
//! // RFC 5849 §1.2: the temporary-credentials request of the photo-printing example.
//! let params = vec![
//!     ("oauth_consumer_key".into(), "dpf43f3p2l4k3l03".into()),
//!     ("oauth_signature_method".into(), "HMAC-SHA1".into()),
//!     ("oauth_timestamp".into(), "137131200".into()),
//!     ("oauth_nonce".into(), "wIjqoS".into()),
//!     ("oauth_callback".into(), "http://printer.example.com/ready".into()),
//! ];
//! let base = base_string("POST", "https://photos.example.net/initiate", &params).unwrap();
//! let secrets = Secrets::new("kd94hf93k423kf44", "");
//! let signature = SignatureMethod::HmacSha1.sign(&base, &secrets).unwrap();
//! assert_eq!(signature, "74KNZJeDHnMBp0EMJ9ZHt/XKycU=");
//! ```

mod encode;
mod header;
mod rsa;

pub use encode::{decode, encode, form_pairs, normalize_parameters};
pub use header::{AuthorizationHeader, authorization_header};
pub use rsa::RsaPublicKey;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;

/// Why a request could not be signed or verified.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The request URI, a header or a parameter cannot be understood.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// The RSA key cannot be used.
    #[error("unusable RSA key")]
    BadKey,
    /// The method needs a key this side does not have (e.g. signing RSA-SHA1 without a
    /// private key).
    #[error("signature method {0} cannot be used here")]
    Unsupported(&'static str),
}

/// A signature method (`oauth_signature_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignatureMethod {
    /// `HMAC-SHA1` (RFC 5849 §3.4.2).
    HmacSha1,
    /// `HMAC-SHA256`: the same construction with SHA-256, widely supported by libraries.
    HmacSha256,
    /// `RSA-SHA1` (RFC 5849 §3.4.3): RSASSA-PKCS1-v1_5 with SHA-1, under the consumer's
    /// registered RSA key.
    RsaSha1,
    /// `PLAINTEXT` (RFC 5849 §3.4.4): the secrets themselves; only over TLS.
    Plaintext,
}

impl SignatureMethod {
    /// Every method, in a stable order.
    pub const ALL: [SignatureMethod; 4] = [
        Self::HmacSha1,
        Self::HmacSha256,
        Self::RsaSha1,
        Self::Plaintext,
    ];

    /// The name sent as `oauth_signature_method`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HmacSha1 => "HMAC-SHA1",
            Self::HmacSha256 => "HMAC-SHA256",
            Self::RsaSha1 => "RSA-SHA1",
            Self::Plaintext => "PLAINTEXT",
        }
    }

    /// Parses an `oauth_signature_method` value (case-sensitive, as registered).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// Signs `base_string` (ignored by PLAINTEXT) with the shared secrets and returns the
    /// `oauth_signature` value. RSA-SHA1 needs a private key, which this module does not
    /// hold (aws-lc-rs signs RSA only with SHA-2), so it is [`SignatureError::Unsupported`].
    pub fn sign(self, base_string: &str, secrets: &Secrets<'_>) -> Result<String, SignatureError> {
        let key = secrets.key();
        let b64 = base64::engine::general_purpose::STANDARD;
        match self {
            Self::HmacSha1 => {
                let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes())
                    .map_err(|_| SignatureError::Unsupported("HMAC-SHA1"))?;
                mac.update(base_string.as_bytes());
                Ok(b64.encode(mac.finalize().into_bytes()))
            }
            Self::HmacSha256 => {
                let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes())
                    .map_err(|_| SignatureError::Unsupported("HMAC-SHA256"))?;
                mac.update(base_string.as_bytes());
                Ok(b64.encode(mac.finalize().into_bytes()))
            }
            Self::Plaintext => Ok(key),
            Self::RsaSha1 => Err(SignatureError::Unsupported("RSA-SHA1")),
        }
    }

    /// Whether `signature` (the decoded `oauth_signature`) is right for `base_string` under
    /// `key`. Comparisons are constant-time; a key of the wrong kind for the method fails.
    pub fn verify(self, base_string: &str, signature: &str, key: &VerifyKey<'_>) -> bool {
        match (self, key) {
            (Self::RsaSha1, VerifyKey::Rsa(public)) => {
                let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(signature) else {
                    return false;
                };
                public.verify_sha1(base_string.as_bytes(), &raw)
            }
            (Self::RsaSha1, VerifyKey::Secrets(_)) | (_, VerifyKey::Rsa(_)) => false,
            (method, VerifyKey::Secrets(secrets)) => match method.sign(base_string, secrets) {
                Ok(expected) => bool::from(expected.as_bytes().ct_eq(signature.as_bytes())),
                Err(_) => false,
            },
        }
    }
}

impl std::fmt::Display for SignatureMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The two shared secrets of RFC 5849 §3.4.2: the client (consumer) secret and the token
/// secret (empty when the request carries no token).
#[derive(Clone, Copy)]
pub struct Secrets<'a> {
    consumer_secret: &'a str,
    token_secret: &'a str,
}

impl<'a> Secrets<'a> {
    /// The consumer secret and the token secret (`""` for none).
    pub fn new(consumer_secret: &'a str, token_secret: &'a str) -> Self {
        Self {
            consumer_secret,
            token_secret,
        }
    }

    /// The HMAC key and PLAINTEXT signature: both secrets encoded, joined by `&`, the `&`
    /// present even when the token secret is empty (RFC 5849 §3.4.2, §3.4.4).
    fn key(&self) -> String {
        format!(
            "{}&{}",
            encode(self.consumer_secret),
            encode(self.token_secret)
        )
    }
}

impl std::fmt::Debug for Secrets<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(***)")
    }
}

/// What the provider checks a signature with.
#[derive(Clone, Copy, Debug)]
pub enum VerifyKey<'a> {
    /// The shared secrets, for HMAC and PLAINTEXT.
    Secrets(Secrets<'a>),
    /// The consumer's registered public key, for RSA-SHA1.
    Rsa(&'a RsaPublicKey),
}

/// The base string URI (RFC 5849 §3.4.1.2): scheme and host in lower case, the port only
/// when it is not the scheme's default, the path, and no query or fragment.
///
/// ```
/// use latchkey_oauth1::signature::base_string_uri;
/// assert_eq!(
///     base_string_uri("HTTP://EXAMPLE.COM:80/r%20v/X?id=123").unwrap(),
///     "http://example.com/r%20v/X"
/// );
/// ```
pub fn base_string_uri(url: &str) -> Result<String, SignatureError> {
    let parsed = url::Url::parse(url).map_err(|_| SignatureError::Malformed("request URI"))?;
    let scheme = parsed.scheme();
    if scheme != "http" && scheme != "https" {
        return Err(SignatureError::Malformed("request URI is not http(s)"));
    }
    let Some(host) = parsed.host_str() else {
        return Err(SignatureError::Malformed("request URI has no host"));
    };
    // `Url` lowercases scheme and host and forgets a default port already.
    let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!("{scheme}://{host}{port}{}", parsed.path()))
}

/// The signature base string (RFC 5849 §3.4.1.1): the upper-case method, the encoded base
/// string URI of `url` and the encoded normalised `params`, joined by `&`.
///
/// `params` must hold every parameter of the request (query, form body, and the `oauth_*`
/// protocol parameters, without `realm`); the query of `url` itself is ignored, so it is not
/// counted twice. [`collect_parameters`] gathers them from a request.
pub fn base_string(
    method: &str,
    url: &str,
    params: &[(String, String)],
) -> Result<String, SignatureError> {
    Ok(format!(
        "{}&{}&{}",
        encode(&method.to_ascii_uppercase()),
        encode(&base_string_uri(url)?),
        encode(&normalize_parameters(params))
    ))
}

/// Gathers the request parameters of RFC 5849 §3.4.1.3.1: the query component, the
/// `Authorization: OAuth` header parameters (without `realm`), and the body when it is a
/// single-part form. `oauth_signature` is kept here; [`normalize_parameters`] leaves it out.
pub fn collect_parameters(
    query: &str,
    header: Option<&AuthorizationHeader>,
    form_body: Option<&[u8]>,
) -> Vec<(String, String)> {
    let mut params = form_pairs(query.as_bytes());
    if let Some(header) = header {
        params.extend(header.params.iter().cloned());
    }
    if let Some(body) = form_body {
        params.extend(form_pairs(body));
    }
    params
}

/// Signs a request on the client side and returns the `Authorization` header value.
///
/// `oauth_params` are the protocol parameters to send (`oauth_consumer_key`, `oauth_token`,
/// `oauth_signature_method`, `oauth_timestamp`, `oauth_nonce`, `oauth_callback`,
/// `oauth_verifier`, `oauth_version`); the query of `url` and `form_body` (when the body is
/// a single-part form) are signed with them. The caller picks the nonce and the timestamp,
/// so this stays pure.
///
/// ```
/// use latchkey_oauth1::signature::{sign_request, Secrets, SignatureMethod};
/// let header = sign_request(
///     "GET",
///     "http://photos.example.net/photos?file=vacation.jpg&size=original",
///     None,
///     vec![
///         ("oauth_consumer_key".into(), "dpf43f3p2l4k3l03".into()),
///         ("oauth_token".into(), "nnch734d00sl2jdk".into()),
///         ("oauth_signature_method".into(), "HMAC-SHA1".into()),
///         ("oauth_timestamp".into(), "137131202".into()),
///         ("oauth_nonce".into(), "chapoH".into()),
///     ],
///     SignatureMethod::HmacSha1,
///     &Secrets::new("kd94hf93k423kf44", "pfkkdhi9sl3r4s00"),
///     Some("Photos"),
/// )
/// .unwrap();
/// assert!(header.ends_with(r#"oauth_signature="MdpQcU8iPSUjWoN%2FUDMsK2sui9I%3D""#));
/// ```
pub fn sign_request(
    http_method: &str,
    url: &str,
    form_body: Option<&[u8]>,
    mut oauth_params: Vec<(String, String)>,
    method: SignatureMethod,
    secrets: &Secrets<'_>,
    realm: Option<&str>,
) -> Result<String, SignatureError> {
    let parsed = url::Url::parse(url).map_err(|_| SignatureError::Malformed("request URI"))?;
    let header = AuthorizationHeader {
        realm: None,
        params: oauth_params.clone(),
    };
    let params = collect_parameters(parsed.query().unwrap_or(""), Some(&header), form_body);
    let base = base_string(http_method, url, &params)?;
    let signature = method.sign(&base, secrets)?;
    oauth_params.push(("oauth_signature".to_owned(), signature));
    Ok(authorization_header(realm, &oauth_params))
}

#[cfg(test)]
mod vectors;
