//! What the PostgreSQL and MySQL stores share: the bounds of their connection pools and of the
//! expiry sweep that runs with their writes.
//!
//! Several server nodes share one database, so each node's pool is bounded (the database's
//! connection limit is divided among the nodes), and so is the wait for a connection: when the
//! database is down or saturated, a request fails with `Unavailable` after [`ACQUIRE_TIMEOUT`]
//! instead of hanging. Lock waits are bounded on the server side by each backend's session
//! settings (5 seconds), so a node that holds a row lock cannot stall the others for long
//! either; opening a store waits longer (60 seconds) for another node that is migrating.

use sqlx::Database;
use sqlx::pool::PoolOptions;
use std::time::Duration;

/// Connections one store (one server node) may hold at once.
pub(crate) const MAX_CONNECTIONS: u32 = 10;

/// How long a call waits for a connection (including connecting) before it fails.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The most expired rows one write deletes from one table, so a backlog (after downtime, say)
/// is worked off a slice at a time instead of stalling a request.
pub(crate) const SWEEP_LIMIT: i64 = 500;

/// Pool options with the bounds above.
pub(crate) fn options<DB: Database>() -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
}

/// Logs what a sweep did. A failed sweep does not fail the write it followed: that write is
/// already committed, and the next write sweeps again.
pub(crate) fn swept(
    backend: &str,
    table: &str,
    outcome: Result<u64, latchkey_core::store::StoreError>,
) {
    match outcome {
        Ok(0) => {}
        Ok(rows) => tracing::debug!(backend, table, rows, "swept expired rows"),
        Err(err) => tracing::warn!(backend, table, error = %err, "sweeping expired rows failed"),
    }
}
