/* Unit tests for gateway/sched/svctime.c: warm start, learning, interpolation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>

#include "svctime.h"

static void test_warm_start_and_buckets(void **state)
{
	struct svc_model s;

	svc_init(&s, 1000, 100, 0.5);
	assert_int_equal(svc_bucket(1), 0);
	assert_int_equal(svc_bucket(3), 2);
	assert_int_equal(svc_bucket(64), 6);
	/* the least b with 2^b >= rows, capped at the last bucket */
	for (int rows = -1, b = 0; rows <= 70000; rows++) {
		while (b < SVC_BUCKETS - 1 && (1 << b) < rows)
			b++;
		assert_int_equal(svc_bucket(rows), b);
	}
	/* Predictions are per padded bucket: 3 rows cost like 4. */
	assert_int_equal(svc_predict(&s, 1), 1100);
	assert_int_equal(svc_predict(&s, 3), 1400);
	assert_int_equal(svc_predict(&s, 4), 1400);
}

static void test_learn_ewma(void **state)
{
	struct svc_model s;

	svc_init(&s, 1000, 100, 0.5);
	svc_observe(&s, 8, 4000);	/* first sample replaces */
	assert_int_equal(svc_predict(&s, 8), 4000);
	svc_observe(&s, 7, 6000);	/* same bucket: 4000 + 0.5 * 2000 */
	assert_int_equal(svc_predict(&s, 8), 5000);
	/* One bucket seen: others keep the warm shape scaled by 5000 / 1800. */
	assert_int_equal(svc_predict(&s, 1), (uint64_t)(1100.0 * 5000 / 1800));
}

static void test_fit_line(void **state)
{
	struct svc_model s;

	svc_init(&s, 0, 0, 1.0);
	svc_observe(&s, 1, 1200);
	svc_observe(&s, 16, 3000);	/* line through (1,1200) and (16,3000): 1080 + 120 n */
	assert_int_equal(svc_predict(&s, 4), 1080 + 120 * 4);
	assert_int_equal(svc_predict(&s, 64), 1080 + 120 * 64);
	/* Decreasing noise never predicts less for more rows than the largest seen. */
	svc_init(&s, 0, 0, 1.0);
	svc_observe(&s, 1, 3000);
	svc_observe(&s, 2, 1000);
	assert_int_equal(svc_predict(&s, 8), 1000);
}

/* Batches of 1 and 2 seen: 64 follows the warm start's shape, not their line. */
static void test_extrapolate_with_warm_start(void **state)
{
	struct svc_model s;

	svc_init(&s, 3000000, 250000, 1.0);	/* t(64) = 19 ms */
	svc_observe(&s, 1, 3200000);
	svc_observe(&s, 2, 3300000);
	/* scaled by t(2)/warm(2) = 3.3/3.5 */
	assert_int_equal(svc_predict(&s, 64), (uint64_t)(19000000.0 * 3300000 / 3500000));
	/* in between two seen buckets: interpolated */
	svc_observe(&s, 64, 20000000);
	assert_int_equal(svc_predict(&s, 7), (uint64_t)(3300000 + (20000000.0 - 3300000) * (8 - 2) / 62));
}

/* The nearest seen buckets each side, whatever the pattern of seen ones:
 * against t(n) = n (every bucket's sample on one line, no warm start),
 * a prediction between two seen buckets is that line, and outside them
 * the line through the two nearest. */
static void test_neighbours_any_pattern(void **state)
{
	for (unsigned mask = 1; mask < 1u << 10; mask++) {
		struct svc_model s;

		svc_init(&s, 0, 0, 1.0);
		for (int b = 0; b < 10; b++)
			if (mask & 1u << b)
				svc_observe(&s, 1 << b, (uint64_t)1000 << b);
		for (int b = 0; b < SVC_BUCKETS; b++) {
			uint64_t want = (uint64_t)1000 << b;

			if (__builtin_popcount(mask) == 1 && !(mask & 1u << b))
				want = (uint64_t)1000 << __builtin_ctz(mask);	/* flat */
			if (svc_predict(&s, 1 << b) != want)
				fail_msg("mask %#x bucket %d: %llu, want %llu", mask, b,
					 (unsigned long long)svc_predict(&s, 1 << b),
					 (unsigned long long)want);
		}
	}
}

/* A prediction asked for before a change is never answered after it: at
 * every step of a mixed run of samples and warm starts, each bucket's
 * answer equals a copy's that remembers nothing. */
static void test_predict_cache(void **state)
{
	struct svc_model s;
	uint64_t x = 12345;

	svc_init(&s, 1000, 100, 0.3);
	for (int step = 0; step < 2000; step++) {
		x = x * 6364136223846793005ull + 1442695040888963407ull;
		if ((x >> 60) == 0)
			svc_set_warm(&s, (double)(x >> 40 & 0xfff), (double)(x >> 30 & 0xff));
		else
			svc_observe(&s, 1 + (int)(x >> 33) % 300, 1000 + (x >> 20) % 100000);
		for (int rows = 1; rows <= 40000; rows = rows * 3 / 2 + 1) {
			struct svc_model fresh = s;

			fresh.pred_ok = 0;
			assert_int_equal(svc_predict(&s, rows), svc_predict(&fresh, rows));
		}
	}
	/* The warm start alone, cached, then replaced: the new line answers. */
	svc_init(&s, 1000, 100, 0.5);
	assert_int_equal(svc_predict(&s, 4), 1400);
	svc_set_warm(&s, 2000, 10);
	assert_int_equal(svc_predict(&s, 4), 2040);
}

/* n samples at priority level: a fraction `tail` (spread evenly) with
 * ratio hi, the rest with ratio lo, over a predicted wait of 100 ms. */
static void feed(struct svc_model *s, int level, int n, double tail, double lo, double hi)
{
	double acc = 0;

	for (int i = 0; i < n; i++) {
		acc += tail;
		svc_wait_observe(s, level, 100000000, (uint64_t)(1e8 * (acc >= 1 ? hi : lo)));
		if (acc >= 1)
			acc -= 1;
	}
}

/*
 * Wait calibration tracks the 99th percentile of observed / predicted wait:
 * a 2% tail of waits 50% too long is covered, a 0.5% tail is not; levels
 * are separate; short predictions teach nothing; a dropped request counts
 * as a miss; the factor stays in [1, 4].
 */
static void test_wait_calibration(void **state)
{
	struct svc_model s;

	svc_init(&s, 0, 0, 0.2);
	svc_observe(&s, 1, 2000000);			/* a batch of 1 takes 2 ms */
	assert_float_equal(svc_wait_factor(&s, 1), 1.0, 1e-12);
	/* Every wait 10% longer than predicted: the factor settles at 1.1. */
	feed(&s, 1, 5000, 0, 1.1, 1.1);
	assert_float_equal(svc_wait_factor(&s, 1), 1.1, 0.01);
	assert_int_equal(svc_wait_adjust(&s, 2, 50000000), 50000000);	/* level 2: untouched */
	/* 2% of waits 1.5x the prediction (the rest exact): the 99th
	 * percentile is 1.5. */
	feed(&s, 2, 20000, 0.02, 1.0, 1.5);
	assert_float_equal(svc_wait_factor(&s, 2), 1.5, 0.05);
	/* 0.5% of them: below the 99th percentile, the factor returns to 1. */
	feed(&s, 2, 20000, 0.005, 1.0, 1.5);
	assert_float_equal(svc_wait_factor(&s, 2), 1.0, 0.03);
	/* Predicted under one batch of 1 row: too short to learn from. */
	for (int i = 0; i < 1000; i++)
		svc_wait_observe(&s, 3, 1000000, 9000000);
	assert_float_equal(svc_wait_factor(&s, 3), 1.0, 1e-12);
	/* A drop is a miss: 100 of them, nothing else, raise the factor by
	 * (1 + 0.005 * 0.99)^100. */
	for (int i = 0; i < 100; i++)
		svc_wait_missed(&s, 3);
	assert_float_equal(svc_wait_factor(&s, 3), pow(1 + 0.005 * 0.99, 100), 1e-9);
	assert_int_equal(svc_wait_adjust(&s, 3, 1000000), (uint64_t)(1e6 * pow(1.00495, 100)));
	/* Clamped: waits 10x the prediction never scale by more than 4. */
	feed(&s, 4, 5000, 0, 10, 10);
	assert_float_equal(svc_wait_factor(&s, 4), 4.0, 1e-12);
	/* Levels beyond SVC_LEVELS share the last one. */
	svc_wait_missed(&s, SVC_LEVELS);
	assert_float_equal(svc_wait_factor(&s, 99), svc_wait_factor(&s, SVC_LEVELS), 1e-12);
	assert_true(svc_wait_factor(&s, 99) > 1);
}

/* A stale bucket (policy.c probes): forgotten, it is predicted from the
 * rest of the model, and its next sample starts it afresh; the prior is
 * the warm start alone. */
static void test_forget_and_prior(void **state)
{
	struct svc_model s;

	svc_init(&s, 1000, 100, 0.2);
	assert_int_equal(svc_prior(&s, 3), 1400);
	svc_observe(&s, 1, 40000000);		/* a cold start: 40 ms */
	assert_int_equal(svc_predict(&s, 1), 40000000);
	svc_observe(&s, 1, 1100);		/* averaged: still ~32 ms */
	assert_true(svc_predict(&s, 1) > 30000000);
	assert_int_equal(svc_prior(&s, 1), 1100);	/* learning leaves the prior */
	svc_observe(&s, 4, 1400);
	svc_forget(&s, 1);
	/* forgotten: bucket 4's estimate scaled by the warm start's shape */
	assert_int_equal(svc_predict(&s, 1), 1100);
	svc_observe(&s, 1, 2000);		/* replaces, as a first sample */
	assert_int_equal(svc_predict(&s, 1), 2000);
	/* forgetting the only bucket leaves the warm start */
	svc_init(&s, 1000, 100, 0.2);
	svc_observe(&s, 2, 9000);
	svc_forget(&s, 2);
	assert_int_equal(svc_predict(&s, 2), 1200);
	/* no warm start: the prior is the least prediction, 1 ns */
	svc_init(&s, 0, 0, 0.2);
	assert_int_equal(svc_prior(&s, 8), 1);
}

/* A batch far slower than its bucket's estimate counts as SVC_SPIKE x the
 * estimate; SVC_SPIKE_RUN of them in a row are a change, learned at once;
 * slower-but-not-spike samples and faster ones average in as before. */
static void test_spike_and_change(void **state)
{
	struct svc_model s;

	svc_init(&s, 1000, 100, 0.2);
	svc_observe(&s, 1, 1000);
	svc_observe(&s, 1, 100000000);		/* a 100 ms pause: 1000 + 0.2 * 3000 */
	assert_int_equal(svc_predict(&s, 1), 1600);
	svc_observe(&s, 1, 1000);		/* normal again: the run is broken */
	assert_int_equal(svc_predict(&s, 1), 1480);
	svc_observe(&s, 1, 100000000);		/* a spike again, clamped again */
	assert_int_equal(svc_predict(&s, 1), 1480 + (uint64_t)(0.2 * 3 * 1480));
	svc_observe(&s, 1, 1000);
	/* below SVC_SPIKE x: plain averaging, and no run */
	svc_init(&s, 1000, 100, 0.5);
	svc_observe(&s, 2, 1000);
	svc_observe(&s, 2, 3000);
	assert_int_equal(svc_predict(&s, 2), 2000);
	/* a lasting change: the third slow batch in a row replaces the estimate */
	svc_init(&s, 1000, 100, 0.2);
	svc_observe(&s, 1, 1000);
	svc_observe(&s, 1, 50000);
	assert_int_equal(svc_predict(&s, 1), 1600);
	svc_observe(&s, 1, 50000);		/* 1600 + 0.2 * (6400 - 1600) */
	assert_int_equal(svc_predict(&s, 1), 2560);
	svc_observe(&s, 1, 50000);
	assert_int_equal(svc_predict(&s, 1), 50000);
	svc_observe(&s, 1, 50000);
	assert_int_equal(svc_predict(&s, 1), 50000);
	/* faster is never clamped */
	svc_observe(&s, 1, 1000);
	assert_int_equal(svc_predict(&s, 1), 50000 - (uint64_t)(0.2 * 49000));
	/* forgetting ends a run: the next sample replaces, the one after averages */
	svc_observe(&s, 1, 10000000);
	svc_forget(&s, 1);
	svc_observe(&s, 1, 1000);
	svc_observe(&s, 1, 10000000);
	assert_int_equal(svc_predict(&s, 1), 1600);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_warm_start_and_buckets),
		cmocka_unit_test(test_learn_ewma),
		cmocka_unit_test(test_fit_line),
		cmocka_unit_test(test_extrapolate_with_warm_start),
		cmocka_unit_test(test_neighbours_any_pattern),
		cmocka_unit_test(test_predict_cache),
		cmocka_unit_test(test_wait_calibration),
		cmocka_unit_test(test_forget_and_prior),
		cmocka_unit_test(test_spike_and_change),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
