/*
 * The nodes of a shared store (shared.h): each node's lease in Redis, the
 * devices connected to each node (so that a party on another node is
 * present here), and context data relayed to another node's connections.
 *
 * nodes_* are called by shared.c, which owns the links and feeds this
 * module the messages of its channels; shared_* by the layers above (a
 * device here, context data, the live nodes). Loop thread only.
 */
#ifndef RV_SHARED_NODES_H
#define RV_SHARED_NODES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rendezvous.h"

#define PRESENCE_CHANNEL "rv:presence"
#define CONTEXT_CHANNEL "rv:ctx"

struct device;
struct event_base;
struct redis_link;
struct user;

/*
 * Start with the command link (borrowed) and this node's name (borrowed,
 * lives on). 0, or -1 when memory ran out.
 */
int nodes_start(struct event_base *base, struct redis_link *cmd, const char *name);
/* Forget every device, here and elsewhere. */
void nodes_stop(void);
/* Leaving: give the lease and this node's devices up, waiting a second at most. */
void nodes_leave(void);
/* The command link is (again) up: write this node's devices again, renew the lease. */
void nodes_on_cmd_up(void);
/* The feed is back: read every other node's devices again (messages may be lost). */
void nodes_on_feed_up(void);
/* Every heartbeat: renew the lease. */
void nodes_heartbeat(void);
/* A message on PRESENCE_CHANNEL or CONTEXT_CHANNEL. */
void nodes_on_message(const char *channel, const char *data, size_t len);
/* Whether the lease was answered once and every other node's devices read. */
bool nodes_ready(void);
/* Whether this node holds its lease; how many nodes are live. */
bool nodes_lease(void);
size_t nodes_count(void);

/*
 * A device of u connected here (here), or its last connection here went:
 * tell the other nodes, which count it present while this node's lease
 * lives (client.c).
 */
void shared_device_here(struct user *u, struct device *d, bool here);

/*
 * Relay context data (session.send) to the connections of to (from device,
 * NULL: any) on other nodes, if any node has one: *remote says how many
 * (node, device) pairs it goes to (0: none, nothing sent). 0, or -1 when
 * memory ran out. Nothing is delivered later: a node that lost its
 * connection meanwhile drops it, as one here would.
 */
int shared_send_context(const uint8_t sid[SESSION_ID_BYTES], const char *from, struct user *to,
			const struct device *device, json_t *data, size_t *remote);

/* The name of the i-th live node (i < nodes), borrowed until the next lease renewal. */
const char *shared_node(size_t i);

#endif
