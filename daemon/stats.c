/* Limit counters. */
#include <stddef.h>

#include "log.h"
#include "stats.h"

struct stats stats;

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
