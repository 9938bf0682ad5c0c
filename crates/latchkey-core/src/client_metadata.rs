//! The client metadata that has no column of its own (RFC 7591 §2, OpenID Connect Dynamic
//! Client Registration §2, RP-Initiated Logout §3.1, Back-Channel Logout §2.2, RFC 7523).
//!
//! A client record keeps its core fields (id, secret digest, redirect URIs, grants, scopes,
//! lifetimes) as columns; everything the OpenID Connect layer and later features register per
//! client lives here, in one typed object that every backend stores as one JSON text (the SQL
//! `ext` column of `clients`, [`crate::store::codec::encode_client_ext`]). A new field is a new
//! member of this struct with a serde default: no migration, no backend change. The names on
//! the wire and at rest are the registration metadata names, so an operator reading a row or
//! an admin API answer sees what the RFCs call them.

use serde::{Deserialize, Serialize};

/// The metadata of one client beyond its columns; every member defaults to "not registered".
///
/// What each value means and when it is refused lives with the feature that reads it; the
/// checks every registration must pass are in [`ClientMetadata::validate`], called by
/// [`crate::client::Client::validate`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct ClientMetadata {
    /// The client's public keys as a JWK Set (RFC 7591 §2 `jwks`), for `private_key_jwt`
    /// client authentication (RFC 7523) and signed requests. Exclusive with `jwks_uri`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its JWK Set (RFC 7591 §2 `jwks_uri`). Exclusive with `jwks`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// The client secret sealed under the server's key-encryption key, kept only for clients
    /// that authenticate with `client_secret_jwt`: an HMAC needs the secret itself, which a
    /// digest cannot give back (OpenID Connect Core §9). Base64url of the sealed bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sealed_secret: Option<String>,
    /// `public` (the default) or `pairwise` subject identifiers (OpenID Connect Core §8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_type: Option<String>,
    /// The host whose pairwise subjects this client shares (OpenID Connect Core §8.1); when
    /// absent, the host of the client's one redirect URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sector_identifier_uri: Option<String>,
    /// The JWS `alg` of the client's ID tokens (OpenID Connect Registration §2); the server's
    /// default when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id_token_signed_response_alg: Option<String>,
    /// The JWS `alg` of signed userinfo responses; absent means plain JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub userinfo_signed_response_alg: Option<String>,
    /// The format of the access tokens issued to this client: `opaque` (the default) or `jwt`
    /// (RFC 9068).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_token_format: Option<String>,
    /// Where the user may be sent after logging out (RP-Initiated Logout §3.1), matched
    /// exactly.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub post_logout_redirect_uris: Vec<String>,
    /// Where the server POSTs logout tokens (Back-Channel Logout §2.2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backchannel_logout_uri: Option<String>,
    /// Whether the logout token must carry `sid` (Back-Channel Logout §2.2).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub backchannel_logout_session_required: bool,
    /// Whether this client may start an authorization only with a pushed request (RFC 9126
    /// §6 `require_pushed_authorization_requests`): `/authorize` without a `request_uri` is
    /// refused for it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub require_pushed_authorization_requests: bool,
    /// The client's home page (RFC 7591 §2 `client_uri`), shown to the user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// The client's logo (RFC 7591 §2 `logo_uri`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// The client's terms of service (RFC 7591 §2 `tos_uri`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    /// The client's privacy policy (RFC 7591 §2 `policy_uri`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    /// Who is responsible for the client, usually e-mail addresses (RFC 7591 §2 `contacts`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    /// The identifier of the client software, the same for every instance (RFC 7591 §2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// The version of the client software (RFC 7591 §2).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// The software statement this client registered with (RFC 7591 §2.3), as sent: a JWT
    /// that was verified against a trusted issuer when it was registered, kept so the
    /// client's configuration returns it (RFC 7591 §3.2.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub software_statement: Option<String>,
    /// `web` or `native` (OpenID Connect Registration §2 `application_type`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub application_type: Option<String>,
    /// The client is the one its client ID metadata document describes (its id is that
    /// document's URL): the server refreshes it from the document, and never lets a
    /// document replace a client registered any other way.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub from_metadata_document: bool,
    /// For `tls_client_auth` (RFC 8705 §2.1.2): the certificate's expected subject DN, as an
    /// RFC 4514 string. Exactly one of this and the `tls_client_auth_san_*` values is
    /// registered (see [`crate::mtls::registered_rule`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_subject_dn: Option<String>,
    /// For `tls_client_auth`: a DNS name the certificate's SAN must hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_dns: Option<String>,
    /// For `tls_client_auth`: a URI the certificate's SAN must hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_uri: Option<String>,
    /// For `tls_client_auth`: an IP address (text form) the certificate's SAN must hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_ip: Option<String>,
    /// For `tls_client_auth`: an email address the certificate's SAN must hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_client_auth_san_email: Option<String>,
    /// Bind the client's access tokens (and a public client's refresh tokens) to the TLS
    /// client certificate presented at the token endpoint (RFC 8705 §3, §4).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_client_certificate_bound_access_tokens: bool,
    /// What this client may do with the token exchange grant (RFC 8693); absent: nothing,
    /// even when it is allowed the grant type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_exchange: Option<crate::grant::token_exchange::ExchangePolicy>,
    /// Every token request of this client must carry a DPoP proof, so all its access
    /// tokens are DPoP-bound (RFC 9449 §5.2).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    /// Every authorization request of this client must come as a signed request object
    /// (RFC 9101 §10.5 `require_signed_request_object`), at `/authorize` or pushed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub require_signed_request_object: bool,
    /// The one JWS `alg` this client signs request objects with (OpenID Connect Registration
    /// §2 `request_object_signing_alg`); any the server accepts when absent. Never `none`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_object_signing_alg: Option<String>,
}

/// The most `contacts` one client may register.
pub const MAX_CONTACTS: usize = 16;

/// The longest single string value (a URI, a contact, a software id) a registration may hold.
pub const MAX_VALUE_LEN: usize = 2048;

/// The longest JSON text of a client's metadata: bounds what a registration may store.
pub const MAX_METADATA_LEN: usize = 64 * 1024;

impl ClientMetadata {
    /// Whether nothing is registered, so nothing needs storing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The checks every registration's metadata passes: size bounded, URIs registrable, and
    /// no contradictions. Returns the reason when it fails.
    pub fn validate(&self) -> Result<(), String> {
        let len = serde_json::to_vec(self)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if len > MAX_METADATA_LEN {
            return Err(format!(
                "client metadata must be at most {MAX_METADATA_LEN} bytes of JSON"
            ));
        }
        if self.jwks.is_some() && self.jwks_uri.is_some() {
            // RFC 7591 §2: "The "jwks_uri" and "jwks" parameters MUST NOT both be present".
            return Err("jwks and jwks_uri must not both be registered".into());
        }
        for uri in &self.post_logout_redirect_uris {
            if !crate::redirect::is_registrable(uri) {
                return Err(format!(
                    "post_logout_redirect_uri {uri:?} must be absolute, without a fragment, and not javascript:/data:"
                ));
            }
        }
        for (name, uri) in [
            ("jwks_uri", &self.jwks_uri),
            ("sector_identifier_uri", &self.sector_identifier_uri),
            ("backchannel_logout_uri", &self.backchannel_logout_uri),
        ] {
            if let Some(uri) = uri
                && !crate::redirect::is_registrable(uri)
            {
                return Err(format!(
                    "{name} {uri:?} must be an absolute URI without a fragment"
                ));
            }
        }
        if let Some(uri) = &self.sector_identifier_uri {
            crate::oidc::subject::check_sector_uri(uri)?;
        }
        // RFC 7591 §2: these are URLs of pages and images the user may be shown.
        for (name, uri) in [
            ("client_uri", &self.client_uri),
            ("logo_uri", &self.logo_uri),
            ("tos_uri", &self.tos_uri),
            ("policy_uri", &self.policy_uri),
        ] {
            if let Some(uri) = uri
                && !is_web_url(uri)
            {
                return Err(format!(
                    "{name} {uri:?} must be an http or https URL of at most {MAX_VALUE_LEN} bytes"
                ));
            }
        }
        if self.contacts.len() > MAX_CONTACTS {
            return Err(format!("at most {MAX_CONTACTS} contacts"));
        }
        for value in self
            .contacts
            .iter()
            .chain(&self.software_id)
            .chain(&self.software_version)
        {
            if value.is_empty()
                || value.len() > MAX_VALUE_LEN
                || value.chars().any(char::is_control)
            {
                return Err(format!(
                    "contacts, software_id and software_version must be 1 to {MAX_VALUE_LEN} bytes without control characters"
                ));
            }
        }
        if let Some(kind) = &self.application_type
            && !matches!(kind.as_str(), "web" | "native")
        {
            return Err("application_type must be web or native".into());
        }
        // RFC 8705 §2.1.2: one subject rule at most; which one a client needs is
        // `crate::mtls::check_registration`'s rule, by its method.
        let tls_rules = [
            &self.tls_client_auth_subject_dn,
            &self.tls_client_auth_san_dns,
            &self.tls_client_auth_san_uri,
            &self.tls_client_auth_san_ip,
            &self.tls_client_auth_san_email,
        ];
        if tls_rules.iter().filter(|r| r.is_some()).count() > 1 {
            return Err(
                "only one of tls_client_auth_subject_dn and tls_client_auth_san_* may be registered"
                    .into(),
            );
        }
        if let Some(kind) = &self.subject_type
            && !matches!(kind.as_str(), "public" | "pairwise")
        {
            return Err("subject_type must be public or pairwise".into());
        }
        // OpenID Connect Registration §2: the algs a client asks for must be ones we sign
        // with; `none` and HMAC never are (crate::jose::SigningAlg).
        for (name, alg) in [
            (
                "id_token_signed_response_alg",
                &self.id_token_signed_response_alg,
            ),
            (
                "userinfo_signed_response_alg",
                &self.userinfo_signed_response_alg,
            ),
        ] {
            if let Some(alg) = alg
                && crate::jose::SigningAlg::parse(alg).is_none()
            {
                return Err(format!("{name} must be one of ES256, RS256, EdDSA"));
            }
        }
        if let Some(policy) = &self.token_exchange {
            policy.validate()?;
        }
        if let Some(format) = &self.access_token_format
            && crate::access_jwt::AccessTokenFormat::parse(format).is_none()
        {
            return Err("access_token_format must be opaque or jwt".into());
        }
        // RFC 9101 §10.5: a client that must sign its requests needs keys to verify them.
        if self.require_signed_request_object && self.jwks.is_none() && self.jwks_uri.is_none() {
            return Err("require_signed_request_object needs jwks or jwks_uri".into());
        }
        if let Some(alg) = &self.request_object_signing_alg
            && !crate::jar::registrable_alg(alg)
        {
            return Err(format!(
                "request_object_signing_alg must be one of {}",
                crate::client_assertion::PRIVATE_KEY_ALGS.join(", ")
            ));
        }
        Ok(())
    }

    /// The format of the client's access tokens (RFC 9068 for `jwt`); opaque when none is
    /// registered. [`ClientMetadata::validate`] refuses any other value.
    pub fn access_token_format(&self) -> crate::access_jwt::AccessTokenFormat {
        self.access_token_format
            .as_deref()
            .and_then(crate::access_jwt::AccessTokenFormat::parse)
            .unwrap_or_default()
    }
}

/// Whether `uri` is an absolute http(s) URL with a host, of bounded length.
fn is_web_url(uri: &str) -> bool {
    uri.len() <= MAX_VALUE_LEN
        && url::Url::parse(uri)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_metadata_stores_nothing_and_reads_back_from_an_empty_object() {
        let empty = ClientMetadata::default();
        assert!(empty.is_empty());
        assert_eq!(serde_json::to_string(&empty).expect("json"), "{}");
        let back: ClientMetadata = serde_json::from_str("{}").expect("json");
        assert_eq!(back, empty);
    }

    #[test]
    fn registered_values_round_trip_under_their_registration_names() {
        let meta = ClientMetadata {
            jwks_uri: Some("https://rp.example/jwks".into()),
            post_logout_redirect_uris: vec!["https://rp.example/bye".into()],
            backchannel_logout_session_required: true,
            ..ClientMetadata::default()
        };
        let json = serde_json::to_value(&meta).expect("json");
        assert_eq!(json["jwks_uri"], "https://rp.example/jwks");
        assert_eq!(
            json["post_logout_redirect_uris"][0],
            "https://rp.example/bye"
        );
        assert_eq!(json["backchannel_logout_session_required"], true);
        assert_eq!(
            serde_json::from_value::<ClientMetadata>(json).expect("json"),
            meta
        );
    }

    #[test]
    fn contradictions_and_bad_uris_are_refused() {
        let cases = [
            ClientMetadata {
                jwks: Some(serde_json::json!({"keys": []})),
                jwks_uri: Some("https://rp.example/jwks".into()),
                ..ClientMetadata::default()
            },
            ClientMetadata {
                post_logout_redirect_uris: vec!["javascript:alert(1)".into()],
                ..ClientMetadata::default()
            },
            ClientMetadata {
                backchannel_logout_uri: Some("/relative".into()),
                ..ClientMetadata::default()
            },
            ClientMetadata {
                subject_type: Some("secret".into()),
                ..ClientMetadata::default()
            },
            ClientMetadata {
                id_token_signed_response_alg: Some("none".into()),
                ..ClientMetadata::default()
            },
            ClientMetadata {
                userinfo_signed_response_alg: Some("HS256".into()),
                ..ClientMetadata::default()
            },
            ClientMetadata {
                access_token_format: Some("paseto".into()),
                ..ClientMetadata::default()
            },
            ClientMetadata {
                logo_uri: Some("javascript:alert(1)".into()),
                ..ClientMetadata::default()
            },
            ClientMetadata {
                tls_client_auth_subject_dn: Some("CN=a".into()),
                tls_client_auth_san_dns: Some("a.example".into()),
                ..ClientMetadata::default()
            },
            ClientMetadata {
                contacts: vec!["a\nb".into()],
                ..ClientMetadata::default()
            },
            ClientMetadata {
                application_type: Some("desktop".into()),
                ..ClientMetadata::default()
            },
            ClientMetadata {
                jwks: Some(serde_json::json!({"keys": ["x".repeat(MAX_METADATA_LEN)]})),
                ..ClientMetadata::default()
            },
        ];
        for meta in cases {
            assert!(meta.validate().is_err(), "{meta:?}");
        }
        assert!(ClientMetadata::default().validate().is_ok());
    }
}
