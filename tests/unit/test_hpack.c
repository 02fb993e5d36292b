/* Unit tests for gateway/net/hpack.c: RFC 7541's Appendix C examples
 * through one decoder each (the dynamic table checked after every block),
 * Huffman strings of every byte value, each way a block can be malformed,
 * field ids, HPACK_STOP and aborts, the dynamic table against a model, and
 * the encoder (exact bytes, round trips, its bound). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hpack.h"

#include <nghttp2/nghttp2.h>

#define BLOCK(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define NONE ((const char *const[]){ NULL })

/* --- What a decode handed over ------------------------------------------- */

#define GOT_MAX 64

struct got {
	size_t n;			/* fields kept */
	size_t stop_at;			/* return HPACK_STOP from that call (1-based) */
	size_t fail_at;			/* return fail_rc from that call */
	int fail_rc;
	struct {
		uint8_t name[512], value[2048];
		uint32_t nlen, vlen, id;
	} f[GOT_MAX];
};

static int collect(void *arg, const struct hpack_field *f)
{
	struct got *g = arg;

	assert_true(g->n < GOT_MAX);
	assert_true(f->nlen <= sizeof(g->f[0].name) && f->vlen <= sizeof(g->f[0].value));
	memcpy(g->f[g->n].name, f->name, f->nlen);
	if (f->vlen)
		memcpy(g->f[g->n].value, f->value, f->vlen);
	g->f[g->n].nlen = f->nlen;
	g->f[g->n].vlen = f->vlen;
	g->f[g->n].id = f->id;
	g->n++;
	if (g->n == g->fail_at)
		return g->fail_rc;
	return g->n == g->stop_at ? HPACK_STOP : 0;
}

static struct got *got_new(void)
{
	struct got *g = calloc(1, sizeof(*g));

	assert_non_null(g);
	return g;
}

static void got_reset(struct got *g)
{
	g->n = g->stop_at = g->fail_at = 0;
	g->fail_rc = 0;
}

/* hex - the bytes spelt in s (spaces ignored) into out; their number. */
static size_t hex(const char *s, uint8_t *out)
{
	size_t n = 0;

	for (; *s; s++) {
		unsigned v;

		if (*s == ' ')
			continue;
		assert_int_equal(sscanf(s, "%2x", &v), 1);
		out[n++] = (uint8_t)v;
		s++;
	}
	return n;
}

/* decode_hex - decode the block spelt in s into g (whose stop_at and
 * fail_at stay). */
static int decode_hex(struct hpack_dec *d, const char *s, struct got *g)
{
	uint8_t buf[4096];
	size_t n = hex(s, buf);

	g->n = 0;
	return hpack_decode(d, buf, n, collect, g);
}

/* field_is - field i of g is name: value. */
static void field_is(const struct got *g, size_t i, const char *name, const char *value)
{
	assert_true(i < g->n);
	assert_int_equal(g->f[i].nlen, strlen(name));
	assert_memory_equal(g->f[i].name, name, strlen(name));
	assert_int_equal(g->f[i].vlen, strlen(value));
	if (*value)
		assert_memory_equal(g->f[i].value, value, strlen(value));
}

/* fields_are - g holds exactly the fields kv (name, value, ..., NULL). */
static void fields_are(const struct got *g, const char *const *kv)
{
	size_t i = 0;

	for (; kv[0]; kv += 2, i++)
		field_is(g, i, kv[0], kv[1]);
	assert_int_equal(g->n, i);
}

/* put_int - v with an N-bit prefix (mask) under first (§5.1): bytes written. */
static size_t put_int(uint8_t *o, uint8_t first, uint8_t mask, uint64_t v)
{
	size_t n = 0;

	if (v < mask) {
		o[n++] = first | (uint8_t)v;
		return n;
	}
	o[n++] = first | mask;
	for (v -= mask; v >= 0x80; v >>= 7)
		o[n++] = 0x80 | (v & 0x7f);
	o[n++] = (uint8_t)v;
	return n;
}

/* index_field - decode the indexed field i alone into g. */
static int index_field(struct hpack_dec *d, uint32_t i, struct got *g)
{
	uint8_t b[8];
	size_t n = put_int(b, 0x80, 0x7f, i);

	g->n = 0;
	return hpack_decode(d, b, n, collect, g);
}

/* table_is - d's dynamic table holds kv, newest first, and has this §4.1
 * size: each entry read back through an indexed field (62 on). */
static void table_is(struct hpack_dec *d, uint32_t size, const char *const *kv)
{
	struct got *g = got_new();
	uint32_t k = 0;

	assert_int_equal(d->size, size);
	for (; kv[0]; kv += 2, k++) {
		assert_int_equal(index_field(d, 62 + k, g), 0);
		field_is(g, 0, kv[0], kv[1]);
		assert_true(g->f[0].id >= HPACK_ID_DYN);
	}
	assert_int_equal(d->count, k);
	free(g);
}

/* --- RFC 7541 Appendix C ------------------------------------------------- */

static void test_rfc_c2(void **state)
{
	struct got *g = got_new();
	struct hpack_dec d;

	(void)state;
	/* C.2.1 literal with indexing */
	hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
	assert_int_equal(decode_hex(&d, "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572", g), 0);
	fields_are(g, BLOCK("custom-key", "custom-header"));
	assert_int_equal(g->f[0].id, HPACK_ID_DYN);
	table_is(&d, 55, BLOCK("custom-key", "custom-header"));
	hpack_dec_free(&d);
	/* C.2.2 literal without indexing */
	hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
	assert_int_equal(decode_hex(&d, "040c 2f73 616d 706c 652f 7061 7468", g), 0);
	fields_are(g, BLOCK(":path", "/sample/path"));
	assert_int_equal(g->f[0].id, HPACK_ID_LIT);	/* remembered, not indexed */
	table_is(&d, 0, NONE);
	hpack_dec_free(&d);
	/* C.2.3 literal never indexed */
	hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
	assert_int_equal(decode_hex(&d, "1008 7061 7373 776f 7264 0673 6563 7265 74", g), 0);
	fields_are(g, BLOCK("password", "secret"));
	assert_int_equal(g->f[0].id, 0);
	table_is(&d, 0, NONE);
	hpack_dec_free(&d);
	/* C.2.4 indexed */
	hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
	assert_int_equal(decode_hex(&d, "82", g), 0);
	fields_are(g, BLOCK(":method", "GET"));
	assert_int_equal(g->f[0].id, 2);
	table_is(&d, 0, NONE);
	hpack_dec_free(&d);
	free(g);
}

/* C.3 / C.4: three requests through one decoder, plain or Huffman. */
static void rfc_requests(const char *const blocks[3])
{
	struct got *g = got_new();
	struct hpack_dec d;

	hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
	assert_int_equal(decode_hex(&d, blocks[0], g), 0);
	fields_are(g, BLOCK(":method", "GET", ":scheme", "http", ":path", "/",
			    ":authority", "www.example.com"));
	assert_int_equal(g->f[0].id, 2);
	assert_int_equal(g->f[1].id, 6);
	assert_int_equal(g->f[2].id, 4);
	assert_int_equal(g->f[3].id, HPACK_ID_DYN);
	table_is(&d, 57, BLOCK(":authority", "www.example.com"));

	assert_int_equal(decode_hex(&d, blocks[1], g), 0);
	fields_are(g, BLOCK(":method", "GET", ":scheme", "http", ":path", "/",
			    ":authority", "www.example.com", "cache-control", "no-cache"));
	assert_int_equal(g->f[3].id, HPACK_ID_DYN);	/* the same entry */
	assert_int_equal(g->f[4].id, HPACK_ID_DYN + 1);
	table_is(&d, 110, BLOCK("cache-control", "no-cache", ":authority", "www.example.com"));

	assert_int_equal(decode_hex(&d, blocks[2], g), 0);
	fields_are(g, BLOCK(":method", "GET", ":scheme", "https", ":path", "/index.html",
			    ":authority", "www.example.com", "custom-key", "custom-value"));
	assert_int_equal(g->f[1].id, 7);
	assert_int_equal(g->f[2].id, 5);
	assert_int_equal(g->f[3].id, HPACK_ID_DYN);
	assert_int_equal(g->f[4].id, HPACK_ID_DYN + 2);
	table_is(&d, 164, BLOCK("custom-key", "custom-value", "cache-control", "no-cache",
				":authority", "www.example.com"));
	hpack_dec_free(&d);
	free(g);
}

static void test_rfc_c3(void **state)
{
	static const char *const blocks[3] = {
		"8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
		"8286 84be 5808 6e6f 2d63 6163 6865",
		"8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
	};

	(void)state;
	rfc_requests(blocks);
}

static void test_rfc_c4(void **state)
{
	static const char *const blocks[3] = {
		"8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff",
		"8286 84be 5886 a8eb 1064 9cbf",
		"8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
	};

	(void)state;
	rfc_requests(blocks);
}

#define DATE1 "Mon, 21 Oct 2013 20:13:21 GMT"
#define DATE2 "Mon, 21 Oct 2013 20:13:22 GMT"
#define LOC "https://www.example.com"
#define COOKIE "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"

/* C.5 / C.6: three responses through a decoder with a 256-byte table, so
 * that entries are evicted. */
static void rfc_responses(const char *const blocks[3])
{
	struct got *g = got_new();
	struct hpack_dec d;

	hpack_dec_init(&d, 256);
	assert_int_equal(decode_hex(&d, blocks[0], g), 0);
	fields_are(g, BLOCK(":status", "302", "cache-control", "private", "date", DATE1,
			    "location", LOC));
	table_is(&d, 222, BLOCK("location", LOC, "date", DATE1, "cache-control", "private",
				":status", "302"));

	assert_int_equal(decode_hex(&d, blocks[1], g), 0);
	fields_are(g, BLOCK(":status", "307", "cache-control", "private", "date", DATE1,
			    "location", LOC));
	assert_int_equal(g->f[0].id, HPACK_ID_DYN + 4);
	assert_int_equal(g->f[1].id, HPACK_ID_DYN + 1);
	assert_int_equal(g->f[2].id, HPACK_ID_DYN + 2);
	assert_int_equal(g->f[3].id, HPACK_ID_DYN + 3);
	table_is(&d, 222, BLOCK(":status", "307", "location", LOC, "date", DATE1,
				"cache-control", "private"));

	assert_int_equal(decode_hex(&d, blocks[2], g), 0);
	fields_are(g, BLOCK(":status", "200", "cache-control", "private", "date", DATE2,
			    "location", LOC, "content-encoding", "gzip", "set-cookie", COOKIE));
	assert_int_equal(g->f[0].id, 8);
	table_is(&d, 215, BLOCK("set-cookie", COOKIE, "content-encoding", "gzip", "date", DATE2));
	hpack_dec_free(&d);
	free(g);
}

static void test_rfc_c5(void **state)
{
	static const char *const blocks[3] = {
		"4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 "
		"2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 "
		"6c65 2e63 6f6d",
		"4803 3330 37c1 c0bf",
		"88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d "
		"54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 "
		"5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e "
		"3d31",
	};

	(void)state;
	rfc_responses(blocks);
}

static void test_rfc_c6(void **state)
{
	static const char *const blocks[3] = {
		"4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 "
		"2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
		"4883 640e ffc1 c0bf",
		"88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab "
		"77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f "
		"9587 3160 65c0 03ed 4ee5 b106 3d50 07",
	};

	(void)state;
	rfc_responses(blocks);
}

/* --- Huffman --------------------------------------------------------------- */

/* RFC 7541 Appendix B's code lengths; the code is canonical (codes of one
 * length consecutive in symbol order, shorter ones first), so the codes
 * follow from these alone: an encoder independent of hpack.c's table. */
static const uint8_t huff_len[257] = {
	/*   0 */ 13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28,
	/*  16 */ 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
	/*  32 */ 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
	/*  48 */ 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
	/*  64 */ 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	/*  80 */ 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
	/*  96 */ 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5,
	/* 112 */ 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
	/* 128 */ 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
	/* 144 */ 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
	/* 160 */ 22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23,
	/* 176 */ 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
	/* 192 */ 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25,
	/* 208 */ 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
	/* 224 */ 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
	/* 240 */ 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
	/* 256 */ 30,
};

static uint32_t huff_code[257];

static void huff_codes(void)
{
	uint32_t code = 0;
	unsigned prev = 0;

	for (unsigned len = 5; len <= 30; len++) {
		for (unsigned s = 0; s < 257; s++) {
			if (huff_len[s] != len)
				continue;
			if (prev)
				code = (code + 1) << (len - prev);
			huff_code[s] = code;
			prev = len;
		}
	}
	/* a complete code: the last one all ones (EOS) */
	assert_int_equal(huff_code[256], 0x3fffffff);
	assert_int_equal(huff_code['0'], 0x0);
	assert_int_equal(huff_code[' '], 0x14);
	assert_int_equal(huff_code[255], 0x3ffffee);
}

/* A bit writer, most significant bit first. */
struct bits {
	uint8_t *o;
	size_t n;
	uint64_t acc;
	unsigned k;
};

static void bits_put(struct bits *b, uint32_t code, unsigned len)
{
	b->acc = b->acc << len | code;
	b->k += len;
	while (b->k >= 8) {
		b->k -= 8;
		b->o[b->n++] = (uint8_t)(b->acc >> b->k);
	}
}

/* bits_end - pad the last byte with pad_bits (right-aligned, as many as
 * it lacks); the bytes written. */
static size_t bits_end(struct bits *b, uint8_t pad_bits)
{
	if (b->k)
		bits_put(b, pad_bits & ((1u << (8 - b->k)) - 1), 8 - b->k);
	return b->n;
}

/* huff_encode - s[0..n) Huffman-coded with padding of ones. */
static size_t huff_encode(uint8_t *o, const uint8_t *s, size_t n)
{
	struct bits b = { o, 0, 0, 0 };

	for (size_t i = 0; i < n; i++)
		bits_put(&b, huff_code[s[i]], huff_len[s[i]]);
	return bits_end(&b, 0xff);
}

/* huff_block - a block of one literal field without indexing, name "x",
 * whose value is the Huffman string h[0..hn). */
static size_t huff_block(uint8_t *o, const uint8_t *h, size_t hn)
{
	size_t n = 0;

	o[n++] = 0x00;
	o[n++] = 0x01;
	o[n++] = 'x';
	n += put_int(o + n, 0x80, 0x7f, hn);
	memcpy(o + n, h, hn);
	return n + hn;
}

static void test_huffman_all_bytes(void **state)
{
	struct got *g = got_new();
	static uint8_t s[512], h[2048], blk[4096];
	struct hpack_dec d;
	size_t hn, n;

	(void)state;
	huff_codes();
	hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
	/* every byte alone */
	for (unsigned c = 0; c < 256; c++) {
		s[0] = (uint8_t)c;
		hn = huff_encode(h, s, 1);
		n = huff_block(blk, h, hn);
		g->n = 0;
		assert_int_equal(hpack_decode(&d, blk, n, collect, g), 0);
		assert_int_equal(g->n, 1);
		assert_int_equal(g->f[0].vlen, 1);
		assert_int_equal(g->f[0].value[0], c);
	}
	/* all 256 in one string, in both orders (the length takes two bytes) */
	for (unsigned i = 0; i < 512; i++)
		s[i] = (uint8_t)(i < 256 ? i : 511 - i);
	hn = huff_encode(h, s, 512);
	assert_true(hn > 127);
	n = huff_block(blk, h, hn);
	g->n = 0;
	assert_int_equal(hpack_decode(&d, blk, n, collect, g), 0);
	assert_int_equal(g->n, 1);
	assert_int_equal(g->f[0].vlen, 512);
	assert_memory_equal(g->f[0].value, s, 512);
	/* a Huffman name and value, inserted: both decoded before the copy */
	n = 0;
	blk[n++] = 0x40;
	hn = huff_encode(h, (const uint8_t *)"x-huffman-name", 14);
	n += put_int(blk + n, 0x80, 0x7f, hn);
	memcpy(blk + n, h, hn);
	n += hn;
	hn = huff_encode(h, s, 300);
	n += put_int(blk + n, 0x80, 0x7f, hn);
	memcpy(blk + n, h, hn);
	n += hn;
	g->n = 0;
	assert_int_equal(hpack_decode(&d, blk, n, collect, g), 0);
	assert_int_equal(g->n, 1);
	assert_int_equal(g->f[0].nlen, 14);
	assert_memory_equal(g->f[0].name, "x-huffman-name", 14);
	assert_int_equal(g->f[0].vlen, 300);
	assert_memory_equal(g->f[0].value, s, 300);
	assert_int_equal(index_field(&d, 62, g), 0);
	assert_int_equal(g->f[0].vlen, 300);
	assert_memory_equal(g->f[0].value, s, 300);
	/* the scratch's worst case: only 5-bit symbols (8 per 5 bytes), in a
	 * name and a value, alone in a block and after a shorter such field
	 * (the scratch is sized at a block's first Huffman string) */
	for (int pass = 0; pass < 2; pass++) {
		size_t hn2;

		hpack_dec_free(&d);	/* a fresh scratch */
		hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
		memset(s, '0', 400);
		n = 0;
		if (pass) {
			blk[n++] = 0x00;
			n += put_int(blk + n, 0x80, 0x7f, huff_encode(h, s, 8));
			n += huff_encode(blk + n, s, 8);
			blk[n++] = 0x80;
		}
		blk[n++] = 0x40;
		hn = huff_encode(h, s, 160);
		assert_int_equal(hn, 100);
		n += put_int(blk + n, 0x80, 0x7f, hn);
		memcpy(blk + n, h, hn);
		n += hn;
		hn2 = huff_encode(h, s, 400);
		assert_int_equal(hn2, 250);
		n += put_int(blk + n, 0x80, 0x7f, hn2);
		memcpy(blk + n, h, hn2);
		n += hn2;
		g->n = 0;
		assert_int_equal(hpack_decode(&d, blk, n, collect, g), 0);
		assert_int_equal(g->n, 1 + pass);
		assert_int_equal(g->f[pass].nlen, 160);
		assert_int_equal(g->f[pass].vlen, 400);
		assert_memory_equal(g->f[pass].value, s, 400);
		assert_true(d.scratch_cap <= n / 5 * 8 + 16);
	}
	/* the empty Huffman string */
	g->n = 0;
	assert_int_equal(hpack_decode(&d, (const uint8_t *)"\x00\x01x\x80", 4, collect, g), 0);
	field_is(g, 0, "x", "");
	/* random strings, each with a padding of 0-7 bits */
	srand(7);
	for (int k = 0; k < 2000; k++) {
		size_t len = (size_t)rand() % 200;

		for (size_t i = 0; i < len; i++)
			s[i] = (uint8_t)(k & 1 ? rand() : "abcdefgh0123:/- "[rand() % 16]);
		hn = huff_encode(h, s, len);
		n = huff_block(blk, h, hn);
		g->n = 0;
		assert_int_equal(hpack_decode(&d, blk, n, collect, g), 0);
		assert_int_equal(g->f[0].vlen, len);
		if (len)
			assert_memory_equal(g->f[0].value, s, len);
	}
	hpack_dec_free(&d);
	free(g);
}

/* --- Errors ---------------------------------------------------------------- */

/* bad - the block spelt in s is a COMPRESSION_ERROR for a fresh decoder
 * with this limit. */
static void bad(const char *s, uint32_t limit)
{
	struct got *g = got_new();
	struct hpack_dec d;

	hpack_dec_init(&d, limit);
	assert_int_equal(decode_hex(&d, s, g), HPACK_ERR_COMPRESSION);
	hpack_dec_free(&d);
	free(g);
}

/* bad_huff - a literal whose value is the Huffman string h[0..hn) is a
 * COMPRESSION_ERROR. */
static void bad_huff(const uint8_t *h, size_t hn)
{
	struct got *g = got_new();
	uint8_t blk[64];
	struct hpack_dec d;
	size_t n = huff_block(blk, h, hn);

	hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
	assert_int_equal(hpack_decode(&d, blk, n, collect, g), HPACK_ERR_COMPRESSION);
	assert_int_equal(g->n, 0);
	hpack_dec_free(&d);
	free(g);
}

static void test_errors(void **state)
{
	uint8_t h[16];
	struct bits b = { h, 0, 0, 0 };

	(void)state;
	huff_codes();
	bad("80", 4096);				/* index 0 */
	bad("be", 4096);				/* 62: past the (empty) table */
	bad("4001 6101 62 bf", 4096);			/* 63 past a one-entry table */
	bad("ff 81 7f", 4096);				/* 16384 */
	bad("7e 00", 4096);				/* indexed name past the table */
	bad("0f 2f", 4096);				/* ... literal without indexing */
	bad("ff", 4096);				/* integer cut after its prefix */
	bad("ff 80", 4096);				/* ... after a continuation byte */
	bad("00 7f", 4096);				/* a string length cut */
	bad("ff ff ff ff ff 0f", 4096);			/* 2^32 + 126: over 32 bits */
	bad("ff 80 80 80 80 80 00", 4096);		/* six continuation bytes */
	bad("00 05 6162", 4096);			/* string length past the end */
	bad("00 01 61 05 6162", 4096);			/* ... of the value */
	bad("00", 4096);				/* no name */
	bad("00 01 61", 4096);				/* no value */
	bad("82 00 01", 4096);				/* a field cut after one good one */
	bad("3f e2 1f", 4096);				/* size update to 4097 */
	bad("21", 0);					/* 1 over a zero limit */
	bad("82 20", 4096);				/* size update after a field */
	bad("20 82 3f e1 1f", 4096);			/* ... even one after updates */
	/* Huffman: EOS alone (30 ones + 2 of padding), after a symbol, and
	 * padding of 8 ones, of 8 ones after a symbol, with a zero bit */
	bad_huff((const uint8_t *)"\xff\xff\xff\xff", 4);
	bits_put(&b, huff_code['a'], 5);
	bits_put(&b, huff_code[256], 30);
	bad_huff(h, bits_end(&b, 0xff));
	bad_huff((const uint8_t *)"\xff", 1);
	bad_huff((const uint8_t *)"\x1f\xff", 2);	/* 'a' 00011 + 11 ones */
	bad_huff((const uint8_t *)"\x1e", 1);		/* 'a' 00011 + 110 */
	bad_huff((const uint8_t *)"\x1d", 1);		/* 'a' 00011 + 101 */
	bad_huff((const uint8_t *)"\x1b", 1);		/* 'a' 00011 + 011 */
	/* Huffman in a name too */
	bad("00 81 ff 00", 4096);
}

/* Integers at their limits; size updates at the start, more than one. */
static void test_integer_limits(void **state)
{
	struct got *g = got_new();
	struct hpack_dec d;
	uint8_t b[16];
	size_t n;

	(void)state;
	/* 2^32 - 1 is a size update a table of that limit accepts */
	hpack_dec_init(&d, UINT32_MAX);
	n = put_int(b, 0x20, 0x1f, UINT32_MAX);
	assert_int_equal(n, 6);
	assert_int_equal(hpack_decode(&d, b, n, collect, g), 0);
	assert_int_equal(d.max, UINT32_MAX);
	n = put_int(b, 0x20, 0x1f, (uint64_t)UINT32_MAX + 1);
	assert_int_equal(hpack_decode(&d, b, n, collect, g), HPACK_ERR_COMPRESSION);
	hpack_dec_free(&d);
	/* the smallest value that needs a continuation byte, and one with a
	 * redundant zero continuation (allowed: still within 5 bytes) */
	hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
	assert_int_equal(decode_hex(&d, "3f 00", g), 0);	/* 31 */
	assert_int_equal(d.max, 31);
	assert_int_equal(decode_hex(&d, "3f e1 1f", g), 0);	/* 4096 */
	assert_int_equal(d.max, 4096);
	assert_int_equal(decode_hex(&d, "3f 81 80 80 80 00 82", g), 0);	/* 32 */
	assert_int_equal(d.max, 32);
	fields_are(g, BLOCK(":method", "GET"));
	/* two updates then fields; the smaller one evicts */
	assert_int_equal(decode_hex(&d, "3f e1 1f 4001 6101 62", g), 0);
	table_is(&d, 34, BLOCK("a", "b"));
	assert_int_equal(decode_hex(&d, "20 3f e1 1f 82", g), 0);
	assert_int_equal(g->n, 1);
	assert_int_equal(d.count, 0);
	hpack_dec_free(&d);
	/* a table of 0: nothing is ever kept, literals still go through */
	hpack_dec_init(&d, 0);
	assert_int_equal(decode_hex(&d, "4001 6101 62 4001 6301 64", g), 0);
	fields_are(g, BLOCK("a", "b", "c", "d"));
	assert_int_equal(g->f[0].id, 0);
	assert_int_equal(d.count, 0);
	assert_int_equal(d.size, 0);
	hpack_dec_free(&d);
	free(g);
}

/* --- Remembered literals ---------------------------------------------------- */

/*
 * A plain literal repeated byte for byte at the same position of a later
 * block is the same field: same bytes, same id, not decoded again.  Not
 * for a never-indexed literal, a name from the dynamic table, a literal
 * past HPACK_LIT_SLOTS or over 48 bytes as sent, nor at another position;
 * different bytes at a position get a new id.
 */
static void test_literal_memo(void **state)
{
	/* :method GET, :path /sample/path (Huffman, C.4.1's encoding of
	 * www.example.com stands in as the value), content-length 42 */
	static const char block[] = "82 048c f1e3 c2e5 f23a 6ba0 ab90 f4ff 0f0d 023432";
	struct got *g = got_new();
	struct hpack_dec d;
	uint32_t path_id, len_id;
	char big[200];

	(void)state;
	hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
	assert_int_equal(decode_hex(&d, block, g), 0);
	fields_are(g, BLOCK(":method", "GET", ":path", "www.example.com", "content-length", "42"));
	path_id = g->f[1].id;
	len_id = g->f[2].id;
	assert_true(path_id >= HPACK_ID_LIT && len_id >= HPACK_ID_LIT && path_id != len_id);
	/* again: the same fields and ids, the bytes kept by the decoder */
	got_reset(g);
	assert_int_equal(decode_hex(&d, block, g), 0);
	fields_are(g, BLOCK(":method", "GET", ":path", "www.example.com", "content-length", "42"));
	assert_int_equal(g->f[1].id, path_id);
	assert_int_equal(g->f[2].id, len_id);
	/* another content-length at that position: a new id; then the old
	 * one again: newer still (one kept per position) */
	got_reset(g);
	assert_int_equal(decode_hex(&d, "82 048c f1e3 c2e5 f23a 6ba0 ab90 f4ff 0f0d 023433", g), 0);
	field_is(g, 2, "content-length", "43");
	assert_true(g->f[2].id != len_id && g->f[2].id >= HPACK_ID_LIT);
	assert_int_equal(g->f[1].id, path_id);
	got_reset(g);
	assert_int_equal(decode_hex(&d, block, g), 0);
	field_is(g, 2, "content-length", "42");
	assert_true(g->f[2].id != len_id);
	/* the same literal at another position: decoded, its own id */
	got_reset(g);
	assert_int_equal(decode_hex(&d, "82 82 048c f1e3 c2e5 f23a 6ba0 ab90 f4ff", g), 0);
	field_is(g, 2, ":path", "www.example.com");
	assert_true(g->f[2].id != path_id && g->f[2].id >= HPACK_ID_LIT);
	/* never indexed: not remembered, id 0 each time */
	for (int k = 0; k < 2; k++) {
		got_reset(g);
		assert_int_equal(decode_hex(&d, "1008 7061 7373 776f 7264 0673 6563 7265 74", g), 0);
		fields_are(g, BLOCK("password", "secret"));
		assert_int_equal(g->f[0].id, 0);
	}
	/* a name from the dynamic table: the same bytes name another entry
	 * once the table changed, so never remembered */
	got_reset(g);
	assert_int_equal(decode_hex(&d, "4001 6101 62 0f2f 0178", g), 0);	/* a: b, then [62]: x */
	field_is(g, 1, "a", "x");
	assert_int_equal(g->f[1].id, 0);
	got_reset(g);
	assert_int_equal(decode_hex(&d, "4001 6301 64 0f2f 0178", g), 0);	/* c: d, then [62]: x */
	field_is(g, 1, "c", "x");
	assert_int_equal(g->f[1].id, 0);
	/* past HPACK_LIT_SLOTS positions: id 0 */
	got_reset(g);
	assert_int_equal(decode_hex(&d, "82 82 82 82 82 82 82 82 0f0d 023432", g), 0);
	assert_int_equal(g->n, 9);
	assert_int_equal(g->f[8].id, 0);
	/* over 48 bytes as sent: decoded each time, id 0 */
	memset(big, 'v', 60);
	big[60] = 0;
	{
		char hex[400];
		int o = snprintf(hex, sizeof(hex), "0f0d 3c");

		for (int k = 0; k < 60; k++)
			o += snprintf(hex + o, sizeof(hex) - (size_t)o, "76");
		got_reset(g);
		assert_int_equal(decode_hex(&d, hex, g), 0);
		assert_int_equal(g->f[0].vlen, 60);
		assert_memory_equal(g->f[0].value, big, 60);
		assert_int_equal(g->f[0].id, 0);
	}
	hpack_dec_free(&d);
	free(g);
}

/* --- Ids, eviction, STOP, abort -------------------------------------------- */

static void test_ids(void **state)
{
	struct got *g = got_new();
	struct hpack_dec d;
	uint32_t first;

	(void)state;
	/* room for two 34-byte entries ("a: b" and the like) */
	hpack_dec_init(&d, 70);
	assert_int_equal(decode_hex(&d, "82 87 4001 6101 62 be be 0001 6101 62 0f 0d 02 3432", g), 0);
	fields_are(g, BLOCK(":method", "GET", ":scheme", "https", "a", "b", "a", "b", "a", "b",
			    "a", "b", "content-length", "42"));
	assert_int_equal(g->f[0].id, 2);
	assert_int_equal(g->f[1].id, 7);
	first = g->f[2].id;
	assert_int_equal(first, HPACK_ID_DYN);
	assert_int_equal(g->f[3].id, first);	/* the same entry twice */
	assert_int_equal(g->f[4].id, first);
	assert_int_equal(g->f[5].id, HPACK_ID_LIT);	/* a literal: remembered */
	assert_int_equal(g->f[6].id, HPACK_ID_LIT + 1);
	/* c: d, then e: f evicts a: b */
	assert_int_equal(decode_hex(&d, "4001 6301 64 be bf 4001 6501 66 bf", g), 0);
	assert_int_equal(g->f[0].id, HPACK_ID_DYN + 1);
	assert_int_equal(g->f[1].id, HPACK_ID_DYN + 1);
	assert_int_equal(g->f[2].id, first);
	assert_int_equal(g->f[3].id, HPACK_ID_DYN + 2);
	field_is(g, 4, "c", "d");
	assert_int_equal(g->f[4].id, HPACK_ID_DYN + 1);
	table_is(&d, 68, BLOCK("e", "f", "c", "d"));
	/* the same bytes again: a new entry, a new id */
	assert_int_equal(decode_hex(&d, "4001 6101 62 be", g), 0);
	fields_are(g, BLOCK("a", "b", "a", "b"));
	assert_int_equal(g->f[0].id, HPACK_ID_DYN + 3);
	assert_int_equal(g->f[1].id, HPACK_ID_DYN + 3);
	table_is(&d, 68, BLOCK("a", "b", "e", "f"));
	/* a name from the table with a new value: indexed, its own id */
	assert_int_equal(decode_hex(&d, "7e 01 7a 41 01 79", g), 0);	/* a: z, :authority: y */
	fields_are(g, BLOCK("a", "z", ":authority", "y"));
	assert_int_equal(g->f[0].id, HPACK_ID_DYN + 4);
	assert_int_equal(g->f[1].id, HPACK_ID_DYN + 5);
	table_is(&d, 43, BLOCK(":authority", "y"));	/* 43 + 34 > 70: alone */
	/* an entry larger than the table: handed over (id 0), the table emptied */
	assert_int_equal(decode_hex(&d, "4001 61 26 3031323334353637383930313233343536373839303132333435363738393031323334353637 82", g), 0);
	assert_int_equal(g->n, 2);
	assert_int_equal(g->f[0].vlen, 38);	/* 1 + 38 + 32 = 71 */
	assert_memory_equal(g->f[0].value, "01234567890123456789012345678901234567", 38);
	assert_int_equal(g->f[0].id, 0);
	table_is(&d, 0, NONE);
	/* the name of that entry from the table, just evicted */
	assert_int_equal(decode_hex(&d, "4001 6101 62 7e 26 3031323334353637383930313233343536373839303132333435363738393031323334353637", g), 0);
	field_is(g, 1, "a", "01234567890123456789012345678901234567");
	assert_int_equal(g->f[1].id, 0);
	table_is(&d, 0, NONE);
	hpack_dec_free(&d);
	free(g);
}

/* A block with every kind of field: after HPACK_STOP the table keeps in
 * step but nothing more is handed over. */
#define MIXED "82 4001 6101 62 0001 6301 64 be 4883 640e ff 1001 6501 66 bf 7e 01 7a 0081 ff 81 ff"

static void test_stop(void **state)
{
	struct got *g = got_new();
	struct hpack_dec d, ref;

	(void)state;
	hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
	hpack_dec_init(&ref, HPACK_TABLE_DEFAULT);
	/* the whole block but its last field (a Huffman name of 8 ones) is good */
	assert_int_equal(decode_hex(&ref, "82 4001 6101 62 0001 6301 64 be 4883 640e ff 1001 6501 66 bf 7e 01 7a", g), 0);
	fields_are(g, BLOCK(":method", "GET", "a", "b", "c", "d", "a", "b", ":status", "307",
			    "e", "f", "a", "b", ":status", "z"));
	/* stop at the second: the rest decoded, the literal not indexed skipped
	 * undecoded (its bad Huffman unseen), the table the same */
	g->stop_at = 2;
	assert_int_equal(decode_hex(&d, MIXED, g), 0);
	assert_int_equal(g->n, 2);
	fields_are(g, BLOCK(":method", "GET", "a", "b"));
	assert_int_equal(d.size, ref.size);
	assert_int_equal(d.count, 3);
	table_is(&d, ref.size, BLOCK(":status", "z", ":status", "307", "a", "b"));
	/* the next block is handed over again */
	got_reset(g);
	assert_int_equal(decode_hex(&d, "be bf", g), 0);
	fields_are(g, BLOCK(":status", "z", ":status", "307"));
	/* stop at the first field of a block; errors are still errors */
	g->stop_at = 1;
	assert_int_equal(decode_hex(&d, "82 80", g), HPACK_ERR_COMPRESSION);
	assert_int_equal(g->n, 1);
	hpack_dec_free(&d);
	hpack_dec_free(&ref);
	free(g);
}

static void test_abort(void **state)
{
	struct got *g = got_new();
	struct hpack_dec d;

	(void)state;
	hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
	g->fail_at = 2;
	g->fail_rc = -7;
	assert_int_equal(decode_hex(&d, "82 86 84 4001 6101 62", g), -7);
	assert_int_equal(g->n, 2);
	hpack_dec_free(&d);
	/* an abort from an inserted field: the table was updated first */
	hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
	got_reset(g);
	g->fail_at = 1;
	g->fail_rc = -12;
	assert_int_equal(decode_hex(&d, "4001 6101 62 82", g), -12);
	assert_int_equal(g->n, 1);
	hpack_dec_free(&d);
	free(g);
}

/* --- The dynamic table against a model ------------------------------------ */

struct model_entry {
	char name[40], value[200];
	uint32_t id;
};

/* model_insert - §4.4 on an array, newest first; the entry's size. */
static void model_insert(struct model_entry *m, uint32_t *count, uint32_t *size, uint32_t max,
			 const char *name, const char *value, uint32_t id)
{
	uint32_t es = (uint32_t)(strlen(name) + strlen(value) + 32);

	while (*count && *size + es > max) {
		(*count)--;
		*size -= (uint32_t)(strlen(m[*count].name) + strlen(m[*count].value) + 32);
	}
	if (es > max)
		return;
	memmove(m + 1, m, *count * sizeof(*m));
	strcpy(m[0].name, name);
	strcpy(m[0].value, value);
	m[0].id = id;
	(*count)++;
	*size += es;
}

/* Random insertions (new names, indexed names), size updates and indexed
 * references, block after block: the decoder's table, fields and ids agree
 * with the model; the ring wraps and grows. */
static void test_table_model(void **state)
{
	static struct model_entry m[600];
	struct got *g = got_new();
	uint32_t count = 0, size = 0, max = 8192, serial = 0;
	struct hpack_dec d;

	(void)state;
	srand(11);
	hpack_dec_init(&d, 8192);
	for (int round = 0; round < 3000; round++) {
		uint8_t blk[1024];
		size_t n = 0;
		char name[40], value[200];
		int what = rand() % 10;

		if (what == 0) {	/* a size update, then a reference */
			max = (uint32_t)rand() % 8193;
			n += put_int(blk + n, 0x20, 0x1f, max);
			while (count && size > max) {
				count--;
				size -= (uint32_t)(strlen(m[count].name) + strlen(m[count].value) + 32);
			}
		} else if (what < 6) {	/* an insertion */
			bool by_index = count && rand() % 2;
			size_t vl = (size_t)rand() % 199;

			for (size_t i = 0; i < vl; i++)
				value[i] = (char)('a' + rand() % 26);
			value[vl] = 0;
			if (by_index) {
				uint32_t k = (uint32_t)rand() % count;

				strcpy(name, m[k].name);
				n += put_int(blk + n, 0x40, 0x3f, 62 + k);
			} else {
				snprintf(name, sizeof(name), "n%d", rand() % 50);
				blk[n++] = 0x40;
				n += put_int(blk + n, 0, 0x7f, strlen(name));
				memcpy(blk + n, name, strlen(name));
				n += strlen(name);
			}
			n += put_int(blk + n, 0, 0x7f, vl);
			memcpy(blk + n, value, vl);
			n += vl;
			model_insert(m, &count, &size, max, name, value,
				     strlen(name) + vl + 32 <= max ? HPACK_ID_DYN + serial++ : 0);
		}
		if (count) {		/* and a reference to some entry */
			uint32_t k = (uint32_t)rand() % count;

			n += put_int(blk + n, 0x80, 0x7f, 62 + k);
			got_reset(g);
			assert_int_equal(hpack_decode(&d, blk, n, collect, g), 0);
			field_is(g, g->n - 1, m[k].name, m[k].value);
			assert_int_equal(g->f[g->n - 1].id, m[k].id);
		} else {
			got_reset(g);
			assert_int_equal(hpack_decode(&d, blk, n, collect, g), 0);
		}
		assert_int_equal(d.count, count);
		assert_int_equal(d.size, size);
		assert_int_equal(d.max, max);
		assert_true(d.size <= d.max);
		/* past the table is still an error */
		if (round % 500 == 0) {
			struct hpack_dec copy = d;	/* the error leaves d alone here */

			assert_int_equal(index_field(&copy, 62 + count, g), HPACK_ERR_COMPRESSION);
		}
	}
	/* the whole table, every entry */
	for (uint32_t k = 0; k < count; k++) {
		assert_int_equal(index_field(&d, 62 + k, g), 0);
		field_is(g, 0, m[k].name, m[k].value);
		assert_int_equal(g->f[0].id, m[k].id);
	}
	hpack_dec_free(&d);
	free(g);
}

/* --- Encoder ---------------------------------------------------------------- */

static struct hpack_field fld(const char *n, const char *v)
{
	return (struct hpack_field){ (const uint8_t *)n, (const uint8_t *)v, (uint32_t)strlen(n),
				     (uint32_t)strlen(v), 0 };
}

/* encodes_to - f[0..n) encodes to the bytes spelt in s, within the bound. */
static void encodes_to(const struct hpack_field *f, size_t n, const char *s)
{
	uint8_t want[4096], out[4096];
	size_t wn = hex(s, want), len;

	assert_true(hpack_encode_bound(f, n) <= sizeof(out));
	len = hpack_encode(out, f, n);
	assert_true(len <= hpack_encode_bound(f, n));
	assert_int_equal(len, wn);
	assert_memory_equal(out, want, wn);
}

static void test_encode_bytes(void **state)
{
	static const char *const statuses[] = { "200", "204", "206", "304", "400", "404", "500" };
	struct hpack_field f[4];

	(void)state;
	f[0] = fld(":status", "200");
	encodes_to(f, 1, "88");
	f[1] = fld("content-length", "42");
	encodes_to(f, 2, "88 0f0d 02 3432");
	f[0] = fld(":status", "503");
	encodes_to(f, 1, "08 03 353033");
	f[0] = fld("content-type", "application/json");
	encodes_to(f, 1, "0f10 10 6170706c69636174696f6e2f6a736f6e");
	f[0] = fld("grpc-status", "0");
	f[1] = fld("date", "");
	f[2] = fld("accept-encoding", "gzip, deflate");
	f[3] = fld("accept-encoding", "gzip");
	encodes_to(f, 4, "00 0b 677270632d737461747573 01 30  a1  90  0f01 04 677a6970");
	f[0] = fld("x", "");
	encodes_to(f, 1, "00 01 78 00");
	for (unsigned i = 0; i < 7; i++) {
		uint8_t out[8];

		f[0] = fld(":status", statuses[i]);
		assert_int_equal(hpack_encode(out, f, 1), 1);
		assert_int_equal(out[0], 0x88 + i);
	}
	/* a field with a 127-byte value: the length takes two bytes */
	{
		char v[128];
		uint8_t out[256];

		memset(v, 'v', 127);
		v[127] = 0;
		f[0] = fld("server", v);
		assert_int_equal(hpack_encode(out, f, 1), 2 + 2 + 127);
		assert_int_equal(out[0], 0x0f);
		assert_int_equal(out[1], 54 - 15);
		assert_int_equal(out[2], 0x7f);
		assert_int_equal(out[3], 0x00);
	}
}

/* Each static entry is one byte; each static name with another value is
 * indexed by the first entry with that name (the name hash has no
 * collisions), read back by the decoder. */
static void test_encode_static(void **state)
{
	struct got *g = got_new();
	struct hpack_dec d;
	uint8_t out[64];

	(void)state;
	hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
	for (uint32_t i = 1; i <= 61; i++) {
		struct hpack_field f;
		char name[40], value[40];
		size_t len;

		assert_int_equal(index_field(&d, i, g), 0);
		assert_int_equal(g->f[0].id, i);
		memcpy(name, g->f[0].name, g->f[0].nlen);
		name[g->f[0].nlen] = 0;
		memcpy(value, g->f[0].value, g->f[0].vlen);
		value[g->f[0].vlen] = 0;
		f = fld(name, value);
		assert_int_equal(hpack_encode(out, &f, 1), 1);
		assert_int_equal(out[0], 0x80 | i);
		/* another value: the name's first index, then the literal */
		f = fld(name, "zz");
		len = hpack_encode(out, &f, 1);
		assert_true(len == 4 || len == 5);
		assert_int_equal(out[0] & 0xf0, 0);
		g->n = 0;
		assert_int_equal(hpack_decode(&d, out, len, collect, g), 0);
		field_is(g, 0, name, "zz");
		assert_true(g->f[0].id >= HPACK_ID_LIT);	/* a remembered literal */
		{		/* the first index with the name */
			uint32_t idx = out[0] < 15 ? out[0] : 15u + out[1];

			assert_true(idx <= i);
			assert_int_equal(len, idx < 15 ? 4 : 5);
			if (idx > 1) {
				assert_int_equal(index_field(&d, idx - 1, g), 0);
				assert_false(g->f[0].nlen == strlen(name) &&
					     !memcmp(g->f[0].name, name, strlen(name)));
			}
		}
		/* the name one byte longer is no static name */
		strcat(name, "x");
		f = fld(name, "zz");
		len = hpack_encode(out, &f, 1);
		assert_int_equal(out[0], 0x00);
		assert_int_equal(out[1], strlen(name));
	}
	assert_int_equal(d.count, 0);
	hpack_dec_free(&d);
	free(g);
}

/* Random field sets: encoded within the bound, decoded back to the same
 * bytes, by a fresh decoder and by one that carries a table. */
static void test_encode_roundtrip(void **state)
{
	static const char *const names[] = { ":status", "content-type", "content-length",
					     "grpc-status", "grpc-message", "grpc-accept-encoding",
					     "date", "server", "x-request-id", "accept-encoding",
					     ":method", ":path", "", "set-cookie", "vary" };
	static const char *const values[] = { "200", "204", "206", "304", "400", "404", "500",
					      "503", "", "0", "application/json",
					      "application/grpc", "gzip, deflate", "GET", "/" };
	static char strs[32][700];
	struct got *g = got_new();
	struct hpack_dec keep;
	struct hpack_field f[32];
	static uint8_t out[32 * 720];

	(void)state;
	srand(5);
	hpack_dec_init(&keep, HPACK_TABLE_DEFAULT);
	assert_int_equal(decode_hex(&keep, "4001 6101 62", g), 0);
	for (int round = 0; round < 3000; round++) {
		size_t n = 1 + (size_t)rand() % 30, len, bound;
		struct hpack_dec d;

		for (size_t i = 0; i < n; i++) {
			const char *name = names[rand() % 15], *value = values[rand() % 15];

			if (rand() % 4 == 0) {	/* a long or odd value */
				size_t vl = (size_t)rand() % 690;

				for (size_t k = 0; k < vl; k++)
					strs[i][k] = (char)(rand() % 256 ?: 1);
				strs[i][vl] = 0;
				value = strs[i];
			}
			f[i] = fld(name, value);
		}
		bound = hpack_encode_bound(f, n);
		assert_true(bound <= sizeof(out));
		len = hpack_encode(out, f, n);
		assert_true(len <= bound);
		hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
		got_reset(g);
		assert_int_equal(hpack_decode(&d, out, len, collect, g), 0);
		assert_int_equal(g->n, n);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(g->f[i].nlen, f[i].nlen);
			assert_memory_equal(g->f[i].name, f[i].name, f[i].nlen);
			assert_int_equal(g->f[i].vlen, f[i].vlen);
			if (f[i].vlen)
				assert_memory_equal(g->f[i].value, f[i].value, f[i].vlen);
			assert_true(g->f[i].id < HPACK_ID_DYN || g->f[i].id >= HPACK_ID_LIT);
		}
		assert_int_equal(d.count, 0);	/* never inserts */
		hpack_dec_free(&d);
		got_reset(g);
		assert_int_equal(hpack_decode(&keep, out, len, collect, g), 0);
		assert_int_equal(g->n, n);
	}
	table_is(&keep, 34, BLOCK("a", "b"));
	hpack_dec_free(&keep);
	free(g);
}

/* The bound at the integers' edges: lengths 126-128, 16510, 16511, and
 * names 14-16 bytes (the 4-bit prefix). */
static void test_encode_bound(void **state)
{
	static const uint32_t lens[] = { 0, 1, 14, 15, 16, 126, 127, 128, 254, 255, 16510,
					 16511, 16512, 70000 };
	static char a[70001], b[70001];
	static uint8_t out[140100];
	struct got *g = got_new();

	(void)state;
	memset(a, 'n', 70000);
	memset(b, 'v', 70000);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
			struct hpack_field f = { (const uint8_t *)a, (const uint8_t *)b, lens[i], lens[j], 0 };
			struct hpack_dec d;
			size_t len;

			len = hpack_encode(out, &f, 1);
			assert_true(len <= hpack_encode_bound(&f, 1));
			assert_true(hpack_encode_bound(&f, 1) - len <= 12);
			if (lens[i] <= 512 && lens[j] <= 2048) {
				hpack_dec_init(&d, HPACK_TABLE_DEFAULT);
				got_reset(g);
				assert_int_equal(hpack_decode(&d, out, len, collect, g), 0);
				assert_int_equal(g->f[0].nlen, lens[i]);
				assert_int_equal(g->f[0].vlen, lens[j]);
				hpack_dec_free(&d);
			}
		}
	}
	free(g);
}


/* --- The encoder's dynamic table ------------------------------------------- */

/* enc_to - the block e makes of f[0..n) is the bytes spelt in s. */
static void enc_to(struct hpack_enc *e, const struct hpack_field *f, size_t n, const char *s)
{
	uint8_t want[4096], out[4096];
	size_t wn = hex(s, want), len;

	assert_true(hpack_enc_bound(f, n) <= sizeof(out));
	len = hpack_enc_block(e, out, f, n);
	assert_true(len <= hpack_enc_bound(f, n));
	assert_int_equal(len, wn);
	assert_memory_equal(out, want, wn);
}

/* The bytes: a field worth an entry goes in with incremental indexing
 * (01, the static name's index), then is one byte (62 = the newest);
 * content-length and grpc-message never; a long field never; the limit
 * the peer lowers is signalled (smallest, then the size in use) at the
 * next block, and what no longer fits is evicted. */
static void test_enc_dynamic_bytes(void **state)
{
	struct hpack_enc e;
	struct hpack_field f[3];
	char big[80];

	(void)state;
	hpack_enc_init(&e);
	f[0] = fld(":status", "200");
	f[1] = fld("content-length", "13");
	f[2] = fld("content-type", "application/json");
	enc_to(&e, f, 3, "88 0f0d 02 3133 5f 10 6170706c69636174696f6e2f6a736f6e");
	enc_to(&e, f, 3, "88 0f0d 02 3133 be");
	f[2] = fld("content-type", "application/grpc");
	enc_to(&e, f + 2, 1, "5f 10 6170706c69636174696f6e2f67727063");
	f[0] = fld("content-type", "application/json");	/* one older now */
	f[1] = fld("content-type", "application/grpc");
	enc_to(&e, f, 2, "bf be");
	f[0] = fld("grpc-message", "x");
	enc_to(&e, f, 1, "00 0c 677270632d6d657373616765 01 78");
	enc_to(&e, f, 1, "00 0c 677270632d6d657373616765 01 78");
	f[0] = fld("x-a", "1");			/* no static name: the name literal */
	enc_to(&e, f, 1, "40 03 782d61 01 31");
	enc_to(&e, f, 1, "be");
	memset(big, 'b', 70);
	big[70] = 0;
	f[0] = fld("x-b", big);			/* 73 bytes: never an entry */
	assert_int_equal(hpack_enc_block(&e, (uint8_t[160]){ 0 }, f, 1), 2 + 3 + 1 + 70);
	assert_int_equal(e.count, 3);
	assert_int_equal(e.size, 3 * 32 + 28 + 28 + 4);
	/* the peer lowers its table to 100 then 60, raises it to 4096: 60
	 * first (two of the three entries go), then 512 */
	hpack_enc_peer_limit(&e, 100);
	hpack_enc_peer_limit(&e, 60);
	hpack_enc_peer_limit(&e, 4096);
	f[0] = fld("x-a", "1");
	enc_to(&e, f, 1, "3f1d 3fe103 be");
	assert_int_equal(e.count, 1);
	assert_int_equal(e.max, HPACK_ENC_SIZE);
	/* to 0: the table empties, nothing goes in while it stays 0 */
	hpack_enc_peer_limit(&e, 0);
	enc_to(&e, f, 1, "20 00 03 782d61 01 31");
	enc_to(&e, f, 1, "00 03 782d61 01 31");
	assert_int_equal(e.count, 0);
	assert_int_equal(e.size, 0);
}

/* A persistent decoder of ours and nghttp2's inflater, fed every block. */
struct peer {
	struct hpack_dec d;
	nghttp2_hd_inflater *ng;
	struct got *g;
};

static void peer_open(struct peer *p)
{
	p->g = got_new();
	hpack_dec_init(&p->d, HPACK_TABLE_DEFAULT);
	assert_int_equal(nghttp2_hd_inflate_new(&p->ng), 0);
}

static void peer_close(struct peer *p)
{
	nghttp2_hd_inflate_del(p->ng);
	hpack_dec_free(&p->d);
	free(p->g);
}

static void peer_limit(struct peer *p, uint32_t v)
{
	p->d.limit = v;
	assert_int_equal(nghttp2_hd_inflate_change_table_size(p->ng, v), 0);
}

/* The block decodes, by both, to f[0..n). */
static void peer_reads(struct peer *p, const uint8_t *b, size_t len, const struct hpack_field *f,
		       size_t n)
{
	size_t k = 0;

	got_reset(p->g);
	assert_int_equal(hpack_decode(&p->d, b, len, collect, p->g), 0);
	assert_int_equal(p->g->n, n);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(p->g->f[i].nlen, f[i].nlen);
		assert_memory_equal(p->g->f[i].name, f[i].name, f[i].nlen);
		assert_int_equal(p->g->f[i].vlen, f[i].vlen);
		if (f[i].vlen)
			assert_memory_equal(p->g->f[i].value, f[i].value, f[i].vlen);
	}
	for (;;) {
		nghttp2_nv nv;
		int flags = 0;
		ssize_t r = nghttp2_hd_inflate_hd2(p->ng, &nv, &flags, b, len, 1);

		assert_true(r >= 0);
		b += r;
		len -= (size_t)r;
		if (flags & NGHTTP2_HD_INFLATE_EMIT) {
			assert_true(k < n);
			assert_int_equal(nv.namelen, f[k].nlen);
			assert_memory_equal(nv.name, f[k].name, f[k].nlen);
			assert_int_equal(nv.valuelen, f[k].vlen);
			if (f[k].vlen)
				assert_memory_equal(nv.value, f[k].value, f[k].vlen);
			k++;
		}
		if (flags & NGHTTP2_HD_INFLATE_FINAL) {
			nghttp2_hd_inflate_end_headers(p->ng);
			break;
		}
		if (!r && !len)
			break;
	}
	assert_int_equal(k, n);
}

/* Answers' header sets, many blocks on one connection, the peer's table
 * limit changing now and then: every block decodes to its fields by our
 * decoder and by nghttp2's (which also insists on the size updates §4.2
 * asks for); repeated fields cost one byte; the encoder's table never
 * exceeds what it uses. */
static void test_enc_dynamic_roundtrip(void **state)
{
	static const char *const names[] = { "content-type", "content-length", "grpc-message",
					     "inference-header-content-length", "retry-after",
					     "grpc-accept-encoding", "allow", "x-a", "server" };
	static const char *const values[] = { "application/json", "application/grpc",
					      "application/octet-stream", "171", "1", "0",
					      "identity,deflate,gzip", "GET", "",
					      "a value longer than the sixty-four bytes an entry may hold, so never" };
	static const uint32_t limits[] = { 0, 33, 50, 100, 200, 512, 4096, 65536 };
	static uint8_t out[4096];
	static char vals[16][16];
	struct hpack_enc e;
	struct peer p;
	size_t stateless = 0, dynamic = 0;

	(void)state;
	srand(7);
	hpack_enc_init(&e);
	peer_open(&p);
	for (int round = 0; round < 20000; round++) {
		struct hpack_field f[16];
		size_t n = 1 + (size_t)rand() % 6, len;

		if (rand() % 500 == 0) {	/* the peer's SETTINGS, once or twice */
			for (int k = 1 + rand() % 2; k--;) {
				uint32_t v = limits[rand() % 8];

				hpack_enc_peer_limit(&e, v);
				peer_limit(&p, v);
			}
		}
		f[0] = fld(":status", rand() % 4 ? "200" : "429");
		for (size_t i = 1; i < n; i++) {
			f[i] = fld(names[rand() % 9], values[rand() % 10]);
			if (rand() % 3 == 0) {	/* a number of a few likely values */
				snprintf(vals[i], sizeof(vals[i]), "%d", 200 + rand() % 8);
				f[i].value = (const uint8_t *)vals[i];
				f[i].vlen = (uint32_t)strlen(vals[i]);
			}
		}
		len = hpack_enc_block(&e, out, f, n);
		assert_true(len <= hpack_enc_bound(f, n));
		assert_true(e.size <= e.max && e.max <= HPACK_ENC_SIZE && e.count <= HPACK_ENC_SLOTS);
		peer_reads(&p, out, len, f, n);
		dynamic += len;
		stateless += hpack_encode((uint8_t[4096]){ 0 }, f, n);
	}
	/* repeated fields went by index: well under half the stateless bytes */
	/* many distinct fields churn the table: indexing buys little then,
	 * but never costs (a literal with indexing is no longer than one
	 * without) */
	assert_true(dynamic < stateless);
	peer_close(&p);
}

/* The gateway's usual answers in random order: after the first of each,
 * only content-length is spelt out: under a third of the stateless bytes,
 * every block read back by nghttp2. */
static void test_enc_dynamic_answers(void **state)
{
	static const char *const sets[][4] = {
		{ "200", "13", "content-type", "application/json" },		/* health */
		{ "200", "262", "content-type", "application/json" },		/* infer */
		{ "200", "231", "inference-header-content-length", "171" },	/* binary */
		{ "429", "71", "retry-after", "1" },
		{ "200", "139", "content-type", "application/msgpack" },
	};
	static uint8_t out[512];
	struct hpack_enc e;
	struct peer p;
	size_t stateless = 0, dynamic = 0;

	(void)state;
	srand(11);
	hpack_enc_init(&e);
	peer_open(&p);
	for (int i = 0; i < 1000; i++) {
		const char *const *a = sets[rand() % 5];
		struct hpack_field f[4] = { fld(":status", a[0]), fld("content-length", a[1]),
					    fld(a[2], a[3]), fld("content-type", "application/json") };
		size_t n = a[2][0] == 'i' ? 4 : 3, len = hpack_enc_block(&e, out, f, n);

		peer_reads(&p, out, len, f, n);
		dynamic += len;
		stateless += hpack_encode((uint8_t[512]){ 0 }, f, n);
	}
	assert_true(dynamic * 3 < stateless);
	peer_close(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc_c2),
		cmocka_unit_test(test_rfc_c3),
		cmocka_unit_test(test_rfc_c4),
		cmocka_unit_test(test_rfc_c5),
		cmocka_unit_test(test_rfc_c6),
		cmocka_unit_test(test_huffman_all_bytes),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_integer_limits),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_literal_memo),
		cmocka_unit_test(test_stop),
		cmocka_unit_test(test_abort),
		cmocka_unit_test(test_table_model),
		cmocka_unit_test(test_encode_bytes),
		cmocka_unit_test(test_encode_static),
		cmocka_unit_test(test_encode_roundtrip),
		cmocka_unit_test(test_encode_bound),
		cmocka_unit_test(test_enc_dynamic_bytes),
		cmocka_unit_test(test_enc_dynamic_roundtrip),
		cmocka_unit_test(test_enc_dynamic_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
