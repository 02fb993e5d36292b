/* Unit tests for gateway/svctime.c: warm start, learning, interpolation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>

#include "svctime.h"

static void test_warm_start_and_buckets(void **state)
{
	struct svc_model s;

	svc_init(&s, 1000, 100, 0.5);
	assert_int_equal(svc_bucket(1), 0);
	assert_int_equal(svc_bucket(3), 2);
	assert_int_equal(svc_bucket(64), 6);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_warm_start_and_buckets),
		cmocka_unit_test(test_learn_ewma),
		cmocka_unit_test(test_fit_line),
		cmocka_unit_test(test_extrapolate_with_warm_start),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
