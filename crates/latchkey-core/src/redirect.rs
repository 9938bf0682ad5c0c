//! Redirect URIs: parsing, exact matching against the registered set (RFC 9700 §2.1, §4.1.3)
//! and building the redirect that carries an authorization response (RFC 6749 §4.1.2, §4.2.2).
//!
//! A [`RedirectUri`] is what a request sends; [`RegisteredRedirectUri::resolve`] matches it
//! against the client's registrations once, and the value it returns is the proof: an
//! authorization response is only ever sent to a [`RegisteredRedirectUri`], and the token
//! endpoint checks the code's one with [`RegisteredRedirectUri::confirm`].

use crate::error::OAuthError;
use crate::http::HttpResponse;
use url::Url;

/// A redirect URI as a request carries it: an absolute URI without a fragment
/// (RFC 6749 §3.1.2), kept exactly as sent, because matching compares text (RFC 9700 §2.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Parses a `redirect_uri` parameter.
    pub fn parse(raw: &str) -> Result<Self, OAuthError> {
        // RFC 6749 §3.1.2: "The redirection endpoint URI MUST be an absolute URI ... The
        // endpoint URI MUST NOT include a fragment component."
        if raw.contains('#') || Url::parse(raw).is_err() {
            return Err(OAuthError::invalid_request("malformed redirect_uri"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The URI as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this URI is the `registered` one.
    ///
    /// The comparison is exact, character for character, with one exception from RFC 8252
    /// §7.3: for a loopback IP literal (`http://127.0.0.1` or `http://[::1]`), "the
    /// authorization server MUST allow any port to be specified at the time of the request",
    /// because native apps listen on whatever port the OS gives them.
    pub fn matches(&self, registered: &str) -> bool {
        registered == self.0 || loopback_equivalent(registered, &self.0)
    }
}

/// A redirect URI that is registered for the client of the request: the one the request
/// named, matched against the registrations, or the client's only registration when the
/// request named none. It is the only place an authorization response is sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredRedirectUri {
    uri: String,
    sent: bool,
}

impl RegisteredRedirectUri {
    /// The redirect URI of an authorization request for a client with the `registered` URIs,
    /// given the request's `redirect_uri` parameter, if any. The error is for the user, never
    /// for a redirect (RFC 6749 §4.1.2.1).
    pub fn resolve(registered: &[String], requested: Option<&str>) -> Result<Self, OAuthError> {
        let Some(requested) = requested else {
            // RFC 6749 §3.1.2.3: with exactly one registered URI the parameter may be omitted.
            return match registered {
                [only] => Ok(Self {
                    uri: only.clone(),
                    sent: false,
                }),
                [] => Err(OAuthError::invalid_request(
                    "this client has no registered redirect_uri",
                )),
                _ => Err(OAuthError::invalid_request("redirect_uri is required")),
            };
        };
        match RedirectUri::parse(requested) {
            Ok(uri) if registered.iter().any(|r| uri.matches(r)) => Ok(Self {
                uri: uri.0,
                sent: true,
            }),
            _ => Err(OAuthError::invalid_request(
                "redirect_uri is not registered for this client",
            )),
        }
    }

    /// The redirect URI of an issued authorization code, as its record keeps it: it was
    /// resolved when the code was issued.
    pub(crate) fn issued(uri: String, sent: bool) -> Self {
        Self { uri, sent }
    }

    /// Whether this URI is still among the client's `registered` ones: a request that waited
    /// for the user (a pending request) is re-checked against the registration as it is now,
    /// so a redirect URI removed in the meantime receives nothing.
    pub fn still_registered(&self, registered: &[String]) -> bool {
        registered
            .iter()
            .any(|r| *r == self.uri || loopback_equivalent(r, &self.uri))
    }

    /// The URI.
    pub fn as_str(&self) -> &str {
        &self.uri
    }

    /// Whether the authorization request carried `redirect_uri` (rather than relying on the
    /// client's only registration).
    pub fn was_sent(&self) -> bool {
        self.sent
    }

    /// The URI and whether it was sent, for a store record.
    pub fn into_parts(self) -> (String, bool) {
        (self.uri, self.sent)
    }

    /// RFC 6749 §4.1.3 at the token endpoint, for the redirect URI a code was issued to:
    /// "ensure that the "redirect_uri" parameter is present if the "redirect_uri" parameter
    /// was included in the initial authorization request ... and if included ensure that their
    /// values are identical." Failures are `invalid_grant`.
    pub fn confirm(&self, repeated: Option<&str>) -> Result<(), OAuthError> {
        match repeated {
            Some(sent) if sent != self.uri => Err(OAuthError::invalid_grant(
                "redirect_uri differs from the authorization request",
            )),
            None if self.sent => Err(OAuthError::invalid_grant(
                "redirect_uri is required because the authorization request had one",
            )),
            _ => Ok(()),
        }
    }
}

fn loopback_equivalent(registered: &str, requested: &str) -> bool {
    let (Ok(reg), Ok(req)) = (Url::parse(registered), Url::parse(requested)) else {
        return false;
    };
    let loopback = |u: &Url| {
        u.scheme() == "http"
            && matches!(u.host_str(), Some("127.0.0.1") | Some("[::1]"))
            && u.username().is_empty()
            && u.password().is_none()
    };
    loopback(&reg)
        && loopback(&req)
        && reg.host_str() == req.host_str()
        && reg.path() == req.path()
        && reg.query() == req.query()
        && reg.fragment().is_none()
        && req.fragment().is_none()
        // Apart from the port, the two strings must be identical, so no normalisation trick
        // (`127.1`, `%2e%2e`, an empty `@`) smuggles in a difference.
        && matches!(
            (without_port(registered), without_port(requested)),
            (Some(a), Some(b)) if a == b
        )
}

/// The URI string with the port after its host removed (`http://127.0.0.1:8080/cb` gives
/// `http://127.0.0.1/cb`), found by position rather than by the parsed port, because the
/// parser forgets a default port: `http://127.0.0.1:80/cb` is a loopback URI on port 80,
/// which RFC 8252 §7.3 allows like any other.
fn without_port(raw: &str) -> Option<String> {
    let start = raw.find("://")? + 3;
    let rest = &raw[start..];
    let host_end = if rest.starts_with('[') {
        rest.find(']')? + 1
    } else {
        rest.find([':', '/', '?', '#']).unwrap_or(rest.len())
    };
    let after = &rest[host_end..];
    let after = match after.strip_prefix(':') {
        Some(port) => port.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => after,
    };
    Some(format!("{}{after}", &raw[..start + host_end]))
}

/// Whether a string may be registered as a redirect URI: absolute, no fragment
/// (RFC 6749 §3.1.2), and not a scheme that runs code in the browser.
pub fn is_registrable(uri: &str) -> bool {
    let Ok(url) = Url::parse(uri) else {
        return false;
    };
    url.fragment().is_none()
        && !uri.contains('#')
        && !matches!(url.scheme(), "javascript" | "data" | "vbscript" | "file")
        && (url.has_host() || !matches!(url.scheme(), "http" | "https"))
}

/// Where an authorization response goes in the redirect URI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseMode {
    /// In the query string (the default for `code`).
    Query,
    /// In the fragment (the default for every response type that returns a token or an ID
    /// token, where `query` is refused).
    Fragment,
    /// POSTed to the redirect URI by an auto-submitting HTML form (OAuth 2.0 Form Post
    /// Response Mode): no code or token in any URL.
    FormPost,
}

impl ResponseMode {
    /// Parses `response_mode`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "query" => Some(Self::Query),
            "fragment" => Some(Self::Fragment),
            "form_post" => Some(Self::FormPost),
            _ => None,
        }
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::Fragment => "fragment",
            Self::FormPost => "form_post",
        }
    }

    /// Every mode, as the metadata lists them (`response_modes_supported`).
    pub const ALL: [ResponseMode; 3] = [Self::Query, Self::Fragment, Self::FormPost];
}

/// A redirect to `redirect_uri` carrying `params` in the query or fragment, or, for
/// [`ResponseMode::FormPost`], the page that POSTs them there ([`crate::form_post::page`]).
///
/// `see_other` answers a POST with 303, so the browser follows with a GET and does not
/// re-post the form to the client (RFC 9700 §4.12).
pub fn redirect(
    redirect_uri: &str,
    mode: ResponseMode,
    params: &[(&str, &str)],
    see_other: bool,
) -> HttpResponse {
    if mode == ResponseMode::FormPost {
        return crate::form_post::page(redirect_uri, params);
    }
    let location = match Url::parse(redirect_uri) {
        Ok(mut url) => {
            match mode {
                ResponseMode::Query => {
                    url.query_pairs_mut().extend_pairs(params);
                }
                ResponseMode::Fragment | ResponseMode::FormPost => {
                    let fragment = form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(params)
                        .finish();
                    url.set_fragment(Some(&fragment));
                }
            }
            url.to_string()
        }
        // Registered URIs are validated; this is unreachable in practice, and if it is
        // reached the client gets no parameters rather than a mangled URL.
        Err(_) => redirect_uri.to_owned(),
    };
    HttpResponse {
        status: if see_other { 303 } else { 302 },
        headers: vec![
            ("location".into(), location),
            ("cache-control".into(), "no-store".into()),
        ],
        body: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(uris: &[&str]) -> Vec<String> {
        uris.iter().map(|s| (*s).to_owned()).collect()
    }

    fn matches_registered(registered: &[String], requested: &str) -> bool {
        RegisteredRedirectUri::resolve(registered, Some(requested)).is_ok()
    }

    #[test]
    fn exact_match_only() {
        let r = reg(&["https://app.example/cb"]);
        assert!(matches_registered(&r, "https://app.example/cb"));
        for bad in [
            "https://app.example/cb/",
            "https://app.example/cb?x=1",
            "https://APP.example/cb",
            "https://app.example/cb#x",
            "https://app.example:443/cb",
            "https://app.example.evil/cb",
            "http://app.example/cb",
        ] {
            assert!(!matches_registered(&r, bad), "{bad} must not match");
        }
    }

    #[test]
    fn loopback_ip_may_change_port_only() {
        let r = reg(&["http://127.0.0.1/callback", "http://[::1]:5000/cb"]);
        assert!(matches_registered(&r, "http://127.0.0.1:51004/callback"));
        assert!(matches_registered(&r, "http://[::1]:6001/cb"));
        assert!(!matches_registered(&r, "http://127.0.0.1:51004/other"));
        assert!(!matches_registered(
            &r,
            "http://127.0.0.1:51004/callback?x=1"
        ));
        assert!(!matches_registered(&r, "https://127.0.0.1:51004/callback"));
        assert!(!matches_registered(
            &reg(&["http://localhost/cb"]),
            "http://localhost:9/cb"
        ));
    }

    /// Found by the property tests: the URL parser forgets port 80 of `http`, so a loopback
    /// redirect URI on port 80 was refused although RFC 8252 §7.3 allows any port.
    #[test]
    fn issue_14_loopback_default_port_is_a_port_like_any_other() {
        let r = reg(&["http://127.0.0.1/cb", "http://[::1]:7000/cb"]);
        assert!(matches_registered(&r, "http://127.0.0.1:80/cb"));
        assert!(matches_registered(&r, "http://[::1]:80/cb"));
        assert!(matches_registered(&r, "http://[::1]/cb"));
        // Still only the port may differ.
        assert!(!matches_registered(&r, "http://127.0.0.1:80/cb/"));
        assert!(!matches_registered(&r, "http://127.1:80/cb"));
        assert!(!matches_registered(&r, "http://@127.0.0.1:80/cb"));
    }

    #[test]
    fn an_omitted_redirect_uri_is_the_only_registration_or_an_error() {
        let one = RegisteredRedirectUri::resolve(&reg(&["https://app.example/cb"]), None)
            .expect("the only one");
        assert_eq!(one.as_str(), "https://app.example/cb");
        assert!(!one.was_sent());
        assert!(RegisteredRedirectUri::resolve(&[], None).is_err());
        assert!(
            RegisteredRedirectUri::resolve(&reg(&["https://a/cb", "https://b/cb"]), None).is_err()
        );
        let sent = RegisteredRedirectUri::resolve(
            &reg(&["http://127.0.0.1/cb"]),
            Some("http://127.0.0.1:4711/cb"),
        )
        .expect("loopback, another port");
        assert_eq!(sent.as_str(), "http://127.0.0.1:4711/cb", "the URI as sent");
        assert!(sent.was_sent());
    }

    #[test]
    fn the_token_request_must_repeat_a_sent_redirect_uri_exactly() {
        let sent = RegisteredRedirectUri::issued("https://app.example/cb".into(), true);
        assert!(sent.confirm(Some("https://app.example/cb")).is_ok());
        assert!(sent.confirm(None).is_err());
        assert!(sent.confirm(Some("https://app.example/cb/")).is_err());
        let default = RegisteredRedirectUri::issued("https://app.example/cb".into(), false);
        assert!(default.confirm(None).is_ok());
        assert!(default.confirm(Some("https://app.example/cb")).is_ok());
        assert!(default.confirm(Some("https://app.example/other")).is_err());
    }

    #[test]
    fn registrable_uris() {
        assert!(is_registrable("https://app.example/cb?x=1"));
        assert!(is_registrable("com.example.app:/oauth2redirect"));
        assert!(!is_registrable("https://app.example/cb#frag"));
        assert!(!is_registrable("/relative"));
        assert!(!is_registrable("javascript:alert(1)"));
    }

    #[test]
    fn redirect_appends_to_existing_query_and_encodes() {
        let r = redirect(
            "https://app.example/cb?keep=1",
            ResponseMode::Query,
            &[("code", "a b"), ("state", "x&y")],
            false,
        );
        assert_eq!(r.status, 302);
        assert_eq!(
            r.header("location"),
            Some("https://app.example/cb?keep=1&code=a+b&state=x%26y")
        );
        let f = redirect(
            "https://app.example/cb",
            ResponseMode::Fragment,
            &[("access_token", "t")],
            true,
        );
        assert_eq!(f.status, 303);
        assert_eq!(
            f.header("location"),
            Some("https://app.example/cb#access_token=t")
        );
    }
}
