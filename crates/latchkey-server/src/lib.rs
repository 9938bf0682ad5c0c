//! # latchkey-server
//!
//! The `latchkey` binary as a library: settings, store selection, the HTTP application and
//! [`run`], which serves on a listener until a shutdown future resolves (the shape of
//! mini-redis's `run(listener, shutdown)`), so tests start the real server on port 0.

pub mod access_log;
pub mod admin;
pub mod admin_api;
pub mod app;
pub mod audit;
pub mod backchannel;
pub mod backup;
pub mod cli;
pub mod client_documents;
pub mod export;
pub mod jwks_fetch;
pub mod logging;
pub mod metrics;
pub mod mtls;
pub mod outbound;
pub mod process_metrics;
pub mod registration;
pub mod serve;
pub mod settings;
pub mod signing_keys;
pub mod store;
pub mod telemetry;
pub mod tls;

pub use app::{AppProvider, AppUi, app, build_provider, build_ui, run};
pub use settings::Settings;
