/*
 * The daemon's settings, filled by options_parse().
 *
 * Process-wide: `config` is written only by options_parse() and
 * options_use() (start-up and SIGHUP, on the loop thread) and read by every
 * module. Strings and arrays in it are owned by it.
 */
#ifndef RV_CONFIG_H
#define RV_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "log.h"

/* What a reply to a change promises (--durability); the store acts on it. */
enum store_durability {
	STORE_NORMAL = 0, /* committed with write(): survives any process crash */
	STORE_STRICT,     /* and fsync()ed at each commit: survives power loss */
};

enum auth_mode {
	AUTH_NONE = 0, /* the claimed user name is trusted */
	AUTH_JWT,      /* hello carries a JSON Web Token */
};

struct config {
	char **listen; /* "HOST:PORT" or "unix:/PATH" strings */
	size_t nlisten;
	bool listen_default; /* listen holds only the default (none was given) */
	char **listen_tls;   /* "HOST:PORT" strings, for TLS */
	size_t nlisten_tls;
	char **listen_ws; /* "HOST:PORT" strings, for WebSocket */
	size_t nlisten_ws;
	char **listen_wss; /* "HOST:PORT" strings, for WebSocket inside TLS */
	size_t nlisten_wss;
	char **ws_origins; /* the browser origins a WebSocket handshake may come from */
	size_t nws_origins;
	int64_t ws_ping_ms;       /* WebSocket keepalive: a ping this often (0: none) */
	char *tls_cert, *tls_key; /* PEM files for TLS listeners */
	char *tls_client_ca;      /* CAs for client certificates (mutual TLS), or NULL */
	bool insecure;            /* allow --auth none on a non-loopback address */

	enum auth_mode auth;
	char **jwt_keys; /* "[KID=]ALG:FILE" */
	size_t njwt_keys;
	char *jwt_audience, *jwt_issuer; /* required values, or NULL */
	int64_t jwt_leeway_ms;           /* clock skew allowed on exp and nbf */
	char **observers;                /* user names granted the observer role */
	size_t nobservers;
	char **admins; /* user names granted the admin role */
	size_t nadmins;

	int64_t invite_ttl_ms; /* default ttl of an invitation */
	int64_t max_ttl_ms;    /* the most session.create's ttl may ask for */
	int64_t peer_grace_ms; /* how long an engaged party may be away */
	int64_t linger_ms;     /* how long ended sessions stay readable */

	size_t max_line;               /* longest request line, bytes */
	size_t max_pending;            /* unsent output before a client is cut off */
	size_t max_connections;        /* connections at once */
	size_t max_conns_per_address;  /* from one IP address; 0: no limit */
	size_t max_auth_failures;      /* failed hellos per address per minute */
	int64_t hello_timeout_ms;      /* time a connection has to say hello */
	size_t max_hello_line;         /* longest line before hello */
	size_t max_data;               /* encoded size of context and app data */
	size_t max_request_rate;       /* requests per second per connection; 0: no limit */
	size_t max_request_burst;      /* requests at once above that rate */
	size_t max_sessions_per_user;  /* live sessions a user may have created */
	size_t max_user_bytes;         /* what those and its lingering ones may hold; 0: no limit */
	size_t max_subscriptions;      /* subscriptions per connection */
	size_t history;                /* events kept for subscribe {since} */
	int64_t history_age_ms;        /* and for at most this long */
	size_t history_bytes;          /* and in at most this much memory (encoded lines) */
	int64_t idempotency_window_ms; /* how long a request's idempotency key is kept */
	int64_t outcome_retention_ms;  /* how long an unacknowledged outcome is kept */
	size_t max_outcomes;           /* unacknowledged outcomes kept per user */

	char *store;     /* "memory", "sqlite:PATH" or a Redis URL; NULL: sqlite:rendezvous.db */
	char *state_dir; /* where a relative store path points */
	enum store_durability durability;
	bool check_store;          /* --check-store: verify the store and exit */
	char *redis_password_file; /* the Redis password, first line of this file, or NULL */
	char *node_name;           /* this node's name in a shared store; NULL: host:port */
	int64_t store_timeout_ms;  /* how long a shared store may take to answer */
	bool check_config;         /* --check-config: check the settings and exit */

	char *metrics;               /* "HOST:PORT" for Prometheus metrics, or NULL */
	int64_t shutdown_timeout_ms; /* how long SIGTERM waits for output to drain */

	enum log_level log_level;
};

extern struct config config;

/*
 * Fill config from the configuration file and the command line (flags win);
 * exits on --help, --version and errors (2; 1 with --check-config).
 */
void options_parse(int argc, char **argv);
/* The configuration file read (it may not exist). */
const char *options_config_path(void);
/*
 * Reload: read the file and the same flags into next. -1 after logging every
 * error (next is then empty). Then options_use() makes next the settings,
 * keeping those only a restart changes, or options_discard() drops it.
 */
int options_load_next(struct config *next);
void options_use(struct config *next);
void options_discard(struct config *next);
void options_finish(void);

#endif
