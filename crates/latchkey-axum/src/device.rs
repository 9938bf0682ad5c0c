//! The device authorization grant (RFC 8628) through axum: the device authorization endpoint
//! and the verification pages, for stores that keep pending requests.
//!
//! * `POST /device_authorization`: [`latchkey_core::provider::Provider::device_authorization`].
//! * `GET`/`POST /device` and `POST /device/login`: the verification page
//!   ([`latchkey_ui::device`]).
//!
//! The token endpoint of [`crate::router`] answers the device's polls.

use crate::{Extract, Reply};
use axum::extract::State;
use axum::routing::{any, get, post};
use latchkey_core::store::{PendingStore, ProviderStore};
use latchkey_core::user::UserAuthenticator;
use latchkey_ui::{Login, Ui};

/// A router with the device authorization endpoint and the verification pages on `ui`.
/// Mount it beside [`crate::router`] and [`crate::authorize_router`] (same base path as
/// `ui`).
pub fn device_router<S, U, L>(ui: Ui<S, U, L>) -> axum::Router
where
    S: ProviderStore + PendingStore,
    U: UserAuthenticator,
    L: Login,
{
    type St<S, U, L> = State<Ui<S, U, L>>;
    axum::Router::new()
        .route(
            latchkey_core::device::DEVICE_AUTHORIZATION_PATH,
            any(|State(ui): St<S, U, L>, Extract(req): Extract| async move {
                Reply(ui.provider().device_authorization(&req).await)
            }),
        )
        .route(
            latchkey_ui::device::DEVICE_PATH,
            get(|State(ui): St<S, U, L>, Extract(req): Extract| async move {
                Reply(ui.device(&req).await)
            })
            .post(|State(ui): St<S, U, L>, Extract(req): Extract| async move {
                Reply(ui.device(&req).await)
            }),
        )
        .route(
            latchkey_ui::device::DEVICE_LOGIN_PATH,
            post(|State(ui): St<S, U, L>, Extract(req): Extract| async move {
                Reply(ui.device_login(&req).await)
            }),
        )
        .with_state(ui)
}
