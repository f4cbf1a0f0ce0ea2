/*
 * Outcomes that always arrive: a device of a party that said hello (with a
 * device id it chose) before a session ended, and did not get that
 * session's final session.state_changed (written to one of its
 * connections: a write receipt from the transport tells), gets
 * session.outcome right after its next hello, until it acknowledges it
 * (session.ack). Kept for
 * --outcome-retention, at most --max-outcomes per user (the oldest dropped
 * first, counted for the device's next hello), in the store across
 * restarts; a failed commit reloads them.
 *
 * Loop thread only. Strings passed in are borrowed; JSON returned is new.
 */
#ifndef RV_OUTCOMES_H
#define RV_OUTCOMES_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

struct conn;
struct event_base;

/* Start keeping outcomes; their sweep runs on base. */
int outcomes_init(struct event_base *base);
void outcomes_finish(void);
/* Load what the store holds (at start-up). 0, or -1 after logging. */
int outcomes_recover(void);

/*
 * user's device said hello at now: known from now on. Returns how many of
 * its outcomes were dropped (over --max-outcomes) since its last hello.
 */
int64_t outcomes_hello(const char *user, const char *device, int64_t now);
/* Whether user has a device that would keep outcomes (one that named itself). */
bool outcomes_wanted(const char *user);
/* A session of these parties ended at time: params is session.outcome's, compact JSON. */
void outcomes_session_ended(const char *inviter, const char *invitee, const uint8_t *sid,
			    int64_t time, const char *params);
/* Queue every outcome user's device has not acknowledged to c, as notifications. */
void outcomes_send(struct conn *c, const char *user, const char *device);
/* Acknowledge the sessions (hex ids, borrowed array); how many were pending. */
size_t outcomes_ack(const char *user, const char *device, const json_t *sessions);
/* The outcomes user's device has not acknowledged, oldest first (a new array), or NULL. */
json_t *outcomes_list(const char *user, const char *device);

#endif
