/* The daemon's settings, filled by options_parse(). */
#ifndef RV_CONFIG_H
#define RV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

struct config {
	char **listen; /* "HOST:PORT" strings */
	size_t nlisten;
	char **observers; /* user names granted the observer role */
	size_t nobservers;

	int64_t invite_ttl_ms; /* default ttl of an invitation */
	int64_t max_ttl_ms;    /* the most session.create's ttl may ask for */
	int64_t peer_grace_ms; /* how long an engaged party may be away */
	int64_t linger_ms;     /* how long ended sessions stay readable */

	size_t max_line;              /* longest request line, bytes */
	size_t max_pending;           /* unsent output before a client is cut off */
	size_t max_connections;       /* connections at once */
	size_t max_sessions_per_user; /* live sessions a user may have created */
	size_t max_subscriptions;     /* subscriptions per connection */
	size_t history;               /* events kept for subscribe {since} */

	enum log_level log_level;
};

extern struct config config;

/* Fill config from the command line; exits on --help, --version, errors. */
void options_parse(int argc, char **argv);
void options_finish(void);

#endif
