//! A provider on a fresh memory store with a fixed clock and seeded randomness, with clients
//! registered and a live code and refresh token, for the endpoint targets. Everything is
//! deterministic, so a crash input replays exactly.

#![allow(dead_code)]

use latchkey_core::client::{Client, GrantType, NewClient};
use latchkey_core::clock::{ManualClock, UnixTime};
use latchkey_core::config::Config;
use latchkey_core::endpoint::authorize::{AuthorizeOutcome, Decision};
use latchkey_core::entropy::SeededEntropy;
use latchkey_core::http::{HttpRequest, HttpResponse, Method};
use latchkey_core::prelude::{ClientStore, MemoryStore, NoUsers, Provider};
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Secret;
use latchkey_core::user::AuthenticatedUser;
use std::future::Future;
use std::sync::Arc;

/// The redirect URI of the web client.
pub const WEB_REDIRECT: &str = "https://app.example.test/callback";
/// The loopback redirect URI of the native client (any port may be asked for).
pub const NATIVE_REDIRECT: &str = "http://127.0.0.1/cb";
/// RFC 7636 Appendix B.
pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
/// Its S256 challenge.
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Runs a future of the core to completion. The memory store never waits (one mutex, never
/// held across an await), so every future is ready when polled; a pending one is a bug.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    for _ in 0..1_000 {
        if let std::task::Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("a core future on the memory store did not complete");
}

pub struct World {
    pub provider: Provider<MemoryStore, NoUsers>,
    pub clock: Arc<ManualClock>,
    /// Confidential, every grant but implicit; `web` has a redirect URI.
    pub conf: (Client, Secret),
    pub web: (Client, Secret),
    /// Public, with a loopback redirect URI.
    pub native: Client,
    /// A live code of `web` for [`VERIFIER`], and a live refresh token of `web`, made on
    /// first use (most inputs need neither, and making them is most of a run's cost).
    code: std::cell::OnceCell<String>,
    refresh: std::cell::OnceCell<String>,
}

pub fn scopes(raw: &str) -> ScopeSet {
    ScopeSet::parse(raw).expect("valid scopes")
}

fn register(p: &Provider<MemoryStore, NoUsers>, new: NewClient) -> (Client, Option<Secret>) {
    let (client, secret) = new.build(p.entropy(), p.clock().now());
    block_on(p.store().put_client(&client)).expect("memory store accepts clients");
    (client, secret)
}

pub fn alice() -> AuthenticatedUser {
    AuthenticatedUser::new("user-alice", "alice")
}

impl World {
    pub fn new() -> Self {
        let store = MemoryStore::new();
        let clock = Arc::new(ManualClock::new(UnixTime(1_767_225_600)));
        let config = Config {
            issuer: "https://auth.example.test".into(),
            available_scopes: scopes("read write admin"),
            default_scopes: scopes("read"),
            ..Config::default()
        };
        let provider = Provider::builder(store, NoUsers)
            .config(config)
            .clock(clock.clone())
            .entropy(Arc::new(SeededEntropy::new(42)))
            .build()
            .expect("valid configuration");
        let (conf, conf_secret) = register(
            &provider,
            NewClient::confidential("Service").id("conf").grant_types([
                GrantType::ClientCredentials,
                GrantType::Password,
                GrantType::RefreshToken,
                GrantType::AuthorizationCode,
            ]),
        );
        let (web, web_secret) = register(
            &provider,
            NewClient::confidential("Web")
                .id("web")
                .redirect_uris([WEB_REDIRECT, "https://app.example.test/other?x=1"])
                .scopes(scopes("read write"))
                .grant_types([GrantType::AuthorizationCode, GrantType::RefreshToken]),
        );
        let (native, _) = register(
            &provider,
            NewClient::public("Native")
                .id("native")
                .redirect_uris([NATIVE_REDIRECT])
                .grant_types([
                    GrantType::AuthorizationCode,
                    GrantType::RefreshToken,
                    GrantType::Implicit,
                ]),
        );
        Self {
            provider,
            clock,
            conf: (conf, conf_secret.expect("confidential")),
            web: (web, web_secret.expect("confidential")),
            native,
            code: std::cell::OnceCell::new(),
            refresh: std::cell::OnceCell::new(),
        }
    }

    /// The live code (see the field).
    pub fn code(&self) -> &str {
        self.refresh();
        self.code.get_or_init(|| self.fresh_code())
    }

    /// The live refresh token, from exchanging a first code.
    pub fn refresh(&self) -> &str {
        self.refresh.get_or_init(|| {
            let first = self.fresh_code();
            let resp = self.token(
                &format!(
                    "grant_type=authorization_code&code={first}&redirect_uri={}&code_verifier={VERIFIER}",
                    enc(WEB_REDIRECT)
                ),
                Some(&self.web_basic()),
            );
            let body: serde_json::Value = serde_json::from_slice(&resp.body).expect("JSON");
            body["refresh_token"]
                .as_str()
                .unwrap_or_else(|| panic!("no refresh token: {body}"))
                .to_owned()
        })
    }

    /// A new code of `web` for alice with PKCE ([`VERIFIER`]) and scope `read`.
    pub fn fresh_code(&self) -> String {
        let mut req = HttpRequest::new(Method::Get, "/authorize");
        req.query = format!(
            "response_type=code&client_id=web&redirect_uri={}&state=s&code_challenge={CHALLENGE}&code_challenge_method=S256&scope=read",
            enc(WEB_REDIRECT)
        );
        let outcome = block_on(self.provider.authorize(
            &req,
            Some(&alice()),
            Some(Decision::Allow { remember: false }),
        ));
        let AuthorizeOutcome::Redirect(resp) = outcome else {
            panic!("no code: {outcome:?}");
        };
        let location = resp.header("location").expect("Location");
        let url = url::Url::parse(location).expect("absolute");
        url.query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .expect("a code")
    }

    pub fn basic(id: &str, secret: &str) -> String {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                enc(id),
                enc(secret)
            ))
        )
    }

    pub fn web_basic(&self) -> String {
        Self::basic("web", self.web.1.expose())
    }

    pub fn conf_basic(&self) -> String {
        Self::basic("conf", self.conf.1.expose())
    }

    /// POSTs a form `body` to the token endpoint with an optional `Authorization`.
    pub fn token(&self, body: &str, authorization: Option<&str>) -> HttpResponse {
        let mut req = HttpRequest::post_form("/token", body);
        if let Some(a) = authorization {
            req = req.with_header("authorization", a);
        }
        block_on(self.provider.token(&req))
    }

    /// Replaces the placeholders a fuzz input may use with live values: `$CODE`, `$RT`,
    /// `$WS` / `$CS` (the web and conf secrets), `$VER` (the PKCE verifier), `$RED` (the
    /// web redirect URI, form-encoded).
    pub fn expand(&self, raw: &str) -> String {
        let mut raw = raw.to_owned();
        // The refresh token first: making the code after it keeps both live.
        if raw.contains("$RT") {
            raw = raw.replace("$RT", &enc(self.refresh()));
        }
        if raw.contains("$CODE") {
            raw = raw.replace("$CODE", self.code());
        }
        raw.replace("$WS", &enc(self.web.1.expose()))
            .replace("$CS", &enc(self.conf.1.expose()))
            .replace("$VER", VERIFIER)
            .replace("$RED", &enc(WEB_REDIRECT))
    }
}

pub fn enc(raw: &str) -> String {
    form_urlencoded::byte_serialize(raw.as_bytes()).collect()
}

/// The RFC 6749 §5.2 error codes (and RFC 6750/7009 ones an endpoint may answer with).
pub const ERROR_CODES: &[&str] = &[
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "temporarily_unavailable",
];

/// Asserts that `resp` is a token response or an RFC 6749 §5.2 error with a 4xx status;
/// returns the body.
pub fn assert_token_answer(resp: &HttpResponse) -> serde_json::Value {
    let body: serde_json::Value =
        serde_json::from_slice(&resp.body).unwrap_or_else(|_| panic!("non-JSON body: {resp:?}"));
    assert_eq!(resp.header("cache-control"), Some("no-store"));
    match resp.status {
        200 => {
            assert_eq!(body["token_type"], "Bearer");
            assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
            assert!(body["expires_in"].as_u64().is_some());
        }
        400..=499 => {
            let code = body["error"]
                .as_str()
                .unwrap_or_else(|| panic!("no error: {body}"));
            assert!(ERROR_CODES.contains(&code), "unknown error code {code}");
            if let Some(d) = body.get("error_description") {
                let d = d.as_str().expect("description is a string");
                assert!(
                    d.chars()
                        .all(|c| matches!(c, ' '..='~') && c != '"' && c != '\\'),
                    "RFC 6749 §5.2 forbids these characters: {d:?}"
                );
            }
            if resp.status == 401 {
                assert!(resp.header("www-authenticate").is_some());
            }
        }
        other => panic!("status {other} from the token endpoint: {body}"),
    }
    body
}

/// A request written as text, so seeds are readable and easy to write:
///
/// ```text
/// POST /token?query
/// authorization: $WEBBASIC
/// content-type: application/x-www-form-urlencoded
///
/// grant_type=authorization_code&code=$CODE&code_verifier=$VER
/// ```
///
/// The method line, then `name: value` header lines up to an empty line, then the body.
/// Placeholders are expanded by [`World::expand`], plus `$WEBBASIC` / `$CONFBASIC` (the
/// clients' Basic credentials). Headers named `x-fuzz-*` are returned apart, for the
/// harness. Lines end with `\n`; the input is read as UTF-8, lossily.
pub fn parse_request(world: &World, data: &[u8]) -> (HttpRequest, Vec<(String, String)>) {
    let text = String::from_utf8_lossy(data);
    let (head, body) = match text.split_once("\n\n") {
        Some((h, b)) => (h.to_owned(), b.to_owned()),
        None => (text.into_owned(), String::new()),
    };
    let mut lines = head.split('\n');
    let first = lines.next().unwrap_or("");
    let (method, target) = first.split_once(' ').unwrap_or((first, "/"));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = HttpRequest::new(Method::parse(method), path);
    req.query = world.expand(query);
    let mut fuzz = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        let value = world
            .expand(value.trim_start())
            .replace("$WEBBASIC", &world.web_basic())
            .replace("$CONFBASIC", &world.conf_basic());
        if name.to_ascii_lowercase().starts_with("x-fuzz-") {
            fuzz.push((name.to_ascii_lowercase(), value));
        } else {
            req = req.with_header(name, value);
        }
    }
    (req.with_body(world.expand(&body).into_bytes()), fuzz)
}
