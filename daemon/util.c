/* Small helpers: clocks, randomness, session ids, option values. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "util.h"

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
getrandom_all(uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t r = getrandom(p, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/*
 * Small requests (a session id each) are served from a pool filled 4 KiB at
 * a time: one getrandom() per 256 sessions instead of one per session. Each
 * byte is handed out once and wiped from the pool.
 */
int
random_bytes(void *buf, size_t n)
{
	static uint8_t pool[4096];
	static size_t left;

	if (n > sizeof pool / 16)
		return getrandom_all(buf, n);
	if (left < n) {
		if (getrandom_all(pool, sizeof pool) != 0)
			return -1;
		left = sizeof pool;
	}
	left -= n;
	memcpy(buf, pool + left, n);
	memset(pool + left, 0, n);
	return 0;
}

void
session_id_format(const uint8_t id[SESSION_ID_BYTES], char out[SESSION_ID_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < SESSION_ID_BYTES; i++) {
		out[2 * i] = hex[id[i] >> 4];
		out[2 * i + 1] = hex[id[i] & 0xf];
	}
	out[SESSION_ID_HEX] = '\0';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool
session_id_parse(const char *s, uint8_t id[SESSION_ID_BYTES])
{
	if (strlen(s) != SESSION_ID_HEX)
		return false;
	for (size_t i = 0; i < SESSION_ID_BYTES; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		id[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

int
parse_seconds_ms(const char *s, int64_t *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (*s == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < 0 || v > 1e9)
		return -1;
	*ms = (int64_t)llround(v * 1000.0);
	return 0;
}

int
parse_size(const char *s, size_t *out)
{
	unsigned long long v, mult = 1;
	char *end;

	errno = 0;
	if (*s < '0' || *s > '9')
		return -1;
	v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	switch (*end) {
	case '\0': break;
	case 'k':
	case 'K':
		mult = 1024ull;
		end++;
		break;
	case 'm':
	case 'M':
		mult = 1024ull * 1024;
		end++;
		break;
	case 'g':
	case 'G':
		mult = 1024ull * 1024 * 1024;
		end++;
		break;
	default: return -1;
	}
	if ((*end == 'b' || *end == 'B') && mult != 1)
		end++;
	if (*end != '\0' || v > SIZE_MAX / mult)
		return -1;
	*out = (size_t)(v * mult);
	return 0;
}

void
sockaddr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;
		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof host);
		snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;
		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof host);
		snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
	} else if (sa->sa_family == AF_UNIX) {
		const struct sockaddr_un *sun = (const struct sockaddr_un *)(const void *)sa;
		if (sun->sun_path[0] != '\0')
			snprintf(buf, len, "unix:%.*s", (int)sizeof sun->sun_path, sun->sun_path);
		else
			snprintf(buf, len, "unix");
	} else {
		snprintf(buf, len, "local");
	}
}
