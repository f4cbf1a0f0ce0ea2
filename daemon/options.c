/* Command-line options: defaults, parsing, --help and --version. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>
#include <sqlite3.h>

#include "config.h"
#include "notify.h"
#include "rendezvous.h"
#include "util.h"

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
	OPT_MAX_SUBSCRIPTIONS,
	OPT_HISTORY,
	OPT_HISTORY_AGE,
	OPT_STORE,
	OPT_STATE_DIR,
	OPT_DURABILITY,
	OPT_CHECK_STORE,
	OPT_LOG_LEVEL,
	OPT_HELP,
	OPT_VERSION,
};

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
	{"max-subscriptions", required_argument, NULL, OPT_MAX_SUBSCRIPTIONS},
	{"history", required_argument, NULL, OPT_HISTORY},
	{"history-age", required_argument, NULL, OPT_HISTORY_AGE},
	{"store", required_argument, NULL, OPT_STORE},
	{"state-dir", required_argument, NULL, OPT_STATE_DIR},
	{"durability", required_argument, NULL, OPT_DURABILITY},
	{"check-store", no_argument, NULL, OPT_CHECK_STORE},
	{"log-level", required_argument, NULL, OPT_LOG_LEVEL},
	{"help", no_argument, NULL, OPT_HELP},
	{"version", no_argument, NULL, OPT_VERSION},
	{NULL, 0, NULL, 0},
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
		"  --listen HOST:PORT        address to listen on; repeatable; port 0 picks a\n"
		"                            free port (the bound address is logged)\n"
		"                            [default: 127.0.0.1:%d]\n"
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
		RV_DEFAULT_PORT);
	fputs("Storage (README.md, Durability):\n"
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
	      "  --max-request-burst N     requests at once above that rate\n"
	      "                            [default: the rate]\n"
	      "  --max-sessions-per-user N live sessions one user may have created\n"
	      "                            [default: 1000]\n"
	      "  --max-subscriptions N     subscriptions per connection [default: 1024]\n"
	      "  --history N               events kept for subscribe {since} [default: 10000]\n"
	      "  --history-age S           and for at most this long [default: 86400]\n"
	      "Other:\n"
	      "  --log-level LEVEL         error, warn, info or debug [default: info]\n"
	      "  --help                    show this help and exit\n"
	      "  --version                 show the version and exit\n"
	      "\n"
	      "SIGINT or SIGTERM stops accepting, closes every connection and exits 0.\n",
	      f);
}

static void
bad_value(const char *opt, const char *value, const char *expect)
{
	fprintf(stderr, "rendezvousd: invalid value '%s' for --%s: %s\n", value, opt, expect);
	fprintf(stderr, "Try 'rendezvousd --help'.\n");
	exit(2);
}

static int64_t
opt_seconds(const char *opt, const char *value, bool zero_ok)
{
	int64_t ms;

	if (parse_seconds_ms(value, &ms) != 0 || (!zero_ok && ms == 0))
		bad_value(opt, value, zero_ok ? "expected seconds >= 0" : "expected seconds > 0");
	return ms;
}

static size_t
opt_size(const char *opt, const char *value, size_t min)
{
	size_t v;

	if (parse_size(value, &v) != 0 || v < min) {
		char expect[64];
		snprintf(expect, sizeof expect, "expected a number >= %zu", min);
		bad_value(opt, value, expect);
	}
	return v;
}

static char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		fatal("out of memory");
	return d;
}

/* Replace a string option's value (the last occurrence wins). */
static void
set_string(char **dst, const char *value)
{
	free(*dst);
	*dst = xstrdup(value);
}

static void
push(char ***list, size_t *n, const char *value)
{
	char **l = realloc(*list, (*n + 1) * sizeof **list);

	if (l == NULL || (l[*n] = strdup(value)) == NULL)
		fatal("out of memory");
	*list = l;
	(*n)++;
}

void
options_parse(int argc, char **argv)
{
	int c;

	memset(&config, 0, sizeof config);
	config.invite_ttl_ms = 300 * 1000;
	config.max_ttl_ms = 86400 * 1000;
	config.peer_grace_ms = 30 * 1000;
	config.linger_ms = 60 * 1000;
	config.max_line = 64 * 1024;
	config.max_pending = 32 * 1024 * 1024;
	config.max_connections = 10000;
	config.max_auth_failures = 20;
	config.hello_timeout_ms = 5 * 1000;
	config.max_hello_line = 4096;
	config.max_data = 16 * 1024;
	config.max_sessions_per_user = 1000;
	config.max_subscriptions = 1024;
	config.history = 10000;
	config.history_age_ms = 86400 * 1000;
	config.log_level = LOG_LEVEL_INFO;

	while ((c = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
		switch (c) {
		case OPT_LISTEN: {
			char *host, *port;
			if (rv_parse_hostport(optarg, &host, &port, RV_DEFAULT_PORT_STR) != 0)
				bad_value("listen", optarg, "expected HOST:PORT");
			free(host);
			free(port);
			push(&config.listen, &config.nlisten, optarg);
			break;
		}
		case OPT_OBSERVER:
			if (*optarg == '\0')
				bad_value("observer", optarg, "expected a user name");
			push(&config.observers, &config.nobservers, optarg);
			break;
		case OPT_ADMIN:
			if (*optarg == '\0')
				bad_value("admin", optarg, "expected a user name");
			push(&config.admins, &config.nadmins, optarg);
			break;
		case OPT_AUTH:
			if (strcmp(optarg, "none") == 0)
				config.auth = AUTH_NONE;
			else if (strcmp(optarg, "jwt") == 0)
				config.auth = AUTH_JWT;
			else
				bad_value("auth", optarg, "expected none or jwt");
			break;
		case OPT_JWT_KEY: push(&config.jwt_keys, &config.njwt_keys, optarg); break;
		case OPT_JWT_AUDIENCE: set_string(&config.jwt_audience, optarg); break;
		case OPT_JWT_ISSUER: set_string(&config.jwt_issuer, optarg); break;
		case OPT_JWT_LEEWAY:
			config.jwt_leeway_ms = opt_seconds("jwt-leeway", optarg, true);
			break;
		case OPT_INSECURE: config.insecure = true; break;
		case OPT_LISTEN_TLS: {
			char *host, *port;
			if (rv_parse_hostport(optarg, &host, &port, RV_DEFAULT_PORT_STR) != 0)
				bad_value("listen-tls", optarg, "expected HOST:PORT");
			free(host);
			free(port);
			push(&config.listen_tls, &config.nlisten_tls, optarg);
			break;
		}
		case OPT_TLS_CERT: set_string(&config.tls_cert, optarg); break;
		case OPT_TLS_KEY: set_string(&config.tls_key, optarg); break;
		case OPT_TLS_CLIENT_CA: set_string(&config.tls_client_ca, optarg); break;
		case OPT_MAX_CONNS_PER_ADDRESS:
			config.max_conns_per_address =
				opt_size("max-connections-per-address", optarg, 0);
			break;
		case OPT_MAX_AUTH_FAILURES:
			config.max_auth_failures = opt_size("max-auth-failures", optarg, 1);
			break;
		case OPT_HELLO_TIMEOUT:
			config.hello_timeout_ms = opt_seconds("hello-timeout", optarg, false);
			break;
		case OPT_MAX_DATA: config.max_data = opt_size("max-data", optarg, 16); break;
		case OPT_MAX_REQUEST_RATE:
			config.max_request_rate = opt_size("max-request-rate", optarg, 0);
			break;
		case OPT_MAX_REQUEST_BURST:
			config.max_request_burst = opt_size("max-request-burst", optarg, 1);
			break;
		case OPT_MAX_HELLO_LINE:
			config.max_hello_line = opt_size("max-hello-line", optarg, 256);
			break;
		case OPT_INVITE_TTL:
			config.invite_ttl_ms = opt_seconds("invite-ttl", optarg, false);
			break;
		case OPT_MAX_TTL: config.max_ttl_ms = opt_seconds("max-ttl", optarg, false); break;
		case OPT_PEER_GRACE:
			config.peer_grace_ms = opt_seconds("peer-grace", optarg, true);
			break;
		case OPT_LINGER: config.linger_ms = opt_seconds("linger", optarg, true); break;
		case OPT_MAX_LINE: config.max_line = opt_size("max-line", optarg, 256); break;
		case OPT_MAX_PENDING:
			config.max_pending = opt_size("max-pending", optarg, 1024);
			break;
		case OPT_MAX_CONNECTIONS:
			config.max_connections = opt_size("max-connections", optarg, 1);
			break;
		case OPT_MAX_SESSIONS:
			config.max_sessions_per_user = opt_size("max-sessions-per-user", optarg, 1);
			break;
		case OPT_MAX_SUBSCRIPTIONS:
			config.max_subscriptions = opt_size("max-subscriptions", optarg, 1);
			break;
		case OPT_HISTORY: config.history = opt_size("history", optarg, 1); break;
		case OPT_HISTORY_AGE:
			config.history_age_ms = opt_seconds("history-age", optarg, false);
			break;
		case OPT_STORE:
			if (strcmp(optarg, "memory") != 0 &&
			    (strncmp(optarg, "sqlite:", 7) != 0 || optarg[7] == '\0'))
				bad_value("store", optarg, "expected sqlite:PATH or memory");
			set_string(&config.store, optarg);
			break;
		case OPT_STATE_DIR:
			if (*optarg == '\0')
				bad_value("state-dir", optarg, "expected a directory");
			set_string(&config.state_dir, optarg);
			break;
		case OPT_DURABILITY:
			if (strcmp(optarg, "normal") == 0)
				config.durability = STORE_NORMAL;
			else if (strcmp(optarg, "strict") == 0)
				config.durability = STORE_STRICT;
			else
				bad_value("durability", optarg, "expected normal or strict");
			break;
		case OPT_CHECK_STORE: config.check_store = true; break;
		case OPT_LOG_LEVEL:
			if (log_level_from_name(optarg, &config.log_level) != 0)
				bad_value("log-level", optarg,
					  "expected error, warn, info or debug");
			break;
		case OPT_HELP: usage(stdout); exit(0);
		case OPT_VERSION:
			printf("rendezvousd %s (libevent %s, jansson %s, sqlite %s, systemd "
			       "notify %s)\n",
			       RV_VERSION, event_get_version(), jansson_version_str(),
			       sqlite3_libversion(), notify_supported() ? "yes" : "no");
			exit(0);
		default: fprintf(stderr, "Try 'rendezvousd --help'.\n"); exit(2);
		}
	}
	if (optind < argc) {
		fprintf(stderr,
			"rendezvousd: unexpected argument '%s'\nTry 'rendezvousd --help'.\n",
			argv[optind]);
		exit(2);
	}
	if (config.auth == AUTH_NONE && config.njwt_keys > 0) {
		fprintf(stderr, "rendezvousd: --jwt-key needs --auth jwt\n");
		exit(2);
	}
	if (config.max_request_burst == 0)
		config.max_request_burst = config.max_request_rate;
	if (config.max_hello_line > config.max_line)
		config.max_hello_line = config.max_line;
	if (config.invite_ttl_ms > config.max_ttl_ms)
		config.max_ttl_ms = config.invite_ttl_ms;
	if (config.nlisten == 0 && config.nlisten_tls == 0)
		push(&config.listen, &config.nlisten, "127.0.0.1:" RV_DEFAULT_PORT_STR);
	if (config.state_dir == NULL) {
		/* systemd's StateDirectory= (the first, if it names several). */
		const char *env = getenv("STATE_DIRECTORY");
		size_t n = env != NULL ? strcspn(env, ":") : 0;
		config.state_dir = n > 0 ? strndup(env, n) : strdup("/var/lib/rendezvous");
		if (config.state_dir == NULL)
			fatal("out of memory");
	}
	log_set_level(config.log_level);
}

static void
free_list(char **list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(list[i]);
	free(list);
}

void
options_finish(void)
{
	free_list(config.listen, config.nlisten);
	free_list(config.observers, config.nobservers);
	free_list(config.admins, config.nadmins);
	free_list(config.jwt_keys, config.njwt_keys);
	free_list(config.listen_tls, config.nlisten_tls);
	free(config.tls_cert);
	free(config.tls_key);
	free(config.tls_client_ca);
	free(config.jwt_audience);
	free(config.jwt_issuer);
	free(config.store);
	free(config.state_dir);
	memset(&config, 0, sizeof config);
}
