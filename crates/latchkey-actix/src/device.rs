//! The device authorization grant (RFC 8628) through actix-web, as `latchkey-axum`'s
//! `device_router` serves it: the device authorization endpoint and the verification pages,
//! for stores that keep pending requests.
//!
//! * `POST /device_authorization`: [`latchkey_core::provider::Provider::device_authorization`].
//! * `GET`/`POST /device` and `POST /device/login`: the verification page
//!   ([`latchkey_ui::device`]).
//!
//! The token endpoint of [`crate::configure`] answers the device's polls.

use crate::{Extract, Reply};
use actix_web::web;
use latchkey_core::store::{PendingStore, ProviderStore};
use latchkey_core::user::UserAuthenticator;
use latchkey_ui::{Login, Ui};

/// Mounts the device authorization endpoint and the verification pages on `ui`. Configure it
/// beside [`crate::configure`] and [`crate::configure_authorize`], in the same scope as
/// [`latchkey_ui::UiConfig::base_path`].
pub fn configure_device<S, U, L>(ui: Ui<S, U, L>) -> impl FnOnce(&mut web::ServiceConfig)
where
    S: ProviderStore + PendingStore,
    U: UserAuthenticator,
    L: Login,
{
    move |cfg| {
        cfg.app_data(web::Data::new(ui))
            .service(
                web::resource(latchkey_core::device::DEVICE_AUTHORIZATION_PATH)
                    .route(web::route().to(device_authorization::<S, U, L>)),
            )
            .service(
                web::resource(latchkey_ui::device::DEVICE_PATH)
                    .route(web::get().to(device::<S, U, L>))
                    .route(web::post().to(device::<S, U, L>)),
            )
            .service(
                web::resource(latchkey_ui::device::DEVICE_LOGIN_PATH)
                    .route(web::post().to(device_login::<S, U, L>)),
            );
    }
}

async fn device_authorization<S, U, L>(ui: web::Data<Ui<S, U, L>>, Extract(req): Extract) -> Reply
where
    S: ProviderStore + PendingStore,
    U: UserAuthenticator,
    L: Login,
{
    Reply(ui.provider().device_authorization(&req).await)
}

async fn device<S, U, L>(ui: web::Data<Ui<S, U, L>>, Extract(req): Extract) -> Reply
where
    S: ProviderStore + PendingStore,
    U: UserAuthenticator,
    L: Login,
{
    Reply(ui.device(&req).await)
}

async fn device_login<S, U, L>(ui: web::Data<Ui<S, U, L>>, Extract(req): Extract) -> Reply
where
    S: ProviderStore + PendingStore,
    U: UserAuthenticator,
    L: Login,
{
    Reply(ui.device_login(&req).await)
}
