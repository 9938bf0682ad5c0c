//! Token revocation (RFC 7009).
//!
//! A client revokes its own access or refresh tokens. Revoking a refresh token revokes every
//! token of its grant family (RFC 7009 §2.1: the server "SHOULD also invalidate all access
//! tokens based on the same authorization grant"). An unknown or already-dead token, and a
//! token issued to another client, is answered with 200 and nothing is revoked, so the client
//! cannot tell them apart and need not care (§2.2).

use crate::endpoint::token::authenticate_client;
use crate::error::OAuthError;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::params::Params;
use crate::provider::Provider;
use crate::secret::Secret;
use crate::store::ProviderStore;
use crate::token::TokenKind;
use crate::user::UserAuthenticator;

/// Answers one revocation request.
pub async fn handle<S, U>(p: &Provider<S, U>, req: &HttpRequest) -> HttpResponse
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    match revoke(p, req).await {
        Ok(()) => HttpResponse {
            status: 200,
            headers: vec![("cache-control".into(), "no-store".into())],
            body: Vec::new(),
        },
        Err(err) => super::refused(p, "revoke", err),
    }
}

async fn revoke<S, U>(p: &Provider<S, U>, req: &HttpRequest) -> Result<(), OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let params = form_post(req, "the revocation endpoint accepts only POST")?;
    let client = authenticate_client(p, req, &params).await?;
    let token = Secret::new(params.require("token")?);
    // RFC 7009 §2.1: the hint is only a hint; an unknown value is ignored and every token
    // type is searched anyway (the digest identifies the token whatever its kind).
    let Some(record) = p.store().find_token(&token.digest()).await? else {
        return Ok(());
    };
    // RFC 7009 §2.1: the server "verifies whether the token was issued to the client making
    // the revocation request"; §2.2: "invalid tokens do not cause an error response". Another
    // client's token is answered like an unknown one (200, nothing revoked), so a client can
    // neither revoke nor probe tokens that are not its own.
    if record.client_id != client.id {
        tracing::info!(client_id = %client.id, "revocation of another client's token ignored");
        return Ok(());
    }
    let revoked = match record.kind {
        TokenKind::Refresh => p.store().revoke_family(&record.family).await?,
        TokenKind::Access => u64::from(p.store().revoke_token(&record.digest).await?),
    };
    p.emit(crate::events::Event::TokenRevoked {
        client_id: client.id.to_string(),
        kind: record.kind,
        revoked,
    });
    Ok(())
}

/// Parses the form body of a POST-only endpoint, with the RFC error for anything else.
pub(crate) fn form_post(
    req: &HttpRequest,
    wrong_method: &'static str,
) -> Result<Params, OAuthError> {
    if req.method != Method::Post {
        return Err(OAuthError::invalid_request(wrong_method)
            .with_status(405)
            .with_header("allow", "POST"));
    }
    if !req.has_form_body() {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    Params::parse(&req.body)
}
