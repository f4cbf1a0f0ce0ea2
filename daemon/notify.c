/* sd_notify: readiness, stopping, status and watchdog pings from the loop. */
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "conn.h"
#include "hub.h"
#include "log.h"
#include "notify.h"
#include "sessions.h"

#ifdef RV_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>

/* How often the status line is refreshed when no watchdog asks for more. */
#define STATUS_INTERVAL_USEC (5 * 1000 * 1000)

static struct event *tick;
static bool watchdog;

/* Send one message with a status line of live counts. */
static void
notify_send(const char *state)
{
	sd_notifyf(0, "%sSTATUS=%zu sessions, %zu connections, last event %llu", state,
		   sessions_count(), conns_count(), (unsigned long long)hub_last_event());
}

/* Each tick, from the loop: the watchdog ping (if asked for) and the status. */
static void
notify_on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	notify_send(watchdog ? "WATCHDOG=1\n" : "");
}

int
notify_init(struct event_base *base)
{
	uint64_t usec = STATUS_INTERVAL_USEC, wd;
	struct timeval tv;

	if (getenv("NOTIFY_SOCKET") == NULL)
		return 0;
	if (sd_watchdog_enabled(0, &wd) > 0) {
		/* Ping at twice the rate systemd expects, as sd_watchdog_enabled(3) advises. */
		watchdog = true;
		if (wd / 2 < usec)
			usec = wd / 2;
		log_info("systemd watchdog: pinging every %llu ms",
			 (unsigned long long)usec / 1000);
	}
	tv.tv_sec = (time_t)(usec / 1000000);
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	tick = event_new(base, -1, EV_PERSIST, notify_on_tick, NULL);
	if (tick == NULL || event_add(tick, &tv) != 0)
		return -1;
	return 0;
}

void
notify_finish(void)
{
	if (tick != NULL)
		event_free(tick);
	tick = NULL;
}

void
notify_ready(void)
{
	notify_send("READY=1\n");
}

void
notify_reloading(void)
{
	struct timespec ts;

	/* MONOTONIC_USEC lets Type=notify-reload match this to its SIGHUP (sd_notify(3)). */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
		   (unsigned long long)ts.tv_sec * 1000000ULL +
			   (unsigned long long)ts.tv_nsec / 1000ULL);
}

void
notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

bool
notify_supported(void)
{
	return true;
}

#else /* no libsystemd */

int
notify_init(struct event_base *base)
{
	(void)base;
	return 0;
}

void
notify_finish(void)
{
}

void
notify_ready(void)
{
}

void
notify_reloading(void)
{
}

void
notify_stopping(void)
{
}

bool
notify_supported(void)
{
	return false;
}

#endif
