//! Memory per live token in the memory store: seeds client-credentials tokens through
//! [`TokenStore::save_tokens`], as the token endpoint stores them, and reports how much the
//! process's resident set (`VmRSS`, Linux) grew per token between 1,000 and N live tokens.
//! Run it with `cargo run --release -p latchkey-core --example memory_rss -- 1000000`.

use latchkey_core::entropy::OsEntropy;
use latchkey_core::prelude::*;
use latchkey_core::store::memory::MemoryStore;
use latchkey_core::token::{FamilyId, Grant, mint};

/// The process's resident set in bytes, from `/proc/self/status`; 0 where there is none.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Stores `count` client-credentials tokens, each of a family of its own, valid an hour.
async fn seed(store: &MemoryStore, client: &ClientId, scope: &ScopeSet, count: u64) {
    let now = UnixTime(1_800_000_000);
    for _ in 0..count {
        let grant = Grant {
            attached: latchkey_core::attached::Attached::new(),
            access_token_format: latchkey_core::access_jwt::AccessTokenFormat::Opaque,
            auth: None,
            cnf: None,
            client_id: client.clone(),
            subject: None,
            username: None,
            scope: scope.clone(),
            grant_type: GrantType::ClientCredentials,
            family: FamilyId::generate(&OsEntropy),
            family_issued_at: None,
            access_ttl: 3600,
            refresh_ttl: None,
            binding: None,
            audience: Default::default(),
            refresh_audience: None,
            actor: None,
        };
        let minted = mint(&grant, &OsEntropy, now);
        if let Err(err) = store.save_tokens(&minted.records, now).await {
            eprintln!("seeding failed: {err}");
            std::process::exit(1);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target: u64 = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(100_000);
    let first = 1_000.min(target);
    let store = MemoryStore::new();
    let client = ClientId::parse("bench")?;
    let scope = ScopeSet::parse("read")?;
    seed(&store, &client, &scope, first).await;
    let rss_first = rss_bytes();
    seed(&store, &client, &scope, target - first).await;
    let rss_target = rss_bytes();
    let grown = rss_target.saturating_sub(rss_first);
    println!(
        "{} live tokens: VmRSS {:.1} MiB at {first}, {:.1} MiB at {target}; {} bytes per token",
        store.token_count(),
        rss_first as f64 / 1048576.0,
        rss_target as f64 / 1048576.0,
        grown / (target - first).max(1)
    );
    Ok(())
}
