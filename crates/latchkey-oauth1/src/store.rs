//! What the OAuth 1.0a provider persists, and the store trait every backend implements.
//!
//! The records and the trait live in the core ([`latchkey_core::store::oauth1`]), beside the
//! other store traits, so that store backends depend on the core only; this module keeps the
//! paths the provider and embedders use.

pub use latchkey_core::store::oauth1::{
    AccessToken, Consumer, OAuth1Store, RequestToken, WithOAuth1, new_secret_salt,
};
