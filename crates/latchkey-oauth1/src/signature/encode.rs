//! Percent-encoding and parameter normalisation for the signature base string
//! (RFC 5849 §3.4.1.3 and §3.6).
//!
//! OAuth 1.0a encodes with RFC 3986's unreserved set, which differs from form encoding: a
//! space is `%20`, never `+`, and `~` stays as it is. Parameters arrive from three places (the
//! query, a form body and the `Authorization: OAuth` header) and are sorted by encoded name,
//! then encoded value, so duplicate names are ordered by value.

use super::SignatureError;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

/// Everything but RFC 3986 unreserved characters (ALPHA, DIGIT, `-`, `.`, `_`, `~`) is
/// encoded (RFC 5849 §3.6).
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes `value` as RFC 5849 §3.6 requires: UTF-8, then every octet outside the
/// unreserved set as `%XX` with upper-case hex digits.
///
/// ```
/// assert_eq!(latchkey_oauth1::signature::encode("a b+c~"), "a%20b%2Bc~");
/// ```
pub fn encode(value: &str) -> String {
    utf8_percent_encode(value, RESERVED).to_string()
}

/// Decodes a percent-encoded value from an `Authorization: OAuth` header (RFC 5849 §3.5.1).
/// Unlike form decoding, `+` stays a plus sign; invalid UTF-8 is refused.
pub fn decode(value: &str) -> Result<String, SignatureError> {
    percent_decode_str(value)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| SignatureError::Malformed("parameter is not UTF-8 once decoded"))
}

/// Decodes `application/x-www-form-urlencoded` pairs (a query string or a form body), `+`
/// meaning a space, as RFC 5849 §3.4.1.3.1 requires for both sources.
pub fn form_pairs(raw: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(raw)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The normalised request parameters (RFC 5849 §3.4.1.3.2): every pair but
/// `oauth_signature`, each name and value encoded, sorted by name then by value, joined as
/// `name=value` with `&`.
///
/// ```
/// use latchkey_oauth1::signature::normalize_parameters;
/// let params = [("b".into(), "2".into()), ("a".into(), "x y".into()), ("b".into(), "1".into())];
/// assert_eq!(normalize_parameters(&params), "a=x%20y&b=1&b=2");
/// ```
pub fn normalize_parameters(params: &[(String, String)]) -> String {
    let mut encoded: Vec<(String, String)> = params
        .iter()
        .filter(|(name, _)| name != "oauth_signature")
        .map(|(name, value)| (encode(name), encode(value)))
        .collect();
    // RFC 5849 §3.4.1.3.2: "sorted by name, using ascending byte value ordering. If two or
    // more parameters share the same name, they are sorted by their value."
    encoded.sort();
    let mut out = String::new();
    for (i, (name, value)) in encoded.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(name);
        out.push('=');
        out.push_str(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_keeps_unreserved_and_encodes_everything_else_in_upper_hex() {
        assert_eq!(encode("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(encode("=%3D"), "%3D%253D");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(encode("!*'()"), "%21%2A%27%28%29");
    }

    #[test]
    fn decode_keeps_plus_and_refuses_invalid_utf8() {
        assert_eq!(decode("a+b%20c").ok().as_deref(), Some("a+b c"));
        assert!(decode("%FF").is_err());
    }

    #[test]
    fn form_pairs_turn_plus_into_space() {
        assert_eq!(
            form_pairs(b"c2&a3=2+q"),
            vec![("c2".into(), String::new()), ("a3".into(), "2 q".into())]
        );
    }

    #[test]
    fn normalisation_drops_the_signature_and_sorts_duplicates_by_value() {
        let params = vec![
            ("a3".to_owned(), "a".to_owned()),
            ("oauth_signature".to_owned(), "x".to_owned()),
            ("a3".to_owned(), "2 q".to_owned()),
        ];
        assert_eq!(normalize_parameters(&params), "a3=2%20q&a3=a");
    }
}
