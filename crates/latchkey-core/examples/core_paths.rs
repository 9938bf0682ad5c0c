//! The protocol core's own work per request, without HTTP: runs one endpoint path `N` times
//! on the memory store, with the limits `latchkey serve` turns on by default (failed client
//! authentications counted per client and address), so that an instruction counter sees
//! only the core. Count instructions per request by running it under valgrind twice and
//! dividing the difference:
//!
//! ```sh
//! cargo build --release -p latchkey-core --example core_paths
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cp target/release/examples/core_paths cc 20000
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cp0 target/release/examples/core_paths cc 0
//! ```
//!
//! Paths: `cc` (client_credentials), `introspect` (an active token), `refresh` (a rotation:
//! each request presents the refresh token the previous one returned). `--rates` also turns
//! on both request rates (counted, never reached).

use latchkey_core::client::NewClient;
use latchkey_core::http::HttpRequest;
use latchkey_core::limits::{Limits, MemoryCounters, Rate};
use latchkey_core::prelude::*;
use latchkey_core::store::memory::MemoryStore;
use latchkey_core::user::NoUsers;
use std::sync::Arc;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().map_or("cc", String::as_str).to_owned();
    let n: u64 = args.get(1).and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let rates = args.iter().any(|a| a == "--rates");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = MemoryStore::new();
    let mut limits = Limits::new(Arc::new(MemoryCounters::new()));
    let rate = |requests| Rate {
        requests,
        window: 60,
    };
    limits.client_auth_failures = Some(rate(10));
    if rates {
        limits.per_client = Some(rate(1_000_000_000));
        limits.per_ip = Some(rate(1_000_000_000));
    }
    let provider = Provider::builder(store.clone(), NoUsers)
        .available_scopes(ScopeSet::parse("read write").expect("valid"))
        .limits(limits)
        .build()
        .expect("valid config");
    let (client, secret) = NewClient::confidential("bench")
        .grant_types([GrantType::ClientCredentials, GrantType::RefreshToken])
        .build(provider.entropy(), provider.clock().now());
    rt.block_on(store.put_client(&client)).expect("stored");
    let secret = secret.expect("confidential clients get a secret");
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            client.id,
            secret.expose()
        ))
    };
    let request = |path: &str, body: String| {
        let mut req = HttpRequest::post_form(path, body)
            .with_header("authorization", format!("Basic {basic}"));
        req.peer = Some("127.0.0.1:40000".parse().expect("address"));
        req
    };
    let cc = request("/token", "grant_type=client_credentials&scope=read".into());
    let mut ok = 0u64;
    match path.as_str() {
        "cc" => {
            for _ in 0..n {
                ok += u64::from(rt.block_on(provider.token(&cc)).status == 200);
            }
        }
        "introspect" => {
            let issued = rt.block_on(provider.token(&cc)).json_body();
            let token = issued["access_token"].as_str().expect("a token").to_owned();
            let intro = request("/introspect", format!("token={token}"));
            for _ in 0..n {
                ok += u64::from(rt.block_on(provider.introspect(&intro)).status == 200);
            }
        }
        "refresh" => {
            let grant = latchkey_core::token::Grant {
                attached: latchkey_core::attached::Attached::new(),
                access_token_format: latchkey_core::access_jwt::AccessTokenFormat::Opaque,
                auth: None,
                cnf: None,
                client_id: client.id.clone(),
                // No user: `NoUsers` knows none, and a refresh checks its user still exists.
                subject: None,
                username: None,
                scope: ScopeSet::parse("read").expect("valid"),
                grant_type: GrantType::AuthorizationCode,
                family: latchkey_core::token::FamilyId::generate(provider.entropy()),
                family_issued_at: None,
                access_ttl: 3600,
                refresh_ttl: Some(86_400),
                binding: None,
                audience: Default::default(),
                refresh_audience: None,
                actor: None,
            };
            let issued = rt.block_on(provider.issue(grant)).expect("issued");
            let mut refresh = issued
                .refresh_token
                .expect("a refresh token")
                .expose()
                .to_owned();
            for _ in 0..n {
                let req = request(
                    "/token",
                    format!("grant_type=refresh_token&refresh_token={refresh}"),
                );
                let answer = rt.block_on(provider.token(&req));
                if answer.status == 200 {
                    ok += 1;
                    let body = answer.json_body();
                    refresh = body["refresh_token"].as_str().unwrap_or("").to_owned();
                } else {
                    eprintln!("refused: {}", String::from_utf8_lossy(&answer.body));
                    break;
                }
            }
        }
        other => {
            eprintln!("unknown path {other}: cc, introspect or refresh");
            std::process::exit(2);
        }
    }
    println!("{path}: {ok} of {n} answered 200");
}
