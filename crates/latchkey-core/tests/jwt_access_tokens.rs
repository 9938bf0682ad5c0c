//! JWT access tokens (RFC 9068) end to end on the memory store: issued to `jwt` clients by
//! the client-credentials, code and refresh grants with exactly the RFC 9068 claims,
//! introspected and revoked by digest like opaque ones, and verified locally by the bearer
//! guard without a store lookup.

use latchkey_core::access_jwt::{AccessTokenClaims, Audience, TYP};
use latchkey_core::client::{ClientMetadata, GrantType, NewClient};
use latchkey_core::clock::UnixTime;
use latchkey_core::http::{HttpRequest, Method};
use latchkey_core::jose::{JwsSigner, KeySet, SigningAlg};
use latchkey_core::resource::jwt::JwtVerifier;
use latchkey_core::resource::{Guard, GuardError, StoreVerifier};
use latchkey_core::secret::{Digest, Secret};
use latchkey_core::store::memory::MemoryStore;
use latchkey_core::store::{Rotation, StoreError, TokenOwner, TokenStore};
use latchkey_core::token::{FamilyId, NewTokens, TokenRecord};
use latchkey_testkit::{REDIRECT_URI, ResponseExt, TestClient, TestKit, VERIFIER, form_encode};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

const ISSUER: &str = "https://auth.example.test";

fn jwt_metadata() -> ClientMetadata {
    let mut metadata = ClientMetadata::default();
    metadata.access_token_format = Some("jwt".into());
    metadata
}

async fn jwt_service(kit: &TestKit) -> TestClient {
    kit.register(
        NewClient::confidential("JWT Service")
            .grant_types([GrantType::ClientCredentials])
            .metadata(jwt_metadata()),
    )
    .await
}

async fn jwt_web_app(kit: &TestKit) -> TestClient {
    kit.register(
        NewClient::confidential("JWT Web App")
            .redirect_uris([REDIRECT_URI])
            .grant_types([GrantType::AuthorizationCode, GrantType::RefreshToken])
            .metadata(jwt_metadata()),
    )
    .await
}

/// Verifies `token` against the provider's published JWKS only (as a stranger would), and
/// returns its header and claims.
fn verify_with_jwks(kit: &TestKit, token: &str) -> (jsonwebtoken::Header, Map<String, Value>) {
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(kit.provider.signer().jwks()).expect("a JWK Set");
    let header = jsonwebtoken::decode_header(token).expect("a JWS header");
    let kid = header.kid.clone().expect("kid");
    let jwk = jwks.find(&kid).expect("the kid is published");
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).expect("a public key");
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .expect("the signature verifies");
    (data.header, data.claims)
}

fn claim_names(claims: &Map<String, Value>) -> Vec<&str> {
    let mut names: Vec<&str> = claims.keys().map(String::as_str).collect();
    names.sort_unstable();
    names
}

#[tokio::test]
async fn client_credentials_token_of_a_jwt_client_has_exactly_the_rfc9068_claims() {
    let kit = TestKit::new();
    let client = jwt_service(&kit).await;
    let body = kit
        .token(&client, "grant_type=client_credentials&scope=read+write")
        .await
        .expect_ok();
    let token = body["access_token"].as_str().expect("access token");
    let (header, claims) = verify_with_jwks(&kit, token);
    assert_eq!(header.typ.as_deref(), Some(TYP), "RFC 9068 §2.1");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(
        claim_names(&claims),
        [
            "aud",
            "client_id",
            "exp",
            "iat",
            "iss",
            "jti",
            "scope",
            "sub"
        ]
    );
    let now = kit.now().0;
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], ISSUER, "no audience configured: the issuer");
    assert_eq!(
        claims["sub"],
        client.id(),
        "RFC 9068 §2.2: the client for client_credentials"
    );
    assert_eq!(claims["client_id"], client.id());
    assert_eq!(claims["scope"], "read write");
    assert_eq!(
        (claims["iat"].as_i64(), claims["exp"].as_i64()),
        (Some(now), Some(now + 3600))
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    assert_eq!(body["expires_in"], 3600);
    // Stored by digest like every token.
    let record = kit
        .store
        .find_token(&Secret::new(token).digest())
        .await
        .expect("find")
        .expect("stored");
    assert!(record.is_active(kit.now()) && record.subject.is_none());
    // Two tokens never share a jti.
    let again = kit
        .token(&client, "grant_type=client_credentials")
        .await
        .expect_ok();
    let (_, second) = verify_with_jwks(&kit, again["access_token"].as_str().expect("token"));
    assert_ne!(claims["jti"], second["jti"]);
}

#[tokio::test]
async fn code_and_refresh_tokens_of_a_jwt_client_name_the_user_and_the_configured_audience() {
    let kit = TestKit::with_config(|c| {
        c.access_token_audience = Some("https://api.example.test".into());
    });
    let client = jwt_web_app(&kit).await;
    // A refresh needs the user to exist still.
    kit.user("alice", "correct horse battery").await;
    let code = kit.code_for(&client, "&scope=read").await;
    let body = kit
        .token(
            &client,
            &format!(
                "grant_type=authorization_code&code={}&code_verifier={VERIFIER}",
                form_encode(&code)
            ),
        )
        .await
        .expect_ok();
    let (_, claims) = verify_with_jwks(&kit, body["access_token"].as_str().expect("token"));
    assert_eq!(claims["sub"], "user-alice");
    assert_eq!(claims["client_id"], client.id());
    assert_eq!(claims["aud"], "https://api.example.test");
    assert_eq!(claims["scope"], "read");
    // The refresh token stays opaque; its rotation issues a JWT again.
    let refresh = body["refresh_token"].as_str().expect("refresh token");
    assert!(!refresh.contains('.'));
    kit.clock.advance(10);
    let rotated = kit
        .token(
            &client,
            &format!(
                "grant_type=refresh_token&refresh_token={}",
                form_encode(refresh)
            ),
        )
        .await
        .expect_ok();
    let (_, again) = verify_with_jwks(&kit, rotated["access_token"].as_str().expect("token"));
    assert_eq!(again["sub"], "user-alice");
    assert_eq!(again["iat"].as_i64(), Some(kit.now().0));
}

#[tokio::test]
async fn opaque_clients_are_unchanged_and_the_choice_is_per_client() {
    let kit = TestKit::new();
    let opaque = kit.confidential_client().await;
    let body = kit
        .token(&opaque, "grant_type=client_credentials")
        .await
        .expect_ok();
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(token.len(), 43);
    assert!(!token.contains('.'));
}

#[tokio::test]
async fn introspection_and_revocation_answer_for_jwt_access_tokens() {
    let kit = TestKit::new();
    let client = jwt_service(&kit).await;
    let rs = kit.resource_server().await;
    let body = kit
        .token(&client, "grant_type=client_credentials")
        .await
        .expect_ok();
    let token = body["access_token"].as_str().expect("token");
    let introspect = |who: TestClient| {
        let req = HttpRequest::post_form("/introspect", format!("token={}", form_encode(token)))
            .with_header("authorization", who.basic());
        let provider = kit.provider.clone();
        async move { provider.introspect(&req).await.expect_ok() }
    };
    let active = introspect(rs.clone()).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["client_id"], client.id());
    assert_eq!(active["token_type"], "Bearer");
    let revoked = kit
        .provider
        .revoke(
            &HttpRequest::post_form("/revoke", format!("token={}", form_encode(token)))
                .with_header("authorization", client.basic()),
        )
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(introspect(rs).await, json!({"active": false}));
}

#[tokio::test]
async fn a_jwt_client_cannot_bind_its_tokens() {
    let kit = TestKit::new();
    let (client, _) = NewClient::confidential("Bound JWT")
        .grant_types([GrantType::ClientCredentials])
        .bind_tokens(true)
        .metadata(jwt_metadata())
        .build(kit.provider.entropy(), kit.now());
    assert!(client.validate().is_err());
    let mut bad = ClientMetadata::default();
    bad.access_token_format = Some("paseto".into());
    let (client, _) = NewClient::confidential("Unknown format")
        .metadata(bad)
        .build(kit.provider.entropy(), kit.now());
    assert!(client.validate().is_err());
}

/// A token store that counts lookups: a guard that says it does not look tokens up must
/// leave the count at zero.
#[derive(Clone)]
struct CountingStore {
    inner: MemoryStore,
    finds: Arc<AtomicUsize>,
}

impl TokenStore for CountingStore {
    async fn save_tokens(&self, tokens: &NewTokens, now: UnixTime) -> Result<(), StoreError> {
        self.inner.save_tokens(tokens, now).await
    }
    async fn find_token(&self, digest: &Digest) -> Result<Option<TokenRecord>, StoreError> {
        self.finds.fetch_add(1, Ordering::SeqCst);
        self.inner.find_token(digest).await
    }
    async fn rotate_refresh(
        &self,
        old: &Digest,
        new: &NewTokens,
        now: UnixTime,
    ) -> Result<Rotation, StoreError> {
        self.inner.rotate_refresh(old, new, now).await
    }
    async fn revoke_family(&self, family: &FamilyId) -> Result<u64, StoreError> {
        self.inner.revoke_family(family).await
    }
    async fn revoke_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        self.inner.revoke_token(digest).await
    }
    async fn delete_tokens_of(&self, owner: &TokenOwner) -> Result<u64, StoreError> {
        self.inner.delete_tokens_of(owner).await
    }
}

struct GuardKit {
    kit: TestKit,
    finds: Arc<AtomicUsize>,
    guard: Guard<JwtVerifier<latchkey_testkit::TestProvider, StoreVerifier<CountingStore>>>,
}

fn guard_kit(check_store: bool) -> GuardKit {
    let kit = TestKit::new();
    let finds = Arc::new(AtomicUsize::new(0));
    let store = CountingStore {
        inner: kit.store.clone(),
        finds: Arc::clone(&finds),
    };
    let verifier = JwtVerifier::new(
        kit.provider.clone(),
        StoreVerifier::new(store, kit.clock.clone()),
        ISSUER,
        ISSUER,
        kit.clock.clone(),
    )
    .check_store(check_store);
    GuardKit {
        guard: Guard::new(verifier, "api"),
        kit,
        finds,
    }
}

fn bearer(token: &str) -> HttpRequest {
    HttpRequest::new(Method::Get, "/api").with_header("authorization", format!("Bearer {token}"))
}

#[tokio::test]
async fn the_guard_accepts_a_valid_jwt_without_touching_the_store() {
    let g = guard_kit(false);
    let client = jwt_service(&g.kit).await;
    let body = g
        .kit
        .token(&client, "grant_type=client_credentials&scope=read+write")
        .await
        .expect_ok();
    let token = body["access_token"].as_str().expect("token");
    let required = latchkey_testkit::scopes("write");
    for _ in 0..3 {
        let access = g
            .guard
            .authenticate(&bearer(token), &required)
            .await
            .expect("a valid JWT passes");
        assert_eq!(access.client_id, client.id());
        assert_eq!(access.subject, None, "sub = client_id: no resource owner");
        assert!(access.has_scope("read") && access.has_scope("write"));
        assert_eq!(access.expires_at, g.kit.now().plus(3600));
    }
    assert_eq!(
        g.finds.load(Ordering::SeqCst),
        0,
        "the guard looked the JWT up"
    );
    // A missing scope is still a 403, decided from the claims.
    let err = g
        .guard
        .authenticate(&bearer(token), &latchkey_testkit::scopes("admin"))
        .await
        .expect_err("no admin scope");
    assert!(matches!(err, GuardError::InsufficientScope(_)));
    // An opaque token still goes to the store: the wrapper does count.
    let opaque_client = g.kit.confidential_client().await;
    let opaque = g
        .kit
        .token(&opaque_client, "grant_type=client_credentials")
        .await
        .expect_ok();
    g.guard
        .authenticate(
            &bearer(opaque["access_token"].as_str().expect("token")),
            &latchkey_testkit::scopes("read"),
        )
        .await
        .expect("opaque token through the store");
    assert_eq!(g.finds.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_revoked_jwt_works_locally_until_it_expires_unless_the_guard_checks_the_store() {
    for check_store in [false, true] {
        let g = guard_kit(check_store);
        let client = jwt_service(&g.kit).await;
        let body = g
            .kit
            .token(&client, "grant_type=client_credentials")
            .await
            .expect_ok();
        let token = body["access_token"].as_str().expect("token");
        let read = latchkey_testkit::scopes("read");
        g.guard
            .authenticate(&bearer(token), &read)
            .await
            .expect("valid before revocation");
        g.kit
            .store
            .revoke_token(&Secret::new(token).digest())
            .await
            .expect("revoke");
        let after = g.guard.authenticate(&bearer(token), &read).await;
        if check_store {
            assert_eq!(after.err(), Some(GuardError::InvalidToken));
        } else {
            assert!(
                after.is_ok(),
                "documented: local verification does not see revocation"
            );
        }
        // Either way it ends at exp.
        g.kit.clock.advance(3600);
        assert_eq!(
            g.guard.authenticate(&bearer(token), &read).await.err(),
            Some(GuardError::InvalidToken)
        );
    }
}

/// Claims of a well-formed access token at `now`, to alter one at a time.
fn claims(now: i64) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ISSUER.into(),
        exp: now + 300,
        aud: Audience::One(ISSUER.into()),
        sub: "user-alice".into(),
        client_id: "client-1".into(),
        iat: now,
        jti: "jti-1".into(),
        scope: Some("read".into()),
        auth_time: None,
        acr: None,
        amr: None,
        cnf: None,
        act: None,
    }
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn the_guard_refuses_bad_jwts_with_invalid_token() {
    let g = guard_kit(false);
    let now = g.kit.now().0;
    let signer = g.kit.provider.signer();
    let foreign = KeySet::generate(&[SigningAlg::Es256], g.kit.clock.clone()).expect("keys");
    let sign = |typ: &str, c: &AccessTokenClaims| signer.sign(None, typ, c).expect("sign");
    let good = sign(TYP, &claims(now));
    let (_, rest) = good.split_once('.').expect("dots");
    let payload_sig = rest.to_owned();
    let mut other_aud = claims(now);
    other_aud.aud = Audience::Many(vec!["https://other.example".into()]);
    let mut other_iss = claims(now);
    other_iss.iss = "https://auth.example.test/".into();
    let mut expired = claims(now - 1000);
    expired.exp = now - 1;
    let none_alg = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"at+jwt"}"#),
        b64(&serde_json::to_vec(&claims(now)).expect("json"))
    );
    let kid = jsonwebtoken::decode_header(&good)
        .expect("header")
        .kid
        .expect("kid");
    let hs256 = {
        let key = jsonwebtoken::EncodingKey::from_secret(b"a public client's nothing");
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        h.typ = Some(TYP.into());
        h.kid = Some(kid.clone());
        jsonwebtoken::encode(&h, &claims(now), &key).expect("hs256")
    };
    let swapped_header = format!("{}.{payload_sig}", b64(br#"{"alg":"ES256","typ":"JWT"}"#));
    let cases: Vec<(&str, String)> = vec![
        ("typ JWT (an ID token's)", sign("JWT", &claims(now))),
        ("no typ check bypass by header swap", swapped_header),
        ("wrong aud", sign(TYP, &other_aud)),
        ("iss not exact", sign(TYP, &other_iss)),
        ("expired", sign(TYP, &expired)),
        ("alg none", none_alg),
        ("HS256 with our kid", hs256),
        (
            "foreign key",
            JwsSigner::sign_payload(
                &foreign,
                None,
                TYP,
                &serde_json::to_vec(&claims(now)).expect("json"),
            )
            .expect("sign"),
        ),
    ];
    let read = latchkey_testkit::scopes("read");
    for (name, token) in cases {
        let refused = g.guard.authenticate(&bearer(&token), &read).await;
        assert_eq!(refused.err(), Some(GuardError::InvalidToken), "{name}");
    }
    assert_eq!(g.finds.load(Ordering::SeqCst), 0, "refusals are local too");
    // The control: the same claims, well signed, pass.
    assert!(g.guard.authenticate(&bearer(&good), &read).await.is_ok());
    // And the refusal is RFC 6750's.
    let response = GuardError::InvalidToken.to_response("api");
    assert_eq!(response.status, 401);
    assert!(
        response
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer ") && h.contains("error=\"invalid_token\""))
    );
}
