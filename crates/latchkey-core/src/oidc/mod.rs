//! OpenID Connect Core 1.0 on top of the OAuth 2.0 core: the ID token ([`id_token`]), the
//! subject identifiers a client sees ([`subject`]), and the authentication context that
//! travels from the login to every ID token of a grant ([`AuthContext`]).
//!
//! The rules live here once; the grants, the authorization endpoint and the userinfo
//! endpoint call them.

pub mod id_token;
pub mod subject;

pub use id_token::{IdTokenClaims, mint};

use crate::claims::ClaimsRequest;
use crate::clock::UnixTime;
use crate::entropy::{Entropy, random_token};
use crate::scope::ScopeSet;
use serde::{Deserialize, Serialize};

/// The scope value that makes an authorization request an OpenID Connect one (OpenID
/// Connect Core §3.1.2.1: "OpenID Connect requests MUST contain the openid scope value").
pub const OPENID: &str = "openid";

/// The scope values OpenID Connect defines (§5.4 for `profile`, `email`, `address`, `phone`;
/// §11 for `offline_access`), made available by default when OpenID Connect is on
/// ([`crate::config::Config::oidc`]).
pub const OIDC_SCOPES: [&str; 6] = [
    OPENID,
    "profile",
    "email",
    "address",
    "phone",
    "offline_access",
];

/// Whether `scope` asks for OpenID Connect (contains `openid`).
pub fn is_openid(scope: &ScopeSet) -> bool {
    scope.contains(OPENID)
}

/// How and when the end-user authenticated, as the ID token states it (OpenID Connect Core
/// §2: `auth_time`, `acr`, `amr`), the login session (`sid`, OpenID Connect Front- and
/// Back-Channel Logout), and the client's `claims` request parameter (§5.5).
///
/// Built from the login ([`crate::endpoint::authorize::Authentication`]), stored with the
/// authorization code and then with every token of the grant family (through the codec's
/// extension object, so no store changes), so a refresh mints an ID token with the same
/// `auth_time` (§12.2). Bounded: every string is cut at [`AuthContext::MAX_LEN`] bytes and
/// `amr` at [`AuthContext::MAX_AMR`] values when it is built from a login.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuthContext {
    /// When the end-user last entered their credentials, if known.
    #[serde(
        rename = "t",
        default,
        skip_serializing_if = "Option::is_none",
        with = "unix_opt"
    )]
    pub auth_time: Option<UnixTime>,
    /// The authentication context class reference that was satisfied, if known.
    #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// The authentication methods used (RFC 8176 values: `pwd`, `otp`, `mfa`, …).
    #[serde(rename = "m", default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// The login session's identifier, when the login has one.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The `claims` request parameter of the authorization request (§5.5), when one was
    /// sent: it decides the ID token's and the userinfo response's individual claims for the
    /// whole grant.
    #[serde(rename = "q", default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<ClaimsRequest>,
    /// The `claims_locales` of the authorization request (§5.2), most preferred first: the
    /// languages of the claims the whole grant's ID tokens and userinfo responses carry.
    #[serde(rename = "l", default, skip_serializing_if = "Vec::is_empty")]
    pub claims_locales: Vec<String>,
}

impl AuthContext {
    /// The longest `acr`, `amr` value or `sid` kept, in bytes.
    pub const MAX_LEN: usize = 255;
    /// The most `amr` values kept.
    pub const MAX_AMR: usize = 8;

    /// The context of a login at `auth_time` (if known) with the methods `amr`, the class
    /// `acr` and the session `sid`, each bounded (values over [`AuthContext::MAX_LEN`] are
    /// dropped, `amr` is cut at [`AuthContext::MAX_AMR`]).
    pub fn login(
        auth_time: Option<UnixTime>,
        amr: &[&str],
        acr: Option<&str>,
        sid: Option<&str>,
    ) -> Self {
        let bounded = |v: &str| (!v.is_empty() && v.len() <= Self::MAX_LEN).then(|| v.to_owned());
        Self {
            auth_time,
            acr: acr.and_then(bounded),
            amr: amr
                .iter()
                .filter_map(|m| bounded(m))
                .take(Self::MAX_AMR)
                .collect(),
            sid: sid.and_then(bounded),
            claims: None,
            claims_locales: Vec::new(),
        }
    }

    /// Whether nothing is known, so nothing needs storing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What building a provider does for OpenID Connect: with [`Config::oidc`] on, the OIDC
/// scope values join the available scopes; a missing pairwise salt is drawn from `entropy`
/// (kept in memory only: set one to keep pairwise subjects across restarts).
///
/// [`Config::oidc`]: crate::config::Config::oidc
pub(crate) fn prepare_config(config: &mut crate::config::Config, entropy: &dyn Entropy) {
    if config.oidc {
        config.available_scopes = config.available_scopes.iter().chain(OIDC_SCOPES).collect();
    }
    if config.pairwise_salt.is_none() {
        config.pairwise_salt = Some(crate::secret::Secret::new(random_token(entropy, 32)));
    }
    if config.dpop.nonce_secret.is_none() {
        // Valid in this process only; the server passes one every node shares.
        config.dpop.nonce_secret = Some(crate::secret::Secret::new(random_token(entropy, 32)));
    }
}

/// `Option<UnixTime>` as an optional number of seconds.
mod unix_opt {
    use crate::clock::UnixTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<UnixTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&t.0),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<UnixTime>, D::Error> {
        Ok(Option::<i64>::deserialize(d)?.map(UnixTime))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_context_is_bounded_and_round_trips_in_short_form() {
        let long = "x".repeat(AuthContext::MAX_LEN + 1);
        let many: Vec<&str> = std::iter::repeat_n("pwd", 20).collect();
        let ctx = AuthContext::login(Some(UnixTime(42)), &many, Some(&long), Some("s1"));
        assert_eq!(ctx.amr.len(), AuthContext::MAX_AMR);
        assert_eq!(ctx.acr, None);
        let json = serde_json::to_string(&ctx).expect("json");
        assert!(json.starts_with(r#"{"t":42,"m":["pwd""#), "{json}");
        assert_eq!(
            serde_json::from_str::<AuthContext>(&json).expect("back"),
            ctx
        );
        assert!(AuthContext::default().is_empty());
        assert_eq!(
            serde_json::to_string(&AuthContext::default()).expect("json"),
            "{}"
        );
    }
}
