//! The HTTP application: the core's endpoints through the axum adapter, plus `/healthz`,
//! wrapped in request ids, tracing spans that never record credentials, and panic capture.

use crate::audit::LogEvents;
use crate::settings::Settings;
use crate::store::AnyStore;
use axum::Router;
use axum::http::{HeaderName, header};
use latchkey_axum::TokioBlocking;
use latchkey_core::config::Config;
use latchkey_core::entropy::OsEntropy;
use latchkey_core::provider::Provider;
use latchkey_core::scope::ScopeSet;
use latchkey_core::user::StoreUsers;
use latchkey_ui::pages::Pages;
use latchkey_ui::{BuiltinLogin, SessionKey, Ui, UiConfig};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

/// The provider the server runs.
pub type AppProvider = Provider<AnyStore, StoreUsers<AnyStore, TokioBlocking>>;

/// Builds the provider from settings; `local` is the bound address, used to derive the
/// issuer on loopback when none is configured.
pub fn build_provider(
    settings: &Settings,
    store: AnyStore,
    local: Option<SocketAddr>,
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
        available_scopes: scopes(&settings.scopes.available)
            .map_err(|e| anyhow::anyhow!("scopes.available: {e}"))?,
        default_scopes: scopes(&settings.scopes.default)
            .map_err(|e| anyhow::anyhow!("scopes.default: {e}"))?,
        error_uri: settings.error_uri.clone(),
        code_ttl: settings.tokens.code_ttl,
        require_pkce: settings.pkce.require_all,
        allow_plain_pkce: settings.pkce.allow_plain,
    };
    let users = StoreUsers::new(store.clone(), TokioBlocking::default());
    Ok(Provider::builder(store, users)
        .config(config)
        .events(Arc::new(LogEvents))
        .build()?)
}

/// The login and consent pages the server runs.
pub type AppUi = Ui<AnyStore, StoreUsers<AnyStore, TokioBlocking>, BuiltinLogin>;

/// Builds the login and consent pages: templates (with the operator's overrides), the
/// persistent session key, and cookies that are `Secure` unless the issuer is plain HTTP.
pub fn build_ui(settings: &Settings, provider: AppProvider) -> anyhow::Result<AppUi> {
    let pages = Pages::load(settings.ui.templates_dir.as_deref())?;
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

/// Reads the 32-byte session key, creating it (readable by the owner only) on first start.
fn load_or_create_key(path: &std::path::Path) -> anyhow::Result<SessionKey> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} must hold exactly 32 bytes", path.display()))?;
            Ok(SessionKey::new(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let key = SessionKey::generate(&OsEntropy);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut file) => {
                    std::io::Write::write_all(&mut file, key.as_bytes())?;
                    file.sync_all()?;
                    Ok(key)
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key(path),
                Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", path.display())),
            }
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// The router of the whole server.
pub fn app(provider: AppProvider, ui: AppUi) -> Router {
    let x_request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .merge(latchkey_axum::router(provider))
        .merge(latchkey_axum::authorize_router(ui))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .layer(PropagateRequestIdLayer::new(x_request_id.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(SetSensitiveRequestHeadersLayer::new([
            header::AUTHORIZATION,
            header::COOKIE,
        ]))
        .layer(SetRequestIdLayer::new(x_request_id, MakeRequestUuid))
        .layer(CatchPanicLayer::new())
}

/// Serves the application on `listener` until `shutdown` resolves, then drains in-flight
/// requests and closes the store.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    let store = AnyStore::open(settings.store.url.as_deref(), &settings.data_dir).await?;
    let provider = build_provider(&settings, store.clone(), Some(local))?;
    let ui = build_ui(&settings, provider.clone())?;
    if latchkey_core::store::ClientStore::list_clients(&store)
        .await?
        .is_empty()
    {
        println!(
            "No clients are registered yet. Create one with:\n  latchkey client create --name my-service"
        );
    }
    println!("latchkey listening on http://{local}");
    tracing::info!(%local, issuer = %provider.config().issuer, "latchkey listening");
    let served = axum::serve(
        listener,
        app(provider, ui).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    store.close().await;
    tracing::info!("latchkey stopped");
    Ok(served?)
}
