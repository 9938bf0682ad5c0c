//! [`run`]: serving the application (and the admin API, when configured) on a listener until
//! shutdown.

use super::keys::oauth1_key;
use super::middleware::{RequestSpanLayer, set_request_id};
use super::routes::{Surroundings, service_with_oauth1};
use super::state::{build_oauth1, build_provider, build_ui, open_counters};
use crate::serve::ServeLimits;
use crate::settings::Settings;
use crate::store::AnyStore;
use crate::tls::{Certificates, Transport};
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Serves the application on `listener` until `shutdown` resolves, then drains in-flight
/// requests and closes the store.
pub async fn run(
    listener: TcpListener,
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let local = listener.local_addr()?;
    let client_certs = Arc::new(settings.tls.client_certs(&settings.trusted_proxies)?);
    let certs = match (&settings.tls.cert_file, &settings.tls.key_file) {
        (Some(cert), Some(key)) => Some(Arc::new(Certificates::load(
            cert,
            key,
            Some(Arc::clone(&client_certs)),
        )?)),
        (None, None) => None,
        _ => anyhow::bail!("tls.cert_file and tls.key_file go together"),
    };
    let store = AnyStore::from_settings(&settings).await?;
    store.open_token_log()?;
    let counters = open_counters(&settings).await?;
    let provider = build_provider(&settings, store.clone(), Some(local), counters)?;
    let outbound_roots = crate::outbound::TrustedRoots::load(&settings.outbound)?;
    if !outbound_roots.is_empty() {
        tracing::info!(
            certificates = outbound_roots.len(),
            "outbound fetches trust the CA certificates of outbound.ca_file besides the system's"
        );
    }
    let ui = build_ui(&settings, provider.clone())?;
    let around_transport = Arc::new(Transport {
        tls_listener: certs.is_some(),
        trusted: provider.config().trusted_proxies.clone(),
        allow_insecure_http: settings.tls.allow_insecure_http,
        client_certs: client_certs.enabled().then_some(client_certs),
    });
    let metrics = settings.metrics.then(crate::metrics::install).flatten();
    let around = Surroundings {
        transport: Arc::clone(&around_transport),
        metrics: metrics.clone(),
        client_documents: crate::client_documents::ClientDocuments::from_settings(
            &settings.client_id_metadata,
            outbound_roots.clone(),
            provider.clone(),
        ),
        access_log: settings.log.access.then(|| {
            crate::access_log::AccessLogLayer::new(provider.config().trusted_proxies.clone())
        }),
    };
    let oauth1 = build_oauth1(&settings, store.clone(), &provider)?;
    let published = super::resource_metadata::PublishedResources::with_store(
        crate::settings::resources::published(&settings.resources, &provider.config().issuer)?,
        provider.config().resources.clone(),
        store.clone(),
        provider.config().issuer.clone(),
        settings.resource_metadata_ttl,
    )?;
    let app = service_with_oauth1(
        provider.clone(),
        ui,
        oauth1,
        &settings.cors,
        around,
        published,
    )?;
    if latchkey_core::store::ClientStore::list_clients(&store)
        .await?
        .is_empty()
    {
        println!(
            "No clients are registered yet. Create one with:\n  latchkey client create --name my-service"
        );
    }
    let scheme = if certs.is_some() { "https" } else { "http" };
    let limits =
        ServeLimits::from_settings(&settings.http, provider.config().trusted_proxies.clone());
    let grace = std::time::Duration::from_secs(settings.shutdown_grace);
    let (stopping, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stopping.send(true);
    });
    crate::registration::spawn_sweeper(provider.clone(), &settings);
    crate::signing_keys::SigningKeys::install(&settings, store.clone(), provider.clone())
        .await?
        .spawn(stopped.clone());
    if let Some(certs) = &certs {
        crate::tls::spawn_reloader(
            Arc::clone(certs),
            std::time::Duration::from_secs(settings.tls.reload_interval),
        );
    }
    let admin = match &settings.admin.listen {
        Some(addr) => {
            let token = settings.admin.load_token()?;
            let tcp = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("admin.listen {addr}: {e}"))?;
            let admin_local = tcp.local_addr()?;
            let ops =
                crate::admin::Admin::new(store.clone(), provider.config().issuer.clone(), "api")
                    .with_oauth1_key(oauth1_key(&settings)?)
                    .with_kek(crate::signing_keys::load_kek(&settings)?)
                    .with_key_policy(crate::signing_keys::policy(&settings)?)
                    .with_provider(provider.clone())
                    .with_http_sector_fetch(settings.oidc.allow_http_sector_identifier_uri)
                    .with_outbound_roots(outbound_roots.clone())
                    .with_configured_resources(provider.config().resources.clone());
            let mut admin_app = crate::admin_api::router(ops, &token);
            // Metrics are for the operator's scraper, not the internet: on this listener,
            // which operators keep private, and without the admin token (a scraper should not
            // hold a credential that can create clients).
            if let Some(handle) = metrics {
                admin_app = admin_app.route(
                    "/metrics",
                    axum::routing::get(move || crate::metrics::render(Some(handle.clone()))),
                );
            }
            let admin_app = admin_app
                .layer(axum::middleware::from_fn_with_state(
                    Arc::clone(&around_transport),
                    crate::tls::enforce,
                ))
                .layer(RequestSpanLayer)
                .layer(axum::middleware::from_fn_with_state(
                    Arc::new(provider.config().trusted_proxies.clone()),
                    crate::audit::admin_request_scope,
                ))
                .layer(tower::util::option_layer(settings.log.access.then(|| {
                    crate::access_log::AccessLogLayer::new(
                        provider.config().trusted_proxies.clone(),
                    )
                })))
                .layer(tower::util::MapRequestLayer::new(
                    |mut req: axum::extract::Request| {
                        set_request_id(req.headers_mut());
                        req
                    },
                ));
            println!("latchkey admin API on {scheme}://{admin_local}");
            tracing::info!(%admin_local, "admin API listening");
            Some(tokio::spawn(crate::serve::serve(
                tcp,
                admin_app,
                certs.clone(),
                limits.for_admin(),
                stopped.clone(),
            )))
        }
        None => None,
    };
    println!("latchkey listening on {scheme}://{local}");
    tracing::info!(%local, issuer = %provider.config().issuer, "latchkey listening");
    let serving = crate::serve::serve(listener, app, certs, limits, stopped.clone());
    // After the signal, in-flight requests get `grace` to finish; one that never ends
    // cannot hold the process past it.
    let mut signalled = stopped;
    let deadline = async move {
        if signalled.wait_for(|stop| *stop).await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    let served = tokio::select! {
        served = serving => served.map_err(anyhow::Error::from),
        () = deadline => {
            tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace elapsed; closing remaining connections");
            Ok(())
        }
    };
    if let Some(admin) = admin {
        admin.abort();
    }
    store.close().await;
    tracing::info!("latchkey stopped");
    served
}
