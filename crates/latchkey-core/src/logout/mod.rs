//! Logout for OpenID Connect: RP-Initiated Logout 1.0 and Back-Channel Logout 1.0.
//!
//! A login session ([`crate::session`]) ends in several ways: the relying party sends the user
//! to the `end_session_endpoint` ([`EndSessionRequest`]), the user posts the logout form, an
//! operator logs a user out everywhere, changes their password or deletes them. Every one of
//! them goes through [`end_session`] or [`end_sessions_of`], which delete the session records
//! and hand one signed logout token per client that got a code or a token in them to the
//! provider's [`LogoutSink`] ([`backchannel`]): the core decides who is told and what, the
//! embedder (the `latchkey` server) delivers, off the request path.
//!
//! What the core does not do here: revoke the refresh tokens issued in the session. Back-Channel
//! Logout §2.7 leaves that to the relying party ("Refresh tokens issued without the
//! `offline_access` property SHOULD be revoked" by the RP on receiving the logout token), and an
//! application that asked for offline access keeps it across the user's browser logout.
//! Front-Channel Logout is not offered: it depends on third-party cookies in iframes that
//! browsers now block, and back-channel logout covers the same need.

pub mod backchannel;
mod end_session;

pub use backchannel::{BackchannelLogout, LogoutSink, NoLogoutDelivery};
pub use end_session::{END_SESSION_PATH, EndSessionRequest, IdTokenHint};

use crate::error::OAuthError;
use crate::provider::Provider;
use crate::secret::Digest;
use crate::session::SessionRecord;
use crate::store::ProviderStore;
use crate::user::UserAuthenticator;

/// Ends one login session (the browser's logout) and notifies the clients that got tokens in
/// it; the ended session, or `None` if there was none.
pub async fn end_session<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    digest: &Digest,
) -> Result<Option<SessionRecord>, OAuthError> {
    let ended = p.store().delete_session(digest).await?;
    if let Some(session) = &ended {
        sessions_ended(p, std::slice::from_ref(session)).await;
    }
    Ok(ended)
}

/// Ends every login session of `subject` (password change, "log out everywhere", the user's
/// deletion) and notifies the clients that got tokens in them; the ended sessions.
///
/// The store's error is returned as it is, so an administrative caller can tell an outage
/// from a bad request.
pub async fn end_sessions_of<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    subject: &str,
) -> Result<Vec<SessionRecord>, crate::store::StoreError> {
    let ended = p.store().delete_sessions_of(subject).await?;
    sessions_ended(p, &ended).await;
    Ok(ended)
}

/// Sends the back-channel logouts of sessions that have just ended to the provider's
/// [`LogoutSink`]. A logout token that cannot be made (a client's lookup fails, no key can
/// sign) is logged and skipped: the session is over either way.
pub async fn sessions_ended<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    sessions: &[SessionRecord],
) {
    for logout in backchannel::logouts_for(p, sessions).await {
        p.logout_sink().deliver(logout);
    }
}

/// Records that `client_id` got a code or a token in the login session `sid` (OpenID Connect
/// Back-Channel Logout §2.5: "the OP ... sends logout tokens to the RPs that the End-User is
/// logged into"). A store failure is logged, never fails the authorization: the only loss is
/// a logout notice.
pub async fn record_client<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    sid: &str,
    client_id: &str,
) {
    if let Err(err) = p.store().add_session_client(sid, client_id).await {
        tracing::warn!(client_id, error = %err, "recording the client of a login session failed");
    }
}
