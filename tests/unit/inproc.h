/*
 * The daemon's modules in this process, as fuzz/fuzz_rpc.c drives them: a
 * fresh state per run, clients on socketpairs, the event loop turned by
 * hand. For unit tests of the connection and dispatch layers.
 */
#ifndef RV_INPROC_H
#define RV_INPROC_H

#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "addrs.h"
#include "client.h"
#include "commit.h"
#include "config.h"
#include "core.h"
#include "conn.h"
#include "hub.h"
#include "identity.h"
#include "sessions.h"
#include "store.h"

static struct event_base *inproc_base;

/* Parse the daemon's options (once per process) and set up what lives across runs. */
static inline void
inproc_init(int argc, char **argv)
{
	options_parse(argc, argv);
	inproc_base = event_base_new();
	if (inproc_base == NULL || identity_init() != 0)
		abort();
}

/* A fresh daemon state: store (when configured), history, sessions, connections. */
static inline void
inproc_start(void)
{
	if (core_start(inproc_base) != 0 || store_open(false) != 0 || core_recover() != 0)
		abort();
}

/* A client on a socketpair: the daemon's connection, and the peer's end in *peer. */
static inline struct conn *
inproc_connect(int *peer, int sndbuf)
{
	struct sockaddr_storage ss = {.ss_family = AF_UNIX};
	struct addr *a = addr_connect((struct sockaddr *)&ss);
	struct client *c;
	int sv[2];

	if (a == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
		abort();
	if (sndbuf > 0)
		setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
	c = client_create(sv[0], (struct sockaddr *)&ss, a, false);
	if (c == NULL)
		abort();
	*peer = sv[1];
	return c->conn;
}

/* One pass of the event loop as main.c runs it: events, commit, output. */
static inline void
inproc_pass(void)
{
	event_base_loop(inproc_base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	do
		commit_pass();
	while (conns_flush());
}

/* Free the state inproc_start() made. */
static inline void
inproc_stop(void)
{
	commit_pass();
	core_stop();
	store_close();
}

static inline void
inproc_finish(void)
{
	identity_finish();
	event_base_free(inproc_base);
	options_finish();
}

#endif
