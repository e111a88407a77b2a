//! The Lua scripts. Redis runs a script whole, with nothing in between, so each is one
//! atomic step of the cluster's state. Keys a script only finds while running (the users
//! of a reaped instance) are built from the prefix, passed as its last argument: fine on
//! one Redis, not on a Redis Cluster (see the README).

use redis::Script;
use std::sync::LazyLock;

/// `reap(prefix, name)`: free everything a dead instance held: the user keys that still
/// name it (and their count), its users hash, its room members (publishing a `leave` event
/// for each), its place in the set of instances.
const REAP_FUNCTION: &str = r#"
local function ns(s) s = tostring(s) return #s .. ':' .. s end
local function reap(prefix, name)
  local users_key = prefix .. 'instance:' .. name .. ':users'
  for _, user in ipairs(redis.call('HKEYS', users_key)) do
    local key = prefix .. 'user:' .. user
    if redis.call('GET', key) == name then
      redis.call('DEL', key)
      redis.call('DECR', prefix .. 'users')
    end
  end
  redis.call('DEL', users_key)
  local members_key = prefix .. 'instance:' .. name .. ':members'
  local members = redis.call('HGETALL', members_key)
  for i = 1, #members, 2 do
    local value = members[i + 1]
    local space = string.find(value, ' ', 1, true)
    local room = prefix .. 'room:' .. string.sub(value, 1, space - 1)
    local member = string.sub(value, space + 1)
    if redis.call('ZREM', room .. ':members', member) == 1 then
      local seq = redis.call('INCR', room .. ':seq')
      redis.call('PUBLISH', room, ns(seq) .. ns('L') .. ns(name) .. ns('') .. ns(member))
    end
  end
  redis.call('DEL', members_key)
  redis.call('SREM', prefix .. 'instances', name)
end
"#;

/// `ns(s)`: a field of an event, `LEN:bytes`.
const NS_FUNCTION: &str = "local function ns(s) s = tostring(s) return #s .. ':' .. s end\n";

/// Register an instance. KEYS: its liveness key, the set of instances, the incarnation
/// counter. ARGV: name, TTL in ms, prefix, reap (1: first reap what a dead process of
/// that name left behind; 0: after an eviction, when the janitor has). Returns -1 if the
/// liveness key is alive (another process has the name), else the new incarnation.
pub(crate) static REGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{REAP_FUNCTION}
if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end
if ARGV[4] == '1' then reap(ARGV[3], ARGV[1]) end
local incarnation = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[1], incarnation, 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return incarnation"
    ))
});

/// The heartbeat. KEYS: the liveness key. ARGV: incarnation, TTL in ms. Returns 1 if it
/// was refreshed, 0 if the key is gone or another incarnation's (this one was reaped).
pub(crate) static BEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0",
    )
});

/// The janitor's step for one instance. KEYS: its liveness key. ARGV: name, prefix.
/// Returns 1 if it was reaped, 0 if it is alive after all.
pub(crate) static REAP: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{REAP_FUNCTION}
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
reap(ARGV[2], ARGV[1])
return 1"
    ))
});

/// A graceful exit. KEYS: the liveness key. ARGV: name, incarnation, prefix. Frees what
/// the instance still holds and removes its key, if the key is still its incarnation's.
pub(crate) static UNREGISTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{REAP_FUNCTION}
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
reap(ARGV[3], ARGV[1])
return 1"
    ))
});

/// A login's claim. KEYS: the user's key, the users count, the unique-id counter, the
/// instance's users hash. ARGV: instance name, user id, cluster-wide cap (0: none).
/// Returns the user's unique id, or -31 (logged in on another instance) or -32 (the
/// cluster is full). A user this instance holds already is given back its unique id:
/// the game logic never claims a user it has logged in, or claims one twice at once, so
/// that is this claim run again after its answer was lost with a connection.
pub(crate) static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  local id = redis.call('HGET', KEYS[4], ARGV[2])
  if id then return tonumber(id) end
  id = redis.call('INCR', KEYS[3])
  redis.call('HSET', KEYS[4], ARGV[2], id)
  return id
end
if holder then return -31 end
local cap = tonumber(ARGV[3])
if cap > 0 and tonumber(redis.call('GET', KEYS[2]) or '0') >= cap then return -32 end
local id = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[4], ARGV[2], id)
return id",
    )
});

/// A logout. KEYS: the user's key, the users count, the instance's users hash. ARGV:
/// instance name, user id. Frees the user if this instance still holds it.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "redis.call('HDEL', KEYS[3], ARGV[2])
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('DECR', KEYS[2])
  return 1
end
return 0",
    )
});

/// A user logged in here before this instance was reaped (or Redis lost its data), claimed
/// again. KEYS: the user's key, the users count, the unique-id counter, the instance's
/// users hash. ARGV: instance name, user id, unique id. Returns 1 if the user is this
/// instance's again, 0 if another instance holds it now (the user logged in there
/// meanwhile: that login wins). The unique-id counter is raised to the user's id if it is
/// below (a Redis that came back empty must not hand the id out again). No cap: the user
/// was counted before.
pub(crate) static RECLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local id = tonumber(ARGV[3])
if tonumber(redis.call('GET', KEYS[3]) or '0') < id then redis.call('SET', KEYS[3], id) end
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then return 0 end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('INCR', KEYS[2])
end
redis.call('HSET', KEYS[4], ARGV[2], id)
return 1",
    )
});

/// The unique-id counter raised to at least ARGV[1], never lowered. KEYS: the counter. Run
/// when an instance registers again: a Redis that came back empty must not hand out again
/// an id this instance saw handed out, even to a user who has logged out since.
pub(crate) static FLOOR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if tonumber(redis.call('GET', KEYS[1]) or '0') < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1",
    )
});

/// A room entry. KEYS: the room's members, its event number, the instance's members hash.
/// ARGV: member (`UNIQUE_ID:USER_ID`), room capacity, instance, session, unique id, room,
/// channel. Publishes `E` with the members before it, oldest first; returns its event
/// number, 0 if the member is in already (this script run again: its event is out), -54
/// if the room is full.
pub(crate) static ROOM_ENTER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NS_FUNCTION}
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 0 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return -54 end
local list = redis.call('ZRANGE', KEYS[1], 0, -1)
local seq = redis.call('INCR', KEYS[2])
redis.call('ZADD', KEYS[1], seq, ARGV[1])
redis.call('HSET', KEYS[3], ARGV[5], ARGV[6] .. ' ' .. ARGV[1])
local parts = {{ns(seq), ns('E'), ns(ARGV[3]), ns(ARGV[4]), ns(ARGV[1])}}
for _, member in ipairs(list) do parts[#parts + 1] = ns(member) end
redis.call('PUBLISH', ARGV[7], table.concat(parts))
return seq"
    ))
});

/// A room leave. KEYS: the room's members, its event number, the instance's members hash.
/// ARGV: member, instance, session (empty for a disconnect), unique id, channel.
/// Publishes `L`; returns its event number, or 0 if the member was not there.
pub(crate) static ROOM_LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NS_FUNCTION}
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[3], ARGV[4])
local seq = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[5], ns(seq) .. ns('L') .. ns(ARGV[2]) .. ns(ARGV[3]) .. ns(ARGV[1]))
return seq"
    ))
});

/// A room chat. KEYS: the room's members, its event number. ARGV: member, instance,
/// session, message, channel. Publishes `C`; returns its event number, or -81 if the
/// member is not in the room. Not safe to run twice: each run is a chat.
pub(crate) static ROOM_CHAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{NS_FUNCTION}
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then return -81 end
local seq = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[5],
  ns(seq) .. ns('C') .. ns(ARGV[2]) .. ns(ARGV[3]) .. ns(ARGV[1]) .. ns(ARGV[4]))
return seq"
    ))
});
