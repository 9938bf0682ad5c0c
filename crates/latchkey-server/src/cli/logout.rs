//! Back-channel logout from the command line: `latchkey user passwd|delete|logout` end login
//! sessions in their own process, so they deliver the logout tokens themselves, with the
//! server's delivery code, and wait for them (bounded) before exiting.

use crate::admin::Admin;
use crate::backchannel::{BackchannelDelivery, DeliveryPolicy, DeliveryReport};
use crate::settings::Settings;
use crate::store::AnyStore;

/// The administrative operations with a provider whose ended sessions send their
/// back-channel logouts through a delivery this process runs, and that delivery.
pub(super) async fn admin_with_logout(
    admin: Admin,
    settings: &Settings,
    store: &AnyStore,
) -> anyhow::Result<(Admin, BackchannelDelivery)> {
    let delivery = BackchannelDelivery::start(DeliveryPolicy::default())?;
    // The address the server listens on gives the issuer it derives when none is set.
    let local = settings.listen.parse::<std::net::SocketAddr>().ok();
    let provider = crate::app::build_provider_with_sink(
        settings,
        store.clone(),
        local,
        std::sync::Arc::new(latchkey_core::limits::MemoryCounters::new()),
        std::sync::Arc::new(delivery.clone()),
    )?;
    crate::signing_keys::SigningKeys::install(settings, store.clone(), provider.clone()).await?;
    Ok((admin.with_provider(provider), delivery))
}

/// Says how the back-channel logouts of the ended sessions fared (nothing when there were
/// none).
pub(super) fn report(report: DeliveryReport) {
    let DeliveryReport {
        delivered,
        refused,
        failed,
        dropped,
        unfinished,
    } = report;
    if delivered + refused + failed + dropped + unfinished == 0 {
        return;
    }
    println!("Back-channel logout: {delivered} delivered, {refused} refused, {failed} failed.");
    if dropped + unfinished > 0 {
        eprintln!(
            "latchkey: {} back-channel logout token(s) were not delivered in time",
            dropped + unfinished
        );
    }
}
