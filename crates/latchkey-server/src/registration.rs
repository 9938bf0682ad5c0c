//! Dynamic client registration in the server (RFC 7591, RFC 7592): the `[registration]`
//! settings and the policy they make, the routes `/register` and `/register/{client_id}`,
//! the event sink that records when self-registered clients get tokens, and the task that
//! deletes those left unused. The rules themselves are the core's
//! ([`latchkey_core::registration`]).

use crate::app::AppProvider;
use crate::store::AnyStore;
use latchkey_core::client::{AuthMethod, GrantType};
use latchkey_core::events::{Event, EventSink};
use latchkey_core::registration::statement::{StatementPolicy, TrustedIssuer};
use latchkey_core::registration::{RegistrationPolicy, UseTracker};
use latchkey_core::scope::ScopeSet;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// `[registration]`: who may register clients at `/register`, and what they may ask for.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RegistrationSettings {
    /// Serve the registration endpoint (off by default).
    pub enabled: bool,
    /// Anyone may register, without an initial access token. Off: only holders of a token
    /// from `latchkey registration token create` (or the admin API) may.
    pub open: bool,
    /// The grant types a client may register (the server's switches apply too).
    pub grant_types: Vec<String>,
    /// The `token_endpoint_auth_method`s a client may register.
    pub auth_methods: Vec<String>,
    /// The scopes a client may register; unset: every available scope.
    pub scopes: Option<Vec<String>>,
    /// `http://127.0.0.1`, `http://[::1]` and `http://localhost` redirect URIs (any port).
    pub allow_loopback: bool,
    /// Private-use schemes such as `com.example.app:/callback`, for public clients.
    pub allow_private_use_schemes: bool,
    /// Plain `http` redirect, `jwks_uri` and logout URIs on any host: development only.
    pub allow_http: bool,
    /// The most redirect URIs one client may register.
    pub max_redirect_uris: usize,
    /// Seconds after its last use (registration or a token) when a self-registered client is
    /// deleted; 0 keeps them.
    pub unused_ttl: u64,
    /// Registrations per client address per `window` (0: no limit).
    pub per_ip: u64,
    /// The window of `per_ip`, in seconds.
    pub window: u64,
    /// `[registration.software_statements]`: signed client metadata from trusted publishers
    /// (RFC 7591 §2.3).
    pub software_statements: SoftwareStatementSettings,
}

/// `[registration.software_statements]`: which publishers' software statements (RFC 7591
/// §2.3) are accepted, and whether every registration must carry one. Without a trusted
/// issuer, every statement is refused.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SoftwareStatementSettings {
    /// Registrations and updates without a statement are refused.
    pub required: bool,
    /// `[[registration.software_statements.trusted]]`: one table per publisher.
    pub trusted: Vec<TrustedIssuerSettings>,
}

/// One trusted software publisher.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TrustedIssuerSettings {
    /// The `iss` of its statements.
    pub issuer: String,
    /// Its public keys: a JWK Set, as a table or as JSON text.
    pub jwks: serde_json::Value,
    /// The JWS algorithms its statements may use (asymmetric only).
    #[serde(default = "default_statement_algs")]
    pub algs: Vec<String>,
}

/// The algorithms a trusted issuer may sign with when its table names none.
fn default_statement_algs() -> Vec<String> {
    ["ES256", "RS256", "PS256", "EdDSA"]
        .map(str::to_owned)
        .to_vec()
}

impl SoftwareStatementSettings {
    /// The core policy these settings describe; fails on unusable keys or algorithms.
    fn policy(&self) -> anyhow::Result<StatementPolicy> {
        let trusted = self
            .trusted
            .iter()
            .map(|t| {
                let jwks = match &t.jwks {
                    serde_json::Value::String(text) => serde_json::from_str(text).map_err(|e| {
                        anyhow::anyhow!(
                            "registration.software_statements: jwks of {:?} is not JSON: {e}",
                            t.issuer
                        )
                    })?,
                    other => other.clone(),
                };
                TrustedIssuer::new(t.issuer.clone(), jwks, t.algs.iter().cloned())
                    .map_err(|e| anyhow::anyhow!("registration.software_statements: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        StatementPolicy::new(trusted, self.required)
            .map_err(|e| anyhow::anyhow!("registration.software_statements: {e}"))
    }
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        let policy = RegistrationPolicy::default();
        Self {
            enabled: false,
            open: false,
            grant_types: policy
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            auth_methods: policy
                .auth_methods
                .iter()
                .map(|m| m.as_str().to_owned())
                .collect(),
            scopes: None,
            allow_loopback: policy.allow_loopback,
            allow_private_use_schemes: policy.allow_private_use_schemes,
            allow_http: policy.allow_http,
            max_redirect_uris: policy.max_redirect_uris,
            unused_ttl: policy.unused_ttl,
            per_ip: 20,
            window: 3600,
            software_statements: SoftwareStatementSettings::default(),
        }
    }
}

impl RegistrationSettings {
    /// The policy these settings describe, or `None` when registration is off. Fails on a
    /// name that is not a grant type, an auth method or a scope.
    pub fn policy(&self) -> anyhow::Result<Option<RegistrationPolicy>> {
        if !self.enabled {
            return Ok(None);
        }
        let mut policy = RegistrationPolicy::default();
        policy.open = self.open;
        policy.grant_types = self
            .grant_types
            .iter()
            .map(|name| {
                GrantType::parse(name).ok_or_else(|| {
                    anyhow::anyhow!("registration.grant_types: unknown grant type {name:?}")
                })
            })
            .collect::<anyhow::Result<_>>()?;
        policy.auth_methods = self
            .auth_methods
            .iter()
            .map(|name| {
                AuthMethod::parse(name).ok_or_else(|| {
                    anyhow::anyhow!("registration.auth_methods: unknown method {name:?}")
                })
            })
            .collect::<anyhow::Result<_>>()?;
        policy.scopes = match &self.scopes {
            None => None,
            Some(list) => Some(
                ScopeSet::parse(&list.join(" "))
                    .map_err(|e| anyhow::anyhow!("registration.scopes: {e}"))?,
            ),
        };
        policy.allow_loopback = self.allow_loopback;
        policy.allow_private_use_schemes = self.allow_private_use_schemes;
        policy.allow_http = self.allow_http;
        policy.max_redirect_uris = self.max_redirect_uris.clamp(1, 64);
        policy.unused_ttl = self.unused_ttl;
        policy.software_statements = self.software_statements.policy()?;
        Ok(Some(policy))
    }
}

/// Writes the last-use day of the clients that get tokens, at most once a day per client and
/// node (see [`UseTracker`]), in a task off the request path; passes every event on.
pub struct TrackUse {
    inner: Arc<dyn EventSink>,
    store: AnyStore,
    tracker: Arc<UseTracker>,
}

impl TrackUse {
    /// Tracks use in `store` and hands every event to `inner`.
    pub fn new(inner: Arc<dyn EventSink>, store: AnyStore) -> Self {
        Self {
            inner,
            store,
            tracker: Arc::new(UseTracker::new(100_000)),
        }
    }

    fn track(&self, event: &Event) {
        let Event::TokenIssued { client_id, .. } = event else {
            return;
        };
        let now = latchkey_core::clock::Clock::now(&latchkey_core::clock::SystemClock);
        let Some(day) = self.tracker.needs_touch(client_id, now) else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let store = self.store.clone();
        let client_id = client_id.clone();
        runtime.spawn(async move {
            use latchkey_core::registration::store::RegistrationStore as _;
            if let Err(err) = store.touch_registration(&client_id, day).await {
                tracing::warn!(client_id, error = %err, "recording a client's use failed");
            }
        });
    }
}

impl EventSink for TrackUse {
    fn emit(&self, event: &Event) {
        self.track(event);
        self.inner.emit(event);
    }

    fn emit_from(&self, event: &Event, client_ip: Option<std::net::IpAddr>) {
        self.track(event);
        self.inner.emit_from(event, client_ip);
    }
}

/// Deletes self-registered clients (and clients made from metadata documents) left unused
/// for `registration.unused_ttl`, every hour, until the process ends; does nothing when both
/// are off or the setting keeps clients forever.
pub fn spawn_sweeper(provider: AppProvider, settings: &crate::Settings) {
    let on = settings.registration.enabled || settings.client_id_metadata.enabled;
    if !on || settings.registration.unused_ttl == 0 {
        return;
    }
    let mut policy = RegistrationPolicy::default();
    policy.unused_ttl = settings.registration.unused_ttl;
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every.tick().await;
            let now = provider.clock().now();
            // Batches of 500, so one run never holds the store long.
            loop {
                match latchkey_core::registration::sweep_unused(provider.store(), &policy, now, 500)
                    .await
                {
                    Ok(ids) if ids.is_empty() => break,
                    Ok(ids) => {
                        tracing::info!(
                            deleted = ids.len(),
                            "unused self-registered clients deleted"
                        );
                        if ids.len() < 500 {
                            break;
                        }
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "sweeping unused clients failed");
                        break;
                    }
                }
            }
        }
    });
}
