/* util.h - tiny helpers shared by every module. */
#ifndef INFERGW_UTIL_H
#define INFERGW_UTIL_H

#include <stdint.h>
#include <time.h>

/* Monotonic clock in nanoseconds.  Only I/O modules read the clock; the
 * router and batcher take time as an argument. */
static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
