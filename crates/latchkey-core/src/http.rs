//! The framework-agnostic HTTP request and response: the only types an adapter touches.
//!
//! An adapter copies what the core needs out of its framework's request (method, query,
//! headers, body, peer address, whether TLS was used) into an owned [`HttpRequest`], and
//! turns the [`HttpResponse`] it gets back into its framework's response. Owning the types
//! keeps the core free of `http` crate versions (actix-web is on `http` 0.2, axum on 1.x).

use std::net::SocketAddr;

/// An HTTP request method, as far as OAuth endpoints care.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`
    Get,
    /// `POST`
    Post,
    /// `HEAD`
    Head,
    /// `OPTIONS`
    Options,
    /// Any other method, by name.
    Other(String),
}

impl Method {
    /// Parses a method name as sent on the wire.
    pub fn parse(name: &str) -> Self {
        match name {
            "GET" => Self::Get,
            "POST" => Self::Post,
            "HEAD" => Self::Head,
            "OPTIONS" => Self::Options,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The method's name as sent on the wire (a DPoP proof's `htm`).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Head => "HEAD",
            Self::Options => "OPTIONS",
            Self::Other(name) => name,
        }
    }
}

/// An HTTP request, owned, as the core sees it.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    /// The request method.
    pub method: Method,
    /// The path, without the query string.
    pub path: String,
    /// The raw query string, without the leading `?`.
    pub query: String,
    /// Header names in lowercase, values as received; repeated headers appear repeatedly.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
    /// The peer's socket address, when the adapter knows it.
    pub peer: Option<SocketAddr>,
    /// Whether the request arrived over TLS (as decided by the adapter or a trusted proxy).
    pub tls: bool,
    /// Whether the server's transport rule accepts this request for credentials sent in the
    /// clear (OAuth 1.0a PLAINTEXT): it came over TLS, or the embedding server's one
    /// transport rule lets it through over plain HTTP (Latchkey's: a loopback client, or
    /// `tls.allow_insecure_http`). The adapter sets it from that rule's decision; without
    /// such a rule it is `false` whenever `tls` is.
    pub transport_allowed: bool,
    /// The TLS client certificate of the request (RFC 8705), when the server asked for one and
    /// the client sent it, or a trusted TLS-terminating proxy forwarded it; set by the adapter
    /// from what the server's TLS layer decided. See [`crate::mtls`].
    pub client_cert: Option<std::sync::Arc<crate::mtls::ClientCertificate>>,
}

impl HttpRequest {
    /// An empty request to `path`; mostly for tests and examples.
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            query: String::new(),
            headers: Vec::new(),
            body: Vec::new(),
            peer: None,
            tls: false,
            transport_allowed: false,
            client_cert: None,
        }
    }

    /// A `POST` with an `application/x-www-form-urlencoded` body.
    pub fn post_form(path: impl Into<String>, body: impl Into<String>) -> Self {
        Self::new(Method::Post, path)
            .with_header("content-type", "application/x-www-form-urlencoded")
            .with_body(body.into().into_bytes())
    }

    /// Adds a header (the name is lowercased).
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// Attaches the TLS client certificate the server received.
    pub fn with_client_cert(mut self, cert: crate::mtls::ClientCertificate) -> Self {
        self.client_cert = Some(std::sync::Arc::new(cert));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How many times header `name` was sent; a repeated `Authorization` is an error.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// Whether the body is declared as `application/x-www-form-urlencoded` (parameters such
    /// as `charset=utf-8` allowed).
    pub fn has_form_body(&self) -> bool {
        self.header("content-type").is_some_and(|ct| {
            ct.split(';').next().is_some_and(|mime| {
                mime.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            })
        })
    }
}

/// Why the core refuses a request's headers as the adapter received them: an
/// `invalid_request` (400) with [`HeaderError::description`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// A value holds a byte that is not visible ASCII, space or tab. It cannot carry
    /// anything the core accepts, and skipping it would hide it from the checks that count
    /// headers (a second `Authorization`).
    NotVisibleAscii,
    /// `Content-Type` came more than once: which one describes the body is anybody's guess.
    RepeatedContentType,
}

impl HeaderError {
    /// The safe text for the client.
    pub fn description(self) -> &'static str {
        match self {
            Self::NotVisibleAscii => "a header value is not visible ASCII",
            Self::RepeatedContentType => "repeated Content-Type header",
        }
    }
}

/// The headers of a request as [`HttpRequest::headers`] holds them, from the adapter's raw
/// `(lowercase name, value bytes)` pairs: every adapter goes through here, so every adapter
/// refuses the same requests (see [`HeaderError`]).
pub fn collect_headers<'a>(
    raw: impl IntoIterator<Item = (&'a str, &'a [u8])>,
) -> Result<Vec<(String, String)>, HeaderError> {
    let raw = raw.into_iter();
    let mut headers: Vec<(String, String)> = Vec::with_capacity(raw.size_hint().0);
    for (name, value) in raw {
        // RFC 9110 §5.5: field-vchar or SP/HTAB; obs-text is not accepted.
        let visible = value
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
        let Some(value) = visible.then(|| std::str::from_utf8(value).ok()).flatten() else {
            return Err(HeaderError::NotVisibleAscii);
        };
        if name.eq_ignore_ascii_case("content-type")
            && headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            return Err(HeaderError::RepeatedContentType);
        }
        headers.push((name.to_owned(), value.to_owned()));
    }
    Ok(headers)
}

/// An HTTP response from the core, for the adapter to send as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Headers, in the order they should be sent.
    pub headers: Vec<(String, String)>,
    /// The body bytes.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with a JSON body.
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// A JSON response that must never be cached: token responses and their errors
    /// (RFC 6749 §5.1: `Cache-Control: no-store` and `Pragma: no-cache`).
    pub fn json_no_store(status: u16, body: &serde_json::Value) -> Self {
        Self::json(status, body)
            .with_header("cache-control", "no-store")
            .with_header("pragma", "no-cache")
    }

    /// A 200 answer whose JSON body was already serialized, that must never be cached (token
    /// responses and introspection answers): the body is taken as it is and the headers are
    /// made at once, for the endpoints that write their body straight into bytes.
    pub fn json_bytes_no_store(body: Vec<u8>) -> Self {
        Self {
            status: 200,
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("cache-control".into(), "no-store".into()),
                ("pragma".into(), "no-cache".into()),
            ],
            body,
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body parsed as JSON; `Value::Null` if it is not JSON. For tests and clients.
    pub fn json_body(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_14_non_ascii_values_and_a_second_content_type_are_refused() {
        let ok = collect_headers([
            ("authorization", b"Basic YTpi".as_slice()),
            ("user-agent", b"curl/8\t(x)".as_slice()),
        ])
        .expect("visible ASCII");
        assert_eq!(ok.len(), 2);
        assert_eq!(
            collect_headers([
                ("authorization", b"Basic YTpi".as_slice()),
                ("authorization", "Basic \u{e9}t\u{e9}".as_bytes()),
            ]),
            Err(HeaderError::NotVisibleAscii)
        );
        assert_eq!(
            collect_headers([("x-any", b"a\x00b".as_slice())]),
            Err(HeaderError::NotVisibleAscii)
        );
        assert_eq!(
            collect_headers([
                (
                    "content-type",
                    b"application/x-www-form-urlencoded".as_slice()
                ),
                ("content-type", b"text/plain".as_slice()),
            ]),
            Err(HeaderError::RepeatedContentType)
        );
    }
}
