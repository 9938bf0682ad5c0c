//! The resource owner password credentials grant (RFC 6749 §4.3).
//!
//! RFC 9700 §2.4 says it "MUST NOT be used": it exists for migrations (the seeds all had it)
//! and is off unless a client is explicitly allowed `password`.

use crate::client::{Client, GrantType};
use crate::error::OAuthError;
use crate::indicator::Asked;
use crate::login::PasswordCheck;
use crate::proto::TokenResponse;
use crate::provider::Provider;
use crate::scope::resolve;
use crate::secret::Secret;
use crate::store::ProviderStore;
use crate::token::{Binding, Confirmation, FamilyId, Grant};
use crate::user::UserAuthenticator;
use std::net::IpAddr;

/// Checks the resource owner's credentials (through [`Provider::check_password`]) and issues
/// tokens.
#[allow(clippy::too_many_arguments)] // the token request's parts, as every grant takes them
pub async fn exchange<S, U>(
    p: &Provider<S, U>,
    client: &Client,
    username: &str,
    password: &Secret,
    asked: Asked<'_>,
    binding: Option<Binding>,
    client_ip: Option<IpAddr>,
    cnf: Option<Confirmation>,
) -> Result<TokenResponse, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    // Scope first: a bad scope should not cost an Argon2 verification.
    let scope = resolve(
        asked.scope,
        p.allowed_scopes(client),
        p.default_scopes(client),
    )?;
    // RFC 8707 §2: the resources, and the scope they accept.
    let (audience, scope) = p.resources_for(asked.resources).await?.target(
        client,
        asked.resources,
        scope,
        asked.scope.is_some(),
    )?;
    // RFC 6749 §4.3.2: "the authorization server MUST protect the endpoint against brute
    // force attacks": check_password is the one path with the backoff and the audit.
    let user = match p
        .check_password(username, password, client_ip, client.id.as_str())
        .await?
    {
        PasswordCheck::Ok(user) => user,
        PasswordCheck::Throttled(throttled) => return Err(throttled.to_error()),
        // RFC 6749 §5.2: invalid_grant covers "invalid ... resource owner credentials".
        _ => {
            return Err(OAuthError::invalid_grant(
                "the resource owner credentials are invalid",
            ));
        }
    };
    p.issue(Grant {
        client_id: client.id.clone(),
        subject: Some(user.subject),
        username: Some(user.username),
        scope,
        grant_type: GrantType::Password,
        family: FamilyId::generate(p.entropy()),
        family_issued_at: None,
        access_ttl: p.access_ttl(client, GrantType::Password),
        refresh_ttl: client
            .allows(GrantType::RefreshToken)
            .then(|| p.refresh_ttl(client, GrantType::Password)),
        binding,
        // What the authenticator attached to this user (see crate::attached).
        attached: user.attached,
        access_token_format: client.metadata.access_token_format(),
        auth: None,
        cnf,
        audience,
        refresh_audience: None,
        actor: None,
    })
    .await
}
