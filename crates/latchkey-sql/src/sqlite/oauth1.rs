//! The OAuth 1.0a store on SQLite ([`OAuth1Store`] for [`SqliteStore`]): reads from the read
//! pool, writes through the group-commit writer like every other write.
//!
//! Each write is one statement, atomic on its own: approving a request token is an `UPDATE`
//! guarded by `verifier IS NULL`, taking one is a `DELETE … RETURNING`, and a nonce is an
//! `INSERT OR IGNORE` whose primary key refuses a replay.

use super::SqliteStore;
use super::writer::{Op, Outcome, Reply};
use crate::error::from_sqlx;
use crate::rows;
use latchkey_core::clock::UnixTime;
use latchkey_core::secret::Digest;
use latchkey_core::store::{StoreError, StoreErrorKind};
use latchkey_oauth1::store::{AccessToken, Consumer, OAuth1Store, RequestToken};
use sqlx::SqliteConnection;

/// A write of the OAuth 1.0a store, run by the writer inside a batch.
#[derive(Debug)]
pub(crate) enum Write {
    PutConsumer(Consumer),
    DeleteConsumer(String),
    SaveRequest(RequestToken, UnixTime),
    Authorize {
        digest: Digest,
        subject: String,
        username: String,
        verifier: Digest,
        now: UnixTime,
    },
    TakeRequest(Digest, UnixTime),
    SaveAccess(AccessToken, UnixTime),
    RevokeAccess(Digest),
    InsertNonce {
        key: Digest,
        expires_at: UnixTime,
        now: UnixTime,
    },
}

impl Write {
    /// The caller's `now`, which lets the batch sweep expired rows.
    pub(crate) fn now(&self) -> Option<UnixTime> {
        match self {
            Self::SaveRequest(_, now)
            | Self::Authorize { now, .. }
            | Self::TakeRequest(_, now)
            | Self::SaveAccess(_, now)
            | Self::InsertNonce { now, .. } => Some(*now),
            _ => None,
        }
    }
}

/// Runs one write inside the writer's transaction.
pub(crate) async fn apply(
    conn: &mut SqliteConnection,
    write: &Write,
) -> Result<Reply, sqlx::Error> {
    match write {
        Write::PutConsumer(c) => {
            sqlx::query(
                "INSERT INTO oauth1_consumers (client_id, rsa_public_key, created_at)
                 VALUES (?, ?, ?)
                 ON CONFLICT (client_id) DO UPDATE SET rsa_public_key = excluded.rsa_public_key",
            )
            .bind(&c.client_id)
            .bind(c.rsa_public_key.as_deref())
            .bind(c.created_at.0)
            .execute(&mut *conn)
            .await?;
            Ok(Ok(Outcome::Done))
        }
        Write::DeleteConsumer(id) => {
            for sql in [
                "DELETE FROM oauth1_request_tokens WHERE client_id = ?",
                "DELETE FROM oauth1_access_tokens WHERE client_id = ?",
            ] {
                sqlx::query(sql).bind(id).execute(&mut *conn).await?;
            }
            let done = sqlx::query("DELETE FROM oauth1_consumers WHERE client_id = ?")
                .bind(id)
                .execute(&mut *conn)
                .await?;
            Ok(Ok(Outcome::Existed(done.rows_affected() > 0)))
        }
        Write::SaveRequest(t, _) => {
            sqlx::query(
                "INSERT INTO oauth1_request_tokens
                 (digest, client_id, callback, realms, subject, username, verifier, expires_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(t.digest.as_bytes().as_slice())
            .bind(&t.client_id)
            .bind(&t.callback)
            .bind(t.realms.to_string())
            .bind(t.subject.as_deref())
            .bind(t.username.as_deref())
            .bind(t.verifier.as_ref().map(|v| v.as_bytes().to_vec()))
            .bind(t.expires_at.0)
            .execute(&mut *conn)
            .await?;
            Ok(Ok(Outcome::Done))
        }
        Write::Authorize {
            digest,
            subject,
            username,
            verifier,
            now,
        } => {
            let done = sqlx::query(
                "UPDATE oauth1_request_tokens SET subject = ?, username = ?, verifier = ?
                 WHERE digest = ? AND verifier IS NULL AND expires_at > ?",
            )
            .bind(subject)
            .bind(username)
            .bind(verifier.as_bytes().as_slice())
            .bind(digest.as_bytes().as_slice())
            .bind(now.0)
            .execute(&mut *conn)
            .await?;
            Ok(Ok(Outcome::Existed(done.rows_affected() == 1)))
        }
        Write::TakeRequest(digest, now) => {
            let row = sqlx::query(concat!(
                "DELETE FROM oauth1_request_tokens WHERE digest = ? RETURNING ",
                rows::oauth1_request_columns!()
            ))
            .bind(digest.as_bytes().as_slice())
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = row else {
                return Ok(Ok(Outcome::RequestToken(None)));
            };
            Ok(rows::oauth1_request_token(&row)
                .map(|t| Outcome::RequestToken((*now < t.expires_at).then(|| Box::new(t)))))
        }
        Write::SaveAccess(t, _) => {
            sqlx::query(
                "INSERT INTO oauth1_access_tokens
                 (digest, client_id, subject, username, realms, issued_at, expires_at, revoked)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(t.digest.as_bytes().as_slice())
            .bind(&t.client_id)
            .bind(&t.subject)
            .bind(t.username.as_deref())
            .bind(t.realms.to_string())
            .bind(t.issued_at.0)
            .bind(t.expires_at.map(|e| e.0))
            .bind(t.revoked)
            .execute(&mut *conn)
            .await?;
            Ok(Ok(Outcome::Done))
        }
        Write::RevokeAccess(digest) => {
            let done = sqlx::query("UPDATE oauth1_access_tokens SET revoked = 1 WHERE digest = ?")
                .bind(digest.as_bytes().as_slice())
                .execute(&mut *conn)
                .await?;
            Ok(Ok(Outcome::Existed(done.rows_affected() > 0)))
        }
        Write::InsertNonce {
            key,
            expires_at,
            now,
        } => {
            // A remembered nonce that has expired (but was not swept yet) counts as new.
            let done = sqlx::query(
                "INSERT INTO oauth1_nonces (digest, expires_at) VALUES (?, ?)
                 ON CONFLICT (digest) DO UPDATE SET expires_at = excluded.expires_at
                 WHERE oauth1_nonces.expires_at <= ?",
            )
            .bind(key.as_bytes().as_slice())
            .bind(expires_at.0)
            .bind(now.0)
            .execute(&mut *conn)
            .await?;
            Ok(Ok(Outcome::Existed(done.rows_affected() == 1)))
        }
    }
}

/// Deletes up to `limit` expired rows of each OAuth 1.0a table.
pub(crate) async fn sweep(
    conn: &mut SqliteConnection,
    now: UnixTime,
    limit: i64,
) -> Result<(), sqlx::Error> {
    for sql in [
        "DELETE FROM oauth1_request_tokens WHERE rowid IN
             (SELECT rowid FROM oauth1_request_tokens WHERE expires_at <= ? LIMIT ?)",
        "DELETE FROM oauth1_access_tokens WHERE rowid IN
             (SELECT rowid FROM oauth1_access_tokens WHERE expires_at <= ? LIMIT ?)",
        "DELETE FROM oauth1_nonces WHERE rowid IN
             (SELECT rowid FROM oauth1_nonces WHERE expires_at <= ? LIMIT ?)",
    ] {
        sqlx::query(sql)
            .bind(now.0)
            .bind(limit)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

fn mismatch(outcome: Outcome) -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        format_args!("unexpected SQLite writer outcome {outcome:?}"),
    )
}

impl SqliteStore {
    async fn oauth1_write(&self, write: Write) -> Result<Outcome, StoreError> {
        self.write(Op::OAuth1(write)).await
    }

    async fn oauth1_flag(&self, write: Write) -> Result<bool, StoreError> {
        match self.oauth1_write(write).await? {
            Outcome::Existed(flag) => Ok(flag),
            other => Err(mismatch(other)),
        }
    }

    async fn oauth1_done(&self, write: Write) -> Result<(), StoreError> {
        match self.oauth1_write(write).await? {
            Outcome::Done => Ok(()),
            other => Err(mismatch(other)),
        }
    }
}

impl OAuth1Store for SqliteStore {
    async fn get_consumer(&self, client_id: &str) -> Result<Option<Consumer>, StoreError> {
        let row = sqlx::query(
            "SELECT client_id, rsa_public_key, created_at FROM oauth1_consumers
             WHERE client_id = ?",
        )
        .bind(client_id)
        .fetch_optional(&self.inner.readers)
        .await
        .map_err(from_sqlx)?;
        row.as_ref().map(rows::oauth1_consumer).transpose()
    }

    async fn put_consumer(&self, consumer: &Consumer) -> Result<(), StoreError> {
        self.oauth1_done(Write::PutConsumer(consumer.clone())).await
    }

    async fn delete_consumer(&self, client_id: &str) -> Result<bool, StoreError> {
        self.oauth1_flag(Write::DeleteConsumer(client_id.to_owned()))
            .await
    }

    async fn save_request_token(
        &self,
        token: &RequestToken,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.oauth1_done(Write::SaveRequest(token.clone(), now))
            .await
    }

    async fn find_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<RequestToken>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            rows::oauth1_request_columns!(),
            " FROM oauth1_request_tokens WHERE digest = ? AND expires_at > ?"
        ))
        .bind(digest.as_bytes().as_slice())
        .bind(now.0)
        .fetch_optional(&self.inner.readers)
        .await
        .map_err(from_sqlx)?;
        row.as_ref().map(rows::oauth1_request_token).transpose()
    }

    async fn authorize_request_token(
        &self,
        digest: &Digest,
        subject: &str,
        username: &str,
        verifier: &Digest,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.oauth1_flag(Write::Authorize {
            digest: *digest,
            subject: subject.to_owned(),
            username: username.to_owned(),
            verifier: *verifier,
            now,
        })
        .await
    }

    async fn take_request_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<RequestToken>, StoreError> {
        match self.oauth1_write(Write::TakeRequest(*digest, now)).await? {
            Outcome::RequestToken(token) => Ok(token.map(|t| *t)),
            other => Err(mismatch(other)),
        }
    }

    async fn save_access_token(
        &self,
        token: &AccessToken,
        now: UnixTime,
    ) -> Result<(), StoreError> {
        self.oauth1_done(Write::SaveAccess(token.clone(), now))
            .await
    }

    async fn find_access_token(&self, digest: &Digest) -> Result<Option<AccessToken>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            rows::oauth1_access_columns!(),
            " FROM oauth1_access_tokens WHERE digest = ?"
        ))
        .bind(digest.as_bytes().as_slice())
        .fetch_optional(&self.inner.readers)
        .await
        .map_err(from_sqlx)?;
        row.as_ref().map(rows::oauth1_access_token).transpose()
    }

    async fn revoke_access_token(&self, digest: &Digest) -> Result<bool, StoreError> {
        self.oauth1_flag(Write::RevokeAccess(*digest)).await
    }

    async fn insert_nonce(
        &self,
        key: &Digest,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        self.oauth1_flag(Write::InsertNonce {
            key: *key,
            expires_at,
            now,
        })
        .await
    }
}
