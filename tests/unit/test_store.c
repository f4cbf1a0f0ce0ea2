/*
 * The store backend interface, as every backend must honour it: writes are
 * seen only once committed, a rollback leaves no trace, records come back
 * as written, in order; the schema survives reopening. Run here against
 * SQLite in a temporary directory.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "store.h"
#include "store_batch.h"
#include "store_codec.h"
#include "store_record.h"

struct got {
	struct store_session s[16];
	char text[16][4][64]; /* copies of inviter, invitee, reason, data */
	size_t n;
	uint64_t events[64];
	char line[64][64];
	size_t nev;
};

static int
on_session(const struct store_session *r, void *arg)
{
	struct got *g = arg;

	if (g->n == 16)
		return -1;
	g->s[g->n] = *r;
	snprintf(g->text[g->n][0], 64, "%s", r->inviter);
	snprintf(g->text[g->n][1], 64, "%s", r->invitee);
	snprintf(g->text[g->n][2], 64, "%s", r->reason ? r->reason : "(null)");
	snprintf(g->text[g->n][3], 64, "%s", r->data ? r->data : "(null)");
	g->n++;
	return 0;
}

static int
on_event(const struct store_event *ev, void *arg)
{
	struct got *g = arg;

	if (g->nev == 64)
		return -1;
	g->events[g->nev] = ev->id;
	snprintf(g->line[g->nev], 64, "%.*s", (int)ev->len, ev->line);
	g->nev++;
	return 0;
}

static struct store_session
session(uint64_t seq, enum rv_state state)
{
	struct store_session r = {
		.seq = seq,
		.inviter = "alice",
		.invitee = "bob",
		.created = 1000 + (int64_t)seq,
		.updated = 2000 + (int64_t)seq,
		.expires = 3000 + (int64_t)seq,
		.event = seq,
		.data = "{\"n\":1}",
	};

	memset(r.id, (int)seq, sizeof r.id);
	rv_machine_init(&r.m);
	r.m.state = state;
	r.m.done[RV_ROLE_INVITER] = 1u << RV_ACT_INVITE;
	return r;
}

static struct store_event
event(uint64_t id)
{
	static char line[64];
	struct store_event ev = {.id = id,
				 .time = 5000,
				 .inviter = "alice",
				 .invitee = "bob",
				 .invitee_visible = true};

	snprintf(line, sizeof line, "{\"event\":%llu}\n", (unsigned long long)id);
	ev.line = line;
	ev.len = strlen(line);
	return ev;
}

static void
test_backend(const struct store_backend *be, const char *path)
{
	void *h = be->open(path, STORE_NORMAL, false);
	struct store_session s1 = session(1, RSS_READY), s2 = session(2, RSS_INVITATION);
	struct store_event e;
	struct got g;
	uint64_t last = 99;

	CHECK(h != NULL);
	if (h == NULL)
		return;
	CHECK(be->last_event(h, &last) == 0 && last == 0);

	/* Written and committed: there, as written. */
	CHECK(be->begin(h) == 0);
	CHECK(be->put_session(h, &s1, true) == 0);
	CHECK(be->put_session(h, &s2, true) == 0);
	for (uint64_t i = 1; i <= 5; i++) {
		e = event(i);
		CHECK(be->add_event(h, &e) == 0);
	}
	CHECK(be->commit(h, 5) == 0);
	memset(&g, 0, sizeof g);
	CHECK(be->load_sessions(h, on_session, &g) == 0);
	CHECK(g.n == 2 && g.s[0].seq == 1 && g.s[1].seq == 2);
	CHECK(g.s[1].m.state == RSS_INVITATION &&
	      g.s[1].m.done[RV_ROLE_INVITER] == (1u << RV_ACT_INVITE));
	CHECK(g.s[0].created == 1001 && g.s[0].updated == 2001 && g.s[0].expires == 3001);
	CHECK(strcmp(g.text[0][0], "alice") == 0 && strcmp(g.text[0][1], "bob") == 0);
	CHECK(strcmp(g.text[0][3], "{\"n\":1}") == 0 && !g.s[0].has_code);
	CHECK(g.s[0].id[0] == 1 && g.s[1].id[15] == 2);
	CHECK(be->load_events(h, 2, on_event, &g) == 0);
	CHECK(g.nev == 3 && g.events[0] == 3 && g.events[2] == 5);
	CHECK(strcmp(g.line[0], "{\"event\":3}\n") == 0);
	CHECK(be->last_event(h, &last) == 0 && last == 5);

	/* An update keeps what it does not change; a rollback leaves no trace. */
	s1.m.state = RSS_TERMINATED;
	s1.reason = "done";
	s1.has_code = true;
	s1.code = -7;
	s1.data = NULL; /* not part of an update */
	CHECK(be->begin(h) == 0);
	CHECK(be->put_session(h, &s1, false) == 0);
	CHECK(be->delete_session(h, 2) == 0);
	e = event(6);
	CHECK(be->add_event(h, &e) == 0);
	be->rollback(h);
	memset(&g, 0, sizeof g);
	CHECK(be->load_sessions(h, on_session, &g) == 0);
	CHECK(g.n == 2 && g.s[0].m.state == RSS_READY);
	CHECK(be->load_events(h, 0, on_event, &g) == 0 && g.nev == 5);
	CHECK(be->last_event(h, &last) == 0 && last == 5);

	CHECK(be->begin(h) == 0);
	CHECK(be->put_session(h, &s1, false) == 0);
	CHECK(be->delete_session(h, 2) == 0);
	CHECK(be->trim_events(h, 4) == 0);
	CHECK(be->commit(h, 5) == 0);
	memset(&g, 0, sizeof g);
	CHECK(be->get_session(h, 2, on_session, &g) == 0 && g.n == 0);
	CHECK(be->get_session(h, 1, on_session, &g) == 1 && g.n == 1);
	CHECK(g.s[0].m.state == RSS_TERMINATED && g.s[0].has_code && g.s[0].code == -7);
	CHECK(strcmp(g.text[0][2], "done") == 0 && strcmp(g.text[0][3], "{\"n\":1}") == 0);
	CHECK(be->load_events(h, 0, on_event, &g) == 0 && g.nev == 2 && g.events[0] == 4);
	CHECK(be->last_event(h, &last) == 0 && last == 5);
	/* Every event trimmed: the counter is not. */
	CHECK(be->begin(h) == 0);
	CHECK(be->trim_events(h, 6) == 0);
	CHECK(be->commit(h, 5) == 0);
	memset(&g, 0, sizeof g);
	CHECK(be->load_events(h, 0, on_event, &g) == 0 && g.nev == 0);
	CHECK(be->last_event(h, &last) == 0 && last == 5);
	be->close(h);

	/* Reopened: all of it is still there, and it checks out. */
	h = be->open(path, STORE_STRICT, false);
	CHECK(h != NULL);
	if (h == NULL)
		return;
	memset(&g, 0, sizeof g);
	CHECK(be->load_sessions(h, on_session, &g) == 0 && g.n == 1);
	CHECK(be->last_event(h, &last) == 0 && last == 5);
	be->close(h);
	h = be->open(path, STORE_NORMAL, true);
	CHECK(h != NULL);
	if (h != NULL) {
		FILE *out = tmpfile();
		CHECK(be->check(h, out) == 0);
		fclose(out);
		be->close(h);
	}
}

/* Records as JSON text (store_record.h): everything comes back, garbage is refused. */
static void
test_record(void)
{
	struct store_session r = {
		.inviter = "al\"ice",
		.invitee = "b\u00f6b",
		.created = 1700000000000,
		.updated = 1700000000123,
		.expires = 1700000060000,
		.event = 42,
		.reason = "line\nbreak",
		.has_code = true,
		.code = -7,
		.data = "{\"a\":[1,2,{\"b\":null}]}",
		.app_data = "\"text\"",
		.inviter_device = "phone",
		.answered_by = "laptop",
		.by_user = "b\u00f6b",
		.by_device = "laptop",
		.topic = "call",
		.replaced = true,
	};
	struct store_record p;
	struct jsonw w;

	for (int i = 0; i < SESSION_ID_BYTES; i++) {
		r.id[i] = (uint8_t)(i * 17);
		r.replaced_by[i] = (uint8_t)(255 - i);
	}
	r.m.state = RSS_TERMINATED;
	r.m.done[RV_ROLE_INVITER] = 0x15;
	r.m.done[RV_ROLE_INVITEE] = 0xffff;
	jsonw_init(&w);
	store_record_write(&w, &r);
	CHECK(jsonw_ok(&w));
	CHECK(memchr(w.buf, '\n', w.len) == NULL); /* one line: the feed's messages rely on it */
	CHECK(store_record_parse(w.buf, w.len, &p) == 0);
	CHECK(memcmp(p.s.id, r.id, SESSION_ID_BYTES) == 0);
	CHECK(strcmp(p.s.inviter, r.inviter) == 0 && strcmp(p.s.invitee, r.invitee) == 0);
	CHECK(p.s.m.state == r.m.state && memcmp(p.s.m.done, r.m.done, sizeof r.m.done) == 0);
	CHECK(p.s.created == r.created && p.s.updated == r.updated && p.s.expires == r.expires);
	CHECK(p.s.event == 42 && p.s.has_code && p.s.code == -7);
	CHECK(strcmp(p.s.reason, r.reason) == 0);
	CHECK(strcmp(p.s.data, r.data) == 0 && strcmp(p.s.app_data, r.app_data) == 0);
	CHECK(strcmp(p.s.inviter_device, "phone") == 0 && strcmp(p.s.answered_by, "laptop") == 0);
	CHECK(strcmp(p.s.by_user, r.by_user) == 0 && strcmp(p.s.by_device, "laptop") == 0);
	CHECK(strcmp(p.s.topic, "call") == 0);
	CHECK(p.s.replaced && memcmp(p.s.replaced_by, r.replaced_by, SESSION_ID_BYTES) == 0);
	store_record_free(&p);
	jsonw_free(&w);

	/* Optional fields left out come back absent. */
	r.reason = r.data = r.app_data = r.inviter_device = r.answered_by = NULL;
	r.by_user = r.by_device = r.topic = NULL;
	r.has_code = r.replaced = false;
	jsonw_init(&w);
	store_record_write(&w, &r);
	CHECK(store_record_parse(w.buf, w.len, &p) == 0);
	CHECK(p.s.reason == NULL && p.s.data == NULL && p.s.app_data == NULL && !p.s.has_code);
	CHECK(p.s.answered_by == NULL && p.s.by_device == NULL && p.s.topic == NULL);
	CHECK(!p.s.replaced);
	store_record_free(&p);
	/* Cut short, or with a field of the wrong kind: refused. */
	CHECK(store_record_parse(w.buf, w.len - 1, &p) == -1 && p.root == NULL);
	jsonw_free(&w);
	CHECK(store_record_parse("{\"id\":\"zz\"}", 11, &p) == -1);
	{
		static const char bad[] =
			"{\"id\":\"00000000000000000000000000000000\",\"inviter\":"
			"\"a\",\"invitee\":\"b\",\"state\":9,\"done\":[0,0,0,0],"
			"\"created\":1,\"updated\":1,\"expires\":1,\"event\":1}";
		CHECK(store_record_parse(bad, sizeof bad - 1, &p) == -1); /* no state 9 */
	}
}

/* The journal's encoding: every field back as written; a batch folds to what is left. */
static void
test_codec_and_batch(void)
{
	struct store_session s1 = session(1, RSS_READY), s2 = session(2, RSS_READY), r;
	struct store_event e = event(7);
	uint8_t sid[SESSION_ID_BYTES] = {9};
	struct store_key k = {.user = "alice",
			      .method = "session.create",
			      .key = "k1",
			      .reply = "{\"result\":1}",
			      .time = 42};
	struct store_outcome o = {.user = "bob",
				  .device = "phone",
				  .session = sid,
				  .time = 5,
				  .params = "{}",
				  .dropped = 0};
	struct codec_buf b = {0};
	struct codec_rec rec;
	const uint8_t *p, *end;
	struct batch *bt;

	s1.inviter_device = "laptop";
	s1.topic = "call";
	codec_put_session(&b, &s1, true);
	s1.m.state = RSS_CANCELLED;
	s1.reason = "changed mind";
	s1.has_code = true;
	s1.code = -3;
	s1.by_device = "laptop";
	s1.replaced = true;
	memset(s1.replaced_by, 0xab, SESSION_ID_BYTES);
	codec_put_session(&b, &s1, false);
	codec_put_session(&b, &s2, true);
	codec_delete_session(&b, 2);
	codec_add_event(&b, &e);
	codec_trim_events(&b, 7);
	codec_put_key(&b, &k);
	codec_trim_keys(&b, -1);
	codec_outcome(&b, &o, false);
	codec_outcome(&b, &o, true);
	CHECK(!b.failed);

	p = b.p;
	end = b.p + b.len;
	CHECK(codec_next(&p, end, &rec) == 1 && rec.op == CODEC_INSERT_SESSION);
	CHECK(rec.u.session.seq == 1 && strcmp(rec.u.session.inviter, "alice") == 0);
	CHECK(strcmp(rec.u.session.topic, "call") == 0 && rec.u.session.created == 1001);
	CHECK(strcmp(rec.u.session.data, "{\"n\":1}") == 0 && rec.u.session.id[15] == 1);
	CHECK(codec_next(&p, end, &rec) == 1 && rec.op == CODEC_UPDATE_SESSION);
	CHECK(rec.u.session.m.state == RSS_CANCELLED && rec.u.session.code == -3);
	CHECK(strcmp(rec.u.session.reason, "changed mind") == 0 && rec.u.session.replaced);
	CHECK(rec.u.session.replaced_by[15] == 0xab && rec.u.session.inviter == NULL);
	CHECK(codec_next(&p, end, &rec) == 1 && rec.op == CODEC_INSERT_SESSION);
	CHECK(codec_next(&p, end, &rec) == 1 && rec.op == CODEC_DELETE_SESSION && rec.u.seq == 2);
	CHECK(codec_next(&p, end, &rec) == 1 && rec.op == CODEC_EVENT && rec.u.event.id == 7);
	CHECK(rec.u.event.len == e.len && memcmp(rec.u.event.line, e.line, e.len) == 0);
	CHECK(codec_next(&p, end, &rec) == 1 && rec.u.below == 7);
	CHECK(codec_next(&p, end, &rec) == 1 && rec.op == CODEC_KEY);
	CHECK(strcmp(rec.u.key.reply, k.reply) == 0 && rec.u.key.time == 42);
	CHECK(codec_next(&p, end, &rec) == 1 && rec.op == CODEC_TRIM_KEYS && rec.u.before == -1);
	CHECK(codec_next(&p, end, &rec) == 1 && rec.op == CODEC_PUT_OUTCOME);
	CHECK(rec.u.outcome.session != NULL && rec.u.outcome.session[0] == 9);
	CHECK(codec_next(&p, end, &rec) == 1 && rec.op == CODEC_DELETE_OUTCOME);
	CHECK(codec_next(&p, end, &rec) == 0);
	/* Cut anywhere inside an operation: refused, never read past the end. */
	for (size_t cut = 1; cut < b.len; cut++) {
		int rc;
		p = b.p;
		end = b.p + cut;
		while ((rc = codec_next(&p, end, &rec)) == 1)
			;
		CHECK(rc == 0 || rc == -1);
		CHECK(p <= end);
	}

	/* Folded: session 1 whole with its update, session 2 gone, event 7 kept. */
	bt = batch_new();
	CHECK(bt != NULL && batch_add(bt, 1, b.p, b.len) == 0 && batch_seal(bt) == 0);
	CHECK(batch_session(bt, 1, &r) == BATCH_WHOLE && r.m.state == RSS_CANCELLED);
	CHECK(strcmp(r.inviter_device, "laptop") == 0 && r.created == 1001);
	CHECK(batch_session(bt, 2, &r) == BATCH_REMOVED);
	CHECK(batch_session(bt, 3, &r) == BATCH_UNTOUCHED);
	CHECK(batch_last(bt) == 1 && batch_last_event(bt) == 7 && batch_below(bt) == 7);
	CHECK(batch_outcome_touched(bt, &o));
	o.device = "laptop";
	CHECK(!batch_outcome_touched(bt, &o));
	batch_free(bt);
	/* Bytes that are not operations. */
	bt = batch_new();
	b.p[0] = 0x7f;
	CHECK(bt != NULL && batch_add(bt, 1, b.p, b.len) == -1);
	batch_free(bt);
	codec_buf_free(&b);
}

int
main(void)
{
	char dir[] = "/tmp/rendezvous-store-XXXXXX", path[64];

	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(path, sizeof path, "%s/test.db", dir);
	test_backend(&store_sqlite, path);
	test_codec_and_batch();
	test_record();
	unlink(path);
	rmdir(dir);
	return check_done("store");
}
