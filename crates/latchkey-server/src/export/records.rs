//! The records of the export file, as JSON: one plain struct per stored record, with its
//! conversion from the store's type and back. Digests are hex, sealed bytes base64url, times
//! seconds since the epoch. Converting back validates what the file says, so a tampered or
//! truncated file is refused before anything is written.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use latchkey_core::claims::UserClaims;
use latchkey_core::client::{AuthMethod, Client, ClientId, ClientMetadata, GrantType};
use latchkey_core::clock::UnixTime;
use latchkey_core::indicator::RegisteredResource;
use latchkey_core::jose::{SigningAlg, SigningKey};
use latchkey_core::registration::store::{ClientRegistration, InitialAccessToken};
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Digest;
use latchkey_core::user::User;
use latchkey_oauth1::store::Consumer;
use serde::{Deserialize, Serialize};

/// Why a record of the file cannot be imported; the message names the record.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {why}")]
pub struct BadRecord {
    what: String,
    why: String,
}

fn bad(what: impl std::fmt::Display, why: impl std::fmt::Display) -> BadRecord {
    BadRecord {
        what: what.to_string(),
        why: why.to_string(),
    }
}

fn digest(what: &str, hex: &str) -> Result<Digest, BadRecord> {
    Digest::from_hex(hex).ok_or_else(|| bad(what, "a digest must be 64 hex digits"))
}

fn scope(what: &str, raw: &str) -> Result<ScopeSet, BadRecord> {
    ScopeSet::parse(raw).map_err(|_| bad(what, format!("malformed scope {raw:?}")))
}

/// A registered client: everything but the secret, of which only the SHA-256 digest is
/// stored (and exported). A `client_secret_jwt` client's secret stays sealed in `metadata`
/// under the key-encryption key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRecord {
    /// The client identifier.
    pub id: String,
    /// The display name.
    pub name: String,
    /// SHA-256 of the secret, hex; `null` for a client without one.
    pub secret_digest: Option<String>,
    /// Redirect URIs, matched exactly.
    pub redirect_uris: Vec<String>,
    /// Grant type names.
    pub grant_types: Vec<String>,
    /// Space-separated scopes the client may get; `null`: the server's.
    pub scopes: Option<String>,
    /// Space-separated default scopes; `null`: the server's.
    pub default_scopes: Option<String>,
    /// Access-token lifetime in seconds; `null`: the server's.
    pub access_token_ttl: Option<u64>,
    /// Refresh-token lifetime in seconds; `null`: the server's.
    pub refresh_token_ttl: Option<u64>,
    /// Tokens bound to User-Agent and address.
    pub bind_tokens: bool,
    /// May introspect others' tokens.
    pub introspect: bool,
    /// The registered authentication method; `null`: the type's default.
    pub token_endpoint_auth_method: Option<String>,
    /// When the client was registered.
    pub created_at: i64,
    /// The rest of the registration (keys, OpenID Connect and logout settings).
    pub metadata: ClientMetadata,
}

impl From<&Client> for ClientRecord {
    fn from(c: &Client) -> Self {
        Self {
            id: c.id.as_str().to_owned(),
            name: c.name.clone(),
            secret_digest: c.secret_digest.map(|d| d.to_hex()),
            redirect_uris: c.redirect_uris.clone(),
            grant_types: c
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect(),
            scopes: c.scopes.as_ref().map(ToString::to_string),
            default_scopes: c.default_scopes.as_ref().map(ToString::to_string),
            access_token_ttl: c.access_token_ttl,
            refresh_token_ttl: c.refresh_token_ttl,
            bind_tokens: c.bind_tokens,
            introspect: c.introspect,
            token_endpoint_auth_method: c.token_endpoint_auth_method.map(|m| m.as_str().into()),
            created_at: c.created_at.0,
            metadata: c.metadata.clone(),
        }
    }
}

impl ClientRecord {
    /// The stored client, checked by [`Client::validate`] as any new registration is.
    pub fn to_client(&self) -> Result<Client, BadRecord> {
        let what = format!("client {:?}", self.id);
        let grant_types = self
            .grant_types
            .iter()
            .map(|g| GrantType::parse(g).ok_or_else(|| bad(&what, format!("unknown grant {g:?}"))))
            .collect::<Result<_, _>>()?;
        let token_endpoint_auth_method = self
            .token_endpoint_auth_method
            .as_deref()
            .map(|m| {
                AuthMethod::parse(m).ok_or_else(|| bad(&what, format!("unknown auth method {m:?}")))
            })
            .transpose()?;
        let client = Client {
            id: ClientId::parse(&self.id).map_err(|_| bad(&what, "malformed client id"))?,
            name: self.name.clone(),
            secret_digest: self
                .secret_digest
                .as_deref()
                .map(|d| digest(&what, d))
                .transpose()?,
            redirect_uris: self.redirect_uris.clone(),
            grant_types,
            scopes: self
                .scopes
                .as_deref()
                .map(|s| scope(&what, s))
                .transpose()?,
            default_scopes: self
                .default_scopes
                .as_deref()
                .map(|s| scope(&what, s))
                .transpose()?,
            access_token_ttl: self.access_token_ttl,
            refresh_token_ttl: self.refresh_token_ttl,
            bind_tokens: self.bind_tokens,
            introspect: self.introspect,
            token_endpoint_auth_method,
            created_at: UnixTime(self.created_at),
            metadata: self.metadata.clone(),
        };
        client.validate().map_err(|e| bad(&what, e))?;
        Ok(client)
    }
}

/// A built-in user: the argon2id password hash (never a password) and the OpenID Connect
/// claims.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// The stable subject identifier.
    pub id: String,
    /// The login name.
    pub username: String,
    /// The PHC string of the password hash.
    pub password_hash: String,
    /// When the user was created.
    pub created_at: i64,
    /// The user's claims.
    pub claims: UserClaims,
}

impl From<&User> for UserRecord {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            password_hash: u.password_hash.clone(),
            created_at: u.created_at.0,
            claims: u.claims.clone(),
        }
    }
}

impl UserRecord {
    /// The stored user; a password hash must be a PHC string (`$alg$…`).
    pub fn to_user(&self) -> Result<User, BadRecord> {
        let what = format!("user {:?}", self.username);
        if self.id.is_empty() || self.username.is_empty() {
            return Err(bad(what, "id and username must not be empty"));
        }
        if !self.password_hash.starts_with('$') {
            return Err(bad(
                what,
                "password_hash must be a PHC string ($argon2id$…)",
            ));
        }
        Ok(User {
            id: self.id.clone(),
            username: self.username.clone(),
            password_hash: self.password_hash.clone(),
            created_at: UnixTime(self.created_at),
            claims: self.claims.clone(),
        })
    }
}

/// A remembered consent of a user to a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentEntry {
    /// The user's subject identifier (its `id`).
    pub subject: String,
    /// The client consented to.
    pub client_id: String,
    /// The scopes approved, space-separated.
    pub scope: String,
    /// When consent was last given.
    pub granted_at: i64,
}

impl ConsentEntry {
    /// The approved scopes, parsed.
    pub fn scope_set(&self) -> Result<ScopeSet, BadRecord> {
        scope(
            &format!("consent of {:?} to {:?}", self.subject, self.client_id),
            &self.scope,
        )
    }
}

/// A signing key as stored: the private key sealed under the key-encryption key, which the
/// target server must share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// The RFC 7638 thumbprint, as published in the JWKS.
    pub kid: String,
    /// The signing algorithm.
    pub alg: String,
    /// The public JWK.
    pub public_jwk: serde_json::Value,
    /// The sealed PKCS#8 private key, base64url.
    pub sealed_private: String,
    /// When it was made.
    pub created_at: i64,
    /// When it starts signing.
    pub activates_at: i64,
    /// When it stops signing.
    pub retires_at: Option<i64>,
    /// When it leaves the JWKS.
    pub removes_at: Option<i64>,
}

impl From<&SigningKey> for KeyRecord {
    fn from(k: &SigningKey) -> Self {
        Self {
            kid: k.kid.clone(),
            alg: k.alg.as_str().to_owned(),
            public_jwk: k.public_jwk.clone(),
            sealed_private: URL_SAFE_NO_PAD.encode(&k.sealed_private),
            created_at: k.created_at.0,
            activates_at: k.activates_at.0,
            retires_at: k.retires_at.map(|t| t.0),
            removes_at: k.removes_at.map(|t| t.0),
        }
    }
}

impl KeyRecord {
    /// The stored key; its `kid` must be the thumbprint of its public JWK.
    pub fn to_key(&self) -> Result<SigningKey, BadRecord> {
        let what = format!("signing key {:?}", self.kid);
        let alg = SigningAlg::parse(&self.alg)
            .ok_or_else(|| bad(&what, format!("unknown algorithm {:?}", self.alg)))?;
        if latchkey_core::jose::thumbprint(&self.public_jwk).as_deref() != Some(&self.kid) {
            return Err(bad(&what, "kid is not the thumbprint of public_jwk"));
        }
        Ok(SigningKey {
            kid: self.kid.clone(),
            alg,
            public_jwk: self.public_jwk.clone(),
            sealed_private: URL_SAFE_NO_PAD
                .decode(&self.sealed_private)
                .map_err(|_| bad(&what, "sealed_private is not base64url"))?,
            created_at: UnixTime(self.created_at),
            activates_at: UnixTime(self.activates_at),
            retires_at: self.retires_at.map(UnixTime),
            removes_at: self.removes_at.map(UnixTime),
        })
    }
}

/// A client's OAuth 1.0a registration. The consumer secret is not in it: it is derived from
/// the server's `oauth1.key` and the salt, so the target needs the same `oauth1.key`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsumerRecord {
    /// The client, used as `oauth_consumer_key`.
    pub client_id: String,
    /// The PEM RSA public key for RSA-SHA1.
    pub rsa_public_key: Option<String>,
    /// When OAuth 1.0a was enabled.
    pub created_at: i64,
    /// The salt the secret is derived with.
    pub secret_salt: Option<String>,
}

impl From<&Consumer> for ConsumerRecord {
    fn from(c: &Consumer) -> Self {
        Self {
            client_id: c.client_id.clone(),
            rsa_public_key: c.rsa_public_key.clone(),
            created_at: c.created_at.0,
            secret_salt: c.secret_salt.clone(),
        }
    }
}

impl From<&ConsumerRecord> for Consumer {
    fn from(c: &ConsumerRecord) -> Self {
        Self {
            client_id: c.client_id.clone(),
            rsa_public_key: c.rsa_public_key.clone(),
            created_at: UnixTime(c.created_at),
            secret_salt: c.secret_salt.clone(),
        }
    }
}

/// An initial access token for dynamic registration (its digest only).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitialTokenRecord {
    /// The public handle.
    pub id: String,
    /// SHA-256 of the token, hex.
    pub digest: String,
    /// What the operator wrote about it.
    pub description: String,
    /// When it was made.
    pub created_at: i64,
    /// When it stops working.
    pub expires_at: Option<i64>,
    /// How many registrations it still allows.
    pub uses_left: Option<u64>,
}

impl From<&InitialAccessToken> for InitialTokenRecord {
    fn from(t: &InitialAccessToken) -> Self {
        Self {
            id: t.id.clone(),
            digest: t.digest.to_hex(),
            description: t.description.clone(),
            created_at: t.created_at.0,
            expires_at: t.expires_at.map(|t| t.0),
            uses_left: t.uses_left,
        }
    }
}

impl InitialTokenRecord {
    /// The stored token.
    pub fn to_token(&self) -> Result<InitialAccessToken, BadRecord> {
        Ok(InitialAccessToken {
            id: self.id.clone(),
            digest: digest(&format!("initial access token {:?}", self.id), &self.digest)?,
            description: self.description.clone(),
            created_at: UnixTime(self.created_at),
            expires_at: self.expires_at.map(UnixTime),
            uses_left: self.uses_left,
        })
    }
}

/// The registration (RFC 7592) of a self-registered client: its registration access token's
/// digest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationRecord {
    /// The client.
    pub client_id: String,
    /// SHA-256 of the registration access token, hex.
    pub token_digest: String,
    /// When it was registered.
    pub created_at: i64,
    /// The last day it was used.
    pub last_used: i64,
    /// The initial access token it was registered with.
    pub initial_token: Option<String>,
}

impl From<&ClientRegistration> for RegistrationRecord {
    fn from(r: &ClientRegistration) -> Self {
        Self {
            client_id: r.client_id.clone(),
            token_digest: r.token_digest.to_hex(),
            created_at: r.created_at.0,
            last_used: r.last_used.0,
            initial_token: r.initial_token.clone(),
        }
    }
}

impl RegistrationRecord {
    /// The stored registration.
    pub fn to_registration(&self) -> Result<ClientRegistration, BadRecord> {
        Ok(ClientRegistration {
            client_id: self.client_id.clone(),
            token_digest: digest(
                &format!("registration of {:?}", self.client_id),
                &self.token_digest,
            )?,
            created_at: UnixTime(self.created_at),
            last_used: UnixTime(self.last_used),
            initial_token: self.initial_token.clone(),
        })
    }
}

/// A resource stored at run time (RFC 8707; `latchkey resource add`, `/admin/resources`).
/// The settings' `[[resources]]` are not records of the store and are not exported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceRecord {
    /// The identifier clients send as `resource` and tokens carry as `aud`.
    pub id: String,
    /// A human-readable name.
    pub name: Option<String>,
    /// The scopes a token for it may carry; `null`: any.
    pub scopes: Option<Vec<String>>,
    /// The clients that may ask for it; `null`: every client.
    pub clients: Option<Vec<String>>,
}

impl From<&RegisteredResource> for ResourceRecord {
    fn from(r: &RegisteredResource) -> Self {
        Self {
            id: r.id.to_string(),
            name: r.name.clone(),
            scopes: r
                .scopes
                .as_ref()
                .map(|s| s.iter().map(str::to_owned).collect()),
            clients: r.clients.clone(),
        }
    }
}

impl ResourceRecord {
    /// The stored resource, checked as the admin API checks a new one.
    pub fn to_resource(&self) -> Result<RegisteredResource, BadRecord> {
        crate::admin::ResourceSpec {
            id: self.id.clone(),
            name: self.name.clone(),
            scopes: self.scopes.clone(),
            clients: self.clients.clone(),
        }
        .to_record()
        .map_err(|e| bad(format!("resource {:?}", self.id), e))
    }
}
