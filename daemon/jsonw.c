/* A JSON text writer: strings escaped as RFC 8259 requires, numbers, raw parts. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"

void
jsonw_init(struct jsonw *w)
{
	memset(w, 0, sizeof *w);
}

void
jsonw_free(struct jsonw *w)
{
	free(w->buf);
	jsonw_init(w);
}

static bool
jsonw_reserve(struct jsonw *w, size_t n)
{
	size_t cap;
	char *p;

	if (w->failed)
		return false;
	if (n <= w->cap - w->len)
		return true;
	cap = w->cap ? w->cap : 1024; /* most records and events fit: no realloc */
	while (cap - w->len < n) {
		if (cap > SIZE_MAX / 2) {
			w->failed = true;
			return false;
		}
		cap *= 2;
	}
	p = realloc(w->buf, cap);
	if (p == NULL) {
		w->failed = true;
		return false;
	}
	w->buf = p;
	w->cap = cap;
	return true;
}

void
jsonw_raw(struct jsonw *w, const char *s, size_t n)
{
	if (!jsonw_reserve(w, n))
		return;
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

/* Bytes a JSON string cannot hold as they are (and NUL, which ends a C string). */
static const bool needs_escape[256] = {
	[0x00] = true, [0x01] = true, [0x02] = true, [0x03] = true, [0x04] = true, [0x05] = true,
	[0x06] = true, [0x07] = true, [0x08] = true, [0x09] = true, [0x0a] = true, [0x0b] = true,
	[0x0c] = true, [0x0d] = true, [0x0e] = true, [0x0f] = true, [0x10] = true, [0x11] = true,
	[0x12] = true, [0x13] = true, [0x14] = true, [0x15] = true, [0x16] = true, [0x17] = true,
	[0x18] = true, [0x19] = true, [0x1a] = true, [0x1b] = true, [0x1c] = true, [0x1d] = true,
	[0x1e] = true, [0x1f] = true, ['"'] = true,  ['\\'] = true,
};

/* The escape of one byte that needs one, in out (at most 6 bytes); its length. */
static size_t
escape(unsigned char ch, char *out)
{
	static const char hex[] = "0123456789abcdef";

	out[0] = '\\';
	switch (ch) {
	case '"': out[1] = '"'; return 2;
	case '\\': out[1] = '\\'; return 2;
	case '\n': out[1] = 'n'; return 2;
	case '\r': out[1] = 'r'; return 2;
	case '\t': out[1] = 't'; return 2;
	case '\b': out[1] = 'b'; return 2;
	case '\f': out[1] = 'f'; return 2;
	default:
		memcpy(out + 1, "u00", 3);
		out[4] = hex[ch >> 4];
		out[5] = hex[ch & 0xf];
		return 6;
	}
}

void
jsonw_str(struct jsonw *w, const char *s)
{
	const unsigned char *p = (const unsigned char *)s, *run;

	if (s == NULL) {
		jsonw_lit(w, "null");
		return;
	}
	while (!needs_escape[*p])
		p++;
	if (*p == '\0') {
		/* Nothing to escape (most strings): one copy. */
		size_t n = (size_t)(p - (const unsigned char *)s);

		if (!jsonw_reserve(w, n + 2))
			return;
		w->buf[w->len] = '"';
		memcpy(w->buf + w->len + 1, s, n);
		w->buf[w->len + 1 + n] = '"';
		w->len += n + 2;
		return;
	}
	jsonw_lit(w, "\"");
	run = (const unsigned char *)s;
	for (;;) {
		char esc[6];

		jsonw_raw(w, (const char *)run, (size_t)(p - run));
		if (*p == '\0')
			break;
		jsonw_raw(w, esc, escape(*p++, esc));
		for (run = p; !needs_escape[*p]; p++)
			;
	}
	jsonw_lit(w, "\"");
}

size_t
jsonw_int_text(long long v, char out[JSONW_INT_MAX])
{
	/* Two digits at a time, from a table (as fmt libraries do). */
	static const char pairs[] = "00010203040506070809101112131415161718192021222324"
				    "25262728293031323334353637383940414243444546474849"
				    "50515253545556575859606162636465666768697071727374"
				    "75767778798081828384858687888990919293949596979899";
	char tmp[JSONW_INT_MAX];
	char *p = tmp + sizeof tmp;
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
	size_t n;

	while (u >= 100) {
		unsigned d = (unsigned)(u % 100) * 2;
		u /= 100;
		*--p = pairs[d + 1];
		*--p = pairs[d];
	}
	if (u >= 10) {
		*--p = pairs[u * 2 + 1];
		*--p = pairs[u * 2];
	} else {
		*--p = (char)('0' + u);
	}
	if (v < 0)
		*--p = '-';
	n = (size_t)(tmp + sizeof tmp - p);
	memcpy(out, p, n);
	return n;
}

void
jsonw_int(struct jsonw *w, long long v)
{
	if (!jsonw_reserve(w, JSONW_INT_MAX))
		return;
	w->len += jsonw_int_text(v, w->buf + w->len);
}

void
jsonw_bool(struct jsonw *w, bool v)
{
	if (v)
		jsonw_lit(w, "true");
	else
		jsonw_lit(w, "false");
}

void
jsonw_json(struct jsonw *w, const json_t *v)
{
	size_t room = 256, need;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (!jsonw_reserve(w, room))
			return;
		need = json_dumpb(v, w->buf + w->len, room, JSON_COMPACT | JSON_ENCODE_ANY);
		if (need == 0)
			break;
		if (need <= room) {
			w->len += need;
			return;
		}
		room = need;
	}
	w->failed = true;
}
