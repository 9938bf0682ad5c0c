//! Data attached at authorization: python-oauth2's site adapter returns `(user_id, data)`
//! from its authenticate step, and the data travels with the grant. Here the application's
//! login attaches the user's tenant and how they signed in; the code stores it, the tokens
//! carry it (across a refresh), the token-response extras hook reads it, and introspection
//! shows it to a resource server as `ext`. Run it with
//! `cargo run -p latchkey-core --example attached_data`.

use latchkey_core::attached::{Attached, AttachedError};
use latchkey_core::config::Config;
use latchkey_core::extras::{ExtraMembers, ResponseContext};
use latchkey_core::prelude::*;
use serde_json::json;

/// Where the example's client receives its codes.
const REDIRECT_URI: &str = "https://app.example.com/callback";

/// What the example shows.
#[derive(Debug)]
pub struct Outcome {
    /// The code exchange's token response.
    pub issued: serde_json::Value,
    /// The refresh's token response.
    pub refreshed: serde_json::Value,
    /// A resource server's introspection of the refreshed access token.
    pub introspected: serde_json::Value,
    /// What attaching too much answers the application.
    pub too_large: AttachedError,
}

/// The application's login step: who signed in, and what to attach to what they authorize
/// (the second half of python-oauth2's `(user_id, data)`).
pub fn sign_in(subject: &str, username: &str) -> Result<AuthenticatedUser, AttachedError> {
    let data = Attached::from_value(json!({ "tenant": "acme", "login_method": "sso" }))?;
    Ok(AuthenticatedUser::new(subject, username).with_attached(data))
}

/// The token-response extras hook: the tenant the login attached, as `tenant`.
pub fn extras(ctx: &ResponseContext<'_>, out: &mut ExtraMembers) {
    if let Some(tenant) = ctx.grant.attached.get("tenant") {
        out.insert("tenant", tenant.clone());
    }
}

/// Runs the code flow for a user whose login attached data, refreshes, and introspects.
pub async fn run() -> Result<Outcome, Box<dyn std::error::Error>> {
    let store = MemoryStore::new();
    let provider = Provider::builder(store.clone(), StoreUsers::new(store.clone(), Inline))
        .config(Config {
            issuer: "https://auth.example.com".into(),
            ..Config::default()
        })
        .response_extras(extras)
        .build()?;
    let now = provider.clock().now();
    let (app, app_secret) = NewClient::confidential("web-app")
        .redirect_uris([REDIRECT_URI])
        .grant_types([GrantType::AuthorizationCode, GrantType::RefreshToken])
        .build(provider.entropy(), now);
    store.put_client(&app).await?;
    let (api, api_secret) = NewClient::confidential("reports-api")
        .grant_types([GrantType::ClientCredentials])
        .introspect(true)
        .build(provider.entropy(), now);
    store.put_client(&api).await?;
    let app_secret = app_secret.ok_or("confidential clients get a secret")?;
    let api_secret = api_secret.ok_or("confidential clients get a secret")?;
    // Refreshing asks the user store whether the subject still exists.
    store
        .put_user(&User {
            id: "user-1234".into(),
            username: "alice".into(),
            password_hash: "unused: alice signs in with the application's SSO".into(),
            created_at: now,
            claims: Default::default(),
        })
        .await?;

    // The user signs in with the application's own login and approves.
    let user = sign_in("user-1234", "alice")?;
    let mut authorize = HttpRequest::new(Method::Get, "/authorize");
    authorize.query = format!("response_type=code&client_id={}&state=s1", app.id);
    let outcome = provider
        .authorize(
            &authorize,
            Some(&user),
            Some(Decision::Allow { remember: false }),
        )
        .await;
    let AuthorizeOutcome::Redirect(redirect) = outcome else {
        return Err(format!("expected a redirect, got {outcome:?}").into());
    };
    let location = redirect.header("location").ok_or("a Location header")?;
    let code = location
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("code="))
        .ok_or("a code")?;

    let token = |body: String| {
        let req = HttpRequest::post_form("/token", body);
        let provider = &provider;
        async move { provider.token(&req).await.json_body() }
    };
    let credentials = format!("client_id={}&client_secret={}", app.id, app_secret.expose());
    let issued = token(format!(
        "grant_type=authorization_code&code={code}&{credentials}"
    ))
    .await;
    let refresh = issued["refresh_token"].as_str().ok_or("a refresh token")?;
    let refreshed = token(format!(
        "grant_type=refresh_token&refresh_token={refresh}&{credentials}"
    ))
    .await;
    let access = refreshed["access_token"]
        .as_str()
        .ok_or("an access token")?;
    let introspected = provider
        .introspect(&HttpRequest::post_form(
            "/introspect",
            format!(
                "token={access}&client_id={}&client_secret={}",
                api.id,
                api_secret.expose()
            ),
        ))
        .await
        .json_body();

    // Attached data is bounded; the application hears about it, the network never does.
    let too_large =
        Attached::from_value(json!({ "blob": "x".repeat(10_000) })).expect_err("over the bound");
    Ok(Outcome {
        issued,
        refreshed,
        introspected,
        too_large,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let outcome = tokio::runtime::Builder::new_current_thread()
        .build()?
        .block_on(run())?;
    println!("token response: {:#}", outcome.issued);
    println!("after refresh:  {:#}", outcome.refreshed);
    println!("introspection:  {:#}", outcome.introspected);
    println!("too much:       {}", outcome.too_large);
    Ok(())
}
