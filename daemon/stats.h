/*
 * What the daemon counts: refusals per limit, transitions, endings, errors,
 * deliveries, and latency histograms. Counted where each thing happens,
 * read by metrics.c (Prometheus), admin.stats and the shutdown log. Loop
 * thread only.
 *
 * Process-wide: `stats` is the one other global every module may write
 * (next to `config`); it is read and written on the loop thread only.
 */
#ifndef RV_STATS_H
#define RV_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "rendezvous.h"

/* Upper bounds of the latency histograms' buckets, in seconds (+Inf is implied). */
#define STATS_BUCKETS 16
extern const double stats_bucket_bounds[STATS_BUCKETS];

struct histogram {
	uint64_t buckets[STATS_BUCKETS + 1]; /* per bucket, not cumulative; the last is +Inf */
	uint64_t count;
	double sum; /* seconds */
};

/* The reasons a session ends, as the metrics label them. */
enum stats_end {
	END_CANCEL = 0, /* the inviter cancelled */
	END_DECLINE,    /* the invitee declined */
	END_TERMINATE,  /* a party terminated */
	END_ADMIN,      /* an admin terminated */
	END_EXPIRED,    /* ttl passed before RSS_CONNECTED */
	END_PEER_LOST,  /* an engaged party stayed away past --peer-grace */
	END_GLARE,      /* replaced by a crossing invitation that came first */
	END_COUNT,
};
extern const char *const stats_end_names[END_COUNT];

/* The error codes counted, in this order (every code in proto/PROTOCOL.md). */
#define STATS_ERRORS 14
extern const int stats_error_codes[STATS_ERRORS];

/* Methods with a latency histogram each (rpc.c's table, by index). */
#define STATS_METHODS 24

struct stats {
	uint64_t refused_connections;     /* --max-connections */
	uint64_t refused_per_address;     /* --max-connections-per-address */
	uint64_t auth_failures;           /* failed hellos (4001) */
	uint64_t auth_blocked;            /* hellos refused for --max-auth-failures */
	uint64_t hello_timeouts;          /* --hello-timeout */
	uint64_t lines_too_long;          /* --max-line, --max-hello-line */
	uint64_t limit_sessions_per_user; /* --max-sessions-per-user */
	uint64_t limit_user_bytes;        /* --max-user-bytes */
	uint64_t limit_subscriptions;     /* --max-subscriptions */
	uint64_t limit_data;              /* --max-data */
	uint64_t limit_request_rate;      /* --max-request-rate */
	uint64_t slow_consumers;          /* --max-pending */
	uint64_t store_failures;          /* commits that failed (disk full, I/O error) */

	uint64_t connections_accepted;
	uint64_t sessions_created;
	uint64_t transitions[RV_STATE_COUNT][RV_STATE_COUNT]; /* [from][to] */
	uint64_t ended[END_COUNT];
	uint64_t events_published;         /* state changes, each once */
	uint64_t events_delivered;         /* notifications queued to subscribers */
	uint64_t bytes_delivered;          /* their bytes, context data relayed included */
	uint64_t contexts_relayed;         /* session.send deliveries */
	uint64_t outcomes_kept;            /* now: outcomes not acknowledged (outcomes.c) */
	uint64_t outcome_devices;          /* now: devices outcomes are kept for */
	uint64_t outcomes_sent;            /* session.outcome notifications queued */
	uint64_t outcomes_dropped;         /* over --max-outcomes */
	int64_t started_ms;                /* when the daemon started (Unix ms) */
	uint64_t requests;                 /* requests handled (batch elements each) */
	uint64_t errors[STATS_ERRORS + 1]; /* by stats_error_codes; the last: others */
	uint64_t reloads, reload_failures;

	struct histogram request_seconds[STATS_METHODS];
	struct histogram commit_seconds;
	struct histogram redis_seconds; /* a shared store's change: sent until Redis answered */
};

extern struct stats stats;

/* The refusal counters by the limit (setting) that refused, in snake case. */
struct stats_limit {
	const char *name;
	const uint64_t *value;
};
#define STATS_LIMITS 11
extern const struct stats_limit stats_limits[STATS_LIMITS];

/* Count one observation of seconds. */
void histogram_observe(struct histogram *h, double seconds);
/* Count an error answer with this code. */
void stats_error(int code);
/* Count a session ended by action a; reason: the daemon's ("admin"), or NULL. */
void stats_ended(enum rv_action a, const char *daemon_reason);
/* Seconds on the monotonic clock, for latencies. */
double stats_clock(void);

/* Log every limit counter that is not zero (at shutdown). */
void stats_log(void);

#endif
