//! The OAuth 1.0a store on SQLite ([`OAuth1Store`] for [`SqliteStore`]): reads run inline on
//! the read pool, writes go through the group-commit writer like every other write.
//!
//! Each write is one statement, atomic on its own: approving a request token is an `UPDATE`
//! guarded by `verifier IS NULL`, taking one is a `DELETE … RETURNING`, and a nonce is an
//! `INSERT OR IGNORE` whose primary key refuses a replay.

use super::writer::{Answer, Op, Reply, change, sweep_limit};
use super::{SqliteStore, first};
use crate::error::from_rusqlite;
use crate::rows;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::StoreError;
use latchkey_core::store::oauth1::{AccessToken, Consumer, OAuth1Store, RequestToken};
use rusqlite::{Connection, params, params_from_iter};

/// A write of the OAuth 1.0a store, run by the writer inside a batch, with its reply.
#[derive(Debug)]
pub(crate) enum Write {
    PutConsumer(Consumer, Reply<()>),
    DeleteConsumer(String, Reply<bool>),
    RotateConsumer {
        client_id: String,
        salt: String,
        reply: Reply<bool>,
    },
    SaveRequest(RequestToken, UnixTime, Reply<()>),
    Authorize {
        digest: Digest,
        subject: String,
        username: String,
        verifier: Digest,
        now: UnixTime,
        reply: Reply<bool>,
    },
    TakeRequest(Digest, UnixTime, Reply<Option<RequestToken>>),
    SaveAccess(AccessToken, UnixTime, Reply<()>),
    RevokeAccess(Digest, Reply<bool>),
}

impl Write {
    /// The caller's `now`, which lets the batch sweep expired rows.
    pub(crate) fn now(&self) -> Option<UnixTime> {
        match self {
            Self::SaveRequest(_, now, _)
            | Self::Authorize { now, .. }
            | Self::TakeRequest(_, now, _)
            | Self::SaveAccess(_, now, _) => Some(*now),
            _ => None,
        }
    }

    /// The write's reply.
    pub(crate) fn answer(&mut self) -> &mut dyn Answer {
        match self {
            Self::PutConsumer(_, reply)
            | Self::SaveRequest(_, _, reply)
            | Self::SaveAccess(_, _, reply) => reply,
            Self::DeleteConsumer(_, reply)
            | Self::RotateConsumer { reply, .. }
            | Self::Authorize { reply, .. }
            | Self::RevokeAccess(_, reply) => reply,
            Self::TakeRequest(_, _, reply) => reply,
        }
    }
}

/// Runs one write inside the writer's transaction and records its answer.
pub(crate) fn apply(conn: &Connection, write: &mut Write) -> rusqlite::Result<()> {
    match write {
        Write::PutConsumer(c, reply) => {
            change(
                conn,
                concat!(
                    "INSERT INTO oauth1_consumers (",
                    rows::oauth1_consumer_columns!(),
                    ") VALUES (?, ?, ?, ?)
                     ON CONFLICT (client_id) DO UPDATE SET
                         rsa_public_key = excluded.rsa_public_key,
                         created_at = excluded.created_at,
                         secret_salt = excluded.secret_salt"
                ),
                params_from_iter(rows::oauth1_consumer_args(c)),
            )?;
            reply.set(Ok(()))
        }
        Write::RotateConsumer {
            client_id,
            salt,
            reply,
        } => {
            let updated = change(
                conn,
                "UPDATE oauth1_consumers SET secret_salt = ? WHERE client_id = ?",
                params![&*salt, &*client_id],
            )?;
            if updated > 0 {
                for sql in rows::CONSUMER_TOKENS {
                    change(conn, sql, [&*client_id])?;
                }
            }
            reply.set(Ok(updated > 0))
        }
        Write::DeleteConsumer(id, reply) => {
            for sql in rows::CONSUMER_TOKENS {
                change(conn, sql, [&*id])?;
            }
            let deleted = change(
                conn,
                "DELETE FROM oauth1_consumers WHERE client_id = ?",
                [&*id],
            )?;
            reply.set(Ok(deleted > 0))
        }
        Write::SaveRequest(t, _, reply) => {
            change(
                conn,
                concat!(
                    "INSERT INTO oauth1_request_tokens (",
                    rows::oauth1_request_columns!(),
                    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                params_from_iter(rows::oauth1_request_args(t)),
            )?;
            reply.set(Ok(()))
        }
        Write::Authorize {
            digest,
            subject,
            username,
            verifier,
            now,
            reply,
        } => {
            let updated = change(
                conn,
                "UPDATE oauth1_request_tokens SET subject = ?, username = ?, verifier = ?
                 WHERE digest = ? AND verifier IS NULL AND expires_at > ?",
                params![
                    &*subject,
                    &*username,
                    verifier.as_bytes().as_slice(),
                    digest.as_bytes().as_slice(),
                    now.0,
                ],
            )?;
            reply.set(Ok(updated == 1))
        }
        Write::TakeRequest(digest, now, reply) => {
            // SQLite deletes at the first step of a `RETURNING` statement, which `first` takes.
            let taken = first(
                conn,
                concat!(
                    "DELETE FROM oauth1_request_tokens WHERE digest = ? RETURNING ",
                    rows::oauth1_request_columns!()
                ),
                [digest.as_bytes().as_slice()],
                |row| rows::oauth1_request_token(row),
            )?;
            let now = *now;
            reply.set(
                taken
                    .transpose()
                    .map(|taken| taken.filter(|t| now < t.expires_at)),
            )
        }
        Write::SaveAccess(t, _, reply) => {
            change(
                conn,
                concat!(
                    "INSERT INTO oauth1_access_tokens (",
                    rows::oauth1_access_columns!(),
                    ") VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                params_from_iter(rows::oauth1_access_args(t)),
            )?;
            reply.set(Ok(()))
        }
        Write::RevokeAccess(digest, reply) => {
            let revoked = change(
                conn,
                "UPDATE oauth1_access_tokens SET revoked = 1 WHERE digest = ?",
                [digest.as_bytes().as_slice()],
            )?;
            reply.set(Ok(revoked > 0))
        }
    }
}

/// Deletes up to [`sweep_limit!`] expired rows of each OAuth 1.0a table (a literal, for the
/// reason given there).
pub(crate) fn sweep(conn: &Connection, now: UnixTime) -> rusqlite::Result<()> {
    for sql in [
        concat!(
            "DELETE FROM oauth1_request_tokens WHERE rowid IN
                 (SELECT rowid FROM oauth1_request_tokens WHERE expires_at <= ? LIMIT ",
            sweep_limit!(),
            ")"
        ),
        concat!(
            "DELETE FROM oauth1_access_tokens WHERE rowid IN
                 (SELECT rowid FROM oauth1_access_tokens WHERE expires_at <= ? LIMIT ",
            sweep_limit!(),
            ")"
        ),
        concat!(
            "DELETE FROM oauth1_nonces WHERE rowid IN
                 (SELECT rowid FROM oauth1_nonces WHERE expires_at <= ? LIMIT ",
            sweep_limit!(),
            ")"
        ),
    ] {
        change(conn, sql, [now.0])?;
    }
    Ok(())
}

impl OAuth1Store for SqliteStore {
    async fn get_consumer(&self, client_id: &str) -> Result<Option<Consumer>, StoreError> {
        self.inner.readers.read(|conn| {
            let sql = concat!(
                "SELECT ",
                rows::oauth1_consumer_columns!(),
                " FROM oauth1_consumers WHERE client_id = ?"
            );
            first(conn, sql, [client_id], |row| rows::oauth1_consumer(row))
                .map_err(from_rusqlite)?
                .transpose()
        })
    }

    async fn put_consumer(&self, consumer: &Consumer) -> Result<(), StoreError> {
        self.write(|reply| Op::OAuth1(Write::PutConsumer(consumer.clone(), reply)))
            .await
    }

    async fn delete_consumer(&self, client_id: &str) -> Result<bool, StoreError> {
        self.write(|reply| Op::OAuth1(Write::DeleteConsumer(client_id.to_owned(), reply)))
            .await
    }

    async fn rotate_consumer_secret(
        &self,
        client_id: &str,
        salt: &str,
    ) -> Result<bool, StoreError> {
        self.write(|reply| {
            Op::OAuth1(Write::RotateConsumer {
                client_id: client_id.to_owned(),
                salt: salt.to_owned(),
                reply,
            })
        })
        .await
    }

    async fn save_request_token(
        &self,
        token: &RequestToken,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.write(|reply| Op::OAuth1(Write::SaveRequest(token.clone(), now, reply)))
            .await
    }

    async fn find_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<RequestToken>, StoreError> {
        self.inner.readers.read(|conn| {
            let sql = concat!(
                "SELECT ",
                rows::oauth1_request_columns!(),
                " FROM oauth1_request_tokens WHERE digest = ? AND expires_at > ?"
            );
            first(
                conn,
                sql,
                params![digest.as_bytes().as_slice(), now.0],
                |row| rows::oauth1_request_token(row),
            )
            .map_err(from_rusqlite)?
            .transpose()
        })
    }

    async fn authorize_request_token(
        &self,
        digest: &Digest,
        subject: &str,
        username: &str,
        verifier: &Digest,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.write(|reply| {
            Op::OAuth1(Write::Authorize {
                digest: *digest,
                subject: subject.to_owned(),
                username: username.to_owned(),
                verifier: *verifier,
                now,
                reply,
            })
        })
        .await
    }

    async fn take_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<RequestToken>, StoreError> {
        self.write(|reply| Op::OAuth1(Write::TakeRequest(*digest, now, reply)))
            .await
    }

    async fn save_access_token(
        &self,
        token: &AccessToken,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.write(|reply| Op::OAuth1(Write::SaveAccess(token.clone(), now, reply)))
            .await
    }

    async fn find_access_token(&self, digest: &Digest) -> Result<Option<AccessToken>, StoreError> {
        self.inner.readers.read(|conn| {
            let sql = concat!(
                "SELECT ",
                rows::oauth1_access_columns!(),
                " FROM oauth1_access_tokens WHERE digest = ?"
            );
            first(conn, sql, [digest.as_bytes().as_slice()], |row| {
                rows::oauth1_access_token(row)
            })
            .map_err(from_rusqlite)?
            .transpose()
        })
    }

    async fn revoke_access_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        self.write(|reply| Op::OAuth1(Write::RevokeAccess(*digest, reply)))
            .await
    }

    async fn insert_nonce(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.remember_in(super::replay::Table::OAuth1Nonces, key, expires_at, now)
            .await
    }
}
