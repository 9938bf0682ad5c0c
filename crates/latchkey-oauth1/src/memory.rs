//! The in-memory OAuth 1.0a store, the reference implementation of
//! [`OAuth1Store`](crate::store::OAuth1Store); it lives in the core
//! ([`latchkey_core::store::oauth1::memory`]) and is re-exported here at its usual path.

pub use latchkey_core::store::oauth1::memory::MemoryOAuth1Store;
