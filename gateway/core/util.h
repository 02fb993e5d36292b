/* util.h - tiny helpers shared by every module. */
#ifndef INFERGW_UTIL_H
#define INFERGW_UTIL_H

#include <stdbool.h>
#include <stddef.h>
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
 * Compares of short C strings inline, for the per-request paths (routes,
 * methods, header values, model and tensor names: a few to a few dozen
 * bytes).  At these sizes a libc strcmp / strncmp / strncasecmp call costs
 * ~20 cycles of call, dispatch and tail handling (perf: ~9% of a digits
 * request's cycles went to ~30 such calls); these loops stop at the first
 * difference and read no byte past it or past either string's end.
 */

/* util_streq - whether the C strings a and b are equal. */
static inline bool util_streq(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

/* util_prefix - past the C string pre at the start of the C string s, or
 * NULL when s does not start with it. */
static inline const char *util_prefix(const char *s, const char *pre)
{
	for (; *pre; s++, pre++)
		if (*s != *pre)
			return NULL;
	return s;
}

/* util_streqn - whether the C string s is exactly the n bytes at p (which
 * may hold anything, NULs included: then never equal). */
static inline bool util_streqn(const char *s, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!s[i] || s[i] != p[i])
			return false;
	return !s[n];
}

/* ASCII lower case of c; other bytes as they are. */
static inline char util_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

/* util_prefix_ci - util_prefix in any ASCII case; pre is lower case. */
static inline const char *util_prefix_ci(const char *s, const char *pre)
{
	for (; *pre; s++, pre++)
		if (util_lower(*s) != *pre)
			return NULL;	/* s's NUL never equals a byte of pre */
	return s;
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
