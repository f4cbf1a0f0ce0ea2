/* The metrics page, /healthz and /readyz. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "commit.h"
#include "config.h"
#include "conn.h"
#include "hub.h"
#include "log.h"
#include "metrics.h"
#include "rendezvous.h"
#include "rpc.h"
#include "sessions.h"
#include "shared.h"
#include "stats.h"
#include "store.h"
#include "util.h"

/* Bounds on what a scraper may send, and how long it may take. */
#define HTTP_TIMEOUT_SEC 10
#define HTTP_MAX_HEADERS 8192

static struct evhttp *http;
static bool ready;

#define ADD(...)                                               \
	do {                                                   \
		if (evbuffer_add_printf(out, __VA_ARGS__) < 0) \
			return -1;                             \
	} while (0)

/* HELP and TYPE lines of one metric family. */
#define FAMILY(name, type, help) ADD("# HELP " name " " help "\n# TYPE " name " " type "\n")

static int
write_histogram(struct evbuffer *out, const char *name, const char *labels,
		const struct histogram *h)
{
	uint64_t cum = 0;

	for (size_t i = 0; i < STATS_BUCKETS; i++) {
		cum += h->buckets[i];
		ADD("%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, *labels ? "," : "",
		    stats_bucket_bounds[i], (unsigned long long)cum);
	}
	cum += h->buckets[STATS_BUCKETS];
	ADD("%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, *labels ? "," : "",
	    (unsigned long long)cum);
	ADD("%s_sum%s%s%s %.9f\n", name, *labels ? "{" : "", labels, *labels ? "}" : "", h->sum);
	ADD("%s_count%s%s%s %llu\n", name, *labels ? "{" : "", labels, *labels ? "}" : "",
	    (unsigned long long)h->count);
	return 0;
}

/* The process_* metrics every Prometheus client library exports. */
static int
write_process(struct evbuffer *out)
{
	struct rlimit rl;
	long size_pages, rss_pages = 0, page = sysconf(_SC_PAGESIZE);
	FILE *f = fopen("/proc/self/statm", "r");
	DIR *d = opendir("/proc/self/fd");
	size_t fds = 0;

	if (f != NULL) {
		if (fscanf(f, "%ld %ld", &size_pages, &rss_pages) != 2)
			rss_pages = 0;
		fclose(f);
	}
	if (d != NULL) {
		while (readdir(d) != NULL)
			fds++;
		closedir(d);
		fds = fds >= 3 ? fds - 3 : 0; /* ".", ".." and the directory's own */
	}
	FAMILY("process_start_time_seconds", "gauge", "Start time of the process, Unix seconds.");
	ADD("process_start_time_seconds %.3f\n", (double)stats.started_ms / 1000.0);
	FAMILY("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
	ADD("process_resident_memory_bytes %ld\n", rss_pages * page);
	FAMILY("process_open_fds", "gauge", "Open file descriptors.");
	ADD("process_open_fds %zu\n", fds);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
		FAMILY("process_max_fds", "gauge", "The limit on open file descriptors.");
		ADD("process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
	}
	return 0;
}

static int
write_sessions(struct evbuffer *out)
{
	size_t counts[RV_STATE_COUNT];

	sessions_count_states(counts);
	FAMILY("rendezvous_sessions", "gauge",
	       "Sessions held, by state (ended ones until --linger passes).");
	for (int st = 0; st < RV_STATE_COUNT; st++)
		ADD("rendezvous_sessions{state=\"%s\"} %zu\n", rv_state_name((enum rv_state)st),
		    counts[st]);
	FAMILY("rendezvous_sessions_created_total", "counter", "Sessions created.");
	ADD("rendezvous_sessions_created_total %llu\n", (unsigned long long)stats.sessions_created);
	FAMILY("rendezvous_session_transitions_total", "counter",
	       "State changes, by the state left and the state entered (RSS_UNKNOWN: created).");
	for (int from = 0; from < RV_STATE_COUNT; from++) {
		for (int to = 0; to < RV_STATE_COUNT; to++) {
			if (stats.transitions[from][to] == 0)
				continue;
			ADD("rendezvous_session_transitions_total{from=\"%s\",to=\"%s\"} %llu\n",
			    rv_state_name((enum rv_state)from), rv_state_name((enum rv_state)to),
			    (unsigned long long)stats.transitions[from][to]);
		}
	}
	FAMILY("rendezvous_sessions_ended_total", "counter",
	       "Sessions ended, by reason: cancel, decline, terminate (by a party), admin, "
	       "expired, peer_lost.");
	for (int e = 0; e < END_COUNT; e++)
		ADD("rendezvous_sessions_ended_total{reason=\"%s\"} %llu\n", stats_end_names[e],
		    (unsigned long long)stats.ended[e]);
	return 0;
}

static int
write_traffic(struct evbuffer *out)
{
	static const struct {
		const char *name, *help;
		const uint64_t *value;
	} counters[] = {
		{"rendezvous_connections_accepted_total",
		 "Client connections accepted (refused ones excluded).",
		 &stats.connections_accepted},
		{"rendezvous_events_published_total", "State change events, each once.",
		 &stats.events_published},
		{"rendezvous_events_delivered_total",
		 "Event notifications queued to subscribers (replays included).",
		 &stats.events_delivered},
		{"rendezvous_context_delivered_total",
		 "session.context_data notifications relayed to a party's connections.",
		 &stats.contexts_relayed},
		{"rendezvous_delivered_bytes_total",
		 "Bytes of event and context notifications queued to clients.",
		 &stats.bytes_delivered},
		{"rendezvous_slow_consumers_total",
		 "Clients cut off for not reading (--max-pending).", &stats.slow_consumers},
		{"rendezvous_auth_failures_total", "Failed hellos.", &stats.auth_failures},
		{"rendezvous_requests_total", "Requests handled (each element of a batch counts).",
		 &stats.requests},
		{"rendezvous_outcomes_sent_total",
		 "session.outcome notifications queued to devices (again until acknowledged).",
		 &stats.outcomes_sent},
		{"rendezvous_outcomes_dropped_total",
		 "Outcomes dropped unacknowledged to stay within --max-outcomes per user.",
		 &stats.outcomes_dropped},
	};

	FAMILY("rendezvous_connections", "gauge", "Client connections open.");
	ADD("rendezvous_connections %zu\n", conns_count());
	FAMILY("rendezvous_subscriptions", "gauge", "Subscriptions of every connection.");
	ADD("rendezvous_subscriptions %zu\n", hub_subscriptions());
	if (!shared_enabled()) { /* with Redis, the service keeps them, not this node */
		FAMILY("rendezvous_outcomes_kept", "gauge",
		       "Outcomes kept for devices that have not acknowledged them.");
		ADD("rendezvous_outcomes_kept %llu\n", (unsigned long long)stats.outcomes_kept);
		FAMILY("rendezvous_outcome_devices", "gauge",
		       "Devices outcomes are kept for (those that named themselves, until "
		       "forgotten).");
		ADD("rendezvous_outcome_devices %llu\n", (unsigned long long)stats.outcome_devices);
	}
	FAMILY("rendezvous_last_event_id", "gauge", "The id of the newest event.");
	ADD("rendezvous_last_event_id %llu\n", (unsigned long long)hub_last_event());
	for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++)
		ADD("# HELP %s %s\n# TYPE %s counter\n%s %llu\n", counters[i].name,
		    counters[i].help, counters[i].name, counters[i].name,
		    (unsigned long long)*counters[i].value);
	FAMILY("rendezvous_limit_refusals_total", "counter",
	       "Requests and connections refused, by the limit that refused them.");
	for (size_t i = 0; i < STATS_LIMITS; i++)
		ADD("rendezvous_limit_refusals_total{limit=\"%s\"} %llu\n", stats_limits[i].name,
		    (unsigned long long)*stats_limits[i].value);
	FAMILY("rendezvous_errors_total", "counter",
	       "Error responses sent, by JSON-RPC error code (proto/PROTOCOL.md).");
	for (size_t i = 0; i < STATS_ERRORS; i++)
		ADD("rendezvous_errors_total{code=\"%d\"} %llu\n", stats_error_codes[i],
		    (unsigned long long)stats.errors[i]);
	if (stats.errors[STATS_ERRORS] > 0)
		ADD("rendezvous_errors_total{code=\"other\"} %llu\n",
		    (unsigned long long)stats.errors[STATS_ERRORS]);
	return 0;
}

static int
write_latency(struct evbuffer *out)
{
	size_t n = rpc_method_count();

	FAMILY("rendezvous_request_duration_seconds", "histogram",
	       "Time to handle a request until its answer is queued, by method (the store "
	       "commit is not included).");
	for (size_t i = 0; i < n && i < STATS_METHODS; i++) {
		char labels[80];
		snprintf(labels, sizeof labels, "method=\"%s\"", rpc_method_name(i));
		if (write_histogram(out, "rendezvous_request_duration_seconds", labels,
				    &stats.request_seconds[i]) != 0)
			return -1;
	}
	FAMILY("rendezvous_store_commit_duration_seconds", "histogram",
	       "Time to commit one pass of the event loop's changes to the store.");
	if (write_histogram(out, "rendezvous_store_commit_duration_seconds", "",
			    &stats.commit_seconds) != 0)
		return -1;
	FAMILY("rendezvous_store_commit_failures_total", "counter",
	       "Store commits that failed (answered 5003).");
	ADD("rendezvous_store_commit_failures_total %llu\n",
	    (unsigned long long)stats.store_failures);
	return 0;
}

/* A shared (Redis) store: this node's view of it. */
static int
write_shared(struct evbuffer *out)
{
	struct shared_stats ss;

	if (!shared_enabled())
		return 0;
	shared_stats(&ss);
	FAMILY("rendezvous_node_info", "gauge", "This node's name in a shared store; always 1.");
	ADD("rendezvous_node_info{node=\"%s\"} 1\n", shared_node_name());
	FAMILY("rendezvous_redis_ready", "gauge",
	       "1 when connected, the feed subscribed and caught up; 0 otherwise.");
	ADD("rendezvous_redis_ready %d\n", shared_ready() ? 1 : 0);
	FAMILY("rendezvous_redis_lease", "gauge", "1 while this node holds its lease.");
	ADD("rendezvous_redis_lease %d\n", ss.lease ? 1 : 0);
	FAMILY("rendezvous_redis_nodes", "gauge", "Nodes whose lease lives, this one included.");
	ADD("rendezvous_redis_nodes %zu\n", ss.nodes);
	FAMILY("rendezvous_redis_feed_position", "gauge", "The last feed message applied.");
	ADD("rendezvous_redis_feed_position %llu\n", (unsigned long long)ss.position);
	FAMILY("rendezvous_redis_changes_total", "counter",
	       "Changes this node sent to Redis, by what came of them.");
	ADD("rendezvous_redis_changes_total{result=\"applied\"} %llu\n",
	    (unsigned long long)ss.applied);
	ADD("rendezvous_redis_changes_total{result=\"conflict\"} %llu\n",
	    (unsigned long long)ss.conflicts);
	ADD("rendezvous_redis_changes_total{result=\"unavailable\"} %llu\n",
	    (unsigned long long)ss.unavailable);
	FAMILY("rendezvous_redis_feed_messages_total", "counter", "Feed messages applied.");
	ADD("rendezvous_redis_feed_messages_total %llu\n", (unsigned long long)ss.messages);
	FAMILY("rendezvous_redis_gaps_filled_total", "counter",
	       "Gaps in the feed filled from Redis's history.");
	ADD("rendezvous_redis_gaps_filled_total %llu\n", (unsigned long long)ss.gaps);
	FAMILY("rendezvous_redis_gap_messages_total", "counter", "Feed messages those gaps held.");
	ADD("rendezvous_redis_gap_messages_total %llu\n", (unsigned long long)ss.gap_messages);
	FAMILY("rendezvous_redis_resyncs_total", "counter",
	       "Times everything was loaded again (history gone, or Redis lost changes).");
	ADD("rendezvous_redis_resyncs_total %llu\n", (unsigned long long)ss.resyncs);
	FAMILY("rendezvous_redis_connects_total", "counter",
	       "Times the command link to Redis came up.");
	ADD("rendezvous_redis_connects_total %llu\n", (unsigned long long)ss.connects);
	FAMILY("rendezvous_redis_round_trip_seconds", "histogram",
	       "A change's script, from sending it until Redis answered.");
	return write_histogram(out, "rendezvous_redis_round_trip_seconds", "",
			       &stats.redis_seconds);
}

/* Append the whole exposition to out. 0, or -1 out of memory. */
static int
metrics_write(struct evbuffer *out)
{
	FAMILY("rendezvous_build_info", "gauge", "The daemon's version; always 1.");
	ADD("rendezvous_build_info{version=\"%s\"} 1\n", RV_VERSION);
	FAMILY("rendezvous_reloads_total", "counter", "SIGHUP reloads, by result.");
	ADD("rendezvous_reloads_total{result=\"ok\"} %llu\n", (unsigned long long)stats.reloads);
	ADD("rendezvous_reloads_total{result=\"failed\"} %llu\n",
	    (unsigned long long)stats.reload_failures);
	if (write_sessions(out) != 0 || write_traffic(out) != 0 || write_latency(out) != 0 ||
	    write_shared(out) != 0 || write_process(out) != 0)
		return -1;
	return 0;
}

static void
reply_text(struct evhttp_request *req, int code, const char *reason, const char *text)
{
	struct evbuffer *body = evbuffer_new();

	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "text/plain; charset=utf-8");
	if (body != NULL)
		evbuffer_add(body, text, strlen(text));
	evhttp_send_reply(req, code, reason, body);
	if (body != NULL)
		evbuffer_free(body);
}

static void
metrics_on_request(struct evhttp_request *req, void *arg)
{
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	(void)arg;
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		reply_text(req, 405, "Method Not Allowed", "method not allowed\n");
		return;
	}
	if (path == NULL)
		path = "/";
	if (strcmp(path, "/metrics") == 0) {
		struct evbuffer *body = evbuffer_new();

		if (body == NULL || metrics_write(body) != 0) {
			if (body != NULL)
				evbuffer_free(body);
			reply_text(req, 500, "Internal Server Error", "out of memory\n");
			return;
		}
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
				  "text/plain; version=0.0.4; charset=utf-8");
		evhttp_send_reply(req, 200, "OK", body);
		evbuffer_free(body);
	} else if (strcmp(path, "/healthz") == 0) {
		/* Answered by the event loop: it turns. */
		reply_text(req, 200, "OK", "ok\n");
	} else if (strcmp(path, "/readyz") == 0) {
		if (!ready)
			reply_text(req, 503, "Service Unavailable", "not ready: shutting down\n");
		else if (store_durable() && !commit_writable())
			reply_text(req, 503, "Service Unavailable",
				   "not ready: the store cannot save changes now\n");
		else if (shared_enabled() && !shared_ready()) {
			char why[160];
			snprintf(why, sizeof why, "not ready: %s\n", shared_why_not_ready());
			reply_text(req, 503, "Service Unavailable", why);
		} else
			reply_text(req, 200, "OK", "ready\n");
	} else {
		reply_text(req, 404, "Not Found", "not found: try /metrics, /healthz or /readyz\n");
	}
}

int
metrics_init(struct event_base *base)
{
	struct evhttp_bound_socket *bound;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof ss;
	char *host, *port, name[INET6_ADDRSTRLEN + 8] = "?";

	if (config.metrics == NULL)
		return 0;
	if (rv_parse_hostport(config.metrics, &host, &port, "9420") != 0) {
		log_error("--metrics %s: expected HOST:PORT", config.metrics);
		return -1;
	}
	http = evhttp_new(base);
	if (http == NULL) {
		free(host);
		free(port);
		return -1;
	}
	evhttp_set_timeout(http, HTTP_TIMEOUT_SEC);
	evhttp_set_max_headers_size(http, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(http, 0);
	evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
						 EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE);
	evhttp_set_gencb(http, metrics_on_request, NULL);
	bound = evhttp_bind_socket_with_handle(http, *host ? host : "0.0.0.0",
					       (ev_uint16_t)atoi(port));
	free(host);
	free(port);
	if (bound == NULL) {
		log_error("--metrics %s: cannot bind", config.metrics);
		metrics_finish();
		return -1;
	}
	if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &sslen) == 0)
		sockaddr_format((struct sockaddr *)&ss, name, sizeof name);
	log_info("metrics on http://%s/metrics", name);
	return 0;
}

void
metrics_finish(void)
{
	if (http != NULL)
		evhttp_free(http);
	http = NULL;
	ready = false;
}

void
metrics_set_ready(bool r)
{
	ready = r;
}
