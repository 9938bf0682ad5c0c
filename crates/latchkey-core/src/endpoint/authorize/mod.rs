//! The authorization endpoint (RFC 6749 §3.1, §4.1.1, §4.2.1), with PKCE (RFC 7636), exact
//! redirect matching (RFC 9700 §2.1) and the `iss` response parameter (RFC 9207).
//!
//! The core does no I/O and knows no web framework. [`handle`] parses the request once into an
//! [`AuthorizeRequest`] and returns an [`AuthorizeOutcome`]: a redirect to send, an error to
//! show, or an interaction the embedder must carry out (log the user in, ask for consent). The
//! interaction carries the validated request; the embedder keeps it as a [`Pending`] value it
//! protects (`latchkey-ui` signs it) and, with the user and their [`Decision`], calls
//! [`resume`], which continues from that value: nothing is parsed from the client's parameters
//! again.
//!
//! RFC 6749 §4.1.2.1: "If the request fails due to a missing, invalid, or mismatching
//! redirection URI, or if the client identifier is missing or invalid, the authorization
//! server SHOULD inform the resource owner of the error and MUST NOT automatically redirect
//! the user-agent to the invalid redirection URI." Those become [`AuthorizeOutcome::ErrorPage`];
//! every later error is redirected to the client with `state` and `iss`.

mod object;
mod oidc;
mod pending;
pub mod pushed;
mod request;

pub use oidc::{
    MAX_ACR_LEN, MAX_ACR_VALUES, MAX_LOCALE_LEN, MAX_LOCALES, MAX_LOGIN_HINT, PASSWORD_ACR,
};
pub use pending::Pending;
pub use request::{AuthorizeRequest, ResponseType};

use crate::client::{ClientType, GrantType};
use crate::clock::UnixTime;
use crate::entropy::random_token;
use crate::error::{ErrorCode, OAuthError};
use crate::events::Event;
use crate::http::{HttpRequest, HttpResponse, Method};
use crate::oidc::AuthContext;
use crate::provider::Provider;
use crate::redirect::{ResponseMode, redirect};
use crate::scope::ScopeSet;
use crate::secret::Secret;
use crate::store::ProviderStore;
use crate::token::{CodeRecord, FamilyId, Grant, TOKEN_BYTES};
use crate::user::{AuthenticatedUser, UserAuthenticator};

/// Who is logged in, and how recently: what `prompt=login` and `max_age` are checked against.
///
/// What the application attaches to the grant (see [`crate::attached`]) travels on the user,
/// [`AuthenticatedUser::attached`]: the code (or, for the implicit grant, the token) issued
/// when this user approves stores it. Set it on the user passed with the consent decision
/// (or, for a remembered consent, with the request that is approved without asking).
#[derive(Clone, Debug)]
pub struct Authentication<'a> {
    /// The logged-in user.
    pub user: &'a AuthenticatedUser,
    /// When the user last entered their credentials, if known (a server-side session keeps it).
    /// Unknown satisfies no `max_age`.
    pub auth_time: Option<UnixTime>,
    /// Whether the user completed a login for this very authorization request: the only
    /// login that satisfies `prompt=login`.
    pub fresh: bool,
    /// The login session's public identifier (OpenID Connect `sid`), when the login keeps
    /// server-side sessions: a client that gets a code or a token is recorded in that session,
    /// to be told when it ends (see [`crate::logout`]).
    pub sid: Option<String>,
    /// How the user authenticated (RFC 8176 values); Latchkey's own login is a password,
    /// `["pwd"]`. Empty when unknown.
    pub amr: &'a [&'a str],
    /// The authentication context class reference the login satisfied, when known.
    pub acr: Option<&'a str>,
}

impl<'a> Authentication<'a> {
    /// `user`, logged in at an unknown time and not for this request: enough unless the
    /// client sent `prompt=login` or `max_age`.
    pub fn of(user: &'a AuthenticatedUser) -> Self {
        Self {
            user,
            auth_time: None,
            fresh: false,
            sid: None,
            amr: &[],
            acr: None,
        }
    }

    /// What the ID tokens of a grant approved under this authentication state (see
    /// [`AuthContext`]).
    pub fn context(&self) -> AuthContext {
        AuthContext::login(self.auth_time, self.amr, self.acr, self.sid.as_deref())
    }

    /// Whether `request` wants the user to log in again despite this authentication.
    fn too_old_for(&self, request: &AuthorizeRequest, now: UnixTime) -> bool {
        if self.fresh {
            return false;
        }
        // OpenID Connect Core §3.1.2.1, prompt=login: "The Authorization Server SHOULD
        // prompt the End-User for reauthentication." Only a login made for this request counts.
        if request.prompts("login") {
            return true;
        }
        // max_age: "If the elapsed time is greater than this value, the OP MUST attempt to
        // actively re-authenticate the End-User." `max_age=0` asks for a login every time
        // (§3.1.2.1 notes it is "equivalent to … prompt=login").
        request.max_age.is_some_and(|max| {
            max == 0 || self.auth_time.is_none_or(|at| at.seconds_until(now) > max)
        })
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
    /// Nobody is logged in: authenticate the user, then [`resume`] the request
    /// ([`AuthorizeRequest::pending`]).
    Login(Box<AuthorizeRequest>),
    /// The user must approve the scopes for this client: ask, then [`resume`] the request
    /// with the [`Decision`].
    Consent(Box<AuthorizeRequest>),
    /// Someone is logged in, and the user must say whether to continue as them or to log in
    /// as someone else (`prompt=select_account`, or a `login_hint` naming another user).
    /// Either way, [`resume`] with [`Pending::account_selected`]: with the current user to
    /// continue, or with nobody (after ending the session) to log in again.
    SelectAccount(Box<AuthorizeRequest>),
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
    match request::parse(p, req).await {
        Ok(request) => proceed(p, request, auth, decision).await,
        Err(outcome) => outcome,
    }
}

/// Continues a request that waited on the user: `pending` is what
/// [`AuthorizeRequest::pending`] gave (see [`Pending::decode`]: it must come back unaltered),
/// `req` the HTTP request that brings it back (the login's return or the consent form's post,
/// from the same browser), `auth` the user and `decision` their answer on the consent page.
/// The client is looked up again: one deleted meanwhile gets an error page.
pub async fn resume<S, U>(
    p: &Provider<S, U>,
    req: &HttpRequest,
    pending: Pending,
    auth: Option<Authentication<'_>>,
    decision: Option<Decision>,
) -> AuthorizeOutcome
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let client = match p.store().get_client(&pending.client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return AuthorizeOutcome::ErrorPage(OAuthError::invalid_request("unknown client_id"));
        }
        Err(err) => return AuthorizeOutcome::ErrorPage(err.into()),
    };
    // The client may have changed while the user was signing in: what it no longer allows
    // (a redirect URI, the grant, a scope) is refused on a page, never sent anywhere.
    if !pending.redirect_uri.still_registered(&client.redirect_uris) {
        return AuthorizeOutcome::ErrorPage(OAuthError::invalid_request(
            "redirect_uri is not registered for this client",
        ));
    }
    for grant in pending.response_type.grants() {
        if !p.config().grant_enabled(grant) || !client.allows(grant) {
            return AuthorizeOutcome::ErrorPage(OAuthError::unauthorized_client(format!(
                "this client is not allowed the {grant} grant"
            )));
        }
    }
    if !pending.scope.is_subset(p.allowed_scopes(&client)) {
        return AuthorizeOutcome::ErrorPage(OAuthError::invalid_scope(format!(
            "scope not allowed for this client: {}",
            pending.scope.missing_from(p.allowed_scopes(&client))
        )));
    }
    // The registry or the client may have changed too: the resources are checked again.
    let requested: Vec<crate::indicator::ResourceUri> = match pending
        .audience
        .iter()
        .map(crate::indicator::ResourceUri::parse)
        .collect()
    {
        Ok(list) => list,
        Err(err) => return AuthorizeOutcome::ErrorPage(err),
    };
    let registry = match p.resources_for(&requested).await {
        Ok(registry) => registry,
        Err(err) => return AuthorizeOutcome::ErrorPage(err),
    };
    if let Err(err) = registry.authorize(&client, &requested) {
        return AuthorizeOutcome::ErrorPage(err);
    }
    let request = AuthorizeRequest {
        binding: request::binding_of(p, &client, req),
        client,
        response_type: pending.response_type,
        redirect_uri: pending.redirect_uri,
        response_mode: pending.response_mode,
        scope: pending.scope,
        state: pending.state,
        challenge: pending.challenge,
        nonce: pending.nonce,
        prompt: pending.prompt,
        max_age: pending.max_age,
        oidc: pending.oidc,
        audience: pending.audience,
        see_other: req.method == Method::Post,
        pushed: pending.pushed,
        dpop_jkt: pending.dpop_jkt,
    };
    proceed(p, request, auth, decision).await
}

/// The user's part of a validated request: who is logged in, what they decided, and whether
/// an earlier consent covers it.
async fn proceed<S, U>(
    p: &Provider<S, U>,
    request: AuthorizeRequest,
    auth: Option<Authentication<'_>>,
    decision: Option<Decision>,
) -> AuthorizeOutcome
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let now = p.clock().now();
    let mut auth = auth.filter(|a| !a.too_old_for(&request, now));
    // OpenID Connect Core §5.5.1.1: an essential acr the login did not achieve. A session
    // asks for a new login (under prompt=none: login_required, as node-oidc-provider does);
    // a login made for this very request that still misses it is a failed authentication.
    if let Some(acr) = request.claims().and_then(oidc::essential_acr)
        && let Some(a) = auth.as_ref()
        && !a.acr.is_some_and(|achieved| acr.accepts(&achieved.into()))
    {
        if a.fresh {
            return error_redirect(
                p,
                &request,
                &OAuthError::new(
                    ErrorCode::UnmetAuthenticationRequirements,
                    "the login did not achieve the essential acr",
                ),
            );
        }
        auth = None;
    }
    let sid = auth.as_ref().and_then(|a| a.sid.clone());
    // OpenID Connect Core §3.1.2.1, id_token_hint: "If the End-User identified by the ID
    // Token is logged in or is logged in by the request, then the Authorization Server returns
    // a positive response; otherwise, it SHOULD return an error, such as login_required."
    // Another user's session counts as none: log in as the hinted user. A login made for this
    // very request that is still someone else is the error.
    // §5.5.1: a `sub` the claims parameter asks for with a value is the same kind of hint.
    let hinted = |a: &Authentication<'_>| {
        [request.hint_subject(), request.requested_subject()]
            .into_iter()
            .flatten()
            .all(|sub| subject_for_client(p, &request, &a.user.subject).as_deref() == Some(sub))
    };
    if let Some(a) = auth.as_ref().filter(|a| a.fresh && !hinted(a)) {
        tracing::info!(client_id = %request.client.id, subject = %a.user.subject, "logged in as another user than id_token_hint");
        return error_redirect(
            p,
            &request,
            &OAuthError::new(
                ErrorCode::LoginRequired,
                "the user who logged in is not the one of id_token_hint or the requested sub",
            ),
        );
    }
    let Some(auth) = auth.filter(hinted) else {
        if request.prompts("none") {
            return error_redirect(
                p,
                &request,
                &OAuthError::new(ErrorCode::LoginRequired, "the user is not logged in"),
            );
        }
        return AuthorizeOutcome::Login(Box::new(request));
    };
    let user = auth.user;
    // §3.1.2.1, select_account: "The Authorization Server SHOULD prompt the End-User to select
    // a user account." A login made for this request was that choice. A `login_hint` that
    // names someone else than the logged-in user asks the same question: continue, or switch.
    let other_hint = request
        .login_hint()
        .is_some_and(|hint| !hint.eq_ignore_ascii_case(&user.username));
    let chosen = auth.fresh || request.oidc.account_chosen;
    if decision.is_none() && !chosen && (request.prompts("select_account") || other_hint) {
        // §3.1.2.6, interaction_required: "the Authentication Request cannot be completed
        // without displaying a user interface for End-User interaction."
        if request.prompts("none") {
            return error_redirect(
                p,
                &request,
                &OAuthError::new(
                    ErrorCode::InteractionRequired,
                    "the user must confirm the account (login_hint names another user)",
                ),
            );
        }
        return AuthorizeOutcome::SelectAccount(Box::new(request));
    }
    match decision {
        Some(Decision::Deny) => {
            if let Err(outcome) = pushed::take(p, &request).await {
                return outcome;
            }
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
            if let Err(outcome) = pushed::take(p, &request).await {
                return outcome;
            }
            session_got(p, sid.as_deref(), &request).await;
            respond(p, &request, &auth).await
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
                if let Err(outcome) = pushed::take(p, &request).await {
                    return outcome;
                }
                session_got(p, sid.as_deref(), &request).await;
                respond(p, &request, &auth).await
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

/// Records, before the code or token is issued, that the client gets one in the login session
/// `sid` (Back-Channel Logout §2.5); a client recorded whose issuance then fails is only told
/// of a logout it did not need.
async fn session_got<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    sid: Option<&str>,
    request: &AuthorizeRequest,
) {
    if let Some(sid) = sid {
        crate::logout::record_client(p, sid, request.client.id.as_str()).await;
    }
}

async fn remember_consent<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    request: &AuthorizeRequest,
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

/// Issues what the response type asks for (a code, an access token, an ID token, or a
/// combination) and sends it to the client in the request's response mode.
async fn respond<S, U>(
    p: &Provider<S, U>,
    request: &AuthorizeRequest,
    auth: &Authentication<'_>,
) -> AuthorizeOutcome
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let user = auth.user;
    let issuer = p.config().issuer.clone();
    let response_type = request.response_type;
    // What the ID tokens of this grant will say about the login; kept only when there is
    // something to say.
    let context = Some(auth_context(request, auth)).filter(|c| !c.is_empty());
    let code = if response_type.has_code() {
        match issue_code(p, request, user, context.clone().map(Box::new)).await {
            Ok(code) => Some(code),
            Err(err) => return error_redirect(p, request, &err),
        }
    } else {
        None
    };
    let token = if response_type.has_token() {
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
            attached: user.attached.clone(),
            access_token_format: request.client.metadata.access_token_format(),
            auth: context.map(Box::new),
            cnf: None,
            audience: request.audience.clone(),
            refresh_audience: None,
            actor: None,
        };
        match p.issue(grant).await {
            Ok(token) => Some(token),
            Err(err) => return error_redirect(p, request, &err),
        }
    } else {
        None
    };
    let id_token = if response_type.has_id_token() {
        let access_token = token.as_ref().map(|t| t.access_token.expose());
        let code = code.as_ref().map(Secret::expose);
        match oidc::front_channel_id_token(p, request, auth, access_token, code).await {
            Ok(id_token) => Some(id_token),
            Err(err) => return error_redirect(p, request, &err),
        }
    } else {
        None
    };
    let expires_in = token.as_ref().map(|t| t.expires_in.to_string());
    let scope = token.as_ref().map(|t| t.scope.to_string());
    let mut params = Vec::new();
    if let Some(code) = &code {
        params.push(("code", code.expose()));
    }
    if let (Some(token), Some(expires_in)) = (&token, &expires_in) {
        params.push(("access_token", token.access_token.expose()));
        params.push(("token_type", "Bearer"));
        params.push(("expires_in", expires_in));
    }
    if let Some(scope) = scope.as_deref().filter(|s| !s.is_empty()) {
        params.push(("scope", scope));
    }
    if let Some(id_token) = &id_token {
        params.push(("id_token", id_token));
    }
    if let Some(state) = &request.state {
        params.push(("state", state));
    }
    params.push(("iss", &issuer));
    AuthorizeOutcome::Redirect(redirect(
        request.redirect_uri.as_str(),
        request.response_mode,
        &params,
        request.see_other,
    ))
}

/// Stores a new authorization code for `request` and `user`, and returns it.
async fn issue_code<S, U>(
    p: &Provider<S, U>,
    request: &AuthorizeRequest,
    user: &AuthenticatedUser,
    auth: Option<Box<AuthContext>>,
) -> Result<Secret, OAuthError>
where
    S: ProviderStore,
    U: UserAuthenticator,
{
    let now = p.clock().now();
    let code = Secret::new(random_token(p.entropy(), TOKEN_BYTES));
    let (redirect_uri, redirect_uri_sent) = request.redirect_uri.clone().into_parts();
    let record = CodeRecord {
        digest: code.digest(),
        client_id: request.client.id.clone(),
        redirect_uri,
        redirect_uri_sent,
        subject: user.subject.clone(),
        username: user.username.clone(),
        scope: request.scope.clone(),
        challenge: request.challenge.clone(),
        nonce: request.nonce.clone(),
        family: FamilyId::generate(p.entropy()),
        issued_at: now,
        expires_at: now.plus(p.config().code_ttl),
        attached: user.attached.clone(),
        auth,
        audience: request.audience.clone(),
        // RFC 9449 §10: the code is exchanged only with a proof of this key.
        cnf: request
            .dpop_jkt
            .clone()
            .map(crate::token::Confirmation::Jkt),
    };
    p.store().save_code(&record, now).await?;
    Ok(code)
}

/// The `sub` the client of `request` knows the user with the local `subject` by: what an
/// `id_token_hint` is compared with.
/// A pairwise client without a usable sector matches nobody.
fn subject_for_client<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    request: &AuthorizeRequest,
    subject: &str,
) -> Option<String> {
    crate::oidc::subject::for_client(p.config(), &request.client, subject).ok()
}

/// How the user of `auth` authenticated, as the ID tokens of `request` state it (OpenID
/// Connect Core §2): the login time when known, and the `claims` request parameter.
pub(crate) fn auth_context(request: &AuthorizeRequest, auth: &Authentication<'_>) -> AuthContext {
    let mut context = auth.context();
    context.claims = request.claims().cloned();
    context.claims_locales = request.claims_locales().to_vec();
    context
}

/// An error response redirected to the client (RFC 6749 §4.1.2.1), with `state` and `iss`.
fn error_redirect<S, U>(
    p: &Provider<S, U>,
    request: &AuthorizeRequest,
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
        request.redirect_uri.as_str(),
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
