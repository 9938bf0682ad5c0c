//! The one path every resource-owner password check takes: the login page, the OAuth 1.0a
//! login page, the password grant, and any page an embedder adds.
//!
//! RFC 6749 §10.10 and RFC 9700 §4.16: guessing passwords must be slowed, then refused, and
//! seen. [`Provider::check_password`] does all of it in one place (the user name is validated,
//! the backoff of [`crate::limits`] consulted and charged, the password verified by the
//! [`UserAuthenticator`], the outcome audited), and the authenticator itself is not reachable
//! from outside the crate, so no caller can verify a password without the limits and the audit.

use crate::error::OAuthError;
use crate::events::Event;
use crate::provider::Provider;
use crate::secret::Secret;
use crate::store::ProviderStore;
use crate::user::{AuthenticatedUser, UserAuthenticator};
use std::net::IpAddr;

/// The longest user name accepted, in bytes.
pub const MAX_USERNAME_LEN: usize = 255;

/// What a password check found.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasswordCheck {
    /// The password is right for this user.
    Ok(AuthenticatedUser),
    /// The user name or the password is wrong, or the user name is malformed. The failure was
    /// counted and audited.
    Wrong,
    /// Too many failures: no check was made. The caller answers 429 (or says so on its page).
    Throttled(crate::limits::Throttled),
}

/// Whether `username` may be counted, looked up and logged: 1 to [`MAX_USERNAME_LEN`] bytes,
/// no control characters.
pub fn valid_username(username: &str) -> bool {
    !username.is_empty()
        && username.len() <= MAX_USERNAME_LEN
        && !username.chars().any(char::is_control)
}

impl<S: ProviderStore, U: UserAuthenticator> Provider<S, U> {
    /// Checks `password` for `username`, asked by `client_id` from `client_ip`: the only way
    /// to verify a resource owner's password.
    ///
    /// `Err` means the check could not be made (the counters or the user store failed): the
    /// caller refuses, so password checks fail closed.
    pub async fn check_password(
        &self,
        username: &str,
        password: &Secret,
        client_ip: Option<IpAddr>,
        client_id: &str,
    ) -> Result<PasswordCheck, OAuthError> {
        if !valid_username(username) {
            // Nothing is counted, looked up or logged under a name that could be anything.
            return Ok(PasswordCheck::Wrong);
        }
        let now = self.clock().now();
        // The attempt is reserved (counted as a failure) before the password is verified,
        // in one atomic step with the check of the limits: concurrent guesses cannot all pass.
        let attempt = match self.limits() {
            Some(limits) => match limits.reserve_password(username, client_ip, now).await? {
                Ok(attempt) => attempt,
                Err(throttled) => {
                    self.emit_from(
                        Event::UserAuthThrottled {
                            client_id: client_id.to_owned(),
                            username: username.to_owned(),
                        },
                        client_ip,
                    );
                    return Ok(PasswordCheck::Throttled(throttled));
                }
            },
            None => None,
        };
        let user = if password.expose().is_empty() {
            None
        } else {
            self.users().authenticate(username, password).await?
        };
        if let (Some(limits), Some(attempt)) = (self.limits(), attempt) {
            limits.settle_password(attempt, user.is_some()).await?;
        }
        Ok(match user {
            Some(user) => {
                self.emit_from(
                    Event::UserAuthenticated {
                        client_id: client_id.to_owned(),
                        subject: user.subject.clone(),
                    },
                    client_ip,
                );
                PasswordCheck::Ok(user)
            }
            None => {
                self.emit_from(
                    Event::UserAuthFailed {
                        client_id: client_id.to_owned(),
                        username: username.to_owned(),
                    },
                    client_ip,
                );
                PasswordCheck::Wrong
            }
        })
    }
}
