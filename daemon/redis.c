/* A link to Redis on the event loop: connect, handshake, commands, timeouts, reconnect. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>
#include <openssl/evp.h>

#include "log.h"
#include "redis.h"
#include "util.h"

/* Reconnect after 100 ms, doubling up to 5 s (each with up to 25% added at random). */
#define RETRY_MIN_MS 100
#define RETRY_MAX_MS 5000

enum link_state {
	LINK_DOWN,       /* waiting to reconnect */
	LINK_RESOLVING,  /* asking a Sentinel where the primary is */
	LINK_CONNECTING, /* TCP (or Unix) connect under way */
	LINK_HANDSHAKE,  /* AUTH, SELECT, SCRIPT LOAD sent; up at the PING's reply */
	LINK_UP,
};

/* A command in flight, in send order. */
struct call {
	struct redis_link *l;
	redis_reply_fn fn;
	void *arg;
	int64_t sent; /* monotonic ms */
	/* For EVALSHA: the script, and its arguments again for EVAL on NOSCRIPT. */
	struct redis_script *script;
	int nkeys, argc;
	char *args;   /* argc arguments, back to back */
	size_t *lens; /* in args */
	TAILQ_ENTRY(call) entry;
};

struct redis_link {
	struct event_base *base;
	struct redis_addr addr;
	char *password;
	int64_t timeout_ms;
	const struct redis_link_ops *ops;
	void *arg;

	enum link_state state;
	redisAsyncContext *ac;
	/* Sentinel: the one being asked (sc), the primary it named (or addr's host and port). */
	redisAsyncContext *sc;
	int sentinel, sentinels_tried;
	bool resolved;
	char cur_host[256];
	int cur_port;
	int64_t attempt_start; /* monotonic ms */
	int retry_ms;          /* the next backoff */
	bool reported;         /* on_down told since the last up */
	bool handshake_failed;
	char why[256];                 /* why the connection is being dropped, or "" */
	struct event *tick;            /* connect and reply deadlines */
	struct event *retry;           /* reconnect */
	struct redis_script **scripts; /* loaded at each connect */
	int nscripts;
	TAILQ_HEAD(, call) calls;
	struct redis_link_stats st;

	/* A subscriber: its channels, how many Redis confirmed this connection, silence allowed. */
	struct sub *subs;
	int nsubs, confirmed;
	int64_t expect_ms, last_message; /* monotonic ms */
};

struct sub {
	char *channel;
	redis_message_fn fn;
	void *arg;
	struct sub *next;
};

static void link_connect(struct redis_link *l);
static void link_subscribe_all(struct redis_link *l);

static int64_t
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * "HOST[:PORT]" or "[V6][:PORT]" at *p, up to one of the bytes in stops (or
 * the end): host and port filled, *p moved past it. -1 if malformed.
 */
static int
parse_host_port(const char **p, const char *stops, char *host, size_t hostlen, int *port)
{
	const char *s = *p, *end;
	char *stop;
	long v;

	if (*s == '[') {
		end = strchr(s, ']');
		if (end == NULL || end == s + 1 || (size_t)(end - s - 1) >= hostlen)
			return -1;
		memcpy(host, s + 1, (size_t)(end - s - 1));
		host[end - s - 1] = '\0';
		s = end + 1;
	} else {
		end = s + strcspn(s, stops);
		end = memchr(s, ':', (size_t)(end - s)) != NULL ? memchr(s, ':', (size_t)(end - s))
								: end;
		if (end == s || (size_t)(end - s) >= hostlen)
			return -1;
		memcpy(host, s, (size_t)(end - s));
		host[end - s] = '\0';
		s = end;
	}
	if (*s == ':') {
		v = strtol(s + 1, &stop, 10);
		if (!isdigit((unsigned char)s[1]) || v < 1 || v > 65535 ||
		    (*stop != '\0' && strchr(stops, *stop) == NULL))
			return -1;
		*port = (int)v;
		s = stop;
	} else if (*s != '\0' && strchr(stops, *s) == NULL) {
		return -1;
	}
	*p = s;
	return 0;
}

/* "?db=N" (or nothing) at p: a->db. -1 if malformed. */
static int
parse_db_param(const char *p, struct redis_addr *a)
{
	char *stop;
	long v;

	if (*p == '\0')
		return 0;
	if (strncmp(p, "?db=", 4) != 0)
		return -1;
	v = strtol(p + 4, &stop, 10);
	if (!isdigit((unsigned char)p[4]) || *stop != '\0' || v > 1000000)
		return -1;
	a->db = (int)v;
	return 0;
}

/* "USER@" at *p, if there: a->user, *p moved past it. -1 if malformed. */
static int
parse_user(const char **p, struct redis_addr *a)
{
	const char *at = strchr(*p, '@');

	if (at == NULL)
		return 0;
	if (at == *p || (size_t)(at - *p) >= sizeof a->user)
		return -1;
	memcpy(a->user, *p, (size_t)(at - *p));
	*p = at + 1;
	return 0;
}

int
redis_addr_parse(const char *url, struct redis_addr *a, char *err, size_t errlen)
{
	static const char tcp[] = "redis://", unix_[] = "redis+unix://",
			  sentinel[] = "redis-sentinel://";
	const char *p, *q;
	char *stop;
	long v;

	memset(a, 0, sizeof *a);
	a->port = 6379;
	if (strncmp(url, unix_, sizeof unix_ - 1) == 0) {
		size_t n;

		p = url + sizeof unix_ - 1;
		if (*p != '/') {
			snprintf(err, errlen,
				 "%s: the socket path must be absolute (redis+unix:///PATH)", url);
			return -1;
		}
		q = strchr(p, '?');
		n = q != NULL ? (size_t)(q - p) : strlen(p);
		if (n >= sizeof a->path) {
			snprintf(err, errlen, "%s: the socket path is too long", url);
			return -1;
		}
		memcpy(a->path, p, n);
		if (q != NULL && parse_db_param(q, a) != 0) {
			snprintf(err, errlen, "%s: the only parameter is ?db=N", url);
			return -1;
		}
		return 0;
	}
	if (strncmp(url, sentinel, sizeof sentinel - 1) == 0) {
		p = url + sizeof sentinel - 1;
		if (parse_user(&p, a) != 0) {
			snprintf(err, errlen, "%s: bad user name", url);
			return -1;
		}
		for (;;) {
			if (a->nsentinels == REDIS_MAX_SENTINELS) {
				snprintf(err, errlen, "%s: more than %d sentinels", url,
					 REDIS_MAX_SENTINELS);
				return -1;
			}
			a->sentinel_port[a->nsentinels] = 26379;
			if (parse_host_port(&p, ",/", a->sentinel_host[a->nsentinels],
					    sizeof a->sentinel_host[0],
					    &a->sentinel_port[a->nsentinels]) != 0) {
				snprintf(err, errlen, "%s: bad sentinel address", url);
				return -1;
			}
			a->nsentinels++;
			if (*p != ',')
				break;
			p++;
		}
		q = p + (*p == '/' ? 1 : 0);
		p = q + strcspn(q, "?");
		if (*q == '\0' || p == q || (size_t)(p - q) >= sizeof a->master ||
		    memchr(q, '/', (size_t)(p - q)) != NULL) {
			snprintf(err, errlen,
				 "%s: no primary's name (redis-sentinel://HOST:PORT,.../NAME)",
				 url);
			return -1;
		}
		memcpy(a->master, q, (size_t)(p - q));
		if (parse_db_param(p, a) != 0) {
			snprintf(err, errlen, "%s: the only parameter is ?db=N", url);
			return -1;
		}
		return 0;
	}
	if (strncmp(url, tcp, sizeof tcp - 1) != 0) {
		snprintf(err, errlen,
			 "%s: not redis://HOST:PORT[/DB], redis+unix:///PATH or "
			 "redis-sentinel://HOST:PORT,.../NAME",
			 url);
		return -1;
	}
	p = url + sizeof tcp - 1;
	if (parse_user(&p, a) != 0) {
		snprintf(err, errlen, "%s: bad user name", url);
		return -1;
	}
	if (parse_host_port(&p, "/", a->host, sizeof a->host, &a->port) != 0) {
		snprintf(err, errlen, "%s: bad host or port", url);
		return -1;
	}
	if (*p == '/' && p[1] != '\0') {
		v = strtol(p + 1, &stop, 10);
		if (!isdigit((unsigned char)p[1]) || *stop != '\0' || v > 1000000) {
			snprintf(err, errlen, "%s: bad database number", url);
			return -1;
		}
		a->db = (int)v;
	} else if (*p != '\0' && strcmp(p, "/") != 0) {
		snprintf(err, errlen, "%s: unexpected \"%s\"", url, p);
		return -1;
	}
	return 0;
}

const char *
redis_addr_format(const struct redis_addr *a, char *buf, size_t len)
{
	if (a->path[0] != '\0')
		snprintf(buf, len, "unix:%s/%d", a->path, a->db);
	else if (a->nsentinels > 0)
		snprintf(buf, len, "sentinel:%s/%d", a->master, a->db);
	else if (strchr(a->host, ':') != NULL)
		snprintf(buf, len, "[%s]:%d/%d", a->host, a->port, a->db);
	else
		snprintf(buf, len, "%s:%d/%d", a->host, a->port, a->db);
	return buf;
}

void
redis_script_init(struct redis_script *s, const char *source)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;

	s->source = source;
	s->sha[0] = '\0';
	if (EVP_Digest(source, strlen(source), md, &n, EVP_sha1(), NULL) != 1 || n != 20)
		return; /* an empty sha: EVALSHA fails, and NOSCRIPT's EVAL runs it */
	for (unsigned i = 0; i < n; i++)
		snprintf(s->sha + 2 * i, 3, "%02x", md[i]);
}

static void
call_free(struct call *c)
{
	free(c->args);
	free(c->lens);
	free(c);
}

/* Arm the deadline timer for the connect under way or the oldest reply awaited. */
static void
link_arm(struct redis_link *l)
{
	int64_t due = -1, wait;
	struct timeval tv;

	if (l->state == LINK_RESOLVING || l->state == LINK_CONNECTING || l->state == LINK_HANDSHAKE)
		due = l->attempt_start + l->timeout_ms;
	else if (l->state == LINK_UP && !TAILQ_EMPTY(&l->calls))
		due = TAILQ_FIRST(&l->calls)->sent + l->timeout_ms;
	else if (l->state == LINK_UP && l->subs != NULL && l->expect_ms > 0)
		due = l->last_message + l->expect_ms;
	if (due < 0) {
		evtimer_del(l->tick);
		return;
	}
	wait = due - mono_ms();
	if (wait < 0)
		wait = 0;
	tv.tv_sec = (time_t)(wait / 1000);
	tv.tv_usec = (suseconds_t)(wait % 1000) * 1000;
	evtimer_add(l->tick, &tv);
}

/* The connection is gone (its calls failed already): tell the owner, retry later. */
static void
link_down(struct redis_link *l, const char *why)
{
	struct timeval tv;
	unsigned char r = 0;
	int wait;
	bool was_up = l->state == LINK_UP;

	l->ac = NULL;
	l->state = LINK_DOWN;
	evtimer_del(l->tick);
	if (was_up)
		l->st.disconnects++;
	if (was_up || !l->reported) {
		l->reported = true;
		if (l->ops->on_down != NULL)
			l->ops->on_down(l->arg, why);
	}
	random_bytes(&r, 1);
	wait = l->retry_ms + l->retry_ms * r / 1024; /* up to 25% more */
	l->retry_ms = l->retry_ms * 2 < RETRY_MAX_MS ? l->retry_ms * 2 : RETRY_MAX_MS;
	tv.tv_sec = wait / 1000;
	tv.tv_usec = (wait % 1000) * 1000;
	evtimer_add(l->retry, &tv);
}

/*
 * Drop the connection: hiredis fails every call in flight (their callbacks
 * see why), then says it disconnected. Not inside a hiredis callback.
 */
static void
link_drop(struct redis_link *l, const char *why)
{
	redisAsyncContext *ac = l->ac;

	if (ac == NULL)
		return;
	snprintf(l->why, sizeof l->why, "%s", why);
	redisAsyncFree(ac); /* calls link_on_disconnect() if it was connected */
	if (l->ac == ac)
		link_down(l, l->why); /* it was not: no disconnect callback */
	l->why[0] = '\0';
}

static void
link_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct call *c = privdata;
	struct redis_link *l = c->l;
	const redisReply *r = reply;

	(void)ac;
	TAILQ_REMOVE(&l->calls, c, entry);
	l->st.in_flight--;
	if (r != NULL && r->type == REDIS_REPLY_ERROR && c->script != NULL &&
	    strncmp(r->str, "NOSCRIPT", 8) == 0 && l->state == LINK_UP) {
		/* Redis lost the script (restarted, flushed, failed over): run its source. */
		const char **argv = calloc((size_t)c->argc + 3, sizeof *argv);
		size_t *lens = calloc((size_t)c->argc + 3, sizeof *lens);
		char nkeys[16];
		const char *p = c->args;

		l->st.noscript++;
		log_info("redis: script %.12s not loaded; running its source", c->script->sha);
		if (argv != NULL && lens != NULL) {
			snprintf(nkeys, sizeof nkeys, "%d", c->nkeys);
			argv[0] = "EVAL";
			lens[0] = 4;
			argv[1] = c->script->source;
			lens[1] = strlen(c->script->source);
			argv[2] = nkeys;
			lens[2] = strlen(nkeys);
			for (int i = 0; i < c->argc; i++) {
				argv[i + 3] = p;
				lens[i + 3] = c->lens[i];
				p += c->lens[i];
			}
			if (redis_link_command(l, c->fn, c->arg, c->argc + 3, argv, lens) == 0) {
				free(argv);
				free(lens);
				call_free(c);
				link_arm(l);
				return;
			}
		}
		free(argv);
		free(lens);
		c->fn(c->arg, NULL, "out of memory, or the link went down, reloading a script");
		call_free(c);
		link_arm(l);
		return;
	}
	if (r == NULL)
		c->fn(c->arg, NULL, l->why[0] != '\0' ? l->why : "connection lost");
	else
		c->fn(c->arg, r, NULL);
	if (r != NULL && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "READONLY", 8) == 0 &&
	    l->addr.nsentinels > 0 && l->ac != NULL && l->state == LINK_UP) {
		/* The primary was demoted under us: find the new one. */
		snprintf(l->why, sizeof l->why, "%.200s:%d became a replica", l->cur_host,
			 l->cur_port);
		redisAsyncDisconnect(l->ac);
	}
	call_free(c);
	if (l->ac != NULL)
		link_arm(l);
}

/* Queue a call; hiredis copies the arguments. -1 if it refused (disconnecting). */
static struct call *
link_send(struct redis_link *l, redis_reply_fn fn, void *arg, int argc, const char **argv,
	  const size_t *lens)
{
	struct call *c;

	if (l->ac == NULL || (c = calloc(1, sizeof *c)) == NULL)
		return NULL;
	c->l = l;
	c->fn = fn;
	c->arg = arg;
	c->sent = mono_ms();
	if (redisAsyncCommandArgv(l->ac, link_on_reply, c, argc, argv, lens) != REDIS_OK) {
		free(c);
		return NULL;
	}
	TAILQ_INSERT_TAIL(&l->calls, c, entry);
	l->st.in_flight++;
	l->st.commands++;
	return c;
}

/* A handshake step's reply: an error fails the connection. */
static void
link_on_handshake(void *arg, const redisReply *r, const char *err)
{
	struct redis_link *l = arg;

	if (err != NULL || l->handshake_failed)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		l->handshake_failed = true;
		snprintf(l->why, sizeof l->why, "%s", r->str);
		redisAsyncDisconnect(l->ac); /* after this callback: link_on_disconnect() */
	}
}

static void link_go_up(struct redis_link *l);

/* A subscriber's reply: a channel confirmed, a message, or (r NULL) the connection going. */
static void
link_on_message(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_link *l = privdata;
	const redisReply *r = reply;
	const redisReply *kind, *chan;

	(void)ac;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3)
		return;
	kind = r->element[0];
	chan = r->element[1];
	if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING)
		return;
	l->last_message = mono_ms();
	if (strcmp(kind->str, "subscribe") == 0) {
		if (++l->confirmed == l->nsubs && l->state == LINK_HANDSHAKE)
			link_go_up(l);
		return;
	}
	if (strcmp(kind->str, "message") != 0 || r->element[2]->type != REDIS_REPLY_STRING)
		return;
	l->st.messages++;
	for (struct sub *s = l->subs; s != NULL; s = s->next) {
		if (strcmp(s->channel, chan->str) == 0)
			s->fn(s->arg, chan->str, r->element[2]->str, r->element[2]->len);
	}
	link_arm(l);
}

/* SUBSCRIBE to every channel: one command, one confirmation each. */
static void
link_subscribe_all(struct redis_link *l)
{
	const char **argv = calloc((size_t)l->nsubs + 1, sizeof *argv);
	size_t *lens = calloc((size_t)l->nsubs + 1, sizeof *lens);
	int n = 0;

	l->confirmed = 0;
	if (argv != NULL && lens != NULL) {
		argv[n] = "SUBSCRIBE", lens[n++] = 9;
		for (struct sub *s = l->subs; s != NULL; s = s->next)
			argv[n] = s->channel, lens[n++] = strlen(s->channel);
	}
	if (argv == NULL || lens == NULL ||
	    redisAsyncCommandArgv(l->ac, link_on_message, l, n, argv, lens) != REDIS_OK) {
		snprintf(l->why, sizeof l->why, "cannot subscribe");
		l->handshake_failed = true;
		redisAsyncDisconnect(l->ac);
	}
	free(argv);
	free(lens);
}

/* ROLE's reply: the handshake fails unless this is the primary. */
static void
link_on_role(void *arg, const redisReply *r, const char *err)
{
	struct redis_link *l = arg;

	if (err != NULL || l->handshake_failed)
		return;
	if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
	    r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0)
		return;
	l->handshake_failed = true;
	snprintf(l->why, sizeof l->why, "%.180s:%d is not the primary (role %.32s)", l->cur_host,
		 l->cur_port,
		 r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
				 r->element[0]->type == REDIS_REPLY_STRING
			 ? r->element[0]->str
		 : r->type == REDIS_REPLY_ERROR ? r->str
						: "unknown");
	redisAsyncDisconnect(l->ac);
}

/* The handshake's last reply (PING): up, unless a step before it failed. */
static void
link_on_ready(void *arg, const redisReply *r, const char *err)
{
	struct redis_link *l = arg;

	if (err != NULL || l->handshake_failed)
		return;
	if (r->type == REDIS_REPLY_ERROR) {
		link_on_handshake(l, r, err);
		return;
	}
	if (l->subs != NULL) {
		link_subscribe_all(l); /* up once Redis confirmed every channel */
		return;
	}
	link_go_up(l);
}

static void
link_go_up(struct redis_link *l)
{
	l->state = LINK_UP;
	l->reported = false;
	l->retry_ms = RETRY_MIN_MS;
	l->st.connects++;
	l->last_message = mono_ms();
	link_arm(l);
	if (l->ops->on_up != NULL)
		l->ops->on_up(l->arg);
}

static void
link_on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_link *l = ac->data;
	char db[16];
	const char *argv[3];
	size_t lens[3];
	bool ok = true;

	if (status != REDIS_OK) {
		snprintf(l->why, sizeof l->why, "%s", ac->errstr);
		link_down(l, l->why); /* hiredis frees the context after this */
		l->why[0] = '\0';
		return;
	}
	l->state = LINK_HANDSHAKE;
	l->handshake_failed = false;
	if (l->password != NULL) {
		int n = 0;
		argv[n] = "AUTH", lens[n++] = 4;
		if (l->addr.user[0] != '\0')
			argv[n] = l->addr.user, lens[n] = strlen(l->addr.user), n++;
		argv[n] = l->password, lens[n] = strlen(l->password), n++;
		ok = ok && link_send(l, link_on_handshake, l, n, argv, lens) != NULL;
	}
	if (l->addr.db != 0) {
		snprintf(db, sizeof db, "%d", l->addr.db);
		argv[0] = "SELECT", lens[0] = 6;
		argv[1] = db, lens[1] = strlen(db);
		ok = ok && link_send(l, link_on_handshake, l, 2, argv, lens) != NULL;
	}
	for (int i = 0; i < l->nscripts; i++) {
		const struct redis_script *s = l->scripts[i];

		argv[0] = "SCRIPT", lens[0] = 6;
		argv[1] = "LOAD", lens[1] = 4;
		argv[2] = s->source, lens[2] = strlen(s->source);
		ok = ok && link_send(l, link_on_handshake, l, 3, argv, lens) != NULL;
	}
	if (l->addr.nsentinels > 0) {
		/* What a Sentinel named may have been demoted since: only a primary will do. */
		argv[0] = "ROLE", lens[0] = 4;
		ok = ok && link_send(l, link_on_role, l, 1, argv, lens) != NULL;
	}
	argv[0] = "PING", lens[0] = 4;
	ok = ok && link_send(l, link_on_ready, l, 1, argv, lens) != NULL;
	if (!ok) {
		snprintf(l->why, sizeof l->why, "out of memory");
		l->handshake_failed = true;
		redisAsyncDisconnect(l->ac);
	}
}

static void
link_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_link *l = ac->data;

	if (l->why[0] == '\0')
		snprintf(l->why, sizeof l->why, "%s",
			 status == REDIS_OK      ? "closed"
			 : ac->errstr[0] != '\0' ? ac->errstr
						 : "connection lost");
	link_down(l, l->why);
	if (l->ac == NULL && l->state == LINK_DOWN)
		l->why[0] = '\0';
}

static void sentinel_ask(struct redis_link *l);

/* Connect to the address (for Sentinel: the primary it named). */
static void
link_connect_to(struct redis_link *l)
{
	redisAsyncContext *ac;

	ac = l->addr.path[0] != '\0' ? redisAsyncConnectUnix(l->addr.path)
				     : redisAsyncConnect(l->cur_host, l->cur_port);
	l->attempt_start = mono_ms();
	if (ac == NULL || ac->err != 0) {
		snprintf(l->why, sizeof l->why, "%s", ac != NULL ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		l->state = LINK_CONNECTING; /* so that link_down() backs off */
		link_down(l, l->why);
		l->why[0] = '\0';
		return;
	}
	ac->data = l;
	if (redisLibeventAttach(ac, l->base) != REDIS_OK) {
		redisAsyncFree(ac);
		l->state = LINK_CONNECTING;
		link_down(l, "cannot attach to the event loop");
		return;
	}
	redisAsyncSetConnectCallback(ac, link_on_connect);
	redisAsyncSetDisconnectCallback(ac, link_on_disconnect);
	l->ac = ac;
	l->state = LINK_CONNECTING;
	link_arm(l);
}

/* The next Sentinel, or (each asked once) down until the retry. */
static void
sentinel_next(struct redis_link *l, const char *why)
{
	l->sentinel = (l->sentinel + 1) % l->addr.nsentinels;
	if (++l->sentinels_tried >= l->addr.nsentinels) {
		char msg[sizeof l->why];

		snprintf(msg, sizeof msg, "no Sentinel named the primary %.64s (last: %.120s)",
			 l->addr.master, why);
		l->state = LINK_RESOLVING;
		link_down(l, msg);
		return;
	}
	sentinel_ask(l);
}

/* SENTINEL get-master-addr-by-name's reply: where the primary is. */
static void
sentinel_on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
	struct redis_link *l = privdata;
	const redisReply *r = reply;

	if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[0]->type == REDIS_REPLY_STRING &&
	    r->element[1]->type == REDIS_REPLY_STRING && r->element[0]->len < sizeof l->cur_host) {
		snprintf(l->cur_host, sizeof l->cur_host, "%s", r->element[0]->str);
		l->cur_port = atoi(r->element[1]->str);
		l->resolved = l->cur_port > 0;
	} else if (r != NULL) {
		snprintf(l->why, sizeof l->why, "Sentinel %.120s:%d does not know %.64s",
			 l->addr.sentinel_host[l->sentinel], l->addr.sentinel_port[l->sentinel],
			 l->addr.master);
	}
	if (r != NULL)
		redisAsyncDisconnect(ac); /* then sentinel_on_disconnect() goes on */
}

static void
sentinel_on_connect(const redisAsyncContext *ac, int status)
{
	struct redis_link *l = ac->data;

	if (status == REDIS_OK)
		return;
	l->sc = NULL; /* hiredis frees it */
	sentinel_next(l, ac->errstr);
}

static void
sentinel_on_disconnect(const redisAsyncContext *ac, int status)
{
	struct redis_link *l = ac->data;
	char why[sizeof l->why];

	(void)status;
	if (l->sc != ac)
		return;
	l->sc = NULL;
	if (l->resolved) {
		link_connect_to(l);
		return;
	}
	snprintf(why, sizeof why, "%s", l->why[0] != '\0' ? l->why : "connection lost");
	l->why[0] = '\0';
	sentinel_next(l, why);
}

/* Ask the current Sentinel where the primary is. */
static void
sentinel_ask(struct redis_link *l)
{
	redisAsyncContext *sc = redisAsyncConnect(l->addr.sentinel_host[l->sentinel],
						  l->addr.sentinel_port[l->sentinel]);

	l->state = LINK_RESOLVING;
	l->resolved = false;
	l->attempt_start = mono_ms();
	if (sc == NULL || sc->err != 0) {
		char why[sizeof l->why];
		snprintf(why, sizeof why, "%s", sc != NULL ? sc->errstr : "out of memory");
		if (sc != NULL)
			redisAsyncFree(sc);
		sentinel_next(l, why);
		return;
	}
	sc->data = l;
	if (redisLibeventAttach(sc, l->base) != REDIS_OK ||
	    redisAsyncCommand(sc, sentinel_on_reply, l, "SENTINEL get-master-addr-by-name %s",
			      l->addr.master) != REDIS_OK) {
		redisAsyncFree(sc);
		sentinel_next(l, "cannot ask");
		return;
	}
	redisAsyncSetConnectCallback(sc, sentinel_on_connect);
	redisAsyncSetDisconnectCallback(sc, sentinel_on_disconnect);
	l->sc = sc;
	link_arm(l);
}

static void
link_connect(struct redis_link *l)
{
	if (l->addr.nsentinels > 0) {
		l->sentinels_tried = 0;
		sentinel_ask(l);
		return;
	}
	snprintf(l->cur_host, sizeof l->cur_host, "%s", l->addr.host);
	l->cur_port = l->addr.port;
	link_connect_to(l);
}

static void
link_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct redis_link *l = arg;
	char why[64];

	(void)fd;
	(void)what;
	if (l->state == LINK_RESOLVING && l->sc != NULL) {
		redisAsyncContext *sc = l->sc;

		if (mono_ms() - l->attempt_start < l->timeout_ms) {
			link_arm(l);
			return;
		}
		l->st.timeouts++;
		snprintf(l->why, sizeof l->why, "no answer within %lld ms",
			 (long long)l->timeout_ms);
		l->resolved = false;
		redisAsyncFree(sc); /* calls sentinel_on_disconnect() if it was connected */
		if (l->sc == sc) {
			l->sc = NULL;
			snprintf(why, sizeof why, "no answer within %lld ms",
				 (long long)l->timeout_ms);
			l->why[0] = '\0';
			sentinel_next(l, why);
		}
		return;
	}
	if (l->state == LINK_CONNECTING || l->state == LINK_HANDSHAKE) {
		if (mono_ms() - l->attempt_start < l->timeout_ms) {
			link_arm(l);
			return;
		}
		l->st.timeouts++;
		snprintf(why, sizeof why, "no connection within %lld ms", (long long)l->timeout_ms);
		link_drop(l, why);
		return;
	}
	if (l->state == LINK_UP && !TAILQ_EMPTY(&l->calls)) {
		if (mono_ms() - TAILQ_FIRST(&l->calls)->sent < l->timeout_ms) {
			link_arm(l);
			return;
		}
		l->st.timeouts++;
		snprintf(why, sizeof why, "no reply within %lld ms", (long long)l->timeout_ms);
		link_drop(l, why);
		return;
	}
	if (l->state == LINK_UP && l->subs != NULL && l->expect_ms > 0) {
		if (mono_ms() - l->last_message < l->expect_ms) {
			link_arm(l);
			return;
		}
		l->st.timeouts++;
		snprintf(why, sizeof why, "no message within %lld ms", (long long)l->expect_ms);
		link_drop(l, why);
	}
}

static void
link_on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	link_connect(arg);
}

struct redis_link *
redis_link_new(struct event_base *base, const struct redis_addr *a, const char *password,
	       int64_t timeout_ms, const struct redis_link_ops *ops, void *arg)
{
	struct redis_link *l = calloc(1, sizeof *l);

	if (l == NULL)
		return NULL;
	l->base = base;
	l->addr = *a;
	l->timeout_ms = timeout_ms > 0 ? timeout_ms : 1;
	l->ops = ops;
	l->arg = arg;
	l->retry_ms = RETRY_MIN_MS;
	TAILQ_INIT(&l->calls);
	l->tick = evtimer_new(base, link_on_tick, l);
	l->retry = evtimer_new(base, link_on_retry, l);
	if (l->tick == NULL || l->retry == NULL ||
	    (password != NULL && (l->password = strdup(password)) == NULL)) {
		redis_link_free(l);
		return NULL;
	}
	link_connect(l);
	return l;
}

void
redis_link_free(struct redis_link *l)
{
	if (l == NULL)
		return;
	if (l->ac != NULL) {
		static const struct redis_link_ops closing = {0};

		/* Fail the calls in flight; no on_down for a link being closed. */
		l->ops = &closing;
		snprintf(l->why, sizeof l->why, "link closed");
		redisAsyncFree(l->ac);
	}
	if (l->sc != NULL) {
		redisAsyncContext *sc = l->sc;

		l->sc = NULL; /* its disconnect callback does nothing then */
		redisAsyncFree(sc);
	}
	if (l->tick != NULL)
		event_free(l->tick);
	if (l->retry != NULL)
		event_free(l->retry);
	if (l->password != NULL) {
		explicit_bzero(l->password, strlen(l->password));
		free(l->password);
	}
	free(l->scripts);
	while (l->subs != NULL) {
		struct sub *s = l->subs;
		l->subs = s->next;
		free(s->channel);
		free(s);
	}
	free(l);
}

int
redis_link_subscribe(struct redis_link *l, const char *channel, redis_message_fn fn, void *arg)
{
	struct sub *s = calloc(1, sizeof *s);

	if (s == NULL || (s->channel = strdup(channel)) == NULL) {
		free(s);
		return -1;
	}
	s->fn = fn;
	s->arg = arg;
	s->next = l->subs;
	l->subs = s;
	l->nsubs++;
	return 0;
}

void
redis_link_expect(struct redis_link *l, int64_t ms)
{
	l->expect_ms = ms > 0 ? ms : 0;
	link_arm(l);
}

int
redis_link_add_script(struct redis_link *l, struct redis_script *s)
{
	const char *argv[3] = {"SCRIPT", "LOAD", s->source};
	size_t lens[3] = {6, 4, strlen(s->source)};
	struct redis_script **scripts =
		realloc(l->scripts, (size_t)(l->nscripts + 1) * sizeof *scripts);

	if (scripts == NULL)
		return -1;
	scripts[l->nscripts++] = s;
	l->scripts = scripts;
	if (l->state == LINK_UP)
		link_send(l, link_on_handshake, l, 3, argv, lens);
	return 0;
}

bool
redis_link_up(const struct redis_link *l)
{
	return l->state == LINK_UP;
}

const char *
redis_link_where(const struct redis_link *l, char *buf, size_t len)
{
	if (l->addr.path[0] != '\0')
		snprintf(buf, len, "unix:%s", l->addr.path);
	else if (strchr(l->cur_host, ':') != NULL)
		snprintf(buf, len, "[%s]:%d", l->cur_host, l->cur_port);
	else
		snprintf(buf, len, "%s:%d", l->cur_host, l->cur_port);
	return buf;
}

int
redis_link_command(struct redis_link *l, redis_reply_fn fn, void *arg, int argc, const char **argv,
		   const size_t *lens)
{
	if (l->state != LINK_UP || l->subs != NULL ||
	    link_send(l, fn, arg, argc, argv, lens) == NULL)
		return -1;
	link_arm(l);
	return 0;
}

int
redis_link_eval(struct redis_link *l, struct redis_script *s, redis_reply_fn fn, void *arg,
		int nkeys, int argc, const char **argv, const size_t *lens)
{
	const char **av;
	size_t *lv, total = 0;
	char nk[16];
	struct call *c;
	char *p;

	if (l->state != LINK_UP || l->subs != NULL || argc < 0)
		return -1;
	av = calloc((size_t)argc + 3, sizeof *av);
	lv = calloc((size_t)argc + 3, sizeof *lv);
	for (int i = 0; i < argc; i++)
		total += lens[i];
	c = NULL;
	if (av != NULL && lv != NULL) {
		snprintf(nk, sizeof nk, "%d", nkeys);
		av[0] = "EVALSHA", lv[0] = 7;
		av[1] = s->sha, lv[1] = strlen(s->sha);
		av[2] = nk, lv[2] = strlen(nk);
		for (int i = 0; i < argc; i++)
			av[i + 3] = argv[i], lv[i + 3] = lens[i];
		c = link_send(l, fn, arg, argc + 3, av, lv);
	}
	free(av);
	if (c == NULL) {
		free(lv);
		return -1;
	}
	/* Keep the arguments for EVAL, should Redis answer NOSCRIPT. */
	c->script = s;
	c->nkeys = nkeys;
	c->argc = argc;
	c->args = p = malloc(total > 0 ? total : 1);
	c->lens = lv;
	if (p != NULL) {
		for (int i = 0; i < argc; i++) {
			memcpy(p, argv[i], lens[i]);
			c->lens[i] = lens[i];
			p += lens[i];
		}
	} else {
		c->script = NULL; /* out of memory: a NOSCRIPT answer is passed on as it is */
	}
	link_arm(l);
	return 0;
}

void
redis_link_stats(const struct redis_link *l, struct redis_link_stats *out)
{
	*out = l->st;
}
