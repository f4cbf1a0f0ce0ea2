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
	cap = w->cap ? w->cap : 256;
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

void
jsonw_str(struct jsonw *w, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n;

	if (s == NULL) {
		jsonw_lit(w, "null");
		return;
	}
	n = strlen(s);
	/* Worst case: every byte becomes \u00XX. */
	if (n > (SIZE_MAX - 2) / 6 || !jsonw_reserve(w, n * 6 + 2)) {
		w->failed = true;
		return;
	}
	char *o = w->buf + w->len;
	*o++ = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		unsigned char ch = *p;
		if (ch == '"' || ch == '\\') {
			*o++ = '\\';
			*o++ = (char)ch;
		} else if (ch < 0x20) {
			*o++ = '\\';
			switch (ch) {
			case '\n': *o++ = 'n'; break;
			case '\r': *o++ = 'r'; break;
			case '\t': *o++ = 't'; break;
			case '\b': *o++ = 'b'; break;
			case '\f': *o++ = 'f'; break;
			default:
				*o++ = 'u';
				*o++ = '0';
				*o++ = '0';
				*o++ = hex[ch >> 4];
				*o++ = hex[ch & 0xf];
			}
		} else {
			*o++ = (char)ch;
		}
	}
	*o++ = '"';
	w->len = (size_t)(o - w->buf);
}

void
jsonw_int(struct jsonw *w, long long v)
{
	char tmp[24];
	char *p = tmp + sizeof tmp;
	unsigned long long u = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	jsonw_raw(w, p, (size_t)(tmp + sizeof tmp - p));
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
