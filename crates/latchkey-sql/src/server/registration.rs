//! Dynamic registration's records on a database server ([`RegistrationStore`] for
//! [`SqlxStore`]). Spending a use of an initial access token is one transaction that locks
//! the token's row (`FOR UPDATE`), so two nodes never both take its last use.

use super::dialect::{Dialect, upsert};
use super::{SqlxStore, commit, execute, fetch_optional, rollback};
use crate::registration_rows::{
    self as r, DELETE_INITIAL, DELETE_REGISTRATION, INSERT_INITIAL, SELECT_INITIAL_BY_DIGEST,
    SELECT_INITIALS, SELECT_REGISTRATION, SELECT_UNUSED, SPEND_INITIAL, SWAP_REGISTRATION,
    TOUCH_REGISTRATION, UPDATED_REGISTRATION_COLUMNS, registration_columns,
};
use crate::rows::{Columns, args};
use latchkey_core::clock::UnixTime;
use latchkey_core::registration::store::{
    ClientRegistration, InitialAccessToken, RegistrationStore, usable,
};
use latchkey_core::secret::Digest;
use latchkey_core::store::StoreError;

impl<D: Dialect> RegistrationStore for SqlxStore<D> {
    async fn save_initial_token(&self, token: &InitialAccessToken) -> Result<(), StoreError> {
        self.execute(INSERT_INITIAL, &r::initial_token_args(token))
            .await?;
        Ok(())
    }

    async fn use_initial_token(
        &self,
        digest: &Digest,
        now: UnixTime,
    ) -> Result<Option<InitialAccessToken>, StoreError> {
        let mut tx = self.begin().await?;
        let select = format!("{SELECT_INITIAL_BY_DIGEST} FOR UPDATE");
        let row = fetch_optional::<D>(&mut tx, select, &args![digest]).await?;
        let token = row.as_ref().map(r::initial_token).transpose()?;
        let Some(token) = token.filter(|t| usable(t, now)) else {
            rollback::<D>(tx).await?;
            return Ok(None);
        };
        if token.uses_left.is_some() {
            execute::<D>(&mut tx, SPEND_INITIAL, &args![token.id.as_str()]).await?;
        }
        commit::<D>(tx).await?;
        Ok(Some(token))
    }

    async fn list_initial_tokens(&self) -> Result<Vec<InitialAccessToken>, StoreError> {
        let rows = self.fetch_all(SELECT_INITIALS, &[]).await?;
        rows.iter().map(r::initial_token).collect()
    }

    async fn delete_initial_token(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.execute(DELETE_INITIAL, &args![id]).await? > 0)
    }

    async fn put_registration(&self, registration: &ClientRegistration) -> Result<(), StoreError> {
        let sql = concat!(
            "INSERT INTO client_registrations (",
            registration_columns!(),
            ") VALUES (?, ?, ?, ?, ?)"
        )
        .to_owned()
            + &upsert::<D>("client_id", &UPDATED_REGISTRATION_COLUMNS);
        self.execute(sql, &r::registration_args(registration))
            .await?;
        Ok(())
    }

    async fn swap_registration(
        &self,
        expected: &Digest,
        next: &ClientRegistration,
    ) -> Result<bool, StoreError> {
        // One conditional UPDATE: the row lock makes a second swap from the same digest
        // find the new one and change nothing. The new digest always differs from the
        // expected one, so MySQL's "rows changed" count is the rows matched.
        let changed = self
            .execute(SWAP_REGISTRATION, &r::swap_args(expected, next))
            .await?;
        Ok(changed > 0)
    }

    async fn get_registration(
        &self,
        client_id: &str,
    ) -> Result<Option<ClientRegistration>, StoreError> {
        let row = self
            .fetch_optional(SELECT_REGISTRATION, &args![client_id])
            .await?;
        // MySQL's PAD SPACE: "abc " matched "abc"; compare exactly once decoded.
        Ok(row
            .as_ref()
            .map(r::registration)
            .transpose()?
            .filter(|reg| reg.client_id == client_id))
    }

    async fn delete_registration(&self, client_id: &str) -> Result<bool, StoreError> {
        Ok(self.execute(DELETE_REGISTRATION, &args![client_id]).await? > 0)
    }

    async fn touch_registration(&self, client_id: &str, day: UnixTime) -> Result<(), StoreError> {
        self.execute(TOUCH_REGISTRATION, &args![day.0, client_id, day.0])
            .await?;
        Ok(())
    }

    async fn unused_registrations(
        &self,
        before: UnixTime,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let rows = self
            .fetch_all(SELECT_UNUSED, &args![before.0, r::limit_arg(limit)])
            .await?;
        rows.iter().map(|row| row.text("client_id")).collect()
    }
}
