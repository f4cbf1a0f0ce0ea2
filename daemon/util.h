/*
 * Small helpers: clocks, randomness, session ids.
 *
 * Clocks and option parsing: any thread. Randomness and session ids: the
 * loop thread only (one pool of random bytes). Nothing returned needs
 * freeing unless said.
 */
#ifndef RV_UTIL_H
#define RV_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The object of type that embeds *ptr as member. */
#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define SESSION_ID_BYTES 16
#define SESSION_ID_HEX (SESSION_ID_BYTES * 2)

/* Wall-clock time in Unix milliseconds (what goes on the wire). */
int64_t now_ms(void);

/* Fill buf with n bytes from the kernel's CSPRNG (small requests through a pool); 0 or -1. */
int random_bytes(void *buf, size_t n);

/* Lower-case hex of a session id into out (SESSION_ID_HEX + 1 bytes). */
void session_id_format(const uint8_t id[SESSION_ID_BYTES], char out[SESSION_ID_HEX + 1]);
/* Parse a session id; false unless s is exactly 32 hex digits. */
bool session_id_parse(const char *s, uint8_t id[SESSION_ID_BYTES]);

struct sockaddr;
/* "ADDR:PORT", "[ADDR6]:PORT", "unix:PATH" or "unix" (an unnamed peer). */
void sockaddr_format(const struct sockaddr *sa, char *buf, size_t len);

/* Parse seconds with an optional fraction ("0.25") into milliseconds. */
int parse_seconds_ms(const char *s, int64_t *ms);
/* Parse a byte count with an optional k/m/g suffix (powers of 1024). */
int parse_size(const char *s, size_t *out);

#endif
