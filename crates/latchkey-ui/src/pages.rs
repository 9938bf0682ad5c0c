//! The page templates: embedded defaults, any of which an operator may replace by putting a
//! file of the same name in a directory (no recompiling). Rendering autoescapes everything
//! and every page carries a strict Content-Security-Policy with a per-response style nonce.
//!
//! Templates take their words from the message catalogs ([`crate::i18n`]) in the locale of
//! the response: `{{ t("login.heading") }}`, with placeholders as keyword arguments:
//! `{{ t("consent.title", client=client_name) }}`. The message and its arguments are
//! escaped; an argument passed through the `strong` or `code` filter is escaped and then
//! wrapped in that element, so a translation can put the client's name anywhere in its
//! sentence and still show it bold.

use crate::i18n::{Catalogs, Locale, Piece, fill};
use latchkey_core::entropy::{Entropy, random_token};
use latchkey_core::http::HttpResponse;
use minijinja::value::Kwargs;
use minijinja::{Environment, HtmlEscape, State, Value};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

/// The templates every deployment has; an override directory may replace any of them.
pub const TEMPLATES: [(&str, &str); 12] = [
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("consent.html", include_str!("../templates/consent.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("logout.html", include_str!("../templates/logout.html")),
    (
        "logged_out.html",
        include_str!("../templates/logged_out.html"),
    ),
    (
        "oauth1_verifier.html",
        include_str!("../templates/oauth1_verifier.html"),
    ),
    ("apps.html", include_str!("../templates/apps.html")),
    (
        "select_account.html",
        include_str!("../templates/select_account.html"),
    ),
    ("device.html", include_str!("../templates/device.html")),
    (
        "device_consent.html",
        include_str!("../templates/device_consent.html"),
    ),
    (
        "device_done.html",
        include_str!("../templates/device_done.html"),
    ),
];

/// A template that cannot be loaded or parsed.
#[derive(Debug, thiserror::Error)]
pub enum PagesError {
    /// The override file could not be read.
    #[error("cannot read template {0}: {1}")]
    Read(String, std::io::Error),
    /// The template does not parse.
    #[error("template {0} is invalid: {1}")]
    Syntax(String, minijinja::Error),
    /// A message catalog does not parse, uses a key no page has, or is named badly.
    #[error("message catalog {0}: {1}")]
    Catalog(String, String),
}

/// The loaded templates and message catalogs.
#[derive(Debug)]
pub struct Pages {
    env: Environment<'static>,
    catalogs: Arc<Catalogs>,
}

impl Pages {
    /// The built-in templates, replaced by same-named files in `overrides` where present.
    pub fn load(overrides: Option<&Path>) -> Result<Self, PagesError> {
        let mut env = Environment::new();
        // minijinja escapes `.html` templates by default; say so explicitly, for every name.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::Html);
        for (name, builtin) in TEMPLATES {
            let source = match overrides.map(|dir| dir.join(name)).filter(|p| p.exists()) {
                Some(path) => std::fs::read_to_string(&path)
                    .map_err(|e| PagesError::Read(path.display().to_string(), e))?,
                None => builtin.to_owned(),
            };
            env.add_template_owned(name, source)
                .map_err(|e| PagesError::Syntax(name.to_owned(), e))?;
        }
        env.add_filter("strong", |v: Value| wrap("strong", &v));
        env.add_filter("code", |v: Value| wrap("code", &v));
        let mut pages = Self {
            env,
            catalogs: Arc::new(Catalogs::builtin()),
        };
        pages.install_catalogs();
        Ok(pages)
    }

    /// These pages speaking the languages of `catalogs` (see [`Catalogs::load`] for the
    /// operator's additions) instead of the compiled-in ones.
    pub fn with_catalogs(mut self, catalogs: Catalogs) -> Self {
        self.catalogs = Arc::new(catalogs);
        self.install_catalogs();
        self
    }

    /// The catalogs the pages speak, for the locale choice and for discovery.
    pub fn catalogs(&self) -> &Catalogs {
        &self.catalogs
    }

    /// The locale of a response to a request with these `ui_locales` (empty if it has none)
    /// and `Accept-Language` header.
    pub fn locale(&self, ui_locales: &[String], accept_language: Option<&str>) -> Locale {
        self.catalogs.negotiate(ui_locales, accept_language)
    }

    /// Message `key` in `locale`, placeholders filled, as plain text (for messages the code
    /// chooses, such as a login error; the template escapes it).
    pub fn text(&self, locale: &Locale, key: &str, args: &[(&str, &str)]) -> String {
        self.catalogs.text(locale, key, args)
    }

    /// Registers `t(key, **args)`: the message in the locale of the page being rendered
    /// (its `lang`), escaped, with its arguments escaped unless already safe markup.
    fn install_catalogs(&mut self) {
        let catalogs = Arc::clone(&self.catalogs);
        self.env.add_function(
            "t",
            move |state: &State, key: &str, args: Kwargs| -> Result<Value, minijinja::Error> {
                let tag = state.lookup("lang");
                let locale = catalogs.by_tag(tag.as_ref().and_then(Value::as_str).unwrap_or(""));
                let message = catalogs.message(&locale, key).unwrap_or(key);
                let mut out = String::with_capacity(message.len() + 16);
                let mut failed = None;
                fill(message, |piece| match piece {
                    Piece::Text(text) => {
                        let _ = write!(out, "{}", HtmlEscape(text));
                    }
                    Piece::Arg(name) => match args.get::<Option<Value>>(name) {
                        Ok(Some(v)) if v.is_safe() => out.push_str(&v.to_string()),
                        Ok(Some(v)) => {
                            let _ = write!(out, "{}", HtmlEscape(&v.to_string()));
                        }
                        Ok(None) => {
                            let _ = write!(out, "{{{}}}", HtmlEscape(name));
                        }
                        Err(err) => failed = Some(err),
                    },
                });
                match failed {
                    Some(err) => Err(err),
                    None => Ok(Value::from_safe_string(out)),
                }
            },
        );
    }

    /// Renders `name` with `ctx` (plus a `nonce`, and the `lang` and `dir` of `locale`) into
    /// a page with the security headers of RFC 9700 §4.16 (no framing) and no caching.
    pub fn render(
        &self,
        name: &str,
        status: u16,
        ctx: minijinja::Value,
        locale: &Locale,
        entropy: &dyn Entropy,
    ) -> HttpResponse {
        let nonce = random_token(entropy, 16);
        let ctx = minijinja::context! {
            nonce => nonce.clone(),
            lang => locale.tag(),
            dir => locale.dir().as_str(),
            ..ctx
        };
        let body = match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(body) => body,
            Err(err) => {
                tracing::error!(template = name, error = %err, "page rendering failed");
                return HttpResponse {
                    status: 500,
                    headers: vec![("content-type".into(), "text/plain; charset=utf-8".into())],
                    body: b"page rendering failed".to_vec(),
                };
            }
        };
        let mut headers = security_headers(&nonce);
        // RFC 9110 §8.5: the language of the page; it varies with the request's.
        headers.push(("content-language".into(), locale.tag().to_owned()));
        headers.push(("vary".into(), "accept-language".into()));
        HttpResponse {
            status,
            headers,
            body: body.into_bytes(),
        }
    }
}

/// `value` escaped and wrapped in `<element>`, as markup the `t` function keeps.
fn wrap(element: &str, value: &Value) -> Value {
    Value::from_safe_string(format!(
        "<{element}>{}</{element}>",
        HtmlEscape(&value.to_string())
    ))
}

/// Headers for every HTML page: no framing, no sniffing, no referrer for other sites (the URL
/// carries `state` and PKCE values; `same-origin` rather than `no-referrer`, under which
/// browsers send `Origin: null` on the pages' own form posts, which the origin check refuses),
/// no caching, and a CSP that allows nothing but our nonce'd style.
pub fn security_headers(nonce: &str) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "text/html; charset=utf-8".into()),
        (
            "content-security-policy".into(),
            format!(
                "default-src 'none'; style-src 'nonce-{nonce}'; img-src 'self' data:; \
                 base-uri 'none'; frame-ancestors 'none'"
            ),
        ),
        ("x-frame-options".into(), "DENY".into()),
        ("x-content-type-options".into(), "nosniff".into()),
        ("referrer-policy".into(), "same-origin".into()),
        ("cache-control".into(), "no-store".into()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::entropy::SeededEntropy;

    #[test]
    fn every_builtin_template_parses_and_escapes() {
        let pages = Pages::load(None).expect("built-in templates parse");
        let ctx = minijinja::context! {
            error => "<script>alert(1)</script>",
            description => "a \"quoted\" & <b>bold</b> claim",
        };
        let en = pages.locale(&[], None);
        let page = pages.render("error.html", 400, ctx, &en, &SeededEntropy::new(1));
        let html = String::from_utf8(page.body).expect("utf-8");
        assert!(html.contains("&lt;script&gt;alert(1)"), "{html}");
        assert!(!html.contains("<script>"));
        assert!(!html.contains("<b>bold</b>"));
        assert_eq!(page.status, 400);
        let csp = page
            .headers
            .iter()
            .find(|(n, _)| n == "content-security-policy")
            .expect("CSP");
        assert!(csp.1.contains("frame-ancestors 'none'"));
    }

    #[test]
    fn catalog_text_and_arguments_are_escaped_and_filters_add_markup() {
        let dir = std::env::temp_dir().join(format!("latchkey-ui-t-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("locales")).expect("temp dir");
        std::fs::write(
            dir.join("locales/en.toml"),
            "[consent]\ntitle = \"<script>x</script> {client}\"\n",
        )
        .expect("write");
        std::fs::write(
            dir.join("t.html"),
            "{{ t(\"consent.title\", client=name) }}|{{ t(\"consent.title\", client=name|strong) }}",
        )
        .expect("write");
        let catalogs = Catalogs::load(Some(&dir.join("locales")), "en").expect("loads");
        let mut pages = Pages::load(None).expect("loads").with_catalogs(catalogs);
        pages
            .env
            .add_template_owned(
                "t.html",
                std::fs::read_to_string(dir.join("t.html")).expect("r"),
            )
            .expect("parses");
        let en = pages.locale(&[], None);
        let ctx = minijinja::context! { name => "<b>A&B</b>" };
        let page = pages.render("t.html", 200, ctx, &en, &SeededEntropy::new(1));
        assert_eq!(
            String::from_utf8(page.body).expect("utf-8"),
            "&lt;script&gt;x&lt;&#x2f;script&gt; &lt;b&gt;A&amp;B&lt;&#x2f;b&gt;|\
             &lt;script&gt;x&lt;&#x2f;script&gt; <strong>&lt;b&gt;A&amp;B&lt;&#x2f;b&gt;</strong>"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn override_directory_replaces_a_template() {
        let dir = std::env::temp_dir().join(format!("latchkey-ui-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("error.html"), "Custom: {{ error }}").expect("write");
        let pages = Pages::load(Some(&dir)).expect("loads");
        let page = pages.render(
            "error.html",
            400,
            minijinja::context! { error => "x<y" },
            &pages.locale(&[], None),
            &SeededEntropy::new(1),
        );
        assert_eq!(
            String::from_utf8(page.body).expect("utf-8"),
            "Custom: x&lt;y"
        );
        std::fs::write(dir.join("error.html"), "{% if %}").expect("write");
        assert!(matches!(
            Pages::load(Some(&dir)),
            Err(PagesError::Syntax(..))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
