/* Unit tests for gateway/sched/batcher.c with virtual time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>

#include "batcher.h"
#include "svctime.h"

static void test_cut_on_size_and_delay(void **state)
{
	struct batch_policy p = { .max_batch = 8, .max_delay_ns = 1000 };
	struct batch_view v = { .queued_rows = 0, .oldest_ns = 0, .earliest_deadline_ns = UINT64_MAX };
	uint64_t wake;

	assert_int_equal(batch_decide(&p, &v, NULL, 5000, &wake), 0);
	assert_true(wake == UINT64_MAX);
	/* 3 rows, oldest arrived at t=100: wait until t=1100. */
	v = (struct batch_view){ 3, 100, UINT64_MAX };
	assert_int_equal(batch_decide(&p, &v, NULL, 500, &wake), 0);
	assert_int_equal(wake, 1100);
	assert_int_equal(batch_decide(&p, &v, NULL, 1099, &wake), 0);
	assert_int_equal(batch_decide(&p, &v, NULL, 1100, &wake), 3);
	/* A full batch is cut at once, capped at max_batch. */
	v.queued_rows = 8;
	assert_int_equal(batch_decide(&p, &v, NULL, 101, &wake), 8);
	v.queued_rows = 20;
	assert_int_equal(batch_decide(&p, &v, NULL, 101, &wake), 8);
	/* Zero delay: whatever waits goes now. */
	p.max_delay_ns = 0;
	v = (struct batch_view){ 1, 100, UINT64_MAX };
	assert_int_equal(batch_decide(&p, &v, NULL, 100, &wake), 1);
}

/* Waiting longer would make the earliest deadline miss: cut early. */
static void test_cut_for_deadline(void **state)
{
	struct batch_policy p = { .max_batch = 16, .max_delay_ns = 10000, .margin_ns = 100 };
	struct svc_model svc;
	struct batch_view v = { .queued_rows = 4, .oldest_ns = 0, .earliest_deadline_ns = 5000 };
	uint64_t wake;

	svc_init(&svc, 1000, 250, 0.5);	/* 4 rows: 1000 + 4*250 = 2000 ns */
	/* latest start = 5000 - 2000 - 100 = 2900 < oldest + delay = 10000 */
	assert_int_equal(batch_decide(&p, &v, &svc, 1000, &wake), 0);
	assert_int_equal(wake, 2900);
	assert_int_equal(batch_decide(&p, &v, &svc, 2899, &wake), 0);
	assert_int_equal(batch_decide(&p, &v, &svc, 2900, &wake), 4);
	/* Without a predictor the deadline is not considered. */
	assert_int_equal(batch_decide(&p, &v, NULL, 2900, &wake), 0);
	assert_int_equal(wake, 10000);
}

static void test_preferred_sizes(void **state)
{
	struct batch_policy p = { .max_batch = 32, .max_delay_ns = 100000, .n_preferred = 2,
				  .preferred = { 4, 8 } };
	struct batch_view v = { .queued_rows = 3, .oldest_ns = 0, .earliest_deadline_ns = UINT64_MAX };
	uint64_t wake;

	assert_int_equal(batch_decide(&p, &v, NULL, 10, &wake), 0);	/* below 4: wait */
	v.queued_rows = 5;
	assert_int_equal(batch_decide(&p, &v, NULL, 10, &wake), 4);
	v.queued_rows = 13;
	assert_int_equal(batch_decide(&p, &v, NULL, 10, &wake), 8);
	v.queued_rows = 40;
	assert_int_equal(batch_decide(&p, &v, NULL, 10, &wake), 32);	/* full beats preferred */
}

/* Where a request lands: whole while it fits, sliced when above the limit. */
static void test_place(void **state)
{
	int before, first, last;

	(void)state;
	/* fits in the batch in progress (20 rows ahead, limit 32) */
	assert_int_equal(batch_place(20, 12, 32, &before, &first, &last), 1);
	assert_int_equal(before, 0);
	assert_int_equal(first, 32);
	assert_int_equal(last, 32);
	/* does not fit, not above the limit: a batch of its own after it */
	assert_int_equal(batch_place(20, 13, 32, &before, &first, &last), 1);
	assert_int_equal(before, 1);
	assert_int_equal(first, 13);
	/* 70 ahead: two full batches, then 6 + its 5 rows */
	assert_int_equal(batch_place(70, 5, 32, &before, &first, &last), 1);
	assert_int_equal(before, 2);
	assert_int_equal(first, 11);
	/* 64 rows, nothing ahead, limit 32: two batches of 32 */
	assert_int_equal(batch_place(0, 64, 32, &before, &first, &last), 2);
	assert_int_equal(before, 0);
	assert_int_equal(first, 32);
	assert_int_equal(last, 32);
	/* 50 rows behind 20: 20 + 12 of it, then 32, then 6 (sq_take's cut) */
	assert_int_equal(batch_place(20, 50, 32, &before, &first, &last), 3);
	assert_int_equal(before, 0);
	assert_int_equal(first, 32);
	assert_int_equal(last, 6);
	/* an adaptive limit of 8: 20 rows in 8 + 8 + 4 */
	assert_int_equal(batch_place(0, 20, 8, &before, &first, &last), 3);
	assert_int_equal(last, 4);
}

/* AIMD: halve on a miss, +1 after grow_after good batches, within [min, max]. */
static void test_adaptive(void **state)
{
	struct batch_adapt a;

	batch_adapt_init(&a, 1, 64, 1000, 2);
	assert_int_equal(a.cur, 64);
	assert_int_equal(batch_adapt_observe(&a, 1500), 32);
	assert_int_equal(batch_adapt_observe(&a, 1001), 16);
	assert_int_equal(batch_adapt_observe(&a, 900), 16);
	assert_int_equal(batch_adapt_observe(&a, 900), 17);
	assert_int_equal(batch_adapt_observe(&a, 1000), 17);	/* at target is a hit */
	assert_int_equal(batch_adapt_observe(&a, 1000), 18);
	for (int i = 0; i < 10; i++)
		batch_adapt_observe(&a, 5000);
	assert_int_equal(a.cur, 1);
	for (int i = 0; i < 500; i++)
		batch_adapt_observe(&a, 10);
	assert_int_equal(a.cur, 64);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cut_on_size_and_delay),
		cmocka_unit_test(test_cut_for_deadline),
		cmocka_unit_test(test_preferred_sizes),
		cmocka_unit_test(test_place),
		cmocka_unit_test(test_adaptive),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
