//! Cookies (`latchkey_ui::session`): the `Cookie` header parser, the signed session cookie
//! and the signed double-submit CSRF token.
//!
//! Invariants: never panics; `cookie` returns a value that really follows `name=` in a
//! `Cookie` header; a session id is read from a session cookie only when it is byte for byte
//! the one the server set (any change, or any cookie sent before it with the same name, logs
//! nobody in); a CSRF token passes only for its own CSRF cookie and session cookie, and only
//! until it expires.
#![no_main]

use arbitrary::Arbitrary;
use latchkey_core::clock::UnixTime;
use latchkey_core::entropy::SeededEntropy;
use latchkey_core::http::{HttpRequest, Method};
use latchkey_core::secret::Secret;
use latchkey_ui::session::{CSRF_TTL, Cookies, SessionKey, cookie};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// The session id's bytes (the server's ids are random; any bytes, hex-encoded, stand in).
    id: Vec<u8>,
    secure: bool,
    elapsed: u16,
    before: Vec<String>,
    after: Vec<String>,
    /// Replace the character at this index of the session cookie with this one.
    mutate: Option<(u16, char)>,
    csrf_token: Option<String>,
    lookup: String,
}

fuzz_target!(|input: Input| {
    let cookies = Cookies::new(SessionKey::new([7; 32]), input.secure, 600);
    let id_text: String = input.id.iter().take(32).map(|b| format!("{b:02x}")).collect();
    let id = Secret::new(format!("s{id_text}"));
    let set = cookies.login(&id);
    let pair = set.split(';').next().expect("name=value").to_owned();
    let (name, value) = pair.split_once('=').expect("name=value");
    let mut sent = pair.clone();
    if let Some((at, c)) = input.mutate {
        let mut chars: Vec<char> = sent.chars().collect();
        let at = usize::from(at) % chars.len();
        chars[at] = c;
        sent = chars.into_iter().collect();
    }
    let mut req = HttpRequest::new(Method::Get, "/authorize");
    for h in input.before.iter().take(3) {
        req = req.with_header("cookie", h.as_str());
    }
    req = req.with_header("cookie", sent.as_str());
    for h in input.after.iter().take(3) {
        req = req.with_header("cookie", h.as_str());
    }

    // The parser: a found value follows `name=` in some Cookie header, without a `;`.
    if let Some(found) = cookie(&req, &input.lookup) {
        assert!(!found.contains(';'));
        let needle = format!("{}={found}", input.lookup);
        assert!(
            req.headers
                .iter()
                .any(|(n, v)| n == "cookie" && v.contains(&needle)),
            "{needle:?} not in the request"
        );
    }

    let read = cookies.session_id(&req);
    let presented = cookie(&req, name);
    if presented == Some(value) {
        assert_eq!(
            read.as_ref().map(Secret::expose),
            Some(id.expose()),
            "the server's own cookie refused"
        );
    } else {
        assert_eq!(
            read.as_ref().map(Secret::expose),
            None,
            "a session cookie the server never set was accepted"
        );
    }

    // CSRF: the token made for a CSRF cookie (and no session) passes with that cookie only,
    // and only before it expires.
    let now = UnixTime(1000);
    let later = UnixTime(1000 + i64::from(input.elapsed));
    let entropy = SeededEntropy::new(u64::from(input.elapsed));
    let bare = HttpRequest::new(Method::Get, "/consent");
    let (token, set_csrf) = cookies.csrf(&bare, &entropy, now);
    let set_csrf = set_csrf.expect("a new CSRF cookie");
    let csrf_pair = set_csrf.split(';').next().expect("name=value");
    let with_csrf = HttpRequest::new(Method::Post, "/consent").with_header("cookie", csrf_pair);
    assert!(cookies.csrf_ok(&with_csrf, Some(&token), now));
    assert_eq!(
        cookies.csrf_ok(&with_csrf, Some(&token), later),
        later.0 < now.plus(CSRF_TTL).0,
        "a CSRF token outside its lifetime"
    );
    assert!(!cookies.csrf_ok(&bare, Some(&token), now));
    // Bound to the session: the same CSRF cookie with a session cookie added fails.
    let with_session = with_csrf.clone().with_header("cookie", pair.as_str());
    assert!(
        !cookies.csrf_ok(&with_session, Some(&token), now),
        "a token made before login passed for a session"
    );
    if let Some(other) = input.csrf_token.as_ref().filter(|t| **t != token) {
        assert!(
            !cookies.csrf_ok(&with_csrf, Some(other), now),
            "a forged CSRF token passed"
        );
    }
    // The fuzzed request passes with this token only if it carries this CSRF cookie.
    let (csrf_name, csrf_value) = csrf_pair.split_once('=').expect("name=value");
    if cookies.csrf_ok(&req, Some(&token), now) {
        assert_eq!(cookie(&req, csrf_name), Some(csrf_value));
    }
});
