/*
 * TLS for --listen-tls: one server context from --tls-cert, --tls-key and
 * (for mutual TLS) --tls-client-ca; TLS 1.2 or later only. Connections run
 * through libevent's OpenSSL bufferevents (conn.c).
 *
 * Loop thread only (start-up and reload build contexts; connections use
 * them). A loaded context is owned here once tls_context_use() took it.
 */
#ifndef RV_TLS_H
#define RV_TLS_H

#include <stdbool.h>

#include <event2/util.h>

struct bufferevent;
struct event_base;

/* Load the certificate and keys, if any TLS listener is configured. -1 after logging. */
int tls_init(void);
void tls_finish(void);
/* Whether a server context is loaded (reloads load it again). */
bool tls_loaded(void);
/* Whether TLS is not set up (logged): a TLS listener cannot be used. */
bool tls_needs_context(void);

/* A server context, for reloads: load, then use (or free). An SSL_CTX underneath. */
struct tls_context;
struct config;
/* A context from cfg's certificate, key and client CAs; NULL after logging. */
struct tls_context *tls_context_load(const struct config *cfg);
/* Accept with c from now on (owned); connections already up keep theirs. */
void tls_context_use(struct tls_context *c);
void tls_context_free(struct tls_context *c);

/* An OpenSSL bufferevent accepting on fd (owns fd from now on), or NULL. */
struct bufferevent *tls_accept(struct event_base *base, evutil_socket_t fd);

/* The reason the last TLS operation on this thread failed, for logs. */
const char *tls_error(void);

#endif
