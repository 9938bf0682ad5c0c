//! The in-process bearer guard under load: `latchkey-axum`'s token router plus a protected
//! route, `GET /api/whoami`, behind `Authenticated` (the guard looks the token up in the same
//! memory store the token endpoint writes). `--seed N` first stores N live access tokens
//! directly (no HTTP), so lookups can be measured against a large store.
//!
//! With `--format jwt --alg ES256|RS256|EdDSA`, the client gets JWT access tokens (RFC 9068)
//! signed with a key of that algorithm, and the guard verifies them locally
//! (`Provider::jwt_guard`: signature and claims, no store lookup); the seeded tokens stay
//! opaque.
//!
//! `bench-guard --listen 127.0.0.1:0 --seed 1000000` prints `seeded N tokens in S s`, then
//! `client_id=ID client_secret=SECRET`, then `listening on http://ADDR`.

use axum::extract::FromRef;
use axum::routing::get;
use axum::{Json, Router};
use latchkey_axum::{Authenticated, BearerGuard, TokioBlocking, router};
use latchkey_bench::{arg, num_arg};
use latchkey_core::client::ClientMetadata;
use latchkey_core::jose::{KeySet, SigningAlg};
use latchkey_core::prelude::*;
use latchkey_core::token::{FamilyId, Grant, mint};

#[derive(Clone)]
struct AppState {
    guard: BearerGuard,
}

impl FromRef<AppState> for BearerGuard {
    fn from_ref(state: &AppState) -> Self {
        state.guard.clone()
    }
}

/// The protected resource: who the token belongs to.
async fn whoami(Authenticated(token): Authenticated) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "client_id": token.client_id, "scope": token.scope.to_string() }))
}

/// The same allocator as `latchkey serve`, so the comparison is of the code, not of malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let listen = arg(&args, "--listen").unwrap_or_else(|| "127.0.0.1:0".into());
    let seed = num_arg(&args, "--seed", 0);
    let ttl = num_arg(&args, "--access-ttl", 3600);
    let jwt = arg(&args, "--format").as_deref() == Some("jwt");
    let alg = match arg(&args, "--alg") {
        Some(name) => SigningAlg::parse(&name).ok_or(format!("unknown --alg {name}"))?,
        None => SigningAlg::Es256,
    };

    let store = MemoryStore::new();
    let users = StoreUsers::new(store.clone(), TokioBlocking::default());
    let config = Config {
        access_token_ttl: ttl,
        available_scopes: ScopeSet::parse("read write")?,
        default_scopes: ScopeSet::parse("read")?,
        ..Config::default()
    };
    let clock: std::sync::Arc<dyn Clock> = std::sync::Arc::new(SystemClock);
    let provider = Provider::builder(store.clone(), users)
        .config(config)
        .clock(clock.clone())
        .signer(std::sync::Arc::new(KeySet::generate(&[alg], clock)?))
        .build()?;
    let mut metadata = ClientMetadata::default();
    if jwt {
        metadata.access_token_format = Some("jwt".into());
    }
    let (client, secret) = NewClient::confidential("bench")
        .grant_types([GrantType::ClientCredentials])
        .metadata(metadata)
        .build(provider.entropy(), provider.clock().now());
    store.put_client(&client).await?;
    let secret = secret.ok_or("confidential clients get a secret")?;

    let started = std::time::Instant::now();
    let scope = ScopeSet::parse("read")?;
    for _ in 0..seed {
        let grant = Grant {
            attached: latchkey_core::attached::Attached::new(),
            access_token_format: latchkey_core::access_jwt::AccessTokenFormat::Opaque,
            auth: None,
            cnf: None,
            client_id: client.id.clone(),
            subject: None,
            username: None,
            scope: scope.clone(),
            grant_type: GrantType::ClientCredentials,
            family: FamilyId::generate(provider.entropy()),
            family_issued_at: None,
            access_ttl: ttl.max(3600),
            refresh_ttl: None,
            binding: None,
            audience: Default::default(),
            refresh_audience: None,
            actor: None,
        };
        let minted = mint(&grant, provider.entropy(), provider.clock().now());
        store
            .save_tokens(&minted.records, provider.clock().now())
            .await?;
    }
    println!(
        "seeded {seed} tokens in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    println!("client_id={} client_secret={}", client.id, secret.expose());

    let guard = if jwt {
        BearerGuard::new(provider.jwt_guard("bench"))
    } else {
        BearerGuard::new(provider.guard("bench"))
    };
    let api = Router::new()
        .route("/api/whoami", get(whoami))
        .with_state(AppState { guard });
    let app = router(provider).merge(api);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .await?;
    Ok(())
}
