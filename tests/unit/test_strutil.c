/*
 * test_strutil.c - the inline compares and copies of the per-request
 * paths (core/swar.h swar_equal, swar_copy; core/util.h util_streq,
 * util_prefix, util_streqn, util_prefix_ci) against libc's memcmp /
 * memcpy / strcmp / strncmp / strncasecmp.  Every operand lives in a malloc'd block of exactly its
 * size, so a read past either end is an ASan report in `make asan`.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "swar.h"
#include "util.h"

/* A copy of n bytes of s in a block of exactly n bytes. */
static char *exact(const void *s, size_t n)
{
	char *p = malloc(n ? n : 1);

	assert_non_null(p);
	memcpy(p, s, n);
	return p;
}

/* A copy of the C string s in a block of exactly its size. */
static char *exact_str(const char *s)
{
	return exact(s, strlen(s) + 1);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static unsigned rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng >> 11);
}

/* Every length 0..40: equal blocks, then one byte changed at each
 * position (every bit of it in turn), at each start offset 0..7 of a block
 * that ends with the n bytes. */
static void test_swar_equal_every_length_and_position(void **state)
{
	(void)state;
	for (size_t n = 0; n <= 40; n++) {
		for (size_t off = 0; off < 8; off++) {
			/* a at offset off, b at 7 - off: every pair of alignments;
			 * each block ends where its n bytes do */
			char *ba = malloc(off + n + !(off + n)), *bb = malloc(7 - off + n), *a, *b;

			assert_non_null(ba);
			assert_non_null(bb);
			a = ba + off;
			b = bb + 7 - off;
			for (size_t i = 0; i < n; i++)
				a[i] = b[i] = (char)rnd();
			assert_true(swar_equal(a, b, n));
			for (size_t i = 0; i < n; i++) {
				for (int bit = 0; bit < 8; bit++) {
					b[i] ^= (char)(1 << bit);
					assert_false(swar_equal(a, b, n));
					assert_false(swar_equal(b, a, n));
					b[i] ^= (char)(1 << bit);
				}
			}
			assert_true(swar_equal(a, b, n));
			free(ba);
			free(bb);
		}
	}
}

/* Random pairs that differ in a few bytes, or not: the same answer as
 * memcmp == 0. */
static void test_swar_equal_as_memcmp(void **state)
{
	(void)state;
	for (int k = 0; k < 20000; k++) {
		size_t n = rnd() % 34;
		unsigned char x[34], y[34];
		char *a, *b;

		for (size_t i = 0; i < n; i++)
			x[i] = y[i] = (unsigned char)(rnd() % 3);	/* few values: near misses */
		if (n && rnd() % 2)
			y[rnd() % n] = (unsigned char)(rnd() % 3);
		a = exact(x, n);
		b = exact(y, n);
		assert_int_equal(swar_equal(a, b, n), memcmp(a, b, n) == 0);
		free(a);
		free(b);
	}
}

/* swar_copy: every length 0..70 between every pair of offsets 0..7, into
 * a block of exactly its size inside a larger one whose other bytes must
 * stay as they were; the source in a block of exactly its size. */
static void test_swar_copy_every_length(void **state)
{
	(void)state;
	for (size_t n = 0; n <= 70; n++) {
		for (size_t so = 0; so < 8; so++) {
			size_t dof = 7 - so;
			char *src = malloc(so + n + !(so + n)), *big = malloc(n + 16);

			assert_non_null(src);
			assert_non_null(big);
			for (size_t i = 0; i < so + n; i++)
				src[i] = (char)rnd();
			memset(big, 0x5a, n + 16);
			swar_copy(big + dof, src + so, n);
			assert_memory_equal(big + dof, src + so, n);
			for (size_t i = 0; i < dof; i++)
				assert_int_equal((unsigned char)big[i], 0x5a);
			for (size_t i = dof + n; i < n + 16; i++)
				assert_int_equal((unsigned char)big[i], 0x5a);
			free(src);
			free(big);
		}
	}
}

static const char *const words[] = {
	"", "/", "/v2", "/v2/", "/v2/models/", "/v2/models/digits/infer", "/v2/models/stats",
	"/v2/health/live", "/v2/health/liv", "/v2/health/live/", "GET", "HEAD", "HEA", "POST",
	"application/grpc", "application/grpc+proto", "application/grp", "Application/MsgPack",
	"application/x-msgpack", "APPLICATION/", "application", "msgpack", "x-msgpack",
	"input", "inputs", "FP32", "FP3", "fp32", "\xff\x80", "a\x7f", "@[`{",
};

/* util_streq / util_prefix as strcmp / strncmp, over every pair. */
static void test_streq_and_prefix_as_libc(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(words); j++) {
			char *a = exact_str(words[i]), *b = exact_str(words[j]);
			size_t nb = strlen(b);
			const char *past = util_prefix(a, b);

			assert_int_equal(util_streq(a, b), strcmp(a, b) == 0);
			assert_int_equal(past != NULL, strncmp(a, b, nb) == 0);
			if (past)
				assert_ptr_equal(past, a + nb);
			free(a);
			free(b);
		}
	}
}

/* util_prefix_ci as strncasecmp against a lower-case prefix; bytes that
 * are no ASCII letter never fold (0x40 '@' is not 0x60 '`'). */
static void test_prefix_ci_as_strncasecmp(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(words); j++) {
			char lower[64], *a = exact_str(words[i]), *pre;
			size_t n = strlen(words[j]);
			const char *past;

			for (size_t k = 0; k <= n; k++)
				lower[k] = util_lower(words[j][k]);
			pre = exact_str(lower);
			past = util_prefix_ci(a, pre);
			assert_int_equal(past != NULL, strncasecmp(a, pre, n) == 0);
			if (past)
				assert_ptr_equal(past, a + n);
			free(a);
			free(pre);
		}
	}
	assert_null(util_prefix_ci("@", "`"));
	assert_null(util_prefix_ci("[", "{"));
	assert_non_null(util_prefix_ci("MSGPACK;q=1", "msgpack"));
}

/* util_streqn: the C string against n bytes that need not end in a NUL
 * and may hold one (then never equal). */
static void test_streqn(void **state)
{
	static const char with_nul[] = { 'F', 'P', 0, '2' };
	char fp[8] = "FP", fp32[8] = "FP32";	/* room: no bounds warning */

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(words); i++) {
		for (size_t j = 0; j < ARRAY_SIZE(words); j++) {
			size_t n = strlen(words[j]);
			char *s = exact_str(words[i]), *p = exact(words[j], n);

			assert_int_equal(util_streqn(s, p, n), strcmp(words[i], words[j]) == 0);
			free(s);
			free(p);
		}
	}
	assert_false(util_streqn(fp, with_nul, sizeof(with_nul)));
	assert_false(util_streqn(fp, with_nul, 3));
	assert_true(util_streqn(fp, with_nul, 2));
	assert_true(util_streqn(fp + 2, with_nul, 0));
	assert_false(util_streqn(fp32, with_nul, sizeof(with_nul)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_swar_equal_every_length_and_position),
		cmocka_unit_test(test_swar_equal_as_memcmp),
		cmocka_unit_test(test_swar_copy_every_length),
		cmocka_unit_test(test_streq_and_prefix_as_libc),
		cmocka_unit_test(test_prefix_ci_as_strncasecmp),
		cmocka_unit_test(test_streqn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
