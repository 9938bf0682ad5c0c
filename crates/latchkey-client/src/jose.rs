//! The JOSE pieces an OpenID Connect relying party needs: the signature algorithms it accepts
//! ([`SigningAlg`]), a compact JWS split into its parts without trusting any of them
//! (RFC 7515 §7.1), signature verification and signing on `jsonwebtoken`
//! (aws-lc-rs), and the left-half hashes of `at_hash`/`c_hash` (OpenID Connect Core §3.1.3.6,
//! §3.3.2.11).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::Digest as _;

/// The longest compact JWS read (ID tokens, 64 KiB): a provider's token is a few hundred
/// bytes; anything near this bound is an attack on the parser, not a login.
pub const MAX_JWS_LEN: usize = 64 * 1024;

/// The JWS algorithms this crate signs and verifies with (RFC 7518 §3.1, RFC 8037 §3.1).
///
/// `none` is not one of them and never will be (OpenID Connect Core §3.1.3.7 step 7 allows
/// it only when the client asked for it at registration; this crate never does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SigningAlg {
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256: the default of OpenID Connect (Discovery §3,
    /// `id_token_signing_alg_values_supported` "MUST include RS256").
    RS256,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// EdDSA on Ed25519 (RFC 8037).
    EdDSA,
    /// HMAC with SHA-256, keyed with the client secret (OpenID Connect Core §10.1): only for
    /// `client_secret_jwt` and for ID tokens of a client registered for it.
    HS256,
}

impl SigningAlg {
    /// Parses the JOSE name (`"ES256"`, ...); `None` for anything else, `"none"` included.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ES256" => Some(Self::ES256),
            "RS256" => Some(Self::RS256),
            "PS256" => Some(Self::PS256),
            "EdDSA" => Some(Self::EdDSA),
            "HS256" => Some(Self::HS256),
            _ => None,
        }
    }

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
            Self::EdDSA => "EdDSA",
            Self::HS256 => "HS256",
        }
    }

    /// Whether the key is a shared secret rather than a public key.
    pub fn is_symmetric(self) -> bool {
        self == Self::HS256
    }

    pub(crate) fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::PS256 => jsonwebtoken::Algorithm::PS256,
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Self::HS256 => jsonwebtoken::Algorithm::HS256,
        }
    }

    /// The left-most half of the hash of `value`, base64url: `at_hash` and `c_hash`.
    ///
    /// OpenID Connect Core §3.1.3.6: "the hash algorithm used is the hash algorithm used in
    /// the alg Header Parameter of the ID Token's JOSE Header". SHA-256 for the `*256`
    /// algorithms; for EdDSA on Ed25519, SHA-512 (the hash inside Ed25519, as the
    /// OpenID Foundation's errata and the certified relying parties use).
    pub fn half_hash(self, value: &str) -> String {
        let digest = match self {
            Self::EdDSA => sha2::Sha512::digest(value.as_bytes()).to_vec(),
            _ => sha2::Sha256::digest(value.as_bytes()).to_vec(),
        };
        let half = digest.get(..digest.len() / 2).unwrap_or_default();
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(half)
    }
}

impl std::fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a compact JWS could not even be split into its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

/// A compact JWS (RFC 7515 §7.1) split into its parts. Nothing in it is trusted until the
/// signature over [`Compact::signing_input`] has been verified.
#[derive(Debug)]
pub(crate) struct Compact<'a> {
    /// The header's `alg`, as sent.
    pub alg: String,
    /// The header's `kid`, if any.
    pub kid: Option<String>,
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`: what the signature covers.
    pub signing_input: &'a str,
    /// The payload, a JSON object.
    pub claims: serde_json::Map<String, serde_json::Value>,
    /// The signature, base64url as sent.
    pub signature: &'a str,
}

impl<'a> Compact<'a> {
    /// Splits `jws`; refuses what is not three base64url parts with JSON-object header and
    /// payload, a string `alg`, a string `kid` if any, or a `crit` header (RFC 7515 §4.1.11:
    /// extensions this parser does not understand must make it refuse the token).
    pub fn parse(jws: &'a str) -> Result<Self, Malformed> {
        if jws.len() > MAX_JWS_LEN {
            return Err(Malformed);
        }
        let mut parts = jws.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Malformed);
        };
        let header = json_object(header)?;
        let claims = json_object(payload)?;
        let alg = match header.get("alg") {
            Some(serde_json::Value::String(alg)) => alg.clone(),
            _ => return Err(Malformed),
        };
        let kid = match header.get("kid") {
            None => None,
            Some(serde_json::Value::String(kid)) => Some(kid.clone()),
            Some(_) => return Err(Malformed),
        };
        if header.contains_key("crit") {
            return Err(Malformed);
        }
        let signing_input = jws.get(..header_and_payload_len(jws)).ok_or(Malformed)?;
        Ok(Self {
            alg,
            kid,
            signing_input,
            claims,
            signature,
        })
    }

    /// Whether the signature verifies with `key` under `alg`.
    pub fn verifies_with(&self, key: &jsonwebtoken::DecodingKey, alg: SigningAlg) -> bool {
        jsonwebtoken::crypto::verify(
            self.signature,
            self.signing_input.as_bytes(),
            key,
            alg.jwt(),
        )
        .unwrap_or(false)
    }
}

fn header_and_payload_len(jws: &str) -> usize {
    jws.rfind('.').unwrap_or(0)
}

fn json_object(part: &str) -> Result<serde_json::Map<String, serde_json::Value>, Malformed> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(Malformed),
    }
}

/// Signs `claims` as a compact JWS with `key` under `alg`, with `typ: JWT` and `kid` if
/// given.
pub(crate) fn sign(
    claims: &serde_json::Value,
    alg: SigningAlg,
    kid: Option<&str>,
    key: &jsonwebtoken::EncodingKey,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut header = jsonwebtoken::Header::new(alg.jwt());
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(v: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
    }

    /// OpenID Connect Core Appendix A.3 and A.4 (RS256): the `at_hash` and `c_hash` of the
    /// examples' access token and code.
    #[test]
    fn half_hashes_match_the_openid_connect_examples() {
        assert_eq!(
            SigningAlg::RS256.half_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(
            SigningAlg::RS256
                .half_hash("Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"),
            "LDktKdoQak3Pk0cnXxCltA"
        );
        assert_eq!(
            SigningAlg::EdDSA.half_hash("x").len(),
            43,
            "32 bytes of SHA-512"
        );
        assert_ne!(
            SigningAlg::EdDSA.half_hash("x").get(..22),
            Some(SigningAlg::ES256.half_hash("x").as_str())
        );
    }

    #[test]
    fn only_the_five_names_parse_and_none_is_not_one() {
        for alg in [
            SigningAlg::ES256,
            SigningAlg::RS256,
            SigningAlg::PS256,
            SigningAlg::EdDSA,
            SigningAlg::HS256,
        ] {
            assert_eq!(SigningAlg::parse(alg.as_str()), Some(alg));
        }
        for raw in ["none", "None", "NONE", "es256", "HS512", "RS384", ""] {
            assert_eq!(SigningAlg::parse(raw), None, "{raw}");
        }
    }

    #[test]
    fn compact_parsing_refuses_what_is_not_a_jws() {
        let header = b64(br#"{"alg":"ES256","kid":"k1"}"#);
        let payload = b64(br#"{"sub":"u"}"#);
        let good = format!("{header}.{payload}.c2ln");
        let parsed = Compact::parse(&good).expect("parses");
        assert_eq!(parsed.alg, "ES256");
        assert_eq!(parsed.kid.as_deref(), Some("k1"));
        assert_eq!(parsed.signing_input, format!("{header}.{payload}"));
        assert_eq!(parsed.signature, "c2ln");
        assert_eq!(parsed.claims["sub"], "u");
        let cases = [
            format!("{header}.{payload}"),
            format!("{header}.{payload}.c2ln.x"),
            format!("{header}.{}.c2ln", b64(b"[1]")),
            format!("{}.{payload}.c2ln", b64(br#"{"kid":"k1"}"#)),
            format!("{}.{payload}.c2ln", b64(br#"{"alg":1}"#)),
            format!("{}.{payload}.c2ln", b64(br#"{"alg":"ES256","kid":7}"#)),
            format!(
                "{}.{payload}.c2ln",
                b64(br#"{"alg":"ES256","crit":["b64"],"b64":false}"#)
            ),
            format!("{header}.{payload}=.c2ln"),
            "a".repeat(MAX_JWS_LEN + 1),
        ];
        for bad in cases {
            assert!(Compact::parse(&bad).is_err(), "{bad}");
        }
    }
}
