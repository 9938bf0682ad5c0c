//! OpenID Connect logins against a fake provider: an ID token is accepted only when its
//! signature verifies with a key from the provider's JWK Set (or, for a client registered for
//! HS256, with its secret) under an accepted algorithm, and its claims name this provider,
//! this client and this login. Each refusal has its own error.

mod fake_op;

use fake_op::{ACCESS_TOKEN, FakeOp, TestKey};
use latchkey_client::{
    AppConfig, ClientError, IdTokenError, OAuth, RemoteApp, ReqwestClient, SigningAlg, Token,
};
use serde_json::Value;
use std::sync::{Arc, OnceLock};

/// The provider's keys, made once per test binary (RSA generation is slow).
struct Keys {
    es: TestKey,
    rs: TestKey,
    ed: TestKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        es: TestKey::generate(SigningAlg::ES256, "es"),
        rs: TestKey::generate(SigningAlg::RS256, "rs"),
        ed: TestKey::generate(SigningAlg::EdDSA, "ed"),
    })
}

const CLIENT: &str = "rp-client";

fn app(
    op: &FakeOp,
    secret: Option<&str>,
    tweak: impl FnOnce(&mut AppConfig),
) -> Arc<RemoteApp<ReqwestClient>> {
    let mut config = AppConfig::new(CLIENT, secret)
        .issuer(&op.base)
        .scopes(["openid"]);
    config.openid = true;
    tweak(&mut config);
    OAuth::new().register("op", config).expect("valid config")
}

/// One login whose token response carries the ID token `make` builds from the login's nonce.
async fn login_with(
    app: &RemoteApp<ReqwestClient>,
    op: &FakeOp,
    extra: &[(&str, &str)],
    make: impl FnOnce(&str) -> String,
) -> Result<Token, ClientError> {
    let auth = app.authorize("http://127.0.0.1:9/cb", None, extra).await?;
    let nonce = auth
        .pending
        .nonce
        .clone()
        .expect("OpenID logins send a nonce");
    op.answer_with(Some(make(&nonce)));
    let callback = format!("state={}&code=the-code", auth.pending.state);
    app.finish_login(&auth.pending, &callback).await
}

/// The claims of a good ID token for this login, with the access token's `at_hash`.
fn good(op: &FakeOp, nonce: &str, alg: SigningAlg) -> Value {
    let mut claims = op.claims(CLIENT, Some(nonce));
    claims["at_hash"] = alg.half_hash(ACCESS_TOKEN).into();
    claims
}

fn unsigned(claims: &Value) -> String {
    use base64::Engine as _;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    format!(
        "{}.{}.",
        b64(br#"{"alg":"none","kid":"es"}"#),
        b64(claims.to_string().as_bytes())
    )
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("signed")
}

fn id_token_error(result: Result<Token, ClientError>) -> IdTokenError {
    match result {
        Err(ClientError::IdToken(e)) => e,
        other => panic!("expected an ID token error, got {other:?}"),
    }
}

#[tokio::test]
async fn id_tokens_signed_with_es256_rs256_and_eddsa_are_accepted_from_one_jwks_fetch() {
    let k = keys();
    let op = FakeOp::start(&["ES256", "RS256", "EdDSA"], &[&k.es, &k.rs, &k.ed]).await;
    let app = app(&op, None, |_| {});
    for key in [&k.es, &k.rs, &k.ed] {
        let token = login_with(&app, &op, &[], |nonce| key.sign(&good(&op, nonce, key.alg)))
            .await
            .unwrap_or_else(|e| panic!("{}: {e:?}", key.alg));
        let claims = token.id_token_claims().expect("claims");
        assert_eq!(claims["sub"], "user-1", "{}", key.alg);
    }
    assert_eq!(
        op.jwks_fetches(),
        1,
        "the key set is cached for its max-age"
    );
}

#[tokio::test]
async fn forged_or_foreign_id_tokens_are_refused_each_with_its_own_error() {
    use IdTokenError as E;
    let k = keys();
    // HS256 is advertised, so its refusal below is for the missing secret alone.
    let op = FakeOp::start(
        &["ES256", "RS256", "EdDSA", "HS256"],
        &[&k.es, &k.rs, &k.ed],
    )
    .await;
    let public_client = app(&op, None, |_| {});
    let impostor = TestKey::generate(SigningAlg::ES256, "es");
    let ghost = TestKey::generate(SigningAlg::ES256, "ghost");
    let pss = TestKey {
        alg: SigningAlg::PS256,
        ..k.rs.clone()
    };
    type Make<'a> = Box<dyn Fn(&str) -> String + 'a>;
    let op_ref = &op;
    let with = |name: &'static str, value: Value| -> Make<'_> {
        Box::new(move |nonce: &str| {
            let mut claims = good(op_ref, nonce, SigningAlg::ES256);
            claims[name] = value.clone();
            k.es.sign(&claims)
        })
    };
    let cases: Vec<(&str, Make<'_>, IdTokenError)> = vec![
        (
            "signed by another key under a published kid",
            Box::new(|n| impostor.sign(&good(&op, n, SigningAlg::ES256))),
            E::BadSignature,
        ),
        (
            "a kid the provider never published",
            Box::new(|n| ghost.sign(&good(&op, n, SigningAlg::ES256))),
            E::UnknownKey,
        ),
        (
            "alg none",
            Box::new(|n| unsigned(&good(&op, n, SigningAlg::ES256))),
            E::Unsigned,
        ),
        (
            "HS256 for a client without a secret",
            Box::new(|n| hs256(&good(&op, n, SigningAlg::HS256), b"guessable")),
            E::SymmetricWithoutSecret,
        ),
        (
            "an alg the provider does not advertise",
            Box::new(|n| pss.sign(&good(&op, n, SigningAlg::PS256))),
            E::AlgNotAccepted("PS256".into()),
        ),
        (
            "another issuer",
            with("iss", "https://evil.example".into()),
            E::Issuer,
        ),
        (
            "another audience",
            with("aud", "other-client".into()),
            E::Audience,
        ),
        (
            "another login's nonce",
            with("nonce", "replayed".into()),
            E::Nonce,
        ),
        ("expired", with("exp", Value::from(1_000_000)), E::Expired),
        (
            "the at_hash of another access token",
            with("at_hash", SigningAlg::ES256.half_hash("other").into()),
            E::AccessTokenHash,
        ),
    ];
    for (what, make, want) in cases {
        let got = id_token_error(login_with(&public_client, &op, &[], |n| make(n)).await);
        assert_eq!(got, want, "{what}");
    }
}

#[tokio::test]
async fn an_unknown_kid_refetches_the_keys_once_then_waits_for_the_cooldown() {
    let k = keys();
    let op = FakeOp::start(&["ES256"], &[&k.es]).await;
    let app = app(&op, None, |_| {});
    let ghost = TestKey::generate(SigningAlg::ES256, "ghost");
    login_with(&app, &op, &[], |n| {
        k.es.sign(&good(&op, n, SigningAlg::ES256))
    })
    .await
    .expect("signed in");
    assert_eq!(op.jwks_fetches(), 1);
    for _ in 0..3 {
        let err = login_with(&app, &op, &[], |n| {
            ghost.sign(&good(&op, n, SigningAlg::ES256))
        })
        .await;
        assert_eq!(id_token_error(err), IdTokenError::UnknownKey);
    }
    assert_eq!(
        op.jwks_fetches(),
        2,
        "one refetch for the first unknown kid, none for the next ones"
    );
}

#[tokio::test]
async fn a_key_the_provider_rotated_in_is_found_by_one_refetch() {
    let k = keys();
    let op = FakeOp::start(&["ES256"], &[&k.es]).await;
    let app = app(&op, None, |_| {});
    login_with(&app, &op, &[], |n| {
        k.es.sign(&good(&op, n, SigningAlg::ES256))
    })
    .await
    .expect("signed in");
    let next = TestKey::generate(SigningAlg::ES256, "es-next");
    op.publish(&[&k.es, &next]);
    login_with(&app, &op, &[], |n| {
        next.sign(&good(&op, n, SigningAlg::ES256))
    })
    .await
    .expect("the rotated-in key verifies");
    assert_eq!(op.jwks_fetches(), 2);
}

#[tokio::test]
async fn hs256_id_tokens_are_accepted_only_for_a_client_registered_for_them() {
    let k = keys();
    let secret = "a-client-secret-of-at-least-32-bytes!";
    let op = FakeOp::start(&["ES256", "HS256"], &[&k.es]).await;
    let registered = app(&op, Some(secret), |c| {
        c.id_token_signed_response_alg = Some(SigningAlg::HS256);
    });
    login_with(&registered, &op, &[], |n| {
        hs256(&good(&op, n, SigningAlg::HS256), secret.as_bytes())
    })
    .await
    .expect("HS256 keyed with the client secret");
    let err = login_with(&registered, &op, &[], |n| {
        hs256(&good(&op, n, SigningAlg::HS256), b"another-secret")
    })
    .await;
    assert_eq!(id_token_error(err), IdTokenError::BadSignature);
    let err = login_with(&registered, &op, &[], |n| {
        k.es.sign(&good(&op, n, SigningAlg::ES256))
    })
    .await;
    assert_eq!(
        id_token_error(err),
        IdTokenError::AlgNotAccepted("ES256".into()),
        "only the registered alg"
    );
    let unregistered = app(&op, Some(secret), |_| {});
    let err = login_with(&unregistered, &op, &[], |n| {
        hs256(&good(&op, n, SigningAlg::HS256), secret.as_bytes())
    })
    .await;
    assert_eq!(
        id_token_error(err),
        IdTokenError::AlgNotAccepted("HS256".into()),
        "a token cannot choose HS256 for a client that did not register it"
    );
}

#[tokio::test]
async fn max_age_requires_an_auth_time_recent_enough() {
    let k = keys();
    let op = FakeOp::start(&["ES256"], &[&k.es]).await;
    let app = app(&op, None, |_| {});
    let max_age = [("max_age", "60")];
    login_with(&app, &op, &max_age, |n| {
        k.es.sign(&good(&op, n, SigningAlg::ES256))
    })
    .await
    .expect("authenticated 10 s ago");
    let err = login_with(&app, &op, &max_age, |n| {
        let mut claims = good(&op, n, SigningAlg::ES256);
        claims["auth_time"] = (claims["iat"].as_i64().expect("iat") - 1_000).into();
        k.es.sign(&claims)
    })
    .await;
    assert_eq!(id_token_error(err), IdTokenError::AuthTooOld);
}

#[tokio::test]
async fn a_refreshed_id_token_must_name_the_same_user() {
    let k = keys();
    let op = FakeOp::start(&["ES256"], &[&k.es]).await;
    let app = app(&op, None, |_| {});
    let token = login_with(&app, &op, &[], |n| {
        k.es.sign(&good(&op, n, SigningAlg::ES256))
    })
    .await
    .expect("signed in");
    let original = token.id_token_claims().expect("claims");
    let refreshed = |sub: &str| {
        let mut claims = op.claims(CLIENT, None);
        claims["sub"] = sub.into();
        claims["auth_time"] = original["auth_time"].clone();
        k.es.sign(&claims)
    };
    op.answer_with(Some(refreshed("user-1")));
    let fresh = app.refresh(&token).await.expect("refreshed");
    assert_eq!(fresh.id_token_claims().expect("claims")["sub"], "user-1");
    op.answer_with(Some(refreshed("user-2")));
    let err = app.refresh(&token).await;
    assert_eq!(id_token_error(err), IdTokenError::RefreshMismatch("sub"));
    op.answer_with(None);
    let kept = app
        .refresh(&token)
        .await
        .expect("refreshed without an ID token");
    assert_eq!(
        kept.id_token, token.id_token,
        "the login's ID token is kept"
    );
}

#[tokio::test]
async fn a_key_set_that_cannot_be_fetched_is_not_asked_for_again_at_once() {
    let k = keys();
    let op = FakeOp::start(&["ES256"], &[&k.es]).await;
    op.state
        .jwks_down
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let app = app(&op, None, |_| {});
    let err = login_with(&app, &op, &[], |n| {
        k.es.sign(&good(&op, n, SigningAlg::ES256))
    })
    .await;
    assert!(
        matches!(err, Err(ClientError::InvalidResponse(_))),
        "{err:?}"
    );
    let err = login_with(&app, &op, &[], |n| {
        k.es.sign(&good(&op, n, SigningAlg::ES256))
    })
    .await;
    assert_eq!(id_token_error(err), IdTokenError::UnknownKey);
    assert_eq!(
        op.jwks_fetches(),
        1,
        "the next attempt waits for the cooldown"
    );
}
