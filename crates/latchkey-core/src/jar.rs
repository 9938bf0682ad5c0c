//! Signed request objects (JAR, RFC 9101; OpenID Connect Core §6.1): an authorization
//! request sent as a JWT in the `request` parameter, at `/authorize` or at the pushed
//! authorization request endpoint, signed with a key of the client's registered JWK Set.
//!
//! The object is checked in this order, each refusal an `invalid_request_object`: size and
//! shape, header (an `alg` of the server's allow-list and the client's registered
//! `request_object_signing_alg`, never `none`, never an HMAC, no `crit`), signature with a
//! key of the client's `jwks` or `jwks_uri` (the lookup and the "which key suits which alg"
//! rule of [`crate::client_assertion`]), then claims: `iss` = the client id, `aud` = this
//! server's issuer, `exp` required and at most [`RequestObjectConfig::max_lifetime`] ahead,
//! `nbf`/`iat` not in the future, `client_id` (when present) = the client id.
//!
//! **Which parameters count.** RFC 9101 §6.3: "The authorization server MUST only use the
//! parameters in the Request Object, even if the same parameter is provided in the query
//! parameter." For an OpenID Connect request (the parameters outside carry `scope` with
//! `openid`), OpenID Connect Core §6.1 lets parameters outside the object be used, with the
//! object's values superseding them, and requires the outside `response_type` (when sent) to
//! equal the object's. The outside `client_id` is required either way, and names the client
//! whose keys sign.
//!
//! Not supported: request objects by reference (`request_uri` to an https URL, RFC 9101
//! §5.2; the pushed request's own `request_uri` is RFC 9126's), encrypted request objects
//! (JWE), and HMAC-signed ones (`client_secret`-keyed). A request object is not single use:
//! replaying one only starts another authorization, which the user still has to pass.

use crate::client::Client;
use crate::client_assertion::{AssertionKeys, PRIVATE_KEY_ALGS};
use crate::clock::UnixTime;
use crate::error::{ErrorCode, OAuthError};
use crate::jose::foreign::{self, Jws, Malformed};
use crate::params::{Params, REPEATABLE};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

/// The longest request object read: a few KiB of parameters and a signature fit easily.
pub const MAX_REQUEST_OBJECT_LEN: usize = 32 * 1024;

/// How far in the future `iat` and `nbf` may be, for clocks that disagree a little.
pub const LEEWAY: i64 = 60;

/// JWT claims that describe the object itself, not the authorization request: never taken
/// as authorization parameters.
const JWT_CLAIMS: [&str; 6] = ["iss", "aud", "exp", "iat", "nbf", "jti"];

/// Settings of request objects, in [`crate::config::Config::request_objects`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestObjectConfig {
    /// Accept the `request` parameter at `/authorize` and at the PAR endpoint (and advertise
    /// `request_parameter_supported`). On by default; off, `request` is refused with
    /// `request_not_supported`.
    pub enabled: bool,
    /// Require every authorization request to come as a signed request object (RFC 9101
    /// §10.5 `require_signed_request_object`); a client can also be required alone (its
    /// metadata of the same name).
    pub required: bool,
    /// The signing algorithms accepted: a subset of
    /// [`crate::client_assertion::PRIVATE_KEY_ALGS`] (asymmetric only, never `none`).
    pub algs: Vec<String>,
    /// How far ahead `exp` may be, in seconds (default 3600).
    pub max_lifetime: u64,
}

impl Default for RequestObjectConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            required: false,
            algs: PRIVATE_KEY_ALGS.iter().map(|a| (*a).to_owned()).collect(),
            max_lifetime: 3600,
        }
    }
}

impl RequestObjectConfig {
    /// Checks the settings; the reason when they are unusable.
    pub fn validate(&self) -> Result<(), String> {
        if self.algs.is_empty() {
            return Err("request object algs must not be empty".into());
        }
        if let Some(alg) = self
            .algs
            .iter()
            .find(|a| !PRIVATE_KEY_ALGS.contains(&a.as_str()))
        {
            return Err(format!(
                "request object alg {alg:?} is not one of {}",
                PRIVATE_KEY_ALGS.join(", ")
            ));
        }
        if !(60..=86_400).contains(&self.max_lifetime) {
            return Err("request object max lifetime must be 60 to 86400 seconds".into());
        }
        Ok(())
    }
}

/// Whether `alg` may be registered as a client's `request_object_signing_alg`: one of the
/// asymmetric algorithms this server verifies.
pub fn registrable_alg(alg: &str) -> bool {
    PRIVATE_KEY_ALGS.contains(&alg)
}

fn refused(description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRequestObject, description)
}

/// The refusal for a request object that is not a readable compact JWS.
fn malformed(why: Malformed) -> OAuthError {
    refused(match why {
        Malformed::NotCompact => "request object is not a compact JWS",
        Malformed::Encrypted => "encrypted request objects are not supported",
        Malformed::NotBase64url => "request object is not base64url",
        Malformed::NotObject => "request object part is not a JSON object",
    })
}

/// A NumericDate claim; a malformed one is refused.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, OAuthError> {
    foreign::numeric_date(claims, name)
        .map_err(|()| refused("request object has a malformed time claim"))
}

/// Where and when a request object is being checked.
#[derive(Debug)]
pub struct Context<'a> {
    /// This server's issuer identifier: the one `aud` accepted.
    pub issuer: &'a str,
    /// The settings in force.
    pub config: &'a RequestObjectConfig,
    /// Now.
    pub now: UnixTime,
}

/// Verifies the request object `jwt` sent by `client` and returns its claims that are
/// authorization parameters (the JWT's own claims removed).
pub async fn verify(
    jwt: &str,
    client: &Client,
    keys: &AssertionKeys,
    cx: &Context<'_>,
) -> Result<Map<String, Value>, OAuthError> {
    if jwt.len() > MAX_REQUEST_OBJECT_LEN {
        return Err(refused("request object too large"));
    }
    let jws = Jws::parse(jwt).map_err(malformed)?;
    let alg_name = jws.alg();
    // RFC 9101 §6.1 lets an unsigned object (`alg` `none`) through; this server does not:
    // the object is what proves the parameters come from the client (RFC 9101 §10.2).
    if alg_name == "none" || jws.unsigned() {
        return Err(refused("request object must be signed"));
    }
    let allowed = cx.config.algs.iter().any(|a| a == alg_name)
        && PRIVATE_KEY_ALGS.contains(&alg_name)
        && client
            .metadata
            .request_object_signing_alg
            .as_deref()
            .is_none_or(|registered| registered == alg_name);
    let alg: Algorithm = match alg_name.parse() {
        Ok(alg) if allowed => alg,
        _ => return Err(refused("request object alg not allowed for this client")),
    };
    if jws.has_crit() {
        return Err(refused("request object has critical header parameters"));
    }
    let candidates = crate::client_assertion::client_keys(client, jws.kid(), keys)
        .await
        .map_err(|e| {
            let detail = e
                .detail()
                .or(e.description())
                .unwrap_or("no keys")
                .to_owned();
            refused("the client's registered keys are unusable").with_detail(detail)
        })?;
    if candidates.is_empty() {
        return Err(refused("no registered key matches the request object"));
    }
    if !jws.signed_by(&candidates, alg) {
        return Err(refused("request object signature invalid"));
    }
    let mut claims = jws.claims().map_err(malformed)?;
    check_claims(&claims, client.id.as_str(), cx)?;
    claims.retain(|name, _| !JWT_CLAIMS.contains(&name.as_str()));
    Ok(claims)
}

/// The claims checks of RFC 9101 §4, §6.3 and §10.8 once the signature holds.
fn check_claims(
    claims: &Map<String, Value>,
    client_id: &str,
    cx: &Context<'_>,
) -> Result<(), OAuthError> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    // RFC 9101 §10.8: "the iss claim … MUST be the client_id of the client", so an object
    // one client signed cannot be passed off as another's.
    if text("iss") != Some(client_id) {
        return Err(refused("request object iss must be the client id"));
    }
    // §6.3: "The client ID values in the client_id request parameter and in the Request
    // Object client_id claim MUST be identical."
    if claims.get("client_id").is_some() && text("client_id") != Some(client_id) {
        return Err(refused("request object client_id must be the client id"));
    }
    // §4: "the aud value SHOULD be or include the authorization server's Issuer Identifier".
    let ours = |v: &Value| v.as_str() == Some(cx.issuer);
    let aud_ok = match claims.get("aud") {
        Some(Value::Array(values)) => values.len() <= 16 && values.iter().any(ours),
        Some(value) => ours(value),
        None => false,
    };
    if !aud_ok {
        return Err(refused("request object aud must be this server's issuer"));
    }
    // §10.2 (and FAPI 2.0): a signed request lives briefly; `exp` is required and bounded.
    let Some(exp) = numeric_date(claims, "exp")? else {
        return Err(refused("request object needs a numeric exp"));
    };
    if crate::store::expired(UnixTime(exp), cx.now) {
        return Err(refused("request object expired"));
    }
    let horizon = i64::try_from(cx.config.max_lifetime).unwrap_or(i64::MAX);
    if exp > cx.now.0.saturating_add(horizon) {
        return Err(refused("request object exp too far ahead"));
    }
    for name in ["nbf", "iat"] {
        if numeric_date(claims, name)?.is_some_and(|at| at > cx.now.0.saturating_add(LEEWAY)) {
            return Err(refused("request object not yet valid"));
        }
    }
    // §4: "The Request Object MUST NOT include the request and request_uri parameters".
    if claims.contains_key("request") || claims.contains_key("request_uri") {
        return Err(refused(
            "request object must not hold request or request_uri",
        ));
    }
    Ok(())
}

/// The authorization parameters a request object stands for, as form parameters: `claims`
/// (an object) as its JSON text, numbers and booleans as their text, and arrays only for the
/// repeatable parameters (`resource`).
pub fn to_params(
    claims: &Map<String, Value>,
    outside: Option<&Params>,
) -> Result<Params, OAuthError> {
    let mut text = form_urlencoded::Serializer::new(String::new());
    if let Some(outside) = outside {
        for (name, _) in outside.iter() {
            if name == "request" || claims.contains_key(name) {
                continue;
            }
            for value in outside.get_all(name) {
                text.append_pair(name, value);
            }
        }
    }
    for (name, value) in claims {
        match value {
            Value::Null => {}
            Value::String(s) => {
                text.append_pair(name, s);
            }
            Value::Number(n) => {
                text.append_pair(name, &n.to_string());
            }
            Value::Bool(b) => {
                text.append_pair(name, if *b { "true" } else { "false" });
            }
            Value::Object(_) => {
                text.append_pair(name, &value.to_string());
            }
            Value::Array(items) if REPEATABLE.contains(&name.as_str()) => {
                for item in items {
                    let Some(item) = item.as_str() else {
                        return Err(refused("request object array values must be strings"));
                    };
                    text.append_pair(name, item);
                }
            }
            Value::Array(_) => {
                return Err(refused(
                    "request object parameter must be a string, not an array",
                ));
            }
        }
    }
    let text = text.finish();
    Params::parse(text.as_bytes()).map_err(|e| {
        let description = e
            .description()
            .unwrap_or("unreadable parameters")
            .to_owned();
        refused("request object parameters are invalid").with_detail(description)
    })
}
