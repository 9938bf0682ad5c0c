//! Administration: clients, users, revocation and introspection, as one set of operations
//! that the CLI (`latchkey client …`, `latchkey user …`) and the admin HTTP API both call.
//! Every change is written to the audit log with who made it (`cli` or `api`).

use crate::store::AnyStore;
use latchkey_core::client::{Client, ClientId, ClientType, GrantType, NewClient};
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::entropy::{OsEntropy, random_hex};
use latchkey_core::password;
use latchkey_core::scope::ScopeSet;
use latchkey_core::secret::Secret;
use latchkey_core::store::{
    ClientStore, SessionStore, StoreError, StoreErrorKind, TokenStore, UserStore,
};
use latchkey_core::token::TokenKind;
use latchkey_core::user::User;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Why an administrative operation failed; each maps to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The request is malformed or names impossible settings (400).
    #[error("{0}")]
    Invalid(String),
    /// No such client or user (404).
    #[error("{0}")]
    NotFound(String),
    /// It exists already (409).
    #[error("{0}")]
    Conflict(String),
    /// The store failed (503).
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

/// A client to register.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSpec {
    /// Display name, shown on consent pages.
    pub name: String,
    /// A public client (browser or native app): no secret.
    #[serde(default)]
    pub public: bool,
    /// Grants the client may use: `authorization_code`, `client_credentials`, `password`,
    /// `refresh_token`, `implicit`. Empty: `client_credentials`, `authorization_code` and
    /// `refresh_token` (public clients: `authorization_code` and `refresh_token`).
    #[serde(default)]
    pub grant_types: Vec<String>,
    /// Redirect URIs, matched exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Scopes the client may be granted, space-separated (default: the server's).
    pub scope: Option<String>,
    /// Scopes granted when a request names none (default: the server's).
    pub default_scope: Option<String>,
    /// Bind tokens to the User-Agent and address they were issued to.
    #[serde(default)]
    pub bind_tokens: bool,
    /// May introspect tokens issued to other clients (a resource server); confidential only.
    #[serde(default)]
    pub introspect: bool,
    /// A client id to use instead of a generated one.
    pub id: Option<String>,
    /// Also an OAuth 1.0a consumer: the client id is its consumer key; its consumer secret
    /// (derived from the server's OAuth 1.0a key and a random salt of this registration) is
    /// returned beside the OAuth 2.0 client secret, and differs from it.
    #[serde(default)]
    pub oauth1: bool,
    /// The PEM RSA public key of an OAuth 1.0a consumer that signs with RSA-SHA1 (implies
    /// `oauth1`).
    #[serde(default)]
    pub rsa_public_key: Option<String>,
}

/// A registered client as administrators see it: never its secret.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ClientView {
    /// The client identifier.
    pub client_id: String,
    /// Display name.
    pub name: String,
    /// `confidential` or `public`.
    pub client_type: &'static str,
    /// Grants it may use.
    pub grant_types: Vec<&'static str>,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
    /// Scopes it may be granted; absent: the server's.
    pub scope: Option<String>,
    /// Scopes granted when a request names none; absent: the server's.
    pub default_scope: Option<String>,
    /// Whether its tokens are bound to User-Agent and address.
    pub bind_tokens: bool,
    /// Whether it may introspect tokens issued to other clients (a resource server).
    pub introspect: bool,
    /// Registration time, seconds since the epoch.
    pub created_at: i64,
}

impl From<&Client> for ClientView {
    fn from(c: &Client) -> Self {
        Self {
            client_id: c.id.to_string(),
            name: c.name.clone(),
            client_type: client_type(c),
            grant_types: c.grant_types.iter().map(|g| g.as_str()).collect(),
            redirect_uris: c.redirect_uris.clone(),
            scope: c.scopes.as_ref().map(ToString::to_string),
            default_scope: c.default_scopes.as_ref().map(ToString::to_string),
            bind_tokens: c.bind_tokens,
            introspect: c.introspect,
            created_at: c.created_at.0,
        }
    }
}

/// A new client with its secret, which is shown this once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient {
    /// The client.
    #[serde(flatten)]
    pub client: ClientView,
    /// The OAuth 2.0 secret of a confidential client.
    pub client_secret: Option<String>,
    /// Whether it is also an OAuth 1.0a consumer (with `client_id` as its consumer key).
    pub oauth1: bool,
    /// The OAuth 1.0a consumer secret (HMAC-SHA1, HMAC-SHA256 and PLAINTEXT signatures), when
    /// it is a consumer that signs with a shared secret; absent for RSA-SHA1 consumers.
    pub oauth1_consumer_secret: Option<String>,
}

/// New secrets of a client after a rotation, shown this once; the old ones no longer work.
#[derive(Debug, Serialize, ToSchema)]
pub struct RotatedSecret {
    /// The client identifier.
    pub client_id: String,
    /// The new OAuth 2.0 client secret.
    pub client_secret: String,
    /// The new OAuth 1.0a consumer secret, when the client is a consumer that signs with a
    /// shared secret (its OAuth 1.0a tokens were revoked with the old secret).
    pub oauth1_consumer_secret: Option<String>,
}

/// A built-in user as administrators see it: never the password hash.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct UserView {
    /// The stable subject identifier put into tokens.
    pub subject: String,
    /// The login name.
    pub username: String,
    /// Creation time, seconds since the epoch.
    pub created_at: i64,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            subject: u.id.clone(),
            username: u.username.clone(),
            created_at: u.created_at.0,
        }
    }
}

/// `confidential` or `public`.
pub fn client_type(c: &Client) -> &'static str {
    match c.client_type() {
        ClientType::Confidential => "confidential",
        ClientType::Public => "public",
    }
}

/// The administrative operations over one store, on behalf of `actor` (for the audit log).
#[derive(Clone, Debug)]
pub struct Admin {
    store: AnyStore,
    issuer: String,
    actor: &'static str,
    oauth1_key: Option<latchkey_oauth1::OAuth1Key>,
}

impl Admin {
    /// Operations on `store`; `issuer` goes into introspection answers; `actor` names the
    /// caller in the audit log (`cli` or `api`).
    pub fn new(store: AnyStore, issuer: impl Into<String>, actor: &'static str) -> Self {
        Self {
            store,
            issuer: issuer.into(),
            actor,
            oauth1_key: None,
        }
    }

    /// Allows registering OAuth 1.0a consumers, whose secrets derive from `key`.
    pub fn with_oauth1_key(mut self, key: latchkey_oauth1::OAuth1Key) -> Self {
        self.oauth1_key = Some(key);
        self
    }

    fn audit(&self, action: &'static str, target: &str) {
        tracing::info!(
            target: "latchkey::audit",
            event = "admin_change",
            actor = self.actor,
            action,
            target,
        );
    }

    /// Registers a client and returns it with its secret.
    pub async fn create_client(&self, spec: ClientSpec) -> Result<CreatedClient, AdminError> {
        let invalid = |m: String| AdminError::Invalid(m);
        if spec.name.trim().is_empty() || spec.name.len() > 255 {
            return Err(invalid("name must be 1 to 255 bytes".into()));
        }
        let mut new = if spec.public {
            NewClient::public(&spec.name)
        } else {
            NewClient::confidential(&spec.name)
        };
        if !spec.grant_types.is_empty() {
            let grants = spec
                .grant_types
                .iter()
                .map(|g| {
                    GrantType::parse(g).ok_or_else(|| invalid(format!("unknown grant type {g:?}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if spec.public && grants.contains(&GrantType::ClientCredentials) {
                return Err(invalid(
                    "public clients cannot use client_credentials (RFC 6749 §4.4)".into(),
                ));
            }
            new = new.grant_types(grants);
        }
        for uri in &spec.redirect_uris {
            if !latchkey_core::redirect::is_registrable(uri) {
                return Err(invalid(format!(
                    "redirect URI {uri:?} must be absolute, without a fragment, and not javascript:/data:"
                )));
            }
        }
        if spec.public && spec.introspect {
            return Err(invalid(
                "public clients cannot introspect: they do not authenticate (RFC 7662 §2.1)".into(),
            ));
        }
        new = new
            .redirect_uris(spec.redirect_uris.clone())
            .bind_tokens(spec.bind_tokens)
            .introspect(spec.introspect);
        if let Some(scope) = &spec.scope {
            new = new.scopes(ScopeSet::parse(scope).map_err(|e| invalid(format!("scope: {e}")))?);
        }
        if let Some(scope) = &spec.default_scope {
            new = new.default_scopes(
                ScopeSet::parse(scope).map_err(|e| invalid(format!("default_scope: {e}")))?,
            );
        }
        if let Some(id) = &spec.id {
            ClientId::parse(id)
                .map_err(|_| invalid("id must be 1-255 printable ASCII characters".into()))?;
            if self.store.get_client(id).await?.is_some() {
                return Err(AdminError::Conflict(format!(
                    "a client with id {id:?} already exists"
                )));
            }
            new = new.id(id);
        }
        let oauth1 = spec.oauth1 || spec.rsa_public_key.is_some();
        let oauth1_key = match (oauth1, &self.oauth1_key) {
            (false, _) => None,
            (true, None) => return Err(invalid("OAuth 1.0a is not enabled here".into())),
            (true, Some(_)) if spec.public => {
                return Err(invalid(
                    "an OAuth 1.0a consumer holds a secret: not public".into(),
                ));
            }
            (true, Some(key)) => Some(key),
        };
        if let Some(pem) = &spec.rsa_public_key {
            latchkey_oauth1::signature::RsaPublicKey::from_pem(pem).map_err(|e| {
                invalid(format!(
                    "rsa_public_key: {e} (expected a PEM RSA public key)"
                ))
            })?;
        }
        let now = SystemClock.now();
        // The OAuth 2.0 secret is random and kept only as a hash, as for every client.
        let (client, secret) = new.build(&OsEntropy, now);
        self.store.put_client(&client).await?;
        let mut consumer_secret = None;
        if let Some(key) = oauth1_key {
            use latchkey_oauth1::store::OAuth1Store;
            // OAuth 1.0a needs the consumer secret itself at every request (HMAC): it is
            // derived from the server's key and this registration's random salt rather than
            // stored, so a client created again under the same id gets a new one.
            let rsa_public_key = spec.rsa_public_key.as_deref().map(|p| p.trim().to_owned());
            let shared_secret = rsa_public_key.is_none();
            let consumer = latchkey_oauth1::store::Consumer::new(
                client.id.as_str(),
                rsa_public_key,
                &OsEntropy,
                now,
            );
            self.store.put_consumer(&consumer).await?;
            if shared_secret {
                consumer_secret = Some(key.consumer_secret(&consumer));
            }
        }
        self.audit("client_created", client.id.as_str());
        Ok(CreatedClient {
            client: ClientView::from(&client),
            client_secret: secret.as_ref().map(|s| s.expose().to_owned()),
            oauth1,
            oauth1_consumer_secret: consumer_secret.as_ref().map(|s| s.expose().to_owned()),
        })
    }

    /// Rotates a confidential client's secrets: a new random OAuth 2.0 secret (only its hash
    /// is stored; the old secret stops working at once) and, for an OAuth 1.0a consumer that
    /// signs with a shared secret, a new consumer secret, its request and access tokens
    /// deleted with the old one. Tokens the client holds from OAuth 2.0 grants stay valid:
    /// they do not depend on its secret, and refreshing them needs the new one. An RSA-SHA1
    /// consumer's OAuth 1.0a credential is its key, which this does not change.
    pub async fn rotate_secret(&self, id: &str) -> Result<RotatedSecret, AdminError> {
        use latchkey_oauth1::store::OAuth1Store;
        let Some(mut client) = self.store.get_client(id).await? else {
            return Err(AdminError::NotFound(format!("no client with id {id:?}")));
        };
        let Some(secret) = client.rotate_secret(&OsEntropy) else {
            return Err(AdminError::Invalid(format!(
                "client {id:?} is public: it has no secret to rotate"
            )));
        };
        let consumer = self.store.get_consumer(id).await?;
        let shared_secret_consumer = consumer.is_some_and(|c| c.rsa_public_key.is_none());
        let oauth1_key = match (shared_secret_consumer, &self.oauth1_key) {
            (true, None) => {
                return Err(AdminError::Invalid(
                    "client is an OAuth 1.0a consumer, but OAuth 1.0a is not enabled here".into(),
                ));
            }
            (true, Some(key)) => Some(key),
            (false, _) => None,
        };
        self.store.put_client(&client).await?;
        let mut consumer_secret = None;
        if let Some(key) = oauth1_key {
            consumer_secret =
                latchkey_oauth1::provider::rotate_consumer_secret(&self.store, key, &OsEntropy, id)
                    .await?;
        }
        self.audit("client_secret_rotated", id);
        Ok(RotatedSecret {
            client_id: id.to_owned(),
            client_secret: secret.expose().to_owned(),
            oauth1_consumer_secret: consumer_secret.as_ref().map(|s| s.expose().to_owned()),
        })
    }

    /// Every registered client.
    pub async fn list_clients(&self) -> Result<Vec<ClientView>, AdminError> {
        Ok(self
            .store
            .list_clients()
            .await?
            .iter()
            .map(ClientView::from)
            .collect())
    }

    /// One client.
    pub async fn get_client(&self, id: &str) -> Result<ClientView, AdminError> {
        match self.store.get_client(id).await? {
            Some(c) => Ok(ClientView::from(&c)),
            None => Err(AdminError::NotFound(format!("no client with id {id:?}"))),
        }
    }

    /// Deletes a client and every token issued to it.
    pub async fn delete_client(&self, id: &str) -> Result<(), AdminError> {
        if !self.store.delete_client(id).await? {
            return Err(AdminError::NotFound(format!("no client with id {id:?}")));
        }
        self.audit("client_deleted", id);
        Ok(())
    }

    /// Adds a user with an Argon2id hash of `password`.
    pub async fn add_user(&self, username: &str, password: Secret) -> Result<UserView, AdminError> {
        if username.is_empty() || username.len() > 255 {
            return Err(AdminError::Invalid("user names are 1 to 255 bytes".into()));
        }
        if password.expose().is_empty() {
            return Err(AdminError::Invalid("the password must not be empty".into()));
        }
        if self.store.get_user(username).await?.is_some() {
            return Err(AdminError::Conflict(format!("user {username:?} exists")));
        }
        let user = User {
            id: random_hex(&OsEntropy, 16),
            username: username.to_owned(),
            password_hash: hash(password).await?,
            created_at: SystemClock.now(),
        };
        match self.store.put_user(&user).await {
            Err(e) if e.kind() == StoreErrorKind::Conflict => {
                return Err(AdminError::Conflict(format!("user {username:?} exists")));
            }
            other => other?,
        }
        self.audit("user_added", username);
        Ok(UserView::from(&user))
    }

    /// Replaces a user's password.
    pub async fn set_password(&self, username: &str, password: Secret) -> Result<(), AdminError> {
        if password.expose().is_empty() {
            return Err(AdminError::Invalid("the password must not be empty".into()));
        }
        let Some(mut user) = self.store.get_user(username).await? else {
            return Err(AdminError::NotFound(format!("no user {username:?}")));
        };
        user.password_hash = hash(password).await?;
        self.store.put_user(&user).await?;
        // Whoever logged in with the old password is logged out.
        self.store.delete_sessions_of(&user.id).await?;
        self.audit("user_password_changed", username);
        Ok(())
    }

    /// Ends every login session of a user ("log out everywhere"); returns how many there were.
    /// Tokens already issued stay valid until they expire or are revoked.
    pub async fn logout_user(&self, username: &str) -> Result<u64, AdminError> {
        let Some(user) = self.store.get_user(username).await? else {
            return Err(AdminError::NotFound(format!("no user {username:?}")));
        };
        let ended = self.store.delete_sessions_of(&user.id).await?;
        self.audit("user_logged_out", username);
        Ok(ended)
    }

    /// Deletes a user, every token issued for them and their login sessions.
    pub async fn delete_user(&self, username: &str) -> Result<(), AdminError> {
        if !self.store.delete_user(username).await? {
            return Err(AdminError::NotFound(format!("no user {username:?}")));
        }
        self.audit("user_deleted", username);
        Ok(())
    }

    /// Every built-in user.
    pub async fn list_users(&self) -> Result<Vec<UserView>, AdminError> {
        Ok(self
            .store
            .list_users()
            .await?
            .iter()
            .map(UserView::from)
            .collect())
    }

    /// Revokes a token whoever it was issued to; a refresh token takes its family (every
    /// token of the grant). Returns how many tokens stopped working (0 for an unknown one).
    pub async fn revoke(&self, token: &Secret) -> Result<u64, AdminError> {
        let Some(record) = self.store.find_token(&token.digest()).await? else {
            return self.revoke_oauth1(token).await;
        };
        let revoked = match record.kind {
            TokenKind::Refresh => self.store.revoke_family(&record.family).await?,
            // An access token, or a kind a later core adds: that token alone.
            _ => u64::from(self.store.revoke_token(&record.digest).await?),
        };
        tracing::info!(
            target: "latchkey::audit",
            event = "token_revoked",
            actor = self.actor,
            client_id = record.client_id.as_str(),
            kind = record.kind.as_str(),
            revoked,
        );
        Ok(revoked)
    }

    /// Revokes OAuth 1.0a token credentials (the `oauth_token` value); 0 if unknown.
    async fn revoke_oauth1(&self, token: &Secret) -> Result<u64, AdminError> {
        use latchkey_oauth1::store::OAuth1Store;
        let digest = token.digest();
        let Some(record) = self.store.find_access_token(&digest).await? else {
            return Ok(0);
        };
        let revoked = u64::from(!record.revoked && self.store.revoke_access_token(&digest).await?);
        tracing::info!(
            target: "latchkey::audit",
            event = "token_revoked",
            actor = self.actor,
            client_id = record.client_id.as_str(),
            kind = "oauth1_access",
            revoked,
        );
        Ok(revoked)
    }

    /// The RFC 7662 description of a token, `{"active": false}` when it is not active.
    pub async fn introspect(&self, token: &Secret) -> Result<serde_json::Value, AdminError> {
        let now = SystemClock.now();
        Ok(match self.store.find_token(&token.digest()).await? {
            Some(record) if record.is_active(now) => {
                latchkey_core::endpoint::introspect::describe(&record, &self.issuer)
            }
            _ => serde_json::json!({ "active": false }),
        })
    }
}

async fn hash(password: Secret) -> Result<String, AdminError> {
    tokio::task::spawn_blocking(move || password::hash(&password, &OsEntropy))
        .await
        .map_err(|e| AdminError::Invalid(format!("hashing failed: {e}")))?
        .map_err(|e| AdminError::Invalid(format!("hashing failed: {e}")))
}
