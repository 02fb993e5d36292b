/* Unit tests for gateway/net/h2check.c: RFC 9113 §8 request rules, field
 * by field and at the ends of header blocks and streams (the wire cases,
 * against a gateway, are in tests/attack/test_h2_messaging.py). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <string.h>

#include "h2check.h"

static enum h2c_kind field(struct h2_msg *m, const char *n, const char *v)
{
	return h2c_field(m, (const uint8_t *)n, strlen(n), (const uint8_t *)v, strlen(v), false);
}

static enum h2c_kind trailer(struct h2_msg *m, const char *n, const char *v)
{
	return h2c_field(m, (const uint8_t *)n, strlen(n), (const uint8_t *)v, strlen(v), true);
}

/* A request's usual pseudo-headers, all accepted. */
static void base(struct h2_msg *m, const char *method, const char *path)
{
	memset(m, 0, sizeof(*m));
	assert_int_equal(field(m, ":method", method), H2C_METHOD);
	assert_int_equal(field(m, ":scheme", "http"), H2C_PSEUDO);
	assert_int_equal(field(m, ":path", path), H2C_PATH);
	assert_int_equal(field(m, ":authority", "127.0.0.1:8000"), H2C_PSEUDO);
}

/* A fresh request of the fields in kv (name, value, ..., NULL), through
 * the end of its header block: whether it is well-formed. */
static bool block_ok(const char *const *kv, bool end_stream)
{
	struct h2_msg m;

	memset(&m, 0, sizeof(m));
	for (; kv[0]; kv += 2)
		field(&m, kv[0], kv[1]);
	return h2c_headers_end(&m, false, end_stream);
}

#define BLOCK(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void test_well_formed(void **state)
{
	struct h2_msg m;

	(void)state;
	base(&m, "GET", "/v2/health/live");
	assert_int_equal(field(&m, "accept", "*/*"), H2C_REGULAR);
	assert_int_equal(field(&m, "te", "Trailers"), H2C_REGULAR);
	assert_int_equal(field(&m, "x-a", "a b\tc\x80"), H2C_REGULAR);
	assert_int_equal(field(&m, "x-empty", ""), H2C_REGULAR);
	assert_true(h2c_headers_end(&m, false, true));
	assert_false(h2c_malformed(&m));
}

static void test_pseudo_rules(void **state)
{
	struct h2_msg m;

	(void)state;
	base(&m, "GET", "/");
	assert_int_equal(field(&m, ":method", "GET"), H2C_MALFORMED);	/* twice */
	assert_true(h2c_malformed(&m));
	assert_false(h2c_headers_end(&m, false, true));	/* stays malformed */

	base(&m, "GET", "/");
	assert_int_equal(field(&m, "x-a", "1"), H2C_REGULAR);
	assert_int_equal(field(&m, ":authority", "b"), H2C_MALFORMED);	/* after a regular */

	const char *bad[][2] = { { ":status", "200" }, { ":protocol", "websocket" },
				 { ":foo", "x" }, { ":", "x" }, { ":PATH", "/" } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		base(&m, "GET", "/");
		assert_int_equal(field(&m, bad[i][0], bad[i][1]), H2C_MALFORMED);
	}
	/* missing ones: the block's end says so */
	assert_false(block_ok(BLOCK(":method", "GET", ":path", "/", ":authority", "a"), true));
	assert_false(block_ok(BLOCK(":method", "GET", ":scheme", "http", ":path", "/"), true));
	assert_true(block_ok(BLOCK(":method", "GET", ":scheme", "http", ":path", "/",
				   "host", "a"), true));
}

static void test_pseudo_values(void **state)
{
	struct h2_msg m;

	(void)state;
	memset(&m, 0, sizeof(m));
	assert_int_equal(field(&m, ":method", "GE T"), H2C_MALFORMED);
	memset(&m, 0, sizeof(m));
	assert_int_equal(field(&m, ":method", ""), H2C_MALFORMED);
	memset(&m, 0, sizeof(m));
	assert_int_equal(field(&m, ":method", "g!t"), H2C_METHOD);	/* a token */
	memset(&m, 0, sizeof(m));
	assert_int_equal(field(&m, ":path", "/a b"), H2C_MALFORMED);
	memset(&m, 0, sizeof(m));
	assert_int_equal(field(&m, ":path", "/a\x7f"), H2C_MALFORMED);
	memset(&m, 0, sizeof(m));
	assert_int_equal(field(&m, ":scheme", "http "), H2C_MALFORMED);
	memset(&m, 0, sizeof(m));
	assert_int_equal(field(&m, ":authority", "a/b"), H2C_MALFORMED);
	memset(&m, 0, sizeof(m));
	assert_int_equal(field(&m, ":authority", "u:p@[::1]:80"), H2C_PSEUDO);
	/* http(s) needs an absolute path, or "*" with OPTIONS */
	base(&m, "GET", "v2");
	assert_false(h2c_headers_end(&m, false, true));
	base(&m, "GET", "*");
	assert_false(h2c_headers_end(&m, false, true));
	base(&m, "OPTIONS", "*");
	assert_true(h2c_headers_end(&m, false, true));
	assert_true(block_ok(BLOCK(":method", "GET", ":scheme", "foo", ":path", "v2",
				   ":authority", "a"), true));
}

static void test_connect(void **state)
{
	(void)state;
	assert_true(block_ok(BLOCK(":method", "CONNECT", ":authority", "a:443"), false));
	assert_false(block_ok(BLOCK(":method", "CONNECT", ":authority", "a:443", ":path", "/"),
			      false));
	assert_false(block_ok(BLOCK(":method", "CONNECT", "host", "a:443"), false));
}

static void test_field_names_and_values(void **state)
{
	const char *bad[][2] = {
		{ "X-Foo", "1" }, { "x foo", "1" }, { "x@foo", "1" }, { "", "1" },
		{ "x-a", " a" }, { "x-a", "a\t" }, { "x-a", "a\rb" }, { "x-a", "a\x01" },
		{ "x-a", "\x7f" }, { "connection", "close" }, { "keep-alive", "1" },
		{ "proxy-connection", "x" }, { "transfer-encoding", "chunked" },
		{ "upgrade", "h2c" }, { "te", "gzip" }, { "te", "" }, { "host", "" },
		{ "host", "a b" },
	};
	struct h2_msg m;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		base(&m, "GET", "/");
		assert_int_equal(field(&m, bad[i][0], bad[i][1]), H2C_MALFORMED);
		assert_true(h2c_malformed(&m));
	}
	base(&m, "GET", "/");
	assert_int_equal(field(&m, "x!#$%&'*+-.^_`|~09", "v"), H2C_REGULAR);
	assert_int_equal(field(&m, "host", "a"), H2C_REGULAR);
	assert_int_equal(field(&m, "host", "a"), H2C_MALFORMED);	/* twice */
}

static void test_content_length(void **state)
{
	const char *bad[] = { "", "abc", "-1", "+5", "0x10", "5,5", " 5",
			      "9223372036854775808", "99999999999999999999" };
	struct h2_msg m;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		base(&m, "POST", "/");
		assert_int_equal(field(&m, "content-length", bad[i]), H2C_MALFORMED);
	}
	base(&m, "POST", "/");
	assert_int_equal(field(&m, "content-length", "9223372036854775807"), H2C_REGULAR);
	assert_int_equal(m.clen, INT64_MAX);
	assert_false(h2c_headers_end(&m, false, true));	/* none of it came */

	base(&m, "POST", "/");
	assert_int_equal(field(&m, "content-length", "0010"), H2C_REGULAR);
	assert_int_equal(m.clen, 10);
	assert_int_equal(field(&m, "content-length", "10"), H2C_MALFORMED);	/* twice */

	base(&m, "POST", "/");
	field(&m, "content-length", "10");
	assert_true(h2c_headers_end(&m, false, false));
	assert_true(h2c_data(&m, 4));
	assert_true(h2c_data(&m, 6));
	assert_true(h2c_end_stream(&m));
	assert_false(h2c_data(&m, 1));	/* past it */

	base(&m, "POST", "/");
	field(&m, "content-length", "10");
	assert_true(h2c_headers_end(&m, false, false));
	assert_true(h2c_data(&m, 9));
	assert_false(h2c_end_stream(&m));	/* short */

	base(&m, "POST", "/");	/* none declared: any length */
	assert_true(h2c_headers_end(&m, false, false));
	assert_true(h2c_data(&m, 1 << 20));
	assert_true(h2c_end_stream(&m));
}

static void test_trailers(void **state)
{
	struct h2_msg m;

	(void)state;
	base(&m, "POST", "/");
	assert_true(h2c_headers_end(&m, false, false));
	assert_int_equal(trailer(&m, "x-t", "1"), H2C_REGULAR);
	assert_true(h2c_headers_end(&m, true, true));

	base(&m, "POST", "/");
	assert_true(h2c_headers_end(&m, false, false));
	assert_false(h2c_headers_end(&m, true, false));	/* must end the stream */

	base(&m, "POST", "/");
	assert_true(h2c_headers_end(&m, false, false));
	assert_int_equal(trailer(&m, ":path", "/"), H2C_MALFORMED);

	base(&m, "POST", "/");	/* a content-length in trailers still counts */
	assert_true(h2c_headers_end(&m, false, false));
	assert_true(h2c_data(&m, 3));
	assert_int_equal(trailer(&m, "content-length", "4"), H2C_REGULAR);
	assert_false(h2c_headers_end(&m, true, true));
}

/* The byte classes by the book, one byte at a time. */
static bool ref_name_byte(int b)
{
	return (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') ||
	       (b && strchr("!#$%&'*+-.^_`|~", b));
}

static bool ref_value_byte(int b)
{
	return b == '\t' || (b >= 0x20 && b != 0x7f);
}

/* Every byte value at every place of names, values and paths of lengths
 * around the eight-byte words the checks read (and the overlapping last
 * one): the same answer as byte by byte. */
static void test_every_byte_everywhere(void **state)
{
	static const size_t lens[] = { 1, 2, 7, 8, 9, 15, 16, 17, 24, 31 };
	uint8_t buf[40];
	struct h2_msg m;

	(void)state;
	for (size_t li = 0; li < sizeof(lens) / sizeof(lens[0]); li++) {
		size_t n = lens[li];

		for (size_t pos = 0; pos < n; pos++) {
			for (int b = 0; b < 256; b++) {
				bool inner = pos > 0 && pos + 1 < n;
				bool want;

				memset(buf, 'x', n);
				buf[0] = 'x';
				buf[pos] = (uint8_t)b;
				memset(&m, 0, sizeof(m));
				m.flags = 1u << 7;	/* past the pseudo-headers */
				want = ref_name_byte(b);
				assert_int_equal(h2c_field(&m, buf, n, (const uint8_t *)"v", 1, false) ==
						 H2C_REGULAR, (buf[0] == ':' && n > 0) ? false : want);
				memset(&m, 0, sizeof(m));
				want = ref_value_byte(b) && (inner || (b != ' ' && b != '\t'));
				assert_int_equal(h2c_field(&m, (const uint8_t *)"x-v", 3, buf, n, false) ==
						 H2C_REGULAR, want);
				memset(&m, 0, sizeof(m));
				want = b > 0x20 && b != 0x7f;
				assert_int_equal(h2c_field(&m, (const uint8_t *)":path", 5, buf, n, false) ==
						 H2C_PATH, want);
			}
		}
	}
}

static struct h2c_verdict verdict(const char *n, const char *v)
{
	struct h2c_verdict d;

	h2c_classify(&d, (const uint8_t *)n, strlen(n), (const uint8_t *)v, strlen(v));
	return d;
}

/* A verdict kept from one message and applied to others (h2.c's memo of
 * HPACK-indexed fields) gives what a fresh reading gives there. */
static void test_kept_verdicts(void **state)
{
	struct h2c_verdict get = verdict(":method", "GET"), cl = verdict("content-length", "12");
	struct h2c_verdict ua = verdict("user-agent", "x/1"), auth = verdict(":authority", "a");
	struct h2c_verdict bad = verdict("x-bad", "a\x01");
	struct h2_msg m, m2;

	(void)state;
	assert_int_equal(bad.kind, H2C_MALFORMED);
	memset(&m, 0, sizeof(m));
	memset(&m2, 0, sizeof(m2));
	assert_int_equal(h2c_apply(&m, &get, false), H2C_METHOD);
	assert_int_equal(h2c_apply(&m2, &get, false), H2C_METHOD);
	assert_int_equal(h2c_apply(&m2, &get, false), H2C_MALFORMED);	/* twice in one */
	assert_true(h2c_malformed(&m2));
	assert_false(h2c_malformed(&m));
	/* content-length: its value goes with the verdict, once per message */
	uint64_t v = 0;

	assert_false(h2c_content_length(&m, &v));
	assert_int_equal(h2c_apply(&m, &cl, false), H2C_REGULAR);
	assert_int_equal(m.clen, 12);
	assert_true(h2c_content_length(&m, &v));
	assert_int_equal(v, 12);
	assert_false(h2c_data(&m, 13));
	base(&m2, "POST", "/p");
	assert_int_equal(h2c_apply(&m2, &cl, false), H2C_REGULAR);
	assert_true(h2c_data(&m2, 12) && h2c_end_stream(&m2));
	base(&m2, "POST", "/p");
	assert_int_equal(h2c_apply(&m2, &cl, false), H2C_REGULAR);
	assert_int_equal(h2c_apply(&m2, &cl, false), H2C_MALFORMED);
	/* a pseudo-header after a regular field, or in trailers */
	memset(&m2, 0, sizeof(m2));
	assert_int_equal(h2c_apply(&m2, &ua, false), H2C_REGULAR);
	assert_int_equal(h2c_apply(&m2, &auth, false), H2C_MALFORMED);
	base(&m2, "GET", "/p");
	assert_true(h2c_headers_end(&m2, false, false));
	assert_int_equal(h2c_apply(&m2, &auth, true), H2C_MALFORMED);
	/* malformed whatever the message */
	base(&m2, "GET", "/p");
	assert_int_equal(h2c_apply(&m2, &bad, false), H2C_MALFORMED);
	/* the same as h2c_field on a fresh message, field by field */
	memset(&m, 0, sizeof(m));
	memset(&m2, 0, sizeof(m2));
	assert_int_equal(field(&m, ":method", "CONNECT"), H2C_METHOD);
	get = verdict(":method", "CONNECT");
	assert_int_equal(h2c_apply(&m2, &get, false), H2C_METHOD);
	assert_int_equal(m.flags, m2.flags);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_well_formed),
		cmocka_unit_test(test_pseudo_rules),
		cmocka_unit_test(test_pseudo_values),
		cmocka_unit_test(test_connect),
		cmocka_unit_test(test_field_names_and_values),
		cmocka_unit_test(test_content_length),
		cmocka_unit_test(test_trailers),
		cmocka_unit_test(test_every_byte_everywhere),
		cmocka_unit_test(test_kept_verdicts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
