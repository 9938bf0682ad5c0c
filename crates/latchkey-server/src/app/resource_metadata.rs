//! Protected resource metadata (RFC 9728) for the resources this server fronts: those of the
//! settings with `serve_metadata`, and those stored at run time (`latchkey resource add`,
//! `/admin/resources`), each at the well-known path with the resource's path inserted
//! (§3.1).
//!
//! The settings' documents are fixed at start. The stored ones are read from the store at most
//! once per `resource_metadata_ttl` seconds (0: on every request), so a resource another
//! process adds or removes is served, or no longer served, within that time without a restart.
//! A stored resource with the identifier of one in the settings is not published (the
//! settings win, as at the endpoints: [`latchkey_core::provider::Provider::resources_for`]);
//! which document answers a path is [`ProtectedResource::pick`].

use crate::store::AnyStore;
use latchkey_axum::Reply;
use latchkey_core::http::HttpResponse;
use latchkey_core::indicator::Resources;
use latchkey_core::resource::metadata::{ProtectedResource, WELL_KNOWN_PATH};
use latchkey_core::store::ResourceStore;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest `resource_metadata_ttl` accepted, in seconds.
pub const MAX_TTL: u64 = 3600;
/// The most stored resources published; past it, the rest is left out (and logged).
const MAX_STORED: usize = 10_000;

/// What a server publishes at `/.well-known/oauth-protected-resource…`.
#[derive(Debug, Default)]
pub struct PublishedResources {
    configured: Vec<ProtectedResource>,
    stored: Option<Stored>,
}

/// The stored resources and the cache of their documents.
#[derive(Debug)]
struct Stored {
    store: AnyStore,
    /// The settings' registry: its identifiers shadow stored ones.
    settings: Resources,
    issuer: String,
    ttl: Duration,
    /// The documents and when they were read; one reader at a time refreshes them.
    cache: tokio::sync::Mutex<Option<(Instant, Arc<Vec<ProtectedResource>>)>>,
}

impl From<Vec<ProtectedResource>> for PublishedResources {
    /// Publishes the fixed documents `configured` and nothing from a store.
    fn from(configured: Vec<ProtectedResource>) -> Self {
        Self {
            configured,
            stored: None,
        }
    }
}

impl PublishedResources {
    /// Publishes `configured`, and the resources of `store` that `settings` (the settings'
    /// registry) does not define, read at most once per `ttl_secs` seconds; fails on a
    /// `ttl_secs` above [`MAX_TTL`].
    pub fn with_store(
        configured: Vec<ProtectedResource>,
        settings: Resources,
        store: AnyStore,
        issuer: String,
        ttl_secs: u64,
    ) -> anyhow::Result<Self> {
        if ttl_secs > MAX_TTL {
            anyhow::bail!("resource_metadata_ttl must be at most {MAX_TTL} seconds");
        }
        Ok(Self {
            configured,
            stored: Some(Stored {
                store,
                settings,
                issuer,
                ttl: Duration::from_secs(ttl_secs),
                cache: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// The answer to a `GET` of `path` on `host`: the document, `404` when no resource
    /// publishes one there, `503` when the store cannot be read and nothing was read before.
    pub async fn answer(&self, path: &str, host: Option<&str>) -> HttpResponse {
        let stored = match &self.stored {
            Some(stored) => match stored.documents().await {
                Ok(docs) => docs,
                Err(err) => {
                    tracing::warn!(error = %err, "stored resources unreadable for their metadata");
                    return HttpResponse::json(503, &json!({"error": "temporarily_unavailable"}))
                        .with_header("retry-after", "5");
                }
            },
            None => Arc::default(),
        };
        match ProtectedResource::pick(&self.configured, &stored, path, host) {
            Some(doc) => doc.to_http(),
            None => HttpResponse::json(404, &json!({"error": "not_found"})),
        }
    }
}

impl Stored {
    /// The documents of the stored resources, read again when older than the TTL. A failed
    /// read keeps serving the last documents read, if any.
    async fn documents(
        &self,
    ) -> Result<Arc<Vec<ProtectedResource>>, latchkey_core::store::StoreError> {
        let mut cache = self.cache.lock().await;
        if let Some((read, docs)) = cache.as_ref()
            && read.elapsed() < self.ttl
        {
            return Ok(Arc::clone(docs));
        }
        let list = match self.store.list_resources().await {
            Ok(list) => list,
            Err(err) => {
                return match cache.as_ref() {
                    Some((_, docs)) => {
                        tracing::warn!(error = %err, "stored resources unreadable; serving the last read");
                        Ok(Arc::clone(docs))
                    }
                    None => Err(err),
                };
            }
        };
        if list.len() > MAX_STORED {
            tracing::warn!(
                stored = list.len(),
                published = MAX_STORED,
                "more stored resources than are published"
            );
        }
        let docs: Vec<ProtectedResource> = list
            .iter()
            .filter(|r| self.settings.get(r.id.as_str()).is_none())
            // An identifier without a metadata URL (a URN, a query) publishes nothing.
            .filter_map(|r| ProtectedResource::registered(r, &self.issuer).ok())
            .take(MAX_STORED)
            .collect();
        let docs = Arc::new(docs);
        *cache = Some((Instant::now(), Arc::clone(&docs)));
        Ok(docs)
    }
}

/// The routes of the metadata: the well-known path and every path below it.
pub fn router(published: Arc<PublishedResources>) -> axum::Router {
    let handler = move |uri: axum::http::Uri, headers: axum::http::HeaderMap| {
        let published = Arc::clone(&published);
        async move {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok());
            Reply(published.answer(uri.path(), host).await)
        }
    };
    axum::Router::new()
        .route(WELL_KNOWN_PATH, axum::routing::get(handler.clone()))
        .route(
            &format!("{WELL_KNOWN_PATH}/{{*rest}}"),
            axum::routing::get(handler),
        )
}
