//! The user's side of a device authorization (RFC 8628 §3.3): find the authorization a typed
//! user code names ([`find`], rate limited: every wrong code counts), then allow or deny it
//! ([`decide`]). The built-in verification page in `latchkey-ui` drives these two calls; an
//! embedder with its own page calls the same two, so the rate limit and the rules about the
//! record cannot be skipped.

use super::{Approval, DeviceState, DeviceStatus};
use crate::client::Client;
use crate::clock::UnixTime;
use crate::error::OAuthError;
use crate::events::Event;
use crate::oidc::AuthContext;
use crate::provider::Provider;
use crate::scope::ScopeSet;
use crate::secret::Digest;
use crate::store::{PendingKind, PendingStore, ProviderStore};
use crate::user::{AuthenticatedUser, UserAuthenticator};
use std::net::IpAddr;

/// How often [`decide`] reads the record again when a poll changed it in between.
const ATTEMPTS: usize = 8;

/// A device authorization found by its user code, waiting on the user.
#[derive(Clone, Debug)]
pub struct DeviceRequest {
    digest: Digest,
    /// The user code, normalized (no dashes, upper case).
    pub user_code: String,
    /// The client that asked, as registered now.
    pub client: Client,
    /// The scope it asked for.
    pub scope: ScopeSet,
    /// When the codes expire.
    pub expires_at: UnixTime,
}

/// What a typed user code names.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Lookup {
    /// A live authorization waiting on the user.
    Found(Box<DeviceRequest>),
    /// No such code, or one that expired or was already answered (counted as a wrong code).
    NotFound,
}

/// Looks up the authorization that `typed` (as the user typed it) names, for a request from
/// `ip`. Every lookup is reserved in [`crate::limits::Limits::reserve_user_code`] first, and
/// stays counted unless the code names a live authorization: past the limit the answer is
/// `temporarily_unavailable` with status 429 and `Retry-After`, whatever the code.
pub async fn find<S, U>(
    p: &Provider<S, U>,
    ip: Option<IpAddr>,
    typed: &str,
) -> Result<Lookup, OAuthError>
where
    S: ProviderStore + PendingStore,
    U: UserAuthenticator,
{
    let now = p.clock().now();
    let attempt = match p.limits() {
        Some(limits) => match limits.reserve_user_code(ip, now).await {
            Ok(Ok(attempt)) => Some((limits, attempt)),
            Ok(Err(throttled)) => return Err(throttled.to_error()),
            // RFC 8628 §5.1: a user code is a short secret; without counts, no lookup.
            Err(err) => return Err(err.into()),
        },
        None => None,
    };
    let found = lookup(p, typed, now).await;
    if let Some((limits, attempt)) = attempt {
        let right = matches!(found, Ok(Lookup::Found(_)));
        limits.settle_user_code(attempt, right).await;
    }
    if matches!(found, Ok(Lookup::NotFound)) {
        tracing::info!(client_ip = ?ip, "wrong user code entered");
    }
    found
}

async fn lookup<S, U>(p: &Provider<S, U>, typed: &str, now: UnixTime) -> Result<Lookup, OAuthError>
where
    S: ProviderStore + PendingStore,
    U: UserAuthenticator,
{
    let Some(code) = super::normalize_user_code(typed, p.config().device.user_code_length) else {
        return Ok(Lookup::NotFound);
    };
    let Some(record) = p
        .store()
        .find_pending_by_lookup(
            PendingKind::DeviceAuthorization,
            &super::user_code_digest(&code),
            now,
        )
        .await?
    else {
        return Ok(Lookup::NotFound);
    };
    let state = DeviceState::decode(&record.body)?;
    if state.expired(now) || state.status != DeviceStatus::Pending {
        return Ok(Lookup::NotFound);
    }
    // The client may have been deleted since: then there is nothing to allow.
    let Some(client) = p.store().get_client(record.client_id.as_str()).await? else {
        return Ok(Lookup::NotFound);
    };
    Ok(Lookup::Found(Box::new(DeviceRequest {
        digest: record.digest,
        user_code: code,
        client,
        scope: state.scope,
        expires_at: state.expires_at,
    })))
}

/// The user's answer to a [`DeviceRequest`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Answer {
    /// Allow the device, signed in as this user, who authenticated so.
    Allow {
        /// The signed-in user.
        user: AuthenticatedUser,
        /// How they authenticated, for an ID token.
        auth: Box<AuthContext>,
    },
    /// Deny it.
    Deny,
    /// Deny it, signed in as this user: the denial is audited under their subject.
    DenyAs {
        /// The signed-in user.
        user: AuthenticatedUser,
    },
}

/// What became of an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decided {
    /// Recorded: the device's next poll gets tokens (or `access_denied`).
    Recorded,
    /// The authorization expired, was answered already, or is gone.
    Gone,
}

/// Records the user's answer for `request`: a compare-and-swap on the record, read again
/// when a poll changed it in between, and only while it is still waiting and unexpired.
pub async fn decide<S, U>(
    p: &Provider<S, U>,
    request: &DeviceRequest,
    answer: Answer,
) -> Result<Decided, OAuthError>
where
    S: ProviderStore + PendingStore,
    U: UserAuthenticator,
{
    let allowed = matches!(answer, Answer::Allow { .. });
    // The audit event of the decision, emitted once it is recorded: the consent events of
    // the authorization endpoint, as approving a device is consenting to its client.
    let event = match &answer {
        Answer::Allow { user, .. } => Some(Event::ConsentGranted {
            client_id: request.client.id.to_string(),
            subject: user.subject.clone(),
            scope: request.scope.to_string(),
        }),
        Answer::DenyAs { user } => Some(Event::ConsentDenied {
            client_id: request.client.id.to_string(),
            subject: user.subject.clone(),
        }),
        Answer::Deny => None,
    };
    let status = match answer {
        Answer::Allow { user, auth } => DeviceStatus::Approved(Box::new(Approval {
            subject: user.subject,
            username: user.username,
            scope: request.scope.clone(),
            auth: Some(auth),
            attached: user.attached,
        })),
        Answer::Deny | Answer::DenyAs { .. } => DeviceStatus::Denied,
    };
    for _ in 0..ATTEMPTS {
        let now = p.clock().now();
        let Some(mut record) = p
            .store()
            .find_pending(PendingKind::DeviceAuthorization, &request.digest, now)
            .await?
        else {
            return Ok(Decided::Gone);
        };
        let mut state = DeviceState::decode(&record.body)?;
        if state.expired(now) || state.status != DeviceStatus::Pending {
            return Ok(Decided::Gone);
        }
        state.status = status.clone();
        record.body = state.encode();
        record.version += 1;
        if p.store().replace_pending(&record, now).await? {
            tracing::info!(client_id = %request.client.id, allowed, "device authorization answered");
            if let Some(event) = event {
                p.emit(event);
            }
            return Ok(Decided::Recorded);
        }
    }
    Err(OAuthError::temporarily_unavailable()
        .with_detail("the device record kept changing while the answer was recorded"))
}
