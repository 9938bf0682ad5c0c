//! Signed cookies: the login session, the CSRF token and the login ticket.
//!
//! All are HMAC-SHA256 signed with a [`SessionKey`] the operator keeps (the server stores it
//! in its data directory; several nodes share one). The session cookie holds only the random
//! id of a server-side session ([`latchkey_core::session`]): who is logged in, and until when,
//! is in the store, so logging out, a password change or the user's deletion ends it. It is
//! `HttpOnly`, `SameSite=Lax`, and `Secure` unless the server runs on plain HTTP for
//! development, in which case the `__Host-` prefix is dropped too.
//!
//! CSRF uses a signed double submit: a random `csrf` cookie, and in each form a token that is
//! the HMAC of that cookie, of the session cookie (or its absence, before login) and of an
//! expiry time. A cross-site form can neither read the cookies nor forge the HMAC; a token
//! leaked from one session is useless in the next, and every token dies after [`CSRF_TTL`].
//!
//! A pending authorization request travels in the login and consent pages (and in the link
//! back from an embedder's login) sealed: the core's text form with an expiry, a flag saying
//! a login was just completed for it (what `prompt=login` asks for), and the HMAC of all of
//! it and of the browser's session cookie (or its absence, before login). Changing any part
//! of it, replaying it after [`PENDING_TTL`] or in another session makes it worthless.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use latchkey_core::clock::UnixTime;
use latchkey_core::entropy::{Entropy, random_token};
use latchkey_core::http::HttpRequest;
use latchkey_core::secret::Secret;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The key that signs session and CSRF cookies. Keep it secret and stable: rotating it logs
/// everybody out.
#[derive(Clone)]
pub struct SessionKey([u8; 32]);

impl SessionKey {
    /// A key from 32 secret bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// A fresh random key.
    pub fn generate(entropy: &dyn Entropy) -> Self {
        let mut bytes = [0u8; 32];
        entropy.fill(&mut bytes);
        Self(bytes)
    }

    /// The key bytes, for persisting it.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn tag(&self, purpose: &str, data: &str) -> [u8; 32] {
        // HMAC accepts keys of any length, so this cannot fail for a 32-byte key.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(purpose.as_bytes());
        mac.update(b"|");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn verify(&self, purpose: &str, data: &str, tag_b64: &str) -> bool {
        let Ok(tag) = B64.decode(tag_b64) else {
            return false;
        };
        tag.len() == 32 && bool::from(self.tag(purpose, data).ct_eq(&tag))
    }
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(***)")
    }
}

/// How long a form's CSRF token stays valid, in seconds.
pub const CSRF_TTL: u64 = 3600;

/// How long a sealed pending authorization request stays valid, in seconds: as long as the
/// CSRF token of the form it is in.
pub const PENDING_TTL: u64 = CSRF_TTL;

/// Cookie settings and the signing key.
#[derive(Clone, Debug)]
pub struct Cookies {
    key: SessionKey,
    secure: bool,
    session_ttl: u64,
}

impl Cookies {
    /// Cookies signed with `key`; `secure` adds `Secure` and the `__Host-` prefix (turn it off
    /// only for plain-HTTP development on loopback).
    pub fn new(key: SessionKey, secure: bool, session_ttl: u64) -> Self {
        Self {
            key,
            secure,
            session_ttl,
        }
    }

    fn name(&self, base: &str) -> String {
        if self.secure {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        }
    }

    fn attributes(&self, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!("; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}")
    }

    /// How long a login lasts, in seconds.
    pub fn session_ttl(&self) -> u64 {
        self.session_ttl
    }

    /// The session id in `req`'s session cookie, if the cookie carries our signature. Whether
    /// the session still exists is the store's to say.
    pub fn session_id(&self, req: &HttpRequest) -> Option<Secret> {
        let value = cookie(req, &self.name("lk_session"))?;
        let (id, tag) = value.split_once('.')?;
        self.key.verify("session", id, tag).then(|| Secret::new(id))
    }

    /// A `Set-Cookie` value that carries the session `id`.
    pub fn login(&self, id: &Secret) -> String {
        format!(
            "{}={}{}",
            self.name("lk_session"),
            self.session_cookie_value(id),
            self.attributes(self.session_ttl)
        )
    }

    /// The value of the session cookie that carries `id`, as the browser sends it back: what
    /// CSRF tokens and sealed pending requests made for that session are bound to.
    pub fn session_cookie_value(&self, id: &Secret) -> String {
        let tag = B64.encode(self.key.tag("session", id.expose()));
        format!("{}.{tag}", id.expose())
    }

    /// Seals the core's `pending` text for the browser whose session cookie is `session`
    /// (empty before login), valid until [`PENDING_TTL`] after `now`; `fresh` says that a
    /// login was completed for this request in that session.
    pub fn seal_pending(&self, pending: &str, session: &str, fresh: bool, now: UnixTime) -> String {
        let expires = now.plus(PENDING_TTL).0;
        let fresh = if fresh { "1" } else { "0" };
        let tag = self.pending_tag(expires, fresh, session, pending);
        format!("{expires}.{fresh}.{}.{pending}", B64.encode(tag))
    }

    /// The pending text in `sealed`, and whether a login was completed for it, if
    /// [`Cookies::seal_pending`] made it for `req`'s session cookie and it is unexpired at `now`.
    pub fn open_pending<'a>(
        &self,
        req: &HttpRequest,
        sealed: &'a str,
        now: UnixTime,
    ) -> Option<(&'a str, bool)> {
        let mut parts = sealed.splitn(4, '.');
        let (Some(expires), Some(fresh), Some(tag), Some(pending)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let expires_at = expires.parse::<i64>().ok()?;
        let tag = B64.decode(tag).ok()?;
        if !matches!(fresh, "0" | "1") || tag.len() != 32 || now.0 >= expires_at {
            return None;
        }
        let expected = self.pending_tag(expires_at, fresh, self.raw_session_cookie(req), pending);
        bool::from(expected.ct_eq(&tag)).then_some((pending, fresh == "1"))
    }

    fn pending_tag(&self, expires: i64, fresh: &str, session: &str, pending: &str) -> [u8; 32] {
        self.key
            .tag("pending", &format!("{expires}|{fresh}|{session}|{pending}"))
    }

    /// Seals an end-session request's parameters (`query`) for the confirmation page of the
    /// browser whose session cookie is `session`, valid until [`CSRF_TTL`] after `now`: the
    /// page can carry them back, unchanged, only in that session.
    pub fn seal_logout(&self, query: &str, session: &str, now: UnixTime) -> String {
        let expires = now.plus(CSRF_TTL).0;
        let tag = self.logout_tag(expires, session, query);
        format!("{expires}.{}.{query}", B64.encode(tag))
    }

    /// The end-session parameters in `sealed`, if [`Cookies::seal_logout`] made it for `req`'s
    /// session cookie and it is unexpired at `now`.
    pub fn open_logout<'a>(
        &self,
        req: &HttpRequest,
        sealed: &'a str,
        now: UnixTime,
    ) -> Option<&'a str> {
        let mut parts = sealed.splitn(3, '.');
        let (Some(expires), Some(tag), Some(query)) = (parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let expires_at = expires.parse::<i64>().ok()?;
        let tag = B64.decode(tag).ok()?;
        if tag.len() != 32 || now.0 >= expires_at {
            return None;
        }
        let expected = self.logout_tag(expires_at, self.raw_session_cookie(req), query);
        bool::from(expected.ct_eq(&tag)).then_some(query)
    }

    fn logout_tag(&self, expires: i64, session: &str, query: &str) -> [u8; 32] {
        self.key
            .tag("logout", &format!("{expires}|{session}|{query}"))
    }

    /// A `Set-Cookie` value that logs out.
    pub fn logout(&self) -> String {
        format!("{}={}", self.name("lk_session"), self.attributes(0))
    }

    /// The CSRF token for forms on this response (valid for [`CSRF_TTL`] from `now`, for
    /// this browser's CSRF cookie and session cookie), and a `Set-Cookie` when a new CSRF
    /// cookie must be sent.
    pub fn csrf(
        &self,
        req: &HttpRequest,
        entropy: &dyn Entropy,
        now: UnixTime,
    ) -> (String, Option<String>) {
        let name = self.name("lk_csrf");
        let (value, set) = match cookie(req, &name).filter(|v| v.len() == 43) {
            Some(v) => (v.to_owned(), None),
            None => {
                let v = random_token(entropy, 32);
                // The cookie outlives any token made for it, so a token dies by its own expiry.
                let set = format!("{name}={v}{}", self.attributes(2 * CSRF_TTL));
                (v, Some(set))
            }
        };
        let expires = now.plus(CSRF_TTL).0;
        let tag = self.csrf_tag(&value, self.raw_session_cookie(req), expires);
        (format!("{expires}.{}", B64.encode(tag)), set)
    }

    /// Whether a posted form's `token` was made for the request's CSRF cookie and session
    /// cookie, and is unexpired at `now`.
    pub fn csrf_ok(&self, req: &HttpRequest, token: Option<&str>, now: UnixTime) -> bool {
        let (Some(value), Some(token)) = (cookie(req, &self.name("lk_csrf")), token) else {
            return false;
        };
        let Some((expires, tag)) = token.split_once('.') else {
            return false;
        };
        let Ok(expires) = expires.parse::<i64>() else {
            return false;
        };
        let Ok(tag) = B64.decode(tag) else {
            return false;
        };
        let expected = self.csrf_tag(value, self.raw_session_cookie(req), expires);
        now.0 < expires && tag.len() == 32 && bool::from(expected.ct_eq(&tag))
    }

    fn csrf_tag(&self, csrf_cookie: &str, session_cookie: &str, expires: i64) -> [u8; 32] {
        self.key
            .tag("csrf", &format!("{csrf_cookie}|{session_cookie}|{expires}"))
    }

    /// The raw session cookie of `req` (empty before login), which CSRF tokens and sealed
    /// pending requests are bound to.
    pub fn raw_session_cookie<'a>(&self, req: &'a HttpRequest) -> &'a str {
        cookie(req, &self.name("lk_session")).unwrap_or("")
    }
}

/// The value of cookie `name` in `req`'s `Cookie` headers.
pub fn cookie<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
        .flat_map(|(_, v)| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::entropy::SeededEntropy;

    fn with_cookies(set_cookies: &[&str]) -> HttpRequest {
        let pairs: Vec<&str> = set_cookies
            .iter()
            .map(|c| c.split(';').next().expect("name=value"))
            .collect();
        HttpRequest::new(latchkey_core::http::Method::Get, "/")
            .with_header("cookie", pairs.join("; "))
    }

    fn cookies(secure: bool) -> Cookies {
        Cookies::new(SessionKey::generate(&SeededEntropy::new(9)), secure, 600)
    }

    #[test]
    fn session_cookie_carries_a_signed_id() {
        let c = cookies(true);
        let id = Secret::new("random-session-id");
        let set = c.login(&id);
        assert!(set.starts_with("__Host-lk_session=random-session-id."));
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Secure"));
        let req = with_cookies(&[&set]);
        assert_eq!(
            c.session_id(&req).map(|s| s.expose().to_owned()),
            Some("random-session-id".into())
        );
        let forged = set.replacen("random-session-id", "another-session-id", 1);
        assert!(c.session_id(&with_cookies(&[&forged])).is_none());
        let other = Cookies::new(SessionKey::new([7; 32]), true, 600);
        assert!(other.session_id(&req).is_none());
    }

    #[test]
    fn csrf_token_matches_only_its_cookie() {
        let c = cookies(false);
        let e = SeededEntropy::new(1);
        let now = UnixTime(1000);
        let bare = HttpRequest::new(latchkey_core::http::Method::Get, "/");
        let (token, set) = c.csrf(&bare, &e, now);
        let set = set.expect("a new CSRF cookie");
        let req = with_cookies(&[&set]);
        assert!(c.csrf_ok(&req, Some(&token), now));
        assert!(!c.csrf_ok(&req, None, now));
        assert!(!c.csrf_ok(&bare, Some(&token), now), "no cookie, no pass");
        let (other_token, _) = c.csrf(&bare, &e, now);
        assert!(!c.csrf_ok(&req, Some(&other_token), now));
        let (again, none) = c.csrf(&req, &e, now);
        assert_eq!((again, none), (token, None), "an existing cookie is reused");
    }

    #[test]
    fn issue_14_csrf_tokens_expire_and_are_bound_to_the_session() {
        let c = cookies(false);
        let e = SeededEntropy::new(1);
        let now = UnixTime(1000);
        let (_, set) = c.csrf(
            &HttpRequest::new(latchkey_core::http::Method::Get, "/"),
            &e,
            now,
        );
        let csrf = set.expect("cookie");
        let session = c.login(&Secret::new("session-one"));
        let logged_in = with_cookies(&[&csrf, &session]);
        let (token, _) = c.csrf(&logged_in, &e, now);
        assert!(c.csrf_ok(&logged_in, Some(&token), now.plus(CSRF_TTL - 1)));
        assert!(
            !c.csrf_ok(&logged_in, Some(&token), now.plus(CSRF_TTL)),
            "expired"
        );
        let later = with_cookies(&[&csrf, &c.login(&Secret::new("session-two"))]);
        assert!(!c.csrf_ok(&later, Some(&token), now), "another session");
        assert!(
            !c.csrf_ok(&with_cookies(&[&csrf]), Some(&token), now),
            "logged out"
        );
        let stretched = token.replacen(&now.plus(CSRF_TTL).0.to_string(), "99999999999", 1);
        assert!(
            !c.csrf_ok(&logged_in, Some(&stretched), now),
            "expiry is signed"
        );
    }

    #[test]
    fn a_sealed_logout_request_opens_only_unaltered_in_its_session_until_it_expires() {
        let c = cookies(false);
        let now = UnixTime(1000);
        let id = Secret::new("session-one");
        let req = with_cookies(&[&c.login(&id)]);
        let query = "client_id=rp&state=x";
        let sealed = c.seal_logout(query, &c.session_cookie_value(&id), now);
        assert_eq!(c.open_logout(&req, &sealed, now), Some(query));
        assert_eq!(c.open_logout(&req, &sealed, now.plus(CSRF_TTL)), None);
        let altered = sealed.replacen("state=x", "state=y", 1);
        assert_eq!(c.open_logout(&req, &altered, now), None);
        let other = with_cookies(&[&c.login(&Secret::new("session-two"))]);
        assert_eq!(c.open_logout(&other, &sealed, now), None);
        let pending = c.seal_pending(query, &c.session_cookie_value(&id), false, now);
        assert_eq!(c.open_logout(&req, &pending, now), None, "another purpose");
    }

    #[test]
    fn a_sealed_pending_request_opens_only_unaltered_in_its_session_until_it_expires() {
        let c = cookies(false);
        let now = UnixTime(1000);
        let id = Secret::new("session-one");
        let session = c.session_cookie_value(&id);
        let req = with_cookies(&[&c.login(&id)]);
        let pending = "v=1&c=app&s=read";
        let sealed = c.seal_pending(pending, &session, true, now);
        assert_eq!(c.open_pending(&req, &sealed, now), Some((pending, true)));
        let plain = c.seal_pending(pending, &session, false, now);
        assert_eq!(c.open_pending(&req, &plain, now), Some((pending, false)));
        assert_eq!(
            c.open_pending(&req, &sealed, now.plus(PENDING_TTL)),
            None,
            "expired"
        );
        for altered in [
            sealed.replacen("s=read", "s=admin", 1),
            sealed.replacen("c=app", "c=other", 1),
            plain.replacen(".0.", ".1.", 1),
            sealed.replacen(&now.plus(PENDING_TTL).0.to_string(), "99999999999", 1),
            format!("{sealed}&r=https://evil.example/"),
            String::new(),
        ] {
            assert_eq!(c.open_pending(&req, &altered, now), None, "{altered}");
        }
        let other = with_cookies(&[&c.login(&Secret::new("session-two"))]);
        assert_eq!(
            c.open_pending(&other, &sealed, now),
            None,
            "another session"
        );
        let anonymous = HttpRequest::new(latchkey_core::http::Method::Get, "/");
        assert_eq!(c.open_pending(&anonymous, &sealed, now), None, "logged out");
        let before_login = c.seal_pending(pending, "", false, now);
        assert_eq!(
            c.open_pending(&anonymous, &before_login, now),
            Some((pending, false))
        );
    }
}
