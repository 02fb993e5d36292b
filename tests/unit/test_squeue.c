/* Unit tests for gateway/sched/squeue.c: priority then deadline order, expiry, removal,
 * slicing requests larger than a batch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>

#include "infer.h"
#include "squeue.h"

static struct infer_req R[16];

static struct infer_req *mk(int i, int prio, uint64_t deadline, int rows)
{
	memset(&R[i], 0, sizeof(R[i]));
	R[i].priority = prio;
	R[i].deadline_ns = deadline;
	R[i].arrival_ns = 10 * i;
	R[i].rows = rows;
	return &R[i];
}

static void test_order_priority_then_deadline(void **state)
{
	struct squeue q;
	struct infer_slice out[16];
	int n;

	sq_init(&q, 3, 16);
	assert_int_equal(sq_push(&q, mk(0, 3, 500, 1)), 0);
	assert_int_equal(sq_push(&q, mk(1, 1, 900, 1)), 0);
	assert_int_equal(sq_push(&q, mk(2, 1, 300, 1)), 0);
	assert_int_equal(sq_push(&q, mk(3, 2, 0, 1)), 0);	/* no deadline: last in level 2 */
	assert_int_equal(sq_push(&q, mk(4, 2, 100, 1)), 0);
	assert_int_equal(sq_push(&q, mk(5, 9, 50, 1)), 0);	/* clamped to level 3 */
	assert_int_equal(R[5].priority, 3);
	assert_int_equal(q.n_reqs, 6);
	assert_int_equal(sq_rows_ahead(&q, 1), 2);
	assert_int_equal(sq_rows_ahead(&q, 2), 4);
	assert_int_equal(sq_earliest_deadline(&q), 50);
	/* Among level heads only (R[0] arrived first but sorts behind R[5]). */
	assert_int_equal(sq_oldest_arrival(&q), 20);
	n = sq_take(&q, 100, 100, out, 16);
	assert_int_equal(n, 6);
	assert_ptr_equal(out[0].r, &R[2]);
	assert_ptr_equal(out[1].r, &R[1]);
	assert_ptr_equal(out[2].r, &R[4]);
	assert_ptr_equal(out[3].r, &R[3]);
	assert_ptr_equal(out[4].r, &R[5]);
	assert_ptr_equal(out[5].r, &R[0]);
	for (n = 0; n < 6; n++) {
		assert_int_equal(out[n].row0, 0);
		assert_int_equal(out[n].rows, 1);
		assert_int_equal(out[n].r->slices_out, 1);
		assert_true(sq_slice_done(out[n].r));	/* whole: its only slice */
	}
	assert_int_equal(q.n_reqs, 0);
	assert_int_equal(q.n_rows, 0);
	assert_true(sq_earliest_deadline(&q) == UINT64_MAX);
}

static void test_take_whole_requests_and_bound(void **state)
{
	struct squeue q;
	struct infer_slice out[16];

	sq_init(&q, 2, 3);
	sq_push(&q, mk(0, 1, 10, 3));
	sq_push(&q, mk(1, 1, 20, 4));
	sq_push(&q, mk(2, 2, 5, 1));
	assert_int_equal(sq_push(&q, mk(3, 1, 1, 1)), -EAGAIN);	/* bounded */
	assert_int_equal(q.n_rows, 8);
	/* 3 + 4 > 6: only the first fits; the next (not above the limit 6)
	 * is never split, so stop there. */
	assert_int_equal(sq_take(&q, 6, 6, out, 16), 1);
	assert_ptr_equal(out[0].r, &R[0]);
	assert_int_equal(out[0].rows, 3);
	assert_int_equal(sq_take(&q, 4, 4, out, 1), 1);	/* cap */
	assert_ptr_equal(out[0].r, &R[1]);
	assert_int_equal(out[0].rows, 4);
	assert_int_equal(q.n_rows, 1);
}

static void test_expire_and_remove(void **state)
{
	struct squeue q;
	struct infer_req *r;
	int n = 0;

	sq_init(&q, 2, 16);
	sq_push(&q, mk(0, 1, 100, 1));
	sq_push(&q, mk(1, 1, 200, 1));
	sq_push(&q, mk(2, 2, 150, 2));
	sq_push(&q, mk(3, 2, 0, 1));
	sq_push(&q, mk(4, 1, 300, 1));
	sq_remove(&q, &R[1]);		/* a cancelled one, from the middle */
	assert_int_equal(q.n_reqs, 4);
	r = sq_expire(&q, 150);
	for (struct infer_req *e = r; e; e = e->next) {
		assert_true(e == &R[0] || e == &R[2]);
		n++;
	}
	assert_int_equal(n, 2);
	assert_int_equal(q.n_reqs, 2);
	assert_int_equal(q.n_rows, 2);
	assert_null(sq_expire(&q, 299));
	assert_int_equal(sq_earliest_deadline(&q), 300);
	assert_int_equal(sq_rows_ahead(&q, 1), 1);
}

/* A full queue makes room for higher priority by dropping the lowest, latest-due. */
static void test_displace(void **state)
{
	struct squeue q;

	sq_init(&q, 3, 3);
	sq_push(&q, mk(0, 3, 100, 1));
	sq_push(&q, mk(1, 3, 200, 1));
	sq_push(&q, mk(2, 2, 50, 1));
	assert_int_equal(sq_push(&q, mk(3, 1, 10, 1)), -EAGAIN);
	assert_ptr_equal(sq_displace(&q, 1), &R[1]);	/* level 3, due last */
	assert_int_equal(sq_push(&q, &R[3]), 0);
	assert_ptr_equal(sq_displace(&q, 2), &R[0]);
	assert_null(sq_displace(&q, 2));		/* only levels 1 and 2 left */
	assert_ptr_equal(sq_displace(&q, 1), &R[2]);
	assert_null(sq_displace(&q, 1));
	assert_int_equal(q.n_reqs, 1);
}

/*
 * A request above the batch limit leaves in slices: its first fills the
 * batch behind what is ahead of it, the remainder keeps its place and its
 * rows count as queued, and it is done when the last slice is.
 */
static void test_slices(void **state)
{
	struct squeue q;
	struct infer_slice out[16];
	struct infer_req *big;

	sq_init(&q, 2, 16);
	sq_push(&q, mk(0, 1, 10, 20));
	big = mk(1, 1, 20, 50);
	sq_push(&q, big);
	sq_push(&q, mk(2, 2, 5, 4));
	assert_int_equal(q.n_rows, 74);

	/* batch 1: 20 whole + rows 0..11 of the big one */
	assert_int_equal(sq_take(&q, 32, 32, out, 16), 2);
	assert_ptr_equal(out[0].r, &R[0]);
	assert_int_equal(out[0].rows, 20);
	assert_ptr_equal(out[1].r, big);
	assert_int_equal(out[1].row0, 0);
	assert_int_equal(out[1].rows, 12);
	assert_int_equal(big->next_row, 12);
	assert_int_equal(q.n_reqs, 2);		/* the big one is still queued */
	assert_int_equal(q.n_rows, 38 + 4);
	assert_int_equal(sq_rows_ahead(&q, 1), 38);
	assert_ptr_equal(q.lv[1].head, big);

	/* batch 2: rows 12..43 (38 left > 32: sliced again) */
	assert_int_equal(sq_take(&q, 32, 32, out, 16), 1);
	assert_int_equal(out[0].row0, 12);
	assert_int_equal(out[0].rows, 32);
	assert_int_equal(big->slices_out, 2);
	assert_false(sq_slice_done(big));	/* batch 1 done: rows still queued */

	/* batch 3: the last 6 rows whole, then the level-2 request */
	assert_int_equal(sq_take(&q, 32, 32, out, 16), 2);
	assert_int_equal(out[0].row0, 44);
	assert_int_equal(out[0].rows, 6);
	assert_ptr_equal(out[1].r, &R[2]);
	assert_int_equal(q.n_reqs, 0);
	assert_int_equal(q.n_rows, 0);
	assert_false(sq_slice_done(big));	/* batch 2 */
	assert_true(sq_slice_done(big));	/* batch 3: the last one */

	/* A cut below the limit takes the remainder only while it fits. */
	big = mk(3, 1, 0, 10);
	sq_push(&q, big);
	assert_int_equal(sq_take(&q, 4, 8, out, 16), 1);	/* 10 > limit 8 */
	assert_int_equal(out[0].rows, 4);
	assert_int_equal(sq_take(&q, 4, 8, out, 16), 0);	/* 6 left <= 8: whole */
	assert_int_equal(sq_take(&q, 8, 8, out, 16), 1);
	assert_int_equal(out[0].row0, 4);
	assert_int_equal(out[0].rows, 6);
}

/* Dropping the queued remainder of a sliced request (expired, cancelled). */
static void test_drop_partly_run(void **state)
{
	struct squeue q;
	struct infer_slice out[4];
	struct infer_req *big = mk(0, 1, 100, 40);

	sq_init(&q, 2, 2);
	sq_push(&q, big);
	assert_int_equal(sq_take(&q, 16, 16, out, 4), 1);
	assert_int_equal(q.n_rows, 24);
	/* expiry takes the remainder out; a slice still runs: not answered yet */
	assert_ptr_equal(sq_expire(&q, 100), big);
	assert_int_equal(q.n_rows, 0);
	assert_int_equal(q.n_reqs, 0);
	assert_false(sq_drop(big));
	assert_true(sq_slice_done(big));	/* the running slice ends it */

	/* with no slice running, dropping ends it at once */
	big = mk(1, 2, 0, 40);
	sq_push(&q, big);
	assert_int_equal(sq_take(&q, 16, 16, out, 4), 1);
	assert_true(!sq_slice_done(big));
	sq_remove(&q, big);
	assert_int_equal(q.n_rows, 0);
	assert_true(sq_drop(big));

	/* a partly run request is never displaced */
	big = mk(2, 2, 0, 40);
	sq_push(&q, big);
	assert_int_equal(sq_take(&q, 16, 16, out, 4), 1);
	sq_push(&q, mk(3, 2, 50, 1));		/* due first: ahead of the remainder */
	assert_int_equal(sq_push(&q, mk(4, 1, 0, 1)), -EAGAIN);
	assert_ptr_equal(sq_displace(&q, 1), &R[3]);
	assert_null(sq_displace(&q, 1));
	assert_int_equal(q.n_rows, 24);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_order_priority_then_deadline),
		cmocka_unit_test(test_take_whole_requests_and_bound),
		cmocka_unit_test(test_expire_and_remove),
		cmocka_unit_test(test_displace),
		cmocka_unit_test(test_slices),
		cmocka_unit_test(test_drop_partly_run),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
