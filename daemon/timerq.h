/*
 * Deadlines for many objects on one libevent timer: a binary min-heap of
 * embedded entries, O(log n) to set or cancel, one timer armed for the
 * earliest. Cheap with millions of sessions. Loop thread only. Entries
 * are owned by the objects that embed them; the queue only points at them,
 * so an object cancels its entry before it is freed.
 */
#ifndef RV_TIMERQ_H
#define RV_TIMERQ_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct timerq;

/* Embed in the object; zero-initialise (not queued). */
struct timer_entry {
	int64_t deadline; /* Unix ms */
	size_t idx;       /* position in the heap + 1; 0 when not queued */
};

/* Called for each entry whose deadline has come, already removed. */
typedef void (*timerq_fire_cb)(struct timer_entry *e, int64_t now, void *arg);

struct timerq *timerq_create(struct event_base *base, timerq_fire_cb cb, void *arg);
void timerq_destroy(struct timerq *q);

/* Queue e at deadline, or move it there if queued. 0, or -1 on ENOMEM. */
int timerq_set(struct timerq *q, struct timer_entry *e, int64_t deadline);
/* Remove e if queued. */
void timerq_cancel(struct timerq *q, struct timer_entry *e);
size_t timerq_size(const struct timerq *q);

#endif
