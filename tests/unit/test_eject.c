/* Unit tests for backends/remote/eject.c: outlier ejection in virtual time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>

#include "remote/eject.h"

#define MS 1000000ull

static const struct be_rmt_ej_conf conf = {
	.consecutive_failures = 3, .ejection_ns = 100 * MS, .max_ejection_ns = 250 * MS,
	.max_ejection_percent = 10,
};

static void fail_n(struct be_rmt_ej *e, int n, uint64_t now)
{
	for (int i = 0; i < n; i++)
		assert_int_equal(be_rmt_ej_failure(e, now), BE_RMT_EJ_NONE);
}

static void test_threshold(void **state)
{
	struct be_rmt_ej e;

	be_rmt_ej_init(&e, &conf, NULL);
	fail_n(&e, 2, 0);
	assert_false(be_rmt_ej_is_ejected(&e));
	assert_int_equal(be_rmt_ej_failure(&e, 5 * MS), BE_RMT_EJ_EJECT);
	assert_true(be_rmt_ej_is_ejected(&e));
	assert_int_equal(e.until_ns, 105 * MS);
	assert_int_equal(e.ejections, 1);
	/* While ejected and not probing, outcomes are ignored. */
	assert_int_equal(be_rmt_ej_failure(&e, 6 * MS), BE_RMT_EJ_NONE);
	assert_int_equal(be_rmt_ej_success(&e, 6 * MS), BE_RMT_EJ_NONE);
	assert_true(be_rmt_ej_is_ejected(&e));
	assert_int_equal(e.until_ns, 105 * MS);
	be_rmt_ej_fini(&e);
}

static void test_success_resets(void **state)
{
	struct be_rmt_ej e;

	be_rmt_ej_init(&e, &conf, NULL);
	fail_n(&e, 2, 0);
	assert_int_equal(be_rmt_ej_success(&e, 1), BE_RMT_EJ_NONE);
	assert_int_equal(e.failures, 0);
	fail_n(&e, 2, 2);	/* 2 again, not 4: still in */
	assert_false(be_rmt_ej_is_ejected(&e));
	assert_int_equal(be_rmt_ej_failure(&e, 3), BE_RMT_EJ_EJECT);
	be_rmt_ej_fini(&e);
}

static void test_periods_grow_and_cap(void **state)
{
	struct be_rmt_ej e;
	uint64_t now = 0;
	/* base x n capped at 250: 100, 200, 250, 250 */
	const uint64_t want[] = { 100 * MS, 200 * MS, 250 * MS, 250 * MS };

	assert_int_equal(be_rmt_ej_period(&conf, 1), 100 * MS);
	assert_int_equal(be_rmt_ej_period(&conf, 1000000), 250 * MS);
	be_rmt_ej_init(&e, &conf, NULL);
	fail_n(&e, 2, now);
	assert_int_equal(be_rmt_ej_failure(&e, now), BE_RMT_EJ_EJECT);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(e.until_ns - now, want[i]);
		/* No probe before the period ends, exactly one after. */
		assert_int_equal(be_rmt_ej_tick(&e, e.until_ns - 1), BE_RMT_EJ_NONE);
		now = e.until_ns;
		assert_int_equal(be_rmt_ej_tick(&e, now), BE_RMT_EJ_PROBE);
		assert_int_equal(be_rmt_ej_tick(&e, now + 1), BE_RMT_EJ_NONE);
		assert_true(be_rmt_ej_is_ejected(&e));	/* until the probe answers */
		now += 7 * MS;
		if (i < 3)
			assert_int_equal(be_rmt_ej_failure(&e, now), BE_RMT_EJ_REEJECT);
	}
	assert_int_equal(e.ejections, 4);
	/* The 4th probe succeeds: readmitted, failures start from zero. */
	assert_int_equal(be_rmt_ej_success(&e, now), BE_RMT_EJ_READMIT);
	assert_false(be_rmt_ej_is_ejected(&e));
	fail_n(&e, 2, now);
	/* The multiplier stays: the next ejection is still capped long. */
	assert_int_equal(be_rmt_ej_failure(&e, now), BE_RMT_EJ_EJECT);
	assert_int_equal(e.until_ns - now, 250 * MS);
	be_rmt_ej_fini(&e);
}

static void test_pool_cap(void **state)
{
	struct be_rmt_ej_conf c = conf;
	struct be_rmt_pool *p[20];
	struct be_rmt_ej e[20];
	int members, ejected;

	assert_int_equal(be_rmt_pool_cap(1, 10), 1);
	assert_int_equal(be_rmt_pool_cap(9, 10), 1);
	assert_int_equal(be_rmt_pool_cap(20, 10), 2);
	assert_int_equal(be_rmt_pool_cap(3, 0), 1);
	assert_int_equal(be_rmt_pool_cap(4, 50), 2);
	c.consecutive_failures = 1;
	/* 20 members at 10%: two may be ejected at once. */
	for (int i = 0; i < 20; i++) {
		p[i] = be_rmt_pool_get("test-cap");
		assert_non_null(p[i]);
		be_rmt_ej_init(&e[i], &c, p[i]);
	}
	assert_ptr_equal(p[0], p[19]);
	assert_int_equal(be_rmt_ej_failure(&e[0], 0), BE_RMT_EJ_EJECT);
	assert_int_equal(be_rmt_ej_failure(&e[1], 0), BE_RMT_EJ_EJECT);
	assert_int_equal(be_rmt_ej_failure(&e[2], 0), BE_RMT_EJ_SKIP);
	assert_false(be_rmt_ej_is_ejected(&e[2]));
	be_rmt_pool_counts(p[0], &members, &ejected);
	assert_int_equal(members, 20);
	assert_int_equal(ejected, 2);
	/* e[0] readmitted: e[2]'s next failure takes the place. */
	assert_int_equal(be_rmt_ej_tick(&e[0], 100 * MS), BE_RMT_EJ_PROBE);
	assert_int_equal(be_rmt_ej_success(&e[0], 100 * MS), BE_RMT_EJ_READMIT);
	assert_int_equal(be_rmt_ej_failure(&e[2], 100 * MS), BE_RMT_EJ_EJECT);
	/* A re-ejection keeps its place: no cap check. */
	assert_int_equal(be_rmt_ej_tick(&e[1], 100 * MS), BE_RMT_EJ_PROBE);
	assert_int_equal(be_rmt_ej_failure(&e[1], 100 * MS), BE_RMT_EJ_REEJECT);
	be_rmt_pool_counts(p[0], &members, &ejected);
	assert_int_equal(ejected, 2);
	/* Members leaving give their places back; the pool shrinks. */
	for (int i = 19; i >= 1; i--) {
		be_rmt_ej_fini(&e[i]);
		be_rmt_pool_put(p[i]);
	}
	be_rmt_pool_counts(p[0], &members, &ejected);
	assert_int_equal(members, 1);
	assert_int_equal(ejected, 0);
	/* A pool of one may still eject its only member ("at least one"). */
	assert_int_equal(be_rmt_ej_failure(&e[0], 200 * MS), BE_RMT_EJ_EJECT);
	be_rmt_ej_fini(&e[0]);
	be_rmt_pool_put(p[0]);
}

static void test_pool_registry(void **state)
{
	struct be_rmt_pool *a = be_rmt_pool_get("test-a"), *b = be_rmt_pool_get("test-b");
	struct be_rmt_pool *a2 = be_rmt_pool_get("test-a");
	int members, ejected;

	assert_ptr_equal(a, a2);
	assert_ptr_not_equal(a, b);
	be_rmt_pool_counts(a, &members, &ejected);
	assert_int_equal(members, 2);
	be_rmt_pool_put(a);
	be_rmt_pool_put(a2);
	be_rmt_pool_put(b);
	be_rmt_pool_put(NULL);
	/* Gone: a new get starts a fresh pool of one. */
	a = be_rmt_pool_get("test-a");
	be_rmt_pool_counts(a, &members, &ejected);
	assert_int_equal(members, 1);
	assert_int_equal(ejected, 0);
	be_rmt_pool_put(a);
}

static void test_probe_without_period(void **state)
{
	struct be_rmt_ej e;

	be_rmt_ej_init(&e, &conf, NULL);
	/* Not ejected: ticks never probe, successes only reset. */
	assert_int_equal(be_rmt_ej_tick(&e, UINT64_MAX), BE_RMT_EJ_NONE);
	assert_int_equal(be_rmt_ej_success(&e, 0), BE_RMT_EJ_NONE);
	assert_string_equal(be_rmt_ej_event_name(BE_RMT_EJ_REEJECT), "reeject");
	be_rmt_ej_fini(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_threshold),
		cmocka_unit_test(test_success_resets),
		cmocka_unit_test(test_periods_grow_and_cap),
		cmocka_unit_test(test_pool_cap),
		cmocka_unit_test(test_pool_registry),
		cmocka_unit_test(test_probe_without_period),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
