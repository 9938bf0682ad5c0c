//! `[[resources]]`: the resources clients may name with `resource` (RFC 8707), and whether
//! this server publishes their protected-resource metadata (RFC 9728).

use latchkey_core::indicator::{RegisteredResource, ResourceUri, Resources};
use latchkey_core::resource::metadata::ProtectedResource;
use latchkey_core::scope::ScopeSet;
use serde::{Deserialize, Serialize};

/// One resource the server issues tokens for.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ResourceSettings {
    /// The identifier clients send as `resource` and tokens carry as `aud`: an absolute URI
    /// without a fragment, e.g. `https://api.example.com/mcp`.
    pub id: String,
    /// A human-readable name, published as `resource_name`.
    pub name: Option<String>,
    /// The scopes a token for it may carry (OpenID Connect scopes always may); absent: any.
    pub scopes: Option<Vec<String>>,
    /// The clients that may ask for it; absent: every client.
    pub clients: Option<Vec<String>>,
    /// Serve its RFC 9728 metadata on this server, at the well-known path with the
    /// resource's path inserted (for a resource this server's host fronts).
    pub serve_metadata: bool,
    /// A page for developers, published as `resource_documentation`.
    pub documentation: Option<String>,
}

/// The registry of the settings; fails on a malformed identifier or scope.
pub fn registry(list: &[ResourceSettings]) -> anyhow::Result<Resources> {
    let mut out = Vec::with_capacity(list.len());
    for r in list {
        let id = ResourceUri::parse(&r.id).map_err(|_| {
            anyhow::anyhow!(
                "resources: {:?} must be an absolute URI without a fragment",
                r.id
            )
        })?;
        let scopes = r
            .scopes
            .as_ref()
            .map(|s| ScopeSet::parse(&s.join(" ")))
            .transpose()
            .map_err(|e| anyhow::anyhow!("resources {:?}: scopes: {e}", r.id))?;
        let mut resource = RegisteredResource::new(id);
        resource.name = r.name.clone();
        resource.scopes = scopes;
        resource.clients = r.clients.clone();
        out.push(resource);
    }
    Ok(Resources::new(out))
}

/// The metadata documents this server publishes: those of the resources with
/// `serve_metadata`, naming `issuer` as their authorization server.
pub fn published(
    list: &[ResourceSettings],
    issuer: &str,
) -> anyhow::Result<Vec<ProtectedResource>> {
    let mut out = Vec::new();
    for r in list.iter().filter(|r| r.serve_metadata) {
        let id = ResourceUri::parse(&r.id)
            .map_err(|_| anyhow::anyhow!("resources: {:?} is not an absolute URI", r.id))?;
        let mut doc =
            ProtectedResource::new(&id, issuer).map_err(|e| anyhow::anyhow!("resources: {e}"))?;
        if let Some(scopes) = &r.scopes {
            doc = doc.scopes(scopes.iter().cloned());
        }
        if let Some(name) = &r.name {
            doc = doc.name(name.clone());
        }
        if let Some(url) = &r.documentation {
            doc = doc.documentation(url.clone());
        }
        out.push(doc);
    }
    Ok(out)
}
