//! OpenID Connect ID tokens (OpenID Connect Core §3.1.3.7): the signature, by a key of the
//! provider (its JWK Set) or, for a client registered for HS256, by the client secret, and
//! the claims that tie the token to this client and this login.
//!
//! Pure checks: [`RemoteApp::verify_id_token`](crate::RemoteApp::verify_id_token) fetches the
//! keys and calls [`verify`].

use crate::jose::{Compact, SigningAlg};
use crate::jwks::PublicKey;
use latchkey_core::clock::UnixTime;
use std::sync::Arc;
use subtle::ConstantTimeEq as _;

/// The claims of an ID token, once verified.
pub type Claims = serde_json::Map<String, serde_json::Value>;

/// Why an ID token was refused; each check of OpenID Connect Core §3.1.3.7 has its own
/// variant, so an application (and a test) can tell a forged token from an expired one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdTokenError {
    /// Not a compact JWS with a JSON header and payload.
    #[error("not a signed JWT")]
    Malformed,
    /// `alg: none`: an unsigned token is never accepted.
    #[error("the token is unsigned (alg none)")]
    Unsigned,
    /// An algorithm the provider does not advertise, the client did not register, or this
    /// crate does not support.
    #[error("signature algorithm {0:?} is not accepted")]
    AlgNotAccepted(String),
    /// HS256, but the client has no secret to key it with (§10.1).
    #[error("HS256 needs a client secret, and this client has none")]
    SymmetricWithoutSecret,
    /// No key of the provider has this `kid` (or fits the algorithm), even after refetching.
    #[error("no provider key fits the token's kid and alg")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// A required claim is absent or of the wrong type.
    #[error("claim {0} is missing or malformed")]
    MissingClaim(&'static str),
    /// `iss` is not the provider's issuer.
    #[error("iss is another issuer")]
    Issuer,
    /// `aud` does not contain this client.
    #[error("aud does not name this client")]
    Audience,
    /// `azp` is another client, or absent with several audiences.
    #[error("azp is missing or another client")]
    AuthorizedParty,
    /// `exp` has passed.
    #[error("the token has expired")]
    Expired,
    /// `iat` is in the future.
    #[error("the token is issued in the future")]
    IssuedInFuture,
    /// `nonce` is not this login's.
    #[error("nonce is not this login's")]
    Nonce,
    /// `at_hash` does not match the access token, or is missing where required.
    #[error("at_hash does not match the access token")]
    AccessTokenHash,
    /// `c_hash` does not match the code, or is missing where required.
    #[error("c_hash does not match the code")]
    CodeHash,
    /// `auth_time` is older than the `max_age` the login asked for (§3.1.2.1).
    #[error("the authentication is older than max_age")]
    AuthTooOld,
    /// A refreshed ID token names another user or another authentication (§12.2).
    #[error("the refreshed ID token does not match the original: {0}")]
    RefreshMismatch(&'static str),
}

/// Which signature algorithms are accepted (OpenID Connect Core §3.1.3.7 step 7).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlgPolicy {
    /// The provider's `id_token_signing_alg_values_supported`; empty means unknown, and then
    /// only RS256 is accepted (Discovery §3: the list "MUST include RS256").
    pub advertised: Vec<String>,
    /// The client's registered `id_token_signed_response_alg`: when set, the only one
    /// accepted.
    pub registered: Option<SigningAlg>,
    /// Whether the client has a secret (the HS256 key).
    pub has_secret: bool,
}

impl AlgPolicy {
    /// The algorithm of a token whose header says `raw`, if accepted.
    pub fn accept(&self, raw: &str) -> Result<SigningAlg, IdTokenError> {
        if raw.eq_ignore_ascii_case("none") {
            return Err(IdTokenError::Unsigned);
        }
        let Some(alg) = SigningAlg::parse(raw) else {
            return Err(IdTokenError::AlgNotAccepted(raw.to_owned()));
        };
        // §10.1: "the octets of the UTF-8 representation of the client_secret" are the key:
        // a client without one cannot check the token, and one that did not register HS256
        // must not let a token choose it.
        if alg.is_symmetric() && !self.has_secret {
            return Err(IdTokenError::SymmetricWithoutSecret);
        }
        let accepted = match self.registered {
            // §3.1.3.7 step 7: "the algorithm sent by the Client in the
            // id_token_signed_response_alg parameter during Registration".
            Some(registered) => alg == registered,
            None if self.advertised.is_empty() => alg == SigningAlg::RS256,
            None => !alg.is_symmetric() && self.advertised.iter().any(|a| a == alg.as_str()),
        };
        if accepted {
            Ok(alg)
        } else {
            Err(IdTokenError::AlgNotAccepted(raw.to_owned()))
        }
    }
}

/// What the claims must say (OpenID Connect Core §3.1.3.7, §3.2.2.11, §3.3.2.12).
#[derive(Clone, Debug)]
pub struct Expectations<'a> {
    /// This client: `aud` must contain it; `azp`, when present, must be it.
    pub client_id: &'a str,
    /// The provider's issuer: `iss` must equal it exactly. `None` only for providers whose
    /// issuer varies per user (Entra ID's `common` tenant).
    pub issuer: Option<&'a str>,
    /// The `nonce` the login sent, which the token must carry.
    pub nonce: Option<&'a str>,
    /// The `max_age` the login sent: `auth_time` is then required and must be recent enough.
    pub max_age: Option<u64>,
    /// The access token that came with the ID token: a present `at_hash` must match it.
    pub access_token: Option<&'a str>,
    /// The code that came with the ID token: a present `c_hash` must match it.
    pub code: Option<&'a str>,
    /// The tokens came through the front channel (implicit or hybrid): `at_hash` (§3.2.2.10)
    /// and `c_hash` (§3.3.2.11) are then required for the access token and code given.
    pub front_channel: bool,
    /// The current time.
    pub now: UnixTime,
    /// Seconds of clock skew allowed on `exp`, `iat` and `auth_time`.
    pub leeway: u64,
}

impl<'a> Expectations<'a> {
    /// The checks of a code-flow login for `client_id` at `now`; set the other fields as
    /// the login requires.
    pub fn new(client_id: &'a str, issuer: Option<&'a str>, now: UnixTime) -> Self {
        Self {
            client_id,
            issuer,
            nonce: None,
            max_age: None,
            access_token: None,
            code: None,
            front_channel: false,
            now,
            leeway: DEFAULT_LEEWAY,
        }
    }
}

/// Clock skew allowed on `exp`, `iat` and `auth_time`, in seconds.
pub const DEFAULT_LEEWAY: u64 = 60;

/// An ID token split into its parts, with nothing verified: for fuzzing and for
/// diagnostics, never for a decision.
#[derive(Debug)]
pub struct Unverified {
    /// The header's `alg`, as sent.
    pub alg: String,
    /// The header's `kid`, if any.
    pub kid: Option<String>,
    /// The payload.
    pub claims: Claims,
}

/// Splits an ID token without verifying anything.
pub fn decode_unverified(id_token: &str) -> Result<Unverified, IdTokenError> {
    let jws = Compact::parse(id_token).map_err(|_| IdTokenError::Malformed)?;
    Ok(Unverified {
        alg: jws.alg,
        kid: jws.kid,
        claims: jws.claims,
    })
}

/// Where the key that verifies a token comes from.
pub enum Keys<'a> {
    /// Candidates from the provider's JWK Set.
    Public(&'a [Arc<PublicKey>]),
    /// The client secret (HS256).
    Secret(&'a [u8]),
}

/// Verifies `id_token`'s signature with one of `keys` under `alg` (from
/// [`AlgPolicy::accept`]), then its claims; returns the claims.
pub fn verify(
    id_token: &str,
    alg: SigningAlg,
    keys: Keys<'_>,
    expect: &Expectations<'_>,
) -> Result<Claims, IdTokenError> {
    let jws = Compact::parse(id_token).map_err(|_| IdTokenError::Malformed)?;
    // The header's alg is what the policy accepted; a caller that passes another one would
    // let a token be checked under an algorithm it does not name.
    if jws.alg != alg.as_str() {
        return Err(IdTokenError::AlgNotAccepted(jws.alg));
    }
    let verified = match keys {
        Keys::Public(candidates) => {
            if candidates.is_empty() {
                return Err(IdTokenError::UnknownKey);
            }
            !alg.is_symmetric()
                && candidates
                    .iter()
                    .any(|key| jws.verifies_with(key.decoding_key(), alg))
        }
        Keys::Secret(secret) => {
            alg.is_symmetric()
                && jws.verifies_with(&jsonwebtoken::DecodingKey::from_secret(secret), alg)
        }
    };
    if !verified {
        return Err(IdTokenError::BadSignature);
    }
    check_claims(&jws.claims, alg, expect)?;
    Ok(jws.claims)
}

/// Checks the claims of a token whose signature has been verified (§3.1.3.7 steps 2-4 and
/// 9-13, §3.1.3.8, §3.2.2.9, §3.3.2.10).
pub fn check_claims(
    claims: &Claims,
    alg: SigningAlg,
    expect: &Expectations<'_>,
) -> Result<(), IdTokenError> {
    let text = |name: &str| claims.get(name).and_then(|v| v.as_str());
    let number = |name: &'static str| {
        claims
            .get(name)
            .and_then(serde_json::Value::as_i64)
            .ok_or(IdTokenError::MissingClaim(name))
    };
    // Step 2: "The Issuer Identifier for the OpenID Provider ... MUST exactly match the value
    // of the iss (issuer) Claim."
    let Some(iss) = text("iss") else {
        return Err(IdTokenError::MissingClaim("iss"));
    };
    if expect.issuer.is_some_and(|issuer| iss != issuer) {
        return Err(IdTokenError::Issuer);
    }
    // §2: sub is REQUIRED, a locally unique identifier of the user.
    if text("sub").is_none_or(str::is_empty) {
        return Err(IdTokenError::MissingClaim("sub"));
    }
    // Step 3: "The Client MUST validate that the aud (audience) Claim contains its client_id
    // value registered at the Issuer".
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(serde_json::Value::String(one)) => vec![one.as_str()],
        Some(serde_json::Value::Array(many)) => many.iter().filter_map(|v| v.as_str()).collect(),
        _ => return Err(IdTokenError::MissingClaim("aud")),
    };
    if !audiences.contains(&expect.client_id) {
        return Err(IdTokenError::Audience);
    }
    // Steps 4-5 (errata set 2: azp "MUST" be this client when present). An `azp` that is not
    // a string names no client, so it is not this one: it is refused, not read as absent.
    if let Some(azp) = claims.get("azp") {
        if azp.as_str() != Some(expect.client_id) {
            return Err(IdTokenError::AuthorizedParty);
        }
    } else if audiences.len() > 1 {
        return Err(IdTokenError::AuthorizedParty);
    }
    let leeway = i64::try_from(expect.leeway).unwrap_or(0);
    // Step 9: "The current time MUST be before the time represented by the exp Claim".
    if expect.now.0 > number("exp")?.saturating_add(leeway) {
        return Err(IdTokenError::Expired);
    }
    // Step 10 and §2 (iat REQUIRED): a token issued in the future comes from a broken clock
    // or a forger.
    if number("iat")? > expect.now.0.saturating_add(leeway) {
        return Err(IdTokenError::IssuedInFuture);
    }
    // Step 11: "If a nonce value was sent in the Authentication Request, a nonce Claim MUST
    // be present and its value checked".
    if let Some(expected) = expect.nonce {
        let got = text("nonce").unwrap_or("");
        if !bool::from(got.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(IdTokenError::Nonce);
        }
    }
    // Step 13: "If the max_age request parameter was used, the Client SHOULD check the
    // auth_time Claim value and request re-authentication if it determines too much time has
    // elapsed since the last End-User authentication."
    if let Some(max_age) = expect.max_age {
        let auth_time = number("auth_time")?;
        let limit = auth_time
            .saturating_add(i64::try_from(max_age).unwrap_or(i64::MAX))
            .saturating_add(leeway);
        if expect.now.0 > limit {
            return Err(IdTokenError::AuthTooOld);
        }
    }
    // §3.1.3.8 (code flow: at_hash MAY be checked, and is when present), §3.2.2.9/§3.3.2.9
    // (front channel: at_hash REQUIRED with an access token).
    check_hash(
        text("at_hash"),
        expect.access_token,
        alg,
        expect.front_channel,
        IdTokenError::AccessTokenHash,
    )?;
    // §3.3.2.10-11: c_hash of the code, REQUIRED with `code id_token` in the front channel.
    check_hash(
        text("c_hash"),
        expect.code,
        alg,
        expect.front_channel,
        IdTokenError::CodeHash,
    )
}

fn check_hash(
    claim: Option<&str>,
    value: Option<&str>,
    alg: SigningAlg,
    required: bool,
    error: IdTokenError,
) -> Result<(), IdTokenError> {
    match (claim, value) {
        (Some(claim), Some(value)) => {
            let want = alg.half_hash(value);
            if bool::from(claim.as_bytes().ct_eq(want.as_bytes())) {
                Ok(())
            } else {
                Err(error)
            }
        }
        (None, Some(_)) if required => Err(error),
        _ => Ok(()),
    }
}

/// OpenID Connect Core §12.2: the ID token of a refresh must name the same issuer, user and
/// audience as the login's, the same `auth_time` when it carries one, and no other `nonce`.
pub fn check_refreshed(original: &Claims, refreshed: &Claims) -> Result<(), IdTokenError> {
    let same = |name: &'static str| match (original.get(name), refreshed.get(name)) {
        (Some(a), Some(b)) if a == b => Ok(()),
        (None, None) => Ok(()),
        _ => Err(IdTokenError::RefreshMismatch(name)),
    };
    same("iss")?;
    same("sub")?;
    same("aud")?;
    // "if the ID Token contains an auth_time Claim, its value MUST represent the time of the
    // original authentication - not the time that the new ID token is issued".
    if refreshed.contains_key("auth_time") {
        same("auth_time")?;
    }
    // "it SHOULD NOT have a nonce Claim ...; however, if it is present, its value MUST be
    // the same as in the ID Token issued at the time of the original authentication".
    if refreshed.contains_key("nonce") {
        same("nonce")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
