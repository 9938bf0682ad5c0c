//! Checks on the workspace's own manifest that a build does not make: the Rust version it
//! claims is one its dependency tree builds with, and the licence it claims ships with it.
//!
//! `cargo metadata` runs offline first (in CI, `cargo fetch --locked` has filled the cache);
//! on a fresh clone without every platform's crates it falls back to reading the registry.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = workspace_root().join("Cargo.toml");
    let run = |offline: bool| {
        let mut cmd = Command::new(&cargo);
        cmd.args(["metadata", "--format-version", "1", "--locked"])
            .arg("--manifest-path")
            .arg(&manifest);
        if offline {
            cmd.arg("--offline");
        }
        cmd.output().expect("cargo metadata runs")
    };
    let mut out = run(true);
    if !out.status.success() {
        eprintln!(
            "cargo metadata --offline failed ({}); retrying with the registry",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        out = run(false);
    }
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON")
}

/// `1.94`, `1.94.0` → `(1, 94, 0)`.
fn version(text: &str) -> (u64, u64, u64) {
    let mut parts = text
        .split('.')
        .map(|p| p.parse::<u64>().expect("numeric rust-version"));
    let major = parts.next().expect("major");
    let minor = parts.next().unwrap_or(0);
    let patch = parts.next().unwrap_or(0);
    (major, minor, patch)
}

#[test]
fn issue_14_rust_version_covers_the_dependency_tree() {
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages");
    let members: Vec<&Value> = packages.iter().filter(|p| p["source"].is_null()).collect();
    assert!(!members.is_empty(), "no workspace member in cargo metadata");

    // Every member claims the one workspace version.
    let claimed = members[0]["rust_version"]
        .as_str()
        .expect("workspace members declare rust-version");
    for member in &members {
        assert_eq!(
            member["rust_version"].as_str(),
            Some(claimed),
            "{} declares another rust-version than the workspace",
            member["name"]
        );
    }

    // The highest rust-version anywhere in the locked dependency tree (every platform).
    let (needed, needed_by) = packages
        .iter()
        .filter(|p| !p["source"].is_null())
        .filter_map(|p| {
            let rv = p["rust_version"].as_str()?;
            Some((
                version(rv),
                format!("{} {} ({rv})", p["name"], p["version"]),
            ))
        })
        .max()
        .expect("some dependency declares rust-version");
    assert!(
        version(claimed) >= needed,
        "the workspace claims rust-version {claimed}, but {needed_by} needs a newer toolchain"
    );

    // The README states the same minimum.
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README");
    let stated = format!("Rust toolchain ({claimed} or newer)");
    assert!(
        readme.contains(&stated),
        "README.md should say \"{stated}\""
    );
}

#[test]
fn issue_14_the_claimed_licences_ship_and_no_placeholder_repository() {
    let meta = metadata();
    let root = workspace_root();
    for member in meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["source"].is_null())
    {
        assert_eq!(
            member["license"].as_str(),
            Some("MIT OR Apache-2.0"),
            "{}",
            member["name"]
        );
        if let Some(repository) = member["repository"].as_str() {
            assert!(
                !repository.contains("example.invalid"),
                "{} names a placeholder repository: {repository}",
                member["name"]
            );
        }
    }
    let mit = std::fs::read_to_string(root.join("LICENSE-MIT")).expect("LICENSE-MIT");
    assert!(mit.contains("Permission is hereby granted, free of charge"));
    let apache = std::fs::read_to_string(root.join("LICENSE-APACHE")).expect("LICENSE-APACHE");
    assert!(apache.contains("Apache License") && apache.contains("Version 2.0, January 2004"));
    assert!(apache.contains("END OF TERMS AND CONDITIONS"));
    for doc in ["SECURITY.md", "CHANGELOG.md"] {
        assert!(root.join(doc).is_file(), "{doc} is missing");
    }
}
