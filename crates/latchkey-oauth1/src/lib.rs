//! # latchkey-oauth1
//!
//! OAuth 1.0a (RFC 5849) for Latchkey, for APIs that still speak it and teams migrating off
//! it, on the same server, stores, consumers and login pages as OAuth 2.0.
//!
//! * [`signature`]: pure signing and verification, shared by the client crate (which signs)
//!   and the provider (which verifies).
//! * [`provider::OAuth1Provider`]: the temporary-credentials, authorization and
//!   token-credentials endpoints, signed resource requests and revocation.
//! * [`store::OAuth1Store`]: consumers, request and access tokens, and nonces;
//!   [`memory::MemoryOAuth1Store`] is the reference implementation.

pub mod error;
pub mod memory;
pub mod provider;
pub mod request;
pub mod signature;
pub mod store;

pub use error::{OAuth1Error, Problem};
pub use provider::{
    AuthorizeOutcome, DEFAULT_ACCESS_TOKEN_TTL, OAuth1Config, OAuth1Key, OAuth1Provider,
};
pub use store::OAuth1Store;
