//! The HTTP application: the core's endpoints through the axum adapter, plus `/healthz` and
//! the browser client `/js/latchkey.js`, wrapped in request ids, tracing spans that never
//! record credentials, and panic capture; CORS on the endpoints browsers call, when configured.
//!
//! One module per concern: `state` builds what the server runs from the settings, `keys`
//! keeps its persistent keys, `routes` assembles the router and `edge` the layers around
//! it (with `cors` and `middleware`), `resource_metadata` publishes the RFC 9728 documents, `handlers` holds the server's own endpoints, and `run` serves it all.

mod cors;
mod edge;
mod handlers;
mod keys;
mod middleware;
mod resource_metadata;
mod routes;
mod run;
mod state;

pub use edge::App;
pub use handlers::{JS_CLIENT, JS_CLIENT_PATH};
pub use keys::oauth1_key;
pub use resource_metadata::{MAX_TTL as MAX_RESOURCE_METADATA_TTL, PublishedResources};
pub use routes::{Surroundings, app, app_with_cors, app_with_oauth1, service_with_oauth1};
pub use run::run;
pub use state::{
    AppOAuth1, AppProvider, AppUi, build_oauth1, build_provider, build_provider_with_sink,
    build_ui, open_counters,
};
