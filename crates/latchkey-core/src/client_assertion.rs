//! Client authentication by JWT (RFC 7523 §2.2 and §3, OpenID Connect Core §9):
//! `private_key_jwt` (signed with a key of the client's JWK Set, registered inline or at a
//! `jwks_uri`) and `client_secret_jwt` (an HMAC keyed with the client secret).
//!
//! The checks run in this order, each refusal an `invalid_client`: size, header (an algorithm
//! the client's method allows, never `none`, never an HMAC for a key pair), claims (`iss` =
//! `sub` = client id, `aud`, `exp` required and near, `iat`/`nbf` not in the future, `jti`
//! present), signature, and last the replay cache: a `jti` is remembered until the assertion
//! expires ([`crate::store::ReplayStore`]), only once the signature proved the client sent it.
//!
//! **Audience.** An assertion must name this server: its issuer identifier or its token
//! endpoint URL (`aud` a string, or an array holding one of them). OpenID Connect Core §9
//! says the audience "SHOULD be the URL of the Authorization Server's Token Endpoint", and
//! RFC 7523 §3 lets the issuer identify the server; both are this server's own identities, and
//! clients use both (the same assertion serves revocation and introspection). Any other value,
//! another endpoint's URL included, is refused.
//!
//! The core stays free of I/O: fetching a `jwks_uri` is a [`JwksFetcher`] the server supplies
//! (with its cache, bounds and SSRF rules); without one, `jwks_uri` clients cannot
//! authenticate.

use crate::client::{AuthMethod, Client};
use crate::clock::UnixTime;
use crate::error::OAuthError;
use crate::jose::Kek;
use crate::jose::foreign::{self, Jws, Malformed};
use crate::secret::Secret;
use crate::store::ReplayStore;
use crate::store::replay::replay_key;
use base64::Engine as _;
/// A JWK Set (RFC 7517 §5), as a [`JwksFetcher`] returns it.
pub use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// `client_assertion_type` for a JWT (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest assertion read: a JWT signed with a 4096-bit RSA key and a few claims is about
/// 1.5 KiB.
pub const MAX_ASSERTION_LEN: usize = 8 * 1024;

/// How far ahead `exp` may be, in seconds: an assertion is made for one request, and its
/// `jti` is remembered until `exp`, so this bounds the replay cache.
pub const MAX_LIFETIME: i64 = 600;

/// How far in the future `iat` and `nbf` may be, for clocks that disagree a little.
pub const LEEWAY: i64 = 60;

/// The longest `jti` accepted.
pub const MAX_JTI_LEN: usize = 256;

/// The most keys a client's JWK Set may hold (inline or fetched): each one without a `kid`
/// match may cost a signature check.
pub const MAX_CLIENT_KEYS: usize = 16;

/// The signature algorithms `private_key_jwt` accepts: the asymmetric ones of RFC 7518 §3.1
/// and RFC 8037 that the crypto library verifies.
pub const PRIVATE_KEY_ALGS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// The algorithms `client_secret_jwt` accepts (RFC 7518 §3.2).
pub const SECRET_ALGS: [&str; 3] = ["HS256", "HS384", "HS512"];

/// A future a [`JwksFetcher`] returns.
pub type FetchFuture<'a> = Pin<Box<dyn Future<Output = Result<Arc<JwkSet>, String>> + Send + 'a>>;

/// Fetches a client's JWK Set from its `jwks_uri`: the one piece of I/O client assertions
/// need, supplied by the server (HTTP with a bounded cache; see the `latchkey` server).
pub trait JwksFetcher: Send + Sync + 'static {
    /// The JWK Set at `uri`. `refresh` asks to look again past any cache because an
    /// assertion named a `kid` the cached set lacks (the client rotated its keys); the
    /// fetcher decides how often it honours that. The error is for the log.
    fn fetch<'a>(&'a self, uri: &'a str, refresh: bool) -> FetchFuture<'a>;
}

/// What the provider needs to check client assertions beyond the store: the key-encryption
/// key that opens `client_secret_jwt` secrets, and the `jwks_uri` fetcher. Both optional; a
/// client whose method needs a missing one cannot authenticate.
#[derive(Clone, Default)]
pub struct AssertionKeys {
    /// Opens the sealed secrets of `client_secret_jwt` clients.
    pub kek: Option<Kek>,
    /// Fetches `jwks_uri` key sets.
    pub fetcher: Option<Arc<dyn JwksFetcher>>,
}

impl std::fmt::Debug for AssertionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AssertionKeys")
            .field("kek", &self.kek.is_some())
            .field("fetcher", &self.fetcher.is_some())
            .finish()
    }
}

/// Where and when an assertion is being checked.
#[derive(Debug)]
pub struct Audience<'a> {
    /// The issuer identifier.
    pub issuer: &'a str,
    /// The token endpoint URL.
    pub token_endpoint: &'a str,
}

/// The parts of an assertion read before its client is known: which client it names and
/// which method it uses. Nothing here is trusted until [`verify`] passed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peeked {
    /// The `sub` claim: the client id (RFC 7523 §3 item 2).
    pub subject: String,
    /// `client_secret_jwt` for an HMAC `alg`, `private_key_jwt` otherwise.
    pub method: AuthMethod,
}

fn refused(description: &'static str) -> OAuthError {
    OAuthError::invalid_client(description)
}

/// Reads `assertion` as a compact JWS, bounded in size.
fn parse(assertion: &str) -> Result<Jws<'_>, OAuthError> {
    if assertion.len() > MAX_ASSERTION_LEN {
        return Err(refused("client assertion too large"));
    }
    Jws::parse(assertion).map_err(|why| {
        refused(match why {
            Malformed::NotCompact | Malformed::Encrypted => "client assertion is not a compact JWS",
            Malformed::NotBase64url => "client assertion is not base64url",
            Malformed::NotObject => "client assertion part is not a JSON object",
        })
    })
}

/// The claims of a parsed assertion.
fn claims_of(jws: &Jws<'_>) -> Result<serde_json::Map<String, Value>, OAuthError> {
    jws.claims().map_err(|why| {
        refused(if why == Malformed::NotBase64url {
            "client assertion is not base64url"
        } else {
            "client assertion part is not a JSON object"
        })
    })
}

/// Reads the client id and method of an assertion without trusting it, so the client can
/// be looked up and its method rule applied before any key work.
pub fn peek(assertion: &str) -> Result<Peeked, OAuthError> {
    let jws = parse(assertion)?;
    let alg = jws.alg();
    let method = if SECRET_ALGS.contains(&alg) {
        AuthMethod::ClientSecretJwt
    } else if PRIVATE_KEY_ALGS.contains(&alg) {
        AuthMethod::PrivateKeyJwt
    } else {
        // RFC 7515 §4.1.1 and RFC 8725 §3.1: `none` and unknown algorithms are refused.
        return Err(refused("client assertion alg not allowed"));
    };
    let claims = claims_of(&jws)?;
    let Some(subject) = claims.get("sub").and_then(Value::as_str) else {
        return Err(refused("client assertion has no sub"));
    };
    Ok(Peeked {
        subject: subject.to_owned(),
        method,
    })
}

/// A claim that is a NumericDate (RFC 7519 §2): `None` when present but not a number.
fn numeric_date(claims: &serde_json::Map<String, Value>, name: &str) -> Option<Option<i64>> {
    foreign::numeric_date(claims, name).ok()
}

/// Checks the claims of RFC 7523 §3 and OpenID Connect Core §9; returns `jti` and `exp`.
fn check_claims(
    claims: &serde_json::Map<String, Value>,
    client_id: &str,
    audience: &Audience<'_>,
    now: UnixTime,
) -> Result<(String, UnixTime), OAuthError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    // RFC 7523 §3 items 1 and 2; OpenID Connect Core §9: "iss ... MUST contain the client_id
    // of the OAuth Client", "sub ... MUST contain the client_id of the OAuth Client".
    if text("iss") != Some(client_id) {
        return Err(refused("client assertion iss must be the client id"));
    }
    if text("sub") != Some(client_id) {
        return Err(refused("client assertion sub must be the client id"));
    }
    // RFC 7523 §3 item 3: "The JWT MUST contain an "aud" (audience) claim containing a value
    // that identifies the authorization server as an intended audience." See the module
    // documentation for the values accepted.
    let ours = |v: &Value| {
        v.as_str()
            .is_some_and(|a| a == audience.issuer || a == audience.token_endpoint)
    };
    let aud_ok = match claims.get("aud") {
        Some(Value::Array(values)) => values.len() <= 16 && values.iter().any(ours),
        Some(value) => ours(value),
        None => false,
    };
    if !aud_ok {
        return Err(refused("client assertion aud must name this server"));
    }
    // RFC 7523 §3 item 4: "The JWT MUST contain an "exp" (expiration time) claim that limits
    // the time window during which the JWT can be used."
    let Some(Some(exp)) = numeric_date(claims, "exp") else {
        return Err(refused("client assertion needs a numeric exp"));
    };
    if crate::store::expired(UnixTime(exp), now) {
        return Err(refused("client assertion expired"));
    }
    if exp > now.0.saturating_add(MAX_LIFETIME) {
        return Err(refused("client assertion exp too far ahead"));
    }
    // RFC 7523 §3 items 5 and 6: nbf and iat; a JWT from the future is refused.
    for name in ["nbf", "iat"] {
        match numeric_date(claims, name) {
            Some(None) => {}
            Some(Some(at)) if at <= now.0.saturating_add(LEEWAY) => {}
            Some(Some(_)) => return Err(refused("client assertion not yet valid")),
            None => return Err(refused("client assertion has a malformed time claim")),
        }
    }
    // RFC 7523 §3 item 7 and OpenID Connect Core §9: jti is REQUIRED there, to be used once.
    let Some(jti) = text("jti").filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN) else {
        return Err(refused("client assertion needs a jti"));
    };
    Ok((jti.to_owned(), UnixTime(exp)))
}

/// The algorithm a key may verify: the `alg` of the header must suit the key's type (and
/// curve), and equal the key's own `alg` when it names one. An asymmetric key never
/// verifies an HMAC: the HMAC algorithms are not in [`PRIVATE_KEY_ALGS`] at all. The one rule
/// for client assertions and DPoP proofs alike.
pub(crate) fn key_suits(jwk: &Jwk, alg: Algorithm, alg_name: &str) -> bool {
    if jwk
        .common
        .key_algorithm
        .is_some_and(|k| k.to_string() != alg_name)
    {
        return false;
    }
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
    {
        return false;
    }
    match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ),
        AlgorithmParameters::EllipticCurve(ec) => matches!(
            (&ec.curve, alg),
            (EllipticCurve::P256, Algorithm::ES256) | (EllipticCurve::P384, Algorithm::ES384)
        ),
        AlgorithmParameters::OctetKeyPair(okp) => {
            okp.curve == EllipticCurve::Ed25519 && alg == Algorithm::EdDSA
        }
        _ => false,
    }
}

/// Parses a registered inline JWK Set, bounded, with public keys only; the reason for an
/// operator otherwise.
pub fn parse_jwks(value: &Value) -> Result<JwkSet, String> {
    const PRIVATE: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];
    let keys = value
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("jwks must be a JWK Set: an object with a keys array")?;
    if keys.is_empty() || keys.len() > MAX_CLIENT_KEYS {
        return Err(format!("jwks must hold 1 to {MAX_CLIENT_KEYS} keys"));
    }
    if keys
        .iter()
        .any(|k| PRIVATE.iter().any(|m| k.get(m).is_some()))
    {
        return Err("jwks must hold public keys only (no d, p, q, dp, dq, qi or k)".into());
    }
    serde_json::from_value(value.clone()).map_err(|e| format!("jwks is not a JWK Set: {e}"))
}

/// The secret of a `client_secret_jwt` client, sealed under `kek` and bound to its client
/// id, as [`crate::client_metadata::ClientMetadata::sealed_secret`] keeps it.
///
/// Why a recoverable secret: an HMAC is checked by computing it again, which needs the
/// secret itself (OpenID Connect Core §9), and a digest cannot give it back. It is kept only
/// for clients registered with this method, and only sealed (AES-256-GCM), so a copy of the
/// store alone does not reveal it.
pub fn seal_secret(kek: &Kek, client_id: &str, secret: &Secret) -> Result<String, OAuthError> {
    let sealed = kek
        .seal(secret.expose().as_bytes(), client_id.as_bytes())
        .map_err(|e| OAuthError::server_error().with_detail(e))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed))
}

fn open_secret(kek: &Kek, client: &Client) -> Result<Vec<u8>, OAuthError> {
    let sealed = client
        .metadata
        .sealed_secret
        .as_deref()
        .and_then(|s| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(s)
                .ok()
        })
        .ok_or_else(|| refused("client has no secret for client_secret_jwt"))?;
    let secret = kek
        .open(&sealed, client.id.as_str().as_bytes())
        .map_err(|e| OAuthError::server_error().with_detail(e))?;
    // The sealed secret must still be the one whose digest is registered: a rotation that
    // did not reseal it leaves the old secret unusable rather than valid.
    let current = client
        .secret_digest
        .as_ref()
        .is_some_and(|d| d.matches(&Secret::new(String::from_utf8_lossy(&secret))));
    if !current {
        return Err(refused(
            "client secret was rotated; its sealed copy is stale",
        ));
    }
    Ok(secret)
}

/// The candidate keys of a `private_key_jwt` client for `kid`: from its inline `jwks`, or
/// fetched from its `jwks_uri` (again, once, when the `kid` is unknown).
pub(crate) async fn client_keys(
    client: &Client,
    kid: Option<&str>,
    keys: &AssertionKeys,
) -> Result<Vec<Jwk>, OAuthError> {
    let pick = |set: &JwkSet| -> Vec<Jwk> {
        set.keys
            .iter()
            .take(MAX_CLIENT_KEYS)
            .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
            .cloned()
            .collect()
    };
    if let Some(inline) = &client.metadata.jwks {
        let set = parse_jwks(inline).map_err(|e| refused("client jwks unusable").with_detail(e))?;
        return Ok(pick(&set));
    }
    let Some(uri) = client.metadata.jwks_uri.as_deref() else {
        return Err(refused("client has no registered keys"));
    };
    let Some(fetcher) = &keys.fetcher else {
        return Err(refused("client jwks_uri not supported here"));
    };
    let unusable = |e: String| refused("client jwks_uri unusable").with_detail(e);
    let set = fetcher.fetch(uri, false).await.map_err(unusable)?;
    let found = pick(&set);
    if found.is_empty() && kid.is_some() {
        let set = fetcher.fetch(uri, true).await.map_err(unusable)?;
        return Ok(pick(&set));
    }
    Ok(found)
}

/// Verifies `assertion` for `client`, whose method rule the caller already applied
/// ([`crate::client::Credentials::verify_method`]), then remembers its `jti` in `store`.
pub async fn verify<S: ReplayStore>(
    assertion: &str,
    client: &Client,
    audience: &Audience<'_>,
    keys: &AssertionKeys,
    store: &S,
    now: UnixTime,
) -> Result<(), OAuthError> {
    let jws = parse(assertion)?;
    let alg_name = jws.alg();
    let method = client.token_endpoint_auth_method;
    let allowed = match method {
        Some(AuthMethod::PrivateKeyJwt) => PRIVATE_KEY_ALGS.contains(&alg_name),
        Some(AuthMethod::ClientSecretJwt) => SECRET_ALGS.contains(&alg_name),
        _ => false,
    };
    let alg: Algorithm = match alg_name.parse() {
        Ok(alg) if allowed => alg,
        _ => return Err(refused("client assertion alg not allowed for this client")),
    };
    if jws.has_crit() {
        // RFC 7515 §4.1.11: we understand no extension, so a critical one is refused.
        return Err(refused("client assertion has critical header parameters"));
    }
    let claims = claims_of(&jws)?;
    let (jti, exp) = check_claims(&claims, client.id.as_str(), audience, now)?;
    let signed = if method == Some(AuthMethod::ClientSecretJwt) {
        let Some(kek) = &keys.kek else {
            return Err(OAuthError::server_error()
                .with_detail("client_secret_jwt needs the key-encryption key"));
        };
        let secret = open_secret(kek, client)?;
        // RFC 7518 §3.2: "A key of the same size as the hash output ... or larger MUST be
        // used with this algorithm."
        let min = match alg {
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => 32,
        };
        if secret.len() < min {
            return Err(refused("client secret too short for this alg"));
        }
        jws.verifies(&DecodingKey::from_secret(&secret), alg)
    } else {
        let candidates = client_keys(client, jws.kid(), keys).await?;
        if candidates.is_empty() {
            return Err(refused("no registered key matches the client assertion"));
        }
        jws.signed_by(&candidates, alg)
    };
    if !signed {
        return Err(refused("client assertion signature invalid"));
    }
    // RFC 7523 §3 item 7: "The authorization server MAY ensure that JWTs are not replayed by
    // maintaining the set of used "jti" values for the length of time for which the JWT
    // would be considered valid based on the applicable "exp" instant." OpenID Connect Core
    // §9 makes it a MUST-use-once token.
    let key = replay_key("client-assertion", &[client.id.as_str(), &jti]);
    if !store.remember_once(&key, exp, now).await? {
        return Err(refused("client assertion replayed"));
    }
    Ok(())
}
