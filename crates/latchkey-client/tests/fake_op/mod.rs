//! A fake OpenID Provider on 127.0.0.1:0: discovery, a JWK Set (counting its fetches), a
//! token endpoint that answers with the ID token the test prepared and checks the client's
//! authentication as a real server would (a client assertion is verified: signature, `iss`,
//! `sub`, `aud`, `exp`, and recorded), and a revocation endpoint. Keys are generated in the
//! test with aws-lc-rs.
#![allow(dead_code)]

use aws_lc_rs::encoding::AsDer as _;
use axum::extract::State;
use axum::routing::{get, post};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use latchkey_client::SigningAlg;
use latchkey_core::clock::{Clock, SystemClock};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The access token every token response carries.
pub const ACCESS_TOKEN: &str = "at-from-the-fake-op";

/// A key pair made for the test, with its PEM, its signing key and its public JWK.
#[derive(Clone)]
pub struct TestKey {
    pub alg: SigningAlg,
    pub kid: String,
    pub pem: String,
    pub signing: EncodingKey,
    pub jwk: Value,
}

fn pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ascii"))
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

impl TestKey {
    /// A fresh key pair for `alg` (ES256, RS256/PS256 or EdDSA) named `kid`.
    pub fn generate(alg: SigningAlg, kid: &str) -> Self {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let (pkcs8, signing) = match alg {
            SigningAlg::ES256 => {
                let doc = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
                    &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                    &rng,
                )
                .expect("P-256 key");
                let pem = pem(doc.as_ref());
                let key = EncodingKey::from_ec_pem(pem.as_bytes()).expect("EC PEM");
                (pem, key)
            }
            SigningAlg::RS256 | SigningAlg::PS256 => {
                let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                    .expect("RSA key");
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'static> = pair.as_der().expect("PKCS#8");
                let pem = pem(der.as_ref());
                let key = EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA PEM");
                (pem, key)
            }
            SigningAlg::EdDSA => {
                let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8v1(&rng)
                    .expect("Ed25519 key");
                let pem = pem(doc.as_ref());
                let key = EncodingKey::from_ed_pem(pem.as_bytes()).expect("Ed PEM");
                (pem, key)
            }
            other => panic!("no key pair for {other}"),
        };
        let mut jwk = serde_json::to_value(
            jsonwebtoken::jwk::Jwk::from_encoding_key(&signing, jwt_alg(alg)).expect("JWK"),
        )
        .expect("JSON");
        jwk["kid"] = kid.into();
        jwk["use"] = "sig".into();
        Self {
            alg,
            kid: kid.to_owned(),
            pem: pkcs8,
            signing,
            jwk,
        }
    }

    /// `claims` signed with this key, `kid` in the header.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jwt_alg(self.alg));
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.signing).expect("signed")
    }

    /// The public key, to verify what the client signed.
    pub fn verifying(&self) -> DecodingKey {
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(self.jwk.clone()).expect("a JWK");
        DecodingKey::from_jwk(&jwk).expect("public key")
    }
}

pub fn jwt_alg(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::ES256 => Algorithm::ES256,
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::PS256 => Algorithm::PS256,
        SigningAlg::EdDSA => Algorithm::EdDSA,
        _ => Algorithm::HS256,
    }
}

/// How the fake expects the client to authenticate.
#[derive(Clone)]
pub enum ClientCheck {
    /// Anything goes (public clients, secrets not checked).
    None,
    /// A client assertion verified with this key and algorithm.
    Assertion(DecodingKey, Algorithm),
}

/// What the fake provider knows and what it saw.
pub struct OpState {
    pub issuer: Mutex<String>,
    pub advertised: Vec<String>,
    pub published: Mutex<Vec<Value>>,
    pub jwks_fetches: AtomicUsize,
    /// The JWK Set answers 503 while this is set.
    pub jwks_down: std::sync::atomic::AtomicBool,
    pub next_id_token: Mutex<Option<String>>,
    pub client_check: Mutex<ClientCheck>,
    /// The client id the assertions must name.
    pub client_id: Mutex<String>,
    /// Every token and revocation request's form, in order.
    pub requests: Mutex<Vec<BTreeMap<String, String>>>,
    /// The header and claims of every verified assertion, in order.
    pub assertions: Mutex<Vec<(jsonwebtoken::Header, Value)>>,
}

/// A running fake provider.
pub struct FakeOp {
    pub base: String,
    pub state: Arc<OpState>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for FakeOp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl FakeOp {
    /// Starts a provider that advertises `advertised` and publishes `keys`.
    pub async fn start(advertised: &[&str], keys: &[&TestKey]) -> Self {
        let state = Arc::new(OpState {
            issuer: Mutex::new(String::new()),
            advertised: advertised.iter().map(|a| (*a).to_owned()).collect(),
            published: Mutex::new(keys.iter().map(|k| k.jwk.clone()).collect()),
            jwks_fetches: AtomicUsize::new(0),
            jwks_down: std::sync::atomic::AtomicBool::new(false),
            next_id_token: Mutex::new(None),
            client_check: Mutex::new(ClientCheck::None),
            client_id: Mutex::new(String::new()),
            requests: Mutex::new(Vec::new()),
            assertions: Mutex::new(Vec::new()),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        *state.issuer.lock().expect("lock") = base.clone();
        let app = axum::Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/token", post(token))
            .route("/revoke", post(revoke))
            .with_state(state.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            base,
            state,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Publishes `keys` instead of the current set (a rotation).
    pub fn publish(&self, keys: &[&TestKey]) {
        *self.state.published.lock().expect("lock") = keys.iter().map(|k| k.jwk.clone()).collect();
    }

    /// The ID token the next token response carries.
    pub fn answer_with(&self, id_token: Option<String>) {
        *self.state.next_id_token.lock().expect("lock") = id_token;
    }

    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Claims of a valid ID token for `client_id` with `nonce`, issued now.
    pub fn claims(&self, client_id: &str, nonce: Option<&str>) -> Value {
        let now = SystemClock.now().0;
        let mut claims = json!({
            "iss": self.base,
            "sub": "user-1",
            "aud": client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now - 10,
        });
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        claims
    }
}

async fn discovery(State(state): State<Arc<OpState>>) -> axum::Json<Value> {
    let issuer = state.issuer.lock().expect("lock").clone();
    axum::Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "jwks_uri": format!("{issuer}/jwks"),
        "id_token_signing_alg_values_supported": state.advertised,
        "token_endpoint_auth_methods_supported": ["private_key_jwt", "client_secret_jwt", "none"],
    }))
}

async fn jwks(
    State(state): State<Arc<OpState>>,
) -> (
    axum::http::StatusCode,
    [(axum::http::HeaderName, &'static str); 1],
    axum::Json<Value>,
) {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let status = if state.jwks_down.load(Ordering::SeqCst) {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    } else {
        axum::http::StatusCode::OK
    };
    let keys = state.published.lock().expect("lock").clone();
    (
        status,
        [(axum::http::header::CACHE_CONTROL, "public, max-age=3600")],
        axum::Json(json!({ "keys": keys })),
    )
}

type Reply = (axum::http::StatusCode, axum::Json<Value>);

/// Checks the client's authentication as an authorization server would (RFC 7523 §3).
fn authenticate(state: &OpState, form: &BTreeMap<String, String>) -> Result<(), Reply> {
    let check = state.client_check.lock().expect("lock").clone();
    let ClientCheck::Assertion(key, alg) = check else {
        return Ok(());
    };
    let refuse = |why: &str| {
        (
            axum::http::StatusCode::UNAUTHORIZED,
            axum::Json(json!({ "error": "invalid_client", "error_description": why })),
        )
    };
    if form.get("client_assertion_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    {
        return Err(refuse("no jwt-bearer assertion"));
    }
    let assertion = form
        .get("client_assertion")
        .ok_or_else(|| refuse("no assertion"))?;
    let client_id = state.client_id.lock().expect("lock").clone();
    let token_url = format!("{}/token", state.issuer.lock().expect("lock"));
    let mut validation = jsonwebtoken::Validation::new(alg);
    validation.set_audience(&[token_url]);
    validation.set_issuer(&[client_id.as_str()]);
    validation.sub = Some(client_id);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let data = jsonwebtoken::decode::<Value>(assertion, &key, &validation)
        .map_err(|e| refuse(&format!("assertion refused: {e}")))?;
    // RFC 7523 §3: "The authorization server MAY ensure that JWTs are not replayed by
    // maintaining the set of used jti values".
    let Some(jti) = data.claims.get("jti").and_then(Value::as_str) else {
        return Err(refuse("no jti"));
    };
    let mut assertions = state.assertions.lock().expect("lock");
    if assertions.iter().any(|(_, c)| c["jti"] == jti) {
        return Err(refuse("replayed jti"));
    }
    assertions.push((data.header, data.claims));
    Ok(())
}

async fn token(
    State(state): State<Arc<OpState>>,
    axum::Form(form): axum::Form<BTreeMap<String, String>>,
) -> Reply {
    state.requests.lock().expect("lock").push(form.clone());
    if let Err(refused) = authenticate(&state, &form) {
        return refused;
    }
    let mut body = json!({
        "access_token": ACCESS_TOKEN,
        "token_type": "Bearer",
        "expires_in": 3600,
        "refresh_token": "rt-from-the-fake-op",
    });
    if let Some(id_token) = state.next_id_token.lock().expect("lock").clone() {
        body["id_token"] = id_token.into();
    }
    (axum::http::StatusCode::OK, axum::Json(body))
}

async fn revoke(
    State(state): State<Arc<OpState>>,
    axum::Form(form): axum::Form<BTreeMap<String, String>>,
) -> Reply {
    state.requests.lock().expect("lock").push(form.clone());
    if let Err(refused) = authenticate(&state, &form) {
        return refused;
    }
    (axum::http::StatusCode::OK, axum::Json(json!({})))
}
