//! JWT parsing on the client side: the ID token a remote provider's token endpoint returns,
//! split (`latchkey_client::id_token::decode_unverified`) and its claims checked
//! (`check_claims`, OpenID Connect Core §3.1.3.7); signatures are checked before the claims in
//! `verify`, which the `openid` tests cover.
//!
//! The input is the token itself, or, when it starts with `{`, a JSON payload that the
//! harness wraps as `header.base64url(payload).signature` so the claim checks are reached.
//!
//! Invariants: never panics; accepted claims name the issuer, have this client in `aud`
//! (and as `azp` when present or when there are several audiences), are unexpired within the
//! leeway, and carry this login's nonce.
#![no_main]

use base64::Engine as _;
use latchkey_client::SigningAlg;
use latchkey_client::id_token::{Expectations, check_claims, decode_unverified};
use latchkey_core::clock::UnixTime;
use libfuzzer_sys::fuzz_target;

const CLIENT: &str = "web";
const ISSUER: &str = "https://issuer.example";
const NONCE: &str = "n-0S6_WzA2Mj";
const NOW: i64 = 1_000_000;
const LEEWAY: u64 = 60;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let token = if text.starts_with('{') {
        format!(
            "eyJhbGciOiJSUzI1NiJ9.{}.c2ln",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text.as_bytes())
        )
    } else {
        text.into_owned()
    };
    let Ok(decoded) = decode_unverified(&token) else {
        return;
    };
    let expect = Expectations {
        nonce: Some(NONCE),
        leeway: LEEWAY,
        ..Expectations::new(CLIENT, Some(ISSUER), UnixTime(NOW))
    };
    let claims = decoded.claims;
    if check_claims(&claims, SigningAlg::RS256, &expect).is_err() {
        return;
    }
    assert_eq!(claims.get("iss").and_then(|v| v.as_str()), Some(ISSUER));
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(serde_json::Value::String(one)) => vec![one.as_str()],
        Some(serde_json::Value::Array(many)) => many.iter().filter_map(|v| v.as_str()).collect(),
        other => panic!("accepted aud {other:?}"),
    };
    assert!(audiences.contains(&CLIENT));
    match claims.get("azp") {
        Some(azp) => assert_eq!(azp.as_str(), Some(CLIENT)),
        None => assert!(audiences.len() <= 1, "several audiences and no azp"),
    }
    let exp = claims.get("exp").and_then(|v| v.as_i64()).expect("exp");
    assert!(
        exp >= NOW - LEEWAY as i64,
        "expired token accepted: exp {exp}"
    );
    assert_eq!(claims.get("nonce").and_then(|v| v.as_str()), Some(NONCE));
});
