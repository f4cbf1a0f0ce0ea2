/*
 * The library's client against several daemons (rv_client_create_any()):
 * the first address that accepts is used, a refused one is skipped, every
 * one refused ends the client saying how many were tried, and a bad list
 * is refused at once. The "daemon" is a line echo on a loopback port that
 * answers every request "pong".
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "check.h"
#include "rendezvous.h"

static struct event_base *base;
static struct bufferevent *served[8]; /* the fake daemon's connections, freed at the end */
static int nserved;

/* A loopback port nothing listens on (bound, then closed). */
static int
refused_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	bind(fd, (struct sockaddr *)&sa, sizeof sa);
	getsockname(fd, (struct sockaddr *)&sa, &len);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* The fake daemon: each line a request; answer {"result": "pong"} with its id. */
static void
on_server_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;

	(void)arg;
	while ((line = evbuffer_readln(in, NULL, EVBUFFER_EOL_LF)) != NULL) {
		json_t *req = json_loads(line, 0, NULL), *reply;
		char *text;
		reply = json_pack("{s:s, s:s, s:O?}", "jsonrpc", "2.0", "result", "pong", "id",
				  json_object_get(req, "id"));
		text = json_dumps(reply, JSON_COMPACT);
		evbuffer_add_printf(bufferevent_get_output(bev), "%s\n", text);
		free(text);
		json_decref(reply);
		json_decref(req);
		free(line);
	}
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);

	(void)l;
	(void)sa;
	(void)len;
	(void)arg;
	bufferevent_setcb(bev, on_server_read, NULL, NULL, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (nserved < 8)
		served[nserved++] = bev;
	else
		bufferevent_free(bev);
}

struct outcome {
	bool replied, closed;
	char result[64], reason[256];
};

static void
on_reply(struct rv_client *c, json_t *result, json_t *error, void *arg)
{
	struct outcome *o = arg;

	(void)c;
	(void)error;
	o->replied = true;
	snprintf(o->result, sizeof o->result, "%s",
		 json_string_value(result) != NULL ? json_string_value(result) : "?");
}

static void
on_close(struct rv_client *c, const char *reason, void *arg)
{
	struct outcome *o = arg;

	(void)c;
	o->closed = true;
	snprintf(o->reason, sizeof o->reason, "%s", reason);
}

static void
run_until(bool *flag)
{
	for (int i = 0; i < 2000 && !*flag; i++) {
		struct timeval tv = {0, 5000};
		event_base_loopexit(base, &tv);
		event_base_dispatch(base);
	}
}

int
main(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	struct evconnlistener *l;
	struct outcome o = {0};
	struct rv_client_callbacks cbs = {.on_close = on_close, .arg = &o};
	struct rv_client *c;
	char list[128];
	int live;

	base = event_base_new();
	l = evconnlistener_new_bind(base, on_accept, NULL,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
				    (struct sockaddr *)&sa, sizeof sa);
	CHECK(l != NULL);
	getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&sa, &len);
	live = ntohs(sa.sin_port);

	/* The first refuses: the second (a name, with the default port) is used. */
	snprintf(list, sizeof list, "127.0.0.1:%d,localhost", refused_port());
	{
		char port[16];
		snprintf(port, sizeof port, "%d", live);
		c = rv_client_create_any(base, list, port, NULL, &cbs);
	}
	CHECK(c != NULL);
	CHECK(rv_client_call(c, "ping", NULL, on_reply, &o) == 0);
	run_until(&o.replied);
	CHECK_MSG(o.replied && strcmp(o.result, "pong") == 0 && !o.closed, "%s %s", o.result,
		  o.reason);
	CHECK(strcmp(rv_client_address(c), "localhost") == 0);
	rv_client_destroy(c);

	/* Every one refuses: closed, saying how many daemons were tried. */
	memset(&o, 0, sizeof o);
	snprintf(list, sizeof list, "127.0.0.1:%d,[::1]:%d", refused_port(), refused_port());
	c = rv_client_create_any(base, list, "7900", NULL, &cbs);
	CHECK(c != NULL);
	run_until(&o.closed);
	CHECK_MSG(o.closed && strstr(o.reason, "of 2 daemons") != NULL, "%s", o.reason);
	rv_client_destroy(c);

	/* A bad list: refused at once. */
	errno = 0;
	CHECK(rv_client_create_any(base, "", "7900", NULL, &cbs) == NULL && errno == EINVAL);
	CHECK(rv_client_create_any(base, "127.0.0.1:99999", "7900", NULL, &cbs) == NULL &&
	      errno == EINVAL);
	CHECK(rv_client_create_any(base, "127.0.0.1:1,x:y", "7900", NULL, &cbs) == NULL);

	for (int i = 0; i < nserved; i++)
		bufferevent_free(served[i]);
	evconnlistener_free(l);
	event_base_free(base);
	return check_done("client");
}
