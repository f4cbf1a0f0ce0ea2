/*
 * The Redis link (daemon/redis.h) against real redis-servers, started here on
 * loopback ports (and a Unix socket) and stopped by pid: addresses parsed,
 * commands answered, AUTH (right and wrong), SELECT, scripts loaded again on
 * NOSCRIPT, a stopped server's late replies failed within the timeout and
 * the link back once it resumes, a killed server's link back once it
 * restarts; a subscriber's messages, its silence bound, its channels
 * subscribed again after a restart; a primary found through Sentinels (one
 * of them down) and followed through a failover; the transition script
 * (redis_scripts.h): applied, refused on a stale version, and 1,000 races of
 * two links on the same change with exactly one winner each and contiguous
 * event ids; the lease script (renewed, expired, given up, by Redis's clock).
 * redis-server must be installed (scripts/deps.sh does it);
 * Sentinels are redis-server --sentinel.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "check.h"
#include "redis.h"
#include "redis_scripts.h"
#include "util.h"

static struct event_base *base;
/* Where each redis-server works (a replica writes the primary's data there), removed at the end. */
static char workdir[] = "/tmp/rendezvous-test-redis-XXXXXX";

/* What a link told and what a reply was. */
struct seen {
	int ups, downs;
	char why[256];
};

struct answer {
	bool done;
	int type;
	long long integer;
	size_t elements;
	char str[256];
	char err[256];
};

static void
on_up(void *arg)
{
	((struct seen *)arg)->ups++;
}

static void
on_down(void *arg, const char *why)
{
	struct seen *s = arg;

	s->downs++;
	snprintf(s->why, sizeof s->why, "%s", why);
}

static const struct redis_link_ops ops = {.on_up = on_up, .on_down = on_down};

static void
on_answer(void *arg, const redisReply *r, const char *err)
{
	struct answer *a = arg;

	a->done = true;
	if (r == NULL) {
		snprintf(a->err, sizeof a->err, "%s", err);
		return;
	}
	a->type = r->type;
	a->integer = r->integer;
	a->elements = r->elements;
	if (r->str != NULL)
		snprintf(a->str, sizeof a->str, "%.*s", (int)r->len, r->str);
	/* An array: its first integer, and its strings joined by "|". */
	for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
		const redisReply *e = r->element[i];
		size_t at = strlen(a->str);
		if (i == 0 && e->type == REDIS_REPLY_INTEGER)
			a->integer = e->integer;
		if (e->type == REDIS_REPLY_STRING)
			snprintf(a->str + at, sizeof a->str - at, "%s%.*s", at > 0 ? "|" : "",
				 (int)e->len, e->str);
	}
}

static int64_t
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Turn the loop for 10 ms. */
static void
turn_once(void)
{
	struct timeval tv = {0, 10000};

	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
}

/* Turn the loop until *flag is at least want (or ms passed); whether it got there. */
static bool
wait_for(const int *flag, int want, int ms)
{
	int64_t t0 = mono();

	while (*flag < want && mono() - t0 < ms)
		turn_once();
	return *flag >= want;
}

/* Turn the loop until *done (or ms passed); whether it came. */
static bool
wait_done(const bool *done, int ms)
{
	int64_t t0 = mono();

	while (!*done && mono() - t0 < ms)
		turn_once();
	return *done;
}

static bool
wait_answer(struct answer *a, int ms)
{
	return wait_done(&a->done, ms);
}

static int
free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		abort();
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/* Whether something accepts on 127.0.0.1:port (or the Unix socket path). */
static bool
accepts(int port, const char *path)
{
	int fd;
	bool ok;

	if (path != NULL) {
		struct sockaddr_un su = {.sun_family = AF_UNIX};
		snprintf(su.sun_path, sizeof su.sun_path, "%s", path);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		ok = fd >= 0 && connect(fd, (struct sockaddr *)&su, sizeof su) == 0;
	} else {
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		fd = socket(AF_INET, SOCK_STREAM, 0);
		ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

/* Run argv (redis-server ...) and wait until it accepts on 127.0.0.1:port (or path). */
static pid_t
spawn(const char *const *argv, int port, const char *path)
{
	pid_t pid = fork();

	if (pid < 0)
		abort();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (int i = 0; i < 1000 && !accepts(port, path); i++) {
		int status;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			fprintf(stderr,
				"test_redis: redis-server did not start (is it installed?)\n");
			exit(1);
		}
		usleep(10000);
	}
	return pid;
}

/* A redis-server on 127.0.0.1:port (and path, if given), extra arguments after; its pid. */
static pid_t
redis_start(int port, const char *path, const char *const *extra)
{
	const char *argv[32];
	char p[16], dir[sizeof workdir + 16];
	int n = 0;

	snprintf(p, sizeof p, "%d", port);
	snprintf(dir, sizeof dir, "%s/%d", workdir, port);
	mkdir(dir, 0700);
	argv[n++] = "redis-server";
	argv[n++] = "--dir";
	argv[n++] = dir;
	argv[n++] = "--port";
	argv[n++] = p;
	argv[n++] = "--bind";
	argv[n++] = "127.0.0.1";
	argv[n++] = "--save";
	argv[n++] = "";
	argv[n++] = "--appendonly";
	argv[n++] = "no";
	if (path != NULL) {
		argv[n++] = "--unixsocket";
		argv[n++] = path;
	}
	for (int i = 0; extra != NULL && extra[i] != NULL && n < 30; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;
	return spawn(argv, port, path);
}

static void
redis_stop(pid_t pid)
{
	kill(pid, SIGCONT);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static struct redis_link *
link_to(const char *url, const char *password, int64_t timeout_ms, struct seen *s)
{
	struct redis_addr a;
	char err[256];

	CHECK_MSG(redis_addr_parse(url, &a, err, sizeof err) == 0, "%s", err);
	return redis_link_new(base, &a, password, timeout_ms, &ops, s);
}

static int
command(struct redis_link *l, struct answer *a, int argc, const char **argv)
{
	size_t lens[16];

	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	memset(a, 0, sizeof *a);
	return redis_link_command(l, on_answer, a, argc, argv, lens);
}

static void
test_parse(void)
{
	static const struct {
		const char *url, *host, *path, *user;
		int port, db;
	} good[] = {
		{"redis://127.0.0.1:6380", "127.0.0.1", "", "", 6380, 0},
		{"redis://localhost", "localhost", "", "", 6379, 0},
		{"redis://app@db.example:7000/3", "db.example", "", "app", 7000, 3},
		{"redis://[::1]:6379/2", "::1", "", "", 6379, 2},
		{"redis://h/", "h", "", "", 6379, 0},
		{"redis+unix:///run/redis/redis.sock", "", "/run/redis/redis.sock", "", 6379, 0},
		{"redis+unix:///tmp/r.sock?db=5", "", "/tmp/r.sock", "", 6379, 5},
	};
	static const char *const bad[] = {
		"http://h:1",
		"redis://",
		"redis://:6379",
		"redis://h:0",
		"redis://h:65536",
		"redis://h:x",
		"redis://h/x",
		"redis://[::1",
		"redis://@h",
		"redis+unix://rel.sock",
		"redis+unix:///tmp/r.sock?x=1",
		"redis+unix:///tmp/r.sock?db=",
		"redis://h:6379/1/2",
	};
	struct redis_addr a;
	char err[256], buf[300];

	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		int r = redis_addr_parse(good[i].url, &a, err, sizeof err);
		CHECK_MSG(r == 0 && strcmp(a.host, good[i].host) == 0 &&
				  strcmp(a.path, good[i].path) == 0 &&
				  strcmp(a.user, good[i].user) == 0 && a.port == good[i].port &&
				  a.db == good[i].db,
			  "%s: %s", good[i].url,
			  r == 0 ? redis_addr_format(&a, buf, sizeof buf) : err);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		CHECK_MSG(redis_addr_parse(bad[i], &a, err, sizeof err) != 0 && err[0] != '\0',
			  "%s was taken", bad[i]);
}

/* Commands, SELECT, scripts and NOSCRIPT on one server. */
static void
test_commands(void)
{
	int port = free_port();
	pid_t pid = redis_start(port, NULL, NULL);
	char url[64];
	struct seen s0 = {0}, s3 = {0};
	struct redis_link *l0, *l3;
	struct redis_link_stats st;
	struct redis_script echo, incr;
	struct answer a;
	const char *argv[4];
	size_t lens[2];

	snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
	l0 = link_to(url, NULL, 2000, &s0);
	snprintf(url, sizeof url, "redis://127.0.0.1:%d/3", port);
	l3 = link_to(url, NULL, 2000, &s3);
	CHECK(l0 != NULL && l3 != NULL);
	CHECK_MSG(wait_for(&s0.ups, 1, 10000) && wait_for(&s3.ups, 1, 10000), "not up: %s %s",
		  s0.why, s3.why);

	argv[0] = "SET", argv[1] = "k", argv[2] = "in-db-3";
	CHECK(command(l3, &a, 3, argv) == 0 && wait_answer(&a, 10000));
	CHECK_MSG(a.type == REDIS_REPLY_STATUS && strcmp(a.str, "OK") == 0, "SET: %d %s %s", a.type,
		  a.str, a.err);
	argv[0] = "GET", argv[1] = "k";
	CHECK(command(l3, &a, 2, argv) == 0 && wait_answer(&a, 10000));
	CHECK(a.type == REDIS_REPLY_STRING && strcmp(a.str, "in-db-3") == 0);
	CHECK(command(l0, &a, 2, argv) == 0 && wait_answer(&a, 10000));
	CHECK_MSG(a.type == REDIS_REPLY_NIL, "db 0 sees db 3's key: %d %s", a.type, a.str);
	argv[0] = "NOSUCHCOMMAND";
	CHECK(command(l0, &a, 1, argv) == 0 && wait_answer(&a, 10000));
	CHECK(a.type == REDIS_REPLY_ERROR && a.err[0] == '\0');

	/* Scripts: loaded at connect (and now, for one added while up); NOSCRIPT reloads. */
	redis_script_init(&echo, "return ARGV[1] .. '!'");
	redis_script_init(&incr, "return redis.call('INCRBY', KEYS[1], ARGV[1])");
	CHECK(strlen(echo.sha) == 40);
	CHECK(redis_link_add_script(l0, &echo) == 0);
	CHECK(redis_link_add_script(l0, &incr) == 0);
	argv[0] = "hi";
	lens[0] = 2;
	memset(&a, 0, sizeof a);
	CHECK(redis_link_eval(l0, &echo, on_answer, &a, 0, 1, argv, lens) == 0 &&
	      wait_answer(&a, 10000));
	CHECK_MSG(a.type == REDIS_REPLY_STRING && strcmp(a.str, "hi!") == 0, "%d %s %s", a.type,
		  a.str, a.err);
	argv[0] = "SCRIPT", argv[1] = "FLUSH";
	CHECK(command(l0, &a, 2, argv) == 0 && wait_answer(&a, 10000));
	argv[0] = "counter", argv[1] = "5";
	lens[0] = 7, lens[1] = 1;
	memset(&a, 0, sizeof a);
	CHECK(redis_link_eval(l0, &incr, on_answer, &a, 1, 2, argv, lens) == 0 &&
	      wait_answer(&a, 10000));
	CHECK_MSG(a.type == REDIS_REPLY_INTEGER && a.integer == 5, "%d %lld %s %s", a.type,
		  a.integer, a.str, a.err);
	redis_link_stats(l0, &st);
	CHECK_MSG(st.noscript == 1 && st.connects == 1 && st.in_flight == 0,
		  "noscript %llu connects %llu in flight %zu", (unsigned long long)st.noscript,
		  (unsigned long long)st.connects, st.in_flight);

	redis_link_free(l0);
	redis_link_free(l3);
	CHECK(s0.downs == 0 && s3.downs == 0);
	redis_stop(pid);
}

/* AUTH: the right password, with and without the user; a wrong one is told. */
static void
test_auth(void)
{
	static const char *const extra[] = {"--requirepass", "s3cret", NULL};
	int port = free_port();
	pid_t pid = redis_start(port, NULL, extra);
	char url[64];
	struct seen ok = {0}, user = {0}, wrong = {0}, none = {0};
	struct redis_link *l1, *l2, *l3, *l4;

	snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
	l1 = link_to(url, "s3cret", 2000, &ok);
	l3 = link_to(url, "nope", 2000, &wrong);
	l4 = link_to(url, NULL, 2000, &none);
	snprintf(url, sizeof url, "redis://default@127.0.0.1:%d", port);
	l2 = link_to(url, "s3cret", 2000, &user);
	CHECK(wait_for(&ok.ups, 1, 10000) && wait_for(&user.ups, 1, 10000));
	CHECK(wait_for(&wrong.downs, 1, 10000) && wait_for(&none.downs, 1, 10000));
	CHECK_MSG(wrong.ups == 0 && strstr(wrong.why, "WRONGPASS") != NULL, "wrong password: %s",
		  wrong.why);
	/* Without a password, the PING is refused. */
	CHECK_MSG(none.ups == 0 && strstr(none.why, "NOAUTH") != NULL, "no password: %s", none.why);
	redis_link_free(l1);
	redis_link_free(l2);
	redis_link_free(l3);
	redis_link_free(l4);
	redis_stop(pid);
}

/*
 * A stopped server: the reply awaited fails within the timeout, the link
 * goes down, commands are refused while it is, and it comes back once the
 * server resumes. A killed server: the same once it restarts.
 */
static void
test_outages(void)
{
	int port = free_port();
	pid_t pid = redis_start(port, NULL, NULL);
	char url[64];
	struct seen s = {0};
	struct redis_link *l;
	struct redis_link_stats st;
	struct answer a;
	const char *argv[2] = {"PING", NULL};
	int64_t t0, took;

	snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
	l = link_to(url, NULL, 300, &s);
	CHECK(wait_for(&s.ups, 1, 10000));

	kill(pid, SIGSTOP);
	t0 = mono();
	CHECK(command(l, &a, 1, argv) == 0 && wait_answer(&a, 10000));
	took = mono() - t0;
	CHECK_MSG(a.err[0] != '\0' && strstr(a.err, "no reply within 300 ms") != NULL,
		  "a stopped server's reply: %d %s %s", a.type, a.str, a.err);
	CHECK_MSG(took >= 250, "failed after %lld ms, before the timeout", (long long)took);
	CHECK(wait_for(&s.downs, 1, 10000) && !redis_link_up(l));
	CHECK(command(l, &a, 1, argv) == -1);
	kill(pid, SIGCONT);
	CHECK_MSG(wait_for(&s.ups, 2, 20000), "not back after SIGCONT: %s", s.why);
	CHECK(command(l, &a, 1, argv) == 0 && wait_answer(&a, 10000) &&
	      a.type == REDIS_REPLY_STATUS && strcmp(a.str, "PONG") == 0);

	redis_stop(pid);
	CHECK(wait_for(&s.downs, 2, 10000));
	pid = redis_start(port, NULL, NULL);
	CHECK_MSG(wait_for(&s.ups, 3, 20000), "not back after a restart: %s", s.why);
	CHECK(command(l, &a, 1, argv) == 0 && wait_answer(&a, 10000) && strcmp(a.str, "PONG") == 0);
	redis_link_stats(l, &st);
	CHECK_MSG(st.connects == 3 && st.disconnects == 2 && st.timeouts >= 1,
		  "connects %llu disconnects %llu timeouts %llu", (unsigned long long)st.connects,
		  (unsigned long long)st.disconnects, (unsigned long long)st.timeouts);

	/* Closing the link fails what is in flight. */
	kill(pid, SIGSTOP);
	CHECK(command(l, &a, 1, argv) == 0);
	redis_link_free(l);
	CHECK_MSG(a.done && strcmp(a.err, "link closed") == 0, "closing: %s", a.err);
	redis_stop(pid);
}

/* What a subscriber received. */
struct inbox {
	int count;
	char last[64], channel[32];
};

static void
on_message(void *arg, const char *channel, const char *data, size_t len)
{
	struct inbox *in = arg;

	in->count++;
	snprintf(in->last, sizeof in->last, "%.*s", (int)len, data);
	snprintf(in->channel, sizeof in->channel, "%s", channel);
}

static void
publish(struct redis_link *l, const char *channel, const char *msg)
{
	struct answer a;
	const char *argv[3] = {"PUBLISH", channel, msg};

	CHECK(command(l, &a, 3, argv) == 0 && wait_answer(&a, 10000));
}

/* Turn the loop for ms, publishing a heartbeat every 100 ms when hb is not NULL. */
static void
turn(int ms, struct redis_link *hb)
{
	int64_t t0 = mono(), last = 0;

	while (mono() - t0 < ms) {
		if (hb != NULL && mono() - last >= 100) {
			publish(hb, "rv:hb", "beat");
			last = mono();
		}
		turn_once();
	}
}

/*
 * A subscriber: up once its channels are confirmed, messages in order on
 * the right channel, commands refused; with a silence bound it stays up
 * while heartbeats come and is remade when they stop; after the server
 * restarts it subscribes again.
 */
static void
test_subscriber(void)
{
	int port = free_port();
	pid_t pid = redis_start(port, NULL, NULL);
	char url[64];
	struct seen sc = {0}, ss = {0};
	struct inbox events = {0}, beats = {0};
	struct redis_link *l, *sub;
	struct redis_link_stats st;
	struct answer a;
	const char *argv[1] = {"PING"};

	snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
	l = link_to(url, NULL, 2000, &sc);
	sub = link_to(url, NULL, 2000, &ss);
	CHECK(redis_link_subscribe(sub, "rv:events", on_message, &events) == 0);
	CHECK(redis_link_subscribe(sub, "rv:hb", on_message, &beats) == 0);
	CHECK_MSG(wait_for(&sc.ups, 1, 10000) && wait_for(&ss.ups, 1, 10000), "not up: %s %s",
		  sc.why, ss.why);
	CHECK(command(sub, &a, 1, argv) == -1);

	publish(l, "rv:events", "one");
	publish(l, "rv:other", "nobody listens");
	publish(l, "rv:events", "two");
	CHECK(wait_for(&events.count, 2, 10000));
	CHECK_MSG(events.count == 2 && strcmp(events.last, "two") == 0 &&
			  strcmp(events.channel, "rv:events") == 0 && beats.count == 0,
		  "%d messages, last %s on %s", events.count, events.last, events.channel);

	/* Silence allowed: 500 ms. Heartbeats every 100 ms keep it up... */
	redis_link_expect(sub, 500);
	turn(1500, l);
	CHECK_MSG(ss.downs == 0 && beats.count >= 5, "downs %d, beats %d: %s", ss.downs,
		  beats.count, ss.why);
	/* ...without them it is remade. */
	CHECK(wait_for(&ss.downs, 1, 10000));
	CHECK_MSG(strstr(ss.why, "no message within 500 ms") != NULL, "%s", ss.why);
	redis_link_expect(sub, 0);
	CHECK_MSG(wait_for(&ss.ups, 2, 10000), "not back: %s", ss.why);

	/* A restarted server: the channels are subscribed again. */
	redis_stop(pid);
	CHECK(wait_for(&ss.downs, 2, 10000));
	pid = redis_start(port, NULL, NULL);
	CHECK_MSG(wait_for(&ss.ups, 3, 20000) && wait_for(&sc.ups, 2, 20000), "not back: %s %s",
		  ss.why, sc.why);
	publish(l, "rv:events", "three");
	CHECK(wait_for(&events.count, 3, 10000) && strcmp(events.last, "three") == 0);
	redis_link_stats(sub, &st);
	CHECK_MSG(st.messages == (uint64_t)(events.count + beats.count) && st.timeouts >= 1,
		  "messages %llu, timeouts %llu", (unsigned long long)st.messages,
		  (unsigned long long)st.timeouts);
	redis_link_free(sub);
	redis_link_free(l);
	redis_stop(pid);
}

/* Send a command and wait for its answer (into a); whether one came. */
static bool
ask(struct redis_link *l, struct answer *a, int argc, const char **argv)
{
	return command(l, a, argc, argv) == 0 && wait_answer(a, 10000);
}

/* Ask until ok(answer), or 30 s passed. */
static bool
poll_until(struct redis_link *l, int argc, const char **argv, bool (*ok)(const struct answer *))
{
	for (int i = 0; i < 300; i++) {
		struct answer a;
		if (ask(l, &a, argc, argv) && ok(&a))
			return true;
		turn(100, NULL);
	}
	return false;
}

static bool
replica_in_sync(const struct answer *a)
{
	return strstr(a->str, "master_link_status:up") != NULL;
}

static bool
knows_a_replica(const struct answer *a)
{
	return a->type == REDIS_REPLY_ARRAY && a->elements >= 1;
}

/*
 * Sentinel: a primary, a replica, three Sentinels (and an address where
 * none is): the link finds the primary, and after a failover follows the
 * new one, which has the data.
 */
static void
test_sentinel(void)
{
	char dir[sizeof workdir + 16], url[256], where[64], want[64];
	char conf[3][160], primary[16];
	int p1 = free_port(), p2 = free_port(), sp[3], dead = free_port();
	const char *replicaof[] = {"--replicaof", "127.0.0.1", primary, NULL};
	pid_t pids[5];
	struct seen sl = {0}, sr = {0}, ss = {0};
	struct redis_link *l, *replica, *sentinel;
	struct answer a;
	const char *info[2] = {"INFO", "replication"};
	const char *replicas[3] = {"SENTINEL", "replicas", "mymaster"};
	const char *failover[3] = {"SENTINEL", "failover", "mymaster"};

	snprintf(dir, sizeof dir, "%s/sentinels", workdir);
	if (mkdir(dir, 0700) != 0)
		abort();
	snprintf(primary, sizeof primary, "%d", p1);
	pids[0] = redis_start(p1, NULL, NULL);
	pids[1] = redis_start(p2, NULL, replicaof);
	snprintf(url, sizeof url, "redis://127.0.0.1:%d", p2);
	replica = link_to(url, NULL, 2000, &sr);
	CHECK(wait_for(&sr.ups, 1, 10000));
	CHECK_MSG(poll_until(replica, 2, info, replica_in_sync), "the replica never synced");
	for (int i = 0; i < 3; i++) {
		FILE *f;
		const char *argv[4] = {"redis-server", conf[i], "--sentinel", NULL};

		sp[i] = free_port();
		snprintf(conf[i], sizeof conf[i], "%s/sentinel-%d.conf", dir, i);
		f = fopen(conf[i], "w");
		if (f == NULL)
			abort();
		fprintf(f,
			"port %d\nbind 127.0.0.1\ndir %s\n"
			"sentinel monitor mymaster 127.0.0.1 %d 2\n"
			"sentinel down-after-milliseconds mymaster 1000\n"
			"sentinel failover-timeout mymaster 5000\n",
			sp[i], dir, p1);
		fclose(f);
		pids[2 + i] = spawn(argv, sp[i], NULL);
	}
	snprintf(url, sizeof url, "redis://127.0.0.1:%d", sp[0]);
	sentinel = link_to(url, NULL, 2000, &ss);
	CHECK(wait_for(&ss.ups, 1, 10000));

	snprintf(url, sizeof url,
		 "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d/mymaster",
		 dead, sp[0], sp[1], sp[2]);
	l = link_to(url, NULL, 2000, &sl);
	CHECK_MSG(wait_for(&sl.ups, 1, 20000), "not up: %s", sl.why);
	snprintf(want, sizeof want, "127.0.0.1:%d", p1);
	CHECK_MSG(strcmp(redis_link_where(l, where, sizeof where), want) == 0, "at %s, not %s",
		  where, want);
	{
		const char *set[3] = {"SET", "k", "before the failover"};
		CHECK(ask(l, &a, 3, set) && strcmp(a.str, "OK") == 0);
	}

	/* The Sentinels must know the replica before they can promote it. */
	CHECK_MSG(poll_until(sentinel, 3, replicas, knows_a_replica), "no replica known");
	/* Known, but not yet a candidate until the Sentinel has read it itself (NOGOODSLAVE). */
	for (int i = 0; i < 300; i++) {
		if (!ask(sentinel, &a, 3, failover) || a.type == REDIS_REPLY_STATUS ||
		    strstr(a.str, "NOGOODSLAVE") == NULL)
			break;
		turn(100, NULL);
	}
	CHECK_MSG(a.type == REDIS_REPLY_STATUS, "SENTINEL failover: %s %s", a.str, a.err);
	CHECK_MSG(wait_for(&sl.downs, 1, 30000), "the link never noticed the failover");
	CHECK_MSG(wait_for(&sl.ups, 2, 30000), "not back after the failover: %s", sl.why);
	snprintf(want, sizeof want, "127.0.0.1:%d", p2);
	CHECK_MSG(strcmp(redis_link_where(l, where, sizeof where), want) == 0,
		  "at %s after the failover, not %s", where, want);
	{
		const char *get[2] = {"GET", "k"}, *set[3] = {"SET", "k", "after"};
		CHECK(ask(l, &a, 2, get) && strcmp(a.str, "before the failover") == 0);
		CHECK_MSG(ask(l, &a, 3, set) && strcmp(a.str, "OK") == 0, "SET: %s %s", a.str,
			  a.err);
	}
	redis_link_free(l);
	redis_link_free(sentinel);
	redis_link_free(replica);
	for (int i = 4; i >= 0; i--)
		redis_stop(pids[i]);
}

/* What a transition script answered. */
struct applied {
	bool done;
	long long dropped; /* applied: the outcomes dropped to make room */
	long long ok, a, b,
		c; /* {1, position, event, version, order} or {0, version, record, order} */
	char err[128];
};

static void
on_applied(void *arg, const redisReply *r, const char *err)
{
	struct applied *ap = arg;

	ap->done = true;
	if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
		ap->ok = r->element[0]->integer; /* 2: the key exists; 3: the limit */
		snprintf(ap->err, sizeof ap->err, "%s",
			 r->element[1]->str != NULL ? r->element[1]->str : "");
		return;
	}
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
	    r->elements != 5 + (size_t)(r->element[0]->integer == 1)) {
		snprintf(ap->err, sizeof ap->err, "%s",
			 err != NULL                   ? err
			 : r != NULL && r->str != NULL ? r->str
						       : "not an array of 5 (6 when applied)");
		return;
	}
	ap->dropped = r->element[0]->integer == 1 ? r->element[5]->integer : 0;
	ap->ok = r->element[0]->integer;
	ap->a = r->element[1]->integer;
	ap->b = r->element[2]->type == REDIS_REPLY_INTEGER ? r->element[2]->integer : 0;
	ap->c = r->element[3]->integer;
	if (ap->ok == 0 && r->element[2]->type == REDIS_REPLY_STRING)
		snprintf(ap->err, sizeof ap->err, "%s", r->element[2]->str);
}

/*
 * Run the transition script for session sid from version 'from' on l
 * (answer later into ap); event: whether the change has an event.
 */
static const char *limit = ""; /* live sessions alice may have ("": no limit) */
/* A change that ends its session: session.outcome's params around the event id, or NULL. */
static const char *outcome_before, *outcome_after;
static const char *max_outcomes = "0";

static int
transition_keyed(struct redis_link *l, const char *sid, long long from, const char *record,
		 bool event, const char *key, struct applied *ap)
{
	char skey[64], ver[24];
	const char *argv[32];
	size_t lens[32];
	int n = 0;

	snprintf(skey, sizeof skey, "rv:s:%s", sid);
	snprintf(ver, sizeof ver, "%lld", from);
	argv[n++] = skey;
	argv[n++] = "rv:ev";
	argv[n++] = "rv:fs";
	argv[n++] = "rv:log";
	argv[n++] = "rv:sessions";
	argv[n++] = key != NULL ? key : "rv:k:";
	argv[n++] = "rv:live:alice";
	argv[n++] = "rv:od:alice";
	argv[n++] = "rv:o:alice";
	argv[n++] = "rv:od:bob";
	argv[n++] = "rv:o:bob";
	argv[n++] = ver;
	argv[n++] = record;
	argv[n++] = event ? "{\"event\":" : "";
	argv[n++] = event ? "}\n" : "";
	argv[n++] = "";
	argv[n++] = sid;
	argv[n++] = "100";
	argv[n++] = "rv:events";
	argv[n++] = "t1";
	argv[n++] = key != NULL ? "p kept" : "";
	argv[n++] = "60000";
	argv[n++] = limit;
	argv[n++] = from == 0 ? "+" : outcome_before != NULL ? "-" : "";
	argv[n++] = outcome_before != NULL ? outcome_before : "";
	argv[n++] = outcome_after != NULL ? outcome_after : "";
	argv[n++] = "1000000"; /* when it ended */
	argv[n++] = "60000";   /* outcomes are kept so long */
	argv[n++] = max_outcomes;
	argv[n++] = "1"; /* bob, the invitee, keeps them too */
	for (int i = 0; i < n; i++)
		lens[i] = strlen(argv[i]);
	memset(ap, 0, sizeof *ap);
	return redis_link_eval(l, &redis_script_transition, on_applied, ap, 11, n, argv, lens);
}

static int
transition(struct redis_link *l, const char *sid, long long from, const char *record, bool event,
	   struct applied *ap)
{
	return transition_keyed(l, sid, from, record, event, NULL, ap);
}

static bool
wait_applied(struct applied *ap)
{
	return wait_done(&ap->done, 10000);
}

/* The outcomes script for bob's device at now: a hello, or a read. */
static bool
bob_outcomes(struct redis_link *l, const char *device, const char *now, bool hello,
	     struct answer *a)
{
	const char *argv[] = {
		"EVALSHA", redis_script_outcomes.sha, "2", "rv:od:bob", "rv:o:bob", device, now,
		"60000",   hello ? "1" : "0"};

	return ask(l, a, 9, argv);
}

/* Sessions that end leave their outcome with the devices Redis knows, under the limit. */
static void
test_outcomes_script(struct redis_link *l)
{
	static const char s4[] = "0123456789abcdef0123456789abcde4",
			  s5[] = "0123456789abcdef0123456789abcde5",
			  s6[] = "0123456789abcdef0123456789abcde6";
	struct applied ap;
	struct answer a;

	CHECK(redis_link_add_script(l, &redis_script_outcomes) == 0);
	/* bob's p1 says hello; p2 never does. */
	CHECK(bob_outcomes(l, "p1", "999000", true, &a) && a.type == REDIS_REPLY_ARRAY);
	CHECK_MSG(a.elements == 1 && a.integer == 0, "hello: %zu %lld", a.elements, a.integer);
	CHECK(transition(l, s4, 0, "{}", true, &ap) == 0 && wait_applied(&ap) && ap.ok == 1);
	outcome_before = "{\"e\":";
	outcome_after = "}";
	CHECK(transition(l, s4, 1, "{\"end\":1}", true, &ap) == 0 && wait_applied(&ap));
	CHECK_MSG(ap.ok == 1, "the end: %lld %s", ap.ok, ap.err);
	{
		char want[64];
		snprintf(want, sizeof want, "{\"e\":%lld}", ap.b);
		CHECK(bob_outcomes(l, "p1", "1000001", false, &a));
		CHECK_MSG(a.elements == 2 && strcmp(a.str, want) == 0, "p1 keeps [%s], not [%s]",
			  a.str, want);
	}
	CHECK(bob_outcomes(l, "p2", "1000001", false, &a) && a.elements == 1);
	/* Learned: its field goes. */
	{
		const char *hdel[] = {"HDEL", "rv:o:bob", "0123456789abcdef0123456789abcde4\np1"};
		CHECK(ask(l, &a, 3, hdel) && a.integer == 1);
		CHECK(bob_outcomes(l, "p1", "1000001", false, &a) && a.elements == 1);
	}
	/* One outcome per user at most: a third end drops the second, counted at the hello. */
	max_outcomes = "1";
	for (int i = 0; i < 2; i++) {
		const char *sid = i == 0 ? s5 : s6;
		outcome_before = NULL;
		CHECK(transition(l, sid, 0, "{}", true, &ap) == 0 && wait_applied(&ap) &&
		      ap.ok == 1);
		outcome_before = "{\"e\":";
		CHECK(transition(l, sid, 1, "{\"end\":2}", true, &ap) == 0 && wait_applied(&ap) &&
		      ap.ok == 1);
		CHECK_MSG(ap.dropped == i, "end %d dropped %lld", i, ap.dropped);
	}
	{
		char want[64];
		snprintf(want, sizeof want, "{\"e\":%lld}", ap.b);
		CHECK(bob_outcomes(l, "p1", "1000002", true, &a));
		CHECK_MSG(a.elements == 2 && a.integer == 1 && strcmp(a.str, want) == 0,
			  "the newest kept, one dropped: %zu %lld [%s]", a.elements, a.integer,
			  a.str);
		CHECK(bob_outcomes(l, "p1", "1000003", true, &a));
		CHECK_MSG(a.integer == 0, "dropped counted once: %lld", a.integer);
	}
	outcome_before = NULL;
	outcome_after = NULL;
	max_outcomes = "0";
}

/* What the snapshot script answered (the first session and history message). */
struct snapshot {
	bool done;
	long long fs, ev;
	int nsessions, nlog;
	long long last, looked; /* the last creation order looked at, how many */
	char first[128], log_first[128], epoch[16];
};

static void
on_snapshot(void *arg, const redisReply *r, const char *err)
{
	struct snapshot *sn = arg;

	(void)err;
	sn->done = true;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements != 7)
		return;
	snprintf(sn->epoch, sizeof sn->epoch, "%s", r->element[4]->str);
	sn->last = r->element[5]->integer;
	sn->looked = r->element[6]->integer;
	sn->fs = r->element[0]->integer;
	sn->ev = r->element[1]->integer;
	sn->nsessions = (int)r->element[2]->elements;
	sn->nlog = (int)r->element[3]->elements;
	if (sn->nsessions > 0)
		snprintf(sn->first, sizeof sn->first, "%s", r->element[2]->element[0]->str);
	if (sn->nlog > 0)
		snprintf(sn->log_first, sizeof sn->log_first, "%s", r->element[3]->element[0]->str);
}

static bool
wait_snapshot(struct redis_link *l, int argc, const char **argv, struct snapshot *sn)
{
	size_t lens[16];

	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	memset(sn, 0, sizeof *sn);
	return redis_link_command(l, on_snapshot, sn, argc, argv, lens) == 0 &&
	       wait_done(&sn->done, 10000);
}

static void
test_transition_script(void)
{
	enum { RACES = 1000 };
	int port = free_port();
	pid_t pid = redis_start(port, NULL, NULL);
	char url[64], sid[40];
	struct seen s1 = {0}, s2 = {0}, ss = {0};
	struct inbox feed = {0};
	struct redis_link *n1, *n2, *sub;
	static struct applied r1[RACES], r2[RACES];
	struct applied ap;
	struct answer a;
	int wins1 = 0, wins2 = 0, both = 0, none = 0;
	long long maxid = 0;

	redis_scripts_init();
	snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
	n1 = link_to(url, NULL, 5000, &s1);
	n2 = link_to(url, NULL, 5000, &s2);
	sub = link_to(url, NULL, 5000, &ss);
	CHECK(redis_link_add_script(n1, &redis_script_transition) == 0);
	CHECK(redis_link_add_script(n2, &redis_script_transition) == 0);
	CHECK(redis_link_subscribe(sub, "rv:events", on_message, &feed) == 0);
	CHECK(wait_for(&s1.ups, 1, 10000) && wait_for(&s2.ups, 1, 10000) &&
	      wait_for(&ss.ups, 1, 10000));

	/*
	 * Create (from version 0), change (from 1), a stale change (from 1
	 * again), and a change of the record alone (no event).
	 */
	CHECK(transition(n1, "s0", 0, "{\"state\":\"RSS_READY\"}", true, &ap) == 0 &&
	      wait_applied(&ap));
	CHECK_MSG(ap.ok == 1 && ap.a == 1 && ap.b == 1 && ap.c == 1, "create: %lld %lld %lld %s",
		  ap.ok, ap.a, ap.b, ap.err);
	CHECK(transition(n2, "s0", 1, "{\"state\":\"RSS_INVITATION\"}", true, &ap) == 0 &&
	      wait_applied(&ap));
	CHECK_MSG(ap.ok == 1 && ap.a == 2 && ap.b == 2 && ap.c == 2, "change: %lld %lld %lld %s",
		  ap.ok, ap.a, ap.b, ap.err);
	CHECK(transition(n1, "s0", 1, "{\"state\":\"RSS_CANCELLED\"}", true, &ap) == 0 &&
	      wait_applied(&ap));
	CHECK_MSG(ap.ok == 0 && ap.a == 2 && ap.c == 1 &&
			  strcmp(ap.err, "{\"state\":\"RSS_INVITATION\"}") == 0,
		  "a stale change was applied: %lld %lld %s", ap.ok, ap.a, ap.err);
	CHECK(transition(n2, "s0", 2, "{\"confirmed\":1}", false, &ap) == 0 && wait_applied(&ap));
	CHECK_MSG(ap.ok == 1 && ap.a == 3 && ap.b == 0 && ap.c == 3, "record alone: %lld %lld %s",
		  ap.ok, ap.a, ap.err);
	{
		const char *get[2] = {"GET", "rv:ev"}, *rec[3] = {"HGET", "rv:s:s0", "record"};
		const char *hist[4] = {"XRANGE", "rv:log", "2-1", "2-1"};
		const char *idx[3] = {"ZSCORE", "rv:sessions", "s0"};
		CHECK(ask(n1, &a, 2, get) && strcmp(a.str, "2") == 0);
		CHECK(ask(n1, &a, 3, rec) && strcmp(a.str, "{\"confirmed\":1}") == 0);
		CHECK(ask(n1, &a, 4, hist) && a.type == REDIS_REPLY_ARRAY && a.elements == 1);
		CHECK(ask(n1, &a, 3, idx) && strcmp(a.str, "1") == 0);
	}
	CHECK(wait_for(&feed.count, 3, 10000));
	CHECK_MSG(strcmp(feed.last, "3 0 3 1 2 t1\n{\"confirmed\":1}\n") == 0, "published: %s",
		  feed.last);
	{ /* The snapshot: counters, the session with its version, order and event, the history. */
		const char *snap[] = {"EVALSHA", redis_script_snapshot.sha,
				      "5",       "rv:fs",
				      "rv:ev",   "rv:sessions",
				      "rv:log",  "rv:epoch",
				      "2",       "rv:s:",
				      "e1",      "0",
				      "10",      "+"};
		struct snapshot sn;
		CHECK(redis_link_add_script(n1, &redis_script_snapshot) == 0);
		CHECK(wait_snapshot(n1, 14, snap, &sn));
		CHECK_MSG(sn.fs == 3 && sn.ev == 2 && sn.nsessions == 1 &&
				  strcmp(sn.first, "3 1 2\n{\"confirmed\":1}") == 0 &&
				  sn.nlog == 2 &&
				  strncmp(sn.log_first, "2 2 2 1 2 t1\n", 13) == 0 &&
				  sn.last == 1 && sn.looked == 1 && strcmp(sn.epoch, "e1") == 0,
			  "snapshot: %lld %lld %d [%s] %d [%s] %lld %lld %s", sn.fs, sn.ev,
			  sn.nsessions, sn.first, sn.nlog, sn.log_first, sn.last, sn.looked,
			  sn.epoch);
		/* The next page: no session after order 1; the history before position 2. */
		snap[10] = "e2"; /* the epoch is set once: still e1 */
		snap[11] = "1";
		snap[13] = "(2-1";
		CHECK(wait_snapshot(n1, 14, snap, &sn));
		CHECK_MSG(sn.nsessions == 0 && sn.looked == 0 && sn.last == 1 && sn.nlog == 1 &&
				  strncmp(sn.log_first, "1 1 1 1 1 t1\n", 13) == 0 &&
				  strcmp(sn.epoch, "e1") == 0,
			  "second page: %d %lld %lld %d [%s] %s", sn.nsessions, sn.looked, sn.last,
			  sn.nlog, sn.log_first, sn.epoch);
	}

	/* A keyed change sets its key with it; the key already there: nothing applied. */
	CHECK(transition_keyed(n1, "s1", 0, "{}", true, "rv:k:u\nm\nk", &ap) == 0 &&
	      wait_applied(&ap) && ap.ok == 1);
	CHECK(transition_keyed(n2, "s2", 0, "{}", true, "rv:k:u\nm\nk", &ap) == 0 &&
	      wait_applied(&ap));
	CHECK_MSG(ap.ok == 2 && strcmp(ap.err, "p kept") == 0, "a kept key: %lld %s", ap.ok,
		  ap.err);
	{
		const char *exists[2] = {"EXISTS", "rv:s:s2"};
		CHECK(ask(n1, &a, 2, exists) && a.integer == 0);
	}
	/* The per-user limit: alice has s0 and s1 live; a third creation passes 2. */
	limit = "2";
	CHECK(transition(n1, "s3", 0, "{}", true, &ap) == 0 && wait_applied(&ap));
	CHECK_MSG(ap.ok == 3, "a creation past the limit: %lld %s", ap.ok, ap.err);
	limit = "";

	test_outcomes_script(n1);

	/* Races: both nodes change each session from the same version; one wins. */
	for (int i = 0; i < RACES; i++) { /* created, pipelined */
		snprintf(sid, sizeof sid, "r%d", i);
		CHECK(transition(n1, sid, 0, "{}", true, &r1[i]) == 0);
	}
	for (int i = 0; i < RACES; i++)
		CHECK(wait_applied(&r1[i]) && r1[i].ok == 1);
	for (int i = 0; i < RACES; i++) {
		snprintf(sid, sizeof sid, "r%d", i);
		CHECK(transition(i % 2 ? n1 : n2, sid, 1, "{\"by\":\"first\"}", true,
				 i % 2 ? &r1[i] : &r2[i]) == 0);
		CHECK(transition(i % 2 ? n2 : n1, sid, 1, "{\"by\":\"second\"}", true,
				 i % 2 ? &r2[i] : &r1[i]) == 0);
	}
	for (int i = 0; i < RACES; i++) {
		CHECK(wait_applied(&r1[i]) && wait_applied(&r2[i]));
		wins1 += r1[i].ok == 1;
		wins2 += r2[i].ok == 1;
		both += r1[i].ok == 1 && r2[i].ok == 1;
		none += r1[i].ok != 1 && r2[i].ok != 1;
		if (r1[i].ok == 1 && r1[i].b > maxid)
			maxid = r1[i].b;
		if (r2[i].ok == 1 && r2[i].b > maxid)
			maxid = r2[i].b;
	}
	CHECK_MSG(both == 0 && none == 0 && wins1 + wins2 == RACES,
		  "%d races: node 1 won %d, node 2 %d, both %d, neither %d", RACES, wins1, wins2,
		  both, none);
	{
		const char *get[2] = {"GET", "rv:ev"}, *len[2] = {"XLEN", "rv:log"};
		/* 3 events before the outcomes' 6, then two per race. */
		CHECK(ask(n1, &a, 2, get) && atoll(a.str) == 9 + 2 * RACES &&
		      maxid == 9 + 2 * RACES);
		/* --history 100, trimmed by whole stream nodes (MAXLEN ~). */
		CHECK_MSG(ask(n1, &a, 2, len) && a.integer >= 100 && a.integer <= 300,
			  "the history holds %lld events", a.integer);
	}
	printf("transition races: node 1 won %d, node 2 %d of %d\n", wins1, wins2, RACES);
	redis_link_free(sub);
	redis_link_free(n1);
	redis_link_free(n2);
	redis_stop(pid);
}

/* What the lease script answered: Redis's time and the live nodes. */
struct leased {
	bool done;
	long long now;
	int n;
	char names[4][16];
	long long ends[4];
	char err[128];
};

static void
on_leased(void *arg, const redisReply *r, const char *err)
{
	struct leased *le = arg;

	memset(le, 0, sizeof *le);
	le->done = true;
	if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 1 || r->elements % 2 != 1) {
		snprintf(le->err, sizeof le->err, "%s", err != NULL ? err : "not a lease answer");
		return;
	}
	le->now = r->element[0]->integer;
	for (size_t i = 1; i + 1 < r->elements && le->n < 4; i += 2, le->n++) {
		snprintf(le->names[le->n], sizeof le->names[0], "%s", r->element[i]->str);
		le->ends[le->n] = atoll(r->element[i + 1]->str);
	}
}

/* Renew (or give up) name's lease of ms through l, and wait for the answer. */
static bool
lease(struct redis_link *l, const char *name, int ms, bool renew, struct leased *le)
{
	char lease_ms[16];
	const char *argv[4] = {"rv:nodes", name, lease_ms, renew ? "1" : "0"};
	size_t lens[4];

	snprintf(lease_ms, sizeof lease_ms, "%d", ms);
	for (int i = 0; i < 4; i++)
		lens[i] = strlen(argv[i]);
	le->done = false;
	if (redis_link_eval(l, &redis_script_lease, on_leased, le, 1, 4, argv, lens) != 0)
		return false;
	return wait_done(&le->done, 10000) && le->err[0] == '\0';
}

static bool
holds(const struct leased *le, const char *name)
{
	for (int i = 0; i < le->n; i++)
		if (strcmp(le->names[i], name) == 0)
			return true;
	return false;
}

/* Leases: renewed ones live, one left to lapse is forgotten, one given up goes at once. */
static void
test_lease(void)
{
	int port = free_port();
	pid_t pid = redis_start(port, NULL, NULL);
	char url[64];
	struct seen s1 = {0}, s2 = {0};
	struct redis_link *n1, *n2;
	struct leased le;
	int64_t t0;

	redis_scripts_init();
	snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
	n1 = link_to(url, NULL, 5000, &s1);
	n2 = link_to(url, NULL, 5000, &s2);
	CHECK(redis_link_add_script(n1, &redis_script_lease) == 0);
	CHECK(redis_link_add_script(n2, &redis_script_lease) == 0);
	CHECK(wait_for(&s1.ups, 1, 10000) && wait_for(&s2.ups, 1, 10000));

	CHECK(lease(n1, "node-a", 500, true, &le) && le.n == 1 && holds(&le, "node-a"));
	CHECK_MSG(le.ends[0] - le.now == 500, "the lease ends %lld ms from Redis's now",
		  le.ends[0] - le.now);
	CHECK(lease(n2, "node-b", 500, true, &le) && le.n == 2 && holds(&le, "node-b"));
	/* a renews every 100 ms; b stops: b is gone within about its lease. */
	t0 = mono();
	do {
		CHECK(lease(n1, "node-a", 500, true, &le) && holds(&le, "node-a"));
		turn(100, NULL);
	} while (holds(&le, "node-b") && mono() - t0 < 10000);
	CHECK_MSG(!holds(&le, "node-b") && le.n == 1 && mono() - t0 >= 300,
		  "node-b still held, or gone after %lld ms", (long long)(mono() - t0));
	CHECK(lease(n1, "node-a", 500, false, &le) && le.n == 0);
	redis_link_free(n1);
	redis_link_free(n2);
	redis_stop(pid);
}

/* A Unix socket. */
static void
test_unix(void)
{
	char dir[sizeof workdir + 16], path[128], url[160];
	int port = free_port();
	pid_t pid;
	struct seen s = {0};
	struct redis_link *l;
	struct answer a;
	const char *argv[1] = {"PING"};

	snprintf(dir, sizeof dir, "%s/unix", workdir);
	if (mkdir(dir, 0700) != 0)
		abort();
	snprintf(path, sizeof path, "%s/redis.sock", dir);
	pid = redis_start(port, path, NULL);
	snprintf(url, sizeof url, "redis+unix://%s?db=1", path);
	l = link_to(url, NULL, 2000, &s);
	CHECK_MSG(wait_for(&s.ups, 1, 10000), "not up: %s", s.why);
	CHECK(command(l, &a, 1, argv) == 0 && wait_answer(&a, 10000) && strcmp(a.str, "PONG") == 0);
	redis_link_free(l);
	redis_stop(pid);
}

static int
remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	base = event_base_new();
	if (base == NULL || mkdtemp(workdir) == NULL)
		return 1;
	test_parse();
	test_commands();
	test_auth();
	test_outages();
	test_subscriber();
	test_sentinel();
	test_transition_script();
	test_lease();
	test_unix();
	nftw(workdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	event_base_free(base);
	return check_done("test_redis");
}
