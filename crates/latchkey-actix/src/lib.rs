//! # latchkey-actix
//!
//! The actix-web adapter for Latchkey. actix-web 4 is built on `http` 0.2 while axum is on
//! 1.x, which is why the core speaks only its own [`HttpRequest`] and [`HttpResponse`]. This
//! crate has the same three steps as `latchkey-axum` and no more: extract an owned
//! [`HttpRequest`] from actix's request ([`Extract`]), call the [`Provider`], and convert the
//! [`HttpResponse`] back ([`Reply`]). [`configure`] and [`configure_authorize`] mount the
//! endpoints so any actix application can `configure` them, at the root or in a `web::scope`.
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use latchkey_actix::{TokioBlocking, configure};
//! use latchkey_core::prelude::*;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MemoryStore::new();
//! let users = StoreUsers::new(store.clone(), TokioBlocking::default());
//! let provider = Provider::builder(store, users)
//!     .issuer("https://auth.example.com")
//!     .build()?;
//! HttpServer::new(move || {
//!     App::new().service(web::scope("/oauth2").configure(configure(provider.clone())))
//! })
//! .bind("127.0.0.1:8080")?
//! .run()
//! .await?;
//! # Ok(())
//! # }
//! ```

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpMessage, Responder, web};
use latchkey_core::endpoint::metadata::{
    INTROSPECT_PATH, METADATA_PATH, OPENID_CONFIGURATION_PATH, REVOKE_PATH, TOKEN_PATH,
};
use latchkey_core::http::{HeaderError, HttpRequest, HttpResponse, Method, collect_headers};
use latchkey_core::mtls::ClientCertificate;
use latchkey_core::params::MAX_FORM_BYTES;
use latchkey_core::prelude::{OAuthError, Provider};
use latchkey_core::store::ProviderStore;
use latchkey_core::user::UserAuthenticator;
use latchkey_ui::{Login, Ui};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub mod device;
pub mod guard;

pub use device::configure_device;
pub use guard::{Authenticated, BearerGuard, RequireScopes, RequireScopesMiddleware};
pub use latchkey_adapter::TokioBlocking;

/// Marks a request as received over TLS. A server that terminates TLS (or trusts a proxy
/// that did) inserts it as a request extension, or as connection data from
/// `HttpServer::on_connect`; the core then knows the transport was safe.
#[derive(Clone, Copy, Debug)]
pub struct Tls;

/// The owned, framework-free request, extracted from actix's.
///
/// The body is read up to [`MAX_FORM_BYTES`]; a larger one is refused with an RFC 6749
/// `invalid_request` (413), never buffered.
#[derive(Debug)]
pub struct Extract(pub HttpRequest);

impl FromRequest for Extract {
    type Error = actix_web::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(req: &actix_web::HttpRequest, payload: &mut Payload) -> Self::Future {
        let head = head_request(req);
        let body = web::Payload::from_request(req, payload);
        Box::pin(async move {
            let mut request = head.map_err(|err| {
                rejection(OAuthError::invalid_request(err.description()).to_response(None))
            })?;
            let body = body.await?;
            request.body = match body.to_bytes_limited(MAX_FORM_BYTES).await {
                Ok(Ok(bytes)) => bytes.to_vec(),
                Ok(Err(_)) => {
                    return Err(rejection(
                        OAuthError::invalid_request("the request body could not be read")
                            .to_response(None),
                    ));
                }
                Err(_) => {
                    return Err(rejection(
                        OAuthError::invalid_request("request body is too large")
                            .with_status(413)
                            .to_response(None),
                    ));
                }
            };
            Ok(Self(request))
        })
    }
}

/// The request's head as the core sees it, with an empty body: all a bearer check needs.
/// Headers the core refuses (see [`collect_headers`]) are an error.
pub(crate) fn head_request(req: &actix_web::HttpRequest) -> Result<HttpRequest, HeaderError> {
    let headers = collect_headers(
        req.headers()
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_bytes())),
    )?;
    let tls = req.extensions().get::<Tls>().is_some() || req.conn_data::<Tls>().is_some();
    Ok(HttpRequest {
        method: Method::parse(req.method().as_str()),
        path: req.path().to_owned(),
        query: req.query_string().to_owned(),
        headers,
        body: Vec::new(),
        peer: req.peer_addr(),
        tls,
        // No transport rule of its own here: only TLS counts.
        transport_allowed: tls,
        // Set by the application's `on_connect` (connection data) or a middleware (request
        // extension), from its TLS stream's peer certificate.
        client_cert: req
            .extensions()
            .get::<Arc<ClientCertificate>>()
            .cloned()
            .or_else(|| req.conn_data::<Arc<ClientCertificate>>().cloned()),
    })
}

/// The core's response, as an actix response.
#[derive(Debug)]
pub struct Reply(pub HttpResponse);

impl Reply {
    /// The actix response, outside of a handler (middleware, extractor rejections).
    pub fn into_actix(self) -> actix_web::HttpResponse {
        let HttpResponse {
            status,
            headers,
            body,
        } = self.0;
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = actix_web::HttpResponse::with_body(status, body);
        let map = response.headers_mut();
        for (name, value) in headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value.as_str()),
            ) {
                map.append(name, value);
            }
        }
        response.map_into_boxed_body()
    }
}

impl Responder for Reply {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _req: &actix_web::HttpRequest) -> actix_web::HttpResponse {
        self.into_actix()
    }
}

/// An extractor's refusal that answers with the core's response as it is.
pub(crate) fn rejection(response: HttpResponse) -> actix_web::Error {
    let status = response.status;
    actix_web::error::InternalError::from_response(
        format!("request refused with {status}"),
        Reply(response).into_actix(),
    )
    .into()
}

/// Mounts the token endpoint (`/token`), pushed authorization requests (`/par`), revocation
/// (`/revoke`), introspection
/// (`/introspect`), metadata (`/.well-known/oauth-authorization-server`), the JWK Set
/// (`/jwks`), OpenID Connect's UserInfo (`/userinfo`) and discovery
/// (`/.well-known/openid-configuration`), for
/// `App::configure` or `web::scope(..).configure`. The endpoints take any method: the core
/// answers a wrong one with 405 itself.
pub fn configure<S, U>(provider: Provider<S, U>) -> impl FnOnce(&mut web::ServiceConfig)
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    move |cfg| {
        cfg.app_data(web::Data::new(provider))
            .route(TOKEN_PATH, web::route().to(token::<S, U>))
            .route(
                latchkey_core::endpoint::authorize::pushed::PAR_PATH,
                web::route().to(pushed_authorization::<S, U>),
            )
            .route(REVOKE_PATH, web::route().to(revoke::<S, U>))
            .route(INTROSPECT_PATH, web::route().to(introspect::<S, U>))
            .route(METADATA_PATH, web::get().to(metadata::<S, U>))
            .route(
                latchkey_core::endpoint::jwks::JWKS_PATH,
                web::get().to(jwks::<S, U>),
            )
            .route(
                latchkey_core::endpoint::userinfo::USERINFO_PATH,
                web::route().to(userinfo::<S, U>),
            )
            .route(OPENID_CONFIGURATION_PATH, web::get().to(openid::<S, U>))
            // RFC 8414 §3.1: both documents at the issuer's path inserted after them.
            .route(
                "/.well-known/openid-configuration/{issuer_path:.*}",
                web::get().to(inserted::<S, U>),
            )
            .route(
                "/.well-known/oauth-authorization-server/{issuer_path:.*}",
                web::get().to(inserted::<S, U>),
            );
    }
}

/// Mounts the OAuth 2.0 Protected Resource Metadata (RFC 9728) of `resources`, each at its
/// well-known path ([`ProtectedResource::metadata_path`], with the resource's path inserted,
/// §3.1), for `App::configure`. Use it in the application that hosts the resources, beside
/// routes protected by a guard made with [`latchkey_core::resource::Guard::resource`].
///
/// [`ProtectedResource::metadata_path`]: latchkey_core::resource::metadata::ProtectedResource::metadata_path
pub fn configure_protected_resources(
    resources: impl IntoIterator<Item = latchkey_core::resource::metadata::ProtectedResource>,
) -> impl FnOnce(&mut web::ServiceConfig) {
    let resources: Vec<_> = resources.into_iter().collect();
    move |cfg| {
        for resource in resources {
            let response = resource.to_http();
            cfg.route(
                &resource.metadata_path(),
                web::get().to(move || {
                    let response = response.clone();
                    async move { Reply(response) }
                }),
            );
        }
    }
}

async fn token<S: ProviderStore, U: UserAuthenticator>(
    p: web::Data<Provider<S, U>>,
    Extract(req): Extract,
) -> Reply {
    Reply(p.token(&req).await)
}

async fn pushed_authorization<S: ProviderStore, U: UserAuthenticator>(
    p: web::Data<Provider<S, U>>,
    Extract(req): Extract,
) -> Reply {
    Reply(p.pushed_authorization(&req).await)
}

async fn revoke<S: ProviderStore, U: UserAuthenticator>(
    p: web::Data<Provider<S, U>>,
    Extract(req): Extract,
) -> Reply {
    Reply(p.revoke(&req).await)
}

async fn introspect<S: ProviderStore, U: UserAuthenticator>(
    p: web::Data<Provider<S, U>>,
    Extract(req): Extract,
) -> Reply {
    Reply(p.introspect(&req).await)
}

async fn metadata<S: ProviderStore, U: UserAuthenticator>(p: web::Data<Provider<S, U>>) -> Reply {
    Reply(p.metadata())
}

async fn jwks<S: ProviderStore, U: UserAuthenticator>(p: web::Data<Provider<S, U>>) -> Reply {
    Reply(p.jwks())
}

async fn userinfo<S: ProviderStore, U: UserAuthenticator>(
    p: web::Data<Provider<S, U>>,
    Extract(req): Extract,
) -> Reply {
    Reply(p.userinfo(&req).await)
}

async fn openid<S: ProviderStore, U: UserAuthenticator>(p: web::Data<Provider<S, U>>) -> Reply {
    Reply(p.discovery(OPENID_CONFIGURATION_PATH))
}

/// A well-known document at an inserted issuer path: the core checks the path.
async fn inserted<S: ProviderStore, U: UserAuthenticator>(
    p: web::Data<Provider<S, U>>,
    req: actix_web::HttpRequest,
) -> Reply {
    let tail = req.match_info().get("issuer_path").unwrap_or("");
    let well_known = if req.path().contains(OPENID_CONFIGURATION_PATH) {
        OPENID_CONFIGURATION_PATH
    } else {
        METADATA_PATH
    };
    Reply(p.discovery(&format!("{well_known}/{tail}")))
}

/// Mounts the authorization endpoint and its pages: `/authorize` (GET and POST, the
/// authorization request by either method), `/login` (POST), `/consent` (GET after login, the
/// consent form's POST), `/logout` (GET and POST), `/end_session` (OpenID Connect
/// RP-Initiated Logout, GET and POST) and `/apps` (GET and POST: the signed-in
/// user's allowed apps). Configure it beside [`configure`]; when both sit in a
/// `web::scope`, give the same prefix as [`latchkey_ui::UiConfig::base_path`].
pub fn configure_authorize<S, U, L>(ui: Ui<S, U, L>) -> impl FnOnce(&mut web::ServiceConfig)
where
    S: ProviderStore,
    U: UserAuthenticator,
    L: Login,
{
    move |cfg| {
        cfg.app_data(web::Data::new(ui))
            .service(
                web::resource("/authorize")
                    .route(web::get().to(authorize::<S, U, L>))
                    .route(web::post().to(authorize::<S, U, L>)),
            )
            .service(web::resource("/login").route(web::post().to(login::<S, U, L>)))
            .service(
                web::resource(latchkey_ui::CONSENT_PATH)
                    .route(web::get().to(consent::<S, U, L>))
                    .route(web::post().to(consent::<S, U, L>)),
            )
            .service(
                web::resource("/logout")
                    .route(web::get().to(logout::<S, U, L>))
                    .route(web::post().to(logout::<S, U, L>)),
            )
            .service(
                web::resource(latchkey_core::logout::END_SESSION_PATH)
                    .route(web::get().to(end_session::<S, U, L>))
                    .route(web::post().to(end_session::<S, U, L>)),
            )
            .service(
                web::resource("/apps")
                    .route(web::get().to(apps::<S, U, L>))
                    .route(web::post().to(apps::<S, U, L>)),
            );
    }
}

async fn authorize<S: ProviderStore, U: UserAuthenticator, L: Login>(
    ui: web::Data<Ui<S, U, L>>,
    Extract(req): Extract,
) -> Reply {
    Reply(ui.authorize(&req).await)
}

async fn login<S: ProviderStore, U: UserAuthenticator, L: Login>(
    ui: web::Data<Ui<S, U, L>>,
    Extract(req): Extract,
) -> Reply {
    Reply(ui.login(&req).await)
}

async fn consent<S: ProviderStore, U: UserAuthenticator, L: Login>(
    ui: web::Data<Ui<S, U, L>>,
    Extract(req): Extract,
) -> Reply {
    Reply(ui.consent(&req).await)
}

async fn logout<S: ProviderStore, U: UserAuthenticator, L: Login>(
    ui: web::Data<Ui<S, U, L>>,
    Extract(req): Extract,
) -> Reply {
    Reply(ui.logout(&req).await)
}

async fn end_session<S: ProviderStore, U: UserAuthenticator, L: Login>(
    ui: web::Data<Ui<S, U, L>>,
    Extract(req): Extract,
) -> Reply {
    Reply(ui.end_session(&req).await)
}

async fn apps<S: ProviderStore, U: UserAuthenticator, L: Login>(
    ui: web::Data<Ui<S, U, L>>,
    Extract(req): Extract,
) -> Reply {
    Reply(ui.apps(&req).await)
}

/// Mounts the OAuth 1.0a endpoints (RFC 5849): `POST /oauth1/request_token`,
/// `GET`/`POST /oauth1/authorize` and `POST /oauth1/login` (on `ui`'s login and consent
/// pages), `POST /oauth1/access_token` and `POST /oauth1/revoke`. Configure it beside
/// [`configure_authorize`], with the same prefix.
pub fn configure_oauth1<S, U, L, O>(
    oauth1: latchkey_oauth1::OAuth1Provider<O>,
    ui: Ui<S, U, L>,
) -> impl FnOnce(&mut web::ServiceConfig)
where
    S: ProviderStore,
    U: UserAuthenticator,
    L: Login,
    O: latchkey_core::store::ClientStore + latchkey_oauth1::OAuth1Store,
{
    use latchkey_oauth1::provider::{
        ACCESS_TOKEN_PATH, AUTHORIZE_PATH, REQUEST_TOKEN_PATH, REVOKE_PATH,
    };
    move |cfg| {
        let state = web::Data::new((oauth1, ui));
        cfg.service(
            web::resource(REQUEST_TOKEN_PATH)
                .app_data(state.clone())
                .route(web::post().to(oauth1_request_token::<S, U, L, O>)),
        )
        .service(
            web::resource(AUTHORIZE_PATH)
                .app_data(state.clone())
                .route(web::get().to(oauth1_authorize::<S, U, L, O>))
                .route(web::post().to(oauth1_authorize::<S, U, L, O>)),
        )
        .service(
            web::resource(latchkey_ui::oauth1::LOGIN_PATH)
                .app_data(state.clone())
                .route(web::post().to(oauth1_login::<S, U, L, O>)),
        )
        .service(
            web::resource(ACCESS_TOKEN_PATH)
                .app_data(state.clone())
                .route(web::post().to(oauth1_access_token::<S, U, L, O>)),
        )
        .service(
            web::resource(REVOKE_PATH)
                .app_data(state)
                .route(web::post().to(oauth1_revoke::<S, U, L, O>)),
        );
    }
}

type OAuth1State<S, U, L, O> = web::Data<(latchkey_oauth1::OAuth1Provider<O>, Ui<S, U, L>)>;

async fn oauth1_request_token<S, U, L, O>(
    state: OAuth1State<S, U, L, O>,
    Extract(req): Extract,
) -> Reply
where
    S: ProviderStore,
    U: UserAuthenticator,
    L: Login,
    O: latchkey_core::store::ClientStore + latchkey_oauth1::OAuth1Store,
{
    Reply(state.0.request_token(&req).await)
}

async fn oauth1_authorize<S, U, L, O>(
    state: OAuth1State<S, U, L, O>,
    Extract(req): Extract,
) -> Reply
where
    S: ProviderStore,
    U: UserAuthenticator,
    L: Login,
    O: latchkey_core::store::ClientStore + latchkey_oauth1::OAuth1Store,
{
    Reply(state.1.oauth1_authorize(&state.0, &req).await)
}

async fn oauth1_login<S, U, L, O>(state: OAuth1State<S, U, L, O>, Extract(req): Extract) -> Reply
where
    S: ProviderStore,
    U: UserAuthenticator,
    L: Login,
    O: latchkey_core::store::ClientStore + latchkey_oauth1::OAuth1Store,
{
    Reply(state.1.oauth1_login(&state.0, &req).await)
}

async fn oauth1_access_token<S, U, L, O>(
    state: OAuth1State<S, U, L, O>,
    Extract(req): Extract,
) -> Reply
where
    S: ProviderStore,
    U: UserAuthenticator,
    L: Login,
    O: latchkey_core::store::ClientStore + latchkey_oauth1::OAuth1Store,
{
    Reply(state.0.access_token(&req).await)
}

async fn oauth1_revoke<S, U, L, O>(state: OAuth1State<S, U, L, O>, Extract(req): Extract) -> Reply
where
    S: ProviderStore,
    U: UserAuthenticator,
    L: Login,
    O: latchkey_core::store::ClientStore + latchkey_oauth1::OAuth1Store,
{
    Reply(state.0.revoke(&req).await)
}
