//! # latchkey-oauth1
//!
//! OAuth 1.0a (RFC 5849) for Latchkey. The [`signature`] module is shared by both sides: the
//! client crate signs requests with it, and the provider verifies them.

pub mod signature;
