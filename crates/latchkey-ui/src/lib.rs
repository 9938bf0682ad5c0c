//! # latchkey-ui
//!
//! Login and consent for the authorization endpoint, the seeds' "site adapter" done without
//! callbacks. The core answers an authorization request with an outcome ("log the user in",
//! "ask for consent"); [`Ui`] turns each outcome into a page, and each page's form post into
//! the next call to the core. It works on the core's framework-free [`HttpRequest`] and
//! [`HttpResponse`], so every web adapter mounts the same four handlers:
//!
//! | route | handler |
//! |---|---|
//! | `GET`/`POST /authorize` | [`Ui::authorize`]: the authorization request, by either method |
//! | `POST /login` | [`Ui::login`] (the built-in login form) |
//! | `GET`/`POST /consent` | [`Ui::consent`]: `GET` continues after login, the consent form's `POST` decides |
//! | `GET`/`POST /logout` | [`Ui::logout`] (`GET` asks, the form's `POST` logs out) |
//! | `GET`/`POST /end_session` | [`Ui::end_session`] (OpenID Connect RP-Initiated Logout) |
//! | `GET`/`POST /apps` | [`Ui::apps`] ("apps you allowed": list, and revoke one by `POST`) |
//! | `GET`/`POST /device`, `POST /device/login` | [`Ui::device`], [`Ui::device_login`]: the device verification page ([`device`]) |
//!
//! The core parses an authorization request once. While it waits on the user, the pages carry
//! it as the core's pending value, sealed ([`session::Cookies::seal_pending`]: HMAC, expiry,
//! bound to the browser's session), and the login and consent steps resume from that value:
//! nothing the client sent is parsed again, and nothing in the request can be changed on the
//! way. Pages are server-rendered, work without JavaScript, escape everything, carry expiring,
//! session-bound CSRF tokens and a strict Content-Security-Policy; every form post must come
//! from the issuer's own origin. The built-in login keeps its sessions in the store
//! ([`latchkey_core::session`]), so logout, a password change or a deleted user ends them. An
//! embedder with its own login implements [`Login`] and keeps the built-in consent page.

pub mod apps;
pub mod device;
mod end_session;
pub mod i18n;
pub mod oauth1;
pub mod pages;
pub mod session;

use i18n::Locale;
use latchkey_core::clock::UnixTime;
use latchkey_core::endpoint::authorize::{
    Authentication, AuthorizeOutcome, AuthorizeRequest, Decision, Pending,
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
    ///
    /// What the returned user carries in [`AuthenticatedUser::attached`] (python-oauth2's
    /// `(user_id, data)`; see [`latchkey_core::attached`]) is stored with the code issued when
    /// the user approves, and so with every token from it. The built-in session attaches
    /// nothing.
    fn current_user(
        &self,
        req: &HttpRequest,
        builtin: Option<AuthenticatedUser>,
    ) -> impl Future<Output = Option<AuthenticatedUser>> + Send;

    /// Where to send a user who must log in. `return_to` is the path to come back to once
    /// logged in ([`CONSENT_PATH`] with the sealed pending request, below the base path).
    /// `None` shows the built-in login page.
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

/// Where the consent form posts, and where a login returns to, below the UI's base path.
pub const CONSENT_PATH: &str = "/consent";

/// How long after a login the pending request it was made for still counts it as a login
/// for that request (`prompt=login`).
const FRESH_LOGIN_TTL: u64 = 600;

/// The form field (and, on the way back from a login, the query parameter) that carries the
/// sealed pending request.
const PENDING_FIELD: &str = "request";

/// How a page carries the pending request of its outcome.
#[derive(Clone, Copy)]
enum Carry<'a> {
    /// Seal the outcome's request for the browser's session; `fresh` says a login was just
    /// completed for it.
    Seal { fresh: bool },
    /// The sealed value the form posted, unchanged (a failed login shows the same form).
    Keep(&'a str),
}

/// The user of a request, and when they last entered their password (if Latchkey's own
/// session says so).
struct Current {
    user: AuthenticatedUser,
    auth_time: Option<UnixTime>,
    /// The built-in session's public `sid`, when the user is that session's.
    sid: Option<String>,
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

    /// The locale of the page answering `req`: from `ui_locales` (those of the pending
    /// request, so the choice holds from login to consent), then `Accept-Language`.
    fn locale(&self, req: &HttpRequest, ui_locales: &[String]) -> Locale {
        self.inner
            .pages
            .locale(ui_locales, req.header("accept-language"))
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

    /// [`authentication`] with the class the built-in login achieves.
    fn authentication<'a>(
        &'a self,
        current: Option<&'a Current>,
        fresh: bool,
    ) -> Option<Authentication<'a>> {
        let login_acr = self.inner.provider.config().acr_values.first();
        authentication(current, fresh, login_acr.map(String::as_str))
    }

    async fn current(&self, req: &HttpRequest) -> Option<Current> {
        let session = self.session(req).await;
        let builtin = session.as_ref().map(SessionRecord::user);
        let user = self.inner.login.current_user(req, builtin).await?;
        let session = session.filter(|s| s.subject == user.subject);
        let auth_time = session.as_ref().map(|s| s.auth_time);
        let sid = session.map(|s| s.sid);
        Some(Current {
            user,
            auth_time,
            sid,
        })
    }

    async fn user(&self, req: &HttpRequest) -> Option<AuthenticatedUser> {
        self.current(req).await.map(|c| c.user)
    }

    /// Whether a pending request's `fresh` flag still proves a login made for it: the
    /// session's login is recent.
    fn fresh(&self, current: Option<&Current>, flagged: bool) -> bool {
        let now = self.inner.provider.clock().now();
        flagged
            && current
                .and_then(|c| c.auth_time)
                .is_some_and(|at| at.seconds_until(now) <= FRESH_LOGIN_TTL)
    }

    /// The pending request sealed in `sealed` for this browser, with its text and `fresh`
    /// flag; the error is the page to answer (the value expired, belongs to another session,
    /// or was altered).
    fn open(&self, req: &HttpRequest, sealed: Option<&str>) -> Result<Opened, HttpResponse> {
        let now = self.inner.provider.clock().now();
        let refused = || {
            self.error(
                req,
                &OAuthError::invalid_request(
                    "the sign-in or consent form expired or was changed; start again from the application",
                ),
            )
        };
        let (text, fresh) = sealed
            .and_then(|sealed| self.inner.cookies.open_pending(req, sealed, now))
            .ok_or_else(refused)?;
        let pending = Pending::decode(text).map_err(|_| refused())?;
        Ok(Opened {
            text: text.to_owned(),
            pending,
            fresh,
        })
    }

    /// `GET`/`POST /authorize`: an authorization request (OpenID Connect Core §3.1.2.1: by
    /// either method, with the same validation and the same result) starts an authorization,
    /// or answers it at once when the user is logged in and has approved the client before.
    pub async fn authorize(&self, req: &HttpRequest) -> HttpResponse {
        let current = self.current(req).await;
        let outcome = self
            .inner
            .provider
            .authorize_with(req, self.authentication(current.as_ref(), false), None)
            .await;
        let user = current.as_ref().map(|c| &c.user);
        self.render(req, outcome, user, None, Carry::Seal { fresh: false })
            .await
    }

    /// `GET /consent?request=…` continues a pending request once the user has logged in;
    /// `POST /consent` is the consent form's answer (CSRF-checked). Both resume from the
    /// sealed pending request, never from the client's parameters.
    pub async fn consent(&self, req: &HttpRequest) -> HttpResponse {
        let (sealed, decision) = match req.method {
            Method::Post => {
                let form = match self.checked_form(req) {
                    Ok(form) => form,
                    Err(page) => return page,
                };
                if let Some(answer) = form.get("account") {
                    return self
                        .select_account(req, form.get(PENDING_FIELD), answer)
                        .await;
                }
                let decision = match form.get("decision") {
                    Some("allow") => Decision::Allow {
                        remember: form.get("remember").is_some(),
                    },
                    Some("deny") => Decision::Deny,
                    _ => {
                        return self
                            .error(req, &OAuthError::invalid_request("no decision was made"));
                    }
                };
                (form.get(PENDING_FIELD).map(str::to_owned), Some(decision))
            }
            Method::Get | Method::Head => {
                let query = Params::parse(req.query.as_bytes()).unwrap_or_default();
                (query.get(PENDING_FIELD).map(str::to_owned), None)
            }
            _ => {
                return self.error(
                    req,
                    &OAuthError::invalid_request("the consent page accepts GET and POST")
                        .with_status(405)
                        .with_header("allow", "GET, POST"),
                );
            }
        };
        let opened = match self.open(req, sealed.as_deref()) {
            Ok(opened) => opened,
            Err(page) => return page,
        };
        let current = self.current(req).await;
        let fresh = self.fresh(current.as_ref(), opened.fresh);
        let outcome = self
            .inner
            .provider
            .resume_authorize(
                req,
                opened.pending,
                self.authentication(current.as_ref(), fresh),
                decision,
            )
            .await;
        let user = current.as_ref().map(|c| &c.user);
        self.render(req, outcome, user, None, Carry::Seal { fresh })
            .await
    }

    /// The answer of the account page (`POST /consent` with `account`): `continue` as the
    /// logged-in user, or `switch`: end this browser's session (Latchkey keeps one per
    /// browser) and log in again, as anyone. Either way the question is not asked again for
    /// this request (OpenID Connect Core §3.1.2.1, `prompt=select_account`).
    async fn select_account(
        &self,
        req: &HttpRequest,
        sealed: Option<&str>,
        answer: &str,
    ) -> HttpResponse {
        let opened = match self.open(req, sealed) {
            Ok(opened) => opened,
            Err(page) => return page,
        };
        let p = &self.inner.provider;
        match answer {
            "continue" => {
                let current = self.current(req).await;
                let outcome = p
                    .resume_authorize(
                        req,
                        opened.pending.account_selected(),
                        self.authentication(current.as_ref(), false),
                        None,
                    )
                    .await;
                let user = current.as_ref().map(|c| &c.user);
                self.render(req, outcome, user, None, Carry::Seal { fresh: false })
                    .await
            }
            "switch" => {
                if let Some(id) = self.inner.cookies.session_id(req)
                    && let Err(err) = p.store().delete_session(&id.digest()).await
                {
                    return self.error(req, &err.into());
                }
                // The browser comes back without a session: the pending request is sealed
                // for that, and the login it leads to answers the question.
                let resealed =
                    self.inner
                        .cookies
                        .seal_pending(&opened.text, "", false, p.clock().now());
                HttpResponse {
                    status: 303,
                    headers: vec![
                        ("location".into(), self.continue_path(&resealed)),
                        ("set-cookie".into(), self.inner.cookies.logout()),
                        ("cache-control".into(), "no-store".into()),
                    ],
                    body: Vec::new(),
                }
            }
            _ => self.error(
                req,
                &OAuthError::invalid_request("account must be continue or switch"),
            ),
        }
    }

    /// `POST /login`: checks the built-in login form and, on success, sets the session and
    /// continues the pending request at [`CONSENT_PATH`], sealed for the new session.
    pub async fn login(&self, req: &HttpRequest) -> HttpResponse {
        let form = match self.checked_form(req) {
            Ok(form) => form,
            Err(page) => return page,
        };
        let sealed = form.get(PENDING_FIELD);
        let opened = match self.open(req, sealed) {
            Ok(opened) => opened,
            Err(page) => return page,
        };
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
                opened.pending.client_id(),
            )
            .await;
        let user = match checked {
            Ok(PasswordCheck::Ok(user)) => user,
            Ok(refused) => {
                let outcome = p.resume_authorize(req, opened.pending, None, None).await;
                let failure = LoginFailure::of(username, &refused);
                let keep = Carry::Keep(sealed.unwrap_or(""));
                return self.render(req, outcome, None, Some(failure), keep).await;
            }
            Err(err) => return self.error(req, &err),
        };
        let (set_cookie, session) = match self.start_session(req, &user).await {
            Ok(started) => started,
            Err(err) => return self.error(req, &err),
        };
        let resealed =
            self.inner
                .cookies
                .seal_pending(&opened.text, &session, true, p.clock().now());
        HttpResponse {
            status: 303,
            headers: vec![
                ("location".into(), self.continue_path(&resealed)),
                ("set-cookie".into(), set_cookie),
                ("cache-control".into(), "no-store".into()),
            ],
            body: Vec::new(),
        }
    }

    /// After a successful login: ends the browser's previous session, stores a new one and
    /// returns its `Set-Cookie` value and the cookie value the browser will send back.
    async fn start_session(
        &self,
        req: &HttpRequest,
        user: &AuthenticatedUser,
    ) -> Result<(String, String), OAuthError> {
        let p = &self.inner.provider;
        let now = p.clock().now();
        if let Some(old) = self.inner.cookies.session_id(req) {
            latchkey_core::logout::end_session(p, &old.digest()).await?;
        }
        let (id, record) =
            latchkey_core::session::start(user, self.inner.cookies.session_ttl(), p.entropy(), now);
        p.store().save_session(&record, now).await?;
        Ok((
            self.inner.cookies.login(&id),
            self.inner.cookies.session_cookie_value(&id),
        ))
    }

    /// `GET /logout` asks for confirmation (a page with a form, so another site cannot log
    /// the user out with a link or an image); the form's `POST /logout` ends the session in
    /// the store (telling the clients that got tokens in it, see
    /// [`latchkey_core::logout`]) and drops the cookie.
    pub async fn logout(&self, req: &HttpRequest) -> HttpResponse {
        let p = &self.inner.provider;
        if req.method != Method::Post {
            let (csrf, set_cookie) = self.inner.cookies.csrf(req, p.entropy(), p.clock().now());
            let ctx = context! {
                csrf_token => csrf,
                logout_action => format!("{}/logout", self.inner.base_path),
            };
            let locale = self.locale(req, &[]);
            return with_cookie(
                self.inner
                    .pages
                    .render("logout.html", 200, ctx, &locale, p.entropy()),
                set_cookie,
            );
        }
        if let Err(page) = self.checked_form(req) {
            return page;
        }
        self.finish_logout(req, None).await
    }

    /// Where a pending request continues after login: [`CONSENT_PATH`] with the sealed value.
    fn continue_path(&self, sealed: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair(PENDING_FIELD, sealed)
            .finish();
        format!("{}{CONSENT_PATH}?{query}", self.inner.base_path)
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
        carry: Carry<'_>,
    ) -> HttpResponse {
        let p = &self.inner.provider;
        let now = p.clock().now();
        let sealed = |request: &AuthorizeRequest| match carry {
            Carry::Keep(sealed) => sealed.to_owned(),
            Carry::Seal { fresh } => self.inner.cookies.seal_pending(
                &request.pending(),
                self.inner.cookies.raw_session_cookie(req),
                fresh,
                now,
            ),
        };
        match outcome {
            AuthorizeOutcome::Redirect(response) => response,
            AuthorizeOutcome::ErrorPage(err) => self.error(req, &err),
            AuthorizeOutcome::Login(request) => {
                let sealed = sealed(&request);
                if let Some(redirect) = self
                    .inner
                    .login
                    .login_redirect(&self.continue_path(&sealed))
                {
                    return redirect;
                }
                let (csrf, set_cookie) = self.inner.cookies.csrf(req, p.entropy(), now);
                let locale = self.locale(req, request.ui_locales());
                let (status, error, username, retry_after) =
                    LoginFailure::page(failure, &self.inner.pages, &locale);
                // OpenID Connect Core §3.1.2.1, login_hint: a hint "about the login
                // identifier the End-User might use", so it pre-fills the user name (what
                // the user typed in a failed attempt takes precedence).
                let username = match (username.is_empty(), request.login_hint()) {
                    (true, Some(hint)) => hint.to_owned(),
                    _ => username,
                };
                let ctx = context! {
                    client_name => request.client().name.clone(),
                    csrf_token => csrf,
                    request => sealed,
                    login_action => format!("{}/login", self.inner.base_path),
                    error => error,
                    username => username,
                    ui_locales => request.ui_locales().to_vec(),
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
            AuthorizeOutcome::Consent(request) => {
                let (csrf, set_cookie) = self.inner.cookies.csrf(req, p.entropy(), now);
                let ctx = self.consent_context(&request, user, csrf, sealed(&request));
                let locale = self.locale(req, request.ui_locales());
                with_cookie(
                    self.inner
                        .pages
                        .render("consent.html", 200, ctx, &locale, p.entropy()),
                    set_cookie,
                )
            }
            AuthorizeOutcome::SelectAccount(request) => {
                let (csrf, set_cookie) = self.inner.cookies.csrf(req, p.entropy(), now);
                let ctx = context! {
                    client_name => request.client().name.clone(),
                    username => user.map(|u| u.username.as_str()).unwrap_or(""),
                    login_hint => request.login_hint(),
                    csrf_token => csrf,
                    request => sealed(&request),
                    authorize_action => format!("{}{CONSENT_PATH}", self.inner.base_path),
                    ui_locales => request.ui_locales().to_vec(),
                };
                let locale = self.locale(req, request.ui_locales());
                with_cookie(
                    self.inner
                        .pages
                        .render("select_account.html", 200, ctx, &locale, p.entropy()),
                    set_cookie,
                )
            }
        }
    }

    fn consent_context(
        &self,
        request: &AuthorizeRequest,
        user: Option<&AuthenticatedUser>,
        csrf: String,
        sealed: String,
    ) -> minijinja::Value {
        let scopes = self.scope_items(request.scope());
        let client = request.client();
        // RFC 8707: the resources the tokens would be for, by their configured name.
        let registry = &self.inner.provider.config().resources;
        let resources: Vec<minijinja::Value> = request
            .audience()
            .iter()
            .map(|id| {
                context! {
                    id => id,
                    name => registry.get(id).and_then(|r| r.name.clone()),
                }
            })
            .collect();
        context! {
            client_name => client.name.clone(),
            client_id => client.id.as_str(),
            username => user.map(|u| u.username.as_str()).unwrap_or(""),
            scopes => scopes,
            resources => resources,
            csrf_token => csrf,
            request => sealed,
            authorize_action => format!("{}{CONSENT_PATH}", self.inner.base_path),
            redirect_host => url_host(request.redirect_uri().as_str()),
            // RFC 6749 §10.2: a public client's approval is never remembered.
            may_remember => client.client_type() != latchkey_core::client::ClientType::Public,
            ui_locales => request.ui_locales().to_vec(),
        }
    }

    /// The scopes of a consent page, each with its description: the authorization and the
    /// device consent pages list them the same way.
    fn scope_items(&self, scope: &latchkey_core::scope::ScopeSet) -> Vec<minijinja::Value> {
        scope
            .iter()
            .map(|s| {
                context! {
                    name => s,
                    description => self.inner.scope_descriptions.get(s),
                }
            })
            .collect()
    }

    fn error(&self, req: &HttpRequest, err: &OAuthError) -> HttpResponse {
        let p = &self.inner.provider;
        if p.config().error_uri.is_some() && err.status() < 500 {
            return p.error_page(err);
        }
        // The error code and its description are protocol text for the application's
        // developers (RFC 6749 §4.1.2.1), in English; the page around them is localized.
        let ctx = context! {
            error => err.code().as_str(),
            description => err.description(),
        };
        let locale = self.locale(req, &[]);
        let mut page =
            self.inner
                .pages
                .render("error.html", err.status(), ctx, &locale, p.entropy());
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
    /// The login page's status, message (in `locale`), user name and `Retry-After` for
    /// `failure`.
    fn page(
        failure: Option<Self>,
        pages: &Pages,
        locale: &Locale,
    ) -> (u16, Option<String>, String, Option<u64>) {
        match failure {
            Some(Self {
                username,
                throttled: Some(secs),
            }) => (
                429,
                Some(pages.text(locale, "login.throttled", &[("seconds", &secs.to_string())])),
                username,
                Some(secs),
            ),
            Some(f) => (
                401,
                Some(pages.text(locale, "login.failed", &[])),
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

/// A sealed pending request that checked: its text (to seal again after login), the decoded
/// value, and whether a login was completed for it.
struct Opened {
    text: String,
    pending: Pending,
    fresh: bool,
}

/// What the core is told about the user: their session's login time, whether a login was
/// completed for this very request (`fresh`), and how they logged in: Latchkey's own login
/// checks a password (RFC 8176 §2 `pwd`) and achieves `login_acr`, the first of the
/// provider's `acr_values` (OpenID Connect Core §2); a login the embedder plugs in says
/// nothing here.
fn authentication<'a>(
    current: Option<&'a Current>,
    fresh: bool,
    login_acr: Option<&'a str>,
) -> Option<Authentication<'a>> {
    current.map(|c| Authentication {
        user: &c.user,
        auth_time: c.auth_time,
        fresh,
        sid: c.sid.clone(),
        amr: if c.sid.is_some() { &["pwd"] } else { &[] },
        acr: c.sid.is_some().then_some(login_acr).flatten(),
    })
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
}
