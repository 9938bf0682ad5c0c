//! Resource owners: the built-in user record, and the authenticator trait an embedder
//! implements to plug in its own user database (the seeds' `usergetter` / `IAuthCheck`).

use crate::clock::UnixTime;
use crate::secret::Secret;
use crate::store::StoreError;
use std::future::Future;

/// A built-in user, as kept by a [`crate::store::UserStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// A stable identifier, used as the token's subject; never reused.
    pub id: String,
    /// The name the user logs in with; unique.
    pub username: String,
    /// The Argon2id PHC string of the password.
    pub password_hash: String,
    /// When the user was created.
    pub created_at: UnixTime,
}

/// A resource owner whose credentials were checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedUser {
    /// The stable subject identifier put into tokens.
    pub subject: String,
    /// The user name, for introspection and logs.
    pub username: String,
}

/// Checks a resource owner's user name and password.
///
/// Implement it to use your own user database; Latchkey's adapters ship one over the
/// built-in [`crate::store::UserStore`]. Return `Ok(None)` for wrong credentials (unknown user
/// or wrong password alike) and `Err` only when the check itself could not be made.
pub trait UserAuthenticator: Send + Sync + 'static {
    /// Returns the user when `password` is right for `username`.
    fn authenticate(
        &self,
        username: &str,
        password: &Secret,
    ) -> impl Future<Output = Result<Option<AuthenticatedUser>, StoreError>> + Send;
}

/// An authenticator that knows no users: for deployments without the password grant.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoUsers;

impl UserAuthenticator for NoUsers {
    async fn authenticate(
        &self,
        _username: &str,
        _password: &Secret,
    ) -> Result<Option<AuthenticatedUser>, StoreError> {
        Ok(None)
    }
}
