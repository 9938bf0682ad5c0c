//! Client ID metadata documents in the server (draft-ietf-oauth-client-id-metadata-document):
//! when a request to `/authorize` or `/token` names a client by an `https` URL, the document
//! there is fetched, checked by the core ([`latchkey_core::registration::document`]) and
//! stored as a public client, so every endpoint finds it in the store as it finds any other.
//!
//! The fetch is the dangerous part, since the URL is anyone's choice: the host must be on the
//! allow-list when there is one; then the one outbound path of [`crate::outbound`] (shared with
//! `jwks_uri` and `sector_identifier_uri`) resolves the name, every address must be public
//! ([`latchkey_core::net::is_public_address`]), and the connection goes to exactly those
//! addresses (no second lookup an attacker's DNS could answer differently); `https` only, no
//! proxy, no redirect followed (the draft asks for a `200`), one deadline for the whole
//! exchange, at most [`MAX_DOCUMENT_LEN`] bytes read. Development switches allow private
//! addresses and plain `http`, for tests on loopback.
//!
//! Documents are used for the lifetime their `Cache-Control` gives (bounded by the
//! settings); failures are remembered for [`FAILURE_TTL`] so that nobody makes the server
//! fetch a failing URL on every request. The cache holds at most `max_entries` URLs.
//! Clients made from documents expire when unused like self-registered ones (their
//! registration row has a token nobody holds).

use crate::app::AppProvider;
use latchkey_core::clock::UnixTime;
use latchkey_core::error::OAuthError;
use latchkey_core::registration::document::{
    ClientIdUrl, MAX_DOCUMENT_LEN, cache_lifetime, client_from_document,
};
use latchkey_core::registration::store::{ClientRegistration, RegistrationStore};
use latchkey_core::registration::{RegistrationPolicy, day_of};
use latchkey_core::store::ClientStore;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a failed fetch is remembered, in seconds.
pub const FAILURE_TTL: u64 = 60;

/// `[client_id_metadata]`: clients named by the URL of their metadata document.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ClientDocumentSettings {
    /// Accept URL client ids (off by default); advertised as
    /// `client_id_metadata_document_supported`.
    pub enabled: bool,
    /// Hosts whose documents are accepted (exact, lower case); empty: any public host.
    pub allowed_hosts: Vec<String>,
    /// Development only: fetch from loopback and private addresses too.
    pub allow_private_addresses: bool,
    /// Development only: accept `http` client ids (and redirect URIs on any host).
    pub allow_http: bool,
    /// Seconds for the whole fetch: name lookup, connection, TLS, the document.
    pub timeout: u64,
    /// Seconds a document is used when its response gives no `max-age`.
    pub default_cache_age: u64,
    /// The longest a document is used before it is fetched again, whatever it says.
    pub max_cache_age: u64,
    /// The most documents remembered at once.
    pub max_entries: usize,
}

impl Default for ClientDocumentSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            allowed_hosts: Vec::new(),
            allow_private_addresses: false,
            allow_http: false,
            timeout: 5,
            default_cache_age: 300,
            max_cache_age: 24 * 3600,
            max_entries: 10_000,
        }
    }
}

/// What the cache remembers of one URL.
#[derive(Clone, Debug)]
struct Entry {
    /// Until when the stored client (or the failure) stands.
    until: UnixTime,
    /// The failure, if the last fetch failed.
    failed: Option<String>,
}

/// Resolves URL client ids into stored clients; shared by every request.
pub struct ClientDocuments {
    settings: ClientDocumentSettings,
    /// The CA certificates of `outbound.ca_file`.
    roots: crate::outbound::TrustedRoots,
    policy: RegistrationPolicy,
    provider: AppProvider,
    cache: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for ClientDocuments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientDocuments")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ClientDocuments {
    /// The resolver of the settings, or `None` when documents are off; documents on hosts
    /// of a private PKI are fetched when `roots` hold its CA.
    pub fn from_settings(
        settings: &ClientDocumentSettings,
        roots: crate::outbound::TrustedRoots,
        provider: AppProvider,
    ) -> Option<Arc<Self>> {
        if !settings.enabled {
            return None;
        }
        let mut policy = RegistrationPolicy::default();
        policy.allow_http = settings.allow_http;
        Some(Arc::new(Self {
            settings: settings.clone(),
            roots,
            policy,
            provider,
            cache: Mutex::new(HashMap::new()),
        }))
    }

    /// Makes sure the client `client_id` names is in the store and fresh, when it is a URL
    /// this server resolves; nothing for any other client id. The error is what the client
    /// is told (`invalid_client`, with the reason).
    pub async fn ensure(&self, client_id: &str) -> Result<(), OAuthError> {
        let looks_like_url = client_id.starts_with("https://")
            || (self.settings.allow_http && client_id.starts_with("http://"));
        if !looks_like_url {
            return Ok(());
        }
        let store = self.provider.store();
        let existing = store.get_client(client_id).await?;
        // A client an operator registered under this id is theirs, never a document's.
        if existing
            .as_ref()
            .is_some_and(|c| !c.metadata.from_metadata_document)
        {
            return Ok(());
        }
        let now = self.provider.clock().now();
        if let Some(entry) = self.cached(client_id, now) {
            return match entry.failed {
                None if existing.is_some() => Ok(()),
                None => Err(refused("the client metadata document is not available")),
                Some(why) => Err(refused(&why)),
            };
        }
        let Some(url) = ClientIdUrl::parse(client_id, self.settings.allow_http) else {
            return Err(refused("client_id is not a valid client identifier URL"));
        };
        match self.resolve(&url, now).await {
            Ok(lifetime) => {
                self.remember(client_id, now.plus(lifetime), None);
                Ok(())
            }
            Err(why) => {
                tracing::info!(client_id, reason = %why, "client metadata document refused");
                self.remember(client_id, now.plus(FAILURE_TTL), Some(why.clone()));
                Err(refused(&why))
            }
        }
    }

    fn cached(&self, client_id: &str, now: UnixTime) -> Option<Entry> {
        let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.get(client_id).filter(|e| now < e.until).cloned()
    }

    fn remember(&self, client_id: &str, until: UnixTime, failed: Option<String>) {
        let now = self.provider.clock().now();
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= self.settings.max_entries.max(1) && !cache.contains_key(client_id) {
            cache.retain(|_, e| now < e.until);
            if cache.len() >= self.settings.max_entries.max(1) {
                // Forgetting costs a refetch, never a wrong answer.
                cache.clear();
            }
        }
        cache.insert(client_id.to_owned(), Entry { until, failed });
    }

    /// Fetches, checks and stores the client; its cache lifetime in seconds.
    async fn resolve(&self, url: &ClientIdUrl, now: UnixTime) -> Result<u64, String> {
        let host = url.host().to_ascii_lowercase();
        if !self.settings.allowed_hosts.is_empty()
            && !self
                .settings
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&host))
        {
            return Err(format!("host {host} is not allowed"));
        }
        let deadline = Duration::from_secs(self.settings.timeout.max(1));
        let (body, cache_control) = tokio::time::timeout(deadline, self.fetch(url, deadline))
            .await
            .map_err(|_| "fetching the client metadata document timed out".to_owned())??;
        let client = client_from_document(url, &body, &self.policy, self.provider.config(), now)
            .map_err(|e| {
                e.description()
                    .unwrap_or("invalid client metadata document")
                    .to_owned()
            })?;
        let store = self.provider.store();
        let stored = |e: latchkey_core::store::StoreError| format!("store: {e}");
        match store.get_registration(url.as_str()).await.map_err(stored)? {
            Some(_) => store
                .touch_registration(url.as_str(), day_of(now))
                .await
                .map_err(stored)?,
            None => {
                // A registration row, so the client expires when unused; its token digest
                // is of a random value nobody holds: no configuration endpoint for it.
                let nobody = latchkey_core::secret::Secret::new(
                    latchkey_core::entropy::random_token(self.provider.entropy(), 32),
                );
                store
                    .put_registration(&ClientRegistration {
                        client_id: url.as_str().to_owned(),
                        token_digest: nobody.digest(),
                        created_at: now,
                        last_used: day_of(now),
                        initial_token: None,
                    })
                    .await
                    .map_err(stored)?;
            }
        }
        store.put_client(&client).await.map_err(stored)?;
        Ok(cache_lifetime(
            cache_control.as_deref(),
            self.settings.default_cache_age,
            self.settings.max_cache_age,
        ))
    }

    /// One GET of the document through the shared outbound path ([`crate::outbound`]):
    /// the body and its `Cache-Control`.
    async fn fetch(
        &self,
        id: &ClientIdUrl,
        deadline: Duration,
    ) -> Result<(Vec<u8>, Option<String>), String> {
        let rule = crate::outbound::Outbound {
            allow_http: self.settings.allow_http,
            allow_private: self.settings.allow_private_addresses,
            timeout: deadline,
            roots: self.roots.clone(),
        };
        let fetched = crate::outbound::fetch(
            "document",
            id.url(),
            &rule,
            "application/json",
            MAX_DOCUMENT_LEN,
        )
        .await?;
        Ok((fetched.body, fetched.cache_control))
    }
}

fn refused(why: &str) -> OAuthError {
    OAuthError::invalid_client(format!("client metadata document: {why}"))
}

/// Whether `path` is one where [`check`] has work: `/authorize` or `/token`.
pub(crate) fn applies_to(path: &str) -> bool {
    path == latchkey_core::endpoint::metadata::AUTHORIZE_PATH
        || path == latchkey_core::endpoint::metadata::TOKEN_PATH
}

/// Before `/authorize` and `/token` run, resolves the `client_id` they name (query string,
/// or a form body) when it is a document URL: `Ok` with the request to pass on (its body
/// read and put back when it was read), or `Err` with the answer to a refused document (an
/// error page at `/authorize`, `invalid_client` at `/token`).
pub(crate) async fn check(
    documents: &ClientDocuments,
    request: axum::extract::Request,
) -> Result<axum::extract::Request, axum::response::Response> {
    use axum::response::IntoResponse;
    let path = request.uri().path();
    if !applies_to(path) {
        return Ok(request);
    }
    let authorize = path == latchkey_core::endpoint::metadata::AUTHORIZE_PATH;
    let (parts, body) = request.into_parts();
    let from_query = parts.uri.query().and_then(|q| client_id_in(q.as_bytes()));
    let is_form = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    // The body is read (bounded as the endpoints bound it) only when it may name the client.
    let (body, from_body) = if from_query.is_none() && is_form {
        match axum::body::to_bytes(body, latchkey_core::params::MAX_FORM_BYTES).await {
            Ok(bytes) => {
                let id = client_id_in(&bytes);
                (axum::body::Body::from(bytes), id)
            }
            Err(_) => {
                return Err(latchkey_axum::Reply(
                    OAuthError::invalid_request("request body too large").to_response(None),
                )
                .into_response());
            }
        }
    } else {
        (body, None)
    };
    if let Some(client_id) = from_query.or(from_body)
        && let Err(err) = documents.ensure(&client_id).await
    {
        let response = if authorize {
            // Never a redirect to a URI the document names: an error page, 400.
            let description = err.description().unwrap_or_default().to_owned();
            documents
                .provider
                .error_page(&OAuthError::invalid_request(description))
        } else {
            err.to_response(None)
        };
        return Err(latchkey_axum::Reply(response).into_response());
    }
    Ok(axum::extract::Request::from_parts(parts, body))
}

/// The one `client_id` of a urlencoded string, if it has exactly one.
fn client_id_in(encoded: &[u8]) -> Option<String> {
    let mut ids = form_urlencoded::parse(encoded)
        .filter(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned());
    let first = ids.next()?;
    ids.next().is_none().then_some(first)
}
