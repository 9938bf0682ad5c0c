//! The ID token (OpenID Connect Core §2, §3.1.3.6): who logged in, when and how, for which
//! client, signed by the provider.
//!
//! Two steps, so every flow (the token endpoint's code and refresh grants, the hybrid flow
//! at the authorization endpoint) assembles the same claims and signs them the same way:
//! `IdTokenClaims::for_grant(p, &client, &local_subject, Some(&auth), nonce)?`, then
//! `mint(p, &client, claims, Some(access_token), Some(code))?`.
//!
//! [`IdTokenClaims::for_grant`] sets `iss`, `sub` (public or pairwise, see
//! [`super::subject`]), `aud`, `exp`, `iat`, and from the login's [`AuthContext`]
//! `auth_time`, `acr`, `amr` and `sid`, and the `nonce` when the request had one. [`mint`]
//! adds `at_hash` and `c_hash` for the access token and code issued with it (§3.1.3.6,
//! §3.3.2.11) and signs with the client's `id_token_signed_response_alg`, or the server's
//! default algorithm, with header `typ: JWT` and the key's `kid`.

use super::AuthContext;
use crate::claims::{ClaimsQuery, ClaimsTarget};
use crate::client::Client;
use crate::error::OAuthError;
use crate::jose::{JwsSigner, SigningAlg};
use crate::provider::Provider;
use crate::scope::ScopeSet;
use crate::store::ProviderStore;
use crate::user::UserAuthenticator;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Digest as _;

/// The claims the provider sets itself: a user claim of one of these names is dropped, so a
/// claims source can never forge `sub` or `aud`.
pub const ID_TOKEN_CLAIMS: [&str; 15] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "azp",
    "at_hash",
    "c_hash",
    "sid",
];

/// The claims of one ID token (OpenID Connect Core §2), before signing.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct IdTokenClaims {
    /// The issuer identifier, exactly as in discovery.
    pub iss: String,
    /// The subject as this client sees it (public or pairwise).
    pub sub: String,
    /// The client the token is for. Always one audience: ours is the client, so `azp` is
    /// never needed (§2: "REQUIRED ... when the ID Token has a single audience value and that
    /// audience is different than the authorized party").
    pub aud: String,
    /// Expiry, in seconds since the epoch.
    pub exp: i64,
    /// Issue time.
    pub iat: i64,
    /// When the end-user authenticated, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The authorization request's `nonce`, unmodified (§3.1.2.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    /// The authentication context class reference, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// The authentication methods, when known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The authorized party, when one is needed (see `aud`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azp: Option<String>,
    /// The left half of the hash of the access token issued with this ID token (§3.1.3.6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_hash: Option<String>,
    /// The left half of the hash of the code issued with this ID token (§3.3.2.11).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c_hash: Option<String>,
    /// The login session (OpenID Connect Front- and Back-Channel Logout), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Claims about the end-user (§5.1) released into the ID token; never one of
    /// [`ID_TOKEN_CLAIMS`].
    #[serde(flatten)]
    pub user: Map<String, Value>,
}

impl std::fmt::Debug for IdTokenClaims {
    /// The protocol claims; of the user claims, only their names (personal data stays out of
    /// logs).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdTokenClaims")
            .field("iss", &self.iss)
            .field("sub", &self.sub)
            .field("aud", &self.aud)
            .field("exp", &self.exp)
            .field("iat", &self.iat)
            .field("auth_time", &self.auth_time)
            .field("nonce", &self.nonce.as_ref().map(|_| "***"))
            .field("acr", &self.acr)
            .field("amr", &self.amr)
            .field("sid", &self.sid.as_ref().map(|_| "***"))
            .field("user", &self.user.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl IdTokenClaims {
    /// The claims of an ID token for `client` about the user whose local subject is
    /// `subject`, issued now for [`crate::config::Config::id_token_ttl`]: `sub` as the client
    /// sees it (public or pairwise), the login's `auth_time`, `acr`, `amr` and `sid` when
    /// `auth` knows them, and `nonce` when the authorization request had one (none on a
    /// refresh, §12.2). Add user claims to [`IdTokenClaims::user`], then [`mint`].
    pub fn for_grant<S: ProviderStore, U: UserAuthenticator>(
        p: &Provider<S, U>,
        client: &Client,
        subject: &str,
        auth: Option<&AuthContext>,
        nonce: Option<&str>,
    ) -> Result<Self, OAuthError> {
        let now = p.clock().now();
        let config = p.config();
        Ok(Self {
            iss: config.issuer.clone(),
            sub: super::subject::for_client(config, client, subject)?,
            aud: client.id.to_string(),
            exp: now.plus(config.id_token_ttl).0,
            iat: now.0,
            // §2: auth_time is REQUIRED when max_age was requested or auth_time asked for as
            // an essential claim; Latchkey sends it whenever it is known, which covers both
            // (the authorization endpoint makes the user log in again when max_age is set and
            // the time is unknown).
            auth_time: auth.and_then(|a| a.auth_time).map(|t| t.0),
            nonce: nonce.map(str::to_owned),
            acr: auth.and_then(|a| a.acr.clone()),
            amr: auth.map(|a| a.amr.clone()).unwrap_or_default(),
            azp: None,
            at_hash: None,
            c_hash: None,
            sid: auth.and_then(|a| a.sid.clone()),
            user: Map::new(),
        })
    }

    /// Adds the claims about the user (local subject `subject`) that a grant of `scope` with
    /// the login's `claims` request releases to `target` (see [`crate::claims`]), from the
    /// provider's claims source. The hybrid flow passes [`ClaimsTarget::IdTokenOnly`] when no
    /// access token is issued with the ID token.
    pub async fn add_user_claims<S: ProviderStore, U: UserAuthenticator>(
        &mut self,
        p: &Provider<S, U>,
        subject: &str,
        target: ClaimsTarget,
        scope: &ScopeSet,
        auth: Option<&AuthContext>,
    ) -> Result<(), OAuthError> {
        let request = auth.and_then(|a| a.claims.as_ref());
        let locales = auth.map(|a| a.claims_locales.clone()).unwrap_or_default();
        let query = ClaimsQuery::new(target, scope, request).with_locales(locales);
        self.user.extend(p.user_claims(subject, &query).await?);
        Ok(())
    }
}

/// The ID token issued with an access token at the token endpoint (OpenID Connect Core
/// §3.1.3.3, §12.2): the one rule the authorization-code and refresh grants follow. `None`
/// unless OpenID Connect is on and the granted `scope` (after any narrowing on refresh) has
/// `openid`; otherwise an ID token about `subject` for `client`, with `at_hash` of
/// `access_token`, the login's context `auth` and the request's `nonce` (none on a refresh).
pub async fn for_tokens<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    client: &Client,
    subject: &str,
    auth: Option<&AuthContext>,
    nonce: Option<&str>,
    scope: &ScopeSet,
    access_token: &str,
) -> Result<Option<String>, OAuthError> {
    if !p.config().oidc || !super::is_openid(scope) {
        return Ok(None);
    }
    let mut claims = IdTokenClaims::for_grant(p, client, subject, auth, nonce)?;
    // §5.4: with an access token, the scope values' claims go to userinfo; the ID token
    // carries only what the `claims` parameter asked for it.
    claims
        .add_user_claims(p, subject, ClaimsTarget::IdToken, scope, auth)
        .await?;
    mint(p, client, claims, Some(access_token), None).map(Some)
}

/// The algorithm `client`'s ID tokens are signed with: its registered
/// `id_token_signed_response_alg`, or the signer's default.
pub fn signing_alg(signer: &dyn JwsSigner, client: &Client) -> SigningAlg {
    client
        .metadata
        .id_token_signed_response_alg
        .as_deref()
        .and_then(SigningAlg::parse)
        .unwrap_or_else(|| signer.default_alg())
}

/// Signs `claims` as `client`'s ID token, adding `at_hash` for the `access_token` and
/// `c_hash` for the `code` issued with it. `server_error` when no key signs the client's
/// algorithm now.
pub fn mint<S: ProviderStore, U: UserAuthenticator>(
    p: &Provider<S, U>,
    client: &Client,
    mut claims: IdTokenClaims,
    access_token: Option<&str>,
    code: Option<&str>,
) -> Result<String, OAuthError> {
    let signer = p.signer();
    let alg = signing_alg(signer.as_ref(), client);
    // §3.1.3.6 and §3.3.2.11: "the base64url encoding of the left-most half of the hash of
    // the octets of the ASCII representation of the access_token [code] value, where the hash
    // algorithm used is the hash algorithm used in the alg Header Parameter".
    claims.at_hash = access_token.map(|t| half_hash(alg, t));
    claims.c_hash = code.map(|c| half_hash(alg, c));
    claims
        .user
        .retain(|name, _| !ID_TOKEN_CLAIMS.contains(&name.as_str()));
    // RFC 7519 §5.1: typ "JWT", as every ID token verifier expects.
    signer.sign(Some(alg), "JWT", &claims)
}

/// The left half of the hash of `value` under `alg`'s hash (SHA-256 for ES256 and RS256,
/// SHA-512 for EdDSA on Ed25519), base64url: `at_hash` and `c_hash`.
pub fn half_hash(alg: SigningAlg, value: &str) -> String {
    let digest = match alg {
        SigningAlg::EdDsa => sha2::Sha512::digest(value.as_bytes()).to_vec(),
        _ => sha2::Sha256::digest(value.as_bytes()).to_vec(),
    };
    crate::jose::b64(digest.get(..digest.len() / 2).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::NewClient;
    use crate::clock::{ManualClock, UnixTime};
    use crate::jose::{Expect, KeySet};
    use crate::prelude::*;
    use std::sync::Arc;

    #[test]
    fn half_hashes_match_the_openid_connect_examples() {
        // OpenID Connect Core A.3 (at_hash) and A.4 (c_hash), RS256.
        assert_eq!(
            half_hash(
                SigningAlg::Rs256,
                "jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y"
            ),
            "77QmUPtjPfzWtF2AnpK9RQ"
        );
        assert_eq!(
            half_hash(
                SigningAlg::Rs256,
                "Qcb0Orv1zh30vL1MPRsbm-diHiMwcLyZvn1arpZv-Jxf_11jnpEX3Tgfvk"
            ),
            "LDktKdoQak3Pk0cnXxCltA"
        );
        assert_eq!(half_hash(SigningAlg::Es256, "x").len(), 22);
        assert_eq!(half_hash(SigningAlg::EdDsa, "x").len(), 43);
    }

    #[test]
    fn minted_id_token_verifies_with_the_clients_alg_and_every_claim() {
        let clock = Arc::new(ManualClock::new(UnixTime(1_000_000)));
        let p = Provider::builder(MemoryStore::new(), NoUsers)
            .issuer("https://op.example")
            .clock(clock.clone())
            .signer(Arc::new(
                KeySet::generate(&SigningAlg::ALL, clock.clone()).expect("keys"),
            ))
            .build()
            .expect("provider");
        let (mut client, _) = NewClient::confidential("rp")
            .redirect_uris(["https://rp.example/cb"])
            .build(p.entropy(), clock.now());
        client.metadata.id_token_signed_response_alg = Some("EdDSA".into());
        let auth = AuthContext::login(Some(UnixTime(999_000)), &["pwd"], None, Some("sid-1"));
        let mut claims =
            IdTokenClaims::for_grant(&p, &client, "u-1", Some(&auth), Some("n-0S6")).expect("c");
        claims.user.insert("email".into(), "a@example.com".into());
        claims.user.insert("sub".into(), "forged".into());
        let jwt = mint(&p, &client, claims, Some("at"), None).expect("mint");
        let header = jsonwebtoken::decode_header(&jwt).expect("header");
        assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let got: Value = p
            .signer()
            .verify(
                &jwt,
                &Expect::new("JWT", clock.now())
                    .issuer("https://op.example")
                    .audience(client.id.as_str()),
            )
            .expect("verifies");
        assert_eq!(got["sub"], "u-1");
        assert_eq!(got["exp"], 1_000_000 + 3600);
        assert_eq!(got["iat"], 1_000_000);
        assert_eq!(got["auth_time"], 999_000);
        assert_eq!(got["nonce"], "n-0S6");
        assert_eq!(got["amr"], serde_json::json!(["pwd"]));
        assert_eq!(got["sid"], "sid-1");
        assert_eq!(got["at_hash"], half_hash(SigningAlg::EdDsa, "at"));
        assert_eq!(got["email"], "a@example.com");
        assert!(got.get("c_hash").is_none() && got.get("azp").is_none());
    }
}
