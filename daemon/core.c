/* The daemon's modules: set up, recovered and torn down in one order. */
#include "addrs.h"
#include "client.h"
#include "commit.h"
#include "config.h"
#include "conn.h"
#include "core.h"
#include "hub.h"
#include "idempotency.h"
#include "outcomes.h"
#include "rpc.h"
#include "sessions.h"
#include "shared.h"

static struct event_base *loop;

int
core_start(struct event_base *base)
{
	loop = base;
	commit_init();
	if (hub_init(config.history) != 0 || sessions_init(base) != 0 || idempotency_init() != 0 ||
	    outcomes_init(base) != 0 || conns_init(base) != 0 ||
	    clients_init(base, rpc_handle_line, rpc_client_gone) != 0 || addrs_init(base) != 0)
		return -1;
	shared_on_history_lost(clients_history_lost);
	return 0;
}

int
core_recover(void)
{
	if (hub_recover() != 0 || sessions_recover() != 0 || idempotency_recover() != 0 ||
	    outcomes_recover() != 0)
		return -1;
	/* A shared store: every session comes from Redis. */
	return shared_enabled() ? shared_start(loop) : 0;
}

void
core_stop(void)
{
	conns_finish();
	commit_pass(); /* what the last writes told (write receipts) */
	clients_finish();
	addrs_finish();
	if (shared_enabled())
		shared_stop();
	sessions_finish();
	idempotency_finish();
	outcomes_finish();
	hub_finish();
}
