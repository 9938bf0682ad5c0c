//! Each preset builds the authorization and token requests its provider documents, with no
//! network: endpoints, default scopes and their separator, extra parameters, and quirks.
//! The expected values are written out here from the providers' documentation, separately
//! from the preset table, so a typo in the table fails a test.

use latchkey_client::flow::{self, PendingLogin};
use latchkey_client::presets::{self, PRESETS};
use latchkey_client::{AppConfig, ClientAuth, Method, Request, TokenMethod};
use latchkey_core::entropy::SeededEntropy;
use std::collections::BTreeMap;

const REDIRECT: &str = "https://app.example/callback";

/// What a provider documents for its authorization request.
struct Expected {
    preset: &'static str,
    /// The authorization endpoint, without query.
    authorize: &'static str,
    token: &'static str,
    /// The `scope` parameter as sent.
    scope: Option<&'static str>,
    /// Parameters that must be in the authorization URL besides the standard ones.
    authorize_params: &'static [(&'static str, &'static str)],
    /// Where the client secret goes.
    auth: ClientAuth,
    token_method: Method,
    nonce: bool,
}

const EXPECTED: &[Expected] = &[
    Expected {
        preset: "github",
        authorize: "https://github.com/login/oauth/authorize",
        token: "https://github.com/login/oauth/access_token",
        scope: Some("user:email"),
        authorize_params: &[],
        auth: ClientAuth::ClientSecretPost,
        token_method: Method::Post,
        nonce: false,
    },
    Expected {
        preset: "google",
        authorize: "https://accounts.google.com/o/oauth2/v2/auth",
        token: "https://oauth2.googleapis.com/token",
        scope: Some("openid email profile"),
        authorize_params: &[("access_type", "offline")],
        auth: ClientAuth::ClientSecretBasic,
        token_method: Method::Post,
        nonce: true,
    },
    Expected {
        preset: "facebook",
        authorize: "https://www.facebook.com/v21.0/dialog/oauth",
        token: "https://graph.facebook.com/v21.0/oauth/access_token",
        scope: Some("email,public_profile"),
        authorize_params: &[],
        auth: ClientAuth::ClientSecretPost,
        token_method: Method::Get,
        nonce: false,
    },
    Expected {
        preset: "entra_id",
        authorize: "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
        token: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
        scope: Some("openid profile email offline_access"),
        authorize_params: &[],
        auth: ClientAuth::ClientSecretBasic,
        token_method: Method::Post,
        nonce: true,
    },
    Expected {
        preset: "gitlab",
        authorize: "https://gitlab.com/oauth/authorize",
        token: "https://gitlab.com/oauth/token",
        scope: Some("read_user"),
        authorize_params: &[],
        auth: ClientAuth::ClientSecretBasic,
        token_method: Method::Post,
        nonce: false,
    },
    Expected {
        preset: "linkedin",
        authorize: "https://www.linkedin.com/oauth/v2/authorization",
        token: "https://www.linkedin.com/oauth/v2/accessToken",
        scope: Some("openid profile email"),
        authorize_params: &[],
        auth: ClientAuth::ClientSecretPost,
        token_method: Method::Post,
        nonce: true,
    },
    Expected {
        preset: "dropbox",
        authorize: "https://www.dropbox.com/oauth2/authorize",
        token: "https://api.dropboxapi.com/oauth2/token",
        scope: None,
        authorize_params: &[("token_access_type", "offline")],
        auth: ClientAuth::ClientSecretBasic,
        token_method: Method::Post,
        nonce: false,
    },
    Expected {
        preset: "x",
        authorize: "https://x.com/i/oauth2/authorize",
        token: "https://api.x.com/2/oauth2/token",
        scope: Some("tweet.read users.read offline.access"),
        authorize_params: &[],
        auth: ClientAuth::ClientSecretBasic,
        token_method: Method::Post,
        nonce: false,
    },
    Expected {
        preset: "weibo",
        authorize: "https://api.weibo.com/oauth2/authorize",
        token: "https://api.weibo.com/oauth2/access_token",
        scope: Some("email"),
        authorize_params: &[],
        auth: ClientAuth::ClientSecretPost,
        token_method: Method::Post,
        nonce: false,
    },
    Expected {
        preset: "douban",
        authorize: "https://www.douban.com/service/auth2/auth",
        token: "https://www.douban.com/service/auth2/token",
        scope: Some("douban_basic_common"),
        authorize_params: &[],
        auth: ClientAuth::ClientSecretPost,
        token_method: Method::Post,
        nonce: false,
    },
    Expected {
        preset: "discord",
        authorize: "https://discord.com/oauth2/authorize",
        token: "https://discord.com/api/oauth2/token",
        scope: Some("identify email"),
        authorize_params: &[],
        auth: ClientAuth::ClientSecretBasic,
        token_method: Method::Post,
        nonce: false,
    },
    Expected {
        preset: "slack",
        authorize: "https://slack.com/openid/connect/authorize",
        token: "https://slack.com/api/openid.connect.token",
        scope: Some("openid profile email"),
        authorize_params: &[],
        auth: ClientAuth::ClientSecretPost,
        token_method: Method::Post,
        nonce: true,
    },
    Expected {
        preset: "apple",
        authorize: "https://appleid.apple.com/auth/authorize",
        token: "https://appleid.apple.com/auth/token",
        scope: Some("name email"),
        authorize_params: &[("response_mode", "form_post")],
        auth: ClientAuth::ClientSecretPost,
        token_method: Method::Post,
        nonce: true,
    },
];

fn config(name: &str) -> AppConfig {
    presets::find(name)
        .unwrap_or_else(|| panic!("preset {name}"))
        .config("the-client", Some("the-secret"))
        .expect("config")
}

fn split(url: &str) -> (String, BTreeMap<String, Vec<String>>) {
    let parsed = url::Url::parse(url).expect("absolute URL");
    let base = format!(
        "{}://{}{}",
        parsed.scheme(),
        parsed.host_str().expect("host"),
        parsed.path()
    );
    let mut query: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in parsed.query_pairs().into_owned() {
        query.entry(k).or_default().push(v);
    }
    (base, query)
}

fn one<'a>(q: &'a BTreeMap<String, Vec<String>>, name: &str) -> Option<&'a str> {
    let values = q.get(name)?;
    assert_eq!(values.len(), 1, "{name} appears once");
    values.first().map(String::as_str)
}

fn authorize(cfg: &AppConfig) -> (String, BTreeMap<String, Vec<String>>, PendingLogin) {
    let auth = flow::authorization(
        cfg,
        cfg.authorize_url.as_deref().expect("authorize url"),
        REDIRECT,
        None,
        &[],
        &SeededEntropy::new(1),
    )
    .expect("authorization request");
    let (base, q) = split(&auth.url);
    (base, q, auth.pending)
}

fn token_request(cfg: &AppConfig, pending: &PendingLogin) -> Request {
    flow::token_request(
        cfg,
        cfg.token_url.as_deref().expect("token url"),
        flow::code_grant("the-code", pending),
        None,
    )
    .expect("token request")
}

#[test]
fn every_preset_has_a_documented_expectation_and_every_expectation_a_preset() {
    let names: Vec<_> = PRESETS.iter().map(|p| p.name).collect();
    let expected: Vec<_> = EXPECTED.iter().map(|e| e.preset).collect();
    assert_eq!(names, expected);
    assert!(
        PRESETS.iter().all(|p| !p.notes.is_empty()),
        "every preset explains its quirks"
    );
}

#[test]
fn each_preset_builds_its_providers_documented_authorization_request() {
    for e in EXPECTED {
        let cfg = config(e.preset);
        assert!(cfg.validate().is_ok(), "{}", e.preset);
        let (base, q, pending) = authorize(&cfg);
        assert_eq!(base, e.authorize, "{}", e.preset);
        assert_eq!(one(&q, "response_type"), Some("code"), "{}", e.preset);
        assert_eq!(one(&q, "client_id"), Some("the-client"), "{}", e.preset);
        assert_eq!(one(&q, "redirect_uri"), Some(REDIRECT), "{}", e.preset);
        assert_eq!(one(&q, "scope"), e.scope, "{}", e.preset);
        assert_eq!(
            one(&q, "state"),
            Some(pending.state.as_str()),
            "{}",
            e.preset
        );
        assert_eq!(
            one(&q, "code_challenge_method"),
            Some("S256"),
            "{}",
            e.preset
        );
        assert_eq!(one(&q, "nonce").is_some(), e.nonce, "{}: nonce", e.preset);
        for (k, v) in e.authorize_params {
            assert_eq!(one(&q, k), Some(*v), "{}: {k}", e.preset);
        }
        let expected_keys =
            6 + usize::from(e.scope.is_some()) + usize::from(e.nonce) + e.authorize_params.len();
        assert_eq!(
            q.len(),
            expected_keys,
            "{}: no unexpected parameters: {q:?}",
            e.preset
        );
    }
}

#[test]
fn each_preset_exchanges_the_code_as_its_provider_documents() {
    for e in EXPECTED {
        let cfg = config(e.preset);
        let (_, _, pending) = authorize(&cfg);
        let req = token_request(&cfg, &pending);
        assert_eq!(req.method, e.token_method, "{}", e.preset);
        let (base, query) = split(&req.url);
        assert_eq!(base, e.token, "{}", e.preset);
        let params: BTreeMap<String, String> = match e.token_method {
            Method::Get => query
                .into_iter()
                .map(|(k, mut v)| (k, v.remove(0)))
                .collect(),
            _ => req.form_pairs().into_iter().collect(),
        };
        assert_eq!(params["grant_type"], "authorization_code", "{}", e.preset);
        assert_eq!(params["code"], "the-code", "{}", e.preset);
        assert_eq!(params["redirect_uri"], REDIRECT, "{}", e.preset);
        assert_eq!(
            params.get("code_verifier"),
            pending.code_verifier.as_ref(),
            "{}",
            e.preset
        );
        match e.auth {
            ClientAuth::ClientSecretPost => {
                assert_eq!(params["client_id"], "the-client", "{}", e.preset);
                assert_eq!(params["client_secret"], "the-secret", "{}", e.preset);
                assert_eq!(req.header("authorization"), None, "{}", e.preset);
            }
            _ => {
                assert!(!params.contains_key("client_secret"), "{}", e.preset);
                assert!(
                    req.header("authorization")
                        .is_some_and(|h| h.starts_with("Basic ")),
                    "{}",
                    e.preset
                );
            }
        }
    }
}

#[test]
fn github_asks_for_json_because_it_answers_form_encoded_otherwise() {
    let cfg = config("github");
    let (_, _, pending) = authorize(&cfg);
    assert_eq!(
        token_request(&cfg, &pending).header("accept"),
        Some("application/json")
    );
}

#[test]
fn entra_id_fills_the_tenant_placeholder_and_refuses_unsafe_tenants() {
    let preset = presets::find("entra_id").expect("preset");
    let tenant = BTreeMap::from([("tenant".to_owned(), "contoso.onmicrosoft.com".to_owned())]);
    let cfg = preset
        .config_with("id", Some("s"), &tenant)
        .expect("config");
    assert_eq!(
        cfg.authorize_url.as_deref(),
        Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize")
    );
    assert_eq!(
        cfg.issuer.as_deref(),
        Some("https://login.microsoftonline.com/contoso.onmicrosoft.com/v2.0")
    );
    assert!(!cfg.token_url.as_deref().unwrap_or("").contains('{'));
    // With `common` (the default) each user's tenant is its own issuer: none is checked.
    assert_eq!(preset.config("id", Some("s")).expect("config").issuer, None);
    let evil = BTreeMap::from([("tenant".to_owned(), "evil.example/x?".to_owned())]);
    assert!(preset.config_with("id", Some("s"), &evil).is_err());
    let unknown = BTreeMap::from([("region".to_owned(), "eu".to_owned())]);
    assert!(preset.config_with("id", Some("s"), &unknown).is_err());
    assert!(std::ptr::eq(
        preset,
        presets::find("microsoft").expect("alias")
    ));
}

#[test]
fn x_requires_pkce_and_twitter_is_its_old_name() {
    let mut cfg = config("twitter");
    assert!(cfg.pkce_required);
    cfg.pkce = false;
    assert!(cfg.validate().is_err(), "PKCE cannot be turned off for X");
    let public = presets::find("x")
        .expect("x")
        .config("the-client", None)
        .expect("public");
    assert_eq!(public.client_auth, ClientAuth::None);
    let (_, _, pending) = authorize(&public);
    let req = token_request(&public, &pending);
    let form: BTreeMap<_, _> = req.form_pairs().into_iter().collect();
    assert_eq!(form["client_id"], "the-client");
    assert!(req.header("authorization").is_none());
}

#[test]
fn weibo_and_douban_join_scopes_with_commas_and_weibo_calls_with_oauth2() {
    let mut weibo = config("weibo");
    assert_eq!(weibo.auth_scheme, "OAuth2");
    weibo.scopes = vec!["email".into(), "statuses_to_me_read".into()];
    let (_, q, _) = authorize(&weibo);
    assert_eq!(one(&q, "scope"), Some("email,statuses_to_me_read"));
    let token = latchkey_client::Token::bearer("2.00abc");
    assert_eq!(
        token.authorization(Some(&weibo.auth_scheme)),
        "OAuth2 2.00abc"
    );
    let mut douban = config("douban");
    douban.scopes.push("shuo_basic_r".into());
    let (_, q, _) = authorize(&douban);
    assert_eq!(one(&q, "scope"), Some("douban_basic_common,shuo_basic_r"));
}

#[test]
fn facebook_exchanges_with_get_and_apple_posts_the_callback() {
    assert_eq!(config("facebook").token_method, TokenMethod::Get);
    assert_eq!(
        config("apple").authorize_params["response_mode"],
        "form_post"
    );
    // Apple's form_post callback is a form body; it is read like a query.
    let pending = PendingLogin {
        state: "s1".into(),
        code_verifier: None,
        nonce: None,
        redirect_uri: REDIRECT.into(),
        max_age: None,
    };
    let form = "state=s1&code=c.0.abc&user=%7B%22name%22%3A%7B%7D%7D";
    let code = flow::finish(
        &pending,
        &flow::callback_params(form),
        Some("https://appleid.apple.com"),
        false,
    )
    .expect("code");
    assert_eq!(code, "c.0.abc");
}

#[test]
fn discord_slack_google_and_gitlab_have_their_documented_extra_endpoints() {
    assert_eq!(
        config("discord").revocation_url.as_deref(),
        Some("https://discord.com/api/oauth2/token/revoke")
    );
    assert_eq!(config("slack").issuer.as_deref(), Some("https://slack.com"));
    assert_eq!(
        config("slack").userinfo_url.as_deref(),
        Some("https://slack.com/api/openid.connect.userInfo")
    );
    assert_eq!(
        config("google").revocation_url.as_deref(),
        Some("https://oauth2.googleapis.com/revoke")
    );
    assert_eq!(
        config("google").device_authorization_url.as_deref(),
        Some("https://oauth2.googleapis.com/device/code")
    );
    assert_eq!(
        config("gitlab").revocation_url.as_deref(),
        Some("https://gitlab.com/oauth/revoke")
    );
    assert_eq!(
        config("github").revocation_url,
        None,
        "GitHub has no RFC 7009 endpoint"
    );
}

#[test]
fn a_preset_without_a_secret_is_a_public_client() {
    for preset in PRESETS {
        let cfg = preset.config("id", None).expect("config");
        assert_eq!(cfg.client_auth, ClientAuth::None, "{}", preset.name);
        assert!(cfg.validate().is_ok(), "{}", preset.name);
    }
}

/// An OpenID Connect preset must say where its keys are, or its ID tokens cannot be verified
/// without discovery (and Entra ID's multi-tenant issuer cannot be discovered).
#[test]
fn every_openid_preset_publishes_its_signing_keys() {
    for preset in latchkey_client::presets::PRESETS
        .iter()
        .filter(|p| p.openid)
    {
        let config = preset.config("the-client", None).expect("config");
        let jwks = config.jwks_uri.unwrap_or_default();
        assert!(jwks.starts_with("https://"), "{}: {jwks:?}", preset.name);
        assert!(!jwks.contains('{'), "{}: placeholders filled", preset.name);
    }
}
