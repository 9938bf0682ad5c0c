//! The device authorization grant at the token endpoint (RFC 8628 §3.4, §3.5).
//!
//! A poll reads the device's record, lets [`crate::device::poll`] decide, and writes the
//! decision back with the store's compare-and-swap: a poll's time (and a slower interval)
//! replaces the record at its version, a denial or an expiry removes it, and an approval is
//! taken by removing the record at the version it was read at, so that of two concurrent
//! polls exactly one gets the tokens. The other reads the record again and finds it gone:
//! `invalid_grant`, as a device code used a second time gets.

use crate::client::{Client, GrantType};
use crate::device::{DeviceState, PollVerdict};
use crate::error::{ErrorCode, OAuthError};
use crate::indicator::{AudienceSet, ResourceUri};
use crate::oidc::{self, id_token};
use crate::proto::TokenResponse;
use crate::provider::Provider;
use crate::secret::Secret;
use crate::store::{PendingKind, PendingStore, ProviderStore};
use crate::token::{Binding, Confirmation, FamilyId, Grant};
use crate::user::UserAuthenticator;

/// How often a poll reads the record again when another request changed it in between.
const ATTEMPTS: usize = 4;

/// Answers one poll with `device_code` by `client`. `resources` are the poll's `resource`
/// parameters (RFC 8707 §2.2: a subset of those the device authorization named). `cnf` is
/// what the poll proved (a DPoP proof's key, RFC 9449 §5, or a TLS client certificate, RFC
/// 8705): the tokens of the poll that gets them are bound to it.
pub async fn exchange<S, U>(
    p: &Provider<S, U>,
    client: &Client,
    device_code: &Secret,
    resources: &[ResourceUri],
    binding: Option<Binding>,
    cnf: Option<Confirmation>,
) -> Result<TokenResponse, OAuthError>
where
    S: ProviderStore + PendingStore,
    U: UserAuthenticator,
{
    let digest = device_code.digest();
    let kind = PendingKind::DeviceAuthorization;
    for _ in 0..ATTEMPTS {
        let now = p.clock().now();
        let Some(mut record) = p.store().find_pending(kind, &digest, now).await? else {
            return Err(OAuthError::invalid_grant(
                "the device code is invalid or was already used",
            ));
        };
        // RFC 8628 §3.4 with RFC 6749 §5.2: a device code belongs to the client it was
        // issued to; another client learns nothing and changes nothing.
        if record.client_id != client.id {
            return Err(OAuthError::invalid_grant(
                "the device code is invalid or was already used",
            ));
        }
        let state = DeviceState::decode(&record.body)?;
        match crate::device::poll(&state, now) {
            PollVerdict::Expired => {
                p.store()
                    .remove_pending(kind, &digest, record.version, now)
                    .await?;
                return Err(OAuthError::new(
                    ErrorCode::ExpiredToken,
                    "the device code expired; start again",
                ));
            }
            PollVerdict::Denied => {
                if !p
                    .store()
                    .remove_pending(kind, &digest, record.version, now)
                    .await?
                {
                    continue;
                }
                // RFC 8628 §3.5 "access_denied", answered as a token error (400).
                return Err(OAuthError::new(
                    ErrorCode::AccessDenied,
                    "the user denied the request",
                )
                .with_status(400));
            }
            PollVerdict::SlowDown(next) | PollVerdict::Pending(next) => {
                let slow = next.interval != state.interval;
                record.body = next.encode();
                record.version += 1;
                if !p.store().replace_pending(&record, now).await? {
                    // Another poll or the user's answer got there first: read it again.
                    continue;
                }
                return Err(if slow {
                    OAuthError::new(ErrorCode::SlowDown, "polling too fast; wait 5 seconds more")
                } else {
                    OAuthError::new(
                        ErrorCode::AuthorizationPending,
                        "the user has not answered yet",
                    )
                });
            }
            PollVerdict::Approved(approval) => {
                // Checked before the record is taken: a poll naming a resource it may not
                // have is refused and leaves the approval for a correct poll.
                let target = target(p, client, &state.audience, &approval.scope, resources).await?;
                // Single issuance: only the poll that removes the record at the version
                // it read goes on to mint.
                if !p
                    .store()
                    .remove_pending(kind, &digest, record.version, now)
                    .await?
                {
                    continue;
                }
                return issue(p, client, *approval, target, binding, cnf).await;
            }
        }
    }
    // Polls racing each other this hard are polling too fast.
    Err(OAuthError::new(
        ErrorCode::SlowDown,
        "polling too fast; wait 5 seconds more",
    ))
}

/// The audience and scope of the tokens, and the audience the refresh token keeps.
struct Target {
    audience: AudienceSet,
    scope: crate::scope::ScopeSet,
    refresh_audience: Option<AudienceSet>,
}

/// What the poll's `resources` make of the approved `scope` and the `granted` audience: as
/// at a code's exchange (RFC 8707 §2.2), a subset of what the device authorization named,
/// or, when it named none, resources the client may ask for.
async fn target<S, U>(
    p: &Provider<S, U>,
    client: &Client,
    granted: &AudienceSet,
    scope: &crate::scope::ScopeSet,
    resources: &[ResourceUri],
) -> Result<Target, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let (audience, scope) = if granted.is_empty() {
        p.resources_for(resources)
            .await?
            .target(client, resources, scope.clone(), false)?
    } else {
        (crate::indicator::narrow(granted, resources)?, scope.clone())
    };
    // The refresh token keeps every resource, for later refreshes to choose from.
    let refresh_audience = (audience != *granted && !granted.is_empty()).then(|| granted.clone());
    Ok(Target {
        audience,
        scope,
        refresh_audience,
    })
}

async fn issue<S, U>(
    p: &Provider<S, U>,
    client: &Client,
    approval: crate::device::Approval,
    target: Target,
    binding: Option<Binding>,
    cnf: Option<Confirmation>,
) -> Result<TokenResponse, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let subject = approval.subject.clone();
    let auth = approval.auth.clone();
    let mut response = p
        .issue(Grant {
            client_id: client.id.clone(),
            subject: Some(approval.subject),
            username: Some(approval.username),
            scope: target.scope,
            grant_type: GrantType::DeviceCode,
            family: FamilyId::generate(p.entropy()),
            family_issued_at: None,
            access_ttl: p.access_ttl(client, GrantType::DeviceCode),
            refresh_ttl: client
                .allows(GrantType::RefreshToken)
                .then(|| p.refresh_ttl(client, GrantType::DeviceCode)),
            binding,
            access_token_format: client.metadata.access_token_format(),
            attached: approval.attached,
            auth: approval.auth,
            cnf,
            audience: target.audience,
            refresh_audience: target.refresh_audience,
            actor: None,
        })
        .await?;
    tracing::info!(client_id = %client.id, "device code exchanged");
    if oidc::is_openid(&response.scope) {
        response.id_token = id_token::for_tokens(
            p,
            client,
            &subject,
            auth.as_deref(),
            None,
            &response.scope,
            response.access_token.expose(),
        )
        .await?;
    }
    Ok(response)
}
