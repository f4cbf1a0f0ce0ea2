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
 *   KEYS: 1 the session (hash: version, record, seq, event), 2 the event
 *         counter, 3 the feed counter, 4 the feed's history (stream),
 *         5 every session (sorted set by creation order), 6 the
 *         request's idempotency key (any name when it has none), 7 the
 *         inviter's live sessions (a set, for the per-user limit), 8 and
 *         9 the inviter's outcome devices and outcomes (see outcomes),
 *         10 and 11 the invitee's.
 *   ARGV: 1 the version the node decided on (0: the session must not exist
 *         yet), 2 the new record, 3 and 4 the event line before and after
 *         its id ("" and "": no event, the record alone changed), 5 how
 *         long the session is kept from now, in ms ("" for ever), 6 the
 *         session id, 7 how many feed messages the history keeps, 8 the
 *         channel to publish on, 9 a tag for the node's own use (no
 *         space), 10 what the idempotency key holds once the change is
 *         applied ("": no key), 11 how long it is kept (ms), 12 how
 *         many live sessions the inviter may have ("": no limit), 13 "+"
 *         the change creates the session, "-" ends it, "" neither, 14
 *         and 15 session.outcome's params before and after the event id
 *         ("": the session does not end), 16 when it ended (Unix ms), 17
 *         how long outcomes are kept (ms), 18 how many per user (0: no
 *         limit), 19 "1" when the invitee keeps the outcome too.
 *   A session that ends leaves its outcome with every device of its
 *   parties that Redis knows (one that said hello, seen within the
 *   retention), making room under the limit first (forgetting what is older
 *   than the retention, then the user's oldest, counted as dropped on its
 *   device).
 *   Returns {1, feed position, event id (0: none), new version, creation
 *   order, outcomes dropped to make room}, or {0, current version, current record (or false),
 * creation order, latest event} when the version did not match: nothing changed; or {2, what the
 * key holds} when the key exists, or {3, live sessions} when a creation would pass the limit:
 * nothing changed. A session's creation order is its first event's id. Every change is one message,
 * numbered by the feed counter, added to the history with the stream id "<position>-1" and
 * published on the channel:
 *   "<position> <event id or 0> <version> <order> <latest event> <tag>\n"
 *   "<record>\n<event line, if any>"
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

/*
 * snapshot: one page of everything a node starts from, so that no call
 * holds Redis long (a node reads page after page).
 *   KEYS: 1 the feed counter, 2 the event counter, 3 every session (sorted
 *         set by creation order; ids whose session expired are removed from
 *         it), 4 the history, 5 the epoch (set to ARGV 3 unless it exists).
 *   ARGV: 1 how many history messages to return, 2 the session keys'
 *         prefix, 3 a new random epoch, 4 the creation order to start after
 *         (0: the first page), 5 how many sessions to look at, 6 where the
 *         history page ends (a stream id for XREVRANGE: "+" the newest,
 *         "(<position>-1" before a position; "": no history on this page).
 *   Returns {feed position, last event id, {"<version> <order> <latest
 *   event>\n<record>", ...} in creation order, {message, ...} oldest first,
 *   epoch, the last creation order looked at, how many were looked at}.
 *   The counters of the first page, read at the same instant as its history,
 *   are where the node starts; sessions of later pages may be newer, which
 *   their versions tell. The epoch changes only when Redis lost its data.
 */
extern struct redis_script redis_script_snapshot;

/*
 * outcomes: a device's outcomes, and at its hello, make the device known
 * from now on (so that sessions ending later leave their outcome with it).
 *   KEYS: 1 the user's devices (hash: device -> "<last seen or given an
 *         outcome, Unix ms> <outcomes dropped since its last hello>"), 2 the
 *         user's outcomes (hash: "<session id>\n<device>" -> "<ended, Unix
 *         ms> <event id> <session.outcome's params>").
 *   ARGV: 1 the device, 2 now (Unix ms), 3 how long outcomes and devices
 *         are kept (ms), 4 "1" for a hello.
 *   Returns {outcomes dropped since the device's last hello (0 unless a
 *   hello), params, params, ...}: the device's outcomes in event order.
 *   Outcomes older than the retention are forgotten on the way, and at a
 *   hello the user's devices not seen for as long with nothing kept. A
 *   device learns an outcome (or acknowledges it) by HDEL of its field.
 */
extern struct redis_script redis_script_outcomes;

void redis_scripts_init(void);

#endif
