//! The "apps you allowed" page: the signed-in user's remembered consents, each with a button
//! that withdraws it.
//!
//! `GET /apps` lists the clients the user allowed, with the scopes and when. Each entry's
//! form posts `client_id` to `POST /apps`, which goes through the same checks as every other
//! form of the pages (same-origin post, session-bound CSRF token) and then calls
//! [`withdraw_consent`]: the tokens that client holds for the user are revoked and the consent
//! is forgotten. The answer is a redirect back to the list (post/redirect/get), so the page
//! works without JavaScript and a reload does not post again.

use crate::{Login, Ui, with_cookie};
use latchkey_core::clock::UnixTime;
use latchkey_core::error::OAuthError;
use latchkey_core::http::{HttpRequest, HttpResponse, Method};
use latchkey_core::store::{ProviderStore, withdraw_consent};
use latchkey_core::user::UserAuthenticator;
use minijinja::context;

impl<S: ProviderStore, U: UserAuthenticator, L: Login> Ui<S, U, L> {
    /// `GET /apps` shows the signed-in user's allowed apps; `POST /apps` revokes one.
    pub async fn apps(&self, req: &HttpRequest) -> HttpResponse {
        if req.method == Method::Post {
            return self.revoke_app(req).await;
        }
        let p = &self.inner.provider;
        let Some(user) = self.user(req).await else {
            if let Some(redirect) = self.inner.login.login_redirect(&self.apps_path()) {
                return redirect;
            }
            let ctx = context! { username => "" };
            let locale = self.locale(req, &[]);
            return self
                .inner
                .pages
                .render("apps.html", 200, ctx, &locale, p.entropy());
        };
        let consents = match p.store().list_consents(&user.subject).await {
            Ok(consents) => consents,
            Err(err) => return self.error(req, &err.into()),
        };
        let mut apps = Vec::with_capacity(consents.len());
        for consent in consents {
            // Deleting a client deletes its consents; one listed while that deletion runs
            // shows under its client id.
            let client_name = match p.store().get_client(&consent.client_id).await {
                Ok(client) => client.map_or_else(|| consent.client_id.clone(), |c| c.name),
                Err(err) => return self.error(req, &err.into()),
            };
            let scopes: Vec<minijinja::Value> = consent
                .scope
                .iter()
                .map(|s| {
                    context! {
                        name => s,
                        description => self.inner.scope_descriptions.get(s),
                    }
                })
                .collect();
            apps.push(context! {
                client_id => consent.client_id,
                client_name => client_name,
                scopes => scopes,
                granted_at => utc_minute(consent.granted_at),
            });
        }
        let (csrf, set_cookie) = self.inner.cookies.csrf(req, p.entropy(), p.clock().now());
        let ctx = context! {
            username => user.username,
            apps => apps,
            csrf_token => csrf,
            apps_action => self.apps_path(),
        };
        let locale = self.locale(req, &[]);
        with_cookie(
            self.inner
                .pages
                .render("apps.html", 200, ctx, &locale, p.entropy()),
            set_cookie,
        )
    }

    /// `POST /apps`: withdraws the signed-in user's consent to the posted `client_id` and
    /// revokes the tokens that client holds for them, then returns to the list.
    async fn revoke_app(&self, req: &HttpRequest) -> HttpResponse {
        let form = match self.checked_form(req) {
            Ok(form) => form,
            Err(page) => return page,
        };
        let Some(user) = self.user(req).await else {
            return self.error(
                req,
                &OAuthError::invalid_request("you are not signed in").with_status(401),
            );
        };
        let Some(client_id) = form.get("client_id").filter(|id| !id.is_empty()) else {
            return self.error(
                req,
                &OAuthError::invalid_request("no application was named"),
            );
        };
        let withdrawn =
            match withdraw_consent(self.inner.provider.store(), &user.subject, client_id).await {
                Ok(withdrawn) => withdrawn,
                Err(err) => return self.error(req, &err.into()),
            };
        let client_ip = self.inner.provider.client_ip(req);
        tracing::info!(
            target: "latchkey::audit",
            event = "consent_revoked",
            actor = "user",
            client_ip = client_ip.map(tracing::field::display),
            subject = user.subject.as_str(),
            client_id,
            consent = withdrawn.consent,
            tokens_revoked = withdrawn.tokens,
        );
        HttpResponse {
            status: 303,
            headers: vec![
                ("location".into(), self.apps_path()),
                ("cache-control".into(), "no-store".into()),
            ],
            body: Vec::new(),
        }
    }

    fn apps_path(&self) -> String {
        format!("{}/apps", self.inner.base_path)
    }
}

/// `YYYY-MM-DD HH:MM UTC` for a time in seconds since the epoch (the proleptic Gregorian
/// calendar, by Howard Hinnant's `civil_from_days`).
fn utc_minute(t: UnixTime) -> String {
    let days = t.0.div_euclid(86_400);
    let secs = t.0.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_dates() {
        assert_eq!(utc_minute(UnixTime(0)), "1970-01-01 00:00 UTC");
        assert_eq!(utc_minute(UnixTime(951_782_400)), "2000-02-29 00:00 UTC");
        assert_eq!(utc_minute(UnixTime(1_798_761_599)), "2026-12-31 23:59 UTC");
        assert_eq!(utc_minute(UnixTime(-1)), "1969-12-31 23:59 UTC");
    }
}
