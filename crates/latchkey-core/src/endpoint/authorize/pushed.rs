//! Pushed authorization requests (RFC 9126): the client POSTs its authorization parameters to
//! [`PAR_PATH`] over an authenticated back channel and gets a `request_uri` to send the
//! browser to `/authorize` with, so that nothing the user agent could read or alter carries
//! them.
//!
//! The pushed parameters are validated by the one parser of `/authorize` (its `validate`): an
//! error it would redirect is answered here as JSON instead (RFC 9126 §2.3). They are kept as
//! a pending record ([`crate::store::PendingStore`]) whose body is their versioned form-encoded
//! text, for [`crate::config::Config::par_ttl`] seconds.
//!
//! At `/authorize`, a `request_uri` is used only by the client it was pushed by, and only the
//! pushed parameters count (§4). Single use is decided when the request is: the browser may
//! load `/authorize` again while the user logs in or is asked for consent, but issuing the
//! code (or refusing) first removes the record at the version it was loaded at
//! (`take`); of two decisions on one `request_uri`, one finds it gone. The first load gives
//! the record an interaction window ([`INTERACTION_TTL`]), so a slow login does not outlive
//! the `request_uri`; the record carries on in the login flow's signed state
//! ([`super::Pending`]).

use super::request::{Refusal, validate_any};
use super::{AuthorizeOutcome, AuthorizeRequest};
use crate::entropy::random_token;
use crate::error::{ErrorCode, OAuthError};
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::params::Params;
use crate::provider::Provider;
use crate::secret::Digest;
use crate::store::{PendingKind, PendingRecord, ProviderStore};
use crate::token::TOKEN_BYTES;
use crate::user::UserAuthenticator;

/// Where the pushed authorization request endpoint is served, under the issuer.
pub const PAR_PATH: &str = "/par";

/// What every `request_uri` this server issues starts with (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// How long, from the first `/authorize` that loads it, a pushed request waits for the user
/// to log in and decide (seconds).
pub const INTERACTION_TTL: u64 = 600;

/// The version byte in front of a stored body.
const BODY_VERSION: u8 = 1;

/// The longest handle accepted in a `request_uri` (ours are 43 characters).
const MAX_HANDLE: usize = 128;

/// Parameters that authenticate the client at the endpoint: never stored with the request.
const CREDENTIALS: [&str; 3] = ["client_secret", "client_assertion", "client_assertion_type"];

/// The pushed record an authorization request was loaded from, at the version it was loaded
/// at: what [`take`] removes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pushed {
    pub(crate) digest: Digest,
    pub(crate) version: u64,
}

/// Answers one pushed authorization request: `201` with `request_uri` and `expires_in`, or
/// the JSON error.
pub async fn handle<S, U>(p: &Provider<S, U>, req: &HttpRequest) -> HttpResponse
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    match push(p, req).await {
        Ok(response) => response,
        Err(err) => {
            tracing::info!(
                error = err.code().as_str(),
                detail = err.detail().unwrap_or(""),
                "pushed authorization request refused"
            );
            crate::endpoint::refused(p, "par", err)
        }
    }
}

async fn push<S, U>(p: &Provider<S, U>, req: &HttpRequest) -> Result<HttpResponse, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    // RFC 9126 §2: "The client sends the parameters … using the POST method"
    // form-encoded.
    if req.method != Method::Post {
        return Err(OAuthError::invalid_request(
            "the pushed authorization request endpoint accepts only POST",
        )
        .with_status(405)
        .with_header("allow", "POST"));
    }
    if !req.has_form_body() {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    if req.query.contains("client_secret=") {
        return Err(OAuthError::invalid_request(
            "credentials must not be sent in the query string",
        ));
    }
    let params = Params::parse(&req.body)?;
    // §2.1: "The request_uri authorization request parameter is one exception, and it MUST
    // NOT be provided."
    if params.contains("request_uri") {
        return Err(OAuthError::invalid_request(
            "request_uri must not be pushed",
        ));
    }
    // §2: "the authorization server … MUST authenticate the client in the same way as at
    // the token endpoint"; a public client names itself with client_id (§2.1).
    let client = crate::endpoint::token::authenticate_client(p, req, &params).await?;
    if params
        .get("client_id")
        .is_some_and(|id| id != client.id.as_str())
    {
        return Err(OAuthError::invalid_request(
            "client_id is not the authenticated client",
        ));
    }
    // In a block: the serializer is not `Send`, and must be gone before the next await.
    let text = {
        let mut text = form_urlencoded::Serializer::new(String::new());
        if let Some(object) = params.get("request") {
            // RFC 9126 §3: with a request object, the object is the request; it is kept as
            // sent and verified again when loaded (RFC 9101 §6.3: the other parameters
            // do not count).
            text.append_pair("request", object);
        } else {
            for (name, _) in params.iter() {
                if name != "client_id" && !CREDENTIALS.contains(&name) {
                    for value in params.get_all(name) {
                        text.append_pair(name, value);
                    }
                }
            }
        }
        text.append_pair("client_id", client.id.as_str());
        text.finish()
    };
    let stored = Params::parse(text.as_bytes())?;
    // §2.1: "The authorization server MUST process the request … as it would for a normal
    // authorization request": one parser; §2.3: its errors come back here as JSON.
    validate_any(p, &stored, req)
        .await
        .map_err(Refusal::error)?;
    let now = p.clock().now();
    let handle = random_token(p.entropy(), TOKEN_BYTES);
    let ttl = p.config().par_ttl;
    let mut body = Vec::with_capacity(1 + text.len());
    body.push(BODY_VERSION);
    body.extend_from_slice(text.as_bytes());
    let record = PendingRecord {
        digest: Digest::of(handle.as_bytes()),
        lookup: None,
        kind: PendingKind::PushedAuthorization,
        client_id: client.id.clone(),
        body,
        expires_at: now.plus(ttl),
        version: 0,
    };
    p.store().save_pending(&record, now).await?;
    tracing::info!(client_id = %client.id, "authorization request pushed");
    Ok(HttpResponse::json_no_store(
        201,
        &serde_json::json!({
            "request_uri": format!("{REQUEST_URI_PREFIX}{handle}"),
            "expires_in": ttl,
        }),
    ))
}

/// The pushed parameters of a stored body.
fn stored_params(body: &[u8]) -> Option<Params> {
    let (&version, text) = body.split_first()?;
    (version == BODY_VERSION)
        .then(|| Params::parse(text).ok())
        .flatten()
}

/// The authorization request a `request_uri` at `/authorize` stands for. Its errors before
/// the pushed redirect URI is known are pages; later ones go back to the client.
pub(super) async fn load<S, U>(
    p: &Provider<S, U>,
    params: &Params,
    req: &HttpRequest,
) -> Result<AuthorizeRequest, AuthorizeOutcome>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let page = |e: OAuthError| AuthorizeOutcome::ErrorPage(e);
    let unusable = || {
        page(OAuthError::new(
            ErrorCode::InvalidRequestUri,
            "the request_uri is unknown, expired or already used",
        ))
    };
    // §4: "client_id REQUIRED"; a malformed id is refused before it reaches a log line.
    let Some(client_id) = params.get("client_id") else {
        return Err(page(OAuthError::invalid_request("client_id is missing")));
    };
    if crate::client::ClientId::parse(client_id).is_err() {
        return Err(page(OAuthError::invalid_request("malformed client_id")));
    }
    let handle = params
        .get("request_uri")
        .and_then(|uri| uri.strip_prefix(REQUEST_URI_PREFIX))
        .filter(|h| !h.is_empty() && h.len() <= MAX_HANDLE)
        .ok_or_else(unusable)?;
    let digest = Digest::of(handle.as_bytes());
    let now = p.clock().now();
    let kind = PendingKind::PushedAuthorization;
    let record = match p.store().find_pending(kind, &digest, now).await {
        Ok(Some(record)) => record,
        Ok(None) => return Err(unusable()),
        Err(err) => return Err(page(err.into())),
    };
    // §4: the server "MUST … ensure that the request_uri was issued to the client" named.
    // Another client's looks like any unknown one.
    if record.client_id.as_str() != client_id {
        tracing::warn!(client_id, "request_uri presented by another client");
        return Err(unusable());
    }
    let Some(stored) = stored_params(&record.body) else {
        return Err(page(
            OAuthError::server_error().with_detail("unreadable pushed authorization request"),
        ));
    };
    // §4: "the authorization server MUST only use the parameters provided in the pushed
    // authorization request"; everything else in the query is ignored.
    let mut request = validate_any(p, &stored, req)
        .await
        .map_err(|refusal| refusal.outcome(p))?;
    let version = if record.version == 0 {
        claim(p, record, now).await.map_err(|err| match err {
            Some(err) => page(err),
            None => unusable(),
        })?
    } else {
        record.version
    };
    request.pushed = Some(Pushed { digest, version });
    Ok(request)
}

/// Moves a record loaded for the first time to version 1, living for the interaction window;
/// the version the request then carries. `Err(None)`: it vanished meanwhile.
async fn claim<S, U>(
    p: &Provider<S, U>,
    record: PendingRecord,
    now: crate::clock::UnixTime,
) -> Result<u64, Option<OAuthError>>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let kind = record.kind;
    let digest = record.digest;
    let window = now.plus(INTERACTION_TTL);
    let claimed = PendingRecord {
        expires_at: if window > record.expires_at {
            window
        } else {
            record.expires_at
        },
        version: 1,
        ..record
    };
    match p.store().replace_pending(&claimed, now).await {
        Ok(true) => Ok(1),
        // A second load claimed it first (a double click): use its version.
        Ok(false) => match p.store().find_pending(kind, &digest, now).await {
            Ok(Some(current)) if current.version > 0 => Ok(current.version),
            Ok(_) => Err(None),
            Err(err) => Err(Some(err.into())),
        },
        Err(err) => Err(Some(err.into())),
    }
}

/// Uses up the pushed request `request` came from, before it is decided: of several
/// decisions on one `request_uri`, only the first goes on (RFC 9126 §4: one-time use).
/// Requests that were not pushed pass.
pub(super) async fn take<S, U>(
    p: &Provider<S, U>,
    request: &AuthorizeRequest,
) -> Result<(), AuthorizeOutcome>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let Some(pushed) = request.pushed else {
        return Ok(());
    };
    let now = p.clock().now();
    let kind = PendingKind::PushedAuthorization;
    match p
        .store()
        .remove_pending(kind, &pushed.digest, pushed.version, now)
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::warn!(client_id = %request.client.id, "request_uri used twice");
            Err(AuthorizeOutcome::ErrorPage(OAuthError::new(
                ErrorCode::InvalidRequestUri,
                "the request_uri is unknown, expired or already used",
            )))
        }
        Err(err) => Err(super::error_redirect(p, request, &err.into())),
    }
}

/// Whether `client` may start an authorization only with a pushed request (RFC 9126 §5, §6).
pub(super) fn required<S, U>(p: &Provider<S, U>, client: &crate::client::Client) -> bool
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    p.config().require_pushed_authorization_requests
        || client.metadata.require_pushed_authorization_requests
}
