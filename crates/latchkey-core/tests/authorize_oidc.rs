//! The OpenID Connect side of the authorization endpoint (OpenID Connect Core §3.1.2, §3.2,
//! §3.3; Form Post Response Mode; Multiple Response Types), on the memory store.

use latchkey_core::client::{GrantType, NewClient};
use latchkey_core::endpoint::authorize::{Authentication, AuthorizeOutcome, Decision, Pending};
use latchkey_core::http::HttpResponse;
use latchkey_core::jose::{Expect, SigningAlg};
use latchkey_core::oidc::id_token::half_hash;
use latchkey_core::pkce::s256_challenge;
use latchkey_testkit::{
    REDIRECT_URI, ResponseExt, TestClient, TestKit, VERIFIER, form_encode, redirect_params,
};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const ALLOW: Option<Decision> = Some(Decision::Allow { remember: false });

/// A confidential relying party allowed the code, implicit and refresh grants.
async fn rp(kit: &TestKit) -> TestClient {
    kit.register(
        NewClient::confidential("Relying Party")
            .redirect_uris([REDIRECT_URI])
            .grant_types([
                GrantType::AuthorizationCode,
                GrantType::Implicit,
                GrantType::RefreshToken,
            ]),
    )
    .await
}

/// An OpenID Connect request of `response_type` for `client`, with PKCE and a nonce.
fn oidc_query(client: &TestClient, response_type: &str, extra: &str) -> String {
    format!(
        "response_type={}&client_id={}&scope=openid&state=s1&nonce=n-0S6_WzA2Mj\
         &code_challenge={}&code_challenge_method=S256{extra}",
        form_encode(response_type),
        form_encode(client.id()),
        s256_challenge(VERIFIER),
    )
}

/// An ID token for `sub` and `aud` signed with the provider's keys, issued at `iat`.
fn id_token_for(kit: &TestKit, sub: &str, aud: &str, iat: i64) -> String {
    let claims = json!({
        "iss": "https://auth.example.test", "sub": sub, "aud": aud, "iat": iat, "exp": iat + 60,
    });
    kit.provider
        .signer()
        .sign(None, "JWT", &claims)
        .expect("the default signer signs")
}

/// The claims of an ID token we issued to `client`, checked with the provider's keys.
fn verified(kit: &TestKit, client: &TestClient, id_token: &str) -> BTreeMap<String, Value> {
    let expect = Expect::new("JWT", kit.now())
        .issuer("https://auth.example.test")
        .audience(client.id());
    kit.provider
        .signer()
        .verify(id_token, &expect)
        .expect("a valid ID token")
}

/// The hidden fields of a `form_post` page.
fn form_fields(resp: &HttpResponse) -> BTreeMap<String, String> {
    let html = String::from_utf8(resp.body.clone()).expect("utf-8");
    html.split("<input type=\"hidden\" ")
        .skip(1)
        .filter_map(|field| {
            let name = field.split("name=\"").nth(1)?.split('"').next()?;
            let value = field.split("value=\"").nth(1)?.split('"').next()?;
            Some((name.to_owned(), value.to_owned()))
        })
        .collect()
}

#[tokio::test]
async fn refusals_carry_the_openid_connect_error_codes() {
    let kit = TestKit::new();
    let rp = rp(&kit).await;
    let web = kit.web_client().await;
    let other_client = id_token_for(&kit, "user-alice", web.id(), kit.now().0);
    let long_hint = "x".repeat(256);
    let cases: &[(&str, &str, &str)] = &[
        ("code", "&prompt=sometimes", "invalid_request"),
        ("code", "&prompt=none+login", "invalid_request"),
        ("code", "&prompt=Login", "invalid_request"),
        (
            "code",
            "&request_uri=https%3A%2F%2Fapp.example.test%2Fr",
            "request_uri_not_supported",
        ),
        ("code", "&registration=%7B%7D", "registration_not_supported"),
        ("code", "&id_token_hint=not-a-jwt", "invalid_request"),
        (
            "code",
            &format!("&id_token_hint={other_client}"),
            "invalid_request",
        ),
        ("code", "&display=tv", "invalid_request"),
        ("code", "&ui_locales=en_US", "invalid_request"),
        ("code", "&claims_locales=-x", "invalid_request"),
        (
            "code",
            &format!("&login_hint={long_hint}"),
            "invalid_request",
        ),
        ("code", "&max_age=-1", "invalid_request"),
        ("code", "&claims=%7Bnot+json", "invalid_request"),
        (
            "code",
            "&claims=%7B%22id_token%22%3A%7B%22acr%22%3A%7B%22essential%22%3Atrue%2C\
             %22values%22%3A%5B%22urn%3Amfa%22%5D%7D%7D%7D",
            "unmet_authentication_requirements",
        ),
        ("code", "&response_mode=jwt", "invalid_request"),
        ("code code", "", "unsupported_response_type"),
        ("code none", "", "unsupported_response_type"),
        ("id_token", "&response_mode=query", "invalid_request"),
        ("code token", "&response_mode=query", "invalid_request"),
    ];
    for (response_type, extra, error) in cases {
        let query = oidc_query(&rp, response_type, extra);
        let params = redirect_params(&kit.authorize(&query, Some(&kit.alice()), ALLOW).await);
        assert_eq!(
            params.get("error").map(String::as_str),
            Some(*error),
            "{response_type} {extra}: {params:?}"
        );
        assert_eq!(params["state"], "s1");
        assert!(!params.contains_key("code") && !params.contains_key("id_token"));
    }
    // An ID token needs the openid scope.
    let not_openid = oidc_query(&rp, "id_token", "").replace("scope=openid", "scope=read");
    let params = redirect_params(&kit.authorize(&not_openid, Some(&kit.alice()), ALLOW).await);
    assert_eq!(params["error"], "invalid_request");
    // The nonce is required whenever an ID token comes from the authorization endpoint.
    let no_nonce = oidc_query(&rp, "code id_token", "").replace("&nonce=n-0S6_WzA2Mj", "");
    let params = redirect_params(&kit.authorize(&no_nonce, Some(&kit.alice()), ALLOW).await);
    assert_eq!(params["error"], "invalid_request");
    // A client not allowed the implicit grant gets no token from the front channel.
    let params = redirect_params(
        &kit.authorize(
            &oidc_query(&web, "code id_token", ""),
            Some(&kit.alice()),
            ALLOW,
        )
        .await,
    );
    assert_eq!(params["error"], "unauthorized_client");
}

#[tokio::test]
async fn prompt_none_answers_login_consent_or_interaction_required() {
    let kit = TestKit::new();
    let rp = rp(&kit).await;
    let bob_hint = id_token_for(&kit, "user-bob", rp.id(), kit.now().0);
    let cases: &[(&str, bool, &str)] = &[
        ("&prompt=none", false, "login_required"),
        ("&prompt=none", true, "consent_required"),
        ("&prompt=none&max_age=0", true, "login_required"),
        ("&prompt=none&login_hint=bob", true, "interaction_required"),
        (
            &format!("&prompt=none&id_token_hint={bob_hint}"),
            true,
            "login_required",
        ),
    ];
    for (extra, logged_in, error) in cases {
        let alice = kit.alice();
        let auth = logged_in.then(|| Authentication {
            user: &alice,
            auth_time: Some(kit.now()),
            fresh: false,
            sid: None,
            amr: &[],
            acr: None,
        });
        let outcome = kit
            .provider
            .authorize_with(&get(&oidc_query(&rp, "code", extra)), auth, None)
            .await;
        assert_eq!(redirect_params(&outcome)["error"], *error, "{extra}");
    }
}

fn get(query: &str) -> latchkey_core::http::HttpRequest {
    let mut req =
        latchkey_core::http::HttpRequest::new(latchkey_core::http::Method::Get, "/authorize");
    req.query = query.to_owned();
    req
}

#[tokio::test]
async fn hybrid_code_id_token_token_is_form_posted_with_hashes_that_bind_the_id_token() {
    let kit = TestKit::new();
    let rp = rp(&kit).await;
    let query = oidc_query(&rp, "token code id_token", "&response_mode=form_post");
    let AuthorizeOutcome::Redirect(page) = kit.authorize(&query, Some(&kit.alice()), ALLOW).await
    else {
        panic!("expected the form post page");
    };
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page.header("location").is_none(), "nothing in a URL");
    let fields = form_fields(&page);
    assert_eq!(fields["state"], "s1");
    assert_eq!(fields["token_type"], "Bearer");
    let claims = verified(&kit, &rp, &fields["id_token"]);
    assert_eq!(claims["sub"], "user-alice");
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    // ES256 is the default algorithm: SHA-256 halves (OpenID Connect Core §3.3.2.11).
    assert_eq!(
        claims["c_hash"],
        half_hash(SigningAlg::Es256, &fields["code"]).as_str()
    );
    assert_eq!(
        claims["at_hash"],
        half_hash(SigningAlg::Es256, &fields["access_token"]).as_str()
    );
    // The code is an ordinary code: exchanged once, with the PKCE verifier.
    let body = format!(
        "grant_type=authorization_code&code={}&redirect_uri={}&code_verifier={VERIFIER}",
        fields["code"],
        form_encode(REDIRECT_URI)
    );
    kit.token(&rp, &body).await.expect_ok();
}

#[tokio::test]
async fn implicit_id_token_types_default_to_the_fragment_in_any_order() {
    let kit = TestKit::new();
    let rp = rp(&kit).await;
    for response_type in ["token id_token", "id_token token"] {
        let outcome = kit
            .authorize(
                &oidc_query(&rp, response_type, ""),
                Some(&kit.alice()),
                ALLOW,
            )
            .await;
        let AuthorizeOutcome::Redirect(resp) = &outcome else {
            panic!("expected a redirect");
        };
        let location = resp.header("location").expect("location");
        assert!(
            location.starts_with(&format!("{REDIRECT_URI}#")),
            "{location}"
        );
        let params = redirect_params(&outcome);
        let claims = verified(&kit, &rp, &params["id_token"]);
        assert_eq!(
            claims["at_hash"],
            half_hash(SigningAlg::Es256, &params["access_token"]).as_str()
        );
        assert!(!claims.contains_key("c_hash"));
    }
    let params = redirect_params(
        &kit.authorize(&oidc_query(&rp, "id_token", ""), Some(&kit.alice()), ALLOW)
            .await,
    );
    assert!(params.contains_key("id_token"));
    assert!(!params.contains_key("access_token") && !params.contains_key("code"));
    let claims = verified(&kit, &rp, &params["id_token"]);
    assert!(!claims.contains_key("at_hash"));
}

#[tokio::test]
async fn front_channel_response_types_follow_the_server_switches_and_the_metadata() {
    for (implicit, oidc, expected) in [
        (
            true,
            true,
            vec![
                "code",
                "token",
                "id_token",
                "id_token token",
                "code id_token",
                "code token",
                "code id_token token",
            ],
        ),
        (true, false, vec!["code", "token", "code token"]),
        (false, true, vec!["code"]),
    ] {
        let kit = TestKit::with_config(|c| {
            c.implicit_grant = implicit;
            c.oidc = oidc;
        });
        let doc = latchkey_core::endpoint::metadata::document(&kit.provider);
        assert_eq!(doc["response_types_supported"], json!(expected));
        assert_eq!(
            doc["response_modes_supported"],
            json!(["query", "fragment", "form_post"])
        );
        let rp = rp(&kit).await;
        let query = oidc_query(&rp, "code id_token", "");
        let params = redirect_params(&kit.authorize(&query, Some(&kit.alice()), ALLOW).await);
        if implicit && oidc {
            assert!(params.contains_key("id_token"));
        } else {
            assert_eq!(params["error"], "unsupported_response_type");
        }
    }
}

#[tokio::test]
async fn select_account_asks_the_logged_in_user_until_they_answer() {
    let kit = TestKit::new();
    let rp = rp(&kit).await;
    let alice = kit.alice();
    let query = oidc_query(&rp, "code", "&prompt=select_account&login_hint=alice");
    let AuthorizeOutcome::SelectAccount(request) = kit.authorize(&query, Some(&alice), None).await
    else {
        panic!("expected the account question");
    };
    assert_eq!(request.login_hint(), Some("alice"));
    // Nobody logged in: the login page is the choice.
    assert!(matches!(
        kit.authorize(&query, None, None).await,
        AuthorizeOutcome::Login(_)
    ));
    // The answer, carried by the pending request, moves on to consent.
    let pending = Pending::decode(&request.pending()).expect("pending");
    let outcome = kit
        .provider
        .resume_authorize(
            &get(""),
            pending.clone().account_selected(),
            Some(Authentication::of(&alice)),
            None,
        )
        .await;
    assert!(
        matches!(outcome, AuthorizeOutcome::Consent(_)),
        "{outcome:?}"
    );
    // Without the answer, the question again.
    let outcome = kit
        .provider
        .resume_authorize(&get(""), pending, Some(Authentication::of(&alice)), None)
        .await;
    assert!(matches!(outcome, AuthorizeOutcome::SelectAccount(_)));
    // A login hint for another user asks the same question.
    let other = oidc_query(&rp, "code", "&login_hint=bob");
    assert!(matches!(
        kit.authorize(&other, Some(&alice), None).await,
        AuthorizeOutcome::SelectAccount(_)
    ));
}

#[tokio::test]
async fn id_token_hint_of_another_user_asks_for_a_login_and_an_expired_one_still_counts() {
    let kit = TestKit::new();
    let rp = rp(&kit).await;
    let alice = kit.alice();
    let long_ago = kit.now().0 - 10 * 3600;
    let for_alice = id_token_for(&kit, "user-alice", rp.id(), long_ago);
    let for_bob = id_token_for(&kit, "user-bob", rp.id(), long_ago);
    let auth = || Some(Authentication::of(&alice));
    let outcome = kit
        .provider
        .authorize_with(
            &get(&oidc_query(
                &rp,
                "code",
                &format!("&id_token_hint={for_alice}"),
            )),
            auth(),
            None,
        )
        .await;
    assert!(
        matches!(outcome, AuthorizeOutcome::Consent(_)),
        "{outcome:?}"
    );
    let bob_query = oidc_query(&rp, "code", &format!("&id_token_hint={for_bob}"));
    let outcome = kit
        .provider
        .authorize_with(&get(&bob_query), auth(), None)
        .await;
    let AuthorizeOutcome::Login(request) = outcome else {
        panic!("expected a login for bob");
    };
    assert_eq!(request.hint_subject(), Some("user-bob"));
    // Logging in for this request as someone else than the hint is an error.
    let pending = Pending::decode(&request.pending()).expect("pending");
    let fresh = Authentication {
        user: &alice,
        auth_time: Some(kit.now()),
        fresh: true,
        sid: None,
        amr: &[],
        acr: None,
    };
    let outcome = kit
        .provider
        .resume_authorize(&get(""), pending, Some(fresh), None)
        .await;
    assert_eq!(redirect_params(&outcome)["error"], "login_required");
}

#[tokio::test]
async fn max_age_zero_always_asks_for_a_new_login() {
    let kit = TestKit::new();
    let rp = rp(&kit).await;
    let alice = kit.alice();
    let query = oidc_query(&rp, "code", "&max_age=0");
    let just_now = Authentication {
        user: &alice,
        auth_time: Some(kit.now()),
        fresh: false,
        sid: None,
        amr: &[],
        acr: None,
    };
    let outcome = kit
        .provider
        .authorize_with(&get(&query), Some(just_now.clone()), None)
        .await;
    assert!(matches!(outcome, AuthorizeOutcome::Login(_)));
    let fresh = Authentication {
        fresh: true,
        ..just_now
    };
    let outcome = kit
        .provider
        .authorize_with(&get(&query), Some(fresh), None)
        .await;
    assert!(matches!(outcome, AuthorizeOutcome::Consent(_)));
}

#[tokio::test]
async fn the_openid_parameters_survive_the_wait_for_the_user() {
    let kit = TestKit::new();
    let rp = rp(&kit).await;
    let query = oidc_query(
        &rp,
        "code",
        "&login_hint=alice%40example.com&ui_locales=fr-CA+en&claims_locales=de\
         &acr_values=urn%3Alatchkey%3Aacr%3Apassword&display=popup\
         &claims=%7B%22userinfo%22%3A%7B%22email%22%3Anull%7D%7D&response_mode=form_post",
    );
    let AuthorizeOutcome::Login(request) = kit.authorize(&query, None, None).await else {
        panic!("expected a login");
    };
    let pending = Pending::decode(&request.pending()).expect("pending");
    assert_eq!(pending.login_hint(), Some("alice@example.com"));
    let AuthorizeOutcome::Login(back) = kit
        .provider
        .resume_authorize(&get(""), pending, None, None)
        .await
    else {
        panic!("still a login");
    };
    assert_eq!(back.ui_locales(), ["fr-CA", "en"]);
    assert_eq!(back.claims_locales(), ["de"]);
    assert_eq!(back.acr_values(), ["urn:latchkey:acr:password"]);
    assert_eq!(back.display(), Some("popup"));
    assert_eq!(
        back.claims().map(|c| c.to_value()),
        Some(json!({"userinfo": {"email": null}}))
    );
    assert_eq!(
        back.response_mode(),
        latchkey_core::redirect::ResponseMode::FormPost
    );
}
