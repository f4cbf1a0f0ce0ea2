/*
 * libFuzzer target: lib/jsonparse.c, the reader every request goes
 * through, against jansson's own. Wherever the fast reader takes a text,
 * jansson must take it too and give the same tree (members in the same
 * order, the same types); jsonparse_loadb() must answer exactly as
 * json_loadb() does, error text and position included.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jsonparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same_tree(json_t *a, json_t *b)
{
	char *da = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY);
	char *db = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
	int same = da != NULL && db != NULL && strcmp(da, db) == 0 && json_equal(a, b);

	free(da);
	free(db);
	return same;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	json_error_t jerr, ferr;
	json_t *ref = json_loadb(text, size, JSON_DECODE_ANY, &jerr);
	json_t *fast = jsonparse_fast(text, size);
	json_t *loaded = jsonparse_loadb(text, size, &ferr);

	if (fast != NULL && (ref == NULL || !same_tree(fast, ref)))
		abort(); /* taken, but not as jansson reads it */
	if ((loaded == NULL) != (ref == NULL))
		abort();
	if (loaded != NULL && (!same_tree(loaded, ref) || ferr.position != jerr.position))
		abort();
	if (loaded == NULL &&
	    (strcmp(ferr.text, jerr.text) != 0 || ferr.position != jerr.position ||
	     ferr.line != jerr.line || ferr.column != jerr.column))
		abort();
	json_decref(ref);
	json_decref(fast);
	json_decref(loaded);
	return 0;
}
