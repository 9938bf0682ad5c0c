//! Compact JWS signed by others: a client's assertion (RFC 7523) or request object (RFC 9101),
//! a software publisher's statement (RFC 7591 §2.3), another issuer's token (RFC 8693). One
//! reader of the three parts, one NumericDate rule and one signature check, so the rules of
//! RFC 7515 and RFC 8725 hold for all of them alike; each caller says which algorithms and
//! keys it accepts, and maps a failure to its own RFC error.

use crate::client_assertion::key_suits;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

/// Why a token is not a readable compact JWS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Malformed {
    /// Not three dot-separated parts with a header and a payload.
    NotCompact,
    /// More than three parts: a JWE (RFC 7516 §9) or worse.
    Encrypted,
    /// A part is not base64url.
    NotBase64url,
    /// The header or the payload is not a JSON object.
    NotObject,
}

/// A compact JWS, split, its header decoded. Nothing in it is trusted until
/// [`Jws::signed_by`] held.
#[derive(Debug)]
pub(crate) struct Jws<'a> {
    /// The protected header.
    pub header: Map<String, Value>,
    /// `header.payload`, what the signature covers.
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> Jws<'a> {
    /// Splits `token` (whose size the caller bounded) and decodes its header. The signature
    /// part may be empty (an unsecured JWS); [`Jws::signed_by`] never accepts one.
    pub fn parse(token: &'a str) -> Result<Self, Malformed> {
        let mut it = token.split('.');
        let (header, payload, signature) = match (it.next(), it.next(), it.next(), it.next()) {
            (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() => (h, p, s),
            (Some(_), Some(_), Some(_), Some(_)) => return Err(Malformed::Encrypted),
            _ => return Err(Malformed::NotCompact),
        };
        Ok(Self {
            header: json_part(header)?,
            signing_input: &token[..header.len() + 1 + payload.len()],
            payload,
            signature,
        })
    }

    /// The payload's claims (read before or after the signature check, as the caller needs:
    /// nothing in them is trusted before it).
    pub fn claims(&self) -> Result<Map<String, Value>, Malformed> {
        json_part(self.payload)
    }

    /// The header's `alg`, or "" without one.
    pub fn alg(&self) -> &str {
        self.header.get("alg").and_then(Value::as_str).unwrap_or("")
    }

    /// The header's `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// Whether the header names critical extensions: we understand none, so RFC 7515
    /// §4.1.11 says refuse.
    pub fn has_crit(&self) -> bool {
        self.header.contains_key("crit")
    }

    /// Whether the signature is empty (an unsecured JWS, `alg` `none`).
    pub fn unsigned(&self) -> bool {
        self.signature.is_empty()
    }

    /// Whether one of `keys` that suits `alg` (the one rule, [`key_suits`]) verifies the
    /// signature. `alg` must be one the caller allows for this signer; an asymmetric key never
    /// verifies an HMAC.
    pub fn signed_by<'k>(&self, keys: impl IntoIterator<Item = &'k Jwk>, alg: Algorithm) -> bool {
        let alg_name = self.alg();
        !self.unsigned()
            && keys
                .into_iter()
                .filter(|jwk| key_suits(jwk, alg, alg_name))
                .filter_map(|jwk| DecodingKey::from_jwk(jwk).ok())
                .any(|key| self.verifies(&key, alg))
    }

    /// Whether `key` verifies the signature with `alg` (an HMAC secret, for the callers that
    /// check its length themselves).
    pub fn verifies(&self, key: &DecodingKey, alg: Algorithm) -> bool {
        !self.unsigned()
            && jsonwebtoken::crypto::verify(self.signature, self.signing_input.as_bytes(), key, alg)
                .unwrap_or(false)
    }
}

/// A base64url part that must be a JSON object.
fn json_part(part: &str) -> Result<Map<String, Value>, Malformed> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Malformed::NotBase64url)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(Malformed::NotObject),
    }
}

/// A NumericDate claim (RFC 7519 §2: seconds, possibly with a fraction): `Ok(None)` when
/// absent, `Err` when present but not a number.
pub(crate) fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, ()> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or(()),
        Some(_) => Err(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn only_three_parts_of_json_objects_are_read() {
        let (h, p) = (b64(r#"{"alg":"ES256","kid":"k"}"#), b64(r#"{"iss":"x"}"#));
        let token = format!("{h}.{p}.c2ln");
        let jws = Jws::parse(&token).expect("a JWS");
        assert_eq!(
            (jws.alg(), jws.kid(), jws.has_crit()),
            ("ES256", Some("k"), false)
        );
        assert_eq!(jws.claims().expect("claims")["iss"], "x");
        assert!(
            Jws::parse(&format!("{h}.{p}."))
                .expect("unsecured")
                .unsigned()
        );
        assert_eq!(
            Jws::parse(&format!("{h}.{p}")).err(),
            Some(Malformed::NotCompact)
        );
        assert_eq!(
            Jws::parse(&format!(".{p}.s")).err(),
            Some(Malformed::NotCompact)
        );
        assert_eq!(
            Jws::parse(&format!("{h}.{p}.s.x.y")).err(),
            Some(Malformed::Encrypted)
        );
        assert_eq!(
            Jws::parse(&format!("{h}!.{p}.s")).err(),
            Some(Malformed::NotBase64url)
        );
        let array = b64("[1]");
        assert_eq!(
            Jws::parse(&format!("{array}.{p}.s")).err(),
            Some(Malformed::NotObject)
        );
    }

    #[test]
    fn an_unsecured_jws_is_signed_by_nothing() {
        let (h, p) = (b64(r#"{"alg":"HS256"}"#), b64("{}"));
        let token = format!("{h}.{p}.");
        let jws = Jws::parse(&token).expect("a JWS");
        assert!(!jws.verifies(&DecodingKey::from_secret(b"k"), Algorithm::HS256));
    }

    #[test]
    fn numeric_dates_are_numbers_or_absent() {
        let claims: Map<String, Value> =
            serde_json::from_str(r#"{"a":5,"b":5.9,"c":"5","d":null}"#).expect("json");
        assert_eq!(numeric_date(&claims, "a"), Ok(Some(5)));
        assert_eq!(numeric_date(&claims, "b"), Ok(Some(5)));
        assert_eq!(numeric_date(&claims, "c"), Err(()));
        assert_eq!(numeric_date(&claims, "d"), Err(()));
        assert_eq!(numeric_date(&claims, "e"), Ok(None));
    }
}
