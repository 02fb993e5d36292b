/*
 * swar.h - eight bytes at a time in a uint64_t (SIMD within a register),
 * for the byte-class checks of the header paths (h2check.c, call.c,
 * h1parse.c) and the JSON codec.
 * Header only; loads and stores through memcpy (any alignment).
 */
#ifndef INFERGW_SWAR_H
#define INFERGW_SWAR_H

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
