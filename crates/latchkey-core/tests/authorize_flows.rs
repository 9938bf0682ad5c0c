//! The authorization endpoint and the authorization code grant, on the memory store.

use latchkey_core::client::{GrantType, NewClient};
use latchkey_core::endpoint::authorize::{Authentication, AuthorizeOutcome, Decision, Pending};
use latchkey_core::error::ErrorCode;
use latchkey_core::pkce::s256_challenge;
use latchkey_core::secret::Secret;
use latchkey_core::store::TokenStore;
use latchkey_testkit::{
    REDIRECT_URI, ResponseExt, TestKit, VERIFIER, form_encode, redirect_params, scopes,
};

const ALLOW: Option<Decision> = Some(Decision::Allow { remember: false });

fn code_query(client_id: &str, extra: &str) -> String {
    format!(
        "response_type=code&client_id={}&state=s1&code_challenge={}&code_challenge_method=S256{extra}",
        form_encode(client_id),
        s256_challenge(VERIFIER)
    )
}

fn exchange_body(code: &str, client_id: &str, verifier: &str) -> String {
    format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&client_id={}&code_verifier={verifier}",
        form_encode(REDIRECT_URI),
        form_encode(client_id)
    )
}

#[tokio::test]
async fn public_client_runs_code_flow_with_pkce_through_login_and_consent() {
    let kit = TestKit::new();
    // Alice exists: the refresh grant at the end refuses subjects that do not.
    kit.user("alice", "alice-password").await;
    let spa = kit.spa_client().await;
    let query = code_query(spa.id(), "&scope=read+write");
    assert!(matches!(
        kit.authorize(&query, None, None).await,
        AuthorizeOutcome::Login(_)
    ));
    let AuthorizeOutcome::Consent(request) = kit.authorize(&query, Some(&kit.alice()), None).await
    else {
        panic!("expected the consent step");
    };
    assert_eq!(request.scope().to_string(), "read write");
    assert_eq!(request.client().name, "Single Page App");

    let params = redirect_params(&kit.authorize(&query, Some(&kit.alice()), ALLOW).await);
    assert_eq!(params["state"], "s1");
    assert_eq!(params["iss"], "https://auth.example.test");
    let code = &params["code"];

    let tokens = kit
        .token_post(&exchange_body(code, spa.id(), VERIFIER))
        .await
        .expect_ok();
    assert_eq!(tokens["scope"], "read write");
    let record = kit
        .store
        .find_token(&Secret::new(tokens["access_token"].as_str().expect("token")).digest())
        .await
        .expect("find")
        .expect("stored");
    assert_eq!(record.subject.as_deref(), Some("user-alice"));
    let rt = tokens["refresh_token"].as_str().expect("refresh token");
    kit.token_post(&format!(
        "grant_type=refresh_token&refresh_token={rt}&client_id={}",
        spa.id()
    ))
    .await
    .expect_ok();
}

#[tokio::test]
async fn confidential_client_exchanges_with_basic_auth() {
    let kit = TestKit::new();
    let web = kit.web_client().await;
    let code = kit.code_for(&web, "").await;
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
        form_encode(REDIRECT_URI)
    );
    let tokens = kit.token(&web, &body).await.expect_ok();
    assert_eq!(tokens["scope"], "read", "default scope applies");
}

#[tokio::test]
async fn public_client_without_pkce_is_refused_by_redirect() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let query = format!("response_type=code&client_id={}&state=s2", spa.id());
    let params = redirect_params(&kit.authorize(&query, Some(&kit.alice()), ALLOW).await);
    assert_eq!(params["error"], "invalid_request");
    assert_eq!(params["state"], "s2");
    assert_eq!(params["iss"], "https://auth.example.test");
    assert!(!params.contains_key("code"));
}

#[tokio::test]
async fn plain_pkce_is_refused_unless_enabled() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let query = format!(
        "response_type=code&client_id={}&code_challenge={VERIFIER}&code_challenge_method=plain",
        spa.id()
    );
    let params = redirect_params(&kit.authorize(&query, Some(&kit.alice()), ALLOW).await);
    assert_eq!(params["error"], "invalid_request");
}

#[tokio::test]
async fn wrong_missing_or_unexpected_verifier_is_invalid_grant() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let wrong = "x".repeat(43);
    let code = kit.code_for(&spa, "").await;
    kit.token_post(&exchange_body(&code, spa.id(), &wrong))
        .await
        .expect_error("invalid_grant");

    let code = kit.code_for(&spa, "").await;
    let no_verifier = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&client_id={}",
        form_encode(REDIRECT_URI),
        spa.id()
    );
    kit.token_post(&no_verifier)
        .await
        .expect_error("invalid_grant");

    // A confidential client that sent no challenge cannot add a verifier later (downgrade).
    let web = kit.web_client().await;
    let query = format!("response_type=code&client_id={}", web.id());
    let code =
        redirect_params(&kit.authorize(&query, Some(&kit.alice()), ALLOW).await)["code"].clone();
    let body = format!("grant_type=authorization_code&code={code}&code_verifier={VERIFIER}");
    kit.token(&web, &body).await.expect_error("invalid_grant");
}

#[tokio::test]
async fn reused_code_is_refused_and_revokes_the_tokens_it_produced() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let code = kit.code_for(&spa, "").await;
    let first = kit
        .token_post(&exchange_body(&code, spa.id(), VERIFIER))
        .await
        .expect_ok();
    kit.token_post(&exchange_body(&code, spa.id(), VERIFIER))
        .await
        .expect_error("invalid_grant");
    for token in [&first["access_token"], &first["refresh_token"]] {
        let digest = Secret::new(token.as_str().expect("token")).digest();
        let record = kit
            .store
            .find_token(&digest)
            .await
            .expect("find")
            .expect("known");
        assert!(record.revoked, "a token from a replayed code survived");
    }
}

#[tokio::test]
async fn code_presented_by_another_client_is_invalid_grant() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let other = kit.spa_client().await;
    let code = kit.code_for(&spa, "").await;
    kit.token_post(&exchange_body(&code, other.id(), VERIFIER))
        .await
        .expect_error("invalid_grant");
}

#[tokio::test]
async fn issue_14_another_client_can_neither_burn_a_code_nor_revoke_its_tokens() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let thief = kit.spa_client().await;
    // An intercepted code presented by another client is refused and left unused...
    let code = kit.code_for(&spa, "").await;
    kit.token_post(&exchange_body(&code, thief.id(), VERIFIER))
        .await
        .expect_error("invalid_grant");
    // ...so its own client still redeems it.
    let tokens = kit
        .token_post(&exchange_body(&code, spa.id(), VERIFIER))
        .await
        .expect_ok();
    // Presented again by the other client, it is no replay: the owner's tokens survive.
    kit.token_post(&exchange_body(&code, thief.id(), VERIFIER))
        .await
        .expect_error("invalid_grant");
    for token in [&tokens["access_token"], &tokens["refresh_token"]] {
        let digest = Secret::new(token.as_str().expect("token")).digest();
        let record = kit
            .store
            .find_token(&digest)
            .await
            .expect("find")
            .expect("known");
        assert!(
            !record.revoked,
            "another client's presentation revoked the owner's tokens"
        );
    }
}

#[tokio::test]
async fn redirect_uri_at_the_token_endpoint_must_repeat_the_authorization_request() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let explicit = format!("&redirect_uri={}", form_encode(REDIRECT_URI));
    let code = kit.code_for(&spa, &explicit).await;
    let wrong = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&client_id={}&code_verifier={VERIFIER}",
        form_encode("https://app.example.test/other"),
        spa.id()
    );
    kit.token_post(&wrong).await.expect_error("invalid_grant");

    let code = kit.code_for(&spa, &explicit).await;
    let missing = format!(
        "grant_type=authorization_code&code={code}&client_id={}&code_verifier={VERIFIER}",
        spa.id()
    );
    kit.token_post(&missing).await.expect_error("invalid_grant");
}

#[tokio::test]
async fn codes_expire_after_a_minute() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let code = kit.code_for(&spa, "").await;
    kit.clock.advance(61);
    kit.token_post(&exchange_body(&code, spa.id(), VERIFIER))
        .await
        .expect_error("invalid_grant");
}

#[tokio::test]
async fn untrustworthy_requests_show_an_error_page_and_never_redirect() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let alice = kit.alice();
    let cases = [
        ("unknown client", code_query("no-such-client", "")),
        ("missing client_id", "response_type=code&state=x".to_owned()),
        (
            "unregistered redirect",
            code_query(spa.id(), "&redirect_uri=https%3A%2F%2Fevil.example%2Fcb"),
        ),
        (
            "redirect with extra path",
            code_query(
                spa.id(),
                "&redirect_uri=https%3A%2F%2Fapp.example.test%2Fcallback%2Fx",
            ),
        ),
        (
            "duplicated parameter",
            code_query(spa.id(), &format!("&client_id={}", spa.id())),
        ),
    ];
    for (name, query) in cases {
        match kit.authorize(&query, Some(&alice), ALLOW).await {
            AuthorizeOutcome::ErrorPage(err) => {
                assert_eq!(err.code(), ErrorCode::InvalidRequest, "{name}")
            }
            other => panic!("{name}: expected an error page, got {other:?}"),
        }
    }
    // With several registered URIs, one must be named.
    let multi = kit
        .register(
            NewClient::public("multi")
                .redirect_uris(["https://a.example/cb", "https://b.example/cb"])
                .grant_types([GrantType::AuthorizationCode]),
        )
        .await;
    assert!(matches!(
        kit.authorize(&code_query(multi.id(), ""), Some(&alice), ALLOW)
            .await,
        AuthorizeOutcome::ErrorPage(_)
    ));
}

#[tokio::test]
async fn error_page_goes_to_the_configured_error_uri() {
    let store = latchkey_core::store::memory::MemoryStore::new();
    let provider = latchkey_core::provider::Provider::builder(store, latchkey_core::user::NoUsers)
        .error_uri("https://docs.example/oauth-errors")
        .build()
        .expect("valid");
    let mut req =
        latchkey_core::http::HttpRequest::new(latchkey_core::http::Method::Get, "/authorize");
    req.query = "response_type=code&client_id=ghost".into();
    let AuthorizeOutcome::ErrorPage(err) = provider.authorize(&req, None, None).await else {
        panic!("expected an error page");
    };
    let resp = provider.error_page(&err);
    assert_eq!(resp.status, 302);
    assert!(
        resp.header("location").is_some_and(
            |l| l.starts_with("https://docs.example/oauth-errors?error=invalid_request")
        )
    );
}

#[tokio::test]
async fn denied_consent_redirects_access_denied_with_state() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let params = redirect_params(
        &kit.authorize(
            &code_query(spa.id(), ""),
            Some(&kit.alice()),
            Some(Decision::Deny),
        )
        .await,
    );
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "s1");
    assert!(!params.contains_key("code"));
}

#[tokio::test]
async fn remembered_consent_skips_the_question_for_the_same_or_fewer_scopes() {
    let kit = TestKit::new();
    // A confidential client: remembered consent never approves a public one (below).
    let spa = kit.web_client().await;
    let alice = kit.alice();
    let rw = code_query(spa.id(), "&scope=read+write");
    let remember = Some(Decision::Allow { remember: true });
    assert!(
        redirect_params(&kit.authorize(&rw, Some(&alice), remember).await).contains_key("code")
    );
    assert!(matches!(
        kit.authorize(&rw, Some(&alice), None).await,
        AuthorizeOutcome::Redirect(_)
    ));
    let read = code_query(spa.id(), "&scope=read");
    assert!(matches!(
        kit.authorize(&read, Some(&alice), None).await,
        AuthorizeOutcome::Redirect(_)
    ));
    let admin = code_query(spa.id(), "&scope=read+admin");
    assert!(matches!(
        kit.authorize(&admin, Some(&alice), None).await,
        AuthorizeOutcome::Consent(_)
    ));
    let forced = code_query(spa.id(), "&scope=read&prompt=consent");
    assert!(matches!(
        kit.authorize(&forced, Some(&alice), None).await,
        AuthorizeOutcome::Consent(_)
    ));
}

#[tokio::test]
async fn prompt_none_never_interacts() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let query = code_query(spa.id(), "&prompt=none");
    assert_eq!(
        redirect_params(&kit.authorize(&query, None, None).await)["error"],
        "login_required"
    );
    assert_eq!(
        redirect_params(&kit.authorize(&query, Some(&kit.alice()), None).await)["error"],
        "consent_required"
    );
}

#[tokio::test]
async fn client_errors_after_redirect_validation_go_back_to_the_client() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let alice = kit.alice();
    for (extra, error) in [
        ("&scope=superuser", "invalid_scope"),
        ("&response_mode=jwt", "invalid_request"),
    ] {
        let params = redirect_params(
            &kit.authorize(&code_query(spa.id(), extra), Some(&alice), ALLOW)
                .await,
        );
        assert_eq!(params["error"], error, "{extra}");
        assert_eq!(params["state"], "s1");
    }
    let bad_type = format!("response_type=code+device&client_id={}&state=s1", spa.id());
    assert_eq!(
        redirect_params(&kit.authorize(&bad_type, Some(&alice), ALLOW).await)["error"],
        "unsupported_response_type"
    );
    let missing = format!("client_id={}&state=s1", spa.id());
    assert_eq!(
        redirect_params(&kit.authorize(&missing, Some(&alice), ALLOW).await)["error"],
        "invalid_request"
    );
}

#[tokio::test]
async fn implicit_is_off_unless_the_client_is_allowed_it() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let alice = kit.alice();
    let query = format!("response_type=token&client_id={}&state=i1", spa.id());
    let AuthorizeOutcome::Redirect(resp) = kit.authorize(&query, Some(&alice), ALLOW).await else {
        panic!("expected a redirect");
    };
    let location = resp.header("location").expect("location");
    assert!(
        location.contains("#error=unauthorized_client"),
        "{location}"
    );

    let legacy = kit
        .register(
            NewClient::public("legacy spa")
                .redirect_uris([REDIRECT_URI])
                .grant_types([GrantType::Implicit])
                .scopes(scopes("read")),
        )
        .await;
    let query = format!("response_type=token&client_id={}&state=i2", legacy.id());
    let AuthorizeOutcome::Redirect(resp) = kit.authorize(&query, Some(&alice), ALLOW).await else {
        panic!("expected a redirect");
    };
    let location = resp.header("location").expect("location");
    assert!(
        location.starts_with(&format!("{REDIRECT_URI}#access_token=")),
        "{location}"
    );
    let params = redirect_params(&AuthorizeOutcome::Redirect(resp.clone()));
    assert_eq!(params["token_type"], "Bearer");
    assert_eq!(params["state"], "i2");
    assert!(
        !params.contains_key("refresh_token"),
        "RFC 6749 §4.2.2: no refresh token"
    );
    let q = format!(
        "response_type=token&response_mode=query&client_id={}",
        legacy.id()
    );
    assert_eq!(
        redirect_params(&kit.authorize(&q, Some(&alice), ALLOW).await)["error"],
        "invalid_request"
    );
}

#[tokio::test]
async fn native_apps_may_use_any_loopback_port() {
    let kit = TestKit::new();
    let native = kit
        .register(
            NewClient::public("cli tool")
                .redirect_uris(["http://127.0.0.1/callback"])
                .grant_types([GrantType::AuthorizationCode]),
        )
        .await;
    let redirect = "http://127.0.0.1:49152/callback";
    let query = code_query(
        native.id(),
        &format!("&redirect_uri={}", form_encode(redirect)),
    );
    let AuthorizeOutcome::Redirect(resp) = kit.authorize(&query, Some(&kit.alice()), ALLOW).await
    else {
        panic!("expected a redirect");
    };
    assert!(
        resp.header("location")
            .is_some_and(|l| l.starts_with(redirect))
    );
    let code = redirect_params(&AuthorizeOutcome::Redirect(resp))["code"].clone();
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&client_id={}&code_verifier={VERIFIER}",
        form_encode(redirect),
        native.id()
    );
    kit.token_post(&body).await.expect_ok();
}

#[tokio::test]
async fn concurrent_redemptions_of_one_code_have_one_winner() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let code = kit.code_for(&spa, "").await;
    let body = exchange_body(&code, spa.id(), VERIFIER);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let provider = kit.provider.clone();
        let req = latchkey_core::http::HttpRequest::post_form("/token", body.clone());
        tasks.push(tokio::spawn(
            async move { provider.token(&req).await.status },
        ));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.expect("task") == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 1);
}

/// `GET /authorize?{query}` for `auth`.
async fn authorize_as(
    kit: &TestKit,
    query: &str,
    auth: Option<Authentication<'_>>,
) -> AuthorizeOutcome {
    let mut req =
        latchkey_core::http::HttpRequest::new(latchkey_core::http::Method::Get, "/authorize");
    req.query = query.to_owned();
    kit.provider.authorize_with(&req, auth, None).await
}

#[tokio::test]
async fn issue_14_prompt_login_needs_a_login_made_for_the_request() {
    let kit = TestKit::new();
    let web = kit.web_client().await;
    let alice = kit.alice();
    let query = code_query(web.id(), "&prompt=login");
    // A live session, even one that just logged in, is not enough.
    assert!(matches!(
        kit.authorize(&query, Some(&alice), None).await,
        AuthorizeOutcome::Login(_)
    ));
    let session = Authentication {
        user: &alice,
        auth_time: Some(kit.now()),
        fresh: false,
    };
    assert!(matches!(
        authorize_as(&kit, &query, Some(session)).await,
        AuthorizeOutcome::Login(_)
    ));
    // Only a login completed for this request counts.
    let fresh = Authentication {
        fresh: true,
        ..session
    };
    assert!(matches!(
        authorize_as(&kit, &query, Some(fresh)).await,
        AuthorizeOutcome::Consent(_)
    ));
    // Without prompt=login, the session is enough.
    assert!(matches!(
        authorize_as(&kit, &code_query(web.id(), ""), Some(session)).await,
        AuthorizeOutcome::Consent(_)
    ));
}

#[tokio::test]
async fn issue_14_max_age_needs_a_login_that_recent() {
    let kit = TestKit::new();
    let web = kit.web_client().await;
    let alice = kit.alice();
    let at = |ago: u64| Authentication {
        user: &alice,
        auth_time: Some(latchkey_core::clock::UnixTime(kit.now().0 - ago as i64)),
        fresh: false,
    };
    let max_300 = code_query(web.id(), "&max_age=300");
    assert!(matches!(
        authorize_as(&kit, &max_300, Some(at(100))).await,
        AuthorizeOutcome::Consent(_)
    ));
    assert!(matches!(
        authorize_as(&kit, &max_300, Some(at(301))).await,
        AuthorizeOutcome::Login(_)
    ));
    // A login of unknown age satisfies no max_age.
    assert!(matches!(
        kit.authorize(&max_300, Some(&alice), None).await,
        AuthorizeOutcome::Login(_)
    ));
    // prompt=none cannot log in again: login_required.
    let silent = code_query(web.id(), "&max_age=60&prompt=none");
    assert_eq!(
        redirect_params(&authorize_as(&kit, &silent, Some(at(61))).await)["error"],
        "login_required"
    );
    let bad = code_query(web.id(), "&max_age=soon");
    assert_eq!(
        redirect_params(&authorize_as(&kit, &bad, Some(at(1))).await)["error"],
        "invalid_request"
    );
}

#[tokio::test]
async fn issue_14_remembered_consent_never_approves_a_public_client() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let alice = kit.alice();
    let query = code_query(spa.id(), "&scope=read");
    let remember = Some(Decision::Allow { remember: true });
    assert!(
        redirect_params(&kit.authorize(&query, Some(&alice), remember).await).contains_key("code")
    );
    // RFC 6749 §10.2: every request of a public client is approved by the user again.
    assert!(matches!(
        kit.authorize(&query, Some(&alice), None).await,
        AuthorizeOutcome::Consent(_)
    ));
    assert_eq!(
        redirect_params(
            &kit.authorize(
                &code_query(spa.id(), "&scope=read&prompt=none"),
                Some(&alice),
                None
            )
            .await
        )["error"],
        "consent_required"
    );
    // A confidential client's remembered consent still counts.
    let web = kit.web_client().await;
    let web_query = code_query(web.id(), "&scope=read");
    kit.authorize(&web_query, Some(&alice), remember).await;
    assert!(matches!(
        kit.authorize(&web_query, Some(&alice), None).await,
        AuthorizeOutcome::Redirect(_)
    ));
}

/// The request of a login or consent outcome, as its pending text.
fn pending_of(outcome: AuthorizeOutcome) -> String {
    match outcome {
        AuthorizeOutcome::Login(request) | AuthorizeOutcome::Consent(request) => request.pending(),
        other => panic!("expected an interaction, got {other:?}"),
    }
}

/// The consent form's post, from the browser, carrying nothing the core reads.
fn consent_post() -> latchkey_core::http::HttpRequest {
    latchkey_core::http::HttpRequest::post_form("/consent", "")
}

#[tokio::test]
async fn a_pending_request_resumes_to_the_code_without_parsing_the_query_again() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let alice = kit.alice();
    let query = code_query(
        spa.id(),
        &format!(
            "&scope=read&nonce=n-1&max_age=600&redirect_uri={}",
            form_encode(REDIRECT_URI)
        ),
    );
    let text = pending_of(kit.authorize(&query, None, None).await);
    let pending = Pending::decode(&text).expect("decodes");
    assert_eq!(pending.client_id(), spa.id());

    // After login: the consent page for the same request.
    let auth = Authentication {
        user: &alice,
        auth_time: Some(kit.now()),
        fresh: true,
    };
    let outcome = kit
        .provider
        .resume_authorize(&consent_post(), pending.clone(), Some(auth), None)
        .await;
    let AuthorizeOutcome::Consent(request) = outcome else {
        panic!("expected consent, got {outcome:?}");
    };
    assert_eq!(request.scope().to_string(), "read");
    assert_eq!(request.nonce(), Some("n-1"));
    assert_eq!(request.max_age(), Some(600));
    assert_eq!(request.state(), Some("s1"));
    assert!(request.redirect_uri().was_sent());
    assert_eq!(request.pending(), text, "the text form is stable");

    // The decision: a 303 to the client with a code that the verifier redeems.
    let AuthorizeOutcome::Redirect(resp) = kit
        .provider
        .resume_authorize(&consent_post(), pending, Some(auth), ALLOW)
        .await
    else {
        panic!("expected a redirect");
    };
    assert_eq!(resp.status, 303, "a form post is answered with See Other");
    let params = latchkey_testkit::location_params(&resp);
    assert_eq!(params["state"], "s1");
    kit.token_post(&exchange_body(&params["code"], spa.id(), VERIFIER))
        .await
        .expect_ok();
}

#[tokio::test]
async fn a_pending_request_of_a_deleted_client_gets_an_error_page() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let alice = kit.alice();
    let text = pending_of(kit.authorize(&code_query(spa.id(), ""), None, None).await);
    latchkey_core::store::ClientStore::delete_client(&kit.store, spa.id())
        .await
        .expect("deleted");
    let outcome = kit
        .provider
        .resume_authorize(
            &consent_post(),
            Pending::decode(&text).expect("decodes"),
            Some(Authentication::of(&alice)),
            ALLOW,
        )
        .await;
    assert!(
        matches!(outcome, AuthorizeOutcome::ErrorPage(_)),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn malformed_pending_text_is_refused() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let text = pending_of(kit.authorize(&code_query(spa.id(), ""), None, None).await);
    for bad in [
        String::new(),
        text.replacen("v=2", "v=1", 1),
        text.replacen("t=code", "t=code+code", 1),
        format!("{text}&c=another"),
        text.replacen("cm=S256", "cm=S512", 1),
    ] {
        assert!(Pending::decode(&bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn the_authorization_request_may_be_posted_as_a_form() {
    let kit = TestKit::new();
    let spa = kit.spa_client().await;
    let alice = kit.alice();
    let query = code_query(spa.id(), "&scope=read");
    let post = latchkey_core::http::HttpRequest::post_form("/authorize", query.clone());
    // OpenID Connect Core §3.1.2.1: the same validation and the same result as a GET.
    let by_get = pending_of(kit.authorize(&query, Some(&alice), None).await);
    let by_post = pending_of(kit.provider.authorize(&post, Some(&alice), None).await);
    assert_eq!(by_post, by_get);
    let AuthorizeOutcome::Redirect(resp) = kit.provider.authorize(&post, Some(&alice), ALLOW).await
    else {
        panic!("expected a redirect");
    };
    assert_eq!(resp.status, 303);
    assert!(latchkey_testkit::location_params(&resp).contains_key("code"));
    // Errors too: an unregistered redirect URI is a page for the user, by either method.
    let evil = code_query(spa.id(), "&redirect_uri=https%3A%2F%2Fevil.example%2Fcb");
    let evil_post = latchkey_core::http::HttpRequest::post_form("/authorize", evil);
    assert!(matches!(
        kit.provider
            .authorize(&evil_post, Some(&alice), ALLOW)
            .await,
        AuthorizeOutcome::ErrorPage(_)
    ));
}

/// A pending request is checked again against the client as it is when the user decides: a
/// redirect URI, grant or scope withdrawn meanwhile gets a page, never a redirect.
#[tokio::test]
async fn a_pending_request_is_refused_when_the_client_changed_meanwhile() {
    use latchkey_core::client::GrantType;
    use latchkey_core::scope::ScopeSet;
    use latchkey_core::store::ClientStore;
    type Change = fn(&mut latchkey_core::client::Client);
    let changes: [(&str, Change); 3] = [
        ("redirect URI removed", |c| {
            c.redirect_uris = vec!["https://elsewhere.example/cb".into()]
        }),
        ("grant withdrawn", |c| {
            c.grant_types = [GrantType::RefreshToken].into_iter().collect()
        }),
        ("scope withdrawn", |c| {
            c.scopes = Some(ScopeSet::parse("write").expect("scope"))
        }),
    ];
    for (what, change) in changes {
        let kit = TestKit::new();
        let spa = kit.spa_client().await;
        let alice = kit.alice();
        let text = pending_of(
            kit.authorize(&code_query(spa.id(), "&scope=read"), None, None)
                .await,
        );
        let mut client = kit
            .store
            .get_client(spa.id())
            .await
            .expect("store")
            .expect("client");
        change(&mut client);
        kit.store.put_client(&client).await.expect("updated");
        let outcome = kit
            .provider
            .resume_authorize(
                &consent_post(),
                Pending::decode(&text).expect("decodes"),
                Some(Authentication::of(&alice)),
                ALLOW,
            )
            .await;
        assert!(
            matches!(outcome, AuthorizeOutcome::ErrorPage(_)),
            "{what}: {outcome:?}"
        );
    }
}
