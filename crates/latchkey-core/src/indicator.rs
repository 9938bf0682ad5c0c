//! Resource indicators (RFC 8707): the registered resources, the `resource` parameter, and the
//! audience a token is issued for.
//!
//! A resource is registered ([`RegisteredResource`], in [`crate::config::Config::resources`],
//! or at run time in the store, [`crate::store::ResourceStore`]; the configuration wins, see
//! [`crate::provider::Provider::resources_for`]) by its identifier, an absolute URI without a fragment (RFC 8707 §2), with the scopes a
//! token for it may carry and, optionally, the clients that may ask for it. A request names
//! the resources it wants with `resource` (repeatable, at `/authorize` and at the token
//! endpoint); the rules every grant applies live here, once:
//!
//! * [`requested`] parses the parameter: a malformed value is `invalid_target`;
//! * [`Resources::authorize`] checks each against the registry and the client
//!   (`invalid_target` for an unknown one, or one the client may not ask for);
//! * [`Resources::limit_scope`] keeps the scope within what the resources accept;
//! * [`narrow`] lets a later request (a code's exchange, a refresh) ask for a subset of what
//!   was granted, never more.
//!
//! The result is an [`AudienceSet`] on the token record; JWT access tokens carry it as `aud`,
//! introspection returns it, and a guard configured for one resource refuses a token that
//! does not name it. A request without `resource` gets a token with no audience, as before:
//! only a guard with no resource of its own accepts it.

use crate::client::Client;
use crate::error::{ErrorCode, OAuthError};
use crate::params::Params;
use crate::scope::ScopeSet;
use serde::{Deserialize, Serialize};

/// The most `resource` values one request may carry.
pub const MAX_RESOURCES: usize = 16;
/// The longest resource identifier accepted, in bytes.
pub const MAX_RESOURCE_LEN: usize = 2048;

/// A resource identifier: an absolute URI without a fragment (RFC 8707 §2: "MUST be an
/// absolute URI ... MUST NOT include a fragment component").
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ResourceUri(String);

impl ResourceUri {
    /// Parses an identifier; `invalid_target` when it is not an absolute URI without a
    /// fragment, or too long.
    pub fn parse(raw: &str) -> Result<Self, OAuthError> {
        let refused = || {
            OAuthError::new(
                ErrorCode::InvalidTarget,
                "resource must be an absolute URI without a fragment",
            )
        };
        if raw.len() > MAX_RESOURCE_LEN || raw.contains('#') || raw.contains(' ') {
            return Err(refused());
        }
        let url = url::Url::parse(raw).map_err(|_| refused())?;
        if url.cannot_be_a_base() && matches!(url.scheme(), "http" | "https") {
            return Err(refused());
        }
        if matches!(url.scheme(), "http" | "https") && !url.has_host() {
            return Err(refused());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The identifier, as sent and registered (compared byte for byte).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ResourceUri {
    type Error = String;
    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw).map_err(|e| e.description().unwrap_or("invalid resource").to_owned())
    }
}

impl From<ResourceUri> for String {
    fn from(uri: ResourceUri) -> String {
        uri.0
    }
}

impl std::fmt::Display for ResourceUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The resources a token is for: its audience, sorted and without duplicates; empty when the
/// request named none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AudienceSet(Vec<String>);

impl AudienceSet {
    /// No audience.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The set of `names`.
    pub fn of<I: IntoIterator<Item = S>, S: Into<String>>(names: I) -> Self {
        let mut list: Vec<String> = names.into_iter().map(Into::into).collect();
        list.sort();
        list.dedup();
        Self(list)
    }

    /// Whether the set names no resource.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `name` is one of the resources.
    pub fn contains(&self, name: &str) -> bool {
        self.0.iter().any(|a| a == name)
    }

    /// Whether every resource of this set is in `other`.
    pub fn is_subset(&self, other: &AudienceSet) -> bool {
        self.0.iter().all(|a| other.contains(a))
    }

    /// The resources, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// How many resources.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// One resource the server issues tokens for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisteredResource {
    /// The identifier clients send as `resource`, and tokens carry as `aud`.
    pub id: ResourceUri,
    /// A human-readable name (RFC 9728 §2 `resource_name`).
    pub name: Option<String>,
    /// The scopes a token for this resource may carry; `None`: any scope the client may get.
    /// OpenID Connect scopes are always allowed beside them (they are for the server itself).
    pub scopes: Option<ScopeSet>,
    /// The clients that may ask for this resource; `None`: every client.
    pub clients: Option<Vec<String>>,
}

impl RegisteredResource {
    /// A resource every client may ask for, with any scope.
    pub fn new(id: ResourceUri) -> Self {
        Self {
            id,
            name: None,
            scopes: None,
            clients: None,
        }
    }

    /// Whether `client` may ask for a token for this resource.
    pub fn allows(&self, client: &Client) -> bool {
        self.clients
            .as_ref()
            .is_none_or(|list| list.iter().any(|c| c == client.id.as_str()))
    }
}

/// What a token request that starts a grant asked for: its `scope` and its `resource`s.
#[derive(Clone, Copy, Debug)]
pub struct Asked<'a> {
    /// The `scope` parameter, parsed; `None` when absent.
    pub scope: Option<&'a ScopeSet>,
    /// The `resource` parameters, parsed.
    pub resources: &'a [ResourceUri],
}

/// The registered resources of a provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resources(Vec<RegisteredResource>);

impl Resources {
    /// The registry of `list`; a later duplicate identifier replaces an earlier one.
    pub fn new(list: Vec<RegisteredResource>) -> Self {
        let mut out: Vec<RegisteredResource> = Vec::with_capacity(list.len());
        for r in list {
            out.retain(|o| o.id != r.id);
            out.push(r);
        }
        Self(out)
    }

    /// The resource registered as `id`.
    pub fn get(&self, id: &str) -> Option<&RegisteredResource> {
        self.0.iter().find(|r| r.id.as_str() == id)
    }

    /// Every registered resource, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = &RegisteredResource> {
        self.0.iter()
    }

    /// Whether no resource is registered (then every `resource` parameter is refused).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The audience for `requested` resources asked by `client`: each must be registered and
    /// allowed to the client, else `invalid_target` (RFC 8707 §2: "the requested resource is
    /// invalid, missing, unknown, or malformed").
    pub fn authorize(
        &self,
        client: &Client,
        requested: &[ResourceUri],
    ) -> Result<AudienceSet, OAuthError> {
        for uri in requested {
            let Some(resource) = self.get(uri.as_str()) else {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "the requested resource is unknown",
                ));
            };
            if !resource.allows(client) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidTarget,
                    "this client may not request that resource",
                ));
            }
        }
        Ok(AudienceSet::of(requested.iter().map(ResourceUri::as_str)))
    }

    /// The audience and scope of a new grant for `client`: [`Resources::authorize`] then
    /// [`Resources::limit_scope`], the one path every grant that starts a family takes.
    pub fn target(
        &self,
        client: &Client,
        requested: &[ResourceUri],
        scope: ScopeSet,
        explicit: bool,
    ) -> Result<(AudienceSet, ScopeSet), OAuthError> {
        let audience = self.authorize(client, requested)?;
        let scope = self.limit_scope(&audience, scope, explicit)?;
        Ok((audience, scope))
    }

    /// The scope a token for `audience` may carry, from `scope`: unchanged when the audience
    /// is empty or a resource accepts any scope; else the OpenID Connect scopes and those of
    /// the resources. A scope the client asked for (`explicit`) beyond that is
    /// `invalid_scope`; a default one is cut down to it.
    pub fn limit_scope(
        &self,
        audience: &AudienceSet,
        scope: ScopeSet,
        explicit: bool,
    ) -> Result<ScopeSet, OAuthError> {
        if audience.is_empty() {
            return Ok(scope);
        }
        let mut allowed: Vec<&str> = crate::oidc::OIDC_SCOPES.to_vec();
        for id in audience.iter() {
            match self.get(id).map(|r| r.scopes.as_ref()) {
                Some(Some(scopes)) => allowed.extend(scopes.iter()),
                // Unregistered cannot happen after `authorize`; either way, no limit known.
                _ => return Ok(scope),
            }
        }
        let kept: Vec<&str> = scope.iter().filter(|s| allowed.contains(s)).collect();
        if kept.len() == scope.len() {
            return Ok(scope);
        }
        if explicit {
            return Err(OAuthError::invalid_scope(
                "the requested scope is not accepted by the requested resource",
            ));
        }
        ScopeSet::parse(&kept.join(" "))
    }
}

/// The `resource` parameters of a request (RFC 8707 §2), parsed; empty when none was sent.
pub fn requested(params: &Params) -> Result<Vec<ResourceUri>, OAuthError> {
    let values = params.get_all("resource");
    if values.len() > MAX_RESOURCES {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            format!("at most {MAX_RESOURCES} resource parameters"),
        ));
    }
    values.iter().map(|v| ResourceUri::parse(v)).collect()
}

/// The audience of a later request within what was `granted`: `granted` itself when the
/// request names no resource, else the named ones, each of which must have been granted
/// (RFC 8707 §2.2: a refresh or code exchange may ask for a subset, `invalid_target` beyond).
pub fn narrow(granted: &AudienceSet, requested: &[ResourceUri]) -> Result<AudienceSet, OAuthError> {
    if requested.is_empty() {
        return Ok(granted.clone());
    }
    let asked = AudienceSet::of(requested.iter().map(ResourceUri::as_str));
    if !asked.is_subset(granted) {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "the requested resource was not granted",
        ));
    }
    Ok(asked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{Client, NewClient};
    use crate::clock::UnixTime;

    fn client(id: &str) -> Client {
        NewClient::confidential(id)
            .id(id)
            .build(&crate::entropy::OsEntropy, UnixTime(0))
            .0
    }

    fn registry() -> Resources {
        Resources::new(vec![
            RegisteredResource {
                scopes: Some(ScopeSet::parse("read write").expect("scope")),
                ..RegisteredResource::new(ResourceUri::parse("https://api.example/").expect("uri"))
            },
            RegisteredResource {
                clients: Some(vec!["gateway".into()]),
                ..RegisteredResource::new(
                    ResourceUri::parse("https://internal.example/mcp").expect("uri"),
                )
            },
        ])
    }

    #[test]
    fn identifiers_are_absolute_uris_without_fragments() {
        for good in [
            "https://api.example/",
            "https://a.example/mcp?x=1",
            "urn:example:api",
        ] {
            assert!(ResourceUri::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "/relative",
            "api",
            "https://a.example/#frag",
            "",
            "a b:c",
            "https://",
        ] {
            let err = ResourceUri::parse(bad).expect_err(bad);
            assert_eq!(err.code(), ErrorCode::InvalidTarget, "{bad}");
        }
    }

    #[test]
    fn unknown_or_forbidden_resources_are_invalid_target() {
        let r = registry();
        let api = ResourceUri::parse("https://api.example/").expect("uri");
        let internal = ResourceUri::parse("https://internal.example/mcp").expect("uri");
        let other = ResourceUri::parse("https://other.example/").expect("uri");
        let audience = r
            .authorize(&client("web"), std::slice::from_ref(&api))
            .expect("allowed");
        assert!(audience.contains("https://api.example/"));
        for (who, asked) in [
            ("web", vec![other]),
            ("web", vec![api.clone(), internal.clone()]),
        ] {
            let err = r.authorize(&client(who), &asked).expect_err("refused");
            assert_eq!(err.code(), ErrorCode::InvalidTarget);
        }
        assert_eq!(
            r.authorize(&client("gateway"), &[internal, api])
                .expect("ok")
                .len(),
            2
        );
    }

    #[test]
    fn scope_is_limited_to_what_the_resources_accept() {
        let r = registry();
        let aud = AudienceSet::of(["https://api.example/"]);
        let asked = ScopeSet::parse("read openid admin").expect("scope");
        let err = r.limit_scope(&aud, asked.clone(), true).expect_err("admin");
        assert_eq!(err.code(), ErrorCode::InvalidScope);
        let cut = r
            .limit_scope(&aud, asked.clone(), false)
            .expect("default cut");
        assert_eq!(cut.to_string(), "openid read");
        let open = AudienceSet::of(["https://internal.example/mcp"]);
        assert_eq!(
            r.limit_scope(&open, asked.clone(), true).expect("any"),
            asked
        );
        assert_eq!(
            r.limit_scope(&AudienceSet::empty(), asked.clone(), true)
                .expect("none"),
            asked
        );
    }

    #[test]
    fn narrowing_keeps_within_the_grant() {
        let granted = AudienceSet::of(["https://a.example/", "https://b.example/"]);
        assert_eq!(narrow(&granted, &[]).expect("all"), granted);
        let a = ResourceUri::parse("https://a.example/").expect("uri");
        assert_eq!(
            narrow(&granted, &[a]).expect("subset"),
            AudienceSet::of(["https://a.example/"])
        );
        let c = ResourceUri::parse("https://c.example/").expect("uri");
        assert_eq!(
            narrow(&granted, &[c]).expect_err("wider").code(),
            ErrorCode::InvalidTarget
        );
    }
}
