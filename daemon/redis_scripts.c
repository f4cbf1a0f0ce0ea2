/* The Redis store's Lua scripts (see redis_scripts.h for each one's contract). */
#include "redis_scripts.h"

struct redis_script redis_script_transition;
struct redis_script redis_script_lease;
struct redis_script redis_script_snapshot;
struct redis_script redis_script_outcomes;

/*
 * Outcomes, for the transition script (a session ended) and the outcomes
 * script: make room under max in a user's outcomes (KEYS okey, devices
 * dkey), forgetting what is older than cut first, then the oldest (counted
 * as dropped on its device).
 */
#define OUTCOMES_ROOM_LUA                                                               \
	"local drops = 0\n"                                                             \
	"local function outcomes_room(dkey, okey, cut, max)\n"                          \
	"  local all = redis.call('HGETALL', okey)\n"                                   \
	"  local n, oldest, oev = #all / 2, nil, nil\n"                                 \
	"  for j = 1, #all, 2 do\n"                                                     \
	"    local t, ev = string.match(all[j + 1], '^(%-?%d+) (%d+) ')\n"              \
	"    if tonumber(t) < cut then\n"                                               \
	"      redis.call('HDEL', okey, all[j])\n"                                      \
	"      n = n - 1\n"                                                             \
	"    elseif oev == nil or tonumber(ev) < oev then\n"                            \
	"      oldest, oev = all[j], tonumber(ev)\n"                                    \
	"    end\n"                                                                     \
	"  end\n"                                                                       \
	"  if max > 0 and n >= max and oldest then\n"                                   \
	"    drops = drops + 1\n"                                                       \
	"    redis.call('HDEL', okey, oldest)\n"                                        \
	"    local dev = string.sub(oldest, " SID_FIELD_SKIP ")\n"                      \
	"    local cur = redis.call('HGET', dkey, dev)\n"                               \
	"    if cur then\n"                                                             \
	"      local last, dropped = string.match(cur, '^(%-?%d+) (%d+)$')\n"           \
	"      redis.call('HSET', dkey, dev, last .. ' ' .. (tonumber(dropped) + 1))\n" \
	"    end\n"                                                                     \
	"  end\n"                                                                       \
	"end\n"

/* Where a device's name starts in an outcome's field, "<session id>\n<device>" (Lua, from 1). */
#define SID_FIELD_SKIP "34"

static const char transition_lua[] = OUTCOMES_ROOM_LUA
	/* A party's devices known to Redis keep the outcome of a session that ended. */
	"local function party_ended(dkey, okey, event)\n"
	"  local devs = redis.call('HGETALL', dkey)\n"
	"  if #devs == 0 then\n"
	"    return\n"
	"  end\n"
	"  local t, keep, max = tonumber(ARGV[16]), tonumber(ARGV[17]), tonumber(ARGV[18])\n"
	"  local value = t .. ' ' .. event .. ' ' .. ARGV[14] .. event .. ARGV[15]\n"
	"  for i = 1, #devs, 2 do\n"
	"    local last, dropped = string.match(devs[i + 1], '^(%-?%d+) (%d+)$')\n"
	"    if tonumber(last) < t - keep then\n"
	"      redis.call('HDEL', dkey, devs[i])\n"
	"    else\n"
	"      if max > 0 and redis.call('HLEN', okey) >= max then\n"
	"        outcomes_room(dkey, okey, t - keep, max)\n"
	"        dropped = string.match(redis.call('HGET', dkey, devs[i]), ' (%d+)$')\n"
	"      end\n"
	"      redis.call('HSET', okey, ARGV[6] .. '\\n' .. devs[i], value)\n"
	"      redis.call('HSET', dkey, devs[i], math.max(t, tonumber(last)) .. ' ' .. dropped)\n"
	"    end\n"
	"  end\n"
	"  redis.call('PEXPIRE', dkey, keep)\n"
	"  if redis.call('EXISTS', okey) == 1 then\n"
	"    redis.call('PEXPIRE', okey, keep)\n"
	"  end\n"
	"end\n"
	"if ARGV[10] ~= '' then\n"
	"  local kept = redis.call('GET', KEYS[6])\n"
	"  if kept then\n"
	"    return {2, kept}\n"
	"  end\n"
	"end\n"
	"if ARGV[13] == '+' and ARGV[12] ~= '' then\n"
	"  local live = redis.call('SCARD', KEYS[7])\n"
	"  if live >= tonumber(ARGV[12]) then\n"
	"    return {3, live}\n"
	"  end\n"
	"end\n"
	"local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')\n"
	"if version ~= tonumber(ARGV[1]) then\n"
	"  local h = redis.call('HMGET', KEYS[1], 'record', 'seq', 'event')\n"
	"  return {0, version, h[1], tonumber(h[2] or '0'), tonumber(h[3] or '0')}\n"
	"end\n"
	"local id, event, seq = 0, 0, 0\n"
	"if ARGV[3] ~= '' then\n"
	"  id = redis.call('INCR', KEYS[2])\n"
	"  event = id\n"
	"else\n"
	"  event = tonumber(redis.call('HGET', KEYS[1], 'event') or '0')\n"
	"end\n"
	"if version == 0 then\n"
	"  seq = id\n"
	"  redis.call('ZADD', KEYS[5], seq, ARGV[6])\n"
	"else\n"
	"  seq = tonumber(redis.call('HGET', KEYS[1], 'seq'))\n"
	"end\n"
	"local fs = redis.call('INCR', KEYS[3])\n"
	"local msg = fs .. ' ' .. id .. ' ' .. (version + 1) .. ' ' .. seq .. ' ' .. event ..\n"
	"            ' ' .. ARGV[9] .. '\\n' .. ARGV[2] .. '\\n'\n"
	"if id ~= 0 then\n"
	"  msg = msg .. ARGV[3] .. id .. ARGV[4]\n"
	"end\n"
	"redis.call('HSET', KEYS[1], 'version', version + 1, 'record', ARGV[2], 'seq', seq,\n"
	"           'event', event)\n"
	"if ARGV[5] ~= '' then\n"
	"  redis.call('PEXPIRE', KEYS[1], ARGV[5])\n"
	"end\n"
	"redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], fs .. '-1', 'm', msg)\n"
	"redis.call('PUBLISH', ARGV[8], msg)\n"
	"if ARGV[10] ~= '' then\n"
	"  redis.call('SET', KEYS[6], ARGV[10], 'PX', ARGV[11])\n"
	"end\n"
	"if ARGV[13] == '+' then\n"
	"  redis.call('SADD', KEYS[7], ARGV[6])\n"
	"elseif ARGV[13] == '-' then\n"
	"  redis.call('SREM', KEYS[7], ARGV[6])\n"
	"end\n"
	"if ARGV[14] ~= '' then\n"
	"  party_ended(KEYS[8], KEYS[9], event)\n"
	"  if ARGV[19] == '1' then\n"
	"    party_ended(KEYS[10], KEYS[11], event)\n"
	"  end\n"
	"end\n"
	"return {1, fs, id, version + 1, seq, drops}\n";

/* A page of everything to start from: counters, sessions after a creation order, history. */
static const char snapshot_lua[] =
	"local fs = tonumber(redis.call('GET', KEYS[1]) or '0')\n"
	"local ev = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
	"redis.call('SET', KEYS[5], ARGV[3], 'NX')\n"
	"local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[4], '+inf', 'WITHSCORES',\n"
	"                       'LIMIT', 0, tonumber(ARGV[5]))\n"
	"local sessions, last = {}, tonumber(ARGV[4])\n"
	"for i = 1, #ids, 2 do\n"
	"  local sid = ids[i]\n"
	"  last = tonumber(ids[i + 1])\n"
	"  local h = redis.call('HMGET', ARGV[2] .. sid, 'version', 'record', 'seq', 'event')\n"
	"  if h[1] then\n"
	"    table.insert(sessions, h[1] .. ' ' .. h[3] .. ' ' .. h[4] .. '\\n' .. h[2])\n"
	"  else\n"
	"    redis.call('ZREM', KEYS[3], sid)\n"
	"  end\n"
	"end\n"
	"local log = {}\n"
	"if ARGV[6] ~= '' then\n"
	"  for _, e in ipairs(redis.call('XREVRANGE', KEYS[4], ARGV[6], '-', 'COUNT', ARGV[1])) "
	"do\n"
	"    table.insert(log, 1, e[2][2])\n"
	"  end\n"
	"end\n"
	"return {fs, ev, sessions, log, redis.call('GET', KEYS[5]), last, #ids / 2}\n";

static const char lease_lua[] =
	"local t = redis.call('TIME')\n"
	"local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
	"redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)\n"
	"if ARGV[3] == '1' then\n"
	"  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])\n"
	"else\n"
	"  redis.call('ZREM', KEYS[1], ARGV[1])\n"
	"end\n"
	"local live = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')\n"
	"table.insert(live, 1, now)\n"
	"return live\n";

/* A device's outcomes, oldest first; at a hello, the device is known from now on. */
static const char outcomes_lua[] =
	"local dkey, okey, dev = KEYS[1], KEYS[2], ARGV[1]\n"
	"local now, keep = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
	"local all = redis.call('HGETALL', okey)\n"
	"local mine, kept = {}, {}\n"
	"for j = 1, #all, 2 do\n"
	"  local t, ev, params = string.match(all[j + 1], '^(%-?%d+) (%d+) (.*)$')\n"
	"  local owner = string.sub(all[j], " SID_FIELD_SKIP ")\n"
	"  if tonumber(t) < now - keep then\n"
	"    redis.call('HDEL', okey, all[j])\n"
	"  else\n"
	"    kept[owner] = true\n"
	"    if owner == dev then\n"
	"      table.insert(mine, {tonumber(ev), params})\n"
	"    end\n"
	"  end\n"
	"end\n"
	"table.sort(mine, function(a, b) return a[1] < b[1] end)\n"
	"local out = {0}\n"
	"if ARGV[4] == '1' then\n"
	"  local devs = redis.call('HGETALL', dkey)\n"
	"  for i = 1, #devs, 2 do\n"
	"    local last, dropped = string.match(devs[i + 1], '^(%-?%d+) (%d+)$')\n"
	"    if devs[i] == dev then\n"
	"      out[1] = tonumber(dropped)\n"
	"    elseif tonumber(last) < now - keep and not kept[devs[i]] then\n"
	"      redis.call('HDEL', dkey, devs[i])\n"
	"    end\n"
	"  end\n"
	"  redis.call('HSET', dkey, dev, now .. ' 0')\n"
	"  redis.call('PEXPIRE', dkey, keep)\n"
	"end\n"
	"for _, o in ipairs(mine) do\n"
	"  table.insert(out, o[2])\n"
	"end\n"
	"return out\n";

void
redis_scripts_init(void)
{
	redis_script_init(&redis_script_transition, transition_lua);
	redis_script_init(&redis_script_lease, lease_lua);
	redis_script_init(&redis_script_snapshot, snapshot_lua);
	redis_script_init(&redis_script_outcomes, outcomes_lua);
}
