//! The memory store runs the conformance suite like every other backend.

latchkey_testkit::store_conformance!(async { latchkey_core::store::memory::MemoryStore::new() });

mod pending {
    latchkey_testkit::pending_store_conformance!(
        async { Some(latchkey_core::store::memory::MemoryStore::new()) },
        false
    );
}
