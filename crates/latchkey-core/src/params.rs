//! `application/x-www-form-urlencoded` decoding with the rules of RFC 6749 §3.1.
//!
//! "Request and response parameters MUST NOT be included more than once", and "parameters
//! sent without a value MUST be treated as if they were omitted from the request". Sizes are
//! bounded so a hostile body costs little.

use crate::error::OAuthError;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The largest form body or query string the endpoints accept, in bytes.
pub const MAX_FORM_BYTES: usize = 64 * 1024;
/// The most parameters one request may carry.
pub const MAX_PARAMS: usize = 64;

/// The parameters that may be sent more than once: RFC 8707 §2 `resource` ("may be used
/// multiple times") and RFC 8693 §2.1 `audience`. Every other name is refused when repeated.
pub const REPEATABLE: [&str; 2] = ["resource", "audience"];

/// Decoded request parameters, each present at most once and never empty, but for the
/// [`REPEATABLE`] ones (see [`Params::get_all`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Params(BTreeMap<String, String>, BTreeMap<String, Vec<String>>);

impl Params {
    /// Decodes a form body or query string, refusing repeated parameters.
    pub fn parse(raw: &[u8]) -> Result<Self, OAuthError> {
        if raw.len() > MAX_FORM_BYTES {
            return Err(OAuthError::invalid_request(
                "request parameters are too large",
            ));
        }
        let Ok(text) = std::str::from_utf8(raw) else {
            return Err(OAuthError::invalid_request(
                "request parameters are not valid UTF-8",
            ));
        };
        let mut map = BTreeMap::new();
        let mut repeated: BTreeMap<String, Vec<String>> = BTreeMap::new();
        // Names seen so far, borrowed from `raw` unless they were encoded: at most
        // MAX_PARAMS, so a scan costs less than a set of owned copies.
        let mut seen: Vec<std::borrow::Cow<'_, str>> = Vec::new();
        for (count, (name, value)) in pairs(text).enumerate() {
            if count >= MAX_PARAMS {
                return Err(OAuthError::invalid_request("too many request parameters"));
            }
            if REPEATABLE.contains(&name.as_ref()) {
                if value.contains('\u{FFFD}') {
                    return Err(OAuthError::invalid_request(
                        "request parameters are not valid UTF-8",
                    ));
                }
                if !value.is_empty() {
                    let values = repeated.entry(name.to_string()).or_default();
                    if values.is_empty() {
                        map.insert(name.to_string(), value.to_string());
                    }
                    values.push(value.into_owned());
                }
                continue;
            }
            // RFC 6749 §3.1: "Request and response parameters MUST NOT be included more than once."
            if seen.contains(&name) {
                return Err(OAuthError::invalid_request(format!(
                    "parameter '{}' is repeated",
                    printable(&name)
                )));
            }
            if value.contains('\u{FFFD}') {
                return Err(OAuthError::invalid_request(
                    "request parameters are not valid UTF-8",
                ));
            }
            // RFC 6749 §3.1: "Parameters sent without a value MUST be treated as if they were
            // omitted from the request."
            if !value.is_empty() {
                map.insert(name.to_string(), value.into_owned());
            }
            seen.push(name);
        }
        Ok(Self(map, repeated))
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value of `name`, or `invalid_request` naming the missing parameter.
    pub fn require(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("missing parameter '{name}'")))
    }

    /// Every value of a [`REPEATABLE`] parameter, in the order sent; empty when absent. For
    /// any other name, its one value.
    pub fn get_all(&self, name: &str) -> &[String] {
        match self.1.get(name) {
            Some(values) => values,
            None => self.0.get(name).map(std::slice::from_ref).unwrap_or(&[]),
        }
    }

    /// Every parameter, sorted by name (a repeated one with its first value only; see
    /// [`Params::get_all`]).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// The name-value pairs of a form body already known to be UTF-8, decoded exactly as
/// `form_urlencoded::parse` decodes them (empty sequences skipped, the name up to the first
/// `=`, `+` a space, `%XX` a byte, invalid UTF-8 replaced), but borrowed from `text` when a
/// part holds neither `+` nor `%`, as the parameters of most requests do.
fn pairs(text: &str) -> impl Iterator<Item = (Cow<'_, str>, Cow<'_, str>)> {
    text.split('&')
        .filter(|sequence| !sequence.is_empty())
        .map(|sequence| {
            let (name, value) = sequence.split_once('=').unwrap_or((sequence, ""));
            (decode(name), decode(value))
        })
}

/// One part of a form body: itself unless it holds `+` or `%`.
fn decode(part: &str) -> Cow<'_, str> {
    if !part.bytes().any(|b| b == b'+' || b == b'%') {
        return Cow::Borrowed(part);
    }
    let spaced = part.replace('+', " ");
    let decoded: Vec<u8> = percent_encoding::percent_decode(spaced.as_bytes()).collect();
    match String::from_utf8(decoded) {
        Ok(text) => Cow::Owned(text),
        Err(err) => Cow::Owned(String::from_utf8_lossy(err.as_bytes()).into_owned()),
    }
}

/// A parameter name made safe to echo in an `error_description` (RFC 6749 §5.2 limits its
/// characters to printable ASCII without `"` and `\`).
pub(crate) fn printable(raw: &str) -> String {
    raw.chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .take(40)
        .collect()
}

/// A description made safe for `error_description`, without the length cap of [`printable`].
pub(crate) fn printable_long(raw: &str) -> String {
    raw.chars()
        .filter(|c| matches!(c, ' '..='~') && *c != '"' && *c != '\\')
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn pairs_decode_as_form_urlencoded_does() {
        let bodies = [
            "a=b+c&d=%2Fe",
            "grant_type=client_credentials&scope=read%20write",
            "&&a=&=b&c&d==e&f=g=h&",
            "x=%zz&y=%2&z=%&w=%C3%A9&v=%FF%FE&u=caf\u{e9}",
            "n%61me=v%61lue&+=+&%2B=%2b",
            "",
            "=",
            "&",
        ];
        for body in bodies {
            let ours: Vec<(String, String)> = pairs(body)
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            let theirs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            assert_eq!(ours, theirs, "{body}");
        }
    }

    #[test]
    fn decodes_plus_and_percent() {
        let p = Params::parse(b"a=b+c&d=%2Fe").expect("valid form");
        assert_eq!(p.get("a"), Some("b c"));
        assert_eq!(p.get("d"), Some("/e"));
    }

    #[test]
    fn resource_and_audience_may_repeat_and_keep_their_order() {
        let p = Params::parse(
            b"resource=https%3A%2F%2Fb.example&resource=https%3A%2F%2Fa.example&audience=x&scope=s",
        )
        .expect("repeatable");
        assert_eq!(
            p.get_all("resource"),
            ["https://b.example", "https://a.example"]
        );
        assert_eq!(p.get("resource"), Some("https://b.example"));
        assert_eq!(p.get_all("audience"), ["x"]);
        assert_eq!(p.get_all("scope"), ["s"]);
        assert!(p.get_all("absent").is_empty());
        assert!(Params::parse(b"scope=a&scope=b").is_err());
    }

    #[test]
    fn repeated_parameter_is_refused() {
        let err = Params::parse(b"grant_type=a&grant_type=b").expect_err("repeated");
        assert_eq!(err.code(), ErrorCode::InvalidRequest);
        // Sent empty, then with a value; and the same name once encoded, once not.
        for body in [&b"scope=&scope=a"[..], b"scope=a&sc%6Fpe=b"] {
            let err = Params::parse(body).expect_err("repeated");
            assert_eq!(err.code(), ErrorCode::InvalidRequest);
        }
    }

    #[test]
    fn empty_value_counts_as_omitted() {
        let p = Params::parse(b"scope=&a=1").expect("valid form");
        assert!(!p.contains("scope"));
        assert!(p.require("scope").is_err());
    }

    #[test]
    fn oversized_and_non_utf8_bodies_are_refused() {
        assert!(Params::parse(&vec![b'a'; MAX_FORM_BYTES + 1]).is_err());
        assert!(Params::parse(b"a=%FF").is_err());
        assert!(Params::parse(&[b'a', b'=', 0xff]).is_err());
    }

    #[test]
    fn too_many_parameters_are_refused() {
        let body: Vec<String> = (0..=MAX_PARAMS).map(|i| format!("p{i}=1")).collect();
        assert!(Params::parse(body.join("&").as_bytes()).is_err());
    }

    #[test]
    fn printable_strips_quotes_and_control_characters() {
        assert_eq!(printable("a\"b\\c\nd"), "abcd");
    }
}
