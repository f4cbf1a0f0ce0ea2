/*
 * Listening sockets: bind, accept, connection limit, fd-exhaustion back-off.
 *
 * Loop thread only. Each accepted socket goes to client_create(), which
 * owns it from then on.
 */
#ifndef RV_LISTENER_H
#define RV_LISTENER_H

struct event_base;

/* Bind every --listen address; logs each bound address. 0, or -1. */
int listeners_init(struct event_base *base);
/* Stop accepting (shutdown). */
void listeners_finish(void);

#endif
