//! The `Authorization: OAuth` header (RFC 5849 §3.5.1): parsing on the provider side,
//! building on the client side.

use super::SignatureError;
use super::encode::{decode, encode};

/// A parsed `Authorization: OAuth ...` header: the optional `realm` and the protocol
/// parameters, decoded. The realm is kept apart because it never enters the signature base
/// string (RFC 5849 §3.4.1.3.1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorizationHeader {
    /// The `realm` parameter, if sent.
    pub realm: Option<String>,
    /// The other parameters (all `oauth_*`), decoded, in the order sent.
    pub params: Vec<(String, String)>,
}

impl AuthorizationHeader {
    /// Parses the value of an `Authorization` header with the `OAuth` scheme.
    ///
    /// Returns `Ok(None)` when the header uses another scheme (`Bearer`, `Basic`), so a guard
    /// can try the next one; malformed OAuth headers and parameters other than `realm` and
    /// `oauth_*` are errors (RFC 5849 §3.5.1: "Parameters are separated by a "," character
    /// (ASCII code 44) and OPTIONAL linear whitespace").
    pub fn parse(value: &str) -> Result<Option<Self>, SignatureError> {
        let value = value.trim_start();
        let Some((scheme, rest)) = value.split_once(|c: char| c.is_ascii_whitespace()) else {
            return Ok(if value.eq_ignore_ascii_case("OAuth") {
                Some(Self::default())
            } else {
                None
            });
        };
        if !scheme.eq_ignore_ascii_case("OAuth") {
            return Ok(None);
        }
        let mut header = Self::default();
        for item in split_params(rest) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let Some((name, quoted)) = item.split_once('=') else {
                return Err(SignatureError::Malformed(
                    "header parameter without a value",
                ));
            };
            let name = name.trim();
            let quoted = quoted.trim();
            let Some(inner) = quoted.strip_prefix('"').and_then(|q| q.strip_suffix('"')) else {
                return Err(SignatureError::Malformed(
                    "header parameter value not quoted",
                ));
            };
            if inner.contains('"') {
                return Err(SignatureError::Malformed("quote inside a header parameter"));
            }
            if name == "realm" {
                if header.realm.is_some() {
                    return Err(SignatureError::Malformed("realm sent twice"));
                }
                header.realm = Some(inner.to_owned());
                continue;
            }
            let name = decode(name)?;
            if !name.starts_with("oauth_") {
                return Err(SignatureError::Malformed(
                    "only oauth_ parameters belong in the header",
                ));
            }
            if header.params.iter().any(|(n, _)| *n == name) {
                // RFC 5849 §3.5: each protocol parameter "MUST NOT appear more than once".
                return Err(SignatureError::Malformed("protocol parameter sent twice"));
            }
            header.params.push((name, decode(inner)?));
        }
        Ok(Some(header))
    }

    /// The value of parameter `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Splits the parameter list at the commas that are not inside a quoted value: the `realm`
/// is a quoted-string (RFC 2617 §1.2) that may hold a comma, while the other values are
/// percent-encoded and cannot.
fn split_params(rest: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in rest.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&rest[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&rest[start..]);
    items
}

/// Builds an `Authorization` header value: `OAuth realm="...", name="value", ...`, each name
/// and value encoded as RFC 5849 §3.5.1 requires. `params` should be the `oauth_*`
/// parameters including `oauth_signature`.
///
/// ```
/// use latchkey_oauth1::signature::authorization_header;
/// let header = authorization_header(Some("Photos"), &[("oauth_nonce".into(), "a b".into())]);
/// assert_eq!(header, r#"OAuth realm="Photos", oauth_nonce="a%20b""#);
/// ```
pub fn authorization_header(realm: Option<&str>, params: &[(String, String)]) -> String {
    let mut parts = Vec::with_capacity(params.len() + 1);
    if let Some(realm) = realm {
        // The realm is a quoted-string (RFC 2617); drop characters that would break it.
        let clean: String = realm.chars().filter(|c| *c != '"' && *c != '\\').collect();
        parts.push(format!("realm=\"{clean}\""));
    }
    for (name, value) in params {
        parts.push(format!("{}=\"{}\"", encode(name), encode(value)));
    }
    format!("OAuth {}", parts.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_realm_apart_and_decodes_values() {
        let header = AuthorizationHeader::parse(
            r#"OAuth realm="Example", oauth_consumer_key="9djdj82h48djs9d2",
            oauth_signature="bYT5CMsGcbgUdFHObYMEfcx6bsw%3D""#,
        )
        .ok()
        .flatten();
        let Some(header) = header else {
            panic!("header should parse");
        };
        assert_eq!(header.realm.as_deref(), Some("Example"));
        assert_eq!(header.get("oauth_consumer_key"), Some("9djdj82h48djs9d2"));
        assert_eq!(
            header.get("oauth_signature"),
            Some("bYT5CMsGcbgUdFHObYMEfcx6bsw=")
        );
    }

    #[test]
    fn other_schemes_are_not_oauth() {
        assert_eq!(AuthorizationHeader::parse("Bearer abc").ok(), Some(None));
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            "OAuth oauth_nonce=abc",
            r#"OAuth oauth_nonce="a", oauth_nonce="b""#,
            r#"OAuth foo="bar""#,
            r#"OAuth oauth_nonce"#,
            r#"OAuth oauth_nonce="%FF""#,
        ] {
            assert!(AuthorizationHeader::parse(bad).is_err(), "{bad}");
        }
    }

    /// Found by the `oauth1_request` fuzz target: a realm with a comma, which
    /// `authorization_header` writes as it is, made the header unreadable by its own parser,
    /// so a request signed by this crate's client side was refused by its provider side.
    #[test]
    fn issue_14_realm_with_comma_round_trips() {
        let params = vec![("oauth_nonce".to_owned(), "n".to_owned())];
        let built = authorization_header(Some("Photos, inc"), &params);
        let parsed = AuthorizationHeader::parse(&built).ok().flatten();
        assert_eq!(
            parsed,
            Some(AuthorizationHeader {
                realm: Some("Photos, inc".into()),
                params
            })
        );
        // A quote left open still makes the header malformed.
        assert!(AuthorizationHeader::parse(r#"OAuth realm="a, oauth_nonce="b""#).is_err());
    }

    #[test]
    fn built_header_parses_back() {
        let params = vec![
            ("oauth_consumer_key".to_owned(), "k&y".to_owned()),
            ("oauth_signature".to_owned(), "a+b/c=".to_owned()),
        ];
        let built = authorization_header(Some("r"), &params);
        let parsed = AuthorizationHeader::parse(&built).ok().flatten();
        assert_eq!(
            parsed,
            Some(AuthorizationHeader {
                realm: Some("r".into()),
                params
            })
        );
    }
}
