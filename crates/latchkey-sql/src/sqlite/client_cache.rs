//! Decoded clients kept in the process, so that a token or introspection request does not
//! read and decode its client's row every time (BENCHMARKS.md, issue 20: 9.6% of a token).
//!
//! Correctness rests on one counter: `client_changes.n`, which triggers on `clients` bump in
//! the transaction of every insert, update and delete, whichever connection or process makes
//! it (this server's writer, or the `latchkey client` CLI run beside it). A lookup first reads
//! the counter (one row of a one-page table), then uses the cache only if it was filled at
//! that same count; otherwise the cache is emptied and the row read as before. So a secret
//! rotated, a client changed or deleted by any process is in force at the very next request.
//!
//! Why the counter rather than `PRAGMA data_version`: `data_version` moves on every commit of
//! any other connection, the server's own writer included, so each token stored in SQLite or
//! each DPoP `jti` remembered would empty the cache; and its values are per connection, while
//! reads come from a pool. The counter moves only when a client does.
//!
//! Entries are labelled with the count read *before* their row, so an entry is never older
//! than its label: when the count read by a later lookup equals the label, no client changed
//! in between. The cache holds at most [`MAX_CLIENTS`] clients; beyond that, clients are read
//! from SQLite as without a cache. Unknown ids are not cached (they cost a read, as before),
//! so ids a caller makes up cannot grow it.

use latchkey_core::client::Client;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// The most clients the cache holds (a client is about a kilobyte decoded).
pub(super) const MAX_CLIENTS: usize = 4096;

/// The statement that reads the change counter.
pub(super) const COUNTER_SQL: &str = "SELECT n FROM client_changes WHERE id = 0";

/// The cache of one store; shared by its clones.
#[derive(Debug, Default)]
pub(super) struct ClientCache {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The change count the entries were read at (`None`: nothing read yet).
    count: Option<i64>,
    clients: HashMap<String, Client>,
}

impl ClientCache {
    /// The client `id` as cached, if the cache was filled at change count `count`. A cache
    /// filled at another count is emptied first. `None` (no counter) empties it and finds
    /// nothing.
    pub(super) fn get(&self, count: Option<i64>, id: &str) -> Option<Client> {
        let mut state = self.lock();
        if count.is_none() || state.count != count {
            state.clients.clear();
            state.count = count;
            return None;
        }
        state.clients.get(id).cloned()
    }

    /// Keeps `client`, read after the change count was `count`; dropped if the cache has
    /// moved to another count meanwhile, if there is no counter, or if the cache is full.
    pub(super) fn put(&self, count: Option<i64>, client: &Client) {
        let mut state = self.lock();
        if count.is_none() || state.count != count || state.clients.len() >= MAX_CLIENTS {
            return;
        }
        state
            .clients
            .insert(client.id.as_str().to_owned(), client.clone());
    }

    /// How many clients are cached; for tests.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().clients.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change leaves the map and its count consistent; a panic elsewhere cannot
        // leave it half changed.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
