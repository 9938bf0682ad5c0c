//! A signed OAuth 1.0a request, parsed once from the core's [`HttpRequest`] (RFC 5849 §3.5):
//! protocol parameters from the `Authorization: OAuth` header, the query or a form body,
//! each at most once, with the signature method and timestamp already typed.

use crate::error::{OAuth1Error, Problem};
use crate::signature::{AuthorizationHeader, SignatureMethod, base_string, form_pairs};
use latchkey_core::http::{HttpRequest, Method};
use std::collections::BTreeMap;

/// The longest nonce, token or verifier accepted; longer values are refused unread.
const MAX_VALUE: usize = 512;

/// The protocol parameters and signature base string of a request.
#[derive(Clone, Debug)]
pub struct SignedRequest {
    /// `oauth_consumer_key`.
    pub consumer_key: String,
    /// `oauth_token`, when sent.
    pub token: Option<String>,
    /// `oauth_signature_method`.
    pub method: SignatureMethod,
    /// `oauth_signature`, decoded.
    pub signature: String,
    /// `oauth_timestamp`; `None` only for PLAINTEXT, which may omit it (RFC 5849 §3.1).
    pub timestamp: Option<i64>,
    /// `oauth_nonce`; `None` only for PLAINTEXT.
    pub nonce: Option<String>,
    /// The `realm` of the `Authorization` header, if any. Not covered by the signature
    /// (RFC 5849 §3.4.1.3.1), so it must not decide anything: scopes come from a signed
    /// `scope` parameter.
    pub realm: Option<String>,
    /// Every other `oauth_*` parameter (`oauth_callback`, `oauth_verifier`, ...).
    pub oauth: BTreeMap<String, String>,
    /// The parameters that are not protocol parameters (query and form body).
    pub other: Vec<(String, String)>,
    /// The signature base string of the request (RFC 5849 §3.4.1).
    pub base_string: String,
    /// Whether the request came over TLS.
    pub tls: bool,
    /// Whether the server's transport rule accepts the request for PLAINTEXT (see
    /// [`HttpRequest::transport_allowed`]).
    pub transport_allowed: bool,
}

impl SignedRequest {
    /// Parses `req`, whose public URL is `base_url` followed by its path and query.
    ///
    /// `Ok(None)` when the request carries no OAuth 1.0a credentials at all (no `OAuth`
    /// header and no `oauth_signature` parameter), so a guard can answer with a bare challenge.
    pub fn parse(req: &HttpRequest, base_url: &str) -> Result<Option<Self>, OAuth1Error> {
        if req.header_count("authorization") > 1 {
            return Err(OAuth1Error::rejected("authorization"));
        }
        let header = match req.header("authorization") {
            Some(value) => AuthorizationHeader::parse(value)
                .map_err(|e| OAuth1Error::rejected("authorization").with_detail(e))?,
            None => None,
        };
        let query = form_pairs(req.query.as_bytes());
        // RFC 5849 §3.4.1.3.1: the body counts when it is a single-part form; GET and HEAD
        // bodies are not looked at.
        let body = if req.has_form_body() && !matches!(req.method, Method::Get | Method::Head) {
            form_pairs(&req.body)
        } else {
            Vec::new()
        };
        let mut all: Vec<(String, String)> = Vec::new();
        if let Some(h) = &header {
            all.extend(h.params.iter().cloned());
        }
        all.extend(query.iter().cloned());
        all.extend(body.iter().cloned());

        let mut oauth: BTreeMap<String, String> = BTreeMap::new();
        let mut other = Vec::new();
        for (name, value) in query.iter().chain(body.iter()) {
            if !name.starts_with("oauth_") {
                other.push((name.clone(), value.clone()));
            }
        }
        for (name, value) in &all {
            if !name.starts_with("oauth_") {
                continue;
            }
            if value.len() > MAX_VALUE {
                return Err(OAuth1Error::rejected(name));
            }
            // RFC 5849 §3.5: a protocol parameter is sent once, in one place.
            if oauth.insert(name.clone(), value.clone()).is_some() {
                return Err(OAuth1Error::rejected(name));
            }
        }
        if header.is_none() && !oauth.contains_key("oauth_signature") {
            return Ok(None);
        }
        let mut take = |name: &str| oauth.remove(name);
        let consumer_key = take("oauth_consumer_key");
        let method = take("oauth_signature_method");
        let signature = take("oauth_signature");
        let timestamp = take("oauth_timestamp");
        let nonce = take("oauth_nonce");
        let token = take("oauth_token");
        let version = take("oauth_version");
        let Some(consumer_key) = consumer_key else {
            return Err(OAuth1Error::absent("oauth_consumer_key"));
        };
        let Some(method) = method else {
            return Err(OAuth1Error::absent("oauth_signature_method"));
        };
        let Some(signature) = signature else {
            return Err(OAuth1Error::absent("oauth_signature"));
        };
        // RFC 5849 §3.1: "If present, the value MUST be set to "1.0"."
        if version.as_deref().is_some_and(|v| v != "1.0") {
            return Err(OAuth1Error::new(Problem::VersionRejected)
                .with_advice("oauth_acceptable_versions", "1.0-1.0"));
        }
        let Some(method) = SignatureMethod::parse(&method) else {
            return Err(OAuth1Error::new(Problem::SignatureMethodRejected));
        };
        // RFC 5849 §3.1: timestamp and nonce "MAY be omitted when using the PLAINTEXT
        // signature method".
        let needs_nonce = method != SignatureMethod::Plaintext;
        let timestamp = match timestamp {
            // Seconds since the epoch, as digits only.
            Some(t) if !t.is_empty() && t.len() <= 12 && t.bytes().all(|b| b.is_ascii_digit()) => {
                Some(
                    t.parse::<i64>()
                        .map_err(|_| OAuth1Error::rejected("oauth_timestamp"))?,
                )
            }
            Some(_) => return Err(OAuth1Error::rejected("oauth_timestamp")),
            None if needs_nonce => return Err(OAuth1Error::absent("oauth_timestamp")),
            None => None,
        };
        if nonce.is_none() && needs_nonce {
            return Err(OAuth1Error::absent("oauth_nonce"));
        }
        let url = format!(
            "{}{}{}",
            base_url.trim_end_matches('/'),
            req.path,
            if req.query.is_empty() {
                String::new()
            } else {
                format!("?{}", req.query)
            }
        );
        let method_name = match &req.method {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Other(name) => name.as_str(),
        };
        let base_string = base_string(method_name, &url, &all)
            .map_err(|e| OAuth1Error::new(Problem::ServerError).with_detail(e))?;
        Ok(Some(Self {
            consumer_key,
            token,
            method,
            signature,
            timestamp,
            nonce,
            realm: header.and_then(|h| h.realm),
            oauth,
            other,
            base_string,
            tls: req.tls,
            transport_allowed: req.tls || req.transport_allowed,
        }))
    }

    /// A non-protocol parameter of the query or form body (e.g. `scope`), the first if sent
    /// more than once.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.other
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Whether `req` carries OAuth 1.0a credentials at all: an `Authorization: OAuth` header, or
/// an `oauth_signature` in the query (RFC 5849 §3.5.3) or form body (§3.5.2). Guards that
/// accept both bearer tokens and OAuth 1.0a signatures use it to pick the check.
pub fn carries_oauth1(req: &HttpRequest) -> bool {
    let header = req.header("authorization").is_some_and(|v| {
        v.trim_start()
            .get(..6)
            .is_some_and(|s| s.eq_ignore_ascii_case("oauth "))
    });
    let has_signature = |raw: &[u8]| form_pairs(raw).iter().any(|(k, _)| k == "oauth_signature");
    header
        || has_signature(req.query.as_bytes())
        || (req.has_form_body() && has_signature(&req.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem_of(req: &HttpRequest) -> Option<(String, u16)> {
        SignedRequest::parse(req, "https://api.example.com")
            .err()
            .map(|e| (e.problem().as_str().to_owned(), e.problem().status()))
    }

    const HEADER: &str = r#"OAuth oauth_consumer_key="k", oauth_signature_method="HMAC-SHA1", oauth_signature="s", oauth_timestamp="1", oauth_nonce="n""#;

    #[test]
    fn a_protocol_parameter_sent_twice_is_rejected() {
        let mut req = HttpRequest::new(Method::Get, "/r").with_header("authorization", HEADER);
        req.query = "oauth_nonce=other".into();
        assert_eq!(problem_of(&req), Some(("parameter_rejected".into(), 400)));
    }

    #[test]
    fn two_authorization_headers_are_rejected() {
        let req = HttpRequest::new(Method::Get, "/r")
            .with_header("authorization", HEADER)
            .with_header("authorization", HEADER);
        assert_eq!(problem_of(&req), Some(("parameter_rejected".into(), 400)));
    }

    #[test]
    fn other_versions_and_methods_are_refused() {
        let req = HttpRequest::new(Method::Get, "/r")
            .with_header("authorization", format!(r#"{HEADER}, oauth_version="2.0""#));
        assert_eq!(problem_of(&req), Some(("version_rejected".into(), 400)));
        let req = HttpRequest::new(Method::Get, "/r")
            .with_header("authorization", HEADER.replace("HMAC-SHA1", "HMAC-MD5"));
        assert_eq!(
            problem_of(&req),
            Some(("signature_method_rejected".into(), 400))
        );
    }

    #[test]
    fn malformed_timestamps_and_missing_nonces_are_named() {
        for bad in ["-1", "12a", "", "99999999999999999999"] {
            let req = HttpRequest::new(Method::Get, "/r").with_header(
                "authorization",
                HEADER.replace(
                    r#"oauth_timestamp="1""#,
                    &format!(r#"oauth_timestamp="{bad}""#),
                ),
            );
            assert_eq!(
                problem_of(&req),
                Some(("parameter_rejected".into(), 400)),
                "{bad}"
            );
        }
        let req = HttpRequest::new(Method::Get, "/r")
            .with_header("authorization", HEADER.replace(r#", oauth_nonce="n""#, ""));
        assert_eq!(problem_of(&req), Some(("parameter_absent".into(), 400)));
    }

    #[test]
    fn parameters_may_come_in_the_query_or_a_form_body() {
        let query = "oauth_consumer_key=k&oauth_signature_method=HMAC-SHA1&oauth_signature=s\
                     &oauth_timestamp=1&oauth_nonce=n";
        let mut req = HttpRequest::new(Method::Get, "/r");
        req.query = query.into();
        let signed = SignedRequest::parse(&req, "https://api.example.com")
            .ok()
            .flatten()
            .expect("query parameters");
        assert_eq!(signed.consumer_key, "k");
        assert!(
            signed
                .base_string
                .starts_with("GET&https%3A%2F%2Fapi.example.com%2Fr&")
        );
        let req = HttpRequest::post_form("/r", query);
        let signed = SignedRequest::parse(&req, "https://api.example.com")
            .ok()
            .flatten()
            .expect("form parameters");
        assert_eq!(signed.nonce.as_deref(), Some("n"));
        assert!(carries_oauth1(&req));
    }

    #[test]
    fn requests_without_oauth_credentials_are_not_oauth1() {
        let req = HttpRequest::new(Method::Get, "/r").with_header("authorization", "Bearer x");
        assert!(!carries_oauth1(&req));
        assert!(
            SignedRequest::parse(&req, "https://api.example.com")
                .ok()
                .flatten()
                .is_none()
        );
    }
}
