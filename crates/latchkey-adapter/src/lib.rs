//! # latchkey-adapter
//!
//! What the web-framework adapters (`latchkey-axum`, `latchkey-actix`) share, written once:
//!
//! * [`TokioBlocking`]: the core's [`Blocking`](latchkey_core::user::Blocking) on tokio's
//!   blocking pool. It lives here, not in the core, because the core has no async runtime and
//!   does no I/O of its own; and not in one adapter, because an actix application should not
//!   build axum to get it. Both adapters re-export it.
//! * [`ResourceGuard`] and [`OAuth1Guard`]: a core [`Guard`](latchkey_core::resource::Guard)
//!   with its type erased, optionally accepting OAuth 1.0a signed requests too, over the core's
//!   own [`HttpRequest`](latchkey_core::http::HttpRequest) and
//!   [`HttpResponse`](latchkey_core::http::HttpResponse). Each adapter's `BearerGuard` wraps
//!   one and adds only its framework's extraction and reply.
//!
//! Embedders use the adapters; this crate is what they are built from.

mod blocking;
mod guard;

pub use blocking::TokioBlocking;
pub use guard::{OAuth1Guard, ResourceGuard};
