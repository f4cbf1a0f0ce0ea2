/*
 * TLS for --listen-tls: one server context from --tls-cert, --tls-key and
 * (for mutual TLS) --tls-client-ca; TLS 1.2 or later only. Connections run
 * through libevent's OpenSSL bufferevents (conn.c).
 */
#ifndef RV_TLS_H
#define RV_TLS_H

#include <event2/util.h>

struct bufferevent;
struct event_base;

/* Load the certificate and keys, if any TLS listener is configured. -1 after logging. */
int tls_init(void);
void tls_finish(void);

/* An OpenSSL bufferevent accepting on fd (owns fd from now on), or NULL. */
struct bufferevent *tls_accept(struct event_base *base, evutil_socket_t fd);

/* The reason the last TLS operation on this thread failed, for logs. */
const char *tls_error(void);

#endif
