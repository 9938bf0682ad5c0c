//! SQL stores for Latchkey, on sqlx: one module per database, one cargo feature each.
//!
//! - `sqlite` (default): [`SqliteStore`], the embedded, crash-safe store that `latchkey serve`
//!   runs on with no setup. Concurrent writes are batched into one commit (group commit), and
//!   expired tokens and authorization codes are swept while writing, so no janitor is needed.
//!
//! Every backend implements the store traits of [`latchkey_core::store`] and passes the
//! conformance suite of `latchkey-testkit`. Each embeds its own migrations
//! (`migrations/<dialect>/`), applied by a small runner on open; the dialect-independent part
//! lives in `migrate`. PostgreSQL and MySQL modules go beside `sqlite`, each with its own SQL.

#[cfg(feature = "sqlite")]
mod error;
#[cfg(feature = "sqlite")]
mod migrate;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteStore, WriterStats};
