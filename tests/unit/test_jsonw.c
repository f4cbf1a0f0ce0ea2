/* The JSON text writer: every string it writes parses back to itself. */
#include <string.h>

#include "check.h"
#include "jsonw.h"

static void
check_roundtrip(const char *s)
{
	struct jsonw w;
	json_t *v;

	jsonw_init(&w);
	jsonw_str(&w, s);
	CHECK(jsonw_ok(&w));
	v = json_loadb(w.buf, w.len, JSON_DECODE_ANY, NULL);
	CHECK_MSG(json_is_string(v) && strcmp(json_string_value(v), s) == 0, "%.*s", (int)w.len,
		  w.buf);
	json_decref(v);
	jsonw_free(&w);
}

int
main(void)
{
	static const long long ints[] = {0,
					 1,
					 -1,
					 9,
					 10,
					 -10,
					 42,
					 99,
					 100,
					 101,
					 -999,
					 1000,
					 12345,
					 1000000,
					 -9223372036854775807LL - 1,
					 9223372036854775807LL,
					 1795482337811LL};
	struct jsonw w;
	char all[128];
	json_t *v;

	check_roundtrip("");
	check_roundtrip("alice");
	check_roundtrip("quote\" backslash\\ slash/");
	check_roundtrip("tab\t newline\n cr\r bell\a nul-free \x01\x1f \x7f");
	check_roundtrip("\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	for (int i = 1; i < 128; i++)
		all[i - 1] = (char)i;
	all[127] = '\0';
	check_roundtrip(all);

	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
		jsonw_init(&w);
		jsonw_int(&w, ints[i]);
		v = json_loadb(w.buf, w.len, JSON_DECODE_ANY, NULL);
		CHECK_MSG(json_is_integer(v) && json_integer_value(v) == ints[i], "%lld", ints[i]);
		json_decref(v);
		jsonw_free(&w);
	}

	/* A whole object, with a nested jansson value and null. */
	jsonw_init(&w);
	jsonw_lit(&w, "{\"a\":");
	jsonw_str(&w, NULL);
	jsonw_lit(&w, ",\"b\":");
	jsonw_bool(&w, true);
	jsonw_lit(&w, ",\"c\":");
	v = json_pack("{s:[i,s,f]}", "x", 1, "y\"", 0.5);
	jsonw_json(&w, v);
	json_decref(v);
	jsonw_lit(&w, "}");
	v = json_loadb(w.buf, w.len, 0, NULL);
	CHECK(v != NULL && json_is_null(json_object_get(v, "a")) &&
	      json_is_true(json_object_get(v, "b")) &&
	      json_array_size(json_object_get(json_object_get(v, "c"), "x")) == 3);
	json_decref(v);
	/* A value larger than the first guess of the dump. */
	v = json_array();
	for (int i = 0; i < 1000; i++)
		json_array_append_new(v, json_string("0123456789"));
	jsonw_json(&w, v);
	CHECK(jsonw_ok(&w) && w.len > 13000);
	json_decref(v);
	jsonw_free(&w);
	return check_done("test_jsonw");
}
