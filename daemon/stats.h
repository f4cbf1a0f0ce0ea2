/*
 * Counters of what the daemon refused or cut off, one per limit, so that
 * every limit is counted where it answers. Loop thread only.
 */
#ifndef RV_STATS_H
#define RV_STATS_H

#include <stdint.h>

struct stats {
	uint64_t refused_connections;     /* --max-connections */
	uint64_t refused_per_address;     /* --max-connections-per-address */
	uint64_t auth_failures;           /* failed hellos (4001) */
	uint64_t auth_blocked;            /* hellos refused for --max-auth-failures */
	uint64_t hello_timeouts;          /* --hello-timeout */
	uint64_t lines_too_long;          /* --max-line, --max-hello-line */
	uint64_t limit_sessions_per_user; /* --max-sessions-per-user */
	uint64_t limit_subscriptions;     /* --max-subscriptions */
	uint64_t limit_data;              /* --max-data */
	uint64_t limit_request_rate;      /* --max-request-rate */
	uint64_t slow_consumers;          /* --max-pending */
	uint64_t store_failures;          /* commits that failed (disk full, I/O error) */
};

extern struct stats stats;

/* Log every counter that is not zero (at shutdown). */
void stats_log(void);

#endif
