//! Generation counters and expiry times: how memcached, which cannot list keys, still
//! revokes whole families and owners, and keeps every item only as long as it is needed.
//!
//! A counter's value is stored in each record issued under it; `incr` revokes them all. A
//! counter starts at a random value, so one recreated after an eviction never matches a
//! record issued under its predecessor (see the crate docs on evictions).

use crate::pool::{Conn, Write};
use crate::{CAS_ATTEMPTS, contended};
use latchkey_core::clock::{Clock, SystemClock};
use latchkey_core::entropy::{Entropy, OsEntropy};
use latchkey_core::store::StoreError;

/// The longest TTL memcached reads as relative seconds; beyond, it takes a unix time.
pub(crate) const MAX_RELATIVE_TTL: i64 = 30 * 24 * 60 * 60;

/// Extra life given to a generation counter (and family list) when it has to be extended,
/// so that busy families and owners are extended about once an hour, not on every issue.
pub(crate) const GENERATION_SLACK: i64 = 60 * 60;

/// A counter's current value, and the TTL it was just given if it had to be created or
/// extended.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Generation {
    /// The counter's value.
    pub(crate) value: u64,
    /// The TTL just given to the counter, if it was created or extended.
    pub(crate) extended_ttl: Option<i64>,
}

/// Makes the counter at `key` exist and live until `until`, returning its value.
pub(crate) async fn ensure_generation(
    conn: &mut Conn<'_>,
    key: &str,
    until: i64,
) -> Result<Generation, StoreError> {
    for _ in 0..CAS_ATTEMPTS {
        let now = system_now();
        let ttl = exptime(until.saturating_add(GENERATION_SLACK), now).unwrap_or(1);
        match conn.get(key, &["v", "c", "t"]).await? {
            None => {
                let start = fresh_generation();
                let flags = ["ME".to_owned(), format!("T{ttl}")];
                if conn.set(key, start.to_string().as_bytes(), &flags).await? == Write::Stored {
                    return Ok(Generation {
                        value: start,
                        extended_ttl: Some(ttl),
                    });
                }
            }
            Some(item) => {
                let value = parse_generation(&item)?;
                if lives_until(&item, now) >= until {
                    return Ok(Generation {
                        value,
                        extended_ttl: None,
                    });
                }
                let Some(cas) = item.cas else {
                    return Err(latchkey_core::store::codec::corrupt(
                        "counter without a CAS value",
                    ));
                };
                // Rewrites the same value with a longer TTL, unless it was bumped meanwhile.
                let flags = [format!("T{ttl}"), format!("C{cas}")];
                if conn.set(key, value.to_string().as_bytes(), &flags).await? == Write::Stored {
                    return Ok(Generation {
                        value,
                        extended_ttl: Some(ttl),
                    });
                }
            }
        }
    }
    Err(contended("generation counter"))
}

/// Appends `value` to the item at `key`, or creates it with `ttl` if missing. (Append mode's
/// own autovivify flag, `N`, needs memcached 1.6.21 or later.)
pub(crate) async fn append_or_add(
    conn: &mut Conn<'_>,
    key: &str,
    value: &[u8],
    ttl: i64,
) -> Result<(), StoreError> {
    for _ in 0..CAS_ATTEMPTS {
        if conn.set(key, value, &["MA".to_owned()]).await? == Write::Stored {
            return Ok(());
        }
        let flags = ["ME".to_owned(), format!("T{ttl}")];
        if conn.set(key, value, &flags).await? == Write::Stored {
            return Ok(());
        }
    }
    Err(contended("family list"))
}

/// A random start for a new counter, below 2^62 so that `incr` never wraps.
pub(crate) fn fresh_generation() -> u64 {
    let mut bytes = [0u8; 8];
    OsEntropy.fill(&mut bytes);
    u64::from_le_bytes(bytes) >> 2
}

/// The value of a counter item.
pub(crate) fn parse_generation(item: &async_memcached::MetaValue) -> Result<u64, StoreError> {
    item.data
        .as_deref()
        .and_then(|data| std::str::from_utf8(data).ok())
        .and_then(|text| text.trim().parse().ok())
        .ok_or_else(|| latchkey_core::store::codec::corrupt("generation counter"))
}

/// Until when (unix seconds) an item read with the `t` flag lives; 0 if unknown.
pub(crate) fn lives_until(item: &async_memcached::MetaValue, now: i64) -> i64 {
    match item.ttl_remaining {
        Some(-1) => i64::MAX,
        Some(remaining) => now.saturating_add(remaining),
        None => 0,
    }
}

pub(crate) fn system_now() -> i64 {
    SystemClock.now().0
}

/// The memcached expiration time for an item that must live until `expires_at`: relative
/// seconds up to 30 days, an absolute unix time beyond; `None` if that time has passed.
pub(crate) fn exptime(expires_at: i64, now: i64) -> Option<i64> {
    let remaining = expires_at.checked_sub(now)?;
    if remaining <= 0 {
        None
    } else if remaining <= MAX_RELATIVE_TTL {
        Some(remaining)
    } else {
        Some(expires_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_are_relative_up_to_thirty_days_then_absolute() {
        let now = 1_767_225_600;
        assert_eq!(exptime(now + 60, now), Some(60));
        assert_eq!(exptime(now + MAX_RELATIVE_TTL, now), Some(MAX_RELATIVE_TTL));
        assert_eq!(
            exptime(now + MAX_RELATIVE_TTL + 1, now),
            Some(now + MAX_RELATIVE_TTL + 1)
        );
        assert_eq!(exptime(now, now), None);
        assert_eq!(exptime(now - 5, now), None);
    }

    #[test]
    fn fresh_generations_leave_room_to_count_up() {
        assert!((0..100).all(|_| fresh_generation() < 1 << 62));
    }
}
