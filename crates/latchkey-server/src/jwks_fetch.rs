//! Fetching the JWK Sets that `private_key_jwt` clients publish at their `jwks_uri`
//! (RFC 7591 §2): the [`JwksFetcher`] the core asks for, over HTTPS with reqwest.
//!
//! Every dimension is bounded, since the URI is the client's and the fetch happens while a
//! token request waits: a [`FETCH_TIMEOUT`] per fetch, a [`MAX_JWKS_BYTES`] body, at most
//! [`MAX_CACHED`] sets cached for [`CACHE_TTL`], and a refetch for an unknown `kid` at most
//! once per [`REFRESH_INTERVAL`] per URI. Against server-side request forgery, the fetch
//! takes the one outbound path ([`crate::outbound`]) client metadata documents take: `https`
//! only, public addresses only with the connection pinned to them, no redirects followed,
//! and no credentials or cookies sent; development switches allow plain `http`
//! (`allow_http_jwks_uri`) and private addresses (`allow_private_jwks_uri`).

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
    rule: crate::outbound::Outbound,
    cache: Mutex<HashMap<String, Cached>>,
}

impl HttpJwksFetcher {
    /// A fetcher; `allow_http` also lets plain-`http` URIs through, `allow_private` hosts at
    /// loopback, private and link-local addresses (both for development and tests only);
    /// `roots` are trusted besides the system's (`outbound.ca_file`).
    pub fn new(
        allow_http: bool,
        allow_private: bool,
        roots: crate::outbound::TrustedRoots,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            rule: crate::outbound::Outbound {
                allow_http,
                allow_private,
                timeout: FETCH_TIMEOUT,
                roots,
            },
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
        let url = url::Url::parse(uri).map_err(|e| format!("jwks_uri: {e}"))?;
        let fetched = crate::outbound::fetch(
            "jwks_uri",
            &url,
            &self.rule,
            "application/json, application/jwk-set+json",
            MAX_JWKS_BYTES,
        )
        .await?;
        let value: serde_json::Value =
            serde_json::from_slice(&fetched.body).map_err(|e| format!("jwks_uri body: {e}"))?;
        let set = latchkey_core::client_assertion::parse_jwks(&value)?;
        debug_assert!(set.keys.len() <= MAX_CLIENT_KEYS);
        Ok(Arc::new(set))
    }
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
