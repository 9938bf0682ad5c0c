//! OAuth 1.0a resource-owner authorization (RFC 5849 §2.2) on the same login and consent
//! pages as OAuth 2.0: realms are shown like scopes, the session cookie and CSRF protection
//! are shared, and an embedder's [`Login`] applies here too.
//!
//! | route | handler |
//! |---|---|
//! | `GET`/`POST /oauth1/authorize` | [`Ui::oauth1_authorize`] (the consent form posts here) |
//! | `POST /oauth1/login` | [`Ui::oauth1_login`] |

use crate::{Login, LoginFailure, Ui, with_cookie};
use latchkey_core::http::{HttpRequest, HttpResponse, Method};
use latchkey_core::login::PasswordCheck;
use latchkey_core::params::Params;
use latchkey_core::provider::Provider;
use latchkey_core::secret::Secret;
use latchkey_core::store::{ClientStore, ProviderStore};
use latchkey_core::user::{AuthenticatedUser, UserAuthenticator};
use latchkey_oauth1::provider::AUTHORIZE_PATH;
use latchkey_oauth1::{AuthorizeOutcome, OAuth1Error, OAuth1Provider, OAuth1Store};
use minijinja::context;

/// Where the OAuth 1.0a login form posts, below the UI's base path.
pub const LOGIN_PATH: &str = "/oauth1/login";

impl<S: ProviderStore, U: UserAuthenticator, L: Login> Ui<S, U, L> {
    /// `GET /oauth1/authorize?oauth_token=…` starts (or resumes) the authorization of a
    /// request token; `POST` is the consent form's answer.
    pub async fn oauth1_authorize<O: ClientStore + OAuth1Store>(
        &self,
        oauth1: &OAuth1Provider<O>,
        req: &HttpRequest,
    ) -> HttpResponse {
        let user = self.user(req).await;
        if req.method != Method::Post {
            let outcome = oauth1.authorize(req, user.as_ref(), None).await;
            return self.oauth1_render(req, outcome, user.as_ref(), None);
        }
        let form = match self.checked_form(req) {
            Ok(form) => form,
            Err(page) => return page,
        };
        let decision = match form.get("decision") {
            Some("allow") => true,
            Some("deny") => false,
            _ => {
                return self.error(
                    req,
                    &latchkey_core::error::OAuthError::invalid_request("no decision was made"),
                );
            }
        };
        let original = token_request(&form);
        let outcome = oauth1
            .authorize(&original, user.as_ref(), user.as_ref().map(|_| decision))
            .await;
        self.oauth1_render(req, outcome, user.as_ref(), None)
    }

    /// `POST /oauth1/login`: the built-in login form for an OAuth 1.0a authorization; on
    /// success, sets the session and returns to the authorization page.
    pub async fn oauth1_login<O: ClientStore + OAuth1Store>(
        &self,
        oauth1: &OAuth1Provider<O>,
        req: &HttpRequest,
    ) -> HttpResponse {
        let form = match self.checked_form(req) {
            Ok(form) => form,
            Err(page) => return page,
        };
        let username = form.get("username").unwrap_or("");
        let password = Secret::new(form.get("password").unwrap_or(""));
        let p = &self.inner.provider;
        // The same one password-check path as /login: backoff, counting and audit.
        let checked = p
            .check_password(username, &password, p.client_ip(req), "")
            .await;
        let user = match checked {
            Ok(PasswordCheck::Ok(user)) => user,
            Ok(refused) => {
                let outcome = oauth1.authorize(&token_request(&form), None, None).await;
                let failure = LoginFailure::of(username, &refused);
                return self.oauth1_render(req, outcome, None, Some(failure));
            }
            Err(err) => return self.error(req, &err),
        };
        let session = match self.start_session(req, &user).await {
            Ok((session, _)) => session,
            Err(err) => return self.error(req, &err),
        };
        HttpResponse {
            status: 303,
            headers: vec![
                (
                    "location".into(),
                    format!(
                        "{}{AUTHORIZE_PATH}?{}",
                        self.inner.base_path,
                        token_query(&form)
                    ),
                ),
                ("set-cookie".into(), session),
                ("cache-control".into(), "no-store".into()),
            ],
            body: Vec::new(),
        }
    }

    fn oauth1_render(
        &self,
        req: &HttpRequest,
        outcome: AuthorizeOutcome,
        user: Option<&AuthenticatedUser>,
        failure: Option<LoginFailure>,
    ) -> HttpResponse {
        let p: &Provider<S, U> = &self.inner.provider;
        let base = &self.inner.base_path;
        match outcome {
            AuthorizeOutcome::Redirect(response) => response,
            AuthorizeOutcome::Error(err) => self.oauth1_error(req, &err),
            AuthorizeOutcome::ShowVerifier {
                client_name,
                verifier,
            } => self.inner.pages.render(
                "oauth1_verifier.html",
                200,
                context! { client_name => client_name, verifier => verifier },
                &self.locale(req, &[]),
                p.entropy(),
            ),
            AuthorizeOutcome::Login {
                client,
                oauth_token,
            } => {
                let query = query_of(&oauth_token);
                if let Some(redirect) = self
                    .inner
                    .login
                    .login_redirect(&format!("{base}{AUTHORIZE_PATH}?{query}"))
                {
                    return redirect;
                }
                let (csrf, set_cookie) = self.inner.cookies.csrf(req, p.entropy(), p.clock().now());
                let locale = self.locale(req, &[]);
                let (status, error, username, retry_after) =
                    LoginFailure::page(failure, &self.inner.pages, &locale);
                let ctx = context! {
                    client_name => client.name,
                    csrf_token => csrf,
                    request => query,
                    login_action => format!("{base}{LOGIN_PATH}"),
                    error => error,
                    username => username,
                };
                let mut page = with_cookie(
                    self.inner
                        .pages
                        .render("login.html", status, ctx, &locale, p.entropy()),
                    set_cookie,
                );
                if let Some(secs) = retry_after {
                    page.headers.push(("retry-after".into(), secs.to_string()));
                }
                page
            }
            AuthorizeOutcome::Consent {
                client,
                realms,
                oauth_token,
                callback_host,
            } => {
                let (csrf, set_cookie) = self.inner.cookies.csrf(req, p.entropy(), p.clock().now());
                let scopes: Vec<minijinja::Value> = realms
                    .iter()
                    .map(|s| {
                        context! {
                            name => s,
                            description => self.inner.scope_descriptions.get(s),
                        }
                    })
                    .collect();
                let ctx = context! {
                    client_name => client.name.clone(),
                    client_id => client.id.as_str(),
                    username => user.map(|u| u.username.as_str()).unwrap_or(""),
                    scopes => scopes,
                    csrf_token => csrf,
                    request => query_of(&oauth_token),
                    authorize_action => format!("{base}{AUTHORIZE_PATH}"),
                    redirect_host => callback_host,
                };
                with_cookie(
                    self.inner.pages.render(
                        "consent.html",
                        200,
                        ctx,
                        &self.locale(req, &[]),
                        p.entropy(),
                    ),
                    set_cookie,
                )
            }
        }
    }

    fn oauth1_error(&self, req: &HttpRequest, err: &OAuth1Error) -> HttpResponse {
        let key = match err.problem() {
            latchkey_oauth1::Problem::UserRefused => "oauth1.refused",
            latchkey_oauth1::Problem::TokenRejected => "oauth1.token_rejected",
            _ => "oauth1.failed",
        };
        let locale = self.locale(req, &[]);
        let status = err.problem().status();
        let ctx = context! {
            error => err.problem().as_str(),
            description => self.inner.pages.text(&locale, key, &[]),
            description_lang => locale.tag(),
        };
        self.inner.pages.render(
            "error.html",
            status,
            ctx,
            &locale,
            self.inner.provider.entropy(),
        )
    }
}

/// `oauth_token=…`, form-encoded.
fn query_of(oauth_token: &str) -> String {
    form_urlencoded::Serializer::new(String::new())
        .append_pair("oauth_token", oauth_token)
        .finish()
}

/// The `oauth_token` carried in a form's `request` field, as a query.
fn token_query(form: &Params) -> String {
    let token = Params::parse(form.get("request").unwrap_or("").as_bytes())
        .ok()
        .and_then(|p| p.get("oauth_token").map(str::to_owned))
        .unwrap_or_default();
    query_of(&token)
}

/// The authorization request a form stands for: a `GET` with its `oauth_token`.
fn token_request(form: &Params) -> HttpRequest {
    let mut req = HttpRequest::new(Method::Get, AUTHORIZE_PATH);
    req.query = token_query(form);
    req
}
