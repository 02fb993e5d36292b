/*
 * fake.h - the fake asynchronous backend (kind "fake"), for tests only.
 *
 * It computes output[row][j] = (j + 1) * sum(input[row]) so answers are
 * checkable, completes batches from its own thread after latency_us, and
 * can fail batches retryably (BE_RETRY), go down, or complete inside
 * submit.  It checks the backend contract from its side: never more
 * batches in flight than its credits.
 */
#ifndef INFERGW_FAKE_H
#define INFERGW_FAKE_H

#include <stdbool.h>
#include <stdint.h>

struct backend;

struct be_fake_ctl {
	int latency_us;			/* per batch */
	int fail_every;			/* every Nth batch given back BE_RETRY; 0 = never */
	int down_after;			/* after N batches: state DOWN, every batch BE_RETRY; 0 = never */
	bool sync;			/* complete inside submit */
	bool refuse;			/* submit returns -ENODEV */
	bool topup;			/* call batch->topup when a batch starts */
	int max_batch;			/* caps: rows per batch here; 0 = the model's */
	int n_preferred;		/* caps: preferred batch sizes */
	int preferred[4];
};

struct be_fake_counts {
	uint64_t batches, rows, retried;
	uint64_t cancelled_seen;		/* slices skipped: cancelled/expired at start */
	int max_inflight, violations;	/* violations: in flight above credits */
	int max_rows;			/* largest batch seen */
};

/* be_fake_set - change the behaviour of an open fake backend (any time). */
void be_fake_set(struct backend *be, const struct be_fake_ctl *ctl);
/* be_fake_counts - what it saw so far. */
void be_fake_counts(const struct backend *be, struct be_fake_counts *out);

#endif
