//! How Redis failures become [`StoreError`]s.
//!
//! An outage must read as [`StoreErrorKind::Unavailable`] (the client sees
//! `temporarily_unavailable` and may retry): a refused or dropped connection, a command that
//! got no answer in time, and the server's own "not now" replies (`LOADING`, `BUSY`, `OOM`,
//! `MASTERDOWN`, `READONLY` during a failover, `TRYAGAIN`, `CLUSTERDOWN`). A reply of the wrong
//! shape is `Corrupt`; the rest is `Other`. The Redis message goes to the log only.

use latchkey_core::store::{StoreError, StoreErrorKind};
use std::time::Duration;

/// Server error codes that mean "unavailable for now".
const TRANSIENT_CODES: [&str; 7] = [
    "LOADING",
    "BUSY",
    "OOM",
    "MASTERDOWN",
    "READONLY",
    "TRYAGAIN",
    "CLUSTERDOWN",
];

/// Maps a Redis error met while doing `what`.
pub(crate) fn from_redis(what: &str, err: &redis::RedisError) -> StoreError {
    StoreError::new(kind_of(err), format_args!("redis {what}: {err}"))
}

/// A command that did not answer within `limit`.
pub(crate) fn timed_out(what: &str, limit: Duration) -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        format_args!("redis {what}: no answer within {limit:?}"),
    )
}

/// The store kind of a Redis error.
fn kind_of(err: &redis::RedisError) -> StoreErrorKind {
    use redis::ErrorKind as K;
    if err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err
            .code()
            .is_some_and(|code| TRANSIENT_CODES.contains(&code))
    {
        return StoreErrorKind::Unavailable;
    }
    match err.kind() {
        K::Parse | K::UnexpectedReturnType => StoreErrorKind::Corrupt,
        K::ClusterConnectionNotFound => StoreErrorKind::Unavailable,
        _ => StoreErrorKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_connections_and_busy_servers_are_outages() {
        let refused =
            redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(
            from_redis("ping", &refused).kind(),
            StoreErrorKind::Unavailable
        );
        let wrong_type =
            redis::RedisError::from((redis::ErrorKind::UnexpectedReturnType, "not a string"));
        assert_eq!(
            from_redis("find", &wrong_type).kind(),
            StoreErrorKind::Corrupt
        );
        assert_eq!(
            timed_out("find", Duration::from_secs(1)).kind(),
            StoreErrorKind::Unavailable
        );
    }
}
