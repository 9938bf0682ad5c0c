//! The registry of remote apps by name (Flask-OAuthlib's `OAuth` object): configured in
//! code, from a preset, or from settings, all sharing one HTTP client, clock and source of
//! randomness.

use crate::app::RemoteApp;
use crate::config::{AppConfig, AppSettings};
use crate::error::ClientError;
use crate::http::HttpClient;
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::entropy::{Entropy, OsEntropy};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Remote apps by name.
pub struct OAuth<H> {
    http: Arc<H>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    apps: BTreeMap<String, Arc<RemoteApp<H>>>,
    #[cfg(feature = "oauth1")]
    oauth1_apps: BTreeMap<String, Arc<crate::oauth1::OAuth1App<H>>>,
}

impl<H> std::fmt::Debug for OAuth<H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("apps", &self.apps.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

#[cfg(feature = "reqwest")]
impl OAuth<crate::http::ReqwestClient> {
    /// An empty registry on reqwest, the system clock and the OS's randomness.
    pub fn new() -> Self {
        Self::with_http(crate::http::ReqwestClient::new())
    }
}

#[cfg(feature = "reqwest")]
impl Default for OAuth<crate::http::ReqwestClient> {
    fn default() -> Self {
        Self::new()
    }
}

impl<H: HttpClient> OAuth<H> {
    /// An empty registry on your own HTTP client.
    pub fn with_http(http: H) -> Self {
        Self {
            http: Arc::new(http),
            clock: Arc::new(SystemClock),
            entropy: Arc::new(OsEntropy),
            apps: BTreeMap::new(),
            #[cfg(feature = "oauth1")]
            oauth1_apps: BTreeMap::new(),
        }
    }

    /// Uses `clock` for expiry decisions of the apps registered after this call.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `entropy` for `state`, PKCE and nonces of the apps registered after this call.
    pub fn with_entropy(mut self, entropy: Arc<dyn Entropy>) -> Self {
        self.entropy = entropy;
        self
    }

    /// Registers `config` under `name`, replacing any app of that name.
    pub fn register(
        &mut self,
        name: &str,
        config: AppConfig,
    ) -> Result<Arc<RemoteApp<H>>, ClientError> {
        let app = Arc::new(RemoteApp::new(
            name,
            config,
            self.http.clone(),
            self.clock.clone(),
            self.entropy.clone(),
        )?);
        self.apps.insert(name.to_owned(), app.clone());
        Ok(app)
    }

    /// Registers the [preset](crate::presets) `preset` under `name` with these credentials
    /// (`github.register_to(oauth, name=...)` in Flask-OAuthlib).
    pub fn register_preset(
        &mut self,
        name: &str,
        preset: &str,
        client_id: &str,
        client_secret: Option<&str>,
    ) -> Result<Arc<RemoteApp<H>>, ClientError> {
        let preset = crate::presets::find(preset)
            .ok_or_else(|| ClientError::Config(format!("unknown preset {preset:?}")))?;
        self.register(name, preset.config(client_id, client_secret)?)
    }

    /// Registers every app of a settings table (`[oauth.github]`, `[oauth.corp]` ...).
    pub fn register_settings(
        &mut self,
        settings: BTreeMap<String, AppSettings>,
    ) -> Result<(), ClientError> {
        for (name, app) in settings {
            let config = app
                .into_config()
                .map_err(|e| ClientError::Config(format!("{name}: {e}")))?;
            self.register(&name, config)?;
        }
        Ok(())
    }

    /// The app registered as `name`.
    pub fn app(&self, name: &str) -> Result<Arc<RemoteApp<H>>, ClientError> {
        self.apps
            .get(name)
            .cloned()
            .ok_or_else(|| ClientError::UnknownApp(name.to_owned()))
    }

    /// The registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.apps.keys().map(String::as_str)
    }

    /// Registers an OAuth 1.0a provider under `name` (its own namespace).
    #[cfg(feature = "oauth1")]
    pub fn register_oauth1(
        &mut self,
        name: &str,
        config: crate::oauth1::OAuth1Config,
    ) -> Result<Arc<crate::oauth1::OAuth1App<H>>, ClientError> {
        let app = Arc::new(crate::oauth1::OAuth1App::new(
            config,
            self.http.clone(),
            self.clock.clone(),
            self.entropy.clone(),
        )?);
        self.oauth1_apps.insert(name.to_owned(), app.clone());
        Ok(app)
    }

    /// The OAuth 1.0a provider registered as `name`.
    #[cfg(feature = "oauth1")]
    pub fn oauth1_app(&self, name: &str) -> Result<Arc<crate::oauth1::OAuth1App<H>>, ClientError> {
        self.oauth1_apps
            .get(name)
            .cloned()
            .ok_or_else(|| ClientError::UnknownApp(name.to_owned()))
    }
}
