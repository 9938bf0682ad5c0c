//! A client registration request (RFC 7591 §3.1, RFC 7592 §2.2, OpenID Connect Registration
//! §2), parsed from its JSON body and checked against the [`RegistrationPolicy`], giving the
//! [`Client`] to store or the RFC 7591 §3.2.2 error that says which value was refused.
//!
//! Metadata this server does not understand is ignored, as RFC 7591 §2 requires; metadata it
//! understands but does not offer (encrypted responses, request objects, a sector identifier
//! it would have to fetch, front-channel logout) is refused, so that a client never believes
//! it got something it did not.

use super::RegistrationPolicy;
use crate::client::{AuthMethod, Client, ClientId, ClientMetadata, ClientType, GrantType};
use crate::clock::UnixTime;
use crate::config::Config;
use crate::endpoint::authorize::ResponseType;
use crate::error::{ErrorCode, OAuthError};
use crate::scope::ScopeSet;
use crate::secret::Secret;
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The largest registration request body accepted, in bytes.
pub const MAX_REQUEST_LEN: usize = 64 * 1024;

/// Members a client may not send: they are the server's to issue (RFC 7592 §2.2 forbids them
/// in an update; in a registration they would be ignored at best).
const SERVER_ISSUED: [&str; 4] = [
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
];

/// Metadata this server understands and does not offer: refused rather than ignored.
const NOT_OFFERED: [&str; 12] = [
    "id_token_encrypted_response_alg",
    "id_token_encrypted_response_enc",
    "userinfo_encrypted_response_alg",
    "userinfo_encrypted_response_enc",
    "request_object_signing_alg",
    "request_object_encryption_alg",
    "request_object_encryption_enc",
    "request_uris",
    "sector_identifier_uri",
    "frontchannel_logout_uri",
    "authorization_encrypted_response_alg",
    "introspection_encrypted_response_alg",
];

/// `invalid_client_metadata` with a description.
pub fn invalid_metadata(description: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

/// `invalid_redirect_uri` with a description.
pub fn invalid_redirect(description: impl Into<std::borrow::Cow<'static, str>>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, description)
}

/// The metadata of a registration or update request, as sent.
#[derive(Clone, Debug)]
pub struct RegistrationRequest {
    members: Map<String, Value>,
}

impl RegistrationRequest {
    /// Parses the JSON object of a request body (RFC 7591 §3.1: `application/json`).
    pub fn parse(body: &[u8]) -> Result<Self, OAuthError> {
        if body.len() > MAX_REQUEST_LEN {
            return Err(invalid_metadata(format!(
                "the registration request must be at most {MAX_REQUEST_LEN} bytes"
            )));
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(members)) => Ok(Self { members }),
            _ => Err(invalid_metadata(
                "the registration request must be a JSON object",
            )),
        }
    }

    /// The `client_id` member (present in an update, RFC 7592 §2.2).
    pub fn client_id(&self) -> Option<&str> {
        self.members.get("client_id").and_then(Value::as_str)
    }

    /// The `client_secret` member (present in an update of a confidential client).
    pub fn client_secret(&self) -> Option<Secret> {
        self.members
            .get("client_secret")
            .and_then(Value::as_str)
            .map(Secret::new)
    }

    /// Whether a member the server issues itself was sent.
    pub fn server_issued_member(&self) -> Option<&'static str> {
        SERVER_ISSUED
            .into_iter()
            .find(|name| self.members.contains_key(*name))
    }

    /// Whether a software statement was sent (RFC 7591 §2.3).
    pub fn has_software_statement(&self) -> bool {
        self.members.contains_key("software_statement")
    }

    /// The software statement sent (RFC 7591 §2.3), not yet verified; refused when it is not
    /// a string.
    pub fn software_statement(&self) -> Result<Option<String>, OAuthError> {
        match self.members.get("software_statement") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(OAuthError::new(
                ErrorCode::InvalidSoftwareStatement,
                "software_statement must be a string (a JWT)",
            )),
        }
    }

    /// Lays the metadata of a verified software statement over the members sent: RFC 7591
    /// §2.3, "the values in the software statement MUST take precedence over the same values
    /// sent in the clear".
    pub fn overlay(&mut self, statement_metadata: Map<String, Value>) {
        self.members.extend(statement_metadata);
    }

    fn string(&self, name: &'static str) -> Result<Option<String>, OAuthError> {
        match self.members.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.len() <= crate::client_metadata::MAX_VALUE_LEN => {
                Ok(Some(s.clone()))
            }
            Some(_) => Err(invalid_metadata(format!(
                "{name} must be a string of at most {} bytes",
                crate::client_metadata::MAX_VALUE_LEN
            ))),
        }
    }

    fn strings(&self, name: &'static str, max: usize) -> Result<Option<Vec<String>>, OAuthError> {
        let invalid =
            || invalid_metadata(format!("{name} must be an array of at most {max} strings"));
        match self.members.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) if items.len() <= max => items
                .iter()
                .map(|v| v.as_str().map(str::to_owned).ok_or_else(invalid))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(invalid()),
        }
    }

    fn boolean(&self, name: &'static str) -> Result<bool, OAuthError> {
        match self.members.get(name) {
            None | Some(Value::Null) => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(invalid_metadata(format!("{name} must be true or false"))),
        }
    }

    /// Checks the request against `policy` and builds the client it registers.
    ///
    /// `id` and `created_at` are the new client's (or the existing one's, for an update).
    /// The client's secret is not decided here: [`RegisteredClient::needs_secret`] says
    /// whether it needs one.
    pub fn to_client(
        &self,
        policy: &RegistrationPolicy,
        config: &Config,
        id: &str,
        created_at: UnixTime,
    ) -> Result<RegisteredClient, OAuthError> {
        // RFC 7591 §2: the default method is client_secret_basic.
        self.to_client_defaulting(
            policy,
            config,
            id,
            created_at,
            AuthMethod::ClientSecretBasic,
        )
    }

    /// [`RegistrationRequest::to_client`], with `default_method` when the request names no
    /// `token_endpoint_auth_method` (a client metadata document's default is `none`).
    pub fn to_client_defaulting(
        &self,
        policy: &RegistrationPolicy,
        config: &Config,
        id: &str,
        created_at: UnixTime,
        default_method: AuthMethod,
    ) -> Result<RegisteredClient, OAuthError> {
        if let Some(name) = NOT_OFFERED
            .into_iter()
            .find(|name| self.members.get(*name).is_some_and(|v| !v.is_null()))
        {
            return Err(invalid_metadata(format!("{name} is not supported")));
        }
        let method_name = self
            .string("token_endpoint_auth_method")?
            .unwrap_or_else(|| default_method.as_str().to_owned());
        let method = AuthMethod::parse(&method_name)
            .filter(|m| policy.auth_methods.contains(m))
            .ok_or_else(|| {
                invalid_metadata(format!(
                    "token_endpoint_auth_method must be one of: {}",
                    names(policy.auth_methods.iter().map(|m| m.as_str()))
                ))
            })?;
        let public = method == AuthMethod::None;
        let grant_types = self.grant_types(policy, config)?;
        let response_types = self.response_types(&grant_types, config)?;
        let redirect_uris = self
            .strings("redirect_uris", policy.max_redirect_uris)?
            .unwrap_or_default();
        // RFC 7591 §2: redirect URIs are required by the redirect-based grants.
        let redirect_based = grant_types.contains(&GrantType::AuthorizationCode)
            || grant_types.contains(&GrantType::Implicit);
        if redirect_based && redirect_uris.is_empty() {
            return Err(invalid_redirect(
                "redirect_uris is required for authorization_code and implicit",
            ));
        }
        for uri in &redirect_uris {
            policy.check_redirect_uri(uri, public)?;
        }
        let scopes = match self.string("scope")? {
            Some(raw) => {
                let asked = ScopeSet::parse(&raw)
                    .map_err(|_| invalid_metadata("scope must be space-separated scope tokens"))?;
                let allowed = policy.scopes.as_ref().unwrap_or(&config.available_scopes);
                if !allowed.is_empty() && !asked.is_subset(allowed) {
                    return Err(invalid_metadata(format!(
                        "scope may contain only: {allowed}"
                    )));
                }
                Some(asked)
            }
            None => policy.scopes.clone(),
        };
        let name = self
            .string("client_name")?
            .unwrap_or_else(|| "Unnamed client".to_owned());
        let metadata = self.metadata()?;
        if let Some(uri) = &metadata.jwks_uri {
            policy.check_fetched_uri("jwks_uri", uri)?;
        }
        if let Some(uri) = &metadata.backchannel_logout_uri {
            policy.check_fetched_uri("backchannel_logout_uri", uri)?;
        }
        for uri in &metadata.post_logout_redirect_uris {
            policy.check_redirect_uri(uri, public).map_err(|e| {
                invalid_metadata(format!(
                    "post_logout_redirect_uris: {}",
                    e.description().unwrap_or_default()
                ))
            })?;
        }
        let client = Client {
            id: ClientId::parse(id).map_err(|_| OAuthError::server_error())?,
            name,
            secret_digest: None,
            redirect_uris,
            grant_types,
            scopes,
            default_scopes: None,
            access_token_ttl: None,
            refresh_token_ttl: None,
            bind_tokens: false,
            introspect: false,
            token_endpoint_auth_method: Some(method),
            created_at,
            metadata,
        };
        Ok(RegisteredClient {
            client,
            response_types,
        })
    }

    fn grant_types(
        &self,
        policy: &RegistrationPolicy,
        config: &Config,
    ) -> Result<BTreeSet<GrantType>, OAuthError> {
        // RFC 7591 §2: the default is authorization_code.
        let names = self
            .strings("grant_types", 16)?
            .unwrap_or_else(|| vec![GrantType::AuthorizationCode.as_str().to_owned()]);
        names
            .iter()
            .map(|name| {
                GrantType::ALL
                    .into_iter()
                    .find(|g| g.as_str() == name)
                    .filter(|g| policy.grant_types.contains(g) && config.grant_enabled(*g))
                    .ok_or_else(|| {
                        invalid_metadata(format!(
                            "grant_types may contain only: {}",
                            names_of_grants(policy, config)
                        ))
                    })
            })
            .collect()
    }

    /// RFC 7591 §2.1: `code` goes with `authorization_code`, `token` (and OpenID Connect's
    /// `id_token`) with `implicit`; a response type without its grant is refused.
    fn response_types(
        &self,
        grants: &BTreeSet<GrantType>,
        config: &Config,
    ) -> Result<Vec<ResponseType>, OAuthError> {
        let default = if grants.contains(&GrantType::AuthorizationCode) {
            vec!["code".to_owned()]
        } else {
            Vec::new()
        };
        let names = self.strings("response_types", 8)?.unwrap_or(default);
        let mut types = Vec::new();
        for name in &names {
            let Some(t) = ResponseType::parse(name).filter(|t| t.enabled_in(config)) else {
                return Err(invalid_metadata(format!(
                    "response type {name:?} is not supported"
                )));
            };
            if let Some(missing) = t.grants().find(|g| !grants.contains(g)) {
                return Err(invalid_metadata(format!(
                    "response type {name:?} needs grant type {missing} in grant_types"
                )));
            }
            if !types.contains(&t) {
                types.push(t);
            }
        }
        if grants.contains(&GrantType::AuthorizationCode) && !types.iter().any(|t| t.has_code()) {
            return Err(invalid_metadata(
                "grant type authorization_code needs response type code",
            ));
        }
        Ok(types)
    }

    fn metadata(&self) -> Result<ClientMetadata, OAuthError> {
        let jwks = match self.members.get("jwks") {
            None | Some(Value::Null) => None,
            Some(v @ Value::Object(_)) => Some(v.clone()),
            Some(_) => return Err(invalid_metadata("jwks must be a JWK Set object")),
        };
        Ok(ClientMetadata {
            jwks,
            jwks_uri: self.string("jwks_uri")?,
            subject_type: self.string("subject_type")?,
            id_token_signed_response_alg: self.string("id_token_signed_response_alg")?,
            userinfo_signed_response_alg: self.string("userinfo_signed_response_alg")?,
            post_logout_redirect_uris: self
                .strings("post_logout_redirect_uris", 16)?
                .unwrap_or_default(),
            backchannel_logout_uri: self.string("backchannel_logout_uri")?,
            backchannel_logout_session_required: self
                .boolean("backchannel_logout_session_required")?,
            client_uri: self.string("client_uri")?,
            logo_uri: self.string("logo_uri")?,
            tos_uri: self.string("tos_uri")?,
            policy_uri: self.string("policy_uri")?,
            contacts: self
                .strings("contacts", crate::client_metadata::MAX_CONTACTS)?
                .unwrap_or_default(),
            software_id: self.string("software_id")?,
            software_version: self.string("software_version")?,
            application_type: self.string("application_type")?,
            require_signed_request_object: self.boolean("require_signed_request_object")?,
            request_object_signing_alg: self.string("request_object_signing_alg")?,
            ..ClientMetadata::default()
        })
    }
}

/// A client built from a registration request, before its secret is decided.
#[derive(Clone, Debug)]
pub struct RegisteredClient {
    /// The client, without a secret.
    pub client: Client,
    /// The response types it registered (RFC 7591 §2), in the order sent.
    pub response_types: Vec<ResponseType>,
}

impl RegisteredClient {
    /// Whether the client authenticates with a secret the server generates.
    pub fn needs_secret(&self) -> bool {
        matches!(
            self.client.token_endpoint_auth_method,
            Some(
                AuthMethod::ClientSecretBasic
                    | AuthMethod::ClientSecretPost
                    | AuthMethod::ClientSecretJwt
            )
        )
    }

    /// Whether the client is public (authenticates with `none`).
    pub fn is_public(&self) -> bool {
        self.client.client_type() == ClientType::Public && !self.needs_secret()
    }
}

fn names<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}

fn names_of_grants(policy: &RegistrationPolicy, config: &Config) -> String {
    names(
        policy
            .grant_types
            .iter()
            .filter(|g| config.grant_enabled(**g))
            .map(|g| g.as_str()),
    )
}
