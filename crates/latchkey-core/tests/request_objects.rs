//! Signed request objects (JAR, RFC 9101) on the memory store: a client signs its
//! authorization parameters with a key of its registered JWK Set and sends them as `request`
//! at `/authorize` or at the PAR endpoint; every refusal is `invalid_request_object`.

use latchkey_core::client::{ClientMetadata, GrantType, NewClient};
use latchkey_core::endpoint::authorize::{AuthorizeOutcome, Decision};
use latchkey_core::http::HttpRequest;
use latchkey_core::jose::{JwsSigner as _, KeySet, SigningAlg};
use latchkey_core::pkce::s256_challenge;
use latchkey_testkit::{
    REDIRECT_URI, ResponseExt, TestClient, TestKit, VERIFIER, form_encode, redirect_params,
};
use serde_json::{Value, json};

const ISSUER: &str = "https://auth.example.test";
const ALLOW: Option<Decision> = Some(Decision::Allow { remember: false });

struct World {
    kit: TestKit,
    keys: KeySet,
    client: TestClient,
}

/// The kit and one confidential client whose inline JWK Set holds ES256, RS256 and EdDSA
/// keys; `adjust` changes its metadata.
async fn world_with(
    config: impl FnOnce(&mut latchkey_core::config::Config),
    adjust: impl FnOnce(&mut ClientMetadata),
) -> World {
    let kit = TestKit::with_config(config);
    let keys = KeySet::generate(
        &[SigningAlg::Es256, SigningAlg::Rs256, SigningAlg::EdDsa],
        kit.clock.clone(),
    )
    .expect("keys");
    let mut metadata = ClientMetadata::default();
    metadata.jwks = Some(keys.jwks());
    adjust(&mut metadata);
    let client = kit
        .register(
            NewClient::confidential("Signed requests")
                .redirect_uris([REDIRECT_URI])
                .grant_types([GrantType::AuthorizationCode])
                .metadata(metadata),
        )
        .await;
    client.client.validate().expect("valid registration");
    World { kit, keys, client }
}

async fn world() -> World {
    world_with(|_| {}, |_| {}).await
}

impl World {
    fn id(&self) -> &str {
        self.client.id()
    }

    /// Claims of a well-formed object asking for a code with `state=inside`.
    fn claims(&self) -> Value {
        let now = self.kit.now().0;
        json!({
            "iss": self.id(),
            "aud": ISSUER,
            "exp": now + 300,
            "iat": now,
            "nbf": now,
            "client_id": self.id(),
            "response_type": "code",
            "redirect_uri": REDIRECT_URI,
            "scope": "read",
            "state": "inside",
            "code_challenge": s256_challenge(VERIFIER),
            "code_challenge_method": "S256",
        })
    }

    fn sign(&self, claims: &Value) -> String {
        self.keys
            .sign(Some(SigningAlg::Es256), "oauth-authz-req+jwt", claims)
            .expect("sign")
    }

    fn query(&self, object: &str, outside: &str) -> String {
        format!(
            "client_id={}&request={}{outside}",
            form_encode(self.id()),
            form_encode(object)
        )
    }

    async fn authorize(&self, query: &str) -> AuthorizeOutcome {
        self.kit
            .authorize(query, Some(&self.kit.alice()), ALLOW)
            .await
    }

    /// The error code of the page `/authorize` shows for `object`.
    async fn refusal(&self, object: &str) -> String {
        page_error(&self.authorize(&self.query(object, "")).await)
    }
}

fn page_error(outcome: &AuthorizeOutcome) -> String {
    match outcome {
        AuthorizeOutcome::ErrorPage(err) => err.code().as_str().to_owned(),
        other => panic!("expected an error page, got {other:?}"),
    }
}

/// A compact JWS with `header` and `claims` and a junk signature.
fn forged(header: &Value, claims: &Value, signature: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", b64(header), b64(claims))
}

#[tokio::test]
async fn a_signed_object_alone_carries_the_request_and_outside_parameters_do_not_count() {
    let w = world().await;
    // RFC 9101 §6.3: outside state and scope are ignored for a plain OAuth request.
    let query = w.query(&w.sign(&w.claims()), "&state=outside&scope=write");
    let params = redirect_params(&w.authorize(&query).await);
    assert_eq!(params["state"], "inside");
    let code = &params["code"];
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
        form_encode(REDIRECT_URI)
    );
    let tokens = w.kit.token(&w.client, &body).await.expect_ok();
    assert_eq!(tokens["scope"], "read");
}

#[tokio::test]
async fn every_key_type_of_the_registered_set_verifies() {
    let w = world().await;
    for alg in [SigningAlg::Es256, SigningAlg::Rs256, SigningAlg::EdDsa] {
        let object = w.keys.sign(Some(alg), "JWT", &w.claims()).expect("sign");
        let params = redirect_params(&w.authorize(&w.query(&object, "")).await);
        assert!(params.contains_key("code"), "{alg}: {params:?}");
    }
}

#[tokio::test]
async fn each_broken_object_is_refused_with_invalid_request_object() {
    let w = world().await;
    let now = w.kit.now().0;
    let with = |name: &str, value: Value| {
        let mut claims = w.claims();
        claims[name] = value;
        claims
    };
    let without = |name: &str| {
        let mut claims = w.claims();
        claims.as_object_mut().expect("object").remove(name);
        claims
    };
    let other_keys = KeySet::generate(&[SigningAlg::Es256], w.kit.clock.clone()).expect("keys");
    let cases: Vec<(&str, String)> = vec![
        (
            "unsigned (alg none)",
            forged(&json!({"alg": "none"}), &w.claims(), ""),
        ),
        (
            "HMAC",
            forged(&json!({"alg": "HS256"}), &w.claims(), "c2ln"),
        ),
        (
            "a key the client did not register",
            other_keys
                .sign(Some(SigningAlg::Es256), "JWT", &w.claims())
                .expect("sign"),
        ),
        ("iss another client", w.sign(&with("iss", json!("other")))),
        ("no iss", w.sign(&without("iss"))),
        (
            "aud another server",
            w.sign(&with("aud", json!("https://evil.example"))),
        ),
        ("no aud", w.sign(&without("aud"))),
        ("no exp", w.sign(&without("exp"))),
        ("expired", w.sign(&with("exp", json!(now - 1)))),
        ("exp too far ahead", w.sign(&with("exp", json!(now + 7200)))),
        ("nbf in the future", w.sign(&with("nbf", json!(now + 600)))),
        ("iat in the future", w.sign(&with("iat", json!(now + 600)))),
        (
            "client_id another client",
            w.sign(&with("client_id", json!("other"))),
        ),
        (
            "request_uri inside",
            w.sign(&with("request_uri", json!("https://rp.example/r"))),
        ),
        ("an array for state", w.sign(&with("state", json!(["a"])))),
        ("not a JWS", "abc.def".to_owned()),
        ("a JWE", "a.b.c.d.e".to_owned()),
    ];
    for (what, object) in cases {
        assert_eq!(w.refusal(&object).await, "invalid_request_object", "{what}");
    }
    // A tampered payload fails the signature.
    let good = w.sign(&w.claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let tampered_claims = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(with("scope", json!("admin")).to_string())
    };
    parts[1] = &tampered_claims;
    assert_eq!(w.refusal(&parts.join(".")).await, "invalid_request_object");
}

#[tokio::test]
async fn the_registered_request_object_signing_alg_is_the_only_one_accepted() {
    let w = world_with(
        |_| {},
        |m| m.request_object_signing_alg = Some("RS256".into()),
    )
    .await;
    assert_eq!(
        w.refusal(&w.sign(&w.claims())).await,
        "invalid_request_object"
    );
    let object = w
        .keys
        .sign(Some(SigningAlg::Rs256), "JWT", &w.claims())
        .expect("sign");
    assert!(redirect_params(&w.authorize(&w.query(&object, "")).await).contains_key("code"));
}

#[tokio::test]
async fn the_server_alg_allow_list_applies() {
    let w = world_with(|c| c.request_objects.algs = vec!["ES256".into()], |_| {}).await;
    let object = w
        .keys
        .sign(Some(SigningAlg::EdDsa), "JWT", &w.claims())
        .expect("sign");
    assert_eq!(w.refusal(&object).await, "invalid_request_object");
}

#[tokio::test]
async fn request_with_request_uri_or_a_wrong_outside_client_id_is_refused() {
    let w = world().await;
    let object = w.sign(&w.claims());
    let both = w.query(&object, "&request_uri=urn%3Aexample");
    assert_eq!(page_error(&w.authorize(&both).await), "invalid_request");
    let no_client = format!("request={}", form_encode(&object));
    assert_eq!(
        page_error(&w.authorize(&no_client).await),
        "invalid_request"
    );
    // Another registered client may not pass this client's object as its own.
    let other = w.kit.web_client().await;
    let query = format!(
        "client_id={}&request={}",
        form_encode(other.id()),
        form_encode(&object)
    );
    assert_eq!(
        page_error(&w.authorize(&query).await),
        "invalid_request_object"
    );
}

#[tokio::test]
async fn a_client_that_must_sign_gets_nothing_without_an_object() {
    let w = world_with(|_| {}, |m| m.require_signed_request_object = true).await;
    let plain = format!(
        "response_type=code&client_id={}&state=s&code_challenge={}&code_challenge_method=S256",
        form_encode(w.id()),
        s256_challenge(VERIFIER)
    );
    let params = redirect_params(&w.authorize(&plain).await);
    assert_eq!(params["error"], "invalid_request");
    assert!(params["error_description"].contains("signed request object"));
    let query = w.query(&w.sign(&w.claims()), "");
    assert!(redirect_params(&w.authorize(&query).await).contains_key("code"));
}

#[tokio::test]
async fn the_server_switch_requires_or_refuses_objects() {
    let w = world_with(|c| c.request_objects.required = true, |_| {}).await;
    let plain = format!(
        "response_type=code&client_id={}&code_challenge={}&code_challenge_method=S256",
        form_encode(w.id()),
        s256_challenge(VERIFIER)
    );
    assert_eq!(
        redirect_params(&w.authorize(&plain).await)["error"],
        "invalid_request"
    );
    let off = world_with(|c| c.request_objects.enabled = false, |_| {}).await;
    let query = off.query(&off.sign(&off.claims()), "");
    assert_eq!(
        page_error(&off.authorize(&query).await),
        "request_not_supported"
    );
    let doc = off.kit.provider.metadata().json_body();
    assert_eq!(doc["request_parameter_supported"], false);
}

#[tokio::test]
async fn openid_requests_merge_outside_parameters_under_the_object() {
    let w = world_with(|_| {}, |_| {}).await;
    let mut claims = w.claims();
    claims["scope"] = json!("openid read");
    claims.as_object_mut().expect("object").remove("state");
    let object = w.sign(&claims);
    // OpenID Connect Core §6.1: outside state counts where the object has none; the
    // object's scope supersedes the outside one.
    let query = w.query(
        &object,
        "&response_type=code&scope=openid&state=outside&nonce=n1",
    );
    let outcome = w.kit.authorize(&query, Some(&w.kit.alice()), None).await;
    let AuthorizeOutcome::Consent(request) = outcome else {
        panic!("expected consent, got {outcome:?}");
    };
    assert_eq!(request.state(), Some("outside"));
    assert_eq!(request.nonce(), Some("n1"));
    assert_eq!(request.scope().to_string(), "openid read");
    // "The values for these parameters MUST match those in the Request Object".
    let mismatch = w.query(&object, "&response_type=id_token&scope=openid");
    assert_eq!(
        page_error(&w.authorize(&mismatch).await),
        "invalid_request_object"
    );
}

async fn push(w: &World, body: String) -> latchkey_core::http::HttpResponse {
    let req = HttpRequest::post_form("/par", body).with_header("authorization", w.client.basic());
    w.kit.provider.pushed_authorization(&req).await
}

#[tokio::test]
async fn a_pushed_request_object_is_verified_and_stands_for_the_request() {
    let w = world().await;
    let object = w.sign(&w.claims());
    let resp = push(
        &w,
        format!("request={}&state=ignored", form_encode(&object)),
    )
    .await;
    assert_eq!(resp.status, 201, "{:?}", resp.json_body());
    let uri = resp.json_body()["request_uri"]
        .as_str()
        .expect("request_uri")
        .to_owned();
    let query = format!(
        "client_id={}&request_uri={}",
        form_encode(w.id()),
        form_encode(&uri)
    );
    let params = redirect_params(&w.authorize(&query).await);
    assert_eq!(params["state"], "inside");
    assert!(params.contains_key("code"));
    // A broken object is refused at the endpoint, as JSON.
    let mut claims = w.claims();
    claims["aud"] = json!("https://evil.example");
    let resp = push(&w, format!("request={}", form_encode(&w.sign(&claims)))).await;
    assert_eq!(resp.status, 400);
    assert_eq!(resp.json_body()["error"], "invalid_request_object");
}

#[tokio::test]
async fn discovery_and_registration_know_the_jar_members() {
    let w = world().await;
    let doc = w.kit.provider.metadata().json_body();
    assert_eq!(doc["request_parameter_supported"], true);
    assert_eq!(doc["require_signed_request_object"], false);
    let algs = doc["request_object_signing_alg_values_supported"]
        .as_array()
        .expect("algs");
    assert!(algs.iter().any(|a| a == "ES256"));
    assert!(!algs.iter().any(|a| a == "none" || a == "HS256"));
    let mut bad = ClientMetadata::default();
    bad.request_object_signing_alg = Some("none".into());
    assert!(bad.validate().is_err());
    let mut keyless = ClientMetadata::default();
    keyless.require_signed_request_object = true;
    assert!(keyless.validate().is_err());
}
