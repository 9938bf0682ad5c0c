//! Dynamic registration's records on SQLite ([`RegistrationStore`] for [`SqliteStore`]):
//! reads on the read pool, writes through the group-commit writer. Spending a use of an
//! initial access token is one write, so its check and its update are one step.

use super::writer::{Answer, Op, Reply, change};
use super::{SqliteStore, all, all_with, first};
use crate::error::from_rusqlite;
use crate::registration_rows::{
    self as r, DELETE_INITIAL, DELETE_REGISTRATION, INSERT_INITIAL, SELECT_INITIAL_BY_DIGEST,
    SELECT_INITIALS, SELECT_REGISTRATION, SELECT_UNUSED, SPEND_INITIAL, SWAP_REGISTRATION,
    TOUCH_REGISTRATION, registration_columns,
};
use crate::rows::Columns;
use latchkey_core::clock::UnixTime;
use latchkey_core::registration::store::{
    ClientRegistration, InitialAccessToken, RegistrationStore, usable,
};
use latchkey_core::secret::Digest;
use latchkey_core::store::StoreError;
use rusqlite::{Connection, params, params_from_iter};

/// A write of the registration store, run by the writer inside a batch, with its reply.
#[derive(Debug)]
pub(crate) enum Write {
    SaveInitial(InitialAccessToken, Reply<()>),
    UseInitial(Digest, UnixTime, Reply<Option<InitialAccessToken>>),
    DeleteInitial(String, Reply<bool>),
    Put(ClientRegistration, Reply<()>),
    Swap(Digest, ClientRegistration, Reply<bool>),
    Delete(String, Reply<bool>),
    Touch(String, UnixTime, Reply<()>),
}

impl Write {
    /// The write's reply.
    pub(crate) fn answer(&mut self) -> &mut dyn Answer {
        match self {
            Self::SaveInitial(_, reply) | Self::Put(_, reply) | Self::Touch(_, _, reply) => reply,
            Self::UseInitial(_, _, reply) => reply,
            Self::DeleteInitial(_, reply) | Self::Delete(_, reply) | Self::Swap(_, _, reply) => {
                reply
            }
        }
    }
}

/// Runs one write inside the writer's transaction and records its answer.
pub(crate) fn apply(conn: &Connection, write: &mut Write) -> rusqlite::Result<()> {
    match write {
        Write::SaveInitial(token, reply) => {
            change(
                conn,
                INSERT_INITIAL,
                params_from_iter(r::initial_token_args(token)),
            )?;
            reply.set(Ok(()))
        }
        Write::UseInitial(digest, now, reply) => {
            let found = first(
                conn,
                SELECT_INITIAL_BY_DIGEST,
                [digest.as_bytes().as_slice()],
                |row| r::initial_token(row),
            )?;
            let token = match found {
                Some(Ok(token)) if usable(&token, *now) => token,
                Some(Err(err)) => return reply.set(Err(err)),
                _ => return reply.set(Ok(None)),
            };
            if token.uses_left.is_some() {
                change(conn, SPEND_INITIAL, [token.id.as_str()])?;
            }
            reply.set(Ok(Some(token)))
        }
        Write::DeleteInitial(id, reply) => {
            let n = change(conn, DELETE_INITIAL, [id.as_str()])?;
            reply.set(Ok(n > 0))
        }
        Write::Put(registration, reply) => {
            change(
                conn,
                concat!(
                    "INSERT OR REPLACE INTO client_registrations (",
                    registration_columns!(),
                    ") VALUES (?, ?, ?, ?, ?)"
                ),
                params_from_iter(r::registration_args(registration)),
            )?;
            reply.set(Ok(()))
        }
        Write::Swap(expected, next, reply) => {
            let n = change(
                conn,
                SWAP_REGISTRATION,
                params_from_iter(r::swap_args(expected, next)),
            )?;
            reply.set(Ok(n > 0))
        }
        Write::Delete(client_id, reply) => {
            let n = change(conn, DELETE_REGISTRATION, [client_id.as_str()])?;
            reply.set(Ok(n > 0))
        }
        Write::Touch(client_id, day, reply) => {
            change(
                conn,
                TOUCH_REGISTRATION,
                params![day.0, client_id.as_str(), day.0],
            )?;
            reply.set(Ok(()))
        }
    }
}

impl RegistrationStore for SqliteStore {
    async fn save_initial_token(&self, token: &InitialAccessToken) -> Result<(), StoreError> {
        let token = token.clone();
        self.write(|reply| Op::Registration(Write::SaveInitial(token, reply)))
            .await
    }

    async fn use_initial_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<InitialAccessToken>, StoreError> {
        let digest = *digest;
        self.write(|reply| Op::Registration(Write::UseInitial(digest, now, reply)))
            .await
    }

    async fn list_initial_tokens(&self) -> Result<Vec<InitialAccessToken>, StoreError> {
        self.inner
            .readers
            .read(|conn| all(conn, SELECT_INITIALS, |row| r::initial_token(row)))
    }

    async fn delete_initial_token(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.to_owned();
        self.write(|reply| Op::Registration(Write::DeleteInitial(id, reply)))
            .await
    }

    async fn put_registration(&self, registration: &ClientRegistration) -> Result<(), StoreError> {
        let registration = registration.clone();
        self.write(|reply| Op::Registration(Write::Put(registration, reply)))
            .await
    }

    async fn swap_registration(
        &self,
        expected: &Digest,
        next: &ClientRegistration,
    ) -> Result<bool, StoreError> {
        let (expected, next) = (*expected, next.clone());
        self.write(|reply| Op::Registration(Write::Swap(expected, next, reply)))
            .await
    }

    async fn get_registration(
        &self,
        client_id: &str,
    ) -> Result<Option<ClientRegistration>, StoreError> {
        self.inner.readers.read(|conn| {
            first(conn, SELECT_REGISTRATION, [client_id], |row| {
                r::registration(row)
            })
            .map_err(from_rusqlite)?
            .transpose()
        })
    }

    async fn delete_registration(&self, client_id: &str) -> Result<bool, StoreError> {
        let client_id = client_id.to_owned();
        self.write(|reply| Op::Registration(Write::Delete(client_id, reply)))
            .await
    }

    async fn touch_registration(&self, client_id: &str, day: UnixTime) -> Result<(), StoreError> {
        let client_id = client_id.to_owned();
        self.write(|reply| Op::Registration(Write::Touch(client_id, day, reply)))
            .await
    }

    async fn unused_registrations(
        &self,
        before: UnixTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        self.inner.readers.read(|conn| {
            all_with(
                conn,
                SELECT_UNUSED,
                params![before.0, r::limit_arg(limit)],
                |row| row.text("client_id"),
            )
        })
    }
}
