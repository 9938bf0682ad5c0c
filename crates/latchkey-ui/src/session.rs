//! Signed cookies: the login session and the CSRF token.
//!
//! Both are HMAC-SHA256 signed with a [`SessionKey`] the operator keeps (the server stores it
//! in its data directory; several nodes share one). The session cookie holds who is logged in
//! and until when; it is `HttpOnly`, `SameSite=Lax`, and `Secure` unless the server runs on
//! plain HTTP for development, in which case the `__Host-` prefix is dropped too.
//!
//! CSRF uses a signed double submit: a random `csrf` cookie, and in each form the HMAC of that
//! cookie. A cross-site form can neither read the cookie nor forge the HMAC.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use latchkey_core::clock::UnixTime;
use latchkey_core::entropy::{Entropy, random_token};
use latchkey_core::http::HttpRequest;
use latchkey_core::user::AuthenticatedUser;
use serde::{Deserialize, Serialize};
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

#[derive(Serialize, Deserialize)]
struct SessionClaims {
    sub: String,
    name: String,
    exp: i64,
}

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

    /// The logged-in user of `req`, if its session cookie is valid and unexpired at `now`.
    pub fn session(&self, req: &HttpRequest, now: UnixTime) -> Option<AuthenticatedUser> {
        let value = cookie(req, &self.name("lk_session"))?;
        let (payload, tag) = value.split_once('.')?;
        if !self.key.verify("session", payload, tag) {
            return None;
        }
        let claims: SessionClaims = serde_json::from_slice(&B64.decode(payload).ok()?).ok()?;
        (now.0 < claims.exp).then_some(AuthenticatedUser {
            subject: claims.sub,
            username: claims.name,
        })
    }

    /// A `Set-Cookie` value that logs `user` in from `now`.
    pub fn login(&self, user: &AuthenticatedUser, now: UnixTime) -> String {
        let claims = SessionClaims {
            sub: user.subject.clone(),
            name: user.username.clone(),
            exp: now.plus(self.session_ttl).0,
        };
        let payload = B64.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let tag = B64.encode(self.key.tag("session", &payload));
        format!(
            "{}={payload}.{tag}{}",
            self.name("lk_session"),
            self.attributes(self.session_ttl)
        )
    }

    /// A `Set-Cookie` value that logs out.
    pub fn logout(&self) -> String {
        format!("{}={}", self.name("lk_session"), self.attributes(0))
    }

    /// The CSRF token for forms on this response, and a `Set-Cookie` when a new CSRF cookie
    /// must be sent.
    pub fn csrf(&self, req: &HttpRequest, entropy: &dyn Entropy) -> (String, Option<String>) {
        let name = self.name("lk_csrf");
        let (value, set) = match cookie(req, &name).filter(|v| v.len() == 43) {
            Some(v) => (v.to_owned(), None),
            None => {
                let v = random_token(entropy, 32);
                let set = format!("{name}={v}{}", self.attributes(3600));
                (v, Some(set))
            }
        };
        (B64.encode(self.key.tag("csrf", &value)), set)
    }

    /// Whether a posted form's `token` matches the request's CSRF cookie.
    pub fn csrf_ok(&self, req: &HttpRequest, token: Option<&str>) -> bool {
        match (cookie(req, &self.name("lk_csrf")), token) {
            (Some(value), Some(token)) => self.key.verify("csrf", value, token),
            _ => false,
        }
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

    fn with_cookie(set_cookie: &str) -> HttpRequest {
        let pair = set_cookie.split(';').next().expect("name=value");
        HttpRequest::new(latchkey_core::http::Method::Get, "/").with_header("cookie", pair)
    }

    fn cookies(secure: bool) -> Cookies {
        Cookies::new(SessionKey::generate(&SeededEntropy::new(9)), secure, 600)
    }

    #[test]
    fn session_round_trips_and_expires() {
        let c = cookies(true);
        let user = AuthenticatedUser {
            subject: "s-1".into(),
            username: "ünï".into(),
        };
        let set = c.login(&user, UnixTime(1000));
        assert!(set.starts_with("__Host-lk_session="));
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Lax") && set.contains("Secure"));
        let req = with_cookie(&set);
        assert_eq!(c.session(&req, UnixTime(1599)), Some(user));
        assert_eq!(c.session(&req, UnixTime(1600)), None, "expired");
    }

    #[test]
    fn tampered_or_foreign_sessions_are_rejected() {
        let c = cookies(false);
        let user = AuthenticatedUser {
            subject: "s-1".into(),
            username: "bob".into(),
        };
        let set = c.login(&user, UnixTime(0));
        assert!(!set.contains("Secure"));
        let forged = set.replacen("lk_session=", "lk_session=e30", 1);
        assert_eq!(c.session(&with_cookie(&forged), UnixTime(1)), None);
        let other = Cookies::new(SessionKey::new([7; 32]), false, 600);
        assert_eq!(other.session(&with_cookie(&set), UnixTime(1)), None);
    }

    #[test]
    fn csrf_token_matches_only_its_cookie() {
        let c = cookies(false);
        let e = SeededEntropy::new(1);
        let bare = HttpRequest::new(latchkey_core::http::Method::Get, "/");
        let (token, set) = c.csrf(&bare, &e);
        let set = set.expect("a new CSRF cookie");
        let req = with_cookie(&set);
        assert!(c.csrf_ok(&req, Some(&token)));
        assert!(!c.csrf_ok(&req, None));
        assert!(!c.csrf_ok(&bare, Some(&token)), "no cookie, no pass");
        let (other_token, _) = c.csrf(&bare, &e);
        assert!(!c.csrf_ok(&req, Some(&other_token)));
        let (again, none) = c.csrf(&req, &e);
        assert_eq!((again, none), (token, None), "an existing cookie is reused");
    }
}
