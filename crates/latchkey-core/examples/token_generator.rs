//! A token generator: access and refresh tokens that secret scanners recognise by their
//! prefix (`lk_at_…`, `lk_rt_…`), as python-oauth2's `token_generator` lets an application
//! choose the shape of its tokens.
//!
//! The provider calls the generator for every token it issues; the store still keeps only
//! the SHA-256 digest of each value. A generator that changes only access tokens can hand
//! refresh tokens to `latchkey_core::generator::OpaqueTokens`, the default. Run it with
//! `cargo run -p latchkey-core --example token_generator`.

use latchkey_core::entropy::{Entropy, random_token};
use latchkey_core::error::OAuthError;
use latchkey_core::generator::{TokenContext, TokenGenerator};
use latchkey_core::prelude::*;
use latchkey_core::token::TokenKind;

/// Prefixed values: 256 random bits after `lk_at_` or `lk_rt_`.
pub struct PrefixedTokens;

impl TokenGenerator for PrefixedTokens {
    fn generate(
        &self,
        ctx: &TokenContext<'_>,
        entropy: &dyn Entropy,
    ) -> Result<Secret, OAuthError> {
        let prefix = match ctx.kind {
            TokenKind::Refresh => "lk_rt_",
            // Access tokens, and any kind a later version adds.
            _ => "lk_at_",
        };
        Ok(Secret::new(format!(
            "{prefix}{}",
            random_token(entropy, 32)
        )))
    }
}

/// Issues a token with the prefixed generator and returns the token response, after
/// checking that the token works at the introspection endpoint.
pub async fn run() -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    let provider = Provider::builder(store.clone(), NoUsers)
        .issuer("https://auth.example.com")
        .token_generator(PrefixedTokens)
        .build()?;
    let (client, secret) = NewClient::confidential("reporting")
        .grant_types([GrantType::ClientCredentials])
        .introspect(true)
        .build(provider.entropy(), provider.clock().now());
    store.put_client(&client).await?;
    let secret = secret.ok_or("confidential clients get a secret")?;
    let credentials = format!("client_id={}&client_secret={}", client.id, secret.expose());

    let response = provider
        .token(&HttpRequest::post_form(
            "/token",
            format!("grant_type=client_credentials&{credentials}"),
        ))
        .await;
    let body = response.json_body();
    let token = body["access_token"].as_str().ok_or("no access token")?;

    let introspection = provider
        .introspect(&HttpRequest::post_form(
            "/introspect",
            format!("token={token}&{credentials}"),
        ))
        .await
        .json_body();
    if introspection["active"] != true {
        return Err("the generated token does not work".into());
    }
    Ok(body)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let body = tokio::runtime::Builder::new_current_thread()
        .build()?
        .block_on(run())?;
    println!("{body:#}");
    Ok(())
}
