/* jsonfast.c - see jsonfast.h. */
#define _GNU_SOURCE	/* memmem */
#include "jsonfast.h"

#include "../core/swar.h"
#include "../core/util.h"
#include "inbuf.h"

#include <errno.h>
#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define JF_MAX_TOKEN 64		/* longer numbers go to jansson */

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

/* The float next to f >= 0 (finite, below FLT_MAX) towards zero (-1, f > 0)
 * or away (+1); subnormal floats included (their bit patterns count up too). */
static float jf_float_step(float f, int dir)
{
	uint32_t bits;

	memcpy(&bits, &f, sizeof(bits));
	bits = dir < 0 ? bits - 1 : bits + 1;
	memcpy(&f, &bits, sizeof(f));
	return f;
}

/* Powers of ten for jf_quick_float: exact up to 10^27 (2^k 5^k, 5^27 <
 * 2^64), above that the nearest long double (relative error <= 2^-64). */
#define JF_QUICK_MAX 66
#define JF_P10L(k) 1e##k##L
static const long double jf_p10l[JF_QUICK_MAX + 1] = {
	JF_P10L(0), JF_P10L(1), JF_P10L(2), JF_P10L(3), JF_P10L(4), JF_P10L(5), JF_P10L(6),
	JF_P10L(7), JF_P10L(8), JF_P10L(9), JF_P10L(10), JF_P10L(11), JF_P10L(12), JF_P10L(13),
	JF_P10L(14), JF_P10L(15), JF_P10L(16), JF_P10L(17), JF_P10L(18), JF_P10L(19), JF_P10L(20),
	JF_P10L(21), JF_P10L(22), JF_P10L(23), JF_P10L(24), JF_P10L(25), JF_P10L(26), JF_P10L(27),
	JF_P10L(28), JF_P10L(29), JF_P10L(30), JF_P10L(31), JF_P10L(32), JF_P10L(33), JF_P10L(34),
	JF_P10L(35), JF_P10L(36), JF_P10L(37), JF_P10L(38), JF_P10L(39), JF_P10L(40), JF_P10L(41),
	JF_P10L(42), JF_P10L(43), JF_P10L(44), JF_P10L(45), JF_P10L(46), JF_P10L(47), JF_P10L(48),
	JF_P10L(49), JF_P10L(50), JF_P10L(51), JF_P10L(52), JF_P10L(53), JF_P10L(54), JF_P10L(55),
	JF_P10L(56), JF_P10L(57), JF_P10L(58), JF_P10L(59), JF_P10L(60), JF_P10L(61), JF_P10L(62),
	JF_P10L(63), JF_P10L(64), JF_P10L(65), JF_P10L(66),
};

/*
 * mant x 10^exp10 rounded to float without strtod, when that is provably
 * the float of strtod's double: x is computed in a 64-bit mantissa with at
 * most three roundings (10^k past 10^27, the product or quotient: relative
 * error < 2^-62; strtod's <= 2^-53), so when x lies farther than |x| 2^-50
 * from every float rounding midpoint, the true value, strtod's double and
 * x all round to the same float.  That holds for subnormal floats too
 * (their midpoints are evenly spaced; the one under the smallest is
 * 2^-150, under which everything is zero): a hostile client's list of
 * 1e-39s no longer takes strtod's slow path (about 200 ns a number, 25x a
 * usual one).  Below 10^-66 even 19 digits are < 2^-150 / 30: zero.  false
 * when that cannot be shown or near overflow (the caller uses strtod).
 */
static bool jf_quick_float(const struct jf_num *n, float *out)
{
	long double x, lo, hi, eps;
	float f;

	if (LDBL_MANT_DIG < 64 || n->lost || n->exp10 > JF_QUICK_MAX)
		return false;
	if (n->mant == 0 || n->exp10 < -JF_QUICK_MAX) {
		*out = n->neg ? -0.0f : 0.0f;
		return true;
	}
	x = (long double)n->mant;
	x = n->exp10 < 0 ? x / jf_p10l[-n->exp10] : x * jf_p10l[n->exp10];
	if (x > FLT_MAX / 2)
		return false;	/* near overflow: leave it to strtod */
	f = (float)x;
	eps = x * 0x1p-50L;
	hi = ((long double)f + (long double)jf_float_step(f, 1)) / 2;
	if (hi - x <= eps)
		return false;
	if (f > 0) {	/* else x is under 2^-150, the midpoint above zero */
		lo = ((long double)f + (long double)jf_float_step(f, -1)) / 2;
		if (x - lo <= eps)
			return false;
	}
	*out = n->neg ? -f : f;
	return true;
}

/*
 * m with frac of its digits after the point, as jansson reads the token:
 * an integer (frac 0) as (double)(long long), so "-0" is +0; a real as
 * strtod's correctly rounded double, which one division of the exact
 * double m (< 2^53) by the exact 10^frac (frac <= 15) is.  Then (float).
 */
static inline __attribute__((always_inline)) float jf_decimal(uint64_t m, bool neg, int frac)
{
	static const double p10[16] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8,
					1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15 };
	double d;

	if (frac == 0)
		return (float)(double)(neg ? -(long long)m : (long long)m);
	d = (double)(long long)m / p10[frac];	/* m < 2^53: no unsigned conversion */
	return (float)(neg ? -d : d);
}

/* How far back jf_stop looks for a non-digit (a body ends in '}'). */
#define JF_STOP_LOOK 32

/*
 * The last byte in [p, end) that is not a digit, when it lies in the
 * last JF_STOP_LOOK bytes; else p (no number starts before it).  Every
 * run of digits that starts before it ends at it at the latest: the
 * number loops below need no end check per byte.
 */
static const char *jf_stop(const char *p, const char *end)
{
	const char *q = end - p > JF_STOP_LOOK ? end - JF_STOP_LOOK : p;

	while (end > q && jf_digit(end[-1]))
		end--;
	return end > q ? end - 1 : p;
}

/*
 * The usual token's digits at p, digits[.digits] with at most 15 digits
 * and no exponent, negated when neg, in one pass without an end check per
 * byte: p <= stop, stop as jf_stop finds it.  The digits make an exact
 * double (jf_decimal).  Past it, or NULL: anything else.
 */
static inline __attribute__((always_inline)) const char *jf_usual_digits(const char *p,
									  const char *stop,
									  bool neg, float *val)
{
	const char *ds = p, *fs;
	uint64_t m;
	unsigned dig;
	int frac = 0;

	if ((m = (unsigned)(unsigned char)*p++ - '0') > 9)
		return NULL;
	if (m)	/* a leading '0' is the whole integer part ("01": the list declines) */
		for (; (dig = (unsigned)(unsigned char)*p - '0') <= 9; p++)
			m = m * 10 + dig;
	if (*p == '.') {
		if (p == stop)
			return NULL;	/* digits may run to the end */
		fs = ++p;
		if ((dig = (unsigned)(unsigned char)*p - '0') > 9)
			return NULL;	/* "1.", "1.e3" */
		do
			m = m * 10 + dig;
		while ((dig = (unsigned)(unsigned char)*++p - '0') <= 9);
		frac = (int)(p - fs);
		ds++;	/* the point is no digit */
	}
	if (p - ds > 15 || (*p | 0x20) == 'e')
		return NULL;	/* m may have wrapped: not used */
	*val = jf_decimal(m, neg, frac);
	return p;
}

/*
 * The usual token at p, -?digits[.digits] (jf_usual_digits): p < stop.
 * Past it, or NULL: anything else (jfast_float's general path decides).
 * Inlined into the list loop, one copy for each sign (no sign to carry
 * through): a value costs a few dozen instructions.
 */
static inline __attribute__((always_inline)) const char *jf_usual_float(const char *p,
									 const char *stop,
									 float *val)
{
	if (*p == '-')	/* p + 1 <= stop: a '-' is no digit */
		return jf_usual_digits(p + 1, stop, true, val);
	return jf_usual_digits(p, stop, false, val);
}

/*
 * The usual token where at least nine bytes lie ahead (p + 9 <= end, the
 * sign included), so that every byte up to p[8] is read without an end
 * check.  The short shapes most lists hold ("0.0", "12.0", "255.5", "7")
 * are read byte by byte with nothing counted; a longer fraction or
 * integer part goes eight bytes at a time (jf_swar_fraction,
 * jf_swar_integer), each load of eight checked against the end.  Nothing
 * is read past the end: the text is not padded (a body pulled up from its
 * evbuffer, the JSON header before a binary section, an exact-size copy),
 * so the last number or two of a body go to the byte-wise reader.
 */

/* A word v here is eight bytes of the text XOR '0' (swar_load; the first
 * byte in the lowest): a digit's byte is then its value 0..9. */
#define JF_ZEROS (SWAR_ONES * '0')
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
	       "the word readers take the text's first byte as a word's lowest");

/*
 * The top bit of each byte of v that is no digit (above 9).  Exact for
 * every byte up to the first one of 0x8a or more: that one is no digit
 * and is flagged, but its sum carries into the byte after it, so later
 * flags may be wrong.  Callers use the lowest flag only.
 */
static inline uint64_t jf_nondigits(uint64_t v)
{
	return ((v + SWAR_ONES * 0x76) | v) & SWAR_HIGHS;
}

/*
 * The number the eight digits of d make (each byte 0..9, the first and
 * most significant in the lowest byte): pairs, then pairs of pairs and the
 * four together, one multiplication each; every partial sum stays below
 * 2^32 in its half of the word, so no lane carries into another.  Zero
 * bytes are leading zeros: k digits shifted to the top of d read as those k.
 */
static inline uint64_t jf_eight(uint64_t d)
{
	d = d * 10 + (d >> 8);	/* each even byte: its digit and the next (0..99) */
	return ((d & 0x000000ff000000ffull) * (100 + (1000000ull << 32)) +
		((d >> 16) & 0x000000ff000000ffull) * (1 + (10000ull << 32))) >> 32;
}

static const uint64_t jf_pow10u[20] = {
	1ull, 10ull, 100ull, 1000ull, 10000ull, 100000ull, 1000000ull, 10000000ull,
	100000000ull, 1000000000ull, 10000000000ull, 100000000000ull, 1000000000000ull,
	10000000000000ull, 100000000000000ull, 1000000000000000ull, 10000000000000000ull,
	100000000000000000ull, 1000000000000000000ull, 10000000000000000000ull,
};

/* (float) of m / 10^frac, negated when neg, for 1 <= frac <= 19 and m <=
 * 2^53 (both exact doubles: one division is strtod's correctly rounded
 * double, Clinger's fast path): jf_decimal's real token. */
static inline __attribute__((always_inline)) float jf_fraction(uint64_t m, bool neg, unsigned frac)
{
	static const double p10[20] = { 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
					1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
					1e19 };
	double d = (double)(long long)m / p10[frac];

	return (float)(neg ? -d : d);
}

/*
 * m / 10^k (2^53 < m < 2^64, 1 <= k <= 19) as (float) of strtod's double
 * D, in double arithmetic: d = (double)m x 10^-k rounds three times (m,
 * the power, the product), so it lies within 3 units of its last place of
 * the true value, and D within half a unit: 3.5 units apart at most.  A
 * float rounds at the midpoints between floats, which in d's binade are
 * the doubles whose 29 bits below the float's 23 read 2^28.  When d's lie
 * farther than 8 units from that, no midpoint lies between d and D (nor
 * on D: a tie), so (float)d is (float)D.  At a binade's bottom the
 * midpoint just below it is 2^28 units of the binade under away, far
 * outside the window.  false near a midpoint, or outside the normal
 * floats (d < 2^-126, d >= 2^127): jf_quick_float decides.
 */
static inline __attribute__((always_inline)) bool jf_wide_quick(uint64_t m, unsigned k, bool neg,
								 float *val)
{
	static const double inv10[20] = { 1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7,
					  1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13, 1e-14,
					  1e-15, 1e-16, 1e-17, 1e-18, 1e-19 };
	double d = (double)m * inv10[k];
	uint64_t bits;
	float f;

	memcpy(&bits, &d, sizeof(bits));
	if (((bits & 0x1fffffffu) - (0x10000000u - 8)) <= 16 || !(d >= 0x1p-126 && d < 0x1p127))
		return false;
	f = (float)d;
	*val = neg ? -f : f;
	return true;
}

/* m / 10^frac (m > 2^53, 1 <= frac <= 19) when jf_wide_quick cannot
 * decide, as jfast_float's general path takes those digits:
 * jf_quick_float; false when it cannot either (strtod will). */
static __attribute__((noinline)) bool jf_wide_slow(uint64_t m, unsigned frac, bool neg,
						   float *val)
{
	return jf_quick_float(&(struct jf_num){ .neg = neg, .real = true, .mant = m,
						.exp10 = -(int)frac }, val);
}

/*
 * A fraction of more than seven digits at f, after the integer part ip
 * (< 10^7): y its first eight (jf_swar_fraction), the next up to eight by
 * the word (all of them, or those before its first non-digit), the rest
 * byte by byte, each checked against the end, up to 19 in all (as a
 * client prints a double: 17 significant digits).  m = ip x 10^frac +
 * fraction, exact in 64 bits (else NULL), is what jf_scan reads from the
 * same text: at most 2^53, one division (Clinger); larger, one product
 * of doubles (jf_wide_quick), else jf_quick_float, as the general path takes
 * it (NULL when neither can decide: strtod will).  Past the digits, or
 * NULL.
 */
static inline __attribute__((always_inline)) const char *jf_long_fraction(const char *f,
									   const char *end,
									   uint64_t y, uint64_t ip,
									   bool neg, float *val)
{
	const char *q = f + 8, *lim;
	uint64_t m = jf_eight(y), x, nd;
	unsigned d, t, frac;

	/* the next digits by the word: eight, or the 0..7 before a non-digit
	 * (digits to the word's top, as jf_swar_fraction); after a full word
	 * the next, whose first four bytes hold a non-digit (19 at most) */
	if (end - q >= 8) {
		y = swar_load(q) ^ JF_ZEROS;
		nd = jf_nondigits(y);
		if (!nd) {
			m = m * 100000000u + jf_eight(y);
			q += 8;
			if (end - q < 8)
				goto bytes;
			y = swar_load(q) ^ JF_ZEROS;
			nd = jf_nondigits(y);
			if (!nd || (t = (unsigned)__builtin_ctzll(nd)) > 31)
				return NULL;	/* 20 fraction digits or more */
		} else {
			t = (unsigned)__builtin_ctzll(nd);
		}
		if (t > 7) {	/* 8 x (digits) + 7 */
			m = m * jf_pow10u[t >> 3] + jf_eight(y << (71 - t));
			q += t >> 3;
		}
		goto digits;	/* *q: a non-digit */
	}
bytes:	/* near the text's end */
	lim = end - f > 19 ? f + 19 : end;
	for (; q < lim && (d = (unsigned)(unsigned char)*q - '0') <= 9; q++)
		m = m * 10 + d;	/* < 10^19 */
	if (q == end || (unsigned)(unsigned char)*q - '0' <= 9)
		return NULL;	/* 20 fraction digits or more; at the end: the byte-wise reader's */
digits:
	if (ip && (__builtin_mul_overflow(ip, jf_pow10u[q - f], &x) ||
		   __builtin_add_overflow(m, x, &m)))
		return NULL;
	frac = (unsigned)(q - f);	/* 8..19 */
	if (m <= 1ull << 53)
		*val = jf_fraction(m, neg, frac);
	else if (!jf_wide_quick(m, frac, neg, val) && !jf_wide_slow(m, frac, neg, val))
		return NULL;
	return q;
}

/*
 * The fraction's digits at f after the integer part ip (< 10^7), eight
 * bytes at a time (f + 8 <= end, else NULL).  At least one digit, at most
 * 15, and m = ip x 10^frac + fraction <= 2^53 (m < 10^14 when frac <= 7,
 * here; more digits: jf_long_fraction): m and 10^frac are then exact
 * doubles, and their one division is strtod's correctly rounded double
 * (Clinger's fast path, as jfast_float's general path takes it).  Past the
 * digits, or NULL.
 */
static inline __attribute__((always_inline)) const char *jf_swar_fraction(const char *f,
									   const char *end,
									   uint64_t ip, bool neg,
									   float *val)
{
	uint64_t y, ny;
	unsigned t;

	if (end - f < 8)
		return NULL;
	y = swar_load(f) ^ JF_ZEROS;
	ny = jf_nondigits(y);
	if (!ny)
		return jf_long_fraction(f, end, y, ip, neg, val);
	t = (unsigned)__builtin_ctzll(ny);	/* 8 x (its digits) + 7 */
	if (t == 7)
		return NULL;	/* "1.", "1.e3" */
	*val = jf_fraction(ip * jf_pow10u[t >> 3] + jf_eight(y << (71 - t)), neg, t >> 3);
	return f + (t >> 3);
}

/*
 * The token's digits at p (p + 8 <= end; p[0..3] digits, not a leading
 * zero), an integer part of four digits or more, eight bytes at a time:
 * up to seven, then a fraction (jf_swar_fraction) or none.  Past the
 * token, or NULL.
 */
static __attribute__((noinline)) const char *jf_swar_integer(const char *p, const char *end,
							      bool neg, float *val)
{
	uint64_t v = swar_load(p) ^ JF_ZEROS, nd = jf_nondigits(v), ip;
	unsigned t;

	if (!nd)
		return NULL;	/* eight integer digits or more */
	t = (unsigned)__builtin_ctzll(nd);	/* 8 x (its digits) + 7 */
	ip = jf_eight(v << (71 - t));	/* those digits to the top */
	p += t >> 3;
	if (*p == '.')
		return jf_swar_fraction(p + 1, end, ip, neg, val);
	*val = jf_decimal(ip, neg, 0);
	return p;
}

/*
 * The usual token's digits at p (p + 8 <= end), as jf_usual_digits reads
 * them: up to three integer digits and one fraction digit here, longer
 * parts by the word.  Past the digits, or NULL: anything else (the
 * byte-wise readers then decide).  An exponent is not looked for: the
 * caller tests the byte it returns (a token that runs on into 'e' or 'E'
 * is not this one).
 */
static inline __attribute__((always_inline)) const char *jf_word_digits(const char *p,
									 const char *end,
									 bool neg, float *val)
{
	unsigned a = (unsigned)(unsigned char)p[0] - '0', d;

	if (a > 9)
		return NULL;
	if (p[1] == '.') {
		p += 1;
	} else if ((d = (unsigned)(unsigned char)p[1] - '0') > 9) {
		*val = jf_decimal(a, neg, 0);	/* one digit */
		return p + 1;
	} else if (!a) {
		return NULL;	/* "01": a leading zero */
	} else {
		a = a * 10 + d;
		if (p[2] == '.') {
			p += 2;
		} else if ((d = (unsigned)(unsigned char)p[2] - '0') > 9) {
			*val = jf_decimal(a, neg, 0);
			return p + 2;
		} else {
			a = a * 10 + d;
			if (p[3] != '.') {
				if ((unsigned)(unsigned char)p[3] - '0' <= 9)
					return jf_swar_integer(p, end, neg, val);
				*val = jf_decimal(a, neg, 0);
				return p + 3;
			}
			p += 3;
		}
	}
	/* p at the point */
	if ((d = (unsigned)(unsigned char)p[1] - '0') > 9)
		return NULL;	/* "1.", "1.e3" */
	if (p[2] != ',' && (unsigned)(unsigned char)p[2] - '0' <= 9)
		return jf_swar_fraction(p + 1, end, a, neg, val);
	*val = jf_decimal(a * 10 + d, neg, 1);
	return p + 2;
}

/* The usual token at p, -?digits[.digits], p + 9 <= end (jf_word_digits,
 * one copy for each sign).  Past its digits, or NULL; the caller tests the
 * byte there for an exponent. */
static inline __attribute__((always_inline)) const char *jf_word_float(const char *p,
									 const char *end,
									 float *val)
{
	if (*p == '-')
		return jf_word_digits(p + 1, end, true, val);
	return jf_word_digits(p, end, false, val);
}

/*
 * The two shortest reals with the comma after them, "d.d," and "dd.d,"
 * (integral values as most clients print a float: "0.0", "12.0"), tested
 * by masks on the word at p (p + 8 <= end): past the comma, or NULL.
 */
static inline __attribute__((always_inline)) const char *jf_short_comma(const char *p,
									 float *val)
{
	uint64_t x = swar_load(p);
	uint32_t w = (uint32_t)x, m;

	if ((w & 0xfff0fff0u) == 0x2c302e30u && ((w + 0x00060006u) & 0x00f000f0u) == 0x00300030u) {
		m = ((w & 0x000f000fu) * 0x000a0001u) >> 16;	/* d0 x 10 + d2 */
		*val = jf_decimal(m, false, 1);
		return p + 4;
	}
	if ((x & 0xfff0fff0f0ull) == 0x2c302e3030ull &&
	    ((x + 0x06000606ull) & 0xf000f0f0ull) == 0x30003030ull && (x & 0xff) != '0') {
		m = (((uint32_t)x & 0x0f0fu) * 0x0a01u) >> 8 & 0xff;	/* d0 x 10 + d1 */
		*val = jf_decimal(m * 10 + (uint32_t)(x >> 24 & 0x0f), false, 1);
		return p + 5;
	}
	return NULL;
}

/*
 * Any JSON number at p, as jansson reads it: the grammar (jf_scan), then
 * an integer as a long long, a real by Clinger's fast path, by
 * jf_quick_float, or by strtod.  Past it, or NULL when it is no number or
 * jansson would reject it.
 */
static __attribute__((noinline)) const char *jf_general_float(const char *p, const char *end,
							       float *val)
{
	struct jf_num n;
	const char *q = jf_scan(p, end, &n);
	double d;

	if (!q)
		return NULL;
	if (!n.real) {
		/* jansson: an integer (long long; larger ones are an error) */
		long long v;

		if (n.digits > 18)
			return NULL;
		v = n.neg ? -(long long)n.mant : (long long)n.mant;
		*val = (float)(double)v;
	} else if (!n.lost && n.mant <= (1ULL << 53) && n.exp10 >= -22 && n.exp10 <= 22) {
		/* Clinger's fast path: mant and 10^|exp10| are exact doubles, so
		 * one multiplication or division is the correctly rounded
		 * double, strtod's own; then (float), as jansson's caller does. */
		static const double p10[23] = {
			1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
			1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
		};

		d = (double)n.mant;
		d = n.exp10 < 0 ? d / p10[-n.exp10] : d * p10[n.exp10];
		*val = (float)(n.neg ? -d : d);
	} else if (!jf_quick_float(&n, val)) {
		if (!jf_strtod(p, q, &d))
			return NULL;
		*val = (float)d;
	}
	return q;
}

/*
 * The number at p, by the cheapest reader that takes it: the word's
 * (p < lim, lim = end - 8 or less: nine bytes ahead), the byte-wise one
 * (p < stop, stop as jf_stop finds it), else the general one.  Past it,
 * or NULL (jfast_float).
 */
static __attribute__((noinline)) const char *jf_token(const char *p, const char *stop,
						       const char *lim, const char *end, float *val)
{
	const char *q;

	if (p < lim && (q = jf_word_float(p, end, val)) && (*q | 0x20) != 'e')
		return q;	/* an exponent after the digits: not the word's token */
	if (p < stop && (q = jf_usual_float(p, stop, val)))
		return q;
	return jf_general_float(p, end, val);
}

bool jfast_float(const char **pp, const char *end, float *val)
{
	const char *q = jf_token(*pp, jf_stop(*pp, end), end - *pp > 8 ? end - 8 : *pp, end, val);

	if (!q)
		return false;
	*pp = q;
	return true;
}

static const char *jf_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	return p;
}

/* Past the string that opens at *p == '"', or NULL when it does not end. */
static const char *jf_skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '"')
			return p + 1;
		if (*p == '\\' && ++p == end)
			return NULL;	/* the escaped byte is skipped by p++ */
	}
	return NULL;
}

/*
 * Past the value at p (not validated: jansson checks what the caller
 * keeps), or NULL when it runs off the end.  Lists and objects by bracket
 * depth (strings skipped whole, so brackets in them do not count),
 * scalars up to the next delimiter.
 */
static const char *jf_skip_value(const char *p, const char *end)
{
	size_t depth = 0;

	if (p < end && *p == '"')
		return jf_skip_string(p, end);
	if (p < end && *p != '[' && *p != '{') {
		while (p < end && !strchr(",]} \t\r\n", *p))
			p++;
		return p;
	}
	while (p < end) {
		if (*p == '"') {
			p = jf_skip_string(p, end);
			if (!p)
				return NULL;
			continue;
		}
		if (*p == '[' || *p == '{')
			depth++;
		else if ((*p == ']' || *p == '}') && --depth == 0)
			return p + 1;
		p++;
	}
	return NULL;
}

/* The flat list of numbers whose '[' is at p, into out; past its ']', or NULL. */
static const char *jf_read_list(const char *json, const char *p, const char *end,
				struct jfast_list *out)
{
	size_t cap;

	out->begin = (size_t)(p + 1 - json);
	p = jf_ws(p + 1, end);
	/* Every number takes at least 2 bytes with its comma. */
	cap = (size_t)(end - p) / 2 + 1;
	out->vals = inbuf_alloc(cap);
	if (!out->vals)
		return NULL;
	while (p < end && *p != ']') {
		if (out->n == cap || !jfast_float(&p, end, &out->vals[out->n]))
			return NULL;
		out->n++;
		p = jf_ws(p, end);
		if (p < end && *p == ',') {
			p = jf_ws(p + 1, end);
			if (p < end && *p == ']')
				return NULL;	/* a trailing comma: jansson's error */
		} else if (p >= end || *p != ']') {
			return NULL;
		}
	}
	if (p >= end)
		return NULL;
	out->end = (size_t)(p - json);
	return p + 1;
}

/*
 * The members of the object whose '{' is at p: on each key the caller
 * cares about (its raw bytes, escapes not decoded, so "d\u0061ta" is not
 * "data"), on(ctx, key, klen, value, end) reads the value and returns past
 * it, or NULL to decline.  Others are skipped.  Past the '}', or NULL.
 */
typedef const char *(*jf_member_fn)(void *ctx, const char *key, size_t klen, const char *v,
				    const char *end);

static const char *jf_object(const char *p, const char *end, jf_member_fn on, void *ctx)
{
	p = jf_ws(p + 1, end);
	if (p < end && *p == '}')
		return p + 1;
	while (p < end && *p == '"') {
		const char *key = p + 1, *q = jf_skip_string(p, end);

		if (!q)
			return NULL;
		p = jf_ws(q, end);
		if (p >= end || *p != ':')
			return NULL;
		p = jf_ws(p + 1, end);
		p = on(ctx, key, (size_t)(q - 1 - key), p, end);
		if (!p)
			return NULL;
		p = jf_ws(p, end);
		if (p < end && *p == '}')
			return p + 1;
		if (p >= end || *p != ',')
			return NULL;
		p = jf_ws(p + 1, end);
	}
	return NULL;
}

struct jf_walk {
	const char *json;
	struct jfast_list *out;
	bool found;
};

/* A member of inputs[0]: its "data" list is the one to read. */
static const char *jf_on_input(void *ctx, const char *key, size_t klen, const char *v,
			       const char *end)
{
	struct jf_walk *w = ctx;

	if (!util_streqn("data", key, klen) || v >= end || *v != '[')
		return jf_skip_value(v, end);
	if (w->found)
		return NULL;	/* "data" twice: jansson's error */
	w->found = true;
	return jf_read_list(w->json, v, end, w->out);
}

/* A member of the root: "inputs", a list whose first element is an object. */
static const char *jf_on_root(void *ctx, const char *key, size_t klen, const char *v,
			      const char *end)
{
	const char *p;

	if (!util_streqn("inputs", key, klen) || v >= end || *v != '[')
		return jf_skip_value(v, end);
	p = jf_ws(v + 1, end);
	if (p < end && *p == '{')
		p = jf_object(p, end, jf_on_input, ctx);
	else if (p < end && *p != ']')
		p = jf_skip_value(p, end);
	/* The other inputs (the model takes one; the caller says so). */
	while (p && (p = jf_ws(p, end)) < end && *p == ',')
		p = jf_skip_value(jf_ws(p + 1, end), end);
	return p && p < end && *p == ']' ? p + 1 : NULL;
}

bool jfast_input_data(const char *json, size_t len, struct jfast_list *out)
{
	struct jf_walk w = { .json = json, .out = out };
	const char *end = json + len, *p = jf_ws(json, end);

	memset(out, 0, sizeof(*out));
	if (p < end && *p == '{')
		p = jf_object(p, end, jf_on_root, &w);
	else
		p = NULL;
	if (p && w.found && jf_ws(p, end) == end)
		return true;
	inbuf_free(out->vals);
	memset(out, 0, sizeof(*out));
	return false;
}

/*
 * Output: a float as printf's "%.9g" writes it, without printf.  printf
 * formats through a generic multi-precision path (~2,500 instructions a
 * value); here the value is scaled into [1e8, 1e9) in double arithmetic
 * and rounded to nine digits.  The scaling errs by at most ~2 double ulps
 * (~3e-7 at 1e9), so the rounding is the exact one unless the scaled value
 * lies within 1e-6 of a .5 boundary: those rare values (and ties) go to
 * snprintf, so the text is always the same as "%.9g" and round-trips.
 */
/* 10^-30 .. 10^53: every power the scaling of a finite float32 needs. */
static const double jf_p10[] = { 1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25, 1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17, 1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23, 1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31, 1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39, 1e40, 1e41, 1e42, 1e43, 1e44, 1e45, 1e46, 1e47, 1e48, 1e49, 1e50, 1e51, 1e52, 1e53 };
#define JF_P10(i) jf_p10[(i) + 30]

/* d (a float32 widened, > 0) times 10^(8 - k), in as few roundings as the
 * exact powers (<= 10^22) allow. */
static double jf_scale(double d, int k)
{
	int j = 8 - k;

	if (j >= 0 && j <= 22)
		return d * JF_P10(j);
	if (j < 0 && j >= -22)
		return d / JF_P10(-j);
	if (j > 22)
		return d * 1e22 * JF_P10(j - 22);
	return d / JF_P10(-j);
}

/* floor(log10(2^x)) for |x| < 1000 (1233 / 4096 ~ log10(2) within 5e-6;
 * the caller corrects an estimate off by one anyway). */
static int jf_log10_pow2(int x)
{
	return (x * 1233) >> 12;	/* arithmetic shift: floors negatives too */
}

/* Nine significant digits of d (> 0, a float32 widened): *n in [1e8, 1e9)
 * and the decimal exponent of its first digit.  false: too close to a
 * rounding boundary. */
static bool jf_nine_digits(double d, uint32_t *n, int *k10)
{
	uint64_t bits;
	int e2, k;
	double s, fl;

	memcpy(&bits, &d, sizeof(bits));
	e2 = (int)(bits >> 52 & 0x7ff) - 1022;	/* frexp's exponent: d is a normal double */
	k = jf_log10_pow2(e2 - 1);
	for (int tries = 0; tries < 3; tries++) {
		if (k < -45 || k > 38)
			return false;
		s = jf_scale(d, k);
		if (s < 99999999.5) {
			k--;
			continue;
		}
		if (s >= 999999999.5) {
			k++;
			continue;
		}
		fl = (double)(uint32_t)s;	/* floor: s > 0 */
		if (fabs(s - fl - 0.5) < 1e-6)
			return false;
		*n = (uint32_t)fl + (s - fl > 0.5);
		*k10 = k;
		return true;
	}
	return false;
}

/*
 * jf_nine_digits for the usual normal float f = d (> 0) of 1e-14 .. 1e30,
 * in one rounding: its decimal exponent k from the binary one (the
 * estimate floor(e log10 2) is k or k - 1: one compare with 10^(k+1)
 * tells which), then d x 10^(8 - k) by an exact power (|8 - k| <= 22),
 * which errs by at most half an ulp of 2^30 (6e-8), rounded to the nearest
 * integer by adding and taking away 2^52.  false: outside that range, the
 * compare misled by an inexact 10^(k+1) (n outside [1e8, 1e9)), or within
 * 1e-6 of a .5 boundary: jf_nine_digits decides.
 */
static inline bool jf_nine_fast(double d, uint32_t fbits, uint32_t *n, int *k10)
{
	int k = (((int)(fbits >> 23 & 0xff) - 127) * 1233) >> 12;	/* f in [2^e, 2^(e+1)) */
	double s, r;
	uint64_t i;

	if (k < -15 || k > 29)
		return false;
	k += d >= JF_P10(k + 1);
	s = k <= 8 ? d * JF_P10(8 - k) : d / JF_P10(k - 8);
	r = s + 0x1p52 - 0x1p52;	/* s < 2^34: to the nearest integer */
	i = (uint64_t)(int64_t)r;
	if (fabs(s - r) > 0.5 - 1e-6 || i - 100000000 >= 900000000)
		return false;
	*n = (uint32_t)i;
	*k10 = k;
	return true;
}

/*
 * n (< 10^8) as eight decimal digits, the first in the lowest byte (the
 * first in memory), each byte 0..9: both halves of four digits, then each
 * pair of digits, split in parallel lanes by multiplying with reciprocals
 * (exact in these ranges: x * 10486 >> 20 is x / 100 for x < 43,699,
 * x * 103 >> 10 is x / 10 for x < 179), no lane spilling into the next.
 */
static uint64_t jf_eight_digits(uint32_t n)
{
	uint64_t x = n / 10000 | (uint64_t)(n % 10000) << 32;	/* two 4-digit lanes */
	uint64_t h = (x * 10486 >> 20) & 0x0000007f0000007full;	/* their first pairs */

	x = h | (x - h * 100) << 16;				/* four 2-digit lanes */
	h = (x * 103 >> 10) & 0x000f000f000f000full;		/* their first digits */
	return h | (x - h * 10) << 8;
}

int jfast_put_float(char *buf, float v)
{
	char dig[17], *p = buf, first;
	double d = (double)v;
	uint64_t digits;
	uint32_t n, bits;
	int k, nd;

	memcpy(&bits, &v, sizeof(bits));
	if (bits >> 31) {
		*p++ = '-';
		d = -d;
	}
	if ((bits >> 23 & 0xff) - 1 >= 0xfe) {	/* not normal */
		if (d == 0) {
			*p++ = '0';
			*p = 0;
			return (int)(p - buf);
		}
		if (!isfinite(d))
			return snprintf(buf, JFAST_FLOAT_MAX, "%.9g", (double)v);
	}
	if (!jf_nine_fast(d, bits, &n, &k) && !jf_nine_digits(d, &n, &k))
		return snprintf(buf, JFAST_FLOAT_MAX, "%.9g", (double)v);
	/* n = d0 d1..d8: the first digit, then eight in one word, whose top
	 * zero bytes are the trailing zeros %g drops */
	first = (char)('0' + n / 100000000);
	digits = jf_eight_digits(n % 100000000);
	nd = digits ? 9 - (int)((unsigned)__builtin_clzll(digits) / 8) : 1;
	digits += SWAR_ONES * '0';
	/* Stores of fixed sizes (no libc call): buf has room past the text;
	 * only the counted bytes are kept. */
	if (k < 0 && k >= -4) {		/* %g's fixed style below 1 */
		memcpy(p, "0.000", 5);	/* "0." and -k - 1 zeros */
		p += 1 - k;
		*p = first;
		swar_store(p + 1, digits);
		p += nd;
	} else if (k > 0 && k < 9) {	/* fixed, the integer part dig[0..k] */
		dig[0] = first;
		swar_store(dig + 1, digits);
		swar_store(dig + 9, 0);
		memcpy(p, dig, 9);
		p += k + 1;
		if (nd > k + 1) {
			*p++ = '.';
			memcpy(p, dig + k + 1, 8);
			p += nd - k - 1;
		}
	} else {			/* d[.ddd], then e±XX unless k is 0 */
		int ek = k < 0 ? -k : k;

		*p++ = first;
		if (nd > 1) {
			*p++ = '.';
			swar_store(p, digits);
			p += nd - 1;
		}
		if (k) {
			*p++ = 'e';
			*p++ = k < 0 ? '-' : '+';
			if (ek >= 100)
				*p++ = (char)('0' + ek / 100);
			*p++ = (char)('0' + ek / 10 % 10);
			*p++ = (char)('0' + ek % 10);
		}
	}
	*p = 0;
	return (int)(p - buf);
}

/*
 * The small rest of a request as a jansson tree, without jansson's lexer
 * (which reads a byte at a time through a stream, ~150 instructions a
 * byte).  Only a subset whose tree is certain to be jansson's is taken:
 * printable ASCII strings without escapes, strict JSON numbers (integers
 * of up to 18 digits, finite reals), literals, nesting up to JT_DEPTH, no
 * duplicate key.  Anything else declines and jansson reads the text.
 */
#define JT_DEPTH 32

struct jt {
	const char *json, *end;
	size_t skip_begin, skip_end;
};

static json_t *jt_value(struct jt *t, const char **pp, int depth);

/* The bytes a string in the subset holds: printable ASCII but '"' and '\\'. */
static const bool jt_plain[256] = {
	[0x20] = true, [0x21] = true, [0x23 ... 0x5b] = true, [0x5d ... 0x7e] = true,
};

/* A string's contents [*s, *s + *n) after its '"'; the byte past the
 * closing quote, or NULL (outside the subset). */
static const char *jt_string(const char *p, const char *end, const char **s, size_t *n)
{
	const char *q = ++p;

	while (q < end && jt_plain[(unsigned char)*q])
		q++;
	if (q < end && *q != '"')
		return NULL;	/* an escape, a control or non-ASCII byte */
	if (q >= end)
		return NULL;
	*s = p;
	*n = (size_t)(q - p);
	return q + 1;
}

static json_t *jt_number(const char **pp, const char *end)
{
	const char *p = *pp, *start = p;
	bool real = false;
	char buf[64];
	json_t *v;

	if (p < end && *p == '-')
		p++;
	if (p >= end || !jf_digit(*p))
		return NULL;
	if (*p == '0')
		p++;
	else
		while (p < end && jf_digit(*p))
			p++;
	if (p < end && *p == '.') {
		real = true;
		if (++p >= end || !jf_digit(*p))
			return NULL;
		while (p < end && jf_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		real = true;
		if (++p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || !jf_digit(*p))
			return NULL;
		while (p < end && jf_digit(*p))
			p++;
	}
	if ((size_t)(p - start) >= sizeof(buf) || (!real && p - start > 18))
		return NULL;
	memcpy(buf, start, (size_t)(p - start));
	buf[p - start] = 0;
	if (real) {
		double d = strtod(buf, NULL);

		if (!isfinite(d))
			return NULL;
		v = json_real(d);
	} else {
		v = json_integer(strtoll(buf, NULL, 10));
	}
	if (v)
		*pp = p;
	return v;
}

static json_t *jt_object(struct jt *t, const char **pp, int depth)
{
	const char *p = jf_ws(*pp + 1, t->end);
	json_t *obj = json_object();

	if (!obj)
		return NULL;
	if (p < t->end && *p == '}') {
		*pp = p + 1;
		return obj;
	}
	for (;;) {
		const char *key;
		size_t klen;
		json_t *v;

		if (p >= t->end || *p != '"' || !(p = jt_string(p, t->end, &key, &klen)))
			goto fail;
		p = jf_ws(p, t->end);
		if (p >= t->end || *p != ':')
			goto fail;
		p = jf_ws(p + 1, t->end);
		if (json_object_getn(obj, key, klen))
			goto fail;	/* jansson names the duplicate */
		v = jt_value(t, &p, depth + 1);
		if (!v || json_object_setn_new_nocheck(obj, key, klen, v))
			goto fail;
		p = jf_ws(p, t->end);
		if (p < t->end && *p == ',') {
			p = jf_ws(p + 1, t->end);
			continue;
		}
		if (p < t->end && *p == '}') {
			*pp = p + 1;
			return obj;
		}
		goto fail;
	}
fail:
	json_decref(obj);
	return NULL;
}

static json_t *jt_array(struct jt *t, const char **pp, int depth)
{
	const char *p = *pp + 1;
	json_t *arr = json_array();

	if (!arr)
		return NULL;
	if ((size_t)(p - t->json) == t->skip_begin)
		p = t->json + t->skip_end;	/* the list the caller took */
	p = jf_ws(p, t->end);
	if (p < t->end && *p == ']') {
		*pp = p + 1;
		return arr;
	}
	for (;;) {
		json_t *v = jt_value(t, &p, depth + 1);

		if (!v || json_array_append_new(arr, v))
			goto fail;
		p = jf_ws(p, t->end);
		if (p < t->end && *p == ',') {
			p = jf_ws(p + 1, t->end);
			continue;
		}
		if (p < t->end && *p == ']') {
			*pp = p + 1;
			return arr;
		}
		goto fail;
	}
fail:
	json_decref(arr);
	return NULL;
}

static bool jt_literal(const char **pp, const char *end, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(end - *pp) < n || memcmp(*pp, word, n) != 0)
		return false;
	*pp += n;
	return true;
}

/* The value at *pp (no leading whitespace); *pp past it.  NULL: declined. */
static json_t *jt_value(struct jt *t, const char **pp, int depth)
{
	const char *p = *pp, *s;
	size_t n;
	json_t *v;

	if (p >= t->end || depth > JT_DEPTH)
		return NULL;
	switch (*p) {
	case '{':
		return jt_object(t, pp, depth);
	case '[':
		return jt_array(t, pp, depth);
	case '"':
		p = jt_string(p, t->end, &s, &n);
		v = p ? json_stringn_nocheck(s, n) : NULL;
		if (v)
			*pp = p;
		return v;
	case 't':
		return jt_literal(pp, t->end, "true") ? json_true() : NULL;
	case 'f':
		return jt_literal(pp, t->end, "false") ? json_false() : NULL;
	case 'n':
		return jt_literal(pp, t->end, "null") ? json_null() : NULL;
	default:
		return jt_number(pp, t->end);
	}
}

json_t *jfast_tree(const char *json, size_t len, size_t skip_begin, size_t skip_end)
{
	struct jt t = { json, json + len, skip_begin, skip_end };
	const char *p = jf_ws(json, t.end);
	json_t *root;

	if (p >= t.end || *p != '{')
		return NULL;
	root = jt_object(&t, &p, 1);
	if (root && jf_ws(p, t.end) != t.end) {
		json_decref(root);
		return NULL;
	}
	return root;
}

/*
 * jfast_read: the whole of a plain request in one walk, no tree.  A cursor
 * over the text; every helper returns false to decline (the caller then
 * reads the body the general way, which also names any error).
 */
struct jr {
	const char *p, *end;
	struct jfast_req *r;
};

/* The byte at the cursor after whitespace, 0 at the end. */
static inline char jr_peek(struct jr *t)
{
	if (t->p < t->end && (unsigned char)*t->p > ' ')
		return *t->p;	/* no whitespace: compact JSON */
	t->p = jf_ws(t->p, t->end);
	return t->p < t->end ? *t->p : 0;
}

static bool jr_eat(struct jr *t, char c)
{
	if (jr_peek(t) != c)
		return false;
	t->p++;
	return true;
}

/* A string in jfast_tree's subset (printable ASCII, no escapes). */
static bool jr_str(struct jr *t, struct jfast_str *s)
{
	const char *q;

	if (jr_peek(t) != '"' || !(q = jt_string(t->p, t->end, &s->s, &s->len)))
		return false;
	t->p = q;
	return true;
}

/* A non-negative JSON integer of at most 18 digits (what jansson reads
 * as a long long whatever the platform). */
static bool jr_uint(struct jr *t, long long *v)
{
	const char *p, *s;
	uint64_t x = 0;	/* wraps harmlessly past 19 digits: then declined */

	if (!jf_digit(jr_peek(t)))
		return false;
	for (s = p = t->p; p < t->end && jf_digit(*p); p++)
		x = x * 10 + (uint64_t)(*p - '0');
	if (p - s > 18 || (p - s > 1 && *s == '0') ||
	    (p < t->end && (*p == '.' || *p == 'e' || *p == 'E')))
		return false;
	*v = (long long)x;
	t->p = p;
	return true;
}

static bool jr_bool(struct jr *t, bool *v)
{
	jr_peek(t);
	if (jt_literal(&t->p, t->end, "true"))
		*v = true;
	else if (jt_literal(&t->p, t->end, "false"))
		*v = false;
	else
		return false;
	return true;
}

/*
 * The object at the cursor whose keys are all among keys[0..nkeys), none
 * twice (jansson rejects a duplicate): on(t, i) reads the value of
 * keys[i].  Any other key declines (its value is not validated here).
 */
typedef bool (*jr_member_fn)(struct jr *t, int key);

/* A key a reader knows, with its length (no strlen per comparison). */
struct jr_key {
	const char *s;
	size_t len;
};
#define JR_KEY(lit) { lit, sizeof(lit) - 1 }

static bool jr_object(struct jr *t, const struct jr_key *keys, int nkeys, jr_member_fn on)
{
	unsigned seen = 0;

	if (!jr_eat(t, '{'))
		return false;
	if (jr_eat(t, '}'))
		return true;
	do {
		const char *k;
		int i;

		if (jr_peek(t) != '"')
			return false;
		/* The key's bytes against each known key and its closing quote
		 * (a string that matches one is in jr_str's subset; any other
		 * declines): no scan of the key first.  The whole compare only
		 * for the key whose first byte matches. */
		for (k = t->p + 1, i = 0; i < nkeys; i++) {
			size_t len = keys[i].len;

			if ((size_t)(t->end - k) > len && k[0] == keys[i].s[0] && k[len] == '"' &&
			    swar_equal(k, keys[i].s, len))
				break;
		}
		if (i == nkeys)
			return false;
		t->p = k + keys[i].len + 1;
		if (!jr_eat(t, ':') || (seen & 1u << i) || !on(t, i))
			return false;
		seen |= 1u << i;
	} while (jr_eat(t, ','));
	return jr_eat(t, '}');
}

/* The list at the cursor, each element read by elem. */
typedef bool (*jr_elem_fn)(struct jr *t);

static bool jr_list(struct jr *t, jr_elem_fn elem)
{
	if (!jr_eat(t, '['))
		return false;
	if (jr_eat(t, ']'))
		return true;
	do {
		if (!elem(t))
			return false;
	} while (jr_eat(t, ','));
	return jr_eat(t, ']');
}

/* One of inputs[0].shape: a small non-negative integer. */
static bool jr_dim(struct jr *t)
{
	struct jfast_req *r = t->r;
	long long v;

	if (r->ndim == JFAST_MAX_DIMS || !jr_uint(t, &v))
		return false;
	r->dims[r->ndim++] = v;
	return true;
}

static bool jr_shape(struct jr *t)
{
	t->r->has_shape = true;
	return jr_list(t, jr_dim);
}

/* inputs[0].data: a flat list of numbers, as jf_read_list reads one. */
/*
 * Room for the data list: at most room values fit in the text (each takes
 * two bytes with its comma); a shape read before the list says how many
 * the request may hold, and a list longer than that is declined anyway
 * (the general path names the mismatch), so that is enough.
 */
static size_t jr_data_cap(const struct jfast_req *r, size_t room)
{
	uint64_t want = 1;

	if (!r->has_shape || r->ndim == 0)
		return room;
	for (int i = 0; i < r->ndim; i++) {
		if (r->dims[i] <= 0 || (uint64_t)r->dims[i] > room)
			return room;
		want *= (uint64_t)r->dims[i];
		if (want > room)
			return room;
	}
	return (size_t)want;
}

/* Whitespace, then the value at p by the byte-wise or the general reader
 * (the rare token, kept out of the list loop): past it, or NULL. */
static __attribute__((noinline)) const char *jf_rare_float(const char *p, const char *stop,
							    const char *end, float *val)
{
	const char *q;

	p = jf_ws(p, end);
	if (p < stop && (q = jf_usual_float(p, stop, val)))
		return q;
	return jf_general_float(p, end, val);
}

static bool jr_data(struct jr *t)
{
	struct jfast_req *r = t->r;
	const char *p, *q, *stop, *lim, *end = t->end;
	float *v, *vend;
	size_t cap;

	if (!jr_eat(t, '['))
		return false;
	cap = jr_data_cap(r, (size_t)(end - t->p) / 2 + 1);
	r->vals = v = inbuf_alloc(cap);
	if (!v)
		return false;
	vend = v + cap;
	if (jr_eat(t, ']'))
		return true;
	/* Locals only in the loop (no address taken: they stay in registers). */
	stop = jf_stop(t->p, end);
	lim = end - t->p > 8 ? end - 8 : t->p;	/* p < lim: p + 9 <= end */
	for (p = t->p;; p = q + 1) {
		/* the shortest reals with their commas, back to back */
		while (p < lim && v != vend && (q = jf_short_comma(p, v))) {
			v++;
			p = q;
		}
		if (v == vend)
			return false;
		if (p < lim && (q = jf_word_float(p, end, v))) {
			if (*q == ',') {	/* the usual separator */
				v++;
				continue;
			}
			if ((*q | 0x20) != 'e')
				goto next;
		}
		if (!(q = jf_rare_float(p, stop, end, v)) || !isfinite(*v))
			return false;	/* 1e39: Inf as a float, the general path names it */
next:
		v++;
		if (q == end || *q != ',') {	/* whitespace, or the list's end */
			q = jf_ws(q, end);
			if (q == end || *q != ',')
				break;
		}
	}
	r->n = (size_t)(v - r->vals);
	t->p = q;
	return jr_eat(t, ']');
}

static const struct jr_key jr_input_keys[] = {
	JR_KEY("name"), JR_KEY("shape"), JR_KEY("datatype"), JR_KEY("data"), JR_KEY("parameters"),
};

/* inputs[0].parameters of the binary tensor extension: binary_data_size. */
static const struct jr_key jr_input_param_keys[] = { JR_KEY("binary_data_size") };

static bool jr_on_input_param(struct jr *t, int key)
{
	(void)key;
	return (t->r->has_binary_size = jr_uint(t, &t->r->binary_size));
}

static bool jr_on_input(struct jr *t, int key)
{
	switch (key) {
	case 0:
		return jr_str(t, &t->r->name);
	case 1:
		return jr_shape(t);
	case 2:
		return jr_str(t, &t->r->datatype);
	case 3:
		return jr_data(t);	/* r->vals set even for [] */
	default:
		return jr_object(t, jr_input_param_keys, 1, jr_on_input_param);
	}
}

static const struct jr_key jr_param_keys[] = {
	JR_KEY("priority"), JR_KEY("timeout"), JR_KEY("binary_data_output"), JR_KEY("variant"),
};

static bool jr_on_param(struct jr *t, int key)
{
	struct jfast_req *r = t->r;

	switch (key) {
	case 0:
		return (r->has_priority = jr_uint(t, &r->priority));
	case 1:
		return (r->has_timeout = jr_uint(t, &r->timeout));
	case 2:
		return jr_bool(t, &r->binary_data_output);
	default:
		return jr_str(t, &r->variant);
	}
}

static const struct jr_key jr_out_param_keys[] = { JR_KEY("binary_data") };

static bool jr_on_out_param(struct jr *t, int key)
{
	struct jfast_req *r = t->r;

	bool b;

	(void)key;
	if (!jr_bool(t, &b))
		return false;
	r->out_binary[r->n_outputs] = b ? 2 : 1;
	return true;
}

static const struct jr_key jr_output_keys[] = { JR_KEY("name"), JR_KEY("parameters") };

static bool jr_on_output(struct jr *t, int key)
{
	struct jfast_req *r = t->r;

	if (key == 0)
		return jr_str(t, &r->out_name[r->n_outputs]);
	return jr_object(t, jr_out_param_keys, 1, jr_on_out_param);
}

/* One of outputs: {"name", "parameters": {"binary_data"}}. */
static bool jr_output(struct jr *t)
{
	struct jfast_req *r = t->r;

	if (r->n_outputs == JFAST_MAX_OUTPUTS || !jr_object(t, jr_output_keys, 2, jr_on_output))
		return false;
	r->n_outputs++;
	return true;
}

static bool jr_outputs(struct jr *t)
{
	t->r->has_outputs = true;
	return jr_list(t, jr_output);
}

static const struct jr_key jr_root_keys[] = {
	JR_KEY("id"), JR_KEY("inputs"), JR_KEY("parameters"), JR_KEY("outputs"),
};

static bool jr_on_root(struct jr *t, int key)
{
	switch (key) {
	case 0:
		return jr_str(t, &t->r->id);
	case 1:		/* exactly one input */
		t->r->has_input = true;
		return jr_eat(t, '[') && jr_object(t, jr_input_keys, 5, jr_on_input) &&
		       jr_eat(t, ']');
	case 2:
		return jr_object(t, jr_param_keys, 4, jr_on_param);
	default:
		return jr_outputs(t);
	}
}

bool jfast_read(const char *json, size_t len, struct jfast_req *r)
{
	struct jr t = { json, json + len, r };

	memset(r, 0, sizeof(*r));
	if (jr_object(&t, jr_root_keys, 4, jr_on_root) && jr_peek(&t) == 0 && t.p == t.end)
		return true;
	inbuf_free(r->vals);
	memset(r, 0, sizeof(*r));
	return false;
}
