//! The memory store runs the conformance suite like every other backend.

latchkey_testkit::store_conformance!(async { latchkey_core::store::memory::MemoryStore::new() });
