//! Criterion micro-benchmarks of the core's hot functions: what one token request costs
//! before any I/O. Run with `cargo bench -p latchkey-core --bench hot_paths`; the harness in
//! `bench/` measures the same paths over HTTP (see BENCHMARKS.md).
//!
//! - request parsing: the form body into `Params`, then into a typed `TokenRequest`;
//! - client authentication: the Basic header decoded, then the secret's SHA-256 compared in
//!   constant time with the stored digest;
//! - token minting and hashing: 32 random bytes, base64url, SHA-256 of the value;
//! - scope checks: parsing a scope string and resolving it against the allowed set;
//! - the whole token endpoint (`Provider::token`) and introspection on the memory store.

use criterion::{Criterion, criterion_group, criterion_main};
use latchkey_core::client::Credentials;
use latchkey_core::params::Params;
use latchkey_core::prelude::*;
use latchkey_core::proto::TokenRequest;
use latchkey_core::scope::resolve;
use latchkey_core::secret::Digest;
use latchkey_core::token::{FamilyId, Grant, mint};
use std::hint::black_box;

const CC_BODY: &str = "grant_type=client_credentials&scope=read%20write";

fn request_parsing(c: &mut Criterion) {
    c.bench_function("parse/form_params", |b| {
        b.iter(|| Params::parse(black_box(CC_BODY.as_bytes())))
    });
    let params = Params::parse(CC_BODY.as_bytes()).expect("valid form");
    c.bench_function("parse/token_request", |b| {
        b.iter(|| TokenRequest::from_params(black_box(&params)))
    });
}

fn client_authentication(c: &mut Criterion) {
    let entropy = OsEntropy;
    let (client, secret) = NewClient::confidential("bench")
        .grant_types([GrantType::ClientCredentials])
        .build(&entropy, UnixTime(0));
    let secret = secret.expect("confidential clients get a secret");
    let basic = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            client.id,
            secret.expose()
        ))
    };
    let req = HttpRequest::post_form("/token", CC_BODY)
        .with_header("authorization", format!("Basic {basic}"));
    let params = Params::parse(CC_BODY.as_bytes()).expect("valid form");
    c.bench_function("client_auth/basic_decode", |b| {
        b.iter(|| Credentials::from_request(black_box(&req), black_box(&params)))
    });
    let creds = Credentials::from_request(&req, &params)
        .expect("well-formed")
        .expect("present");
    c.bench_function("client_auth/verify_secret", |b| {
        b.iter(|| creds.verify(black_box(&client)))
    });
}

fn token_minting(c: &mut Criterion) {
    let entropy = OsEntropy;
    let grant = Grant {
        attached: latchkey_core::attached::Attached::new(),
        access_token_format: latchkey_core::access_jwt::AccessTokenFormat::Opaque,
        auth: None,
        cnf: None,
        client_id: latchkey_core::client::ClientId::parse("bench-client").expect("valid id"),
        subject: None,
        username: None,
        scope: ScopeSet::parse("read").expect("valid scope"),
        grant_type: GrantType::ClientCredentials,
        family: FamilyId::generate(&entropy),
        family_issued_at: None,
        access_ttl: 3600,
        refresh_ttl: None,
        binding: None,
        audience: Default::default(),
        refresh_audience: None,
        actor: None,
    };
    c.bench_function("token/mint_access", |b| {
        b.iter(|| mint(black_box(&grant), &entropy, UnixTime(1_700_000_000)))
    });
    let with_refresh = Grant {
        refresh_ttl: Some(86_400),
        ..grant.clone()
    };
    c.bench_function("token/mint_access_and_refresh", |b| {
        b.iter(|| mint(black_box(&with_refresh), &entropy, UnixTime(1_700_000_000)))
    });
    let value = mint(&grant, &entropy, UnixTime(0)).access_token;
    c.bench_function("token/sha256_digest", |b| {
        b.iter(|| Digest::of(black_box(value.expose().as_bytes())))
    });
}

fn scope_checks(c: &mut Criterion) {
    let allowed = ScopeSet::parse("read write photos:read photos:write").expect("valid");
    let default = ScopeSet::parse("read").expect("valid");
    c.bench_function("scope/parse", |b| {
        b.iter(|| ScopeSet::parse(black_box("read photos:read")))
    });
    let requested = ScopeSet::parse("read photos:read").expect("valid");
    c.bench_function("scope/resolve", |b| {
        b.iter(|| resolve(Some(black_box(&requested)), &allowed, &default))
    });
    c.bench_function("scope/contains", |b| {
        b.iter(|| black_box(&allowed).contains(black_box("photos:write")))
    });
}

fn endpoints(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = MemoryStore::new();
    let provider = Provider::builder(store.clone(), NoUsers)
        .available_scopes(ScopeSet::parse("read write").expect("valid"))
        .build()
        .expect("valid config");
    let (client, secret) = NewClient::confidential("bench")
        .grant_types([GrantType::ClientCredentials])
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
    let req = HttpRequest::post_form("/token", "grant_type=client_credentials")
        .with_header("authorization", format!("Basic {basic}"));
    c.bench_function("endpoint/token_client_credentials_memory", |b| {
        b.iter(|| rt.block_on(provider.token(black_box(&req))))
    });
    let issued = rt.block_on(provider.token(&req)).json_body();
    let token = issued["access_token"].as_str().expect("a token").to_owned();
    let intro = HttpRequest::post_form("/introspect", format!("token={token}"))
        .with_header("authorization", format!("Basic {basic}"));
    c.bench_function("endpoint/introspect_memory", |b| {
        b.iter(|| rt.block_on(provider.introspect(black_box(&intro))))
    });
}

criterion_group!(
    benches,
    request_parsing,
    client_authentication,
    token_minting,
    scope_checks,
    endpoints
);
criterion_main!(benches);
