//! Trusted external issuers of token exchange: JWTs and ID tokens that another issuer signed,
//! accepted as `subject_token` or `actor_token` (RFC 8693 §2.1, §3) from clients whose policy
//! names that issuer.
//!
//! Each issuer is configured by the operator ([`TrustedIssuer`]): its exact `iss`, its keys
//! (a JWK Set inline, or at a `jwks_uri` fetched through the embedder's
//! [`JwksFetcher`], the same seam, cache and bounds as the `jwks_uri` of client assertions, so
//! the core does no I/O), the algorithms it signs with, the audience its tokens must name,
//! how old a token may be, and how its subjects map to ours.
//!
//! A token passes when, in this order: it is at most [`MAX_JWT_LEN`] long; its header names
//! an allowed asymmetric algorithm and no critical extension (RFC 7515 §4.1.11); its `typ` is
//! not a logout token's (and is `JWT` or absent for an ID token); `iss` is the issuer exactly;
//! `exp` is present and not past; `nbf` and `iat` are not in the future; `iat` is present and
//! at most `max_age` ago; `aud` names the configured audience (or, without one, this server's
//! issuer); `sub` is present and at most [`MAX_SUBJECT_LEN`] long; and last, one of the
//! issuer's keys with a matching `kid` verifies its signature. Times have [`LEEWAY`] seconds
//! of leeway. Every refusal has a reason for the log only: the client is told that the token
//! is invalid, nothing about keys.

use crate::client_assertion::{JwkSet, JwksFetcher, PRIVATE_KEY_ALGS, parse_jwks};
use crate::clock::UnixTime;
use crate::jose::MAX_JWT_LEN;
use crate::jose::foreign::{self, Jws, Malformed};
use crate::token::Actor;
use jsonwebtoken::Algorithm;
use jsonwebtoken::jwk::Jwk;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;

/// The most trusted issuers a server may configure.
pub const MAX_TRUSTED_ISSUERS: usize = 32;

/// The longest `sub` accepted from an external token.
pub const MAX_SUBJECT_LEN: usize = 255;

/// The longest alias.
pub const MAX_ALIAS_LEN: usize = 64;

/// Tolerated clock skew, in seconds, for `exp`, `nbf` and `iat`.
pub const LEEWAY: i64 = 60;

/// The largest `max_age` an issuer may be given: a week.
pub const MAX_MAX_AGE: u64 = 7 * 24 * 3600;

/// The most `aud` values read from one token.
const MAX_AUDIENCES: usize = 16;

/// Where a trusted issuer's public keys are.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssuerKeys {
    /// A JWK Set given in the configuration.
    Inline(Arc<JwkSet>),
    /// The issuer's `jwks_uri`, fetched (and cached) by the [`JwksFetcher`].
    Uri(String),
}

/// How an external token's `sub` becomes the subject of the token we issue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SubjectMapping {
    /// `<alias>:<sub>`: never equal to a local user's identifier (those have no `:`) nor
    /// to another issuer's subject.
    #[default]
    Prefixed,
    /// `sub` unchanged: for an issuer that shares this server's user identifiers.
    AsIs,
}

/// One issuer whose JWTs and ID tokens token exchange accepts, as the operator configured it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustedIssuer {
    /// The short name policies use to allow this issuer, and the prefix of its subjects.
    pub alias: String,
    /// The `iss` its tokens carry, compared byte for byte.
    pub issuer: String,
    /// Its public keys.
    pub keys: IssuerKeys,
    /// The algorithms accepted from it (asymmetric ones of [`PRIVATE_KEY_ALGS`] only).
    pub algs: Vec<String>,
    /// A value `aud` must contain; `None`: this server's issuer identifier.
    pub audience: Option<String>,
    /// How long after its `iat` a token is still accepted, in seconds.
    pub max_age: u64,
    /// How its subjects map to ours.
    pub subject: SubjectMapping,
}

impl TrustedIssuer {
    /// An issuer `issuer` named `alias` with keys `keys`, RS256 and ES256 accepted, tokens
    /// for this server's issuer at most an hour old, subjects prefixed with the alias.
    pub fn new(alias: impl Into<String>, issuer: impl Into<String>, keys: IssuerKeys) -> Self {
        Self {
            alias: alias.into(),
            issuer: issuer.into(),
            keys,
            algs: vec!["RS256".into(), "ES256".into()],
            audience: None,
            max_age: 3600,
            subject: SubjectMapping::Prefixed,
        }
    }

    /// The checks a configuration passes; the reason for the operator otherwise.
    pub fn validate(&self) -> Result<(), String> {
        let alias = &self.alias;
        if !valid_alias(alias) {
            return Err(format!(
                "trusted issuer alias {alias:?}: 1 to {MAX_ALIAS_LEN} letters, digits, '.', '_' or '-'"
            ));
        }
        match url::Url::parse(&self.issuer) {
            Ok(url) if matches!(url.scheme(), "https" | "http") && url.host().is_some() => {}
            _ => {
                return Err(format!(
                    "trusted issuer {alias:?}: issuer must be an https URL"
                ));
            }
        }
        if self.algs.is_empty() {
            return Err(format!(
                "trusted issuer {alias:?}: algs must name an algorithm"
            ));
        }
        if let Some(bad) = self
            .algs
            .iter()
            .find(|a| !PRIVATE_KEY_ALGS.contains(&a.as_str()))
        {
            return Err(format!(
                "trusted issuer {alias:?}: alg {bad:?} is not one of {}",
                PRIVATE_KEY_ALGS.join(", ")
            ));
        }
        if !(1..=MAX_MAX_AGE).contains(&self.max_age) {
            return Err(format!(
                "trusted issuer {alias:?}: max_age must be 1 to {MAX_MAX_AGE} seconds"
            ));
        }
        if self.audience.as_deref().is_some_and(str::is_empty) {
            return Err(format!("trusted issuer {alias:?}: audience is empty"));
        }
        if let IssuerKeys::Uri(uri) = &self.keys
            && url::Url::parse(uri).is_err()
        {
            return Err(format!("trusted issuer {alias:?}: jwks_uri is not a URL"));
        }
        Ok(())
    }

    /// `sub` as the subject of the token we issue.
    pub fn map_subject(&self, sub: &str) -> String {
        match self.subject {
            SubjectMapping::Prefixed => format!("{}:{sub}", self.alias),
            SubjectMapping::AsIs => sub.to_owned(),
        }
    }
}

/// Whether `alias` is a well-formed alias: what policies name and subjects start with.
pub fn valid_alias(alias: &str) -> bool {
    !alias.is_empty()
        && alias.len() <= MAX_ALIAS_LEN
        && alias
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The trusted issuers of a server: each valid, aliases and issuers unique, at most
/// [`MAX_TRUSTED_ISSUERS`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedIssuers(Vec<TrustedIssuer>);

impl TrustedIssuers {
    /// The list, checked; the reason for the operator otherwise.
    pub fn new(list: Vec<TrustedIssuer>) -> Result<Self, String> {
        if list.len() > MAX_TRUSTED_ISSUERS {
            return Err(format!(
                "at most {MAX_TRUSTED_ISSUERS} trusted issuers may be configured"
            ));
        }
        for (i, issuer) in list.iter().enumerate() {
            issuer.validate()?;
            if let Some(twin) = list[..i]
                .iter()
                .find(|o| o.alias == issuer.alias || o.issuer == issuer.issuer)
            {
                return Err(format!(
                    "trusted issuers {:?} and {:?} share an alias or issuer",
                    twin.alias, issuer.alias
                ));
            }
        }
        Ok(Self(list))
    }

    /// The issuer whose `iss` is `iss`, when it is one of those `allowed` (by alias).
    pub fn find(&self, iss: &str, allowed: &[String]) -> Option<&TrustedIssuer> {
        self.0
            .iter()
            .find(|t| t.issuer == iss && allowed.contains(&t.alias))
    }

    /// Whether no issuer is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The `iss` of a compact JWS, read without verifying anything: only to pick the issuer
/// whose rules then verify it.
pub(crate) fn peek_issuer(token: &str) -> Option<String> {
    if token.len() > MAX_JWT_LEN {
        return None;
    }
    Jws::parse(token)
        .ok()?
        .claims()
        .ok()?
        .get("iss")?
        .as_str()
        .map(str::to_owned)
}

/// The reason (for the log) a token is not a readable compact JWS.
fn malformed(why: Malformed) -> String {
    match why {
        Malformed::NotCompact | Malformed::Encrypted => "not a compact JWS",
        Malformed::NotBase64url => "not base64url",
        Malformed::NotObject => "a part is not a JSON object",
    }
    .to_owned()
}

/// A NumericDate claim (RFC 7519 §2): `Ok(None)` when absent, `Err` when not a number.
fn time(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    foreign::numeric_date(claims, name).map_err(|()| format!("{name} is not a number"))
}

/// Verifies `token` as one of `issuer`'s (an ID token when `id_token`) for the server whose
/// issuer identifier is `our_issuer`, at `now`; its claims, or the reason for the log.
pub(crate) async fn verify(
    issuer: &TrustedIssuer,
    token: &str,
    id_token: bool,
    our_issuer: &str,
    fetcher: Option<&dyn JwksFetcher>,
    now: UnixTime,
) -> Result<Map<String, Value>, String> {
    if token.len() > MAX_JWT_LEN {
        return Err("token too long".into());
    }
    let jws = Jws::parse(token).map_err(malformed)?;
    if jws.unsigned() {
        return Err("not a compact JWS".into());
    }
    let header = &jws.header;
    // RFC 8725 §3.1 and §3.2: only the algorithms configured for this issuer, all
    // asymmetric; never `none`, never an HMAC keyed with a public key.
    let alg_name = jws.alg();
    // The reason reaches the log: an attacker's `alg` is named only when it is short.
    let shown = if alg_name.len() <= 16 {
        alg_name
    } else {
        "(too long)"
    };
    if !issuer.algs.iter().any(|a| a == alg_name) {
        return Err(format!("alg {shown:?} not allowed for this issuer"));
    }
    let alg: Algorithm = alg_name
        .parse()
        .map_err(|_| format!("alg {shown:?} unknown"))?;
    if jws.has_crit() {
        // RFC 7515 §4.1.11: we understand no extension, so a critical one is refused.
        return Err("critical header parameters".into());
    }
    // RFC 8725 §3.11: a logout token is never a subject; an ID token is typed `JWT`.
    match header
        .get("typ")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("logout+jwt" | "application/logout+jwt") => return Err("a logout token".into()),
        Some("jwt" | "application/jwt") | None => {}
        Some(_) if id_token => return Err("an ID token must be typed JWT".into()),
        Some(_) => {}
    }
    let claims = jws.claims().map_err(malformed)?;
    check_claims(issuer, &claims, our_issuer, now)?;
    let kid = jws.kid();
    let candidates = keys(issuer, kid, fetcher).await?;
    let signed = jws.signed_by(&candidates, alg);
    if !signed {
        return Err("signature does not verify with the issuer's keys".into());
    }
    Ok(claims)
}

/// The claim checks of the module documentation, before any key is looked up.
fn check_claims(
    issuer: &TrustedIssuer,
    claims: &Map<String, Value>,
    our_issuer: &str,
    now: UnixTime,
) -> Result<(), String> {
    // RFC 7519 §4.1.1; OpenID Connect Core §3.1.3.7 item 2: `iss` exactly.
    if claims.get("iss").and_then(Value::as_str) != Some(issuer.issuer.as_str()) {
        return Err("iss is not the issuer".into());
    }
    // RFC 7519 §4.1.4: "the current date/time MUST be before the expiration date/time";
    // a token without `exp` would be valid forever, so it is refused.
    let exp = time(claims, "exp")?.ok_or("exp missing")?;
    if now.0 >= exp.saturating_add(LEEWAY) {
        return Err("expired".into());
    }
    // RFC 7519 §4.1.5: not before `nbf`.
    if let Some(nbf) = time(claims, "nbf")?
        && now.0.saturating_add(LEEWAY) < nbf
    {
        return Err("not yet valid (nbf)".into());
    }
    let iat = time(claims, "iat")?.ok_or("iat missing")?;
    if now.0.saturating_add(LEEWAY) < iat {
        return Err("issued in the future".into());
    }
    let max_age = i64::try_from(issuer.max_age).unwrap_or(i64::MAX);
    if now.0.saturating_sub(iat) > max_age.saturating_add(LEEWAY) {
        return Err("older than max_age".into());
    }
    // RFC 7519 §4.1.3: `aud` is a string or an array of strings; it must name us.
    let want = issuer.audience.as_deref().unwrap_or(our_issuer);
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == want,
        Some(Value::Array(list)) => {
            list.len() <= MAX_AUDIENCES && list.iter().any(|a| a.as_str() == Some(want))
        }
        _ => false,
    };
    if !aud_ok {
        return Err("aud does not name this server".into());
    }
    match claims.get("sub").and_then(Value::as_str) {
        Some(sub) if !sub.is_empty() && sub.len() <= MAX_SUBJECT_LEN => Ok(()),
        _ => Err("sub missing or too long".into()),
    }
}

/// The issuer's keys for `kid`: inline, or fetched (again, once, when the `kid` is unknown:
/// the issuer rotated its keys).
async fn keys(
    issuer: &TrustedIssuer,
    kid: Option<&str>,
    fetcher: Option<&dyn JwksFetcher>,
) -> Result<Vec<Jwk>, String> {
    let pick = |set: &JwkSet| -> Vec<Jwk> {
        set.keys
            .iter()
            .take(crate::client_assertion::MAX_CLIENT_KEYS)
            .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
            .cloned()
            .collect()
    };
    let uri = match &issuer.keys {
        IssuerKeys::Inline(set) => return Ok(pick(set)),
        IssuerKeys::Uri(uri) => uri,
    };
    let Some(fetcher) = fetcher else {
        return Err("no fetcher for the issuer's jwks_uri".into());
    };
    let set = fetcher.fetch(uri, false).await?;
    let found = pick(&set);
    if found.is_empty() && kid.is_some() {
        let set = fetcher.fetch(uri, true).await?;
        return Ok(pick(&set));
    }
    Ok(found)
}

/// Parses an inline JWK Set for [`IssuerKeys::Inline`]: public keys only, bounded.
pub fn inline_keys(value: &Value) -> Result<IssuerKeys, String> {
    parse_jwks(value).map(|set| IssuerKeys::Inline(Arc::new(set)))
}

/// An external token's `act` claim, its subjects mapped like the token's own; `None` when
/// absent or malformed.
pub(crate) fn actor(issuer: &TrustedIssuer, claims: &Map<String, Value>) -> Option<Box<Actor>> {
    let mut actor: Actor = serde_json::from_value(claims.get("act")?.clone()).ok()?;
    let mut next = Some(&mut actor);
    while let Some(a) = next {
        a.sub = issuer.map_subject(&a.sub);
        // Its client identifiers are the issuer's, not ours.
        a.client_id = None;
        next = a.act.as_deref_mut();
    }
    Some(Box::new(actor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::jose::{JwsSigner as _, KeySet, SigningAlg};
    use serde_json::json;

    const ISS: &str = "https://idp.example";
    const OURS: &str = "https://auth.example";
    const NOW: i64 = 1_767_225_600;

    fn fresh_keys() -> KeySet {
        KeySet::generate(
            &[SigningAlg::Es256],
            Arc::new(ManualClock::new(UnixTime(NOW))),
        )
        .expect("keys")
    }

    fn issuer(keys: &KeySet) -> TrustedIssuer {
        let mut issuer = TrustedIssuer::new("idp", ISS, inline_keys(&keys.jwks()).expect("jwks"));
        issuer.algs = vec!["ES256".into()];
        issuer
    }

    fn claims() -> Value {
        json!({"iss": ISS, "sub": "u1", "aud": OURS, "iat": NOW, "exp": NOW + 300})
    }

    async fn reason(issuer: &TrustedIssuer, token: &str, id_token: bool) -> String {
        verify(issuer, token, id_token, OURS, None, UnixTime(NOW))
            .await
            .expect_err("refused")
    }

    #[tokio::test]
    async fn each_rule_refuses_for_its_own_reason() {
        let keys = fresh_keys();
        let issuer = issuer(&keys);
        let sign = |typ: &str, c: &Value| keys.sign(Some(SigningAlg::Es256), typ, c).expect("jws");
        let changed = |name: &str, value: Value| {
            let mut c = claims();
            if let Some(map) = c.as_object_mut() {
                if value.is_null() {
                    map.remove(name);
                } else {
                    map.insert(name.into(), value);
                }
            }
            sign("JWT", &c)
        };
        let good = sign("JWT", &claims());
        assert_eq!(
            verify(&issuer, &good, true, OURS, None, UnixTime(NOW))
                .await
                .expect("valid")["sub"],
            "u1"
        );
        let mut rsa_only = issuer.clone();
        rsa_only.algs = vec!["RS256".into()];
        assert!(reason(&rsa_only, &good, true).await.contains("alg"));
        let mut aud = issuer.clone();
        aud.audience = Some("custom".into());
        assert!(reason(&aud, &good, true).await.contains("aud"));
        let cases = [
            (changed("iss", json!("https://other.example")), "iss"),
            (changed("exp", Value::Null), "exp missing"),
            (changed("exp", json!(NOW - 61)), "expired"),
            (changed("nbf", json!(NOW + 61)), "nbf"),
            (changed("iat", Value::Null), "iat missing"),
            (changed("iat", json!(NOW + 61)), "future"),
            (changed("iat", json!(NOW - 3600 - 61)), "max_age"),
            (changed("aud", json!(["a", "b"])), "aud"),
            (changed("sub", json!("")), "sub"),
            (
                changed("sub", json!("x".repeat(MAX_SUBJECT_LEN + 1))),
                "sub",
            ),
            (sign("logout+jwt", &claims()), "logout"),
            (sign("at+jwt", &claims()), "typed JWT"),
            ("a.b".into(), "compact"),
            ("x".repeat(MAX_JWT_LEN + 1), "too long"),
        ];
        for (token, why) in cases {
            let got = reason(&issuer, &token, true).await;
            assert!(got.contains(why), "{why}: {got}");
        }
        // A JWT that is not an ID token may have another type.
        assert!(
            verify(
                &issuer,
                &sign("at+jwt", &claims()),
                false,
                OURS,
                None,
                UnixTime(NOW)
            )
            .await
            .is_ok()
        );
        // Another key with the same kid: the signature does not verify.
        let other = fresh_keys();
        let forged = other
            .sign(Some(SigningAlg::Es256), "JWT", &claims())
            .expect("jws");
        let (head, _) = good.rsplit_once('.').expect("jws");
        let (_, sig) = forged.rsplit_once('.').expect("jws");
        assert!(
            reason(&issuer, &format!("{head}.{sig}"), true)
                .await
                .contains("signature")
        );
        // An attacker's long `alg` is not copied into the reason (which is logged).
        use base64::Engine as _;
        let long_alg = format!(
            "{}.{}.c2ln",
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(format!(r#"{{"alg":"{}"}}"#, "A".repeat(4000))),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("{}"),
        );
        let got = reason(&issuer, &long_alg, true).await;
        assert!(got.contains("(too long)") && got.len() < 100, "{got}");
        // A jwks_uri with no fetcher is refused, not trusted.
        let mut remote = issuer.clone();
        remote.keys = IssuerKeys::Uri("https://idp.example/jwks".into());
        assert!(reason(&remote, &good, true).await.contains("fetcher"));
    }

    #[test]
    fn subjects_map_by_alias_unless_as_is_and_external_actors_lose_their_client() {
        let keys = fresh_keys();
        let mut issuer = issuer(&keys);
        assert_eq!(issuer.map_subject("u1"), "idp:u1");
        let claims = json!({"act": {"sub": "s1", "client_id": "c", "act": {"sub": "s2"}}});
        let actor = actor(&issuer, claims.as_object().expect("map")).expect("act");
        assert_eq!(
            serde_json::to_value(&actor).expect("json"),
            json!({"sub": "idp:s1", "act": {"sub": "idp:s2"}})
        );
        issuer.subject = SubjectMapping::AsIs;
        assert_eq!(issuer.map_subject("u1"), "u1");
    }
}
