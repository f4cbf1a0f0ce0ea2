/* Counters and histograms. */
#include <stddef.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "stats.h"

struct stats stats;

const double stats_bucket_bounds[STATS_BUCKETS] = {
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025,   0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,
};

const char *const stats_end_names[END_COUNT] = {
	"cancel", "decline", "terminate", "admin", "expired", "peer_lost", "glare",
};

const int stats_error_codes[STATS_ERRORS] = {
	RV_ERR_PARSE,
	RV_ERR_INVALID_REQUEST,
	RV_ERR_METHOD_NOT_FOUND,
	RV_ERR_INVALID_PARAMS,
	RV_ERR_INTERNAL,
	RV_ERR_UNAUTHENTICATED,
	RV_ERR_FORBIDDEN,
	RV_ERR_NO_SESSION,
	RV_ERR_INVALID_TRANSITION,
	RV_ERR_PEER_UNAVAILABLE,
	RV_ERR_TOO_LARGE,
	RV_ERR_LIMIT,
	RV_ERR_HISTORY_GONE,
	RV_ERR_UNAVAILABLE,
};

const struct stats_limit stats_limits[STATS_LIMITS] = {
	{"max_connections", &stats.refused_connections},
	{"max_connections_per_address", &stats.refused_per_address},
	{"max_auth_failures", &stats.auth_blocked},
	{"hello_timeout", &stats.hello_timeouts},
	{"max_line", &stats.lines_too_long},
	{"max_sessions_per_user", &stats.limit_sessions_per_user},
	{"max_user_bytes", &stats.limit_user_bytes},
	{"max_subscriptions", &stats.limit_subscriptions},
	{"max_data", &stats.limit_data},
	{"max_request_rate", &stats.limit_request_rate},
	{"max_pending", &stats.slow_consumers},
};

void
histogram_observe(struct histogram *h, double seconds)
{
	size_t i = 0;

	while (i < STATS_BUCKETS && seconds > stats_bucket_bounds[i])
		i++;
	h->buckets[i]++;
	h->count++;
	h->sum += seconds;
}

void
stats_error(int code)
{
	size_t i = 0;

	while (i < STATS_ERRORS && stats_error_codes[i] != code)
		i++;
	stats.errors[i]++;
}

void
stats_ended(enum rv_action a, const char *daemon_reason)
{
	enum stats_end e;

	switch (a) {
	case RV_ACT_CANCEL: e = END_CANCEL; break;
	case RV_ACT_DECLINE: e = END_DECLINE; break;
	case RV_ACT_EXPIRE: e = END_EXPIRED; break;
	case RV_ACT_PEER_LOST: e = END_PEER_LOST; break;
	default:
		e = daemon_reason == NULL                 ? END_TERMINATE
		    : strcmp(daemon_reason, "admin") == 0 ? END_ADMIN
		    : strcmp(daemon_reason, "glare") == 0 ? END_GLARE
							  : END_TERMINATE;
		break;
	}
	stats.ended[e]++;
}

double
stats_clock(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void
stats_log(void)
{
	static const struct {
		const char *name;
		const uint64_t *value;
	} rows[] = {
		{"connections refused (max-connections)", &stats.refused_connections},
		{"connections refused (max-connections-per-address)", &stats.refused_per_address},
		{"failed hellos", &stats.auth_failures},
		{"hellos refused (max-auth-failures)", &stats.auth_blocked},
		{"connections without hello in time", &stats.hello_timeouts},
		{"lines too long", &stats.lines_too_long},
		{"sessions refused (max-sessions-per-user)", &stats.limit_sessions_per_user},
		{"sessions refused (max-user-bytes)", &stats.limit_user_bytes},
		{"subscriptions refused (max-subscriptions)", &stats.limit_subscriptions},
		{"data refused (max-data)", &stats.limit_data},
		{"requests refused (max-request-rate)", &stats.limit_request_rate},
		{"slow consumers cut off (max-pending)", &stats.slow_consumers},
		{"store commits failed", &stats.store_failures},
	};

	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		if (*rows[i].value > 0)
			log_info("limits: %llu %s", (unsigned long long)*rows[i].value,
				 rows[i].name);
	}
}
