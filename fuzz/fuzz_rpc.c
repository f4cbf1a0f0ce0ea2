/*
 * libFuzzer target: bytes from up to three clients, cut into chunks the input
 * chooses (as NATS's FuzzParser does), through framing, JSON-RPC decoding,
 * dispatch, the session table, the hub and the output path of the real
 * daemon modules. Every input starts from a fresh daemon state.
 *
 * Input: a sequence of [control byte][chunk]. The control byte's low two
 * bits pick the client (3: every connection closes, which ends the input),
 * the rest give the chunk length (0-63 bytes, or what is left).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>

#include "addrs.h"
#include "client.h"
#include "commit.h"
#include "config.h"
#include "core.h"
#include "conn.h"
#include "hub.h"
#include "identity.h"
#include "sessions.h"

#define CLIENTS 3

static struct event_base *base;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *args[] = {"rendezvousd-fuzz",
			"--observer",
			"olga",
			"--admin",
			"root",
			"--max-subscriptions",
			"8",
			"--history",
			"64",
			"--max-pending",
			"64k",
			"--max-line",
			"4k",
			"--log-level",
			"error",
			"--config",
			"/dev/null",
			NULL};

	(void)argc;
	(void)argv;
	options_parse((int)(sizeof args / sizeof args[0]) - 1, args);
	base = event_base_new();
	if (base == NULL || identity_init() != 0)
		abort();
	return 0;
}

/* Read and drop what the daemon wrote to a client, so output never backs up for long. */
static void
drain(int fd)
{
	char buf[65536];

	while (recv(fd, buf, sizeof buf, MSG_DONTWAIT) > 0)
		;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_storage ss = {.ss_family = AF_UNIX};
	struct conn *conns[CLIENTS] = {0};
	int peers[CLIENTS] = {-1, -1, -1};
	size_t pos = 0;

	if (core_start(base) != 0)
		abort();
	for (int i = 0; i < CLIENTS; i++) {
		int sv[2];
		struct addr *a = addr_connect((struct sockaddr *)&ss);
		if (a == NULL || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
			abort();
		struct client *c = client_create(sv[0], (struct sockaddr *)&ss, a, false);
		if (c == NULL)
			abort();
		conns[i] = c->conn;
		peers[i] = sv[1];
	}
	while (pos < size) {
		unsigned ctl = data[pos++], who = ctl & 3;
		size_t len = ctl >> 2;

		if (len > size - pos)
			len = size - pos;
		if (who == 3) {
			/* Everyone's connection drops (a burst of peer loss). */
			for (int i = 0; i < CLIENTS; i++)
				conn_close(conns[i], "fuzz: closed");
			break;
		}
		conn_received(conns[who], (const char *)data + pos, len);
		pos += len;
		conns_flush();
		drain(peers[who]);
	}
	for (int i = 0; i < CLIENTS; i++) {
		drain(peers[i]);
		close(peers[i]);
	}
	core_stop();
	return 0;
}
