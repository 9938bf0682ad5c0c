//! SQL stores for Latchkey: one module per database, one cargo feature each.
//!
//! - `sqlite` (default): [`SqliteStore`], the embedded, crash-safe store that `latchkey serve`
//!   runs on with no setup. It calls SQLite through rusqlite: one writer thread batches
//!   concurrent writes into one commit (group commit), reads run inline on a small pool of
//!   read-only connections, and expired tokens and authorization codes are swept while
//!   writing, so no janitor is needed.
//! - `postgres`: `PgStore`, on sqlx, for several server nodes sharing one PostgreSQL database
//!   (or a PostgreSQL-compatible distributed one).
//! - `mysql`: `MySqlStore`, on sqlx, the same for MySQL 8 and MariaDB 10.6 or later.
//!
//! The two server databases share one implementation, `SqlxStore`, over a small `Dialect`
//! that holds what differs (placeholders, upserts, how a row is taken, sweeps, error codes).
//! They take no single writer: every node writes, so atomicity comes from the database itself
//! (a single statement, or a transaction holding `SELECT … FOR UPDATE` on the row), and each
//! write that carries a `now` deletes a bounded number of expired rows.
//! Their connection pools are bounded and give up after a few seconds, so an outage is reported
//! as [`StoreErrorKind::Unavailable`](latchkey_core::store::StoreErrorKind::Unavailable)
//! rather than a hang.
//!
//! Every backend implements the store traits of [`latchkey_core::store`] and passes the
//! conformance suite of `latchkey-testkit`. Each dialect embeds its own migrations
//! (`migrations/<dialect>/`), applied by a small runner on open; the dialect-independent part
//! lives in `migrate`, the row decoding and encoding they share in `rows`.

// On docs.rs (`--cfg docsrs`, nightly), items behind a feature are labelled with it.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod error;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod key_rows;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod migrate;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod pending_rows;
#[cfg(any(feature = "postgres", feature = "mysql"))]
mod pool;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod registration_rows;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod resource_rows;
#[cfg(any(feature = "sqlite", feature = "postgres", feature = "mysql"))]
mod rows;

#[cfg(any(feature = "postgres", feature = "mysql"))]
mod server;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(any(feature = "postgres", feature = "mysql"))]
pub use server::{Dialect, SqlxStore};
#[cfg(feature = "mysql")]
pub use server::{MySqlDialect, MySqlStore};
#[cfg(feature = "postgres")]
pub use server::{PgDialect, PgStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, WriterStats, backup};
