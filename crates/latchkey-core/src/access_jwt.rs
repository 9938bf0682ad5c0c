//! JWT access tokens (RFC 9068): the per-client token format that resource servers verify
//! without calling back.
//!
//! A client registered with `access_token_format = "jwt"`
//! ([`crate::client_metadata::ClientMetadata::access_token_format`]) gets access tokens that
//! are JWTs signed by the provider's [`crate::jose::JwsSigner`]; every other client gets the
//! opaque values of the configured [`crate::generator::TokenGenerator`]. The choice is made in
//! one place, [`crate::provider::Provider`]'s minting, from [`AccessTokenFormat`] on the
//! [`crate::token::Grant`]. Refresh tokens stay opaque.
//!
//! A JWT access token is still a token like the others: the store keeps its SHA-256 digest
//! and its record, so introspection (RFC 7662) and revocation (RFC 7009) answer for it
//! exactly as for an opaque one. What changes is the resource server: it may verify the
//! token locally ([`crate::resource::jwt`]), in which case a revoked JWT keeps working there
//! until it expires.
//!
//! **Audience.** RFC 9068 §3 makes `aud` the resource the token is for: the resources the
//! request named with RFC 8707's `resource` (see [`crate::indicator`]), or, when it named
//! none, the configured [`crate::config::Config::access_token_audience`] (the issuer when
//! none is set). A resource server checks that it is named there. A delegated token (RFC 8693
//! token exchange) carries its actor as `act`.

use crate::clock::UnixTime;
use crate::entropy::{Entropy, random_token};
use crate::error::OAuthError;
use crate::generator::{TokenContext, TokenGenerator};
use crate::jose::{JwsSigner, SigningAlg};
use crate::secret::Secret;
use crate::token::{Confirmation, TokenKind};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// The `typ` header of a JWT access token (RFC 9068 §2.1): `at+jwt`, so that no other kind of
/// JWT (an ID token) passes as one.
pub const TYP: &str = "at+jwt";

/// Random bytes in a `jti` (128 bits: unique without a registry, and short).
const JTI_BYTES: usize = 16;

/// The format of the access tokens a client gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AccessTokenFormat {
    /// The provider's token generator (256 random bits by default): checked through the
    /// store or introspection.
    #[default]
    Opaque,
    /// An RFC 9068 JWT signed by the provider: verifiable by a resource server alone.
    Jwt,
}

impl AccessTokenFormat {
    /// The registration value: `opaque` or `jwt`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opaque => "opaque",
            Self::Jwt => "jwt",
        }
    }

    /// Parses [`AccessTokenFormat::as_str`]; `None` for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "opaque" => Some(Self::Opaque),
            "jwt" => Some(Self::Jwt),
            _ => None,
        }
    }
}

/// `aud`: one string, or an array of strings (RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One audience.
    One(String),
    /// Several audiences (a token for several RFC 8707 resources).
    Many(Vec<String>),
}

impl Audience {
    /// Every audience.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(a) => vec![a.clone()],
            Self::Many(list) => list.clone(),
        }
    }

    /// Whether `name` is among the audiences.
    pub fn contains(&self, name: &str) -> bool {
        match self {
            Self::One(a) => a == name,
            Self::Many(list) => list.iter().any(|a| a == name),
        }
    }
}

/// The claims of a JWT access token: exactly RFC 9068 §2.2's, nothing of Latchkey's own
/// (the user name, the binding and attached data stay in the store record).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The issuer identifier (§2.2: REQUIRED).
    pub iss: String,
    /// Expiry, seconds since the epoch (§2.2: REQUIRED).
    pub exp: i64,
    /// The resource the token is for (§2.2: REQUIRED; see the module doc).
    pub aud: Audience,
    /// The resource owner; for a grant with none (client credentials), the client id
    /// (§2.2: "the value of sub SHOULD correspond to an identifier the authorization server
    /// uses to indicate the client application").
    pub sub: String,
    /// The client the token was issued to (§2.2: REQUIRED).
    pub client_id: String,
    /// When the token was issued (§2.2: REQUIRED).
    pub iat: i64,
    /// A unique identifier (§2.2: REQUIRED).
    pub jti: String,
    /// The granted scope, space-delimited (§2.2.3), absent when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// When the resource owner authenticated (§2.2.1), when the grant knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The authentication context class (§2.2.1), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// The authentication methods (§2.2.1), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amr: Option<Vec<String>>,
    /// The key the token is bound to (RFC 7800 §3.1; RFC 9449 §6.1, RFC 8705 §3.1): a
    /// resource server must see that key proven before it accepts the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// Who acts for the subject (RFC 8693 §4.1), for a delegated token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<crate::token::Actor>,
}

impl AccessTokenClaims {
    /// The claims of the access token `ctx` describes: for the grant's resources, or
    /// `default_audience` when it names none.
    pub fn of(ctx: &TokenContext<'_>, default_audience: &str, entropy: &dyn Entropy) -> Self {
        let grant = ctx.grant;
        let scope = (!grant.scope.is_empty()).then(|| grant.scope.to_string());
        let aud = match grant.audience.len() {
            0 => Audience::One(default_audience.to_owned()),
            1 => Audience::One(grant.audience.iter().collect()),
            _ => Audience::Many(grant.audience.iter().map(str::to_owned).collect()),
        };
        Self {
            iss: ctx.issuer.to_owned(),
            exp: ctx.expires_at.0,
            aud,
            sub: grant
                .subject
                .clone()
                .unwrap_or_else(|| grant.client_id.to_string()),
            client_id: grant.client_id.to_string(),
            iat: ctx.issued_at.0,
            jti: random_token(entropy, JTI_BYTES),
            scope,
            // The grant does not carry the authentication event yet; room is left for it.
            auth_time: None,
            acr: None,
            amr: None,
            cnf: grant.cnf.clone(),
            act: grant.actor.as_deref().cloned(),
        }
    }

    /// The resource owner: `None` when `sub` names the client itself (a client-credentials
    /// token), as the store's records have it.
    pub fn subject(&self) -> Option<&str> {
        (self.sub != self.client_id).then_some(self.sub.as_str())
    }

    /// When the token expires.
    pub fn expires_at(&self) -> UnixTime {
        UnixTime(self.exp)
    }
}

/// The [`TokenGenerator`] of JWT access tokens: signs [`AccessTokenClaims`] with `typ:
/// at+jwt`. Made for refresh tokens too, it falls back to opaque values (a refresh token is
/// only ever read by the provider).
#[derive(Clone)]
pub struct JwtAccessTokens {
    signer: Arc<dyn JwsSigner>,
    audience: Arc<str>,
    alg: Option<SigningAlg>,
}

impl JwtAccessTokens {
    /// Signs with `signer`'s default algorithm, for `audience`.
    pub fn new(signer: Arc<dyn JwsSigner>, audience: impl Into<Arc<str>>) -> Self {
        Self {
            signer,
            audience: audience.into(),
            alg: None,
        }
    }

    /// Signs with `alg` instead of the signer's default.
    pub fn alg(mut self, alg: SigningAlg) -> Self {
        self.alg = Some(alg);
        self
    }
}

impl std::fmt::Debug for JwtAccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAccessTokens")
            .field("audience", &self.audience)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl TokenGenerator for JwtAccessTokens {
    fn generate(
        &self,
        ctx: &TokenContext<'_>,
        entropy: &dyn Entropy,
    ) -> Result<Secret, OAuthError> {
        if ctx.kind == TokenKind::Refresh {
            return crate::generator::OpaqueTokens.generate(ctx, entropy);
        }
        let claims = AccessTokenClaims::of(ctx, &self.audience, entropy);
        self.signer.sign(self.alg, TYP, &claims).map(Secret::new)
    }
}

/// Whether a bearer token has the shape of a compact JWS (`eyJ…` header, three parts), so
/// that a guard verifies it locally instead of looking it up. Opaque values never contain a
/// dot.
pub fn looks_like_jwt(token: &str) -> bool {
    token.starts_with("eyJ") && token.bytes().filter(|b| *b == b'.').count() == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_their_registration_names_only() {
        for format in [AccessTokenFormat::Opaque, AccessTokenFormat::Jwt] {
            assert_eq!(AccessTokenFormat::parse(format.as_str()), Some(format));
        }
        for bad in ["JWT", "paseto", "", " jwt"] {
            assert_eq!(AccessTokenFormat::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn only_compact_jws_shapes_look_like_jwts() {
        assert!(looks_like_jwt("eyJhbGciOiJFUzI1NiJ9.eyJ9.c2ln"));
        for opaque in [
            "dGhpcyBpcyBhbiBvcGFxdWUgdG9rZW4gdmFsdWUgb2Yg",
            "eyJhbGciOiJFUzI1NiJ9.eyJ9",
            "eyJ.a.b.c",
            "abc.def.ghi",
        ] {
            assert!(!looks_like_jwt(opaque), "{opaque}");
        }
    }

    #[test]
    fn audience_is_a_string_or_a_list() {
        let one: Audience = serde_json::from_str(r#""api""#).expect("string");
        let many: Audience = serde_json::from_str(r#"["a","api"]"#).expect("list");
        assert!(one.contains("api") && many.contains("api"));
        assert!(!one.contains("ap") && !many.contains("b"));
    }
}
