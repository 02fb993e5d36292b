/* Unit tests for gateway/batcher.c and gateway/router.c with virtual time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>

#include "batcher.h"
#include "router.h"

static void test_cut_on_size_and_delay(void **state)
{
	struct batch_policy p = { .max_batch = 8, .max_delay_ns = 1000 };
	uint64_t wake;

	assert_int_equal(batch_decide(&p, 0, 0, 5000, &wake), 0);
	assert_true(wake == UINT64_MAX);
	/* 3 rows, oldest arrived at t=100: wait until t=1100. */
	assert_int_equal(batch_decide(&p, 3, 100, 500, &wake), 0);
	assert_int_equal(wake, 1100);
	assert_int_equal(batch_decide(&p, 3, 100, 1099, &wake), 0);
	assert_int_equal(batch_decide(&p, 3, 100, 1100, &wake), 3);
	/* A full batch is cut at once, capped at max_batch. */
	assert_int_equal(batch_decide(&p, 8, 100, 101, &wake), 8);
	assert_int_equal(batch_decide(&p, 20, 100, 101, &wake), 8);
	/* Zero delay: whatever waits goes now. */
	p.max_delay_ns = 0;
	assert_int_equal(batch_decide(&p, 1, 100, 100, &wake), 1);
}

static void test_router_least_queue_then_cost(void **state)
{
	struct router_cand c[3] = {
		{ .id = 0, .queued = 4, .cost = 1.0 },
		{ .id = 1, .queued = 2, .cost = 5.0 },
		{ .id = 2, .queued = 2, .cost = 2.0 },
	};

	assert_int_equal(router_pick(c, 0), -1);
	assert_int_equal(router_pick(c, 1), 0);
	assert_int_equal(router_pick(c, 3), 2);
	c[0].queued = 0;
	assert_int_equal(router_pick(c, 3), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cut_on_size_and_delay),
		cmocka_unit_test(test_router_least_queue_then_cost),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
