/* Unit tests for gateway/api/jsonfast.c: every value exactly as jansson would
 * read it ((float) of strtod / of a long long), every doubtful text
 * declined, and the list taken only from inputs[0].data. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <float.h>
#include <stdbool.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <jansson.h>

#include "inbuf.h"
#include "jsonfast.h"

/* What jansson gives for the number text s, as a float. */
static float reference(const char *s)
{
	if (strpbrk(s, ".eE"))
		return (float)strtod(s, NULL);
	return (float)(double)strtoll(s, NULL, 10);
}

/* What may follow a number: nothing (the end of the text, where the
 * general path reads it), and the bytes a list or object puts after one
 * (the usual token's path, which relies on a non-digit ahead). */
static const char *const after[] = { "", ",", " ", "]}]}" };

static void expect_same(const char *s)
{
	float want = reference(s);
	char buf[160];

	for (size_t i = 0; i < sizeof(after) / sizeof(*after); i++) {
		size_t n = (size_t)snprintf(buf, sizeof(buf), "%s%s", s, after[i]);
		const char *p = buf;
		float got;

		if (!jfast_float(&p, buf + n, &got))
			fail_msg("declined \"%s\"", buf);
		if (p != buf + strlen(s))
			fail_msg("\"%s\": stopped after %td bytes", buf, p - buf);
		if (memcmp(&got, &want, sizeof(got)) != 0)
			fail_msg("\"%s\": got %a, jansson gives %a", buf, (double)got,
				 (double)want);
	}
}

static void expect_declined(const char *s)
{
	char buf[160];

	for (size_t i = 0; i < sizeof(after) / sizeof(*after); i++) {
		size_t n = (size_t)snprintf(buf, sizeof(buf), "%s%s", s, after[i]);
		const char *p = buf;
		float v;

		if (jfast_float(&p, buf + n, &v))
			fail_msg("accepted \"%s\" as %a", buf, (double)v);
		assert_ptr_equal(p, buf);
	}
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

/* mid, a rounding midpoint between two floats (where rounding twice, via
 * double, differs from rounding once), as 17 and 25 digits and a hair
 * either side; and the float f under it as 9 digits. */
static void expect_around(double mid, double f)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "%.17g", mid);
	expect_like_jansson(buf);
	snprintf(buf, sizeof(buf), "%.25g", mid);
	expect_like_jansson(buf);
	snprintf(buf, sizeof(buf), "%.17g", nextafter(mid, INFINITY));
	expect_like_jansson(buf);
	snprintf(buf, sizeof(buf), "%.17g", nextafter(mid, 0));
	expect_like_jansson(buf);
	snprintf(buf, sizeof(buf), "%.9g", f);
	expect_like_jansson(buf);
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

		expect_around(mid, (double)f);
	}
	/* Short fixed-point tokens (the one-pass path): up to 15 digits and
	 * past it, signs, leading zeros of the fraction. */
	for (int i = 0; i < 200000; i++) {
		int ni = 1 + (int)(next() % 10), nf = (int)(next() % 11);
		char ip[16], fp[16];

		ip[0] = (char)(ni == 1 ? '0' + next() % 10 : '1' + next() % 9);
		for (int k = 1; k < ni; k++)
			ip[k] = (char)('0' + next() % 10);
		for (int k = 0; k < nf; k++)
			fp[k] = (char)('0' + next() % 10);
		snprintf(buf, sizeof(buf), "%s%.*s%s%.*s", next() % 2 ? "-" : "", ni, ip,
			 nf ? "." : "", nf, fp);
		expect_like_jansson(buf);
	}
}

/*
 * Subnormal floats and what rounds to zero (jf_quick_float past Clinger's
 * range, no strtod): random values from 2^-160 to 2^-120 printed as clients
 * print them, the midpoints between neighbouring subnormals (and between
 * zero and the smallest) with a hair either side, short exponent tokens of
 * a hostile list ("1.02e-39"), and tokens whose exponent puts them far
 * below every float, each exactly as jansson reads it.
 */
static void test_tiny_numbers(void **state)
{
	static const char *const fixed[] = {
		"1e-39", "-1e-39", "1.02e-39", "2.2e-39", "1e-45", "7e-46", "7.006492321624086e-46",
		"7.006492321624087e-46", "1.401298464324817e-45", "2.1019476964872256e-45",
		"1.1754942e-38", "1.17549435e-38", "1e-60", "123e-70", "-4e-67", "1e-66", "9e-67",
		"18446744073709551615e-66", "1844674407370955161e-66", "5e-324", "1e-100000",
		"0.00000000000000000000000000000000000000000000000000000000000000000001",
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(*fixed); i++)
		expect_same(fixed[i]);
	for (int i = 0; i < 100000; i++) {
		double d = ldexp((double)(next() >> 11) * 0x1p-53 + 0.5, -120 - (int)(next() % 41));

		snprintf(buf, sizeof(buf), i % 3 == 0 ? "%.17g" : i % 3 == 1 ? "%.9g" : "%.3g",
			 next() % 2 ? d : -d);
		expect_like_jansson(buf);
	}
	for (uint32_t k = 0; k < 100000; k++) {
		uint32_t m = k < 50000 ? k : (uint32_t)(next() % (1u << 23));
		double mid = ldexp((double)m + 0.5, -149);

		expect_around(mid, ldexp((double)m, -149));
	}
}

/* Long fractions (16 to 19 digits, as a client prints a double: the word
 * reader's second eight digits, then one product of doubles),
 * around every power of two a float can be near (where the float spacing
 * halves), and around the midpoints just under them. */
static void test_wide_fractions(void **state)
{
	char buf[64];

	(void)state;
	for (int j = -30; j <= 22; j++) {
		double p = ldexp(1.0, j);
		float f = (float)p, below = nextafterf(f, 0);
		double mids[] = { p, nextafter(p, 0), nextafter(p, INFINITY),
				  ((double)f + (double)below) / 2 };

		for (size_t i = 0; i < sizeof(mids) / sizeof(*mids); i++) {
			for (int prec = 16; prec <= 19; prec++) {
				snprintf(buf, sizeof(buf), "%.*g", prec, mids[i]);
				expect_like_jansson(buf);
				snprintf(buf, sizeof(buf), "%.*f", prec, mids[i]);
				expect_like_jansson(buf);
				snprintf(buf, sizeof(buf), "%.*g", prec, nextafter(mids[i], 0));
				expect_like_jansson(buf);
			}
		}
	}
	for (int i = 0; i < 200000; i++) {	/* "0." or "d." and 16..19 random digits */
		int nf = 16 + (int)(next() % 4), k = 0;

		if (next() % 2)
			buf[k++] = '-';
		buf[k++] = (char)('0' + next() % (i % 3 ? 1 : 10));
		buf[k++] = '.';
		for (int d = 0; d < nf; d++)
			buf[k++] = (char)('0' + next() % 10);
		buf[k] = 0;
		expect_like_jansson(buf);
	}
}

/* s with its last digit moved by d (-1 or +1), when that stays a digit. */
static void expect_nudged(const char *s, int d)
{
	char buf[64];
	size_t n = strlen(s);

	if (n >= sizeof(buf) || s[n - 1] + d < '0' || s[n - 1] + d > '9')
		return;
	memcpy(buf, s, n + 1);
	buf[n - 1] = (char)(buf[n - 1] + d);
	expect_like_jansson(buf);
}

/* Exact midpoints between two floats (ties: strtod's double is the
 * midpoint itself, and (float) rounds it to even) and a last digit either
 * side, printed with 19 digits so the mantissa exceeds 2^53 and takes the
 * one product of doubles: its rounding window must send them all to the
 * general path.  Values in [2^-12, 2^23), eight floats a binade. */
static void test_wide_ties(void **state)
{
	char buf[64];

	(void)state;
	for (int j = -12; j < 23; j++)
		for (int i = 0; i < 8; i++) {
			float f = ldexpf(1.0f + (float)(next() % (1u << 23)) / 8388608.0f, j);
			double mid = (double)f + ldexp(1.0, j - 24);	/* half f's spacing */
			int ip = mid < 1 ? 0 : (int)floor(log10(mid)) + 1;

			snprintf(buf, sizeof(buf), "%.*f", 19 - ip, mid);
			expect_like_jansson(buf);
			expect_nudged(buf, -1);
			expect_nudged(buf, 1);
			snprintf(buf, sizeof(buf), "%.*f", 19 - ip, (double)f);	/* a float */
			expect_like_jansson(buf);
		}
}

static void test_declined(void **state)
{
	static const char *const bad[] = {
		"", "-", "+1", ".5", "1.", "1.e3", "1e", "1e+", "x", "Infinity", "NaN", "-inf",
		"1e400", "-1e400", "12345678901234567890", "1234567890123456789",
		/* longer than JF_MAX_TOKEN with more digits than 64 bits hold:
		 * strtod's, which jansson is left to call */
		"1.0000000000000000000000000000000000000000000000000000000000000000001",
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

	if (!jfast_input_data(json, strlen(json), &l))
		fail_msg("declined %s", json);
	assert_int_equal(l.n, n);
	for (size_t i = 0; i < n; i++)
		assert_true(l.vals[i] == want[i]);
	assert_int_equal(json[l.begin - 1], '[');
	assert_int_equal(json[l.end], ']');
	/* the list is the one after inputs[0]'s "data": key */
	assert_non_null(strstr(json, "\"inputs\""));
	inbuf_free(l.vals);
}

static void expect_no_list(const char *json)
{
	struct jfast_list l;

	if (jfast_input_data(json, strlen(json), &l))
		fail_msg("took a list from %s", json);
	assert_null(l.vals);
	assert_int_equal(l.n, 0);
}

#define V3 "[1,-2.5,1e-3]"

static void test_list(void **state)
{
	static const float v3[] = { 1, -2.5f, 1e-3f };

	expect_list("{\"inputs\":[{\"name\":\"x\",\"data\":" V3 "}]}", 3, v3);
	expect_list(" {\"inputs\" :\n[ {\"data\" \n:\t[ 1 ,\r\n-2.5 , 1e-3 ] } ] } ", 3, v3);
	expect_list("{\"inputs\":[{\"metadata\":[7],\"data\":" V3 "}]}", 3, v3);	/* not "data" */
	expect_list("{\"inputs\":[{\"a\":\"\\\"data\\\":[9]\",\"data\":" V3 "}]}", 3, v3); /* in a string */
	expect_list("{\"inputs\":[{\"a\":\"\\\\\",\"data\":" V3 "}]}", 3, v3);	/* "\\" ends there */
	expect_list("{\"inputs\":[{\"data\":[]}]}", 0, NULL);
	expect_list("{\"inputs\":[{\"name\":\"data\",\"data\":" V3 "}]}", 3, v3);	/* a value */
	expect_list("{\"inputs\":[{\"p\":{\"data\":[9]},\"q\":[[\"]\"],{}],\"data\":" V3 "}]}", 3, v3);
	expect_list("{\"x\":{\"data\":[9]},\"inputs\":[{\"data\":" V3 "}],\"y\":[{\"data\":[8]}]}",
		    3, v3);		/* only inputs[0].data counts */
	expect_list("{\"inputs\":[{\"data\":" V3 "},{\"data\":[5]}]}", 3, v3);
	/* Issue 9 #11: the list outside inputs was taken while inputs[0]
	 * spelled its key "d\u0061ta"; now nothing is taken (jansson reads). */
	expect_no_list("{\"inputs\":[{\"name\":\"input\",\"d\\u0061ta\":[]}],\"x\":{\"data\":[1,2]}}");
	expect_no_list("{\"\\u0069nputs\":[{\"data\":[1]}]}");	/* escaped: jansson's */
	expect_no_list("{\"data\":[1,2]}");				/* not under inputs */
	expect_no_list("{\"inputs\":[{\"name\":\"a\"},{\"data\":[1]}]}");	/* inputs[1] */
	expect_no_list("{\"inputs\":[{\"parameters\":{\"data\":[1]}}]}");	/* deeper */
	expect_no_list("{\"inputs\":{\"data\":[1]}}");			/* not a list */
	expect_no_list("{\"inputs\":[[{\"data\":[1]}]]}");
	expect_no_list("{\"outputs\":[{\"data\":[1]}]}");
	expect_no_list("{\"inputs\":[{\"data\":[1],\"data\":[2]}]}");		/* twice */
	expect_no_list("{\"inputs\":[{\"data\":[1]}],\"inputs\":[{\"data\":[2]}]}");
	expect_no_list("{\"inputs\":[{\"data\":[[1,2],[3,4]]}]}");		/* nested */
	expect_no_list("{\"inputs\":[{\"data\":[1,\"2\"]}]}");
	expect_no_list("{\"inputs\":[{\"data\":[1,true]}]}");
	expect_no_list("{\"inputs\":[{\"data\":[1,null]}]}");
	expect_no_list("{\"inputs\":[{\"data\":[1,2,]}]}");
	expect_no_list("{\"inputs\":[{\"data\":[1 2]}]}");
	expect_no_list("{\"inputs\":[{\"data\":[1,01]}]}");
	expect_no_list("{\"inputs\":[{\"data\":[0x10]}]}");
	expect_no_list("{\"inputs\":[{\"data\":[1e999]}]}");
	expect_no_list("{\"inputs\":[{\"data\":5}]}");
	expect_no_list("{\"inputs\":[]}");
	expect_no_list("{\"inputs\":[{\"data\":[1,2");			/* runs out */
	expect_no_list("{\"inputs\":[{\"data\":[1,2]}");
	expect_no_list("{\"inputs\":[{\"data\":[1,2]}]");
	expect_no_list("{\"inputs\":[{\"data\":[1,2]}]} x");		/* trailing text */
	expect_no_list("{\"inputs\":[{\"a\":\"\\");
	expect_no_list("[{\"inputs\":[{\"data\":[1]}]}]");		/* not an object */
	expect_no_list("");
}

/* A random JSON value into buf at *len: keys and lists that look like the path. */
static void gen_value(char *buf, size_t *len, int depth)
{
	static const char *const keys[] = {
		"\"inputs\"", "\"data\"", "\"data\"", "\"d\\u0061ta\"", "\"x\"", "\"\\u0069nputs\"",
	};
	static const char *const leaves[] = {
		"[1,2]", "[3]", "[]", "\"s\\\"]\"", "\"\\\\\"", "null", "1", "[-0.5, 1e3]",
	};
	uint64_t r = next();
	int n = (int)(r >> 8) % 4;

/* s once: PUT(keys[next() % ...]) evaluated it twice, copying strlen of
 * one key from another (an overread ASan finds). */
#define PUT(s)                                        \
	do {                                          \
		const char *put_ = (s);               \
		memcpy(buf + *len, put_, strlen(put_)); \
		*len += strlen(put_);                 \
	} while (0)
	if (depth >= 4 || r % 3 == 0) {
		PUT(leaves[(r >> 16) % (sizeof(leaves) / sizeof(*leaves))]);
		return;
	}
	PUT(r % 3 == 1 ? "{" : "[");
	for (int i = 0; i < n; i++) {
		if (i)
			PUT(",");
		if (r % 3 == 1) {
			PUT(keys[next() % (sizeof(keys) / sizeof(*keys))]);
			PUT(":");
		}
		gen_value(buf, len, depth + 1);
	}
	PUT(r % 3 == 1 ? "}" : "]");
#undef PUT
}

/* 0-2 random members ("key":value) into buf, each preceded by a comma when *first is false. */
static void gen_members(char *buf, size_t *len, bool *first)
{
	static const char *const keys[] = {
		"\"inputs\"", "\"data\"", "\"d\\u0061ta\"", "\"x\"", "\"\\u0069nputs\"",
	};

	for (int i = 0, n = (int)(next() % 3); i < n; i++) {
		*len += (size_t)sprintf(buf + *len, "%s%s:", *first ? "" : ",",
					keys[next() % (sizeof(keys) / sizeof(*keys))]);
		*first = false;
		gen_value(buf, len, 2);
	}
}

/* Random documents shaped like requests (inputs[0] with "data" most of the
 * time, decoys around it): whenever a list is taken, jansson's tree of the
 * same text has exactly that list at inputs[0].data. */
static void test_walk_agrees_with_jansson(void **state)
{
	static char buf[1 << 16];
	int taken = 0;

	for (int it = 0; it < 100000; it++) {
		bool first = true, first_in = true;
		size_t len = 1;
		struct jfast_list l;
		json_t *root, *d;

		buf[0] = '{';
		gen_members(buf, &len, &first);
		if (next() % 8) {
			len += (size_t)sprintf(buf + len, "%s\"inputs\":[{", first ? "" : ",");
			first = false;
			gen_members(buf, &len, &first_in);
			if (next() % 4) {
				len += (size_t)sprintf(buf + len, "%s\"data\":", first_in ? "" : ",");
				first_in = false;
				if (next() % 2)
					len += (size_t)sprintf(buf + len, "[%d,%d.5]", (int)(next() % 9),
							       (int)(next() % 9));
				else
					gen_value(buf, &len, 2);
			}
			gen_members(buf, &len, &first_in);
			buf[len++] = '}';
			if (next() % 2) {
				buf[len++] = ',';
				gen_value(buf, &len, 2);
			}
			buf[len++] = ']';
		}
		gen_members(buf, &len, &first);
		buf[len++] = '}';
		if (!jfast_input_data(buf, len, &l))
			continue;
		root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
		if (!root) {
			inbuf_free(l.vals);
			continue;	/* the caller gets jansson's error */
		}
		d = json_object_get(json_array_get(json_object_get(root, "inputs"), 0), "data");
		if (!json_is_array(d) || json_array_size(d) != l.n)
			fail_msg("took %zu values from %.*s", l.n, (int)len, buf);
		for (size_t i = 0; i < l.n; i++)
			assert_true((float)json_number_value(json_array_get(d, i)) == l.vals[i]);
		inbuf_free(l.vals);
		json_decref(root);
		taken++;
	}
	assert_true(taken > 1000);
}

static void expect_printf_text(float v)
{
	char got[JFAST_FLOAT_MAX], want[JFAST_FLOAT_MAX];
	int len = jfast_put_float(got, v);

	snprintf(want, sizeof(want), "%.9g", (double)v);
	if (strcmp(got, want) != 0 || len != (int)strlen(want))
		fail_msg("%a: got \"%s\" (%d), printf gives \"%s\"", (double)v, got, len, want);
	if (isfinite(v) && strtof(got, NULL) != v)
		fail_msg("%a: \"%s\" does not read back", (double)v, got);
}

/* The same bytes as "%.9g": edges, powers of ten and their neighbours,
 * and a stride through every float32 bit pattern. */
static void test_put_float(void **state)
{
	static const float edges[] = { 0.0f, -0.0f, 1.0f, -1.0f, 0.1f, 0.5f, 1e-5f, 1e-4f,
				       9.99999975e-5f, 123456792.0f, 1e9f, 999999999.0f,
				       FLT_MIN, -FLT_MIN, FLT_MAX, -FLT_MAX, FLT_TRUE_MIN,
				       16777216.0f, 0.333333343f, 1e38f, 1e-38f, 1e-45f };
	uint64_t n = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
		expect_printf_text(edges[i]);
	for (int e = -45; e <= 38; e++) {
		char s[16];
		float p;

		snprintf(s, sizeof(s), "1e%d", e);
		p = strtof(s, NULL);
		expect_printf_text(p);
		expect_printf_text(nextafterf(p, 0));
		expect_printf_text(nextafterf(p, INFINITY));
		/* 64 floats either side: the decimal exponent's compare with
		 * an inexact power, and nine digits rounding up to 10^9 */
		for (int d = -64; d <= 64; d++) {
			uint32_t b;
			float q;

			memcpy(&b, &p, sizeof(b));
			b += (uint32_t)d;
			memcpy(&q, &b, sizeof(q));
			if (b && b < 0x7f800000u) {
				expect_printf_text(q);
				expect_printf_text(-q);
			}
		}
	}
	/* ~4.3M bit patterns, finite or not (Inf and NaN as printf spells them). */
	for (uint64_t bits = 0; bits <= UINT32_MAX; bits += 997, n++) {
		uint32_t b = (uint32_t)bits;
		float v;

		memcpy(&v, &b, sizeof(v));
		expect_printf_text(v);
	}
	assert_true(n > 4000000);
	/* 2M random bit patterns (a fixed xorshift seed), the subnormals by a
	 * finer stride, and the largest floats below each power of two */
	for (uint64_t i = 0, x = 0x9e3779b97f4a7c15ULL; i < 2000000; i++) {
		uint32_t b;
		float v;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		b = (uint32_t)(x >> 32);
		memcpy(&v, &b, sizeof(v));
		expect_printf_text(v);
	}
	for (uint32_t b = 1; b < 0x00800000u; b += 61) {
		float v;

		memcpy(&v, &b, sizeof(v));
		expect_printf_text(v);
		expect_printf_text(-v);
	}
	for (int e = -149; e <= 127; e++) {
		expect_printf_text(ldexpf(1.0f, e));
		expect_printf_text(nextafterf(ldexpf(1.0f, e), 0));
	}
}

/* jfast_tree of [s, s+len) minus [b, e) against jansson on that text: the
 * same tree whenever jfast_tree answers.  true when it answered. */
static bool tree_agrees(const char *s, size_t len, size_t b, size_t e)
{
	char *cut = malloc(len + 1);
	json_t *t = jfast_tree(s, len, b, e), *j;
	json_error_t je;
	bool answered = t != NULL;

	memcpy(cut, s, b);
	memcpy(cut + b, s + e, len - e);
	j = json_loadb(cut, len - (e - b), JSON_REJECT_DUPLICATES, &je);
	if (t && !j)
		fail_msg("jfast_tree took \"%.*s\", jansson: %s", (int)(len - (e - b)), cut, je.text);
	if (t && !json_equal(t, j))
		fail_msg("\"%.*s\": jfast_tree's tree differs from jansson's", (int)(len - (e - b)), cut);
	json_decref(t);
	json_decref(j);
	free(cut);
	return answered;
}

static bool tree_str(const char *s)
{
	return tree_agrees(s, strlen(s), 0, 0);
}

/* The subset it takes, and what it leaves to jansson. */
static void test_tree(void **state)
{
	static const char *taken[] = {
		"{}", " {\"a\" : 1 } ", "{\"a\":[],\"b\":{},\"c\":[1,-2,0,-0]}",
		"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,64],\"datatype\":\"FP32\",\"data\":[]}]}",
		"{\"x\":[true,false,null,\"\",\"s p\"],\"y\":1.5,\"z\":-0.0,\"w\":1e-400,\"v\":2E+3}",
		"{\"i\":123456789012345678,\"k\":\"\"}", "{\"\":0}",
		"{\"parameters\":{\"binary_data_output\":true},\"outputs\":[{\"name\":\"o\"}]}",
	};
	static const char *declined[] = {
		"", "[]", "1", "{", "{\"a\":1,}", "{\"a\":1 \"b\":2}", "{\"a\":01}", "{\"a\":1.}",
		"{\"a\":.5}", "{\"a\":-}", "{\"a\":1e}", "{\"a\":1e999}", "{\"a\":tru}", "{\"a\":truex}",
		"{\"a\":\"\\n\"}", "{\"a\":\"\xc3\xa9\"}", "{\"a\":\"\t\"}", "{\"a\":1}x", "{\"a\":1,\"a\":2}",
		"{\"a\":1234567890123456789}", "{a:1}", "{\"a\"1}", "{\"a\":[1,]}", "{\"a\":[1 2]}",
		"{\"a\":\"x}", "{\"a\":+1}", "{\"a\":NaN}",
		"{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
	};
	static const char *seeds[] = {
		"{\"inputs\":[{\"name\":\"input\",\"shape\":[1,4],\"datatype\":\"FP32\",\"data\":[1,2.5,-3e2,0]}],\"id\":\"x\"}",
		"{\"a\":{\"b\":[true,{\"c\":null}],\"d\":-12.5e-3},\"e\":\"f\"}",
	};
	const char *body = "{\"inputs\":[{\"name\":\"input\",\"shape\":[1,3],\"datatype\":\"FP32\","
			   "\"data\":[1.0,2.0,3.0]}],\"outputs\":[{\"name\":\"p\"}]}";
	const char *lb = strstr(body, "[1.0") + 1, *le = strchr(lb, ']');
	char buf[256];
	unsigned seed = 12345;
	int answered = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++)
		if (!tree_str(taken[i]))
			fail_msg("declined \"%s\"", taken[i]);
	for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++)
		if (tree_str(declined[i]))
			fail_msg("took \"%s\"", declined[i]);
	/* With the data list cut out, as ks_load asks. */
	assert_true(tree_agrees(body, strlen(body), (size_t)(lb - body), (size_t)(le - body)));
	/* Mutations of the seeds (bytes replaced, dropped, doubled): never a
	 * tree jansson would not give. */
	for (int k = 0; k < 200000; k++) {
		static const char alphabet[] = "{}[]\":,0123456789.eE+- tfnaulrs\\x\t\n";
		const char *sd = seeds[k % 2];
		size_t n = strlen(sd);
		int edits = 1 + (int)((seed = seed * 1103515245 + 12345) >> 16) % 3;

		memcpy(buf, sd, n);
		for (int m = 0; m < edits; m++) {
			size_t at = ((seed = seed * 1103515245 + 12345) >> 16) % n;
			int op = (int)((seed = seed * 1103515245 + 12345) >> 16) % 3;
			char ch = alphabet[((seed = seed * 1103515245 + 12345) >> 16) % (sizeof(alphabet) - 1)];

			if (op == 0) {
				buf[at] = ch;
			} else if (op == 1 && n > 1) {
				memmove(buf + at, buf + at + 1, n - at - 1);
				n--;
			} else if (n + 1 < sizeof(buf)) {
				memmove(buf + at + 1, buf + at, n - at);
				buf[at] = ch;
				n++;
			}
		}
		answered += tree_agrees(buf, n, 0, 0);
	}
	assert_true(answered > 1000);	/* the mutants it took were checked */
}

static bool read_str(const char *s, struct jfast_req *r)
{
	return jfast_read(s, strlen(s), r);
}

/* jfast_read takes the plain request whole, and declines the rest. */
static void test_read(void **state)
{
	struct jfast_req r;

	(void)state;
	assert_true(read_str("{\"id\":\"q\",\"inputs\":[{\"name\":\"input\",\"shape\":[1,3],"
			     "\"datatype\":\"FP32\",\"data\":[0.5,-2,1e1]}],\"parameters\":"
			     "{\"priority\":2,\"timeout\":7,\"binary_data_output\":false,"
			     "\"variant\":\"int8\"},\"outputs\":[{\"name\":\"p\",\"parameters\":"
			     "{\"binary_data\":true}}]} ", &r));
	assert_int_equal(r.id.len, 1);
	assert_memory_equal(r.name.s, "input", 5);
	assert_memory_equal(r.datatype.s, "FP32", 4);
	assert_int_equal(r.ndim, 2);
	assert_true(r.dims[0] == 1 && r.dims[1] == 3);
	assert_int_equal(r.n, 3);
	assert_true(r.vals[0] == 0.5f && r.vals[1] == -2.0f && r.vals[2] == 10.0f);
	assert_true(r.has_priority && r.priority == 2 && r.has_timeout && r.timeout == 7);
	assert_false(r.binary_data_output);
	assert_memory_equal(r.variant.s, "int8", 4);
	assert_int_equal(r.n_outputs, 1);
	assert_int_equal(r.out_binary[0], 2);
	inbuf_free(r.vals);
	assert_true(read_str("{\"inputs\":[{\"data\":[]}]}", &r));
	assert_int_equal(r.n, 0);
	inbuf_free(r.vals);
	/* what the general path reads (or rejects) */
	assert_false(read_str("{\"inputs\":[{\"data\":[1],\"data\":[2]}]}", &r));
	assert_false(read_str("{\"inputs\":[{\"n\\u0061me\":\"input\"}]}", &r));
	assert_false(read_str("{\"inputs\":[{\"data\":[[1]]}]}", &r));
	assert_false(read_str("{\"inputs\":[{\"data\":[1,]}]}", &r));
	assert_false(read_str("{\"inputs\":[{},{}]}", &r));
	assert_false(read_str("{\"inputs\":[{\"shape\":[1234567890123456789]}]}", &r));
	assert_false(read_str("{\"inputs\":[{\"shape\":[-1]}]}", &r));
	assert_false(read_str("{\"other\":1}", &r));
	assert_false(read_str("{\"id\":\"\\u00e9\"}", &r));
	assert_false(read_str("{\"id\":\"x\"} x", &r));
	assert_false(read_str("{\"id\":\"x\"", &r));
	assert_false(read_str("{\"parameters\":{\"priority\":01}}", &r));
	assert_false(read_str("{\"parameters\":{\"timeout\":1e3}}", &r));
	assert_false(read_str("{\"outputs\":[{\"parameters\":{\"class_count\":1}}]}", &r));
	/* keys matched in place: a prefix, a longer key, one cut by the end */
	assert_false(read_str("{\"inputs\":[{\"nam\":\"x\"}]}", &r));
	assert_false(read_str("{\"inputs\":[{\"names\":\"x\"}]}", &r));
	assert_false(read_str("{\"inputs\":[{\"name", &r));
	assert_false(read_str("{\"inputs\":[{\"name\"", &r));
	assert_false(read_str("{\"inputs\":[{\"\":1}]}", &r));
	assert_false(read_str("{\"inputs\":[{\"data\":[1],\"name\":\"a\",\"data\":[2]}]}", &r));
	assert_true(r.vals == NULL);
	assert_true(read_str("{ \"inputs\" :[ { \"name\"\t: \"a\" ,\n\"data\" : [ 1 ] } ] }", &r));
	assert_int_equal(r.n, 1);
	assert_memory_equal(r.name.s, "a", 1);
	inbuf_free(r.vals);
}

/* A random number token, mostly of the usual shapes, some not JSON. */
static size_t gen_token(char *p, uint64_t *x)
{
	static const char *const odd[] = { "01", "1.", ".5", "-", "1e", "1e5", "2E-3", "-0",
					   "0.0", "00.1", "1.5e+2", "-x", "1.2.3" };
	size_t n = 0;
	int a, b;

	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	if (*x % 16 == 0) {
		const char *o = odd[*x / 16 % (sizeof(odd) / sizeof(odd[0]))];

		memcpy(p, o, strlen(o));
		return strlen(o);
	}
	if (*x & 32)
		p[n++] = '-';
	a = 1 + (int)((*x >> 8) % 10);	/* integer digits: 1..10 */
	b = (int)((*x >> 16) % 11);	/* fraction digits: 0..10 */
	for (int i = 0; i < a; i++)
		p[n++] = (char)('0' + (*x >> (20 + i * 3)) % 10);
	if (a > 1 && p[n - a] == '0')
		p[n - a] = '7';
	if (b) {
		p[n++] = '.';
		for (int i = 0; i < b; i++)
			p[n++] = (char)('0' + (*x >> (30 + i * 3)) % 10);
	}
	return n;
}

/*
 * jfast_read of body[0..n) against jansson's reading: never a body jansson
 * rejects, and the same data values, (float) of each.  Whether it took it.
 */
static bool read_like_jansson(const char *body, size_t n)
{
	struct jfast_req r;
	json_error_t je;
	bool ok = jfast_read(body, n, &r);
	json_t *j = json_loadb(body, n, JSON_REJECT_DUPLICATES, &je);

	if (ok && !j)
		fail_msg("jfast_read took what jansson rejects: %.*s", (int)n, body);
	if (ok) {
		json_t *d = json_object_get(json_array_get(json_object_get(j, "inputs"), 0), "data");

		assert_int_equal(r.n, json_array_size(d));
		for (size_t i = 0; i < r.n; i++) {
			float want = (float)json_number_value(json_array_get(d, i));

			if (memcmp(&want, &r.vals[i], sizeof(want)))
				fail_msg("value %zu of %.*s: %a, jansson %a", i, (int)n, body,
					 (double)r.vals[i], (double)want);
		}
		inbuf_free(r.vals);
	}
	json_decref(j);
	return ok;
}

/* The data list as jfast_read reads it (8 bytes a step where it can)
 * against jansson's numbers, (float) of each: the same values, and never
 * a list jansson rejects. */
static void test_read_numbers_like_jansson(void **state)
{
	static char body[4096];
	uint64_t x = 0x2545f4914f6cdd1dULL;
	int taken = 0;

	(void)state;
	for (int round = 0; round < 3000; round++) {
		size_t n = 0;
		int k = 1 + (int)(x % 40);

		n += (size_t)sprintf(body, "{\"inputs\":[{\"data\":[");
		for (int i = 0; i < k; i++) {
			if (i) {
				const char *sep = x & 1 ? "," : x & 2 ? ", " : " ,";

				memcpy(body + n, sep, strlen(sep));
				n += strlen(sep);
			}
			n += gen_token(body + n, &x);
		}
		n += (size_t)sprintf(body + n, "]}]}");
		taken += read_like_jansson(body, n);
	}
	assert_true(taken > 100);
}

#define GUARD_ROOM (1 << 16)

/*
 * s[0..n) copied to end exactly where an unreadable page begins: a read
 * past its end faults in every build, not only under a sanitizer (the
 * readers load eight bytes at a time and must stop short of the end).
 */
static const char *guarded(const char *s, size_t n)
{
	static char *base;

	if (!base) {
		long pg = sysconf(_SC_PAGESIZE);

		assert_true(pg > 0 && GUARD_ROOM % pg == 0);
		base = mmap(NULL, GUARD_ROOM + (size_t)pg, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		assert_true(base != MAP_FAILED);
		assert_int_equal(mprotect(base + GUARD_ROOM, (size_t)pg, PROT_NONE), 0);
	}
	assert_true(n <= GUARD_ROOM);
	memcpy(base + GUARD_ROOM - n, s, n);
	return base + GUARD_ROOM - n;
}

/* read_like_jansson on a copy of exactly n bytes (a sanitizer build sees
 * any read past them), and on one that ends at an unreadable page (any
 * build does). */
static bool read_exact_like_jansson(const char *body, size_t n)
{
	char *copy = malloc(n ? n : 1);
	bool ok;

	assert_non_null(copy);
	memcpy(copy, body, n);
	ok = read_like_jansson(copy, n);
	free(copy);
	assert_true(read_like_jansson(guarded(body, n), n) == ok);
	return ok;
}

/* Numbers at the edges of the usual token's path (15 and 16 digits, signs,
 * zeros, exponents, whitespace) in a data list, jfast_read against
 * jansson; and every cut of such a body (a token or the list running into
 * the end) declined. */
static void test_read_number_edges(void **state)
{
	static const char *const toks[] = {
		"0", "-0", "0.0", "-0.0", "0.5", "-0.5", "12.0", "16", "9.75", "1234567",
		"123456789012345", "-123456789012345", "12345678901234.5", "1.23456789012345",
		"0.00000000000001", "0.000000000000001", "1234567890123456", "123456789012345.6",
		"1.234567890123456", "0.0000000000000001", "9007199254740993", "16777217",
		"16777217.0", "0.1", "0.30000001192092896", "1e5", "1E-5", "2.5e+3", "-0e0",
		"100000000000000000", "00", "01", "0.", "-", "1.5.5", "0x1", "3.4028234e38",
		"1e39", "-3.5e38",
	};
	static const char *const seps[] = { ",", " , ", ",\n\t", " ,", ", " };
	static char body[1024];
	int taken = 0;

	(void)state;
	for (size_t a = 0; a < sizeof(toks) / sizeof(*toks); a++)
		for (size_t b = 0; b < sizeof(toks) / sizeof(*toks); b++) {
			const char *sep = seps[(a + b) % (sizeof(seps) / sizeof(*seps))];
			size_t n = (size_t)snprintf(body, sizeof(body),
						    "{\"inputs\":[{\"data\":[%s%s%s%s]}]}",
						    b % 2 ? " " : "", toks[a], sep, toks[b]);

			taken += read_exact_like_jansson(body, n);
			for (size_t cut = 0; cut < n; cut++)
				read_exact_like_jansson(body, cut);
		}
	assert_true(taken > 300);
	/* Inf as a float (finite as a double): declined, the general path
	 * names it (jfast_read's values are finite). */
	assert_false(read_like_jansson("{\"inputs\":[{\"data\":[1,1e39]}]}", 30));
	assert_false(read_like_jansson("{\"inputs\":[{\"data\":[-3.5e38,1]}]}", 33));
	assert_true(read_like_jansson("{\"inputs\":[{\"data\":[3.4028234e38,1]}]}", 38));
}

/* The length of the JSON number at s[0..n) by the grammar, written out
 * here apart from jsonfast's; 0: none. */
static size_t grammar_token(const char *s, size_t n)
{
#define D(i) ((i) < n && s[i] >= '0' && s[i] <= '9')
	size_t i = 0, j;

	if (i < n && s[i] == '-')
		i++;
	if (!D(i))
		return 0;
	if (s[i++] != '0')
		while (D(i))
			i++;
	if (i < n && s[i] == '.') {
		if (!D(i + 1))
			return 0;
		for (i += 2; D(i); i++)
			;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		j = i + 1;
		if (j < n && (s[j] == '+' || s[j] == '-'))
			j++;
		if (!D(j))
			return 0;
		for (i = j; D(i); i++)
			;
	}
	return i;
#undef D
}

/*
 * jfast_float on text[0..n), which ends at an unreadable page: the token
 * the grammar finds, with jansson's value (a token it cannot be: declined,
 * nothing moved).
 */
static void expect_token_at_end(const char *text, size_t n)
{
	const char *s = guarded(text, n), *p = s;
	size_t len = grammar_token(text, n);
	char tok[96];
	float got, want;
	bool ok = jfast_float(&p, s + n, &got);

	if (!len) {
		if (ok)
			fail_msg("\"%.*s\": took a token the grammar has not", (int)n, text);
		assert_ptr_equal(p, s);
		return;
	}
	assert_true(len < sizeof(tok));
	memcpy(tok, text, len);
	tok[len] = 0;
	want = reference(tok);
	if (!ok)
		fail_msg("\"%.*s\": declined", (int)n, text);
	if (p != s + len)
		fail_msg("\"%.*s\": stopped after %td bytes, the token has %zu", (int)n, text,
			 p - s, len);
	if (memcmp(&got, &want, sizeof(got)))
		fail_msg("\"%.*s\": got %a, jansson gives %a", (int)n, text, (double)got,
			 (double)want);
}

/* sign, ni integer digits, nf fraction digits (none: no point) into buf;
 * kind 0: random digits, 1: all nines, 2: zeros with a last 1; the first
 * integer digit is 0 only when it is the only one.  Returns the length. */
static size_t gen_shape(char *buf, bool neg, int ni, int nf, int kind)
{
	size_t n = 0;

	if (neg)
		buf[n++] = '-';
	for (int i = 0; i < ni; i++) {
		char c = kind == 1 ? '9' : kind == 2 ? (i == ni - 1 ? '1' : '0') : (char)('0' + next() % 10);

		if (i == 0 && ni > 1 && c == '0')
			c = (char)('1' + next() % 9);
		buf[n++] = c;
	}
	if (nf) {
		buf[n++] = '.';
		for (int i = 0; i < nf; i++)
			buf[n++] = kind == 1 ? '9' : kind == 2 ? (i == nf - 1 ? '1' : '0') :
					       (char)('0' + next() % 10);
	}
	return n;
}

/*
 * Every shape the word readers split on, each digit count of the integer
 * part (1..9: the short path's three, then eight to a word) and of the
 * fraction (0..21: one, a word, two words, past 15, 16 and 19), signs, what may
 * follow (an exponent, which makes it another token, a second point, a
 * byte next to the digits), and 0..12 bytes more after it: so the token
 * ends at the buffer's end, and at each distance from it that the eight-
 * byte loads must respect (the buffer ends at an unreadable page).
 */
static void test_word_numbers(void **state)
{
	static const char *const after[] = { "", ",", "]", " ", "}", "e3", "E-2", "e+1",
					     "x", ".5", "e", "/", ":" };
	static const char more[] = "7,8.25,]}]} 123456";
	char buf[96];

	(void)state;
	for (int neg = 0; neg < 2; neg++)
		for (int ni = 1; ni <= 9; ni++)
			for (int nf = 0; nf <= 21; nf++)
				for (int kind = 0; kind < 3; kind++)
					for (size_t a = 0; a < sizeof(after) / sizeof(*after); a++)
						for (size_t m = 0; m <= 12; m++) {
							size_t n = gen_shape(buf, neg, ni, nf, kind);

							if (!*after[a] && m)
								break;	/* the token at the end */
							memcpy(buf + n, after[a], strlen(after[a]));
							n += strlen(after[a]);
							memcpy(buf + n, more, m);
							expect_token_at_end(buf, n + m);
						}
	/* a leading zero ends the token ("01": the list declines) */
	expect_token_at_end("01.5,1.0,2.0", 12);
	expect_token_at_end("-00.0,1.0,2.0", 13);
	expect_token_at_end("0123456789,", 11);
}

/*
 * Reals at the float rounding edges, short enough for the word readers:
 * the midpoint between two neighbouring floats written exactly (ties go to
 * even), and one unit of its last digit either side.
 */
static void test_word_rounding_edges(void **state)
{
	char buf[64], body[160];

	(void)state;
	for (int k = 0; k < 24; k++)
		for (int i = 0; i < 400; i++) {
			float f = ldexpf((float)((1u << 23) + next() % (1u << 23)), k - 23);
			double mid = ((double)f + (double)nextafterf(f, INFINITY)) / 2;
			int frac = 24 - k;	/* the midpoint's fraction digits: 2^-(24-k) */
			double unit = pow(10, -frac);

			if (frac + k / 3.3 + 1 > 16)
				continue;	/* too many digits for the word readers */
			for (int d = -1; d <= 1; d++) {
				size_t n = (size_t)snprintf(buf, sizeof(buf), "%.*f", frac,
							    mid + d * unit);

				expect_token_at_end(buf, n);
				buf[n] = ',';
				expect_token_at_end(buf, n + 1);
				buf[n] = 0;
				n = (size_t)snprintf(body, sizeof(body),
						     "{\"inputs\":[{\"data\":[%s,-%s,0.0]}]}", buf, buf);
				if (!read_exact_like_jansson(body, n))
					fail_msg("declined %s", body);
			}
		}
}

/*
 * The data list's readers (the masks for "d.d," and "dd.d,", the word
 * readers, the byte-wise one near the end) against jansson, list by list:
 * each shape as above before a comma, a bracket, whitespace, and near
 * bytes that are almost digits ('/', ':', "0x"); every cut of some.
 */
static void test_read_word_shapes(void **state)
{
	static const char *const odd[] = {
		"1.:", ":.0", "1:.5", "/.5", "1./", "01.5", "00.0", "0.0e1", "12.0E+1", "1.0.0",
		"10./", "1/.0", "9.9:", "-1.:", "-:.0", "12:5", "1.5e", "0.0x",
	};
	static const char *const seps[] = { ",", ", ", " ,", "]" };
	char tok[64], body[256];
	int taken = 0;

	(void)state;
	for (int neg = 0; neg < 2; neg++)
		for (int ni = 1; ni <= 9; ni++)
			for (int nf = 0; nf <= 21; nf++)
				for (int kind = 0; kind < 3; kind++) {
					size_t t = gen_shape(tok, neg, ni, nf, kind), n;

					tok[t] = 0;
					for (size_t s = 0; s < sizeof(seps) / sizeof(*seps); s++) {
						n = (size_t)snprintf(body, sizeof(body),
								     "{\"inputs\":[{\"data\":[%s%s%s%s]}]}",
								     tok, seps[s], s == 3 ? "" : tok,
								     s == 3 ? "" : ",0.0,12.5");
						json_t *j = json_loadb(body, n, 0, NULL);
						bool took = read_exact_like_jansson(body, n);

						if (j && !took)	/* finite, plain: the walk takes it */
							fail_msg("declined %s", body);
						json_decref(j);
						taken += took;
					}
					if (kind == 0 && (nf % 4 == 1 || nf >= 14))
						for (size_t cut = 0; cut < n; cut++)
							read_exact_like_jansson(body, cut);
				}
	/* "d.d," and "dd.d," with a byte next to the digits ('/', ':', '?'),
	 * or a leading '0', in each digit's place: jansson rejects them all */
	for (size_t sh = 0; sh < 2; sh++)
		for (size_t at = 0; at < 4; at++)
			for (size_t b = 0; b < 4; b++) {
				char t[8];
				size_t n;

				strcpy(t, sh ? "47.5" : "4.5");
				if (t[at] == '.' || !t[at] || (b == 3 && (at || !sh)))
					continue;
				t[at] = "/:?0"[b];
				n = (size_t)snprintf(body, sizeof(body),
						     "{\"inputs\":[{\"data\":[%s,1.0,2.0]}]}", t);
				assert_false(read_exact_like_jansson(body, n));
			}
	for (size_t i = 0; i < sizeof(odd) / sizeof(*odd); i++)
		for (size_t j = 0; j < 2; j++) {
			size_t n = (size_t)snprintf(body, sizeof(body),
						    j ? "{\"inputs\":[{\"data\":[1.5,%s,2.5,3.5]}]}" :
							"{\"inputs\":[{\"data\":[%s,1.0,2.0]}]}",
						    odd[i]);

			read_exact_like_jansson(body, n);
		}
	assert_true(taken > 2000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numbers_like_jansson),
		cmocka_unit_test(test_wide_fractions),
		cmocka_unit_test(test_wide_ties),
		cmocka_unit_test(test_tiny_numbers),
		cmocka_unit_test(test_declined),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_walk_agrees_with_jansson),
		cmocka_unit_test(test_put_float),
		cmocka_unit_test(test_tree),
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_read_numbers_like_jansson),
		cmocka_unit_test(test_read_number_edges),
		cmocka_unit_test(test_word_numbers),
		cmocka_unit_test(test_word_rounding_edges),
		cmocka_unit_test(test_read_word_shapes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
