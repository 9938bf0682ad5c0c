//! An embedder's own login plugged in through [`Login`], with the built-in consent page.

use latchkey_core::http::{HttpRequest, HttpResponse, Method};
use latchkey_core::pkce::s256_challenge;
use latchkey_core::user::AuthenticatedUser;
use latchkey_testkit::{TestKit, VERIFIER, location_params};
use latchkey_ui::pages::Pages;
use latchkey_ui::session::cookie;
use latchkey_ui::{Login, SessionKey, Ui, UiConfig};

struct AppLogin;

impl Login for AppLogin {
    async fn current_user(
        &self,
        req: &HttpRequest,
        builtin: Option<AuthenticatedUser>,
    ) -> Option<AuthenticatedUser> {
        assert!(builtin.is_none(), "no built-in session in this test");
        cookie(req, "app_session").map(|name| AuthenticatedUser {
            subject: format!("app-{name}"),
            username: name.to_owned(),
        })
    }

    fn login_redirect(&self, return_to: &str) -> Option<HttpResponse> {
        Some(HttpResponse {
            status: 302,
            headers: vec![(
                "location".into(),
                format!("/app/login?return_to={return_to}"),
            )],
            body: Vec::new(),
        })
    }
}

fn get(query: &str, cookies: &str) -> HttpRequest {
    let mut req = HttpRequest::new(Method::Get, "/oauth2/authorize").with_header("cookie", cookies);
    req.query = query.to_owned();
    req
}

fn hidden(body: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = body.find(&marker).expect("field present") + marker.len();
    let end = body[start..].find('"').expect("closing quote") + start;
    body[start..end]
        .replace("&amp;", "&")
        .replace("&#x2f;", "/")
}

#[tokio::test]
async fn embedder_login_and_builtin_consent_issue_a_code() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let mut config = UiConfig::new(SessionKey::new([3; 32]));
    config.secure_cookies = false;
    config.base_path = "/oauth2".into();
    let ui = Ui::new(
        kit.provider.clone(),
        Pages::load(None).expect("templates"),
        AppLogin,
        config,
    );
    let query = format!(
        "response_type=code&client_id={}&state=s&code_challenge={}&code_challenge_method=S256",
        spa.id(),
        s256_challenge(VERIFIER)
    );

    let to_login = ui.authorize(&get(&query, "")).await;
    assert_eq!(to_login.status, 302);
    let location = to_login.header("location").expect("location");
    // The embedder's login returns to the consent step with the sealed pending request.
    assert!(
        location.starts_with("/app/login?return_to=/oauth2/consent?request="),
        "{location}"
    );
    assert!(location.contains(spa.id()));
    let return_to = location
        .strip_prefix("/app/login?return_to=/oauth2/consent?")
        .expect("return_to");

    let consent = ui.consent(&get(return_to, "app_session=grace")).await;
    assert_eq!(consent.status, 200);
    let body = String::from_utf8(consent.body.clone()).expect("utf-8");
    assert!(
        body.contains("Signed in as <strong>grace</strong>"),
        "{body}"
    );
    let csrf_cookie = consent
        .headers
        .iter()
        .find(|(n, v)| n == "set-cookie" && v.starts_with("lk_csrf="))
        .map(|(_, v)| v.split(';').next().expect("pair").to_owned())
        .expect("a CSRF cookie");
    let form = format!(
        "csrf_token={}&request={}&decision=allow",
        latchkey_testkit::form_encode(&hidden(&body, "csrf_token")),
        latchkey_testkit::form_encode(&hidden(&body, "request")),
    );
    let post = HttpRequest::post_form("/oauth2/consent", form)
        .with_header("cookie", format!("app_session=grace; {csrf_cookie}"));
    let done = ui.consent(&post).await;
    assert_eq!(done.status, 303);
    let params = location_params(&done);
    assert!(params.contains_key("code"));
    assert_eq!(params["state"], "s");
}
