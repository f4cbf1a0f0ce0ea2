/*
 * rendezvous-bench: measure rendezvousd, and Redis doing the same job, on
 * this machine. Each run starts a fresh server pinned to one core, drives it
 * from this process pinned to the other, and reports what it measured.
 *
 * Scenarios (see tests/bench/README.md):
 *   lifecycle    client pairs run full lifecycles, one request in flight each
 *   fanout       one pipelined driver, S subscribers receive every event
 *   latency      open-loop transitions at a fixed rate, S subscribers
 *   sessions     M live sessions: server memory per session
 *   connections  N idle connections: server memory per connection
 *   recovery     M sessions, SIGKILL, start again on the files: time to answer
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

/* B_LIMIT: rendezvous-limit (limit.c), the bare-epoll fan-out limit; fanout only. */
enum backend { B_RV, B_REDIS, B_LIMIT };
static const char *const backend_names[] = {"rendezvousd", "redis", "limit"};

/* One message from a server, reduced to what the scenarios need. */
enum msg_kind { M_REPLY, M_ERROR, M_EVENT, M_OTHER };
struct msg {
	enum msg_kind kind;
	long long num;    /* reply: request id (rv) or integer (redis); event: event id */
	const char *text; /* rv: the line; redis: the payload */
	size_t len;
};

struct bench;
struct bconn;
typedef void (*msg_cb)(struct bconn *c, const struct msg *m);

struct bconn {
	struct bench *b;
	struct bufferevent *bev; /* what send() did not take; input is read by conn_on_read() */
	struct event *rev;
	struct evbuffer *out;   /* requests queued in this pass, sent by flush_all() */
	struct bconn *next_out; /* on the list of connections with output */
	char *part;             /* an incomplete message left from the last read */
	size_t part_len;
	msg_cb on_msg;
	msg_cb saved;      /* on_msg while a hello is in flight */
	int index;         /* pair or subscriber number */
	int step;          /* lifecycle: next step */
	double sent_at;    /* when the request in flight left */
	char sid[64];      /* lifecycle: the session */
	long long next_id; /* rv request ids */
	long long last_event, got;
	bool ordered;
	struct bconn *peer; /* lifecycle: the other party */
};

struct samples {
	double *v;
	size_t n, cap;
};

struct bench {
	enum backend backend;
	struct event_base *base;
	pid_t server;
	int port;
	char state_dir[64]; /* the server's files, when durable */
	bool reuse_dir;     /* recovery: start again on the files left */
	double started_at;  /* when the server was started */
	char sha[41];       /* redis: the script */
	/* options */
	int pairs, subscribers, depth, rate;
	double duration, warmup;
	long events, sessions, conns;
	/* state */
	double t0, t_measure, t_end;
	bool measuring, stopping;
	/* The server's write_bytes (/proc/PID/io) when measuring began and ended; -1: unknown. */
	long long io_start, io_end;
	long long done_requests, done_events_sent, inflight;
	long long lifecycles;
	struct samples lat;
	struct bconn **subs;
	int nsubs_ready;
	double *send_times; /* latency: by sequence */
	long long sent_seq;
	long long delivered;
	struct event *tick;
};

static const char *opt_daemon = "build/daemon/rendezvousd";
static const char *opt_redis = "redis-server";
static const char *opt_limit = "build/tests/bench/rendezvous-limit";
static const char *opt_durability = "memory";
static const char *opt_store; /* --store URL: rendezvousd on a shared store (Redis) */
static pid_t running_server;  /* the server started and not stopped yet, or 0 */
static bool opt_json;

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *fmt, const char *arg)
{
	fprintf(stderr, "rendezvous-bench: ");
	fprintf(stderr, "%s%s\n", fmt, arg != NULL ? arg : "");
	/* Stop the server this run started: it must not outlive the bench. */
	if (running_server > 0) {
		kill(running_server, SIGTERM);
		waitpid(running_server, NULL, 0);
	}
	exit(1);
}

static void
samples_add(struct samples *s, double v)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 65536;
		s->v = realloc(s->v, s->cap * sizeof *s->v);
		if (s->v == NULL)
			die("out of memory", NULL);
	}
	s->v[s->n++] = v;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double
percentile(struct samples *s, double p)
{
	if (s->n == 0)
		return NAN;
	size_t i = (size_t)(p * (double)(s->n - 1) + 0.5);
	return s->v[i];
}

/* ---- servers ---- */

static void
pin_to(int cpu)
{
	cpu_set_t set;

	if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	sched_setaffinity(0, sizeof set, &set);
}

static int
free_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) != 0)
		die("cannot find a free port", NULL);
	port = ntohs(sin.sin_port);
	close(fd);
	return port;
}

static int
connect_port(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sin, sizeof sin) != 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	return fd;
}

static void
server_start(struct bench *b)
{
	char port[16], maxconn[32];
	pid_t pid;

	b->port = free_port();
	snprintf(port, sizeof port, "%d", b->port);
	snprintf(maxconn, sizeof maxconn, "%d", 1000000);
	if (!b->reuse_dir)
		b->state_dir[0] = '\0';
	if (strcmp(opt_durability, "memory") != 0 && !b->reuse_dir) {
		/* On disk (not a tmpfs /tmp), so that fsync means something. */
		snprintf(b->state_dir, sizeof b->state_dir, "/var/tmp/rendezvous-bench-XXXXXX");
		if (mkdtemp(b->state_dir) == NULL)
			die("cannot create a directory in /var/tmp", NULL);
	}
	pid = fork();
	if (pid < 0)
		die("fork failed", NULL);
	if (pid == 0) {
		char listen[64];
		int devnull = open("/dev/null", O_WRONLY);
		pin_to(0);
		dup2(devnull, 1);
		dup2(devnull, 2);
		bool durable = b->state_dir[0] != '\0';
		if (b->backend == B_RV) {
			/* memory; normal or strict: the same durability as Redis's AOF below */
			snprintf(listen, sizeof listen, "127.0.0.1:%s", port);
			/*
			 * --hello-timeout: the connections scenario opens every
			 * connection before its hellos, which on a slow moment took
			 * longer than the default 5 s.
			 */
			execl(opt_daemon, opt_daemon, "--listen", listen, "--observer", "obs",
			      "--hello-timeout", "600", "--linger", "0.05",
			      "--max-sessions-per-user", "10000000", "--max-user-bytes", "0",
			      "--max-connections", maxconn, "--max-subscriptions", "10",
			      "--log-level", "warn", durable ? "--state-dir" : "--store",
			      durable             ? b->state_dir
			      : opt_store != NULL ? opt_store
						  : "memory",
			      "--durability", durable ? opt_durability : "normal", (char *)NULL);
		} else if (b->backend == B_LIMIT) {
			execl(opt_limit, opt_limit, port, (char *)NULL);
		} else {
			/*
			 * appendfsync everysec: the AOF is written before replies
			 * leave (survives a crash of the process) and flushed once a
			 * second, as rendezvousd's normal; always: fsync()ed first.
			 */
			execlp(opt_redis, opt_redis, "--port", port, "--bind", "127.0.0.1",
			       "--save", "", "--appendonly", durable ? "yes" : "no",
			       "--appendfsync",
			       strcmp(opt_durability, "strict") == 0 ? "always" : "everysec",
			       "--dir", durable ? b->state_dir : ".", "--maxclients", "100000",
			       "--loglevel", "warning", "--client-output-buffer-limit",
			       "pubsub 0 0 0", (char *)NULL);
		}
		_exit(127);
	}
	b->server = running_server = pid;
	b->started_at = now_s();
	for (int i = 0; b->reuse_dir || i < 500; i++) {
		int fd = connect_port(b->port);
		if (fd >= 0) {
			close(fd);
			return;
		}
		usleep(10000);
	}
	die("the server did not start: ", b->backend == B_RV      ? opt_daemon
					  : b->backend == B_LIMIT ? opt_limit
								  : opt_redis);
}

static int
remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
server_stop(struct bench *b)
{
	int status;

	kill(b->server, SIGTERM);
	waitpid(b->server, &status, 0);
	running_server = 0;
	if (b->state_dir[0] != '\0')
		nftw(b->state_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * Bytes the server has caused to be written to storage so far (write_bytes in
 * /proc/PID/io: its files, WAL and fsyncs included, whichever thread wrote
 * them); -1 if the kernel does not say.
 */
static long long
server_write_bytes(const struct bench *b)
{
	char path[64], line[128];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/io", (int)b->server);
	if ((f = fopen(path, "r")) == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "write_bytes: %lld", &v) == 1)
			break;
	fclose(f);
	return v;
}

/* Resident memory of the server, bytes. */
static long
server_rss(struct bench *b)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof path, "/proc/%d/status", (int)b->server);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

/* ---- wire ---- */

static long long
num_after(const char *s, size_t len, const char *key)
{
	const char *p = memmem(s, len, key, strlen(key));
	return p != NULL ? strtoll(p + strlen(key), NULL, 10) : -1;
}

/* rv: classify each complete line, without copying or allocating. Returns bytes used. */
static size_t
rv_read(struct bconn *c, const char *buf, size_t have)
{
	size_t used = 0;
	const char *line, *nl;

	while (used < have && (nl = memchr(buf + used, '\n', have - used)) != NULL) {
		size_t len = (size_t)(nl - (buf + used));
		struct msg m = {M_OTHER, -1, NULL, len};

		line = buf + used;
		m.text = line;
		if (len > 30 && memcmp(line + 27, "session.state_changed", 21) == 0) {
			m.kind = M_EVENT;
			m.num = num_after(line, len, "\"event\":");
		} else if (memmem(line, len, "\"error\":", 8) != NULL) {
			m.kind = M_ERROR;
		} else if (memmem(line, len, "\"result\":", 9) != NULL) {
			const char *id = line + len;
			m.kind = M_REPLY;
			while (id > line && id[-1] != ':')
				id--;
			m.num = strtoll(id, NULL, 10);
		}
		c->on_msg(c, &m);
		used += len + 1;
	}
	return used;
}

/* redis: parse one RESP value at p; returns bytes used or 0 if incomplete. */
static size_t
resp_one(const char *p, size_t len, struct msg *m, int depth)
{
	const char *nl = memchr(p, '\n', len);
	size_t head;

	if (nl == NULL)
		return 0;
	head = (size_t)(nl - p) + 1;
	switch (p[0]) {
	case ':':
		m->kind = M_REPLY;
		m->num = strtoll(p + 1, NULL, 10);
		return head;
	case '+': m->kind = M_OTHER; return head;
	case '-':
		m->kind = M_ERROR;
		m->text = p;
		m->len = head;
		return head;
	case '$': {
		long n = strtol(p + 1, NULL, 10);
		if (n < 0) {
			m->kind = M_OTHER;
			return head;
		}
		if (len < head + (size_t)n + 2)
			return 0;
		m->kind = M_REPLY;
		m->text = p + head;
		m->len = (size_t)n;
		return head + (size_t)n + 2;
	}
	case '*': {
		long n = strtol(p + 1, NULL, 10);
		size_t used = head;
		struct msg first = {0}, last = {0};
		for (long i = 0; i < n; i++) {
			struct msg part = {0};
			size_t u = resp_one(p + used, len - used, &part, depth + 1);
			if (u == 0)
				return 0;
			if (i == 0)
				first = part;
			last = part;
			used += u;
		}
		m->kind = M_OTHER;
		if (n == 3 && first.len == 7 && memcmp(first.text, "message", 7) == 0) {
			m->kind = M_EVENT;
			m->text = last.text;
			m->len = last.len;
			m->num = num_after(last.text, last.len, "\"event\":");
		}
		return used;
	}
	default: m->kind = M_ERROR; return head;
	}
}

/* redis: hand on each complete RESP value. Returns bytes used. */
static size_t
redis_read(struct bconn *c, const char *buf, size_t have)
{
	size_t used = 0, n;

	while (used < have) {
		struct msg m = {0};

		n = resp_one(buf + used, have - used, &m, 0);
		if (n == 0)
			break;
		c->on_msg(c, &m);
		used += n;
	}
	return used;
}

/*
 * Read with one read() into a large buffer shared by every connection, and
 * parse in place. libevent's bufferevents read at most 4 KiB per call: a
 * pipelined driver would then see its replies in 4 KiB slices, and the
 * client, not the server, would set the batch sizes being measured. Only an
 * incomplete message is copied, into the connection's own buffer.
 */
static void flush_all(void);

static void
conn_on_read(evutil_socket_t fd, short what, void *arg)
{
	static char buf[1 << 20];
	struct bconn *c = arg;
	size_t have, used;
	ssize_t n;

	(void)what;
	if (c->part_len > 0)
		memcpy(buf, c->part, c->part_len);
	n = read(fd, buf + c->part_len, sizeof buf - c->part_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		die("a server connection was lost (cut off as a slow consumer?)", NULL);
	have = c->part_len + (size_t)n;
	used = c->b->backend != B_REDIS ? rv_read(c, buf, have) : redis_read(c, buf, have);
	flush_all();
	c->part_len = have - used;
	if (c->part_len > 0) {
		if (c->part_len == sizeof buf)
			die("a message larger than the read buffer", NULL);
		free(c->part);
		c->part = malloc(c->part_len);
		if (c->part == NULL)
			die("out of memory", NULL);
		memcpy(c->part, buf + used, c->part_len);
	}
}

static void
conn_on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		die("a server connection was lost (cut off as a slow consumer?)", NULL);
}

static struct bconn *
conn_new(struct bench *b, msg_cb cb, int index)
{
	struct bconn *c = calloc(1, sizeof *c);
	int fd = connect_port(b->port);

	if (c == NULL || fd < 0)
		die("cannot connect to the server (out of descriptors?)", NULL);
	evutil_make_socket_nonblocking(fd);
	c->b = b;
	c->on_msg = cb;
	c->index = index;
	c->ordered = true;
	c->bev = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(c->bev, NULL, NULL, conn_on_event, c);
	bufferevent_enable(c->bev, EV_WRITE);
	bufferevent_disable(c->bev, EV_READ);
	c->rev = event_new(b->base, fd, EV_READ | EV_PERSIST, conn_on_read, c);
	c->out = evbuffer_new();
	if (c->bev == NULL || c->rev == NULL || c->out == NULL || event_add(c->rev, NULL) != 0)
		die("out of memory", NULL);
	return c;
}

static void
conn_free(struct bconn *c)
{
	flush_all();
	event_free(c->rev);
	evbuffer_free(c->out);
	free(c->part);
	bufferevent_free(c->bev);
	free(c);
}

static void sendf(struct bconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Output: requests are gathered per connection and sent with one send() each
 * when the callback that made them returns (flush_all()), as a pipelining
 * client would. A bufferevent per connection takes only what the socket
 * refused: writing every request through it costs two epoll_ctl() calls and
 * a loop pass each, and the client, not the server, becomes the limit.
 */
static struct bconn *with_output;

static void
sendf(struct bconn *c, const char *fmt, ...)
{
	va_list ap;

	if (evbuffer_get_length(c->out) == 0) {
		c->next_out = with_output;
		with_output = c;
	}
	va_start(ap, fmt);
	evbuffer_add_vprintf(c->out, fmt, ap);
	va_end(ap);
}

static void
flush_all(void)
{
	struct bconn *c;

	while ((c = with_output) != NULL) {
		struct evbuffer *pending = bufferevent_get_output(c->bev);
		size_t len = evbuffer_get_length(c->out);
		ssize_t n = 0;

		with_output = c->next_out;
		if (evbuffer_get_length(pending) == 0) {
			n = send(bufferevent_getfd(c->bev), evbuffer_pullup(c->out, -1), len,
				 MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				die("send failed: ", strerror(errno));
			if (n < 0)
				n = 0;
			evbuffer_drain(c->out, (size_t)n);
		}
		if (evbuffer_get_length(c->out) > 0)
			evbuffer_add_buffer(pending, c->out);
	}
}

/* Send what the setup queued, then run the loop. */
static void
dispatch(struct bench *b)
{
	flush_all();
	event_base_dispatch(b->base);
}

static void
rv_call(struct bconn *c, const char *method, const char *params)
{
	sendf(c, "{\"jsonrpc\":\"2.0\",\"method\":\"%s\",\"params\":%s,\"id\":%lld}\n", method,
	      params, ++c->next_id);
}

/* redis: EVALSHA the transition script. */
static void
redis_transition(struct bconn *c, const char *key, const char *from, const char *to, const char *by,
		 int publish)
{
	char payload[256], ts[32];
	int n;

	snprintf(ts, sizeof ts, "%lld", (long long)(now_s() * 1000));
	n = snprintf(
		payload, sizeof payload,
		"{\"session\":\"%s\",\"prev\":\"%s\",\"state\":\"%s\",\"time\":%s,\"by\":\"%s\","
		"\"event\":",
		key, from[0] ? from : "RSS_UNKNOWN", to, ts, by);
	sendf(c,
	      "*8\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$1\r\n1\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n$%zu\r\n%"
	      "s\r\n$%d\r\n%s\r\n$1\r\n%d\r\n",
	      c->b->sha, strlen(key), key, strlen(from), from, strlen(to), to, n, payload, publish);
}

/* The Redis side of a transition: check the state, write, count, publish. */
static const char redis_script[] =
	"local st = redis.call('HGET', KEYS[1], 'state')\n"
	"if ARGV[1] == '' then if st then return redis.error_reply('exists') end\n"
	"elseif st ~= ARGV[1] then return redis.error_reply('4009 ' .. tostring(st)) end\n"
	"local ev = 0\n"
	"if ARGV[4] == '1' then ev = redis.call('INCR', 'rv:event') end\n"
	"redis.call('HSET', KEYS[1], 'state', ARGV[2], 'event', ev)\n"
	"if ARGV[4] == '1' then redis.call('PUBLISH', 'rv:events', ARGV[3] .. ev .. '}') end\n"
	"if ARGV[2] == 'RSS_TERMINATED' then redis.call('PEXPIRE', KEYS[1], 50) end\n"
	"return ev\n";

static void
load_script_cb(struct bconn *c, const struct msg *m)
{
	if (m->kind != M_REPLY || m->len != 40)
		die("SCRIPT LOAD failed", NULL);
	memcpy(c->b->sha, m->text, 40);
	c->b->sha[40] = '\0';
	event_base_loopbreak(c->b->base);
}

static void
hello_cb(struct bconn *c, const struct msg *m)
{
	if (m->kind == M_ERROR)
		die("hello failed", NULL);
	c->on_msg = c->saved;
	if (--c->b->inflight == 0)
		event_base_loopbreak(c->b->base);
}

/* Connect and (rv) hello; (redis) load the script once. Waits for replies. */
static void
setup_conns(struct bench *b, struct bconn **cs, int n, const char *user_prefix)
{
	if (b->backend == B_REDIS && b->sha[0] == '\0') {
		struct bconn *c = conn_new(b, load_script_cb, 0);
		sendf(c, "*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n$%zu\r\n%s\r\n", strlen(redis_script),
		      redis_script);
		dispatch(b);
		conn_free(c);
	}
	if (b->backend != B_RV || n == 0)
		return;
	b->inflight = n;
	for (int i = 0; i < n; i++) {
		char params[128];

		cs[i]->saved = cs[i]->on_msg;
		cs[i]->on_msg = hello_cb;
		if (strcmp(user_prefix, "obs") == 0 || strcmp(user_prefix, "drv") == 0)
			snprintf(params, sizeof params, "{\"user\":\"%s\"}", user_prefix);
		else
			snprintf(params, sizeof params, "{\"user\":\"%s%d\"}", user_prefix,
				 cs[i]->index);
		rv_call(cs[i], "hello", params);
	}
	dispatch(b);
	if (b->inflight != 0)
		die("hello went unanswered", NULL);
}

/* ---- subscribers ---- */

static void
sub_cb(struct bconn *c, const struct msg *m)
{
	struct bench *b = c->b;

	if (m->kind == M_EVENT) {
		if (m->num != c->last_event + 1)
			c->ordered = false;
		c->last_event = m->num;
		c->got++;
		b->delivered++;
		if (b->send_times != NULL && m->num >= 1 && m->num <= b->sent_seq) {
			double lat = now_s() - b->send_times[m->num - 1];
			if (b->measuring)
				samples_add(&b->lat, lat);
		}
		if (b->events > 0 && c->got == b->events) {
			b->nsubs_ready++;
			if (b->nsubs_ready == b->subscribers)
				event_base_loopbreak(b->base);
		}
	} else if (m->kind == M_ERROR) {
		die("subscribe failed", NULL);
	} else {
		b->inflight--;
		if (b->inflight == 0 && b->stopping == false && b->t0 == 0)
			event_base_loopbreak(b->base);
	}
}

static void
subscribers_start(struct bench *b)
{
	b->subs = calloc((size_t)b->subscribers + 1, sizeof *b->subs);
	for (int i = 0; i < b->subscribers; i++)
		b->subs[i] = conn_new(b, sub_cb, i);
	setup_conns(b, b->subs, b->subscribers, "obs");
	if (b->subscribers == 0)
		return;
	b->inflight = b->subscribers;
	for (int i = 0; i < b->subscribers; i++) {
		if (b->backend == B_RV)
			rv_call(b->subs[i], "subscribe", "{\"all\":true}");
		else if (b->backend == B_LIMIT)
			sendf(b->subs[i], "sub\n");
		else
			sendf(b->subs[i], "*2\r\n$9\r\nSUBSCRIBE\r\n$9\r\nrv:events\r\n");
	}
	dispatch(b);
}

static bool
subscribers_check(struct bench *b, long long expect)
{
	bool ok = true;

	for (int i = 0; i < b->subscribers; i++) {
		struct bconn *c = b->subs[i];
		if (!c->ordered || (expect >= 0 && c->got != expect))
			ok = false;
	}
	return ok;
}

static void
subscribers_stop(struct bench *b)
{
	for (int i = 0; i < b->subscribers; i++)
		conn_free(b->subs[i]);
	free(b->subs);
	b->subs = NULL;
}

/* ---- lifecycle ---- */

static const char *const step_from[] = {
	"", "RSS_READY", "RSS_INVITATION", "RSS_ACCEPTED", "RSS_ACCEPTED", "RSS_CONNECTED"};
static const char *const step_to[] = {"RSS_READY",    "RSS_INVITATION", "RSS_ACCEPTED",
				      "RSS_ACCEPTED", "RSS_CONNECTED",  "RSS_TERMINATED"};

static const char *const rv_methods[] = {"session.create",  "session.invite",  "session.accept",
					 "session.connect", "session.connect", "session.terminate"};

static void lifecycle_step(struct bconn *inviter);

static void
lifecycle_cb(struct bconn *c, const struct msg *m)
{
	struct bench *b = c->b;
	struct bconn *inviter = c->peer != NULL && c->step < 0 ? c->peer : c;
	double t = now_s();

	if (m->kind == M_EVENT || m->kind == M_OTHER)
		return;
	if (m->kind == M_ERROR) {
		fprintf(stderr, "%.*s\n", (int)m->len, m->text ? m->text : "");
		die("a lifecycle request failed", NULL);
	}
	if (b->measuring && t <= b->t_end) {
		samples_add(&b->lat, t - inviter->sent_at);
		b->done_requests++;
		if (inviter->step != 4) /* the first connect changes no state */
			b->done_events_sent++;
		if (inviter->step == 5)
			b->lifecycles++;
	}
	if (inviter->step == 0 && b->backend == B_RV) {
		const char *p = memmem(m->text, m->len, "\"session\":\"", 11);
		if (p == NULL)
			die("no session in create reply", NULL);
		memcpy(inviter->sid, p + 11, 32);
		inviter->sid[32] = '\0';
	}
	inviter->step = (inviter->step + 1) % 6;
	if (inviter->step == 0 && t > b->t_end) {
		b->inflight--;
		if (b->inflight == 0)
			event_base_loopbreak(b->base);
		return;
	}
	lifecycle_step(inviter);
}

static void
lifecycle_step(struct bconn *inviter)
{
	struct bench *b = inviter->b;
	struct bconn *invitee = inviter->peer;
	int k = inviter->step;
	/* Steps 2 and 4 are the invitee's. */
	struct bconn *who = (k == 2 || k == 4) ? invitee : inviter;
	char params[160];

	inviter->sent_at = now_s();
	if (b->backend == B_RV) {
		if (k == 0)
			snprintf(params, sizeof params, "{\"invitee\":\"v%d\"}", inviter->index);
		else
			snprintf(params, sizeof params, "{\"session\":\"%s\"}", inviter->sid);
		rv_call(who, rv_methods[k], params);
	} else {
		if (k == 0)
			snprintf(inviter->sid, sizeof inviter->sid, "s:%d:%lld", inviter->index,
				 inviter->next_id++);
		redis_transition(who, inviter->sid, step_from[k], step_to[k],
				 who == inviter ? "u" : "v", k != 3);
	}
}

static void
on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
	struct bench *b = arg;

	(void)fd;
	(void)what;
	if (!b->measuring && now_s() >= b->t_measure) {
		b->measuring = true;
		b->io_start = server_write_bytes(b);
		return;
	}
	if (b->measuring && b->io_end < 0 && now_s() >= b->t_end)
		b->io_end = server_write_bytes(b);
}

struct result {
	const char *scenario;
	char params[64];
	double value; /* the headline number */
	const char *unit;
	double extra[6]; /* scenario-specific */
	bool complete;
};

static void
run_lifecycle(struct bench *b, struct result *r)
{
	struct bconn **inviters = calloc((size_t)b->pairs, sizeof *inviters);
	struct bconn **invitees = calloc((size_t)b->pairs, sizeof *invitees);
	struct timeval tv = {0, 1000 * 100};
	struct event *tick;

	subscribers_start(b);
	for (int i = 0; i < b->pairs; i++) {
		inviters[i] = conn_new(b, lifecycle_cb, i);
		invitees[i] = conn_new(b, lifecycle_cb, i);
		inviters[i]->peer = invitees[i];
		invitees[i]->peer = inviters[i];
		invitees[i]->step = -1;
	}
	setup_conns(b, inviters, b->pairs, "u");
	setup_conns(b, invitees, b->pairs, "v");
	b->t0 = now_s();
	b->t_measure = b->t0 + b->warmup;
	b->t_end = b->t_measure + b->duration;
	tick = event_new(b->base, -1, EV_PERSIST, on_stop_timer, b);
	event_add(tick, &tv);
	b->inflight = b->pairs;
	for (int i = 0; i < b->pairs; i++)
		lifecycle_step(inviters[i]);
	dispatch(b);
	event_free(tick);
	qsort(b->lat.v, b->lat.n, sizeof *b->lat.v, cmp_double);
	r->scenario = "lifecycle";
	snprintf(r->params, sizeof r->params, "pairs=%d subs=%d", b->pairs, b->subscribers);
	r->value = (double)b->done_events_sent / b->duration;
	r->unit = "transitions/s";
	r->extra[0] = (double)b->done_requests / b->duration;
	r->extra[1] = (double)b->lifecycles / b->duration;
	r->extra[2] = percentile(&b->lat, 0.5) * 1e6;
	r->extra[3] = percentile(&b->lat, 0.99) * 1e6;
	r->extra[4] = percentile(&b->lat, 0.999) * 1e6;
	/* Bytes written to storage per transition in the measured window; -1: unknown. */
	if (b->io_end < 0) /* the run ended before a tick saw t_end */
		b->io_end = server_write_bytes(b);
	r->extra[5] = b->io_start >= 0 && b->io_end >= b->io_start && b->done_events_sent > 0
			      ? (double)(b->io_end - b->io_start) / (double)b->done_events_sent
			      : -1;
	r->complete = subscribers_check(b, -1);
	for (int i = 0; i < b->pairs; i++) {
		conn_free(inviters[i]);
		conn_free(invitees[i]);
	}
	free(inviters);
	free(invitees);
	subscribers_stop(b);
}

/* ---- fanout and latency: one driver creating sessions ---- */

static void driver_send(struct bconn *d);

static void
driver_cb(struct bconn *c, const struct msg *m)
{
	struct bench *b = c->b;

	if (m->kind == M_ERROR) {
		fprintf(stderr, "%.*s\n", (int)m->len, m->text ? m->text : "");
		die("a driver request failed", NULL);
	}
	if (m->kind != M_REPLY)
		return;
	b->done_requests++;
	b->inflight--;
	if (b->rate == 0 && b->sent_seq < b->events)
		driver_send(c);
	if (b->subscribers == 0 && b->done_requests == b->events)
		event_base_loopbreak(b->base);
}

/* One transition: a session creation (the cheapest way to make an event). */
static void
driver_send(struct bconn *d)
{
	struct bench *b = d->b;

	if (b->send_times != NULL)
		b->send_times[b->sent_seq] = now_s();
	b->sent_seq++;
	b->inflight++;
	if (b->backend == B_RV) {
		rv_call(d, "session.create", "{\"invitee\":\"x\"}");
	} else {
		char key[32];
		snprintf(key, sizeof key, "s:%lld", b->sent_seq);
		redis_transition(d, key, "", "RSS_READY", "drv", 1);
	}
}

static void
run_fanout(struct bench *b, struct result *r)
{
	struct bconn *d;
	double t;

	b->rate = 0; /* closed loop: keep 'depth' requests in flight */
	subscribers_start(b);
	d = conn_new(b, driver_cb, 0);
	setup_conns(b, &d, 1, "drv");
	b->t0 = t = now_s();
	if (b->backend == B_LIMIT) {
		/* The limit server writes every event itself: one request for all. */
		b->sent_seq = b->events;
		sendf(d, "go %ld\n", b->events);
		flush_all();
	}
	for (int i = 0; b->backend != B_LIMIT && i < b->depth && b->sent_seq < b->events; i++)
		driver_send(d);
	dispatch(b);
	t = now_s() - t;
	r->scenario = "fanout";
	snprintf(r->params, sizeof r->params, "subs=%d depth=%d", b->subscribers, b->depth);
	r->value = (double)b->delivered / t;
	r->unit = "deliveries/s";
	r->extra[0] = (double)b->events / t;
	r->extra[1] = (double)b->delivered;
	r->complete = subscribers_check(b, b->events);
	conn_free(d);
	subscribers_stop(b);
}

static void
latency_tick(evutil_socket_t fd, short what, void *arg)
{
	struct bconn *d = arg;
	struct bench *b = d->b;
	double t = now_s();

	(void)fd;
	(void)what;
	b->measuring = t >= b->t_measure;
	if (t >= b->t_end) {
		if (b->events == 0) {
			b->events = b->sent_seq; /* subscribers now know when they are done */
			event_del(b->tick);
			for (int i = 0; i < b->subscribers; i++)
				if (b->subs[i]->got == b->events)
					b->nsubs_ready++;
			if (b->nsubs_ready == b->subscribers)
				event_base_loopbreak(b->base);
		}
		return;
	}
	long long target = (long long)((t - b->t0) * b->rate);
	while (b->sent_seq < target)
		driver_send(d);
	flush_all();
}

static void
run_latency(struct bench *b, struct result *r)
{
	/* One request per tick, evenly spaced (the base has precise timers): a
	 * fixed rate, not bursts of a millisecond's worth. */
	long tick_us = b->rate >= 50000 ? 20 : 1000000 / b->rate;
	struct timeval tv = {0, tick_us};
	struct bconn *d;
	size_t max = (size_t)((b->warmup + b->duration + 1) * b->rate) + 1024;

	b->send_times = calloc(max, sizeof *b->send_times);
	subscribers_start(b);
	d = conn_new(b, driver_cb, 0);
	setup_conns(b, &d, 1, "drv");
	b->events = 0;
	b->t0 = now_s();
	b->t_measure = b->t0 + b->warmup;
	b->t_end = b->t_measure + b->duration;
	b->tick = event_new(b->base, -1, EV_PERSIST, latency_tick, d);
	event_add(b->tick, &tv);
	dispatch(b);
	event_free(b->tick);
	qsort(b->lat.v, b->lat.n, sizeof *b->lat.v, cmp_double);
	r->scenario = "latency";
	snprintf(r->params, sizeof r->params, "rate=%d subs=%d", b->rate, b->subscribers);
	r->value = percentile(&b->lat, 0.99) * 1e6;
	r->unit = "us p99";
	r->extra[0] = percentile(&b->lat, 0.5) * 1e6;
	r->extra[1] = percentile(&b->lat, 0.999) * 1e6;
	r->extra[2] = (double)b->sent_seq / (now_s() - b->t0);
	r->complete = subscribers_check(b, b->events);
	conn_free(d);
	subscribers_stop(b);
	free(b->send_times);
	b->send_times = NULL;
}

/* ---- memory ---- */

static void
run_sessions(struct bench *b, struct result *r)
{
	struct bconn *d = conn_new(b, driver_cb, 0);
	long before, after;

	setup_conns(b, &d, 1, "drv");
	before = server_rss(b);
	b->events = b->sessions;
	b->subscribers = 0;
	b->rate = 0;
	for (int i = 0; i < b->depth && b->sent_seq < b->events; i++)
		driver_send(d);
	dispatch(b);
	after = server_rss(b);
	r->scenario = "sessions";
	snprintf(r->params, sizeof r->params, "sessions=%ld", b->sessions);
	r->value = (double)(after - before) / (double)b->sessions;
	r->unit = "bytes/session";
	r->extra[0] = (double)after;
	r->complete = b->done_requests == b->sessions;
	conn_free(d);
}

/* The bytes of every file in the server's directory. */
static long long dir_bytes;

static int
add_size(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (flag == FTW_F)
		dir_bytes += sb->st_size;
	return 0;
}

/* Whether one request on a new connection gets a proper answer (not Redis's -LOADING). */
static bool
server_answers(struct bench *b)
{
	static const char rv[] = "{\"jsonrpc\":\"2.0\",\"method\":\"hello\",\"params\":{\"user\":"
				 "\"probe\"},\"id\":1}\n";
	static const char redis[] = "*1\r\n$4\r\nPING\r\n";
	char buf[512];
	int fd = connect_port(b->port);
	ssize_t n;
	bool ok = false;

	if (fd < 0)
		return false;
	if (b->backend == B_RV)
		ok = write(fd, rv, sizeof rv - 1) == (ssize_t)sizeof rv - 1;
	else
		ok = write(fd, redis, sizeof redis - 1) == (ssize_t)sizeof redis - 1;
	n = ok ? read(fd, buf, sizeof buf - 1) : -1;
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return b->backend == B_RV ? strstr(buf, "\"result\"") != NULL
				  : strncmp(buf, "+PONG", 5) == 0;
}

/*
 * recovery: M sessions created, the server killed (SIGKILL), and started
 * again on the files it left: seconds until it answers a request.
 */
static void
run_recovery(struct bench *b, struct result *r)
{
	int status;
	double t;

	if (b->state_dir[0] == '\0')
		die("recovery needs --durability normal or strict", NULL);
	run_sessions(b, r);
	kill(b->server, SIGKILL);
	waitpid(b->server, &status, 0);
	dir_bytes = 0;
	nftw(b->state_dir, add_size, 16, FTW_PHYS);
	b->reuse_dir = true;
	server_start(b);
	while (!server_answers(b))
		usleep(5000);
	t = now_s() - b->started_at;
	r->scenario = "recovery";
	snprintf(r->params, sizeof r->params, "sessions=%ld", b->sessions);
	r->value = t * 1e6;
	r->unit = "us to recover";
	r->extra[0] = (double)dir_bytes;
	r->extra[1] = (double)server_rss(b);
}

static void
idle_cb(struct bconn *c, const struct msg *m)
{
	(void)m;
	if (--c->b->inflight == 0)
		event_base_loopbreak(c->b->base);
}

static void
run_connections(struct bench *b, struct result *r)
{
	struct bconn **cs = calloc((size_t)b->conns, sizeof *cs);
	long before = server_rss(b), after;

	for (long i = 0; i < b->conns; i++) {
		cs[i] = conn_new(b, idle_cb, (int)i);
		if (b->backend == B_RV)
			sendf(cs[i],
			      "{\"jsonrpc\":\"2.0\",\"method\":\"hello\",\"params\":{\"user\":"
			      "\"idle%ld\"},"
			      "\"id\":1}\n",
			      i);
		else
			sendf(cs[i], "*1\r\n$4\r\nPING\r\n");
	}
	b->inflight = b->conns;
	dispatch(b);
	usleep(200000);
	after = server_rss(b);
	r->scenario = "connections";
	snprintf(r->params, sizeof r->params, "connections=%ld", b->conns);
	r->value = (double)(after - before) / (double)b->conns;
	r->unit = "bytes/connection";
	r->extra[0] = (double)after;
	r->complete = b->inflight == 0;
	for (long i = 0; i < b->conns; i++)
		conn_free(cs[i]);
	free(cs);
}

/* ---- running and reporting ---- */

static void
print_result(enum backend be, const struct result *r)
{
	if (opt_json) {
		printf("{\"scenario\":\"%s\",\"server\":\"%s\",\"params\":\"%s\",\"value\":%.1f,"
		       "\"unit\":\"%s\",\"extra\":[%.1f,%.1f,%.1f,%.1f,%.1f,%.1f],\"complete\":%s}"
		       "\n",
		       r->scenario, backend_names[be], r->params, r->value, r->unit, r->extra[0],
		       r->extra[1], r->extra[2], r->extra[3], r->extra[4], r->extra[5],
		       r->complete ? "true" : "false");
	} else if (strcmp(r->scenario, "lifecycle") == 0) {
		printf("%-11s %-11s %-22s %10.0f %s (requests %.0f/s, lifecycles %.0f/s, p50 %.0f "
		       "us, "
		       "p99 %.0f us, p999 %.0f us, %.0f B written per transition)%s\n",
		       r->scenario, backend_names[be], r->params, r->value, r->unit, r->extra[0],
		       r->extra[1], r->extra[2], r->extra[3], r->extra[4], r->extra[5],
		       r->complete ? "" : " INCOMPLETE");
	} else if (strcmp(r->scenario, "fanout") == 0) {
		printf("%-11s %-11s %-22s %10.0f %s (events %.0f/s, %.0f delivered, %s)\n",
		       r->scenario, backend_names[be], r->params, r->value, r->unit, r->extra[0],
		       r->extra[1], r->complete ? "complete and in order" : "INCOMPLETE");
	} else if (strcmp(r->scenario, "recovery") == 0) {
		printf("%-11s %-11s %-22s %10.2f s to answer after SIGKILL (files %.1f MiB, RSS "
		       "%.1f "
		       "MiB)%s\n",
		       r->scenario, backend_names[be], r->params, r->value / 1e6,
		       r->extra[0] / 1048576.0, r->extra[1] / 1048576.0,
		       r->complete ? "" : " INCOMPLETE");
	} else if (strcmp(r->scenario, "latency") == 0) {
		printf("%-11s %-11s %-22s %10.0f %s (p50 %.0f us, p999 %.0f us, sent %.0f/s, %s)\n",
		       r->scenario, backend_names[be], r->params, r->value, r->unit, r->extra[0],
		       r->extra[1], r->extra[2], r->complete ? "complete" : "INCOMPLETE");
	} else {
		printf("%-11s %-11s %-22s %10.0f %s (server RSS %.1f MiB)%s\n", r->scenario,
		       backend_names[be], r->params, r->value, r->unit, r->extra[0] / 1048576.0,
		       r->complete ? "" : " INCOMPLETE");
	}
	fflush(stdout);
}

static void
run_one(const struct bench *tmpl, const char *scenario, struct result *r)
{
	struct bench b = *tmpl;
	struct event_config *cfg;

	memset(r, 0, sizeof *r);
	/* Precise timers (timerfd) so that latency's open-loop ticks are not rounded to 1 ms. */
	cfg = event_config_new();
	if (cfg == NULL || event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) != 0 ||
	    (b.base = event_base_new_with_config(cfg)) == NULL)
		die("cannot create an event base", NULL);
	event_config_free(cfg);
	b.io_start = b.io_end = -1;
	server_start(&b);
	if (strcmp(scenario, "lifecycle") == 0)
		run_lifecycle(&b, r);
	else if (strcmp(scenario, "fanout") == 0)
		run_fanout(&b, r);
	else if (strcmp(scenario, "latency") == 0)
		run_latency(&b, r);
	else if (strcmp(scenario, "sessions") == 0)
		run_sessions(&b, r);
	else if (strcmp(scenario, "recovery") == 0)
		run_recovery(&b, r);
	else if (strcmp(scenario, "connections") == 0)
		run_connections(&b, r);
	else
		die("unknown scenario: ", scenario);
	server_stop(&b);
	free(b.lat.v);
	event_base_free(b.base);
}

static void
usage(void)
{
	printf("Usage: rendezvous-bench [OPTIONS] SCENARIO\n"
	       "Measure rendezvousd (or Redis doing the same work) on this machine.\n"
	       "Scenarios: lifecycle fanout latency sessions connections recovery\n"
	       "\n"
	       "  --server rendezvousd|redis|limit  what to measure [rendezvousd]; limit:\n"
	       "                         rendezvous-limit, the bare-epoll fan-out limit\n"
	       "                         (fanout only)\n"
	       "  --daemon PATH          rendezvousd binary [build/daemon/rendezvousd]\n"
	       "  --redis PATH           redis-server binary [redis-server]\n"
	       "  --limit PATH           rendezvous-limit binary\n"
	       "                         [build/tests/bench/rendezvous-limit]\n"
	       "  --pairs N              lifecycle: client pairs [50]\n"
	       "  --subs N               subscribers on every event [lifecycle 0, fanout 100,\n"
	       "                         latency 10]\n"
	       "  --depth N              fanout/sessions: requests in flight [64]\n"
	       "  --events N             fanout: events to publish [2000000/subs, >= 20000]\n"
	       "  --rate N               latency: transitions per second [10000]\n"
	       "  --duration S           lifecycle/latency: measured seconds [5]\n"
	       "  --warmup S             lifecycle/latency: unmeasured seconds first [1]\n"
	       "  --sessions N           sessions, recovery: live sessions to create [1000000]\n"
	       "  --connections N        connections: idle connections [fd limit - 500]\n"
	       "  --durability memory|normal|strict\n"
	       "                         memory: nothing kept (rendezvousd --store memory,\n"
	       "                         Redis without persistence); normal: rendezvousd's\n"
	       "                         SQLite store against Redis's AOF with appendfsync\n"
	       "                         everysec; strict: --durability strict against\n"
	       "                         appendfsync always [memory]\n"
	       "  --store URL            rendezvousd on a shared store: --store URL (a Redis\n"
	       "                         the caller runs; with --durability memory)\n"
	       "  --json                 one JSON object per result\n"
	       "\n"
	       "The server runs on CPU 0 and this program on CPU 1 when there are two.\n"
	       "tests/bench/compare.sh runs every scenario against both servers.\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"server", required_argument, NULL, 'S'},
		{"daemon", required_argument, NULL, 'D'},
		{"redis", required_argument, NULL, 'R'},
		{"limit", required_argument, NULL, 'L'},
		{"pairs", required_argument, NULL, 'p'},
		{"subs", required_argument, NULL, 's'},
		{"depth", required_argument, NULL, 'd'},
		{"events", required_argument, NULL, 'e'},
		{"rate", required_argument, NULL, 'r'},
		{"duration", required_argument, NULL, 't'},
		{"warmup", required_argument, NULL, 'w'},
		{"sessions", required_argument, NULL, 'm'},
		{"connections", required_argument, NULL, 'c'},
		{"json", no_argument, NULL, 'j'},
		{"durability", required_argument, NULL, 'u'},
		{"store", required_argument, NULL, 'T'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct bench b = {.pairs = 50,
			  .subscribers = -1,
			  .depth = 64,
			  .rate = 10000,
			  .duration = 5,
			  .warmup = 1,
			  .sessions = 1000000};
	struct rlimit rl;
	struct result r;
	const char *scenario;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'S':
			if (strcmp(optarg, "redis") == 0)
				b.backend = B_REDIS;
			else if (strcmp(optarg, "limit") == 0)
				b.backend = B_LIMIT;
			else if (strcmp(optarg, "rendezvousd") != 0)
				die("--server takes rendezvousd, redis or limit, not ", optarg);
			break;
		case 'D': opt_daemon = optarg; break;
		case 'L': opt_limit = optarg; break;
		case 'R': opt_redis = optarg; break;
		case 'p': b.pairs = atoi(optarg); break;
		case 's': b.subscribers = atoi(optarg); break;
		case 'd': b.depth = atoi(optarg); break;
		case 'e': b.events = atol(optarg); break;
		case 'r': b.rate = atoi(optarg); break;
		case 't': b.duration = atof(optarg); break;
		case 'w': b.warmup = atof(optarg); break;
		case 'm': b.sessions = atol(optarg); break;
		case 'c': b.conns = atol(optarg); break;
		case 'j': opt_json = true; break;
		case 'u':
			if (strcmp(optarg, "memory") != 0 && strcmp(optarg, "normal") != 0 &&
			    strcmp(optarg, "strict") != 0)
				die("--durability takes memory, normal or strict, not ", optarg);
			opt_durability = optarg;
			break;
		case 'T': opt_store = optarg; break;
		case 'h': usage(); return 0;
		default: usage(); return 2;
		}
	}
	if (optind != argc - 1) {
		usage();
		return 2;
	}
	scenario = argv[optind];
	signal(SIGPIPE, SIG_IGN);
	pin_to(1);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (b.subscribers < 0)
		b.subscribers = strcmp(scenario, "fanout") == 0    ? 100
				: strcmp(scenario, "latency") == 0 ? 10
								   : 0;
	if (b.events == 0 && strcmp(scenario, "fanout") == 0)
		b.events = b.subscribers > 0 && 2000000 / b.subscribers > 20000
				   ? 2000000 / b.subscribers
				   : 20000;
	if (b.conns == 0)
		b.conns = rl.rlim_cur > 1000 ? (long)rl.rlim_cur - 500 : 100;
	if (b.pairs < 1 || b.depth < 1 || b.rate < 1 || b.duration <= 0)
		die("bad option value", NULL);
	run_one(&b, scenario, &r);
	print_result(b.backend, &r);
	return r.complete ? 0 : 1;
}
