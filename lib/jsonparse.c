/* Reading JSON text into jansson trees in place, jansson's reader behind it (jsonparse.h). */
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonparse.h"

/* Strings up to this long are decoded on the stack, longer ones on the heap. */
#define STACK_STRING 256

struct reader {
	const unsigned char *p, *end;
	int depth; /* containers open around p */
};

static json_t *read_value(struct reader *r);

static void
skip_space(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\r' || *r->p == '\t'))
		r->p++;
}

/*
 * The length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or 0.
 */
static size_t
utf8_length(const unsigned char *p, const unsigned char *end)
{
	uint32_t cp;
	size_t n;

	if (p[0] >= 0xC2 && p[0] <= 0xDF) {
		n = 2;
		cp = p[0] & 0x1Fu;
	} else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
		n = 3;
		cp = p[0] & 0x0Fu;
	} else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
		n = 4;
		cp = p[0] & 0x07u;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3Fu);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

/*
 * The closing quote of the string whose first byte (after its opening
 * quote) is at q, or NULL if it has none, holds a control character or
 * bytes that are not UTF-8. *escaped is set if a backslash was seen; the
 * escapes themselves are checked as they are decoded.
 */
static const unsigned char *
string_close(const unsigned char *q, const unsigned char *end, bool *escaped)
{
	while (q < end) {
		size_t n;

		if (*q == '"')
			return q;
		if (*q == '\\') {
			if (end - q < 2)
				return NULL;
			*escaped = true;
			q += 2;
		} else if (*q < 0x20) {
			return NULL;
		} else if (*q < 0x80) {
			q++;
		} else if ((n = utf8_length(q, end)) != 0) {
			q += n;
		} else {
			return NULL;
		}
	}
	return NULL;
}

/* The four hex digits at p (before stop) as a number, or -1. */
static int32_t
hex4(const unsigned char *p, const unsigned char *stop)
{
	int32_t v = 0;

	if (stop - p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		unsigned c = p[i];

		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (int32_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (int32_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (int32_t)(c - 'A' + 10);
		else
			return -1;
	}
	return v;
}

static size_t
utf8_put(uint32_t cp, char *o)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/*
 * Decode the escapes of [p, stop) (every backslash there is followed by a
 * byte before stop: string_close() skipped them in pairs) into out, which
 * has room for stop - p bytes: no escape decodes longer than it is written.
 * The decoded length, or -1 for an escape jansson refuses (an unknown one,
 * \u0000, a lone or mismatched surrogate).
 */
static ptrdiff_t
unescape(const unsigned char *p, const unsigned char *stop, char *out)
{
	char *o = out;

	while (p < stop) {
		int32_t cp, low;

		if (*p != '\\') {
			*o++ = (char)*p++;
			continue;
		}
		p++;
		switch (*p++) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '/': *o++ = '/'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u':
			if ((cp = hex4(p, stop)) <= 0 || (cp >= 0xDC00 && cp <= 0xDFFF))
				return -1;
			p += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (stop - p < 6 || p[0] != '\\' || p[1] != 'u' ||
				    (low = hex4(p + 2, stop)) < 0xDC00 || low > 0xDFFF)
					return -1;
				p += 6;
				cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
			}
			o += utf8_put((uint32_t)cp, o);
			break;
		default: return -1;
		}
	}
	return o - out;
}

/*
 * The string at r->p (its opening quote), decoded: *s and *n point into
 * the text, or into stack (STACK_STRING bytes) or *heap (the caller frees
 * it) where it had escapes. 0, or -1 where this reader does not take it.
 */
static int
read_string(struct reader *r, char *stack, const char **s, size_t *n, char **heap)
{
	const unsigned char *start = r->p + 1, *close;
	bool escaped = false;
	char *out = stack;
	ptrdiff_t len;

	*heap = NULL;
	if ((close = string_close(start, r->end, &escaped)) == NULL)
		return -1;
	r->p = close + 1;
	if (!escaped) {
		*s = (const char *)start;
		*n = (size_t)(close - start);
		return 0;
	}
	if (close - start > STACK_STRING && (out = *heap = malloc((size_t)(close - start))) == NULL)
		return -1;
	if ((len = unescape(start, close, out)) < 0) {
		free(*heap);
		*heap = NULL;
		return -1;
	}
	*s = out;
	*n = (size_t)len;
	return 0;
}

/*
 * An integer jansson would read as one: -?(0|[1-9][0-9]*) not followed by
 * a fraction or an exponent, here at most 18 digits so that it cannot
 * overflow (longer ones, and reals, are left to jansson).
 */
static json_t *
read_integer(struct reader *r)
{
	const unsigned char *p = r->p;
	bool negative = *p == '-';
	json_int_t v = 0;
	int digits = 0;

	if (negative)
		p++;
	if (p >= r->end || *p < '0' || *p > '9')
		return NULL;
	if (*p == '0') {
		p++;
	} else {
		while (p < r->end && *p >= '0' && *p <= '9') {
			if (++digits > 18)
				return NULL;
			v = v * 10 + (*p++ - '0');
		}
	}
	if (p < r->end && (*p == '.' || *p == 'e' || *p == 'E' || (*p >= '0' && *p <= '9')))
		return NULL;
	r->p = p;
	return json_integer(negative ? -v : v);
}

static json_t *
read_literal(struct reader *r, const char *word, size_t len, json_t *value)
{
	if ((size_t)(r->end - r->p) < len || memcmp(r->p, word, len) != 0)
		return NULL;
	r->p += len;
	return value;
}

/*
 * Past r->p if it is c (and the space after it); whether it was. Opening,
 * separating and closing containers.
 */
static bool
take(struct reader *r, char c)
{
	if (r->p >= r->end || *r->p != (unsigned char)c)
		return false;
	r->p++;
	skip_space(r);
	return true;
}

static json_t *
read_object(struct reader *r)
{
	json_t *object = json_object();

	if (object == NULL)
		return NULL;
	take(r, '{');
	if (take(r, '}'))
		return object;
	for (;;) {
		char stack[STACK_STRING], *heap;
		const char *key;
		size_t klen;
		json_t *value;
		int failed;

		if (r->p >= r->end || *r->p != '"' ||
		    read_string(r, stack, &key, &klen, &heap) != 0)
			break;
		skip_space(r);
		if (!take(r, ':')) {
			free(heap);
			break;
		}
		value = read_value(r);
		/* The value is stolen, also when this fails. */
		failed = value == NULL ||
			 json_object_setn_new_nocheck(object, key, klen, value) != 0;
		free(heap);
		if (failed)
			break;
		skip_space(r);
		if (take(r, ','))
			continue;
		if (take(r, '}'))
			return object;
		break;
	}
	json_decref(object);
	return NULL;
}

static json_t *
read_array(struct reader *r)
{
	json_t *array = json_array();

	if (array == NULL)
		return NULL;
	take(r, '[');
	if (take(r, ']'))
		return array;
	for (;;) {
		json_t *elem = read_value(r);

		if (elem == NULL || json_array_append_new(array, elem) != 0)
			break;
		skip_space(r);
		if (take(r, ','))
			continue;
		if (take(r, ']'))
			return array;
		break;
	}
	json_decref(array);
	return NULL;
}

static json_t *
read_value(struct reader *r)
{
	char stack[STACK_STRING], *heap;
	const char *s;
	size_t n;
	json_t *v;

	if (r->p >= r->end)
		return NULL;
	switch (*r->p) {
	case '{':
	case '[':
		if (r->depth >= JSONPARSE_MAX_DEPTH)
			return NULL;
		r->depth++;
		v = *r->p == '{' ? read_object(r) : read_array(r);
		r->depth--;
		return v;
	case '"':
		if (read_string(r, stack, &s, &n, &heap) != 0)
			return NULL;
		v = json_stringn_nocheck(s, n);
		free(heap);
		return v;
	case 't': return read_literal(r, "true", 4, json_true());
	case 'f': return read_literal(r, "false", 5, json_false());
	case 'n': return read_literal(r, "null", 4, json_null());
	default: return read_integer(r);
	}
}

json_t *
jsonparse_fast(const char *buf, size_t len)
{
	struct reader r = {(const unsigned char *)buf, (const unsigned char *)buf + len, 0};
	json_t *v;

	if (buf == NULL)
		return NULL;
	skip_space(&r);
	if ((v = read_value(&r)) == NULL)
		return NULL;
	skip_space(&r);
	if (r.p != r.end) {
		json_decref(v);
		return NULL;
	}
	return v;
}

json_t *
jsonparse_loadb(const char *buf, size_t len, json_error_t *err)
{
	json_t *v = jsonparse_fast(buf, len);

	if (v == NULL)
		return json_loadb(buf, len, JSON_DECODE_ANY, err);
	if (err != NULL) {
		/* As json_loadb() leaves it after a success. */
		memset(err, 0, sizeof *err);
		err->line = -1;
		err->column = -1;
		err->position = len > INT_MAX ? INT_MAX : (int)len;
		memcpy(err->source, "<buffer>", sizeof "<buffer>");
	}
	return v;
}
