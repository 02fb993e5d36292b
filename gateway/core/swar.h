/*
 * swar.h - eight bytes at a time in a uint64_t (SIMD within a register),
 * for the byte-class checks of the header paths (h2check.c, call.c,
 * h1parse.c) and the JSON codec, and the short compares and copies of the
 * request path (swar_equal, swar_copy).
 * Header only; loads and stores through memcpy (any alignment).
 */
#ifndef INFERGW_SWAR_H
#define INFERGW_SWAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SWAR_ONES 0x0101010101010101ull	/* 0x01 in every byte */
#define SWAR_HIGHS (SWAR_ONES << 7)	/* each byte's top bit */
#define SWAR_LOW7 (SWAR_ONES * 0x7f)	/* each byte's low seven bits */

static inline uint64_t swar_load(const void *p)
{
	uint64_t x;

	memcpy(&x, p, 8);
	return x;
}

static inline void swar_store(void *p, uint64_t x)
{
	memcpy(p, &x, 8);
}

/*
 * swar_equal - whether the n bytes at a and at b are equal.  Up to 16
 * bytes (JSON keys, header fields) by two loads a side that overlap when
 * n is not a power of two, no call and no loop; memcmp beyond.  Reads only
 * a[0..n) and b[0..n).
 */
static inline bool swar_equal(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	uint32_t x0, x1, y0, y1;

	if (n > 16)
		return !memcmp(a, b, n);
	if (n >= 8)
		return !((swar_load(x) ^ swar_load(y)) | (swar_load(x + n - 8) ^ swar_load(y + n - 8)));
	if (n >= 4) {
		memcpy(&x0, x, 4);
		memcpy(&x1, x + n - 4, 4);
		memcpy(&y0, y, 4);
		memcpy(&y1, y + n - 4, 4);
		return !((x0 ^ y0) | (x1 ^ y1));
	}
	/* 0..3 bytes: the first, middle and last cover them all */
	return !n || (x[0] == y[0] && x[n / 2] == y[n / 2] && x[n - 1] == y[n - 1]);
}

/*
 * swar_copy - memcpy of n bytes between blocks that do not overlap.  Up to
 * 32 bytes (header names and values, paths) by words that overlap when n
 * is not a power of two, no call and no loop; memcpy beyond.  Touches only
 * src[0..n) and dst[0..n).
 */
static inline void swar_copy(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;
	uint32_t a, b;

	if (n > 32) {
		memcpy(dst, src, n);
	} else if (n > 16) {
		uint64_t w0 = swar_load(s), w1 = swar_load(s + 8);
		uint64_t w2 = swar_load(s + n - 16), w3 = swar_load(s + n - 8);

		swar_store(d, w0);
		swar_store(d + 8, w1);
		swar_store(d + n - 16, w2);
		swar_store(d + n - 8, w3);
	} else if (n >= 8) {
		uint64_t w0 = swar_load(s), w1 = swar_load(s + n - 8);

		swar_store(d, w0);
		swar_store(d + n - 8, w1);
	} else if (n >= 4) {
		memcpy(&a, s, 4);
		memcpy(&b, s + n - 4, 4);
		memcpy(d, &a, 4);
		memcpy(d + n - 4, &b, 4);
	} else if (n) {
		/* 1..3 bytes: the first, middle and last cover them all */
		unsigned char x = s[0], y = s[n / 2], z = s[n - 1];

		d[0] = x;
		d[n / 2] = y;
		d[n - 1] = z;
	}
}

/*
 * swar_in_range - the top bit of each byte of x that is lo..hi, the other
 * bits clear.  Exact for bytes with their top bit clear (the sums then
 * carry into no other byte); callers mask or refuse the others.
 */
static inline uint64_t swar_in_range(uint64_t x, uint8_t lo, uint8_t hi)
{
	uint64_t ge = x + SWAR_ONES * (uint8_t)(0x80 - lo);
	uint64_t gt = x + SWAR_ONES * (uint8_t)(0x80 - hi - 1);

	return ge & ~gt & SWAR_HIGHS;
}

/*
 * The first-byte finders: x's bytes flagged in their top bit, exactly up
 * to and including the first (lowest) flagged byte; bits above it may be
 * set wrongly (a borrow from the flagged byte), so callers read only the
 * first's position (swar_first).
 */

/* swar_first - the index (0..7) of the first byte flagged in m (non-zero):
 * the lowest in memory, the low byte on a little-endian host. */
static inline unsigned swar_first(uint64_t m)
{
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "swar_first: little-endian hosts only (x86-64, aarch64)"
#endif
	return (unsigned)__builtin_ctzll(m) >> 3;
}

/* swar_eq_first - bytes equal to ch. */
static inline uint64_t swar_eq_first(uint64_t x, uint8_t ch)
{
	uint64_t y = x ^ SWAR_ONES * ch;

	return (y - SWAR_ONES) & ~y & SWAR_HIGHS;
}

/* swar_below_first - bytes below lo (at most 128), or DEL (0x7f): with
 * lo 0x20, the control bytes. */
static inline uint64_t swar_below_first(uint64_t x, uint8_t lo)
{
	uint64_t d = x ^ SWAR_LOW7;	/* DEL -> 0; its top bit is x's */

	return ((x - SWAR_ONES * lo) | (d - SWAR_ONES)) & ~x & SWAR_HIGHS;
}

/* swar_nonvis_first - bytes that are not visible ASCII (0x21..0x7e): SP,
 * controls, DEL and everything from 0x80. */
static inline uint64_t swar_nonvis_first(uint64_t x)
{
	return (((x - SWAR_ONES * 0x21) & ~x) | x | (x + SWAR_ONES)) & SWAR_HIGHS;
}

#endif
