//! The resource owner password credentials grant (RFC 6749 §4.3).
//!
//! RFC 9700 §2.4 says it "MUST NOT be used": it exists for migrations (the seeds all had it)
//! and is off unless a client is explicitly allowed `password`.

use crate::client::{Client, GrantType};
use crate::error::OAuthError;
use crate::events::Event;
use crate::proto::TokenResponse;
use crate::provider::Provider;
use crate::scope::{ScopeSet, resolve};
use crate::secret::Secret;
use crate::store::ProviderStore;
use crate::token::{Binding, FamilyId, Grant};
use crate::user::UserAuthenticator;

/// Checks the resource owner's credentials and issues tokens.
pub async fn exchange<S, U>(
    p: &Provider<S, U>,
    client: &Client,
    username: &str,
    password: &Secret,
    requested: Option<&ScopeSet>,
    binding: Option<Binding>,
) -> Result<TokenResponse, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    // Scope first: a bad scope should not cost an Argon2 verification.
    let scope = resolve(
        requested,
        p.allowed_scopes(client),
        p.default_scopes(client),
    )?;
    let Some(user) = p.users().authenticate(username, password).await? else {
        p.emit(Event::UserAuthFailed {
            client_id: client.id.to_string(),
            username: username.to_owned(),
        });
        // RFC 6749 §5.2: invalid_grant covers "invalid ... resource owner credentials".
        return Err(OAuthError::invalid_grant(
            "the resource owner credentials are invalid",
        ));
    };
    p.issue(Grant {
        client_id: client.id.clone(),
        subject: Some(user.subject),
        username: Some(user.username),
        scope,
        grant_type: GrantType::Password,
        family: FamilyId::generate(p.entropy()),
        family_issued_at: None,
        access_ttl: p.access_ttl(client),
        refresh_ttl: client
            .allows(GrantType::RefreshToken)
            .then(|| p.refresh_ttl(client)),
        binding,
    })
    .await
}
