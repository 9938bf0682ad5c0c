//! The device authorization endpoint (RFC 8628 §3.1, §3.2): an authenticated client allowed
//! the device grant gets a `device_code`, a `user_code`, where to enter it, and how often it
//! may poll.

use super::{DeviceState, EXPIRED_GRACE, VERIFICATION_PATH};
use crate::client::{Client, GrantType};
use crate::entropy::random_token;
use crate::error::{ErrorCode, OAuthError};
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::params::Params;
use crate::provider::Provider;
use crate::scope::{ScopeSet, resolve};
use crate::secret::Secret;
use crate::store::{PendingKind, PendingRecord, PendingStore, ProviderStore, StoreErrorKind};
use crate::user::UserAuthenticator;
use serde_json::json;

/// The device authorization endpoint's path below the issuer.
pub const DEVICE_AUTHORIZATION_PATH: &str = "/device_authorization";

/// How many times a new pair of codes is drawn when a live record already has one of them
/// (a user-code collision; with 8 characters, rare while few codes are live).
const DRAWS: usize = 4;

/// A device authorization just made: what the device is told.
#[derive(Debug)]
pub struct DeviceAuthorization {
    /// The device's secret handle for polling (RFC 8628 §3.2 `device_code`).
    pub device_code: Secret,
    /// The code the user types, as shown (`WDJB-MJHT`).
    pub user_code: String,
    /// Where the user types it.
    pub verification_uri: String,
    /// The same, with the code filled in; the page still asks the user to confirm it
    /// (RFC 8628 §5.4).
    pub verification_uri_complete: String,
    /// Seconds until both codes expire.
    pub expires_in: u64,
    /// Seconds the device waits between polls.
    pub interval: u64,
}

impl DeviceAuthorization {
    /// The RFC 8628 §3.2 JSON response, not to be cached.
    pub fn to_http(&self) -> HttpResponse {
        HttpResponse::json_no_store(
            200,
            &json!({
                "device_code": self.device_code.expose(),
                "user_code": self.user_code,
                "verification_uri": self.verification_uri,
                "verification_uri_complete": self.verification_uri_complete,
                "expires_in": self.expires_in,
                "interval": self.interval,
            }),
        )
    }
}

/// Answers one device authorization request.
pub async fn handle<S, U>(p: &Provider<S, U>, req: &HttpRequest) -> HttpResponse
where
    S: ProviderStore + PendingStore,
    U: UserAuthenticator,
{
    match authorize(p, req).await {
        Ok(authorization) => authorization.to_http(),
        Err(err) => {
            tracing::debug!(
                error = err.code().as_str(),
                detail = err.detail().unwrap_or(""),
                "device authorization refused"
            );
            crate::endpoint::refused(p, "device_authorization", err)
        }
    }
}

async fn authorize<S, U>(
    p: &Provider<S, U>,
    req: &HttpRequest,
) -> Result<DeviceAuthorization, OAuthError>
where
    S: ProviderStore + PendingStore,
    U: UserAuthenticator,
{
    // RFC 8628 §3.1: "the client makes an HTTP "POST" request ... using the
    // "application/x-www-form-urlencoded" format".
    if req.method != Method::Post {
        return Err(OAuthError::invalid_request(
            "the device authorization endpoint accepts only POST",
        )
        .with_status(405)
        .with_header("allow", "POST"));
    }
    if !req.has_form_body() {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    if !p.config().grant_enabled(GrantType::DeviceCode) {
        return Err(OAuthError::new(
            ErrorCode::UnsupportedGrantType,
            "the device grant is not enabled on this server",
        )
        .with_status(404));
    }
    let params = Params::parse(&req.body)?;
    if req.query.contains("client_secret=") {
        return Err(OAuthError::invalid_request(
            "credentials must not be sent in the query string",
        ));
    }
    // RFC 8628 §3.1: client authentication as at the token endpoint, for confidential
    // clients; a public client names itself with `client_id`.
    let client = crate::endpoint::token::authenticate_client(p, req, &params).await?;
    // RFC 8628 §3.1 refers to RFC 6749 §5.2: a client not allowed the grant.
    if !client.allows(GrantType::DeviceCode) {
        return Err(OAuthError::unauthorized_client(
            "this client is not allowed the device grant",
        ));
    }
    let requested = params.get("scope").map(ScopeSet::parse).transpose()?;
    let scope = resolve(
        requested.as_ref(),
        p.allowed_scopes(&client),
        p.default_scopes(&client),
    )?;
    // RFC 8707 §2 on the device authorization request (RFC 8628 §3.1 takes the
    // authorization request's parameters): each `resource` must be registered and allowed to
    // the client, else `invalid_target`; the scope stays within what they accept.
    let resources = crate::indicator::requested(&params)?;
    let (audience, scope) = p.resources_for(&resources).await?.target(
        &client,
        &resources,
        scope,
        requested.is_some(),
    )?;
    start(p, &client, scope, audience).await
}

/// Makes a device authorization for `client` (already authenticated and allowed the grant)
/// with the checked `scope` and `audience` (the resources asked for, checked), and stores it.
pub async fn start<S, U>(
    p: &Provider<S, U>,
    client: &Client,
    scope: ScopeSet,
    audience: crate::indicator::AudienceSet,
) -> Result<DeviceAuthorization, OAuthError>
where
    S: ProviderStore + PendingStore,
    U: UserAuthenticator,
{
    let settings = &p.config().device;
    let now = p.clock().now();
    let expires_at = now.plus(settings.lifetime);
    let state = DeviceState::new(scope, expires_at, settings.interval).for_audience(audience);
    for _ in 0..DRAWS {
        let device_code = Secret::new(random_token(p.entropy(), 32));
        let user_code = super::new_user_code(p.entropy(), settings.user_code_length);
        let record = PendingRecord {
            digest: device_code.digest(),
            lookup: Some(super::user_code_digest(&user_code)),
            kind: PendingKind::DeviceAuthorization,
            client_id: client.id.clone(),
            body: state.encode(),
            expires_at: expires_at.plus(EXPIRED_GRACE),
            version: 0,
        };
        match p.store().save_pending(&record, now).await {
            Ok(()) => {}
            Err(err) if err.kind() == StoreErrorKind::Conflict => continue,
            Err(err) => return Err(err.into()),
        }
        let verification_uri = verification_uri(p);
        let shown = super::display_user_code(&user_code);
        let complete = format!(
            "{verification_uri}?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("user_code", &shown)
                .finish()
        );
        tracing::info!(client_id = %client.id, "device authorization started");
        return Ok(DeviceAuthorization {
            device_code,
            user_code: shown,
            verification_uri,
            verification_uri_complete: complete,
            expires_in: settings.lifetime,
            interval: settings.interval,
        });
    }
    Err(OAuthError::temporarily_unavailable()
        .with_detail("no free user code after several draws; too many live device codes"))
}

/// Where users enter codes: the configured page, or the built-in one below the issuer.
pub fn verification_uri<S, U>(p: &Provider<S, U>) -> String
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let c = p.config();
    c.device
        .verification_uri
        .clone()
        .unwrap_or_else(|| format!("{}{VERIFICATION_PATH}", c.issuer))
}
