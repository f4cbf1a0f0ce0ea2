/* The deadline heap: order, moves, cancels, firing, at scale. */
#include <stddef.h>
#include <stdlib.h>

#include <event2/event.h>

#include "check.h"
#include "timerq.h"
#include "util.h"

#define N 20000

struct item {
	struct timer_entry t;
	int fired;
};

static int64_t last_fired = INT64_MIN;
static int order_ok = 1;
static int nfired;

static void
on_fire(struct timer_entry *e, int64_t now, void *arg)
{
	struct item *it = (struct item *)(void *)e;

	(void)arg;
	if (e->deadline < last_fired || e->deadline > now)
		order_ok = 0;
	last_fired = e->deadline;
	it->fired++;
	nfired++;
}

int
main(void)
{
	struct event_base *base = event_base_new();
	struct timerq *q = timerq_create(base, on_fire, NULL);
	struct item *items = calloc(N, sizeof *items);
	int64_t now = now_ms();
	int expect = 0, later = 0;

	srand(42);
	/* Deadlines in the past so that one loop pass fires them. */
	for (int i = 0; i < N; i++)
		CHECK(timerq_set(q, &items[i].t, now - 1 - rand() % 100000) == 0);
	CHECK(timerq_size(q) == N);
	/* Move some later than now (they must not fire), cancel others. */
	for (int i = 0; i < N; i += 3)
		CHECK(timerq_set(q, &items[i].t, now + 3600 * 1000) == 0);
	for (int i = 1; i < N; i += 3)
		timerq_cancel(q, &items[i].t);
	for (int i = 1; i < N; i += 3)
		timerq_cancel(q, &items[i].t); /* cancelling twice is harmless */
	for (int i = 0; i < N; i++) {
		expect += i % 3 == 2;
		later += i % 3 == 0;
	}
	CHECK(timerq_size(q) == (size_t)(expect + later));
	event_base_loop(base, EVLOOP_ONCE);
	CHECK_MSG(nfired == expect, "fired %d, expected %d", nfired, expect);
	CHECK(order_ok);
	for (int i = 0; i < N; i++)
		CHECK(items[i].fired == (i % 3 == 2));
	CHECK(timerq_size(q) == (size_t)later);
	timerq_destroy(q);
	event_base_free(base);
	free(items);
	return check_done("test_timerq");
}
