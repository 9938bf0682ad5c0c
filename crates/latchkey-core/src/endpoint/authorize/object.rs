//! The `request` parameter at `/authorize` and at the PAR endpoint: turns a signed request
//! object (RFC 9101, verified by [`crate::jar`]) into the authorization parameters that
//! [`super::request::validate`] then checks like any other, and decides whether a client
//! must send one (RFC 9101 §10.5 `require_signed_request_object`).

use crate::client::Client;
use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;
use crate::provider::Provider;
use crate::store::ProviderStore;
use crate::user::UserAuthenticator;

/// The authorization parameters `params` stand for: `None` when they hold no request object,
/// else the parameters of the verified object (merged with the outside ones only for an
/// OpenID Connect request; see [`crate::jar`]). Errors are shown to the user, never
/// redirected: the redirect URI inside an unverified object is not trusted.
pub(super) async fn resolve<S, U>(
    p: &Provider<S, U>,
    params: &Params,
) -> Result<Option<Params>, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let Some(jwt) = params.get("request") else {
        return Ok(None);
    };
    let config = &p.config().request_objects;
    if !config.enabled {
        // OpenID Connect Core §3.1.2.6.
        return Err(OAuthError::new(
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    // RFC 9101 §5: "request and request_uri parameters MUST NOT be included in the same
    // request".
    if params.contains("request_uri") {
        return Err(OAuthError::invalid_request(
            "request and request_uri must not both be sent",
        ));
    }
    // §5: client_id is REQUIRED outside the object; it names the client whose keys sign.
    let Some(client_id) = params.get("client_id") else {
        return Err(OAuthError::invalid_request("client_id is missing"));
    };
    if crate::client::ClientId::parse(client_id).is_err() {
        return Err(OAuthError::invalid_request("malformed client_id"));
    }
    let client = match p.store().get_client(client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => return Err(OAuthError::invalid_request("unknown client_id")),
        Err(err) => return Err(err.into()),
    };
    let cx = crate::jar::Context {
        issuer: &p.config().issuer,
        config,
        now: p.clock().now(),
    };
    let mut claims = crate::jar::verify(jwt, &client, p.assertion_keys(), &cx)
        .await
        .inspect_err(|err| {
            tracing::info!(
                client_id = %client.id,
                detail = err.detail().or(err.description()).unwrap_or(""),
                "request object refused"
            );
        })?;
    claims
        .entry("client_id")
        .or_insert_with(|| client_id.into());
    // OpenID Connect Core §6.1: an OpenID request must carry scope=openid outside the object,
    // and then the outside parameters count where the object does not supersede them; its
    // response_type "MUST match" the object's. RFC 9101 §6.3 for every other request: only
    // the object's parameters are used.
    let openid = p.config().oidc
        && params
            .get("scope")
            .is_some_and(|s| s.split(' ').any(|v| v == "openid"));
    if openid
        && let (Some(outside), Some(inside)) = (
            params.get("response_type"),
            claims.get("response_type").and_then(|v| v.as_str()),
        )
        && outside != inside
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidRequestObject,
            "response_type differs inside and outside the request object",
        ));
    }
    crate::jar::to_params(&claims, openid.then_some(params)).map(Some)
}

/// Whether `client` may start an authorization only with a signed request object: the
/// server's setting or the client's `require_signed_request_object` metadata.
pub(super) fn required<S, U>(p: &Provider<S, U>, client: &Client) -> bool
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    p.config().request_objects.required || client.metadata.require_signed_request_object
}
