//! Per-grant token lifetimes (python-oauth2's `expires_in` per grant), and the order in which
//! lifetimes apply: a client's own, then its grant type's, then the server's.
//!
//! Here the server's access tokens live an hour; the password grant's (a legacy grant, kept
//! short) five minutes, with refresh tokens of a day; and one client has access tokens of a
//! minute whatever the grant. A family keeps the lifetimes of the grant that started it, also
//! when its refresh token is rotated. Run it with
//! `cargo run -p latchkey-core --example grant_lifetimes`.

use latchkey_core::config::{Config, GrantLifetimes};
use latchkey_core::password;
use latchkey_core::prelude::*;

/// The `expires_in` (and, for the password grant, the refresh token's lifetime) each client
/// got from each grant.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// A client without lifetimes of its own, `client_credentials`: the server's.
    pub plain_client_credentials: u64,
    /// The same client, `password`: the password grant's.
    pub plain_password: u64,
    /// The refresh token it got from the password grant, in seconds: the password grant's.
    pub plain_password_refresh: u64,
    /// A client with access tokens of its own lifetime, `password`: the client's.
    pub short_client_password: u64,
    /// The same client, `client_credentials`: the client's.
    pub short_client_client_credentials: u64,
}

/// Configures the lifetimes, issues tokens to both clients with both grants and reports them.
pub async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    let provider = Provider::builder(store.clone(), StoreUsers::new(store.clone(), Inline))
        .config(Config {
            issuer: "https://auth.example.com".into(),
            access_token_ttl: 3600,
            // For this example only: RFC 9700 §2.4 says not to use the password grant.
            password_grant: true,
            ..Config::default()
        })
        .grant_lifetimes(
            GrantType::Password,
            GrantLifetimes {
                access_token_ttl: Some(300),
                refresh_token_ttl: Some(86_400),
            },
        )
        .build()?;
    store
        .put_user(&User {
            id: "user-1234".into(),
            username: "alice".into(),
            password_hash: password::hash(&Secret::new("correct horse"), provider.entropy())?,
            created_at: provider.clock().now(),
            claims: Default::default(),
        })
        .await?;
    let grants = [
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::RefreshToken,
    ];
    let (plain, plain_secret) = NewClient::confidential("plain")
        .grant_types(grants)
        .build(provider.entropy(), provider.clock().now());
    let (mut short, short_secret) = NewClient::confidential("short-lived")
        .grant_types(grants)
        .build(provider.entropy(), provider.clock().now());
    // A client's own lifetime wins over its grant type's and the server's.
    short.access_token_ttl = Some(60);
    store.put_client(&plain).await?;
    store.put_client(&short).await?;

    let token = |client: &Client, secret: &Option<Secret>, grant: &str| {
        let credentials = format!(
            "client_id={}&client_secret={}",
            client.id,
            secret.as_ref().map(Secret::expose).unwrap_or_default()
        );
        let body = format!("grant_type={grant}&{credentials}");
        let provider = provider.clone();
        async move {
            let issued = provider
                .token(&HttpRequest::post_form("/token", body))
                .await
                .json_body();
            // The refresh token's lifetime, as introspection reports it.
            let refresh_lifetime = match issued["refresh_token"].as_str() {
                Some(refresh) => {
                    let seen = provider
                        .introspect(&HttpRequest::post_form(
                            "/introspect",
                            format!("token={refresh}&{credentials}"),
                        ))
                        .await
                        .json_body();
                    seen["exp"]
                        .as_u64()
                        .unwrap_or(0)
                        .saturating_sub(seen["iat"].as_u64().unwrap_or(0))
                }
                None => 0,
            };
            (issued["expires_in"].as_u64().unwrap_or(0), refresh_lifetime)
        }
    };
    let password = "password&username=alice&password=correct+horse";
    let (plain_password, plain_password_refresh) = token(&plain, &plain_secret, password).await;
    Ok(Outcome {
        plain_client_credentials: token(&plain, &plain_secret, "client_credentials").await.0,
        plain_password,
        plain_password_refresh,
        short_client_password: token(&short, &short_secret, password).await.0,
        short_client_client_credentials: token(&short, &short_secret, "client_credentials").await.0,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let outcome = tokio::runtime::Builder::new_current_thread()
        .build()?
        .block_on(run())?;
    println!("{outcome:#?}");
    Ok(())
}
