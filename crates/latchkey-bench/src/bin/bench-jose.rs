//! Signing on the token path, in process (no HTTP): the CPU per token of each JOSE step, per
//! algorithm, next to the opaque path, on the memory store.
//!
//! For each of ES256, RS256 and EdDSA:
//! - `id_token_sign`: signing an ID-token-shaped claims set (`iss`, `sub`, `aud`, `exp`, `iat`,
//!   `auth_time`, `nonce`, `at_hash`) with the provider's signer;
//! - `jwt_issue`: a whole `client_credentials` token request of a `jwt` client
//!   (authentication, minting, signing, storing), and `opaque_issue` the same for an opaque
//!   client;
//! - `jwt_guard_uncached`: the guard checking a JWT access token with its cache off (signature
//!   and claims each time), `jwt_guard`: with its cache on (what a client reusing its token
//!   costs), and `opaque_guard`: the guard looking an opaque token up in the store;
//! - `code_openid`: an authorization-code grant with `openid` (the approved authorization
//!   request, then the token request that returns an opaque access token, a refresh token and
//!   the ID token signed with the algorithm), and `code_plain` the same grant without
//!   `openid` (no ID token): their difference is what OpenID Connect adds to a sign-in.
//!
//! `bench-jose --iterations 500` prints one JSON object per algorithm, each step's CPU in
//! microseconds per operation (user + system time of the process, from `/proc/self/stat`,
//! falling back to wall time where that is not available), each step run in batches of
//! `--iterations` until it has used half a second of CPU.

use latchkey_bench::num_arg;
use latchkey_core::client::ClientMetadata;
use latchkey_core::jose::{KeySet, SigningAlg};
use latchkey_core::prelude::*;
use latchkey_core::resource::Guard;
use std::sync::Arc;
use std::time::Instant;

/// The same allocator as `latchkey serve`, so the comparison is of the code, not of malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// CPU seconds this process has used, when `/proc` tells.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // Linux reports in USER_HZ, 100 on every platform this runs on.
    Some(ticks / 100.0)
}

/// Microseconds of CPU per iteration of `step`, run in batches of `n` until at least half a
/// second of CPU was used (the process clock counts in 10 ms ticks) or ten seconds passed.
async fn measure<F, Fut>(n: u64, mut step: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let cpu0 = cpu_seconds();
    let wall0 = Instant::now();
    let mut done = 0u64;
    loop {
        for _ in 0..n {
            step().await;
        }
        done += n;
        let used = match (cpu0, cpu_seconds()) {
            (Some(a), Some(b)) => b - a,
            _ => wall0.elapsed().as_secs_f64(),
        };
        if used >= 0.5 || wall0.elapsed().as_secs() >= 10 {
            return used * 1e6 / done as f64;
        }
    }
}

fn token_request(client_id: &str, secret: &str) -> HttpRequest {
    HttpRequest::post_form(
        "/token",
        format!("grant_type=client_credentials&client_id={client_id}&client_secret={secret}"),
    )
}

/// The redirect URI of the code-flow client.
const REDIRECT_URI: &str = "https://rp.example/cb";

/// Registers a confidential web client allowed the code and refresh grants; its id and
/// secret.
async fn register_web(
    provider: &Provider<MemoryStore, NoUsers>,
    store: &MemoryStore,
) -> Result<(String, String), StoreError> {
    let (client, secret) = NewClient::confidential("bench web")
        .grant_types([GrantType::AuthorizationCode, GrantType::RefreshToken])
        .redirect_uris([REDIRECT_URI])
        .build(provider.entropy(), provider.clock().now());
    store.put_client(&client).await?;
    let secret = secret.map(|s| s.expose().to_owned()).unwrap_or_default();
    Ok((client.id.to_string(), secret))
}

/// One authorization-code grant for `scope`: the approved authorization request, then the
/// token request; whether the answer carried an ID token.
async fn code_grant(
    provider: &Provider<MemoryStore, NoUsers>,
    user: &AuthenticatedUser,
    (client_id, secret): (&str, &str),
    scope: &str,
) -> bool {
    let mut authorize = HttpRequest::new(Method::Get, "/authorize");
    authorize.query = format!(
        "response_type=code&client_id={client_id}&redirect_uri=https%3A%2F%2Frp.example%2Fcb\
         &scope={scope}&state=s&nonce=n-0S6_WzA2Mj"
    );
    let outcome = provider
        .authorize(
            &authorize,
            Some(user),
            Some(Decision::Allow { remember: false }),
        )
        .await;
    let AuthorizeOutcome::Redirect(resp) = outcome else {
        return false;
    };
    let Some(code) = resp
        .header("location")
        .and_then(|l| url::Url::parse(l).ok())
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "code")
                .map(|(_, v)| v.into_owned())
        })
    else {
        return false;
    };
    let exchange = HttpRequest::post_form(
        "/token",
        format!(
            "grant_type=authorization_code&code={code}&redirect_uri=https%3A%2F%2Frp.example%2Fcb\
             &client_id={client_id}&client_secret={secret}"
        ),
    );
    let resp = provider.token(&exchange).await;
    serde_json::from_slice::<serde_json::Value>(&resp.body)
        .is_ok_and(|v| v.get("id_token").is_some())
}

/// Registers a confidential `client_credentials` client, `jwt` or opaque; its id and secret.
async fn register(
    provider: &Provider<MemoryStore, NoUsers>,
    store: &MemoryStore,
    jwt: bool,
) -> Result<(String, String), StoreError> {
    let mut metadata = ClientMetadata::default();
    if jwt {
        metadata.access_token_format = Some("jwt".into());
    }
    let (client, secret) = NewClient::confidential("bench")
        .grant_types([GrantType::ClientCredentials])
        .metadata(metadata)
        .build(provider.entropy(), provider.clock().now());
    store.put_client(&client).await?;
    let secret = secret.map(|s| s.expose().to_owned()).unwrap_or_default();
    Ok((client.id.to_string(), secret))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n = num_arg(&args, "--iterations", 500).max(1);
    for alg in SigningAlg::ALL {
        let store = MemoryStore::new();
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let config = Config {
            available_scopes: ScopeSet::parse("read write")?,
            default_scopes: ScopeSet::parse("read")?,
            ..Config::default()
        };
        let provider = Provider::builder(store.clone(), NoUsers)
            .config(config)
            .clock(clock.clone())
            .signer(Arc::new(KeySet::generate(&[alg], clock.clone())?))
            .build()?;
        let (jwt_id, jwt_secret) = register(&provider, &store, true).await?;
        let (opaque_id, opaque_secret) = register(&provider, &store, false).await?;

        let now = provider.clock().now().0;
        let id_claims = serde_json::json!({
            "iss": provider.config().issuer, "sub": "248289761001", "aud": "s6BhdRkqt3",
            "exp": now + 300, "iat": now, "auth_time": now - 10,
            "nonce": "n-0S6_WzA2Mj", "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
        });
        let signer = provider.signer();
        let id_token_sign = measure(n, || {
            let signer = Arc::clone(&signer);
            let claims = &id_claims;
            async move {
                let _ = signer.sign(None, "JWT", claims);
            }
        })
        .await;

        let jwt_req = token_request(&jwt_id, &jwt_secret);
        let opaque_req = token_request(&opaque_id, &opaque_secret);
        let jwt_issue = measure(n, || async {
            let _ = provider.token(&jwt_req).await;
        })
        .await;
        let opaque_issue = measure(n, || async {
            let _ = provider.token(&opaque_req).await;
        })
        .await;

        let token_of = |resp: HttpResponse| -> String {
            serde_json::from_slice::<serde_json::Value>(&resp.body)
                .ok()
                .and_then(|v| v["access_token"].as_str().map(str::to_owned))
                .unwrap_or_default()
        };
        let jwt_token = token_of(provider.token(&jwt_req).await);
        let opaque_token = token_of(provider.token(&opaque_req).await);
        let bearer = |token: &str| {
            HttpRequest::new(Method::Get, "/api")
                .with_header("authorization", format!("Bearer {token}"))
        };
        let required = ScopeSet::parse("read")?;
        let uncached = Guard::new(provider.jwt_verifier().cache_capacity(0), "bench");
        let cached = provider.jwt_guard("bench");
        let opaque = provider.guard("bench");
        let (jwt_bearer, opaque_bearer) = (bearer(&jwt_token), bearer(&opaque_token));
        if uncached.authenticate(&jwt_bearer, &required).await.is_err()
            || opaque
                .authenticate(&opaque_bearer, &required)
                .await
                .is_err()
        {
            return Err(format!("{alg}: the guard refused a fresh token").into());
        }
        let jwt_guard_uncached = measure(n, || async {
            let _ = uncached.authenticate(&jwt_bearer, &required).await;
        })
        .await;
        let jwt_guard = measure(n, || async {
            let _ = cached.authenticate(&jwt_bearer, &required).await;
        })
        .await;
        let opaque_guard = measure(n, || async {
            let _ = opaque.authenticate(&opaque_bearer, &required).await;
        })
        .await;
        let (web_id, web_secret) = register_web(&provider, &store).await?;
        let web = (web_id.as_str(), web_secret.as_str());
        let user = AuthenticatedUser::new("u-248289761001", "alice");
        if !code_grant(&provider, &user, web, "openid").await
            || code_grant(&provider, &user, web, "read").await
        {
            return Err(format!("{alg}: the code grant did not answer as expected").into());
        }
        let code_openid = measure(n, || async {
            let _ = code_grant(&provider, &user, web, "openid").await;
        })
        .await;
        let code_plain = measure(n, || async {
            let _ = code_grant(&provider, &user, web, "read").await;
        })
        .await;
        println!(
            "{}",
            serde_json::json!({
                "alg": alg.as_str(),
                "iterations": n,
                "jwt_len": jwt_token.len(),
                "id_token_sign_us": id_token_sign,
                "jwt_issue_us": jwt_issue,
                "opaque_issue_us": opaque_issue,
                "jwt_guard_uncached_us": jwt_guard_uncached,
                "jwt_guard_us": jwt_guard,
                "opaque_guard_us": opaque_guard,
                "code_openid_us": code_openid,
                "code_plain_us": code_plain,
            })
        );
    }
    Ok(())
}
