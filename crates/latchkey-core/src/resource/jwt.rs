//! Local verification of JWT access tokens (RFC 9068 §4) in the bearer guard: no store
//! lookup, no round trip.
//!
//! [`JwtVerifier`] sits in front of another [`TokenVerifier`] (the store, or introspection):
//! a token shaped like a JWT ([`looks_like_jwt`]) is verified here against the provider's
//! keys ([`JwtKeys`]: the provider itself in process, or a [`RemoteJwks`] fetched from a
//! `jwks_uri`); any other token goes to the inner verifier as before. RFC 9068 §4's checks,
//! in order: `typ` is `at+jwt`, the signature verifies with one of our keys and algorithms
//! (ES256, RS256, EdDSA: never `none`, never an HMAC), `iss` is exactly the issuer, `aud`
//! names this resource server, `exp` has not passed. The claims become the guard's
//! [`AccessToken`].
//!
//! **Revocation.** A revoked JWT access token keeps working here until it expires: the
//! revocation is in the store, which a local check does not read. Keep JWT access tokens
//! short-lived, or turn on [`JwtVerifier::check_store`], which also asks the inner verifier
//! (one lookup per request, as for opaque tokens) and refuses what it does not know as
//! active.
//!
//! Verified tokens are remembered (by digest, until their `exp`, at most
//! [`JwtVerifier::cache_capacity`] of them), so a client reusing its token pays for one
//! signature check, not one per request.

use super::{AccessToken, TokenVerifier, Verified};
use crate::access_jwt::{AccessTokenClaims, TYP, looks_like_jwt};
use crate::clock::{Clock, UnixTime};
use crate::jose::{Expect, JoseError, JwsSigner, MAX_JWT_LEN, SigningAlg};
use crate::provider::Provider;
use crate::scope::ScopeSet;
use crate::secret::{Digest, Secret};
use crate::store::{ProviderStore, StoreError};
use crate::user::UserAuthenticator;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

/// Where the keys that sign access tokens come from.
pub trait JwtKeys: Send + Sync + 'static {
    /// Checks the signature of a compact JWS (algorithm and key ours, never `none` or an
    /// HMAC) and returns what it carried; claims are checked by the caller.
    fn verify_signature(
        &self,
        token: &str,
    ) -> impl Future<Output = Result<crate::jose::Verified, JoseError>> + Send;
}

/// A fixed signer's keys (a [`crate::jose::KeySet`] or a KMS): in process.
impl JwtKeys for Arc<dyn JwsSigner> {
    async fn verify_signature(&self, token: &str) -> Result<crate::jose::Verified, JoseError> {
        JwsSigner::verify_signature(self.as_ref(), token)
    }
}

/// The provider's keys as they are now (a rotation swaps them): in process.
impl<S: ProviderStore, U: UserAuthenticator> JwtKeys for Provider<S, U> {
    async fn verify_signature(&self, token: &str) -> Result<crate::jose::Verified, JoseError> {
        JwsSigner::verify_signature(self.signer().as_ref(), token)
    }
}

/// Verifies JWT access tokens locally; hands every other token to `inner`.
pub struct JwtVerifier<K, V> {
    keys: K,
    inner: V,
    issuer: String,
    audience: String,
    clock: Arc<dyn Clock>,
    leeway: u64,
    check_store: bool,
    capacity: usize,
    cache: Mutex<Remembered>,
}

/// Verified tokens by digest, oldest first.
#[derive(Default)]
struct Remembered {
    map: HashMap<Digest, AccessToken>,
    order: VecDeque<Digest>,
}

/// How many verified tokens a [`JwtVerifier`] remembers by default.
pub const DEFAULT_CACHE_CAPACITY: usize = 4096;

impl<K: JwtKeys, V: TokenVerifier> JwtVerifier<K, V> {
    /// Verifies tokens for `audience` instead: a guard of one RFC 8707 resource verifies
    /// JWTs issued for that resource.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// Verifies tokens of `issuer` for `audience` with `keys`, at `clock`'s time, with no
    /// leeway on `exp`; other tokens go to `inner`.
    pub fn new(
        keys: K,
        inner: V,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            keys,
            inner,
            issuer: issuer.into(),
            audience: audience.into(),
            clock,
            leeway: 0,
            check_store: false,
            capacity: DEFAULT_CACHE_CAPACITY,
            cache: Mutex::new(Remembered::default()),
        }
    }

    /// Tolerates `secs` of clock skew on `exp`, `nbf` and `iat` (a remote resource server
    /// whose clock may differ a little from the provider's).
    pub fn leeway(mut self, secs: u64) -> Self {
        self.leeway = secs;
        self
    }

    /// Also asks the inner verifier about every JWT that verified, and refuses it unless
    /// the inner verifier finds it active: revocation then takes effect at once, for the
    /// price of one lookup per request.
    pub fn check_store(mut self, on: bool) -> Self {
        self.check_store = on;
        self
    }

    /// Remembers at most `capacity` verified tokens (0: none).
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Remembered> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The token's principal when it passes RFC 9068 §4; `None` otherwise (the reason goes
    /// to the debug log).
    async fn verify_locally(&self, token: &str, now: UnixTime) -> Option<AccessToken> {
        let verified = match self.keys.verify_signature(token).await {
            Ok(v) => v,
            Err(err) => {
                tracing::debug!(error = %err, "JWT access token refused");
                return None;
            }
        };
        // RFC 9068 §4: "The resource server MUST verify that the typ header value is at+jwt",
        // that iss "exactly matches" the issuer, that aud contains its own identifier, and
        // that the current time is before exp.
        let mut expect = Expect::new(TYP, now)
            .issuer(self.issuer.as_str())
            .audience(self.audience.as_str());
        expect.leeway = self.leeway;
        if let Err(err) = expect.check(&verified) {
            tracing::debug!(error = %err, "JWT access token refused");
            return None;
        }
        let claims: AccessTokenClaims = match serde_json::from_value(Value::Object(verified.claims))
        {
            Ok(claims) => claims,
            Err(err) => {
                tracing::debug!(error = %err, "JWT access token claims refused");
                return None;
            }
        };
        let scope = ScopeSet::parse(claims.scope.as_deref().unwrap_or("")).ok()?;
        Some(AccessToken {
            subject: claims.subject().map(str::to_owned),
            username: None,
            client_id: claims.client_id.clone(),
            scope,
            expires_at: claims.expires_at(),
            binding: None,
            cnf: claims.cnf.clone(),
            audience: claims.aud.to_vec(),
            actor: claims.act.map(Box::new),
        })
    }

    fn remembered(&self, key: &Digest, now: UnixTime) -> Option<AccessToken> {
        let cache = self.lock();
        let access = cache.map.get(key)?;
        // The same expiry rule as the first check.
        let limit = access.expires_at.0.saturating_add(self.leeway_secs());
        (now.0 < limit).then(|| access.clone())
    }

    fn remember(&self, key: Digest, access: &AccessToken) {
        if self.capacity == 0 {
            return;
        }
        let mut cache = self.lock();
        if cache.map.insert(key, access.clone()).is_none() {
            cache.order.push_back(key);
        }
        while cache.map.len() > self.capacity {
            let Some(oldest) = cache.order.pop_front() else {
                break;
            };
            cache.map.remove(&oldest);
        }
    }

    fn leeway_secs(&self) -> i64 {
        i64::try_from(self.leeway).unwrap_or(i64::MAX)
    }
}

impl<K: JwtKeys, V: TokenVerifier> TokenVerifier for JwtVerifier<K, V> {
    async fn verify(&self, token: &Secret) -> Result<Verified, StoreError> {
        let raw = token.expose();
        if !looks_like_jwt(raw) {
            return self.inner.verify(token).await;
        }
        let now = self.clock.now();
        let key = token.digest();
        let access = match self.remembered(&key, now) {
            Some(access) => access,
            None => {
                let Some(access) = self.verify_locally(raw, now).await else {
                    return Ok(Verified::Inactive);
                };
                self.remember(key, &access);
                access
            }
        };
        if self.check_store {
            // The store's record is the fuller answer (user name, binding) when it is active.
            return self.inner.verify(token).await;
        }
        Ok(Verified::Active(access))
    }

    async fn revoke(&self, token: &Secret) -> Result<(), StoreError> {
        self.lock().map.remove(&token.digest());
        self.inner.revoke(token).await
    }
}

/// Fetches a JWK Set document: the one piece of I/O a remote resource server's
/// [`RemoteJwks`] needs (`latchkey-client` ships one on reqwest). It should bound the time
/// and the size of the answer.
pub trait KeySetFetcher: Send + Sync + 'static {
    /// The JSON document at `uri`; the error is for the log.
    fn fetch(&self, uri: &str) -> impl Future<Output = Result<Value, String>> + Send;
}

/// The most keys read from a fetched JWK Set; the rest are ignored.
pub const MAX_REMOTE_KEYS: usize = 32;

/// The provider's keys as a remote resource server sees them: fetched from its `jwks_uri`,
/// kept for `max_age`, fetched again early when a token names a `kid` not in the set (a
/// rotation), but at most once per `refetch_interval`, so forged `kid`s cannot make it fetch
/// on every request.
pub struct RemoteJwks<F> {
    fetcher: F,
    uri: String,
    clock: Arc<dyn Clock>,
    max_age: u64,
    refetch_interval: u64,
    state: Mutex<RemoteState>,
}

#[derive(Default)]
struct RemoteState {
    keys: Arc<Vec<RemoteKey>>,
    fetched_at: Option<UnixTime>,
    last_attempt: Option<UnixTime>,
}

struct RemoteKey {
    kid: String,
    alg: SigningAlg,
    key: DecodingKey,
}

impl<F: KeySetFetcher> RemoteJwks<F> {
    /// The key set at `uri`, through `fetcher`: kept 5 minutes, refetched for an unknown
    /// `kid` at most every 30 seconds.
    pub fn new(fetcher: F, uri: impl Into<String>, clock: Arc<dyn Clock>) -> Self {
        Self {
            fetcher,
            uri: uri.into(),
            clock,
            max_age: 300,
            refetch_interval: 30,
            state: Mutex::new(RemoteState::default()),
        }
    }

    /// How long a fetched set is used before it is fetched again, in seconds.
    pub fn max_age(mut self, secs: u64) -> Self {
        self.max_age = secs;
        self
    }

    /// The least time between two fetches, in seconds.
    pub fn refetch_interval(mut self, secs: u64) -> Self {
        self.refetch_interval = secs;
        self
    }

    fn lock(&self) -> MutexGuard<'_, RemoteState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current keys, and whether a fetch is due now (`kid` unknown, or the set old),
    /// recording the attempt so concurrent requests do not fetch too.
    fn keys_or_fetch(&self, kid: &str, now: UnixTime) -> (Arc<Vec<RemoteKey>>, bool) {
        let mut state = self.lock();
        let known = state.keys.iter().any(|k| k.kid == kid);
        let stale = state
            .fetched_at
            .is_none_or(|at| now.0 >= at.plus(self.max_age).0);
        let may_fetch = state
            .last_attempt
            .is_none_or(|at| now.0 >= at.plus(self.refetch_interval).0);
        let fetch = (stale || !known) && may_fetch;
        if fetch {
            state.last_attempt = Some(now);
        }
        (Arc::clone(&state.keys), fetch)
    }

    async fn refresh(&self, now: UnixTime) -> Arc<Vec<RemoteKey>> {
        match self.fetcher.fetch(&self.uri).await {
            Ok(doc) => {
                let keys = Arc::new(parse_jwks(&doc));
                let mut state = self.lock();
                state.keys = Arc::clone(&keys);
                state.fetched_at = Some(now);
                keys
            }
            Err(err) => {
                // Keep the old keys: a provider that is down does not stop the tokens it
                // already signed.
                tracing::warn!(uri = %self.uri, error = %err, "fetching the JWK Set failed");
                Arc::clone(&self.lock().keys)
            }
        }
    }
}

impl<F: KeySetFetcher> JwtKeys for RemoteJwks<F> {
    async fn verify_signature(&self, token: &str) -> Result<crate::jose::Verified, JoseError> {
        if token.len() > MAX_JWT_LEN {
            return Err(JoseError::Malformed("too long"));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| JoseError::Malformed("header"))?;
        // RFC 8725 §3.1: only our algorithms; `none` and HMAC never.
        let alg = our_alg(header.alg).ok_or(JoseError::Algorithm)?;
        let kid = header.kid.ok_or(JoseError::UnknownKey)?;
        let now = self.clock.now();
        let (mut keys, fetch) = self.keys_or_fetch(&kid, now);
        if fetch {
            keys = self.refresh(now).await;
        }
        let key = keys
            .iter()
            .find(|k| k.kid == kid)
            .ok_or(JoseError::UnknownKey)?;
        if key.alg != alg {
            return Err(JoseError::Algorithm);
        }
        let claims = signature_only(token, alg, &key.key)?;
        Ok(crate::jose::Verified {
            alg,
            kid,
            typ: header.typ,
            claims,
        })
    }
}

fn our_alg(alg: Algorithm) -> Option<SigningAlg> {
    match alg {
        Algorithm::ES256 => Some(SigningAlg::Es256),
        Algorithm::RS256 => Some(SigningAlg::Rs256),
        Algorithm::EdDSA => Some(SigningAlg::EdDsa),
        _ => None,
    }
}

/// Checks the signature only; the claim checks use the injected clock ([`Expect`]).
fn signature_only(
    token: &str,
    alg: SigningAlg,
    key: &DecodingKey,
) -> Result<Map<String, Value>, JoseError> {
    let jwt_alg = match alg {
        SigningAlg::Es256 => Algorithm::ES256,
        SigningAlg::Rs256 => Algorithm::RS256,
        SigningAlg::EdDsa => Algorithm::EdDSA,
    };
    let mut validation = Validation::new(jwt_alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
        .map(|data| data.claims)
        .map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::InvalidSignature => JoseError::Signature,
            jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => JoseError::Algorithm,
            _ => JoseError::Malformed("claims"),
        })
}

/// The signing keys of a JWK Set document: public keys of our algorithms with a `kid`, at
/// most [`MAX_REMOTE_KEYS`]; keys for another use, of another type (`oct`: HMAC) or that do
/// not parse are left out.
fn parse_jwks(doc: &Value) -> Vec<RemoteKey> {
    let Some(list) = doc.get("keys").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    for jwk in list.iter().take(MAX_REMOTE_KEYS) {
        let text = |name: &str| jwk.get(name).and_then(Value::as_str);
        let Some(kid) = text("kid") else { continue };
        if text("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let alg = match (text("kty"), text("crv")) {
            (Some("EC"), Some("P-256")) => SigningAlg::Es256,
            (Some("RSA"), _) => SigningAlg::Rs256,
            (Some("OKP"), Some("Ed25519")) => SigningAlg::EdDsa,
            _ => continue,
        };
        // A key that names its algorithm must name the one its type implies.
        if text("alg").is_some_and(|a| SigningAlg::parse(a) != Some(alg)) {
            continue;
        }
        let Ok(parsed) = serde_json::from_value::<jsonwebtoken::jwk::Jwk>(jwk.clone()) else {
            continue;
        };
        let Ok(key) = DecodingKey::from_jwk(&parsed) else {
            continue;
        };
        keys.push(RemoteKey {
            kid: kid.to_owned(),
            alg,
            key,
        });
    }
    keys
}

#[cfg(test)]
#[path = "jwt_tests.rs"]
mod tests;
