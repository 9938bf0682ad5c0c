//! Client authentication by JWT (RFC 7523, OpenID Connect Core §9) at the token,
//! introspection and revocation endpoints: `private_key_jwt` with ES256, RS256 and EdDSA keys
//! (inline `jwks` or a `jwks_uri`), `client_secret_jwt` with HS256/384/512, and every refusal
//! as `invalid_client`. On the memory store with a fixed clock.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use latchkey_core::client::{AuthMethod, ClientMetadata, NewClient};
use latchkey_core::client_assertion::{
    ASSERTION_TYPE, AssertionKeys, FetchFuture, JwksFetcher, seal_secret,
};
use latchkey_core::entropy::SeededEntropy;
use latchkey_core::http::{HttpRequest, HttpResponse};
use latchkey_core::jose::{JwsSigner as _, Kek, KeySet, SigningAlg};
use latchkey_core::secret::Secret;
use latchkey_core::store::ClientStore;
use latchkey_testkit::{ResponseExt, TestKit, form_encode};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const TOKEN_ENDPOINT: &str = "https://auth.example.test/token";

/// Serves one JWK Set for every URI and counts the fetches that asked to refresh.
#[derive(Default)]
struct FakeFetcher {
    jwks: Mutex<Value>,
    refreshes: AtomicUsize,
}

impl JwksFetcher for FakeFetcher {
    fn fetch<'a>(&'a self, _uri: &'a str, refresh: bool) -> FetchFuture<'a> {
        if refresh {
            self.refreshes.fetch_add(1, Ordering::SeqCst);
        }
        let jwks = self.jwks.lock().expect("lock").clone();
        Box::pin(async move {
            serde_json::from_value(jwks)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
    }
}

struct World {
    kit: TestKit,
    /// The key pairs of the `private_key_jwt` clients: one per algorithm.
    keys: KeySet,
    fetcher: Arc<FakeFetcher>,
    /// The secret of `csj`, the `client_secret_jwt` client.
    secret: Secret,
}

/// The kit with its provider given the key-encryption key and the fetcher, four clients
/// stored: `pkj` (inline JWK Set), `pkj-uri` (the same keys by `jwks_uri`), `csj`
/// (`client_secret_jwt`) and `basic` (`client_secret_basic`).
async fn registered() -> World {
    let kek = Kek::from_bytes([7; 32]);
    let fetcher = Arc::new(FakeFetcher::default());
    let assertion_keys = AssertionKeys {
        kek: Some(kek.clone()),
        fetcher: Some(fetcher.clone()),
    };
    let kit = TestKit::with_builder(|_| {}, |b| b.assertion_keys(assertion_keys));
    let keys = KeySet::generate(
        &[SigningAlg::Es256, SigningAlg::Rs256, SigningAlg::EdDsa],
        kit.clock.clone(),
    )
    .expect("keys");
    *fetcher.jwks.lock().expect("lock") = keys.jwks();
    let e = SeededEntropy::new(9);
    let now = kit.now();
    let mut inline = ClientMetadata::default();
    inline.jwks = Some(keys.jwks());
    let mut by_uri = ClientMetadata::default();
    by_uri.jwks_uri = Some("https://rp.example/jwks".into());
    let (pkj, none) = NewClient::confidential("inline keys")
        .id("pkj")
        .token_endpoint_auth_method(AuthMethod::PrivateKeyJwt)
        .metadata(inline)
        .build(&e, now);
    assert!(none.is_none(), "a key-pair client gets no secret");
    let (uri_client, _) = NewClient::confidential("keys by uri")
        .id("pkj-uri")
        .token_endpoint_auth_method(AuthMethod::PrivateKeyJwt)
        .metadata(by_uri)
        .build(&e, now);
    let (mut csj, secret) = NewClient::confidential("hmac")
        .id("csj")
        .token_endpoint_auth_method(AuthMethod::ClientSecretJwt)
        .build(&e, now);
    let secret = secret.expect("client_secret_jwt clients get a secret");
    assert!(secret.expose().len() >= 64, "long enough for HS512");
    csj.metadata.sealed_secret = Some(seal_secret(&kek, "csj", &secret).expect("seal"));
    let (basic, _) = NewClient::confidential("plain").id("basic").build(&e, now);
    for client in [&pkj, &uri_client, &csj, &basic] {
        client.validate().expect("valid registration");
        kit.store.put_client(client).await.expect("put");
    }
    World {
        kit,
        keys,
        fetcher,
        secret,
    }
}

impl World {
    /// Claims a well-formed assertion from `client` carries, unique each call.
    fn claims(&self, client: &str) -> Value {
        static JTI: AtomicUsize = AtomicUsize::new(0);
        let now = self.kit.now().0;
        json!({
            "iss": client,
            "sub": client,
            "aud": TOKEN_ENDPOINT,
            "exp": now + 60,
            "iat": now,
            "jti": format!("jti-{}", JTI.fetch_add(1, Ordering::SeqCst)),
        })
    }

    fn sign(&self, alg: SigningAlg, claims: &Value) -> String {
        self.keys.sign(Some(alg), "JWT", claims).expect("sign")
    }

    fn hmac(&self, alg: Algorithm, claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(self.secret.expose().as_bytes()),
        )
        .expect("hmac")
    }

    async fn token_with(&self, assertion: &str) -> HttpResponse {
        self.kit
            .provider
            .token(&HttpRequest::post_form(
                "/token",
                format!(
                    "grant_type=client_credentials&client_assertion_type={}&client_assertion={}",
                    form_encode(ASSERTION_TYPE),
                    form_encode(assertion)
                ),
            ))
            .await
    }
}

#[tokio::test]
async fn private_key_jwt_accepts_es256_rs256_and_eddsa_keys() {
    let w = registered().await;
    for alg in [SigningAlg::Es256, SigningAlg::Rs256, SigningAlg::EdDsa] {
        for client in ["pkj", "pkj-uri"] {
            let assertion = w.sign(alg, &w.claims(client));
            let body = w.token_with(&assertion).await.expect_ok();
            assert!(body["access_token"].is_string(), "{alg} for {client}");
        }
    }
}

#[tokio::test]
async fn client_secret_jwt_accepts_hs256_hs384_and_hs512() {
    let w = registered().await;
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let assertion = w.hmac(alg, &w.claims("csj"));
        w.token_with(&assertion).await.expect_ok();
    }
}

#[tokio::test]
async fn the_issuer_is_an_audience_too_alone_or_in_an_array() {
    let w = registered().await;
    for aud in [
        json!("https://auth.example.test"),
        json!(["https://other.example", TOKEN_ENDPOINT]),
    ] {
        let mut claims = w.claims("pkj");
        claims["aud"] = aud;
        w.token_with(&w.sign(SigningAlg::Es256, &claims))
            .await
            .expect_ok();
    }
}

#[tokio::test]
async fn introspection_and_revocation_accept_an_assertion() {
    let w = registered().await;
    let token = w
        .token_with(&w.sign(SigningAlg::Es256, &w.claims("pkj")))
        .await
        .expect_ok()["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    let body = |assertion: &str| {
        format!(
            "token={}&client_assertion_type={}&client_assertion={}",
            form_encode(&token),
            form_encode(ASSERTION_TYPE),
            form_encode(assertion)
        )
    };
    let p = &w.kit.provider;
    let introspected = p
        .introspect(&HttpRequest::post_form(
            "/introspect",
            body(&w.sign(SigningAlg::Es256, &w.claims("pkj"))),
        ))
        .await
        .expect_ok();
    assert_eq!(introspected["active"], true);
    let revoked = p
        .revoke(&HttpRequest::post_form(
            "/revoke",
            body(&w.sign(SigningAlg::Es256, &w.claims("pkj"))),
        ))
        .await;
    assert_eq!(revoked.status, 200);
}

/// A compact JWS with `header` and `claims` and the given signature bytes.
fn forged(header: &Value, claims: &Value, signature: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!("{}.{}.{signature}", b64(header), b64(claims))
}

/// An ES256 key pair nobody registered, signing with `kid` in the header.
fn stranger(kid: &str, claims: &Value) -> String {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("key");
    let der = pair.to_pkcs8v1().expect("pkcs8");
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ec_der(der.as_ref())).expect("sign")
}

#[tokio::test]
async fn refusals_are_invalid_client() {
    let w = registered().await;
    let now = w.kit.now().0;
    let registered_kid = w.keys.jwks()["keys"][0]["kid"]
        .as_str()
        .expect("kid")
        .to_owned();
    type Case = (&'static str, &'static str, Box<dyn Fn(&World) -> String>);
    let with = |change: fn(&mut Value, i64)| {
        move |w: &World| {
            let mut claims = w.claims("pkj");
            change(&mut claims, now);
            w.sign(SigningAlg::Es256, &claims)
        }
    };
    let kid = registered_kid.clone();
    let cases: Vec<Case> = vec![
        (
            "wrong aud",
            "aud",
            Box::new(with(|c, _| c["aud"] = json!("https://other.example/token"))),
        ),
        (
            "another endpoint as aud",
            "aud",
            Box::new(with(|c, _| {
                c["aud"] = json!("https://auth.example.test/introspect")
            })),
        ),
        (
            "no aud",
            "aud",
            Box::new(with(|c, _| {
                c.as_object_mut().map(|o| o.remove("aud"));
            })),
        ),
        (
            "wrong iss",
            "iss must be",
            Box::new(with(|c, _| c["iss"] = json!("basic"))),
        ),
        (
            "wrong sub",
            "iss must be",
            Box::new(with(|c, _| c["sub"] = json!("pkj-uri"))),
        ),
        (
            "expired",
            "expired",
            Box::new(with(|c, now| c["exp"] = json!(now))),
        ),
        (
            "exp too far ahead",
            "too far ahead",
            Box::new(with(|c, now| c["exp"] = json!(now + 3600))),
        ),
        (
            "no exp",
            "exp",
            Box::new(with(|c, _| {
                c.as_object_mut().map(|o| o.remove("exp"));
            })),
        ),
        (
            "issued in the future",
            "not yet valid",
            Box::new(with(|c, now| c["iat"] = json!(now + 600))),
        ),
        (
            "not yet valid",
            "not yet valid",
            Box::new(with(|c, now| c["nbf"] = json!(now + 600))),
        ),
        (
            "missing jti",
            "jti",
            Box::new(with(|c, _| {
                c.as_object_mut().map(|o| o.remove("jti"));
            })),
        ),
        (
            "empty jti",
            "jti",
            Box::new(with(|c, _| c["jti"] = json!(""))),
        ),
        (
            "alg none",
            "alg not allowed",
            Box::new(|w: &World| forged(&json!({"alg": "none"}), &w.claims("pkj"), "")),
        ),
        (
            "HS256 for a key-pair client",
            "method not allowed",
            Box::new(|w: &World| {
                // The classic confusion: an HMAC keyed with something public.
                let mut claims = w.claims("pkj");
                claims["x"] = json!(1);
                jsonwebtoken::encode(
                    &Header::new(Algorithm::HS256),
                    &claims,
                    &EncodingKey::from_secret(w.keys.jwks().to_string().as_bytes()),
                )
                .expect("hmac")
            }),
        ),
        (
            "wrong key with a registered kid",
            "signature invalid",
            Box::new(move |w: &World| stranger(&kid, &w.claims("pkj"))),
        ),
        (
            "unknown kid",
            "no registered key",
            Box::new(|w: &World| stranger("nobody-knows-me", &w.claims("pkj"))),
        ),
        (
            "altered payload",
            "signature invalid",
            Box::new(|w: &World| {
                let good = w.sign(SigningAlg::Es256, &w.claims("pkj"));
                let mut parts: Vec<&str> = good.split('.').collect();
                let other = w.sign(SigningAlg::Es256, &w.claims("pkj"));
                let payload = other.split('.').nth(1).expect("payload").to_owned();
                parts[1] = Box::leak(payload.into_boxed_str());
                parts.join(".")
            }),
        ),
        (
            "oversized",
            "too large",
            Box::new(with(|c, _| c["pad"] = json!("x".repeat(9 * 1024)))),
        ),
        (
            "ES256 for a client_secret_jwt client",
            "method not allowed",
            Box::new(|w: &World| w.sign(SigningAlg::Es256, &w.claims("csj"))),
        ),
        (
            "HS256 with a wrong secret",
            "signature invalid",
            Box::new(|w: &World| {
                jsonwebtoken::encode(
                    &Header::new(Algorithm::HS256),
                    &w.claims("csj"),
                    &EncodingKey::from_secret(&[1u8; 64]),
                )
                .expect("hmac")
            }),
        ),
        (
            "a client registered for client_secret_basic",
            "method not allowed",
            Box::new(|w: &World| w.sign(SigningAlg::Es256, &w.claims("basic"))),
        ),
        (
            "an unknown client",
            "unknown client",
            Box::new(|w: &World| w.sign(SigningAlg::Es256, &w.claims("nobody"))),
        ),
        (
            "not a JWS",
            "not a compact JWS",
            Box::new(|_: &World| "not.a.jws.at.all".into()),
        ),
    ];
    for (what, needle, make) in cases {
        let assertion = make(&w);
        let resp = w.token_with(&assertion).await;
        let err = resp.expect_error("invalid_client");
        assert_eq!(resp.status, 401, "{what}");
        let said = err["error_description"].as_str().unwrap_or("");
        assert!(
            said.contains(needle),
            "{what}: refused for another reason: {said}"
        );
    }
}

#[tokio::test]
async fn a_replayed_assertion_is_refused_until_and_after_it_expires() {
    let w = registered().await;
    let assertion = w.sign(SigningAlg::Es256, &w.claims("pkj"));
    let said = |resp: HttpResponse| {
        resp.expect_error("invalid_client")["error_description"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    };
    w.token_with(&assertion).await.expect_ok();
    assert!(said(w.token_with(&assertion).await).contains("replayed"));
    w.kit.clock.advance(59);
    assert!(said(w.token_with(&assertion).await).contains("replayed"));
    w.kit.clock.advance(1);
    // Expired now: refused for that, and its jti may then be forgotten.
    w.token_with(&assertion)
        .await
        .expect_error("invalid_client");
}

#[tokio::test]
async fn the_same_jti_from_two_clients_is_two_keys() {
    let w = registered().await;
    let mut a = w.claims("pkj");
    a["jti"] = json!("shared");
    let mut b = w.claims("pkj-uri");
    b["jti"] = json!("shared");
    w.token_with(&w.sign(SigningAlg::Es256, &a))
        .await
        .expect_ok();
    w.token_with(&w.sign(SigningAlg::Es256, &b))
        .await
        .expect_ok();
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_jwks_uri_once() {
    let w = registered().await;
    let assertion = stranger("rotated-away", &w.claims("pkj-uri"));
    w.token_with(&assertion)
        .await
        .expect_error("invalid_client");
    assert_eq!(w.fetcher.refreshes.load(Ordering::SeqCst), 1);
    // A kid the cached set knows needs no refresh.
    w.token_with(&w.sign(SigningAlg::Es256, &w.claims("pkj-uri")))
        .await
        .expect_ok();
    assert_eq!(w.fetcher.refreshes.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn client_id_in_the_body_must_be_the_assertion_subject() {
    let w = registered().await;
    let assertion = w.sign(SigningAlg::Es256, &w.claims("pkj"));
    let resp = w
        .kit
        .provider
        .token(&HttpRequest::post_form(
            "/token",
            format!(
                "grant_type=client_credentials&client_id=basic&client_assertion_type={}&client_assertion={}",
                form_encode(ASSERTION_TYPE),
                form_encode(&assertion)
            ),
        ))
        .await;
    resp.expect_error("invalid_client");
}

#[tokio::test]
async fn an_assertion_with_a_secret_or_basic_header_is_two_methods() {
    let w = registered().await;
    let assertion = w.sign(SigningAlg::Es256, &w.claims("pkj"));
    let body = format!(
        "grant_type=client_credentials&client_assertion_type={}&client_assertion={}",
        form_encode(ASSERTION_TYPE),
        form_encode(&assertion)
    );
    let p = &w.kit.provider;
    p.token(&HttpRequest::post_form(
        "/token",
        format!("{body}&client_secret=x"),
    ))
    .await
    .expect_error("invalid_request");
    p.token(
        &HttpRequest::post_form("/token", body.clone())
            .with_header("authorization", "Basic YmFzaWM6eA=="),
    )
    .await
    .expect_error("invalid_request");
    let wrong_type = body.replace("jwt-bearer", "saml2-bearer");
    p.token(&HttpRequest::post_form("/token", wrong_type))
        .await
        .expect_error("invalid_client");
}
