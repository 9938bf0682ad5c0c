//! Table-driven checks of the claims and of the algorithm policy; signatures are tested
//! end to end against a fake provider in `tests/openid.rs`.

use super::*;
use serde_json::{Value, json};

const NOW: UnixTime = UnixTime(1_000);
const AT: &str = "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y";

fn good() -> Value {
    json!({
        "iss": "https://as.example", "aud": "app", "sub": "u1", "exp": 1_100, "iat": 990,
        "nonce": "n-1", "auth_time": 900, "at_hash": "77QmUPtjPfzWtF2AnpK9RQ"
    })
}

fn expect() -> Expectations<'static> {
    Expectations {
        nonce: Some("n-1"),
        max_age: Some(300),
        access_token: Some(AT),
        ..Expectations::new("app", Some("https://as.example"), NOW)
    }
}

fn check(claims: &Value, expect: &Expectations<'_>) -> Result<(), IdTokenError> {
    let Value::Object(map) = claims else {
        panic!("claims are an object")
    };
    check_claims(map, SigningAlg::RS256, expect)
}

fn with(key: &str, value: Value) -> Value {
    let mut c = good();
    c[key] = value;
    c
}

fn without(key: &str) -> Value {
    let mut c = good();
    c.as_object_mut().map(|o| o.remove(key));
    c
}

#[test]
fn a_token_for_this_login_passes() {
    assert_eq!(check(&good(), &expect()), Ok(()));
    assert_eq!(
        check(&with("exp", 950.into()), &expect()),
        Ok(()),
        "within the leeway"
    );
    let mut azp = with("aud", json!(["app", "other"]));
    azp["azp"] = "app".into();
    assert_eq!(check(&azp, &expect()), Ok(()));
    let lax = Expectations::new("app", Some("https://as.example"), NOW);
    assert_eq!(check(&without("nonce"), &lax), Ok(()), "no nonce was sent");
    assert_eq!(
        check(&without("at_hash"), &expect()),
        Ok(()),
        "at_hash is optional in the code flow"
    );
}

#[test]
fn each_claim_check_refuses_with_its_own_error() {
    use IdTokenError as E;
    let cases: Vec<(&str, Value, IdTokenError)> = vec![
        (
            "other issuer",
            with("iss", "https://evil.example".into()),
            E::Issuer,
        ),
        ("no issuer", without("iss"), E::MissingClaim("iss")),
        ("no subject", without("sub"), E::MissingClaim("sub")),
        (
            "empty subject",
            with("sub", "".into()),
            E::MissingClaim("sub"),
        ),
        (
            "other audience",
            with("aud", "other-app".into()),
            E::Audience,
        ),
        ("no audience", without("aud"), E::MissingClaim("aud")),
        (
            "several audiences, no azp",
            with("aud", json!(["app", "other"])),
            E::AuthorizedParty,
        ),
        (
            "azp of another client",
            with("azp", "other".into()),
            E::AuthorizedParty,
        ),
        // Found by the `jwt` fuzz target (issue 14): a non-string azp was read as absent.
        (
            "azp not a string",
            with("azp", 1_000_030.into()),
            E::AuthorizedParty,
        ),
        ("expired", with("exp", 900.into()), E::Expired),
        ("no exp", without("exp"), E::MissingClaim("exp")),
        (
            "exp not a number",
            with("exp", "1100".into()),
            E::MissingClaim("exp"),
        ),
        (
            "issued in the future",
            with("iat", 1_100.into()),
            E::IssuedInFuture,
        ),
        ("no iat", without("iat"), E::MissingClaim("iat")),
        (
            "another login's nonce",
            with("nonce", "n-2".into()),
            E::Nonce,
        ),
        ("no nonce although one was sent", without("nonce"), E::Nonce),
        (
            "authentication older than max_age",
            with("auth_time", 600.into()),
            E::AuthTooOld,
        ),
        (
            "no auth_time although max_age was sent",
            without("auth_time"),
            E::MissingClaim("auth_time"),
        ),
        (
            "at_hash of another access token",
            with("at_hash", "AAAAAAAAAAAAAAAAAAAAAA".into()),
            E::AccessTokenHash,
        ),
    ];
    for (what, claims, want) in cases {
        assert_eq!(check(&claims, &expect()), Err(want), "{what}");
    }
}

#[test]
fn the_front_channel_requires_at_hash_and_c_hash() {
    let code = "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk";
    let front = Expectations {
        front_channel: true,
        code: Some(code),
        ..expect()
    };
    let mut both = good();
    both["c_hash"] = "LDktKdoQak3Pk0cnXxCltA".into();
    assert_eq!(check(&both, &front), Ok(()));
    let mut no_at = both.clone();
    no_at.as_object_mut().map(|o| o.remove("at_hash"));
    assert_eq!(check(&no_at, &front), Err(IdTokenError::AccessTokenHash));
    assert_eq!(check(&good(), &front), Err(IdTokenError::CodeHash));
    let mut wrong_c = both;
    wrong_c["c_hash"] = "77QmUPtjPfzWtF2AnpK9RQ".into();
    assert_eq!(check(&wrong_c, &front), Err(IdTokenError::CodeHash));
}

#[test]
fn the_policy_accepts_advertised_or_registered_asymmetric_algs_only() {
    use IdTokenError as E;
    let advertised = |algs: &[&str]| AlgPolicy {
        advertised: algs.iter().map(|a| (*a).to_owned()).collect(),
        registered: None,
        has_secret: true,
    };
    let es = advertised(&["ES256", "EdDSA", "HS256"]);
    let unknown = advertised(&[]);
    let registered_hs = AlgPolicy {
        registered: Some(SigningAlg::HS256),
        ..advertised(&["RS256"])
    };
    let public = AlgPolicy {
        has_secret: false,
        registered: Some(SigningAlg::HS256),
        ..advertised(&["RS256", "HS256"])
    };
    let cases: Vec<(&AlgPolicy, &str, Result<SigningAlg, IdTokenError>)> = vec![
        (&es, "ES256", Ok(SigningAlg::ES256)),
        (&es, "EdDSA", Ok(SigningAlg::EdDSA)),
        (&es, "RS256", Err(E::AlgNotAccepted("RS256".into()))),
        (&es, "HS256", Err(E::AlgNotAccepted("HS256".into()))),
        (&es, "none", Err(E::Unsigned)),
        (&es, "NoNe", Err(E::Unsigned)),
        (&es, "ES384", Err(E::AlgNotAccepted("ES384".into()))),
        (&unknown, "RS256", Ok(SigningAlg::RS256)),
        (&unknown, "ES256", Err(E::AlgNotAccepted("ES256".into()))),
        (&registered_hs, "HS256", Ok(SigningAlg::HS256)),
        (
            &registered_hs,
            "RS256",
            Err(E::AlgNotAccepted("RS256".into())),
        ),
        (&public, "HS256", Err(E::SymmetricWithoutSecret)),
    ];
    for (policy, alg, want) in cases {
        assert_eq!(policy.accept(alg), want, "{alg} under {policy:?}");
    }
}

#[test]
fn a_refreshed_id_token_must_name_the_same_user_and_authentication() {
    let claims = |v: Value| match v {
        Value::Object(map) => map,
        _ => panic!("object"),
    };
    let original = claims(good());
    let mut fresh = without("nonce");
    fresh["iat"] = 2_000.into();
    assert_eq!(check_refreshed(&original, &claims(fresh.clone())), Ok(()));
    let cases = [
        ("sub", json!("u2")),
        ("iss", json!("https://evil.example")),
        ("aud", json!("other")),
        ("auth_time", json!(950)),
        ("nonce", json!("n-2")),
    ];
    for (name, value) in cases {
        let mut changed = fresh.clone();
        changed[name] = value;
        assert_eq!(
            check_refreshed(&original, &claims(changed)),
            Err(IdTokenError::RefreshMismatch(name)),
            "{name}"
        );
    }
}

#[test]
fn garbage_is_malformed_not_a_panic() {
    for raw in ["", "not.a.jwt!", "a.b", "....", "eyJ9.eyJ9.x"] {
        assert!(matches!(
            decode_unverified(raw),
            Err(IdTokenError::Malformed)
        ));
        assert_eq!(
            verify(raw, SigningAlg::RS256, Keys::Public(&[]), &expect()).err(),
            Some(IdTokenError::Malformed)
        );
    }
}
