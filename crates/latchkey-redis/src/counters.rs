//! Rate and failure counters in Redis, so every server node sees the same counts
//! ([`latchkey_core::limits::Counters`]).
//!
//! A key `P rl:<key>` is a hash `c` (count) and `l` (last hit, unix seconds) that expires when
//! its window ends; a hit, a reservation and a refund are each one script, so concurrent
//! attempts from several nodes all count and a reservation's check and count are one step.

use crate::{RedisStore, bounded};
use latchkey_core::clock::UnixTime;
use latchkey_core::limits::{CounterFuture, Counters, Gate, Reserve, Window};
use redis::Script;
use std::sync::LazyLock;

/// Counts one hit; opens the window (with its expiry) on the first. Returns count, seconds
/// left and the previous last hit.
static HIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local c = redis.call('HINCRBY', KEYS[1], 'c', 1)
local last = redis.call('HGET', KEYS[1], 'l')
if c == 1 or redis.call('TTL', KEYS[1]) < 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  last = ARGV[2]
end
redis.call('HSET', KEYS[1], 'l', ARGV[2])
return {c, redis.call('TTL', KEYS[1]), tonumber(last)}
"#,
    )
});

/// Reserves one attempt unless the open window refuses it: the rule of
/// `latchkey_core::limits::Gate::refusal`, restated in Lua. ARGV: window, now, limit,
/// slow_after, max_delay. Returns `{1}` when reserved, `{0, retry_at}` when refused.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local now = tonumber(ARGV[2])
local ttl = redis.call('TTL', KEYS[1])
local c = 0
local last = now
if ttl > 0 then
  c = tonumber(redis.call('HGET', KEYS[1], 'c') or '0')
  last = tonumber(redis.call('HGET', KEYS[1], 'l') or ARGV[2])
else
  redis.call('DEL', KEYS[1])
end
if c >= tonumber(ARGV[3]) then
  return {0, now + ttl}
end
local slow = tonumber(ARGV[4])
if c >= slow then
  local delay = math.min(2 * 2 ^ (c - slow), tonumber(ARGV[5]))
  if now < last + delay then
    return {0, last + delay}
  end
end
redis.call('HSET', KEYS[1], 'c', c + 1)
redis.call('HSET', KEYS[1], 'l', ARGV[2])
if ttl <= 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return {1, 0}
"#,
    )
});

/// Takes back one hit of an open window, never below zero.
static REFUND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('TTL', KEYS[1]) > 0 and tonumber(redis.call('HGET', KEYS[1], 'c') or '0') > 0 then
  redis.call('HINCRBY', KEYS[1], 'c', -1)
end
return 0
"#,
    )
});

impl RedisStore {
    fn counter_key(&self, key: &str) -> String {
        self.key("rl:", key)
    }
}

impl Counters for RedisStore {
    fn hit<'a>(&'a self, key: &'a str, window: u64, now: UnixTime) -> CounterFuture<'a, Window> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let mut invocation = HIT.key(self.counter_key(key));
            invocation.arg(window.max(1)).arg(now.0);
            let (count, ttl, last): (u64, i64, i64) = bounded(
                "counter_hit",
                self.timeout,
                invocation.invoke_async(&mut conn),
            )
            .await?;
            Ok(Window {
                count,
                resets_at: now.plus(u64::try_from(ttl).unwrap_or(0)),
                last: UnixTime(last),
            })
        })
    }

    fn peek<'a>(&'a self, key: &'a str, now: UnixTime) -> CounterFuture<'a, Option<Window>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let name = self.counter_key(key);
            let mut pipe = redis::pipe();
            pipe.cmd("HMGET")
                .arg(&name)
                .arg("c")
                .arg("l")
                .cmd("TTL")
                .arg(&name);
            let ((count, last), ttl): ((Option<u64>, Option<i64>), i64) =
                bounded("counter_peek", self.timeout, pipe.query_async(&mut conn)).await?;
            Ok(match (count, last) {
                (Some(count), Some(last)) if ttl > 0 => Some(Window {
                    count,
                    resets_at: now.plus(u64::try_from(ttl).unwrap_or(0)),
                    last: UnixTime(last),
                }),
                _ => None,
            })
        })
    }

    fn clear<'a>(&'a self, key: &'a str) -> CounterFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let query = redis::cmd("DEL").arg(self.counter_key(key)).clone();
            let _: i64 =
                bounded("counter_clear", self.timeout, query.query_async(&mut conn)).await?;
            Ok(())
        })
    }

    fn reserve<'a>(
        &'a self,
        key: &'a str,
        gate: Gate,
        window: u64,
        now: UnixTime,
    ) -> CounterFuture<'a, Reserve> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let mut invocation = RESERVE.key(self.counter_key(key));
            invocation
                .arg(window.max(1))
                .arg(now.0)
                .arg(gate.limit)
                .arg(gate.slow_after)
                .arg(gate.max_delay);
            let (reserved, at): (i64, i64) = bounded(
                "counter_reserve",
                self.timeout,
                invocation.invoke_async(&mut conn),
            )
            .await?;
            Ok(if reserved == 1 {
                Reserve::Reserved
            } else {
                Reserve::Refused(UnixTime(at))
            })
        })
    }

    fn refund<'a>(&'a self, key: &'a str) -> CounterFuture<'a, ()> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let invocation = REFUND.key(self.counter_key(key));
            let _: i64 = bounded(
                "counter_refund",
                self.timeout,
                invocation.invoke_async(&mut conn),
            )
            .await?;
            Ok(())
        })
    }
}
