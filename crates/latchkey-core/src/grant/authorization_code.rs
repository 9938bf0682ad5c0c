//! The authorization code grant at the token endpoint (RFC 6749 §4.1.3) with PKCE
//! (RFC 7636 §4.6).
//!
//! The code is taken first, atomically, and only by the client it was issued to (the store
//! applies [`crate::store::code_verdict`]): a code presented by another client is neither
//! consumed nor counted as a replay, so whoever intercepts a code cannot burn it or get its
//! owner's tokens revoked. Once its own client presents it, it is never usable again, and a
//! second presentation by that client revokes every token issued from it (RFC 6749 §4.1.2:
//! "the authorization server ... SHOULD revoke (when possible) all tokens previously issued
//! based on that authorization code").

use crate::client::{Client, GrantType};
use crate::error::OAuthError;
use crate::events::Event;
use crate::oidc::{self, id_token};
use crate::pkce;
use crate::proto::TokenResponse;
use crate::provider::Provider;
use crate::redirect::RegisteredRedirectUri;
use crate::secret::Secret;
use crate::store::{CodeTake, ProviderStore};
use crate::token::{Binding, Confirmation, Grant};
use crate::user::UserAuthenticator;

/// Exchanges an authorization code for tokens.
#[allow(clippy::too_many_arguments)] // the token request's parts, as every grant takes them
pub async fn exchange<S, U>(
    p: &Provider<S, U>,
    client: &Client,
    code: &Secret,
    redirect_uri: Option<&str>,
    code_verifier: Option<&str>,
    resources: &[crate::indicator::ResourceUri],
    binding: Option<Binding>,
    cnf: Option<Confirmation>,
) -> Result<TokenResponse, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let invalid = |why: &'static str| OAuthError::invalid_grant(why);
    let now = p.clock().now();
    let record = match p.store().take_code(&code.digest(), &client.id, now).await? {
        CodeTake::Taken(record) => record,
        // Unknown, expired, or issued to another client (RFC 6749 §4.1.3); the code is left
        // as it was.
        CodeTake::Invalid => return Err(invalid("the authorization code is invalid or expired")),
        CodeTake::Replayed { family } => {
            let revoked = p.store().revoke_family(&family).await?;
            tracing::warn!(client_id = %client.id, family = %family.0, revoked, "authorization code replayed; tokens revoked");
            p.emit(Event::CodeReplayed {
                client_id: client.id.to_string(),
                family: family.0,
            });
            return Err(invalid("the authorization code was already used"));
        }
    };
    // RFC 6749 §4.1.3: the redirect URI must be repeated as the authorization request sent it.
    RegisteredRedirectUri::issued(record.redirect_uri, record.redirect_uri_sent)
        .confirm(redirect_uri)?;
    // RFC 7636 §4.6: the verifier must answer the code's challenge; none without one.
    pkce::confirm(record.challenge.as_ref(), code_verifier)?;
    // RFC 8707 §2.2: the exchange may name a subset of the resources authorized; a code
    // authorized for none may name resources the client may ask for.
    let (audience, scope) = if record.audience.is_empty() {
        p.resources_for(resources)
            .await?
            .target(client, resources, record.scope, false)?
    } else {
        (
            crate::indicator::narrow(&record.audience, resources)?,
            record.scope,
        )
    };
    // The refresh token keeps every resource, for later refreshes to choose from.
    let refresh_audience = (audience != record.audience && !record.audience.is_empty())
        .then(|| record.audience.clone());
    // RFC 9449 §10: a code bound with `dpop_jkt` is exchanged only with a proof of that key.
    //
    // Order: the code is taken (used up) before this check, as before the PKCE check above,
    // on purpose. RFC 9449 §10 asks only that the keys match, not that a refused exchange
    // leave the code usable; RFC 7636 §4.6 is silent on it too. Whoever presents a code with
    // the wrong verifier or key has the code itself, so it was intercepted: used up, it gives
    // the thief exactly one try, and the rightful client, refused with `invalid_grant`,
    // starts a new authorization. Keeping it would let the thief retry (guess verifiers,
    // replay with other keys) for the code's whole life. A thief who only wants to spoil the
    // exchange can do so either way, by racing the client with the code.
    let cnf = match (record.cnf, cnf) {
        (Some(Confirmation::Jkt(bound)), Some(Confirmation::Jkt(proved))) if bound == proved => {
            Some(Confirmation::Jkt(proved))
        }
        (Some(Confirmation::Jkt(_)), _) => {
            return Err(OAuthError::new(
                crate::error::ErrorCode::InvalidDpopProof,
                "the code is bound to a DPoP key (dpop_jkt); prove that key",
            ));
        }
        (bound, proved) => proved.or(bound),
    };
    // OpenID Connect Core §3.1.3.3: an ID token with the tokens when `openid` was granted.
    let oidc = oidc::is_openid(&scope).then(|| {
        (
            record.subject.clone(),
            record.nonce.clone(),
            record.auth.clone(),
        )
    });
    let mut response = p
        .issue(Grant {
            client_id: client.id.clone(),
            subject: Some(record.subject),
            username: Some(record.username),
            scope,
            grant_type: GrantType::AuthorizationCode,
            family: record.family,
            family_issued_at: None,
            access_ttl: p.access_ttl(client, GrantType::AuthorizationCode),
            refresh_ttl: client
                .allows(GrantType::RefreshToken)
                .then(|| p.refresh_ttl(client, GrantType::AuthorizationCode)),
            binding,
            access_token_format: client.metadata.access_token_format(),
            attached: record.attached,
            auth: record.auth,
            // The key this request proved (DPoP, or its certificate: RFC 8705 §3), else the
            // one the code was bound to.
            cnf,
            audience,
            refresh_audience,
            actor: None,
        })
        .await?;
    if let Some((subject, nonce, auth)) = oidc {
        response.id_token = id_token::for_tokens(
            p,
            client,
            &subject,
            auth.as_deref(),
            nonce.as_deref(),
            &response.scope,
            response.access_token.expose(),
        )
        .await?;
    }
    Ok(response)
}
