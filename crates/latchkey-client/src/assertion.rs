//! Client authentication with a signed JWT (RFC 7523 §2.2, OpenID Connect Core §9):
//! `private_key_jwt`, signed with the client's own private key ([`ClientKey`]), and
//! `client_secret_jwt`, an HS256 MAC keyed with the client secret. A fresh assertion goes with
//! every request to the token, revocation, introspection and device endpoints.

use crate::config::{AppConfig, ClientAuth};
use crate::error::ClientError;
use crate::jose::{self, SigningAlg};
use latchkey_core::clock::UnixTime;
use latchkey_core::entropy::{Entropy, random_token};
use latchkey_core::secret::Secret;

/// `client_assertion_type` of a JWT assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How long an assertion is valid: long enough for one request, short enough that a copy
/// is useless soon after (the server remembers its `jti` until then).
pub const ASSERTION_LIFETIME: u64 = 60;

/// The client's private key for `private_key_jwt`, parsed and checked once: PKCS#8 PEM
/// (`BEGIN PRIVATE KEY`; PKCS#1 `BEGIN RSA PRIVATE KEY` too for RSA), with the `kid` under
/// which the provider knows its public half. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct ClientKey {
    alg: SigningAlg,
    kid: Option<String>,
    pem: Secret,
    key: jsonwebtoken::EncodingKey,
}

impl ClientKey {
    /// Reads `pem` as a key for `alg` (ES256, RS256, PS256 or EdDSA) and signs a probe with
    /// it, so a key of the wrong type or curve fails here, not at the first login.
    pub fn from_pem(pem: &str, alg: SigningAlg, kid: Option<&str>) -> Result<Self, ClientError> {
        let bad = |why: &str| ClientError::Config(format!("private key for {alg}: {why}"));
        let parsed = match alg {
            SigningAlg::ES256 => jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes()),
            SigningAlg::RS256 | SigningAlg::PS256 => {
                jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
            }
            SigningAlg::EdDSA => jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()),
            SigningAlg::HS256 => {
                return Err(bad(
                    "HS256 is keyed with the client secret (client_auth = client_secret_jwt)",
                ));
            }
        }
        .map_err(|_| bad("not a PEM private key of this type"))?;
        jsonwebtoken::crypto::sign(b"probe", &parsed, alg.jwt())
            .map_err(|_| bad("the key cannot sign with this algorithm"))?;
        Ok(Self {
            alg,
            kid: kid.map(str::to_owned),
            pem: Secret::new(pem),
            key: parsed,
        })
    }

    /// The signature algorithm.
    pub fn alg(&self) -> SigningAlg {
        self.alg
    }

    /// The key id sent in the assertion's header.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl PartialEq for ClientKey {
    fn eq(&self, other: &Self) -> bool {
        self.alg == other.alg && self.kid == other.kid && self.pem == other.pem
    }
}

impl Eq for ClientKey {}

/// The client assertion for one request, or `None` when the client does not authenticate
/// with a JWT.
///
/// RFC 7523 §3 and OpenID Connect Core §9: `iss` and `sub` are the client id, `aud` the
/// authorization server (`audience`: its token endpoint URL, or its issuer), `jti` 256
/// random bits so the server can refuse a replay, `iat` now and `exp` a minute later.
pub fn client_assertion(
    config: &AppConfig,
    audience: &str,
    now: UnixTime,
    entropy: &dyn Entropy,
) -> Result<Option<Secret>, ClientError> {
    let claims = serde_json::json!({
        "iss": config.client_id,
        "sub": config.client_id,
        "aud": audience,
        "jti": random_token(entropy, 32),
        "iat": now.0,
        "exp": now.plus(ASSERTION_LIFETIME).0,
    });
    let signed = match config.client_auth {
        ClientAuth::PrivateKeyJwt => {
            let Some(key) = &config.client_key else {
                return Err(ClientError::Config(
                    "private_key_jwt needs a client_key".into(),
                ));
            };
            jose::sign(&claims, key.alg, key.kid(), &key.key)
        }
        ClientAuth::ClientSecretJwt => {
            let Some(secret) = &config.client_secret else {
                return Err(ClientError::Config(
                    "client_secret_jwt needs a client_secret".into(),
                ));
            };
            let key = jsonwebtoken::EncodingKey::from_secret(secret.expose().as_bytes());
            jose::sign(&claims, SigningAlg::HS256, None, &key)
        }
        _ => return Ok(None),
    };
    signed
        .map(|jwt| Some(Secret::new(jwt)))
        .map_err(|e| ClientError::Config(format!("signing the client assertion failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use latchkey_core::entropy::SeededEntropy;

    #[test]
    fn keys_that_do_not_fit_their_alg_are_refused_at_configuration() {
        for alg in [
            SigningAlg::ES256,
            SigningAlg::RS256,
            SigningAlg::EdDSA,
            SigningAlg::HS256,
        ] {
            let err = ClientKey::from_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                alg,
                None,
            )
            .expect_err("garbage");
            assert!(matches!(err, ClientError::Config(_)), "{alg}: {err:?}");
        }
    }

    #[test]
    fn client_secret_jwt_is_an_hs256_assertion_about_the_client() {
        let config = AppConfig::new("app", Some("a-long-enough-client-secret-for-hs256"))
            .client_auth(ClientAuth::ClientSecretJwt);
        let one = client_assertion(
            &config,
            "https://as/token",
            UnixTime(1_000),
            &SeededEntropy::new(1),
        )
        .expect("signed")
        .expect("a JWT method");
        let two = client_assertion(
            &config,
            "https://as/token",
            UnixTime(1_000),
            &SeededEntropy::new(2),
        )
        .expect("signed")
        .expect("a JWT method");
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_audience(&["https://as/token"]);
        validation.validate_exp = false;
        let key = jsonwebtoken::DecodingKey::from_secret(b"a-long-enough-client-secret-for-hs256");
        let claims = |jwt: &Secret| {
            jsonwebtoken::decode::<serde_json::Value>(jwt.expose(), &key, &validation)
                .expect("verifies")
                .claims
        };
        let (a, b) = (claims(&one), claims(&two));
        assert_eq!(a["iss"], "app");
        assert_eq!(a["sub"], "app");
        assert_eq!(a["iat"], 1_000);
        assert_eq!(a["exp"], 1_060);
        assert_ne!(a["jti"], b["jti"], "a fresh jti per assertion");
        let basic = AppConfig::new("app", Some("s"));
        assert_eq!(
            client_assertion(
                &basic,
                "https://as/token",
                UnixTime(1),
                &SeededEntropy::new(1)
            )
            .expect("no JWT method"),
            None
        );
    }
}
