//! Extension grants (RFC 6749 §4.5): grant types an embedder adds, named by an absolute URI,
//! without touching the core's enums.
//!
//! A handler ([`ExtensionGrant`]) is registered on the provider builder
//! ([`crate::provider::ProviderBuilder::extension_grant`]) under its URI. The token endpoint
//! then does for `grant_type=<that URI>` what it does for every grant: it authenticates the
//! client, refuses a client whose registered grant types do not include the URI
//! (`unauthorized_client`), and only then asks the handler. The handler reads the request's
//! parameters (and the store, if it needs to) and returns a [`GrantDecision`]; the core checks
//! it, mints and stores the tokens like any other grant's, and answers. A `grant_type` that is
//! neither a standard grant nor a registered URI stays `unsupported_grant_type`, and the
//! metadata's `grant_types_supported` lists the registered URIs.
//!
//! What the core enforces on a decision, so that no handler has to:
//! - the scope is within what the client may be granted (else `invalid_scope`);
//! - a lifetime the handler asks for can shorten the configured one (client, then grant,
//!   then server: [`crate::provider::Provider::access_ttl`]), never lengthen it;
//! - a refresh token is issued only when the client is also allowed `refresh_token`; its
//!   rotations follow the grant's configured lifetimes, like any family's, and stop once the
//!   provider's user authenticator no longer knows the subject;
//! - the audience (RFC 8707): the request's `resource` parameters unless the handler chose
//!   its own ([`GrantDecision::audience`]), each registered and allowed to the client (else
//!   `invalid_target`), and the scope within what those resources accept;
//! - a refresh token or ID token issued on its own ([`IssuedToken`]) is only for a resource
//!   owner the provider's user authenticator knows (else `invalid_request`), and a refresh
//!   token only to a client allowed `refresh_token`.

use crate::attached::Attached;
use crate::claims::ClaimsTarget;
use crate::client::{Client, ExtensionGrantType, GrantType};
use crate::clock::UnixTime;
use crate::entropy::Entropy;
use crate::error::OAuthError;
use crate::indicator::{AudienceSet, ResourceUri};
use crate::jose::JwsSigner;
use crate::oidc::IdTokenClaims;
use crate::params::Params;
use crate::proto::{TokenResponse, TokenType};
use crate::provider::Provider;
use crate::scope::{ScopeSet, resolve};
use crate::store::ProviderStore;
use crate::token::{Actor, Binding, Confirmation, FamilyId, Grant};
use crate::user::UserAuthenticator;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What an [`ExtensionGrant`] returns: its decision, later.
pub type GrantFuture<'a> =
    Pin<Box<dyn Future<Output = Result<GrantDecision, OAuthError>> + Send + 'a>>;

/// The handler of one extension grant, over the provider's store type `S`.
///
/// A handler that does not use the store implements it for every `S`:
///
/// ```
/// use latchkey_core::grant::extension::{ExtensionGrant, ExtensionRequest, GrantDecision, GrantFuture};
/// use latchkey_core::error::OAuthError;
///
/// /// `grant_type=urn:example:grant-type:service-account`: a token for the client itself,
/// /// without a refresh token.
/// struct ServiceAccount;
///
/// impl<S: Send + Sync + 'static> ExtensionGrant<S> for ServiceAccount {
///     fn exchange<'a>(&'a self, request: ExtensionRequest<'a, S>) -> GrantFuture<'a> {
///         Box::pin(async move { Ok(GrantDecision::for_client(request.resolve_scope()?)) })
///     }
/// }
/// ```
pub trait ExtensionGrant<S>: Send + Sync + 'static {
    /// Decides a token request whose client is authenticated and allowed this grant. An error
    /// is answered as it is (`invalid_grant` for a bad assertion, `invalid_request` for a
    /// missing parameter, ...).
    fn exchange<'a>(&'a self, request: ExtensionRequest<'a, S>) -> GrantFuture<'a>;
}

/// A token request for an extension grant, as its handler sees it.
#[non_exhaustive]
pub struct ExtensionRequest<'a, S> {
    /// The grant type requested.
    pub grant_type: ExtensionGrantType,
    /// The authenticated client, allowed this grant type.
    pub client: &'a Client,
    /// Every body parameter of the request (`grant_type`, `scope`, the client's credentials
    /// and the grant's own parameters), duplicates already refused.
    pub params: &'a Params,
    /// The `scope` parameter, parsed; `None` when absent.
    pub scope: Option<&'a ScopeSet>,
    /// The scopes this client may be granted.
    pub allowed_scopes: &'a ScopeSet,
    /// The scopes this client gets when it asks for none.
    pub default_scopes: &'a ScopeSet,
    /// The provider's store.
    pub store: &'a S,
    /// The provider's clock, read once for this request.
    pub now: UnixTime,
    /// The provider's random source.
    pub entropy: &'a dyn Entropy,
    /// The `resource` parameters (RFC 8707), parsed; empty when none was sent.
    pub resources: &'a [ResourceUri],
    /// The provider's issuer identifier, for JWTs it issued.
    pub issuer: &'a str,
    /// The provider's signer, to verify JWTs it issued (ID tokens, JWT access tokens).
    pub signer: Arc<dyn JwsSigner>,
}

impl<S> ExtensionRequest<'_, S> {
    /// The scope to grant under the usual rule: the requested scope when the client may have
    /// all of it (else `invalid_scope`), its default scopes when it asked for none.
    pub fn resolve_scope(&self) -> Result<ScopeSet, OAuthError> {
        resolve(self.scope, self.allowed_scopes, self.default_scopes)
    }
}

/// Which token a grant issues as its `access_token` member (RFC 8693 §2.2.1: the member
/// "carries the requested token", whatever its type).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssuedToken {
    /// An access token in the client's registered format (with a refresh token when
    /// [`GrantDecision::with_refresh`] asked for one and the client is allowed it).
    #[default]
    AccessToken,
    /// An access token that is an RFC 9068 JWT, whatever the client's registered format.
    JwtAccessToken,
    /// A refresh token alone, starting a new family bound to the client (`token_type`
    /// `N_A`); the subject must be a user the provider knows.
    RefreshToken,
    /// An ID token alone (OpenID Connect Core §2) for the client, signed by the provider
    /// (`token_type` `N_A`); the subject must be a user the provider knows, and nothing is
    /// stored.
    IdToken,
}

/// What an extension grant decided: for whom, which scope, and what to issue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantDecision {
    subject: Option<(String, String)>,
    scope: ScopeSet,
    refresh: bool,
    access_ttl: Option<u64>,
    refresh_ttl: Option<u64>,
    attached: Attached,
    audience: Option<AudienceSet>,
    actor: Option<Box<Actor>>,
    issued_token_type: Option<&'static str>,
    issue: IssuedToken,
}

impl GrantDecision {
    /// Tokens for the client itself, with no resource owner (as `client_credentials` issues).
    pub fn for_client(scope: ScopeSet) -> Self {
        Self {
            subject: None,
            scope,
            refresh: false,
            access_ttl: None,
            refresh_ttl: None,
            attached: Attached::new(),
            audience: None,
            actor: None,
            issued_token_type: None,
            issue: IssuedToken::AccessToken,
        }
    }

    /// Tokens on behalf of the resource owner `subject` (their stable identifier) whose user
    /// name is `username`.
    pub fn for_user(
        subject: impl Into<String>,
        username: impl Into<String>,
        scope: ScopeSet,
    ) -> Self {
        Self {
            subject: Some((subject.into(), username.into())),
            ..Self::for_client(scope)
        }
    }

    /// Asks for a refresh token too; issued only when the client is allowed `refresh_token`.
    pub fn with_refresh(mut self) -> Self {
        self.refresh = true;
        self
    }

    /// An access-token lifetime in seconds, shorter than the configured one (a longer one is
    /// cut to it; 0 counts as 1).
    pub fn access_ttl(mut self, secs: u64) -> Self {
        self.access_ttl = Some(secs);
        self
    }

    /// A refresh-token lifetime in seconds, shorter than the configured one (a longer one is
    /// cut to it; 0 counts as 1).
    pub fn refresh_ttl(mut self, secs: u64) -> Self {
        self.refresh_ttl = Some(secs);
        self
    }

    /// The resources the tokens are for, instead of the request's `resource` parameters (a
    /// token exchange also reads `audience`). The core checks them like any request's.
    pub fn audience(mut self, audience: AudienceSet) -> Self {
        self.audience = Some(audience);
        self
    }

    /// Who acts for the subject (RFC 8693 §4.1): the tokens carry it as `act`.
    pub fn with_actor(mut self, actor: Actor) -> Self {
        self.actor = Some(Box::new(actor));
        self
    }

    /// The `issued_token_type` of the response (RFC 8693 §2.2.1).
    pub fn issued_token_type(mut self, token_type: &'static str) -> Self {
        self.issued_token_type = Some(token_type);
        self
    }

    /// Which token to issue (an access token unless told otherwise).
    pub fn issue(mut self, token: IssuedToken) -> Self {
        self.issue = token;
        self
    }

    /// Attaches `attached` to the family (see [`crate::attached`]): its tokens carry it,
    /// across refresh rotations, and introspection shows it. A handler that authenticates a
    /// resource owner attaches here what a login step would; one for the client itself may
    /// too, since it is the application's own code deciding.
    pub fn with_attached(mut self, attached: Attached) -> Self {
        self.attached = attached;
        self
    }
}

/// The extension grants registered on a provider, by URI.
pub struct ExtensionGrants<S> {
    handlers: Vec<(ExtensionGrantType, Arc<dyn ExtensionGrant<S>>)>,
}

impl<S> Default for ExtensionGrants<S> {
    fn default() -> Self {
        Self {
            handlers: Vec::new(),
        }
    }
}

impl<S> ExtensionGrants<S> {
    /// Adds `handler` for `grant_type`; `false` (and nothing added) when one is registered
    /// already.
    pub(crate) fn register(
        &mut self,
        grant_type: ExtensionGrantType,
        handler: Arc<dyn ExtensionGrant<S>>,
    ) -> bool {
        if self.get(grant_type.as_str()).is_some() {
            return false;
        }
        self.handlers.push((grant_type, handler));
        true
    }

    /// The registered grant named `name`, compared byte for byte.
    pub fn get(&self, name: &str) -> Option<(ExtensionGrantType, &dyn ExtensionGrant<S>)> {
        self.handlers
            .iter()
            .find(|(grant_type, _)| grant_type.as_str() == name)
            .map(|(grant_type, handler)| (*grant_type, handler.as_ref()))
    }

    /// The registered grant types, in the order they were registered.
    pub fn grant_types(&self) -> impl Iterator<Item = ExtensionGrantType> + '_ {
        self.handlers.iter().map(|(grant_type, _)| *grant_type)
    }
}

/// Runs the handler of `grant_type` for an authenticated `client` allowed it, checks its
/// decision and issues the tokens.
#[allow(clippy::too_many_arguments)] // the token request's parts, as every grant takes them
pub async fn exchange<S, U>(
    p: &Provider<S, U>,
    client: &Client,
    grant_type: ExtensionGrantType,
    scope: Option<&ScopeSet>,
    params: &Params,
    resources: &[ResourceUri],
    binding: Option<Binding>,
    cnf: Option<Confirmation>,
) -> Result<TokenResponse, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let Some((_, handler)) = p.extension_grants().get(grant_type.as_str()) else {
        return Err(OAuthError::new(
            crate::error::ErrorCode::UnsupportedGrantType,
            format!("the {grant_type} grant is not enabled on this server"),
        ));
    };
    let allowed_scopes = p.allowed_scopes(client);
    let decision = handler
        .exchange(ExtensionRequest {
            grant_type,
            client,
            params,
            scope,
            allowed_scopes,
            default_scopes: p.default_scopes(client),
            store: p.store(),
            now: p.clock().now(),
            entropy: p.entropy(),
            resources,
            issuer: &p.config().issuer,
            signer: p.signer(),
        })
        .await?;
    // RFC 6749 §3.3: the server may issue less than requested, never more than the client
    // may be granted; a handler's scope passes the same bound as every other grant's.
    if !decision.scope.is_subset(allowed_scopes) {
        return Err(OAuthError::invalid_scope(format!(
            "scope not allowed for this client: {}",
            decision.scope.missing_from(allowed_scopes)
        )));
    }
    if matches!(
        decision.issue,
        IssuedToken::RefreshToken | IssuedToken::IdToken
    ) {
        let known = match &decision.subject {
            Some((subject, _)) => p.users().subject_exists(subject).await?,
            None => false,
        };
        if !known {
            return Err(OAuthError::invalid_request(
                "a refresh token or ID token is issued only for a user of this server",
            ));
        }
    }
    if decision.issue == IssuedToken::IdToken {
        return id_token_response(p, client, grant_type, decision).await;
    }
    if decision.issue == IssuedToken::RefreshToken && !client.allows(GrantType::RefreshToken) {
        return Err(OAuthError::invalid_request(
            "this client is not allowed the refresh_token grant, so no refresh token is issued to it",
        ));
    }
    // RFC 8707 §2: the same registry check as every grant's, on the handler's audience or
    // the request's.
    let targets: Vec<ResourceUri> = match &decision.audience {
        Some(chosen) => chosen
            .iter()
            .map(ResourceUri::parse)
            .collect::<Result<_, _>>()?,
        None => resources.to_vec(),
    };
    let (audience, granted_scope) = p.resources_for(&targets).await?.target(
        client,
        &targets,
        decision.scope,
        scope.is_some(),
    )?;
    let grant_type = GrantType::Extension(grant_type);
    let shorter = |asked: Option<u64>, configured: u64| {
        asked.map_or(configured, |secs| secs.max(1).min(configured))
    };
    let issue = decision.issue;
    let wants_refresh = decision.refresh || issue == IssuedToken::RefreshToken;
    let refresh_ttl = (wants_refresh && client.allows(GrantType::RefreshToken))
        .then(|| shorter(decision.refresh_ttl, p.refresh_ttl(client, grant_type)));
    let access_token_format = match issue {
        IssuedToken::JwtAccessToken => crate::access_jwt::AccessTokenFormat::Jwt,
        _ => client.metadata.access_token_format(),
    };
    let (subject, username) = decision.subject.unzip();
    let issued_token_type = decision.issued_token_type;
    let mut response = p
        .issue(Grant {
            client_id: client.id.clone(),
            subject,
            username,
            scope: granted_scope,
            grant_type,
            family: FamilyId::generate(p.entropy()),
            family_issued_at: None,
            access_ttl: shorter(decision.access_ttl, p.access_ttl(client, grant_type)),
            refresh_ttl,
            binding,
            attached: decision.attached,
            access_token_format,
            auth: None,
            cnf,
            audience,
            refresh_audience: None,
            actor: decision.actor,
        })
        .await?;
    response.issued_token_type = issued_token_type;
    if issue == IssuedToken::RefreshToken {
        // The family's access token was minted with it; nobody receives it, so it is
        // revoked at once and the refresh token goes out in its place.
        let Some(refresh) = response.refresh_token.take() else {
            return Err(OAuthError::server_error().with_detail("no refresh token was minted"));
        };
        p.store()
            .revoke_token(&response.access_token.digest())
            .await?;
        response.access_token = refresh;
        response.expires_in = refresh_ttl.unwrap_or_default();
        response.token_type = TokenType::NotApplicable;
    }
    Ok(response)
}

/// The response carrying an ID token alone (OpenID Connect Core §2) for `client` about the
/// decision's subject: the claims its scope releases into an ID token issued without an
/// access token, signed like every ID token of the provider. Nothing is stored.
async fn id_token_response<S, U>(
    p: &Provider<S, U>,
    client: &Client,
    grant_type: ExtensionGrantType,
    decision: GrantDecision,
) -> Result<TokenResponse, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    if !p.config().oidc {
        return Err(OAuthError::invalid_request(
            "this server does not issue ID tokens (OpenID Connect is off)",
        ));
    }
    let Some((subject, _)) = &decision.subject else {
        return Err(OAuthError::invalid_request(
            "an ID token is issued only for a user",
        ));
    };
    let mut claims = IdTokenClaims::for_grant(p, client, subject, None, None)?;
    claims
        .add_user_claims(p, subject, ClaimsTarget::IdTokenOnly, &decision.scope, None)
        .await?;
    let id_token = crate::oidc::id_token::mint(p, client, claims, None, None)?;
    p.emit(crate::events::Event::TokenIssued {
        client_id: client.id.to_string(),
        grant_type: GrantType::Extension(grant_type),
        subject: Some(subject.clone()),
        with_refresh: false,
    });
    Ok(TokenResponse {
        token_type: TokenType::NotApplicable,
        access_token: crate::secret::Secret::new(id_token),
        expires_in: p.config().id_token_ttl,
        refresh_token: None,
        scope: decision.scope,
        id_token: None,
        extra: crate::extras::ExtraMembers::new(),
        issued_token_type: decision.issued_token_type,
    })
}
