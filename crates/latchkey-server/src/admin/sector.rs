//! The `sector_identifier_uri` of a client (OpenID Connect Core §8.1, Registration §2, §5):
//! before a client that names one is stored, the registrar fetches the JSON array there and
//! checks that it lists every redirect URI the client registers ([`check_sector_document`]).
//! Its host is then the client's sector: the clients that share it see the same pairwise
//! subjects.
//!
//! The fetch is bounded like the `jwks_uri` fetch it shares ([`fetch_bounded`]): `https` only,
//! five seconds, 64 KiB, no redirects followed (the array is the one at the registered URL, on
//! its host). Plain `http` to a loopback host is allowed only with the development switch
//! `oidc.allow_http_sector_identifier_uri`.

use super::{Admin, AdminError};
use crate::jwks_fetch::{fetch_bounded, outbound_client};
use latchkey_core::client::Client;
use latchkey_core::oidc::subject::{
    MAX_SECTOR_DOCUMENT_BYTES, check_sector_document, check_sector_uri, is_http_loopback,
};

/// The refusal of a client whose metadata cannot be accepted, with the RFC 7591 §3.2.2 error
/// code first, as the admin API and the CLI show it.
fn invalid_metadata(why: impl std::fmt::Display) -> AdminError {
    AdminError::Invalid(format!("invalid_client_metadata: {why}"))
}

impl Admin {
    /// Lets a `sector_identifier_uri` on a loopback host be fetched over plain `http`
    /// (development and tests only).
    pub fn with_http_sector_fetch(mut self, allow: bool) -> Self {
        self.allow_http_sector = allow;
        self
    }

    /// Checks `client`'s `sector_identifier_uri`, if it has one: fetched now, it must list
    /// every registered redirect URI. Called on every registration and every change that
    /// keeps or sets one, so a client stored with one always passed.
    pub(super) async fn check_sector_identifier(&self, client: &Client) -> Result<(), AdminError> {
        let Some(uri) = &client.metadata.sector_identifier_uri else {
            return Ok(());
        };
        check_sector_uri(uri).map_err(invalid_metadata)?;
        let allow_http = self.allow_http_sector && is_http_loopback(uri);
        let http = outbound_client().map_err(invalid_metadata)?;
        let document = fetch_bounded(
            &http,
            "sector_identifier_uri",
            uri,
            allow_http,
            "application/json",
            MAX_SECTOR_DOCUMENT_BYTES,
        )
        .await
        .map_err(invalid_metadata)?;
        check_sector_document(client, &document).map_err(invalid_metadata)
    }
}
