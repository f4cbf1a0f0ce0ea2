/* The nodes of a shared store: leases, devices, context relay (see shared_nodes.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <uthash.h>

#include "hub.h"
#include "jsonw.h"
#include "log.h"
#include "presence.h"
#include "redis.h"
#include "redis_scripts.h"
#include "sessions.h"
#include "shared_nodes.h"
#include "users.h"

/* A node's lease: renewed every heartbeat; its devices count while it lives. */
#define LEASE_MS 3000
#define MAX_NODES 256

/* A device connected to another node: "node\nuser\ndevice" (the hash key). */
struct remote {
	struct device *device; /* a reference */
	size_t node_len;
	UT_hash_handle hh;
	char key[];
};

/* A device connected here, as told to the others: "user\ndevice". */
struct here {
	UT_hash_handle hh;
	char key[];
};

static struct {
	struct event_base *base;
	struct redis_link *cmd; /* shared.c's */
	const char *name;       /* this node's */
	struct remote *remotes;
	struct here *here;
	char (*live)[128]; /* the nodes whose lease lives (MAX_NODES) */
	size_t nlive;
	bool leased;       /* the lease script answered once */
	bool lease;        /* this node holds its lease */
	int pending_loads; /* other nodes' devices being read */
} nd;

static void
on_ignored(void *arg, const redisReply *r, const char *err)
{
	(void)arg;
	(void)r;
	(void)err;
}

static void on_presence(const char *data, size_t len);
static void on_context(const char *data, size_t len);
static void load_node(const char *node);

/* Count d present on another node (or not), telling whoever judges presence. */
static void
remote_count(struct device *d, bool add)
{
	struct user *u = d->user;
	bool was = d->nconns + d->remote > 0;

	d->remote = add ? d->remote + 1 : d->remote - 1;
	u->remote = add ? u->remote + 1 : u->remote - 1;
	sessions_presence_changed(u);
	if (was != (d->nconns + d->remote > 0))
		presence_changed(u);
}

/* node's device of user is connected there: count it (once). */
static void
remote_add(const char *node, size_t node_len, const char *user, size_t user_len, const char *device,
	   size_t device_len)
{
	size_t len = node_len + 1 + user_len + 1 + device_len;
	struct remote *r;
	char key[640];
	struct user *u;

	if (len >= sizeof key || user_len == 0 || device_len == 0)
		return;
	memcpy(key, node, node_len);
	key[node_len] = '\n';
	memcpy(key + node_len + 1, user, user_len);
	key[node_len + 1 + user_len] = '\n';
	memcpy(key + node_len + 1 + user_len + 1, device, device_len);
	key[len] = '\0';
	HASH_FIND(hh, nd.remotes, key, len, r);
	if (r != NULL)
		return;
	r = malloc(sizeof *r + len + 1);
	key[node_len + 1 + user_len] = '\0';
	u = r != NULL ? user_get(key + node_len + 1) : NULL;
	key[node_len + 1 + user_len] = '\n';
	if (u != NULL) {
		key[len] = '\0';
		r->device = device_get(u, key + node_len + 1 + user_len + 1);
		user_unref(u); /* the device holds its own */
	}
	if (r == NULL || u == NULL || r->device == NULL) {
		log_error("redis: out of memory counting a device on another node");
		free(r);
		return;
	}
	memcpy(r->key, key, len + 1);
	r->node_len = node_len;
	HASH_ADD(hh, nd.remotes, key[0], len, r);
	remote_count(r->device, true);
}

static void
remote_free(struct remote *r)
{
	struct device *d = r->device;

	HASH_DEL(nd.remotes, r);
	free(r);
	remote_count(d, false);
	device_unref(d);
}

static void
remote_del(const char *key, size_t len)
{
	struct remote *r;

	HASH_FIND(hh, nd.remotes, key, len, r);
	if (r != NULL)
		remote_free(r);
}

/* Forget every device of node (its lease lapsed, or it starts again). */
static void
remote_drop_node(const char *node)
{
	struct remote *r, *tmp;
	size_t n = strlen(node);

	HASH_ITER (hh, nd.remotes, r, tmp) {
		if (r->node_len == n && memcmp(r->key, node, n) == 0)
			remote_free(r);
	}
}

/* A node's devices, all of them (HGETALL of its hash): they replace what was counted. */
static void
on_node_devices(void *arg, const redisReply *r, const char *err)
{
	char *node = arg;
	size_t n = strlen(node);

	nd.pending_loads--;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
		log_warn("redis: cannot read node %s's devices: %s", node, err != NULL ? err : "?");
		free(node);
		return;
	}
	remote_drop_node(node);
	for (size_t i = 0; i + 1 < r->elements; i += 2) {
		const redisReply *f = r->element[i];
		const char *nl = f->str != NULL ? memchr(f->str, '\n', f->len) : NULL;
		if (nl != NULL)
			remote_add(node, n, f->str, (size_t)(nl - f->str), nl + 1,
				   f->len - (size_t)(nl + 1 - f->str));
	}
	free(node);
}

static void
load_node(const char *node)
{
	char key[160];
	const char *argv[2] = {"HGETALL", key};
	size_t lens[2];
	char *arg = strdup(node);

	snprintf(key, sizeof key, "rv:p:%s", node);
	lens[0] = 7;
	lens[1] = strlen(key);
	if (arg != NULL && redis_link_command(nd.cmd, on_node_devices, arg, 2, argv, lens) == 0)
		nd.pending_loads++;
	else
		free(arg);
}

/* A presence message: "node\n+\nuser\ndevice", "node\n-\n...", or "node\n*" (start again). */
static void
on_presence(const char *data, size_t len)
{
	const char *nl = memchr(data, '\n', len), *end = data + len;
	size_t node_len;
	char node[128];

	if (nl == NULL || (size_t)(nl - data) >= sizeof node)
		return;
	node_len = (size_t)(nl - data);
	if (node_len == strlen(nd.name) && memcmp(data, nd.name, node_len) == 0)
		return; /* this node's own */
	memcpy(node, data, node_len);
	node[node_len] = '\0';
	if (end - nl >= 2 && nl[1] == '*') {
		load_node(node);
	} else if (end - nl > 3 && (nl[1] == '+' || nl[1] == '-') && nl[2] == '\n') {
		const char *user = nl + 3, *dev = memchr(user, '\n', (size_t)(end - user));
		if (dev == NULL)
			return;
		if (nl[1] == '+') {
			remote_add(node, node_len, user, (size_t)(dev - user), dev + 1,
				   (size_t)(end - dev - 1));
		} else if (node_len + 1 + (size_t)(end - user) < 640) {
			char key[640]; /* "node\nuser\ndevice" */
			size_t rest = (size_t)(end - user);
			memcpy(key, node, node_len);
			key[node_len] = '\n';
			memcpy(key + node_len + 1, user, rest);
			remote_del(key, node_len + 1 + rest);
		}
	}
}

/* Send a command whose answer nobody needs (a failure shows in the link's counters). */
static void
fire(int argc, const char **argv, const size_t *lens)
{
	if (redis_link_up(nd.cmd))
		redis_link_command(nd.cmd, on_ignored, NULL, argc, argv, lens);
}

/* Tell the other nodes of a device here: "+" came, "-" went, in the hash and by message. */
static void
announce(const char *key, size_t len, bool here)
{
	char hash[160], msg[800];
	const char *set[4] = {here ? "HSET" : "HDEL", hash, key, "1"};
	size_t setl[4] = {4, 0, len, 1};
	const char *pub[3] = {"PUBLISH", PRESENCE_CHANNEL, msg};
	size_t publ[3] = {7, strlen(PRESENCE_CHANNEL), 0};
	int n = snprintf(msg, sizeof msg, "%s\n%c\n%.*s", nd.name, here ? '+' : '-', (int)len, key);

	snprintf(hash, sizeof hash, "rv:p:%s", nd.name);
	setl[1] = strlen(hash);
	publ[2] = n > 0 && (size_t)n < sizeof msg ? (size_t)n : 0;
	fire(here ? 4 : 3, set, setl);
	if (publ[2] > 0)
		fire(3, pub, publ);
}

void
shared_device_here(struct user *u, struct device *d, bool here)
{
	char key[600];
	size_t len;
	struct here *h;
	int n = snprintf(key, sizeof key, "%s\n%s", u->name, d->name);

	if (n < 0 || (size_t)n >= sizeof key)
		return;
	len = (size_t)n;
	HASH_FIND(hh, nd.here, key, len, h);
	if (here && h == NULL) {
		h = malloc(sizeof *h + len + 1);
		if (h == NULL) {
			log_error("redis: out of memory noting a device here");
			return;
		}
		memcpy(h->key, key, len + 1);
		HASH_ADD(hh, nd.here, key[0], len, h);
	} else if (!here && h != NULL) {
		HASH_DEL(nd.here, h);
		free(h);
	} else {
		return;
	}
	announce(key, len, here);
}

/* After connecting (Redis may have restarted empty): write every device here again. */
static void
announce_all(void)
{
	char hash[160], msg[160];
	const char *del[2] = {"DEL", hash};
	size_t dell[2] = {3, 0};
	const char *pub[3] = {"PUBLISH", PRESENCE_CHANNEL, msg};
	size_t publ[3] = {7, strlen(PRESENCE_CHANNEL), 0};
	struct here *h, *tmp;

	snprintf(hash, sizeof hash, "rv:p:%s", nd.name);
	dell[1] = strlen(hash);
	fire(2, del, dell);
	HASH_ITER (hh, nd.here, h, tmp) {
		const char *set[4] = {"HSET", hash, h->key, "1"};
		size_t setl[4] = {4, dell[1], strlen(h->key), 1};
		fire(4, set, setl);
	}
	publ[2] = (size_t)snprintf(msg, sizeof msg, "%s\n*", nd.name);
	fire(3, pub, publ);
}

/* Whether name is among the live nodes. */
static bool
node_live(const char *name)
{
	for (size_t i = 0; i < nd.nlive; i++) {
		if (strcmp(nd.live[i], name) == 0)
			return true;
	}
	return false;
}

/*
 * The lease script's answer: Redis's time and every live node. A node gone
 * from the list takes its devices with it (their peer grace starts now); a
 * new one's are read.
 */
static void
on_lease(void *arg, const redisReply *r, const char *err)
{
	char(*was)[128] = NULL;
	size_t nwas = nd.nlive;

	(void)arg;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->elements % 2 != 1) {
		if (nd.lease)
			log_warn("redis: cannot renew this node's lease: %s",
				 err != NULL                   ? err
				 : r != NULL && r->str != NULL ? r->str
							       : "?");
		nd.lease = false;
		return;
	}
	if (nwas > 0 && (was = malloc(nwas * sizeof *was)) != NULL)
		memcpy(was, nd.live, nwas * sizeof *was);
	nd.nlive = 0;
	for (size_t i = 1; i + 1 < r->elements && nd.nlive < MAX_NODES; i += 2) {
		const redisReply *name = r->element[i];
		if (name->type != REDIS_REPLY_STRING || name->len >= sizeof nd.live[0])
			continue;
		memcpy(nd.live[nd.nlive], name->str, name->len + 1);
		nd.nlive++;
	}
	if (!nd.lease)
		log_info("redis: node %s holds its lease (%zu nodes live)", nd.name, nd.nlive);
	nd.leased = true;
	nd.lease = node_live(nd.name);
	for (size_t i = 0; was != NULL && i < nwas; i++) {
		if (!node_live(was[i])) {
			log_info("redis: node %s's lease lapsed: its devices count as gone",
				 was[i]);
			remote_drop_node(was[i]);
		}
	}
	for (size_t i = 0; i < nd.nlive; i++) {
		bool known = false;
		for (size_t j = 0; was != NULL && j < nwas; j++)
			known = known || strcmp(was[j], nd.live[i]) == 0;
		if (!known && strcmp(nd.live[i], nd.name) != 0)
			load_node(nd.live[i]);
	}
	free(was);
	hub_flush();
}

static void
renew_lease(bool live)
{
	char ms[24];
	const char *argv[4] = {"rv:nodes", nd.name, ms, live ? "1" : "0"};
	size_t lens[4] = {8, strlen(nd.name), 0, 1};

	lens[2] = (size_t)snprintf(ms, sizeof ms, "%d", LEASE_MS);
	if (redis_link_up(nd.cmd))
		redis_link_eval(nd.cmd, &redis_script_lease, live ? on_lease : on_ignored, NULL, 1,
				4, argv, lens);
}

const char *
shared_node(size_t i)
{
	return i < nd.nlive ? nd.live[i] : NULL;
}

int
shared_send_context(const uint8_t sid[SESSION_ID_BYTES], const char *from, struct user *to,
		    const struct device *device, json_t *data, size_t *remote)
{
	char sid_hex[SESSION_ID_HEX + 1];
	const char *argv[3] = {"PUBLISH", CONTEXT_CHANNEL, NULL};
	size_t lens[3] = {7, strlen(CONTEXT_CHANNEL), 0};
	struct jsonw w;
	int rc = 0;

	*remote = device != NULL ? device->remote : to->remote;
	if (*remote == 0 || !redis_link_up(nd.cmd)) {
		*remote = 0;
		return 0;
	}
	/* "node\nsession\nfrom\nto\ndevice\ndata": the names hold no newline. */
	session_id_format(sid, sid_hex);
	jsonw_init(&w);
	jsonw_raw(&w, nd.name, strlen(nd.name));
	jsonw_lit(&w, "\n");
	jsonw_raw(&w, sid_hex, SESSION_ID_HEX);
	jsonw_lit(&w, "\n");
	jsonw_raw(&w, from, strlen(from));
	jsonw_lit(&w, "\n");
	jsonw_raw(&w, to->name, strlen(to->name));
	jsonw_lit(&w, "\n");
	if (device != NULL)
		jsonw_raw(&w, device->name, strlen(device->name));
	jsonw_lit(&w, "\n");
	jsonw_json(&w, data);
	if (jsonw_ok(&w)) {
		argv[2] = w.buf;
		lens[2] = w.len;
		redis_link_command(nd.cmd, on_ignored, NULL, 3, argv, lens);
	} else {
		rc = -1;
	}
	jsonw_free(&w);
	return rc;
}

/* Context data another node relays: to the target's connections here. */
static void
on_context(const char *data, size_t len)
{
	const char *f[6], *end = data + len, *p = data;
	size_t flen[6];
	char node[128], from[300], to[300], device[300];
	uint8_t sid[SESSION_ID_BYTES];
	char sid_hex[SESSION_ID_HEX + 1];
	struct user *u;
	json_t *value;
	size_t n;

	for (int i = 0; i < 5; i++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			return;
		f[i] = p;
		flen[i] = (size_t)(nl - p);
		p = nl + 1;
	}
	f[5] = p;
	flen[5] = (size_t)(end - p);
	if (flen[0] >= sizeof node || flen[1] != SESSION_ID_HEX || flen[2] >= sizeof from ||
	    flen[3] >= sizeof to || flen[4] >= sizeof device)
		return;
	memcpy(node, f[0], flen[0]);
	node[flen[0]] = '\0';
	if (strcmp(node, nd.name) == 0)
		return; /* sent here already */
	memcpy(sid_hex, f[1], SESSION_ID_HEX);
	sid_hex[SESSION_ID_HEX] = '\0';
	memcpy(from, f[2], flen[2]);
	from[flen[2]] = '\0';
	memcpy(to, f[3], flen[3]);
	to[flen[3]] = '\0';
	memcpy(device, f[4], flen[4]);
	device[flen[4]] = '\0';
	u = user_find(to);
	if (u == NULL || u->nconns == 0 || !session_id_parse(sid_hex, sid))
		return;
	value = json_loadb(f[5], flen[5], JSON_DECODE_ANY, NULL);
	if (value == NULL) {
		log_error("redis: context data from node %s is damaged", node);
		return;
	}
	if (flen[4] == 0 || device_find(u, device) != NULL)
		hub_send_context(sid, from, u, flen[4] != 0 ? device_find(u, device) : NULL, value,
				 &n);
	json_decref(value);
}

/*
 * Leaving: give up the lease and forget this node's devices, so that the
 * others count them gone now rather than when the lease lapses; wait (a
 * second at most) for Redis to take it.
 */
void
nodes_leave(void)
{
	struct redis_link_stats ls;
	int64_t until = now_ms() + 1000;
	struct here *h, *tmp;

	if (nd.cmd == NULL || !redis_link_up(nd.cmd) || nd.base == NULL)
		return;
	HASH_ITER (hh, nd.here, h, tmp) {
		HASH_DEL(nd.here, h);
		free(h);
	}
	announce_all(); /* with nothing here: the hash deleted, and "*" */
	renew_lease(false);
	while (now_ms() < until) {
		redis_link_stats(nd.cmd, &ls);
		if (ls.in_flight == 0 || event_base_loop(nd.base, EVLOOP_ONCE) != 0)
			break;
	}
	log_info("redis: node %s left", nd.name);
}

int
nodes_start(struct event_base *base, struct redis_link *cmd, const char *name)
{
	memset(&nd, 0, sizeof nd);
	nd.base = base;
	nd.cmd = cmd;
	nd.name = name;
	nd.live = calloc(MAX_NODES, sizeof *nd.live);
	return nd.live != NULL ? 0 : -1;
}

void
nodes_stop(void)
{
	struct remote *r, *rt;
	struct here *h, *ht;

	HASH_ITER (hh, nd.remotes, r, rt)
		remote_free(r);
	HASH_ITER (hh, nd.here, h, ht) {
		HASH_DEL(nd.here, h);
		free(h);
	}
	free(nd.live);
	memset(&nd, 0, sizeof nd);
}

void
nodes_on_cmd_up(void)
{
	announce_all();
	renew_lease(true);
}

void
nodes_on_feed_up(void)
{
	for (size_t i = 0; i < nd.nlive; i++) {
		if (strcmp(nd.live[i], nd.name) != 0)
			load_node(nd.live[i]);
	}
}

void
nodes_heartbeat(void)
{
	renew_lease(true);
}

void
nodes_on_message(const char *channel, const char *data, size_t len)
{
	if (strcmp(channel, PRESENCE_CHANNEL) == 0)
		on_presence(data, len);
	else if (strcmp(channel, CONTEXT_CHANNEL) == 0)
		on_context(data, len);
}

bool
nodes_ready(void)
{
	return nd.leased && nd.pending_loads <= 0;
}

bool
nodes_lease(void)
{
	return nd.lease;
}

size_t
nodes_count(void)
{
	return nd.nlive;
}
