/*
 * A link to Redis: one hiredis asynchronous connection on the daemon's event
 * loop, kept up. It connects (AUTH when a password is given, SELECT when the
 * database is not 0, SCRIPT LOAD of the registered scripts), sends commands,
 * and when the connection drops, or a reply (or the connection itself) takes
 * longer than the timeout, it fails every command in flight and reconnects
 * with backoff. hiredis 0.14 has no command timeout of its own: the link
 * keeps its commands in send order (Redis answers in order) and checks the
 * oldest.
 *
 * A link given channels (redis_link_subscribe()) is a subscriber: it
 * subscribes to them at every connect, is up once Redis confirmed them all,
 * and takes no commands. A subscriber's connection can die without the
 * kernel noticing, and Redis does not answer PING to a subscriber in a way
 * hiredis 0.14 can route, so its owner publishes on one of its channels
 * (a heartbeat) and tells it how long a silence may last
 * (redis_link_expect()): a longer one is a dead connection, dropped and
 * made again. The owner learns of each reconnect (on_up) and fills the gap.
 *
 * Loop thread only. The caller owns a link (redis_link_free()) and the
 * scripts it registers (they must outlive it). Replies are borrowed for the
 * duration of the callback.
 */
#ifndef RV_REDIS_H
#define RV_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

struct event_base;
struct redis_link;

#define REDIS_MAX_SENTINELS 8

/*
 * Where Redis is: a TCP host and port, a Unix socket, or the primary that
 * Sentinels name; the user and database.
 */
struct redis_addr {
	char host[256]; /* "" for a Unix socket or Sentinel; IPv6 without brackets */
	int port;
	char path[108]; /* the Unix socket, or "" */
	char user[128]; /* ACL user for AUTH, or "" (the default user) */
	int db;
	/* Sentinel: ask these for the primary called master (and follow its failovers). */
	int nsentinels;
	char sentinel_host[REDIS_MAX_SENTINELS][256];
	int sentinel_port[REDIS_MAX_SENTINELS];
	char master[128];
};

/*
 * Parse redis://[USER@]HOST[:PORT][/DB] (HOST may be [IPv6]; PORT defaults to
 * 6379, DB to 0), redis+unix:///PATH[?db=N], or
 * redis-sentinel://[USER@]HOST[:PORT],HOST[:PORT].../NAME[?db=N] (Sentinels,
 * port 26379 by default, and the name of the primary they watch). 0, or -1
 * with why in err.
 */
int redis_addr_parse(const char *url, struct redis_addr *a, char *err, size_t errlen);
/* "HOST:PORT/DB" or "unix:PATH/DB", for logs (into buf). */
const char *redis_addr_format(const struct redis_addr *a, char *buf, size_t len);

/* A Lua script run with EVALSHA, loaded at each connect and again on NOSCRIPT. */
struct redis_script {
	const char *source;
	char sha[41]; /* SHA-1 of source, hex: redis_script_init() */
};

/* Fill in s->sha for source (borrowed: it must outlive s). */
void redis_script_init(struct redis_script *s, const char *source);

/* What the link's owner is told. arg is what it gave redis_link_new(). */
struct redis_link_ops {
	/* Connected, authenticated, database selected, scripts loaded. */
	void (*on_up)(void *arg);
	/* Lost (or never made): every command in flight was failed first. */
	void (*on_down)(void *arg, const char *why);
};

/*
 * A reply, or (r NULL) why there is none: the link went down or the reply
 * was late. A Redis error is a reply of type REDIS_REPLY_ERROR.
 */
typedef void (*redis_reply_fn)(void *arg, const redisReply *r, const char *err);

/*
 * A link to a, connecting now. password (copied) may be NULL. timeout_ms
 * bounds connecting and every reply. ops is borrowed. NULL on failure.
 */
struct redis_link *redis_link_new(struct event_base *base, const struct redis_addr *a,
				  const char *password, int64_t timeout_ms,
				  const struct redis_link_ops *ops, void *arg);
/*
 * Close the link; commands in flight are failed ("link closed"). Not from
 * inside one of the link's own callbacks.
 */
void redis_link_free(struct redis_link *l);
/*
 * Load s (borrowed; one script may serve several links) at every connect,
 * from the next one on, and now if up. -1 when out of memory.
 */
int redis_link_add_script(struct redis_link *l, struct redis_script *s);

/* A message published on a channel; both borrowed for the call. */
typedef void (*redis_message_fn)(void *arg, const char *channel, const char *data, size_t len);
/*
 * Make l a subscriber to channel (copied), from its next connect on: call
 * this before the first turn of the loop after redis_link_new(). -1 when
 * out of memory.
 */
int redis_link_subscribe(struct redis_link *l, const char *channel, redis_message_fn fn, void *arg);
/* A subscriber: drop and remake the connection after ms without a message (0: never). */
void redis_link_expect(struct redis_link *l, int64_t ms);
bool redis_link_up(const struct redis_link *l);
/* The server the link is (or was last) connected to, "HOST:PORT" or "unix:PATH", into buf. */
const char *redis_link_where(const struct redis_link *l, char *buf, size_t len);

/*
 * Send a command (argv[i] of lens[i] bytes, copied). fn is called once,
 * later, never inside this call. -1 when the link is not up, or is a
 * subscriber (fn is never called).
 */
int redis_link_command(struct redis_link *l, redis_reply_fn fn, void *arg, int argc,
		       const char **argv, const size_t *lens);
/*
 * Run s: EVALSHA sha nkeys args...; on NOSCRIPT (Redis lost its scripts)
 * the same with EVAL and the source. As redis_link_command().
 */
int redis_link_eval(struct redis_link *l, struct redis_script *s, redis_reply_fn fn, void *arg,
		    int nkeys, int argc, const char **argv, const size_t *lens);

/* Counters of one link. */
struct redis_link_stats {
	uint64_t connects;    /* times up */
	uint64_t disconnects; /* times down after being up */
	uint64_t timeouts;    /* replies (or connects) that came too late */
	uint64_t noscript;    /* scripts loaded again on NOSCRIPT */
	uint64_t commands;    /* sent */
	uint64_t messages;    /* received by a subscriber */
	size_t in_flight;     /* sent, not answered yet */
};
void redis_link_stats(const struct redis_link *l, struct redis_link_stats *out);

#endif
