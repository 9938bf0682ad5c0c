//! The run-time resource registry on a database server ([`ResourceStore`] for
//! [`SqlxStore`]). Adding a resource is a plain `INSERT` whose unique-key violation means
//! "already there", so of two nodes adding one identifier exactly one wins.

use super::SqlxStore;
use super::dialect::Dialect;
use crate::resource_rows::{
    self as r, DELETE_RESOURCE, SELECT_RESOURCE, SELECT_RESOURCES, UPDATE_RESOURCE,
    resource_columns,
};
use crate::rows::args;
use latchkey_core::indicator::RegisteredResource;
use latchkey_core::store::{ResourceStore, StoreError, StoreErrorKind};

impl<D: Dialect> ResourceStore for SqlxStore<D> {
    async fn create_resource(&self, resource: &RegisteredResource) -> Result<bool, StoreError> {
        let key = r::key(resource.id.as_str());
        match self
            .execute(
                concat!(
                    "INSERT INTO registered_resources (",
                    resource_columns!(),
                    ") VALUES (?, ?, ?, ?, ?)"
                ),
                &r::resource_args(resource, &key),
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == StoreErrorKind::Conflict => Ok(false),
            Err(err) => Err(err),
        }
    }

    async fn update_resource(&self, resource: &RegisteredResource) -> Result<bool, StoreError> {
        let key = r::key(resource.id.as_str());
        let changed = self
            .execute(UPDATE_RESOURCE, &r::update_args(resource, &key))
            .await?;
        // MySQL counts only rows whose values changed: an update to the same values is 0.
        Ok(changed > 0 || self.get_resource(resource.id.as_str()).await?.is_some())
    }

    async fn get_resource(&self, id: &str) -> Result<Option<RegisteredResource>, StoreError> {
        let key = r::key(id);
        let row = self.fetch_optional(SELECT_RESOURCE, &args![&key]).await?;
        Ok(row
            .as_ref()
            .map(r::resource)
            .transpose()?
            .filter(|found| found.id.as_str() == id))
    }

    async fn list_resources(&self) -> Result<Vec<RegisteredResource>, StoreError> {
        let rows = self.fetch_all(SELECT_RESOURCES, &[]).await?;
        let mut list = rows
            .iter()
            .map(r::resource)
            .collect::<Result<Vec<_>, _>>()?;
        list.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(list)
    }

    async fn delete_resource(&self, id: &str) -> Result<bool, StoreError> {
        let key = r::key(id);
        Ok(self.execute(DELETE_RESOURCE, &args![&key]).await? > 0)
    }
}
