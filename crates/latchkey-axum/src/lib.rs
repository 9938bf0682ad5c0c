//! # latchkey-axum
//!
//! The axum adapter for Latchkey. It has three steps and no more: extract an owned
//! [`HttpRequest`] from axum's request ([`Extract`]), call the [`Provider`], and convert the
//! [`HttpResponse`] back ([`Reply`]). [`router`] mounts the endpoints so any axum application
//! can `merge` or `nest` them.
//!
//! ```no_run
//! use latchkey_axum::{TokioBlocking, router};
//! use latchkey_core::prelude::*;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let users = StoreUsers::new(store.clone(), TokioBlocking::default());
//! let provider = Provider::builder(store, users)
//!     .issuer("https://auth.example.com")
//!     .build()?;
//! let app = axum::Router::new().nest("/oauth2", router(provider));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, Request};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use latchkey_core::http::{HttpRequest, HttpResponse, Method, collect_headers};
use latchkey_core::mtls::ClientCertificate;
use latchkey_core::params::MAX_FORM_BYTES;
use latchkey_core::prelude::{OAuthError, Provider};
use latchkey_core::store::ProviderStore;
use latchkey_core::user::UserAuthenticator;
use std::net::SocketAddr;
use std::sync::Arc;

/// Marks a request as received over TLS. A server that terminates TLS (or trusts a proxy
/// that did) inserts it as a request extension; the core then knows the transport was safe.
#[derive(Clone, Copy, Debug)]
pub struct Tls;

/// Marks a plain-HTTP request that the server's transport rule lets through (a loopback
/// client, or a development setting): rules that need a safe transport, such as OAuth 1.0a
/// PLAINTEXT signatures, follow that decision through
/// [`latchkey_core::http::HttpRequest::transport_allowed`] instead of deciding again.
#[derive(Clone, Copy, Debug)]
pub struct PlainHttpAllowed;

/// What the request's extensions say about its transport: `(tls, transport_allowed)`.
pub(crate) fn transport(extensions: &axum::http::Extensions) -> (bool, bool) {
    let tls = extensions.get::<Tls>().is_some();
    (tls, tls || extensions.get::<PlainHttpAllowed>().is_some())
}

/// The TLS client certificate of the request (RFC 8705): the server that terminates TLS
/// (or believes a trusted proxy's header) inserts it as an `Arc<ClientCertificate>` request
/// extension.
pub(crate) fn client_cert(extensions: &axum::http::Extensions) -> Option<Arc<ClientCertificate>> {
    extensions.get::<Arc<ClientCertificate>>().cloned()
}

/// The owned, framework-free request, extracted from axum's.
///
/// The body is read up to [`MAX_FORM_BYTES`]; a larger one is refused with an RFC 6749
/// `invalid_request` (413), never buffered.
#[derive(Debug)]
pub struct Extract(pub HttpRequest);

impl<S: Send + Sync> FromRequest<S> for Extract {
    type Rejection = Reply;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let headers = collect_headers(
            parts
                .headers
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_bytes())),
        )
        .map_err(|err| Reply(OAuthError::invalid_request(err.description()).to_response(None)))?;
        let body = read_body(body).await.map_err(|status| {
            Reply(
                OAuthError::invalid_request("request body is too large or unreadable")
                    .with_status(status)
                    .to_response(None),
            )
        })?;
        let (tls, transport_allowed) = transport(&parts.extensions);
        Ok(Self(HttpRequest {
            method: Method::parse(parts.method.as_str()),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or("").to_owned(),
            headers,
            body,
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| *addr),
            tls,
            transport_allowed,
            client_cert: client_cert(&parts.extensions),
        }))
    }
}

/// How much of an oversized body is read and thrown away before answering 413, so that a
/// client still sending gets the answer instead of a reset connection.
const DRAIN_BYTES: usize = 1024 * 1024;

/// Reads a body of at most [`MAX_FORM_BYTES`]; the error is the status to answer (413 when too
/// large, 400 when unreadable).
async fn read_body(mut body: Body) -> Result<Vec<u8>, u16> {
    use http_body_util::BodyExt as _;
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| 400u16)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        seen = seen.saturating_add(data.len());
        if seen > DRAIN_BYTES {
            return Err(413);
        }
        if seen <= MAX_FORM_BYTES {
            kept.extend_from_slice(&data);
        }
    }
    if seen > MAX_FORM_BYTES {
        return Err(413);
    }
    Ok(kept)
}

/// The core's response, as an axum response.
#[derive(Debug)]
pub struct Reply(pub HttpResponse);

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let HttpResponse {
            status,
            headers,
            body,
        } = self.0;
        let mut response = Response::new(Body::from(body));
        *response.status_mut() =
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let map = response.headers_mut();
        map.reserve(headers.len());
        for (name, value) in headers {
            // The value's `String` becomes the header's bytes as it is, without a copy.
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value),
            ) {
                map.append(name, value);
            }
        }
        response
    }
}

pub mod device;
pub mod guard;
pub mod oauth1;

pub use device::device_router;
pub use guard::{Authenticated, BearerGuard, RequireScopesLayer};
pub use latchkey_adapter::{OAuth1Guard, TokioBlocking};
pub use oauth1::oauth1_router;

/// A router with the token endpoint (`/token`), pushed authorization requests (`/par`),
/// revocation (`/revoke`), introspection (`/introspect`), metadata
/// (`/.well-known/oauth-authorization-server`), the JWK Set
/// (`/jwks`), and OpenID Connect's UserInfo (`/userinfo`) and discovery
/// (`/.well-known/openid-configuration`). Mount it with `nest` or `merge`.
pub fn router<S, U>(provider: Provider<S, U>) -> axum::Router
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    use axum::extract::State;
    use latchkey_core::endpoint::metadata::{
        INTROSPECT_PATH, METADATA_PATH, REVOKE_PATH, TOKEN_PATH,
    };
    type St<S, U> = State<Provider<S, U>>;
    axum::Router::new()
        .route(
            TOKEN_PATH,
            any(|State(p): St<S, U>, Extract(req): Extract| async move { Reply(p.token(&req).await) }),
        )
        .route(
            REVOKE_PATH,
            any(|State(p): St<S, U>, Extract(req): Extract| async move { Reply(p.revoke(&req).await) }),
        )
        .route(
            INTROSPECT_PATH,
            any(|State(p): St<S, U>, Extract(req): Extract| async move {
                Reply(p.introspect(&req).await)
            }),
        )
        .route(
            latchkey_core::endpoint::authorize::pushed::PAR_PATH,
            any(|State(p): St<S, U>, Extract(req): Extract| async move {
                Reply(p.pushed_authorization(&req).await)
            }),
        )
        .route(
            METADATA_PATH,
            axum::routing::get(|State(p): St<S, U>| async move { Reply(p.metadata()) }),
        )
        .route(
            latchkey_core::endpoint::userinfo::USERINFO_PATH,
            any(|State(p): St<S, U>, Extract(req): Extract| async move {
                Reply(p.userinfo(&req).await)
            }),
        )
        // OpenID Connect Discovery, and both documents at the RFC 8414 §3.1 inserted path
        // of an issuer with a path (the core checks the rest of the path).
        .route(
            latchkey_core::endpoint::metadata::OPENID_CONFIGURATION_PATH,
            axum::routing::get(discovery::<S, U>),
        )
        .route(
            "/.well-known/openid-configuration/{*issuer_path}",
            axum::routing::get(discovery::<S, U>),
        )
        .route(
            "/.well-known/oauth-authorization-server/{*issuer_path}",
            axum::routing::get(discovery::<S, U>),
        )
        .route(
            latchkey_core::endpoint::jwks::JWKS_PATH,
            axum::routing::get(|State(p): St<S, U>| async move { Reply(p.jwks()) }),
        )
        .with_state(provider)
}

/// A router with dynamic client registration (RFC 7591, RFC 7592): `/register` and the
/// client configuration endpoint `/register/{client_id}`. Merge it beside [`router`] when the
/// provider was built with a registration policy (without one, both answer 404).
pub fn registration_router<S, U>(provider: Provider<S, U>) -> axum::Router
where
    S: ProviderStore + latchkey_core::registration::store::RegistrationStore,
    U: UserAuthenticator,
{
    use axum::extract::{Path, State};
    use latchkey_core::registration::REGISTER_PATH;
    type St<S, U> = State<Provider<S, U>>;
    axum::Router::new()
        .route(
            REGISTER_PATH,
            any(|State(p): St<S, U>, Extract(req): Extract| async move {
                Reply(p.register(&req).await)
            }),
        )
        .route(
            &format!("{REGISTER_PATH}/{{client_id}}"),
            any(
                |State(p): St<S, U>, Path(id): Path<String>, Extract(req): Extract| async move {
                    Reply(p.configure_client(&req, &id).await)
                },
            ),
        )
        .with_state(provider)
}

/// A router serving the OAuth 2.0 Protected Resource Metadata (RFC 9728) of `resources`, each
/// at its well-known path ([`ProtectedResource::metadata_path`], with the resource's path
/// inserted, §3.1). Merge it into the application that hosts the resources, beside routes
/// protected by a guard made with [`latchkey_core::resource::Guard::resource`].
///
/// [`ProtectedResource::metadata_path`]: latchkey_core::resource::metadata::ProtectedResource::metadata_path
pub fn protected_resource_router(
    resources: impl IntoIterator<Item = latchkey_core::resource::metadata::ProtectedResource>,
) -> axum::Router {
    let mut router = axum::Router::new();
    for resource in resources {
        let path = resource.metadata_path();
        let response = resource.to_http();
        router = router.route(
            &path,
            axum::routing::get(move || {
                let response = response.clone();
                async move { Reply(response) }
            }),
        );
    }
    router
}

/// The metadata document at the request's path (see [`Provider::discovery`]).
async fn discovery<S, U>(
    axum::extract::State(p): axum::extract::State<Provider<S, U>>,
    uri: axum::http::Uri,
) -> Reply
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    Reply(p.discovery(uri.path()))
}

/// A router with the authorization endpoint and its pages: `/authorize` (GET and POST, the
/// authorization request by either method), `/login` (POST), `/consent` (GET after login, the
/// consent form's POST), `/logout`, `/end_session` (OpenID Connect RP-Initiated Logout, GET
/// and POST) and `/apps` (the signed-in user's allowed apps). Mount it
/// beside [`router`]; when nesting both under a
/// prefix, give the same prefix as [`latchkey_ui::UiConfig::base_path`].
pub fn authorize_router<S, U, L>(ui: latchkey_ui::Ui<S, U, L>) -> axum::Router
where
    S: ProviderStore,
    U: UserAuthenticator,
    L: latchkey_ui::Login,
{
    use axum::extract::State;
    use axum::routing::{get, post};
    type St<S, U, L> = State<latchkey_ui::Ui<S, U, L>>;
    axum::Router::new()
        .route(
            "/authorize",
            get(|State(ui): St<S, U, L>, Extract(req): Extract| async move {
                Reply(ui.authorize(&req).await)
            })
            .post(|State(ui): St<S, U, L>, Extract(req): Extract| async move {
                Reply(ui.authorize(&req).await)
            }),
        )
        .route(
            "/login",
            post(|State(ui): St<S, U, L>, Extract(req): Extract| async move {
                Reply(ui.login(&req).await)
            }),
        )
        .route(
            latchkey_ui::CONSENT_PATH,
            get(|State(ui): St<S, U, L>, Extract(req): Extract| async move {
                Reply(ui.consent(&req).await)
            })
            .post(|State(ui): St<S, U, L>, Extract(req): Extract| async move {
                Reply(ui.consent(&req).await)
            }),
        )
        .route(
            "/logout",
            get(|State(ui): St<S, U, L>, Extract(req): Extract| async move {
                Reply(ui.logout(&req).await)
            })
            .post(|State(ui): St<S, U, L>, Extract(req): Extract| async move {
                Reply(ui.logout(&req).await)
            }),
        )
        .route(
            latchkey_core::logout::END_SESSION_PATH,
            get(|State(ui): St<S, U, L>, Extract(req): Extract| async move {
                Reply(ui.end_session(&req).await)
            })
            .post(|State(ui): St<S, U, L>, Extract(req): Extract| async move {
                Reply(ui.end_session(&req).await)
            }),
        )
        .route(
            "/apps",
            get(|State(ui): St<S, U, L>, Extract(req): Extract| async move {
                Reply(ui.apps(&req).await)
            })
            .post(|State(ui): St<S, U, L>, Extract(req): Extract| async move {
                Reply(ui.apps(&req).await)
            }),
        )
        .with_state(ui)
}
