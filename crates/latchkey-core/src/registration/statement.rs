//! Software statements (RFC 7591 §2.3): client metadata signed by a software publisher the
//! operator trusts, sent as the `software_statement` member of a registration or update.
//!
//! A statement is checked in this order: size and shape, then the issuer (`iss` must name a
//! [`TrustedIssuer`]; any other is `unapproved_software_statement`), then the header (an
//! `alg` that issuer may use, asymmetric only: never `none`, never an HMAC, no `crit`), the
//! signature with a key of that issuer's JWK Set, and last the times (`exp`, when present,
//! not passed; `iat` and `nbf` not in the future). Every other refusal is
//! `invalid_software_statement`.
//!
//! RFC 7591 §2.3: "If the authorization server ... accepts the software statement, the
//! values in the software statement MUST take precedence over the same values sent in the
//! clear": [`StatementPolicy::verify`] returns the statement's metadata, and the registration
//! lays it over the request before the [`super::RegistrationPolicy`] judges the result.
//!
//! The core does no I/O: trusted issuers carry their keys inline.

use crate::client_assertion::{PRIVATE_KEY_ALGS, parse_jwks};
use crate::clock::UnixTime;
use crate::error::{ErrorCode, OAuthError};
use crate::jose::foreign::{self, Jws, Malformed};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The longest software statement read: a statement is a few KiB of metadata, possibly with
/// a JWK Set, and a signature.
pub const MAX_STATEMENT_LEN: usize = 16 * 1024;

/// How far in the future `iat` and `nbf` may be, for clocks that disagree a little.
pub const LEEWAY: i64 = 60;

/// The most trusted issuers a policy holds: each is a name to compare, and an operator's
/// list, not a client's.
pub const MAX_TRUSTED_ISSUERS: usize = 64;

/// Claims about the statement itself, and members only the server or the request may set:
/// never taken from a statement as client metadata.
const NOT_METADATA: [&str; 14] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "software_statement",
    "client_id",
    "client_secret",
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
];

/// A software publisher whose statements this server accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustedIssuer {
    /// The `iss` of its statements, compared exactly.
    pub issuer: String,
    /// Its public keys: a JWK Set (checked by [`TrustedIssuer::new`]).
    pub jwks: Value,
    /// The JWS algorithms its statements may use: asymmetric ones only.
    pub algs: BTreeSet<String>,
}

impl TrustedIssuer {
    /// A trusted issuer, or why the operator's values are unusable: an empty issuer, a JWK
    /// Set that is not one of 1 to 16 public keys, an empty list of algorithms, or an
    /// algorithm that is `none`, an HMAC or unknown.
    pub fn new(
        issuer: impl Into<String>,
        jwks: Value,
        algs: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Self, String> {
        let issuer = issuer.into();
        if issuer.is_empty() || issuer.len() > crate::client_metadata::MAX_VALUE_LEN {
            return Err("a trusted issuer needs a non-empty issuer".into());
        }
        parse_jwks(&jwks).map_err(|e| format!("issuer {issuer:?}: {e}"))?;
        let algs: BTreeSet<String> = algs.into_iter().map(Into::into).collect();
        if algs.is_empty() {
            return Err(format!("issuer {issuer:?}: algs must name at least one"));
        }
        if let Some(bad) = algs
            .iter()
            .find(|a| !PRIVATE_KEY_ALGS.contains(&a.as_str()))
        {
            return Err(format!(
                "issuer {issuer:?}: alg {bad:?} is not accepted; use one of {}",
                PRIVATE_KEY_ALGS.join(", ")
            ));
        }
        Ok(Self { issuer, jwks, algs })
    }
}

/// Which software statements the registration endpoint accepts, in
/// [`super::RegistrationPolicy::software_statements`]. The default trusts no issuer, so
/// every statement is refused as `unapproved_software_statement`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StatementPolicy {
    /// The publishers whose statements are accepted (at most [`MAX_TRUSTED_ISSUERS`]).
    pub trusted: Vec<TrustedIssuer>,
    /// Registrations and updates without a statement are refused.
    pub required: bool,
}

impl StatementPolicy {
    /// A policy, or why it is unusable: too many issuers, one named twice, or a statement
    /// required with no issuer to sign one.
    pub fn new(trusted: Vec<TrustedIssuer>, required: bool) -> Result<Self, String> {
        if trusted.len() > MAX_TRUSTED_ISSUERS {
            return Err(format!("at most {MAX_TRUSTED_ISSUERS} trusted issuers"));
        }
        let names: BTreeSet<&str> = trusted.iter().map(|t| t.issuer.as_str()).collect();
        if names.len() != trusted.len() {
            return Err("a trusted issuer is listed twice".into());
        }
        if required && trusted.is_empty() {
            return Err("software statements are required but no issuer is trusted".into());
        }
        Ok(Self { trusted, required })
    }

    /// Verifies `statement` at `now` and returns the client metadata it carries (its JWT
    /// claims and the members no statement may set removed).
    pub fn verify(&self, statement: &str, now: UnixTime) -> Result<Map<String, Value>, OAuthError> {
        if statement.len() > MAX_STATEMENT_LEN {
            return Err(invalid("software statement too large"));
        }
        let jws = Jws::parse(statement).map_err(malformed)?;
        let mut claims = jws.claims().map_err(malformed)?;
        // RFC 7591 §2.3: "The software statement MUST contain an "iss" (issuer) claim".
        let Some(iss) = claims.get("iss").and_then(Value::as_str) else {
            return Err(invalid("software statement has no iss"));
        };
        let Some(issuer) = self.trusted.iter().find(|t| t.issuer == iss) else {
            return Err(OAuthError::new(
                ErrorCode::UnapprovedSoftwareStatement,
                "the software statement's issuer is not trusted here",
            ));
        };
        // RFC 7591 §2.3: "The software statement MUST be digitally signed or MACed"; a MAC
        // would need a secret shared with the publisher, so only signatures are accepted,
        // and never `none` (RFC 8725 §3.1).
        let alg_name = jws.alg();
        let alg: Algorithm = match alg_name.parse() {
            Ok(alg) if issuer.algs.contains(alg_name) && !jws.unsigned() => alg,
            _ => return Err(invalid("software statement alg not allowed for its issuer")),
        };
        if jws.has_crit() {
            return Err(invalid("software statement has critical header parameters"));
        }
        let keys = parse_jwks(&issuer.jwks).map_err(|e| {
            OAuthError::server_error().with_detail(format!("trusted issuer keys: {e}"))
        })?;
        let kid = jws.kid();
        let candidates = keys
            .keys
            .iter()
            .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid);
        if !jws.signed_by(candidates, alg) {
            return Err(invalid("software statement signature invalid"));
        }
        // RFC 7519 §4.1.4: "the JWT MUST NOT be accepted for processing" on or after `exp`.
        if numeric_date(&claims, "exp")?
            .is_some_and(|exp| crate::store::expired(UnixTime(exp), now))
        {
            return Err(invalid("software statement expired"));
        }
        for name in ["iat", "nbf"] {
            if numeric_date(&claims, name)?.is_some_and(|at| at > now.0.saturating_add(LEEWAY)) {
                return Err(invalid("software statement not yet valid"));
            }
        }
        claims.retain(|name, _| !NOT_METADATA.contains(&name.as_str()));
        Ok(claims)
    }
}

/// `invalid_software_statement` with a description.
fn invalid(description: &'static str) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidSoftwareStatement, description)
}

/// The refusal for a statement that is not a readable compact JWS.
fn malformed(why: Malformed) -> OAuthError {
    invalid(match why {
        Malformed::NotCompact | Malformed::Encrypted => "software statement is not a compact JWS",
        Malformed::NotBase64url => "software statement is not base64url",
        Malformed::NotObject => "software statement part is not a JSON object",
    })
}

/// A NumericDate claim; a malformed one is refused.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, OAuthError> {
    foreign::numeric_date(claims, name)
        .map_err(|()| invalid("software statement has a malformed time claim"))
}
