//! The server's persistent keys under `data_dir`: the UI session key and the key OAuth 1.0a
//! secrets are derived from, each created (readable by the owner only) on first start.

use crate::settings::Settings;
use latchkey_core::entropy::OsEntropy;
use latchkey_ui::SessionKey;

/// The key OAuth 1.0a consumer and token secrets are derived from: `<data_dir>/oauth1.key`,
/// created on first use. Several nodes (and the CLI) must share it; replacing it invalidates
/// every consumer secret and token.
pub fn oauth1_key(settings: &Settings) -> anyhow::Result<latchkey_oauth1::OAuth1Key> {
    let key = load_or_create_key(&settings.data_dir.join("oauth1.key"))?;
    Ok(latchkey_oauth1::OAuth1Key::new(*key.as_bytes()))
}

/// Reads the 32-byte session key, creating it (readable by the owner only) on first start.
pub(super) fn load_or_create_key(path: &std::path::Path) -> anyhow::Result<SessionKey> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes: [u8; 32] = bytes
                .try_into()
                .map_err(|_| anyhow::anyhow!("{} must hold exactly 32 bytes", path.display()))?;
            Ok(SessionKey::new(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                crate::store::create_private_dir(dir)?;
            }
            let key = SessionKey::generate(&OsEntropy);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut file) => {
                    std::io::Write::write_all(&mut file, key.as_bytes())?;
                    file.sync_all()?;
                    Ok(key)
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_key(path),
                Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", path.display())),
            }
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}
