//! OpenID Connect ID tokens (OpenID Connect Core §3.1.3.7): the claims that tie an ID token
//! to this client and this login. The code flow checks them before it returns a token.

use crate::error::ClientError;
use latchkey_core::clock::UnixTime;
use subtle::ConstantTimeEq as _;

/// Checks the claims of an ID token received from the token endpoint, as OpenID Connect Core
/// §3.1.3.7 says: `iss` is the issuer (when known), `aud` contains the client (and `azp`, if
/// present, is the client), `exp` has not passed (`leeway` seconds of clock skew allowed),
/// and `nonce` is the one this login sent. The signature is not checked: §3.1.3.7 lets "the
/// TLS server validation" of the token endpoint stand in for it when the token comes straight
/// from there, as it does here. Returns the claims.
pub fn check_id_token(
    id_token: &str,
    client_id: &str,
    issuer: Option<&str>,
    nonce: Option<&str>,
    now: UnixTime,
    leeway: u64,
) -> Result<serde_json::Map<String, serde_json::Value>, ClientError> {
    let bad = |why: &str| ClientError::IdToken(why.to_owned());
    let claims = crate::token::jwt_claims(id_token).ok_or_else(|| bad("not a JWT"))?;
    let text = |name: &str| claims.get(name).and_then(|v| v.as_str());
    if issuer.is_some_and(|issuer| text("iss") != Some(issuer)) {
        return Err(bad("iss is another issuer"));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(serde_json::Value::String(one)) => vec![one.as_str()],
        Some(serde_json::Value::Array(many)) => many.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    if !audiences.contains(&client_id) {
        return Err(bad("aud does not name this client"));
    }
    // An `azp` that is not a string names no client, so it is not this one: it is refused,
    // not read as absent.
    if let Some(azp) = claims.get("azp") {
        if azp.as_str() != Some(client_id) {
            return Err(bad("azp is another client"));
        }
    } else if audiences.len() > 1 {
        return Err(bad("several audiences and no azp"));
    }
    let exp = claims.get("exp").and_then(serde_json::Value::as_i64);
    let leeway = i64::try_from(leeway).unwrap_or(0);
    if exp.is_none_or(|exp| now.0 > exp.saturating_add(leeway)) {
        return Err(bad("expired or without exp"));
    }
    if let Some(expected) = nonce {
        // §3.1.3.7 step 11: "If a nonce value was sent in the Authentication Request, a nonce
        // Claim MUST be present and its value checked".
        let got = text("nonce").unwrap_or("");
        if !bool::from(got.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(bad("nonce is not this login's"));
        }
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn jwt(claims: serde_json::Value) -> String {
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!(
            "{}.{}.{}",
            b64(br#"{"alg":"RS256","kid":"k1"}"#),
            b64(claims.to_string().as_bytes()),
            b64(b"signature")
        )
    }

    #[test]
    fn id_tokens_must_name_the_issuer_the_client_and_the_nonce_and_be_unexpired() {
        let now = UnixTime(1_000);
        let good = serde_json::json!({
            "iss": "https://as.example", "aud": "app", "sub": "u1", "exp": 1_100, "nonce": "n-1"
        });
        let check = |claims: &serde_json::Value, nonce: Option<&str>| {
            check_id_token(
                &jwt(claims.clone()),
                "app",
                Some("https://as.example"),
                nonce,
                now,
                60,
            )
        };
        assert_eq!(check(&good, Some("n-1")).expect("valid")["sub"], "u1");
        let with = |key: &str, value: serde_json::Value| {
            let mut c = good.clone();
            c[key] = value;
            check(&c, Some("n-1"))
        };
        assert!(with("iss", "https://evil.example".into()).is_err());
        assert!(with("aud", "other-app".into()).is_err());
        assert!(
            with("aud", serde_json::json!(["app", "other"])).is_err(),
            "no azp"
        );
        assert!(with("exp", 900.into()).is_err());
        assert!(with("exp", 950.into()).is_ok(), "within the leeway");
        assert!(with("nonce", "n-2".into()).is_err());
        let mut azp = good.clone();
        azp["aud"] = serde_json::json!(["app", "other"]);
        azp["azp"] = "app".into();
        assert!(check(&azp, Some("n-1")).is_ok());
        let mut no_nonce = good.clone();
        no_nonce.as_object_mut().map(|o| o.remove("nonce"));
        assert!(check(&no_nonce, Some("n-1")).is_err(), "a nonce was sent");
        assert!(check(&no_nonce, None).is_ok());
        assert!(
            check_id_token("not.a.jwt!", "app", None, None, now, 60).is_err(),
            "garbage"
        );
    }

    /// Found by the `jwt` fuzz target: an `azp` claim that is not a string was taken as
    /// absent, so a token whose authorized party is malformed passed as this client's.
    #[test]
    fn issue_14_non_string_azp_is_refused() {
        let claims = serde_json::json!({
            "iss": "https://as.example", "aud": "app", "exp": 1_100, "azp": 1_000_030
        });
        let checked = check_id_token(
            &jwt(claims),
            "app",
            Some("https://as.example"),
            None,
            UnixTime(1_000),
            60,
        );
        assert!(checked.is_err(), "{checked:?}");
    }
}
