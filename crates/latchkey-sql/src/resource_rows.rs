//! Rows of `registered_resources` (the run-time resource registry, RFC 8707), to and from
//! the core's [`RegisteredResource`], for every SQL backend. Rows are keyed by the SHA-256
//! of the identifier ([`key`]); the rules about resources are the core's
//! ([`latchkey_core::indicator`]), these are only the statements.

use crate::error::corrupt;
use crate::rows::{Arg, Columns};
use latchkey_core::indicator::{RegisteredResource, ResourceUri};
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Digest;
use latchkey_core::store::StoreError;

/// The columns of `registered_resources`, in the order [`resource_args`] binds.
macro_rules! resource_columns {
    () => {
        "id_digest, id, name, scopes, clients"
    };
}
pub(crate) use resource_columns;

/// Replaces the fields of a resource: name, scopes, clients, then the key.
pub(crate) const UPDATE_RESOURCE: &str =
    "UPDATE registered_resources SET name = ?, scopes = ?, clients = ? WHERE id_digest = ?";

/// One resource, by key.
pub(crate) const SELECT_RESOURCE: &str = concat!(
    "SELECT ",
    resource_columns!(),
    " FROM registered_resources WHERE id_digest = ?"
);

/// Every resource (sorted by identifier once decoded).
pub(crate) const SELECT_RESOURCES: &str =
    concat!("SELECT ", resource_columns!(), " FROM registered_resources");

/// Deletes one resource, by key.
pub(crate) const DELETE_RESOURCE: &str = "DELETE FROM registered_resources WHERE id_digest = ?";

/// The key of the resource registered as `id`.
pub(crate) fn key(id: &str) -> Digest {
    Digest::of(id.as_bytes())
}

/// A list as stored: a JSON array of strings; `None` stays NULL.
fn list<'a>(items: Option<impl Iterator<Item = &'a str>>) -> Option<String> {
    items.map(|items| serde_json::Value::from(items.collect::<Vec<_>>()).to_string())
}

/// The values of [`resource_columns`], in order; `key` is [`key`] of the identifier.
pub(crate) fn resource_args<'a>(resource: &'a RegisteredResource, key: &'a Digest) -> [Arg<'a>; 5] {
    [
        Arg::from(key),
        Arg::from(resource.id.as_str()),
        Arg::from(resource.name.as_deref()),
        Arg::from(list(resource.scopes.as_ref().map(|s| s.iter()))),
        Arg::from(list(
            resource
                .clients
                .as_ref()
                .map(|c| c.iter().map(String::as_str)),
        )),
    ]
}

/// The values of [`UPDATE_RESOURCE`], in order.
pub(crate) fn update_args<'a>(resource: &'a RegisteredResource, key: &'a Digest) -> [Arg<'a>; 4] {
    let [key, _, name, scopes, clients] = resource_args(resource, key);
    [name, scopes, clients, key]
}

/// Decodes a stored JSON array of strings.
fn strings(raw: Option<String>, what: &str) -> Result<Option<Vec<String>>, StoreError> {
    raw.map(|raw| {
        serde_json::from_str(&raw)
            .map_err(|_| corrupt(format_args!("stored resource {what} are not a JSON list")))
    })
    .transpose()
}

/// Decodes a row selected with [`resource_columns`].
pub(crate) fn resource(row: &impl Columns) -> Result<RegisteredResource, StoreError> {
    let id = ResourceUri::parse(&row.text("id")?)
        .map_err(|_| corrupt("stored resource identifier is not an absolute URI"))?;
    let scopes = strings(row.opt_text("scopes")?, "scopes")?
        .map(|list| ScopeSet::parse(&list.join(" ")))
        .transpose()
        .map_err(|_| corrupt("stored resource scopes are malformed"))?;
    Ok(RegisteredResource {
        name: row.opt_text("name")?,
        scopes,
        clients: strings(row.opt_text("clients")?, "clients")?,
        ..RegisteredResource::new(id)
    })
}
