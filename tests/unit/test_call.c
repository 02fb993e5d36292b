/*
 * Unit tests for gateway/net/call.c's request headers: names stored lower
 * case, call_header and call_hdr give the first of a name's fields, known
 * and other names alike, past the inline array and the inline strings.
 */
#define _GNU_SOURCE	/* strcasestr, the reference of test_accepts_msgpack */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "server.h"

/* A call as call_new leaves it, without a connection (headers only). */
static struct call *t_call(void)
{
	struct call *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->body = evbuffer_new();
	c->resp = evbuffer_new();
	assert_non_null(c->body);
	assert_non_null(c->resp);
	c->hdrs = c->hdrs_inline;
	c->cap_hdrs = CALL_INLINE_HDRS;
	return c;
}

/* call_free's own path: onto a loop's free list, then call_free_list. */
static void t_call_free(struct call *c)
{
	static struct srv_loop sl;

	c->sl = &sl;
	call_free(c);
	call_free_list(&sl);
}

static bool t_add(struct call *c, const char *name, const char *value)
{
	return call_add_header(c, name, strlen(name), value, strlen(value));
}

/* Every name enum call_hk knows is found by both lookups, whatever its case
 * on the wire; names that only look like one (same length, same first
 * byte, a prefix) are not. */
static void test_known_names(void **state)
{
	static const struct { const char *wire; enum call_hk k; const char *lc; } known[] = {
		{ "Accept", CALL_H_ACCEPT, "accept" },
		{ "ACCEPT-ENCODING", CALL_H_ACCEPT_ENCODING, "accept-encoding" },
		{ "Connection", CALL_H_CONNECTION, "connection" },
		{ "Content-Encoding", CALL_H_CONTENT_ENCODING, "content-encoding" },
		{ "Content-Length", CALL_H_CONTENT_LENGTH, "content-length" },
		{ "content-type", CALL_H_CONTENT_TYPE, "content-type" },
		{ "Expect", CALL_H_EXPECT, "expect" },
		{ "Grpc-Encoding", CALL_H_GRPC_ENCODING, "grpc-encoding" },
		{ "grpc-timeout", CALL_H_GRPC_TIMEOUT, "grpc-timeout" },
		{ "HTTP2-Settings", CALL_H_HTTP2_SETTINGS, "http2-settings" },
		{ "Inference-Header-Content-Length", CALL_H_IHCL, "inference-header-content-length" },
		{ "Upgrade", CALL_H_UPGRADE, "upgrade" },
		{ "X-Priority", CALL_H_X_PRIORITY, "x-priority" },
		{ "X-SLO-MS", CALL_H_X_SLO_MS, "x-slo-ms" },
	};
	static const char *const lookalike[] = { "acceptx", "accepT", "expecd", "content-typo",
		"c", "", "x-slo-m", "grpc-timeouts", "http2-setting", "upgrades", "bccept" };
	struct call *c = t_call();
	char v[32];

	(void)state;
	assert_int_equal(sizeof(known) / sizeof(known[0]), CALL_H_N);
	for (size_t i = 0; i < CALL_H_N; i++) {
		assert_null(call_hdr(c, known[i].k));
		snprintf(v, sizeof(v), "v%zu", i);
		assert_true(t_add(c, known[i].wire, v));
	}
	for (size_t i = 0; i < CALL_H_N; i++) {
		snprintf(v, sizeof(v), "v%zu", i);
		assert_string_equal(call_hdr(c, known[i].k), v);
		assert_string_equal(call_header(c, known[i].lc), v);
		assert_string_equal(c->hdrs[i].name, known[i].lc);
	}
	for (size_t i = 0; i < sizeof(lookalike) / sizeof(lookalike[0]); i++)
		assert_null(call_header(c, lookalike[i]));
	t_call_free(c);
}

/* The first field of a name wins; other names are found by a walk; the
 * index survives the array's growth and strings spilling out of c->str. */
static void test_first_and_growth(void **state)
{
	struct call *c = t_call();
	char name[32], big[300];

	(void)state;
	memset(big, 'b', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_true(t_add(c, "User-Agent", "ua"));
	assert_true(t_add(c, "Content-Type", "application/json"));
	assert_true(t_add(c, "content-type", "application/msgpack"));
	for (int i = 0; i < 3 * CALL_INLINE_HDRS; i++) {
		snprintf(name, sizeof(name), "X-Filler-%d", i);
		assert_true(t_add(c, name, big));	/* spills past c->str */
	}
	assert_true(t_add(c, "X-SLO-Ms", "250"));
	assert_true(call_add_lc_header(c, "accept", 6, "application/msgpack", 19));
	assert_true(c->hdrs != c->hdrs_inline);
	assert_non_null(c->spill);
	assert_string_equal(call_hdr(c, CALL_H_CONTENT_TYPE), "application/json");
	assert_string_equal(call_header(c, "content-type"), "application/json");
	assert_string_equal(call_header(c, "user-agent"), "ua");
	assert_string_equal(call_header_n(c, "user-agent-not", 10), "ua");	/* a slice */
	assert_string_equal(call_header_n(c, "x-slo-ms-and-more", 8), "250");
	assert_null(call_header_n(c, "user-agent", 4));	/* "user": a prefix only */
	assert_string_equal(call_header(c, "x-filler-95"), big);
	assert_string_equal(call_hdr(c, CALL_H_X_SLO_MS), "250");
	assert_string_equal(call_hdr(c, CALL_H_ACCEPT), "application/msgpack");
	assert_true(call_accepts_msgpack(c));
	assert_null(call_hdr(c, CALL_H_X_PRIORITY));
	assert_null(call_header(c, "x-filler-96"));
	t_call_free(c);
}

/* A value may be empty or hold bytes a name may not. */
static void test_values(void **state)
{
	struct call *c = t_call();

	(void)state;
	assert_true(call_add_header(c, "X-Priority", 10, "", 0));
	assert_true(call_add_header(c, "X-Other", 7, "A B:C", 5));
	assert_string_equal(call_hdr(c, CALL_H_X_PRIORITY), "");
	assert_string_equal(call_header(c, "x-other"), "A B:C");
	assert_false(call_accepts_msgpack(c));
	t_call_free(c);
}

/* Names are lower-cased as tolower does in the C locale, every byte value
 * at every place of names 1 to 40 bytes long (short ones bytewise, longer
 * ones a word at a time); the value is copied as it is. */
static void test_lower_every_byte(void **state)
{
	char name[40], want[40];

	(void)state;
	for (size_t len = 1; len <= sizeof(name); len++)
		for (int b = 0; b < 256; b++) {
			struct call *c = t_call();

			for (size_t i = 0; i < len; i++) {
				name[i] = (char)((b + 37 * i) & 0xff);
				want[i] = (char)tolower((unsigned char)name[i]);
			}
			assert_true(call_add_header(c, name, len, name, len));
			assert_memory_equal(c->hdrs[0].name, want, len);
			assert_int_equal(c->hdrs[0].name[len], 0);
			assert_memory_equal(c->hdrs[0].value, name, len);
			assert_int_equal(c->hdrs[0].value[len], 0);
			t_call_free(c);
		}
}

/* call_api_new: zeroed, 8-aligned, set as c->api, from c->str while it
 * has room (after odd-length strings), then from a spill block. */
static void test_api_new(void **state)
{
	struct call *c = t_call();
	char *a, *b;

	(void)state;
	assert_non_null(call_strndup(c, "/v2/x", 5));	/* leaves str_used odd */
	memset(c->str + c->str_used, 0xa5, sizeof(c->str) - c->str_used);
	a = call_api_new(c, 100);
	assert_ptr_equal(c->api, a);
	assert_true(c->api_in_call);
	assert_int_equal((uintptr_t)a % 8, 0);
	assert_true(a >= c->str && a + 100 <= c->str + sizeof(c->str));
	for (int i = 0; i < 100; i++)
		assert_int_equal(a[i], 0);
	b = call_api_new(c, sizeof(c->str));	/* no room left: spills */
	assert_non_null(b);
	assert_ptr_equal(c->api, b);
	assert_int_equal((uintptr_t)b % 8, 0);
	assert_true(b < c->str || b >= c->str + sizeof(c->str));
	for (size_t i = 0; i < sizeof(c->str); i++)
		assert_int_equal(b[i], 0);
	t_call_free(c);
}

/* call_accepts_msgpack: as strcasestr for either media type would say. */
static void test_accepts_msgpack(void **state)
{
	static const char *const accept[] = {
		"application/msgpack", "APPLICATION/MSGPACK", "application/x-msgpack",
		"Application/X-MsgPack;q=0.9", "text/html, application/msgpack;q=0.5",
		"*/*", "application/json", "msgpack", "application/", "application/x-",
		"applicationmsgpack", "application/x_msgpack", "xapplication/msgpack",
		"application/msgpac", "application/msgpackx", "m", "", "application/json, msgpack",
		"application/jsonapplication/msgpack", "application/x-application/msgpack",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(accept) / sizeof(accept[0]); i++) {
		struct call *c = t_call();
		bool want = strcasestr(accept[i], "application/msgpack") ||
			    strcasestr(accept[i], "application/x-msgpack");

		assert_false(call_accepts_msgpack(c));	/* no accept header */
		assert_true(t_add(c, "Accept", accept[i]));
		if (call_accepts_msgpack(c) != want)
			fail_msg("accept \"%s\": %d, expected %d", accept[i], !want, want);
		t_call_free(c);
	}
}

/* call_add_owned: the bytes read back as given, in CALL_OWNED_SLICE
 * pieces after what resp held; the block is freed (ASan/valgrind would
 * see a leak or a use after free) only once every slice is gone, whatever
 * order they go in, and not before. */
static void test_add_owned(void **state)
{
	size_t n = 3 * CALL_OWNED_SLICE + 1000;
	struct call *c = t_call();
	uint8_t *p = malloc(n), *back = malloc(n + 5);
	struct evbuffer_iovec v[8];
	struct evbuffer *keep = evbuffer_new();

	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(i * 31 + i / 977);
	evbuffer_add(c->resp, "head:", 5);
	assert_int_equal(call_add_owned(c, p, n), 0);
	assert_int_equal(evbuffer_get_length(c->resp), n + 5);
	/* the slices are p itself: head's chain, then 4 references */
	assert_int_equal(evbuffer_peek(c->resp, -1, NULL, v, 8), 5);
	assert_ptr_equal(v[1].iov_base, p);
	assert_int_equal(v[1].iov_len, CALL_OWNED_SLICE);
	assert_ptr_equal(v[4].iov_base, p + 3 * CALL_OWNED_SLICE);
	assert_int_equal(v[4].iov_len, 1000);
	/* the second slice outlives the others: p stays readable */
	assert_int_equal(evbuffer_copyout(c->resp, back, n + 5), (ev_ssize_t)(n + 5));
	assert_memory_equal(back, "head:", 5);
	assert_memory_equal(back + 5, p, n);
	evbuffer_drain(c->resp, 5 + CALL_OWNED_SLICE);
	assert_int_equal(evbuffer_remove_buffer(c->resp, keep, CALL_OWNED_SLICE),
			 CALL_OWNED_SLICE);
	evbuffer_drain(c->resp, evbuffer_get_length(c->resp));
	assert_int_equal(evbuffer_remove(keep, back, CALL_OWNED_SLICE), CALL_OWNED_SLICE);
	for (size_t i = 0; i < CALL_OWNED_SLICE; i++)
		assert_int_equal(back[i], (uint8_t)((i + CALL_OWNED_SLICE) * 31 +
						    (i + CALL_OWNED_SLICE) / 977));
	evbuffer_free(keep);
	free(back);
	t_call_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_names),
		cmocka_unit_test(test_first_and_growth),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_lower_every_byte),
		cmocka_unit_test(test_api_new),
		cmocka_unit_test(test_accepts_msgpack),
		cmocka_unit_test(test_add_owned),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
