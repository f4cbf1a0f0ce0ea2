/* rendezvousd: start-up, signals, the event loop, and orderly shutdown. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "addrs.h"
#include "commit.h"
#include "config.h"
#include "conn.h"
#include "hub.h"
#include "identity.h"
#include "listener.h"
#include "log.h"
#include "notify.h"
#include "sessions.h"
#include "stats.h"
#include "store.h"
#include "tls.h"

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct event_base *base = arg;

	(void)what;
	log_info("received %s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
	notify_stopping();
	event_base_loopexit(base, NULL);
}

/* Allow as many descriptors as the hard limit does: one per connection. */
static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
			log_warn("cannot raise the open file limit: %s", strerror(errno));
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur < config.max_connections + 32)
		log_warn("open file limit %llu is below max-connections %zu; accepts will pause "
			 "when descriptors run out",
			 (unsigned long long)rl.rlim_cur, config.max_connections);
}

/* --check-store: verify the store offline; the exit status says whether it is sound. */
static int
check_store(void)
{
	int rc;

	if (store_open(true) != 0)
		return 1;
	rc = store_check(stdout);
	store_close();
	return rc == 0 ? 0 : 1;
}

/* Load what the store holds: sessions with their deadlines, the event history. */
static void
recover(void)
{
	int64_t t0 = now_ms();

	if (store_open(false) != 0)
		fatal("cannot open the store; exiting");
	if (hub_recover() != 0 || sessions_recover() != 0)
		fatal("cannot recover from the store %s; exiting", store_describe());
	if (store_durable())
		log_info("store %s: %zu sessions recovered, last event %llu, in %lld ms",
			 store_describe(), sessions_count(), (unsigned long long)hub_last_event(),
			 (long long)(now_ms() - t0));
}

int
main(int argc, char **argv)
{
	struct event_base *base;
	struct event *sigint, *sigterm;

	options_parse(argc, argv);
	if (config.check_store) {
		int rc = check_store();
		options_finish();
		return rc;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN); /* a file size limit is a write error, not death */
	raise_fd_limit();

	base = event_base_new();
	if (base == NULL)
		fatal("cannot create the event loop");
	if (identity_init() != 0)
		fatal("cannot set up authentication; exiting");
	if (tls_init() != 0)
		fatal("cannot set up TLS; exiting");
	if (hub_init(config.history) != 0 || sessions_init(base) != 0 || conns_init(base) != 0 ||
	    addrs_init(base) != 0)
		fatal("out of memory at start-up");
	recover();
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	if (sigint == NULL || sigterm == NULL || evsignal_add(sigint, NULL) != 0 ||
	    evsignal_add(sigterm, NULL) != 0)
		fatal("cannot install signal handlers");
	if (listeners_init(base) != 0)
		fatal("cannot listen; exiting");
	if (notify_init(base) != 0)
		fatal("cannot set up systemd notification");
	log_info("rendezvousd %s ready (%s backend, store %s)", RV_VERSION,
		 event_base_get_method(base), store_describe());
	notify_ready();

	/*
	 * One pass at a time: what a pass changed is committed at once (group
	 * commit), then its output leaves, one write per connection.
	 */
	while (!event_base_got_exit(base)) {
		if (event_base_loop(base, EVLOOP_ONCE) < 0) {
			log_error("event loop failed");
			break;
		}
		do
			commit_pass();
		while (conns_flush());
	}

	commit_pass();
	notify_finish();
	stats_log();
	listeners_finish();
	conns_finish();
	addrs_finish();
	sessions_finish();
	hub_finish();
	store_close();
	identity_finish();
	tls_finish();
	event_free(sigint);
	event_free(sigterm);
	event_base_free(base);
	libevent_global_shutdown();
	options_finish();
	log_info("stopped");
	return 0;
}
