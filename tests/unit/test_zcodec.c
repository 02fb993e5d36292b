/* Unit tests for gateway/net/zcodec.c: Content-Encoding / Accept-Encoding
 * parsing, capped inflate of gzip / zlib / raw deflate (bombs, truncation,
 * bad CRC, trailing data, several members, bodies split over many evbuffer
 * chains) and the deflate side round-tripping through it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "zcodec.h"

/* data compressed with zlib's windowBits (31 gzip, 15 zlib, -15 raw). */
static struct evbuffer *zbuf(const void *data, size_t len, int wbits, int level)
{
	struct evbuffer *b = evbuffer_new();
	uLong bound = len + len / 100 + 1024;
	unsigned char *out = malloc(bound);
	z_stream z = { 0 };

	assert_int_equal(deflateInit2(&z, level, Z_DEFLATED, wbits, 8, Z_DEFAULT_STRATEGY), Z_OK);
	z.next_in = (unsigned char *)data;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)bound;
	assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
	evbuffer_add(b, out, z.total_out);
	deflateEnd(&z);
	free(out);
	return b;
}

static void free_ref(const void *data, size_t len, void *arg)
{
	free((void *)data);
}

/* The same bytes as an evbuffer of chains of at most `piece` bytes. */
static struct evbuffer *chopped(struct evbuffer *src, size_t piece)
{
	struct evbuffer *b = evbuffer_new();
	size_t len = evbuffer_get_length(src);
	const unsigned char *p = evbuffer_pullup(src, -1);

	for (size_t off = 0; off < len; off += piece) {
		size_t n = len - off < piece ? len - off : piece;
		void *copy = malloc(n);

		memcpy(copy, p + off, n);
		/* a reference chain each: evbuffer_add would merge them */
		evbuffer_add_reference(b, copy, n, free_ref, NULL);
	}
	return b;
}

static unsigned char *pattern(size_t n)
{
	unsigned char *d = malloc(n);

	for (size_t i = 0; i < n; i++)
		d[i] = (unsigned char)((i * 7919u) >> 5 ^ i);
	return d;
}

static int inflate_to(struct evbuffer *in, enum zc_coding coding, size_t cap,
		      struct evbuffer **out, const char **why)
{
	*out = evbuffer_new();
	*why = NULL;
	return zc_inflate(in, *out, coding, cap, why);
}

static void assert_body(struct evbuffer *b, const void *want, size_t n)
{
	assert_int_equal(evbuffer_get_length(b), n);
	assert_memory_equal(evbuffer_pullup(b, -1), want, n);
}

static void test_content_coding(void **state)
{
	enum zc_coding c = ZC_IDENTITY;
	const char *bad = NULL;
	size_t badlen = 0;

	assert_int_equal(zc_content_coding("gzip", &c, &bad, &badlen), 0);
	assert_int_equal(c, ZC_GZIP);
	c = ZC_IDENTITY;
	assert_int_equal(zc_content_coding(" Deflate ", &c, &bad, &badlen), 0);
	assert_int_equal(c, ZC_DEFLATE);
	c = ZC_IDENTITY;
	assert_int_equal(zc_content_coding("identity", &c, &bad, &badlen), 0);
	assert_int_equal(c, ZC_IDENTITY);
	assert_int_equal(zc_content_coding("", &c, &bad, &badlen), 0);
	assert_int_equal(c, ZC_IDENTITY);
	assert_int_equal(zc_content_coding("identity, X-GZIP,identity", &c, &bad, &badlen), 0);
	assert_int_equal(c, ZC_GZIP);
	/* a second coding, in the same field or in another one */
	c = ZC_IDENTITY;
	assert_int_equal(zc_content_coding("gzip, gzip", &c, &bad, &badlen), -E2BIG);
	c = ZC_IDENTITY;
	assert_int_equal(zc_content_coding("deflate", &c, &bad, &badlen), 0);
	assert_int_equal(zc_content_coding("gzip", &c, &bad, &badlen), -E2BIG);
	c = ZC_IDENTITY;
	assert_int_equal(zc_content_coding("gzip, br", &c, &bad, &badlen), -ENOTSUP);
	assert_int_equal(badlen, 2);
	assert_memory_equal(bad, "br", 2);
	c = ZC_IDENTITY;
	assert_int_equal(zc_content_coding("compress", &c, &bad, &badlen), -ENOTSUP);
	assert_int_equal(badlen, 8);
	assert_int_equal(zc_content_coding("gzip;q=1", &c, &bad, &badlen), -ENOTSUP);
}

static void test_accept(void **state)
{
	assert_int_equal(zc_accept(NULL), ZC_IDENTITY);
	assert_int_equal(zc_accept(""), ZC_IDENTITY);
	assert_int_equal(zc_accept("gzip"), ZC_GZIP);
	assert_int_equal(zc_accept("deflate"), ZC_DEFLATE);
	assert_int_equal(zc_accept("gzip, deflate, br"), ZC_GZIP);
	assert_int_equal(zc_accept("deflate, gzip"), ZC_GZIP);	/* tie: gzip */
	assert_int_equal(zc_accept("gzip;q=0"), ZC_IDENTITY);
	assert_int_equal(zc_accept("gzip; q=0.000"), ZC_IDENTITY);
	assert_int_equal(zc_accept("gzip;q=0, deflate"), ZC_DEFLATE);
	assert_int_equal(zc_accept("gzip;q=0.5, deflate;q=0.8"), ZC_DEFLATE);
	assert_int_equal(zc_accept("gzip;q=0.8, deflate;q=0.5"), ZC_GZIP);
	assert_int_equal(zc_accept("GZIP ; Q=1.0"), ZC_GZIP);
	assert_int_equal(zc_accept("x-gzip"), ZC_GZIP);
	assert_int_equal(zc_accept("br, identity"), ZC_IDENTITY);
	assert_int_equal(zc_accept("*"), ZC_GZIP);
	assert_int_equal(zc_accept("*;q=0"), ZC_IDENTITY);
	assert_int_equal(zc_accept("gzip;q=0, *"), ZC_DEFLATE);
	assert_int_equal(zc_accept("*;q=0, deflate"), ZC_DEFLATE);
	/* malformed q: that coding is not relied on */
	assert_int_equal(zc_accept("gzip;q=2"), ZC_IDENTITY);
	assert_int_equal(zc_accept("gzip;q=0.5.5"), ZC_IDENTITY);
	assert_int_equal(zc_accept("gzip;q=0.1234"), ZC_IDENTITY);
	assert_int_equal(zc_accept("gzip;q="), ZC_IDENTITY);
	assert_int_equal(zc_accept("gzip;level=1;q=0.1"), ZC_GZIP);
	assert_int_equal(zc_accept(",,gzip,,"), ZC_GZIP);
}

static void roundtrip(enum zc_coding coding, int wbits, size_t n, size_t piece)
{
	unsigned char *d = pattern(n);
	struct evbuffer *z = zbuf(d, n, wbits, 6), *in = chopped(z, piece), *out;
	const char *why;

	assert_int_equal(inflate_to(in, coding, n, &out, &why), 0);
	assert_body(out, d, n);
	assert_int_equal(evbuffer_get_length(in), evbuffer_get_length(z));	/* left as it was */
	evbuffer_free(out);
	/* one byte under the size: refused, not truncated */
	assert_int_equal(inflate_to(in, coding, n - 1, &out, &why), -EFBIG);
	assert_true(evbuffer_get_length(out) <= n);
	evbuffer_free(out);
	evbuffer_free(in);
	evbuffer_free(z);
	free(d);
}

static void test_inflate_roundtrip(void **state)
{
	roundtrip(ZC_GZIP, 31, 300000, 1 << 20);
	roundtrip(ZC_GZIP, 31, 300000, 7);	/* input split into 7-byte chains */
	roundtrip(ZC_DEFLATE, 15, 100000, 1 << 20);
	roundtrip(ZC_DEFLATE, 15, 100000, 13);
	roundtrip(ZC_DEFLATE, -15, 100000, 1 << 20);	/* raw deflate under "deflate" */
	roundtrip(ZC_GZIP, 31, 1, 1);
}

static void test_inflate_empty(void **state)
{
	struct evbuffer *z = zbuf("", 0, 31, 6), *out;
	const char *why;

	assert_int_equal(inflate_to(z, ZC_GZIP, 0, &out, &why), 0);
	assert_int_equal(evbuffer_get_length(out), 0);
	evbuffer_free(out);
	evbuffer_free(z);
}

/* 8 MiB of zeros in ~8 KiB: refused after at most cap + one piece of output. */
static void test_inflate_bomb(void **state)
{
	size_t n = 8 << 20, cap = 65536;
	unsigned char *zeros = calloc(1, n);
	struct evbuffer *z = zbuf(zeros, n, 31, 9), *out;
	const char *why;

	assert_true(evbuffer_get_length(z) < n / 900);
	assert_int_equal(inflate_to(z, ZC_GZIP, cap, &out, &why), -EFBIG);
	assert_true(evbuffer_get_length(out) <= cap + 1);
	evbuffer_free(out);
	/* exactly the size fits */
	assert_int_equal(inflate_to(z, ZC_GZIP, n, &out, &why), 0);
	assert_int_equal(evbuffer_get_length(out), n);
	evbuffer_free(out);
	evbuffer_free(z);
	free(zeros);
}

static void expect_invalid(struct evbuffer *in, enum zc_coding coding, const char *why_sub)
{
	struct evbuffer *out;
	const char *why;

	assert_int_equal(inflate_to(in, coding, 1 << 20, &out, &why), -EINVAL);
	assert_non_null(why);
	if (why_sub && !strstr(why, why_sub))
		fail_msg("expected \"%s\" in \"%s\"", why_sub, why);
	evbuffer_free(out);
}

static struct evbuffer *bytes(const unsigned char *p, size_t n)
{
	struct evbuffer *b = evbuffer_new();

	evbuffer_add(b, p, n);
	return b;
}

static void test_inflate_corrupt(void **state)
{
	unsigned char *d = pattern(5000);
	struct evbuffer *z = zbuf(d, 5000, 31, 6);
	size_t zn = evbuffer_get_length(z);
	unsigned char *g = malloc(zn + 16);
	struct evbuffer *b;

	evbuffer_copyout(z, g, zn);
	for (size_t cut = 0; cut < zn; cut += zn / 17 + 1) {	/* every truncation */
		b = bytes(g, cut);
		expect_invalid(b, ZC_GZIP, "truncated");
		evbuffer_free(b);
	}
	b = bytes(g, zn - 1);
	expect_invalid(b, ZC_GZIP, "truncated");
	evbuffer_free(b);
	/* wrong CRC-32, wrong ISIZE (a "declared" size of 4 GiB - 1) */
	g[zn - 8] ^= 0x55;
	b = bytes(g, zn);
	expect_invalid(b, ZC_GZIP, "incorrect data check");
	evbuffer_free(b);
	g[zn - 8] ^= 0x55;
	memset(g + zn - 4, 0xff, 4);
	b = bytes(g, zn);
	expect_invalid(b, ZC_GZIP, "incorrect length check");
	evbuffer_free(b);
	evbuffer_copyout(z, g, zn);
	/* trailing garbage after the member */
	memcpy(g + zn, "garbage!", 8);
	b = bytes(g, zn + 8);
	expect_invalid(b, ZC_GZIP, "data after the end");
	evbuffer_free(b);
	/* not gzip at all; gzip sent as deflate and zlib sent as gzip */
	b = bytes((const unsigned char *)"{\"inputs\":[]}", 13);
	expect_invalid(b, ZC_GZIP, NULL);
	evbuffer_free(b);
	b = bytes(g, zn);
	expect_invalid(b, ZC_DEFLATE, NULL);
	evbuffer_free(b);
	evbuffer_free(z);
	z = zbuf(d, 5000, 15, 6);
	expect_invalid(z, ZC_GZIP, "incorrect header check");
	/* zlib stream with bytes after it */
	evbuffer_add(z, "x", 1);
	expect_invalid(z, ZC_DEFLATE, "data after the end");
	evbuffer_free(z);
	free(g);
	free(d);
}

/* RFC 1952: a gzip body may be several members, decoded one after another. */
static void test_inflate_members(void **state)
{
	struct evbuffer *a = zbuf("hello, ", 7, 31, 6), *b = zbuf("world", 5, 31, 6), *out;
	const char *why;

	evbuffer_add_buffer(a, b);
	assert_int_equal(inflate_to(a, ZC_GZIP, 100, &out, &why), 0);
	assert_body(out, "hello, world", 12);
	evbuffer_free(out);
	/* the cap counts the members together */
	assert_int_equal(inflate_to(a, ZC_GZIP, 11, &out, &why), -EFBIG);
	evbuffer_free(out);
	evbuffer_free(a);
	evbuffer_free(b);
}

static void test_deflate_roundtrip(void **state)
{
	static const enum zc_coding codings[] = { ZC_GZIP, ZC_DEFLATE };
	size_t sizes[] = { 0, 1, 1000, 200000 };

	for (int ci = 0; ci < 2; ci++)
		for (int si = 0; si < 4; si++) {
			size_t n = sizes[si];
			unsigned char *d = pattern(n ? n : 1);
			struct evbuffer *src = evbuffer_new(), *in, *z = evbuffer_new(), *out;
			const char *why;

			evbuffer_add(src, d, n);
			in = chopped(src, 999);
			assert_int_equal(zc_deflate(in, z, codings[ci], 1), 0);
			assert_int_equal(evbuffer_get_length(in), n);
			assert_int_equal(inflate_to(z, codings[ci], n, &out, &why), 0);
			assert_body(out, d, n);
			if (codings[ci] == ZC_GZIP) {	/* a real gzip header */
				unsigned char h[2];

				evbuffer_copyout(z, h, 2);
				assert_int_equal(h[0], 0x1f);
				assert_int_equal(h[1], 0x8b);
			}
			evbuffer_free(out);
			evbuffer_free(z);
			evbuffer_free(in);
			evbuffer_free(src);
			free(d);
		}
}

static void test_deflate_shrinks_text(void **state)
{
	struct evbuffer *in = evbuffer_new(), *z = evbuffer_new();

	for (int i = 0; i < 500; i++)
		evbuffer_add_printf(in, "{\"name\":\"probabilities\",\"data\":[0.1,0.2]},");
	assert_int_equal(zc_deflate(in, z, ZC_GZIP, 1), 0);
	assert_true(evbuffer_get_length(z) * 10 < evbuffer_get_length(in));
	assert_int_equal(zc_deflate(in, z, ZC_IDENTITY, 1), -EINVAL);
	assert_int_equal(zc_deflate(in, z, ZC_GZIP, 0), -EINVAL);
	evbuffer_free(in);
	evbuffer_free(z);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_content_coding),
		cmocka_unit_test(test_accept),
		cmocka_unit_test(test_inflate_roundtrip),
		cmocka_unit_test(test_inflate_empty),
		cmocka_unit_test(test_inflate_bomb),
		cmocka_unit_test(test_inflate_corrupt),
		cmocka_unit_test(test_inflate_members),
		cmocka_unit_test(test_deflate_roundtrip),
		cmocka_unit_test(test_deflate_shrinks_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
