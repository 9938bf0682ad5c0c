//! OAuth 1.0a (RFC 5849) through axum: the provider's routes, and a guard that accepts
//! signed requests.
//!
//! * [`oauth1_router`]: `POST /oauth1/request_token`, `GET`/`POST /oauth1/authorize` (the
//!   shared login and consent pages), `POST /oauth1/login`, `POST /oauth1/access_token` and
//!   `POST /oauth1/revoke`.
//! * [`crate::OAuth1Guard`] (from `latchkey-adapter`): checks a signed request (signature, timestamp, nonce, token, realms);
//!   plug it into a [`crate::BearerGuard`] with [`crate::BearerGuard::with_oauth1`], so the
//!   same [`crate::Authenticated`] extractor and [`crate::RequireScopesLayer`] accept either
//!   a bearer token or an OAuth 1.0a signature, realms standing for scopes.
//!
//! The signature covers the request URL, rebuilt from the provider's `base_url` and the
//! request path as the handler sees it: under `Router::nest("/api", ..)` the prefix is gone,
//! so give that provider a `base_url` ending in `/api`.

use crate::{Extract, Reply};
use axum::extract::State;
use axum::routing::{get, post};
use latchkey_core::store::{ClientStore, ProviderStore};
use latchkey_core::user::UserAuthenticator;
use latchkey_oauth1::provider::{
    ACCESS_TOKEN_PATH, AUTHORIZE_PATH, REQUEST_TOKEN_PATH, REVOKE_PATH,
};
use latchkey_oauth1::{OAuth1Provider, OAuth1Store};
use latchkey_ui::{Login, Ui};

/// A router with the OAuth 1.0a endpoints, the authorization step on `ui`'s pages. Mount
/// it beside [`crate::router`] and [`crate::authorize_router`] (same base path as `ui`).
pub fn oauth1_router<S, U, L, O>(oauth1: OAuth1Provider<O>, ui: Ui<S, U, L>) -> axum::Router
where
    S: ProviderStore,
    U: UserAuthenticator,
    L: Login,
    O: ClientStore + OAuth1Store,
{
    type St<S, U, L, O> = State<(OAuth1Provider<O>, Ui<S, U, L>)>;
    axum::Router::new()
        .route(
            REQUEST_TOKEN_PATH,
            post(
                |State((p, _)): St<S, U, L, O>, Extract(req): Extract| async move {
                    Reply(p.request_token(&req).await)
                },
            ),
        )
        .route(
            AUTHORIZE_PATH,
            get(
                |State((p, ui)): St<S, U, L, O>, Extract(req): Extract| async move {
                    Reply(ui.oauth1_authorize(&p, &req).await)
                },
            )
            .post(
                |State((p, ui)): St<S, U, L, O>, Extract(req): Extract| async move {
                    Reply(ui.oauth1_authorize(&p, &req).await)
                },
            ),
        )
        .route(
            latchkey_ui::oauth1::LOGIN_PATH,
            post(
                |State((p, ui)): St<S, U, L, O>, Extract(req): Extract| async move {
                    Reply(ui.oauth1_login(&p, &req).await)
                },
            ),
        )
        .route(
            ACCESS_TOKEN_PATH,
            post(
                |State((p, _)): St<S, U, L, O>, Extract(req): Extract| async move {
                    Reply(p.access_token(&req).await)
                },
            ),
        )
        .route(
            REVOKE_PATH,
            post(
                |State((p, _)): St<S, U, L, O>, Extract(req): Extract| async move {
                    Reply(p.revoke(&req).await)
                },
            ),
        )
        .with_state((oauth1, ui))
}
