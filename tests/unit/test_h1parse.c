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
#include <strings.h>

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

/*
 * The grammar again, the plainest way, as the oracle of
 * test_head_differential: the head split at each first CRLF, then each
 * line's bytes checked by class.  Writes what a parse yields ("METHOD
 * path minor|name=value|...") into out, or returns false for a 400.
 */
static bool ref_tchar(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool ref_value_byte(unsigned char ch)
{
	return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

/* The index of the first "\r\n" at or after i, or -1. */
static long ref_crlf(const char *s, size_t len, size_t i)
{
	for (; i + 1 < len; i++)
		if (s[i] == '\r' && s[i + 1] == '\n')
			return (long)i;
	return -1;
}

static bool ref_request_line(const char *s, size_t n, char *out, size_t cap)
{
	size_t m = 0, t, i, plen;

	while (m < n && ref_tchar((unsigned char)s[m]))
		m++;
	if (!m || m == n || s[m] != ' ')
		return false;
	for (t = i = m + 1; i < n && (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f; i++)
		;
	if (i == t || i == n || s[i] != ' ')
		return false;
	if (s[t] != '/' && !(i - t == 1 && s[t] == '*' && m == 7 && !strncasecmp(s, "OPTIONS", 7)))
		return false;
	for (plen = 0; t + plen < i && s[t + plen] != '?'; plen++)
		;
	if (n - (i + 1) != 8 || memcmp(s + i + 1, "HTTP/1.", 7) ||
	    (s[i + 8] != '0' && s[i + 8] != '1'))
		return false;
	snprintf(out, cap, "%.*s %.*s %c", (int)m, s, (int)plen, s + t, s[i + 8]);
	return true;
}

static bool ref_header_line(const char *s, size_t n, char *out, size_t cap)
{
	size_t m = 0, v, e = n;

	while (m < n && ref_tchar((unsigned char)s[m]))
		m++;
	if (!m || m == n || s[m] != ':')
		return false;
	for (v = m + 1; v < n && (s[v] == ' ' || s[v] == '\t'); v++)
		;
	for (size_t i = v; i < n; i++)
		if (!ref_value_byte((unsigned char)s[i]))
			return false;
	while (e > v && (s[e - 1] == ' ' || s[e - 1] == '\t'))
		e--;
	snprintf(out + strlen(out), cap - strlen(out), "|%.*s=%.*s", (int)m, s, (int)(e - v),
		 s + v);
	return true;
}

static bool ref_head(const char *s, size_t len, char *out, size_t cap)
{
	long e = ref_crlf(s, len, 0);
	size_t i;

	if (e < 0 || !ref_request_line(s, (size_t)e, out, cap))
		return false;
	for (i = (size_t)e + 2;; i = (size_t)e + 2) {
		e = ref_crlf(s, len, i);
		if (e < 0)
			return false;
		if ((size_t)e == i)
			return i + 2 == len;
		if (!ref_header_line(s + i, (size_t)e - i, out, cap))
			return false;
	}
}

struct dump {
	char *out;
	size_t cap;
};

static int dump_header(void *arg, struct h1p_span name, struct h1p_span value)
{
	struct dump *d = arg;
	size_t n = strlen(d->out);

	snprintf(d->out + n, d->cap - n, "|%.*s=%.*s", (int)name.n, name.p, (int)value.n, value.p);
	return 0;
}

/* h1p_parse_head's verdict on s[0..len) against ref_head's. */
static void check_head_like_ref(const char *s, size_t len)
{
	char want[2048] = "", got[2048] = "";
	struct dump d = { got, sizeof(got) };
	struct h1p_reqline rl;
	const char *why = NULL;
	bool ok = ref_head(s, len, want, sizeof(want));
	int st = h1p_parse_head(s, len, &rl, dump_header, &d, &why);

	if (st == 0) {
		char line[512];

		snprintf(line, sizeof(line), "%.*s %.*s %d", (int)rl.method.n, rl.method.p,
			 (int)rl.path.n, rl.path.p, rl.minor);
		memmove(got + strlen(line), got, strlen(got) + 1);
		memcpy(got, line, strlen(line));
	}
	if (ok != (st == 0) || (ok && strcmp(want, got)) || (st && (st != 400 || !why)))
		fail_msg("head %.*s: ref %s (%s), parser %d (%s)", (int)len, s, ok ? "ok" : "400",
			 want, st, st ? why : got);
}

/*
 * The one-pass parser (eight bytes at a time) agrees with the oracle on
 * every head made from three real ones by putting each byte value at each
 * position, inserting it there and deleting the byte there: which are
 * accepted, and the method, path, version and fields of each.
 */
static void test_head_differential(void **state)
{
	static const char *const base[] = {
		"POST /v2/models/digits/infer?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n"
		"User-Agent: h2load nghttp2/1.52.0\r\nContent-Length: 12\r\nX-E:\r\n"
		"X-Sp: \t v\tv \t\r\n\r\n",
		"GET /v2/health/live HTTP/1.0\r\nAccept: */*\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n",
	};
	char buf[512];
	long n = 0;

	(void)state;
	for (size_t b = 0; b < sizeof(base) / sizeof(base[0]); b++) {
		size_t len = strlen(base[b]);

		check_head_like_ref(base[b], len);
		for (size_t i = 0; i < len; i++) {
			memcpy(buf, base[b], len);
			memmove(buf + i, buf + i + 1, len - i - 1);	/* deleted */
			check_head_like_ref(buf, len - 1);
			for (int ch = 0; ch < 256; ch++) {
				memcpy(buf, base[b], len);
				buf[i] = (char)ch;				/* replaced */
				check_head_like_ref(buf, len);
				memcpy(buf, base[b], i);
				buf[i] = (char)ch;				/* inserted */
				memcpy(buf + i + 1, base[b] + i, len - i);
				check_head_like_ref(buf, len + 1);
				n += 2;
			}
		}
	}
	assert_true(n > 100000);
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
		cmocka_unit_test(test_head_differential),
		cmocka_unit_test(test_head_end),
		cmocka_unit_test(test_chunk_size),
		cmocka_unit_test(test_chunked_decoder),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
