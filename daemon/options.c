/*
 * Settings: defaults, the configuration file, command-line flags, --help and
 * --version. Every setting is a flag and a key of the same name in the file;
 * flags win. SIGHUP loads them again (options_reload()).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <ini.h>
#include <jansson.h>
#include <sqlite3.h>

#include "config.h"
#include "notify.h"
#include "rendezvous.h"
#include "util.h"

/* The file read when --config is not given (systemd's ConfigurationDirectory= first). */
#define CONFIG_DIR_DEFAULT "/etc/rendezvous"
#define CONFIG_NAME "rendezvousd.conf"

struct config config;

enum {
	OPT_LISTEN = 256,
	OPT_OBSERVER,
	OPT_ADMIN,
	OPT_AUTH,
	OPT_JWT_KEY,
	OPT_JWT_AUDIENCE,
	OPT_JWT_ISSUER,
	OPT_JWT_LEEWAY,
	OPT_INSECURE,
	OPT_LISTEN_TLS,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TLS_CLIENT_CA,
	OPT_MAX_CONNS_PER_ADDRESS,
	OPT_MAX_AUTH_FAILURES,
	OPT_HELLO_TIMEOUT,
	OPT_MAX_HELLO_LINE,
	OPT_MAX_DATA,
	OPT_MAX_REQUEST_RATE,
	OPT_MAX_REQUEST_BURST,
	OPT_INVITE_TTL,
	OPT_MAX_TTL,
	OPT_PEER_GRACE,
	OPT_LINGER,
	OPT_MAX_LINE,
	OPT_MAX_PENDING,
	OPT_MAX_CONNECTIONS,
	OPT_MAX_SESSIONS,
	OPT_MAX_USER_BYTES,
	OPT_MAX_SUBSCRIPTIONS,
	OPT_HISTORY,
	OPT_HISTORY_AGE,
	OPT_HISTORY_BYTES,
	OPT_STORE,
	OPT_STATE_DIR,
	OPT_DURABILITY,
	OPT_METRICS,
	OPT_SHUTDOWN_TIMEOUT,
	OPT_LOG_LEVEL,
	/* Actions: flags only. */
	OPT_CONFIG,
	OPT_CHECK_CONFIG,
	OPT_CHECK_STORE,
	OPT_HELP,
	OPT_VERSION,
	OPT_END,
};

/* Settings that SIGHUP cannot change: they take effect at the next start. */
#define RESTART_ONLY \
	"listen, listen-tls, insecure, auth, store, state-dir, durability, history and metrics"

static const struct option long_options[] = {
	{"listen", required_argument, NULL, OPT_LISTEN},
	{"observer", required_argument, NULL, OPT_OBSERVER},
	{"admin", required_argument, NULL, OPT_ADMIN},
	{"auth", required_argument, NULL, OPT_AUTH},
	{"jwt-key", required_argument, NULL, OPT_JWT_KEY},
	{"jwt-audience", required_argument, NULL, OPT_JWT_AUDIENCE},
	{"jwt-issuer", required_argument, NULL, OPT_JWT_ISSUER},
	{"jwt-leeway", required_argument, NULL, OPT_JWT_LEEWAY},
	{"insecure", no_argument, NULL, OPT_INSECURE},
	{"listen-tls", required_argument, NULL, OPT_LISTEN_TLS},
	{"tls-cert", required_argument, NULL, OPT_TLS_CERT},
	{"tls-key", required_argument, NULL, OPT_TLS_KEY},
	{"tls-client-ca", required_argument, NULL, OPT_TLS_CLIENT_CA},
	{"max-connections-per-address", required_argument, NULL, OPT_MAX_CONNS_PER_ADDRESS},
	{"max-auth-failures", required_argument, NULL, OPT_MAX_AUTH_FAILURES},
	{"hello-timeout", required_argument, NULL, OPT_HELLO_TIMEOUT},
	{"max-hello-line", required_argument, NULL, OPT_MAX_HELLO_LINE},
	{"max-data", required_argument, NULL, OPT_MAX_DATA},
	{"max-request-rate", required_argument, NULL, OPT_MAX_REQUEST_RATE},
	{"max-request-burst", required_argument, NULL, OPT_MAX_REQUEST_BURST},
	{"invite-ttl", required_argument, NULL, OPT_INVITE_TTL},
	{"max-ttl", required_argument, NULL, OPT_MAX_TTL},
	{"peer-grace", required_argument, NULL, OPT_PEER_GRACE},
	{"linger", required_argument, NULL, OPT_LINGER},
	{"max-line", required_argument, NULL, OPT_MAX_LINE},
	{"max-pending", required_argument, NULL, OPT_MAX_PENDING},
	{"max-connections", required_argument, NULL, OPT_MAX_CONNECTIONS},
	{"max-sessions-per-user", required_argument, NULL, OPT_MAX_SESSIONS},
	{"max-user-bytes", required_argument, NULL, OPT_MAX_USER_BYTES},
	{"max-subscriptions", required_argument, NULL, OPT_MAX_SUBSCRIPTIONS},
	{"history", required_argument, NULL, OPT_HISTORY},
	{"history-age", required_argument, NULL, OPT_HISTORY_AGE},
	{"history-bytes", required_argument, NULL, OPT_HISTORY_BYTES},
	{"store", required_argument, NULL, OPT_STORE},
	{"state-dir", required_argument, NULL, OPT_STATE_DIR},
	{"durability", required_argument, NULL, OPT_DURABILITY},
	{"metrics", required_argument, NULL, OPT_METRICS},
	{"shutdown-timeout", required_argument, NULL, OPT_SHUTDOWN_TIMEOUT},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"config", required_argument, NULL, OPT_CONFIG},
	{"check-config", no_argument, NULL, OPT_CHECK_CONFIG},
	{"check-store", no_argument, NULL, OPT_CHECK_STORE},
	{"help", no_argument, NULL, OPT_HELP},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0},
};

/* The flags given, kept for reloads: flags win over the file every time. */
struct flag {
	int id;
	char *value; /* NULL for a flag without a value */
};
static struct flag *flags;
static size_t nflags;
static char *config_path;    /* the file to read */
static bool config_explicit; /* named by --config: it must exist */

/* One load of the settings: where values come from, and how errors are told. */
struct loader {
	struct config *cfg;
	const char *file; /* while reading the file; NULL while applying flags */
	FILE *f;
	int line;    /* the file's line being read */
	bool reload; /* errors go to the log, not to stderr */
	int errors;
	struct loader_msg {
		int line;
		char *text;
	} * msgs; /* the file's errors, told in line order once it is read */
	size_t nmsgs;
	char bad_section[64]; /* the unknown section last reported */
	bool listed[OPT_END]; /* a list flag was given: it replaces the file's list */
};
static void
usage(FILE *f)
{
	fprintf(f,
		"Usage: rendezvousd [OPTION]...\n"
		"Track invitations between two parties and broadcast every state change,\n"
		"speaking JSON-RPC 2.0, one message per line, over TCP (proto/PROTOCOL.md).\n"
		"\n"
		"Listening:\n"
		"  --listen HOST:PORT|unix:/PATH\n"
		"                            address to listen on; repeatable; port 0 picks a\n"
		"                            free port (the bound address is logged)\n"
		"                            [default: 127.0.0.1:%d and [::1]:%d (where IPv6\n"
		"                            is on), or the sockets systemd passes]\n"
		"  --listen-tls HOST:PORT    address to listen on with TLS (1.2 or later);\n"
		"                            repeatable; needs --tls-cert and --tls-key\n"
		"  --tls-cert FILE           PEM certificate chain for TLS listeners\n"
		"  --tls-key FILE            PEM private key for TLS listeners\n"
		"  --tls-client-ca FILE      require client certificates signed by these CAs\n"
		"                            (mutual TLS)\n"
		"  --insecure                allow --auth none on an address other than\n"
		"                            loopback (anyone can claim any user)\n"
		"Identity (proto/PROTOCOL.md, Authentication):\n"
		"  --auth none|jwt           none: hello's user is trusted; jwt: hello must carry\n"
		"                            a JSON Web Token whose sub is the user [default: "
		"none]\n"
		"  --jwt-key [KID=]ALG:FILE  a key that verifies tokens; repeatable (rotation,\n"
		"                            chosen by the token's kid). ALG is HS256 (FILE holds\n"
		"                            the shared secret, at least 32 bytes), RS256 or\n"
		"                            ES256 (FILE holds a PEM public key)\n"
		"  --jwt-audience AUD        tokens must name AUD in aud (without it, tokens\n"
		"                            with an aud are refused)\n"
		"  --jwt-issuer ISS          tokens must have iss ISS\n"
		"  --jwt-leeway S            clock skew allowed on exp and nbf [default: 0]\n"
		"  --observer NAME           give user NAME the observer role (may read and\n"
		"                            subscribe to everything, change nothing); repeatable\n"
		"  --admin NAME              give user NAME the admin role (also lists every\n"
		"                            session and terminates any); repeatable\n",
		RV_DEFAULT_PORT, RV_DEFAULT_PORT);
	fputs("Configuration (rendezvousd.conf(5)):\n"
	      "  --config FILE             read settings from FILE: one 'key = value' per line,\n"
	      "                            every option below by its name (insecure = yes);\n"
	      "                            flags win [default: $CONFIGURATION_DIRECTORY/\n"
	      "                            rendezvousd.conf, else "
	      "/etc/rendezvous/rendezvousd.conf,\n"
	      "                            if it exists]\n"
	      "  --check-config            check the settings (and load keys and certificates),\n"
	      "                            print the errors with their line numbers, and exit:\n"
	      "                            0 if they are valid, 1 if not\n"
	      "Storage (README.md, Durability):\n"
	      "  --store sqlite:PATH|memory\n"
	      "                            where sessions and the event history are kept:\n"
	      "                            an SQLite file (PATH relative to --state-dir), or\n"
	      "                            memory (lost at exit) [default: sqlite:rendezvous.db]\n"
	      "  --state-dir DIR           directory for the store, created if missing\n"
	      "                            [default: $STATE_DIRECTORY, else /var/lib/rendezvous]\n"
	      "  --durability normal|strict\n"
	      "                            normal: a reply leaves once its change is written to\n"
	      "                            the store (survives any crash of the process);\n"
	      "                            strict: once it is also fsync()ed (survives power\n"
	      "                            loss) [default: normal]\n"
	      "  --check-store             verify the store, print a summary and exit: 0 if it\n"
	      "                            is sound, 1 if not\n",
	      f);
	fputs("Durations (seconds, fractions allowed):\n"
	      "  --invite-ttl S            time for an invitation to reach RSS_CONNECTED\n"
	      "                            before it expires [default: 300]\n"
	      "  --max-ttl S               largest ttl session.create may ask for; larger\n"
	      "                            requests are clamped [default: 86400]\n"
	      "  --peer-grace S            how long an engaged party may have no live\n"
	      "                            connection before the session ends [default: 30]\n"
	      "  --linger S                how long ended sessions stay readable [default: 60]\n",
	      f);
	fputs("Limits (sizes take a k, m or g suffix):\n"
	      "  --max-line BYTES          longest request line [default: 64k]\n"
	      "  --max-pending BYTES       unsent output after which a client that does not\n"
	      "                            read is cut off [default: 32m]\n"
	      "  --max-connections N       connections at once [default: 10000]\n"
	      "  --max-connections-per-address N\n"
	      "                            connections from one IP address; 0: no limit\n"
	      "                            [default: 0]\n"
	      "  --max-auth-failures N     failed hellos one IP address may make per minute\n"
	      "                            before its hellos are refused [default: 20]\n"
	      "  --hello-timeout S         time a new connection has to complete hello\n"
	      "                            [default: 5]\n"
	      "  --max-hello-line BYTES    longest line before hello [default: 4k]\n"
	      "  --max-data BYTES          largest context or app data (as compact JSON) in\n"
	      "                            session.create, .send and .terminate [default: 16k]\n"
	      "  --max-request-rate N      requests per second one connection may make;\n"
	      "                            0: no limit [default: 0]\n"
	      "  --max-request-burst N     requests at once above that rate; 0: the rate\n"
	      "                            [default: 0]\n"
	      "  --max-sessions-per-user N live sessions one user may have created\n"
	      "                            [default: 1000]\n"
	      "  --max-user-bytes BYTES    memory the sessions one user created may hold,\n"
	      "                            live and lingering; 0: no limit [default: 8m]\n"
	      "  --max-subscriptions N     subscriptions per connection [default: 1024]\n"
	      "  --history N               events kept for subscribe {since} [default: 10000]\n"
	      "  --history-age S           and for at most this long [default: 86400]\n"
	      "  --history-bytes BYTES     and in at most this much memory [default: 32m]\n"
	      "Operation:\n"
	      "  --metrics HOST:PORT       serve Prometheus metrics at /metrics, and /healthz\n"
	      "                            and /readyz, over HTTP (PORT defaults to 9420)\n"
	      "                            [default: off]\n"
	      "  --shutdown-timeout S      on SIGTERM, how long to wait for clients to read\n"
	      "                            what they were sent before closing [default: 5]\n"
	      "  --log-level LEVEL         error, warn, info or debug [default: info]\n"
	      "  --help                    show this help and exit\n"
	      "  --version                 show the version and exit\n"
	      "\n"
	      "SIGHUP reloads the configuration file, keys and certificates without dropping\n"
	      "a connection (" RESTART_ONLY "\n"
	      "change only at a restart). SIGTERM or SIGINT stops accepting, sends clients\n"
	      "server.shutdown, flushes, and exits 0.\n",
	      f);
}

static const char *
option_name(int id)
{
	for (const struct option *o = long_options; o->name != NULL; o++) {
		if (o->val == id)
			return o->name;
	}
	return "?";
}

/* Report one error: "FILE:LINE: ..." from the file, "--name ..." from flags. */
static void loader_error(struct loader *ld, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void loader_tell(const struct loader *ld, const char *where, const char *msg);

static void
loader_error(struct loader *ld, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	ld->errors++;
	if (ld->file != NULL) {
		struct loader_msg *grown = realloc(ld->msgs, (ld->nmsgs + 1) * sizeof *ld->msgs);
		if (grown == NULL || (grown[ld->nmsgs].text = strdup(msg)) == NULL)
			fatal("out of memory");
		grown[ld->nmsgs].line = ld->line;
		ld->msgs = grown;
		ld->nmsgs++;
		return;
	}
	loader_tell(ld, "", msg);
}

static void
loader_tell(const struct loader *ld, const char *where, const char *msg)
{
	if (ld->reload)
		log_error("reload: %s%s", where, msg);
	else
		fprintf(stderr, "rendezvousd: %s%s\n", where, msg);
}

static int
loader_msg_cmp(const void *a, const void *b)
{
	const struct loader_msg *x = a, *y = b;

	return (x->line > y->line) - (x->line < y->line);
}

/* Tell the file's errors in line order (inih reports syntax errors last). */
static void
loader_tell_file(struct loader *ld)
{
	if (ld->nmsgs > 1)
		qsort(ld->msgs, ld->nmsgs, sizeof *ld->msgs, loader_msg_cmp);
	for (size_t i = 0; i < ld->nmsgs; i++) {
		char where[300];
		snprintf(where, sizeof where, "%s:%d: ", ld->file, ld->msgs[i].line);
		loader_tell(ld, where, ld->msgs[i].text);
		free(ld->msgs[i].text);
	}
	free(ld->msgs);
	ld->msgs = NULL;
	ld->nmsgs = 0;
}

static void
bad_value(struct loader *ld, int id, const char *value, const char *expect)
{
	loader_error(ld, "invalid value '%s' for %s%s: %s", value, ld->file != NULL ? "" : "--",
		     option_name(id), expect);
}

static int64_t
opt_seconds(struct loader *ld, int id, const char *value, bool zero_ok, int64_t old)
{
	int64_t ms;

	if (parse_seconds_ms(value, &ms) != 0 || (!zero_ok && ms == 0)) {
		bad_value(ld, id, value,
			  zero_ok ? "expected seconds >= 0" : "expected seconds > 0");
		return old;
	}
	return ms;
}

static size_t
opt_size(struct loader *ld, int id, const char *value, size_t min, size_t old)
{
	size_t v;

	if (parse_size(value, &v) != 0 || v < min) {
		char expect[64];
		snprintf(expect, sizeof expect, "expected a number >= %zu", min);
		bad_value(ld, id, value, expect);
		return old;
	}
	return v;
}

static bool
opt_bool(struct loader *ld, int id, const char *value, bool old)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
		if (strcasecmp(value, yes[i]) == 0)
			return true;
		if (strcasecmp(value, no[i]) == 0)
			return false;
	}
	bad_value(ld, id, value, "expected yes or no");
	return old;
}

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		fatal("out of memory");
	return d;
}

/* Replace a string setting's value (the last one wins). */
static void
set_string(char **dst, const char *value)
{
	free(*dst);
	*dst = xstrdup(value);
}

static void
free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

/*
 * Add to a list setting. The file's lines add up; so do flags, but the first
 * flag of a list drops what the file gave it.
 */
static void
push(struct loader *ld, int id, char ***list, size_t *n, const char *value)
{
	char **l;

	if (ld->file == NULL && !ld->listed[id]) {
		ld->listed[id] = true;
		free_list(*list, *n);
		*list = NULL;
		*n = 0;
	}
	l = realloc(*list, (*n + 1) * sizeof **list);
	if (l == NULL || (l[*n] = strdup(value)) == NULL)
		fatal("out of memory");
	*list = l;
	(*n)++;
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

/* Set one setting from a flag or a line of the file. */
static void
apply(struct loader *ld, int id, const char *value)
{
	struct config *cfg = ld->cfg;

	switch (id) {
	case OPT_LISTEN:
		if (!valid_listen(value))
			bad_value(ld, id, value, "expected HOST:PORT or unix:/PATH");
		else
			push(ld, id, &cfg->listen, &cfg->nlisten, value);
		break;
	case OPT_LISTEN_TLS:
		if (!valid_hostport(value))
			bad_value(ld, id, value, "expected HOST:PORT");
		else
			push(ld, id, &cfg->listen_tls, &cfg->nlisten_tls, value);
		break;
	case OPT_OBSERVER:
	case OPT_ADMIN:
		if (*value == '\0')
			bad_value(ld, id, value, "expected a user name");
		else if (id == OPT_OBSERVER)
			push(ld, id, &cfg->observers, &cfg->nobservers, value);
		else
			push(ld, id, &cfg->admins, &cfg->nadmins, value);
		break;
	case OPT_AUTH:
		if (strcmp(value, "none") == 0)
			cfg->auth = AUTH_NONE;
		else if (strcmp(value, "jwt") == 0)
			cfg->auth = AUTH_JWT;
		else
			bad_value(ld, id, value, "expected none or jwt");
		break;
	case OPT_JWT_KEY:
		if (*value == '\0')
			bad_value(ld, id, value, "expected [KID=]ALG:FILE");
		else
			push(ld, id, &cfg->jwt_keys, &cfg->njwt_keys, value);
		break;
	case OPT_JWT_AUDIENCE: set_string(&cfg->jwt_audience, value); break;
	case OPT_JWT_ISSUER: set_string(&cfg->jwt_issuer, value); break;
	case OPT_JWT_LEEWAY:
		cfg->jwt_leeway_ms = opt_seconds(ld, id, value, true, cfg->jwt_leeway_ms);
		break;
	case OPT_INSECURE: cfg->insecure = opt_bool(ld, id, value, cfg->insecure); break;
	case OPT_TLS_CERT: set_string(&cfg->tls_cert, value); break;
	case OPT_TLS_KEY: set_string(&cfg->tls_key, value); break;
	case OPT_TLS_CLIENT_CA: set_string(&cfg->tls_client_ca, value); break;
	case OPT_MAX_CONNS_PER_ADDRESS:
		cfg->max_conns_per_address = opt_size(ld, id, value, 0, cfg->max_conns_per_address);
		break;
	case OPT_MAX_AUTH_FAILURES:
		cfg->max_auth_failures = opt_size(ld, id, value, 1, cfg->max_auth_failures);
		break;
	case OPT_HELLO_TIMEOUT:
		cfg->hello_timeout_ms = opt_seconds(ld, id, value, false, cfg->hello_timeout_ms);
		break;
	case OPT_MAX_DATA: cfg->max_data = opt_size(ld, id, value, 16, cfg->max_data); break;
	case OPT_MAX_REQUEST_RATE:
		cfg->max_request_rate = opt_size(ld, id, value, 0, cfg->max_request_rate);
		break;
	case OPT_MAX_REQUEST_BURST:
		cfg->max_request_burst = opt_size(ld, id, value, 0, cfg->max_request_burst);
		break;
	case OPT_MAX_HELLO_LINE:
		cfg->max_hello_line = opt_size(ld, id, value, 256, cfg->max_hello_line);
		break;
	case OPT_INVITE_TTL:
		cfg->invite_ttl_ms = opt_seconds(ld, id, value, false, cfg->invite_ttl_ms);
		break;
	case OPT_MAX_TTL:
		cfg->max_ttl_ms = opt_seconds(ld, id, value, false, cfg->max_ttl_ms);
		break;
	case OPT_PEER_GRACE:
		cfg->peer_grace_ms = opt_seconds(ld, id, value, true, cfg->peer_grace_ms);
		break;
	case OPT_LINGER: cfg->linger_ms = opt_seconds(ld, id, value, true, cfg->linger_ms); break;
	case OPT_MAX_LINE: cfg->max_line = opt_size(ld, id, value, 256, cfg->max_line); break;
	case OPT_MAX_PENDING:
		cfg->max_pending = opt_size(ld, id, value, 1024, cfg->max_pending);
		break;
	case OPT_MAX_CONNECTIONS:
		cfg->max_connections = opt_size(ld, id, value, 1, cfg->max_connections);
		break;
	case OPT_MAX_SESSIONS:
		cfg->max_sessions_per_user = opt_size(ld, id, value, 1, cfg->max_sessions_per_user);
		break;
	case OPT_MAX_SUBSCRIPTIONS:
		cfg->max_subscriptions = opt_size(ld, id, value, 1, cfg->max_subscriptions);
		break;
	case OPT_HISTORY: cfg->history = opt_size(ld, id, value, 1, cfg->history); break;
	case OPT_HISTORY_BYTES:
		cfg->history_bytes = opt_size(ld, id, value, 64 * 1024, cfg->history_bytes);
		break;
	case OPT_MAX_USER_BYTES:
		cfg->max_user_bytes = opt_size(ld, id, value, 0, cfg->max_user_bytes);
		break;
	case OPT_HISTORY_AGE:
		cfg->history_age_ms = opt_seconds(ld, id, value, false, cfg->history_age_ms);
		break;
	case OPT_STORE:
		if (strcmp(value, "memory") != 0 &&
		    (strncmp(value, "sqlite:", 7) != 0 || value[7] == '\0'))
			bad_value(ld, id, value, "expected sqlite:PATH or memory");
		else
			set_string(&cfg->store, value);
		break;
	case OPT_STATE_DIR:
		if (*value == '\0')
			bad_value(ld, id, value, "expected a directory");
		else
			set_string(&cfg->state_dir, value);
		break;
	case OPT_DURABILITY:
		if (strcmp(value, "normal") == 0)
			cfg->durability = STORE_NORMAL;
		else if (strcmp(value, "strict") == 0)
			cfg->durability = STORE_STRICT;
		else
			bad_value(ld, id, value, "expected normal or strict");
		break;
	case OPT_METRICS:
		if (*value == '\0') { /* an empty value turns metrics off */
			free(cfg->metrics);
			cfg->metrics = NULL;
		} else if (!valid_hostport(value)) {
			bad_value(ld, id, value, "expected HOST:PORT");
		} else {
			set_string(&cfg->metrics, value);
		}
		break;
	case OPT_SHUTDOWN_TIMEOUT:
		cfg->shutdown_timeout_ms =
			opt_seconds(ld, id, value, true, cfg->shutdown_timeout_ms);
		break;
	case OPT_LOG_LEVEL:
		if (log_level_from_name(value, &cfg->log_level) != 0)
			bad_value(ld, id, value, "expected error, warn, info or debug");
		break;
	case OPT_CHECK_STORE: cfg->check_store = true; break;
	case OPT_CHECK_CONFIG: cfg->check_config = true; break;
	default: break;
	}
}

/* Which settings a file may hold: every one but the actions. */
static int
key_id(const char *name)
{
	for (const struct option *o = long_options; o->name != NULL; o++) {
		if (strcmp(o->name, name) == 0)
			return o->val < OPT_CONFIG ? o->val : -1;
	}
	return -1;
}

/* inih's reader: one line at a time, counted, and none cut short silently. */
static char *
config_read_line(char *buf, int size, void *stream)
{
	struct loader *ld = stream;
	FILE *f = ld->f;
	size_t len;

	if (fgets(buf, size, f) == NULL)
		return NULL;
	ld->line++;
	len = strlen(buf);
	if (len > 0 && buf[len - 1] != '\n' && !feof(f)) {
		int ch;
		/* inih's line buffer, as Debian builds it, holds 198 bytes and a newline. */
		loader_error(ld, "line longer than %d bytes", size - 2);
		while ((ch = fgetc(f)) != EOF && ch != '\n')
			;
		buf[0] = '\0'; /* skip the rest of it */
	}
	return buf;
}

static int
config_on_key(void *user, const char *section, const char *name, const char *value)
{
	struct loader *ld = user;
	int id;

	if (*section != '\0' && strcmp(section, "rendezvousd") != 0) {
		/* Once per section, at its first setting. */
		if (strncmp(ld->bad_section, section, sizeof ld->bad_section - 1) != 0) {
			snprintf(ld->bad_section, sizeof ld->bad_section, "%s", section);
			loader_error(ld,
				     "unknown section [%s] (settings go before any section, "
				     "or in [rendezvousd])",
				     section);
		}
		return 1;
	}
	id = key_id(name);
	if (id < 0) {
		loader_error(ld, "unknown setting '%s'", name);
		return 1;
	}
	apply(ld, id, value);
	return 1;
}

/* Read the configuration file. A missing file is fine unless --config named it. */
static void
config_read(struct loader *ld)
{
	FILE *f = fopen(config_path, "r");
	int rc;

	if (f == NULL) {
		if (errno == ENOENT && !config_explicit)
			return;
		loader_error(ld, "cannot read the configuration file %s: %s", config_path,
			     strerror(errno));
		return;
	}
	ld->file = config_path;
	ld->line = 0;
	ld->f = f;
	rc = ini_parse_stream(config_read_line, ld, config_on_key, ld);
	ld->f = NULL;
	if (rc > 0) {
		/* The first line inih could not parse (it counts lines as the reader does). */
		ld->line = rc;
		loader_error(ld, "expected 'key = value' or '[section]'");
	} else if (rc < 0) {
		loader_error(ld, "cannot read the configuration file: out of memory");
	}
	if (ferror(f))
		loader_error(ld, "cannot read the configuration file: %s", strerror(errno));
	fclose(f);
	loader_tell_file(ld);
	ld->file = NULL;
}

static void
config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->invite_ttl_ms = 300 * 1000;
	cfg->max_ttl_ms = 86400 * 1000;
	cfg->peer_grace_ms = 30 * 1000;
	cfg->linger_ms = 60 * 1000;
	cfg->max_line = 64 * 1024;
	cfg->max_pending = 32 * 1024 * 1024;
	cfg->max_connections = 10000;
	cfg->max_auth_failures = 20;
	cfg->hello_timeout_ms = 5 * 1000;
	cfg->max_hello_line = 4096;
	cfg->max_data = 16 * 1024;
	cfg->max_sessions_per_user = 1000;
	cfg->max_subscriptions = 1024;
	cfg->history = 10000;
	cfg->history_age_ms = 86400 * 1000;
	cfg->history_bytes = 32u << 20;
	cfg->max_user_bytes = 8u << 20;
	cfg->shutdown_timeout_ms = 5 * 1000;
	cfg->log_level = LOG_LEVEL_INFO;
}

/* Checks across settings, and the defaults that depend on others. */
static void
config_complete(struct loader *ld)
{
	struct config *cfg = ld->cfg;

	if (cfg->auth == AUTH_NONE && cfg->njwt_keys > 0)
		loader_error(ld, "jwt-key needs auth jwt");
	if (cfg->max_request_burst == 0)
		cfg->max_request_burst = cfg->max_request_rate;
	if (cfg->max_hello_line > cfg->max_line)
		cfg->max_hello_line = cfg->max_line;
	if (cfg->invite_ttl_ms > cfg->max_ttl_ms)
		cfg->max_ttl_ms = cfg->invite_ttl_ms;
	if (cfg->nlisten == 0 && cfg->nlisten_tls == 0) {
		ld->listed[OPT_LISTEN] = true;
		cfg->listen_default = true;
		/* Both loopbacks, as Redis 7's "bind 127.0.0.1 -::1": ::1 where IPv6 is on. */
		push(ld, OPT_LISTEN, &cfg->listen, &cfg->nlisten, "127.0.0.1:" RV_DEFAULT_PORT_STR);
		push(ld, OPT_LISTEN, &cfg->listen, &cfg->nlisten, "[::1]:" RV_DEFAULT_PORT_STR);
	}
	if (cfg->state_dir == NULL) {
		/* systemd's StateDirectory= (the first, if it names several). */
		const char *env = getenv("STATE_DIRECTORY");
		size_t n = env != NULL ? strcspn(env, ":") : 0;
		cfg->state_dir = n > 0 ? strndup(env, n) : strdup("/var/lib/rendezvous");
		if (cfg->state_dir == NULL)
			fatal("out of memory");
	}
}

/* Fill cfg: defaults, then the file, then the flags. -1 after reporting every error. */
static int
config_load(struct config *cfg, bool reload)
{
	struct loader ld = {.cfg = cfg, .reload = reload};

	config_defaults(cfg);
	config_read(&ld);
	for (size_t i = 0; i < nflags; i++)
		apply(&ld, flags[i].id, flags[i].value != NULL ? flags[i].value : "yes");
	config_complete(&ld);
	return ld.errors == 0 ? 0 : -1;
}

static void
config_free(struct config *cfg)
{
	free_list(cfg->listen, cfg->nlisten);
	free_list(cfg->observers, cfg->nobservers);
	free_list(cfg->admins, cfg->nadmins);
	free_list(cfg->jwt_keys, cfg->njwt_keys);
	free_list(cfg->listen_tls, cfg->nlisten_tls);
	free(cfg->tls_cert);
	free(cfg->tls_key);
	free(cfg->tls_client_ca);
	free(cfg->jwt_audience);
	free(cfg->jwt_issuer);
	free(cfg->store);
	free(cfg->state_dir);
	free(cfg->metrics);
	memset(cfg, 0, sizeof *cfg);
}

static void
print_version(void)
{
	printf("rendezvousd %s (libevent %s, jansson %s, sqlite %s, systemd notify %s)\n",
	       RV_VERSION, event_get_version(), jansson_version_str(), sqlite3_libversion(),
	       notify_supported() ? "yes" : "no");
}

void
options_parse(int argc, char **argv)
{
	int c;

	while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		struct flag *grown;

		switch (c) {
		case OPT_HELP: usage(stdout); exit(0);
		case OPT_VERSION: print_version(); exit(0);
		case OPT_CONFIG:
			free(config_path);
			config_path = xstrdup(optarg);
			config_explicit = true;
			continue;
		case '?':
		case ':': fprintf(stderr, "Try 'rendezvousd --help'.\n"); exit(2);
		default: break;
		}
		grown = realloc(flags, (nflags + 1) * sizeof *flags);
		if (grown == NULL)
			fatal("out of memory");
		flags = grown;
		flags[nflags].id = c;
		flags[nflags].value = optarg != NULL ? xstrdup(optarg) : NULL;
		nflags++;
	}
	if (optind < argc) {
		fprintf(stderr,
			"rendezvousd: unexpected argument '%s'\nTry 'rendezvousd --help'.\n",
			argv[optind]);
		exit(2);
	}
	if (config_path == NULL) {
		/* systemd's ConfigurationDirectory= (the first, if it names several). */
		const char *env = getenv("CONFIGURATION_DIRECTORY");
		size_t n = env != NULL ? strcspn(env, ":") : 0;
		char buf[4096];

		snprintf(buf, sizeof buf, "%.*s/%s",
			 n > 0 ? (int)n : (int)strlen(CONFIG_DIR_DEFAULT),
			 n > 0 ? env : CONFIG_DIR_DEFAULT, CONFIG_NAME);
		config_path = xstrdup(buf);
	}
	if (config_load(&config, false) != 0) {
		bool check = false;
		for (size_t i = 0; i < nflags; i++)
			check = check || flags[i].id == OPT_CHECK_CONFIG;
		if (!check)
			fprintf(stderr, "Try 'rendezvousd --help'.\n");
		exit(check ? 1 : 2);
	}
	log_set_level(config.log_level);
}

const char *
options_config_path(void)
{
	return config_path;
}

static bool
lists_equal(char **a, size_t na, char **b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		if (strcmp(a[i], b[i]) != 0)
			return false;
	}
	return true;
}

static bool
strings_equal(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Keep what only a restart changes, warning when the new settings differ. */
static void
keep_restart_only(struct config *next, struct config *cur)
{
	bool changed = !lists_equal(next->listen, next->nlisten, cur->listen, cur->nlisten) ||
		       !lists_equal(next->listen_tls, next->nlisten_tls, cur->listen_tls,
				    cur->nlisten_tls) ||
		       next->insecure != cur->insecure || next->auth != cur->auth ||
		       !strings_equal(next->store, cur->store) ||
		       !strings_equal(next->state_dir, cur->state_dir) ||
		       next->durability != cur->durability || next->history != cur->history ||
		       !strings_equal(next->metrics, cur->metrics);

	if (changed)
		log_warn("reload: a setting among " RESTART_ONLY " changed; it takes effect at "
			 "the next start");
		/* next takes the values in use; cur, about to be freed, takes next's. */
#define KEEP(field)                                        \
	do {                                               \
		__typeof__(cur->field) kept_ = cur->field; \
		cur->field = next->field;                  \
		next->field = kept_;                       \
	} while (0)
	KEEP(listen);
	KEEP(nlisten);
	KEEP(listen_default);
	KEEP(listen_tls);
	KEEP(nlisten_tls);
	KEEP(insecure);
	KEEP(auth);
	KEEP(store);
	KEEP(state_dir);
	KEEP(durability);
	KEEP(history);
	KEEP(metrics);
#undef KEEP
}

int
options_load_next(struct config *next)
{
	if (config_load(next, true) != 0) {
		config_free(next);
		return -1;
	}
	return 0;
}

void
options_use(struct config *next)
{
	keep_restart_only(next, &config);
	config_free(&config);
	config = *next;
	memset(next, 0, sizeof *next);
	log_set_level(config.log_level);
}

void
options_discard(struct config *next)
{
	config_free(next);
}

void
options_finish(void)
{
	config_free(&config);
	for (size_t i = 0; i < nflags; i++)
		free(flags[i].value);
	free(flags);
	flags = NULL;
	nflags = 0;
	free(config_path);
	config_path = NULL;
	config_explicit = false;
}
