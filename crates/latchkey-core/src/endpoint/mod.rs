//! The endpoints, one module each. Each takes an [`crate::http::HttpRequest`] and returns an
//! [`crate::http::HttpResponse`]; none panics on any input.

pub mod authorize;
pub mod introspect;
pub mod metadata;
pub mod revoke;
pub mod token;
