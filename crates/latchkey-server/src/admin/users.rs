//! A user's OpenID Connect claims (OpenID Connect Core §5.1) as administrators see and change
//! them: shown with the user, set when a user is added, changed by a JSON merge patch
//! (RFC 7396). The CLI (`latchkey user add|update|show`) and the admin API
//! (`GET`/`PATCH /admin/users/{username}`) both come through here; the core validates.

use super::{Admin, AdminError, UserView, hash};
use latchkey_core::claims::UserClaims;
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::entropy::{OsEntropy, random_hex};
use latchkey_core::secret::Secret;
use latchkey_core::store::{StoreErrorKind, UserStore};
use latchkey_core::user::User;
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

/// Changes to a user. What is absent stays as it is.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// A JSON merge patch (RFC 7396) of the user's claims: a claim set to a value replaces
    /// it, a claim set to `null` removes it, `address` is patched member by member. Only the
    /// standard claims of OpenID Connect Core §5.1 (not `sub`) are accepted.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub claims: Map<String, Value>,
}

/// The claims of `patch` applied to none: what a new user starts with.
fn new_claims(patch: &Map<String, Value>) -> Result<UserClaims, AdminError> {
    UserClaims::new().merge(patch).map_err(invalid)
}

fn invalid(err: latchkey_core::claims::ClaimsError) -> AdminError {
    AdminError::Invalid(err.to_string())
}

/// The names of the claims that differ between `before` and `after`, for the audit log (the
/// values are personal data and stay out of it).
fn changed_claims(before: &UserClaims, after: &UserClaims) -> Vec<&'static str> {
    latchkey_core::claims::STANDARD_CLAIMS
        .into_iter()
        .filter(|name| before.get(name) != after.get(name))
        .collect()
}

impl Admin {
    /// Adds a user with an Argon2id hash of `password` and the claims of `claims` (a merge
    /// patch over none; empty for none). Invalid claims add nothing.
    pub async fn add_user_with_claims(
        &self,
        username: &str,
        password: Secret,
        claims: &Map<String, Value>,
    ) -> Result<UserView, AdminError> {
        if username.is_empty() || username.len() > 255 {
            return Err(AdminError::Invalid("user names are 1 to 255 bytes".into()));
        }
        if password.expose().is_empty() {
            return Err(AdminError::Invalid("the password must not be empty".into()));
        }
        let claims = new_claims(claims)?;
        if self.store.get_user(username).await?.is_some() {
            return Err(AdminError::Conflict(format!("user {username:?} exists")));
        }
        let user = User {
            id: random_hex(&OsEntropy, 16),
            username: username.to_owned(),
            password_hash: hash(password).await?,
            created_at: SystemClock.now(),
            claims,
        };
        match self.store.put_user(&user).await {
            Err(e) if e.kind() == StoreErrorKind::Conflict => {
                return Err(AdminError::Conflict(format!("user {username:?} exists")));
            }
            other => other?,
        }
        self.audit("user_added", username);
        Ok(UserView::from(&user))
    }

    /// One user, with their claims.
    pub async fn get_user(&self, username: &str) -> Result<UserView, AdminError> {
        Ok(UserView::from(&self.user(username).await?))
    }

    /// Changes a user (today: their claims) and returns them as they now are. Nothing is
    /// stored when the result is invalid or unchanged; the audit log names the claims that
    /// changed, never their values.
    pub async fn update_user(
        &self,
        username: &str,
        update: UserUpdate,
    ) -> Result<UserView, AdminError> {
        let mut user = self.user(username).await?;
        let claims = user.claims.merge(&update.claims).map_err(invalid)?;
        let changed = changed_claims(&user.claims, &claims);
        if !changed.is_empty() {
            user.claims = claims;
            self.store.put_user(&user).await?;
        }
        tracing::info!(
            target: "latchkey::audit",
            event = "admin_change",
            actor = self.actor,
            client_ip = crate::audit::request_client_ip(),
            action = "user_updated",
            target = username,
            changed = changed.join(","),
        );
        Ok(UserView::from(&user))
    }
}
