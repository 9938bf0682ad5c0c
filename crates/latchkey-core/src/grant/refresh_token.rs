//! The refresh token grant (RFC 6749 §6) with rotation and reuse detection (RFC 9700 §4.14.2).
//!
//! Every exchange consumes the presented refresh token and issues a new one in the same
//! family. Presenting a consumed token again means two parties hold it: the whole family is
//! revoked, so the thief's tokens and the victim's stop working together. Rotation never
//! extends a family past its absolute maximum lifetime (`refresh_token_max_lifetime`).

use crate::client::{Client, GrantType};
use crate::error::OAuthError;
use crate::events::Event;
use crate::oidc::{self, id_token};
use crate::proto::TokenResponse;
use crate::provider::Provider;
use crate::scope::ScopeSet;
use crate::secret::Secret;
use crate::store::{ProviderStore, Rotation};
use crate::token::{Binding, Confirmation, Grant, TokenKind};
use crate::user::UserAuthenticator;

/// Exchanges a refresh token for a new access token and a new refresh token.
pub async fn exchange<S, U>(
    p: &Provider<S, U>,
    client: &Client,
    refresh_token: &Secret,
    requested: Option<&ScopeSet>,
    resources: &[crate::indicator::ResourceUri],
    binding: Option<Binding>,
    cnf: Option<Confirmation>,
) -> Result<TokenResponse, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let invalid = || OAuthError::invalid_grant("the refresh token is invalid, expired or revoked");
    let digest = refresh_token.digest();
    let now = p.clock().now();
    let Some(record) = p.store().find_token(&digest).await? else {
        return Err(invalid());
    };
    // RFC 6749 §6: "validate the refresh token ... ensure that the refresh token was issued to
    // the authenticated client". Another client's token is simply invalid here.
    if record.kind != TokenKind::Refresh || record.client_id != client.id {
        return Err(invalid());
    }
    if record.rotated {
        let revoked = p.store().revoke_family(&record.family).await?;
        report_reuse(p, client, &record.family.0, revoked);
        return Err(invalid());
    }
    if !record.is_active(now) {
        return Err(invalid());
    }
    // A refresh token stands for the resource owner's grant; once the owner is gone, so is
    // the grant, also when their tokens live in another store than the users.
    if let Some(subject) = &record.subject
        && !p.users().subject_exists(subject).await?
    {
        tracing::info!(client_id = %client.id, "refresh token of a deleted user refused");
        return Err(invalid());
    }
    // basic_oauth: "a mismatch destroys the session". A bound refresh token presented from
    // another User-Agent or address is treated as stolen.
    if let Some(bound) = &record.binding
        && binding.as_ref() != Some(bound)
    {
        let revoked = p.store().revoke_family(&record.family).await?;
        tracing::warn!(client_id = %client.id, revoked, "bound refresh token used from elsewhere; family revoked");
        return Err(invalid());
    }
    let presented = cnf;
    // RFC 8705 §4: a public client's certificate-bound refresh token needs its certificate.
    let cnf = crate::mtls::refresh_confirmation(client, record.cnf.as_ref(), presented.clone())?;
    // RFC 9449 §5: "refresh tokens issued to public clients are bound to the DPoP key"; the
    // refresh request of such a family must prove the same key. A confidential client's
    // refresh token is bound to its client authentication instead, and its new access
    // token to whatever key this request proves.
    let family_jkt = record.cnf.as_ref().and_then(Confirmation::jkt);
    let cnf = match family_jkt {
        Some(bound) if client.client_type() == crate::client::ClientType::Public => {
            let same = presented
                .as_ref()
                .and_then(Confirmation::jkt)
                .is_some_and(|proved| proved == bound);
            if !same {
                return Err(OAuthError::new(
                    crate::error::ErrorCode::InvalidDpopProof,
                    "this refresh token is bound to a DPoP key; prove that key",
                ));
            }
            presented
        }
        Some(_) => presented,
        // Not DPoP-bound: the certificate rule's answer (this request's key, else the
        // family's).
        None => cnf,
    };
    // RFC 6749 §6: "The requested scope MUST NOT include any scope not originally granted by
    // the resource owner, and if omitted is treated as equal to the scope originally granted".
    let scope = match requested {
        None => record.scope.clone(),
        Some(req) if req.is_subset(&record.scope) => req.clone(),
        Some(req) => {
            return Err(OAuthError::invalid_scope(format!(
                "scope was not originally granted: {}",
                req.missing_from(&record.scope)
            )));
        }
    };
    // RFC 8707 §2.2: the new access token may be for a subset of the family's resources
    // (`invalid_target` beyond); the new refresh token keeps them all. A family with no
    // resource may name resources the client may ask for, as its first exchange could.
    let (audience, scope) = if record.audience.is_empty() {
        p.resources_for(resources)
            .await?
            .target(client, resources, scope, false)?
    } else {
        (
            crate::indicator::narrow(&record.audience, resources)?,
            scope,
        )
    };
    let refresh_audience = (audience != record.audience).then(|| record.audience.clone());
    // The family's absolute lifetime: rotation never carries a refresh token past it. The
    // family keeps the lifetimes of the grant that started it.
    let Some(refresh_ttl) =
        p.refresh_ttl_in_family(client, record.grant_type, record.family_issued_at, now)
    else {
        return Err(invalid());
    };
    let grant = Grant {
        client_id: client.id.clone(),
        subject: record.subject.clone(),
        username: record.username.clone(),
        scope,
        grant_type: record.grant_type,
        family: record.family.clone(),
        family_issued_at: Some(record.family_issued_at),
        access_ttl: p.access_ttl(client, record.grant_type),
        refresh_ttl: Some(refresh_ttl),
        binding,
        // The family keeps what was attached when it was authorized.
        attached: record.attached.clone(),
        access_token_format: client.metadata.access_token_format(),
        // And how the user authenticated then (OpenID Connect Core §12.2: the same
        // auth_time).
        auth: record.auth.clone(),
        cnf,
        audience,
        refresh_audience,
        // A delegated family keeps its actor.
        actor: record.actor.clone(),
    };
    let minted = p.mint(&grant, GrantType::RefreshToken, now)?;
    // OpenID Connect Core §12.2: a new ID token with the same `sub` and `auth_time`, and no
    // `nonce`, when the (possibly narrowed) scope still has `openid`. Signed before the
    // rotation, so a signing failure leaves the presented refresh token usable.
    let id_token = match &grant.subject {
        Some(subject) if oidc::is_openid(&grant.scope) => {
            id_token::for_tokens(
                p,
                client,
                subject,
                grant.auth.as_deref(),
                None,
                &grant.scope,
                minted.access_token.expose(),
            )
            .await?
        }
        _ => None,
    };
    match p
        .store()
        .rotate_refresh(&digest, &minted.records, now)
        .await?
    {
        Rotation::Rotated => {}
        Rotation::Reused { family } => {
            // Another request rotated this token between our read and our write.
            report_reuse(p, client, &family.0, 0);
            return Err(invalid());
        }
        Rotation::Invalid => return Err(invalid()),
    }
    p.emit(Event::TokenIssued {
        client_id: client.id.to_string(),
        grant_type: GrantType::RefreshToken,
        subject: grant.subject.clone(),
        with_refresh: true,
    });
    let mut response = p.token_response(grant, minted, GrantType::RefreshToken, now);
    response.id_token = id_token;
    Ok(response)
}

fn report_reuse<S, U>(p: &Provider<S, U>, client: &Client, family: &str, revoked: u64)
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    tracing::warn!(client_id = %client.id, family, revoked, "refresh token reuse detected; family revoked");
    p.emit(Event::RefreshReuseDetected {
        client_id: client.id.to_string(),
        family: family.to_owned(),
    });
}
