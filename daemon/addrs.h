/*
 * Remote addresses: connections per IP address (for
 * --max-connections-per-address) and failed hellos per IP address (for
 * --max-auth-failures, a token bucket refilled over a minute). An address is
 * forgotten once it has no connection and its failures are forgiven.
 *
 * Loop thread only. An address is owned here: addr_connect() hands out a
 * reference, which addr_disconnect() gives back.
 */
#ifndef RV_ADDRS_H
#define RV_ADDRS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct addr;
struct event_base;

int addrs_init(struct event_base *base);
void addrs_finish(void);

/*
 * Count a new connection from sa. Returns its address (hold it until
 * addr_disconnect()), or NULL: errno EAGAIN when the address has its
 * --max-connections-per-address already, ENOMEM.
 */
struct addr *addr_connect(const struct sockaddr *sa);
void addr_disconnect(struct addr *a);

/* Whether the address has used up its failed hellos for now. */
bool addr_auth_blocked(struct addr *a);
/* Count a failed hello; returns whether the address is now blocked. */
bool addr_auth_failed(struct addr *a);

#endif
