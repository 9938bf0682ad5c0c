//! Token-response extras: pyramid_oauth2_provider's `user_id` and a Flask-OAuthlib-style
//! extra member, added to every token response without touching the standard members.
//!
//! The hook is any `Fn(&ResponseContext, &mut ExtraMembers)`. A name RFC 6749 (or OpenID
//! Connect, token exchange, RAR) defines itself, such as `expires_in`, is dropped with a
//! warning in the log: the hook can add, never rewrite. Run it with
//! `cargo run -p latchkey-core --example response_extras`.

use latchkey_core::config::Config;
use latchkey_core::extras::{ExtraMembers, ResponseContext};
use latchkey_core::password;
use latchkey_core::prelude::*;

/// The hook: the resource owner as `user_id`, the grant type that issued the tokens, and
/// (dropped, as every standard name is) an attempt to change `expires_in`.
pub fn extras(ctx: &ResponseContext<'_>, out: &mut ExtraMembers) {
    if let Some(subject) = &ctx.grant.subject {
        out.insert("user_id", subject.as_str());
    }
    out.insert("issued_by", ctx.request_grant.as_str());
    out.insert("expires_in", 999_999);
}

/// Issues tokens to `alice` with the password grant and returns the token response.
pub async fn run() -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    let provider = Provider::builder(store.clone(), StoreUsers::new(store.clone(), Inline))
        .config(Config {
            issuer: "https://auth.example.com".into(),
            // For this example only: RFC 9700 §2.4 says not to use the password grant.
            password_grant: true,
            ..Config::default()
        })
        .response_extras(extras)
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
    let (client, secret) = NewClient::confidential("legacy-app")
        .grant_types([GrantType::Password, GrantType::RefreshToken])
        .build(provider.entropy(), provider.clock().now());
    store.put_client(&client).await?;
    let secret = secret.ok_or("confidential clients get a secret")?;

    let response = provider
        .token(&HttpRequest::post_form(
            "/token",
            format!(
                "grant_type=password&username=alice&password=correct+horse&client_id={}&client_secret={}",
                client.id,
                secret.expose()
            ),
        ))
        .await;
    Ok(response.json_body())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let body = tokio::runtime::Builder::new_current_thread()
        .build()?
        .block_on(run())?;
    println!("{body:#}");
    Ok(())
}
