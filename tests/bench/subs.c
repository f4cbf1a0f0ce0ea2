/*
 * rendezvous-subs: subscribers to every event, for tests/bench/shared.py.
 *
 *     rendezvous-subs POLL_MS PORT...
 *
 * Opens one connection per PORT argument (127.0.0.1), says hello as "obs"
 * and subscribes to everything, prints "ready" when every subscription is
 * answered, then reads: every POLL_MS milliseconds it takes what has
 * arrived without sleeping on the sockets (so the daemon's writes wake
 * nobody, as for subscribers on other machines), or, with POLL_MS 0, it
 * sleeps on them. When its standard input closes it prints the lines each
 * connection received, one count per line in argument order, and exits.
 *
 * Why C: the Python reader took most of a core of this 2-core machine,
 * and what the nodes pay per operation moves with how busy the machine is.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char greeting[] =
	"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"hello\",\"params\":{\"user\":\"obs\"}}\n"
	"{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"subscribe\",\"params\":{\"all\":true}}\n";

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

/*
 * Read until n lines came: the replies (a subscription sends nothing before
 * its reply). An error among them ends the program.
 */
static void
await_replies(int fd, int n)
{
	char buf[4096];
	size_t len = 0;

	while (n > 0) {
		ssize_t got = read(fd, buf + len, sizeof buf - 1 - len);

		if (got <= 0)
			die("read (greeting)");
		for (char *p = buf + len; p < buf + len + got; p++)
			n -= *p == '\n';
		len += (size_t)got;
		if (len == sizeof buf - 1)
			break;
	}
	buf[len] = '\0';
	if (n > 0 || strstr(buf, "\"error\"") != NULL) {
		fprintf(stderr, "rendezvous-subs: hello or subscribe failed: %s\n", buf);
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	int poll_ms, n = argc - 2, ep;
	int *fds;
	unsigned long *count;
	static char buf[1 << 16];
	struct epoll_event *evs;

	if (argc < 3) {
		fprintf(stderr, "usage: rendezvous-subs POLL_MS PORT...\n");
		return 2;
	}
	poll_ms = atoi(argv[1]);
	fds = calloc((size_t)n, sizeof *fds);
	count = calloc((size_t)n, sizeof *count);
	evs = calloc((size_t)n + 1, sizeof *evs);
	if (fds == NULL || count == NULL || evs == NULL || (ep = epoll_create1(0)) < 0)
		die("setup");
	for (int i = 0; i < n; i++) {
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons((uint16_t)atoi(argv[i + 2]))};
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
		int one = 1;

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if ((fds[i] = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
		    connect(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0)
			die("connect");
		setsockopt(fds[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (write(fds[i], greeting, sizeof greeting - 1) != (ssize_t)(sizeof greeting - 1))
			die("write");
		await_replies(fds[i], 2);
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) != 0)
			die("epoll_ctl");
	}
	{
		struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)n};

		if (epoll_ctl(ep, EPOLL_CTL_ADD, 0, &ev) != 0)
			die("epoll_ctl (stdin)");
	}
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		int k;

		if (poll_ms > 0) {
			struct timespec ts = {poll_ms / 1000, (long)(poll_ms % 1000) * 1000000L};

			nanosleep(&ts, NULL);
			k = epoll_wait(ep, evs, n + 1, 0);
		} else {
			k = epoll_wait(ep, evs, n + 1, -1);
		}
		if (k < 0 && errno != EINTR)
			die("epoll_wait");
		for (int j = 0; j < k; j++) {
			uint32_t i = evs[j].data.u32;
			ssize_t got;

			if (i == (uint32_t)n) {
				for (int c = 0; c < n; c++)
					printf("%lu\n", count[c]);
				return 0;
			}
			/* At most one read per socket per look, as a loaded client would. */
			got = read(fds[i], buf, sizeof buf);
			if (got <= 0) {
				epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
				continue;
			}
			for (char *p = buf; (p = memchr(p, '\n', (size_t)(buf + got - p))) != NULL;
			     p++)
				count[i]++;
		}
	}
}
