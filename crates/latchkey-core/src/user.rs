//! Resource owners: the built-in user record, and the authenticator trait an embedder
//! implements to plug in its own user database (the seeds' `usergetter` / `IAuthCheck`).

use crate::attached::Attached;
use crate::claims::UserClaims;
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
    /// What OpenID Connect tells clients about the user (standard claims, released by scope;
    /// see [`crate::claims`]); empty by default.
    pub claims: UserClaims,
}

/// A resource owner whose credentials were checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedUser {
    /// The stable subject identifier put into tokens.
    pub subject: String,
    /// The user name, for introspection and logs.
    pub username: String,
    /// What the application attaches to what this user authorizes now (see
    /// [`crate::attached`]): stored with the authorization code or, for the password grant,
    /// with the tokens. Latchkey's own login and users attach nothing.
    pub attached: Attached,
}

impl AuthenticatedUser {
    /// `subject`, logged in as `username`, with nothing attached.
    pub fn new(subject: impl Into<String>, username: impl Into<String>) -> Self {
        Self {
            subject: subject.into(),
            username: username.into(),
            attached: Attached::new(),
        }
    }

    /// The same user with `attached` attached to what they authorize.
    pub fn with_attached(mut self, attached: Attached) -> Self {
        self.attached = attached;
        self
    }
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

    /// Whether the resource owner with this stable `subject` identifier still exists. The
    /// refresh grant asks before every exchange, so tokens of a deleted user stop working even
    /// when they live in another store than the users.
    ///
    /// The default answers `false`: an authenticator that cannot tell fails closed, and refresh
    /// tokens issued for users are refused (`invalid_grant`). Implement it when your users
    /// may refresh tokens; [`StoreUsers`] looks the subject up in its store.
    fn subject_exists(
        &self,
        subject: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send {
        let _ = subject;
        async { Ok(false) }
    }
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

/// Runs CPU-heavy work (Argon2) off the async executor. The core owns no runtime, so the
/// adapter supplies one: `latchkey-axum` runs it on tokio's blocking pool behind a
/// semaphore; [`Inline`] runs it in place, for tests and single-threaded tools.
pub trait Blocking: Send + Sync + 'static {
    /// Runs `f` and returns its result, or `None` if it could not be run (pool shut down).
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> impl Future<Output = Option<T>> + Send;
}

/// Runs blocking work in place, on the calling task.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inline;

impl Blocking for Inline {
    async fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        Some(f())
    }
}

/// The built-in user authenticator: users from a [`crate::store::UserStore`], passwords
/// checked with Argon2id on `B`. An unknown user costs a dummy verification, so timing does
/// not tell which user names exist.
#[derive(Clone, Debug)]
pub struct StoreUsers<S, B> {
    store: S,
    blocking: B,
}

impl<S, B> StoreUsers<S, B> {
    /// Authenticates against `store`, hashing on `blocking`.
    pub fn new(store: S, blocking: B) -> Self {
        Self { store, blocking }
    }

    /// The store the users are read from (the built-in claims source reads it too).
    pub(crate) fn store(&self) -> &S {
        &self.store
    }
}

impl<S: crate::store::UserStore, B: Blocking> UserAuthenticator for StoreUsers<S, B> {
    async fn authenticate(
        &self,
        username: &str,
        password: &Secret,
    ) -> Result<Option<AuthenticatedUser>, StoreError> {
        let user = self.store.get_user(username).await?;
        let password = password.clone();
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let ok = self
            .blocking
            .run(move || match phc {
                Some(phc) => crate::password::verify(&phc, &password),
                None => crate::password::verify_dummy(&password),
            })
            .await
            .ok_or_else(|| {
                StoreError::new(
                    crate::store::StoreErrorKind::Unavailable,
                    "password verification pool unavailable",
                )
            })?;
        Ok(user.filter(|_| ok).map(|u| AuthenticatedUser {
            subject: u.id,
            username: u.username,
            attached: Attached::new(),
        }))
    }

    async fn subject_exists(&self, subject: &str) -> Result<bool, StoreError> {
        Ok(self.store.get_user_by_id(subject).await?.is_some())
    }
}
