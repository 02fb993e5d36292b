/* jsonfast.c - see jsonfast.h. */
#define _GNU_SOURCE	/* memmem */
#include "jsonfast.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JF_MAX_TOKEN 64		/* longer numbers go to jansson */
#define JF_MAX_EXP10 27		/* 10^27 = 2^27 * 5^27 is exact in a 64-bit mantissa */

struct jf_num {
	bool neg, real, lost;	/* lost: more digits than 64 bits hold */
	uint64_t mant;
	int digits;		/* significant digits read into mant, leading zeros included */
	int exp10;
};

static bool jf_digit(char c)
{
	return c >= '0' && c <= '9';
}

static void jf_take(struct jf_num *n, char c)
{
	if (n->mant <= (UINT64_MAX - 9) / 10)
		n->mant = n->mant * 10 + (uint64_t)(c - '0');
	else
		n->lost = true;
	n->digits++;
}

/* The JSON number grammar at p: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
 * Returns the end of the token, or NULL when p holds no JSON number. */
static const char *jf_scan(const char *p, const char *end, struct jf_num *n)
{
	int e = 0, esign = 1;

	memset(n, 0, sizeof(*n));
	if (p < end && *p == '-') {
		n->neg = true;
		p++;
	}
	if (p >= end || !jf_digit(*p))
		return NULL;
	if (*p == '0')
		jf_take(n, *p++);
	else
		while (p < end && jf_digit(*p))
			jf_take(n, *p++);
	if (p < end && *p == '.') {
		n->real = true;
		if (++p >= end || !jf_digit(*p))
			return NULL;
		for (; p < end && jf_digit(*p); p++) {
			jf_take(n, *p);
			n->exp10--;
		}
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		n->real = true;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			esign = *p++ == '-' ? -1 : 1;
		if (p >= end || !jf_digit(*p))
			return NULL;
		for (; p < end && jf_digit(*p); p++)
			if (e < 100000)
				e = e * 10 + (*p - '0');
	}
	n->exp10 += esign * e;
	return p;
}

/* strtod on a copy of [p, q) (the body is not NUL-terminated), as jansson
 * does; false when it overflows (jansson: "real number overflow"). */
static bool jf_strtod(const char *p, const char *q, double *d)
{
	char tok[JF_MAX_TOKEN + 1];
	char *e;

	if (q - p > JF_MAX_TOKEN)
		return false;
	memcpy(tok, p, (size_t)(q - p));
	tok[q - p] = 0;
	errno = 0;
	*d = strtod(tok, &e);
	if (e != tok + (q - p))
		return false;
	return !((*d == HUGE_VAL || *d == -HUGE_VAL) && errno == ERANGE);
}

/* The float next to f > 0 (normal, finite) towards zero (-1) or away (+1). */
static float jf_float_step(float f, int dir)
{
	uint32_t bits;

	memcpy(&bits, &f, sizeof(bits));
	bits = dir < 0 ? bits - 1 : bits + 1;
	memcpy(&f, &bits, sizeof(f));
	return f;
}

/*
 * mant x 10^exp10 rounded to float without strtod, when that is provably
 * the float of strtod's double: x is computed with one rounding in a 64-bit
 * mantissa (relative error <= 2^-64, strtod's <= 2^-53), so when x lies
 * farther than |x| 2^-50 from every float rounding midpoint, the true
 * value, strtod's double and x all round to the same float.  false when
 * that cannot be shown (the caller uses strtod).
 */
static bool jf_quick_float(const struct jf_num *n, float *out)
{
	static const long double p10[JF_MAX_EXP10 + 1] = {
		1e0L, 1e1L, 1e2L, 1e3L, 1e4L, 1e5L, 1e6L, 1e7L, 1e8L, 1e9L, 1e10L, 1e11L, 1e12L,
		1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L, 1e20L, 1e21L, 1e22L, 1e23L,
		1e24L, 1e25L, 1e26L, 1e27L,
	};
	long double x, lo, hi, eps;
	float f;

	if (LDBL_MANT_DIG < 64 || n->lost || n->exp10 > JF_MAX_EXP10 || n->exp10 < -JF_MAX_EXP10)
		return false;
	if (n->mant == 0) {
		*out = n->neg ? -0.0f : 0.0f;
		return true;
	}
	x = (long double)n->mant;
	x = n->exp10 < 0 ? x / p10[-n->exp10] : x * p10[n->exp10];
	if (x < 2.0L * FLT_MIN || x > FLT_MAX / 2)
		return false;	/* subnormal or near overflow: leave it to strtod */
	f = (float)x;
	lo = ((long double)f + (long double)jf_float_step(f, -1)) / 2;
	hi = ((long double)f + (long double)jf_float_step(f, 1)) / 2;
	eps = x * 0x1p-50L;
	if (x - lo <= eps || hi - x <= eps)
		return false;
	*out = n->neg ? -f : f;
	return true;
}

bool jfast_float(const char **pp, const char *end, float *val)
{
	struct jf_num n;
	const char *q = jf_scan(*pp, end, &n);
	double d;

	if (!q)
		return false;
	if (!n.real) {
		/* jansson: an integer (long long; larger ones are an error) */
		long long v;

		if (n.digits > 18)
			return false;
		v = n.neg ? -(long long)n.mant : (long long)n.mant;
		*val = (float)(double)v;
	} else if (!jf_quick_float(&n, val)) {
		if (!jf_strtod(*pp, q, &d))
			return false;
		*val = (float)d;
	}
	*pp = q;
	return true;
}

static const char *jf_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Whether the '"' at json[i] opens a string: not escaped by an odd run of
 * backslashes (inside a string every '"' is). */
static bool jf_unescaped(const char *json, size_t i)
{
	size_t k = 0;

	while (k < i && json[i - 1 - k] == '\\')
		k++;
	return k % 2 == 0;
}

/* Offset of the '[' after the one key "key" in json, or -1 (none, more
 * than one, or its value is not a list). */
static long jf_find_key(const char *json, size_t len, const char *key)
{
	size_t klen = strlen(key), at = 0;
	char pat[64];
	long found = -1;
	int n = 0;

	if (klen + 2 > sizeof(pat))
		return -1;
	pat[0] = '"';
	memcpy(pat + 1, key, klen);
	pat[klen + 1] = '"';
	for (;;) {
		const char *hit = memmem(json + at, len - at, pat, klen + 2), *p;

		if (!hit)
			break;
		at = (size_t)(hit - json) + klen + 2;
		if (!jf_unescaped(json, (size_t)(hit - json)))
			continue;
		p = jf_ws(json + at, json + len);
		if (p == json + len || *p != ':')
			continue;	/* a string value, not a key */
		if (++n > 1)
			return -1;
		p = jf_ws(p + 1, json + len);
		found = p < json + len && *p == '[' ? p - json : -1;
	}
	return n == 1 ? found : -1;
}

bool jfast_list(const char *json, size_t len, const char *key, struct jfast_list *out)
{
	long open = jf_find_key(json, len, key);
	const char *p, *end = json + len;
	size_t cap;

	memset(out, 0, sizeof(*out));
	if (open < 0)
		return false;
	p = jf_ws(json + open + 1, end);
	/* Every number takes at least 2 bytes with its comma. */
	cap = (size_t)(end - p) / 2 + 1;
	out->vals = malloc(cap * sizeof(float));
	if (!out->vals)
		return false;
	while (p < end && *p != ']') {
		if (out->n == cap || !jfast_float(&p, end, &out->vals[out->n]))
			goto decline;
		out->n++;
		p = jf_ws(p, end);
		if (p < end && *p == ',') {
			p = jf_ws(p + 1, end);
			if (p < end && *p == ']')
				goto decline;	/* a trailing comma: jansson's error */
		} else if (p >= end || *p != ']') {
			goto decline;
		}
	}
	if (p >= end)
		goto decline;
	out->begin = (size_t)open + 1;
	out->end = (size_t)(p - json);
	return true;
decline:
	free(out->vals);
	memset(out, 0, sizeof(*out));
	return false;
}
