/*
 * Outcomes (outcomes.h) kept in Redis when sessions are shared (shared.h),
 * so that a device learns how a session ended whichever node it says hello
 * to next. The transition script leaves an ended session's outcome with
 * every device of its parties that Redis knows (redis_scripts.h); this
 * module reads a device's outcomes (making it known at its hello), and
 * forgets one once the device learned it (its final event was written to
 * one of its connections) or acknowledged it.
 *
 * shared_outcomes_start() and _stop() are called by shared.c, the rest by
 * outcomes.c and the rpc methods. Loop thread only. Strings passed in are
 * borrowed for the call; what a callback gets is borrowed for the callback.
 */
#ifndef RV_SHARED_OUTCOMES_H
#define RV_SHARED_OUTCOMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct event_base;
struct redis_link;

/* Keep outcomes through the command link (borrowed until shared_outcomes_stop()). */
void shared_outcomes_start(struct event_base *base, struct redis_link *cmd);
void shared_outcomes_stop(void);
/* Whether outcomes are kept in Redis (between start and stop). */
bool shared_outcomes_on(void);

/* What a device's outcomes read found. */
struct shared_outcomes {
	int64_t dropped;     /* a hello: outcomes dropped since its last one */
	size_t n;            /* outcomes, oldest first: */
	const char **params; /* session.outcome's params, compact JSON, */
	const size_t *lens;  /* of these lengths */
};
/* o NULL: Redis did not answer in time, or is unreachable. */
typedef void (*shared_outcomes_fn)(void *arg, const struct shared_outcomes *o);
/*
 * Read user's device's outcomes; with hello, the device is known from now
 * on. fn(arg, ...) is called once, later, never from inside this call.
 */
void shared_outcomes_read(const char *user, const char *device, bool hello, shared_outcomes_fn fn,
			  void *arg);
/* n: how many outcomes the acknowledgement forgot, or -1 (Redis did not answer). */
typedef void (*shared_outcomes_count_fn)(void *arg, long long n);
/* user's device acknowledged these sessions (n ids): forget their outcomes. As _read(). */
void shared_outcomes_ack(const char *user, const char *device,
			 const uint8_t (*sids)[SESSION_ID_BYTES], size_t n,
			 shared_outcomes_count_fn fn, void *arg);
/* user's device learned how session sid ended: forget the outcome (nobody waits). */
void shared_outcomes_learned(const char *user, const char *device, const uint8_t *sid);

#endif
