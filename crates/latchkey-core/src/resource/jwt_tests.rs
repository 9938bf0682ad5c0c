//! Tests of [`RemoteJwks`]: what a remote resource server fetches, keeps and refuses.

use super::*;
use crate::access_jwt::Audience;
use crate::clock::ManualClock;
use crate::jose::KeySet;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Serves the JWKS of whatever key set it holds now, counting fetches.
struct Fetcher {
    keys: Mutex<Arc<KeySet>>,
    fetches: Arc<AtomicUsize>,
    extra: Vec<Value>,
}

impl KeySetFetcher for Arc<Fetcher> {
    async fn fetch(&self, _uri: &str) -> Result<Value, String> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        let keys = Arc::clone(&self.keys.lock().unwrap_or_else(|e| e.into_inner()));
        let mut doc = JwsSigner::jwks(keys.as_ref());
        if let Some(list) = doc.get_mut("keys").and_then(Value::as_array_mut) {
            list.extend(self.extra.iter().cloned());
        }
        Ok(doc)
    }
}

fn claims(now: i64) -> AccessTokenClaims {
    AccessTokenClaims {
        iss: "https://as.example".into(),
        exp: now + 60,
        aud: Audience::One("https://rs.example".into()),
        sub: "alice".into(),
        client_id: "c".into(),
        iat: now,
        jti: "j".into(),
        scope: None,
        auth_time: None,
        acr: None,
        amr: None,
        cnf: None,
        act: None,
    }
}

fn sign(keys: &KeySet, alg: SigningAlg, now: i64) -> String {
    keys.sign(Some(alg), TYP, &claims(now)).expect("sign")
}

#[tokio::test]
async fn remote_keys_are_fetched_once_and_refetched_for_a_new_kid_at_most_every_interval() {
    let clock = Arc::new(ManualClock::new(UnixTime(1_000_000)));
    let first = Arc::new(KeySet::generate(&SigningAlg::ALL, clock.clone()).expect("keys"));
    let fetcher = Arc::new(Fetcher {
        keys: Mutex::new(Arc::clone(&first)),
        fetches: Arc::new(AtomicUsize::new(0)),
        extra: vec![
            // An HMAC key is never used, even under a kid a token names.
            serde_json::json!({"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}),
        ],
    });
    let remote = RemoteJwks::new(
        Arc::clone(&fetcher),
        "https://as.example/jwks",
        clock.clone(),
    );
    let now = clock.now().0;
    for alg in SigningAlg::ALL {
        let token = sign(&first, alg, now);
        let verified = remote.verify_signature(&token).await.expect("verifies");
        assert_eq!(verified.alg, alg);
    }
    assert_eq!(
        fetcher.fetches.load(Ordering::SeqCst),
        1,
        "one fetch for all"
    );

    // The provider rotates: a token under a new kid triggers one refetch...
    let second = Arc::new(KeySet::generate(&[SigningAlg::Es256], clock.clone()).expect("keys"));
    *fetcher.keys.lock().expect("lock") = Arc::clone(&second);
    clock.advance(31);
    let rotated = sign(&second, SigningAlg::Es256, clock.now().0);
    assert!(remote.verify_signature(&rotated).await.is_ok());
    assert_eq!(fetcher.fetches.load(Ordering::SeqCst), 2);

    // ...but forged kids cannot make it fetch on every request.
    let stranger = KeySet::generate(&[SigningAlg::Es256], clock.clone()).expect("keys");
    for _ in 0..5 {
        let forged = sign(&stranger, SigningAlg::Es256, clock.now().0);
        assert_eq!(
            remote.verify_signature(&forged).await.err(),
            Some(JoseError::UnknownKey)
        );
    }
    assert_eq!(fetcher.fetches.load(Ordering::SeqCst), 2, "rate limited");
    let hmac = {
        let mut h = jsonwebtoken::Header::new(Algorithm::HS256);
        h.kid = Some("hmac".into());
        jsonwebtoken::encode(
            &h,
            &claims(clock.now().0),
            &jsonwebtoken::EncodingKey::from_secret(b"secret"),
        )
        .expect("hs256")
    };
    assert_eq!(
        remote.verify_signature(&hmac).await.err(),
        Some(JoseError::Algorithm)
    );
}

#[tokio::test]
async fn a_remote_verifier_applies_rfc9068_checks_with_leeway() {
    let clock = Arc::new(ManualClock::new(UnixTime(1_000_000)));
    let keys = Arc::new(KeySet::generate(&[SigningAlg::EdDsa], clock.clone()).expect("keys"));
    let fetcher = Arc::new(Fetcher {
        keys: Mutex::new(Arc::clone(&keys)),
        fetches: Arc::new(AtomicUsize::new(0)),
        extra: Vec::new(),
    });
    let remote = RemoteJwks::new(fetcher, "https://as.example/jwks", clock.clone());
    let store = crate::store::memory::MemoryStore::new();
    let verifier = JwtVerifier::new(
        remote,
        super::super::StoreVerifier::new(store, clock.clone()),
        "https://as.example",
        "https://rs.example",
        clock.clone(),
    )
    .leeway(30)
    .cache_capacity(1);
    let token = Secret::new(sign(&keys, SigningAlg::EdDsa, clock.now().0));
    let Verified::Active(access) = verifier.verify(&token).await.expect("answer") else {
        panic!("valid token refused");
    };
    assert_eq!(access.subject.as_deref(), Some("alice"));
    // Within the leeway after exp (from the cache), then refused.
    clock.advance(60 + 29);
    assert!(matches!(
        verifier.verify(&token).await,
        Ok(Verified::Active(_))
    ));
    clock.advance(1);
    assert_eq!(verifier.verify(&token).await.ok(), Some(Verified::Inactive));
}
