/*
 * A JSON text writer for the hot path: records and events are written as
 * bytes into one growing buffer, without building a jansson tree. Errors
 * (out of memory) are sticky: check jsonw_ok() once at the end.
 *
 * Any thread (no shared state). The buffer is owned by the struct jsonw;
 * jsonw_free() releases it.
 */
#ifndef RV_JSONW_H
#define RV_JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <jansson.h>

struct jsonw {
	char *buf;
	size_t len, cap;
	bool failed;
};

void jsonw_init(struct jsonw *w);
/* Give the buffer back (the writer is empty afterwards). */
void jsonw_free(struct jsonw *w);
static inline bool
jsonw_ok(const struct jsonw *w)
{
	return !w->failed;
}

/* Append bytes as they are (punctuation, keys written as literals). */
void jsonw_raw(struct jsonw *w, const char *s, size_t n);
#define jsonw_lit(w, s) jsonw_raw((w), (s), sizeof(s) - 1)
/* A JSON string, quoted and escaped; NULL writes null. s is valid UTF-8. */
void jsonw_str(struct jsonw *w, const char *s);
/* The characters of a string known to need no escaping (state names). */
#define jsonw_str_plain(w, s) jsonw_raw((w), (s), strlen(s))
void jsonw_int(struct jsonw *w, long long v);
/* The longest integer jsonw_int_text() writes: "-9223372036854775808". */
#define JSONW_INT_MAX 20
/* v in decimal at out (not terminated); its length. */
size_t jsonw_int_text(long long v, char out[JSONW_INT_MAX]);
void jsonw_bool(struct jsonw *w, bool v);
/* Any jansson value (borrowed), compact. */
void jsonw_json(struct jsonw *w, const json_t *v);

#endif
