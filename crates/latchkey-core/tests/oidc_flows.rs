//! OpenID Connect on the memory store: ID tokens from the code and refresh grants (verified
//! with the published JWKS, every claim checked), pairwise subjects, and the UserInfo
//! endpoint, with a fixed clock.

use base64::Engine as _;
use latchkey_core::claims::UserClaims;
use latchkey_core::client::{GrantType, NewClient};
use latchkey_core::endpoint::authorize::{Authentication, AuthorizeOutcome, Decision};
use latchkey_core::http::{HttpRequest, HttpResponse, Method};
use latchkey_core::store::UserStore;
use latchkey_core::user::AuthenticatedUser;
use latchkey_testkit::{
    REDIRECT_URI, ResponseExt, TestClient, TestKit, VERIFIER, form_encode, redirect_params,
};
use serde_json::Value;
use sha2::Digest as _;

/// The login every test uses: alice, who typed her password 100 s ago in session `sid-1`.
const AUTH_AGO: i64 = 100;

/// Runs `/authorize` for `client` with `extra` parameters as alice (logged in `AUTH_AGO`
/// seconds ago, session `sid-1`), approving; returns the code.
async fn code(kit: &TestKit, client: &TestClient, extra: &str) -> String {
    let query = format!(
        "response_type=code&client_id={}&redirect_uri={}&state=s&code_challenge={}&code_challenge_method=S256{extra}",
        form_encode(client.id()),
        form_encode(REDIRECT_URI),
        latchkey_core::pkce::s256_challenge(VERIFIER),
    );
    let mut req = HttpRequest::new(Method::Get, "/authorize");
    req.query = query;
    let alice = AuthenticatedUser::new("user-alice", "alice");
    let auth = Authentication {
        auth_time: Some(latchkey_core::clock::UnixTime(kit.now().0 - AUTH_AGO)),
        sid: Some("sid-1".into()),
        amr: &["pwd"],
        ..Authentication::of(&alice)
    };
    let outcome = kit
        .provider
        .authorize_with(&req, Some(auth), Some(Decision::Allow { remember: false }))
        .await;
    assert!(
        matches!(outcome, AuthorizeOutcome::Redirect(_)),
        "{outcome:?}"
    );
    redirect_params(&outcome)
        .get("code")
        .cloned()
        .expect("a code")
}

/// Exchanges `code` at the token endpoint.
async fn exchange(kit: &TestKit, client: &TestClient, code: &str) -> Value {
    kit.token(
        client,
        &format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
            form_encode(REDIRECT_URI)
        ),
    )
    .await
    .expect_ok()
}

/// Verifies `jwt` with the provider's published JWKS alone (as a relying party would) and
/// returns its claims.
fn verify_with_jwks(kit: &TestKit, jwt: &str, audience: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(kit.provider.signer().jwks()).expect("a JWK Set");
    let header = jsonwebtoken::decode_header(jwt).expect("header");
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let kid = header.kid.expect("kid");
    let jwk = jwks.find(&kid).expect("the kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&[audience]);
    validation.set_issuer(&["https://auth.example.test"]);
    // The kit's clock is fixed in the past; time is checked against it below.
    validation.validate_exp = false;
    // A signed userinfo response has no `exp`; ID-token tests check it themselves.
    validation.required_spec_claims.clear();
    jsonwebtoken::decode::<Value>(jwt, &key, &validation)
        .expect("the ID token verifies")
        .claims
}

fn at_hash(access_token: &str) -> String {
    let digest = sha2::Sha256::digest(access_token.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16])
}

async fn kit_with_alice() -> TestKit {
    let kit = TestKit::new();
    let mut alice = kit.user("alice", "correct horse").await;
    alice.claims = UserClaims::from_json(
        r#"{"name":"Alice","email":"alice@example.test","email_verified":true}"#,
    )
    .expect("claims");
    kit.store.put_user(&alice).await.expect("put");
    kit
}

#[tokio::test]
async fn code_flow_with_openid_returns_an_id_token_verified_by_the_jwks() {
    let kit = kit_with_alice().await;
    let web = kit.web_client().await;
    let code = code(&kit, &web, "&scope=openid%20email&nonce=n-0S6_WzA2Mj").await;
    let tokens = exchange(&kit, &web, &code).await;
    let access = tokens["access_token"].as_str().expect("access token");
    let claims = verify_with_jwks(
        &kit,
        tokens["id_token"].as_str().expect("id_token"),
        web.id(),
    );
    let now = kit.now().0;
    assert_eq!(claims["iss"], "https://auth.example.test");
    assert_eq!(claims["sub"], "user-alice");
    assert_eq!(claims["aud"], web.id());
    assert_eq!(claims["iat"], now);
    assert_eq!(claims["exp"], now + 3600);
    assert_eq!(claims["auth_time"], now - AUTH_AGO);
    assert_eq!(claims["nonce"], "n-0S6_WzA2Mj");
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["sid"], "sid-1");
    assert_eq!(claims["at_hash"], at_hash(access));
    // OpenID Connect Core §5.4: with an access token, scope claims go to userinfo only.
    assert!(claims.get("email").is_none(), "{claims}");
    assert!(claims.get("c_hash").is_none() && claims.get("azp").is_none());
}

#[tokio::test]
async fn no_openid_no_id_token() {
    let kit = kit_with_alice().await;
    let web = kit.web_client().await;
    let code = code(&kit, &web, "&scope=read").await;
    let tokens = exchange(&kit, &web, &code).await;
    assert!(tokens.get("id_token").is_none(), "{tokens}");
}

#[tokio::test]
async fn the_claims_parameter_puts_claims_in_the_id_token() {
    let kit = kit_with_alice().await;
    let web = kit.web_client().await;
    // What the authorization endpoint stores for a `claims` parameter (typed by the claims
    // module): the code's context carries it to the token endpoint.
    let code_value = code(&kit, &web, "&scope=openid").await;
    let digest = latchkey_core::secret::Secret::new(code_value.as_str()).digest();
    let store = &kit.store;
    let mut record =
        latchkey_core::store::CodeStore::take_code(store, &digest, &web.client.id, kit.now())
            .await
            .map(|take| match take {
                latchkey_core::store::CodeTake::Taken(record) => record,
                other => panic!("{other:?}"),
            })
            .expect("take");
    let mut auth = record.auth.take().map(|b| *b).unwrap_or_default();
    auth.claims = Some(
        latchkey_core::claims::ClaimsRequest::parse(r#"{"id_token":{"email":{"essential":true}}}"#)
            .expect("claims"),
    );
    record.auth = Some(Box::new(auth));
    let new_code = latchkey_core::secret::Secret::new("fresh-code-value-for-the-claims-test");
    record.digest = new_code.digest();
    latchkey_core::store::CodeStore::save_code(store, &record, kit.now())
        .await
        .expect("save");
    let tokens = exchange(&kit, &web, new_code.expose()).await;
    let claims = verify_with_jwks(&kit, tokens["id_token"].as_str().expect("id"), web.id());
    assert_eq!(claims["email"], "alice@example.test");
    assert!(
        claims.get("name").is_none(),
        "only what was asked: {claims}"
    );
}

#[tokio::test]
async fn refresh_mints_a_new_id_token_with_the_same_sub_and_auth_time_and_no_nonce() {
    let kit = kit_with_alice().await;
    let web = kit.web_client().await;
    let code = code(&kit, &web, "&scope=openid%20read&nonce=abc").await;
    let first = exchange(&kit, &web, &code).await;
    let first_claims = verify_with_jwks(&kit, first["id_token"].as_str().expect("id"), web.id());
    kit.clock.advance(600);
    let refresh = first["refresh_token"].as_str().expect("refresh token");
    let second = kit
        .token(
            &web,
            &format!("grant_type=refresh_token&refresh_token={refresh}"),
        )
        .await
        .expect_ok();
    let claims = verify_with_jwks(&kit, second["id_token"].as_str().expect("id"), web.id());
    assert_eq!(claims["sub"], first_claims["sub"]);
    assert_eq!(claims["auth_time"], first_claims["auth_time"]);
    assert_eq!(claims["iat"], kit.now().0);
    assert!(claims.get("nonce").is_none(), "{claims}");
    assert_eq!(
        claims["at_hash"],
        at_hash(second["access_token"].as_str().expect("at"))
    );
    // Narrowed to a scope without openid: no ID token.
    let refresh = second["refresh_token"].as_str().expect("refresh token");
    let third = kit
        .token(
            &web,
            &format!("grant_type=refresh_token&refresh_token={refresh}&scope=read"),
        )
        .await
        .expect_ok();
    assert!(third.get("id_token").is_none(), "{third}");
}

async fn pairwise_client(kit: &TestKit, uris: &[&str], sector: Option<&str>) -> TestClient {
    let mut metadata = latchkey_core::client::ClientMetadata::default();
    metadata.subject_type = Some("pairwise".into());
    metadata.sector_identifier_uri = sector.map(str::to_owned);
    let new = NewClient::confidential("Pairwise RP")
        .redirect_uris(uris.iter().copied().chain([REDIRECT_URI]))
        .grant_types([GrantType::AuthorizationCode, GrantType::RefreshToken])
        .metadata(metadata);
    let client = kit.register(new).await;
    client
        .client
        .validate()
        .expect("a valid pairwise registration");
    client
}

async fn id_token_sub(kit: &TestKit, client: &TestClient) -> (String, Value) {
    let code = code(kit, client, "&scope=openid").await;
    let tokens = exchange(kit, client, &code).await;
    let claims = verify_with_jwks(kit, tokens["id_token"].as_str().expect("id"), client.id());
    (claims["sub"].as_str().expect("sub").to_owned(), tokens)
}

#[tokio::test]
async fn pairwise_subjects_differ_per_sector_and_are_stable() {
    let kit = kit_with_alice().await;
    let a = pairwise_client(&kit, &[], Some("https://sector-a.example/ids.json")).await;
    let a2 = pairwise_client(&kit, &[], Some("https://sector-a.example/other.json")).await;
    let b = pairwise_client(&kit, &[], Some("https://sector-b.example/ids.json")).await;
    let (sub_a, tokens_a) = id_token_sub(&kit, &a).await;
    let (again, _) = id_token_sub(&kit, &a).await;
    let (sub_a2, _) = id_token_sub(&kit, &a2).await;
    let (sub_b, _) = id_token_sub(&kit, &b).await;
    assert_eq!(sub_a, again, "stable");
    assert_eq!(sub_a, sub_a2, "one sector, one subject");
    assert_ne!(sub_a, sub_b, "sectors cannot correlate");
    assert_ne!(sub_a, "user-alice");
    // The same pairwise sub at userinfo; introspection keeps the local subject.
    let access = tokens_a["access_token"].as_str().expect("at");
    let info = userinfo(&kit, Method::Get, "", Some(access), "")
        .await
        .expect_ok();
    assert_eq!(info["sub"], sub_a);
    let rs = kit.resource_server().await;
    let introspected = kit
        .provider
        .introspect(
            &HttpRequest::post_form("/introspect", format!("token={access}"))
                .with_header("authorization", rs.basic()),
        )
        .await
        .expect_ok();
    assert_eq!(introspected["sub"], "user-alice");
}

#[tokio::test]
async fn a_pairwise_client_on_several_hosts_needs_a_sector() {
    let kit = TestKit::new();
    let mut metadata = latchkey_core::client::ClientMetadata::default();
    metadata.subject_type = Some("pairwise".into());
    let (client, _) = NewClient::confidential("Two hosts")
        .redirect_uris(["https://a.example/cb", "https://b.example/cb"])
        .metadata(metadata)
        .build(kit.provider.entropy(), kit.now());
    let err = client.validate().expect_err("refused");
    assert!(err.to_string().contains("sector_identifier_uri"), "{err}");
}

/// Calls the UserInfo endpoint with `method`, `query`, the bearer `header` token and the
/// form `body`.
async fn userinfo(
    kit: &TestKit,
    method: Method,
    query: &str,
    header: Option<&str>,
    body: &str,
) -> HttpResponse {
    let mut req = HttpRequest::new(method, "/userinfo");
    req.query = query.to_owned();
    if let Some(token) = header {
        req = req.with_header("authorization", format!("Bearer {token}"));
    }
    if !body.is_empty() {
        req = req
            .with_header("content-type", "application/x-www-form-urlencoded")
            .with_body(body.as_bytes().to_vec());
    }
    kit.provider.userinfo(&req).await
}

#[tokio::test]
async fn userinfo_answers_by_header_or_body_with_the_scopes_claims() {
    let kit = kit_with_alice().await;
    let web = kit.web_client().await;
    let code = code(&kit, &web, "&scope=openid%20email").await;
    let tokens = exchange(&kit, &web, &code).await;
    let access = tokens["access_token"].as_str().expect("at");
    let by_header = userinfo(&kit, Method::Get, "", Some(access), "").await;
    assert_eq!(by_header.header("cache-control"), Some("no-store"));
    assert_eq!(by_header.header("content-type"), Some("application/json"));
    let claims = by_header.expect_ok();
    assert_eq!(
        claims,
        serde_json::json!({
            "sub": "user-alice",
            "email": "alice@example.test",
            "email_verified": true,
        }),
        "email scope only: no name"
    );
    let by_body = userinfo(
        &kit,
        Method::Post,
        "",
        None,
        &format!("access_token={access}"),
    )
    .await
    .expect_ok();
    assert_eq!(by_body, claims);
}

/// A refused userinfo request: (case, method, query, header token, body, status, error in
/// the challenge).
type Case<'a> = (
    &'a str,
    Method,
    String,
    Option<&'a str>,
    String,
    u16,
    Option<&'a str>,
);

#[tokio::test]
async fn userinfo_refusals_follow_rfc6750() {
    let kit = kit_with_alice().await;
    let web = kit.web_client().await;
    let code_openid = code(&kit, &web, "&scope=openid").await;
    let openid = exchange(&kit, &web, &code_openid).await;
    let good = openid["access_token"].as_str().expect("at").to_owned();
    let code_read = code(&kit, &web, "&scope=read").await;
    let read = exchange(&kit, &web, &code_read).await;
    let no_openid = read["access_token"].as_str().expect("at").to_owned();
    let refresh = openid["refresh_token"].as_str().expect("rt").to_owned();

    let cases: Vec<Case<'_>> = vec![
        (
            "no token",
            Method::Get,
            String::new(),
            None,
            String::new(),
            401,
            None,
        ),
        (
            "unknown token",
            Method::Get,
            String::new(),
            Some("nope"),
            String::new(),
            401,
            Some("invalid_token"),
        ),
        (
            "refresh token",
            Method::Get,
            String::new(),
            Some(&refresh),
            String::new(),
            401,
            Some("invalid_token"),
        ),
        (
            "no openid scope",
            Method::Get,
            String::new(),
            Some(&no_openid),
            String::new(),
            403,
            Some("insufficient_scope"),
        ),
        (
            "token in the query",
            Method::Get,
            format!("access_token={good}"),
            None,
            String::new(),
            400,
            Some("invalid_request"),
        ),
        (
            "two methods",
            Method::Post,
            String::new(),
            Some(&good),
            format!("access_token={good}"),
            400,
            Some("invalid_request"),
        ),
    ];
    for (case, method, query, header, body, status, error) in cases {
        let response = userinfo(&kit, method, &query, header, &body).await;
        assert_eq!(response.status, status, "{case}");
        assert_eq!(response.header("cache-control"), Some("no-store"), "{case}");
        let challenge = response.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer "), "{case}: {challenge}");
        match error {
            Some(error) => assert!(
                challenge.contains(&format!("error=\"{error}\"")),
                "{case}: {challenge}"
            ),
            None => assert!(!challenge.contains("error="), "{case}: {challenge}"),
        }
    }
    let scope = userinfo(&kit, Method::Get, "", Some(&no_openid), "").await;
    assert!(
        scope
            .header("www-authenticate")
            .is_some_and(|h| h.contains("scope=\"openid\"")),
        "{:?}",
        scope.headers
    );
    let put = userinfo(&kit, Method::parse("PUT"), "", Some(&good), "").await;
    assert_eq!(put.status, 405);
    // Expired: an hour later the access token is dead.
    assert_eq!(
        userinfo(&kit, Method::Get, "", Some(&good), "")
            .await
            .status,
        200
    );
    kit.clock.advance(3601);
    let expired = userinfo(&kit, Method::Get, "", Some(&good), "").await;
    assert_eq!(expired.status, 401);
}

#[tokio::test]
async fn userinfo_is_a_signed_jwt_for_clients_that_registered_an_alg() {
    let kit = kit_with_alice().await;
    let mut metadata = latchkey_core::client::ClientMetadata::default();
    metadata.userinfo_signed_response_alg = Some("ES256".into());
    let client = kit
        .register(
            NewClient::confidential("Signed userinfo")
                .redirect_uris([REDIRECT_URI])
                .grant_types([GrantType::AuthorizationCode])
                .metadata(metadata),
        )
        .await;
    let code = code(&kit, &client, "&scope=openid%20profile").await;
    let tokens = exchange(&kit, &client, &code).await;
    let response = userinfo(
        &kit,
        Method::Get,
        "",
        Some(tokens["access_token"].as_str().expect("at")),
        "",
    )
    .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/jwt"));
    let jwt = String::from_utf8(response.body).expect("text");
    let claims = verify_with_jwks(&kit, &jwt, client.id());
    assert_eq!(claims["sub"], "user-alice");
    assert_eq!(claims["name"], "Alice");
    assert_eq!(claims["aud"], client.id());
}

#[tokio::test]
async fn discovery_is_served_at_the_issuer_and_at_the_inserted_path() {
    let kit = TestKit::with_config(|c| c.issuer = "https://auth.example.test/tenant".into());
    let p = &kit.provider;
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/openid-configuration/tenant",
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server/tenant",
    ] {
        let doc = p.discovery(path).expect_ok();
        assert_eq!(doc["issuer"], "https://auth.example.test/tenant", "{path}");
        assert_eq!(
            doc["userinfo_endpoint"],
            "https://auth.example.test/tenant/userinfo"
        );
        assert_eq!(doc["jwks_uri"], "https://auth.example.test/tenant/jwks");
        assert_eq!(
            doc["subject_types_supported"],
            serde_json::json!(["public", "pairwise"])
        );
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            serde_json::json!(["ES256"])
        );
        assert_eq!(doc["request_uri_parameter_supported"], false);
        assert!(
            doc["scopes_supported"]
                .as_array()
                .is_some_and(|s| s.contains(&"openid".into()))
        );
    }
    for missing in [
        "/.well-known/openid-configuration/other",
        "/.well-known/openid-configuration/tenant/x",
    ] {
        assert_eq!(p.discovery(missing).status, 404, "{missing}");
    }
    // With OpenID Connect off, only the RFC 8414 document, without OIDC members.
    let plain = TestKit::with_config(|c| c.oidc = false);
    assert_eq!(
        plain
            .provider
            .discovery("/.well-known/openid-configuration")
            .status,
        404
    );
    let doc = plain
        .provider
        .discovery("/.well-known/oauth-authorization-server")
        .expect_ok();
    assert!(doc.get("userinfo_endpoint").is_none());
}
