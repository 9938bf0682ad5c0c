//! The authorization request (RFC 6749 §4.1.1, §4.2.1, RFC 7636 §4.3, OpenID Connect Core
//! §3.1.2.1), parsed once into an [`AuthorizeRequest`] from the query of a `GET` or the form
//! body of a `POST`.
//!
//! The order of the checks is the order of RFC 6749 §4.1.2.1: the client and the redirect URI
//! first, whose errors are shown to the user and never redirected; every later error goes back
//! to the client's (now trusted) redirect URI with `state` and `iss`.

use super::oidc::{self, OidcParams};
use super::{AuthorizeOutcome, error_redirect};
use crate::claims::ClaimsRequest;
use crate::client::{Client, ClientType, GrantType};
use crate::config::Config;
use crate::error::{ErrorCode, OAuthError};
use crate::http::{HttpRequest, Method};
use crate::params::Params;
use crate::pkce::CodeChallenge;
use crate::provider::Provider;
use crate::redirect::{RegisteredRedirectUri, ResponseMode};
use crate::scope::{ScopeSet, resolve};
use crate::store::ProviderStore;
use crate::token::Binding;
use crate::user::UserAuthenticator;

/// What the client asked to receive: RFC 6749's `code` and `token`, and the combinations of
/// OAuth 2.0 Multiple Response Type Encoding Practices §3 and §5 that OpenID Connect uses for
/// its implicit (§3.2) and hybrid (§3.3) flows. The values of a combination are compared as a
/// set: `token id_token` and `id_token token` are the same response type (§2: "the order of
/// the values … does not matter").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseType {
    /// `code`: an authorization code (RFC 6749 §4.1).
    Code,
    /// `token`: an access token in the fragment, the implicit grant (RFC 6749 §4.2).
    Token,
    /// `id_token`: an ID token only (OpenID Connect Core §3.2).
    IdToken,
    /// `id_token token`: an ID token and an access token (OpenID Connect Core §3.2).
    IdTokenToken,
    /// `code id_token`: a code and an ID token (OpenID Connect Core §3.3).
    CodeIdToken,
    /// `code token`: a code and an access token (OpenID Connect Core §3.3).
    CodeToken,
    /// `code id_token token`: all three (OpenID Connect Core §3.3).
    CodeIdTokenToken,
}

impl ResponseType {
    /// Every response type, in the order the metadata lists them.
    pub const ALL: [ResponseType; 7] = [
        Self::Code,
        Self::Token,
        Self::IdToken,
        Self::IdTokenToken,
        Self::CodeIdToken,
        Self::CodeToken,
        Self::CodeIdTokenToken,
    ];

    /// Parses `response_type`: space-separated values in any order, each at most once.
    /// `None` for anything else (`unsupported_response_type`).
    pub fn parse(raw: &str) -> Option<Self> {
        let (mut code, mut token, mut id_token) = (false, false, false);
        for value in raw.split(' ') {
            let seen = match value {
                "code" => &mut code,
                "token" => &mut token,
                "id_token" => &mut id_token,
                _ => return None,
            };
            if std::mem::replace(seen, true) {
                return None;
            }
        }
        Self::ALL
            .into_iter()
            .find(|t| (t.has_code(), t.has_token(), t.has_id_token()) == (code, token, id_token))
    }

    /// The wire name, in the order of the specifications.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Token => "token",
            Self::IdToken => "id_token",
            Self::IdTokenToken => "id_token token",
            Self::CodeIdToken => "code id_token",
            Self::CodeToken => "code token",
            Self::CodeIdTokenToken => "code id_token token",
        }
    }

    /// Whether the response carries an authorization code.
    pub fn has_code(self) -> bool {
        matches!(
            self,
            Self::Code | Self::CodeIdToken | Self::CodeToken | Self::CodeIdTokenToken
        )
    }

    /// Whether the response carries an access token.
    pub fn has_token(self) -> bool {
        matches!(
            self,
            Self::Token | Self::IdTokenToken | Self::CodeToken | Self::CodeIdTokenToken
        )
    }

    /// Whether the response carries an ID token.
    pub fn has_id_token(self) -> bool {
        matches!(
            self,
            Self::IdToken | Self::IdTokenToken | Self::CodeIdToken | Self::CodeIdTokenToken
        )
    }

    /// Whether a token (access or ID) comes back through the browser: such a response is
    /// never put in a query (Multiple Response Types §3, §5), and is the implicit grant's.
    pub fn returns_token_in_front_channel(self) -> bool {
        self.has_token() || self.has_id_token()
    }

    /// The grants this response type runs, each of which the server and the client must
    /// allow: `authorization_code` for a code, `implicit` for a token or an ID token from the
    /// authorization endpoint (OpenID Connect Dynamic Client Registration §2 pairs
    /// `response_types` with `grant_types` the same way).
    pub fn grants(self) -> impl Iterator<Item = GrantType> {
        [
            self.has_code().then_some(GrantType::AuthorizationCode),
            self.returns_token_in_front_channel()
                .then_some(GrantType::Implicit),
        ]
        .into_iter()
        .flatten()
    }

    /// Whether the server-wide switches allow this response type: every grant it runs is
    /// enabled ([`Config::grant_enabled`]), and OpenID Connect is on ([`Config::oidc`]) for
    /// one that returns an ID token. The metadata lists exactly these.
    pub fn enabled_in(self, config: &Config) -> bool {
        self.grants().all(|grant| config.grant_enabled(grant))
            && (!self.has_id_token() || config.oidc)
    }

    /// The response mode used when the request names none: `query` for `code`, `fragment`
    /// for everything else (Multiple Response Types §2.1, §3, §5).
    pub fn default_mode(self) -> ResponseMode {
        if self.returns_token_in_front_channel() {
            ResponseMode::Fragment
        } else {
            ResponseMode::Query
        }
    }
}

/// A validated authorization request: the client, a redirect URI registered for it, and every
/// parameter checked, with everything a login or consent page needs.
///
/// Only the core makes one ([`Provider::authorize`] parses it; a [`super::Pending`] brings one
/// back after login or consent), so holding one means every rule of the request has passed.
#[derive(Clone, Debug)]
pub struct AuthorizeRequest {
    pub(super) client: Client,
    pub(super) response_type: ResponseType,
    pub(super) redirect_uri: RegisteredRedirectUri,
    pub(super) response_mode: ResponseMode,
    pub(super) scope: ScopeSet,
    pub(super) state: Option<String>,
    pub(super) challenge: Option<CodeChallenge>,
    pub(super) nonce: Option<String>,
    pub(super) prompt: Vec<String>,
    pub(super) max_age: Option<u64>,
    /// The other OpenID Connect parameters.
    pub(super) oidc: OidcParams,
    /// The resources the tokens are for (RFC 8707 §2.1), checked against the registry.
    pub(super) audience: crate::indicator::AudienceSet,
    /// Where implicit-grant tokens may be used, for clients that bind their tokens; taken from
    /// the HTTP request being answered.
    pub(super) binding: Option<Binding>,
    /// Whether the HTTP request being answered is a POST, answered with 303 (RFC 9700 §4.12).
    pub(super) see_other: bool,
    /// The pushed request (RFC 9126) this one was loaded from, used up when it is decided.
    pub(super) pushed: Option<super::pushed::Pushed>,
    /// The thumbprint of the DPoP key the code is bound to (RFC 9449 §10 `dpop_jkt`).
    pub(super) dpop_jkt: Option<String>,
}

impl AuthorizeRequest {
    /// The requesting client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// What the client asked for.
    pub fn response_type(&self) -> ResponseType {
        self.response_type
    }

    /// Where the response goes: registered for [`Self::client`].
    pub fn redirect_uri(&self) -> &RegisteredRedirectUri {
        &self.redirect_uri
    }

    /// Query, fragment or form post.
    pub fn response_mode(&self) -> ResponseMode {
        self.response_mode
    }

    /// The resources (RFC 8707) the tokens will be for: a consent page shows them.
    pub fn audience(&self) -> &crate::indicator::AudienceSet {
        &self.audience
    }

    /// The scope the user is asked to approve.
    pub fn scope(&self) -> &ScopeSet {
        &self.scope
    }

    /// The client's `state`, echoed back.
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// The PKCE challenge.
    pub fn challenge(&self) -> Option<&CodeChallenge> {
        self.challenge.as_ref()
    }

    /// The DPoP key thumbprint the code will be bound to (RFC 9449 §10), if the client sent
    /// `dpop_jkt`.
    pub fn dpop_jkt(&self) -> Option<&str> {
        self.dpop_jkt.as_deref()
    }

    /// The OpenID Connect `nonce`.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }

    /// The `prompt` values (`none`, `login`, `consent`, `select_account`).
    pub fn prompt(&self) -> &[String] {
        &self.prompt
    }

    /// `max_age` (OpenID Connect Core §3.1.2.1): the oldest login, in seconds, the client
    /// accepts; an older one must be repeated.
    pub fn max_age(&self) -> Option<u64> {
        self.max_age
    }

    /// Whether the client asked that the user be asked to log in again (`prompt=login`).
    pub fn prompts_login(&self) -> bool {
        self.prompts("login")
    }

    pub(super) fn prompts(&self, value: &str) -> bool {
        self.prompt.iter().any(|p| p == value)
    }

    /// `login_hint` (OpenID Connect Core §3.1.2.1): the identifier the user may log in
    /// with, to pre-fill the login page. A hint only: it proves nothing.
    pub fn login_hint(&self) -> Option<&str> {
        self.oidc.login_hint.as_deref()
    }

    /// The `sub` of the request's `id_token_hint`, verified as an ID token we issued to this
    /// client: the user the client expects to be logged in.
    pub fn hint_subject(&self) -> Option<&str> {
        self.oidc.hint_subject.as_deref()
    }

    /// The `sub` the `claims` parameter asks the ID token to have (OpenID Connect Core
    /// §5.5.1: "If the sub (subject) Claim is requested with a specific value for the ID
    /// Token, the Authorization Server MUST only send a positive response if the End-User
    /// identified by that sub value has an active session with the Authorization Server or
    /// has been Authenticated as a result of the request"). Like an `id_token_hint`.
    pub fn requested_subject(&self) -> Option<&str> {
        self.oidc
            .claims
            .as_ref()?
            .for_target(crate::claims::ClaimsTarget::IdToken)
            .get("sub")?
            .value
            .as_ref()?
            .as_str()
    }

    /// `ui_locales`: the languages the user prefers for the pages, most preferred first.
    pub fn ui_locales(&self) -> &[String] {
        &self.oidc.ui_locales
    }

    /// `claims_locales`: the languages the user prefers for claims, most preferred first.
    pub fn claims_locales(&self) -> &[String] {
        &self.oidc.claims_locales
    }

    /// `acr_values`: the authentication context classes the client would like, most
    /// preferred first (a voluntary request; see [`super::PASSWORD_ACR`]).
    pub fn acr_values(&self) -> &[String] {
        &self.oidc.acr_values
    }

    /// `display`: how the client would like the pages shown (`page`, `popup`, `touch`,
    /// `wap`).
    pub fn display(&self) -> Option<&str> {
        self.oidc.display.as_deref()
    }

    /// The `claims` request parameter (OpenID Connect Core §5.5), when one was sent.
    pub fn claims(&self) -> Option<&ClaimsRequest> {
        self.oidc.claims.as_ref()
    }
}

/// Why a request was refused: before its redirect URI is trusted (an error page), or after
/// (an error that goes back to the client). The pushed authorization request endpoint answers
/// both as JSON (RFC 9126 §2.3).
#[derive(Debug)]
pub(super) enum Refusal {
    /// Shown to the user, never redirected (RFC 6749 §4.1.2.1).
    Page(OAuthError),
    /// Sent back to the request's redirect URI.
    Redirect(Box<AuthorizeRequest>, OAuthError),
}

impl Refusal {
    /// The error, wherever it would have gone.
    pub(super) fn error(self) -> OAuthError {
        match self {
            Self::Page(err) | Self::Redirect(_, err) => err,
        }
    }

    /// The outcome `/authorize` answers.
    pub(super) fn outcome<S: ProviderStore, U: UserAuthenticator>(
        self,
        p: &Provider<S, U>,
    ) -> AuthorizeOutcome {
        match self {
            Self::Page(err) => AuthorizeOutcome::ErrorPage(err),
            Self::Redirect(request, err) => error_redirect(p, &request, &err),
        }
    }
}

/// Parses and validates everything but the user; errors come back as the outcome to return.
/// A `request_uri` brings back a pushed request (see [`super::pushed`]); a client that must
/// push its requests gets nothing else.
pub(super) async fn parse<S, U>(
    p: &Provider<S, U>,
    req: &HttpRequest,
) -> Result<AuthorizeRequest, AuthorizeOutcome>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let page = |e: OAuthError| AuthorizeOutcome::ErrorPage(e);
    // OpenID Connect Core §3.1.2.1: "Authorization Servers MUST support the use of the HTTP
    // GET and POST methods"; a POST carries the parameters form-encoded.
    let raw: &[u8] = match req.method {
        Method::Get | Method::Head => req.query.as_bytes(),
        Method::Post if req.has_form_body() => &req.body,
        Method::Post => {
            return Err(page(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            )));
        }
        _ => {
            return Err(page(
                OAuthError::invalid_request("the authorization endpoint accepts GET and POST")
                    .with_status(405)
                    .with_header("allow", "GET, POST"),
            ));
        }
    };
    let params = Params::parse(raw).map_err(page)?;
    // Our own `request_uri`s are pushed requests; any other (a request object by reference,
    // OpenID Connect Core §6.2) is refused as unsupported by the validation below.
    if params
        .get("request_uri")
        .is_some_and(|uri| uri.starts_with(super::pushed::REQUEST_URI_PREFIX))
    {
        return super::pushed::load(p, &params, req).await;
    }
    let request = validate_any(p, &params, req)
        .await
        .map_err(|refusal| refusal.outcome(p))?;
    // RFC 9126 §5: "the authorization server … MUST reject authorization requests" that do
    // not use PAR when it (or the client's registration, §6) requires them.
    if super::pushed::required(p, &request.client) {
        return Err(error_redirect(
            p,
            &request,
            &OAuthError::invalid_request(
                "this client must push its authorization requests (PAR, RFC 9126)",
            ),
        ));
    }
    Ok(request)
}

/// Validates the authorization parameters `params` as sent with `req`, the ones of the
/// signed request object in `request` when there is one (see [`super::object`]), and refuses
/// a request without one from a client that must sign its requests. What `/authorize`, the
/// PAR endpoint and a pushed request's load all call.
pub(super) async fn validate_any<S, U>(
    p: &Provider<S, U>,
    params: &Params,
    req: &HttpRequest,
) -> Result<AuthorizeRequest, Refusal>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let resolved = super::object::resolve(p, params)
        .await
        .map_err(Refusal::Page)?;
    let signed = resolved.is_some();
    let request = validate(p, resolved.as_ref().unwrap_or(params), req).await?;
    // RFC 9101 §10.5: "the authorization server MUST reject authorization requests … that
    // do not use a Request Object" when the client registered require_signed_request_object.
    if !signed && super::object::required(p, &request.client) {
        return Err(Refusal::Redirect(
            Box::new(request),
            OAuthError::invalid_request(
                "this client must send its authorization requests as signed request objects (JAR, RFC 9101)",
            ),
        ));
    }
    Ok(request)
}

/// Validates the authorization parameters `params` (from the query, the form body, a
/// request object or a pushed request) as sent with `req`: the one path every authorization
/// request takes, through [`validate_any`].
pub(super) async fn validate<S, U>(
    p: &Provider<S, U>,
    params: &Params,
    req: &HttpRequest,
) -> Result<AuthorizeRequest, Refusal>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let page = Refusal::Page;
    let Some(client_id) = params.get("client_id") else {
        return Err(page(OAuthError::invalid_request("client_id is missing")));
    };
    // A malformed id is refused before it is looked up or reaches a log line.
    if crate::client::ClientId::parse(client_id).is_err() {
        return Err(page(OAuthError::invalid_request("malformed client_id")));
    }
    let client = match p.store().get_client(client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => return Err(page(OAuthError::invalid_request("unknown client_id"))),
        Err(err) => return Err(page(err.into())),
    };
    let redirect_uri =
        RegisteredRedirectUri::resolve(&client.redirect_uris, params.get("redirect_uri"))
            .map_err(page)?;

    // From here on the redirect URI is trusted: errors go back to the client.
    let response_type = params.get("response_type").map(ResponseType::parse);
    let requested_mode = params.get("response_mode").map(ResponseMode::parse);
    let default_mode = response_type
        .flatten()
        .map_or(ResponseMode::Query, ResponseType::default_mode);
    let mut request = AuthorizeRequest {
        client,
        response_type: ResponseType::Code,
        redirect_uri,
        // An unusable requested mode answers its error in the response type's default.
        response_mode: requested_mode.flatten().unwrap_or(default_mode),
        scope: ScopeSet::empty(),
        state: params.get("state").map(str::to_owned),
        challenge: None,
        nonce: params.get("nonce").map(str::to_owned),
        prompt: params.get("prompt").map(split_prompt).unwrap_or_default(),
        max_age: None,
        oidc: OidcParams::default(),
        audience: crate::indicator::AudienceSet::empty(),
        binding: None,
        see_other: req.method == Method::Post,
        pushed: None,
        dpop_jkt: None,
    };
    let fail = |request: &AuthorizeRequest, err: OAuthError| {
        Refusal::Redirect(Box::new(request.clone()), err)
    };

    if request.state.as_ref().is_some_and(|s| s.len() > 2048) {
        request.state = None;
        return Err(fail(
            &request,
            OAuthError::invalid_request("state is too long"),
        ));
    }
    request.response_type = match response_type {
        Some(Some(response_type)) => response_type,
        Some(None) => {
            return Err(fail(
                &request,
                OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "response_type must be code, or where enabled token, id_token or a \
                     combination",
                ),
            ));
        }
        None => {
            return Err(fail(
                &request,
                OAuthError::invalid_request("response_type is missing"),
            ));
        }
    };
    if requested_mode.is_some_and(|m| m.is_none()) {
        return Err(fail(
            &request,
            OAuthError::invalid_request("response_mode must be query, fragment or form_post"),
        ));
    }
    // RFC 6749 §4.2.2 and Multiple Response Types §3, §5: tokens are never delivered in a
    // query, which servers log; "the default Response Mode … is the fragment encoding".
    if request.response_type.returns_token_in_front_channel()
        && request.response_mode == ResponseMode::Query
    {
        request.response_mode = ResponseMode::Fragment;
        return Err(fail(
            &request,
            OAuthError::invalid_request(format!(
                "response_mode=query is not allowed with response_type={}",
                request.response_type.as_str()
            )),
        ));
    }
    for grant in request.response_type.grants() {
        // RFC 6749 §4.2.2.1 "unsupported_response_type": the implicit grant is switched off
        // server-wide (the metadata does not list its response types either), whatever the
        // client is allowed.
        if !p.config().grant_enabled(grant) {
            return Err(fail(
                &request,
                OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    format!("the {grant} grant is not enabled on this server"),
                ),
            ));
        }
        if !request.client.allows(grant) {
            return Err(fail(
                &request,
                OAuthError::unauthorized_client(format!(
                    "this client is not allowed the {grant} grant"
                )),
            ));
        }
    }
    if !request.response_type.enabled_in(p.config()) {
        return Err(fail(
            &request,
            OAuthError::new(
                ErrorCode::UnsupportedResponseType,
                "OpenID Connect is not enabled on this server",
            ),
        ));
    }
    request.max_age = match params.get("max_age").map(str::parse::<u64>).transpose() {
        Ok(max_age) => max_age,
        Err(_) => {
            return Err(fail(
                &request,
                OAuthError::invalid_request("max_age must be a non-negative integer"),
            ));
        }
    };
    // OpenID Connect Core §3.1.2.1 defines `none`, `login`, `consent` and `select_account`;
    // any other value is an error (the space-delimited list is "case sensitive").
    if request.prompt.len() > PROMPT_VALUES.len()
        || request
            .prompt
            .iter()
            .any(|v| !PROMPT_VALUES.contains(&v.as_str()))
    {
        request.prompt.clear();
        return Err(fail(
            &request,
            OAuthError::invalid_request("prompt must be none, login, consent or select_account"),
        ));
    }
    // §3.1.2.1: "If this parameter contains none with any other value, an error is returned."
    if request.prompts("none") && request.prompt.len() > 1 {
        return Err(fail(
            &request,
            OAuthError::invalid_request("prompt=none cannot be combined"),
        ));
    }
    let requested_scope = match params.get("scope").map(ScopeSet::parse).transpose() {
        Ok(scope) => scope,
        Err(err) => return Err(fail(&request, err)),
    };
    request.scope = match resolve(
        requested_scope.as_ref(),
        p.allowed_scopes(&request.client),
        p.default_scopes(&request.client),
    ) {
        Ok(scope) => scope,
        Err(err) => return Err(fail(&request, err)),
    };
    // RFC 8707 §2: each `resource` must be one this client may get tokens for
    // (`invalid_target`), and the scope one those resources accept.
    let scope = std::mem::replace(&mut request.scope, ScopeSet::empty());
    let targeted = match crate::indicator::requested(params) {
        Ok(asked) => match p.resources_for(&asked).await {
            Ok(registry) => {
                registry.target(&request.client, &asked, scope, requested_scope.is_some())
            }
            Err(err) => Err(err),
        },
        Err(err) => Err(err),
    };
    match targeted {
        Ok((audience, scope)) => {
            request.audience = audience;
            request.scope = scope;
        }
        Err(err) => return Err(fail(&request, err)),
    }
    if request.response_type.has_code() {
        request.challenge = match params.get("code_challenge") {
            Some(value) => match CodeChallenge::parse(
                value,
                params.get("code_challenge_method"),
                p.config().allow_plain_pkce,
            ) {
                Ok(challenge) => Some(challenge),
                Err(err) => return Err(fail(&request, err)),
            },
            None if params.contains("code_challenge_method") => {
                return Err(fail(
                    &request,
                    OAuthError::invalid_request("code_challenge_method without code_challenge"),
                ));
            }
            None => None,
        };
        // RFC 9700 §2.1.1: public clients MUST use PKCE; a setting extends that to all.
        let required =
            request.client.client_type() == ClientType::Public || p.config().require_pkce;
        if required && request.challenge.is_none() {
            return Err(fail(
                &request,
                OAuthError::invalid_request("code_challenge is required (PKCE, S256)"),
            ));
        }
    }
    // RFC 9449 §10: `dpop_jkt` binds the code to a key: the base64url SHA-256 thumbprint
    // (43 characters). Read while DPoP is on and the response has a code.
    if let Some(jkt) = params.get("dpop_jkt")
        && p.config().dpop.enabled
        && request.response_type.has_code()
    {
        let well_formed = jkt.len() == 43
            && jkt
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !well_formed {
            return Err(fail(
                &request,
                OAuthError::invalid_request("dpop_jkt must be a base64url SHA-256 thumbprint"),
            ));
        }
        request.dpop_jkt = Some(jkt.to_owned());
    }
    if request.nonce.as_ref().is_some_and(|n| n.len() > 512) {
        return Err(fail(
            &request,
            OAuthError::invalid_request("nonce is too long"),
        ));
    }
    if request.response_type.has_id_token() {
        // OpenID Connect Core §3.2.2.1 and §3.3.2.1: the scope "MUST contain the openid
        // scope value"; an ID token is an OpenID Connect response.
        if !crate::oidc::is_openid(&request.scope) {
            return Err(fail(
                &request,
                OAuthError::invalid_request(format!(
                    "response_type={} requires the openid scope",
                    request.response_type.as_str()
                )),
            ));
        }
        // §3.2.2.1: "nonce … REQUIRED" when an ID token comes from the authorization
        // endpoint, so a replayed ID token is caught by the client.
        if request.nonce.as_deref().is_none_or(str::is_empty) {
            return Err(fail(
                &request,
                OAuthError::invalid_request(format!(
                    "nonce is required with response_type={}",
                    request.response_type.as_str()
                )),
            ));
        }
    }
    request.oidc = match oidc::parse(p, &request.client, params) {
        Ok(oidc) => oidc,
        Err(err) => return Err(fail(&request, err)),
    };
    request.binding = binding_of(p, &request.client, req);
    Ok(request)
}

/// The values of `prompt` (OpenID Connect Core §3.1.2.1).
pub(super) const PROMPT_VALUES: [&str; 4] = ["none", "login", "consent", "select_account"];

/// The `prompt` parameter's space-separated values.
pub(super) fn split_prompt(raw: &str) -> Vec<String> {
    raw.split(' ')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Where implicit-grant tokens issued in answer to `req` may be used, for a client that binds
/// its tokens.
pub(super) fn binding_of<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    client: &Client,
    req: &HttpRequest,
) -> Option<Binding> {
    client
        .bind_tokens
        .then(|| Binding::of(req, &p.config().trusted_proxies))
}
