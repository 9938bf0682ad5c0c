//! The `sector_identifier_uri` of a client (OpenID Connect Core §8.1, Registration §2, §5):
//! before a client that names one is stored, the registrar fetches the JSON array there and
//! checks that it lists every redirect URI the client registers ([`check_sector_document`]).
//! Its host is then the client's sector: the clients that share it see the same pairwise
//! subjects.
//!
//! The fetch takes the outbound path it shares with `jwks_uri` and client metadata documents
//! ([`crate::outbound`]): `https` only, public addresses only (connection pinned), five
//! seconds, 64 KiB, no redirects followed (the array is the one at the registered URL, on its
//! host). Plain `http` to a loopback host is allowed only with the development switch
//! `oidc.allow_http_sector_identifier_uri`.

use super::{Admin, AdminError};
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

    /// Trusts the CA certificates of `outbound.ca_file` besides the system's roots when
    /// fetching a `sector_identifier_uri`.
    pub fn with_outbound_roots(mut self, roots: crate::outbound::TrustedRoots) -> Self {
        self.outbound_roots = roots;
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
        let url = url::Url::parse(uri)
            .map_err(|e| invalid_metadata(format!("sector_identifier_uri: {e}")))?;
        // The development switch that allows plain `http` on loopback allows its loopback
        // address too; otherwise the host must be public.
        let rule = crate::outbound::Outbound {
            allow_http,
            allow_private: allow_http,
            timeout: crate::jwks_fetch::FETCH_TIMEOUT,
            roots: self.outbound_roots.clone(),
        };
        let fetched = crate::outbound::fetch(
            "sector_identifier_uri",
            &url,
            &rule,
            "application/json",
            MAX_SECTOR_DOCUMENT_BYTES,
        )
        .await
        .map_err(invalid_metadata)?;
        check_sector_document(client, &fetched.body).map_err(invalid_metadata)
    }
}
