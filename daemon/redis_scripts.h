/*
 * The Lua scripts the Redis store runs (daemon/REDIS.md): one atomic step
 * each, checked and applied inside Redis. Loop thread only; the scripts are
 * static, initialised once (redis_scripts_init()) and registered with each
 * link that runs them.
 */
#ifndef RV_REDIS_SCRIPTS_H
#define RV_REDIS_SCRIPTS_H

#include "redis.h"

/*
 * transition: apply one change of one session, if nobody changed it since
 * the node read it.
 *   KEYS: 1 the session (hash), 2 the event counter, 3 the history
 *         (stream), 4 deadlines (sorted set), 5 the inviter's sessions,
 *         6 the invitee's sessions (sorted sets).
 *   ARGV: 1 the version the node decided on (0: the session must not exist
 *         yet), 2 the new record, 3 and 4 the event line before and after
 *         its id, 5 the next deadline (Unix ms, "" for none), 6 the session
 *         id, 7 its creation order, 8 how many events the history keeps,
 *         9 the channel to publish on.
 *   Returns {1, event id, new version}, or {0, current version, current
 *   record (or false)} when the version did not match: nothing changed.
 * The event goes into the history with the stream id "<event>-1" and out on
 * the channel as "<event> <line>".
 */
extern struct redis_script redis_script_transition;

/*
 * lease: renew (or give up) a node's lease, by Redis's clock, so that nodes
 * need not agree on the time.
 *   KEYS: 1 the nodes (sorted set: name -> lease end, Unix ms).
 *   ARGV: 1 the node's name, 2 the lease (ms), 3 "1" to renew, "0" to leave.
 *   Returns {now, name, end, name, end, ...}: Redis's time and every node
 *   whose lease lives, once expired ones are forgotten.
 */
extern struct redis_script redis_script_lease;

void redis_scripts_init(void);

#endif
