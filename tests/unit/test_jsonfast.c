/* Unit tests for gateway/jsonfast.c: every value exactly as jansson would
 * read it ((float) of strtod / of a long long), every doubtful text
 * declined, and the one "data" list found only where it is a key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonfast.h"

/* What jansson gives for the number text s, as a float. */
static float reference(const char *s)
{
	if (strpbrk(s, ".eE"))
		return (float)strtod(s, NULL);
	return (float)(double)strtoll(s, NULL, 10);
}

static void expect_same(const char *s)
{
	const char *p = s;
	float got, want = reference(s);

	if (!jfast_float(&p, s + strlen(s), &got))
		fail_msg("declined \"%s\"", s);
	if (p != s + strlen(s))
		fail_msg("\"%s\": stopped after %td bytes", s, p - s);
	if (memcmp(&got, &want, sizeof(got)) != 0)
		fail_msg("\"%s\": got %a, jansson gives %a", s, (double)got, (double)want);
}

static void expect_declined(const char *s)
{
	const char *p = s;
	float v;

	if (jfast_float(&p, s + strlen(s), &v))
		fail_msg("accepted \"%s\" as %a", s, (double)v);
	assert_ptr_equal(p, s);
}

/* Printed integers beyond 18 digits are declined (jansson: "too big
 * integer" past 2^63; those under it are left to jansson too). */
static void expect_like_jansson(const char *s)
{
	if (!strpbrk(s, ".eE") && strlen(s) - (s[0] == '-') > 18)
		expect_declined(s);
	else
		expect_same(s);
}

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void test_numbers_like_jansson(void **state)
{
	static const char *const fixed[] = {
		"0", "-0", "0.0", "-0.0", "1", "-1", "0.015625", "1e0", "1E+2", "1e-2", "-2.5e-3",
		"123456789012345678", "-123456789012345678", "3.4028234663852886e38",
		"1.1754943508222875e-38", "1.401298464324817e-45", "1e-50", "1e38", "3.5e38",
		"0.1", "0.2", "0.3", "0.30000001192092896", "16777217", "16777217.0",
		"0.10000000149011612", "2.7182818284590451", "1e-320", "9007199254740993",
		"1.00000005960464477539062500001", "1.000000059604644775390625",
		"1.00000005960464477539062499999", "123456789e-30", "0.000000000000000000000000001",
	};
	char buf[64];

	for (size_t i = 0; i < sizeof(fixed) / sizeof(*fixed); i++)
		expect_same(fixed[i]);
	/* Random doubles as clients print them (17 and 9 digits, %g). */
	for (int i = 0; i < 200000; i++) {
		uint64_t bits = next();
		double d;

		bits = (bits & 0x800fffffffffffffull) | ((uint64_t)(896 + next() % 254) << 52);
		memcpy(&d, &bits, sizeof(d));
		snprintf(buf, sizeof(buf), i % 3 == 0 ? "%.17g" : i % 3 == 1 ? "%.9g" : "%g", d);
		expect_like_jansson(buf);
	}
	/* Right at, and a hair around, the midpoint between two floats: where
	 * rounding twice (via double) differs from rounding once. */
	for (int i = 0; i < 100000; i++) {
		float f = (float)ldexp((double)(next() % (1u << 24)) + (1u << 23), (int)(next() % 200) - 120);
		float g = nextafterf(f, INFINITY);
		double mid = ((double)f + (double)g) / 2;

		snprintf(buf, sizeof(buf), "%.17g", mid);
		expect_like_jansson(buf);
		snprintf(buf, sizeof(buf), "%.25g", mid);
		expect_like_jansson(buf);
		snprintf(buf, sizeof(buf), "%.17g", nextafter(mid, INFINITY));
		expect_like_jansson(buf);
		snprintf(buf, sizeof(buf), "%.17g", nextafter(mid, 0));
		expect_like_jansson(buf);
		snprintf(buf, sizeof(buf), "%.9g", (double)f);
		expect_like_jansson(buf);
	}
}

static void test_declined(void **state)
{
	static const char *const bad[] = {
		"", "-", "+1", ".5", "1.", "1.e3", "1e", "1e+", "x", "Infinity", "NaN", "-inf",
		"1e400", "-1e400", "12345678901234567890", "1234567890123456789",
		"0.00000000000000000000000000000000000000000000000000000000000000000001",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		expect_declined(bad[i]);
	/* A number stops where the grammar does; the list decides what follows. */
	{
		const char *s = "01", *p = s;
		float v;

		assert_true(jfast_float(&p, s + 2, &v));
		assert_ptr_equal(p, s + 1);
	}
}

static void expect_list(const char *json, size_t n, const float *want)
{
	struct jfast_list l;

	if (!jfast_list(json, strlen(json), "data", &l))
		fail_msg("declined %s", json);
	assert_int_equal(l.n, n);
	for (size_t i = 0; i < n; i++)
		assert_true(l.vals[i] == want[i]);
	assert_int_equal(json[l.begin - 1], '[');
	assert_int_equal(json[l.end], ']');
	free(l.vals);
}

static void expect_no_list(const char *json)
{
	struct jfast_list l;

	if (jfast_list(json, strlen(json), "data", &l))
		fail_msg("took a list from %s", json);
	assert_null(l.vals);
}

static void test_list(void **state)
{
	static const float v3[] = { 1, -2.5f, 1e-3f };

	expect_list("{\"inputs\":[{\"name\":\"x\",\"data\":[1,-2.5,1e-3]}]}", 3, v3);
	expect_list("{\"data\" \n:\t[ 1 ,\r\n-2.5 , 1e-3 ] }", 3, v3);
	expect_list("{\"metadata\":[7],\"data\":[1,-2.5,1e-3]}", 3, v3);	/* not "data" */
	expect_list("{\"a\":\"\\\"data\\\":[9]\",\"data\":[1,-2.5,1e-3]}", 3, v3); /* in a string */
	expect_list("{\"data\":[]}", 0, NULL);
	expect_list("{\"name\":\"data\",\"data\":[1,-2.5,1e-3]}", 3, v3);	/* a value */
	expect_no_list("{\"data\":[1,2],\"x\":{\"data\":[3]}}");	/* twice */
	expect_no_list("{\"data\":[[1,2],[3,4]]}");			/* nested */
	expect_no_list("{\"data\":[1,\"2\"]}");
	expect_no_list("{\"data\":[1,true]}");
	expect_no_list("{\"data\":[1,null]}");
	expect_no_list("{\"data\":[1,2,]}");
	expect_no_list("{\"data\":[1 2]}");
	expect_no_list("{\"data\":[1,01]}");
	expect_no_list("{\"data\":[0x10]}");
	expect_no_list("{\"data\":[1,2");
	expect_no_list("{\"data\":5}");
	expect_no_list("{\"inputs\":[]}");
	expect_no_list("{\"data\":[1e999]}");
	expect_no_list("{\"\\u0064ata\":[1]}");	/* spelled with an escape: jansson's */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numbers_like_jansson),
		cmocka_unit_test(test_declined),
		cmocka_unit_test(test_list),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
