use super::proof::ProofKey;
use super::*;
use crate::http::Method;
use crate::store::replay::MemoryReplayCache;
use serde_json::json;

const URI: &str = "https://as.example/token";
const NOW: UnixTime = UnixTime(1_800_000_000);

fn expected() -> Expected<'static> {
    Expected {
        method: "POST",
        uri: URI,
        access_token: None,
    }
}

fn why(result: Result<VerifiedProof, DpopError>) -> &'static str {
    match result {
        Err(DpopError::Invalid(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn a_good_proof_names_its_key() {
    let key = ProofKey::generate().expect("key");
    let proof = key.proof("POST", URI, None, None, NOW.0).expect("proof");
    let verified = verify_proof(&DpopConfig::default(), &proof, expected(), NOW).expect("valid");
    assert_eq!(verified.jkt, key.jkt());
    // htu normalization: case of scheme and host, default port, query ignored.
    let proof = key
        .proof(
            "POST",
            "HTTPS://AS.example:443/token?x=1",
            None,
            None,
            NOW.0,
        )
        .expect("proof");
    assert!(verify_proof(&DpopConfig::default(), &proof, expected(), NOW).is_ok());
}

#[test]
fn each_rule_of_rfc9449_4_3_refuses() {
    let config = DpopConfig::default();
    let key = ProofKey::generate().expect("key");
    let claims = |overrides: serde_json::Value| {
        let mut c = json!({"jti": "j1", "htm": "POST", "htu": URI, "iat": NOW.0});
        for (k, v) in overrides.as_object().expect("object") {
            c[k] = v.clone();
        }
        c
    };
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk()});
    let sign = |h: &serde_json::Value, c: &serde_json::Value| key.sign(h, c).expect("signed");
    let check = |proof: &str| why(verify_proof(&config, proof, expected(), NOW));

    assert!(check(&sign(&header, &claims(json!({"htm": "GET"})))).contains("htm"));
    assert!(
        check(&sign(
            &header,
            &claims(json!({"htu": "https://as.example/other"}))
        ))
        .contains("htu")
    );
    assert!(check(&sign(&header, &claims(json!({"iat": NOW.0 - 120})))).contains("iat"));
    assert!(check(&sign(&header, &claims(json!({"iat": NOW.0 + 120})))).contains("iat"));
    assert!(check(&sign(&header, &claims(json!({"jti": ""})))).contains("jti"));
    let mut typ = header.clone();
    typ["typ"] = "JWT".into();
    assert!(check(&sign(&typ, &claims(json!({})))).contains("typ"));
    let mut alg = header.clone();
    alg["alg"] = "ES384".into();
    assert!(check(&sign(&alg, &claims(json!({})))).contains("alg"));
    let mut private = header.clone();
    private["jwk"]["d"] = "secret".into();
    assert!(check(&sign(&private, &claims(json!({})))).contains("public"));
    // Another key's jwk in the header: the signature does not verify with it.
    let other = ProofKey::generate().expect("key");
    let mut swapped = header.clone();
    swapped["jwk"] = other.jwk().clone();
    assert!(check(&sign(&swapped, &claims(json!({})))).contains("signature"));
    assert!(check("a.b").contains("compact"));
    assert!(check(&"x".repeat(MAX_PROOF_LEN + 1)).contains("large"));
}

#[test]
fn ath_binds_the_proof_to_its_access_token() {
    let key = ProofKey::generate().expect("key");
    let token = Secret::new("the-access-token");
    fn at(t: Option<&Secret>) -> Expected<'_> {
        Expected {
            method: "GET",
            uri: "https://rs.example/api",
            access_token: t,
        }
    }
    let good = key
        .proof("GET", "https://rs.example/api", Some(&token), None, NOW.0)
        .expect("proof");
    assert!(verify_proof(&DpopConfig::default(), &good, at(Some(&token)), NOW).is_ok());
    let other = Secret::new("another-token");
    assert!(
        why(verify_proof(
            &DpopConfig::default(),
            &good,
            at(Some(&other)),
            NOW
        ))
        .contains("ath")
    );
    let without = key
        .proof("GET", "https://rs.example/api", None, None, NOW.0)
        .expect("proof");
    assert!(
        why(verify_proof(
            &DpopConfig::default(),
            &without,
            at(Some(&token)),
            NOW
        ))
        .contains("ath")
    );
}

#[test]
fn a_required_nonce_is_asked_for_then_accepted() {
    let config = DpopConfig {
        require_nonce: true,
        nonce_secret: Some(Secret::new("nonce secret of 32 bytes........")),
        ..DpopConfig::default()
    };
    let key = ProofKey::generate().expect("key");
    let bare = key.proof("POST", URI, None, None, NOW.0).expect("proof");
    let Err(DpopError::UseNonce(nonce)) = verify_proof(&config, &bare, expected(), NOW) else {
        panic!("nonce required");
    };
    assert_eq!(config.current_nonce(NOW).as_deref(), Some(nonce.as_str()));
    let with = key
        .proof("POST", URI, None, Some(&nonce), NOW.0)
        .expect("proof");
    assert!(verify_proof(&config, &with, expected(), NOW).is_ok());
    let forged = key
        .proof(
            "POST",
            URI,
            None,
            Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            NOW.0,
        )
        .expect("proof");
    assert!(matches!(
        verify_proof(&config, &forged, expected(), NOW),
        Err(DpopError::UseNonce(_))
    ));
}

#[tokio::test]
async fn a_jti_is_accepted_once_and_a_repeated_header_refused() {
    let config = DpopConfig::default();
    let cache = MemoryReplayCache::default();
    let key = ProofKey::generate().expect("key");
    let proof = key.proof("POST", URI, None, None, NOW.0).expect("proof");
    let req = HttpRequest::new(Method::Post, "/token").with_header("dpop", proof.clone());
    let first = check(&config, &cache, &req, expected(), NOW)
        .await
        .expect("fresh");
    assert_eq!(first.map(|p| p.jkt).as_deref(), Some(key.jkt()));
    let again = check(&config, &cache, &req, expected(), NOW).await;
    assert!(matches!(again, Err(DpopError::Invalid(w)) if w.contains("replayed")));
    let twice = req.clone().with_header("dpop", proof);
    assert!(matches!(
        check(&config, &cache, &twice, expected(), NOW).await,
        Err(DpopError::Invalid(_))
    ));
    let none = HttpRequest::new(Method::Post, "/token");
    assert!(matches!(
        check(&config, &cache, &none, expected(), NOW).await,
        Ok(None)
    ));
}

#[test]
fn configuration_is_checked() {
    assert!(DpopConfig::default().validate().is_ok());
    let bad_alg = DpopConfig {
        algs: vec!["HS256".into()],
        ..DpopConfig::default()
    };
    assert!(bad_alg.validate().is_err());
    let none = DpopConfig {
        algs: vec![],
        ..DpopConfig::default()
    };
    assert!(none.validate().is_err());
}
