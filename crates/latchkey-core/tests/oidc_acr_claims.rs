//! `acr_values`, the `acr` of the `claims` parameter (OpenID Connect Core §5.5.1.1), a
//! requested `sub` (§5.5.1), `value`/`values` and language-tagged claims chosen by
//! `claims_locales` (§5.2, §5.5), through the authorization endpoint and the ID token, on the
//! memory store with a fixed clock.

use latchkey_core::claims::UserClaims;
use latchkey_core::endpoint::authorize::{
    Authentication, AuthorizeOutcome, Decision, PASSWORD_ACR,
};
use latchkey_core::http::{HttpRequest, Method};
use latchkey_core::jose::Expect;
use latchkey_core::store::UserStore;
use latchkey_testkit::{
    REDIRECT_URI, ResponseExt, TestClient, TestKit, VERIFIER, form_encode, redirect_params,
};
use serde_json::{Value, json};

/// How alice is logged in for a case.
#[derive(Clone, Copy, Debug)]
enum Login {
    /// Not at all.
    None,
    /// A session that achieved `acr` (not made for this request).
    Session(Option<&'static str>),
    /// A login made for this very request that achieved `acr`.
    Fresh(Option<&'static str>),
}

/// What the authorization endpoint does.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    Consent,
    Login,
    Error(&'static str),
}

fn get(query: &str) -> HttpRequest {
    let mut req = HttpRequest::new(Method::Get, "/authorize");
    req.query = query.to_owned();
    req
}

fn query(client: &TestClient, extra: &str) -> String {
    format!(
        "response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s1\
         &code_challenge={}&code_challenge_method=S256{extra}",
        form_encode(client.id()),
        form_encode(REDIRECT_URI),
        latchkey_core::pkce::s256_challenge(VERIFIER),
    )
}

fn claims(json: &str) -> String {
    format!("&claims={}", form_encode(json))
}

async fn answer(kit: &TestKit, client: &TestClient, extra: &str, login: Login) -> Answer {
    let alice = kit.alice();
    let auth = match login {
        Login::None => None,
        Login::Session(acr) | Login::Fresh(acr) => Some(Authentication {
            auth_time: Some(kit.now()),
            fresh: matches!(login, Login::Fresh(_)),
            amr: &["pwd"],
            acr,
            ..Authentication::of(&alice)
        }),
    };
    let outcome = kit
        .provider
        .authorize_with(&get(&query(client, extra)), auth, None)
        .await;
    match outcome {
        AuthorizeOutcome::Consent(_) => Answer::Consent,
        AuthorizeOutcome::Login(_) => Answer::Login,
        AuthorizeOutcome::Redirect(_) => {
            let params = redirect_params(&outcome);
            let error = params.get("error").expect("an error redirect").clone();
            Answer::Error(Box::leak(error.into_boxed_str()))
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn essential_acr_is_met_asked_for_again_or_refused_as_unmet() {
    let kit = TestKit::new();
    let web = kit.web_client().await;
    let essential = |value: &str| {
        claims(&format!(
            r#"{{"id_token":{{"acr":{{"essential":true,"value":"{value}"}}}}}}"#
        ))
    };
    let essential_values = |values: &str| {
        claims(&format!(
            r#"{{"id_token":{{"acr":{{"essential":true,"values":{values}}}}}}}"#
        ))
    };
    let pwd = Some(PASSWORD_ACR);
    let cases: Vec<(String, Login, Answer)> = vec![
        // Nothing asked: whatever the login achieved.
        (String::new(), Login::Session(None), Answer::Consent),
        (
            essential(PASSWORD_ACR),
            Login::Session(pwd),
            Answer::Consent,
        ),
        (
            essential_values(&format!(r#"["urn:gold","{PASSWORD_ACR}"]"#)),
            Login::Session(pwd),
            Answer::Consent,
        ),
        // A class no login here achieves: refused before anyone logs in.
        (
            essential("urn:gold"),
            Login::None,
            Answer::Error("unmet_authentication_requirements"),
        ),
        (
            essential_values(r#"["urn:gold","urn:silver"]"#),
            Login::Session(pwd),
            Answer::Error("unmet_authentication_requirements"),
        ),
        // Achievable, but this session did not: log in again (or login_required under
        // prompt=none); a login made for the request that still misses it fails.
        (essential(PASSWORD_ACR), Login::Session(None), Answer::Login),
        (
            format!("{}&prompt=none", essential(PASSWORD_ACR)),
            Login::Session(None),
            Answer::Error("login_required"),
        ),
        (
            essential(PASSWORD_ACR),
            Login::Fresh(Some("urn:weaker")),
            Answer::Error("unmet_authentication_requirements"),
        ),
        (essential(PASSWORD_ACR), Login::Fresh(pwd), Answer::Consent),
        // Voluntary requests are preferences, never refusals.
        (
            "&acr_values=urn%3Agold".into(),
            Login::Session(pwd),
            Answer::Consent,
        ),
        (
            claims(r#"{"id_token":{"acr":{"values":["urn:gold"]}}}"#),
            Login::Session(None),
            Answer::Consent,
        ),
        (
            claims(r#"{"id_token":{"acr":{"essential":true}}}"#),
            Login::Session(None),
            Answer::Consent,
        ),
    ];
    for (extra, login, expected) in cases {
        assert_eq!(
            answer(&kit, &web, &extra, login).await,
            expected,
            "{extra} {login:?}"
        );
    }
}

#[tokio::test]
async fn the_acr_values_the_provider_achieves_are_configurable_and_advertised() {
    let kit = TestKit::with_config(|c| c.acr_values = vec!["1".into(), "urn:corp:mfa".into()]);
    let web = kit.web_client().await;
    let essential = claims(r#"{"id_token":{"acr":{"essential":true,"value":"urn:corp:mfa"}}}"#);
    assert_eq!(
        answer(&kit, &web, &essential, Login::Session(Some("urn:corp:mfa"))).await,
        Answer::Consent
    );
    assert_eq!(
        answer(&kit, &web, &essential, Login::Session(Some("1"))).await,
        Answer::Login
    );
    let password = claims(&format!(
        r#"{{"id_token":{{"acr":{{"essential":true,"value":"{PASSWORD_ACR}"}}}}}}"#
    ));
    assert_eq!(
        answer(&kit, &web, &password, Login::None).await,
        Answer::Error("unmet_authentication_requirements")
    );
    let doc = kit
        .provider
        .discovery("/.well-known/openid-configuration")
        .expect_ok();
    assert_eq!(doc["acr_values_supported"], json!(["1", "urn:corp:mfa"]));
    let default = TestKit::new()
        .provider
        .discovery("/.well-known/openid-configuration")
        .expect_ok();
    assert_eq!(default["acr_values_supported"], json!([PASSWORD_ACR]));
    // A value with a space could not be sent in acr_values: the provider refuses it.
    let bad = latchkey_core::config::Config {
        acr_values: vec!["two words".into()],
        ..latchkey_core::config::Config::default()
    };
    assert!(bad.validate().is_err());
}

#[tokio::test]
async fn a_requested_sub_is_honoured_like_an_id_token_hint() {
    let kit = TestKit::new();
    let web = kit.web_client().await;
    let sub = |s: &str| claims(&format!(r#"{{"id_token":{{"sub":{{"value":"{s}"}}}}}}"#));
    let cases: [(String, Login, Answer); 4] = [
        (sub("user-alice"), Login::Session(None), Answer::Consent),
        (sub("user-bob"), Login::Session(None), Answer::Login),
        (
            format!("{}&prompt=none", sub("user-bob")),
            Login::Session(None),
            Answer::Error("login_required"),
        ),
        (
            sub("user-bob"),
            Login::Fresh(None),
            Answer::Error("login_required"),
        ),
    ];
    for (extra, login, expected) in cases {
        assert_eq!(
            answer(&kit, &web, &extra, login).await,
            expected,
            "{extra} {login:?}"
        );
    }
}

/// Approves `extra` for alice (logged in with the password class, session `sid-1`) and
/// returns the ID token's claims.
async fn id_token(kit: &TestKit, client: &TestClient, extra: &str) -> Value {
    let alice = kit.alice();
    let auth = Authentication {
        auth_time: Some(kit.now()),
        sid: Some("sid-1".into()),
        amr: &["pwd"],
        acr: Some(PASSWORD_ACR),
        ..Authentication::of(&alice)
    };
    let outcome = kit
        .provider
        .authorize_with(
            &get(&query(client, extra)),
            Some(auth),
            Some(Decision::Allow { remember: false }),
        )
        .await;
    let code = redirect_params(&outcome)
        .get("code")
        .cloned()
        .unwrap_or_else(|| panic!("no code: {outcome:?}"));
    let tokens = kit
        .token(
            client,
            &format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
                form_encode(REDIRECT_URI)
            ),
        )
        .await
        .expect_ok();
    let expect = Expect::new("JWT", kit.now())
        .issuer("https://auth.example.test")
        .audience(client.id());
    kit.provider
        .signer()
        .verify(tokens["id_token"].as_str().expect("an ID token"), &expect)
        .expect("a valid ID token")
}

#[tokio::test]
async fn the_id_token_carries_the_acr_achieved_matching_claims_and_the_asked_language() {
    let kit = TestKit::new();
    let mut alice = kit.user("alice", "correct horse").await;
    alice.claims = UserClaims::from_json(
        r#"{"name":"Alice","name#fr":"Alice (fr)","name#ja-Kana-JP":"アリス",
            "email":"alice@example.test","email_verified":true,"nickname":"Al"}"#,
    )
    .expect("claims");
    kit.store.put_user(&alice).await.expect("put");
    let web = kit.web_client().await;
    let cases: [(String, Value); 6] = [
        (
            claims(&format!(
                r#"{{"id_token":{{"acr":{{"essential":true,"values":["urn:gold","{PASSWORD_ACR}"]}}}}}}"#
            )),
            json!({"acr": PASSWORD_ACR}),
        ),
        // A voluntary class it does not meet: the acr achieved, as §5.5.1.1 asks.
        (
            "&acr_values=urn%3Agold".into(),
            json!({"acr": PASSWORD_ACR}),
        ),
        (
            claims(
                r#"{"id_token":{"email":{"value":"alice@example.test"},"nickname":{"value":"Bob"},
                    "email_verified":{"values":[false]},"name":null}}"#,
            ),
            json!({"email": "alice@example.test", "name": "Alice", "nickname": null,
                   "email_verified": null}),
        ),
        (
            format!(
                "{}&claims_locales=fr-CA+en",
                claims(r#"{"id_token":{"name":null}}"#)
            ),
            json!({"name": "Alice (fr)"}),
        ),
        (
            claims(r#"{"id_token":{"name#ja-Kana-JP":null,"name#de":null}}"#),
            json!({"name#ja-Kana-JP": "アリス", "name#de": null, "name": null}),
        ),
        // Essential, and alice has no phone number: simply absent.
        (
            claims(r#"{"id_token":{"phone_number":{"essential":true},"name":null}}"#),
            json!({"phone_number": null, "name": "Alice"}),
        ),
    ];
    for (extra, expected) in cases {
        let token = id_token(&kit, &web, &extra).await;
        assert_eq!(token["sub"], "user-alice", "{token}");
        let Value::Object(expected) = expected else {
            unreachable!()
        };
        for (claim, value) in expected {
            let got = token.get(&claim).cloned().unwrap_or(Value::Null);
            assert_eq!(got, value, "{claim} for {extra}: {token}");
        }
    }
}
