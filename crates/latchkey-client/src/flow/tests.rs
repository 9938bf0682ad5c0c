//! The pure protocol steps: authorization URLs, callbacks and authenticated requests.

use super::*;
use latchkey_core::entropy::SeededEntropy;

fn config() -> AppConfig {
    AppConfig::new("my app", Some("s:e/cret"))
        .endpoints(
            "https://as.example/authorize?tenant=x",
            "https://as.example/token",
        )
        .scopes(["read", "write"])
}

fn query(url: &str) -> Vec<(String, String)> {
    let parsed = url::Url::parse(url).expect("url");
    parsed.query_pairs().into_owned().collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn authorization_url_carries_state_pkce_and_keeps_the_endpoint_query() {
    let mut cfg = config();
    cfg.openid = true;
    cfg.authorize_params
        .insert("prompt".into(), "consent".into());
    let auth = authorization(
        &cfg,
        "https://as.example/authorize?tenant=x",
        "https://app.example/cb",
        None,
        &[("prompt", "none")],
        &SeededEntropy::new(7),
    )
    .expect("builds");
    let q = query(&auth.url);
    assert_eq!(param(&q, "tenant"), Some("x"));
    assert_eq!(param(&q, "response_type"), Some("code"));
    assert_eq!(param(&q, "client_id"), Some("my app"));
    assert_eq!(param(&q, "redirect_uri"), Some("https://app.example/cb"));
    assert_eq!(param(&q, "scope"), Some("read write"));
    assert_eq!(param(&q, "state"), Some(auth.pending.state.as_str()));
    assert_eq!(auth.pending.state.len(), 43);
    let verifier = auth.pending.code_verifier.as_deref().expect("pkce on");
    assert_eq!(verifier.len(), 43);
    assert_eq!(
        param(&q, "code_challenge"),
        Some(s256_challenge(verifier).as_str())
    );
    assert_eq!(param(&q, "code_challenge_method"), Some("S256"));
    assert_eq!(param(&q, "nonce"), auth.pending.nonce.as_deref());
    assert_eq!(
        q.iter().filter(|(k, _)| k == "prompt").count(),
        1,
        "an explicit parameter replaces the configured one"
    );
    assert_eq!(param(&q, "prompt"), Some("none"));
}

#[test]
fn two_logins_never_share_state_or_verifier() {
    let entropy = latchkey_core::entropy::OsEntropy;
    let a = authorization(
        &config(),
        "https://as.example/a",
        "https://c/cb",
        None,
        &[],
        &entropy,
    )
    .expect("a");
    let b = authorization(
        &config(),
        "https://as.example/a",
        "https://c/cb",
        None,
        &[],
        &entropy,
    )
    .expect("b");
    assert_ne!(a.pending.state, b.pending.state);
    assert_ne!(a.pending.code_verifier, b.pending.code_verifier);
}

#[test]
fn rfc7636_appendix_b_challenge() {
    assert_eq!(
        s256_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
}

fn pending() -> PendingLogin {
    PendingLogin {
        state: "st".into(),
        code_verifier: Some("v".repeat(43)),
        nonce: None,
        redirect_uri: "https://app.example/cb".into(),
        max_age: None,
    }
}

#[test]
fn callback_with_the_right_state_yields_the_code() {
    let params = callback_params("?code=abc&state=st&iss=https%3A%2F%2Fas.example");
    assert_eq!(
        finish(&pending(), &params, Some("https://as.example"), true).expect("code"),
        "abc"
    );
    assert_eq!(
        finish(
            &pending(),
            &callback_params("code=abc&state=st"),
            None,
            false
        )
        .expect("code"),
        "abc"
    );
}

#[test]
fn forged_or_stateless_callbacks_are_refused_before_anything_else() {
    for query in [
        "code=abc&state=other",
        "code=abc",
        "error=access_denied&state=nope",
    ] {
        assert!(
            matches!(
                finish(&pending(), &callback_params(query), None, false),
                Err(ClientError::StateMismatch)
            ),
            "{query}"
        );
    }
    let stateless = PendingLogin {
        state: String::new(),
        ..pending()
    };
    assert!(matches!(
        finish(&stateless, &callback_params("code=abc&state="), None, false),
        Err(ClientError::StateMismatch)
    ));
}

#[test]
fn mixed_up_issuers_are_refused() {
    let other = callback_params("code=abc&state=st&iss=https%3A%2F%2Fevil.example");
    assert!(matches!(
        finish(&pending(), &other, Some("https://as.example"), false),
        Err(ClientError::IssuerMismatch { got: Some(_), .. })
    ));
    let missing = callback_params("code=abc&state=st");
    assert!(matches!(
        finish(&pending(), &missing, Some("https://as.example"), true),
        Err(ClientError::IssuerMismatch { got: None, .. })
    ));
    assert!(finish(&pending(), &missing, Some("https://as.example"), false).is_ok());
}

#[test]
fn error_callbacks_become_typed_errors() {
    let params = callback_params("error=access_denied&error_description=User+said+no&state=st");
    let err = finish(&pending(), &params, None, false).expect_err("denied");
    let ClientError::Provider(e) = err else {
        panic!("{err:?}")
    };
    assert_eq!(e.code, ErrorCode::AccessDenied);
    assert_eq!(e.description.as_deref(), Some("User said no"));
    assert!(matches!(
        finish(&pending(), &callback_params("state=st"), None, false),
        Err(ClientError::MissingCode)
    ));
    assert!(matches!(
        finish(
            &pending(),
            &callback_params("state=st&code=a&code=b"),
            None,
            false
        ),
        Err(ClientError::InvalidResponse(_))
    ));
}

#[test]
fn token_requests_authenticate_as_configured() {
    let grant = code_grant("the-code", &pending());
    let basic_req =
        token_request(&config(), "https://as.example/token", grant.clone(), None).expect("builds");
    assert_eq!(basic_req.method, Method::Post);
    assert_eq!(
        basic_req.header("authorization"),
        Some(basic("my app", "s:e/cret").as_str())
    );
    let form = basic_req.form_pairs();
    assert_eq!(param(&form, "grant_type"), Some("authorization_code"));
    assert_eq!(
        param(&form, "code_verifier"),
        pending().code_verifier.as_deref()
    );
    assert_eq!(param(&form, "client_secret"), None);

    let mut post = config().client_auth(ClientAuth::ClientSecretPost);
    post.token_params
        .insert("resource".into(), "https://api".into());
    post.token_headers
        .insert("accept".into(), "application/json".into());
    let req =
        token_request(&post, "https://as.example/token", grant.clone(), None).expect("builds");
    assert_eq!(req.header("authorization"), None);
    let form = req.form_pairs();
    assert_eq!(param(&form, "client_id"), Some("my app"));
    assert_eq!(param(&form, "client_secret"), Some("s:e/cret"));
    assert_eq!(param(&form, "resource"), Some("https://api"));

    let mut get = post.clone();
    get.token_method = TokenMethod::Get;
    let req = token_request(&get, "https://graph.example/token", grant, None).expect("builds");
    assert_eq!(req.method, Method::Get);
    assert!(req.body.is_empty());
    assert_eq!(param(&query(&req.url), "code"), Some("the-code"));
}

#[test]
fn jwt_client_authentication_sends_the_assertion_and_never_the_secret() {
    let cfg = config().client_auth(ClientAuth::ClientSecretJwt);
    let grant = code_grant("the-code", &pending());
    assert!(
        matches!(
            token_request(&cfg, "https://as.example/token", grant.clone(), None),
            Err(ClientError::Config(_))
        ),
        "a JWT method without its assertion is a bug, not a request"
    );
    let assertion = Secret::new("header.claims.signature");
    let req =
        token_request(&cfg, "https://as.example/token", grant, Some(&assertion)).expect("builds");
    let form = req.form_pairs();
    assert_eq!(param(&form, "client_id"), Some("my app"));
    assert_eq!(
        param(&form, "client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    assert_eq!(
        param(&form, "client_assertion"),
        Some("header.claims.signature")
    );
    assert_eq!(param(&form, "client_secret"), None);
    assert_eq!(req.header("authorization"), None);
}

#[test]
fn max_age_is_remembered_for_the_auth_time_check() {
    let auth = |extra: &[(&str, &str)]| {
        authorization(
            &config(),
            "https://as.example/a",
            "https://c/cb",
            None,
            extra,
            &SeededEntropy::new(3),
        )
    };
    assert_eq!(
        auth(&[("max_age", "300")]).expect("builds").pending.max_age,
        Some(300)
    );
    assert_eq!(auth(&[]).expect("builds").pending.max_age, None);
    assert!(matches!(
        auth(&[("max_age", "soon")]),
        Err(ClientError::Config(_))
    ));
}

#[test]
fn basic_credentials_are_form_encoded_before_base64() {
    let header = basic("my app", "s:e/cret");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(header.trim_start_matches("Basic "))
        .expect("base64");
    assert_eq!(
        String::from_utf8(raw).expect("utf-8"),
        "my+app:s%3Ae%2Fcret"
    );
}
