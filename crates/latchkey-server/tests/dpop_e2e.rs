//! DPoP (RFC 9449) on the real binary: tokens bound to the key a proof shows, used at
//! `/userinfo` with proofs, and every refusal with its RFC error code: missing proof, wrong
//! `htu`/`htm`, replayed `jti`, stale `iat`, wrong key for a bound token, missing `ath`,
//! nonce required, a bound token sent as a bearer token, a `dpop_jkt` code exchanged with
//! another key, a public client's bound refresh token used without its key.

mod common;

use common::agent::Agent;
use common::{PASSWORD_GRANT, Server, add_user, cli, create_client, data_dir};
use latchkey_core::dpop::proof::ProofKey;
use latchkey_core::pkce::s256_challenge;
use latchkey_core::secret::Secret;
use serde_json::Value;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn answer(req: reqwest::RequestBuilder) -> Answer {
    let r = req.send().await.expect("server answers");
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.json().await.unwrap_or(Value::Null),
    }
}

/// POSTs `form` to `/token` with `proof` (if any) in the `DPoP` header.
async fn token(
    server: &Server,
    auth: Option<&str>,
    form: &[(&str, &str)],
    proof: Option<String>,
) -> Answer {
    let mut req = reqwest::Client::new().post(server.url("/token")).form(form);
    if let Some(auth) = auth {
        req = req.header("authorization", auth);
    }
    if let Some(proof) = proof {
        req = req.header("dpop", proof);
    }
    answer(req).await
}

/// GETs `/userinfo` with `authorization` and `proof`.
async fn userinfo(server: &Server, authorization: &str, proof: Option<String>) -> Answer {
    let mut req = reqwest::Client::new()
        .get(server.url("/userinfo"))
        .header("authorization", authorization);
    if let Some(proof) = proof {
        req = req.header("dpop", proof);
    }
    answer(req).await
}

const PASSWORD_FORM: [(&str, &str); 4] = [
    ("grant_type", "password"),
    ("username", "alice"),
    ("password", "correct horse battery"),
    ("scope", "openid"),
];

#[tokio::test]
async fn dpop_bound_tokens_work_with_proofs_and_every_bad_proof_is_refused_with_its_code() {
    let dir = data_dir();
    let client = create_client(dir.path(), &["--grant-type", "password"]);
    add_user(dir.path(), "alice", "correct horse battery");
    let server = Server::start_with(dir.path(), &[PASSWORD_GRANT]);
    let auth = client.basic();
    let key = ProofKey::generate().expect("key");
    let token_uri = server.url("/token");
    let proof = |method: &str, uri: &str, at: Option<&Secret>, iat: i64| {
        key.proof(method, uri, at, None, iat).expect("proof")
    };

    // The metadata advertises the proof algorithms.
    let doc: Value = reqwest::get(server.url("/.well-known/oauth-authorization-server"))
        .await
        .expect("answers")
        .json()
        .await
        .expect("json");
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        serde_json::json!(["ES256", "EdDSA", "RS256", "PS256"])
    );

    // Token endpoint refusals: wrong htu, wrong htm, stale iat, a replayed jti.
    let refusals = [
        ("htu", proof("POST", &server.url("/other"), None, now())),
        ("htm", proof("GET", &token_uri, None, now())),
        ("iat", proof("POST", &token_uri, None, now() - 600)),
    ];
    for (what, bad) in refusals {
        let r = token(&server, Some(&auth), &PASSWORD_FORM, Some(bad)).await;
        assert_eq!(
            (r.status, r.error()),
            (400, "invalid_dpop_proof"),
            "{what}: {}",
            r.body
        );
    }
    let good = proof("POST", &token_uri, None, now());
    let issued = token(&server, Some(&auth), &PASSWORD_FORM, Some(good.clone())).await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    assert_eq!(issued.body["token_type"], "DPoP");
    let replayed = token(&server, Some(&auth), &PASSWORD_FORM, Some(good)).await;
    assert_eq!(
        (replayed.status, replayed.error()),
        (400, "invalid_dpop_proof")
    );
    assert!(
        replayed.body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("replayed"))
    );

    // Without a proof the same client gets a plain bearer token.
    let bearer = token(&server, Some(&auth), &PASSWORD_FORM, None).await;
    assert_eq!(bearer.body["token_type"], "Bearer");

    let access = Secret::new(issued.body["access_token"].as_str().expect("token"));
    let userinfo_uri = server.url("/userinfo");
    let dpop_auth = format!("DPoP {}", access.expose());

    // The bound token with a proof of its key and `ath`: the claims.
    let ok = userinfo(
        &server,
        &dpop_auth,
        Some(proof("GET", &userinfo_uri, Some(&access), now())),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body["sub"].as_str().is_some_and(|s| !s.is_empty()));

    // Every refusal at the resource: 401 with a DPoP challenge naming the error.
    let other = ProofKey::generate().expect("key");
    let cases: [(&str, String, Option<String>, &str); 7] = [
        (
            "missing proof",
            dpop_auth.clone(),
            None,
            "invalid_dpop_proof",
        ),
        (
            "missing ath",
            dpop_auth.clone(),
            Some(proof("GET", &userinfo_uri, None, now())),
            "invalid_dpop_proof",
        ),
        (
            "wrong htm",
            dpop_auth.clone(),
            Some(proof("POST", &userinfo_uri, Some(&access), now())),
            "invalid_dpop_proof",
        ),
        (
            "stale iat",
            dpop_auth.clone(),
            Some(proof("GET", &userinfo_uri, Some(&access), now() - 600)),
            "invalid_dpop_proof",
        ),
        (
            "wrong key",
            dpop_auth.clone(),
            Some(
                other
                    .proof("GET", &userinfo_uri, Some(&access), None, now())
                    .expect("proof"),
            ),
            "invalid_token",
        ),
        (
            "bound token as bearer",
            format!("Bearer {}", access.expose()),
            None,
            "invalid_token",
        ),
        (
            "bearer token with the DPoP scheme",
            format!(
                "DPoP {}",
                bearer.body["access_token"].as_str().expect("token")
            ),
            Some(proof("GET", &userinfo_uri, None, now())),
            "invalid_token",
        ),
    ];
    for (what, authorization, proof, error) in cases {
        let r = userinfo(&server, &authorization, proof).await;
        assert_eq!((r.status, r.error()), (401, error), "{what}: {}", r.body);
        let challenge = r.header("www-authenticate");
        assert!(
            challenge.starts_with("DPoP ")
                && challenge.contains(&format!("error=\"{error}\""))
                && challenge.contains("algs=\"ES256 EdDSA RS256 PS256\""),
            "{what}: {challenge}"
        );
    }
    // A proof is good once at the resource too.
    let once = proof("GET", &userinfo_uri, Some(&access), now());
    assert_eq!(
        userinfo(&server, &dpop_auth, Some(once.clone()))
            .await
            .status,
        200
    );
    let again = userinfo(&server, &dpop_auth, Some(once)).await;
    assert_eq!((again.status, again.error()), (401, "invalid_dpop_proof"));
}

#[tokio::test]
async fn a_required_nonce_is_handed_out_and_then_accepted() {
    let dir = data_dir();
    let client = create_client(dir.path(), &["--grant-type", "password"]);
    add_user(dir.path(), "alice", "correct horse battery");
    let server = Server::start_with(
        dir.path(),
        &[PASSWORD_GRANT, ("LATCHKEY_DPOP__REQUIRE_NONCE", "true")],
    );
    let auth = client.basic();
    let key = ProofKey::generate().expect("key");
    let token_uri = server.url("/token");

    let first = token(
        &server,
        Some(&auth),
        &PASSWORD_FORM,
        Some(
            key.proof("POST", &token_uri, None, None, now())
                .expect("proof"),
        ),
    )
    .await;
    assert_eq!(
        (first.status, first.error()),
        (400, "use_dpop_nonce"),
        "{}",
        first.body
    );
    let nonce = first.header("dpop-nonce").to_owned();
    assert!(!nonce.is_empty());

    let issued = token(
        &server,
        Some(&auth),
        &PASSWORD_FORM,
        Some(
            key.proof("POST", &token_uri, None, Some(&nonce), now())
                .expect("proof"),
        ),
    )
    .await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    assert_eq!(issued.body["token_type"], "DPoP");
    assert!(!issued.header("dpop-nonce").is_empty());

    let access = Secret::new(issued.body["access_token"].as_str().expect("token"));
    let dpop_auth = format!("DPoP {}", access.expose());
    let userinfo_uri = server.url("/userinfo");
    let without = userinfo(
        &server,
        &dpop_auth,
        Some(
            key.proof("GET", &userinfo_uri, Some(&access), None, now())
                .expect("proof"),
        ),
    )
    .await;
    assert_eq!((without.status, without.error()), (401, "use_dpop_nonce"));
    assert!(
        without
            .header("www-authenticate")
            .contains("error=\"use_dpop_nonce\"")
    );
    let nonce = without.header("dpop-nonce").to_owned();
    let with = userinfo(
        &server,
        &dpop_auth,
        Some(
            key.proof("GET", &userinfo_uri, Some(&access), Some(&nonce), now())
                .expect("proof"),
        ),
    )
    .await;
    assert_eq!(with.status, 200, "{}", with.body);
}

#[tokio::test]
async fn a_client_registered_with_dpop_bound_access_tokens_must_send_a_proof() {
    let dir = data_dir();
    let client = create_client(
        dir.path(),
        &[
            "--grant-type",
            "client_credentials",
            "--dpop-bound-access-tokens",
        ],
    );
    let server = Server::start(dir.path());
    let form = [("grant_type", "client_credentials")];
    let refused = token(&server, Some(&client.basic()), &form, None).await;
    assert_eq!(
        (refused.status, refused.error()),
        (400, "invalid_dpop_proof")
    );
    let key = ProofKey::generate().expect("key");
    let proof = key
        .proof("POST", &server.url("/token"), None, None, now())
        .expect("proof");
    let issued = token(&server, Some(&client.basic()), &form, Some(proof)).await;
    assert_eq!(issued.status, 200, "{}", issued.body);
    assert_eq!(issued.body["token_type"], "DPoP");
}

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "http://127.0.0.1:41234/callback";

/// Runs login and consent for `client_id` with `dpop_jkt`; returns the code.
async fn code_for(server: &Server, client_id: &str, dpop_jkt: &str) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "openid")
        .append_pair("code_challenge", &s256_challenge(VERIFIER))
        .append_pair("code_challenge_method", "S256")
        .append_pair("dpop_jkt", dpop_jkt)
        .finish();
    let mut agent = Agent::new();
    let login = agent.get(&server.url(&format!("/authorize?{query}"))).await;
    assert_eq!(login.status, 200, "{}", login.body);
    let after = agent
        .submit_login(&server.base, &login, "alice", "alice-password")
        .await;
    assert_eq!(after.status, 303, "{}", after.body);
    let consent = agent.get(&server.url(after.location())).await;
    let done = agent.submit_consent(&server.base, &consent, "allow").await;
    assert_eq!(done.status, 303, "{}", done.body);
    let url = url::Url::parse(done.location()).expect("absolute");
    url.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code")
}

#[tokio::test]
async fn a_dpop_jkt_code_and_a_public_client_s_refresh_token_need_their_key() {
    let dir = data_dir();
    let out = cli(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "SPA",
            "--public",
            "--json",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--grant-type",
            "authorization_code",
            "--grant-type",
            "refresh_token",
        ],
        None,
    );
    let created: Value = serde_json::from_str(out.trim()).expect("json");
    let client_id = created["client_id"].as_str().expect("id").to_owned();
    add_user(dir.path(), "alice", "alice-password");
    let server = Server::start(dir.path());
    let key = ProofKey::generate().expect("key");
    let other = ProofKey::generate().expect("key");
    let token_uri = server.url("/token");
    let exchange = |code: String| {
        vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".to_owned(), code),
            ("redirect_uri".to_owned(), REDIRECT.to_owned()),
            ("client_id".to_owned(), client_id.clone()),
            ("code_verifier".to_owned(), VERIFIER.to_owned()),
        ]
    };
    let post = |form: Vec<(String, String)>, proof: Option<String>| {
        let server = &server;
        async move {
            let pairs: Vec<(&str, &str)> =
                form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            token(server, None, &pairs, proof).await
        }
    };

    // A code bound with dpop_jkt: without a proof, and with another key's, refused.
    let code = code_for(&server, &client_id, key.jkt()).await;
    let r = post(exchange(code), None).await;
    assert_eq!(
        (r.status, r.error()),
        (400, "invalid_dpop_proof"),
        "{}",
        r.body
    );
    let code = code_for(&server, &client_id, key.jkt()).await;
    let wrong = other
        .proof("POST", &token_uri, None, None, now())
        .expect("proof");
    let r = post(exchange(code), Some(wrong)).await;
    assert_eq!(
        (r.status, r.error()),
        (400, "invalid_dpop_proof"),
        "{}",
        r.body
    );

    // With the key it names: DPoP-bound tokens.
    let code = code_for(&server, &client_id, key.jkt()).await;
    let right = key
        .proof("POST", &token_uri, None, None, now())
        .expect("proof");
    let tokens = post(exchange(code), Some(right)).await;
    assert_eq!(tokens.status, 200, "{}", tokens.body);
    assert_eq!(tokens.body["token_type"], "DPoP");
    let refresh = tokens.body["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    let refresh_form = vec![
        ("grant_type".to_owned(), "refresh_token".to_owned()),
        ("refresh_token".to_owned(), refresh),
        ("client_id".to_owned(), client_id.clone()),
    ];

    // RFC 9449 §5: a public client's refresh token is bound to the key.
    let r = post(refresh_form.clone(), None).await;
    assert_eq!(
        (r.status, r.error()),
        (400, "invalid_dpop_proof"),
        "{}",
        r.body
    );
    let wrong = other
        .proof("POST", &token_uri, None, None, now())
        .expect("proof");
    let r = post(refresh_form.clone(), Some(wrong)).await;
    assert_eq!(
        (r.status, r.error()),
        (400, "invalid_dpop_proof"),
        "{}",
        r.body
    );
    let right = key
        .proof("POST", &token_uri, None, None, now())
        .expect("proof");
    let r = post(refresh_form, Some(right)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["token_type"], "DPoP");
}
