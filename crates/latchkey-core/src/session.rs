//! Login sessions kept by the server.
//!
//! A browser that logged in holds a random session id (in a cookie); the store keeps only the
//! SHA-256 digest of that id with who logged in and when. Because the record lives on the
//! server, a session ends for real: on logout (its record is deleted), on a password change, on
//! the user's deletion and on "log out everywhere" (every record of the subject is deleted). A
//! copied cookie stops working at the same moment.
//!
//! The record also keeps `auth_time`, the moment the user last typed their password, which the
//! authorization endpoint checks against `max_age` (OpenID Connect Core §3.1.2.1).

use crate::clock::UnixTime;
use crate::entropy::{Entropy, random_token};
use crate::secret::{Digest, Secret};
use crate::token::TOKEN_BYTES;
use crate::user::AuthenticatedUser;

/// One login session, as a store keeps it: the id itself is never stored, only its digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the session id the browser holds.
    pub digest: Digest,
    /// The logged-in user's stable subject identifier.
    pub subject: String,
    /// The user name, for pages and logs.
    pub username: String,
    /// When the user entered their credentials for this session.
    pub auth_time: UnixTime,
    /// When the session ends by itself.
    pub expires_at: UnixTime,
}

impl SessionRecord {
    /// Whether the session is still usable at `now`: the one expiry rule every store applies
    /// through [`crate::store::SessionStore::find_session`].
    pub fn is_active(&self, now: UnixTime) -> bool {
        !crate::store::expired(self.expires_at, now)
    }

    /// The user this session belongs to.
    pub fn user(&self) -> AuthenticatedUser {
        AuthenticatedUser {
            subject: self.subject.clone(),
            username: self.username.clone(),
        }
    }
}

/// Starts a session for `user`, who has just logged in at `now`, lasting `ttl` seconds: the
/// random id for the browser, and the record for the store.
pub fn start(
    user: &AuthenticatedUser,
    ttl: u64,
    entropy: &dyn Entropy,
    now: UnixTime,
) -> (Secret, SessionRecord) {
    let id = Secret::new(random_token(entropy, TOKEN_BYTES));
    let record = SessionRecord {
        digest: id.digest(),
        subject: user.subject.clone(),
        username: user.username.clone(),
        auth_time: now,
        expires_at: now.plus(ttl),
    };
    (id, record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::SeededEntropy;

    #[test]
    fn a_started_session_stores_only_the_digest_and_expires() {
        let user = AuthenticatedUser {
            subject: "s-1".into(),
            username: "alice".into(),
        };
        let (id, record) = start(&user, 600, &SeededEntropy::new(3), UnixTime(1000));
        assert_eq!(record.digest, id.digest());
        assert_eq!(record.user(), user);
        assert_eq!(record.auth_time, UnixTime(1000));
        assert!(record.is_active(UnixTime(1599)));
        assert!(!record.is_active(UnixTime(1600)));
        assert!(!format!("{record:?}").contains(id.expose()));
    }
}
