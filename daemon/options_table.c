/*
 * Every setting of rendezvousd, said once: the command line, the
 * configuration file, the defaults, reloads and --help come from here.
 * --help lists them in this order, under the sections named here.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "options.h"
#include "redis.h"
#include "rendezvous.h"

#define FIELD(f) .off = offsetof(struct config, f), .size = sizeof(((struct config *)0)->f)
#define LIST(f, n) FIELD(f), .count_off = offsetof(struct config, n)

static bool
valid_nonempty(const char *value)
{
	return *value != '\0';
}

static bool
valid_hostport(const char *value)
{
	char *host, *port;

	if (rv_parse_hostport(value, &host, &port, RV_DEFAULT_PORT_STR) != 0)
		return false;
	free(host);
	free(port);
	return true;
}

static bool
valid_listen(const char *value)
{
	if (strncmp(value, "unix:", 5) == 0)
		return value[5] == '/' && strlen(value + 5) < 108;
	return valid_hostport(value);
}

static bool
valid_store(const char *value)
{
	struct redis_addr a;
	char why[128];

	if (strncmp(value, "redis", 5) == 0)
		return redis_addr_parse(value, &a, why, sizeof why) == 0;
	return strcmp(value, "memory") == 0 ||
	       (strncmp(value, "sqlite:", 7) == 0 && value[7] != '\0');
}

/* A node name: 1 to 64 printable bytes, no space (it goes into log lines and metric labels). */
static bool
valid_node_name(const char *value)
{
	size_t n = strlen(value);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)value[i] <= ' ' || value[i] == '"' || value[i] == '\\' ||
		    value[i] == 0x7f)
			return false;
	}
	return true;
}

static const char *const auth_modes[] = {[AUTH_NONE] = "none", [AUTH_JWT] = "jwt", NULL};
static const char *const durabilities[] = {
	[STORE_NORMAL] = "normal", [STORE_STRICT] = "strict", NULL};

const struct opt_def options_table[] = {
	{.name = "listen",
	 .type = OPT_LIST,
	 LIST(listen, nlisten),
	 .valid = valid_listen,
	 .restart = true,
	 .section = "Listening:",
	 .arg = "HOST:PORT|unix:/PATH",
	 .help = "address to listen on; repeatable; port 0 picks a free port (the bound address "
		 "is logged)",
	 .help_default = "127.0.0.1:" RV_DEFAULT_PORT_STR " and [::1]:" RV_DEFAULT_PORT_STR
			 " (where IPv6 is on), or the sockets systemd passes",
	 .expect = "expected HOST:PORT or unix:/PATH"},
	{.name = "listen-tls",
	 .type = OPT_LIST,
	 LIST(listen_tls, nlisten_tls),
	 .valid = valid_hostport,
	 .restart = true,
	 .arg = "HOST:PORT",
	 .help = "address to listen on with TLS (1.2 or later); repeatable; needs --tls-cert and "
		 "--tls-key",
	 .expect = "expected HOST:PORT"},
	{.name = "listen-ws",
	 .type = OPT_LIST,
	 LIST(listen_ws, nlisten_ws),
	 .valid = valid_hostport,
	 .restart = true,
	 .arg = "HOST:PORT",
	 .help = "address to listen on for WebSocket (RFC 6455: the same messages, one per text "
		 "frame); repeatable",
	 .expect = "expected HOST:PORT"},
	{.name = "listen-wss",
	 .type = OPT_LIST,
	 LIST(listen_wss, nlisten_wss),
	 .valid = valid_hostport,
	 .restart = true,
	 .arg = "HOST:PORT",
	 .help = "address to listen on for WebSocket inside TLS; repeatable; needs --tls-cert and "
		 "--tls-key",
	 .expect = "expected HOST:PORT"},
	{.name = "ws-origin",
	 .type = OPT_LIST,
	 LIST(ws_origins, nws_origins),
	 .valid = valid_nonempty,
	 .arg = "ORIGIN",
	 .help = "a browser origin (scheme://host[:port]) whose pages may open a WebSocket; "
		 "repeatable; a handshake from any other origin is refused (403), one without "
		 "Origin (not a browser) is taken",
	 .help_default = "none: no browser page",
	 .expect = "expected an origin, as https://example.com"},
	{.name = "ws-ping",
	 .type = OPT_SECONDS,
	 FIELD(ws_ping_ms),
	 .min = 0,
	 .def = "30",
	 .restart = true,
	 .arg = "S",
	 .help = "WebSocket keepalive: a ping every S seconds; a peer that sent nothing since the "
		 "previous one is closed (0: no pings)"},
	{.name = "tls-cert",
	 .type = OPT_STRING,
	 FIELD(tls_cert),
	 .arg = "FILE",
	 .help = "PEM certificate chain for TLS listeners"},
	{.name = "tls-key",
	 .type = OPT_STRING,
	 FIELD(tls_key),
	 .arg = "FILE",
	 .help = "PEM private key for TLS listeners"},
	{.name = "tls-client-ca",
	 .type = OPT_STRING,
	 FIELD(tls_client_ca),
	 .arg = "FILE",
	 .help = "require client certificates signed by these CAs (mutual TLS)"},
	{.name = "insecure",
	 .type = OPT_BOOL,
	 FIELD(insecure),
	 .restart = true,
	 .help = "allow --auth none on an address other than loopback (anyone can claim any "
		 "user)"},

	{.name = "auth",
	 .type = OPT_CHOICE,
	 FIELD(auth),
	 .choices = auth_modes,
	 .def = "none",
	 .restart = true,
	 .section = "Identity (proto/PROTOCOL.md, Authentication):",
	 .arg = "none|jwt",
	 .help = "none: hello's user is trusted; jwt: hello must carry a JSON Web Token whose sub "
		 "is the user"},
	{.name = "jwt-key",
	 .type = OPT_LIST,
	 LIST(jwt_keys, njwt_keys),
	 .valid = valid_nonempty,
	 .arg = "[KID=]ALG:FILE",
	 .help = "a key that verifies tokens; repeatable (rotation, chosen by the token's kid). "
		 "ALG is HS256 (FILE holds the shared secret, at least 32 bytes), RS256 or "
		 "ES256 (FILE holds a PEM public key)",
	 .expect = "expected [KID=]ALG:FILE"},
	{.name = "jwt-audience",
	 .type = OPT_STRING,
	 FIELD(jwt_audience),
	 .arg = "AUD",
	 .help = "tokens must name AUD in aud (without it, tokens with an aud are refused)"},
	{.name = "jwt-issuer",
	 .type = OPT_STRING,
	 FIELD(jwt_issuer),
	 .arg = "ISS",
	 .help = "tokens must have iss ISS"},
	{.name = "jwt-leeway",
	 .type = OPT_SECONDS,
	 FIELD(jwt_leeway_ms),
	 .def = "0",
	 .arg = "S",
	 .help = "clock skew allowed on exp and nbf"},
	{.name = "observer",
	 .type = OPT_LIST,
	 LIST(observers, nobservers),
	 .valid = valid_nonempty,
	 .arg = "NAME",
	 .help = "give user NAME the observer role (may read and subscribe to everything, change "
		 "nothing); repeatable",
	 .expect = "expected a user name"},
	{.name = "admin",
	 .type = OPT_LIST,
	 LIST(admins, nadmins),
	 .valid = valid_nonempty,
	 .arg = "NAME",
	 .help = "give user NAME the admin role (also lists every session and terminates any); "
		 "repeatable",
	 .expect = "expected a user name"},

	{.name = "config",
	 .type = OPT_ACTION,
	 .section = "Configuration (rendezvousd.conf(5)):",
	 .arg = "FILE",
	 .help = "read settings from FILE: one 'key = value' per line, every option below by its "
		 "name (insecure = yes); flags win",
	 .help_default = "$CONFIGURATION_DIRECTORY/rendezvousd.conf, else "
			 "/etc/rendezvous/rendezvousd.conf, if it exists"},
	{.name = "check-config",
	 .type = OPT_ACTION,
	 FIELD(check_config),
	 .help = "check the settings (and load keys and certificates), print the errors with their "
		 "line numbers, and exit: 0 if they are valid, 1 if not"},

	{.name = "store",
	 .type = OPT_STRING,
	 FIELD(store),
	 .valid = valid_store,
	 .restart = true,
	 .section = "Storage (README.md, Durability):",
	 .arg = "sqlite:PATH|memory|REDIS-URL",
	 .help = "where sessions and the event history are kept: an SQLite file (PATH relative to "
		 "--state-dir), memory (lost at exit), or Redis, shared by every daemon given the "
		 "same one (redis://[USER@]HOST:PORT[/DB], redis+unix:///PATH[?db=N], "
		 "redis-sentinel://HOST:PORT,.../PRIMARY[?db=N])",
	 .help_default = "sqlite:rendezvous.db",
	 .expect = "expected sqlite:PATH, memory, redis://[USER@]HOST[:PORT][/DB], "
		   "redis+unix:///PATH[?db=N] or redis-sentinel://HOST[:PORT],.../NAME[?db=N]"},
	{.name = "redis-password-file",
	 .type = OPT_STRING,
	 FIELD(redis_password_file),
	 .valid = valid_nonempty,
	 .restart = true,
	 .arg = "FILE",
	 .help = "the Redis password: the first line of FILE (never on the command line)",
	 .help_default = "none",
	 .expect = "expected a file"},
	{.name = "node-name",
	 .type = OPT_STRING,
	 FIELD(node_name),
	 .valid = valid_node_name,
	 .restart = true,
	 .arg = "NAME",
	 .help = "this daemon's name among those sharing a Redis store, in logs, metrics and "
		 "admin.stats",
	 .help_default = "the host name and the first listening port",
	 .expect = "expected 1 to 64 bytes, no space, quote or backslash"},
	{.name = "store-timeout",
	 .type = OPT_SECONDS,
	 FIELD(store_timeout_ms),
	 .def = "2",
	 .restart = true,
	 .arg = "S",
	 .help = "how long Redis may take to answer; longer, or unreachable, and changes answer "
		 "5003 with retry_after_ms"},
	{.name = "state-dir",
	 .type = OPT_STRING,
	 FIELD(state_dir),
	 .valid = valid_nonempty,
	 .restart = true,
	 .arg = "DIR",
	 .help = "directory for the store, created if missing",
	 .help_default = "$STATE_DIRECTORY, else /var/lib/rendezvous",
	 .expect = "expected a directory"},
	{.name = "durability",
	 .type = OPT_CHOICE,
	 FIELD(durability),
	 .choices = durabilities,
	 .def = "normal",
	 .restart = true,
	 .arg = "normal|strict",
	 .help = "normal: a reply leaves once its change is written to the store (survives any "
		 "crash of the process); strict: once it is also fsync()ed (survives power "
		 "loss)"},
	{.name = "check-store",
	 .type = OPT_ACTION,
	 FIELD(check_store),
	 .help = "verify the store, print a summary and exit: 0 if it is sound, 1 if not"},

	{.name = "invite-ttl",
	 .type = OPT_SECONDS,
	 FIELD(invite_ttl_ms),
	 .min = 1,
	 .def = "300",
	 .section = "Durations (seconds, fractions allowed):",
	 .arg = "S",
	 .help = "time for an invitation to reach RSS_CONNECTED before it expires"},
	{.name = "max-ttl",
	 .type = OPT_SECONDS,
	 FIELD(max_ttl_ms),
	 .min = 1,
	 .def = "86400",
	 .arg = "S",
	 .help = "largest ttl session.create may ask for; larger requests are clamped"},
	{.name = "peer-grace",
	 .type = OPT_SECONDS,
	 FIELD(peer_grace_ms),
	 .def = "30",
	 .arg = "S",
	 .help = "how long an engaged party may have no live connection before the session "
		 "ends"},
	{.name = "linger",
	 .type = OPT_SECONDS,
	 FIELD(linger_ms),
	 .def = "60",
	 .arg = "S",
	 .help = "how long ended sessions stay readable"},
	{.name = "idempotency-window",
	 .type = OPT_SECONDS,
	 FIELD(idempotency_window_ms),
	 .min = 1,
	 .def = "86400",
	 .arg = "S",
	 .help = "how long a change's idempotency_key is remembered: a retry with it gets the "
		 "first reply again"},
	{.name = "outcome-retention",
	 .type = OPT_SECONDS,
	 FIELD(outcome_retention_ms),
	 .min = 1,
	 .def = "604800",
	 .arg = "S",
	 .help = "how long a session.outcome a device has not acknowledged is kept, and a device "
		 "not seen is remembered"},

	{.name = "max-line",
	 .type = OPT_SIZE,
	 FIELD(max_line),
	 .min = 256,
	 .def = "64k",
	 .section = "Limits (sizes take a k, m or g suffix):",
	 .arg = "BYTES",
	 .help = "longest request line"},
	{.name = "max-pending",
	 .type = OPT_SIZE,
	 FIELD(max_pending),
	 .min = 1024,
	 .def = "32m",
	 .arg = "BYTES",
	 .help = "unsent output after which a client that does not read is cut off"},
	{.name = "max-connections",
	 .type = OPT_SIZE,
	 FIELD(max_connections),
	 .min = 1,
	 .def = "10000",
	 .arg = "N",
	 .help = "connections at once"},
	{.name = "max-connections-per-address",
	 .type = OPT_SIZE,
	 FIELD(max_conns_per_address),
	 .def = "0",
	 .arg = "N",
	 .help = "connections from one IP address; 0: no limit"},
	{.name = "max-auth-failures",
	 .type = OPT_SIZE,
	 FIELD(max_auth_failures),
	 .min = 1,
	 .def = "20",
	 .arg = "N",
	 .help = "failed hellos one IP address may make per minute before its hellos are "
		 "refused"},
	{.name = "hello-timeout",
	 .type = OPT_SECONDS,
	 FIELD(hello_timeout_ms),
	 .min = 1,
	 .def = "5",
	 .arg = "S",
	 .help = "time a new connection has to complete hello"},
	{.name = "max-hello-line",
	 .type = OPT_SIZE,
	 FIELD(max_hello_line),
	 .min = 256,
	 .def = "4k",
	 .arg = "BYTES",
	 .help = "longest line before hello"},
	{.name = "max-data",
	 .type = OPT_SIZE,
	 FIELD(max_data),
	 .min = 16,
	 .def = "16k",
	 .arg = "BYTES",
	 .help = "largest context or app data (as compact JSON) in session.create, .send and "
		 ".terminate"},
	{.name = "max-request-rate",
	 .type = OPT_SIZE,
	 FIELD(max_request_rate),
	 .def = "0",
	 .arg = "N",
	 .help = "requests per second one connection may make; 0: no limit"},
	{.name = "max-request-burst",
	 .type = OPT_SIZE,
	 FIELD(max_request_burst),
	 .def = "0",
	 .arg = "N",
	 .help = "requests at once above that rate; 0: the rate"},
	{.name = "max-sessions-per-user",
	 .type = OPT_SIZE,
	 FIELD(max_sessions_per_user),
	 .min = 1,
	 .def = "1000",
	 .arg = "N",
	 .help = "live sessions one user may have created"},
	{.name = "max-user-bytes",
	 .type = OPT_SIZE,
	 FIELD(max_user_bytes),
	 .def = "8m",
	 .arg = "BYTES",
	 .help = "memory the sessions one user created may hold, live and lingering; 0: no "
		 "limit"},
	{.name = "max-subscriptions",
	 .type = OPT_SIZE,
	 FIELD(max_subscriptions),
	 .min = 1,
	 .def = "1024",
	 .arg = "N",
	 .help = "subscriptions per connection"},
	{.name = "max-outcomes",
	 .type = OPT_SIZE,
	 FIELD(max_outcomes),
	 .min = 1,
	 .def = "1000",
	 .arg = "N",
	 .help = "unacknowledged outcomes kept per user; beyond it the oldest is dropped (and "
		 "counted in the next hello's outcomes_dropped)"},
	{.name = "history",
	 .type = OPT_SIZE,
	 FIELD(history),
	 .min = 1,
	 .def = "10000",
	 .restart = true,
	 .arg = "N",
	 .help = "events kept for subscribe {since}"},
	{.name = "history-age",
	 .type = OPT_SECONDS,
	 FIELD(history_age_ms),
	 .min = 1,
	 .def = "86400",
	 .arg = "S",
	 .help = "and for at most this long"},
	{.name = "history-bytes",
	 .type = OPT_SIZE,
	 FIELD(history_bytes),
	 .min = 64 * 1024,
	 .def = "32m",
	 .arg = "BYTES",
	 .help = "and in at most this much memory"},

	{.name = "metrics",
	 .type = OPT_STRING,
	 FIELD(metrics),
	 .valid = valid_hostport,
	 .empty_unsets = true,
	 .restart = true,
	 .section = "Operation:",
	 .arg = "HOST:PORT",
	 .help = "serve Prometheus metrics at /metrics, and /healthz and /readyz, over HTTP (PORT "
		 "defaults to 9420)",
	 .help_default = "off",
	 .expect = "expected HOST:PORT"},
	{.name = "shutdown-timeout",
	 .type = OPT_SECONDS,
	 FIELD(shutdown_timeout_ms),
	 .def = "5",
	 .arg = "S",
	 .help = "on SIGTERM, how long to wait for clients to read what they were sent before "
		 "closing"},
	{.name = "log-level",
	 .type = OPT_CHOICE,
	 FIELD(log_level),
	 .choices = log_level_names,
	 .def = "info",
	 .arg = "LEVEL",
	 .help = "error, warn, info or debug"},
	{.name = "help", .type = OPT_ACTION, .help = "show this help and exit"},
	{.name = "version", .type = OPT_ACTION, .help = "show the version and exit"},
};

const size_t options_count = sizeof options_table / sizeof options_table[0];
