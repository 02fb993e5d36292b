/* Unit tests for gateway/net/h1parse.c: the HTTP/1.1 grammar, framing rules
 * (RFC 9112 §6.3, the request-smuggling cases) and the chunked decoder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "h1parse.h"

struct heads {
	struct h1p_framing fr;
	int n;
	char names[64][32];
};

static int on_header(void *arg, struct h1p_span name, struct h1p_span value)
{
	struct heads *h = arg;

	if (h->n < 64)
		snprintf(h->names[h->n], sizeof(h->names[0]), "%.*s=%.*s", (int)name.n, name.p,
			 (int)value.n, value.p);
	h->n++;
	h1p_framing_add(&h->fr, name, value);
	return 0;
}

/* Parse a head and decide its framing: 0 or the status. */
static int head(const char *s, struct heads *h, struct h1p_reqline *rl)
{
	const char *why = NULL;
	int st;

	memset(h, 0, sizeof(*h));
	st = h1p_parse_head(s, strlen(s), rl, on_header, h, &why);
	if (st) {
		assert_non_null(why);
		return st;
	}
	return h1p_framing_end(&h->fr);
}

static void test_head_ok(void **state)
{
	struct heads h;
	struct h1p_reqline rl;

	assert_int_equal(head("POST /v2/models/digits/infer?x=1 HTTP/1.1\r\nHost: a\r\n"
			      "Content-Length: 12\r\nX-Empty:\r\nX-Sp: \t v v \t\r\n\r\n", &h, &rl), 0);
	assert_int_equal(rl.method.n, 4);
	assert_memory_equal(rl.path.p, "/v2/models/digits/infer", rl.path.n);
	assert_int_equal(rl.path.n, strlen("/v2/models/digits/infer"));
	assert_int_equal(rl.minor, 1);
	assert_int_equal(h.n, 4);
	assert_string_equal(h.names[2], "X-Empty=");
	assert_string_equal(h.names[3], "X-Sp=v v");
	assert_true(h.fr.has_length);
	assert_int_equal(h.fr.length, 12);
	assert_false(h.fr.chunked);
	/* The same length twice is one length (RFC 9112 §6.3 allows merging). */
	assert_int_equal(head("POST / HTTP/1.0\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n",
			      &h, &rl), 0);
	assert_int_equal(rl.minor, 0);
	assert_int_equal(head("POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", &h, &rl), 0);
	assert_true(h.fr.chunked);
	/* asterisk-form, for OPTIONS only (nghttp -u upgrades with it) */
	assert_int_equal(head("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", &h, &rl), 0);
	assert_int_equal(rl.path.n, 1);
	assert_memory_equal(rl.path.p, "*", 1);
}

static void test_head_rejected(void **state)
{
	static const struct { const char *head; int status; } cases[] = {
		/* smuggling: ambiguous framing */
		{ "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 0\r\n\r\n", 400 },
		{ "POST / HTTP/1.1\r\nContent-Length : 5\r\n\r\n", 400 },
		{ "POST / HTTP/1.1\r\nContent-Length: 5\r\n 0\r\n\r\n", 400 },
		{ "POST / HTTP/1.1\r\nContent-Length: 5\r\n\t0\r\n\r\n", 400 },
		{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400 },
		{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400 },
		{ "POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501 },
		{ "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400 },
		{ "POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\n", 400 },
		{ "POST / HTTP/1.1\r\nContent-Length: 5 \r\n\r\n", 0 },	/* OWS is trimmed */
		{ "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", 400 },
		{ "POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\n", 400 },
		/* names are tokens, values carry no controls, lines end in CRLF */
		{ "GET / HTTP/1.1\r\nFoo Bar: x\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nFoo@: x\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\n: x\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nFoo: a\nContent-Length: 5\r\n\r\n", 400 },
		{ "GET / HTTP/1.1\r\nFoo: a\rb\r\n\r\n", 400 },
		/* request line */
		{ "GET /a\x01 HTTP/1.1\r\n\r\n", 400 },
		{ "GET  / HTTP/1.1\r\n\r\n", 400 },
		{ "GET / HTTP/2.0\r\n\r\n", 400 },
		{ "GET / HTTP/1.1 \r\n\r\n", 400 },
		{ "GET x HTTP/1.1\r\n\r\n", 400 },
		{ "GET * HTTP/1.1\r\n\r\n", 400 },
		{ "OPTIONS ** HTTP/1.1\r\n\r\n", 400 },
		{ "OPTIONS *x HTTP/1.1\r\n\r\n", 400 },
		{ "G(T / HTTP/1.1\r\n\r\n", 400 },
	};
	struct heads h;
	struct h1p_reqline rl;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int st = head(cases[i].head, &h, &rl);

		if (st != cases[i].status)
			fail_msg("case %zu (%s): got %d, want %d", i, cases[i].head, st,
				 cases[i].status);
	}
	/* A NUL in the target (the length says it is there). */
	{
		static const char nul[] = "GET /v2/health/live\0x HTTP/1.1\r\n\r\n";
		const char *why = NULL;

		memset(&h, 0, sizeof(h));
		assert_int_equal(h1p_parse_head(nul, sizeof(nul) - 1, &rl, on_header, &h, &why), 400);
	}
}

/* Header names are tokens (RFC 9110 §5.6.2): every byte but NUL, CR and LF
 * (they would cut the test's string or line) tried in the middle of one. */
static void test_header_name_tchars(void **state)
{
	static const char punct[] = "!#$%&'*+-.^_`|~";

	(void)state;
	for (int ch = 1; ch < 256; ch++) {
		char buf[64];
		struct heads h;
		struct h1p_reqline rl;
		bool tchar = (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') ||
			     (ch >= 'a' && ch <= 'z') || strchr(punct, ch);

		if (ch == '\r' || ch == '\n')
			continue;
		snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nX%cy: v\r\n\r\n", ch);
		if (ch == ':')	/* "X:y: v": name X, value "y: v" */
			continue;
		assert_int_equal(head(buf, &h, &rl), tchar ? 0 : 400);
	}
}

static void test_head_end(void **state)
{
	static const struct {
		const char *in;
		int end;	/* length of the head, -1: none */
	} cases[] = {
		{ "GET / HTTP/1.1\r\n\r\n", 18 },
		{ "GET / HTTP/1.1\r\nA: b\r\n\r\nGET", 24 },
		{ "\r\n\r\n", 4 },
		{ "\r\r\n\r\n", 5 },
		{ "a\r\n\r\r\n\r\n", 8 },
		{ "a\n\r\n\r\n", 6 },
		{ "GET / HTTP/1.1\r\n\r", -1 },
		{ "GET / HTTP/1.1\r\n", -1 },
		{ "a\n\na\r\n\n\r", -1 },
		{ "", -1 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *in = cases[i].in, *e = h1p_head_end(in, strlen(in));

		if (cases[i].end < 0)
			assert_null(e);
		else
			assert_int_equal(e - in, cases[i].end);
	}
}

static void test_chunk_size(void **state)
{
	uint64_t n;

	assert_true(h1p_chunk_size("1a", 2, &n));
	assert_int_equal(n, 26);
	assert_true(h1p_chunk_size("FFFFFFFFFFFFFFFF", 16, &n));
	assert_true(n == UINT64_MAX);
	assert_true(h1p_chunk_size("5;name=value", 12, &n));
	assert_int_equal(n, 5);
	assert_false(h1p_chunk_size("10000000000000000", 17, &n));
	assert_false(h1p_chunk_size("-1", 2, &n));
	assert_false(h1p_chunk_size("0x10", 4, &n));
	assert_false(h1p_chunk_size(" 10", 3, &n));
	assert_false(h1p_chunk_size("+10", 3, &n));
	assert_false(h1p_chunk_size("10 ", 3, &n));
	assert_false(h1p_chunk_size("", 0, &n));
}

struct sink {
	char buf[256];
	size_t len;
};

static void on_data(void *arg, const char *p, size_t n)
{
	struct sink *s = arg;

	assert_true(s->len + n <= sizeof(s->buf));
	memcpy(s->buf + s->len, p, n);
	s->len += n;
}

/* Feed body one byte at a time; the status and the bytes consumed. */
static int feed_bytewise(const char *body, size_t len, uint64_t max, struct sink *s, size_t *used)
{
	struct h1p_chunked ck;
	int rc = 0;

	h1p_chunked_init(&ck, max, 64);
	*used = 0;
	s->len = 0;
	for (size_t i = 0; i < len && rc == 0; i++) {
		size_t u;

		rc = h1p_chunked_feed(&ck, body + i, 1, &u, on_data, s);
		*used += u;
	}
	return rc;
}

static void test_chunked_decoder(void **state)
{
	static const char ok[] = "5\r\nhello\r\n3;x=y\r\n, w\r\n0\r\nTrailer: t\r\n\r\nNEXT";
	struct sink s;
	size_t used;

	assert_int_equal(feed_bytewise(ok, sizeof(ok) - 1, 100, &s, &used), 1);
	assert_int_equal(s.len, 8);
	assert_memory_equal(s.buf, "hello, w", 8);
	assert_int_equal(used, sizeof(ok) - 1 - 4);	/* "NEXT" is the next request */
	/* The size wrap of issue 9: never accepted past max_body. */
	assert_int_equal(feed_bytewise("1\r\na\r\nFFFFFFFFFFFFFFFF\r\n", 24, 1000, &s, &used), 413);
	assert_int_equal(feed_bytewise("-1\r\n", 4, 1000, &s, &used), 400);
	assert_int_equal(feed_bytewise("0x5\r\n", 5, 1000, &s, &used), 400);
	assert_int_equal(feed_bytewise("11111111111111111\r\n", 19, 1000, &s, &used), 400);
	assert_int_equal(feed_bytewise("5\nhello\r\n", 9, 1000, &s, &used), 400);	/* bare LF */
	assert_int_equal(feed_bytewise("5\r\nhelloXX", 10, 1000, &s, &used), 400);
	assert_int_equal(feed_bytewise("65\r\n", 4, 100, &s, &used), 413);	/* 101 > 100 */
	/* trailers beyond max_trailer (64 here) */
	{
		char big[200] = "0\r\n";

		memset(big + 3, 'a', 150);
		memcpy(big + 153, ": b\r\n\r\n", 7);
		assert_int_equal(feed_bytewise(big, 160, 1000, &s, &used), 431);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_head_ok),
		cmocka_unit_test(test_head_rejected),
		cmocka_unit_test(test_header_name_tchars),
		cmocka_unit_test(test_head_end),
		cmocka_unit_test(test_chunk_size),
		cmocka_unit_test(test_chunked_decoder),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
