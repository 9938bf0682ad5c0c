//! The `form_post` response mode (OAuth 2.0 Form Post Response Mode §2): the authorization
//! response is a small HTML page whose form the browser POSTs to the redirect URI, so that no
//! code or token travels in a URL (no query to log, no fragment to leak through `Referer`).
//!
//! The page runs one inline script, allowed by its SHA-256 hash in the Content-Security-Policy
//! and by nothing else (`default-src 'none'`); without JavaScript the user presses the form's
//! button. Every value is HTML-escaped, the page is never cached (`Cache-Control: no-store`,
//! §2: "the Authorization Server SHOULD … prevent caching") and may not be framed.

use crate::http::HttpResponse;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// The one script of the page: submit its form as soon as it is parsed.
const SCRIPT: &str = "document.forms[0].submit();";

/// The response that POSTs `params` to `redirect_uri` from the user's browser (Form Post
/// Response Mode §2): "the Authorization Server … returns an HTML page … that contains a form
/// … whose action is the redirect_uri and whose method is POST, with the authorization
/// response parameters as hidden fields, and that auto-submits".
pub fn page(redirect_uri: &str, params: &[(&str, &str)]) -> HttpResponse {
    let mut fields = String::new();
    for (name, value) in params {
        fields.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(value)
        ));
    }
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"referrer\" content=\"no-referrer\"><title>Continue</title></head>\
         <body><form method=\"post\" action=\"{}\">{fields}\
         <noscript><p>JavaScript is off: press the button to continue.</p>\
         <button type=\"submit\">Continue</button></noscript></form>\
         <script>{SCRIPT}</script></body></html>",
        escape(redirect_uri)
    );
    HttpResponse {
        status: 200,
        headers: vec![
            ("content-type".into(), "text/html; charset=utf-8".into()),
            ("cache-control".into(), "no-store".into()),
            ("pragma".into(), "no-cache".into()),
            ("content-security-policy".into(), policy()),
            ("referrer-policy".into(), "no-referrer".into()),
            ("x-content-type-options".into(), "nosniff".into()),
        ],
        body: body.into_bytes(),
    }
}

/// The Content-Security-Policy of the page: nothing but the one script, by its hash. The
/// form's target is not restricted by `form-action`: it is the registered redirect URI, which
/// may use any scheme, and some browsers apply `form-action` to the redirects that follow.
fn policy() -> String {
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(SCRIPT));
    format!(
        "default-src 'none'; script-src 'sha256-{hash}'; base-uri 'none'; \
         frame-ancestors 'none'"
    )
}

/// Escapes text for an HTML attribute value or element content.
fn escape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &HttpResponse) -> String {
        String::from_utf8(r.body.clone()).expect("utf-8")
    }

    #[test]
    fn values_are_escaped_and_posted_to_the_redirect_uri() {
        let r = page(
            "https://app.example/cb?a=1&b=2",
            &[("code", "c\"><script>x</script>"), ("state", "s'&")],
        );
        let html = body(&r);
        assert_eq!(r.status, 200);
        assert!(
            html.contains("<form method=\"post\" action=\"https://app.example/cb?a=1&amp;b=2\">")
        );
        assert!(html.contains("name=\"code\" value=\"c&quot;&gt;&lt;script&gt;x&lt;/script&gt;\""));
        assert!(html.contains("name=\"state\" value=\"s&#39;&amp;\""));
        assert_eq!(html.matches("<script>").count(), 1, "only our own script");
        assert!(
            html.contains("<button type=\"submit\">"),
            "a fallback without JavaScript"
        );
    }

    #[test]
    fn the_policy_allows_exactly_the_pages_script_and_nothing_is_cached() {
        let r = page("https://app.example/cb", &[("code", "c")]);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let csp = r.header("content-security-policy").expect("a policy");
        assert!(csp.starts_with("default-src 'none'; script-src 'sha256-"));
        // The hash of "document.forms[0].submit();", computed independently.
        assert!(
            csp.contains("'sha256-8lDeP0UDwCO6/RhblgeH/ctdBzjVpJxrXizsnIk3cEQ='"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"));
        assert!(csp.contains("frame-ancestors 'none'"));
    }
}
