//! The values the server runs, built from the settings: the OAuth 2.0 provider (with its
//! rate limits and counter store), the login and consent pages, and the OAuth 1.0a provider.

use super::keys::{load_or_create_key, oauth1_key};
use crate::audit::LogEvents;
use crate::settings::Settings;
use crate::store::AnyStore;
use latchkey_axum::TokioBlocking;
use latchkey_core::config::Config;
use latchkey_core::limits::{Backoff, Counters, Limits, MemoryCounters, Rate};
use latchkey_core::provider::Provider;
use latchkey_core::scope::ScopeSet;
use latchkey_core::user::StoreUsers;
use latchkey_ui::pages::Pages;
use latchkey_ui::{BuiltinLogin, Ui, UiConfig};
use std::net::SocketAddr;
use std::sync::Arc;

/// The provider the server runs.
pub type AppProvider = Provider<AnyStore, StoreUsers<AnyStore, TokioBlocking>>;

/// Builds the provider from settings; `local` is the bound address, used to derive the
/// issuer on loopback when none is configured. Back-channel logout tokens go to a delivery
/// worker on the current Tokio runtime.
pub fn build_provider(
    settings: &Settings,
    store: AnyStore,
    local: Option<SocketAddr>,
    counters: Arc<dyn Counters>,
) -> anyhow::Result<AppProvider> {
    build_provider_with_sink(settings, store, local, counters, logout_sink())
}

/// [`build_provider`] with the back-channel logout tokens handed to `sink`: a CLI command
/// passes a delivery it waits on before exiting.
pub fn build_provider_with_sink(
    settings: &Settings,
    store: AnyStore,
    local: Option<SocketAddr>,
    counters: Arc<dyn Counters>,
    sink: Arc<dyn latchkey_core::logout::LogoutSink>,
) -> anyhow::Result<AppProvider> {
    let issuer = match (&settings.issuer, local) {
        (Some(issuer), _) => issuer.clone(),
        (None, Some(addr)) if addr.ip().is_loopback() => format!("http://{addr}"),
        (None, Some(addr)) => {
            tracing::warn!("no issuer configured; set `issuer` to this server's public https URL");
            format!("http://localhost:{}", addr.port())
        }
        (None, None) => Config::default().issuer,
    };
    let scopes = |list: &[String]| ScopeSet::parse(&list.join(" "));
    let config = Config {
        issuer,
        access_token_ttl: settings.tokens.access_ttl,
        refresh_token_ttl: settings.tokens.refresh_ttl,
        grant_lifetimes: settings.tokens.grant_lifetimes()?,
        refresh_token_max_lifetime: settings.tokens.refresh_max_lifetime,
        available_scopes: scopes(&settings.scopes.available)
            .map_err(|e| anyhow::anyhow!("scopes.available: {e}"))?,
        default_scopes: scopes(&settings.scopes.default)
            .map_err(|e| anyhow::anyhow!("scopes.default: {e}"))?,
        error_uri: settings.error_uri.clone(),
        code_ttl: settings.tokens.code_ttl,
        require_pkce: settings.pkce.require_all,
        allow_plain_pkce: settings.pkce.allow_plain,
        implicit_grant: settings.grants.implicit,
        password_grant: settings.grants.password,
        access_token_audience: settings.tokens.jwt_audience.clone(),
        // RFC 8705: certificates reach the core from the handshake or a trusted proxy.
        mtls: settings.tls.client_certificates == crate::settings::ClientCertificates::Optional
            || settings.tls.client_cert_header.is_some(),
        trusted_proxies: latchkey_core::net::TrustedProxies::parse(&settings.trusted_proxies)
            .map_err(|bad| {
                anyhow::anyhow!("trusted_proxies: {bad:?} is not an address or network")
            })?
            .with_header(
                latchkey_core::net::ForwardedHeader::parse(&settings.forwarded_header).ok_or_else(
                    || {
                        anyhow::anyhow!(
                            "forwarded_header: {:?} is neither \"x-forwarded-for\" nor \"forwarded\"",
                            settings.forwarded_header
                        )
                    },
                )?,
            ),
        oidc: settings.oidc.enabled,
        id_token_ttl: settings.oidc.id_token_ttl,
        pairwise_salt: Some(pairwise_salt(settings)?),
        acr_values: settings.oidc.acr_values.clone(),
        par_ttl: settings.par.ttl,
        require_pushed_authorization_requests: settings.par.required,
        device: latchkey_core::config::DeviceConfig {
            enabled: settings.device.enabled,
            lifetime: settings.device.lifetime,
            interval: settings.device.interval,
            user_code_length: settings.device.user_code_length,
            verification_uri: settings.device.verification_uri.clone(),
        },
        resources: crate::settings::resources::registry(&settings.resources)?,
        dpop: dpop_config(settings)?,
        ui_locales: catalogs(settings)?.tags(),
        request_objects: settings.request_objects.config(),
    };
    let users = StoreUsers::new(store.clone(), TokioBlocking::default());
    let registration = settings.registration.policy()?;
    // Self-registered clients expire when unused: their use is recorded from the events.
    let events: Arc<dyn latchkey_core::events::EventSink> =
        if registration.is_some() || settings.client_id_metadata.enabled {
            Arc::new(crate::registration::TrackUse::new(
                Arc::new(LogEvents),
                store.clone(),
            ))
        } else {
            Arc::new(LogEvents)
        };
    let mut builder = Provider::builder(store, users.clone())
        .client_id_metadata_documents(settings.client_id_metadata.enabled);
    if let Some(policy) = registration {
        builder = builder.registration(policy);
    }
    // One fetcher, so client and trusted-issuer key sets share its cache and bounds.
    let fetcher = Arc::new(crate::jwks_fetch::HttpJwksFetcher::new(
        settings.allow_http_jwks_uri,
        settings.allow_private_jwks_uri,
        crate::outbound::TrustedRoots::load(&settings.outbound)?,
    )?);
    if settings.grants.token_exchange {
        use latchkey_core::grant::token_exchange::{GRANT_TYPE, TokenExchange};
        let trusted = settings.token_exchange.trusted_issuers(&config.issuer)?;
        builder = builder.extension_grant(
            GRANT_TYPE,
            TokenExchange::new()
                .trusted_issuers(trusted)
                .jwks_fetcher(fetcher.clone()),
        );
    } else if !settings.token_exchange.trusted_issuers.is_empty() {
        tracing::warn!("token_exchange.trusted_issuers is set but grants.token_exchange is off");
    }
    Ok(builder
        .config(config)
        // OpenID Connect claims come from the same built-in user records.
        .claims_source(users)
        .events(events)
        .limits(limits(settings, counters))
        .assertion_keys(latchkey_core::client_assertion::AssertionKeys {
            // The key-encryption key that seals the signing keys also seals the secrets of
            // client_secret_jwt clients.
            kek: Some(crate::signing_keys::load_kek(settings)?),
            fetcher: Some(fetcher),
        })
        .logout_sink(sink)
        .build()?)
}

/// Who delivers back-channel logout tokens: the delivery worker on the current Tokio runtime,
/// or (outside one, or if its HTTP client cannot be built) nobody, with a warning.
fn logout_sink() -> Arc<dyn latchkey_core::logout::LogoutSink> {
    use crate::backchannel::{BackchannelDelivery, DeliveryPolicy};
    if tokio::runtime::Handle::try_current().is_err() {
        return Arc::new(latchkey_core::logout::NoLogoutDelivery);
    }
    match BackchannelDelivery::start(DeliveryPolicy::default()) {
        Ok(delivery) => Arc::new(delivery),
        Err(err) => {
            tracing::warn!(error = %err, "back-channel logout delivery is off");
            Arc::new(latchkey_core::logout::NoLogoutDelivery)
        }
    }
}

/// The pairwise-subject salt: `oidc.pairwise_salt`, or derived from the key-encryption key.
fn pairwise_salt(settings: &Settings) -> anyhow::Result<latchkey_core::secret::Secret> {
    if let Some(salt) = &settings.oidc.pairwise_salt {
        return Ok(latchkey_core::secret::Secret::new(salt.as_str()));
    }
    let kek = crate::signing_keys::load_kek(settings)?;
    Ok(kek.derive("latchkey pairwise subject salt v1"))
}

/// The DPoP settings; the nonce secret is `dpop.nonce_secret` or derived from the
/// key-encryption key, so every node sharing that key accepts every node's nonces.
fn dpop_config(settings: &Settings) -> anyhow::Result<latchkey_core::dpop::DpopConfig> {
    let s = &settings.dpop;
    let nonce_secret = match &s.nonce_secret {
        Some(secret) => latchkey_core::secret::Secret::new(secret.as_str()),
        None => crate::signing_keys::load_kek(settings)?.derive("latchkey dpop nonce secret v1"),
    };
    Ok(latchkey_core::dpop::DpopConfig {
        enabled: s.enabled,
        algs: s.algs.clone(),
        proof_max_age: s.proof_max_age,
        require_nonce: s.require_nonce,
        nonce_secret: Some(nonce_secret),
        nonce_lifetime: s.nonce_lifetime,
    })
}

/// The rate limits and password backoff of the settings (0 turns a limit off).
fn limits(settings: &Settings, counters: Arc<dyn Counters>) -> Limits {
    let s = &settings.limits;
    let rate = |requests: u64| {
        (requests > 0).then_some(Rate {
            requests,
            window: s.window.max(1),
        })
    };
    let mut limits = Limits::new(counters);
    limits.per_client = rate(s.per_client);
    limits.per_ip = rate(s.per_ip);
    limits.client_auth_failures = rate(s.client_auth_failures);
    limits.backoff = (s.login_max_failures > 0).then_some(Backoff {
        slow_after: s.login_slow_after,
        max_delay: s.login_max_delay,
        max_failures: s.login_max_failures,
        max_failures_per_ip: if s.login_max_failures_per_ip == 0 {
            u64::MAX
        } else {
            s.login_max_failures_per_ip
        },
        window: s.login_window.max(1),
    });
    // RFC 8628 §5.1: wrong user codes, per address and from everywhere.
    let d = &settings.device;
    let guesses = |requests: u64| Rate {
        requests: if requests == 0 { u64::MAX } else { requests },
        window: d.wrong_code_window.max(1),
    };
    limits.user_code_guesses = Some(latchkey_core::limits::UserCodeGuesses {
        per_ip: guesses(d.max_wrong_codes_per_ip),
        global: guesses(d.max_wrong_codes),
    });
    let registration = &settings.registration;
    limits.registrations_per_ip = (registration.per_ip > 0).then_some(Rate {
        requests: registration.per_ip,
        window: registration.window.max(1),
    });
    limits
}

/// Opens the counter store the settings name: this process's memory, or Redis.
pub async fn open_counters(settings: &Settings) -> anyhow::Result<Arc<dyn Counters>> {
    let url = settings.limits.store.as_str();
    if url == "memory" || url == "memory:" {
        return Ok(Arc::new(MemoryCounters::new()));
    }
    if url.starts_with("redis://") || url.starts_with("rediss://") {
        let prefix = format!("{}:", settings.store.key_prefix.trim_end_matches(':'));
        let redis = latchkey_redis::RedisStore::connect(url, &prefix)
            .await
            .map_err(|e| anyhow::anyhow!("limits.store {url:?}: {e}"))?;
        return Ok(Arc::new(redis));
    }
    anyhow::bail!("unsupported limits.store {url:?}: use memory or redis://host:port")
}

/// The login and consent pages the server runs.
pub type AppUi = Ui<AnyStore, StoreUsers<AnyStore, TokioBlocking>, BuiltinLogin>;

/// Builds the login and consent pages: templates (with the operator's overrides), the
/// persistent session key, and cookies that are `Secure` unless the issuer is plain HTTP.
pub fn build_ui(settings: &Settings, provider: AppProvider) -> anyhow::Result<AppUi> {
    let pages =
        Pages::load(settings.ui.templates_dir.as_deref())?.with_catalogs(catalogs(settings)?);
    let key_file = settings
        .ui
        .session_key_file
        .clone()
        .unwrap_or_else(|| settings.data_dir.join("session.key"));
    let key = load_or_create_key(&key_file)?;
    let mut config = UiConfig::new(key);
    config.secure_cookies = !provider.config().issuer.starts_with("http://");
    config.session_ttl = settings.ui.session_ttl;
    config.scope_descriptions = settings.ui.scope_descriptions.clone();
    Ok(Ui::new(provider, pages, BuiltinLogin, config))
}

/// The pages' message catalogs: the shipped ones with the operator's `ui.locales_dir`.
fn catalogs(settings: &Settings) -> anyhow::Result<latchkey_ui::i18n::Catalogs> {
    latchkey_ui::i18n::Catalogs::load(
        settings.ui.locales_dir.as_deref(),
        &settings.ui.default_locale,
    )
    .map_err(|e| anyhow::anyhow!("ui.locales_dir: {e}"))
}

/// The OAuth 1.0a provider the server runs.
pub type AppOAuth1 = latchkey_oauth1::OAuth1Provider<AnyStore>;

/// Builds the OAuth 1.0a provider: requests are signed against the issuer's URL, realms are
/// the server's scopes, access tokens live `oauth1.access_ttl`.
pub fn build_oauth1(
    settings: &Settings,
    store: AnyStore,
    provider: &AppProvider,
) -> anyhow::Result<AppOAuth1> {
    let mut config = latchkey_oauth1::OAuth1Config::new(provider.config().issuer.clone());
    config.available_realms = provider.config().available_scopes.clone();
    config.default_realms = provider.config().default_scopes.clone();
    config.access_token_ttl =
        (settings.oauth1.access_ttl > 0).then_some(settings.oauth1.access_ttl);
    Ok(latchkey_oauth1::OAuth1Provider::new(
        config,
        store,
        oauth1_key(settings)?,
    ))
}
