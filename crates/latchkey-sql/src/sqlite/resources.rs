//! The run-time resource registry on SQLite ([`ResourceStore`] for [`SqliteStore`]): reads
//! on the read pool, writes through the group-commit writer. Adding a resource is one
//! `INSERT OR IGNORE`, so of two concurrent adds of one identifier exactly one wins.

use super::writer::{Answer, Op, Reply, change};
use super::{SqliteStore, all, first};
use crate::error::from_rusqlite;
use crate::resource_rows::{
    self as r, DELETE_RESOURCE, SELECT_RESOURCE, SELECT_RESOURCES, UPDATE_RESOURCE,
    resource_columns,
};
use latchkey_core::indicator::RegisteredResource;
use latchkey_core::store::{ResourceStore, StoreError};
use rusqlite::{Connection, params_from_iter};

/// A write of the resource registry, run by the writer inside a batch, with its reply.
#[derive(Debug)]
pub(crate) enum Write {
    Create(RegisteredResource, Reply<bool>),
    Update(RegisteredResource, Reply<bool>),
    Delete(String, Reply<bool>),
}

impl Write {
    /// The write's reply.
    pub(crate) fn answer(&mut self) -> &mut dyn Answer {
        match self {
            Self::Create(_, reply) | Self::Update(_, reply) | Self::Delete(_, reply) => reply,
        }
    }
}

/// Runs one write inside the writer's transaction and records its answer.
pub(crate) fn apply(conn: &Connection, write: &mut Write) -> rusqlite::Result<()> {
    match write {
        Write::Create(resource, reply) => {
            let key = r::key(resource.id.as_str());
            let n = change(
                conn,
                concat!(
                    "INSERT OR IGNORE INTO registered_resources (",
                    resource_columns!(),
                    ") VALUES (?, ?, ?, ?, ?)"
                ),
                params_from_iter(r::resource_args(resource, &key)),
            )?;
            reply.set(Ok(n > 0))
        }
        Write::Update(resource, reply) => {
            let key = r::key(resource.id.as_str());
            let n = change(
                conn,
                UPDATE_RESOURCE,
                params_from_iter(r::update_args(resource, &key)),
            )?;
            reply.set(Ok(n > 0))
        }
        Write::Delete(id, reply) => {
            let key = r::key(id);
            let n = change(conn, DELETE_RESOURCE, [key.as_bytes().as_slice()])?;
            reply.set(Ok(n > 0))
        }
    }
}

impl ResourceStore for SqliteStore {
    async fn create_resource(&self, resource: &RegisteredResource) -> Result<bool, StoreError> {
        let resource = resource.clone();
        self.write(|reply| Op::Resource(Write::Create(resource, reply)))
            .await
    }

    async fn update_resource(&self, resource: &RegisteredResource) -> Result<bool, StoreError> {
        let resource = resource.clone();
        self.write(|reply| Op::Resource(Write::Update(resource, reply)))
            .await
    }

    async fn get_resource(&self, id: &str) -> Result<Option<RegisteredResource>, StoreError> {
        let key = r::key(id);
        self.inner.readers.read(|conn| {
            first(conn, SELECT_RESOURCE, [key.as_bytes().as_slice()], |row| {
                r::resource(row)
            })
            .map_err(from_rusqlite)?
            .transpose()
        })
    }

    async fn list_resources(&self) -> Result<Vec<RegisteredResource>, StoreError> {
        let mut list = self
            .inner
            .readers
            .read(|conn| all(conn, SELECT_RESOURCES, |row| r::resource(row)))?;
        list.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(list)
    }

    async fn delete_resource(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(|reply| Op::Resource(Write::Delete(id, reply)))
            .await
    }
}
