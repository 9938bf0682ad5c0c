//! The device verification page (RFC 8628 §3.3): the user enters the code their device
//! shows, signs in, sees the device's client and scopes, and allows or denies it.
//!
//! | route | handler |
//! |---|---|
//! | `GET`/`POST /device` | [`Ui::device`]: `GET` shows the code form (pre-filled from `verification_uri_complete`'s `user_code`, still to be confirmed, RFC 8628 §5.4); `POST` looks the code up, then asks to sign in or to allow |
//! | `POST /device/login` | [`Ui::device_login`] (the built-in login form for a device) |
//!
//! Every code looked up goes through [`latchkey_core::device::verify::find`], which counts
//! wrong codes per address and in total; the answer goes through
//! [`latchkey_core::device::verify::decide`]. The pages share the login, CSRF, origin checks,
//! escaping and headers of the authorization pages. An embedder with its own login is sent
//! there by [`Login::login_redirect`] with a sealed value to come back to `/device` with.

use crate::{Current, Login, LoginFailure, Ui, with_cookie};
use latchkey_core::device::verify::{self, Answer, Decided, DeviceRequest, Lookup};
use latchkey_core::error::OAuthError;
use latchkey_core::http::{HttpRequest, HttpResponse, Method};
use latchkey_core::login::PasswordCheck;
use latchkey_core::oidc::AuthContext;
use latchkey_core::params::Params;
use latchkey_core::secret::Secret;
use latchkey_core::store::{PendingStore, ProviderStore};
use latchkey_core::user::UserAuthenticator;
use minijinja::context;

/// The verification page, below the UI's base path (the default `verification_uri`).
pub const DEVICE_PATH: &str = latchkey_core::device::VERIFICATION_PATH;

/// Where the device login form posts, below the UI's base path.
pub const DEVICE_LOGIN_PATH: &str = "/device/login";

/// The form field (and query parameter after a login) carrying the sealed user code.
const SEALED_FIELD: &str = "request";

/// The catalog key of what the code form says when a code names nothing (wrong, expired or
/// already used: the page does not tell which).
const NOT_FOUND: &str = "device.not_found";

/// The catalog key of what the code form says when its sealed code expired.
const EXPIRED_FORM: &str = "device.expired";

impl<S, U, L> Ui<S, U, L>
where
    S: ProviderStore + PendingStore,
    U: UserAuthenticator,
    L: Login,
{
    /// `GET /device` shows the code form; `POST /device` is the code form's or the allow
    /// form's answer (CSRF-checked). `GET /device?request=…` continues after a login.
    pub async fn device(&self, req: &HttpRequest) -> HttpResponse {
        match req.method {
            Method::Get | Method::Head => {
                let query = Params::parse(req.query.as_bytes()).unwrap_or_default();
                if let Some(sealed) = query.get(SEALED_FIELD) {
                    return self.device_after_login(req, sealed).await;
                }
                // RFC 8628 §5.4: a code from `verification_uri_complete` is shown for the
                // user to compare with the device's, never looked up without a click.
                let typed = query.get("user_code").unwrap_or("");
                let shown: String = typed.chars().take(24).collect();
                self.device_form(req, &shown, None, 200)
            }
            Method::Post => {
                let form = match self.checked_form(req) {
                    Ok(form) => form,
                    Err(page) => return page,
                };
                let typed = form.get("user_code").unwrap_or("");
                match form.get("decision") {
                    None => self.device_code_entered(req, typed).await,
                    Some(decision) => self.device_decided(req, typed, decision).await,
                }
            }
            _ => self.error(
                req,
                &OAuthError::invalid_request("the device page accepts GET and POST")
                    .with_status(405)
                    .with_header("allow", "GET, POST"),
            ),
        }
    }

    /// `POST /device/login`: the built-in login for a device's code; on success, sets the
    /// session and returns to `/device` with the code sealed for the new session.
    pub async fn device_login(&self, req: &HttpRequest) -> HttpResponse {
        let form = match self.checked_form(req) {
            Ok(form) => form,
            Err(page) => return page,
        };
        let sealed = form.get(SEALED_FIELD).unwrap_or("");
        let p = &self.inner.provider;
        let Some((code, _)) = self
            .inner
            .cookies
            .open_pending(req, sealed, p.clock().now())
        else {
            return self.device_form(req, "", Some(EXPIRED_FORM), 400);
        };
        let code = code.to_owned();
        let request = match self.device_lookup(req, &code).await {
            Ok(request) => request,
            Err(page) => return page,
        };
        let username = form.get("username").unwrap_or("");
        let password = Secret::new(form.get("password").unwrap_or(""));
        // The one password-check path: backoff, counting and audit, as on /login.
        let checked = p
            .check_password(
                username,
                &password,
                p.client_ip(req),
                request.client.id.as_str(),
            )
            .await;
        let user = match checked {
            Ok(PasswordCheck::Ok(user)) => user,
            Ok(refused) => {
                let failure = LoginFailure::of(username, &refused);
                return self.device_login_page(req, &request, sealed, Some(failure));
            }
            Err(err) => return self.error(req, &err),
        };
        let (set_cookie, session) = match self.start_session(req, &user).await {
            Ok(started) => started,
            Err(err) => return self.error(req, &err),
        };
        let resealed = self
            .inner
            .cookies
            .seal_pending(&code, &session, true, p.clock().now());
        HttpResponse {
            status: 303,
            headers: vec![
                ("location".into(), self.device_continue_path(&resealed)),
                ("set-cookie".into(), set_cookie),
                ("cache-control".into(), "no-store".into()),
            ],
            body: Vec::new(),
        }
    }

    /// The code form was sent: look the code up, then ask to sign in or to allow.
    async fn device_code_entered(&self, req: &HttpRequest, typed: &str) -> HttpResponse {
        let request = match self.device_lookup(req, typed).await {
            Ok(request) => request,
            Err(page) => return page,
        };
        let current = self.current(req).await;
        match current {
            Some(current) => self.device_consent(req, &request, &current),
            None => {
                let now = self.inner.provider.clock().now();
                let sealed = self.inner.cookies.seal_pending(
                    &request.user_code,
                    self.inner.cookies.raw_session_cookie(req),
                    false,
                    now,
                );
                if let Some(redirect) = self
                    .inner
                    .login
                    .login_redirect(&self.device_continue_path(&sealed))
                {
                    return redirect;
                }
                self.device_login_page(req, &request, &sealed, None)
            }
        }
    }

    /// Back from a login with the code sealed for this session: ask to allow.
    async fn device_after_login(&self, req: &HttpRequest, sealed: &str) -> HttpResponse {
        let now = self.inner.provider.clock().now();
        let Some((code, _)) = self.inner.cookies.open_pending(req, sealed, now) else {
            return self.device_form(req, "", Some(EXPIRED_FORM), 400);
        };
        let code = code.to_owned();
        let request = match self.device_lookup(req, &code).await {
            Ok(request) => request,
            Err(page) => return page,
        };
        match self.current(req).await {
            Some(current) => self.device_consent(req, &request, &current),
            None => self.device_form(req, &request.user_code, None, 200),
        }
    }

    /// The allow form was sent.
    async fn device_decided(&self, req: &HttpRequest, typed: &str, decision: &str) -> HttpResponse {
        let allow = match decision {
            "allow" => true,
            "deny" => false,
            _ => {
                return self.error(req, &OAuthError::invalid_request("no decision was made"));
            }
        };
        let Some(current) = self.current(req).await else {
            // The session ended between the pages: start again from the code.
            return self.device_form(req, typed, Some("device.sign_in_again"), 401);
        };
        let request = match self.device_lookup(req, typed).await {
            Ok(request) => request,
            Err(page) => return page,
        };
        let answer = if allow {
            Answer::Allow {
                auth: Box::new(AuthContext::login(
                    current.auth_time,
                    if current.sid.is_some() { &["pwd"] } else { &[] },
                    None,
                    current.sid.as_deref(),
                )),
                user: current.user.clone(),
            }
        } else {
            Answer::DenyAs {
                user: current.user.clone(),
            }
        };
        let p = &self.inner.provider;
        match verify::decide(p, &request, answer).await {
            Ok(Decided::Recorded) => {
                let ctx = context! {
                    client_name => request.client.name.clone(),
                    allowed => allow,
                };
                let locale = self.locale(req, &[]);
                self.inner
                    .pages
                    .render("device_done.html", 200, ctx, &locale, p.entropy())
            }
            Ok(_) => self.device_form(req, "", Some(NOT_FOUND), 400),
            Err(err) => self.error(req, &err),
        }
    }

    /// Looks `typed` up (rate limited); the error is the page to answer.
    async fn device_lookup(
        &self,
        req: &HttpRequest,
        typed: &str,
    ) -> Result<DeviceRequest, HttpResponse> {
        let p = &self.inner.provider;
        match verify::find(p, p.client_ip(req), typed).await {
            Ok(Lookup::Found(request)) => Ok(*request),
            Ok(_) => Err(self.device_form(req, typed, Some(NOT_FOUND), 400)),
            Err(err) if err.status() == 429 => {
                let secs = err
                    .headers()
                    .iter()
                    .find(|(n, _)| n == "retry-after")
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
                let mut page = self.device_form_with(
                    req,
                    "",
                    Some(("device.throttled", &[("seconds", &secs)])),
                    429,
                );
                page.headers.push(("retry-after".into(), secs));
                Err(page)
            }
            Err(err) => Err(self.error(req, &err)),
        }
    }

    /// The code form, with the message `error` (a catalog key) if any.
    fn device_form(
        &self,
        req: &HttpRequest,
        typed: &str,
        error: Option<&str>,
        status: u16,
    ) -> HttpResponse {
        self.device_form_with(req, typed, error.map(|key| (key, &[][..])), status)
    }

    /// The code form, with the message `error` (a catalog key and its arguments) if any.
    fn device_form_with(
        &self,
        req: &HttpRequest,
        typed: &str,
        error: Option<(&str, &[(&str, &str)])>,
        status: u16,
    ) -> HttpResponse {
        let p = &self.inner.provider;
        let (csrf, set_cookie) = self.inner.cookies.csrf(req, p.entropy(), p.clock().now());
        let locale = self.locale(req, &[]);
        let error = error.map(|(key, args)| self.inner.pages.text(&locale, key, args));
        let ctx = context! {
            csrf_token => csrf,
            device_action => format!("{}{DEVICE_PATH}", self.inner.base_path),
            user_code => typed,
            prefilled => !typed.is_empty() && error.is_none(),
            error => error,
        };
        with_cookie(
            self.inner
                .pages
                .render("device.html", status, ctx, &locale, p.entropy()),
            set_cookie,
        )
    }

    fn device_login_page(
        &self,
        req: &HttpRequest,
        request: &DeviceRequest,
        sealed: &str,
        failure: Option<LoginFailure>,
    ) -> HttpResponse {
        let p = &self.inner.provider;
        let (csrf, set_cookie) = self.inner.cookies.csrf(req, p.entropy(), p.clock().now());
        let locale = self.locale(req, &[]);
        let (status, error, username, retry_after) =
            LoginFailure::page(failure, &self.inner.pages, &locale);
        let ctx = context! {
            client_name => request.client.name.clone(),
            csrf_token => csrf,
            request => sealed,
            login_action => format!("{}{DEVICE_LOGIN_PATH}", self.inner.base_path),
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

    fn device_consent(
        &self,
        req: &HttpRequest,
        request: &DeviceRequest,
        current: &Current,
    ) -> HttpResponse {
        let p = &self.inner.provider;
        let (csrf, set_cookie) = self.inner.cookies.csrf(req, p.entropy(), p.clock().now());
        let ctx = context! {
            client_name => request.client.name.clone(),
            client_id => request.client.id.as_str(),
            username => current.user.username.as_str(),
            user_code => latchkey_core::device::display_user_code(&request.user_code),
            scopes => self.scope_items(&request.scope),
            csrf_token => csrf,
            device_action => format!("{}{DEVICE_PATH}", self.inner.base_path),
        };
        let locale = self.locale(req, &[]);
        with_cookie(
            self.inner
                .pages
                .render("device_consent.html", 200, ctx, &locale, p.entropy()),
            set_cookie,
        )
    }

    /// Where a device's code continues after a login: [`DEVICE_PATH`] with the sealed code.
    fn device_continue_path(&self, sealed: &str) -> String {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair(SEALED_FIELD, sealed)
            .finish();
        format!("{}{DEVICE_PATH}?{query}", self.inner.base_path)
    }
}
