/*
 * Asynchronous JSON-RPC client for rendezvousd, on a caller's event_base.
 * The name is resolved with libevent's evdns, so the caller's loop never
 * blocks, and every address it resolves to is tried in turn (IPv6 and
 * IPv4, in the resolver's order) until one accepts the connection.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <uthash.h>

#include "rendezvous.h"
#include "tlsconf.h"

#define CLIENT_DEFAULT_MAX_LINE (16u * 1024 * 1024)
/* How long one address may take to accept the connection before the next is tried. */
#define CLIENT_CONNECT_TIMEOUT_SEC 10

struct pending {
	json_int_t id;
	rv_reply_cb cb;
	void *arg;
	UT_hash_handle hh;
};

struct rv_client {
	struct event_base *base;
	struct bufferevent *bev; /* once connected: the socket, or a TLS filter over it */
	SSL_CTX *ssl_ctx;        /* TLS only */
	char *server_name;       /* TLS: the name the daemon's certificate must carry */
	struct rv_client_callbacks cbs;
	struct rv_framer framer;
	struct pending *pending; /* uthash by id */
	json_int_t next_id;
	bool closed;
	unsigned depth; /* nesting of our callbacks into the user's */
	bool dead;      /* destroyed from inside a callback: free on the way out */

	/* Connecting: resolve the name, then try each address it resolved to. */
	char *host;
	struct evdns_base *dns;
	struct evdns_getaddrinfo_request *dns_req;
	struct evutil_addrinfo *addrs;     /* what the name resolved to */
	struct evutil_addrinfo *next_addr; /* the next address to try */
	struct bufferevent *attempt;       /* the socket connecting now */
	struct event *step;                /* runs the next step from the loop */
	struct evbuffer *queued;           /* requests made before the connection was up */
	char last_error[200];              /* why the last address (or the name) failed */
	unsigned tried;
	/* Several daemons (rv_client_create_any()): each tried in turn; else none. */
	char **hosts, **ports;
	size_t nhosts, cur;
	char *port;          /* the port being tried */
	bool name_from_host; /* TLS: the certificate must name the host being tried */
};

static void client_free(struct rv_client *c);
static void client_on_resolved(int result, struct evutil_addrinfo *res, void *arg);

static void
client_enter(struct rv_client *c)
{
	c->depth++;
}

/* Leave a callback section; false if the client is gone (freed or dying). */
static bool
client_leave(struct rv_client *c)
{
	if (--c->depth == 0 && c->dead) {
		client_free(c);
		return false;
	}
	return !c->dead;
}

static void
client_fail_pending(struct rv_client *c, const char *reason)
{
	struct pending *p, *tmp;
	json_t *err = json_pack("{s:i, s:s}", "code", RV_ERR_INTERNAL, "message", reason);

	/*
	 * Every call is answered exactly once: without memory for the error
	 * object, its callback still gets one, jansson's static null.
	 */
	HASH_ITER (hh, c->pending, p, tmp) {
		HASH_DEL(c->pending, p);
		if (p->cb != NULL && !c->dead)
			p->cb(c, NULL, err != NULL ? err : json_null(), p->arg);
		free(p);
	}
	json_decref(err);
}

/* Mark the client closed and tell the owner, once. */
static void
client_lost(struct rv_client *c, const char *reason)
{
	if (c->closed)
		return;
	c->closed = true;
	if (c->bev != NULL)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	client_enter(c);
	client_fail_pending(c, reason);
	if (!c->dead && c->cbs.on_close != NULL)
		c->cbs.on_close(c, reason, c->cbs.arg);
	client_leave(c);
}

static void
client_handle(struct rv_client *c, json_t *msg)
{
	struct rv_msg m;
	struct pending *p;
	json_int_t id;

	switch (rv_msg_classify(msg, &m)) {
	case RV_MSG_NOTIFICATION:
		if (c->cbs.on_notify != NULL)
			c->cbs.on_notify(c, m.method, m.params, c->cbs.arg);
		break;
	case RV_MSG_RESPONSE:
		if (!json_is_integer(m.id)) {
			/* id null: an error the daemon could not tie to a request. */
			if (m.error != NULL && c->cbs.on_notify != NULL)
				c->cbs.on_notify(c, "error", m.error, c->cbs.arg);
			break;
		}
		id = json_integer_value(m.id);
		HASH_FIND(hh, c->pending, &id, sizeof id, p);
		if (p == NULL)
			break;
		HASH_DEL(c->pending, p);
		if (p->cb != NULL)
			p->cb(c, m.result, m.error, p->arg);
		free(p);
		break;
	default: break;
	}
}

static void
client_on_read(struct bufferevent *bev, void *arg)
{
	struct rv_client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;

	client_enter(c);
	while (!c->dead && !c->closed) {
		enum rv_frame r = rv_framer_next(&c->framer, in, &line, &len);
		json_t *msg;

		if (r == RV_FRAME_NONE)
			break;
		if (r == RV_FRAME_TOO_LONG) {
			client_lost(c, "line from server too long");
			break;
		}
		msg = rv_msg_decode(line, len, NULL);
		rv_framer_consume(&c->framer, in);
		if (msg == NULL) {
			client_lost(c, "invalid JSON from server");
			break;
		}
		client_handle(c, msg);
		json_decref(msg);
	}
	client_leave(c);
}

static void
client_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct rv_client *c = arg;

	if (what & BEV_EVENT_CONNECTED)
		return; /* the TLS handshake is done */
	if (what & BEV_EVENT_EOF) {
		client_lost(c, "connection closed by server");
	} else if (what & BEV_EVENT_ERROR) {
		unsigned long tls = c->ssl_ctx != NULL ? bufferevent_get_openssl_error(bev) : 0;
		char buf[256];

		if (tls != 0) {
			char why[200];
			ERR_error_string_n(tls, why, sizeof why);
			snprintf(buf, sizeof buf, "TLS failed: %s", why);
		} else {
			snprintf(buf, sizeof buf, "connection failed: %s",
				 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		}
		client_lost(c, buf);
	}
}

/* A client context: TLS 1.2+, the daemon verified against ca_file (or the system's CAs). */
static SSL_CTX *
client_ssl_ctx(const struct rv_tls_options *tls)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, RV_TLS12_CIPHERS) != 1)
		goto fail;
	if (tls->ca_file != NULL ? SSL_CTX_load_verify_locations(ctx, tls->ca_file, NULL) != 1
				 : SSL_CTX_set_default_verify_paths(ctx) != 1)
		goto fail;
	if (tls->cert_file != NULL &&
	    (SSL_CTX_use_certificate_chain_file(ctx, tls->cert_file) != 1 ||
	     SSL_CTX_use_PrivateKey_file(ctx,
					 tls->key_file != NULL ? tls->key_file : tls->cert_file,
					 SSL_FILETYPE_PEM) != 1))
		goto fail;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

/* An SSL that checks the certificate names name (DNS name or IP address) and sends SNI. */
static SSL *
client_ssl(SSL_CTX *ctx, const char *name)
{
	SSL *ssl = SSL_new(ctx);
	unsigned char ip[16];
	bool is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;

	if (ssl == NULL)
		return NULL;
	if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1
		  : SSL_set1_host(ssl, name) != 1 || SSL_set_tlsext_host_name(ssl, name) != 1) {
		SSL_free(ssl);
		return NULL;
	}
	return ssl;
}

/* Have the loop run the next connection step: never inside rv_client_create(). */
static void
client_schedule(struct rv_client *c)
{
	event_active(c->step, EV_TIMEOUT, 0);
}

/* The connection is up on sock: put TLS over it if asked, and send what was queued. */
static void
client_established(struct rv_client *c, struct bufferevent *sock)
{
	bufferevent_set_timeouts(sock, NULL, NULL);
	c->bev = sock;
	if (c->ssl_ctx != NULL) {
		/* TLS as a filter over the connected socket. */
		SSL *ssl = client_ssl(c->ssl_ctx, c->server_name);
		c->bev = ssl != NULL ? bufferevent_openssl_filter_new(c->base, sock, ssl,
								      BUFFEREVENT_SSL_CONNECTING,
								      BEV_OPT_CLOSE_ON_FREE)
				     : NULL;
		if (c->bev == NULL) {
			/*
			 * Without an ssl, sock is still ours. A failed filter (out
			 * of memory) may already have freed ssl and sock, on some of
			 * libevent's paths: leak them rather than free them twice.
			 */
			if (ssl == NULL)
				bufferevent_free(sock);
			client_lost(c, "TLS failed: cannot set up the connection");
			return;
		}
	}
	bufferevent_setcb(c->bev, client_on_read, NULL, client_on_event, c);
	if (bufferevent_write_buffer(c->bev, c->queued) != 0 ||
	    bufferevent_enable(c->bev, EV_READ | EV_WRITE) != 0)
		client_lost(c, "out of memory");
}

static void
client_on_connect_event(struct bufferevent *sock, short what, void *arg)
{
	struct rv_client *c = arg;

	c->attempt = NULL;
	if (what & BEV_EVENT_CONNECTED) {
		client_established(c, sock);
		return;
	}
	snprintf(c->last_error, sizeof c->last_error, "%s",
		 what & BEV_EVENT_TIMEOUT ? "timed out"
					  : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	bufferevent_free(sock);
	client_schedule(c); /* the next address, if any */
}

/*
 * Resolve host and port: the connection steps go on from
 * client_on_resolved(). 0, or -1 when memory ran out.
 */
static int
client_resolve(struct rv_client *c, const char *host, const char *port)
{
	struct evutil_addrinfo hints;

	free(c->host);
	free(c->port);
	c->host = strdup(host);
	c->port = strdup(port);
	if (c->host == NULL || c->port == NULL)
		return -1;
	if (c->name_from_host) {
		free(c->server_name);
		if ((c->server_name = strdup(host)) == NULL)
			return -1;
	}
	if (c->addrs != NULL)
		evutil_freeaddrinfo(c->addrs);
	c->addrs = c->next_addr = NULL;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_protocol = IPPROTO_TCP;
	/* A numeric host answers at once, from inside this call: see client_on_resolved(). */
	c->dns_req = evdns_getaddrinfo(c->dns, host, port, &hints, client_on_resolved, c);
	return 0;
}

/* With several daemons, go on to the next one; false when none is left. */
static bool
client_next_host(struct rv_client *c)
{
	if (c->cur + 1 >= c->nhosts)
		return false;
	c->cur++;
	if (client_resolve(c, c->hosts[c->cur], c->ports[c->cur]) != 0) {
		snprintf(c->last_error, sizeof c->last_error, "out of memory");
		return false;
	}
	return true;
}

/* Start connecting to the next address; when none is left, give up. */
static void
client_try_next(struct rv_client *c)
{
	static const struct timeval timeout = {CLIENT_CONNECT_TIMEOUT_SEC, 0};
	char why[320];

	while (c->next_addr != NULL) {
		struct evutil_addrinfo *ai = c->next_addr;
		struct bufferevent *sock =
			bufferevent_socket_new(c->base, -1, BEV_OPT_CLOSE_ON_FREE);

		c->next_addr = ai->ai_next;
		c->tried++;
		if (sock == NULL) {
			snprintf(c->last_error, sizeof c->last_error, "out of memory");
			continue;
		}
		bufferevent_setcb(sock, NULL, NULL, client_on_connect_event, c);
		bufferevent_set_timeouts(sock, NULL, &timeout);
		if (bufferevent_socket_connect(sock, ai->ai_addr, (int)ai->ai_addrlen) == 0) {
			c->attempt = sock;
			return; /* client_on_connect_event() says how it went */
		}
		snprintf(c->last_error, sizeof c->last_error, "%s",
			 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		bufferevent_free(sock);
	}
	if (client_next_host(c))
		return;
	if (c->nhosts > 1)
		snprintf(why, sizeof why,
			 "connection failed: %s (tried %u addresses of %zu daemons)", c->last_error,
			 c->tried, c->nhosts);
	else if (c->tried > 1)
		snprintf(why, sizeof why, "connection failed: %s (tried %u addresses of %s)",
			 c->last_error, c->tried, c->host);
	else
		snprintf(why, sizeof why, "connection failed: %s", c->last_error);
	client_lost(c, why);
}

/* The loop's turn: the name resolved (or did not), or an address failed. */
static void
client_on_step(evutil_socket_t fd, short what, void *arg)
{
	struct rv_client *c = arg;

	(void)fd;
	(void)what;
	if (c->closed || c->dns_req != NULL || c->attempt != NULL || c->bev != NULL)
		return;
	if (c->addrs == NULL && !client_next_host(c))
		client_lost(c, c->last_error); /* the name did not resolve */
	else if (c->addrs != NULL)
		client_try_next(c);
}

static void
client_on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
	struct rv_client *c = arg;

	c->dns_req = NULL;
	if (result == EVUTIL_EAI_CANCEL)
		return; /* the client is being freed */
	if (result != 0 || res == NULL) {
		snprintf(c->last_error, sizeof c->last_error, "cannot resolve host %s: %s", c->host,
			 result != 0 ? evutil_gai_strerror(result) : "no address");
		if (res != NULL)
			evutil_freeaddrinfo(res);
	} else {
		c->addrs = c->next_addr = res;
	}
	/* A numeric host resolves inside rv_client_create(): carry on from the loop. */
	client_schedule(c);
}

/*
 * A resolver on base for this client: /etc/resolv.conf and /etc/hosts as
 * the system has them; it keeps no event pending while it has no request.
 */
static struct evdns_base *
client_resolver(struct event_base *base)
{
	struct evdns_base *dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
							      EVDNS_BASE_DISABLE_WHEN_INACTIVE);

	if (dns == NULL) {
		/* No usable resolv.conf: names from /etc/hosts, and numeric addresses, still work.
		 */
		dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
		if (dns != NULL)
			evdns_base_load_hosts(dns, NULL);
	}
	return dns;
}

static struct rv_client *
client_create(struct event_base *base, const char *host, const char *port,
	      const struct rv_tls_options *tls, const struct rv_client_callbacks *cbs)
{
	struct rv_client *c;
	char *end;
	long portnum;

	errno = 0;
	portnum = strtol(port, &end, 10);
	if (*port == '\0' || *end != '\0' || portnum <= 0 || portnum > 65535) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	if (cbs != NULL)
		c->cbs = *cbs;
	c->base = base;
	c->next_id = 1;
	rv_framer_init(&c->framer, CLIENT_DEFAULT_MAX_LINE);
	c->queued = evbuffer_new();
	c->step = event_new(base, -1, 0, client_on_step, c);
	c->dns = client_resolver(base);
	if (c->queued == NULL || c->step == NULL || c->dns == NULL)
		goto fail;
	if (tls != NULL) {
		c->ssl_ctx = client_ssl_ctx(tls);
		c->server_name = strdup(tls->server_name != NULL ? tls->server_name : host);
		if (c->ssl_ctx == NULL || c->server_name == NULL) {
			errno = EPROTO;
			goto fail;
		}
	}
	c->name_from_host = tls != NULL && tls->server_name == NULL;
	if (client_resolve(c, host, port) != 0)
		goto fail;
	return c;
fail:
	if (errno == 0)
		errno = ENOMEM;
	client_free(c);
	return NULL;
}

struct rv_client *
rv_client_create(struct event_base *base, const char *host, const char *port,
		 const struct rv_client_callbacks *cbs)
{
	return client_create(base, host, port, NULL, cbs);
}

struct rv_client *
rv_client_create_tls(struct event_base *base, const char *host, const char *port,
		     const struct rv_tls_options *tls, const struct rv_client_callbacks *cbs)
{
	static const struct rv_tls_options none;

	return client_create(base, host, port, tls != NULL ? tls : &none, cbs);
}

struct rv_client *
rv_client_create_any(struct event_base *base, const char *addresses, const char *default_port,
		     const struct rv_tls_options *tls, const struct rv_client_callbacks *cbs)
{
	char *list = strdup(addresses), *save = NULL, *a;
	char **hosts = NULL, **ports = NULL;
	size_t n = 0, cap = 0;
	struct rv_client *c = NULL;

	if (list == NULL)
		return NULL;
	for (a = strtok_r(list, ",", &save); a != NULL; a = strtok_r(NULL, ",", &save)) {
		if (n == cap) {
			char **h = realloc(hosts, (cap * 2 + 4) * sizeof *h);
			char **p = h != NULL ? realloc(ports, (cap * 2 + 4) * sizeof *p) : NULL;
			if (h != NULL)
				hosts = h;
			if (p == NULL) {
				errno = ENOMEM;
				goto done;
			}
			ports = p;
			cap = cap * 2 + 4;
		}
		if (rv_parse_hostport(a, &hosts[n], &ports[n], default_port) != 0) {
			errno = EINVAL;
			goto done;
		}
		n++;
	}
	if (n == 0) {
		errno = EINVAL;
		goto done;
	}
	c = client_create(base, hosts[0], ports[0], tls, cbs);
	if (c != NULL) {
		/* The rest are tried when every address of the one before failed. */
		for (size_t i = 0; i < n; i++) {
			char *end;
			long port = strtol(ports[i], &end, 10);
			if (*end != '\0' || port <= 0 || port > 65535) {
				rv_client_destroy(c);
				c = NULL;
				errno = EINVAL;
				goto done;
			}
		}
		c->hosts = hosts;
		c->ports = ports;
		c->nhosts = n;
		hosts = ports = NULL;
		n = 0;
	}
done:
	for (size_t i = 0; i < n; i++) {
		free(hosts[i]);
		free(ports[i]);
	}
	free(hosts);
	free(ports);
	free(list);
	return c;
}

const char *
rv_client_address(const struct rv_client *c)
{
	return c->host;
}

static void
client_free(struct rv_client *c)
{
	struct pending *p, *tmp;
	int saved = errno;

	HASH_ITER (hh, c->pending, p, tmp) {
		HASH_DEL(c->pending, p);
		free(p);
	}
	if (c->dns_req != NULL)
		evdns_getaddrinfo_cancel(c->dns_req); /* its callback sees EVUTIL_EAI_CANCEL */
	if (c->dns != NULL)
		evdns_base_free(c->dns, 0);
	if (c->addrs != NULL)
		evutil_freeaddrinfo(c->addrs);
	if (c->attempt != NULL)
		bufferevent_free(c->attempt);
	if (c->bev != NULL)
		bufferevent_free(c->bev); /* and the socket under a TLS filter */
	if (c->step != NULL)
		event_free(c->step);
	if (c->queued != NULL)
		evbuffer_free(c->queued);
	SSL_CTX_free(c->ssl_ctx);
	free(c->server_name);
	free(c->host);
	free(c->port);
	for (size_t i = 0; i < c->nhosts; i++) {
		free(c->hosts[i]);
		free(c->ports[i]);
	}
	free(c->hosts);
	free(c->ports);
	free(c);
	errno = saved;
}

void
rv_client_destroy(struct rv_client *c)
{
	if (c == NULL)
		return;
	if (c->depth > 0) {
		c->dead = true;
		if (c->bev != NULL)
			bufferevent_disable(c->bev, EV_READ | EV_WRITE);
		return;
	}
	client_free(c);
}

void
rv_client_set_max_line(struct rv_client *c, size_t max)
{
	c->framer.max = max;
}

bool
rv_client_closed(const struct rv_client *c)
{
	return c->closed;
}

int
rv_client_call(struct rv_client *c, const char *method, json_t *params, rv_reply_cb cb, void *arg)
{
	struct pending *p = NULL;
	json_t *msg;
	char *line;
	size_t len;
	int rc;

	if (c->closed) {
		json_decref(params);
		errno = ENOTCONN;
		return -1;
	}
	if (cb != NULL) {
		msg = rv_msg_request(method, params, c->next_id);
		p = calloc(1, sizeof *p);
	} else {
		msg = rv_msg_notification(method, params);
	}
	line = msg != NULL ? rv_msg_encode(msg, &len) : NULL;
	json_decref(msg);
	if (line == NULL || (cb != NULL && p == NULL)) {
		free(line);
		free(p);
		errno = ENOMEM;
		return -1;
	}
	/* Until the connection is up, requests wait in order in 'queued'. */
	rc = c->bev != NULL ? bufferevent_write(c->bev, line, len)
			    : evbuffer_add(c->queued, line, len);
	free(line);
	if (rc != 0) {
		free(p);
		errno = EIO;
		return -1;
	}
	if (p != NULL) {
		p->id = c->next_id++;
		p->cb = cb;
		p->arg = arg;
		HASH_ADD(hh, c->pending, id, sizeof p->id, p);
	}
	return 0;
}
