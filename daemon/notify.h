/*
 * Telling the service manager how the daemon is doing (sd_notify): ready,
 * stopping, a status line with live counts, and watchdog pings sent from
 * the event loop itself, so that a stuck loop misses them. Without
 * libsystemd (-Dsystemd=disabled) or outside systemd ($NOTIFY_SOCKET
 * unset) every call does nothing. Loop thread only.
 */
#ifndef RV_NOTIFY_H
#define RV_NOTIFY_H

#include <stdbool.h>

struct event_base;

/* Start the status and watchdog timer if systemd asked for them; 0 or -1. */
int notify_init(struct event_base *base);
void notify_finish(void);
/* READY=1, once listeners are bound and the store is recovered, and after a reload. */
void notify_ready(void);
/* RELOADING=1 (with MONOTONIC_USEC), when a reload begins; notify_ready() ends it. */
void notify_reloading(void);
/* STOPPING=1, when shutdown begins. */
void notify_stopping(void);
/* Whether this build can notify systemd. */
bool notify_supported(void);

#endif
