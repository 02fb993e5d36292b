/*
 * swar.h - eight bytes at a time in a uint64_t (SIMD within a register),
 * for the byte-class checks of the header paths (h2check.c, call.c).
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

#endif
