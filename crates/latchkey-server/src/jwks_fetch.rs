//! Fetching the JWK Sets that `private_key_jwt` clients publish at their `jwks_uri`
//! (RFC 7591 §2): the [`JwksFetcher`] the core asks for, over HTTPS with reqwest.
//!
//! Every dimension is bounded, since the URI is the client's and the fetch happens while a
//! token request waits: a [`FETCH_TIMEOUT`] per fetch, a [`MAX_JWKS_BYTES`] body, at most
//! [`MAX_CACHED`] sets cached for [`CACHE_TTL`], and a refetch for an unknown `kid` at most
//! once per [`REFRESH_INTERVAL`] per URI. Against server-side request forgery: `https` only
//! (plain `http` only when a setting allows it, for tests and loopback), no redirects
//! followed, and no credentials or cookies sent.

use latchkey_core::client_assertion::{FetchFuture, JwkSet, JwksFetcher, MAX_CLIENT_KEYS};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long one fetch may take, connecting included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest JWK Set read.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// How many URIs' sets are kept.
pub const MAX_CACHED: usize = 1024;
/// How long a fetched set is used before it is fetched again.
pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// The least time between two refetches of one URI for an unknown `kid`.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

struct Cached {
    set: Arc<JwkSet>,
    fetched: Instant,
}

/// The server's [`JwksFetcher`]: reqwest with the bounds of this module and a cache.
pub struct HttpJwksFetcher {
    http: reqwest::Client,
    allow_http: bool,
    cache: Mutex<HashMap<String, Cached>>,
}

impl HttpJwksFetcher {
    /// A fetcher; `allow_http` also lets plain-`http` URIs through (tests, loopback).
    pub fn new(allow_http: bool) -> anyhow::Result<Self> {
        Ok(Self {
            http: outbound_client()?,
            allow_http,
            cache: Mutex::new(HashMap::new()),
        })
    }

    fn cached(&self, uri: &str, refresh: bool) -> Option<Arc<JwkSet>> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let entry = cache.get(uri)?;
        let age = entry.fetched.elapsed();
        // A refresh is honoured only once the entry is old enough: an attacker sending
        // assertions with made-up kids cannot make us fetch more often than this.
        let fresh_enough = if refresh {
            age < REFRESH_INTERVAL
        } else {
            age < CACHE_TTL
        };
        fresh_enough.then(|| Arc::clone(&entry.set))
    }

    fn remember(&self, uri: &str, set: Arc<JwkSet>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= MAX_CACHED && !cache.contains_key(uri) {
            cache.retain(|_, c| c.fetched.elapsed() < CACHE_TTL);
            if cache.len() >= MAX_CACHED {
                // Still full of live entries: forget the oldest one.
                if let Some(oldest) = cache
                    .iter()
                    .min_by_key(|(_, c)| c.fetched)
                    .map(|(k, _)| k.clone())
                {
                    cache.remove(&oldest);
                }
            }
        }
        cache.insert(
            uri.to_owned(),
            Cached {
                set,
                fetched: Instant::now(),
            },
        );
    }

    async fn download(&self, uri: &str) -> Result<Arc<JwkSet>, String> {
        let body = fetch_bounded(
            &self.http,
            "jwks_uri",
            uri,
            self.allow_http,
            "application/json, application/jwk-set+json",
            MAX_JWKS_BYTES,
        )
        .await?;
        let value: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| format!("jwks_uri body: {e}"))?;
        let set = latchkey_core::client_assertion::parse_jwks(&value)?;
        debug_assert!(set.keys.len() <= MAX_CLIENT_KEYS);
        Ok(Arc::new(set))
    }
}

/// An HTTP client for fetching what a client publishes: [`FETCH_TIMEOUT`] per fetch
/// (connecting included), no redirects followed, no cookies.
pub fn outbound_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

/// GETs `uri` (the client's `what`, named in errors) with `http`: `https` only, plain `http`
/// when `allow_http`; a `2xx` answer's body of at most `max_bytes`, read as it arrives and
/// abandoned past the bound. The error is safe to show the operator.
pub async fn fetch_bounded(
    http: &reqwest::Client,
    what: &str,
    uri: &str,
    allow_http: bool,
    accept: &str,
    max_bytes: usize,
) -> Result<Vec<u8>, String> {
    let url = reqwest::Url::parse(uri).map_err(|e| format!("{what}: {e}"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        other => return Err(format!("{what} scheme {other} not allowed")),
    }
    let mut resp = http
        .get(url)
        .header("accept", accept)
        .send()
        .await
        .map_err(|e| format!("{what} fetch: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{what} answered {}", resp.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("{what} body: {e}"))?
    {
        if body.len() + chunk.len() > max_bytes {
            return Err(format!("{what} body over {max_bytes} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

impl JwksFetcher for HttpJwksFetcher {
    fn fetch<'a>(&'a self, uri: &'a str, refresh: bool) -> FetchFuture<'a> {
        Box::pin(async move {
            if let Some(set) = self.cached(uri, refresh) {
                return Ok(set);
            }
            let set = self.download(uri).await?;
            self.remember(uri, Arc::clone(&set));
            Ok(set)
        })
    }
}
