/*
 * A session record as one line of compact JSON: how the Redis store keeps a
 * session and sends it to every node (daemon/REDIS.md). Every field of
 * struct store_session except seq (the store keeps it apart).
 *
 * Any thread (no shared state). store_record_parse() fills a struct
 * store_record that owns what its session's strings point into.
 */
#ifndef RV_STORE_RECORD_H
#define RV_STORE_RECORD_H

#include <stddef.h>

#include <jansson.h>

#include "jsonw.h"
#include "store.h"

/* Write rec as one JSON object (no newline). */
void store_record_write(struct jsonw *w, const struct store_session *rec);

/* A parsed record: s's strings point into root, data and app_data. */
struct store_record {
	struct store_session s;
	json_t *root;
	char *data, *app_data; /* s.data and s.app_data, compact JSON */
};

/*
 * Parse text (len bytes) written by store_record_write() into out (seq 0).
 * 0, or -1 when it is not a record (or memory ran out); out is then empty.
 */
int store_record_parse(const char *text, size_t len, struct store_record *out);
void store_record_free(struct store_record *r);

#endif
