//! `latchkey export [FILE|-]` and `latchkey import FILE`: the command-line side of
//! [`crate::export`].

use crate::export;
use crate::settings::Settings;
use crate::store::AnyStore;
use latchkey_core::clock::{Clock, SystemClock};
use std::io::Write as _;
use std::path::Path;

/// Writes the store's records to `file` (`-` or none: stdout). A file is created readable by
/// its owner only and never overwritten: it holds password hashes and secret digests.
pub async fn export_to(file: Option<&Path>, settings: &Settings) -> anyhow::Result<()> {
    let store = AnyStore::from_settings(settings).await?;
    let exported = export::export(&store, SystemClock.now()).await;
    store.close().await;
    let exported = exported?;
    let mut json = serde_json::to_string_pretty(&exported)?;
    json.push('\n');
    match file {
        None => std::io::stdout().write_all(json.as_bytes())?,
        Some(path) if path == Path::new("-") => std::io::stdout().write_all(json.as_bytes())?,
        Some(path) => {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut out = options.open(path).map_err(|e| {
                anyhow::anyhow!(
                    "cannot create {}: {e} (an existing file is never overwritten)",
                    path.display()
                )
            })?;
            out.write_all(json.as_bytes())?;
            out.sync_all()?;
        }
    }
    eprintln!(
        "exported {} client(s), {} user(s), {} consent(s), {} signing key(s), {} OAuth 1.0a consumer(s), \
         {} registration(s), {} initial access token(s), {} stored resource(s); tokens and sessions are not exported",
        exported.clients.len(),
        exported.users.len(),
        exported.consents.len(),
        exported.signing_keys.len(),
        exported.oauth1_consumers.len(),
        exported.client_registrations.len(),
        exported.initial_access_tokens.len(),
        exported.resources.len(),
    );
    Ok(())
}

/// Imports `file` (`-`: stdin) into the store; `dry_run` checks and counts without writing.
pub async fn import_from(
    file: &Path,
    dry_run: bool,
    json: bool,
    settings: &Settings,
) -> anyhow::Result<()> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?
    };
    let parsed = export::parse(&text)?;
    // Every check that needs no store comes first: a refusal writes nothing, not even a
    // key-encryption key or the store's files in a fresh data directory.
    let kek = crate::signing_keys::existing_kek(settings)?;
    let checked = export::Checked::of(&parsed, kek.as_ref())?;
    let configured = crate::settings::resources::registry(&settings.resources)?;
    let store = AnyStore::from_settings(settings).await?;
    let report = export::import(&store, checked, &configured, dry_run).await;
    store.close().await;
    let report = report?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        if report.dry_run {
            println!("Dry run: nothing written. The import would give:");
        } else {
            println!("Imported:");
        }
        print!("{}", report.counts.summary());
    }
    if !report.dry_run {
        let written: usize = report.counts.new.values().sum();
        tracing::info!(
            target: "latchkey::audit",
            event = "admin_change",
            actor = "cli",
            action = "store_imported",
            target = %file.display(),
            records = written,
        );
    }
    Ok(())
}
