/* rendezvousd: start-up, signals, the event loop, and orderly shutdown. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "addrs.h"
#include "client.h"
#include "commit.h"
#include "config.h"
#include "core.h"
#include "conn.h"
#include "hub.h"
#include "identity.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "sessions.h"
#include "shared.h"
#include "stats.h"
#include "store.h"
#include "tls.h"
#include "token.h"
#include "util.h"

static struct event *drain_timer;

/* The drain's time is up: close whatever is still sending. */
static void
on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	log_warn("shutdown: clients still reading after %lld ms; closing them",
		 (long long)config.shutdown_timeout_ms);
	event_base_loopexit(arg, NULL);
}

/*
 * SIGTERM or SIGINT: stop accepting, tell every client, let the loop send
 * and commit what is pending, and exit once every connection is gone (or
 * --shutdown-timeout passes). A second signal exits at once.
 */
static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	struct event_base *base = arg;
	const char *name = sig == SIGINT ? "SIGINT" : "SIGTERM";
	struct timeval tv = {(time_t)(config.shutdown_timeout_ms / 1000),
			     (suseconds_t)(config.shutdown_timeout_ms % 1000 * 1000)};

	(void)what;
	if (drain_timer != NULL) {
		log_info("received %s again: exiting now", name);
		event_base_loopexit(base, NULL);
		return;
	}
	log_info("received %s: shutting down (%zu connections to drain)", name, conns_count());
	notify_stopping();
	listeners_finish();
	metrics_set_ready(false);
	clients_shutdown(name);
	drain_timer = evtimer_new(base, on_drain_timeout, base);
	if (drain_timer == NULL || evtimer_add(drain_timer, &tv) != 0)
		event_base_loopexit(base, NULL);
}

/*
 * SIGHUP: load the settings again. Either everything new takes effect (keys
 * and certificates included) or nothing does. Connections stay up.
 */
static void
on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct config next;
	struct token_keys *keys = NULL;
	struct tls_context *tls = NULL;

	(void)sig;
	(void)what;
	(void)arg;
	notify_reloading();
	log_info("received SIGHUP: reloading %s", options_config_path());
	if (options_load_next(&next) != 0)
		goto fail;
	if (config.auth == AUTH_JWT &&
	    (keys = token_keys_load(next.jwt_keys, next.njwt_keys)) == NULL)
		goto fail_next;
	if (tls_loaded() && (tls = tls_context_load(&next)) == NULL)
		goto fail_next;
	options_use(&next);
	if (keys != NULL)
		token_keys_use(keys);
	if (tls != NULL)
		tls_context_use(tls);
	clients_reauthorize();
	stats.reloads++;
	log_info("reloaded: log level %s, %zu observers, %zu admins%s%s",
		 log_level_name(config.log_level), config.nobservers, config.nadmins,
		 keys != NULL ? ", keys" : "", tls != NULL ? ", certificates" : "");
	notify_ready();
	return;

fail_next:
	token_keys_free(keys);
	options_discard(&next);
fail:
	stats.reload_failures++;
	log_error("reload failed; the settings in use are unchanged");
	notify_ready();
}

/*
 * The loop. With epoll, changes to what a descriptor waits for are batched
 * and made once per turn: hiredis's libevent adapter re-adds its one-shot
 * read event after every reply, two epoll_ctl calls per feed message
 * without it. Safe here: no descriptor the loop watches is dup()ed.
 */
static struct event_base *
event_base_new_changelist(void)
{
	struct event_config *cfg = event_config_new();
	struct event_base *b;

	if (cfg == NULL)
		return NULL;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
	b = event_base_new_with_config(cfg);
	event_config_free(cfg);
	return b;
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

/* --check-config: the settings parsed; now load the keys and certificates they name. */
static int
check_config(void)
{
	const char *path = options_config_path();
	int rc = identity_init() == 0 && tls_init() == 0 ? 0 : 1;

	identity_finish();
	tls_finish();
	if (rc == 0)
		printf("rendezvousd: configuration OK (%s%s)\n", path,
		       access(path, F_OK) == 0 ? "" : ": no such file, defaults and flags");
	return rc;
}

/* Load what the store holds: sessions with their deadlines, the event history. */
static void
recover(void)
{
	int64_t t0 = now_ms();

	if (store_open(false) != 0)
		fatal("cannot open the store; exiting");
	if (!shared_enabled() && (config.node_name != NULL || config.redis_password_file != NULL))
		log_warn("node-name and redis-password-file are for a Redis store: ignored");
	if (core_recover() != 0)
		fatal("cannot recover from the store %s; exiting", store_describe());
	store_recovered();
	if (store_durable())
		log_info("store %s: %zu sessions recovered, last event %llu, in %lld ms",
			 store_describe(), sessions_count(), (unsigned long long)hub_last_event(),
			 (long long)(now_ms() - t0));
}

int
main(int argc, char **argv)
{
	struct event_base *base;
	struct event *sigint, *sigterm, *sighup;

	stats.started_ms = now_ms();
	options_parse(argc, argv);
	if (config.check_config || config.check_store) {
		int rc = config.check_config ? check_config() : check_store();
		options_finish();
		return rc;
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGXFSZ, SIG_IGN); /* a file size limit is a write error, not death */
	raise_fd_limit();

	base = event_base_new_changelist();
	if (base == NULL)
		fatal("cannot create the event loop");
	if (identity_init() != 0)
		fatal("cannot set up authentication; exiting");
	if (tls_init() != 0)
		fatal("cannot set up TLS; exiting");
	if (core_start(base) != 0)
		fatal("out of memory at start-up");
	recover();
	sigint = evsignal_new(base, SIGINT, on_signal, base);
	sigterm = evsignal_new(base, SIGTERM, on_signal, base);
	sighup = evsignal_new(base, SIGHUP, on_sighup, base);
	if (sigint == NULL || sigterm == NULL || sighup == NULL ||
	    evsignal_add(sigint, NULL) != 0 || evsignal_add(sigterm, NULL) != 0 ||
	    evsignal_add(sighup, NULL) != 0)
		fatal("cannot install signal handlers");
	if (listeners_init(base) != 0)
		fatal("cannot listen; exiting");
	if (metrics_init(base) != 0)
		fatal("cannot serve metrics; exiting");
	if (notify_init(base) != 0)
		fatal("cannot set up systemd notification");
	log_info("rendezvousd %s ready (%s backend, store %s)", RV_VERSION,
		 event_base_get_method(base), store_describe());
	metrics_set_ready(true);
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
		if (drain_timer != NULL && conns_gone())
			break; /* drained */
	}

	commit_pass();
	notify_finish();
	metrics_finish();
	stats_log();
	listeners_finish();
	core_stop();
	store_close();
	identity_finish();
	tls_finish();
	event_free(sigint);
	event_free(sigterm);
	event_free(sighup);
	if (drain_timer != NULL)
		event_free(drain_timer);
	event_base_free(base);
	libevent_global_shutdown();
	options_finish();
	log_info("stopped");
	return 0;
}
