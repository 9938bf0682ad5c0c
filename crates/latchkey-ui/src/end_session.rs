//! `GET`/`POST /end_session`: OpenID Connect RP-Initiated Logout 1.0 on the built-in pages.
//!
//! The core checks the request ([`EndSessionRequest`]: the `id_token_hint`, the client, the
//! exact `post_logout_redirect_uri`) and says whether the user must confirm; this page asks
//! when it must (a form with a CSRF token, like the consent page, carrying the request sealed
//! for this browser's session), then ends the session through the core
//! ([`latchkey_core::logout::end_session`], which also sends the back-channel logouts), drops
//! the cookie, and redirects to the client with `state` or shows the "signed out" page. A
//! request that fails its checks gets an error page, never a redirect (§3).

use crate::{Login, Ui, with_cookie};
use latchkey_core::error::OAuthError;
use latchkey_core::http::{HttpRequest, HttpResponse, Method};
use latchkey_core::logout::EndSessionRequest;
use latchkey_core::params::Params;
use latchkey_core::store::ProviderStore;
use latchkey_core::user::UserAuthenticator;
use minijinja::context;

/// The form field that carries the sealed end-session request on the confirmation page.
const REQUEST_FIELD: &str = "request";

impl<S: ProviderStore, U: UserAuthenticator, L: Login> Ui<S, U, L> {
    /// `GET`/`POST /end_session` (the `end_session_endpoint`): a relying party's logout
    /// request, by either method (RP-Initiated Logout §2), or the confirmation form's answer
    /// (a `POST` with this site's CSRF token).
    pub async fn end_session(&self, req: &HttpRequest) -> HttpResponse {
        let p = &self.inner.provider;
        if req.method == Method::Post && is_confirmation(req) {
            let form = match self.checked_form(req) {
                Ok(form) => form,
                Err(page) => return page,
            };
            let now = p.clock().now();
            let request = match form.get(REQUEST_FIELD).filter(|s| !s.is_empty()) {
                None => None,
                Some(sealed) => {
                    let Some(query) = self.inner.cookies.open_logout(req, sealed, now) else {
                        return self.error(
                            req,
                            &OAuthError::invalid_request(
                                "the sign-out form expired or was changed; start again from the application",
                            ),
                        );
                    };
                    // Checked again: the client may have changed while the user read the page.
                    let params = match Params::parse(query.as_bytes()) {
                        Ok(params) => params,
                        Err(err) => return self.error(req, &err),
                    };
                    match EndSessionRequest::from_params(p, &params).await {
                        Ok(request) => Some(request),
                        Err(err) => return self.error(req, &err),
                    }
                }
            };
            return self.finish_logout(req, request.as_ref()).await;
        }
        let request = match EndSessionRequest::from_request(p, req).await {
            Ok(request) => request,
            Err(err) => return self.error(req, &err),
        };
        let session = self.session(req).await;
        if request.needs_confirmation(session.as_ref()) {
            return self.confirm_logout(req, &request);
        }
        self.finish_logout(req, Some(&request)).await
    }

    /// The page asking the user to confirm, with the request sealed for this session.
    fn confirm_logout(&self, req: &HttpRequest, request: &EndSessionRequest) -> HttpResponse {
        let p = &self.inner.provider;
        let now = p.clock().now();
        let (csrf, set_cookie) = self.inner.cookies.csrf(req, p.entropy(), now);
        let sealed = self.inner.cookies.seal_logout(
            &request.to_query(),
            self.inner.cookies.raw_session_cookie(req),
            now,
        );
        let ctx = context! {
            csrf_token => csrf,
            logout_action => format!("{}{}", self.inner.base_path, latchkey_core::logout::END_SESSION_PATH),
            request => sealed,
            client_name => request.client.as_ref().map(|c| c.name.clone()),
        };
        let locale = self.locale(req, &ui_locales(request));
        with_cookie(
            self.inner
                .pages
                .render("logout.html", 200, ctx, &locale, p.entropy()),
            set_cookie,
        )
    }

    /// Ends the browser's session (and tells the clients that got tokens in it), drops the
    /// cookie, and sends the browser on: to the registered `post_logout_redirect_uri` with
    /// `state`, or to the "signed out" page.
    pub(crate) async fn finish_logout(
        &self,
        req: &HttpRequest,
        request: Option<&EndSessionRequest>,
    ) -> HttpResponse {
        let p = &self.inner.provider;
        if let Some(id) = self.inner.cookies.session_id(req)
            && let Err(err) = latchkey_core::logout::end_session(p, &id.digest()).await
        {
            return self.error(req, &err);
        }
        let mut page = request
            .and_then(EndSessionRequest::redirect)
            .unwrap_or_else(|| {
                let locale = self.locale(req, &request.map(ui_locales).unwrap_or_default());
                self.inner
                    .pages
                    .render("logged_out.html", 200, context! {}, &locale, p.entropy())
            });
        page.headers
            .push(("set-cookie".into(), self.inner.cookies.logout()));
        page
    }
}

/// Whether a `POST` is our confirmation form (it carries our CSRF token) rather than a relying
/// party's logout request sent by `POST`.
fn is_confirmation(req: &HttpRequest) -> bool {
    req.has_form_body()
        && Params::parse(&req.body).is_ok_and(|form| form.get("csrf_token").is_some())
}

/// The `ui_locales` of a logout request (OpenID Connect RP-Initiated Logout §2), as tags.
fn ui_locales(request: &EndSessionRequest) -> Vec<String> {
    request
        .ui_locales
        .as_deref()
        .unwrap_or("")
        .split_ascii_whitespace()
        .map(str::to_owned)
        .collect()
}
