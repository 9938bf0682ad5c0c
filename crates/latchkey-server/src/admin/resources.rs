//! The resource registry as operators handle it (RFC 8707): `latchkey resource
//! add|list|show|update|remove` and `/admin/resources` both come through here.
//!
//! Two sources make the registry: the `[[resources]]` of the settings and the resources
//! stored at run time. The settings win: a resource they define is listed with
//! `"source": "settings"` and is read-only here (change the settings file instead), and the
//! store cannot hold a second resource with its identifier (adding one is a conflict). The
//! token and authorization endpoints read both the same way
//! ([`latchkey_core::provider::Provider::resources_for`]).

use super::{Admin, AdminError, present};
use latchkey_core::indicator::{RegisteredResource, ResourceUri, Resources};
use latchkey_core::scope::ScopeSet;
use latchkey_core::store::ResourceStore;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The most clients one resource may name.
const MAX_CLIENTS: usize = 256;
/// The longest resource name, in bytes.
const MAX_NAME: usize = 255;

/// Where a resource of the registry is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResourceSource {
    /// `[[resources]]` in the settings: read-only at run time.
    Settings,
    /// Added through the admin API or the CLI.
    Store,
}

/// A registered resource as listed.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct ResourceView {
    /// The identifier clients send as `resource` and tokens carry as `aud`.
    pub id: String,
    /// A human-readable name.
    pub name: Option<String>,
    /// The scopes a token for it may carry (OpenID Connect scopes always may); absent: any.
    pub scopes: Option<Vec<String>>,
    /// The clients that may ask for it; absent: every client.
    pub clients: Option<Vec<String>>,
    /// Where it is defined; only `store` resources may be changed here.
    pub source: ResourceSource,
}

impl ResourceView {
    fn of(r: &RegisteredResource, source: ResourceSource) -> Self {
        Self {
            id: r.id.to_string(),
            name: r.name.clone(),
            scopes: r
                .scopes
                .as_ref()
                .map(|s| s.iter().map(str::to_owned).collect()),
            clients: r.clients.clone(),
            source,
        }
    }
}

/// A resource to add.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    /// The identifier: an absolute URI without a fragment (RFC 8707 §2).
    pub id: String,
    /// A human-readable name.
    #[serde(default)]
    pub name: Option<String>,
    /// The scopes a token for it may carry; absent: any scope the client may get.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// The clients that may ask for it; absent: every client.
    #[serde(default)]
    pub clients: Option<Vec<String>>,
}

impl ResourceSpec {
    /// The record this spec stands for, checked as every new stored resource is (the admin
    /// API, the CLI, and `latchkey import`); its clients sorted, without duplicates.
    pub fn to_record(&self) -> Result<RegisteredResource, AdminError> {
        record(
            identifier(&self.id)?,
            self.name.clone(),
            self.scopes.clone(),
            self.clients.clone(),
        )
    }
}

/// Changes to a stored resource; an absent field stays as it is.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceUpdate {
    /// Sets (a string) or removes (`null`) the name.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub name: Option<Option<String>>,
    /// Sets the scopes a token for it may carry, or (`null`) allows any.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub scopes: Option<Option<Vec<String>>>,
    /// Sets the clients that may ask for it, or (`null`) allows every client.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub clients: Option<Option<Vec<String>>>,
}

/// Checks and builds a resource record from its parts.
fn record(
    id: ResourceUri,
    name: Option<String>,
    scopes: Option<Vec<String>>,
    clients: Option<Vec<String>>,
) -> Result<RegisteredResource, AdminError> {
    if let Some(name) = &name
        && (name.is_empty() || name.len() > MAX_NAME || name.chars().any(char::is_control))
    {
        return Err(AdminError::Invalid(format!(
            "name must be 1 to {MAX_NAME} bytes without control characters"
        )));
    }
    let scopes = scopes
        .map(|list| {
            if list.iter().any(|s| s.is_empty() || s.contains(' ')) {
                return Err(AdminError::Invalid(
                    "each scope must be one non-empty scope token".into(),
                ));
            }
            ScopeSet::parse(&list.join(" ")).map_err(|e| {
                AdminError::Invalid(format!(
                    "scopes: {}",
                    e.description().unwrap_or("malformed")
                ))
            })
        })
        .transpose()?;
    if let Some(list) = &clients {
        if list.len() > MAX_CLIENTS {
            return Err(AdminError::Invalid(format!(
                "at most {MAX_CLIENTS} clients per resource"
            )));
        }
        if list
            .iter()
            .any(|c| c.is_empty() || c.len() > 2048 || c.chars().any(char::is_control))
        {
            return Err(AdminError::Invalid(
                "each client must be a client id of 1 to 2048 bytes without control characters"
                    .into(),
            ));
        }
    }
    let mut clients = clients;
    if let Some(list) = &mut clients {
        list.sort();
        list.dedup();
    }
    Ok(RegisteredResource {
        name,
        scopes,
        clients,
        ..RegisteredResource::new(id)
    })
}

/// Parses an identifier as the admin API reports it.
fn identifier(raw: &str) -> Result<ResourceUri, AdminError> {
    ResourceUri::parse(raw).map_err(|_| {
        AdminError::Invalid(format!(
            "resource {raw:?} must be an absolute URI without a fragment (at most {} bytes)",
            latchkey_core::indicator::MAX_RESOURCE_LEN
        ))
    })
}

impl Admin {
    /// Uses `resources` (the settings' `[[resources]]`) as the read-only part of the
    /// registry.
    pub fn with_configured_resources(mut self, resources: Resources) -> Self {
        self.configured_resources = resources;
        self
    }

    /// Refuses a change to a resource the settings define.
    fn refuse_configured(&self, id: &str) -> Result<(), AdminError> {
        if self.configured_resources.get(id).is_some() {
            return Err(AdminError::Conflict(format!(
                "resource {id:?} is defined in the settings ([[resources]]) and is read-only here"
            )));
        }
        Ok(())
    }

    /// Adds a resource to the store.
    pub async fn add_resource(&self, spec: &ResourceSpec) -> Result<ResourceView, AdminError> {
        let resource = spec.to_record()?;
        self.refuse_configured(resource.id.as_str())?;
        if !self.store.create_resource(&resource).await? {
            return Err(AdminError::Conflict(format!(
                "resource {:?} exists already",
                spec.id
            )));
        }
        self.audit("resource_added", resource.id.as_str());
        Ok(ResourceView::of(&resource, ResourceSource::Store))
    }

    /// Every resource of the registry: the settings' first, then the stored ones (a stored
    /// one the settings shadow is left out), each sorted by identifier.
    pub async fn list_resources(&self) -> Result<Vec<ResourceView>, AdminError> {
        let mut out: Vec<ResourceView> = self
            .configured_resources
            .iter()
            .map(|r| ResourceView::of(r, ResourceSource::Settings))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        for r in self.store.list_resources().await? {
            if self.configured_resources.get(r.id.as_str()).is_none() {
                out.push(ResourceView::of(&r, ResourceSource::Store));
            }
        }
        Ok(out)
    }

    /// One resource, as the endpoints see it (the settings' when both define it).
    pub async fn show_resource(&self, id: &str) -> Result<ResourceView, AdminError> {
        if let Some(r) = self.configured_resources.get(id) {
            return Ok(ResourceView::of(r, ResourceSource::Settings));
        }
        match self.store.get_resource(id).await? {
            Some(r) if r.id.as_str() == id => Ok(ResourceView::of(&r, ResourceSource::Store)),
            _ => Err(AdminError::NotFound(format!("no resource {id:?}"))),
        }
    }

    /// Changes a stored resource. Tokens already issued keep their scope and audience.
    pub async fn update_resource(
        &self,
        id: &str,
        update: &ResourceUpdate,
    ) -> Result<ResourceView, AdminError> {
        self.refuse_configured(id)?;
        let Some(current) = self.store.get_resource(id).await? else {
            return Err(AdminError::NotFound(format!("no resource {id:?}")));
        };
        let name = match &update.name {
            Some(name) => name.clone(),
            None => current.name.clone(),
        };
        let scopes = match &update.scopes {
            Some(scopes) => scopes.clone(),
            None => current
                .scopes
                .as_ref()
                .map(|s| s.iter().map(str::to_owned).collect()),
        };
        let clients = match &update.clients {
            Some(clients) => clients.clone(),
            None => current.clients.clone(),
        };
        let resource = record(current.id.clone(), name, scopes, clients)?;
        if !self.store.update_resource(&resource).await? {
            return Err(AdminError::NotFound(format!("no resource {id:?}")));
        }
        self.audit("resource_updated", id);
        Ok(ResourceView::of(&resource, ResourceSource::Store))
    }

    /// Removes a stored resource: requests naming it are refused with `invalid_target` from
    /// now on. Tokens already issued for it stay valid until they expire or are revoked.
    pub async fn remove_resource(&self, id: &str) -> Result<(), AdminError> {
        self.refuse_configured(id)?;
        if !self.store.delete_resource(id).await? {
            return Err(AdminError::NotFound(format!("no resource {id:?}")));
        }
        self.audit("resource_removed", id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(raw: &str) -> ResourceUri {
        ResourceUri::parse(raw).expect("uri")
    }

    #[test]
    fn malformed_parts_are_refused_with_their_reason() {
        for (name, scopes, clients, word) in [
            (Some(String::new()), None, None, "name"),
            (Some("a\nb".to_owned()), None, None, "name"),
            (None, Some(vec!["read write".to_owned()]), None, "scope"),
            (None, Some(vec!["bad\"scope".to_owned()]), None, "scopes"),
            (None, None, Some(vec![String::new()]), "client"),
        ] {
            let err = record(uri("https://api.example/"), name, scopes, clients).expect_err(word);
            assert!(
                matches!(&err, AdminError::Invalid(m) if m.contains(word)),
                "{word}: {err}"
            );
        }
        for bad in ["api", "https://api.example/#x", "/relative"] {
            assert!(
                matches!(identifier(bad), Err(AdminError::Invalid(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn clients_are_kept_sorted_once() {
        let r = record(
            uri("https://api.example/"),
            None,
            Some(vec!["write".into(), "read".into()]),
            Some(vec!["b".into(), "a".into(), "b".into()]),
        )
        .expect("valid");
        assert_eq!(r.clients, Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(r.scopes.expect("scopes").to_string(), "read write");
    }
}
