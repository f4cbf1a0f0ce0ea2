/* Session ids, option values. */
#include <string.h>

#include "check.h"
#include "util.h"

int
main(void)
{
	uint8_t id[SESSION_ID_BYTES], back[SESSION_ID_BYTES], other[SESSION_ID_BYTES];
	char hex[SESSION_ID_HEX + 1];
	int64_t ms;
	size_t sz;

	CHECK(random_bytes(id, sizeof id) == 0);
	CHECK(random_bytes(other, sizeof other) == 0);
	CHECK(memcmp(id, other, sizeof id) != 0);
	session_id_format(id, hex);
	CHECK(strlen(hex) == SESSION_ID_HEX);
	CHECK(session_id_parse(hex, back) && memcmp(id, back, sizeof id) == 0);
	CHECK(!session_id_parse("abc", back));
	CHECK(!session_id_parse("zz000000000000000000000000000000", back));
	CHECK(!session_id_parse("000000000000000000000000000000000", back));

	CHECK(parse_seconds_ms("0.25", &ms) == 0 && ms == 250);
	CHECK(parse_seconds_ms("300", &ms) == 0 && ms == 300000);
	CHECK(parse_seconds_ms("-1", &ms) == -1);
	CHECK(parse_seconds_ms("1x", &ms) == -1);
	CHECK(parse_seconds_ms("nan", &ms) == -1);
	CHECK(parse_seconds_ms("", &ms) == -1);

	CHECK(parse_size("64k", &sz) == 0 && sz == 65536);
	CHECK(parse_size("32M", &sz) == 0 && sz == 32u * 1024 * 1024);
	CHECK(parse_size("1gb", &sz) == 0 && sz == 1024u * 1024 * 1024);
	CHECK(parse_size("100", &sz) == 0 && sz == 100);
	CHECK(parse_size("-1", &sz) == -1);
	CHECK(parse_size("5q", &sz) == -1);
	CHECK(parse_size("99999999999999999999999", &sz) == -1);
	return check_done("test_util");
}
