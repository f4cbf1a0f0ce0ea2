/*
 * Reading JSON text into jansson trees faster than json_loadb(): every
 * request the daemon takes and every message a client receives is parsed
 * here (rv_msg_decode()). jansson's reader goes through a byte stream, a
 * saved-text buffer and strtoll() per token; this one reads the buffer in
 * place and builds the same tree with jansson's constructors.
 *
 * It takes the common case only: objects, arrays, strings (escapes
 * included), integers of up to 18 digits, true, false, null, nested at
 * most JSONPARSE_MAX_DEPTH deep. For anything else (reals, larger
 * integers, deeper nesting, NUL bytes, and every kind of invalid input)
 * jsonparse_fast() gives up, and jsonparse_loadb() asks json_loadb(), so
 * that what is accepted, the tree it gives and the error reported for what
 * is refused are jansson's own (tests/unit/test_jsonparse.c and
 * fuzz/fuzz_json.c check that the two agree).
 *
 * Any thread (no shared state); callers in lib/ only (rv_msg_decode()), and
 * the tests and fuzz target that compare it with jansson.
 */
#ifndef RV_JSONPARSE_H
#define RV_JSONPARSE_H

#include <stddef.h>

#include <jansson.h>

/* Nesting this fast reader takes; deeper texts go to jansson (2048). */
#define JSONPARSE_MAX_DEPTH 32

/*
 * The tree of buf[0..len), as json_loadb(buf, len, JSON_DECODE_ANY) would
 * give it: a new reference, or NULL where this reader does not take the
 * text (see above) or memory ran out. Never sets an error.
 */
json_t *jsonparse_fast(const char *buf, size_t len);

/*
 * json_loadb(buf, len, JSON_DECODE_ANY, err), through jsonparse_fast()
 * first: a new reference, or NULL with err (may be NULL) filled by jansson.
 */
json_t *jsonparse_loadb(const char *buf, size_t len, json_error_t *err);

#endif
