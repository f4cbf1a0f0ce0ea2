/*
 * lib/jsonparse.c against jansson's own reader: the same tree (members in
 * the same order, integers as integers) wherever the fast reader takes a
 * text, everything it promises to take taken, everything else left to
 * json_loadb() with jansson's error. Runs the vendored JSON test suite
 * (RV_SOURCE_ROOT/tests/corpus/json-test-suite) through both.
 */
#include <dirent.h>
#include <stdbool.h>
#include <string.h>

#include "check.h"
#include "jsonparse.h"

/* Both trees dumped alike: same members in the same order, same types. */
static bool
same_tree(json_t *a, json_t *b)
{
	char *da = json_dumps(a, JSON_COMPACT | JSON_ENCODE_ANY);
	char *db = json_dumps(b, JSON_COMPACT | JSON_ENCODE_ANY);
	bool same = da != NULL && db != NULL && strcmp(da, db) == 0 && json_equal(a, b);

	free(da);
	free(db);
	return same;
}

/* Whether the fast reader promises to take a text jansson reads as v. */
static bool
promised(json_t *v, int depth)
{
	const char *key;
	json_t *elem;
	size_t i;

	switch (json_typeof(v)) {
	case JSON_REAL: return false;
	case JSON_INTEGER:
		return json_integer_value(v) < 1000000000000000000LL &&
		       json_integer_value(v) > -1000000000000000000LL;
	case JSON_OBJECT:
		if (depth >= JSONPARSE_MAX_DEPTH)
			return false;
		json_object_foreach (v, key, elem)
			if (!promised(elem, depth + 1))
				return false;
		return true;
	case JSON_ARRAY:
		if (depth >= JSONPARSE_MAX_DEPTH)
			return false;
		json_array_foreach (v, i, elem)
			if (!promised(elem, depth + 1))
				return false;
		return true;
	default: return true;
	}
}

/*
 * One text through both readers. 1 if the fast one took it, 0 if it left
 * it to jansson, and a failed check where they disagree.
 */
static int
compare(const char *text, size_t len, const char *name)
{
	json_error_t jerr, ferr;
	json_t *ref = json_loadb(text, len, JSON_DECODE_ANY, &jerr);
	json_t *fast = jsonparse_fast(text, len);
	json_t *loaded = jsonparse_loadb(text, len, &ferr);

	if (fast != NULL) {
		CHECK_MSG(ref != NULL, "%s: taken, but jansson refuses it: %s", name, jerr.text);
		CHECK_MSG(ref == NULL || same_tree(fast, ref), "%s: not jansson's tree", name);
	} else if (ref != NULL && memchr(text, '\0', len) == NULL) {
		/* (jansson skips a NUL byte after a number: "[1\0]" is [1] to it.) */
		CHECK_MSG(!promised(ref, 0), "%s: left to jansson, though promised", name);
	}
	/* jsonparse_loadb() answers as json_loadb() does, error included. */
	CHECK_MSG((loaded == NULL) == (ref == NULL), "%s: loadb disagrees", name);
	if (loaded != NULL && ref != NULL) {
		CHECK_MSG(same_tree(loaded, ref), "%s: loadb: not jansson's tree", name);
		CHECK_MSG(ferr.position == jerr.position && ferr.line == -1,
			  "%s: position %d, jansson %d", name, ferr.position, jerr.position);
	}
	if (loaded == NULL && ref == NULL)
		CHECK_MSG(strcmp(ferr.text, jerr.text) == 0 && ferr.position == jerr.position,
			  "%s: error '%s', jansson '%s'", name, ferr.text, jerr.text);
	json_decref(ref);
	json_decref(loaded);
	json_decref(fast);
	return fast != NULL;
}

static void
test_taken(void)
{
	/* What requests look like, and every construct the fast reader takes. */
	static const char *const texts[] = {
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"session.invite\","
		"\"params\":{\"session\":\"0123456789abcdef0123456789abcdef\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":\"a-1\",\"method\":\"hello\",\"params\":{\"user\":"
		"\"alice\","
		"\"token\":null,\"resume\":true,\"watch\":false}}",
		" \t\r\n[ 1 , -2 , 0 , -0 , 999999999999999999 , -999999999999999999 ] \n",
		"{}",
		"[]",
		"[[],{},[{}],{\"a\":[]}]",
		"\"\"",
		"\"plain\"",
		"\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"",
		"\"\\u00e9\\u20AC\\ud83d\\ude00 \\u0001\"",
		"\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"",
		"{\"a\":1,\"b\":2,\"a\":3}",
		"{\"\":0,\"k\\u00e9y\":\"v\",\"\\n\":[true,false,null]}",
		"true",
		"null",
		"7",
		"[\"a string longer than the stack buffer, with an escape \\n in it: "
		"0123456789012345678901234567890123456789012345678901234567890123456789"
		"0123456789012345678901234567890123456789012345678901234567890123456789"
		"0123456789012345678901234567890123456789012345678901234567890123456789"
		"0123456789012345678901234567890123456789012345678901234567890123456789\"]",
	};
	char deep[2 * JSONPARSE_MAX_DEPTH + 1];

	for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
		CHECK_MSG(compare(texts[i], strlen(texts[i]), texts[i]) == 1, "not taken: %s",
			  texts[i]);
	/* As deep as it goes. */
	memset(deep, '[', JSONPARSE_MAX_DEPTH);
	memset(deep + JSONPARSE_MAX_DEPTH, ']', JSONPARSE_MAX_DEPTH);
	CHECK(compare(deep, 2 * JSONPARSE_MAX_DEPTH, "deep") == 1);
}

static void
test_left(void)
{
	/* Valid JSON the fast reader leaves to jansson, and invalid JSON. */
	static const char *const texts[] = {
		"1.5",
		"[1e3]",
		"[-2E-2]",
		"1000000000000000000",
		"-1000000000000000000",
		"9223372036854775808",
		"\"\\u0000\"",
		"{\"a\\u0000\":1}",
		"\"\\ud800\"",
		"\"\\udc00\"",
		"\"\\ud800\\u0041\"",
		"\"\\ud800x\"",
		"\"\\x\"",
		"\"\\u12\"",
		"\"\\u12G4\"",
		"\"\xff\"",
		"\"\xc0\xaf\"",
		"\"\xed\xa0\x80\"",
		"\"\xf4\x90\x80\x80\"",
		"\"\xe2\x82\"",
		"\"a\tb\"",
		"\"a\nb\"",
		"\"unterminated",
		"[1,]",
		"{\"a\":1,}",
		"[01]",
		"[-]",
		"[1.]",
		"tru",
		"truex",
		"nul",
		"[1 2]",
		"{\"a\" 1}",
		"{1:2}",
		"{\"a\":}",
		"[1]x",
		"[1] [2]",
		"",
		"   ",
		"\xef\xbb\xbf[]",
		"'a'",
		"[+1]",
	};
	char deep[2 * JSONPARSE_MAX_DEPTH + 3];

	for (size_t i = 0; i < sizeof texts / sizeof *texts; i++)
		CHECK_MSG(compare(texts[i], strlen(texts[i]), texts[i]) == 0, "taken: %s",
			  texts[i]);
	/* A NUL byte inside and after the text. */
	CHECK(compare("\"a\0b\"", 5, "NUL in a string") == 0);
	CHECK(compare("[1]\0", 4, "NUL after") == 0);
	CHECK(compare("[1\0]", 4, "NUL after a number") == 0);
	/* One level deeper than it goes. */
	memset(deep, '[', JSONPARSE_MAX_DEPTH + 1);
	memset(deep + JSONPARSE_MAX_DEPTH + 1, ']', JSONPARSE_MAX_DEPTH + 1);
	CHECK(compare(deep, 2 * JSONPARSE_MAX_DEPTH + 2, "too deep") == 0);
}

/* Every file of the JSON test suite: y_ (valid), n_ (invalid), i_ (either). */
static void
test_suite(void)
{
	const char *root = getenv("RV_SOURCE_ROOT");
	char dir[4096], path[8192];
	int files = 0, taken = 0;
	struct dirent *e;
	DIR *d;

	CHECK_MSG(root != NULL, "RV_SOURCE_ROOT is not set (meson test sets it)");
	if (root == NULL)
		return;
	snprintf(dir, sizeof dir, "%s/tests/corpus/json-test-suite/test_parsing", root);
	d = opendir(dir);
	CHECK_MSG(d != NULL, "cannot open %s", dir);
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		static char buf[1 << 20];
		size_t len;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if ((f = fopen(path, "rb")) == NULL)
			continue;
		len = fread(buf, 1, sizeof buf, f);
		fclose(f);
		files++;
		taken += compare(buf, len, e->d_name);
	}
	closedir(d);
	CHECK_MSG(files > 300, "only %d files in %s", files, dir);
	printf("json test suite: %d files, %d taken by the fast reader\n", files, taken);
}

int
main(void)
{
	test_taken();
	test_left();
	test_suite();
	return check_done("jsonparse");
}
