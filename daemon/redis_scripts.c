/* The Redis store's Lua scripts (see redis_scripts.h for each one's contract). */
#include "redis_scripts.h"

struct redis_script redis_script_transition;
struct redis_script redis_script_lease;

static const char transition_lua[] =
	"local version = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')\n"
	"if version ~= tonumber(ARGV[1]) then\n"
	"  return {0, version, redis.call('HGET', KEYS[1], 'record')}\n"
	"end\n"
	"local id = redis.call('INCR', KEYS[2])\n"
	"local line = ARGV[3] .. id .. ARGV[4]\n"
	"redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[8], id .. '-1', 'line', line,\n"
	"           'session', ARGV[6])\n"
	"redis.call('HSET', KEYS[1], 'version', version + 1, 'record', ARGV[2], 'event', id)\n"
	"if ARGV[5] == '' then\n"
	"  redis.call('ZREM', KEYS[4], ARGV[6])\n"
	"else\n"
	"  redis.call('ZADD', KEYS[4], ARGV[5], ARGV[6])\n"
	"end\n"
	"redis.call('ZADD', KEYS[5], ARGV[7], ARGV[6])\n"
	"redis.call('ZADD', KEYS[6], ARGV[7], ARGV[6])\n"
	"redis.call('PUBLISH', ARGV[9], id .. ' ' .. line)\n"
	"return {1, id, version + 1}\n";

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

void
redis_scripts_init(void)
{
	redis_script_init(&redis_script_transition, transition_lua);
	redis_script_init(&redis_script_lease, lease_lua);
}
