/* bench_util.h - small helpers shared by the C benchmark tools
 * (bench/kernel.c, bench/int8.c, bench/sim/cpu_profile.c).  Each tool
 * exits on the first error: they measure, they do not recover. */
#ifndef INFERGW_BENCH_UTIL_H
#define INFERGW_BENCH_UTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MAX_SLICES 256

/* BENCH_DNNL_CHECK - a oneDNN call that must succeed (the caller includes
 * dnnl.h and dnnl_debug.h): else the call, its status and exit(1). */
#define BENCH_DNNL_CHECK(x)                                                            \
	do {                                                                           \
		dnnl_status_t st_ = (x);                                               \
		if (st_ != dnnl_success) {                                             \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #x,      \
				dnnl_status2str(st_));                                 \
			exit(1);                                                       \
		}                                                                      \
	} while (0)

/* bench_now_s - CLOCK_MONOTONIC in seconds. */
static inline double bench_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* bench_xalloc - bytes of zeroed, 64-byte aligned memory (free()); exits
 * when there is none. */
static inline void *bench_xalloc(size_t bytes)
{
	void *p = aligned_alloc(64, (bytes + 63) / 64 * 64);

	if (!p) {
		fprintf(stderr, "bench: out of memory (%zu bytes)\n", bytes);
		exit(1);
	}
	memset(p, 0, bytes);
	return p;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* bench_median - the median of v[0..n), n <= BENCH_MAX_SLICES (v untouched). */
static inline double bench_median(const double *v, int n)
{
	double tmp[BENCH_MAX_SLICES];

	memcpy(tmp, v, sizeof(double) * n);
	qsort(tmp, n, sizeof(double), bench_cmp_double);
	return n % 2 ? tmp[n / 2] : 0.5 * (tmp[n / 2 - 1] + tmp[n / 2]);
}

/* bench_ratio_median - the median over r < n of a[r] / b[r]: paired ratios
 * of slices that ran next to each other (n <= BENCH_MAX_SLICES). */
static inline double bench_ratio_median(const double *a, const double *b, int n)
{
	double q[BENCH_MAX_SLICES];

	for (int r = 0; r < n; r++)
		q[r] = a[r] / b[r];
	return bench_median(q, n);
}

/* bench_maxof - the largest of v[0..n) (0 when n is 0). */
static inline double bench_maxof(const double *v, int n)
{
	double m = 0;

	while (n--)
		m = fmax(m, v[n]);
	return m;
}

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
