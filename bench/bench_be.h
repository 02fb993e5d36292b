/*
 * bench_be.h - run one batch through a backend's ops and wait for it, for
 * the kernel benchmarks (bench/kernel.c, bench/int8.c): one copy of the
 * submit-and-sleep both need.
 */
#ifndef INFERGW_BENCH_BE_H
#define INFERGW_BENCH_BE_H

#include "backend.h"
#include "infer.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * bench_be_open - be as a CPU backend of one slot of threads OpenMP threads
 * (weights_layout auto, the gateway's default), whose batches run on the
 * submitting thread once their bucket has run (inline_us at its maximum;
 * the backend inlines with one thread only): the figures are then a
 * batch's own cost, not a hand-off to a worker thread and back (two
 * wake-ups, ~70 us on the 2-core EPYC VM: 3x a 64-row digits batch, and
 * whether a batch is handed off followed the default's 20 us line, so an
 * INT8 / FP32 ratio of digits measured which side of it each fell).
 * Exits naming who when it cannot open.
 */
#define BENCH_BE_INLINE_US 1000	/* the most backends[].inline_us takes */

static inline void bench_be_open(const char *who, struct backend *be, int threads)
{
	struct backend_conf conf = {
		.name = "bench", .kind = BE_CPU, .slots = 1, .threads_per_slot = threads,
		.cost = 1.0, .inline_us = BENCH_BE_INLINE_US,
	};
	char *err = NULL;

	memset(be, 0, sizeof(*be));
	be->ops = &be_cpu_ops;
	be->conf = conf;
	if (be_cpu_ops.open(be, &conf, &err)) {
		fprintf(stderr, "%s: %s\n", who, err ? err : "cpu backend failed");
		exit(1);
	}
}

/* The caller sleeps until done: a spinning main thread would take one of
 * the two cores from the backend's OpenMP team (the raw chains run on the
 * main thread itself), and the comparison would not be like for like. */
static pthread_mutex_t bench_be_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bench_be_cv = PTHREAD_COND_INITIALIZER;
static int bench_be_done;

static inline void bench_be_on_done(struct batch *b)
{
	(void)b;
	pthread_mutex_lock(&bench_be_mu);
	bench_be_done = 1;
	pthread_cond_signal(&bench_be_cv);
	pthread_mutex_unlock(&bench_be_mu);
}

/*
 * bench_be_run - r (model m, rows, input, output set) as one batch of one
 * slice on be, waited for; exits with a message naming who on a refused
 * submit or a failed batch.
 */
static inline void bench_be_run(const char *who, struct backend *be, const struct model *m,
				struct infer_req *r)
{
	struct infer_slice sl = { .r = r, .rows = r->rows, .input = r->input, .output = r->output,
				  .status = -1 };
	struct batch b = {
		.model = m, .be = be, .slot = 0, .n_slices = 1, .slices = &sl,
		.rows = r->rows, .done = bench_be_on_done,
	};
	int rc;

	atomic_store_explicit(&r->state, REQ_RUNNING, memory_order_relaxed);
	bench_be_done = 0;
	rc = be->ops->submit(be, &b);
	if (rc) {
		fprintf(stderr, "%s: be_cpu submit(%d rows): %s\n", who, r->rows, strerror(-rc));
		exit(1);
	}
	pthread_mutex_lock(&bench_be_mu);	/* done comes from the backend's worker thread */
	while (!bench_be_done)
		pthread_cond_wait(&bench_be_cv, &bench_be_mu);
	pthread_mutex_unlock(&bench_be_mu);
	if (sl.status != 0) {
		fprintf(stderr, "%s: be_cpu batch failed: status %d %s\n", who, sl.status, b.errmsg);
		exit(1);
	}
}

#endif
