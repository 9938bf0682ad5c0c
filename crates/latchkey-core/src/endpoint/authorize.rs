//! The authorization endpoint (RFC 6749 §3.1, §4.1.1, §4.2.1), with PKCE (RFC 7636), exact
//! redirect matching (RFC 9700 §2.1) and the `iss` response parameter (RFC 9207).
//!
//! The core never renders a page or calls back into the web framework. [`handle`] returns an
//! [`AuthorizeOutcome`]: a redirect to send, an error page to show, or an interaction the
//! embedder must carry out (log the user in, ask for consent) before calling again with the
//! user and their [`Decision`]. The consent form re-posts the original parameters, which are
//! validated again from scratch: nothing is trusted from the first round.
//!
//! RFC 6749 §4.1.2.1: "If the request fails due to a missing, invalid, or mismatching
//! redirection URI, or if the client identifier is missing or invalid, the authorization
//! server SHOULD inform the resource owner of the error and MUST NOT automatically redirect
//! the user-agent to the invalid redirection URI." Those become [`AuthorizeOutcome::ErrorPage`];
//! every later error is redirected to the client with `state` and `iss`.

use crate::client::{Client, ClientType, GrantType};
use crate::clock::UnixTime;
use crate::entropy::random_token;
use crate::error::{ErrorCode, OAuthError};
use crate::events::Event;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::params::Params;
use crate::pkce::Challenge;
use crate::provider::Provider;
use crate::redirect::{ResponseMode, matches_registered, redirect};
use crate::scope::{ScopeSet, resolve};
use crate::secret::Secret;
use crate::store::ProviderStore;
use crate::token::{Binding, CodeRecord, FamilyId, Grant, TOKEN_BYTES};
use crate::user::{AuthenticatedUser, UserAuthenticator};

/// What the client asked to receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseType {
    /// `code`: an authorization code (RFC 6749 §4.1).
    Code,
    /// `token`: an access token in the fragment, the implicit grant (RFC 6749 §4.2).
    Token,
}

/// A validated authorization request, with everything a login or consent page needs.
#[derive(Clone, Debug)]
pub struct AuthorizationRequest {
    /// The requesting client.
    pub client: Client,
    /// What the client asked for.
    pub response_type: ResponseType,
    /// Where the response goes.
    pub redirect_uri: String,
    /// Whether `redirect_uri` was in the request (rather than taken from the registration).
    pub redirect_uri_sent: bool,
    /// Query or fragment.
    pub response_mode: ResponseMode,
    /// The scope the user is asked to approve.
    pub scope: ScopeSet,
    /// The client's `state`, echoed back.
    pub state: Option<String>,
    /// The PKCE challenge.
    pub challenge: Option<Challenge>,
    /// The OpenID Connect `nonce`.
    pub nonce: Option<String>,
    /// The `prompt` values (`none`, `login`, `consent`, `select_account`).
    pub prompt: Vec<String>,
    /// `max_age` (OpenID Connect Core §3.1.2.1): the oldest login, in seconds, the client
    /// accepts; an older one must be repeated.
    pub max_age: Option<u64>,
    /// The request's own parameters, to carry through login and consent forms unchanged.
    pub params: Params,
    /// Where implicit-grant tokens may be used, for clients that bind their tokens.
    pub binding: Option<Binding>,
    see_other: bool,
}

impl AuthorizationRequest {
    /// Whether the client asked that the user be asked to log in again (`prompt=login`).
    pub fn prompts_login(&self) -> bool {
        self.prompt.iter().any(|p| p == "login")
    }

    fn prompts(&self, value: &str) -> bool {
        self.prompt.iter().any(|p| p == value)
    }
}

/// Who is logged in, and how recently: what `prompt=login` and `max_age` are checked against.
#[derive(Clone, Copy, Debug)]
pub struct Authentication<'a> {
    /// The logged-in user.
    pub user: &'a AuthenticatedUser,
    /// When the user last entered their credentials, if known (a server-side session keeps it).
    /// Unknown satisfies no `max_age`.
    pub auth_time: Option<UnixTime>,
    /// Whether the user completed a login for this very authorization request: the only
    /// login that satisfies `prompt=login`.
    pub fresh: bool,
}

impl<'a> Authentication<'a> {
    /// `user`, logged in at an unknown time and not for this request: enough unless the
    /// client sent `prompt=login` or `max_age`.
    pub fn of(user: &'a AuthenticatedUser) -> Self {
        Self {
            user,
            auth_time: None,
            fresh: false,
        }
    }

    /// Whether `request` wants the user to log in again despite this authentication.
    fn too_old_for(&self, request: &AuthorizationRequest, now: UnixTime) -> bool {
        if self.fresh {
            return false;
        }
        // OpenID Connect Core §3.1.2.1, prompt=login: "The Authorization Server SHOULD
        // prompt the End-User for reauthentication." Only a login made for this request counts.
        if request.prompts("login") {
            return true;
        }
        // max_age: "If the elapsed time is greater than this value, the OP MUST attempt to
        // actively re-authenticate the End-User."
        request
            .max_age
            .is_some_and(|max| self.auth_time.is_none_or(|at| at.seconds_until(now) > max))
    }
}

/// The user's answer on the consent page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Approve; `remember` skips the question next time for the same or fewer scopes.
    Allow {
        /// Remember this approval.
        remember: bool,
    },
    /// Refuse: the client gets `access_denied`.
    Deny,
}

/// What the embedder does next.
#[derive(Debug)]
pub enum AuthorizeOutcome {
    /// Send this response: a redirect to the client with a code, a token or an error.
    Redirect(HttpResponse),
    /// Show the user this error; never redirect (unknown client, bad redirect URI).
    /// [`Provider::error_page`] renders a plain one, or redirects to the configured `error_uri`.
    ErrorPage(OAuthError),
    /// Nobody is logged in: authenticate the user, then call again with the same request.
    Login(Box<AuthorizationRequest>),
    /// The user must approve the scopes for this client: ask, then call again with the
    /// same request and the [`Decision`].
    Consent(Box<AuthorizationRequest>),
}

/// Answers one authorization request for `user` (if someone is logged in), with the user's
/// `decision` when this is the consent form's post. The login's age is unknown: a request
/// with `prompt=login` or `max_age` asks for a login again (see [`handle_with`]).
pub async fn handle<S, U>(
    p: &Provider<S, U>,
    req: &HttpRequest,
    user: Option<&AuthenticatedUser>,
    decision: Option<Decision>,
) -> AuthorizeOutcome
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    handle_with(p, req, user.map(Authentication::of), decision).await
}

/// Answers one authorization request for the logged-in user described by `auth` (if any),
/// with the user's `decision` when this is the consent form's post. A login older than the
/// request's `max_age`, or any login but a fresh one under `prompt=login`, counts as none.
pub async fn handle_with<S, U>(
    p: &Provider<S, U>,
    req: &HttpRequest,
    auth: Option<Authentication<'_>>,
    decision: Option<Decision>,
) -> AuthorizeOutcome
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let request = match validate(p, req).await {
        Ok(request) => request,
        Err(outcome) => return outcome,
    };
    let now = p.clock().now();
    let user = auth
        .filter(|a| !a.too_old_for(&request, now))
        .map(|a| a.user);
    let Some(user) = user else {
        if request.prompts("none") {
            return error_redirect(
                p,
                &request,
                &OAuthError::new(ErrorCode::LoginRequired, "the user is not logged in"),
            );
        }
        return AuthorizeOutcome::Login(Box::new(request));
    };
    match decision {
        Some(Decision::Deny) => {
            p.emit(Event::ConsentDenied {
                client_id: request.client.id.to_string(),
                subject: user.subject.clone(),
            });
            error_redirect(
                p,
                &request,
                &OAuthError::new(
                    ErrorCode::AccessDenied,
                    "the resource owner denied the request",
                ),
            )
        }
        Some(Decision::Allow { remember }) => {
            // A public client's approval is never remembered: see the auto-approval rule below.
            let remember = remember && request.client.client_type() != ClientType::Public;
            if remember && let Err(err) = remember_consent(p, &request, user).await {
                return error_redirect(p, &request, &err);
            }
            p.emit(Event::ConsentGranted {
                client_id: request.client.id.to_string(),
                subject: user.subject.clone(),
                scope: request.scope.to_string(),
            });
            respond(p, &request, user).await
        }
        None => {
            let remembered = match p
                .store()
                .get_consent(&user.subject, request.client.id.as_str())
                .await
            {
                Ok(scope) => scope,
                Err(err) => return error_redirect(p, &request, &err.into()),
            };
            // RFC 6749 §10.2: the server "SHOULD NOT process repeated authorization requests
            // automatically (without active resource owner interaction)" for a public client,
            // whose identity anyone can claim: remembered consent approves confidential ones only.
            let approved = request.client.client_type() != ClientType::Public
                && remembered.is_some_and(|s| request.scope.is_subset(&s));
            if approved && !request.prompts("consent") {
                respond(p, &request, user).await
            } else if request.prompts("none") {
                error_redirect(
                    p,
                    &request,
                    &OAuthError::new(
                        ErrorCode::ConsentRequired,
                        "the user has not approved this client",
                    ),
                )
            } else {
                AuthorizeOutcome::Consent(Box::new(request))
            }
        }
    }
}

async fn remember_consent<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    request: &AuthorizationRequest,
    user: &AuthenticatedUser,
) -> Result<(), OAuthError> {
    let client_id = request.client.id.as_str();
    let previous = p.store().get_consent(&user.subject, client_id).await?;
    let scope: ScopeSet = previous
        .iter()
        .flat_map(|s| s.iter())
        .chain(request.scope.iter())
        .collect();
    p.store()
        .put_consent(&user.subject, client_id, &scope, p.clock().now())
        .await?;
    Ok(())
}

/// Validates everything but the user; errors come back as the outcome to return.
async fn validate<S, U>(
    p: &Provider<S, U>,
    req: &HttpRequest,
) -> Result<AuthorizationRequest, AuthorizeOutcome>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let page = |e: OAuthError| AuthorizeOutcome::ErrorPage(e);
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
    let (redirect_uri, redirect_uri_sent) = match params.get("redirect_uri") {
        Some(uri) if matches_registered(&client.redirect_uris, uri) => (uri.to_owned(), true),
        Some(_) => {
            return Err(page(OAuthError::invalid_request(
                "redirect_uri is not registered for this client",
            )));
        }
        // RFC 6749 §3.1.2.3: with exactly one registered URI the parameter may be omitted.
        None => match client.redirect_uris.as_slice() {
            [only] => (only.clone(), false),
            [] => {
                return Err(page(OAuthError::invalid_request(
                    "this client has no registered redirect_uri",
                )));
            }
            _ => {
                return Err(page(OAuthError::invalid_request(
                    "redirect_uri is required",
                )));
            }
        },
    };

    // From here on the redirect URI is trusted: errors go back to the client.
    let response_type = params.get("response_type");
    let default_mode = if response_type == Some("token") {
        ResponseMode::Fragment
    } else {
        ResponseMode::Query
    };
    let requested_mode = params.get("response_mode").map(ResponseMode::parse);
    let mut request = AuthorizationRequest {
        client,
        response_type: ResponseType::Code,
        redirect_uri,
        redirect_uri_sent,
        response_mode: requested_mode.flatten().unwrap_or(default_mode),
        scope: ScopeSet::empty(),
        state: params.get("state").map(str::to_owned),
        challenge: None,
        nonce: params.get("nonce").map(str::to_owned),
        prompt: params
            .get("prompt")
            .map(|p| {
                p.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
        max_age: None,
        params: Params::default(),
        binding: None,
        see_other: req.method == Method::Post,
    };
    let fail = |request: &AuthorizationRequest, err: OAuthError| error_redirect(p, request, &err);

    if request.state.as_ref().is_some_and(|s| s.len() > 2048) {
        request.state = None;
        return Err(fail(
            &request,
            OAuthError::invalid_request("state is too long"),
        ));
    }
    request.response_type = match response_type {
        Some("code") => ResponseType::Code,
        Some("token") => ResponseType::Token,
        Some(_) => {
            return Err(fail(
                &request,
                OAuthError::new(
                    ErrorCode::UnsupportedResponseType,
                    "response_type must be code (or token where enabled)",
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
            OAuthError::invalid_request("response_mode must be query or fragment"),
        ));
    }
    // RFC 6749 §4.2.2 delivers tokens in the fragment; never in a query that servers log.
    if request.response_type == ResponseType::Token && request.response_mode == ResponseMode::Query
    {
        request.response_mode = ResponseMode::Fragment;
        return Err(fail(
            &request,
            OAuthError::invalid_request(
                "response_mode=query is not allowed with response_type=token",
            ),
        ));
    }
    let grant = match request.response_type {
        ResponseType::Code => GrantType::AuthorizationCode,
        ResponseType::Token => GrantType::Implicit,
    };
    // RFC 6749 §4.2.2.1 "unsupported_response_type": the implicit grant is switched off
    // server-wide (the metadata does not list `token` either), whatever the client is allowed.
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
    request.max_age = match params.get("max_age").map(str::parse::<u64>).transpose() {
        Ok(max_age) => max_age,
        Err(_) => {
            return Err(fail(
                &request,
                OAuthError::invalid_request("max_age must be a non-negative integer"),
            ));
        }
    };
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
    if request.response_type == ResponseType::Code {
        request.challenge = match params.get("code_challenge") {
            Some(value) => match Challenge::parse(
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
    if request.nonce.as_ref().is_some_and(|n| n.len() > 512) {
        return Err(fail(
            &request,
            OAuthError::invalid_request("nonce is too long"),
        ));
    }
    request.params = params;
    request.binding = request
        .client
        .bind_tokens
        .then(|| Binding::of(req, &p.config().trusted_proxies));
    Ok(request)
}

/// Issues the code or the token and redirects to the client.
async fn respond<S, U>(
    p: &Provider<S, U>,
    request: &AuthorizationRequest,
    user: &AuthenticatedUser,
) -> AuthorizeOutcome
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let issuer = p.config().issuer.clone();
    match request.response_type {
        ResponseType::Code => {
            let now = p.clock().now();
            let code = Secret::new(random_token(p.entropy(), TOKEN_BYTES));
            let record = CodeRecord {
                digest: code.digest(),
                client_id: request.client.id.clone(),
                redirect_uri: request.redirect_uri.clone(),
                redirect_uri_sent: request.redirect_uri_sent,
                subject: user.subject.clone(),
                username: user.username.clone(),
                scope: request.scope.clone(),
                challenge: request.challenge.clone(),
                nonce: request.nonce.clone(),
                family: FamilyId::generate(p.entropy()),
                issued_at: now,
                expires_at: now.plus(p.config().code_ttl),
            };
            if let Err(err) = p.store().save_code(&record, now).await {
                return error_redirect(p, request, &err.into());
            }
            let mut params = vec![("code", code.expose())];
            if let Some(state) = &request.state {
                params.push(("state", state));
            }
            params.push(("iss", &issuer));
            AuthorizeOutcome::Redirect(redirect(
                &request.redirect_uri,
                request.response_mode,
                &params,
                request.see_other,
            ))
        }
        ResponseType::Token => {
            let grant = Grant {
                client_id: request.client.id.clone(),
                subject: Some(user.subject.clone()),
                username: Some(user.username.clone()),
                scope: request.scope.clone(),
                grant_type: GrantType::Implicit,
                family: FamilyId::generate(p.entropy()),
                family_issued_at: None,
                access_ttl: p.access_ttl(&request.client, GrantType::Implicit),
                // RFC 6749 §4.2.2: "The authorization server MUST NOT issue a refresh token."
                refresh_ttl: None,
                binding: request.binding.clone(),
            };
            let token = match p.issue(grant).await {
                Ok(token) => token,
                Err(err) => return error_redirect(p, request, &err),
            };
            let expires_in = token.expires_in.to_string();
            let scope = token.scope.to_string();
            let mut params = vec![
                ("access_token", token.access_token.expose()),
                ("token_type", "Bearer"),
                ("expires_in", &expires_in),
            ];
            if !scope.is_empty() {
                params.push(("scope", &scope));
            }
            if let Some(state) = &request.state {
                params.push(("state", state));
            }
            params.push(("iss", &issuer));
            AuthorizeOutcome::Redirect(redirect(
                &request.redirect_uri,
                ResponseMode::Fragment,
                &params,
                request.see_other,
            ))
        }
    }
}

/// An error response redirected to the client (RFC 6749 §4.1.2.1), with `state` and `iss`.
fn error_redirect<S, U>(
    p: &Provider<S, U>,
    request: &AuthorizationRequest,
    err: &OAuthError,
) -> AuthorizeOutcome
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    if matches!(
        err.code(),
        ErrorCode::ServerError | ErrorCode::TemporarilyUnavailable
    ) {
        tracing::error!(
            error = err.code().as_str(),
            detail = err.detail().unwrap_or(""),
            "authorization failed"
        );
    }
    let description = err.description().map(crate::params::printable_long);
    let mut params = vec![("error", err.code().as_str())];
    if let Some(d) = &description {
        params.push(("error_description", d));
    }
    if let Some(uri) = &p.config().error_uri {
        params.push(("error_uri", uri));
    }
    if let Some(state) = &request.state {
        params.push(("state", state));
    }
    params.push(("iss", &p.config().issuer));
    AuthorizeOutcome::Redirect(redirect(
        &request.redirect_uri,
        request.response_mode,
        &params,
        request.see_other,
    ))
}

/// The response for [`AuthorizeOutcome::ErrorPage`] when the embedder has no page of its
/// own: a redirect to the configured `error_uri` with `error` and `error_description`
/// (Flask-OAuthlib's behaviour), or else a minimal HTML page.
pub fn error_page(error_uri: Option<&str>, err: &OAuthError) -> HttpResponse {
    let description = err
        .description()
        .map(crate::params::printable_long)
        .unwrap_or_default();
    if let Some(uri) = error_uri {
        return redirect(
            uri,
            ResponseMode::Query,
            &[
                ("error", err.code().as_str()),
                ("error_description", &description),
            ],
            false,
        );
    }
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>Authorization error</title>\
         <h1>Authorization error</h1><p><code>{}</code></p><p>{}</p>",
        err.code().as_str(),
        html_escape(&description)
    );
    let mut headers = vec![
        ("content-type".into(), "text/html; charset=utf-8".into()),
        ("cache-control".into(), "no-store".into()),
        (
            "content-security-policy".into(),
            "default-src 'none'; frame-ancestors 'none'".into(),
        ),
    ];
    headers.extend(err.headers().iter().cloned());
    HttpResponse {
        status: err.status(),
        headers,
        body: body.into_bytes(),
    }
}

fn html_escape(raw: &str) -> String {
    raw.chars()
        .map(|c| match c {
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '&' => "&amp;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&#39;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}
