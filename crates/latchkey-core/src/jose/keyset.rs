//! [`KeySet`]: the built-in [`JwsSigner`], the decrypted view of the stored signing keys.
//!
//! Built once from the records (and rebuilt when they change); private keys are parsed once,
//! so signing costs one signature. Which key signs is decided at signing time from the
//! records' times and the injected clock, so a key activates and retires on the second its
//! record says, whenever the set was built.

use super::kek::Kek;
use super::key::{KeyState, PrivateKey, SigningKey, public_only};
use super::{JoseError, JwsSigner, MAX_JWT_LEN, SigningAlg, Verified, b64, signing_input};
use crate::clock::{Clock, UnixTime};
use crate::error::OAuthError;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value, json};
use std::sync::Arc;

/// One key, ready: its record's times, its parsed private half, its verifier.
struct LiveKey {
    kid: String,
    alg: SigningAlg,
    activates_at: UnixTime,
    retires_at: Option<UnixTime>,
    removes_at: Option<UnixTime>,
    /// The published JWK, public members only.
    jwk: Value,
    private: PrivateKey,
    decoding: DecodingKey,
}

impl LiveKey {
    fn state(&self, now: UnixTime) -> KeyState {
        KeyState::at(self.activates_at, self.retires_at, self.removes_at, now)
    }
}

/// The provider's signing keys, decrypted: signs with the active key of an algorithm,
/// verifies against every published key, and publishes the JWKS.
pub struct KeySet {
    /// Every key not yet removed, latest activation first.
    keys: Vec<LiveKey>,
    default_alg: SigningAlg,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("KeySet")
            .field("kids", &kids)
            .field("default_alg", &self.default_alg)
            .finish_non_exhaustive()
    }
}

impl KeySet {
    /// The view of `records` (as listed by the store), their private keys opened with `kek`.
    /// Keys already past `removes_at` are left out; any other record that does not open (a
    /// wrong KEK, an altered record) fails the whole set, loudly, rather than signing with
    /// fewer keys than the operator thinks.
    pub fn from_records(
        records: &[SigningKey],
        kek: &Kek,
        default_alg: SigningAlg,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, JoseError> {
        let now = clock.now();
        let mut keys = Vec::with_capacity(records.len());
        for record in records.iter().filter(|r| r.is_published(now)) {
            keys.push(LiveKey {
                kid: record.kid.clone(),
                alg: record.alg,
                activates_at: record.activates_at,
                retires_at: record.retires_at,
                removes_at: record.removes_at,
                jwk: public_only(&record.public_jwk),
                private: record.open(kek)?,
                decoding: decoding_key(record.alg, &record.public_jwk)?,
            });
        }
        keys.sort_by_key(|k| std::cmp::Reverse(k.activates_at));
        Ok(Self {
            keys,
            default_alg,
            clock,
        })
    }

    /// A set of fresh keys, one per algorithm in `algs` (the first is the default), active
    /// now and kept only in memory: what a provider built without a signer uses, so tests and
    /// embedders work out of the box. Tokens it signs stop verifying when the process ends.
    pub fn generate(algs: &[SigningAlg], clock: Arc<dyn Clock>) -> Result<Self, JoseError> {
        let kek = Kek::from_bytes(ephemeral_kek_bytes()?);
        let now = clock.now();
        let records = algs
            .iter()
            .map(|alg| SigningKey::generate(*alg, &kek, now, now))
            .collect::<Result<Vec<_>, _>>()?;
        let default_alg = algs.first().copied().unwrap_or(SigningAlg::Es256);
        Self::from_records(&records, &kek, default_alg, clock)
    }

    /// Signs `claims` (see [`JwsSigner::sign_payload`]).
    pub fn sign(
        &self,
        alg: Option<SigningAlg>,
        typ: &str,
        claims: &impl serde::Serialize,
    ) -> Result<String, OAuthError> {
        (self as &dyn JwsSigner).sign(alg, typ, claims)
    }

    /// Verifies one of our JWTs (see [`super::Expect`]).
    pub fn verify<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        expect: &super::Expect,
    ) -> Result<T, JoseError> {
        (self as &dyn JwsSigner).verify(token, expect)
    }

    /// The key that signs `alg` at `now`: the active one activated last.
    fn signing_key(&self, alg: SigningAlg, now: UnixTime) -> Option<&LiveKey> {
        self.keys
            .iter()
            .find(|k| k.alg == alg && k.state(now) == KeyState::Active)
    }
}

/// 32 random bytes for an in-memory KEK, from the crypto library's generator.
fn ephemeral_kek_bytes() -> Result<[u8; 32], JoseError> {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| JoseError::Key("no randomness"))?;
    Ok(bytes)
}

/// The verifier of a public JWK, through `jsonwebtoken`.
fn decoding_key(alg: SigningAlg, jwk: &Value) -> Result<DecodingKey, JoseError> {
    let member = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .ok_or(JoseError::Key("public JWK member missing"))
    };
    let bad = |_| JoseError::Key("public JWK rejected");
    match alg {
        SigningAlg::Es256 => {
            DecodingKey::from_ec_components(member("x")?, member("y")?).map_err(bad)
        }
        SigningAlg::Rs256 => {
            DecodingKey::from_rsa_components(member("n")?, member("e")?).map_err(bad)
        }
        SigningAlg::EdDsa => DecodingKey::from_ed_components(member("x")?).map_err(bad),
    }
}

fn jwt_alg(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::Es256 => Algorithm::ES256,
        SigningAlg::Rs256 => Algorithm::RS256,
        SigningAlg::EdDsa => Algorithm::EdDSA,
    }
}

impl JwsSigner for KeySet {
    fn sign_payload(
        &self,
        alg: Option<SigningAlg>,
        typ: &str,
        payload: &[u8],
    ) -> Result<String, OAuthError> {
        let alg = alg.unwrap_or(self.default_alg);
        let Some(key) = self.signing_key(alg, self.clock.now()) else {
            return Err(OAuthError::server_error().with_detail(JoseError::NoActiveKey(alg)));
        };
        let mut jws = signing_input(alg, &key.kid, typ, payload);
        let sig = key
            .private
            .sign(jws.as_bytes())
            .map_err(|e| OAuthError::server_error().with_detail(e))?;
        jws.push('.');
        jws.push_str(&b64(&sig));
        Ok(jws)
    }

    fn verify_signature(&self, token: &str) -> Result<Verified, JoseError> {
        if token.len() > MAX_JWT_LEN {
            return Err(JoseError::Malformed("too long"));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| JoseError::Malformed("header"))?;
        // RFC 8725 §3.1: the algorithm is the key's, never the token's choice.
        let alg = match header.alg {
            Algorithm::ES256 => SigningAlg::Es256,
            Algorithm::RS256 => SigningAlg::Rs256,
            Algorithm::EdDSA => SigningAlg::EdDsa,
            _ => return Err(JoseError::Algorithm),
        };
        let kid = header.kid.ok_or(JoseError::UnknownKey)?;
        let now = self.clock.now();
        let key = self
            .keys
            .iter()
            .find(|k| k.kid == kid && k.state(now) != KeyState::Retired)
            .ok_or(JoseError::UnknownKey)?;
        if key.alg != alg {
            return Err(JoseError::Algorithm);
        }
        // Signature only: the claim checks use the injected clock (super::Expect).
        let mut validation = Validation::new(jwt_alg(alg));
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &key.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => JoseError::Signature,
                jsonwebtoken::errors::ErrorKind::InvalidAlgorithm => JoseError::Algorithm,
                _ => JoseError::Malformed("claims"),
            })?;
        Ok(Verified {
            alg,
            kid,
            typ: data.header.typ,
            claims: data.claims,
        })
    }

    fn jwks(&self) -> Value {
        let now = self.clock.now();
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter(|k| k.state(now) != KeyState::Retired)
            .map(|k| k.jwk.clone())
            .collect();
        json!({ "keys": keys })
    }

    fn active_algs(&self) -> Vec<SigningAlg> {
        let now = self.clock.now();
        let mut algs: Vec<SigningAlg> = Vec::new();
        for key in &self.keys {
            if key.state(now) == KeyState::Active && !algs.contains(&key.alg) {
                algs.push(key.alg);
            }
        }
        algs.sort_by_key(|a| (*a != self.default_alg, *a));
        algs
    }

    fn default_alg(&self) -> SigningAlg {
        self.default_alg
    }
}

#[cfg(test)]
mod tests {
    use super::super::Expect;
    use super::*;
    use crate::clock::ManualClock;
    use serde::Deserialize;

    #[derive(serde::Serialize, Deserialize, Debug, PartialEq)]
    struct Claims {
        iss: String,
        sub: String,
        aud: String,
        exp: i64,
        iat: i64,
    }

    fn claims(now: i64) -> Claims {
        Claims {
            iss: "https://issuer.example".into(),
            sub: "alice".into(),
            aud: "client-1".into(),
            exp: now + 300,
            iat: now,
        }
    }

    fn clock() -> Arc<ManualClock> {
        Arc::new(ManualClock::new(UnixTime(1_000_000)))
    }

    #[test]
    fn every_alg_signs_and_verifies_with_kid_and_typ() {
        let clock = clock();
        let set = KeySet::generate(&SigningAlg::ALL, clock.clone()).expect("keys");
        for alg in SigningAlg::ALL {
            let jwt = set
                .sign(Some(alg), "JWT", &claims(1_000_000))
                .expect("sign");
            let header = jsonwebtoken::decode_header(&jwt).expect("header");
            assert_eq!(header.typ.as_deref(), Some("JWT"));
            assert_eq!(header.alg, jwt_alg(alg));
            assert!(header.kid.is_some());
            let expect = Expect::new("JWT", clock.now())
                .issuer("https://issuer.example")
                .audience("client-1");
            let got: Claims = set.verify(&jwt, &expect).expect("verify");
            assert_eq!(got, claims(1_000_000));
        }
        assert_eq!(set.active_algs(), SigningAlg::ALL.to_vec());
    }

    #[test]
    fn refusals_name_their_reason() {
        let clock = clock();
        let now = clock.now();
        let set = KeySet::generate(&[SigningAlg::Es256], clock.clone()).expect("keys");
        let other = KeySet::generate(&[SigningAlg::Es256], clock.clone()).expect("keys");
        let good = set.sign(None, "JWT", &claims(now.0)).expect("sign");
        let (head, rest) = good.split_once('.').expect("dots");
        let (_, sig) = rest.split_once('.').expect("dots");
        let foreign = other.sign(None, "JWT", &claims(now.0)).expect("sign");
        let expired = set.sign(None, "JWT", &claims(now.0 - 1000)).expect("sign");
        let tampered_payload = format!("{head}.{}.{sig}", b64(br#"{"sub":"mallory"}"#));
        let none_alg = format!("{}.{}.", b64(br#"{"alg":"none"}"#), b64(b"{}"));
        let hs = format!(
            "{}.{}.AAAA",
            b64(br#"{"alg":"HS256","kid":"x"}"#),
            b64(b"{}")
        );
        let cases: Vec<(&str, String, Expect, JoseError)> = vec![
            (
                "foreign key",
                foreign,
                Expect::new("JWT", now),
                JoseError::UnknownKey,
            ),
            (
                "altered payload",
                tampered_payload,
                Expect::new("JWT", now),
                JoseError::Signature,
            ),
            (
                "alg none",
                none_alg,
                Expect::new("JWT", now),
                JoseError::Malformed("header"),
            ),
            ("hmac", hs, Expect::new("JWT", now), JoseError::Algorithm),
            (
                "expired",
                expired.clone(),
                Expect::new("JWT", now),
                JoseError::Expired,
            ),
            (
                "wrong typ",
                good.clone(),
                Expect::new("logout+jwt", now),
                JoseError::Type,
            ),
            (
                "wrong issuer",
                good.clone(),
                Expect::new("JWT", now).issuer("https://other.example"),
                JoseError::Issuer,
            ),
            (
                "wrong audience",
                good.clone(),
                Expect::new("JWT", now).audience("client-2"),
                JoseError::Audience,
            ),
            (
                "garbage",
                "a.b".into(),
                Expect::new("JWT", now),
                JoseError::Malformed("header"),
            ),
            (
                "too long",
                "a".repeat(MAX_JWT_LEN + 1),
                Expect::new("JWT", now),
                JoseError::Malformed("too long"),
            ),
        ];
        for (name, token, expect, want) in cases {
            let got = set.verify::<Map<String, Value>>(&token, &expect);
            assert_eq!(got.err(), Some(want), "{name}");
        }
        // An expired id_token_hint is still ours.
        let hint: Claims = set
            .verify(&expired, &Expect::new("JWT", now).allow_expired())
            .expect("expired hint accepted");
        assert_eq!(hint.sub, "alice");
    }

    #[test]
    fn jwks_carries_no_private_member_for_any_alg() {
        let set = KeySet::generate(&SigningAlg::ALL, clock()).expect("keys");
        let jwks = set.jwks();
        let keys = jwks["keys"].as_array().expect("keys array");
        assert_eq!(keys.len(), 3);
        for key in keys {
            for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
                assert!(key.get(private).is_none(), "{private} in {key}");
            }
            assert_eq!(key["use"], "sig");
            assert!(super::super::thumbprint(key).as_deref() == key["kid"].as_str());
        }
    }

    #[test]
    fn signing_follows_activation_and_retirement_times() {
        let clock = clock();
        let now = clock.now();
        let kek = Kek::from_bytes([1; 32]);
        let mut old = SigningKey::generate(SigningAlg::Es256, &kek, now, now).expect("gen");
        let next = SigningKey::generate(SigningAlg::Es256, &kek, now, now.plus(100)).expect("gen");
        old.retires_at = Some(now.plus(100));
        old.removes_at = Some(now.plus(400));
        let set = KeySet::from_records(
            &[old.clone(), next.clone()],
            &kek,
            SigningAlg::Es256,
            clock.clone(),
        )
        .expect("set");
        let kid_of = |jwt: &str| jsonwebtoken::decode_header(jwt).ok().and_then(|h| h.kid);

        let before = set.sign(None, "JWT", &claims(clock.now().0)).expect("sign");
        assert_eq!(kid_of(&before), Some(old.kid.clone()));
        assert_eq!(
            set.jwks()["keys"].as_array().map(Vec::len),
            Some(2),
            "next is published"
        );

        clock.advance(100);
        let after = set.sign(None, "JWT", &claims(clock.now().0)).expect("sign");
        assert_eq!(kid_of(&after), Some(next.kid.clone()));
        let expect = Expect::new("JWT", clock.now());
        assert!(
            set.verify::<Claims>(&before, &expect).is_ok(),
            "old token still verifies"
        );

        clock.advance(300);
        assert_eq!(
            set.jwks()["keys"].as_array().map(Vec::len),
            Some(1),
            "old key removed"
        );
        assert_eq!(
            set.verify::<Claims>(&before, &Expect::new("JWT", clock.now()).allow_expired())
                .err(),
            Some(JoseError::UnknownKey)
        );
    }

    #[test]
    fn a_wrong_kek_fails_the_whole_set() {
        let kek = Kek::from_bytes([1; 32]);
        let key =
            SigningKey::generate(SigningAlg::Rs256, &kek, UnixTime(0), UnixTime(0)).expect("gen");
        let err = KeySet::from_records(
            &[key],
            &Kek::from_bytes([2; 32]),
            SigningAlg::Rs256,
            clock(),
        );
        assert!(matches!(err, Err(JoseError::Key(_))));
    }

    #[test]
    fn no_active_key_is_a_server_error_not_a_panic() {
        let clock = clock();
        let set = KeySet::generate(&[SigningAlg::EdDsa], clock).expect("keys");
        let err = set
            .sign(Some(SigningAlg::Rs256), "JWT", &claims(0))
            .expect_err("no RS256 key");
        assert_eq!(err.code(), crate::error::ErrorCode::ServerError);
    }
}
