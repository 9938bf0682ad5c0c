//! One table of HTTP cases for every web adapter: the token, revocation, introspection and
//! metadata endpoints, and the bearer guard's RFC 6750 answers. An adapter's test serves
//! [`Fixture::provider`] with these routes, then calls [`run`] with its base URL:
//!
//! | route | protection |
//! |---|---|
//! | the provider's `/token`, `/revoke`, `/introspect`, `/.well-known/oauth-authorization-server` | |
//! | `GET /api/me` | any valid token, via the adapter's extractor; answers [`me_json`] |
//! | `GET /api/read` | a layer or middleware requiring `read`; answers [`me_json`] |
//! | `GET /api/admin` | a layer or middleware requiring `admin`; answers [`me_json`] |
//!
//! The guard's realm must be [`REALM`], and it must verify JWT access tokens (RFC 9068)
//! locally: `Provider::jwt_guard`.

use crate::{ResponseExt, TestClient, TestKit, form_encode};
use latchkey_core::resource::AccessToken;

/// The realm every adapter's test guard uses.
pub const REALM: &str = "latchkey-test";

/// The JSON a protected test route answers with.
pub fn me_json(token: &AccessToken) -> serde_json::Value {
    serde_json::json!({
        "sub": token.subject,
        "client_id": token.client_id,
        "scope": token.scope.to_string(),
    })
}

/// A provider with a client and tokens to test with.
pub struct Fixture {
    /// The kit (memory store, fixed clock); serve `kit.provider`.
    pub kit: TestKit,
    /// A confidential client allowed every grant but implicit.
    pub client: TestClient,
    /// An access token with scope `read` for user `alice`.
    pub read_token: String,
    /// An access token with scope `read write`.
    pub rw_token: String,
    /// A refresh token (never a valid bearer token).
    pub refresh_token: String,
    /// A JWT access token (RFC 9068) with scope `read write`, of a `jwt` client.
    pub jwt_token: String,
    /// JWTs the guard must refuse with `invalid_token`, by what is wrong with them.
    pub bad_jwts: Vec<(&'static str, String)>,
    /// The DPoP key [`Fixture::dpop_token`] is bound to (RFC 9449).
    pub dpop_key: latchkey_core::dpop::proof::ProofKey,
    /// An access token with scope `read`, bound to [`Fixture::dpop_key`].
    pub dpop_token: String,
}

impl Fixture {
    /// Issues the tokens through the provider itself.
    pub async fn new() -> Self {
        let kit = TestKit::new();
        let client = kit.confidential_client().await;
        kit.user("alice", "alice-pw").await;
        let read = kit
            .token(
                &client,
                "grant_type=password&username=alice&password=alice-pw&scope=read",
            )
            .await
            .expect_ok();
        let rw = kit
            .token(
                &client,
                "grant_type=password&username=alice&password=alice-pw&scope=read+write",
            )
            .await
            .expect_ok();
        let text = |v: &serde_json::Value, k: &str| v[k].as_str().unwrap_or_default().to_owned();
        let mut metadata = latchkey_core::client::ClientMetadata::default();
        metadata.access_token_format = Some("jwt".into());
        let jwt_client = kit
            .register(
                latchkey_core::client::NewClient::confidential("JWT Service")
                    .grant_types([latchkey_core::client::GrantType::ClientCredentials])
                    .metadata(metadata),
            )
            .await;
        let jwt = kit
            .token(
                &jwt_client,
                "grant_type=client_credentials&scope=read+write",
            )
            .await
            .expect_ok();
        let bad_jwts = bad_jwts(&kit);
        let dpop_key = latchkey_core::dpop::proof::ProofKey::generate().expect("a P-256 key");
        let token_uri = format!("{}/token", kit.provider.config().issuer);
        let proof = dpop_key
            .proof("POST", &token_uri, None, None, kit.now().0)
            .expect("a proof");
        let bound = kit
            .provider
            .token(
                &latchkey_core::http::HttpRequest::post_form(
                    "/token",
                    "grant_type=password&username=alice&password=alice-pw&scope=read",
                )
                .with_header("authorization", client.basic())
                .with_header("dpop", proof),
            )
            .await
            .expect_ok();
        assert_eq!(bound["token_type"], "DPoP", "{bound}");
        Self {
            dpop_token: text(&bound, "access_token"),
            dpop_key,
            jwt_token: text(&jwt, "access_token"),
            bad_jwts,
            read_token: text(&read, "access_token"),
            rw_token: text(&rw, "access_token"),
            refresh_token: text(&read, "refresh_token"),
            client,
            kit,
        }
    }

    /// The provider to serve.
    pub fn provider(&self) -> crate::TestProvider {
        self.kit.provider.clone()
    }
}

/// JWTs that are wrong in one way each: RFC 9068 §4's checks.
fn bad_jwts(kit: &TestKit) -> Vec<(&'static str, String)> {
    use latchkey_core::access_jwt::{AccessTokenClaims, Audience, TYP};
    use latchkey_core::jose::{KeySet, SigningAlg};
    let now = kit.now().0;
    let issuer = kit.provider.config().issuer.clone();
    let claims = |exp: i64, aud: &str| AccessTokenClaims {
        iss: issuer.clone(),
        exp,
        aud: Audience::One(aud.into()),
        sub: "user-alice".into(),
        client_id: "someone".into(),
        iat: now - 10,
        jti: "jti".into(),
        scope: Some("read".into()),
        auth_time: None,
        acr: None,
        amr: None,
        cnf: None,
        act: None,
    };
    let signer = kit.provider.signer();
    let sign = |typ: &str, c: &AccessTokenClaims| signer.sign(None, typ, c).unwrap_or_default();
    let foreign = KeySet::generate(&[SigningAlg::Es256], kit.clock.clone())
        .ok()
        .and_then(|k| k.sign(None, TYP, &claims(now + 300, &issuer)).ok())
        .unwrap_or_default();
    let b64 = |bytes: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    };
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"at+jwt"}"#),
        b64(&serde_json::to_vec(&claims(now + 300, &issuer)).unwrap_or_default())
    );
    vec![
        ("JWT typ", sign("JWT", &claims(now + 300, &issuer))),
        (
            "wrong aud",
            sign(TYP, &claims(now + 300, "https://elsewhere.example")),
        ),
        ("expired", sign(TYP, &claims(now - 1, &issuer))),
        ("alg none", none),
        ("foreign key", foreign),
    ]
}

struct Answer {
    status: u16,
    www: String,
    body: serde_json::Value,
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    let resp = req.send().await.expect("the server answers");
    let status = resp.status().as_u16();
    let www = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    Answer { status, www, body }
}

/// Runs every case against the server at `base` (e.g. `http://127.0.0.1:PORT`); panics
/// listing every case that failed.
pub async fn run(base: &str, fx: &Fixture) {
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{base}{path}");
    let bearer = |t: &str| format!("Bearer {t}");
    let mut failures: Vec<String> = Vec::new();
    let mut expect = |name: &str, ok: bool, detail: String| {
        if !ok {
            failures.push(format!("{name}: {detail}"));
        }
    };

    // RFC 6750 §3.1: no credentials, a bare challenge with the realm and no error code.
    let a = send(http.get(url("/api/me"))).await;
    expect(
        "no token",
        a.status == 401 && a.www == format!("Bearer realm=\"{REALM}\""),
        format!("{} {:?}", a.status, a.www),
    );
    let a = send(
        http.get(url("/api/me"))
            .header("authorization", bearer("not-a-token")),
    )
    .await;
    expect(
        "unknown token",
        a.status == 401
            && a.www.contains("error=\"invalid_token\"")
            && a.body["error"] == "invalid_token",
        format!("{} {:?} {}", a.status, a.www, a.body),
    );
    let a = send(
        http.get(url("/api/me"))
            .header("authorization", "Bearer two words"),
    )
    .await;
    expect(
        "malformed header",
        a.status == 400 && a.www.contains("error=\"invalid_request\""),
        format!("{} {:?}", a.status, a.www),
    );
    let a = send(
        http.get(url("/api/me"))
            .header("authorization", bearer(&fx.refresh_token)),
    )
    .await;
    expect(
        "refresh token as bearer",
        a.status == 401 && a.www.contains("invalid_token"),
        format!("{} {:?}", a.status, a.www),
    );
    let a = send(
        http.get(url("/api/me"))
            .header("authorization", bearer(&fx.read_token)),
    )
    .await;
    expect(
        "valid token via extractor",
        a.status == 200 && a.body["sub"] == "user-alice" && a.body["scope"] == "read",
        format!("{} {}", a.status, a.body),
    );
    let a = send(
        http.get(url("/api/read"))
            .header("authorization", bearer(&fx.read_token)),
    )
    .await;
    expect(
        "scope present via layer",
        a.status == 200 && a.body["client_id"] == fx.client.id(),
        format!("{} {}", a.status, a.body),
    );
    let a = send(http.get(url("/api/read"))).await;
    expect(
        "layer without token",
        a.status == 401 && a.www == format!("Bearer realm=\"{REALM}\""),
        format!("{} {:?}", a.status, a.www),
    );
    let a = send(
        http.get(url("/api/admin"))
            .header("authorization", bearer(&fx.rw_token)),
    )
    .await;
    expect(
        "insufficient scope",
        a.status == 403
            && a.www.contains("error=\"insufficient_scope\"")
            && a.www.contains("scope=\"admin\""),
        format!("{} {:?}", a.status, a.www),
    );

    // The endpoints.
    let a = send(http.get(url("/.well-known/oauth-authorization-server"))).await;
    expect(
        "metadata",
        a.status == 200
            && a.body["issuer"] == "https://auth.example.test"
            && a.body["token_endpoint"].is_string(),
        format!("{} {}", a.status, a.body),
    );
    let a = send(http.get(url("/token"))).await;
    expect(
        "token endpoint refuses GET",
        a.status == 405 && a.body["error"] == "invalid_request",
        format!("{} {}", a.status, a.body),
    );
    let a = send(
        http.post(url("/token"))
            .header("authorization", fx.client.basic())
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    expect(
        "client_credentials",
        a.status == 200 && a.body["token_type"] == "Bearer",
        format!("{} {}", a.status, a.body),
    );
    let a = send(http.post(url("/token")).form(&[
        ("grant_type", "client_credentials"),
        ("client_id", fx.client.id()),
        ("client_secret", "wrong"),
    ]))
    .await;
    expect(
        "wrong secret",
        a.status == 401 && a.www.starts_with("Basic") && a.body["error"] == "invalid_client",
        format!("{} {:?} {}", a.status, a.www, a.body),
    );
    let introspect = |token: &str| {
        http.post(url("/introspect"))
            .header("authorization", fx.client.basic())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", form_encode(token)))
    };
    let a = send(introspect(&fx.rw_token)).await;
    expect(
        "introspect active",
        a.status == 200
            && a.body["active"] == true
            && a.body["scope"] == "read write"
            && a.body["username"] == "alice",
        format!("{} {}", a.status, a.body),
    );
    let a = send(
        http.post(url("/introspect"))
            .form(&[("token", fx.rw_token.as_str())]),
    )
    .await;
    expect(
        "introspect needs client auth",
        a.status == 401 && a.body["error"] == "invalid_client",
        format!("{} {}", a.status, a.body),
    );
    let a = send(
        http.post(url("/revoke"))
            .header("authorization", fx.client.basic())
            .form(&[
                ("token", fx.rw_token.as_str()),
                ("token_type_hint", "access_token"),
            ]),
    )
    .await;
    expect("revoke", a.status == 200, format!("{}", a.status));
    let a = send(
        http.post(url("/revoke"))
            .header("authorization", fx.client.basic())
            .form(&[("token", "never-issued")]),
    )
    .await;
    expect(
        "revoke unknown token",
        a.status == 200,
        format!("{}", a.status),
    );
    let a = send(introspect(&fx.rw_token)).await;
    expect(
        "introspect revoked",
        a.status == 200 && a.body == serde_json::json!({"active": false}),
        format!("{} {}", a.status, a.body),
    );
    let a = send(
        http.get(url("/api/me"))
            .header("authorization", bearer(&fx.rw_token)),
    )
    .await;
    expect(
        "revoked token refused by extractor",
        a.status == 401 && a.www.contains("invalid_token"),
        format!("{} {:?}", a.status, a.www),
    );
    let a = send(
        http.get(url("/api/read"))
            .header("authorization", bearer(&fx.rw_token)),
    )
    .await;
    expect(
        "revoked token refused by layer",
        a.status == 401 && a.www.contains("invalid_token"),
        format!("{} {:?}", a.status, a.www),
    );

    // RFC 9068 §4: a JWT access token is verified by the guard itself, its claims the
    // principal; one wrong in any way is `invalid_token`.
    let a = send(
        http.get(url("/api/read"))
            .header("authorization", bearer(&fx.jwt_token)),
    )
    .await;
    expect(
        "JWT access token through the layer",
        a.status == 200 && a.body["scope"] == "read write" && a.body["sub"].is_null(),
        format!("{} {}", a.status, a.body),
    );
    let a = send(
        http.get(url("/api/admin"))
            .header("authorization", bearer(&fx.jwt_token)),
    )
    .await;
    expect(
        "JWT access token without the scope",
        a.status == 403 && a.www.contains("error=\"insufficient_scope\""),
        format!("{} {:?}", a.status, a.www),
    );
    for (what, token) in &fx.bad_jwts {
        let a = send(
            http.get(url("/api/me"))
                .header("authorization", bearer(token)),
        )
        .await;
        expect(
            &format!("JWT with {what}"),
            a.status == 401 && a.www.contains("error=\"invalid_token\""),
            format!("{} {:?}", a.status, a.www),
        );
    }

    // RFC 9449 §7: a DPoP-bound token works with a proof of its key (`ath` its hash, `htu`
    // the resource at the issuer's origin) through the extractor and the layer; without
    // one, with another key, or as a bearer token it is refused with a DPoP challenge.
    let origin = url::Url::parse(&fx.kit.provider.config().issuer)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_default();
    let token = latchkey_core::secret::Secret::new(fx.dpop_token.as_str());
    let now = fx.kit.now().0;
    let proof_for = |key: &latchkey_core::dpop::proof::ProofKey, path: &str| {
        key.proof("GET", &format!("{origin}{path}"), Some(&token), None, now)
            .expect("a proof")
    };
    let dpop = format!("DPoP {}", fx.dpop_token);
    for path in ["/api/me", "/api/read"] {
        let a = send(
            http.get(url(path))
                .header("authorization", &dpop)
                .header("dpop", proof_for(&fx.dpop_key, path)),
        )
        .await;
        expect(
            &format!("DPoP-bound token with its proof at {path}"),
            a.status == 200 && a.body["scope"] == "read",
            format!("{} {:?} {}", a.status, a.www, a.body),
        );
    }
    let other = latchkey_core::dpop::proof::ProofKey::generate().expect("a P-256 key");
    let refusals = [
        (
            "DPoP-bound token without a proof",
            None,
            "invalid_dpop_proof",
        ),
        (
            "DPoP-bound token with another key's proof",
            Some(proof_for(&other, "/api/me")),
            "invalid_token",
        ),
    ];
    for (what, proof, error) in refusals {
        let mut req = http.get(url("/api/me")).header("authorization", &dpop);
        if let Some(proof) = proof {
            req = req.header("dpop", proof);
        }
        let a = send(req).await;
        expect(
            what,
            a.status == 401
                && a.www.starts_with("DPoP ")
                && a.www.contains(&format!("error=\"{error}\""))
                && a.body["error"] == error,
            format!("{} {:?} {}", a.status, a.www, a.body),
        );
    }
    let a = send(
        http.get(url("/api/me"))
            .header("authorization", bearer(&fx.dpop_token)),
    )
    .await;
    expect(
        "DPoP-bound token as a bearer token",
        a.status == 401 && a.www.starts_with("DPoP ") && a.www.contains("invalid_token"),
        format!("{} {:?}", a.status, a.www),
    );

    // Issue 14: headers the core cannot read are refused, never skipped. A second
    // Authorization that is not ASCII was dropped, and the duplicate check passed.
    let latin1 = reqwest::header::HeaderValue::from_bytes(b"Basic \xe9t\xe9").expect("obs-text");
    let a = send(
        http.post(url("/token"))
            .header("authorization", fx.client.basic())
            .header("authorization", latin1.clone())
            .form(&[("grant_type", "client_credentials")]),
    )
    .await;
    expect(
        "issue 14: a non-ASCII second Authorization at the token endpoint",
        a.status == 400 && a.body["error"] == "invalid_request",
        format!("{} {}", a.status, a.body),
    );
    let a = send(
        http.get(url("/api/me"))
            .header("authorization", bearer(&fx.read_token))
            .header("authorization", latin1),
    )
    .await;
    expect(
        "issue 14: a non-ASCII second Authorization at the guard",
        a.status == 400 && a.www.contains("error=\"invalid_request\""),
        format!("{} {:?}", a.status, a.www),
    );
    let a = send(
        http.post(url("/token"))
            .header("authorization", fx.client.basic())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("content-type", "text/plain")
            .body("grant_type=client_credentials"),
    )
    .await;
    expect(
        "issue 14: two Content-Type headers",
        a.status == 400 && a.body["error"] == "invalid_request",
        format!("{} {}", a.status, a.body),
    );

    assert!(
        failures.is_empty(),
        "{} HTTP cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
