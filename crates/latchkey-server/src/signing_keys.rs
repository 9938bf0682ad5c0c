//! The server's signing keys: the key-encryption key (from `keys.kek` /
//! `LATCHKEY_KEYS__KEK`, or `<data_dir>/kek`), the rotation policy from `[keys]`, the keys
//! themselves in the store (created on first start, so every node shares them), and a
//! background task that applies the rotation plan every minute and picks up other nodes'
//! changes.

use crate::app::AppProvider;
use crate::settings::Settings;
use crate::store::AnyStore;
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::endpoint::jwks::JWKS_MAX_AGE;
use latchkey_core::entropy::OsEntropy;
use latchkey_core::jose::manage::maintain;
use latchkey_core::jose::rotation::RotationPolicy;
use latchkey_core::jose::{Kek, KeySet, SigningKey};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often each node applies the rotation plan and reloads the keys.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// The key-encryption key: `keys.kek` (base64) when set, else `<data_dir>/kek`, created with
/// mode 0600 on first start.
pub fn load_kek(settings: &Settings) -> anyhow::Result<Kek> {
    if let Some(text) = &settings.keys.kek {
        return Kek::from_base64(text).map_err(|e| anyhow::anyhow!("keys.kek: {e}"));
    }
    load_or_create_kek(&settings.data_dir.join("kek"))
}

/// The key-encryption key of the settings (`keys.kek`) or of `<data_dir>/kek`, if there is
/// one; unlike [`load_kek`], creates nothing: `latchkey import` checks a file against it
/// before anything is written.
pub fn existing_kek(settings: &Settings) -> anyhow::Result<Option<Kek>> {
    if settings.keys.kek.is_some() {
        return load_kek(settings).map(Some);
    }
    let path = settings.data_dir.join("kek");
    match std::fs::read_to_string(&path) {
        Ok(text) => Kek::from_base64(&text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

fn load_or_create_kek(path: &Path) -> anyhow::Result<Kek> {
    match std::fs::read_to_string(path) {
        Ok(text) => Kek::from_base64(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                crate::store::create_private_dir(dir)?;
            }
            let kek = Kek::generate(&OsEntropy);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            match options.open(path) {
                Ok(mut file) => {
                    std::io::Write::write_all(&mut file, kek.to_base64().as_bytes())?;
                    file.sync_all()?;
                    tracing::info!(path = %path.display(), "created the key-encryption key");
                    Ok(kek)
                }
                // Another process created it first: use theirs.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create_kek(path),
                Err(e) => Err(anyhow::anyhow!("cannot create {}: {e}", path.display())),
            }
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}

/// The rotation policy of `[keys]`. A retired key stays published for `keys.keep_retired`, or
/// the longest access-token lifetime of `[tokens]` when that is longer.
pub fn policy(settings: &Settings) -> anyhow::Result<RotationPolicy> {
    let keys = &settings.keys;
    if keys.algorithms.is_empty() {
        anyhow::bail!("keys.algorithms: name at least one of ES256, RS256, EdDSA");
    }
    // A key must be in every cached JWKS before it signs.
    if keys.publish_ahead < 2 * JWKS_MAX_AGE {
        anyhow::bail!(
            "keys.publish_ahead must be at least {} seconds (twice the JWKS cache lifetime)",
            2 * JWKS_MAX_AGE
        );
    }
    if keys.rotation_period <= keys.publish_ahead {
        anyhow::bail!("keys.rotation_period must be longer than keys.publish_ahead");
    }
    let longest_access = settings
        .tokens
        .per_grant
        .values()
        .filter_map(|g| g.access_ttl)
        .chain([settings.tokens.access_ttl])
        .max()
        .unwrap_or(0);
    Ok(RotationPolicy {
        algs: keys.algorithms.clone(),
        period: keys.rotation_period,
        publish_ahead: keys.publish_ahead,
        max_token_lifetime: keys.keep_retired.max(longest_access),
    })
}

/// The signing keys of a running server: applies the plan, keeps the provider's signer in
/// step with the store.
#[derive(Clone)]
pub struct SigningKeys {
    store: AnyStore,
    kek: Arc<Kek>,
    policy: RotationPolicy,
    provider: AppProvider,
    clock: Arc<dyn Clock>,
    /// The records the current signer was built from.
    current: Arc<std::sync::Mutex<Vec<SigningKey>>>,
}

impl SigningKeys {
    /// Creates the first keys if the store has none, applies what is due, and gives `provider`
    /// a signer over the stored keys. Fails when the stored keys do not open with the
    /// key-encryption key: a node with a different KEK must not start.
    pub async fn install(
        settings: &Settings,
        store: AnyStore,
        provider: AppProvider,
    ) -> anyhow::Result<Self> {
        let keys = Self {
            store,
            kek: Arc::new(load_kek(settings)?),
            policy: policy(settings)?,
            provider,
            clock: Arc::new(SystemClock),
            current: Arc::default(),
        };
        keys.refresh().await.map_err(|e| {
            anyhow::anyhow!(
                "signing keys: {e} (every node sharing a store needs the same key-encryption \
                 key: keys.kek / LATCHKEY_KEYS__KEK, or the data directory's kek file)"
            )
        })?;
        Ok(keys)
    }

    /// Applies the rotation plan and, when the stored keys changed, swaps the provider's
    /// signer.
    pub async fn refresh(&self) -> anyhow::Result<()> {
        let records = maintain(&self.store, &self.kek, &self.policy, self.clock.now()).await?;
        let unchanged = self
            .current
            .lock()
            .map(|current| *current == records)
            .unwrap_or(false);
        if unchanged {
            return Ok(());
        }
        let default_alg = self
            .policy
            .algs
            .first()
            .copied()
            .unwrap_or(latchkey_core::jose::SigningAlg::Es256);
        let set = KeySet::from_records(&records, &self.kek, default_alg, Arc::clone(&self.clock))?;
        tracing::info!(keys = ?set, "signing keys loaded");
        self.provider.set_signer(Arc::new(set));
        if let Ok(mut current) = self.current.lock() {
            *current = records;
        }
        Ok(())
    }

    /// Refreshes every [`REFRESH_INTERVAL`] until `stopped` turns true; a failed refresh is
    /// logged and the current signer kept.
    pub fn spawn(self, mut stopped: tokio::sync::watch::Receiver<bool>) {
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(REFRESH_INTERVAL) => {}
                    _ = stopped.wait_for(|stop| *stop) => return,
                }
                if let Err(err) = self.refresh().await {
                    tracing::warn!(error = %err, "signing keys not refreshed; keeping the current ones");
                }
            }
        });
    }
}
