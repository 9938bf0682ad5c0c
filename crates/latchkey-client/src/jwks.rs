//! The provider's signing keys (its JWK Set, RFC 7517 §5, at the `jwks_uri` of OpenID Connect
//! Discovery §3), kept in a bounded cache: at most [`MAX_JWKS_BYTES`] read and [`MAX_KEYS`]
//! kept, for the `max-age` of the answer's `Cache-Control` held between
//! [`MIN_MAX_AGE`] and [`MAX_MAX_AGE`], and refetched early at most once per
//! [`REFETCH_COOLDOWN`] when a token names a key the cache does not know (a rotation at the
//! provider, OpenID Connect Core §10.1.1), so a stream of forged tokens cannot make the
//! client hammer the provider.
//!
//! Pure state and parsing: [`RemoteApp`](crate::RemoteApp) does the fetching.

use crate::error::ClientError;
use crate::http::{Method, Request, Response};
use crate::jose::SigningAlg;
use latchkey_core::clock::UnixTime;
use std::sync::Arc;

/// The largest JWK Set read (256 KiB): large providers publish a dozen RSA keys with
/// certificate chains in well under 64 KiB.
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The most keys kept from one JWK Set; the rest are ignored.
pub const MAX_KEYS: usize = 32;
/// How long keys are kept when the answer has no `Cache-Control` `max-age`.
pub const DEFAULT_MAX_AGE: u64 = 600;
/// The shortest time keys are kept, whatever `Cache-Control` says (`no-store` included):
/// each login must not cost a JWKS fetch.
pub const MIN_MAX_AGE: u64 = 60;
/// The longest time keys are kept, whatever `Cache-Control` says: a key the provider
/// withdrew (compromised) stops verifying within a day.
pub const MAX_MAX_AGE: u64 = 86_400;
/// The shortest time between two early refetches caused by an unknown `kid`.
pub const REFETCH_COOLDOWN: u64 = 30;

/// The kind of a public key, which fixes the algorithms it may verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    EcP256,
    Ed25519,
}

impl KeyKind {
    /// RFC 7518 §3.3-3.5, RFC 8037 §3.1: which `alg` goes with which key type.
    fn verifies(self, alg: SigningAlg) -> bool {
        matches!(
            (self, alg),
            (Self::Rsa, SigningAlg::RS256 | SigningAlg::PS256)
                | (Self::EcP256, SigningAlg::ES256)
                | (Self::Ed25519, SigningAlg::EdDSA)
        )
    }
}

/// One usable public key of the provider.
pub struct PublicKey {
    kid: Option<String>,
    alg: Option<String>,
    kind: KeyKind,
    key: jsonwebtoken::DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl PublicKey {
    /// The key to verify with.
    pub(crate) fn decoding_key(&self) -> &jsonwebtoken::DecodingKey {
        &self.key
    }

    /// Reads one JWK; `None` for keys this client cannot or must not verify with: symmetric
    /// (`oct`: a published shared key verifies nothing), not for signatures (`use` other than
    /// `sig`), of an algorithm or curve it does not support, or unreadable.
    fn from_jwk(value: &serde_json::Value) -> Option<Self> {
        let field = |name: &str| value.get(name).and_then(serde_json::Value::as_str);
        // RFC 7517 §4.2: "sig" is the use of a signature key.
        if value.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
            return None;
        }
        let kind = match (field("kty")?, field("crv")) {
            ("RSA", _) => KeyKind::Rsa,
            ("EC", Some("P-256")) => KeyKind::EcP256,
            ("OKP", Some("Ed25519")) => KeyKind::Ed25519,
            _ => return None,
        };
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(value.clone()).ok()?;
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).ok()?;
        Some(Self {
            kid: field("kid").map(str::to_owned),
            alg: field("alg").map(str::to_owned),
            kind,
            key,
        })
    }

    /// Whether this key may verify a token with `kid` (if any) and `alg`: same `kid`, a
    /// key type that goes with `alg`, and the key's own `alg` (RFC 7517 §4.4), if any, equal.
    fn matches(&self, kid: Option<&str>, alg: SigningAlg) -> bool {
        kid.is_none_or(|kid| self.kid.as_deref() == Some(kid))
            && self.kind.verifies(alg)
            && self.alg.as_deref().is_none_or(|a| a == alg.as_str())
    }
}

/// Parses a JWK Set document, keeping at most [`MAX_KEYS`] usable signature keys.
pub fn parse_key_set(body: &[u8]) -> Result<Vec<Arc<PublicKey>>, ClientError> {
    if body.len() > MAX_JWKS_BYTES {
        return Err(ClientError::InvalidResponse(format!(
            "the JWK Set is larger than {MAX_JWKS_BYTES} bytes"
        )));
    }
    let doc: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ClientError::InvalidResponse(format!("the JWK Set is not JSON: {e}")))?;
    // RFC 7517 §5: a JWK Set is an object whose `keys` member is an array of JWKs.
    let Some(keys) = doc.get("keys").and_then(serde_json::Value::as_array) else {
        return Err(ClientError::InvalidResponse(
            "the JWK Set has no keys array".into(),
        ));
    };
    Ok(keys
        .iter()
        .filter_map(PublicKey::from_jwk)
        .take(MAX_KEYS)
        .map(Arc::new)
        .collect())
}

/// How long to keep keys fetched with this `Cache-Control` header: its `max-age` (or 0 for
/// `no-store`/`no-cache`), held between [`MIN_MAX_AGE`] and [`MAX_MAX_AGE`];
/// [`DEFAULT_MAX_AGE`] without one.
pub fn max_age(cache_control: Option<&str>) -> u64 {
    let Some(header) = cache_control else {
        return DEFAULT_MAX_AGE;
    };
    let mut age = None;
    for directive in header.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            age = Some(0);
            break;
        }
        if let Some(value) = lower.strip_prefix("max-age=") {
            age = Some(value.trim_matches('"').parse::<u64>().unwrap_or(0));
        }
    }
    age.unwrap_or(DEFAULT_MAX_AGE)
        .clamp(MIN_MAX_AGE, MAX_MAX_AGE)
}

/// The request for the key set.
pub fn key_set_request(jwks_uri: &str) -> Request {
    Request::new(Method::Get, jwks_uri).with_header("accept", "application/json")
}

/// The cached keys of one provider and when to fetch them again.
#[derive(Debug, Default)]
pub struct JwksCache {
    keys: Vec<Arc<PublicKey>>,
    expires_at: Option<UnixTime>,
    last_refetch: Option<UnixTime>,
}

impl JwksCache {
    /// An empty cache: the first lookup fetches.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the keys must be fetched before use: never fetched, or past their max-age.
    pub fn is_stale(&self, now: UnixTime) -> bool {
        self.expires_at.is_none_or(|at| now >= at)
    }

    /// Takes an early refetch for an unknown key if the cooldown allows one, and records it
    /// (so a failed refetch counts too).
    pub fn take_refetch(&mut self, now: UnixTime) -> bool {
        if self
            .last_refetch
            .is_some_and(|last| now < last.plus(REFETCH_COOLDOWN))
        {
            return false;
        }
        self.last_refetch = Some(now);
        true
    }

    /// Replaces the keys with the set in `resp`, fetched at `now`.
    pub fn store(&mut self, resp: &Response, now: UnixTime) -> Result<(), ClientError> {
        if !resp.is_success() {
            return Err(ClientError::InvalidResponse(format!(
                "the jwks_uri answered {}",
                resp.status
            )));
        }
        self.keys = parse_key_set(&resp.body)?;
        self.expires_at = Some(now.plus(max_age(resp.header("cache-control"))));
        Ok(())
    }

    /// Records a failed fetch at `now`: the keys held (if any) serve for another
    /// [`REFETCH_COOLDOWN`] before the next attempt, so a provider that is down is not asked
    /// again for every login (or every forged token) meanwhile.
    pub fn fetch_failed(&mut self, now: UnixTime) {
        self.expires_at = Some(now.plus(REFETCH_COOLDOWN));
        self.last_refetch = Some(now);
    }

    /// The keys that may verify a token with `kid` (if any) and `alg`.
    ///
    /// OpenID Connect Core §10.1.1: with several keys in the set, the token must carry a
    /// `kid`; without one, every key of the right type and algorithm is a candidate.
    pub fn candidates(&self, kid: Option<&str>, alg: SigningAlg) -> Vec<Arc<PublicKey>> {
        self.keys
            .iter()
            .filter(|k| k.matches(kid, alg))
            .cloned()
            .collect()
    }

    /// How many keys are kept.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EC: &str = r#"{"kty":"EC","crv":"P-256","kid":"ec1","use":"sig","alg":"ES256",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;
    const OKP: &str = r#"{"kty":"OKP","crv":"Ed25519","kid":"ed1","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;

    fn set(keys: &[&str]) -> Vec<u8> {
        format!(r#"{{"keys":[{}]}}"#, keys.join(",")).into_bytes()
    }

    #[test]
    fn cache_control_is_held_between_the_floor_and_the_ceiling() {
        let cases = [
            (None, DEFAULT_MAX_AGE),
            (Some("public, max-age=3600"), 3600),
            (Some("max-age=5"), MIN_MAX_AGE),
            (Some("max-age=99999999"), MAX_MAX_AGE),
            (Some("no-store"), MIN_MAX_AGE),
            (Some("no-cache, max-age=3600"), MIN_MAX_AGE),
            (Some("max-age=banana"), MIN_MAX_AGE),
            (Some("public"), DEFAULT_MAX_AGE),
            (Some("Max-Age=\"7200\""), 7200),
        ];
        for (header, want) in cases {
            assert_eq!(max_age(header), want, "{header:?}");
        }
    }

    #[test]
    fn only_public_signature_keys_of_supported_kinds_are_kept() {
        let oct = r#"{"kty":"oct","kid":"h","k":"c2VjcmV0"}"#;
        let enc = EC.replace(r#""use":"sig""#, r#""use":"enc""#);
        let p384 = r#"{"kty":"EC","crv":"P-384","kid":"p384","x":"AA","y":"AA"}"#;
        let odd = r#"{"kty":"XYZ","kid":"odd"}"#;
        let keys = parse_key_set(&set(&[oct, &enc, p384, odd, EC, OKP])).expect("set");
        let kids: Vec<_> = keys.iter().map(|k| k.kid.clone()).collect();
        assert_eq!(kids, vec![Some("ec1".into()), Some("ed1".into())]);
        let many: Vec<&str> = std::iter::repeat_n(OKP, MAX_KEYS + 5).collect();
        assert_eq!(parse_key_set(&set(&many)).expect("set").len(), MAX_KEYS);
        assert!(parse_key_set(b"[]").is_err());
        assert!(parse_key_set(b"{\"keys\":{}}").is_err());
        let huge = vec![b' '; MAX_JWKS_BYTES + 1];
        assert!(parse_key_set(&huge).is_err());
    }

    #[test]
    fn keys_are_chosen_by_kid_then_by_type_and_alg() {
        let mut cache = JwksCache::new();
        let now = UnixTime(1_000);
        assert!(cache.is_stale(now));
        let resp = Response::new(200, set(&[EC, OKP])).with_header("cache-control", "max-age=120");
        cache.store(&resp, now).expect("stored");
        assert!(!cache.is_stale(UnixTime(1_119)));
        assert!(cache.is_stale(UnixTime(1_120)));
        let kids = |kid: Option<&str>, alg| {
            cache
                .candidates(kid, alg)
                .iter()
                .map(|k| k.kid.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        };
        assert_eq!(kids(Some("ec1"), SigningAlg::ES256), vec!["ec1"]);
        assert!(
            kids(Some("ec1"), SigningAlg::EdDSA).is_empty(),
            "wrong type"
        );
        assert!(kids(Some("ec1"), SigningAlg::RS256).is_empty());
        assert!(kids(Some("nope"), SigningAlg::ES256).is_empty());
        assert_eq!(kids(None, SigningAlg::EdDSA), vec!["ed1"]);
        assert!(kids(None, SigningAlg::HS256).is_empty(), "never a JWKS key");
        assert!(
            cache
                .store(&Response::new(500, "oops"), UnixTime(2_000))
                .is_err()
        );
    }

    #[test]
    fn a_failed_fetch_keeps_the_old_keys_and_waits_before_the_next() {
        let mut cache = JwksCache::new();
        let resp = Response::new(200, set(&[EC])).with_header("cache-control", "max-age=60");
        cache.store(&resp, UnixTime(0)).expect("stored");
        assert!(cache.is_stale(UnixTime(60)));
        assert!(cache.store(&Response::new(503, ""), UnixTime(60)).is_err());
        cache.fetch_failed(UnixTime(60));
        assert!(!cache.is_stale(UnixTime(60 + REFETCH_COOLDOWN as i64 - 1)));
        assert!(cache.is_stale(UnixTime(60 + REFETCH_COOLDOWN as i64)));
        assert_eq!(cache.candidates(Some("ec1"), SigningAlg::ES256).len(), 1);
        assert!(!cache.take_refetch(UnixTime(61)), "no early refetch either");
    }

    #[test]
    fn early_refetches_wait_for_the_cooldown() {
        let mut cache = JwksCache::new();
        assert!(cache.take_refetch(UnixTime(100)));
        assert!(!cache.take_refetch(UnixTime(100)));
        assert!(!cache.take_refetch(UnixTime(100 + REFETCH_COOLDOWN as i64 - 1)));
        assert!(cache.take_refetch(UnixTime(100 + REFETCH_COOLDOWN as i64)));
    }
}
