//! The run-time resource registry (RFC 8707): resources an operator adds through the admin
//! API or the CLI while the server runs, beside the fixed ones of the configuration
//! ([`crate::config::Config::resources`]).
//!
//! A backend only keeps rows; the rules live in [`crate::indicator`]: which resource a
//! request may name, the scope it accepts, and that a resource of the configuration wins over
//! a stored one with the same identifier ([`crate::provider::Provider::resources_for`]).

use crate::indicator::RegisteredResource;
use crate::store::StoreError;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

/// Stores the resources registered at run time, by identifier.
pub trait ResourceStore: Send + Sync + 'static {
    /// Adds `resource` unless one with its identifier exists; whether it was added. Two
    /// concurrent calls for one identifier never both add.
    fn create_resource(
        &self,
        resource: &RegisteredResource,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Replaces the resource with `resource`'s identifier; whether it existed (nothing is
    /// added when it did not).
    fn update_resource(
        &self,
        resource: &RegisteredResource,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The resource registered as `id` (compared byte for byte).
    fn get_resource(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<RegisteredResource>, StoreError>> + Send;

    /// Every stored resource, by identifier.
    fn list_resources(
        &self,
    ) -> impl Future<Output = Result<Vec<RegisteredResource>, StoreError>> + Send;

    /// Deletes the resource registered as `id`; whether it existed. Tokens already issued
    /// for it keep their audience until they expire or are revoked.
    fn delete_resource(&self, id: &str) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// The resources of the memory store ([`crate::store::memory::MemoryStore`]), behind their
/// own lock.
#[derive(Clone, Debug, Default)]
pub struct MemoryResources {
    map: Arc<Mutex<BTreeMap<String, RegisteredResource>>>,
}

impl MemoryResources {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, RegisteredResource>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ResourceStore for MemoryResources {
    async fn create_resource(&self, resource: &RegisteredResource) -> Result<bool, StoreError> {
        let mut map = self.lock();
        let id = resource.id.as_str();
        if map.contains_key(id) {
            return Ok(false);
        }
        map.insert(id.to_owned(), resource.clone());
        Ok(true)
    }

    async fn update_resource(&self, resource: &RegisteredResource) -> Result<bool, StoreError> {
        let mut map = self.lock();
        let Some(slot) = map.get_mut(resource.id.as_str()) else {
            return Ok(false);
        };
        *slot = resource.clone();
        Ok(true)
    }

    async fn get_resource(&self, id: &str) -> Result<Option<RegisteredResource>, StoreError> {
        Ok(self.lock().get(id).cloned())
    }

    async fn list_resources(&self) -> Result<Vec<RegisteredResource>, StoreError> {
        Ok(self.lock().values().cloned().collect())
    }

    async fn delete_resource(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.lock().remove(id).is_some())
    }
}
