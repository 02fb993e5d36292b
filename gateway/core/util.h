/* util.h - tiny helpers shared by every module. */
#ifndef INFERGW_UTIL_H
#define INFERGW_UTIL_H

#include <stdint.h>

#include "backend.h"	/* be_now_ns */

/* Monotonic clock in nanoseconds: the backend contract's.  Only I/O modules
 * read the clock; the router and batcher take time as an argument. */
static inline uint64_t now_ns(void)
{
	return be_now_ns();
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* v in decimal, written backwards from end (room for 20 digits before it,
 * not NUL-terminated); where it starts.  snprintf's "%llu" without its
 * ~600 instructions, for a value on every answer. */
static inline char *util_utoa(char *end, unsigned long long v)
{
	char *p = end;

	do
		*--p = (char)('0' + v % 10);
	while (v /= 10);
	return p;
}

/*
 * UTIL_RECYCLE: 1 when freed objects may be kept for reuse (the per-loop
 * call free list, the JSON parse arena); 0 in sanitizer builds, where every
 * object is really freed so that a use after free is the sanitizer's report,
 * not a quiet read of a recycled object.  The Makefile defines
 * INFERGW_NO_RECYCLE for SANITIZE=1 and TSAN=1; any ASan build implies it.
 */
#if !defined(INFERGW_NO_RECYCLE) && defined(__SANITIZE_ADDRESS__)
#define INFERGW_NO_RECYCLE 1
#endif
#if !defined(INFERGW_NO_RECYCLE) && defined(__has_feature)
#if __has_feature(address_sanitizer)
#define INFERGW_NO_RECYCLE 1
#endif
#endif
#ifdef INFERGW_NO_RECYCLE
#define UTIL_RECYCLE 0
#else
#define UTIL_RECYCLE 1
#endif

#endif
