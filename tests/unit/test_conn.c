/*
 * The connection layer's promises (daemon/conn.h), on the daemon's modules
 * in process: a slow consumer's cut-off line survives a failed commit whole,
 * and a closing connection's flush is bounded by the time it started, not
 * by the last write a trickling reader allowed.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "inproc.h"
#include "util.h"

/* Everything the peer can read now (nonblocking), appended to buf; -1 at EOF. */
static ssize_t
peer_read(int fd, char *buf, size_t cap, size_t *len)
{
	ssize_t n = 1;

	while (*len < cap && (n = recv(fd, buf + *len, cap - *len, MSG_DONTWAIT)) > 0)
		*len += (size_t)n;
	if (*len < cap && n == 0)
		return -1;
	return 0;
}

/* A JSON-RPC notification line of exactly len bytes (with its "\n"). */
static void
make_line(char *buf, size_t len, char fill)
{
	static const char head[] = "{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":[\"";
	size_t h = sizeof head - 1;

	memcpy(buf, head, h);
	memset(buf + h, fill, len - h - 4);
	memcpy(buf + len - 4, "\"]}\n", 4);
}

/*
 * Output committed and unsent, then a transaction whose output passes
 * --max-pending (the client is cut off) and whose commit fails: the
 * rollback must keep the cut-off error line whole (conn_cut_off used to
 * leave txn_mark pointing into it).
 */
static void
test_cut_off_then_rollback(void)
{
	static char big[40000], out[65536];
	char line1[100], line2[50];
	size_t len = 0;
	int peer;
	struct conn *c;

	inproc_start();
	c = inproc_connect(&peer, 0);
	make_line(line1, sizeof line1, 'a');
	make_line(line2, sizeof line2, 'b');
	make_line(big, sizeof big, 'c');
	conn_send_parts(c, line1, sizeof line1, line2, sizeof line2, "", 0); /* committed */
	store_fail(); /* a transaction is open, and its commit will fail */
	CHECK(store_in_txn());
	conn_send_parts(c, big, sizeof big, "", 0, "", 0); /* past --max-pending: cut off */
	CHECK(!conn_live(c));
	commit_pass(); /* fails: the pass's output is taken back */
	conns_flush();
	peer_read(peer, out, sizeof out, &len);
	CHECK_MSG(len > sizeof line1 && memcmp(out, line1, sizeof line1) == 0, "got %zu bytes",
		  len);
	{
		const char *err = out + sizeof line1;
		size_t n = len - sizeof line1;
		json_t *j = json_loadb(err, n > 0 ? n - 1 : 0, 0, NULL);
		CHECK_MSG(j != NULL && err[n - 1] == '\n', "the cut-off line is not whole: %.*s",
			  (int)n, err);
		CHECK(json_integer_value(json_object_get(json_object_get(j, "error"), "code")) ==
		      RV_ERR_LIMIT);
		json_decref(j);
	}
	close(peer);
	inproc_stop();
}

/*
 * conn_close_flush() bounds the flush by the time it started: a reader
 * that takes a little every few milliseconds must not keep the connection
 * (and its output) alive past the bound.
 */
static void
test_flush_bound_is_absolute(void)
{
	static char chunk[4096], blob[65536];
	size_t total = 0, got = 0, len = 0;
	int64_t t0, took;
	bool eof = false;
	int peer;
	struct conn *c;

	config.max_pending = 64u << 20; /* no cut-off here: only the flush bound */
	inproc_start();
	c = inproc_connect(&peer, 16384);
	make_line(blob, sizeof blob, 'z');
	for (int i = 0; i < 48; i++) { /* 3 MiB, more than a trickle reads in the bound */
		conn_send_parts(c, blob, sizeof blob, "", 0, "", 0);
		total += sizeof blob;
	}
	conns_flush();
	t0 = now_ms();
	conn_close_flush(c, "test: flush");
	while (!eof && now_ms() - t0 < 40000) {
		struct timespec ts = {0, 20 * 1000 * 1000};
		inproc_pass();
		len = 0;
		eof = peer_read(peer, chunk, sizeof chunk, &len) != 0; /* 4 KiB per 20 ms */
		got += len;
		nanosleep(&ts, NULL);
	}
	took = now_ms() - t0;
	CHECK_MSG(eof, "the connection was still open after %lld ms", (long long)took);
	CHECK_MSG(got < total, "the trickle read all %zu bytes: no bound was applied", total);
	CHECK_MSG(took < 20000, "closed after %lld ms", (long long)took);
	printf("flush bound: closed after %lld ms with %zu of %zu bytes read\n", (long long)took,
	       got, total);
	close(peer);
	inproc_stop();
}

int
main(void)
{
	char dir[] = "/tmp/rendezvous-test-conn-XXXXXX";
	char store[64], path[64];

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(store, sizeof store, "sqlite:%s/s.db", dir);
	{
		char *args[] = {"rendezvousd-test", "--store", store,      "--max-pending", "16k",
				"--log-level",      "error",   "--config", "/dev/null",     NULL};
		inproc_init((int)(sizeof args / sizeof args[0]) - 1, args);
	}
	test_cut_off_then_rollback();
	test_flush_bound_is_absolute();
	inproc_finish();
	snprintf(path, sizeof path, "%s/s.db", dir);
	unlink(path);
	rmdir(dir);
	return check_done("test_conn");
}
