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
//!
//! For OpenID Connect logout it carries a public session identifier, `sid` (OpenID Connect
//! Front-Channel Logout §3, Back-Channel Logout §2.4): random, minted with the session and
//! unrelated to the cookie's secret, so putting it in ID tokens and logout tokens reveals
//! nothing that could resume the session. And it lists the clients that got a code or a token
//! in the session ([`add_client`]): the recipients of a back-channel logout when it ends.

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
    /// The public session identifier of OpenID Connect (`sid`): random, never derived from the
    /// cookie's secret; what ID tokens and logout tokens name the session by.
    pub sid: String,
    /// The clients that got a code or a token in this session, in the order they first did,
    /// at most [`MAX_SESSION_CLIENTS`] (see [`add_client`]).
    pub clients: Vec<String>,
}

/// How many clients one session remembers: bounds the record and the back-channel logout
/// fan-out. A session that reaches it stops recording new clients (and logs it).
pub const MAX_SESSION_CLIENTS: usize = 64;

/// The length of a session's `sid` in random bytes (128 bits: unique, not a secret).
const SID_BYTES: usize = 16;

/// The client list of a session once `client_id` got a code or a token in it: the one rule
/// every store applies inside its atomic update ([`crate::store::SessionStore::add_session_client`]).
/// `None` when nothing changes: the client is already listed, or the list is full.
pub fn add_client(clients: &[String], client_id: &str) -> Option<Vec<String>> {
    if clients.iter().any(|c| c == client_id) {
        return None;
    }
    if clients.len() >= MAX_SESSION_CLIENTS {
        tracing::warn!(
            limit = MAX_SESSION_CLIENTS,
            "login session reached its client limit; a later client gets no back-channel logout"
        );
        return None;
    }
    let mut next = clients.to_vec();
    next.push(client_id.to_owned());
    Some(next)
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
            attached: crate::attached::Attached::new(),
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
        sid: random_token(entropy, SID_BYTES),
        clients: Vec::new(),
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
            attached: crate::attached::Attached::new(),
        };
        let (id, record) = start(&user, 600, &SeededEntropy::new(3), UnixTime(1000));
        assert_eq!(record.digest, id.digest());
        assert_eq!(record.user(), user);
        assert_eq!(record.auth_time, UnixTime(1000));
        assert!(record.is_active(UnixTime(1599)));
        assert!(!record.is_active(UnixTime(1600)));
        assert!(!format!("{record:?}").contains(id.expose()));
        assert_eq!(record.sid.len(), 22);
        assert!(
            !id.expose().contains(&record.sid),
            "the sid is not the cookie"
        );
        assert!(record.clients.is_empty());
    }

    #[test]
    fn clients_are_added_once_and_bounded() {
        let one = add_client(&[], "app").expect("added");
        assert_eq!(one, ["app"]);
        assert_eq!(add_client(&one, "app"), None, "already listed");
        assert_eq!(add_client(&one, "other").expect("added"), ["app", "other"]);
        let full: Vec<String> = (0..MAX_SESSION_CLIENTS).map(|i| format!("c{i}")).collect();
        assert_eq!(add_client(&full, "one-more"), None, "bounded");
    }
}
