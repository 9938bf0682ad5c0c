//! Initial access tokens for dynamic client registration (RFC 7591 §3) as operators handle
//! them: `latchkey registration token create|list|revoke` and `POST|GET
//! /admin/registration/tokens`, `DELETE /admin/registration/tokens/{id}` both come through
//! here. The token is shown once; only its SHA-256 digest is stored.

use super::{Admin, AdminError};
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::entropy::OsEntropy;
use latchkey_core::registration::store::{InitialAccessToken, RegistrationStore};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The longest lifetime of an initial access token: a year.
const MAX_TTL: u64 = 365 * 24 * 3600;

/// An initial access token as listed (never the token itself).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct InitialTokenView {
    /// The handle to revoke it by.
    pub id: String,
    /// What the operator wrote about it.
    pub description: String,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// When it stops working; absent: never.
    pub expires_at: Option<i64>,
    /// How many more registrations it allows; absent: any number.
    pub uses_left: Option<u64>,
}

impl From<&InitialAccessToken> for InitialTokenView {
    fn from(t: &InitialAccessToken) -> Self {
        Self {
            id: t.id.clone(),
            description: t.description.clone(),
            created_at: t.created_at.0,
            expires_at: t.expires_at.map(|at| at.0),
            uses_left: t.uses_left,
        }
    }
}

/// An initial access token to make.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewInitialToken {
    /// Who or what it is for.
    #[serde(default)]
    pub description: String,
    /// Lifetime in seconds (at most a year); absent: until revoked.
    #[serde(default)]
    pub ttl: Option<u64>,
    /// How many registrations it allows; absent: any number until it expires.
    #[serde(default)]
    pub uses: Option<u64>,
}

/// A new initial access token: the value, shown this once, and its record.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct CreatedInitialToken {
    /// The bearer token a developer sends to `/register`. Not stored: keep it now.
    pub token: String,
    /// Its record.
    #[serde(flatten)]
    pub view: InitialTokenView,
}

impl Admin {
    /// Makes an initial access token.
    pub async fn create_initial_token(
        &self,
        new: &NewInitialToken,
    ) -> Result<CreatedInitialToken, AdminError> {
        if new.description.len() > 255 || new.description.chars().any(char::is_control) {
            return Err(AdminError::Invalid(
                "description must be at most 255 bytes without control characters".into(),
            ));
        }
        if new.ttl.is_some_and(|t| !(1..=MAX_TTL).contains(&t)) {
            return Err(AdminError::Invalid(format!(
                "ttl must be 1 to {MAX_TTL} seconds"
            )));
        }
        if new.uses == Some(0) {
            return Err(AdminError::Invalid("uses must be at least 1".into()));
        }
        let (value, record) = latchkey_core::registration::new_initial_token(
            &OsEntropy,
            &new.description,
            SystemClock.now(),
            new.ttl,
            new.uses,
        );
        self.store.save_initial_token(&record).await?;
        self.audit("registration_token_created", &record.id);
        Ok(CreatedInitialToken {
            token: value.expose().to_owned(),
            view: InitialTokenView::from(&record),
        })
    }

    /// Every initial access token.
    pub async fn list_initial_tokens(&self) -> Result<Vec<InitialTokenView>, AdminError> {
        let tokens = self.store.list_initial_tokens().await?;
        Ok(tokens.iter().map(InitialTokenView::from).collect())
    }

    /// Revokes an initial access token: registrations with it are refused from now on
    /// (clients it registered stay).
    pub async fn revoke_initial_token(&self, id: &str) -> Result<(), AdminError> {
        if !self.store.delete_initial_token(id).await? {
            return Err(AdminError::NotFound(format!(
                "no initial access token {id:?}"
            )));
        }
        self.audit("registration_token_revoked", id);
        Ok(())
    }
}
