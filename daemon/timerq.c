/* A min-heap of deadlines behind a single libevent timer. */
#include <stdlib.h>

#include <event2/event.h>

#include "log.h"
#include "timerq.h"
#include "util.h"

struct timerq {
	struct timer_entry **heap;
	size_t len, cap;
	struct event *ev;
	int64_t armed; /* deadline the event is armed for, or INT64_MAX */
	timerq_fire_cb cb;
	void *arg;
};

static void
heap_place(struct timerq *q, size_t i, struct timer_entry *e)
{
	q->heap[i] = e;
	e->idx = i + 1;
}

static void
heap_up(struct timerq *q, size_t i)
{
	struct timer_entry *e = q->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (q->heap[parent]->deadline <= e->deadline)
			break;
		heap_place(q, i, q->heap[parent]);
		i = parent;
	}
	heap_place(q, i, e);
}

static void
heap_down(struct timerq *q, size_t i)
{
	struct timer_entry *e = q->heap[i];

	for (;;) {
		size_t child = 2 * i + 1;
		if (child >= q->len)
			break;
		if (child + 1 < q->len && q->heap[child + 1]->deadline < q->heap[child]->deadline)
			child++;
		if (q->heap[child]->deadline >= e->deadline)
			break;
		heap_place(q, i, q->heap[child]);
		i = child;
	}
	heap_place(q, i, e);
}

/* Arm the libevent timer for the earliest deadline, if it changed. */
static void
timerq_arm(struct timerq *q)
{
	int64_t first, delay;
	struct timeval tv;

	if (q->len == 0) {
		if (q->armed != INT64_MAX)
			event_del(q->ev);
		q->armed = INT64_MAX;
		return;
	}
	first = q->heap[0]->deadline;
	if (first == q->armed)
		return;
	delay = first - now_ms();
	if (delay < 0)
		delay = 0;
	tv.tv_sec = (time_t)(delay / 1000);
	tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
	event_add(q->ev, &tv);
	q->armed = first;
}

static void
timerq_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct timerq *q = arg;
	int64_t now = now_ms();

	(void)fd;
	(void)what;
	q->armed = INT64_MAX;
	/* Entries the callback queues for now or earlier run in the next round. */
	size_t budget = q->len;
	while (q->len > 0 && q->heap[0]->deadline <= now && budget-- > 0) {
		struct timer_entry *e = q->heap[0];
		timerq_cancel(q, e);
		q->cb(e, now, q->arg);
	}
	timerq_arm(q);
}

struct timerq *
timerq_create(struct event_base *base, timerq_fire_cb cb, void *arg)
{
	struct timerq *q = calloc(1, sizeof *q);

	if (q == NULL)
		return NULL;
	q->ev = evtimer_new(base, timerq_on_timer, q);
	if (q->ev == NULL) {
		free(q);
		return NULL;
	}
	q->armed = INT64_MAX;
	q->cb = cb;
	q->arg = arg;
	return q;
}

void
timerq_destroy(struct timerq *q)
{
	if (q == NULL)
		return;
	for (size_t i = 0; i < q->len; i++)
		q->heap[i]->idx = 0;
	event_free(q->ev);
	free(q->heap);
	free(q);
}

int
timerq_set(struct timerq *q, struct timer_entry *e, int64_t deadline)
{
	if (e->idx != 0) {
		int64_t old = e->deadline;
		e->deadline = deadline;
		if (deadline < old)
			heap_up(q, e->idx - 1);
		else
			heap_down(q, e->idx - 1);
		timerq_arm(q);
		return 0;
	}
	if (q->len == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 64;
		struct timer_entry **h;
		if (cap > SIZE_MAX / sizeof *h)
			return -1;
		h = realloc(q->heap, cap * sizeof *h);
		if (h == NULL) {
			log_error("timerq: out of memory for %zu deadlines", cap);
			return -1;
		}
		q->heap = h;
		q->cap = cap;
	}
	e->deadline = deadline;
	q->heap[q->len++] = e;
	heap_up(q, q->len - 1);
	timerq_arm(q);
	return 0;
}

void
timerq_cancel(struct timerq *q, struct timer_entry *e)
{
	size_t i;
	struct timer_entry *last;

	if (e->idx == 0)
		return;
	i = e->idx - 1;
	e->idx = 0;
	last = q->heap[--q->len];
	if (i < q->len) {
		heap_place(q, i, last);
		if (i > 0 && q->heap[(i - 1) / 2]->deadline > last->deadline)
			heap_up(q, i);
		else
			heap_down(q, i);
	}
	if (q->len == 0)
		timerq_arm(q);
}

size_t
timerq_size(const struct timerq *q)
{
	return q->len;
}
