/*
 * The connection layer's promises (daemon/conn.h), on the daemon's modules
 * in process: a slow consumer's cut-off line survives a failed commit whole,
 * a closing connection's flush is bounded by the time it started, not by
 * the last write a trickling reader allowed, and shared lines queued by
 * reference arrive in order, merged, and are not held past the pass.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "inproc.h"
#include "msgbuf.h"
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

/* Whether c's queued output holds a reference to a shared block. */
static bool
holds_shared(const struct conn *c)
{
	for (size_t i = 0; i < c->nsegs; i++)
		if (c->segs[(c->seg_head + i) & (c->seg_cap - 1)].mb != NULL)
			return true;
	return false;
}

static void
add(char *buf, size_t *len, const void *p, size_t n)
{
	memcpy(buf + *len, p, n);
	*len += n;
}

/* Read from peer, turning the loop, until len bytes came (or 20 s passed). */
static size_t
read_all(int peer, char *buf, size_t len)
{
	size_t got = 0;
	int64_t t0 = now_ms();

	while (got < len && now_ms() - t0 < 20000) {
		size_t n = 0;
		inproc_pass();
		if (peer_read(peer, buf + got, len - got, &n) != 0)
			break;
		got += n;
	}
	return got;
}

/*
 * Replies (copied) and shared lines (by reference) queued in one pass to a
 * reader whose socket is full: they arrive whole and in order; lines of one
 * block queued one after another are one piece; what the socket did not
 * take at the end of the pass is copied, so the blocks are not held.
 */
static void
test_shared_lines(void)
{
	static char blob[200000], want[300000], got[300000];
	char reply[60], l1[80], l2[90], l3[70];
	const char *a1, *a2, *a3;
	struct msgbuf *b1, *b2, *b3;
	size_t len = 0;
	unsigned refs;
	int peer;
	struct conn *c;

	config.max_pending = 64u << 20; /* no cut-off here */
	inproc_start();
	c = inproc_connect(&peer, 4096);
	make_line(blob, sizeof blob, 'z');
	make_line(reply, sizeof reply, 'r');
	make_line(l1, sizeof l1, '1');
	make_line(l2, sizeof l2, '2');
	make_line(l3, sizeof l3, '3');
	b1 = msgbuf_append(l1, sizeof l1, &a1);
	b2 = msgbuf_append(l2, sizeof l2, &a2);
	b3 = msgbuf_from_bytes(l3, sizeof l3);
	a3 = b3->data;
	CHECK_MSG(b1 == b2 && a2 == a1 + sizeof l1, "lines appended one after another lie apart");
	refs = b1->refs;

	conn_send_parts(c, blob, sizeof blob, "", 0, "", 0); /* more than the socket takes */
	conn_send_shared(c, b1, a1, sizeof l1);
	conn_send_shared(c, b2, a2, sizeof l2);
	conn_send_parts(c, reply, sizeof reply, "", 0, "", 0);
	conn_send_shared(c, b3, a3, sizeof l3);
	conn_send_shared(c, b1, a1, sizeof l1); /* again, after another block */
	CHECK_MSG(c->nsegs == 5, "%zu pieces: two lines of one block were not merged", c->nsegs);
	CHECK(b1->refs == refs + 2 && b3->refs == 2);
	conns_flush();
	CHECK_MSG(conn_unsent(c) > 0, "the socket took everything: the test needs it full");
	CHECK_MSG(!holds_shared(c) && b1->refs == refs && b3->refs == 1,
		  "a full socket's connection still holds shared blocks after the pass");

	add(want, &len, blob, sizeof blob);
	add(want, &len, l1, sizeof l1);
	add(want, &len, l2, sizeof l2);
	add(want, &len, reply, sizeof reply);
	add(want, &len, l3, sizeof l3);
	add(want, &len, l1, sizeof l1);
	CHECK_MSG(read_all(peer, got, len) == len && memcmp(got, want, len) == 0,
		  "the reader did not get every line whole and in order");
	msgbuf_unref(b1);
	msgbuf_unref(b2);
	msgbuf_unref(b3);
	close(peer);
	inproc_stop();
}

/*
 * A shared line queued behind the fence joins the piece of the line before
 * it (the next line of the block); dropping the fence takes back only it.
 */
static void
test_shared_line_behind_fence(void)
{
	char l1[80], l2[90], got[256];
	const char *a1, *a2;
	struct msgbuf *b1, *b2;
	int peer;
	struct conn *c;

	inproc_start();
	c = inproc_connect(&peer, 0);
	make_line(l1, sizeof l1, 'a');
	make_line(l2, sizeof l2, 'b');
	b1 = msgbuf_append(l1, sizeof l1, &a1);
	b2 = msgbuf_append(l2, sizeof l2, &a2);
	conn_send_shared(c, b1, a1, sizeof l1);
	conns_fence_raise();
	conn_send_shared(c, b2, a2, sizeof l2);
	CHECK(c->nsegs == 1 && conn_unsent(c) == sizeof l1 + sizeof l2);
	conns_fence_drop();
	CHECK_MSG(conn_unsent(c) == sizeof l1, "%zu bytes left after the fence fell",
		  conn_unsent(c));
	CHECK(read_all(peer, got, sizeof l1) == sizeof l1 && memcmp(got, l1, sizeof l1) == 0);
	{
		size_t n = 0;
		inproc_pass();
		peer_read(peer, got, sizeof got, &n);
		CHECK_MSG(n == 0, "%zu bytes after the line before the fence", n);
	}
	msgbuf_unref(b1);
	msgbuf_unref(b2);
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
	test_shared_lines();
	test_shared_line_behind_fence();
	inproc_finish();
	snprintf(path, sizeof path, "%s/s.db", dir);
	unlink(path);
	rmdir(dir);
	return check_done("test_conn");
}
