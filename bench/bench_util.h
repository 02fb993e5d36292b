/* bench_util.h - small helpers shared by the C benchmark tools
 * (bench/kernel.c, bench/sim/cpu_profile.c). */
#ifndef INFERGW_BENCH_UTIL_H
#define INFERGW_BENCH_UTIL_H

#include <stdlib.h>
#include <string.h>

/* "1,8,64" -> out[0..]; returns how many (at most max). */
static inline int bench_parse_list(const char *s, int *out, int max)
{
	int n = 0;

	while (*s && n < max) {
		out[n++] = atoi(s);
		s = strchr(s, ',');
		if (!s)
			break;
		s++;
	}
	return n;
}

#endif
