/*
 * rendezvous-limit: what fan-out costs with nothing in the way, measured
 * beside rendezvousd (issue 17). A minimal epoll server: a connection that
 * sends "sub" is a subscriber; one that sends "go N" makes the server
 * write N fixed-size (150-byte) notification lines to every subscriber,
 * 64 to a write() (the batch built once, shared by all), in lockstep: the
 * next batch goes once every subscriber took the last one. Then it answers
 * the driver. No parsing, no queues, no per-subscriber copies: the
 * physical limit for delivering events on this machine, against which
 * rendezvous-bench's fanout scenario (--server limit) compares rendezvousd.
 *
 *   rendezvous-limit PORT
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MSG_BYTES 150
#define BATCH 64
#define MAX_CONNS 65536

struct lconn {
	int fd;
	bool sub;
	size_t off; /* bytes of the current batch written */
	char in[64];
	size_t in_len;
};

static struct lconn *conns[MAX_CONNS];
static int nsubs;

static void
die(const char *what)
{
	perror(what);
	exit(1);
}

/* Message number n: a session.state_changed line of exactly MSG_BYTES bytes. */
static void
message(char *out, long long n)
{
	int len = snprintf(out, MSG_BYTES + 1,
			   "{\"jsonrpc\":\"2.0\",\"method\":\"session.state_changed\",\"params\":{"
			   "\"event\":%lld,\"pad\":\"",
			   n);
	memset(out + len, 'x', MSG_BYTES - (size_t)len - 4);
	memcpy(out + MSG_BYTES - 4, "\"}}\n", 4);
}

/* Write n messages from first to every subscriber, a batch at a time; epfd waits for room. */
static void
fan_out(int epfd, long long first, long long n)
{
	static char batch[BATCH * MSG_BYTES];
	struct epoll_event evs[256];

	for (long long done = 0; done < n;) {
		int k = n - done < BATCH ? (int)(n - done) : BATCH, left = 0;
		size_t len = (size_t)k * MSG_BYTES;

		for (int i = 0; i < k; i++)
			message(batch + (size_t)i * MSG_BYTES, first + done + i);
		for (int fd = 0; fd < MAX_CONNS; fd++) {
			struct lconn *c = conns[fd];
			if (c == NULL || !c->sub)
				continue;
			c->off = 0;
			ssize_t w = write(fd, batch, len);
			if (w > 0)
				c->off = (size_t)w;
			if (c->off < len) {
				struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
				epoll_ctl(epfd, EPOLL_CTL_MOD, fd, &ev);
				left++;
			}
		}
		while (left > 0) {
			int m = epoll_wait(epfd, evs, 256, -1);
			for (int i = 0; i < m; i++) {
				struct lconn *c = conns[evs[i].data.fd];
				ssize_t w;
				if (c == NULL || !c->sub || c->off >= len ||
				    !(evs[i].events & EPOLLOUT))
					continue;
				w = write(c->fd, batch + c->off, len - c->off);
				if (w > 0)
					c->off += (size_t)w;
				if (c->off >= len) {
					struct epoll_event ev = {.events = EPOLLIN,
								 .data.fd = c->fd};
					epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
					left--;
				}
			}
		}
		done += k;
	}
}

static void
on_line(int epfd, struct lconn *c, const char *line)
{
	static long long next = 1;
	char reply[96];
	long long n;

	if (strcmp(line, "sub") == 0) {
		c->sub = true;
		nsubs++;
		snprintf(reply, sizeof reply, "{\"jsonrpc\":\"2.0\",\"result\":true,\"id\":1}\n");
	} else if (sscanf(line, "go %lld", &n) == 1 && n > 0) {
		fan_out(epfd, next, n);
		next += n;
		snprintf(reply, sizeof reply, "{\"jsonrpc\":\"2.0\",\"result\":%lld,\"id\":1}\n",
			 n);
	} else {
		snprintf(reply, sizeof reply, "{\"jsonrpc\":\"2.0\",\"error\":{},\"id\":1}\n");
	}
	if (write(c->fd, reply, strlen(reply)) < 0)
		perror("write");
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct epoll_event ev = {.events = EPOLLIN}, evs[256];
	int lfd, epfd, one = 1;

	if (argc != 2) {
		fprintf(stderr, "usage: rendezvous-limit PORT\n");
		return 2;
	}
	sin.sin_port = htons((uint16_t)atoi(argv[1]));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(lfd, 4096) != 0)
		die("listen");
	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("epoll");
	ev.data.fd = lfd;
	epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		int m = epoll_wait(epfd, evs, 256, -1);
		for (int i = 0; i < m; i++) {
			int fd = evs[i].data.fd;
			if (fd == lfd) {
				int cfd;
				while ((cfd = accept4(lfd, NULL, NULL,
						      SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					if (cfd >= MAX_CONNS) {
						close(cfd);
						continue;
					}
					setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					conns[cfd] = calloc(1, sizeof(struct lconn));
					if (conns[cfd] == NULL)
						die("calloc");
					conns[cfd]->fd = cfd;
					ev.events = EPOLLIN;
					ev.data.fd = cfd;
					epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &ev);
				}
				continue;
			}
			struct lconn *c = conns[fd];
			ssize_t r;
			char *nl;
			if (c == NULL)
				continue;
			r = read(fd, c->in + c->in_len, sizeof c->in - 1 - c->in_len);
			if (r <= 0) {
				if (r < 0 && errno == EAGAIN)
					continue;
				if (c->sub)
					nsubs--;
				close(fd);
				free(c);
				conns[fd] = NULL;
				continue;
			}
			c->in_len += (size_t)r;
			c->in[c->in_len] = '\0';
			while ((nl = strchr(c->in, '\n')) != NULL) {
				*nl = '\0';
				on_line(epfd, c, c->in);
				c->in_len -= (size_t)(nl + 1 - c->in);
				memmove(c->in, nl + 1, c->in_len + 1);
			}
			if (c->in_len == sizeof c->in - 1)
				c->in_len = 0; /* a line too long: dropped */
		}
	}
}
