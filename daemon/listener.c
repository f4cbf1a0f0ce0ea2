/* Listeners: bind every --listen address and hand accepted sockets to new clients. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "activation.h"
#include "addrs.h"
#include "config.h"
#include "client.h"
#include "conn.h"
#include "listener.h"
#include "log.h"
#include "rendezvous.h"
#include "stats.h"
#include "tls.h"
#include "util.h"

/* How long to stop accepting when out of file descriptors. */
#define EMFILE_BACKOFF_MS 250

struct listener {
	struct evconnlistener *lev;
	struct event *resume; /* re-enables accepting after a back-off */
	char name[80];
	int64_t last_warn; /* when fd exhaustion was last logged */
	enum conn_kind kind;
	char *unlink_path; /* a Unix socket this process bound: removed at exit */
};

static struct listener **listeners;
static size_t nlisteners;

/*
 * Refuse a connection over a limit with one error line, then close it. A
 * WebSocket's handshake is answered 503 with the line as its body.
 */
static void
listener_refuse(evutil_socket_t fd, enum conn_kind kind, const char *what, const char *limit,
		size_t value)
{
	char message[128], line[256], http[400];
	const char *out;
	json_t *msg;
	size_t n;

	snprintf(message, sizeof message, "limit exceeded: %s", what);
	msg = rv_msg_error(NULL, RV_ERR_LIMIT, message,
			   json_pack("{s:I}", limit, (json_int_t)value));
	n = msg != NULL ? rv_msg_encode_into(msg, line, sizeof line) : 0;
	json_decref(msg);
	stats_error(RV_ERR_LIMIT);
	out = n > 0 && n <= sizeof line ? line : NULL;
	if (out != NULL && kind == CONN_WS) {
		int h = snprintf(
			http, sizeof http,
			"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
			"Content-Length: %zu\r\nConnection: close\r\n\r\n%.*s",
			n, (int)n, line);
		out = h > 0 && (size_t)h < sizeof http ? http : NULL;
		n = out != NULL ? (size_t)h : 0;
	}
	if (out != NULL && send(fd, out, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("refusing connection: %s", strerror(errno));
	evutil_closesocket(fd);
}

static void
listener_on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int len,
		   void *arg)
{
	struct listener *l = arg;
	struct addr *a;

	struct sockaddr_un local = {.sun_family = AF_UNIX}; /* peers are unnamed */

	(void)lev;
	(void)len;
	if (sa->sa_family == AF_UNIX)
		sa = (struct sockaddr *)&local;
	if (conns_count() >= config.max_connections) {
		stats.refused_connections++;
		log_warn("connection refused: %zu connections (max-connections)", conns_count());
		listener_refuse(fd, l->kind, "too many connections", "max_connections",
				config.max_connections);
		return;
	}
	a = addr_connect(sa);
	if (a == NULL && errno == EAGAIN) {
		stats.refused_per_address++;
		log_warn("connection refused: %zu connections from that address "
			 "(max-connections-per-address)",
			 config.max_conns_per_address);
		listener_refuse(fd, l->kind, "too many connections from this address",
				"max_connections_per_address", config.max_conns_per_address);
		return;
	}
	if (a == NULL) {
		log_error("cannot set up a new connection: out of memory");
		evutil_closesocket(fd);
		return;
	}
	stats.connections_accepted++;
	if (client_create(fd, sa, a, l->kind) == NULL)
		log_error("cannot set up a new connection: out of memory");
}

static void
listener_on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	(void)fd;
	(void)what;
	evconnlistener_enable(l->lev);
}

/* accept() failed. Out of descriptors: pause rather than spin; otherwise log. */
static void
listener_on_error(struct evconnlistener *lev, void *arg)
{
	struct listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();

	(void)lev;
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		struct timeval tv = {0, EMFILE_BACKOFF_MS * 1000};
		int64_t now = now_ms();

		/* Warn once per 10 s of exhaustion, not at every pause. */
		if (now - l->last_warn >= 10000) {
			log_warn("%s: accept: %s; pausing accepts for %d ms at a time until "
				 "descriptors free up",
				 l->name, strerror(err), EMFILE_BACKOFF_MS);
			l->last_warn = now;
		}
		evconnlistener_disable(l->lev);
		evtimer_add(l->resume, &tv);
		return;
	}
	log_warn("%s: accept: %s", l->name, strerror(err));
}

static bool
is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_UNIX)
		return true; /* local: file permissions decide who connects */
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)(const void *)sa)->sin_addr.s_addr) >>
			24) == 127;
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a =
			&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

/* With --auth none anyone who reaches the daemon is whoever they claim: loopback only. */
static int
listener_check_exposure(const char *spec, const struct sockaddr *sa)
{
	if (config.auth != AUTH_NONE || is_loopback(sa))
		return 0;
	if (!config.insecure) {
		log_error("--listen %s: refusing a non-loopback address with --auth none: anyone "
			  "who can connect could act as any user. Use --auth jwt, or add "
			  "--insecure to accept that",
			  spec);
		return -1;
	}
	log_warn("INSECURE: --listen %s with --auth none (--insecure): anyone who can connect "
		 "can act as any user",
		 spec);
	return 0;
}

/* Keep a listener for lev (NULL: creating it failed, errno says why). 0, or -1. */
static int
listener_add(struct event_base *base, struct evconnlistener *lev, const char *spec,
	     enum conn_kind kind)
{
	struct listener *l, **grown;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof ss;

	if (lev == NULL) {
		log_error("--listen %s: cannot bind: %s", spec, strerror(errno));
		return -1;
	}
	grown = realloc(listeners, (nlisteners + 1) * sizeof *listeners);
	if (grown != NULL)
		listeners = grown;
	l = calloc(1, sizeof *l);
	if (grown == NULL || l == NULL ||
	    (l->resume = evtimer_new(base, listener_on_resume, l)) == NULL) {
		log_error("--listen %s: out of memory", spec);
		free(l);
		evconnlistener_free(lev);
		return -1;
	}
	l->lev = lev;
	l->kind = kind;
	evconnlistener_set_cb(l->lev, listener_on_accept, l);
	evconnlistener_set_error_cb(l->lev, listener_on_error);
	if (getsockname(evconnlistener_get_fd(l->lev), (struct sockaddr *)&ss, &sslen) == 0)
		sockaddr_format((struct sockaddr *)&ss, l->name, sizeof l->name);
	listeners[nlisteners++] = l;
	log_info("listening on %s%s", l->name,
		 kind == CONN_TLS   ? " (TLS)"
		 : kind == CONN_WS  ? " (WebSocket)"
		 : kind == CONN_WSS ? " (WebSocket, TLS)"
				    : "");
	return 0;
}

/*
 * Bind a Unix socket at path, replacing a stale socket left there. Its mode
 * follows the umask; rendezvousd.socket sets one of its own.
 */
static int
listener_bind_unix(struct event_base *base, const char *spec, const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	struct evconnlistener *lev;
	struct stat st;

	if (strlen(path) >= sizeof sun.sun_path) {
		log_error("--listen %s: path too long", spec);
		return -1;
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_error("--listen %s: %s exists and is not a socket", spec, path);
			return -1;
		}
		unlink(path); /* left by a daemon that did not exit cleanly */
	}
	lev = evconnlistener_new_bind(base, listener_on_accept, NULL,
				      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 511,
				      (struct sockaddr *)&sun, (int)sizeof sun);
	if (listener_add(base, lev, spec, CONN_TCP) != 0)
		return -1;
	listeners[nlisteners - 1]->unlink_path = strdup(path);
	return 0;
}

/*
 * Bind one address (every address it resolves to). An optional one (the
 * default's ::1) that the system cannot have, IPv6 being off, is skipped.
 */
static int
listener_bind(struct event_base *base, const char *spec, enum conn_kind kind, bool optional)
{
	struct addrinfo hints = {0}, *res, *ai;
	char *host, *port;
	int rc, bound = 0;

	if (kind == CONN_TCP && strncmp(spec, "unix:", 5) == 0)
		return listener_bind_unix(base, spec, spec + 5);
	if (rv_parse_hostport(spec, &host, &port, RV_DEFAULT_PORT_STR) != 0) {
		log_error("--listen %s: expected HOST:PORT", spec);
		return -1;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	rc = getaddrinfo(*host ? host : NULL, port, &hints, &res);
	free(host);
	free(port);
	if (rc != 0) {
		log_error("--listen %s: %s", spec, gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		struct evconnlistener *lev;

		if (listener_check_exposure(spec, ai->ai_addr) != 0) {
			freeaddrinfo(res);
			return -1;
		}
		lev = evconnlistener_new_bind(base, listener_on_accept, NULL,
					      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
						      LEV_OPT_CLOSE_ON_EXEC,
					      511, ai->ai_addr, (int)ai->ai_addrlen);
		if (lev == NULL && optional &&
		    (errno == EADDRNOTAVAIL || errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT)) {
			log_info("not listening on %s: %s (IPv6 is off)", spec, strerror(errno));
			freeaddrinfo(res);
			return 0;
		}
		if (listener_add(base, lev, spec, kind) != 0)
			continue;
		bound++;
	}
	freeaddrinfo(res);
	return bound > 0 ? 0 : -1;
}

/*
 * Listen on the sockets systemd passed (socket activation); FileDescriptorName
 * "tls" names TLS ones, "ws" WebSocket ones, "wss" WebSocket inside TLS.
 */
static int
listeners_adopt(struct event_base *base)
{
	char **names = NULL;
	int *fds = NULL;
	int n = activation_fds(&fds, &names), rc = 0;

	if (n < 0)
		return -1;
	for (int i = 0; i < n; i++) {
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof ss;
		const char *name = names != NULL ? names[i] : NULL;
		enum conn_kind kind = name == NULL               ? CONN_TCP
				      : strcmp(name, "tls") == 0 ? CONN_TLS
				      : strcmp(name, "ws") == 0  ? CONN_WS
				      : strcmp(name, "wss") == 0 ? CONN_WSS
								 : CONN_TCP;
		bool tls = kind == CONN_TLS || kind == CONN_WSS;
		char spec[128];
		struct evconnlistener *lev;

		if (rc != 0) {
			close(fds[i]);
			continue;
		}
		snprintf(spec, sizeof spec, "(systemd socket %d%s%s)", fds[i],
			 names != NULL && names[i] != NULL ? " " : "",
			 names != NULL && names[i] != NULL ? names[i] : "");
		if (getsockname(fds[i], (struct sockaddr *)&ss, &sslen) != 0 ||
		    listener_check_exposure(spec, (struct sockaddr *)&ss) != 0 ||
		    (tls && tls_needs_context()) || evutil_make_socket_nonblocking(fds[i]) != 0) {
			close(fds[i]);
			rc = -1;
			continue;
		}
		lev = evconnlistener_new(base, listener_on_accept, NULL,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fds[i]);
		if (lev == NULL)
			close(fds[i]);
		if (listener_add(base, lev, spec, kind) != 0)
			rc = -1;
	}
	activation_free(fds, names, n);
	return rc;
}

int
listeners_init(struct event_base *base)
{
	size_t adopted;

	if (listeners_adopt(base) != 0)
		return -1;
	adopted = nlisteners;
	for (size_t i = 0; i < config.nlisten; i++) {
		/* The default address is for when systemd passes none. */
		if (adopted > 0 && config.listen_default)
			break;
		/* The default's second address, ::1, is optional. */
		if (listener_bind(base, config.listen[i], CONN_TCP,
				  config.listen_default && i > 0) != 0)
			return -1;
	}
	for (size_t i = 0; i < config.nlisten_tls; i++) {
		if (listener_bind(base, config.listen_tls[i], CONN_TLS, false) != 0)
			return -1;
	}
	for (size_t i = 0; i < config.nlisten_ws; i++) {
		if (listener_bind(base, config.listen_ws[i], CONN_WS, false) != 0)
			return -1;
	}
	for (size_t i = 0; i < config.nlisten_wss; i++) {
		if (listener_bind(base, config.listen_wss[i], CONN_WSS, false) != 0)
			return -1;
	}
	return 0;
}

void
listeners_finish(void)
{
	for (size_t i = 0; i < nlisteners; i++) {
		if (listeners[i]->unlink_path != NULL) {
			unlink(listeners[i]->unlink_path);
			free(listeners[i]->unlink_path);
		}
		evconnlistener_free(listeners[i]->lev);
		event_free(listeners[i]->resume);
		free(listeners[i]);
	}
	free(listeners);
	listeners = NULL;
	nlisteners = 0;
}
