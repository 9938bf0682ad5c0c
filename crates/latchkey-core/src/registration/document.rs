//! Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document): a client
//! names itself with an `https` URL as its `client_id`, and the JSON document at that URL
//! is its registration. This module holds the rules, without I/O: which URLs may be client
//! identifiers ([`ClientIdUrl`]), how a fetched document becomes a public [`Client`]
//! ([`client_from_document`]), and how long it may be used before it is fetched again
//! ([`cache_lifetime`]). Fetching it safely (SSRF) is the embedder's: the `latchkey` server
//! resolves, checks and pins every address itself.

use super::RegistrationPolicy;
use super::request::{RegistrationRequest, invalid_metadata};
use crate::client::{AuthMethod, Client};
use crate::clock::UnixTime;
use crate::config::Config;
use crate::error::OAuthError;

/// The largest document accepted, in bytes (the draft's "5 kilobytes" guidance).
pub const MAX_DOCUMENT_LEN: usize = 5 * 1024;

/// A client identifier that is the URL of its metadata document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientIdUrl {
    raw: String,
    url: url::Url,
}

impl ClientIdUrl {
    /// Accepts a client identifier URL (draft §3): `https`, a host, a path other than `/`,
    /// no fragment, no user name or password, no `.` or `..` path segments, and no query;
    /// at most 255 bytes, so it is also a valid [`crate::client::ClientId`]. `http` is
    /// accepted only when `allow_http` (development). `None` for anything else.
    pub fn parse(raw: &str, allow_http: bool) -> Option<Self> {
        if raw.len() > 255 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        let url = url::Url::parse(raw).ok()?;
        let scheme_ok = url.scheme() == "https" || (allow_http && url.scheme() == "http");
        // The raw path, before the parser removes dot segments.
        let after_scheme = raw.split_once("://").map(|(_, rest)| rest)?;
        let raw_path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
        let dotted = raw_path.split('/').any(|s| s == "." || s == "..");
        let ok = scheme_ok
            && url.host_str().is_some_and(|h| !h.is_empty())
            && url.username().is_empty()
            && url.password().is_none()
            && url.fragment().is_none()
            && url.query().is_none()
            && url.path() != "/"
            && !url.path().is_empty()
            && !dotted
            && !raw.contains('#')
            && !raw.contains('?');
        ok.then(|| Self {
            raw: raw.to_owned(),
            url,
        })
    }

    /// The identifier exactly as the client sent it.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The parsed URL, to fetch.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The lower-case host, for an allow-list.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or("")
    }
}

/// Checks a fetched document against `policy` and makes the public client it describes
/// (draft §4): a JSON object whose `client_id` is the URL, compared as strings; no
/// `client_secret` (nothing can be shared with a document); `token_endpoint_auth_method`
/// `none` (the default) or `private_key_jwt` with its keys; redirect URIs as for a
/// registration. Refused with `invalid_client_metadata` or `invalid_redirect_uri`.
pub fn client_from_document(
    id: &ClientIdUrl,
    body: &[u8],
    policy: &RegistrationPolicy,
    config: &Config,
    now: UnixTime,
) -> Result<Client, OAuthError> {
    if body.len() > MAX_DOCUMENT_LEN {
        return Err(invalid_metadata(format!(
            "the client metadata document must be at most {MAX_DOCUMENT_LEN} bytes"
        )));
    }
    let parsed = RegistrationRequest::parse(body)?;
    // Draft §4.1: "MUST match the URL of the document using simple string comparison".
    if parsed.client_id() != Some(id.as_str()) {
        return Err(invalid_metadata(
            "the document's client_id must be its own URL, exactly",
        ));
    }
    if parsed.client_secret().is_some() || parsed.server_issued_member().is_some() {
        return Err(invalid_metadata(
            "a client metadata document must not carry a client_secret or server-issued values",
        ));
    }
    if parsed.has_software_statement() {
        return Err(invalid_metadata(
            "software statements are not accepted in a client metadata document",
        ));
    }
    let mut document_policy = policy.clone();
    document_policy
        .auth_methods
        .retain(|m| matches!(m, AuthMethod::None | AuthMethod::PrivateKeyJwt));
    let built = parsed.to_client_defaulting(
        &document_policy,
        config,
        id.as_str(),
        now,
        AuthMethod::None,
    )?;
    let mut client = built.client;
    if client.name == "Unnamed client" {
        client.name = id.host().to_owned();
    }
    client.metadata.from_metadata_document = true;
    client.validate().map_err(|e| invalid_metadata(e.0))?;
    Ok(client)
}

/// How many seconds a fetched document may be used (RFC 9111 §5.2.2): its `max-age`, at
/// most `max`; 0 for `no-store` or `no-cache` (fetched again at its next use); `default`
/// when the response says nothing.
pub fn cache_lifetime(cache_control: Option<&str>, default: u64, max: u64) -> u64 {
    let Some(value) = cache_control else {
        return default.min(max);
    };
    let mut max_age = None;
    for directive in value.split(',') {
        let directive = directive.trim();
        let (name, arg) = directive
            .split_once('=')
            .map_or((directive, None), |(n, a)| {
                (n.trim(), Some(a.trim().trim_matches('"')))
            });
        if name.eq_ignore_ascii_case("no-store") || name.eq_ignore_ascii_case("no-cache") {
            return 0;
        }
        if name.eq_ignore_ascii_case("max-age") {
            // RFC 9111 §1.2.2: an invalid or overflowing delta-seconds counts as stale.
            max_age = Some(arg.and_then(|a| a.parse::<u64>().ok()).unwrap_or(0));
        }
    }
    max_age.unwrap_or(default).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn url(raw: &str) -> ClientIdUrl {
        ClientIdUrl::parse(raw, false).expect("valid client id URL")
    }

    #[test]
    fn client_id_urls_follow_the_draft() {
        assert!(ClientIdUrl::parse("https://app.example/client.json", false).is_some());
        for bad in [
            "http://app.example/client.json",
            "https://app.example",
            "https://app.example/",
            "https://app.example/a#frag",
            "https://user:pw@app.example/a",
            "https://app.example/a/../b",
            "https://app.example/./b",
            "https://app.example/a?x=1",
            "ftp://app.example/a",
            "not a url",
        ] {
            assert!(ClientIdUrl::parse(bad, false).is_none(), "{bad}");
        }
        assert!(ClientIdUrl::parse("http://127.0.0.1:8080/c.json", true).is_some());
        let long = format!("https://app.example/{}", "a".repeat(250));
        assert!(ClientIdUrl::parse(&long, false).is_none());
    }

    #[test]
    fn a_document_becomes_a_public_client_named_by_its_url() {
        let id = url("https://app.example/client.json");
        let doc = json!({
            "client_id": "https://app.example/client.json",
            "client_name": "App",
            "redirect_uris": ["https://app.example/cb", "http://127.0.0.1/cb"],
            "grant_types": ["authorization_code", "refresh_token"],
        });
        let client = client_from_document(
            &id,
            doc.to_string().as_bytes(),
            &RegistrationPolicy::default(),
            &Config::default(),
            UnixTime(1),
        )
        .expect("valid document");
        assert_eq!(client.id.as_str(), id.as_str());
        assert_eq!(client.token_endpoint_auth_method, Some(AuthMethod::None));
        assert!(client.secret_digest.is_none());
        assert!(client.metadata.from_metadata_document);
    }

    #[test]
    fn documents_that_lie_or_carry_secrets_are_refused() {
        let id = url("https://app.example/client.json");
        let base = json!({
            "client_id": "https://app.example/client.json",
            "redirect_uris": ["https://app.example/cb"],
        });
        let with = |k: &str, v: serde_json::Value| {
            let mut d = base.clone();
            d[k] = v;
            d
        };
        let cases = [
            (
                with("client_id", json!("https://evil.example/client.json")),
                "invalid_client_metadata",
            ),
            (
                with("client_id", json!("https://app.example/client.json/")),
                "invalid_client_metadata",
            ),
            (
                with("client_secret", json!("s3cret")),
                "invalid_client_metadata",
            ),
            (
                with("token_endpoint_auth_method", json!("client_secret_basic")),
                "invalid_client_metadata",
            ),
            (
                with("redirect_uris", json!(["http://evil.example/cb"])),
                "invalid_redirect_uri",
            ),
            (with("redirect_uris", json!([])), "invalid_redirect_uri"),
            (json!([1, 2]), "invalid_client_metadata"),
        ];
        for (doc, code) in cases {
            let err = client_from_document(
                &id,
                doc.to_string().as_bytes(),
                &RegistrationPolicy::default(),
                &Config::default(),
                UnixTime(1),
            )
            .expect_err("refused");
            assert_eq!(err.code().as_str(), code, "{doc}");
        }
        let huge = with("client_name", json!("x".repeat(MAX_DOCUMENT_LEN)));
        assert!(
            client_from_document(
                &id,
                huge.to_string().as_bytes(),
                &RegistrationPolicy::default(),
                &Config::default(),
                UnixTime(1)
            )
            .is_err()
        );
    }

    #[test]
    fn cache_lifetimes_follow_cache_control() {
        assert_eq!(cache_lifetime(None, 300, 86_400), 300);
        assert_eq!(
            cache_lifetime(Some("public, max-age=600"), 300, 86_400),
            600
        );
        assert_eq!(cache_lifetime(Some("max-age=999999"), 300, 86_400), 86_400);
        assert_eq!(cache_lifetime(Some("no-store"), 300, 86_400), 0);
        assert_eq!(cache_lifetime(Some("max-age=60, no-cache"), 300, 86_400), 0);
        assert_eq!(cache_lifetime(Some("max-age=abc"), 300, 86_400), 0);
        assert_eq!(cache_lifetime(Some("private"), 300, 86_400), 300);
    }
}
