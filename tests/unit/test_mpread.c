/*
 * Unit tests for backends/mpread.c, the bounded msgpack reader: every head
 * byte's class against a classification written here from the msgpack
 * spec, each encoding's value and length, truncation at every offset,
 * counts and lengths larger than the bytes left, nesting via mpr_skip,
 * and what msgpack-c packs read back whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mpread.h"

/* One encoding and what mpr_next must make of it. */
struct enc {
	const char *what;
	uint8_t b[24];
	size_t n;		/* bytes of the whole value (head + body) */
	enum mpr_kind kind;
	uint64_t u;
	int ptr_off;		/* where v.ptr points (offset in b); -1: NULL */
	size_t head;		/* bytes mpr_next consumes (arrays/maps: the head only) */
};

#define E(w, k, u_, off, hd, ...)                                                        \
	{ w, { __VA_ARGS__ }, sizeof((uint8_t[]){ __VA_ARGS__ }), k, u_, off, hd }

static const struct enc encs[] = {
	E("fixint 0", MPR_UINT, 0, -1, 1, 0x00),
	E("fixint 127", MPR_UINT, 127, -1, 1, 0x7f),
	E("neg fixint -32", MPR_NEG, (uint64_t)-32, -1, 1, 0xe0),
	E("neg fixint -1", MPR_NEG, (uint64_t)-1, -1, 1, 0xff),
	E("fixmap 1", MPR_MAP, 1, -1, 1, 0x81, 0x01, 0x02),
	E("fixarray 2", MPR_ARRAY, 2, -1, 1, 0x92, 0x01, 0xc0),
	E("fixarray 0", MPR_ARRAY, 0, -1, 1, 0x90),
	E("fixmap 0", MPR_MAP, 0, -1, 1, 0x80),
	E("fixstr 0", MPR_STR, 0, 1, 1, 0xa0),
	E("fixstr 3", MPR_STR, 3, 1, 4, 0xa3, 'a', 'b', 'c'),
	E("nil", MPR_NIL, 0, -1, 1, 0xc0),
	E("false", MPR_BOOL, 0, -1, 1, 0xc2),
	E("true", MPR_BOOL, 1, -1, 1, 0xc3),
	E("bin8", MPR_BIN, 2, 2, 4, 0xc4, 0x02, 0xde, 0xad),
	E("bin16", MPR_BIN, 1, 3, 4, 0xc5, 0x00, 0x01, 0x7a),
	E("bin32", MPR_BIN, 1, 5, 6, 0xc6, 0x00, 0x00, 0x00, 0x01, 0x7b),
	E("ext8", MPR_EXT, 2, 2, 5, 0xc7, 0x02, 0x05, 0x10, 0x11),
	E("ext16", MPR_EXT, 1, 3, 5, 0xc8, 0x00, 0x01, 0x05, 0x10),
	E("ext32", MPR_EXT, 0, 5, 6, 0xc9, 0x00, 0x00, 0x00, 0x00, 0x05),
	E("float32", MPR_FLOAT, 0, 1, 5, 0xca, 0x3f, 0x80, 0x00, 0x00),
	E("float64", MPR_FLOAT, 0, 1, 9, 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0),
	E("uint8", MPR_UINT, 0xff, -1, 2, 0xcc, 0xff),
	E("uint16", MPR_UINT, 0x1234, -1, 3, 0xcd, 0x12, 0x34),
	E("uint32", MPR_UINT, 0xdeadbeef, -1, 5, 0xce, 0xde, 0xad, 0xbe, 0xef),
	E("uint64 max", MPR_UINT, UINT64_MAX, -1, 9, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff, 0xff),
	E("int8 -128", MPR_NEG, (uint64_t)-128, -1, 2, 0xd0, 0x80),
	E("int8 127", MPR_UINT, 127, -1, 2, 0xd0, 0x7f),
	E("int16 -2", MPR_NEG, (uint64_t)-2, -1, 3, 0xd1, 0xff, 0xfe),
	E("int16 258", MPR_UINT, 258, -1, 3, 0xd1, 0x01, 0x02),
	E("int32 min", MPR_NEG, (uint64_t)(int64_t)INT32_MIN, -1, 5, 0xd2, 0x80, 0, 0, 0),
	E("int32 1", MPR_UINT, 1, -1, 5, 0xd2, 0, 0, 0, 1),
	E("int64 min", MPR_NEG, (uint64_t)INT64_MIN, -1, 9, 0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0),
	E("int64 max", MPR_UINT, INT64_MAX, -1, 9, 0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	  0xff),
	E("fixext1", MPR_EXT, 1, 1, 3, 0xd4, 0x01, 0xaa),
	E("fixext2", MPR_EXT, 2, 1, 4, 0xd5, 0x01, 0xaa, 0xbb),
	E("fixext4", MPR_EXT, 4, 1, 6, 0xd6, 0x01, 1, 2, 3, 4),
	E("fixext8", MPR_EXT, 8, 1, 10, 0xd7, 0x01, 1, 2, 3, 4, 5, 6, 7, 8),
	E("fixext16", MPR_EXT, 16, 1, 18, 0xd8, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
	  14, 15, 16),
	E("str8", MPR_STR, 2, 2, 4, 0xd9, 0x02, 'h', 'i'),
	E("str16", MPR_STR, 1, 3, 4, 0xda, 0x00, 0x01, 'x'),
	E("str32", MPR_STR, 1, 5, 6, 0xdb, 0x00, 0x00, 0x00, 0x01, 'y'),
	E("array16", MPR_ARRAY, 2, -1, 3, 0xdc, 0x00, 0x02, 0x01, 0x02),
	E("array32", MPR_ARRAY, 1, -1, 5, 0xdd, 0x00, 0x00, 0x00, 0x01, 0xc3),
	E("map16", MPR_MAP, 1, -1, 3, 0xde, 0x00, 0x01, 0xa1, 'k', 0x07),
	E("map32", MPR_MAP, 1, -1, 5, 0xdf, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02),
};
#define N_ENCS (sizeof(encs) / sizeof(encs[0]))

/* A copy of n bytes on the heap, exactly n long: a read past it is a
 * read past the allocation (ASan builds see it). */
static uint8_t *dup_exact(const uint8_t *b, size_t n)
{
	uint8_t *p = malloc(n ? n : 1);

	assert_non_null(p);
	if (n)
		memcpy(p, b, n);
	return p;
}

static void test_encodings(void **state)
{
	for (size_t i = 0; i < N_ENCS; i++) {
		const struct enc *e = &encs[i];
		uint8_t *buf = dup_exact(e->b, e->n);
		struct mpr r = { buf, buf + e->n };
		struct mpr_val v;

		if (!mpr_next(&r, &v))
			fail_msg("%s: refused", e->what);
		if (v.kind != e->kind)
			fail_msg("%s: kind %s", e->what, mpr_kind_name(v.kind));
		if (e->kind != MPR_FLOAT && e->kind != MPR_NIL && v.u != e->u)
			fail_msg("%s: u %llu, want %llu", e->what, (unsigned long long)v.u,
				 (unsigned long long)e->u);
		if (v.ptr != (e->ptr_off < 0 ? NULL : buf + e->ptr_off))
			fail_msg("%s: ptr at %td", e->what, v.ptr ? v.ptr - buf : -1);
		if (r.p != buf + e->head)
			fail_msg("%s: read %td bytes, want %zu", e->what, r.p - buf, e->head);

		/* the whole value, elements included, and nothing after it */
		r.p = buf;
		if (!mpr_skip(&r) || r.p != buf + e->n)
			fail_msg("%s: skip stopped at %td of %zu", e->what, r.p - buf, e->n);
		free(buf);
	}
}

/* The spec's classes of a head byte, written independently of mpread.c. */
static int spec_kind(uint8_t b)
{
	if (b <= 0x7f || (b >= 0xcc && b <= 0xcf))
		return MPR_UINT;	/* int8..64 depend on the value: not asked here */
	if (b >= 0xe0)
		return MPR_NEG;
	if (b <= 0x8f || b == 0xde || b == 0xdf)
		return MPR_MAP;
	if (b <= 0x9f || b == 0xdc || b == 0xdd)
		return MPR_ARRAY;
	if (b <= 0xbf || (b >= 0xd9 && b <= 0xdb))
		return MPR_STR;
	if (b >= 0xc4 && b <= 0xc6)
		return MPR_BIN;
	if ((b >= 0xc7 && b <= 0xc9) || (b >= 0xd4 && b <= 0xd8))
		return MPR_EXT;
	if (b == 0xca || b == 0xcb)
		return MPR_FLOAT;
	if (b == 0xc2 || b == 0xc3)
		return MPR_BOOL;
	if (b == 0xc0)
		return MPR_NIL;
	if (b >= 0xd0 && b <= 0xd3)
		return MPR_UINT;	/* followed by zeros: 0 */
	return -1;		/* 0xc1 */
}

/* Every head byte 0x00..0xff, followed by zeros (lengths 0, counts 0, but
 * the fix ones): its class, and 0xc1 refused. */
static void test_every_head_byte(void **state)
{
	uint8_t buf[64] = { 0 };

	for (int b = 0; b <= 0xff; b++) {
		struct mpr r = { buf, buf + sizeof(buf) };
		struct mpr_val v;
		int want = spec_kind((uint8_t)b);

		buf[0] = (uint8_t)b;
		if (want < 0) {
			assert_false(mpr_next(&r, &v));
			continue;
		}
		if (!mpr_next(&r, &v))
			fail_msg("head 0x%02x refused", b);
		if ((int)v.kind != want)
			fail_msg("head 0x%02x: kind %d, want %d", b, v.kind, want);
		/* fix forms carry their count or length in the byte itself */
		if (b >= 0x80 && b <= 0x9f)
			assert_int_equal(v.u, b & 0x0f);
		if (b >= 0xa0 && b <= 0xbf)
			assert_int_equal(v.u, b & 0x1f);
		if (b <= 0x7f)
			assert_int_equal(v.u, b);
		if (b >= 0xe0)
			assert_int_equal((int64_t)v.u, (int8_t)b);
	}
}

/* Every proper prefix of every encoding is refused, by mpr_skip always
 * and by mpr_next wherever the head itself is cut; never read past. */
static void test_truncation(void **state)
{
	for (size_t i = 0; i < N_ENCS; i++) {
		const struct enc *e = &encs[i];

		for (size_t n = 0; n < e->n; n++) {
			uint8_t *buf = dup_exact(e->b, n);
			struct mpr r = { buf, buf + n };
			struct mpr_val v;

			if (mpr_skip(&r))
				fail_msg("%s cut at %zu: skipped", e->what, n);
			assert_true(r.p >= buf && r.p <= buf + n);
			r.p = buf;
			if (n < e->head && mpr_next(&r, &v))
				fail_msg("%s cut at %zu: read", e->what, n);
			free(buf);
		}
	}
}

/* A nested value cut at every offset: refused, and where a cut leaves a
 * whole value followed by junk, the skip stops just past that value. */
static void test_truncation_nested(void **state)
{
	/* {"a": [1, -1, "xy", {"b": nil}], "c": bin8(2)} */
	static const uint8_t v[] = { 0x82, 0xa1, 'a', 0x94, 0x01, 0xff, 0xa2, 'x', 'y',
				     0x81, 0xa1, 'b', 0xc0, 0xa1, 'c', 0xc4, 0x02, 0x00, 0x01 };

	for (size_t n = 0; n <= sizeof(v); n++) {
		uint8_t *buf = dup_exact(v, n);
		struct mpr r = { buf, buf + n };
		bool ok = mpr_skip(&r);

		if (n < sizeof(v))
			assert_false(ok);
		else
			assert_true(ok && r.p == buf + n);
		free(buf);
	}
}

/* Counts and lengths larger than the bytes left: refused at the head,
 * before anything is walked; the largest ones do not wrap. */
static void test_counts_over_bytes(void **state)
{
	static const struct {
		const char *what;
		uint8_t b[8];
		size_t n;
		bool ok;
	} cases[] = {
		{ "fixarray 15, 14 bytes", { 0x9f }, 15, false },
		{ "fixarray 15, 15 bytes", { 0x9f }, 16, true },	/* head only: count fits */
		{ "array32 4G", { 0xdd, 0xff, 0xff, 0xff, 0xff }, 8, false },
		{ "map16 3 pairs, 5 bytes", { 0xde, 0x00, 0x03 }, 8, false },	/* 3 <= 5 < 6 */
		{ "map16 2 pairs, 5 bytes", { 0xde, 0x00, 0x02 }, 8, true },
		{ "map32 4G pairs", { 0xdf, 0xff, 0xff, 0xff, 0xff }, 8, false },
		{ "fixmap 1, 1 byte", { 0x81, 0x01 }, 2, false },
		{ "str32 4G", { 0xdb, 0xff, 0xff, 0xff, 0xff }, 8, false },
		{ "bin32 4G", { 0xc6, 0xff, 0xff, 0xff, 0xff }, 8, false },
		{ "bin8 3, 3 bytes", { 0xc4, 0x03 }, 5, true },
		{ "bin8 4, 3 bytes", { 0xc4, 0x04 }, 5, false },
		{ "ext32 4G", { 0xc9, 0xff, 0xff, 0xff, 0xff }, 8, false },
		{ "ext8 2: type byte counted", { 0xc7, 0x02, 0x01, 0x00 }, 4, false },
		{ "fixstr 31, 30 bytes", { 0xbf }, 31, false },
	};
	uint8_t buf[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct mpr r = { buf, buf + cases[i].n };
		struct mpr_val v;

		memset(buf, 0, sizeof(buf));
		memcpy(buf, cases[i].b, sizeof(cases[i].b));
		if (mpr_next(&r, &v) != cases[i].ok)
			fail_msg("%s: %s", cases[i].what, cases[i].ok ? "refused" : "read");
		assert_true(r.p <= buf + cases[i].n);
	}
}

static void test_skip_nesting(void **state)
{
	enum { DEPTH = 10000 };
	uint8_t *buf = malloc(DEPTH + 8);
	struct mpr_val v;
	struct mpr r;

	assert_non_null(buf);
	/* [[[...[1]...]]] 10000 deep: no recursion, so no stack to run out of */
	memset(buf, 0x91, DEPTH);
	buf[DEPTH] = 0x01;
	buf[DEPTH + 1] = 0xc0;	/* a next value, not part of this one */
	r = (struct mpr){ buf, buf + DEPTH + 2 };
	assert_true(mpr_skip(&r));
	assert_ptr_equal(r.p, buf + DEPTH + 1);
	assert_true(mpr_next(&r, &v));
	assert_int_equal(v.kind, MPR_NIL);

	/* the same without its innermost value: refused at the end */
	r = (struct mpr){ buf, buf + DEPTH };
	assert_false(mpr_skip(&r));
	assert_ptr_equal(r.p, buf + DEPTH);

	/* fixarray 15 of fixarray 15 of ...: the values pending soon outnumber
	 * the bytes, yet each count alone fits; the walk goes on to the first
	 * head whose own count does not (at DEPTH - 15) and stops past it */
	memset(buf, 0x9f, DEPTH);
	r = (struct mpr){ buf, buf + DEPTH };
	assert_false(mpr_skip(&r));
	assert_ptr_equal(r.p, buf + DEPTH - 14);

	/* a malformed byte deep inside: refused there, not later */
	memset(buf, 0x91, DEPTH);
	buf[100] = 0xc1;
	r = (struct mpr){ buf, buf + DEPTH };
	assert_false(mpr_skip(&r));
	assert_ptr_equal(r.p, buf + 101);

	/* maps count pairs: {[1,2]: {"k": [nil]}} then 0x05 after it */
	static const uint8_t m[] = { 0x81, 0x92, 0x01, 0x02, 0x81, 0xa1, 'k', 0x91, 0xc0, 0x05 };
	memcpy(buf, m, sizeof(m));
	r = (struct mpr){ buf, buf + sizeof(m) };
	assert_true(mpr_skip(&r));
	assert_ptr_equal(r.p, buf + sizeof(m) - 1);
	free(buf);
}

/* What msgpack-c packs, mpr_skip steps over whole, and mpr_next reads. */
static void test_msgpack_c_packs(void **state)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	struct mpr_val v;
	struct mpr r;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 3);
	msgpack_pack_str(&pk, 5);
	msgpack_pack_str_body(&pk, "shape", 5);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_int64(&pk, -70000);
	msgpack_pack_uint64(&pk, 1ull << 40);
	msgpack_pack_int(&pk, 5);
	msgpack_pack_str(&pk, 4);
	msgpack_pack_str_body(&pk, "data", 4);
	msgpack_pack_bin(&pk, 300);
	for (int i = 0; i < 300; i++)
		msgpack_pack_bin_body(&pk, "z", 1);
	msgpack_pack_double(&pk, 2.5);
	msgpack_pack_array(&pk, 20);	/* array16 */
	for (int i = 0; i < 20; i++)
		msgpack_pack_true(&pk);

	r = (struct mpr){ (const uint8_t *)sb.data, (const uint8_t *)sb.data + sb.size };
	assert_true(mpr_skip(&r));
	assert_ptr_equal(r.p, (const uint8_t *)sb.data + sb.size);

	r.p = (const uint8_t *)sb.data;
	assert_true(mpr_next(&r, &v) && v.kind == MPR_MAP && v.u == 3);
	assert_true(mpr_next(&r, &v) && mpr_key_is(&v, "shape"));
	assert_true(mpr_next(&r, &v) && v.kind == MPR_ARRAY && v.u == 3);
	assert_true(mpr_next(&r, &v) && v.kind == MPR_NEG && (int64_t)v.u == -70000);
	assert_true(mpr_next(&r, &v) && v.kind == MPR_UINT && v.u == 1ull << 40);
	assert_true(mpr_next(&r, &v) && v.kind == MPR_UINT && v.u == 5);
	assert_true(mpr_next(&r, &v) && mpr_key_is(&v, "data"));
	assert_true(mpr_next(&r, &v) && v.kind == MPR_BIN && v.u == 300 && v.ptr[299] == 'z');
	assert_true(mpr_next(&r, &v) && v.kind == MPR_FLOAT);	/* a double as a key */
	assert_true(mpr_skip(&r));
	assert_ptr_equal(r.p, (const uint8_t *)sb.data + sb.size);
	msgpack_sbuffer_destroy(&sb);
}

static void test_kind_name_key_is(void **state)
{
	static const uint8_t keys[] = { 0xa2, 'i', 'd', 0xa3, 'i', 0x00, 'd', 0xa0,
					0xc4, 0x02, 'i', 'd', 0x01 };
	struct mpr r = { keys, keys + sizeof(keys) };
	struct mpr_val v;

	assert_string_equal(mpr_kind_name(MPR_UINT), "an integer");
	assert_string_equal(mpr_kind_name(MPR_NEG), "a negative integer");
	assert_string_equal(mpr_kind_name(MPR_STR), "a string");
	assert_string_equal(mpr_kind_name(MPR_BIN), "bin");
	assert_string_equal(mpr_kind_name(MPR_ARRAY), "an array");
	assert_string_equal(mpr_kind_name(MPR_MAP), "a map");
	assert_string_equal(mpr_kind_name(MPR_FLOAT), "a float");
	assert_string_equal(mpr_kind_name(MPR_BOOL), "a boolean");
	assert_string_equal(mpr_kind_name(MPR_NIL), "nil");
	assert_string_equal(mpr_kind_name(MPR_EXT), "an extension");
	assert_string_equal(mpr_kind_name((enum mpr_kind)99), "an extension");

	assert_true(mpr_next(&r, &v));	/* "id" */
	assert_true(mpr_key_is(&v, "id"));
	assert_false(mpr_key_is(&v, "i"));
	assert_false(mpr_key_is(&v, "idx"));
	assert_false(mpr_key_is(&v, ""));
	assert_true(mpr_next(&r, &v));	/* "i\0d": never "i" */
	assert_false(mpr_key_is(&v, "i"));
	assert_false(mpr_key_is(&v, "id"));
	assert_true(mpr_next(&r, &v));	/* "" */
	assert_true(mpr_key_is(&v, ""));
	assert_false(mpr_key_is(&v, "id"));
	assert_true(mpr_next(&r, &v));	/* bin "id": not a string */
	assert_false(mpr_key_is(&v, "id"));
	assert_true(mpr_next(&r, &v));	/* 1 */
	assert_false(mpr_key_is(&v, ""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_encodings),
		cmocka_unit_test(test_every_head_byte),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_truncation_nested),
		cmocka_unit_test(test_counts_over_bytes),
		cmocka_unit_test(test_skip_nesting),
		cmocka_unit_test(test_msgpack_c_packs),
		cmocka_unit_test(test_kind_name_key_is),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
