/* rendezvousctl: command-line client for rendezvousd. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "rendezvous.h"

struct ctl {
	struct event_base *base;
	struct rv_client *client;
	struct event *timer;
	const char *command;
	const char *method;
	json_t *params; /* the command's request */
	bool json;      /* --json output */
	bool watch;
	bool top;
	long count;      /* watch, top: stop after this many events or samples (0: never) */
	double interval; /* top: seconds between samples */
	json_t *last;    /* top: the previous sample */
	double last_at;  /* and when it came (monotonic seconds) */
	struct event *tick;
	double timeout;
	int status;   /* exit status */
	bool stopped; /* a result or an error has been reported */

	/* --connect A:P,B:P,...: tried in turn; watch reconnects across them. */
	char **hosts, **ports;
	int naddr, cur;
	int tried; /* connections that failed in a row before their hello was answered */
	bool use_tls;
	struct rv_tls_options tls;
	struct rv_client_callbacks cbs;
	json_t *hello;         /* hello's params, sent on every connection */
	bool greeted;          /* this connection's hello was answered */
	json_t *sub;           /* watch: subscribe's params, sent again after a reconnect */
	bool subscribed;       /* watch: the first subscribe was answered */
	bool outage;           /* watch: reconnecting (said once per outage) */
	long long last_event;  /* watch: the last event shown (-1: none yet) */
	json_t *presence;      /* watch --presence: the presence last known */
	struct rv_client *old; /* a closed client, destroyed from the loop */
	struct event *retry;
	double retry_s; /* watch: the next reconnect's delay */
};

static void ctl_connect(struct ctl *ctl);

static void
usage(FILE *f)
{
	fprintf(f,
		"Usage: rendezvousctl [--connect HOST:PORT[,...]] (--user NAME | --token-file "
		"FILE)\n"
		"                     [--json] COMMAND [ARGS]\n"
		"Talk to rendezvousd (proto/PROTOCOL.md).\n"
		"\n"
		"Options:\n"
		"  --connect HOST:PORT  daemon address [default: $RENDEZVOUS_CONNECT or "
		"127.0.0.1:%d];\n"
		"                       several (A:P,B:P) are tried in turn, and watch\n"
		"                       reconnects across them, resuming after the last event\n"
		"  --user NAME          who you are [default: $RENDEZVOUS_USER]\n"
		"  --device NAME        the device you act from, the same in every command, so\n"
		"                       that a later command may connect or send in a session\n"
		"                       an earlier one answered [default: $RENDEZVOUS_DEVICE,\n"
		"                       else this host's name]\n"
		"  --token-file FILE    a JSON Web Token proving who you are, for a daemon\n"
		"                       run with --auth jwt [default: $RENDEZVOUS_TOKEN_FILE]\n"
		"  --token TOKEN        the token itself (visible to other local users in\n"
		"                       ps; prefer the file) [default: $RENDEZVOUS_TOKEN]\n"
		"  --tls                speak TLS, verifying the daemon against the system's CAs\n"
		"  --tls-ca FILE        speak TLS, verifying the daemon against the CAs in FILE\n"
		"                       [default: $RENDEZVOUS_TLS_CA]\n"
		"  --tls-cert FILE      client certificate for mutual TLS (--tls-key: its key)\n"
		"  --json               print results and events as JSON, one per line\n"
		"  --timeout S          give up on a reply after S seconds [default: 10]\n"
		"  --help, --version\n"
		"\n"
		"Commands:\n"
		"  create INVITEE [--ttl S] [--data JSON] [--topic TEXT]\n"
		"                                           invite INVITEE (session in RSS_READY)\n"
		"  invite SESSION                           send the invitation\n"
		"  accept SESSION                           accept an invitation\n"
		"  decline SESSION [--reason TEXT]          decline (invitee)\n"
		"  cancel SESSION [--reason TEXT]           cancel (inviter)\n"
		"  connect SESSION                          confirm your link is up\n"
		"  send SESSION DATA                        send context data (JSON, or a string)\n"
		"  terminate SESSION [--code N] [--data JSON]\n"
		"  get SESSION                              show a session\n"
		"  list [--state STATE] [--limit N] [--after SESSION] [--all]\n"
		"                                           your sessions (--all: every\n"
		"                                           session, admin role only)\n"
		"  watch [--session ID | --user NAME | --all | --presence NAME]\n"
		"        [--since EVENT] [--count N]        stream events (or NAME's presence),\n"
		"                                           one line each, until interrupted or\n"
		"                                           N have arrived\n"
		"  outcomes                                 how sessions ended that this device\n"
		"                                           has not acknowledged\n"
		"  ack SESSION...                           acknowledge those outcomes\n"
		"  presence NAME                            whether NAME is online, and on which\n"
		"                                           devices\n"
		"  ping                                     check the daemon answers\n"
		"Every command that changes something takes --idempotency-key KEY: run again\n"
		"with the same KEY, it changes nothing and prints the first run's answer.\n"
		"Admin commands (the admin role):\n"
		"  admin stats                              the daemon's counters\n"
		"  admin connections [--user NAME] [--limit N] [--after ID]\n"
		"                                           connections, one per line\n"
		"  admin kick (CONNECTION | --user NAME)    disconnect a connection, or every\n"
		"                                           connection of a user\n"
		"  top [--interval S] [--count N]           live view of sessions by state and\n"
		"                                           rates, every S seconds [default: 2]\n"
		"\n"
		"Exit status: 0 on success, 1 when the daemon returns an error or cannot\n"
		"be reached, 2 on a usage error.\n",
		RV_DEFAULT_PORT);
}

static void die_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die_usage(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "rendezvousctl: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'rendezvousctl --help'.\n");
	exit(2);
}

static void
ctl_stop(struct ctl *ctl, int status)
{
	ctl->status = status;
	ctl->stopped = true;
	event_base_loopbreak(ctl->base);
}

/* Parse a JSON argument; a value that is not JSON is taken as a string. */
static json_t *
json_arg(const char *s)
{
	json_t *v = json_loads(s, JSON_DECODE_ANY, NULL);

	return v != NULL ? v : json_string(s);
}

static void
print_time(const char *key, json_t *v)
{
	char buf[64];
	time_t t;
	struct tm tm;

	if (!json_is_integer(v))
		return;
	t = (time_t)(json_integer_value(v) / 1000);
	gmtime_r(&t, &tm);
	strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
	printf("%-12s %s.%03lldZ\n", key, buf, (long long)(json_integer_value(v) % 1000));
}

static void
print_value(const char *key, json_t *v)
{
	char *s;

	if (v == NULL)
		return;
	if (json_is_string(v)) {
		printf("%-12s %s\n", key, json_string_value(v));
		return;
	}
	s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	printf("%-12s %s\n", key, s != NULL ? s : "?");
	free(s);
}

static void
print_record(json_t *r)
{
	static const char *const keys[] = {"session", "state",       "inviter",
					   "invitee", "remote_user", "flags"};
	for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
		print_value(keys[i], json_object_get(r, keys[i]));
	print_time("created", json_object_get(r, "created"));
	print_time("updated", json_object_get(r, "updated"));
	print_time("expires", json_object_get(r, "expires"));
	print_value("event", json_object_get(r, "event"));
	print_value("confirmed", json_object_get(r, "confirmed"));
	print_value("reason", json_object_get(r, "reason"));
	print_value("code", json_object_get(r, "code"));
	print_value("data", json_object_get(r, "data"));
	print_value("app_data", json_object_get(r, "app_data"));
}

static void
print_list(json_t *res)
{
	json_t *list = json_object_get(res, "sessions"), *r, *next;
	size_t i;

	printf("%-32s  %-14s  %-16s  %-16s  %s\n", "SESSION", "STATE", "INVITER", "INVITEE",
	       "EVENT");
	json_array_foreach (list, i, r) {
		printf("%-32s  %-14s  %-16s  %-16s  %lld\n",
		       json_string_value(json_object_get(r, "session")),
		       json_string_value(json_object_get(r, "state")),
		       json_string_value(json_object_get(r, "inviter")),
		       json_string_value(json_object_get(r, "invitee")),
		       (long long)json_integer_value(json_object_get(r, "event")));
	}
	next = json_object_get(res, "next");
	if (json_is_string(next))
		printf("(more: --after %s)\n", json_string_value(next));
}

static void
print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	if (s != NULL)
		puts(s);
	free(s);
	fflush(stdout);
}

static void ctl_print_event(const char *method, json_t *params);

/* One session.outcome's params, on one line. */
static void
print_outcome(json_t *o)
{
	const char *by = json_string_value(json_object_get(o, "by"));
	const char *reason = json_string_value(json_object_get(o, "reason"));
	const char *topic = json_string_value(json_object_get(o, "topic"));

	printf("outcome %s %s by %s", json_string_value(json_object_get(o, "session")),
	       json_string_value(json_object_get(o, "state")), by != NULL ? by : "daemon");
	if (json_is_string(json_object_get(o, "by_device")))
		printf(" on %s", json_string_value(json_object_get(o, "by_device")));
	if (reason != NULL)
		printf(" reason=%s", reason);
	if (json_object_get(o, "code") != NULL)
		printf(" code=%lld", (long long)json_integer_value(json_object_get(o, "code")));
	if (topic != NULL && *topic != '\0')
		printf(" topic=%s", topic);
	printf(" event=%lld\n", (long long)json_integer_value(json_object_get(o, "event")));
}

/* presence.get's result or presence.changed's params, on one line. */
static void
print_presence(json_t *p)
{
	json_t *devices = json_object_get(p, "devices"), *d;
	size_t i;

	printf("%s %s", json_string_value(json_object_get(p, "user")),
	       json_is_true(json_object_get(p, "online")) ? "online" : "offline");
	json_array_foreach (devices, i, d)
		printf("%s%s", i == 0 ? " on " : ", ", json_string_value(d));
	putchar('\n');
}

static void
ctl_on_notify(struct rv_client *c, const char *method, json_t *params, void *arg)
{
	struct ctl *ctl = arg;

	(void)c;
	if (strcmp(method, "error") == 0) {
		/* An error tied to no request: a refusal or a cut-off. */
		char *e = json_dumps(params, JSON_COMPACT);
		fprintf(stderr, "rendezvousctl: daemon: %s\n", e != NULL ? e : "error");
		free(e);
		return;
	}
	if (!ctl->watch)
		return;
	if (strcmp(method, "server.shutdown") == 0) {
		/* Not an event: say it, and let the connection's end reconnect. */
		fprintf(stderr, "rendezvousctl: the daemon is shutting down (%s)\n",
			json_string_value(json_object_get(params, "reason")) != NULL
				? json_string_value(json_object_get(params, "reason"))
				: "no reason given");
		return;
	}
	if (strcmp(method, "session.state_changed") == 0) {
		/* After a reconnect the events since the last one shown come again: show each once.
		 */
		long long ev = (long long)json_integer_value(json_object_get(params, "event"));
		if (ev <= ctl->last_event)
			return;
		ctl->last_event = ev;
	}
	if (strcmp(method, "presence.changed") == 0) {
		json_decref(ctl->presence);
		ctl->presence = json_incref(params);
	}
	if (ctl->json) {
		json_t *line = json_pack("{s:s, s:O}", "method", method, "params", params);
		print_json(line);
		json_decref(line);
	} else {
		ctl_print_event(method, params);
	}
	if (ctl->count > 0 && --ctl->count == 0)
		ctl_stop(ctl, 0);
}

static void
ctl_print_event(const char *method, json_t *params)
{
	if (strcmp(method, "session.state_changed") == 0) {
		const char *by = json_string_value(json_object_get(params, "by"));
		const char *reason = json_string_value(json_object_get(params, "reason"));
		printf("event %lld %s %s -> %s by %s",
		       (long long)json_integer_value(json_object_get(params, "event")),
		       json_string_value(json_object_get(params, "session")),
		       json_string_value(json_object_get(params, "prev")),
		       json_string_value(json_object_get(params, "state")), by ? by : "daemon");
		if (reason != NULL)
			printf(" reason=%s", reason);
		if (json_object_get(params, "code") != NULL)
			printf(" code=%lld",
			       (long long)json_integer_value(json_object_get(params, "code")));
		putchar('\n');
	} else if (strcmp(method, "session.outcome") == 0) {
		print_outcome(params);
	} else if (strcmp(method, "presence.changed") == 0) {
		fputs("presence ", stdout);
		print_presence(params);
	} else if (strcmp(method, "session.context_data") == 0) {
		char *d =
			json_dumps(json_object_get(params, "data"), JSON_COMPACT | JSON_ENCODE_ANY);
		printf("data %s from %s: %s\n",
		       json_string_value(json_object_get(params, "session")),
		       json_string_value(json_object_get(params, "from")), d ? d : "?");
		free(d);
	} else {
		char *d = json_dumps(params, JSON_COMPACT | JSON_ENCODE_ANY);
		printf("%s %s\n", method, d ? d : "");
		free(d);
	}
	fflush(stdout);
}

static void
ctl_retry_in(struct ctl *ctl, double s)
{
	struct timeval tv = {(time_t)s, (suseconds_t)((s - (double)(time_t)s) * 1e6)};

	evtimer_add(ctl->retry, &tv);
}

/*
 * The connection ended. Before its hello was answered, try the next address
 * (each once); a watch that was subscribed reconnects, going round the
 * addresses with backoff, until interrupted. Otherwise it is the end.
 */
static void
ctl_on_close(struct rv_client *c, const char *reason, void *arg)
{
	struct ctl *ctl = arg;
	const char *host = ctl->hosts[ctl->cur], *port = ctl->ports[ctl->cur];

	if (ctl->stopped)
		return; /* already reported (a failed call says the same) */
	ctl->old = c;   /* not inside its own callback: the retry destroys it */
	ctl->client = NULL;
	ctl->cur = (ctl->cur + 1) % ctl->naddr;
	if (!ctl->greeted && ++ctl->tried < ctl->naddr && !ctl->subscribed) {
		fprintf(stderr, "rendezvousctl: %s:%s: %s; trying %s:%s\n", host, port, reason,
			ctl->hosts[ctl->cur], ctl->ports[ctl->cur]);
		ctl_retry_in(ctl, 0);
		return;
	}
	if (ctl->watch && ctl->subscribed) {
		if (!ctl->outage)
			fprintf(stderr, "rendezvousctl: %s:%s: %s; reconnecting\n", host, port,
				reason);
		ctl->outage = true;
		ctl_retry_in(ctl, ctl->retry_s);
		ctl->retry_s = ctl->retry_s * 2 < 2 ? ctl->retry_s * 2 : 2;
		return;
	}
	fprintf(stderr, "rendezvousctl: %s\n", reason);
	ctl_stop(ctl, 1);
}

static void
ctl_on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ctl_connect(arg);
}

static bool
ctl_error(struct ctl *ctl, json_t *error)
{
	json_t *data;

	if (error == NULL)
		return false;
	if (ctl->json) {
		char *s = json_dumps(error, JSON_COMPACT);
		fprintf(stderr, "%s\n", s ? s : "");
		free(s);
	} else {
		fprintf(stderr, "rendezvousctl: error %lld: %s",
			(long long)json_integer_value(json_object_get(error, "code")),
			json_string_value(json_object_get(error, "message")));
		data = json_object_get(error, "data");
		if (data != NULL) {
			char *s = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
			fprintf(stderr, " %s", s ? s : "");
			free(s);
		}
		fputc('\n', stderr);
	}
	ctl_stop(ctl, 1);
	return true;
}

static void
print_connections(json_t *res)
{
	json_t *list = json_object_get(res, "connections"), *r;
	size_t i;

	printf("%-8s %-24s %-16s %-9s %5s %8s %10s %8s\n", "ID", "PEER", "USER", "STATE", "SUBS",
	       "REQUESTS", "UNSENT", "AGE(s)");
	json_array_foreach (list, i, r) {
		const char *user = json_string_value(json_object_get(r, "user"));
		printf("%-8lld %-24s %-16s %-9s %5lld %8lld %10lld %8lld%s\n",
		       (long long)json_integer_value(json_object_get(r, "connection")),
		       json_string_value(json_object_get(r, "peer")), user != NULL ? user : "-",
		       json_string_value(json_object_get(r, "state")),
		       (long long)json_integer_value(json_object_get(r, "subscriptions")),
		       (long long)json_integer_value(json_object_get(r, "requests")),
		       (long long)json_integer_value(json_object_get(r, "unsent_bytes")),
		       (long long)json_integer_value(json_object_get(r, "age_ms")) / 1000,
		       json_is_true(json_object_get(r, "tls")) ? " tls" : "");
	}
	if (json_object_get(res, "next") != NULL)
		printf("(more: --after %lld)\n",
		       (long long)json_integer_value(json_object_get(res, "next")));
}

/* The sum of a transitions array's counts (what top calls transitions). */
static long long
sum_transitions(json_t *stats)
{
	json_t *t;
	size_t i;
	long long n = 0;

	json_array_foreach (json_object_get(stats, "transitions"), i, t)
		n += (long long)json_integer_value(json_object_get(t, "count"));
	return n;
}

/* Per second, between two samples of admin.stats: the counter at path. */
static double
rate(json_t *now, json_t *before, const char *key, const char *sub, double secs)
{
	json_t *a = json_object_get(now, key), *b = json_object_get(before, key);

	if (sub != NULL) {
		a = json_object_get(a, sub);
		b = json_object_get(b, sub);
	}
	if (before == NULL || secs <= 0)
		return 0;
	return (double)(json_integer_value(a) - json_integer_value(b)) / secs;
}

static double
mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One sample of top: sessions by state, and rates since the last sample. */
static void
top_show(struct ctl *ctl, json_t *st)
{
	double now = mono_now(), secs = now - ctl->last_at;
	json_t *before = ctl->last;
	double rates[5] = {
		rate(st, before, "requests", NULL, secs),
		before != NULL && secs > 0
			? (double)(sum_transitions(st) - sum_transitions(before)) / secs
			: 0,
		rate(st, before, "sessions_created", NULL, secs),
		rate(st, before, "events", "delivered", secs),
		rate(st, before, "bytes_delivered", NULL, secs),
	};
	const char *key;
	json_t *v;

	if (ctl->json) {
		/* Rates need two samples: null on the first. */
		json_t *r = before == NULL ? json_null()
					   : json_pack("{s:f, s:f, s:f, s:f, s:f}", "requests",
						       rates[0], "transitions", rates[1], "created",
						       rates[2], "events_delivered", rates[3],
						       "bytes_delivered", rates[4]);
		json_t *line = json_pack("{s:O, s:O, s:O, s:o*}", "sessions",
					 json_object_get(st, "sessions"), "connections",
					 json_object_get(st, "connections"), "subscriptions",
					 json_object_get(st, "subscriptions"), "rates", r);
		print_json(line);
		json_decref(line);
	} else {
		if (isatty(STDOUT_FILENO))
			fputs("\033[H\033[2J", stdout);
		printf("rendezvousd %s, up %llds, store %s\n",
		       json_string_value(json_object_get(st, "version")),
		       (long long)json_integer_value(json_object_get(st, "uptime_ms")) / 1000,
		       json_string_value(json_object_get(json_object_get(st, "store"), "store")));
		printf("connections %lld, subscriptions %lld, last event %lld\n\n",
		       (long long)json_integer_value(json_object_get(st, "connections")),
		       (long long)json_integer_value(json_object_get(st, "subscriptions")),
		       (long long)json_integer_value(
			       json_object_get(json_object_get(st, "events"), "last")));
		printf("%-16s %10s\n", "STATE", "SESSIONS");
		json_object_foreach (json_object_get(st, "sessions"), key, v)
			printf("%-16s %10lld\n", key, (long long)json_integer_value(v));
		printf("\n%-22s %12s\n", "PER SECOND", before != NULL ? "" : "(next sample)");
		printf("%-22s %12.1f\n%-22s %12.1f\n%-22s %12.1f\n%-22s %12.1f\n%-22s %12.1f\n",
		       "requests", rates[0], "transitions", rates[1], "sessions created", rates[2],
		       "events delivered", rates[3], "bytes delivered", rates[4]);
	}
	fflush(stdout);
	json_decref(ctl->last);
	ctl->last = json_incref(st);
	ctl->last_at = now;
}

static void ctl_on_reply(struct rv_client *c, json_t *result, json_t *error, void *arg);

/* top: the next sample. */
static void
ctl_on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct ctl *ctl = arg;
	struct timeval tv = {(time_t)ctl->timeout,
			     (suseconds_t)((ctl->timeout - (double)(time_t)ctl->timeout) * 1e6)};

	(void)fd;
	(void)what;
	evtimer_add(ctl->timer, &tv); /* a reply is due within --timeout */
	if (rv_client_call(ctl->client, "admin.stats", NULL, ctl_on_reply, ctl) != 0) {
		fprintf(stderr, "rendezvousctl: cannot send the request\n");
		ctl_stop(ctl, 1);
	}
}

static void
ctl_on_reply(struct rv_client *c, json_t *result, json_t *error, void *arg)
{
	struct ctl *ctl = arg;

	if (error != NULL && ctl->watch && ctl->subscribed && rv_client_closed(c))
		return; /* lost again while subscribing again: on_close reconnects */
	if (ctl_error(ctl, error))
		return;
	if (ctl->top) {
		struct timeval tv = {
			(time_t)ctl->interval,
			(suseconds_t)((ctl->interval - (double)(time_t)ctl->interval) * 1e6)};
		event_del(ctl->timer);
		top_show(ctl, result);
		if (ctl->count > 0 && --ctl->count == 0)
			ctl_stop(ctl, 0);
		else
			evtimer_add(ctl->tick, &tv);
		return;
	}
	if (strcmp(ctl->command, "watch") == 0) {
		long long last =
			(long long)json_integer_value(json_object_get(result, "last_event"));

		json_t *presence = json_object_get(result, "presence");

		if (ctl->subscribed) {
			fprintf(stderr, "resumed on %s:%s (subscription %lld, last event %lld)\n",
				ctl->hosts[ctl->cur], ctl->ports[ctl->cur],
				(long long)json_integer_value(
					json_object_get(result, "subscription")),
				last);
			/* Presence has no history: a change while away shows as the presence now.
			 */
			if (presence != NULL && !json_equal(presence, ctl->presence))
				ctl_on_notify(c, "presence.changed", presence, ctl);
		} else {
			if (presence != NULL) {
				json_decref(ctl->presence);
				ctl->presence = json_incref(presence);
			}
			fprintf(stderr, "watching (subscription %lld, last event %lld)\n",
				(long long)json_integer_value(
					json_object_get(result, "subscription")),
				last);
			/* Without --since, what comes after this is new: resume from here. */
			if (ctl->last_event < 0 && json_object_get(ctl->sub, "since") == NULL)
				ctl->last_event = last;
		}
		ctl->subscribed = true;
		ctl->outage = false;
		ctl->retry_s = 0.1;
	} else if (ctl->json) {
		print_json(result);
	} else if (strcmp(ctl->command, "list") == 0) {
		print_list(result);
	} else if (strcmp(ctl->command, "admin connections") == 0) {
		print_connections(result);
	} else if (strcmp(ctl->command, "admin kick") == 0) {
		printf("kicked %lld connection(s)\n",
		       (long long)json_integer_value(json_object_get(result, "kicked")));
	} else if (strcmp(ctl->command, "outcomes") == 0) {
		json_t *o;
		size_t i;
		json_array_foreach (json_object_get(result, "outcomes"), i, o)
			print_outcome(o);
	} else if (strcmp(ctl->command, "ack") == 0) {
		printf("acknowledged %lld outcome(s)\n",
		       (long long)json_integer_value(json_object_get(result, "acked")));
	} else if (strcmp(ctl->command, "presence") == 0) {
		print_presence(result);
	} else if (strcmp(ctl->command, "admin stats") == 0) {
		char *s = json_dumps(result, JSON_INDENT(2));
		if (s != NULL)
			puts(s);
		free(s);
	} else if (json_is_object(result) && json_object_get(result, "session") != NULL) {
		print_record(result);
	} else if (json_is_object(result) && json_object_get(result, "delivered") != NULL) {
		printf("delivered to %lld connection(s)\n",
		       (long long)json_integer_value(json_object_get(result, "delivered")));
	} else if (json_is_string(result)) {
		puts(json_string_value(result));
	} else {
		print_json(result);
	}
	fflush(stdout);
	if (ctl->watch) {
		event_del(ctl->timer); /* a stream has no deadline */
		return;
	}
	ctl_stop(ctl, 0);
}

static void
ctl_on_hello(struct rv_client *c, json_t *result, json_t *error, void *arg)
{
	struct ctl *ctl = arg;
	json_t *params = ctl->params;

	(void)result;
	if (error != NULL && rv_client_closed(c))
		return; /* the connection failed: on_close tries the next address */
	if (ctl_error(ctl, error))
		return;
	ctl->greeted = true;
	ctl->tried = 0;
	if (ctl->subscribed) {
		/* A watch back after a reconnect: subscribe again from the last event shown. */
		params = json_deep_copy(ctl->sub);
		if (params != NULL && ctl->last_event >= 0 &&
		    json_object_get(params, "presence") == NULL) /* presence has no events */
			json_object_set_new(params, "since", json_integer(ctl->last_event));
	} else if (ctl->watch) {
		ctl->sub = json_deep_copy(params);
		if (ctl->sub == NULL) {
			fprintf(stderr, "rendezvousctl: out of memory\n");
			ctl_stop(ctl, 1);
			return;
		}
		json_t *since = json_object_get(params, "since");
		if (since != NULL)
			ctl->last_event = (long long)json_integer_value(since);
	}
	if (rv_client_call(c, ctl->method, params, ctl_on_reply, ctl) != 0) {
		fprintf(stderr, "rendezvousctl: cannot send the request\n");
		ctl_stop(ctl, 1);
	}
	if (!ctl->subscribed)
		ctl->params = NULL;
}

/* Connect to the current address and say hello. */
static void
ctl_connect(struct ctl *ctl)
{
	if (ctl->old != NULL) {
		rv_client_destroy(ctl->old);
		ctl->old = NULL;
	}
	ctl->greeted = false;
	ctl->client = ctl->use_tls
			      ? rv_client_create_tls(ctl->base, ctl->hosts[ctl->cur],
						     ctl->ports[ctl->cur], &ctl->tls, &ctl->cbs)
			      : rv_client_create(ctl->base, ctl->hosts[ctl->cur],
						 ctl->ports[ctl->cur], &ctl->cbs);
	if (ctl->client == NULL) {
		fprintf(stderr, "rendezvousctl: cannot connect to %s:%s: %s\n",
			ctl->hosts[ctl->cur], ctl->ports[ctl->cur], strerror(errno));
		ctl_stop(ctl, 1);
		return;
	}
	rv_client_call(ctl->client, "hello", json_deep_copy(ctl->hello), ctl_on_hello, ctl);
}

/* Split --connect's comma-separated HOST:PORT list into ctl->hosts and ctl->ports. */
static void
parse_addresses(struct ctl *ctl, const char *list)
{
	char *copy = strdup(list), *save = NULL;

	if (copy == NULL)
		exit(1);
	for (char *a = strtok_r(copy, ",", &save); a != NULL; a = strtok_r(NULL, ",", &save)) {
		char **h = realloc(ctl->hosts, (size_t)(ctl->naddr + 1) * sizeof *h);
		char **p = h != NULL ? realloc(ctl->ports, (size_t)(ctl->naddr + 1) * sizeof *p)
				     : NULL;

		if (h != NULL)
			ctl->hosts = h;
		if (p == NULL)
			exit(1);
		ctl->ports = p;
		if (rv_parse_hostport(a, &ctl->hosts[ctl->naddr], &ctl->ports[ctl->naddr],
				      RV_DEFAULT_PORT_STR) != 0)
			die_usage("--connect takes HOST:PORT[,HOST:PORT...], not '%s'", list);
		ctl->naddr++;
	}
	free(copy);
	if (ctl->naddr == 0)
		die_usage("--connect takes HOST:PORT[,HOST:PORT...], not '%s'", list);
}

static void
ctl_on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct ctl *ctl = arg;

	(void)fd;
	(void)what;
	fprintf(stderr, "rendezvousctl: no reply within %g s\n", ctl->timeout);
	ctl_stop(ctl, 1);
}

static void
ctl_on_signal(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	ctl_stop(arg, 0);
}

/* The token in path, without surrounding white space (exits 1 if unreadable). */
static char *
read_token(const char *path)
{
	char buf[16384];
	FILE *f = fopen(path, "r");
	size_t n, start = 0;

	if (f == NULL) {
		fprintf(stderr, "rendezvousctl: cannot read %s: %s\n", path, strerror(errno));
		exit(1);
	}
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	while (isspace((unsigned char)buf[start]))
		start++;
	return strdup(buf + start);
}

/* Parse the command and its options into ctl->method and ctl->params. */
static void
parse_command(struct ctl *ctl, int argc, char **argv)
{
	static const struct option opts[] = {
		{"ttl", required_argument, NULL, 't'},
		{"data", required_argument, NULL, 'd'},
		{"topic", required_argument, NULL, 'o'},
		{"reason", required_argument, NULL, 'r'},
		{"code", required_argument, NULL, 'c'},
		{"state", required_argument, NULL, 's'},
		{"limit", required_argument, NULL, 'l'},
		{"after", required_argument, NULL, 'a'},
		{"session", required_argument, NULL, 'S'},
		{"user", required_argument, NULL, 'U'},
		{"all", no_argument, NULL, 'A'},
		{"since", required_argument, NULL, 'n'},
		{"count", required_argument, NULL, 'N'},
		{"interval", required_argument, NULL, 'i'},
		{"presence", required_argument, NULL, 'P'},
		{"idempotency-key", required_argument, NULL, 'K'},
		{NULL, 0, NULL, 0},
	};
	static const struct {
		const char *name, *method;
		int positional; /* SESSION or INVITEE, then DATA for send; -1: one or more */
		const char *allowed;
	} cmds[] = {
		{"create", "session.create", 1, "tdoK"},
		{"invite", "session.invite", 1, "K"},
		{"accept", "session.accept", 1, "K"},
		{"decline", "session.decline", 1, "rK"},
		{"cancel", "session.cancel", 1, "rK"},
		{"connect", "session.connect", 1, "K"},
		{"send", "session.send", 2, "K"},
		{"terminate", "session.terminate", 1, "cdK"},
		{"get", "session.get", 1, ""},
		{"list", "session.list", 0, "slaA"},
		{"watch", "subscribe", 0, "SUAPnN"},
		{"outcomes", "session.outcomes", 0, ""},
		{"ack", "session.ack", -1, ""},
		{"presence", "presence.get", 1, ""},
		{"ping", "ping", 0, ""},
		{"admin stats", "admin.stats", 0, ""},
		{"admin connections", "admin.connections", 0, "Ula"},
		{"admin kick", "admin.kick", 1, "U"},
		{"top", "admin.stats", 0, "iN"},
	};
	const char *cmd = argv[0];
	char admin_cmd[64];
	size_t i;
	int c;
	char *end;
	json_t *p = json_object();

	if (strcmp(cmd, "admin") == 0) {
		/* "admin SUBCOMMAND ...": the subcommand takes the place of the command. */
		if (argc < 2)
			die_usage("%s", "'admin' takes stats, connections or kick");
		snprintf(admin_cmd, sizeof admin_cmd, "admin %s", argv[1]);
		cmd = admin_cmd;
		argc--;
		argv++;
	}
	for (i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
		if (strcmp(cmds[i].name, cmd) == 0)
			break;
	}
	if (i == sizeof cmds / sizeof cmds[0])
		die_usage("unknown command '%s'", cmd);
	ctl->command = cmds[i].name;
	ctl->method = cmds[i].method;
	ctl->watch = strcmp(cmd, "watch") == 0;
	ctl->top = strcmp(cmd, "top") == 0;
	optind = 0; /* glibc: restart scanning from argv[1] */
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == '?' || strchr(cmds[i].allowed, c) == NULL)
			die_usage("option not valid for '%s'", cmd);
		switch (c) {
		case 't': {
			double ttl = strtod(optarg, &end);
			if (*optarg == '\0' || *end != '\0' || ttl <= 0)
				die_usage("--ttl takes seconds > 0, not '%s'", optarg);
			json_object_set_new(p, "ttl", json_real(ttl));
			break;
		}
		case 'd': json_object_set_new(p, "data", json_arg(optarg)); break;
		case 'o': json_object_set_new(p, "topic", json_string(optarg)); break;
		case 'r': json_object_set_new(p, "reason", json_string(optarg)); break;
		case 'c':
		case 'l':
		case 'n': {
			long long v = strtoll(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0')
				die_usage("expected a whole number, not '%s'", optarg);
			json_object_set_new(p,
					    c == 'c'   ? "code"
					    : c == 'l' ? "limit"
						       : "since",
					    json_integer(v));
			break;
		}
		case 's': json_object_set_new(p, "state", json_string(optarg)); break;
		case 'a':
			if (strcmp(cmd, "admin connections") == 0) {
				long long v = strtoll(optarg, &end, 10);
				if (*optarg == '\0' || *end != '\0' || v < 0)
					die_usage("--after takes a connection id, not '%s'",
						  optarg);
				json_object_set_new(p, "after", json_integer(v));
			} else {
				json_object_set_new(p, "after", json_string(optarg));
			}
			break;
		case 'i':
			ctl->interval = strtod(optarg, &end);
			if (*optarg == '\0' || *end != '\0' || ctl->interval < 0.1)
				die_usage("--interval takes seconds >= 0.1, not '%s'", optarg);
			break;
		case 'S': json_object_set_new(p, "session", json_string(optarg)); break;
		case 'U': json_object_set_new(p, "user", json_string(optarg)); break;
		case 'P': json_object_set_new(p, "presence", json_string(optarg)); break;
		case 'K': json_object_set_new(p, "idempotency_key", json_string(optarg)); break;
		case 'A': json_object_set_new(p, "all", json_true()); break;
		case 'N':
			ctl->count = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || ctl->count <= 0)
				die_usage("--count takes a number > 0, not '%s'", optarg);
			break;
		default: break;
		}
	}
	if (strcmp(cmd, "admin kick") == 0) {
		bool by_user = json_object_get(p, "user") != NULL;
		long long id;
		if (argc - optind != (by_user ? 0 : 1))
			die_usage("%s", "'admin kick' takes a connection id, or --user NAME");
		if (!by_user) {
			id = strtoll(argv[optind], &end, 10);
			if (*argv[optind] == '\0' || *end != '\0' || id < 0)
				die_usage("expected a connection id, not '%s'", argv[optind]);
			json_object_set_new(p, "connection", json_integer(id));
		}
		ctl->params = p;
		return;
	}
	if (cmds[i].positional < 0) {
		json_t *list = json_array();
		if (argc - optind < 1)
			die_usage("'%s' takes one or more sessions", cmd);
		for (; optind < argc; optind++)
			json_array_append_new(list, json_string(argv[optind]));
		json_object_set_new(p, "sessions", list);
		ctl->params = p;
		return;
	}
	if (argc - optind != cmds[i].positional)
		die_usage("'%s' takes %s", cmd,
			  cmds[i].positional == 0   ? "no arguments"
			  : cmds[i].positional == 1 ? "one argument"
						    : "SESSION and DATA");
	if (strcmp(cmd, "create") == 0)
		json_object_set_new(p, "invitee", json_string(argv[optind]));
	else if (strcmp(cmd, "presence") == 0)
		json_object_set_new(p, "user", json_string(argv[optind]));
	else if (cmds[i].positional >= 1)
		json_object_set_new(p, "session", json_string(argv[optind]));
	if (cmds[i].positional == 2)
		json_object_set_new(p, "data", json_arg(argv[optind + 1]));
	ctl->params = p;
}

/*
 * This host's name as a device (1-64 bytes of A-Z a-z 0-9 . _ : -, others
 * replaced by '-'), or "rendezvousctl" when it has none.
 */
static const char *
host_device_name(char *buf, size_t size)
{
	size_t n;

	if (gethostname(buf, size) != 0 || buf[0] == '\0') {
		snprintf(buf, size, "rendezvousctl");
		return buf;
	}
	buf[size - 1] = '\0';
	n = strlen(buf);
	for (size_t i = 0; i < n; i++) {
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-",
			   buf[i]) == NULL)
			buf[i] = '-';
	}
	return buf;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"connect", required_argument, NULL, 'c'},
		{"user", required_argument, NULL, 'u'},
		{"device", required_argument, NULL, 'D'},
		{"token", required_argument, NULL, 'k'},
		{"token-file", required_argument, NULL, 'K'},
		{"tls", no_argument, NULL, 'T'},
		{"tls-ca", required_argument, NULL, 'C'},
		{"tls-cert", required_argument, NULL, 'E'},
		{"tls-key", required_argument, NULL, 'Y'},
		{"json", no_argument, NULL, 'j'},
		{"timeout", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct ctl ctl = {
		.timeout = 10, .status = 1, .interval = 2, .last_event = -1, .retry_s = 0.1};
	const char *connect = getenv("RENDEZVOUS_CONNECT"), *user = getenv("RENDEZVOUS_USER");
	const char *device = getenv("RENDEZVOUS_DEVICE");
	char host_device[65];
	const char *token = getenv("RENDEZVOUS_TOKEN"),
		   *token_file = getenv("RENDEZVOUS_TOKEN_FILE");
	char *token_buf = NULL;
	struct rv_tls_options tls = {.ca_file = getenv("RENDEZVOUS_TLS_CA")};
	bool use_tls = tls.ca_file != NULL && *tls.ca_file != '\0';
	json_t *hello;
	struct event *sigint, *sigterm;
	char *end;
	struct timeval tv;
	int c;

	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (c) {
		case 'c': connect = optarg; break;
		case 'u': user = optarg; break;
		case 'D': device = optarg; break;
		case 'k': token = optarg; break;
		case 'K': token_file = optarg; break;
		case 'T': use_tls = true; break;
		case 'C':
			tls.ca_file = optarg;
			use_tls = true;
			break;
		case 'E':
			tls.cert_file = optarg;
			use_tls = true;
			break;
		case 'Y': tls.key_file = optarg; break;
		case 'j': ctl.json = true; break;
		case 't':
			ctl.timeout = strtod(optarg, &end);
			if (*optarg == '\0' || *end != '\0' || ctl.timeout <= 0)
				die_usage("--timeout takes seconds > 0, not '%s'", optarg);
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("rendezvousctl %s\n", RV_VERSION); return 0;
		default: fprintf(stderr, "Try 'rendezvousctl --help'.\n"); return 2;
		}
	}
	if (optind >= argc)
		die_usage("%s", "no command given");
	if (token_file != NULL && *token_file != '\0') {
		token_buf = read_token(token_file);
		token = token_buf;
	}
	if ((user == NULL || *user == '\0') && (token == NULL || *token == '\0'))
		die_usage("%s", "--user NAME (or a token) is required");
	parse_command(&ctl, argc - optind, argv + optind);
	if (connect == NULL || *connect == '\0')
		connect = "127.0.0.1:" RV_DEFAULT_PORT_STR;
	parse_addresses(&ctl, connect);

	signal(SIGPIPE, SIG_IGN);
	ctl.base = event_base_new();
	if (tls.ca_file != NULL && *tls.ca_file == '\0')
		tls.ca_file = NULL;
	ctl.use_tls = use_tls;
	ctl.tls = tls;
	ctl.cbs = (struct rv_client_callbacks){ctl_on_notify, ctl_on_close, &ctl};
	hello = json_pack("{s:s}", "client", "rendezvousctl/" RV_VERSION);
	if (hello != NULL && user != NULL && *user != '\0')
		json_object_set_new(hello, "user", json_string(user));
	if (hello != NULL && token != NULL && *token != '\0')
		json_object_set_new(hello, "token", json_string(token));
	if (device == NULL || *device == '\0')
		device = host_device_name(host_device, sizeof host_device);
	if (hello != NULL)
		json_object_set_new(hello, "device", json_string(device));
	if (hello == NULL) {
		fprintf(stderr, "rendezvousctl: out of memory\n");
		return 1;
	}
	ctl.hello = hello;
	ctl.timer = evtimer_new(ctl.base, ctl_on_timeout, &ctl);
	ctl.tick = evtimer_new(ctl.base, ctl_on_tick, &ctl);
	ctl.retry = evtimer_new(ctl.base, ctl_on_retry, &ctl);
	ctl_connect(&ctl);
	tv.tv_sec = (time_t)ctl.timeout;
	tv.tv_usec = (suseconds_t)((ctl.timeout - (double)tv.tv_sec) * 1e6);
	evtimer_add(ctl.timer, &tv);
	sigint = evsignal_new(ctl.base, SIGINT, ctl_on_signal, &ctl);
	sigterm = evsignal_new(ctl.base, SIGTERM, ctl_on_signal, &ctl);
	evsignal_add(sigint, NULL);
	evsignal_add(sigterm, NULL);

	if (!ctl.stopped)
		event_base_dispatch(ctl.base);

	json_decref(ctl.params);
	json_decref(ctl.last);
	json_decref(ctl.sub);
	json_decref(ctl.presence);
	json_decref(ctl.hello);
	if (token_buf != NULL) {
		explicit_bzero(token_buf, strlen(token_buf));
		free(token_buf);
	}
	if (ctl.client != NULL)
		rv_client_destroy(ctl.client);
	if (ctl.old != NULL)
		rv_client_destroy(ctl.old);
	for (int i = 0; i < ctl.naddr; i++) {
		free(ctl.hosts[i]);
		free(ctl.ports[i]);
	}
	free(ctl.hosts);
	free(ctl.ports);
	event_free(ctl.retry);
	event_free(ctl.timer);
	event_free(ctl.tick);
	event_free(sigint);
	event_free(sigterm);
	event_base_free(ctl.base);
	return ctl.status;
}
