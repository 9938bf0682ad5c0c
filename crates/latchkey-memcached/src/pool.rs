//! A small pool of memcached connections, each call bounded in time.
//!
//! One `async_memcached::Client` is one connection used through `&mut self`, so concurrent
//! requests need several. The pool holds a fixed number of slots; a request takes a free slot
//! (or queues, fairly, on one) and keeps it for its whole multi-step operation, so it never
//! holds two and cannot deadlock. A slot whose connection broke (I/O error, timeout, protocol
//! confusion) is emptied and reconnected by the next request that takes it. Every wait (for a
//! slot, for connecting, for each reply) is bounded by the pool's timeout and fails as
//! [`StoreErrorKind::Unavailable`].

use async_memcached::{
    AsciiProtocol as _, Client, ErrorKind, MetaProtocol as _, MetaValue, Status,
};
use latchkey_core::store::{StoreError, StoreErrorKind};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, MutexGuard};

/// A fixed set of lazily (re)connected memcached connections.
pub(crate) struct Pool {
    /// The DSN `async_memcached` connects to (`tcp://host:port` or `unix:///path`).
    dsn: String,
    slots: Vec<Mutex<Option<Client>>>,
    next: AtomicUsize,
    timeout: Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("dsn", &self.dsn)
            .field("size", &self.slots.len())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The outcome of a write that memcached may refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    /// Written.
    Stored,
    /// An add found the key present.
    NotStored,
    /// A compare-and-set found another version.
    Exists,
    /// A compare-and-set found no item.
    NotFound,
}

impl Pool {
    /// A pool of `size` (at least one) connections to `dsn`; nothing is connected yet.
    pub(crate) fn new(dsn: String, size: usize, timeout: Duration) -> Self {
        Self {
            dsn,
            slots: (0..size.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            timeout,
        }
    }

    /// A connection for one operation: a free slot if any, else a place in one slot's queue;
    /// connected (again) if the slot had none or a broken one.
    pub(crate) async fn get(&self) -> Result<Conn<'_>, StoreError> {
        let count = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut free = None;
        for i in 0..count {
            if let Some(slot) = self.slots.get((start + i) % count)
                && let Ok(guard) = slot.try_lock()
            {
                free = Some(guard);
                break;
            }
        }
        let mut guard = match free {
            Some(guard) => guard,
            None => {
                let slot = self
                    .slots
                    .get(start % count)
                    .ok_or_else(|| StoreError::new(StoreErrorKind::Other, "empty pool"))?;
                tokio::time::timeout(self.timeout, slot.lock())
                    .await
                    .map_err(|_| {
                        unavailable(format_args!("every connection busy for {:?}", self.timeout))
                    })?
            }
        };
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = None;
            let client = match tokio::time::timeout(self.timeout, Client::new(&self.dsn)).await {
                Ok(Ok(client)) => client,
                Ok(Err(err)) => return Err(unavailable(format_args!("connect: {err}"))),
                Err(_) => {
                    return Err(unavailable(format_args!(
                        "connect: no answer within {:?}",
                        self.timeout
                    )));
                }
            };
            *guard = Some(client);
        }
        Ok(Conn {
            slot: guard,
            timeout: self.timeout,
        })
    }
}

/// One pooled connection, held for one operation.
pub(crate) struct Conn<'a> {
    slot: MutexGuard<'a, Option<Client>>,
    timeout: Duration,
}

type Reply<T> = Result<Result<T, async_memcached::Error>, tokio::time::error::Elapsed>;

impl Conn<'_> {
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        self.slot
            .as_mut()
            .ok_or_else(|| unavailable("connection was dropped"))
    }

    /// Sorts a reply: the value, a refusal status for the caller to judge, or a store error
    /// (after which the connection is dropped, to be reopened by the next user of the slot).
    fn settle<T>(&mut self, what: &str, reply: Reply<T>) -> Result<Result<T, Status>, StoreError> {
        use async_memcached::Error as E;
        let err = match reply {
            Ok(Ok(value)) => return Ok(Ok(value)),
            Ok(Err(E::Protocol(
                status @ (Status::NotStored | Status::Exists | Status::NotFound),
            ))) => return Ok(Err(status)),
            Err(_) => unavailable(format_args!("{what}: no answer within {:?}", self.timeout)),
            Ok(Err(E::Protocol(Status::Error(ErrorKind::Server(message))))) => {
                // SERVER_ERROR: out of memory, or a server in trouble; retrying later may work.
                unavailable(format_args!("{what}: server error {message}"))
            }
            Ok(Err(err @ (E::Io(_) | E::Connect(_) | E::ConnectionClosed))) => {
                unavailable(format_args!("{what}: {err}"))
            }
            Ok(Err(err)) => StoreError::new(
                StoreErrorKind::Other,
                format_args!("memcached {what}: {err}"),
            ),
        };
        *self.slot = None;
        Err(err)
    }

    /// The item at `key` with the meta `flags` (`v` value, `c` CAS, `t` remaining TTL).
    pub(crate) async fn get(
        &mut self,
        key: &str,
        flags: &[&str],
    ) -> Result<Option<MetaValue>, StoreError> {
        let timeout = self.timeout;
        let client = self.client()?;
        let reply =
            tokio::time::timeout(timeout, client.meta_get(key, false, None, Some(flags))).await;
        match self.settle("get", reply)? {
            Ok(value) => Ok(value),
            Err(Status::NotFound) => Ok(None),
            Err(status) => Err(refused("get", &status)),
        }
    }

    /// The items found among `keys`, by key, in one round trip.
    pub(crate) async fn get_multi(
        &mut self,
        keys: &[String],
        flags: &[&str],
    ) -> Result<HashMap<String, MetaValue>, StoreError> {
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let timeout = self.timeout;
        let client = self.client()?;
        let reply = tokio::time::timeout(timeout, client.meta_get_multi(keys, Some(flags))).await;
        let values = self
            .settle("get_multi", reply)?
            .map_err(|status| refused("get_multi", &status))?;
        Ok(values
            .into_iter()
            .filter_map(|value| {
                let key = String::from_utf8(value.key.clone()?).ok()?;
                Some((key, value))
            })
            .collect())
    }

    /// A meta set of `value` at `key` with `flags` (`T<ttl>`, `C<cas>`, `ME` for add, `MA` +
    /// `N<ttl>` for append).
    pub(crate) async fn set(
        &mut self,
        key: &str,
        value: &[u8],
        flags: &[String],
    ) -> Result<Write, StoreError> {
        let timeout = self.timeout;
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let client = self.client()?;
        let reply = tokio::time::timeout(
            timeout,
            client.meta_set(key, value, false, None, Some(&flags)),
        )
        .await;
        Ok(match self.settle("set", reply)? {
            Ok(_) => Write::Stored,
            Err(Status::NotStored) => Write::NotStored,
            Err(Status::Exists) => Write::Exists,
            Err(_) => Write::NotFound,
        })
    }

    /// Adds one to the counter at `key`; `None` if there is no such counter.
    pub(crate) async fn incr(&mut self, key: &str) -> Result<Option<u64>, StoreError> {
        let timeout = self.timeout;
        let client = self.client()?;
        let reply = tokio::time::timeout(timeout, client.increment(key, 1)).await;
        match self.settle("incr", reply)? {
            Ok(value) => Ok(Some(value)),
            Err(Status::NotFound) => Ok(None),
            Err(status) => Err(refused("incr", &status)),
        }
    }

    /// Asks for the server version: a round trip that proves the server answers.
    pub(crate) async fn version(&mut self) -> Result<(), StoreError> {
        let timeout = self.timeout;
        let client = self.client()?;
        let reply = tokio::time::timeout(timeout, client.version()).await;
        self.settle("version", reply)?
            .map(|_| ())
            .map_err(|status| refused("version", &status))
    }
}

/// An outage, or a server that cannot serve right now.
pub(crate) fn unavailable(what: impl std::fmt::Display) -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        format_args!("memcached {what}"),
    )
}

/// A refusal the operation did not expect.
fn refused(what: &str, status: &Status) -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        format_args!("memcached {what}: unexpected {status}"),
    )
}
