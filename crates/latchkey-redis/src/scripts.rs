//! The Lua scripts that make every multi-key change atomic.
//!
//! Redis runs a script to completion before serving anyone else, so each script below is one
//! indivisible step: a rotation cannot interleave with another rotation of the same token, a
//! code cannot be taken twice, and a family revocation sees every member at once. Scripts are
//! sent as `EVALSHA` by [`redis::Script`], which loads them again after a server restart
//! (`NOSCRIPT`).
//!
//! Every script gets the key prefix (with its trailing `:`) as `ARGV[1]` and builds key names
//! itself, because family and owner members are only known inside the script. That is fine on
//! a single Redis (or a primary behind Sentinel) and rules out Redis Cluster, where a script
//! must declare its keys up front.
//!
//! Layout, under the prefix `P`:
//! - `P t:<digest hex>`: hash `r` (the record's body in the core's compact form,
//!   `latchkey_core::store::codec`), `k` kind, `f` family, `c` client, `s` subject,
//!   `x` expiry (unix seconds), `rv` revoked, `ro` rotated; expires at the record's `expires_at`.
//! - `P c:<digest hex>`: hash `r` (code JSON), `f` family, `c` client, `x` expiry, `u` used;
//!   expires at the
//!   code's `expires_at`, used or not, so a replay is recognised until then.
//! - `P pd:<digest hex>`: hash `k` kind, `c` client, `l` lookup hex (empty when none), `b` the
//!   pending request's opaque body, `x` expiry (unix seconds), `v` version; expires at `x`.
//! - `P pl:<lookup hex>`: the digest hex of the pending request with that lookup, expiring
//!   with it; read back only together with the record's own `l` (check-after-read).
//! - `P fam:<family>`: set of token digests; `P client:<id>` and `P sub:<subject>`: sets of
//!   `t:<hex>` and `c:<hex>` members. Each set expires with its longest-lived member.

use redis::Script;

/// Helpers shared by the scripts: the server clock in milliseconds, pushing an index's expiry
/// out to its latest member, writing one token, and revoking a family.
const PRELUDE: &str = r#"
local P = ARGV[1]

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Adds `member` to the set `key` and makes the set live at least until `exp_ms`.
local function index(key, member, exp_ms, now)
  redis.call('SADD', key, member)
  local pttl = redis.call('PTTL', key)
  if pttl < 0 or now + pttl < exp_ms then
    redis.call('PEXPIREAT', key, exp_ms)
  end
end

-- Writes the token whose 8 arguments start at ARGV[base]:
-- digest hex, JSON, kind, family, client id, has subject ('0'/'1'), subject, expiry (s).
local function save_token(base, now)
  local hex, json, kind, fam, client = ARGV[base], ARGV[base + 1], ARGV[base + 2], ARGV[base + 3], ARGV[base + 4]
  local has_sub, sub, exp = ARGV[base + 5], ARGV[base + 6], ARGV[base + 7]
  local exp_ms = tonumber(exp) * 1000
  if exp_ms <= now then
    return
  end
  local key = P .. 't:' .. hex
  redis.call('DEL', key)
  redis.call('HSET', key, 'r', json, 'k', kind, 'f', fam, 'c', client, 'x', exp, 'rv', '0', 'ro', '0')
  if has_sub == '1' then
    redis.call('HSET', key, 's', sub)
  end
  redis.call('PEXPIREAT', key, exp_ms)
  index(P .. 'fam:' .. fam, hex, exp_ms, now)
  index(P .. 'client:' .. client, 't:' .. hex, exp_ms, now)
  if has_sub == '1' then
    index(P .. 'sub:' .. sub, 't:' .. hex, exp_ms, now)
  end
end

-- Marks every live token of `fam` revoked; returns how many were not yet revoked. Members
-- whose token has expired are dropped from the set on the way.
local function revoke_family(fam)
  local set = P .. 'fam:' .. fam
  local n = 0
  for _, hex in ipairs(redis.call('SMEMBERS', set)) do
    local key = P .. 't:' .. hex
    local rv = redis.call('HGET', key, 'rv')
    if not rv then
      redis.call('SREM', set, hex)
    elseif rv == '0' then
      redis.call('HSET', key, 'rv', '1')
      n = n + 1
    end
  end
  return n
end
"#;

/// `ARGV[2]`: how many tokens; then 8 arguments per token. Returns the count.
const SAVE_TOKENS: &str = r#"
local now = now_ms()
local n = tonumber(ARGV[2])
for i = 0, n - 1 do
  save_token(3 + i * 8, now)
end
return n
"#;

/// `ARGV[2]`: old digest hex; `ARGV[3]`: the caller's `now` (s); `ARGV[4]`: how many new
/// tokens; then 8 arguments per token. Returns `{'rotated'}`, `{'reused', family}` or
/// `{'invalid'}`.
///
/// The decision is `latchkey_core::store::refresh_verdict`, which Lua cannot call: not a
/// refresh token, revoked or expired → invalid, nothing changed; rotated → reused, the family
/// revoked; otherwise rotated. `tests/script_verdicts.rs` holds the script to the function on
/// every combination of those four inputs.
const ROTATE_REFRESH: &str = r#"
local key = P .. 't:' .. ARGV[2]
local f = redis.call('HMGET', key, 'k', 'rv', 'ro', 'x', 'f')
if not f[1] then
  return {'invalid'}
end
if f[1] ~= 'refresh_token' or f[2] == '1' or tonumber(ARGV[3]) >= tonumber(f[4]) then
  return {'invalid'}
end
if f[3] == '1' then
  revoke_family(f[5])
  return {'reused', f[5]}
end
redis.call('HSET', key, 'ro', '1')
local now = now_ms()
local n = tonumber(ARGV[4])
for i = 0, n - 1 do
  save_token(5 + i * 8, now)
end
return {'rotated'}
"#;

/// `ARGV[2]`: family. Returns how many tokens were not yet revoked.
const REVOKE_FAMILY: &str = r#"
return revoke_family(ARGV[2])
"#;

/// `ARGV[2]`: digest hex. Returns 1 if the token was known, 0 otherwise.
const REVOKE_TOKEN: &str = r#"
local key = P .. 't:' .. ARGV[2]
if redis.call('EXISTS', key) == 0 then
  return 0
end
redis.call('HSET', key, 'rv', '1')
return 1
"#;

/// `ARGV[2]`: the owner set's name under the prefix (`client:<id>` or `sub:<id>`). Deletes
/// every token and code of the owner and the set; returns how many tokens went.
const DELETE_OWNER: &str = r#"
local set = P .. ARGV[2]
local n = 0
for _, member in ipairs(redis.call('SMEMBERS', set)) do
  local gone = redis.call('DEL', P .. member)
  if string.sub(member, 1, 2) == 't:' then
    n = n + gone
  end
end
redis.call('DEL', set)
return n
"#;

/// `ARGV[2]`: client id; `ARGV[3]`: subject. Marks revoked every token of the client that is
/// also the subject's (the intersection of the two owner sets) and deletes their codes;
/// returns how many tokens were not yet revoked.
const REVOKE_GRANT: &str = r#"
local n = 0
for _, member in ipairs(redis.call('SINTER', P .. 'client:' .. ARGV[2], P .. 'sub:' .. ARGV[3])) do
  local key = P .. member
  if string.sub(member, 1, 2) == 't:' then
    if redis.call('HGET', key, 'rv') == '0' then
      redis.call('HSET', key, 'rv', '1')
      n = n + 1
    end
  else
    redis.call('DEL', key)
  end
end
return n
"#;

/// `ARGV[2..=7]`: digest hex, JSON, family, client id, subject, expiry (s).
const SAVE_CODE: &str = r#"
local now = now_ms()
local hex, json, fam, client, sub, exp = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local exp_ms = tonumber(exp) * 1000
if exp_ms <= now then
  return 0
end
local key = P .. 'c:' .. hex
redis.call('DEL', key)
redis.call('HSET', key, 'r', json, 'f', fam, 'c', client, 'x', exp, 'u', '0')
redis.call('PEXPIREAT', key, exp_ms)
index(P .. 'client:' .. client, 'c:' .. hex, exp_ms, now)
index(P .. 'sub:' .. sub, 'c:' .. hex, exp_ms, now)
return 1
"#;

/// `ARGV[2]`: digest hex; `ARGV[3]`: the caller's `now` (s); `ARGV[4]`: the presenting client
/// id. Returns `{'taken', json}`, `{'replayed', family}` or `{'invalid'}`. A taken code stays,
/// marked used, until it expires.
///
/// The decision is `latchkey_core::store::code_verdict`, which Lua cannot call: expired or
/// another client's (or a code saved before the client was recorded) → invalid, nothing
/// changed; used → replayed; otherwise taken. `tests/script_verdicts.rs` holds the script to
/// the function on every combination of (used, expired, presenting client).
const TAKE_CODE: &str = r#"
local key = P .. 'c:' .. ARGV[2]
local f = redis.call('HMGET', key, 'r', 'u', 'x', 'f', 'c')
if not f[1] then
  return {'invalid'}
end
if tonumber(ARGV[3]) >= tonumber(f[3]) or f[5] ~= ARGV[4] then
  return {'invalid'}
end
if f[2] == '1' then
  return {'replayed', f[4]}
end
redis.call('HSET', key, 'u', '1')
return {'taken', f[1]}
"#;

/// `ARGV[2..=10]`: digest hex, kind, client id, lookup hex (or empty), body, expiry (s),
/// version, the caller's `now` (s), lifetime (ms). Returns 1 if saved, 0 when a live record
/// holds the digest or the lookup. A record or pointer that expired by `now` does not count.
const SAVE_PENDING: &str = r#"
local key = P .. 'pd:' .. ARGV[2]
local now = tonumber(ARGV[9])
local function live(k)
  local x = redis.call('HGET', k, 'x')
  return x and tonumber(x) > now
end
if live(key) then
  return 0
end
local lk = ARGV[5]
if lk ~= '' then
  local owner = redis.call('GET', P .. 'pl:' .. lk)
  if owner then
    local okey = P .. 'pd:' .. owner
    if live(okey) and redis.call('HGET', okey, 'l') == lk then
      return 0
    end
  end
end
redis.call('DEL', key)
redis.call('HSET', key, 'k', ARGV[3], 'c', ARGV[4], 'l', lk, 'b', ARGV[6], 'x', ARGV[7], 'v', ARGV[8])
redis.call('PEXPIRE', key, ARGV[10])
if lk ~= '' then
  redis.call('SET', P .. 'pl:' .. lk, ARGV[2], 'PX', ARGV[10])
end
return 1
"#;

/// Checks that the pending request at `key` is live at `ARGV[4]`, of kind `ARGV[3]`, at
/// version `ARGV[5]`; returns its lookup hex (maybe empty), or `false`.
const PENDING_PRELUDE: &str = r#"
local key = P .. 'pd:' .. ARGV[2]
local function current()
  local f = redis.call('HMGET', key, 'k', 'v', 'x', 'l')
  if not f[1] or f[1] ~= ARGV[3] or tonumber(ARGV[4]) >= tonumber(f[3]) or f[2] ~= ARGV[5] then
    return false
  end
  return f[4]
end
"#;

/// `ARGV[2..=9]`: digest hex, kind, the caller's `now` (s), the version expected in store, the
/// new version, body, expiry (s), lifetime (ms). Returns 1 if replaced, 0 otherwise; the
/// lookup pointer follows the record's new lifetime.
const REPLACE_PENDING: &str = r#"
local lk = current()
if not lk then
  return 0
end
redis.call('HSET', key, 'b', ARGV[7], 'x', ARGV[8], 'v', ARGV[6])
redis.call('PEXPIRE', key, ARGV[9])
if lk ~= '' then
  local lkey = P .. 'pl:' .. lk
  if redis.call('GET', lkey) == ARGV[2] then
    redis.call('PEXPIRE', lkey, ARGV[9])
  end
end
return 1
"#;

/// `ARGV[2..=5]`: digest hex, kind, the caller's `now` (s), the version expected in store.
/// Returns 1 if it removed the record (and its lookup pointer), 0 otherwise.
const REMOVE_PENDING: &str = r#"
local lk = current()
if not lk then
  return 0
end
redis.call('DEL', key)
if lk ~= '' then
  local lkey = P .. 'pl:' .. lk
  if redis.call('GET', lkey) == ARGV[2] then
    redis.call('DEL', lkey)
  end
end
return 1
"#;

/// Every script, hashed once when the store is built.
#[derive(Debug)]
pub(crate) struct Scripts {
    pub(crate) save_tokens: Script,
    pub(crate) rotate_refresh: Script,
    pub(crate) revoke_family: Script,
    pub(crate) revoke_token: Script,
    pub(crate) delete_owner: Script,
    pub(crate) revoke_grant: Script,
    pub(crate) save_code: Script,
    pub(crate) take_code: Script,
    pub(crate) save_pending: Script,
    pub(crate) replace_pending: Script,
    pub(crate) remove_pending: Script,
}

impl Scripts {
    /// The scripts, each prefixed with the shared helpers.
    pub(crate) fn new() -> Self {
        let script = |body: &str| Script::new(&format!("{PRELUDE}{body}"));
        Self {
            save_tokens: script(SAVE_TOKENS),
            rotate_refresh: script(ROTATE_REFRESH),
            revoke_family: script(REVOKE_FAMILY),
            revoke_token: script(REVOKE_TOKEN),
            delete_owner: script(DELETE_OWNER),
            revoke_grant: script(REVOKE_GRANT),
            save_code: script(SAVE_CODE),
            take_code: script(TAKE_CODE),
            save_pending: script(SAVE_PENDING),
            replace_pending: script(&format!("{PENDING_PRELUDE}{REPLACE_PENDING}")),
            remove_pending: script(&format!("{PENDING_PRELUDE}{REMOVE_PENDING}")),
        }
    }
}
