//! # latchkey-ui
//!
//! Login and consent for the authorization endpoint, the seeds' "site adapter" done without
//! callbacks. The core answers an authorization request with an outcome ("log the user in",
//! "ask for consent"); [`Ui`] turns each outcome into a page, and each page's form post into
//! the next call to the core. It works on the core's framework-free [`HttpRequest`] and
//! [`HttpResponse`], so every web adapter mounts the same three handlers:
//!
//! | route | handler |
//! |---|---|
//! | `GET`/`POST /authorize` | [`Ui::authorize`] (the consent form posts here) |
//! | `POST /login` | [`Ui::login`] (the built-in login form) |
//! | `GET`/`POST /logout` | [`Ui::logout`] (`GET` asks, the form's `POST` logs out) |
//! | `GET`/`POST /apps` | [`Ui::apps`] ("apps you allowed": list, and revoke one by `POST`) |
//!
//! Pages are server-rendered, work without JavaScript, escape everything, carry expiring,
//! session-bound CSRF tokens and a strict Content-Security-Policy; every form post must come
//! from the issuer's own origin. The built-in login keeps its sessions in the store
//! ([`latchkey_core::session`]), so logout, a password change or a deleted user ends them. An
//! embedder with its own login implements [`Login`] and keeps the built-in consent page.

pub mod apps;
pub mod oauth1;
pub mod pages;
pub mod session;

use latchkey_core::clock::UnixTime;
use latchkey_core::endpoint::authorize::{
    Authentication, AuthorizationRequest, AuthorizeOutcome, Decision,
};
use latchkey_core::error::OAuthError;
use latchkey_core::http::{HttpRequest, HttpResponse, Method};
use latchkey_core::login::PasswordCheck;
use latchkey_core::params::Params;
use latchkey_core::provider::Provider;
use latchkey_core::secret::Secret;
use latchkey_core::session::SessionRecord;
use latchkey_core::store::ProviderStore;
use latchkey_core::user::{AuthenticatedUser, UserAuthenticator};
use minijinja::context;
use pages::Pages;
use session::Cookies;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

pub use pages::PagesError;
pub use session::SessionKey;

/// How the authorization endpoint learns who is logged in.
///
/// Only Latchkey's own sessions know when the user last typed their password: with another
/// login, a request with `max_age` or `prompt=login` is always sent to [`Login::login_redirect`]
/// (an embedder that must honour them checks its own login time there, or calls
/// [`Provider::authorize_with`] itself).
pub trait Login: Send + Sync + 'static {
    /// The logged-in user of `req`, if any. `builtin` is Latchkey's own session, which the
    /// built-in login page sets; an embedder with its own session ignores it.
    fn current_user(
        &self,
        req: &HttpRequest,
        builtin: Option<AuthenticatedUser>,
    ) -> impl Future<Output = Option<AuthenticatedUser>> + Send;

    /// Where to send a user who must log in. `return_to` is the path to come back to once
    /// logged in. `None` shows the built-in login page.
    fn login_redirect(&self, return_to: &str) -> Option<HttpResponse> {
        let _ = return_to;
        None
    }
}

/// Latchkey's own login: the built-in page, users from the provider's authenticator, and a
/// server-side session whose id the browser holds in a signed cookie.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuiltinLogin;

impl Login for BuiltinLogin {
    async fn current_user(
        &self,
        _req: &HttpRequest,
        builtin: Option<AuthenticatedUser>,
    ) -> Option<AuthenticatedUser> {
        builtin
    }
}

/// The login and consent user interface over a [`Provider`].
pub struct Ui<S, U, L = BuiltinLogin> {
    inner: Arc<Inner<S, U, L>>,
}

impl<S, U, L> Clone for Ui<S, U, L> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<S, U, L> {
    provider: Provider<S, U>,
    pages: Pages,
    cookies: Cookies,
    login: L,
    base_path: String,
    scope_descriptions: BTreeMap<String, String>,
}

/// Settings of a [`Ui`].
#[derive(Debug)]
pub struct UiConfig {
    /// Signs the session and CSRF cookies.
    pub key: SessionKey,
    /// Send cookies with `Secure` and the `__Host-` prefix; turn off only for plain-HTTP
    /// development on loopback.
    pub secure_cookies: bool,
    /// How long a login lasts, in seconds.
    pub session_ttl: u64,
    /// Where the routes are mounted (e.g. `/oauth2`), for redirects after login.
    pub base_path: String,
    /// Human descriptions of scopes, shown on the consent page.
    pub scope_descriptions: BTreeMap<String, String>,
}

impl UiConfig {
    /// Defaults: secure cookies, 12-hour sessions, mounted at the root.
    pub fn new(key: SessionKey) -> Self {
        Self {
            key,
            secure_cookies: true,
            session_ttl: 12 * 3600,
            base_path: String::new(),
            scope_descriptions: BTreeMap::new(),
        }
    }
}

const RESERVED: [&str; 6] = [
    "csrf_token",
    "decision",
    "remember",
    "request",
    "password",
    "login_ticket",
];

/// How long after a login its ticket still proves a login for the request (`prompt=login`).
const LOGIN_TICKET_TTL: u64 = 600;

/// The user of a request, and when they last entered their password (if Latchkey's own
/// session says so).
struct Current {
    user: AuthenticatedUser,
    auth_time: Option<UnixTime>,
}

impl<S: ProviderStore, U: UserAuthenticator, L: Login> Ui<S, U, L> {
    /// A user interface for `provider`, rendering `pages`, authenticating with `login`.
    pub fn new(provider: Provider<S, U>, pages: Pages, login: L, config: UiConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                provider,
                pages,
                cookies: Cookies::new(config.key, config.secure_cookies, config.session_ttl),
                login,
                base_path: config.base_path.trim_end_matches('/').to_owned(),
                scope_descriptions: config.scope_descriptions,
            }),
        }
    }

    /// The provider behind the pages.
    pub fn provider(&self) -> &Provider<S, U> {
        &self.inner.provider
    }

    /// The live server-side session of `req`'s session cookie. A store failure counts as no
    /// session (and is logged): the user is asked to log in rather than let in.
    async fn session(&self, req: &HttpRequest) -> Option<SessionRecord> {
        let id = self.inner.cookies.session_id(req)?;
        let p = &self.inner.provider;
        match p.store().find_session(&id.digest(), p.clock().now()).await {
            Ok(session) => session,
            Err(err) => {
                tracing::warn!(error = %err, "login session lookup failed");
                None
            }
        }
    }

    async fn current(&self, req: &HttpRequest) -> Option<Current> {
        let session = self.session(req).await;
        let builtin = session.as_ref().map(SessionRecord::user);
        let user = self.inner.login.current_user(req, builtin).await?;
        let auth_time = session
            .filter(|s| s.subject == user.subject)
            .map(|s| s.auth_time);
        Some(Current { user, auth_time })
    }

    async fn user(&self, req: &HttpRequest) -> Option<AuthenticatedUser> {
        self.current(req).await.map(|c| c.user)
    }

    /// The login ticket of this request if it proves a login completed for `request` (a form's
    /// or query's parameters) by the current session, recently.
    fn fresh_ticket<'a>(
        &self,
        req: &HttpRequest,
        current: Option<&Current>,
        request: &str,
        ticket: Option<&'a str>,
    ) -> Option<&'a str> {
        let ticket = ticket?;
        let auth_time = current?.auth_time?;
        let now = self.inner.provider.clock().now();
        (auth_time.seconds_until(now) <= LOGIN_TICKET_TTL
            && self
                .inner
                .cookies
                .login_ticket_ok(req, &canonical(request), ticket))
        .then_some(ticket)
    }

    /// `GET /authorize` starts (or resumes) an authorization; `POST /authorize` is the
    /// consent form's answer.
    pub async fn authorize(&self, req: &HttpRequest) -> HttpResponse {
        if req.method == Method::Post {
            return self.decide(req).await;
        }
        let current = self.current(req).await;
        let query_ticket = Params::parse(req.query.as_bytes())
            .ok()
            .and_then(|q| q.get("login_ticket").map(str::to_owned));
        let ticket = self.fresh_ticket(req, current.as_ref(), &req.query, query_ticket.as_deref());
        let outcome = self
            .inner
            .provider
            .authorize_with(req, authentication(current.as_ref(), ticket), None)
            .await;
        let user = current.as_ref().map(|c| &c.user);
        self.render(req, outcome, user, None, ticket).await
    }

    async fn decide(&self, req: &HttpRequest) -> HttpResponse {
        let form = match self.checked_form(req) {
            Ok(form) => form,
            Err(page) => return page,
        };
        let decision = match form.get("decision") {
            Some("allow") => Decision::Allow {
                remember: form.get("remember").is_some(),
            },
            Some("deny") => Decision::Deny,
            _ => return self.error(req, &OAuthError::invalid_request("no decision was made")),
        };
        let original = original_request(&form, req);
        let current = self.current(req).await;
        let ticket = self.fresh_ticket(
            req,
            current.as_ref(),
            form.get("request").unwrap_or(""),
            form.get("login_ticket"),
        );
        let auth = authentication(current.as_ref(), ticket);
        let outcome = self
            .inner
            .provider
            .authorize_with(&original, auth, auth.map(|_| decision))
            .await;
        let user = current.as_ref().map(|c| &c.user);
        self.render(req, outcome, user, None, ticket).await
    }

    /// `POST /login`: checks the built-in login form and, on success, sets the session and
    /// returns to the authorization request.
    pub async fn login(&self, req: &HttpRequest) -> HttpResponse {
        let form = match self.checked_form(req) {
            Ok(form) => form,
            Err(page) => return page,
        };
        let original = original_request(&form, req);
        let username = form.get("username").unwrap_or("");
        let password = Secret::new(form.get("password").unwrap_or(""));
        let p = &self.inner.provider;
        // RFC 6749 §10.10 and RFC 9700 §4.16: guessing passwords is slowed, then refused;
        // check_password is the one path that counts and audits.
        let checked = p
            .check_password(
                username,
                &password,
                p.client_ip(req),
                &original_client_id(&form),
            )
            .await;
        let user = match checked {
            Ok(PasswordCheck::Ok(user)) => user,
            Ok(refused) => {
                let outcome = p.authorize(&original, None, None).await;
                let failure = LoginFailure::of(username, &refused);
                return self.render(req, outcome, None, Some(failure), None).await;
            }
            Err(err) => return self.error(req, &err),
        };
        let (session, request) = match self.start_session(req, &user, form.get("request")).await {
            Ok(started) => started,
            Err(err) => return self.error(req, &err),
        };
        HttpResponse {
            status: 303,
            headers: vec![
                ("location".into(), self.authorize_path(&request)),
                ("set-cookie".into(), session),
                ("cache-control".into(), "no-store".into()),
            ],
            body: Vec::new(),
        }
    }

    /// After a successful login: ends the browser's previous session, stores a new one and
    /// returns its `Set-Cookie` value, with the authorization request to return to (`request`,
    /// canonical) carrying a login ticket that proves this login was made for it.
    async fn start_session(
        &self,
        req: &HttpRequest,
        user: &AuthenticatedUser,
        request: Option<&str>,
    ) -> Result<(String, String), OAuthError> {
        let p = &self.inner.provider;
        let now = p.clock().now();
        if let Some(old) = self.inner.cookies.session_id(req) {
            p.store().delete_session(&old.digest()).await?;
        }
        let (id, record) =
            latchkey_core::session::start(user, self.inner.cookies.session_ttl(), p.entropy(), now);
        p.store().save_session(&record, now).await?;
        let request = canonical(request.unwrap_or(""));
        let ticket = self.inner.cookies.login_ticket(&id, &request);
        let query = if request.is_empty() {
            format!("login_ticket={ticket}")
        } else {
            format!("{request}&login_ticket={ticket}")
        };
        Ok((self.inner.cookies.login(&id), query))
    }

    /// `GET /logout` asks for confirmation (a page with a form, so another site cannot log
    /// the user out with a link or an image); the form's `POST /logout` ends the session in
    /// the store and drops the cookie.
    pub async fn logout(&self, req: &HttpRequest) -> HttpResponse {
        let p = &self.inner.provider;
        if req.method != Method::Post {
            let (csrf, set_cookie) = self.inner.cookies.csrf(req, p.entropy(), p.clock().now());
            let ctx = context! {
                csrf_token => csrf,
                logout_action => format!("{}/logout", self.inner.base_path),
            };
            return with_cookie(
                self.inner
                    .pages
                    .render("logout.html", 200, ctx, p.entropy()),
                set_cookie,
            );
        }
        if let Err(page) = self.checked_form(req) {
            return page;
        }
        if let Some(id) = self.inner.cookies.session_id(req)
            && let Err(err) = p.store().delete_session(&id.digest()).await
        {
            return self.error(req, &err.into());
        }
        let mut page = self
            .inner
            .pages
            .render("logged_out.html", 200, context! {}, p.entropy());
        page.headers
            .push(("set-cookie".into(), self.inner.cookies.logout()));
        page
    }

    fn authorize_path(&self, query: &str) -> String {
        format!("{}/authorize?{query}", self.inner.base_path)
    }

    /// Parses a posted form and checks its CSRF token; the error is the page to answer.
    fn checked_form(&self, req: &HttpRequest) -> Result<Params, HttpResponse> {
        if req.method != Method::Post || !req.has_form_body() {
            return Err(self.error(
                req,
                &OAuthError::invalid_request("expected a form post").with_status(400),
            ));
        }
        if self.cross_site(req) {
            return Err(self.error(
                req,
                &OAuthError::invalid_request("the form was posted from another site")
                    .with_status(403),
            ));
        }
        let form = Params::parse(&req.body).map_err(|e| self.error(req, &e))?;
        let now = self.inner.provider.clock().now();
        if !self.inner.cookies.csrf_ok(req, form.get("csrf_token"), now) {
            return Err(self.error(
                req,
                &OAuthError::invalid_request(
                    "the form expired or did not come from this site; go back and try again",
                )
                .with_status(403),
            ));
        }
        Ok(form)
    }

    /// Whether a form post comes from another site: the browser says so in `Sec-Fetch-Site`,
    /// or its `Origin` is not the issuer's. Checked before the CSRF token, on every page post.
    fn cross_site(&self, req: &HttpRequest) -> bool {
        if req
            .header("sec-fetch-site")
            .is_some_and(|site| site.eq_ignore_ascii_case("cross-site"))
        {
            return true;
        }
        req.header("origin").is_some_and(|origin| {
            !origin.eq_ignore_ascii_case(&origin_of(&self.inner.provider.config().issuer))
        })
    }

    async fn render(
        &self,
        req: &HttpRequest,
        outcome: AuthorizeOutcome,
        user: Option<&AuthenticatedUser>,
        failure: Option<LoginFailure>,
        login_ticket: Option<&str>,
    ) -> HttpResponse {
        let p = &self.inner.provider;
        let now = p.clock().now();
        match outcome {
            AuthorizeOutcome::Redirect(response) => response,
            AuthorizeOutcome::ErrorPage(err) => self.error(req, &err),
            AuthorizeOutcome::Login(request) => {
                let query = serialize(&request.params);
                if let Some(redirect) = self
                    .inner
                    .login
                    .login_redirect(&self.authorize_path(&query))
                {
                    return redirect;
                }
                let (csrf, set_cookie) = self.inner.cookies.csrf(req, p.entropy(), now);
                let (status, error, username, retry_after) = LoginFailure::page(failure);
                let ctx = context! {
                    client_name => request.client.name.clone(),
                    csrf_token => csrf,
                    request => query,
                    login_action => format!("{}/login", self.inner.base_path),
                    error => error,
                    username => username,
                };
                let mut page = with_cookie(
                    self.inner
                        .pages
                        .render("login.html", status, ctx, p.entropy()),
                    set_cookie,
                );
                if let Some(secs) = retry_after {
                    page.headers.push(("retry-after".into(), secs.to_string()));
                }
                page
            }
            AuthorizeOutcome::Consent(request) => {
                let (csrf, set_cookie) = self.inner.cookies.csrf(req, p.entropy(), now);
                let mut ctx = self.consent_context(&request, user, csrf);
                if let Some(ticket) = login_ticket {
                    ctx = context! { login_ticket => ticket, ..ctx };
                }
                with_cookie(
                    self.inner
                        .pages
                        .render("consent.html", 200, ctx, p.entropy()),
                    set_cookie,
                )
            }
        }
    }

    fn consent_context(
        &self,
        request: &AuthorizationRequest,
        user: Option<&AuthenticatedUser>,
        csrf: String,
    ) -> minijinja::Value {
        let scopes: Vec<minijinja::Value> = request
            .scope
            .iter()
            .map(|s| {
                context! {
                    name => s,
                    description => self.inner.scope_descriptions.get(s),
                }
            })
            .collect();
        let redirect_host = url_host(&request.redirect_uri);
        context! {
            client_name => request.client.name.clone(),
            client_id => request.client.id.as_str(),
            username => user.map(|u| u.username.as_str()).unwrap_or(""),
            scopes => scopes,
            csrf_token => csrf,
            request => serialize(&request.params),
            authorize_action => format!("{}/authorize", self.inner.base_path),
            redirect_host => redirect_host,
            // RFC 6749 §10.2: a public client's approval is never remembered.
            may_remember => request.client.client_type() != latchkey_core::client::ClientType::Public,
        }
    }

    fn error(&self, _req: &HttpRequest, err: &OAuthError) -> HttpResponse {
        let p = &self.inner.provider;
        if p.config().error_uri.is_some() && err.status() < 500 {
            return p.error_page(err);
        }
        let ctx = context! {
            error => err.code().as_str(),
            description => err.description(),
        };
        let mut page = self
            .inner
            .pages
            .render("error.html", err.status(), ctx, p.entropy());
        page.headers.extend(err.headers().iter().cloned());
        page
    }
}

struct LoginFailure {
    username: String,
    /// Refused without a check: seconds until the next attempt may be made.
    throttled: Option<u64>,
}

impl LoginFailure {
    /// The login page's status, message, user name and `Retry-After` for `failure`.
    fn page(failure: Option<Self>) -> (u16, Option<String>, String, Option<u64>) {
        match failure {
            Some(Self {
                username,
                throttled: Some(secs),
            }) => (
                429,
                Some(format!(
                    "Too many failed attempts. Try again in {secs} seconds."
                )),
                username,
                Some(secs),
            ),
            Some(f) => (
                401,
                Some("Incorrect user name or password.".to_owned()),
                f.username,
                None,
            ),
            None => (200, None, String::new(), None),
        }
    }

    /// The page's account of a refused check.
    fn of(username: &str, check: &PasswordCheck) -> Self {
        Self {
            username: username.to_owned(),
            throttled: match check {
                PasswordCheck::Throttled(t) => Some(t.retry_after),
                _ => None,
            },
        }
    }
}

/// The original authorization request carried in a form's `request` field, as a POST to the
/// authorization endpoint (so the core validates it again, and answers with 303), seen from
/// the same browser: its headers (User-Agent, forwarding), address and transport.
fn original_request(form: &Params, posted: &HttpRequest) -> HttpRequest {
    let mut req = HttpRequest::post_form("/authorize", form.get("request").unwrap_or(""));
    req.headers.extend(
        posted
            .headers
            .iter()
            .filter(|(n, _)| !matches!(n.as_str(), "content-type" | "content-length"))
            .cloned(),
    );
    req.peer = posted.peer;
    req.tls = posted.tls;
    req.transport_allowed = posted.transport_allowed;
    req
}

fn original_client_id(form: &Params) -> String {
    Params::parse(form.get("request").unwrap_or("").as_bytes())
        .ok()
        .and_then(|p| p.get("client_id").map(str::to_owned))
        .unwrap_or_default()
}

/// What the core is told about the user: their session's login time, and whether the
/// request carries a valid login ticket (a login made for it).
fn authentication<'a>(
    current: Option<&'a Current>,
    ticket: Option<&str>,
) -> Option<Authentication<'a>> {
    current.map(|c| Authentication {
        user: &c.user,
        auth_time: c.auth_time,
        fresh: ticket.is_some(),
    })
}

/// The canonical form of an authorization request's query: its parameters sorted, minus the
/// pages' own; what a login ticket signs.
fn canonical(query: &str) -> String {
    Params::parse(query.as_bytes())
        .map(|params| serialize(&params))
        .unwrap_or_default()
}

/// The origin (scheme, host and port) of the issuer URL, as browsers send it in `Origin`.
fn origin_of(issuer: &str) -> String {
    let Some((scheme, rest)) = issuer.split_once("://") else {
        return issuer.to_owned();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let authority = match scheme {
        "https" => authority.strip_suffix(":443").unwrap_or(authority),
        "http" => authority.strip_suffix(":80").unwrap_or(authority),
        _ => authority,
    };
    format!("{scheme}://{authority}")
}

/// The request's parameters, minus anything the pages use themselves.
fn serialize(params: &Params) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().filter(|(k, _)| !RESERVED.contains(k)))
        .finish()
}

fn url_host(uri: &str) -> String {
    uri.split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(rest))
        .unwrap_or(uri)
        .to_owned()
}

fn with_cookie(mut response: HttpResponse, set_cookie: Option<String>) -> HttpResponse {
    if let Some(cookie) = set_cookie {
        response.headers.push(("set-cookie".into(), cookie));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issuer_origin_is_scheme_host_and_port_as_browsers_send_it() {
        assert_eq!(
            origin_of("https://auth.example.com/oauth2"),
            "https://auth.example.com"
        );
        assert_eq!(
            origin_of("https://auth.example.com:443"),
            "https://auth.example.com"
        );
        assert_eq!(origin_of("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(origin_of("http://localhost:80/x"), "http://localhost");
    }

    #[test]
    fn canonical_requests_ignore_order_and_the_pages_own_fields() {
        assert_eq!(
            canonical("state=s&client_id=c&login_ticket=t&csrf_token=x"),
            canonical("client_id=c&state=s")
        );
        assert_ne!(canonical("client_id=c"), canonical("client_id=d"));
    }
}
