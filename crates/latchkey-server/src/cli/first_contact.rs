//! What a new operator meets first: shell completions and a man page generated from the
//! clap definition, the environment and settings-file help, and the rule that a mistyped
//! `--data-dir` or `store.url` does not quietly create an empty store somewhere unexpected.

use crate::settings::Settings;
use clap::CommandFactory;
use std::path::{Path, PathBuf};

/// Shown after `--help`: where settings come from.
pub const ENVIRONMENT_HELP: &str = "\
Settings (later sources override earlier ones):
  1. built-in defaults: the embedded store in ./latchkey-data, listening on 127.0.0.1:8080
  2. a TOML settings file: --config FILE, or ./latchkey.toml when it exists
  3. environment variables LATCHKEY_<KEY>, LATCHKEY_<SECTION>__<KEY> for nested keys
  4. command-line flags (--data-dir, --listen)

Common environment variables:
  LATCHKEY_DATA_DIR          directory of the embedded store and the key files
  LATCHKEY_LISTEN            address to listen on
  LATCHKEY_ISSUER            the issuer URL
  LATCHKEY_STORE__URL        postgres://…, mysql://…, sqlite:///path or memory:
  LATCHKEY_STORE__TOKENS_URL redis://… or memcache://… for tokens and codes
  LATCHKEY_KEYS__KEK         the key-encryption key of the signing keys (base64)
  LATCHKEY_ADMIN__TOKEN      the admin API's bearer token
  LATCHKEY_LOG__FILTER       log filter while serving (RUST_LOG overrides it)
  LATCHKEY_LOG__FORMAT       json, text or auto

`latchkey config show` prints the effective settings, secrets redacted.
A store that does not exist yet is created only in the default data directory, in an existing
directory, or with --create.";

/// Where the durable store is, as the operator should read it at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// The embedded SQLite file in the data directory (`store.url` unset).
    Embedded(PathBuf),
    /// A SQLite file named by `store.url`.
    SqliteFile(PathBuf),
    /// A database server, with the URL's password hidden.
    Server(String),
    /// Process memory.
    Memory,
}

impl Location {
    /// The store the settings name.
    pub fn of(settings: &Settings) -> Self {
        match settings.store.url.as_deref() {
            None => Self::Embedded(settings.data_dir.join("latchkey.db")),
            Some("memory:") => Self::Memory,
            Some(url) => match url.strip_prefix("sqlite://") {
                Some(path) if !path.is_empty() => Self::SqliteFile(PathBuf::from(path)),
                _ => Self::Server(crate::settings::redact_urls_in(url)),
            },
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        match self {
            Self::Embedded(path) => write!(f, "embedded SQLite {}", absolute(path).display()),
            Self::SqliteFile(path) => write!(f, "SQLite {}", absolute(path).display()),
            Self::Server(url) => write!(f, "{url}"),
            Self::Memory => write!(f, "memory (lost on exit)"),
        }
    }
}

/// What [`check_store`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreCheck {
    /// The store exists (or lives on a database server, which exists or fails to connect).
    Exists,
    /// A new store will be created: the first start in the default data directory, a new
    /// store in a directory that exists, or `--create`. The message says where.
    Creating(String),
}

/// Refuses to start on a store that does not exist yet where the operator may have made a
/// typo: a data directory that does not exist (unless it is the default one, on first start)
/// or a SQLite file named by `store.url` that does not exist. `--create` allows both. An
/// existing empty data directory is accepted, since systemd's `StateDirectory` and container
/// volumes create the directory before the first start.
pub fn check_store(settings: &Settings, create: bool) -> anyhow::Result<StoreCheck> {
    let default_dir = settings.data_dir == Settings::default().data_dir;
    let location = Location::of(settings);
    match &location {
        Location::Embedded(db) => {
            if db.exists() {
                return Ok(StoreCheck::Exists);
            }
            let dir = &settings.data_dir;
            if dir.is_dir() || create || default_dir {
                return Ok(StoreCheck::Creating(format!(
                    "first start: creating a new store, {location}"
                )));
            }
            anyhow::bail!(
                "the data directory {} does not exist; check --data-dir / LATCHKEY_DATA_DIR / \
                 data_dir, or pass --create to make a new store there",
                std::path::absolute(dir)
                    .unwrap_or_else(|_| dir.clone())
                    .display()
            )
        }
        Location::SqliteFile(path) => {
            if path.exists() {
                return Ok(StoreCheck::Exists);
            }
            if create {
                return Ok(StoreCheck::Creating(format!(
                    "creating a new store, {location}"
                )));
            }
            anyhow::bail!(
                "store.url names {location}, which does not exist; check store.url / \
                 LATCHKEY_STORE__URL, or pass --create to make a new store there"
            )
        }
        Location::Server(_) | Location::Memory => {
            // The data directory still holds the key files (kek, session.key, oauth1.key): a
            // missing one means new keys, which would not open what the store holds.
            let dir = &settings.data_dir;
            if dir.is_dir() || create || default_dir {
                Ok(StoreCheck::Exists)
            } else {
                anyhow::bail!(
                    "the data directory {} (the key files) does not exist; check --data-dir / \
                     LATCHKEY_DATA_DIR / data_dir, or pass --create",
                    std::path::absolute(dir)
                        .unwrap_or_else(|_| dir.clone())
                        .display()
                )
            }
        }
    }
}

/// `latchkey completions SHELL`: the completion script for `shell`, on stdout.
pub fn completions(shell: clap_complete::Shell) {
    let mut cmd = super::Cli::command();
    clap_complete::generate(shell, &mut cmd, "latchkey", &mut std::io::stdout());
}

/// `latchkey man`: the man page on stdout, or with `dir` one page per command
/// (`latchkey.1`, `latchkey-serve.1`, …) written there.
pub fn man(dir: Option<&Path>) -> anyhow::Result<()> {
    let cmd = super::Cli::command();
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            clap_mangen::generate_to(cmd, dir)?;
            eprintln!("wrote the man pages to {}", dir.display());
        }
        None => clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(dir: &Path, url: Option<String>) -> Settings {
        let mut s = Settings {
            data_dir: dir.to_path_buf(),
            ..Settings::default()
        };
        s.store.url = url;
        s
    }

    #[test]
    fn a_missing_data_dir_is_refused_without_create() {
        let tmp = tempfile::tempdir().expect("tmp");
        let typo = tmp.path().join("latchky-data");
        let err = check_store(&settings(&typo, None), false).expect_err("refused");
        assert!(err.to_string().contains("--create"), "{err}");
        assert!(matches!(
            check_store(&settings(&typo, None), true),
            Ok(StoreCheck::Creating(_))
        ));
    }

    #[test]
    fn an_existing_empty_dir_creates_and_an_existing_store_is_used() {
        let tmp = tempfile::tempdir().expect("tmp");
        let s = settings(tmp.path(), None);
        assert!(matches!(
            check_store(&s, false),
            Ok(StoreCheck::Creating(_))
        ));
        std::fs::write(tmp.path().join("latchkey.db"), b"").expect("write");
        assert_eq!(check_store(&s, false).expect("ok"), StoreCheck::Exists);
    }

    #[test]
    fn a_missing_sqlite_url_file_is_refused_without_create() {
        let tmp = tempfile::tempdir().expect("tmp");
        let url = format!("sqlite://{}/latchkye.db", tmp.path().display());
        let s = settings(tmp.path(), Some(url));
        let err = check_store(&s, false).expect_err("refused");
        assert!(err.to_string().contains("store.url"), "{err}");
        assert!(matches!(check_store(&s, true), Ok(StoreCheck::Creating(_))));
    }

    #[test]
    fn a_server_url_is_shown_without_its_password() {
        let s = settings(
            Path::new("."),
            Some("postgres://app:hunter2@db.example/latchkey".into()),
        );
        let shown = Location::of(&s).to_string();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db.example"), "{shown}");
    }

    #[test]
    fn every_variable_the_help_names_is_a_setting() {
        let defaults = serde_json::to_value(Settings::default()).expect("settings serialize");
        let mut named = 0;
        for word in ENVIRONMENT_HELP.split_whitespace() {
            let Some(key) = word.strip_prefix("LATCHKEY_") else {
                continue;
            };
            if key.starts_with('<') {
                continue;
            }
            let mut at = &defaults;
            for part in key.to_ascii_lowercase().split("__") {
                at = at
                    .get(part)
                    .unwrap_or_else(|| panic!("LATCHKEY_{key} names no setting"));
            }
            named += 1;
        }
        assert!(named >= 8, "the help names the common variables");
    }

    #[test]
    fn help_lists_the_environment_and_the_settings_file() {
        let help = super::super::Cli::command().render_long_help().to_string();
        assert!(help.contains("LATCHKEY_STORE__URL"), "{help}");
        assert!(help.contains("latchkey.toml"), "{help}");
    }
}
