//! Token-response extras: members an embedder adds to a successful token response
//! (Flask-OAuthlib's `token_handler` extras, pyramid_oauth2_provider's `user_id`).
//!
//! RFC 6749 §5.1 lets a server add parameters to the response ("The client MUST ignore
//! unrecognized value names"). A [`ResponseExtras`] hook, set with
//! [`crate::provider::ProviderBuilder::response_extras`], is asked for them on every token the
//! token endpoint issues, whatever the grant. It can add members, never change the standard
//! ones: a name in [`STANDARD_MEMBERS`] is dropped, with a warning in the log, so no hook can
//! rewrite `access_token`, `token_type` or `expires_in` behind the provider's back.
//!
//! The implicit grant's redirect (RFC 6749 §4.2.2) carries the standard members only.

use crate::client::GrantType;
use crate::clock::UnixTime;
use crate::token::Grant;
use serde_json::Value;
use std::collections::BTreeMap;

/// The members a token response defines itself: RFC 6749 §5.1 and §5.2, OpenID Connect Core
/// §3.1.3.3 (`id_token`), RFC 8693 §2.2.1 (`issued_token_type`) and RFC 9396 §7
/// (`authorization_details`). A hook cannot set them.
pub const STANDARD_MEMBERS: [&str; 11] = [
    "access_token",
    "authorization_details",
    "error",
    "error_description",
    "error_uri",
    "expires_in",
    "id_token",
    "issued_token_type",
    "refresh_token",
    "scope",
    "token_type",
];

/// Adds members to successful token responses.
///
/// Any `Fn(&ResponseContext, &mut ExtraMembers)` closure is one:
///
/// ```
/// use latchkey_core::extras::{ExtraMembers, ResponseContext};
///
/// // pyramid_oauth2_provider's `user_id`: the resource owner, when there is one.
/// let user_id = |ctx: &ResponseContext<'_>, out: &mut ExtraMembers| {
///     if let Some(subject) = &ctx.grant.subject {
///         out.insert("user_id", subject.as_str());
///     }
/// };
/// # let _: &dyn latchkey_core::extras::ResponseExtras = &user_id;
/// ```
pub trait ResponseExtras: Send + Sync + 'static {
    /// Adds members for the issuance `ctx` describes to `out`. Called after the tokens are
    /// stored, so it should not fail; it has nothing to return.
    fn extras(&self, ctx: &ResponseContext<'_>, out: &mut ExtraMembers);
}

impl<F> ResponseExtras for F
where
    F: Fn(&ResponseContext<'_>, &mut ExtraMembers) + Send + Sync + 'static,
{
    fn extras(&self, ctx: &ResponseContext<'_>, out: &mut ExtraMembers) {
        self(ctx, out)
    }
}

/// What was issued, for a [`ResponseExtras`] hook.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct ResponseContext<'a> {
    /// What the grant decided: client, subject and user name, scope, the grant type that
    /// started the family, the family and lifetimes, and what the application attached at
    /// authorization ([`Grant::attached`], the same on a refresh rotation).
    pub grant: &'a Grant,
    /// The grant type of the token request (`refresh_token` on a rotation).
    pub request_grant: GrantType,
    /// When the tokens were issued.
    pub issued_at: UnixTime,
    /// Whether a refresh token was issued.
    pub with_refresh: bool,
}

/// The extra members of one token response, sorted by name; empty unless a hook added some.
/// Without a hook it is one null pointer: no allocation, and the token response the hot path
/// moves around stays as small as it was.
#[derive(Clone, Debug, Default, PartialEq)]
// The box is the point: 8 bytes in every token response instead of a map's 24.
#[allow(clippy::box_collection)]
pub struct ExtraMembers(Option<Box<BTreeMap<String, Value>>>);

impl ExtraMembers {
    /// No extra members.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `name`, replacing an extra member of that name. A name in [`STANDARD_MEMBERS`] is
    /// refused: nothing is added, a warning is logged and `false` returned.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<Value>) -> bool {
        let name = name.into();
        if STANDARD_MEMBERS.contains(&name.as_str()) {
            tracing::warn!(
                member = %name,
                "token-response extras may not set a standard member; dropped"
            );
            return false;
        }
        self.0.get_or_insert_default().insert(name, value.into());
        true
    }

    /// The member `name`, if added.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.as_ref()?.get(name)
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(|members| members.is_empty())
    }

    /// The members, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0
            .iter()
            .flat_map(|members| members.iter())
            .map(|(name, value)| (name.as_str(), value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_members_cannot_be_added() {
        let mut extras = ExtraMembers::new();
        for name in STANDARD_MEMBERS {
            assert!(!extras.insert(name, "forged"), "{name}");
        }
        assert!(extras.is_empty());
        assert!(extras.insert("user_id", 1234));
        assert!(extras.insert("Access_Token", "names are case-sensitive"));
        assert_eq!(extras.get("user_id"), Some(&Value::from(1234)));
        assert_eq!(
            extras.iter().map(|(name, _)| name).collect::<Vec<_>>(),
            ["Access_Token", "user_id"]
        );
    }
}
