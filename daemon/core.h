/*
 * The daemon's state, set up and torn down in one order for everyone who
 * runs it: main.c, the in-process unit tests (tests/unit/inproc.h) and the
 * fuzzer (fuzz/fuzz_rpc.c). A module added to the daemon is added here
 * once.
 *
 * Loop thread only.
 */
#ifndef RV_CORE_H
#define RV_CORE_H

struct event_base;

/* Set up every module on base (nothing loaded yet). 0, or -1 when memory ran out. */
int core_start(struct event_base *base);
/* Load what the open store holds: history, sessions, keys, outcomes. 0, or -1 after logging. */
int core_recover(void);
/* Close every connection and free every module's state (the store stays open). */
void core_stop(void);

#endif
