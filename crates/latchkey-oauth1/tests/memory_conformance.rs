//! The memory OAuth 1.0a store runs the shared OAuth 1.0a store suite.

latchkey_testkit::oauth1_store_conformance!(async {
    latchkey_oauth1::memory::MemoryOAuth1Store::new()
});
