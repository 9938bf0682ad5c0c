//! An extension grant (RFC 6749 §4.5): `grant_type=urn:example:params:oauth:grant-type:api-key`
//! trades a long-lived API key for a short-lived access token on behalf of the key's owner.
//!
//! The application registers a handler under the grant's URI on the provider builder and
//! lists the URI among a client's grant types. The core authenticates the client, refuses a
//! client not allowed the URI, calls the handler, checks its decision (scope, lifetimes,
//! refresh) and mints and stores the tokens like any other grant's; the metadata document
//! lists the URI. Run it with `cargo run -p latchkey-core --example extension_grant`.

use latchkey_core::client::ExtensionGrantType;
use latchkey_core::grant::extension::{
    ExtensionGrant, ExtensionRequest, GrantDecision, GrantFuture,
};
use latchkey_core::prelude::*;
use latchkey_core::secret::Digest;

/// The grant's name.
pub const API_KEY_GRANT: &str = "urn:example:params:oauth:grant-type:api-key";

/// The application's API keys: only their digests, with the user each belongs to.
pub struct ApiKeyGrant {
    keys: Vec<(Digest, String, String)>,
}

impl ApiKeyGrant {
    /// A handler knowing one key of `username` (subject `subject`).
    pub fn new(key: &Secret, subject: &str, username: &str) -> Self {
        Self {
            keys: vec![(key.digest(), subject.into(), username.into())],
        }
    }
}

impl<S: Send + Sync + 'static> ExtensionGrant<S> for ApiKeyGrant {
    fn exchange<'a>(&'a self, request: ExtensionRequest<'a, S>) -> GrantFuture<'a> {
        Box::pin(async move {
            let key = Secret::new(request.params.require("api_key")?);
            // Digests compared in constant time, so the comparison leaks nothing of a key.
            let Some((_, subject, username)) =
                self.keys.iter().find(|(digest, ..)| digest.matches(&key))
            else {
                return Err(OAuthError::invalid_grant("unknown API key"));
            };
            // Five minutes at most, whatever the server's lifetimes say, and no refresh token:
            // the key itself is the long-lived credential.
            Ok(GrantDecision::for_user(
                subject.as_str(),
                username.as_str(),
                request.resolve_scope()?,
            )
            .access_ttl(300))
        })
    }
}

/// What the example observed.
#[derive(Debug)]
pub struct Outcome {
    /// The token response for a client allowed the grant.
    pub issued: serde_json::Value,
    /// The error for a client that is not allowed it.
    pub refused: serde_json::Value,
    /// The error for a wrong API key.
    pub wrong_key: serde_json::Value,
    /// The metadata's `grant_types_supported`.
    pub grant_types_supported: serde_json::Value,
}

/// Registers the grant, exchanges a key with an allowed client, and tries a client that is not
/// allowed it and a wrong key.
pub async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    let api_key = Secret::new("k3y-0f-al1ce");
    let provider = Provider::builder(store.clone(), NoUsers)
        .issuer("https://auth.example.com")
        .available_scopes(ScopeSet::parse("reports:read reports:write")?)
        .extension_grant(
            API_KEY_GRANT,
            ApiKeyGrant::new(&api_key, "user-1234", "alice"),
        )
        .build()?;
    let api_key_grant =
        GrantType::Extension(ExtensionGrantType::parse(API_KEY_GRANT).ok_or("a valid URI")?);
    let (cli, cli_secret) = NewClient::confidential("reports-cli")
        .grant_types([api_key_grant])
        .build(provider.entropy(), provider.clock().now());
    let (other, other_secret) = NewClient::confidential("another-service")
        .grant_types([GrantType::ClientCredentials])
        .build(provider.entropy(), provider.clock().now());
    store.put_client(&cli).await?;
    store.put_client(&other).await?;

    let exchange = |client: &Client, secret: &Option<Secret>, key: &str| {
        let body = format!(
            "grant_type={API_KEY_GRANT}&api_key={key}&scope=reports:read&client_id={}&client_secret={}",
            client.id,
            secret.as_ref().map(Secret::expose).unwrap_or_default(),
        );
        let provider = provider.clone();
        async move {
            provider
                .token(&HttpRequest::post_form("/token", body))
                .await
                .json_body()
        }
    };
    Ok(Outcome {
        issued: exchange(&cli, &cli_secret, api_key.expose()).await,
        refused: exchange(&other, &other_secret, api_key.expose()).await,
        wrong_key: exchange(&cli, &cli_secret, "guess").await,
        grant_types_supported: provider.metadata().json_body()["grant_types_supported"].clone(),
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let outcome = tokio::runtime::Builder::new_current_thread()
        .build()?
        .block_on(run())?;
    println!("{outcome:#?}");
    Ok(())
}
