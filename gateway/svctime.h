/*
 * svctime.h - learned service time of one (backend, model): how long a
 * batch of n rows takes to execute.  Pure logic.
 *
 * Backends pad batches to power-of-two buckets (the CPU backend has one
 * primitive per bucket), so time is learned per bucket as an exponentially
 * weighted moving average.  A bucket never seen is interpolated between the
 * nearest seen buckets on either side; beyond the seen range it follows the
 * warm start's shape (config or calibration) scaled to the nearest seen
 * bucket; with nothing seen it is the warm start.
 */
#ifndef INFERGW_SVCTIME_H
#define INFERGW_SVCTIME_H

#include <stdint.h>

#define SVC_BUCKETS 16		/* 1, 2, 4, ... 32768 rows */

struct svc_model {
	double a_ns, b_ns;		/* warm start: t(n) = a + b*n */
	double alpha;			/* EWMA weight of a new sample */
	double ewma[SVC_BUCKETS];
	uint32_t seen[SVC_BUCKETS];
};

/* svc_init - warm start t(n) = a_ns + b_ns * n; alpha in (0, 1]. */
void svc_init(struct svc_model *s, double a_ns, double b_ns, double alpha);
/* svc_observe - a batch of rows took exec_ns. */
void svc_observe(struct svc_model *s, int rows, uint64_t exec_ns);
/* svc_predict - predicted execution time of a batch of rows (>= 1 ns). */
uint64_t svc_predict(const struct svc_model *s, int rows);
/* svc_bucket - bucket index of rows (ceil log2). */
int svc_bucket(int rows);

#endif
