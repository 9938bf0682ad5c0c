//! The client credentials grant (RFC 6749 §4.4).

use crate::client::{Client, GrantType};
use crate::error::OAuthError;
use crate::indicator::ResourceUri;
use crate::proto::TokenResponse;
use crate::provider::Provider;
use crate::scope::{ScopeSet, resolve};
use crate::store::ProviderStore;
use crate::token::{Binding, Confirmation, FamilyId, Grant};
use crate::user::UserAuthenticator;

/// Issues an access token to an authenticated confidential client.
pub async fn exchange<S, U>(
    p: &Provider<S, U>,
    client: &Client,
    requested: Option<&ScopeSet>,
    resources: &[ResourceUri],
    binding: Option<Binding>,
    cnf: Option<Confirmation>,
) -> Result<TokenResponse, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let scope = resolve(
        requested,
        p.allowed_scopes(client),
        p.default_scopes(client),
    )?;
    // RFC 8707 §2: the resources, and the scope they accept.
    let (audience, scope) =
        p.resources_for(resources)
            .await?
            .target(client, resources, scope, requested.is_some())?;
    p.issue(Grant {
        client_id: client.id.clone(),
        subject: None,
        username: None,
        scope,
        grant_type: GrantType::ClientCredentials,
        family: FamilyId::generate(p.entropy()),
        family_issued_at: None,
        access_ttl: p.access_ttl(client, GrantType::ClientCredentials),
        // RFC 6749 §4.4.3: "A refresh token SHOULD NOT be included."
        refresh_ttl: None,
        binding,
        // No resource owner authorized anything: nothing is attached.
        attached: crate::attached::Attached::new(),
        access_token_format: client.metadata.access_token_format(),
        auth: None,
        cnf,
        audience,
        refresh_audience: None,
        actor: None,
    })
    .await
}
