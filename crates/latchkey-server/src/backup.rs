//! `latchkey backup DIR` and `latchkey restore DIR`: a consistent copy of the embedded store
//! and of the key files beside it, taken while the server runs, and its return into a new data
//! directory.
//!
//! A backup directory holds the database (`latchkey.db`, SQLite's `VACUUM INTO` of one
//! snapshot), the key files the store needs to be of use (`kek`, which encrypts the signing
//! keys; `session.key`, which signs login cookies; `oauth1.key`, from which OAuth 1.0a secrets
//! are derived: each when it exists) and a manifest with every file's SHA-256, so a damaged or
//! altered copy is refused at restore instead of half-working. Everything in it is secret:
//! the directory is created readable by its owner only.
//!
//! With the token log (the embedded default), its segments are copied too, as
//! `tokens-NNNNNNNNNN.log` ([`latchkey_tokenlog::snapshot`]: each cut to its whole frames, so
//! every token answered before the backup began is in it), and put back in `<data_dir>/tokens`.
//!
//! Only the embedded store is covered: PostgreSQL and MySQL have their own tools, and tokens
//! kept in Redis or memcached are not in the copy.

use crate::settings::Settings;
use crate::store::create_private_dir;
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::secret::Digest;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The manifest's file name in a backup directory.
pub const MANIFEST: &str = "latchkey-backup.json";

/// The database's file name in a backup directory.
const DATABASE: &str = "latchkey.db";

/// The prefix of the token log's segments in a backup directory.
const TOKENS_PREFIX: &str = "tokens-";

/// The manifest format this build writes and reads.
const FORMAT: u32 = 1;

/// What a backup directory holds: written last, so a directory without it is not a backup.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format (1).
    pub format: u32,
    /// When the copy was taken, seconds since the epoch.
    pub created_at: i64,
    /// The Latchkey version that took it.
    pub latchkey_version: String,
    /// The newest schema migration the copied database carries.
    pub schema_version: i64,
    /// Every other file of the directory with its SHA-256 (lowercase hex).
    pub files: BTreeMap<String, String>,
    /// Whether the key-encryption key is in the copy: `false` when it comes from the
    /// `keys.kek` setting, which the operator keeps.
    pub kek_included: bool,
}

/// The embedded database the settings name, or why there is none to copy.
fn embedded_database(settings: &Settings) -> anyhow::Result<PathBuf> {
    match settings.store.url.as_deref() {
        None => Ok(settings.data_dir.join(DATABASE)),
        Some(url) => match url.strip_prefix("sqlite://") {
            Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
            _ => anyhow::bail!(
                "latchkey backup copies the embedded SQLite store; back up {} with the \
                 database's own tools (pg_dump, mariadb-dump) and keep the key files of the \
                 data directory beside it",
                crate::settings::redact_urls_in(url)
            ),
        },
    }
}

/// The key files that belong with the store, as (name in the backup, place the server reads
/// it from). The KEK is left out when the settings carry it.
fn key_files(settings: &Settings) -> Vec<(&'static str, PathBuf)> {
    let mut files = Vec::new();
    if settings.keys.kek.is_none() {
        files.push(("kek", settings.data_dir.join("kek")));
    }
    files.push((
        "session.key",
        settings
            .ui
            .session_key_file
            .clone()
            .unwrap_or_else(|| settings.data_dir.join("session.key")),
    ));
    files.push(("oauth1.key", settings.data_dir.join("oauth1.key")));
    files
}

fn sha256_of(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(Digest::of(&bytes).to_hex())
}

/// Writes `bytes` to the new file `path`, readable by its owner only, and syncs it.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    Ok(())
}

/// Syncs a directory, so the files just created in it survive a crash.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// Takes a backup of the store the settings name into `dir`, which must not exist or be
/// empty. The server may run meanwhile.
pub fn backup(settings: &Settings, dir: &Path) -> anyhow::Result<Manifest> {
    let database = embedded_database(settings)?;
    if !database.exists() {
        anyhow::bail!("there is no store at {}", database.display());
    }
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        anyhow::bail!(
            "{} is not empty; a backup goes into a new directory",
            dir.display()
        );
    }
    create_private_dir(dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    let info = latchkey_sql::backup::snapshot(&database, &dir.join(DATABASE))?;
    let mut files = BTreeMap::new();
    files.insert(DATABASE.to_owned(), sha256_of(&dir.join(DATABASE))?);
    for (name, source) in key_files(settings) {
        match std::fs::read(&source) {
            Ok(bytes) => {
                write_private(&dir.join(name), &bytes)?;
                files.insert(name.to_owned(), Digest::of(&bytes).to_hex());
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("cannot read {}: {e}", source.display()),
        }
    }
    if let crate::store::TokenLayout::Log(tokens) = crate::store::token_layout(
        settings.store.url.as_deref(),
        settings.store.tokens_url.as_deref(),
        &settings.data_dir,
    ) && tokens.is_dir()
    {
        for (seg, bytes) in latchkey_tokenlog::snapshot(&tokens)? {
            let name = format!("{TOKENS_PREFIX}{}", latchkey_tokenlog::segment_name(seg));
            write_private(&dir.join(&name), &bytes)?;
            files.insert(name, Digest::of(&bytes).to_hex());
        }
    }
    let manifest = Manifest {
        format: FORMAT,
        created_at: SystemClock.now().0,
        latchkey_version: env!("CARGO_PKG_VERSION").to_owned(),
        schema_version: info.schema_version,
        kek_included: files.contains_key("kek"),
        files,
    };
    write_private(&dir.join(MANIFEST), &serde_json::to_vec_pretty(&manifest)?)?;
    sync_dir(dir);
    Ok(manifest)
}

/// Reads and checks the backup in `dir`: its manifest, every file's digest, and the
/// database's integrity.
pub fn verify(dir: &Path) -> anyhow::Result<Manifest> {
    let text = std::fs::read(dir.join(MANIFEST))
        .map_err(|e| anyhow::anyhow!("{} is not a Latchkey backup: {e}", dir.display()))?;
    let manifest: Manifest = serde_json::from_slice(&text)
        .map_err(|e| anyhow::anyhow!("{}: unreadable manifest: {e}", dir.display()))?;
    if manifest.format != FORMAT {
        anyhow::bail!(
            "{}: backup format {} is not {FORMAT}; use the Latchkey version that wrote it",
            dir.display(),
            manifest.format
        );
    }
    if !manifest.files.contains_key(DATABASE) {
        anyhow::bail!("{}: the backup has no database", dir.display());
    }
    for (name, expected) in &manifest.files {
        // Names come from the manifest: only the plain file names a backup writes.
        if name.contains(['/', '\\']) || name.starts_with('.') {
            anyhow::bail!(
                "{}: the manifest names a file outside the backup",
                dir.display()
            );
        }
        let actual = sha256_of(&dir.join(name))?;
        // The digests are not secret (the manifest holds them in clear): a plain comparison.
        if actual != *expected {
            anyhow::bail!(
                "{}: {name} is damaged or was changed since the backup",
                dir.display()
            );
        }
    }
    let info = latchkey_sql::backup::check(&dir.join(DATABASE))?;
    if info.schema_version != manifest.schema_version {
        anyhow::bail!(
            "{}: the database does not match its manifest",
            dir.display()
        );
    }
    Ok(manifest)
}

/// Puts the backup in `dir` where the settings' store and key files live, which must hold no
/// store yet; the caller then opens the store (migrating it to this version's schema).
pub fn restore(settings: &Settings, dir: &Path) -> anyhow::Result<Manifest> {
    let manifest = verify(dir)?;
    let database = embedded_database(settings)?;
    for taken in [
        database.clone(),
        PathBuf::from(format!("{}-wal", database.display())),
    ] {
        if taken.exists() {
            anyhow::bail!(
                "{} exists: restore into a new data directory (--data-dir), then point the \
                 server at it",
                taken.display()
            );
        }
    }
    // Key files first, each only where none is, or the same one already is: a different key
    // would make the restored store's keys and sessions useless.
    let mut placed = Vec::new();
    for (name, target) in key_files(settings) {
        if !manifest.files.contains_key(name) {
            continue;
        }
        let bytes = std::fs::read(dir.join(name))?;
        match std::fs::read(&target) {
            Ok(existing) if existing == bytes => continue,
            Ok(_) => anyhow::bail!(
                "{} exists and differs from the backup's {name}; move it away first",
                target.display()
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => anyhow::bail!("cannot read {}: {e}", target.display()),
        }
        placed.push((bytes, target));
    }
    if let Some(parent) = database.parent() {
        create_private_dir(parent)?;
    }
    for (bytes, target) in &placed {
        if let Some(parent) = target.parent() {
            create_private_dir(parent)?;
        }
        write_private(target, bytes)?;
    }
    // The token log before the database: a store that opens finds its tokens in place.
    let tokens = settings.data_dir.join("tokens");
    for name in manifest.files.keys() {
        if let Some(segment) = name.strip_prefix(TOKENS_PREFIX) {
            create_private_dir(&tokens)?;
            write_private(&tokens.join(segment), &std::fs::read(dir.join(name))?)?;
        }
    }
    if tokens.is_dir() {
        sync_dir(&tokens);
    }
    // The database last, through a temporary name: a store exists only once it is whole.
    let partial = database.with_extension("db.restoring");
    let _ = std::fs::remove_file(&partial);
    write_private(&partial, &std::fs::read(dir.join(DATABASE))?)?;
    std::fs::rename(&partial, &database)?;
    if let Some(parent) = database.parent() {
        sync_dir(parent);
    }
    Ok(manifest)
}
