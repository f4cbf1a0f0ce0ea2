/* Listeners: bind every --listen address and hand accepted sockets to conn. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "addrs.h"
#include "config.h"
#include "conn.h"
#include "listener.h"
#include "log.h"
#include "rendezvous.h"
#include "stats.h"
#include "util.h"

/* How long to stop accepting when out of file descriptors. */
#define EMFILE_BACKOFF_MS 250

struct listener {
	struct evconnlistener *lev;
	struct event *resume; /* re-enables accepting after a back-off */
	char name[80];
	int64_t last_warn; /* when fd exhaustion was last logged */
	bool tls;
};

static struct listener **listeners;
static size_t nlisteners;

/* Refuse a connection over a limit with one error line, then close it. */
static void
listener_refuse(evutil_socket_t fd, const char *what, const char *limit, size_t value)
{
	char line[256];
	int n = snprintf(line, sizeof line,
			 "{\"jsonrpc\":\"2.0\",\"error\":{\"code\":%d,\"message\":\"limit "
			 "exceeded: %s\",\"data\":{\"%s\":%zu}},\"id\":null}\n",
			 RV_ERR_LIMIT, what, limit, value);

	if (send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("refusing connection: %s", strerror(errno));
	evutil_closesocket(fd);
}

static void
listener_on_accept(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int len,
		   void *arg)
{
	struct listener *l = arg;
	struct addr *a;

	(void)lev;
	(void)len;
	if (conns_count() >= config.max_connections) {
		stats.refused_connections++;
		log_warn("connection refused: %zu connections (max-connections)", conns_count());
		listener_refuse(fd, "too many connections", "max_connections",
				config.max_connections);
		return;
	}
	a = addr_connect(sa);
	if (a == NULL && errno == EAGAIN) {
		stats.refused_per_address++;
		log_warn("connection refused: %zu connections from that address "
			 "(max-connections-per-address)",
			 config.max_conns_per_address);
		listener_refuse(fd, "too many connections from this address",
				"max_connections_per_address", config.max_conns_per_address);
		return;
	}
	if (a == NULL) {
		log_error("cannot set up a new connection: out of memory");
		evutil_closesocket(fd);
		return;
	}
	if ((l->tls ? conn_create_tls(fd, sa, a) : conn_create(fd, sa, a)) == NULL)
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

static void
format_addr(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof host);
		snprintf(buf, len, "[%s]:%u", host, ntohs(s6->sin6_port));
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof host);
		snprintf(buf, len, "%s:%u", host, ntohs(s4->sin_port));
	}
}

static bool
is_loopback(const struct sockaddr *sa)
{
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

/* Bind one address (every address it resolves to). */
static int
listener_bind(struct event_base *base, const char *spec, bool tls)
{
	struct addrinfo hints = {0}, *res, *ai;
	char *host, *port;
	int rc, bound = 0;

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
		struct listener *l, **grown;
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof ss;

		if (listener_check_exposure(spec, ai->ai_addr) != 0) {
			freeaddrinfo(res);
			return -1;
		}
		grown = realloc(listeners, (nlisteners + 1) * sizeof *listeners);
		l = calloc(1, sizeof *l);
		if (grown != NULL)
			listeners = grown;
		if (grown == NULL || l == NULL) {
			free(l);
			break;
		}
		l->tls = tls;
		l->resume = evtimer_new(base, listener_on_resume, l);
		l->lev = evconnlistener_new_bind(base, listener_on_accept, l,
						 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
							 LEV_OPT_CLOSE_ON_EXEC,
						 511, ai->ai_addr, (int)ai->ai_addrlen);
		if (l->lev == NULL || l->resume == NULL) {
			log_error("--listen %s: cannot bind: %s", spec, strerror(errno));
			if (l->lev != NULL)
				evconnlistener_free(l->lev);
			if (l->resume != NULL)
				event_free(l->resume);
			free(l);
			continue;
		}
		evconnlistener_set_error_cb(l->lev, listener_on_error);
		if (getsockname(evconnlistener_get_fd(l->lev), (struct sockaddr *)&ss, &sslen) == 0)
			format_addr((struct sockaddr *)&ss, l->name, sizeof l->name);
		listeners[nlisteners++] = l;
		bound++;
		log_info("listening on %s%s", l->name, tls ? " (TLS)" : "");
	}
	freeaddrinfo(res);
	return bound > 0 ? 0 : -1;
}

int
listeners_init(struct event_base *base)
{
	for (size_t i = 0; i < config.nlisten; i++) {
		if (listener_bind(base, config.listen[i], false) != 0)
			return -1;
	}
	for (size_t i = 0; i < config.nlisten_tls; i++) {
		if (listener_bind(base, config.listen_tls[i], true) != 0)
			return -1;
	}
	return 0;
}

void
listeners_finish(void)
{
	for (size_t i = 0; i < nlisteners; i++) {
		evconnlistener_free(listeners[i]->lev);
		event_free(listeners[i]->resume);
		free(listeners[i]);
	}
	free(listeners);
	listeners = NULL;
	nlisteners = 0;
}
