//! `application/x-www-form-urlencoded` decoding with the rules of RFC 6749 §3.1.
//!
//! "Request and response parameters MUST NOT be included more than once", and "parameters
//! sent without a value MUST be treated as if they were omitted from the request". Sizes are
//! bounded so a hostile body costs little.

use crate::error::OAuthError;
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
        if std::str::from_utf8(raw).is_err() {
            return Err(OAuthError::invalid_request(
                "request parameters are not valid UTF-8",
            ));
        }
        let mut map = BTreeMap::new();
        let mut repeated: BTreeMap<String, Vec<String>> = BTreeMap::new();
        // Names seen so far, borrowed from `raw` unless they were encoded: at most
        // MAX_PARAMS, so a scan costs less than a set of owned copies.
        let mut seen: Vec<std::borrow::Cow<'_, str>> = Vec::new();
        for (count, (name, value)) in form_urlencoded::parse(raw).enumerate() {
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
