/* Unit tests for gateway/sched/router.c: which backend, or which rejection, and why. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdint.h>

#include "router.h"

#define MS 1000000ull

/* cpu: cheap and slow; gpu: dear and fast; dpu: in between. */
static struct router_cand cands[3];

static int setup(void **state)
{
	cands[0] = (struct router_cand){ .id = 0, .cost = 1.0, .queued = 0, .wait_ns = 0, .exec_ns = 8 * MS };
	cands[1] = (struct router_cand){ .id = 1, .cost = 5.0, .queued = 0, .wait_ns = 0, .exec_ns = 1 * MS };
	cands[2] = (struct router_cand){ .id = 2, .cost = 2.0, .queued = 3, .wait_ns = 2 * MS, .exec_ns = 2 * MS };
	return 0;
}

static enum route_result pick(enum route_policy pol, uint64_t deadline, bool shed, uint64_t sat,
			      int *out)
{
	struct route_conf rc = { .policy = pol, .margin_ns = 1 * MS };
	struct route_req rq = { .now_ns = 100 * MS, .deadline_ns = deadline, .sheddable = shed,
				.saturation_ns = sat };
	unsigned rr = 0;

	*out = -1;
	return router_pick(&rc, &rq, cands, 3, &rr, out);
}

static void test_slo_cheapest_that_meets(void **state)
{
	int i;

	/* 20 ms objective: all meet it with margin; the CPU is cheapest. */
	assert_int_equal(pick(ROUTE_SLO, 120 * MS, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 0);
	/* 6 ms: cpu (8 ms) misses; dpu finishes at 4 ms + 1 ms margin, cheaper than gpu. */
	assert_int_equal(pick(ROUTE_SLO, 106 * MS, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 2);
	/* 4.5 ms: only the gpu meets it with margin. */
	assert_int_equal(pick(ROUTE_SLO, 104 * MS + MS / 2, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 1);
	/* 1.5 ms: nobody meets it with margin; the gpu finishes first (1 ms) and still meets it. */
	assert_int_equal(pick(ROUTE_SLO, 101 * MS + MS / 2, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 1);
	/* 0.5 ms: nobody can: reject as late. */
	assert_int_equal(pick(ROUTE_SLO, 100 * MS + MS / 2, false, 0, &i), ROUTE_LATE);
	assert_int_equal(i, -1);
	/* No deadline: earliest completion. */
	assert_int_equal(pick(ROUTE_SLO, 0, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 1);
}

static void test_full_and_shed(void **state)
{
	int i;

	cands[1].full = true;
	/* gpu full: the dpu (done at 4 ms) meets 4.5 ms only without the margin. */
	assert_int_equal(pick(ROUTE_SLO, 104 * MS + MS / 2, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 2);
	assert_int_equal(pick(ROUTE_SLO, 103 * MS + MS / 2, false, 0, &i), ROUTE_LATE);
	assert_int_equal(pick(ROUTE_SLO, 106 * MS, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 2);
	cands[0].full = cands[2].full = true;
	assert_int_equal(pick(ROUTE_SLO, 200 * MS, false, 0, &i), ROUTE_FULL);
	assert_int_equal(pick(ROUTE_LEAST_QUEUE, 0, false, 0, &i), ROUTE_FULL);
	assert_int_equal(pick(ROUTE_ROUND_ROBIN, 0, false, 0, &i), ROUTE_FULL);
	setup(NULL);
	/* Sheddable, saturation at 1 ms: the dpu (2 ms of wait) is skipped and
	 * the idle gpu takes it (the cpu would miss the 6 ms deadline). */
	assert_int_equal(pick(ROUTE_SLO, 106 * MS, true, 1 * MS, &i), ROUTE_OK);
	assert_int_equal(i, 1);
	assert_int_equal(pick(ROUTE_SLO, 106 * MS, true, 3 * MS, &i), ROUTE_OK);
	assert_int_equal(i, 2);
	/* Every backend saturated: shed. */
	cands[0].wait_ns = cands[1].wait_ns = 5 * MS;
	assert_int_equal(pick(ROUTE_SLO, 200 * MS, true, 1 * MS, &i), ROUTE_SHED);
	assert_int_equal(pick(ROUTE_LEAST_QUEUE, 0, true, 1 * MS, &i), ROUTE_SHED);
	assert_int_equal(pick(ROUTE_LEAST_QUEUE, 0, true, 10 * MS, &i), ROUTE_OK);
	setup(NULL);
	/* Saturation is measured on the work queued ahead (work_ns) when the
	 * caller gives it, not on the calibrated wait: the dpu's 2 ms of work
	 * predicted as a 3 ms wait is still under a 2.5 ms saturation, but the
	 * calibrated wait decides the deadline (2 + 3 + 2 ms > 6 ms: late). */
	cands[2].work_ns = 2 * MS;
	cands[2].wait_ns = 3 * MS;
	cands[1].full = true;
	assert_int_equal(pick(ROUTE_SLO, 108 * MS, true, 2 * MS + MS / 2, &i), ROUTE_OK);
	assert_int_equal(i, 2);
	assert_int_equal(pick(ROUTE_SLO, 104 * MS + MS / 2, true, 2 * MS + MS / 2, &i), ROUTE_LATE);
	cands[2].work_ns = 3 * MS;	/* now over it, and so is the cpu: shed */
	cands[0].wait_ns = 3 * MS;
	assert_int_equal(pick(ROUTE_SLO, 108 * MS, true, 2 * MS + MS / 2, &i), ROUTE_SHED);
	setup(NULL);
	/* Not sheddable: never shed. */
	assert_int_equal(pick(ROUTE_SLO, 106 * MS, false, 0, &i), ROUTE_OK);
	assert_int_equal(router_pick(&(struct route_conf){ 0 }, &(struct route_req){ 0 }, cands, 0,
				     &(unsigned){ 0 }, &i), ROUTE_NO_BACKEND);
}

/* A queue that would displace lower priority is a last resort. */
static void test_displace_last_resort(void **state)
{
	int i;

	/* the cheap cpu meets 20 ms but is full of low priority: the dpu takes it */
	cands[0].displaces = true;
	assert_int_equal(pick(ROUTE_SLO, 120 * MS, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 2);
	/* gpu full too: still the dpu, the only one displacing nothing */
	cands[1].displaces = true;
	assert_int_equal(pick(ROUTE_SLO, 120 * MS, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 2);
	/* 4.5 ms: the dpu (done at 4 ms) makes it only inside the margin; the
	 * gpu keeps the margin: displacing beats scraping the deadline */
	assert_int_equal(pick(ROUTE_SLO, 104 * MS + MS / 2, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 1);
	/* 5 ms: the dpu keeps the 1 ms margin: no displacing */
	assert_int_equal(pick(ROUTE_SLO, 105 * MS, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 2);
	/* 3.5 ms: nothing else can: the displacing gpu is taken */
	assert_int_equal(pick(ROUTE_SLO, 103 * MS + MS / 2, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 1);
	/* least-queue also prefers not to displace */
	assert_int_equal(pick(ROUTE_LEAST_QUEUE, 0, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 2);
	/* only the last displaces: the ones before it, in their order, are
	 * chosen from (6 ms: the dpu would be picked; the gpu keeps the margin) */
	cands[0].displaces = cands[1].displaces = false;
	cands[2].displaces = true;
	assert_int_equal(pick(ROUTE_SLO, 106 * MS, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 1);
	assert_int_equal(pick(ROUTE_SLO, 120 * MS, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 0);
	cands[2].displaces = false;
}

static void test_least_queue_and_round_robin(void **state)
{
	struct route_conf rc = { .policy = ROUTE_ROUND_ROBIN };
	struct route_req rq = { .now_ns = 0 };
	unsigned rr = 0;
	int i, seen[3] = { 0 };

	cands[0].queued = 4;
	assert_int_equal(pick(ROUTE_LEAST_QUEUE, 0, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 1);	/* 0 queued */
	cands[1].queued = 3;
	assert_int_equal(pick(ROUTE_LEAST_QUEUE, 0, false, 0, &i), ROUTE_OK);
	assert_int_equal(i, 2);	/* tie at 3: cheaper */
	for (int k = 0; k < 9; k++) {
		assert_int_equal(router_pick(&rc, &rq, cands, 3, &rr, &i), ROUTE_OK);
		seen[i]++;
	}
	assert_int_equal(seen[0], 3);
	assert_int_equal(seen[1], 3);
	assert_int_equal(seen[2], 3);
	cands[1].full = true;
	for (int k = 0; k < 4; k++) {
		assert_int_equal(router_pick(&rc, &rq, cands, 3, &rr, &i), ROUTE_OK);
		assert_int_not_equal(i, 1);
	}
}

/* Power of d choices: all when few, d distinct when many, every one reachable. */
static void test_sample(void **state)
{
	int idx[8], hits[64] = { 0 };
	uint64_t rng = 0;

	/* up to ROUTER_SCAN_ALL candidates: every one, in order */
	assert_int_equal(router_sample(ROUTE_SLO, 4, 2, 0, &rng, idx), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(idx[i], i);
	assert_int_equal(router_sample(ROUTE_SLO, 0, 2, 0, &rng, idx), 0);
	/* d >= n: every one */
	assert_int_equal(router_sample(ROUTE_SLO, 6, 6, 0, &rng, idx), 6);
	/* many: d distinct ones in range, and over many draws each is drawn */
	for (int t = 0; t < 4000; t++) {
		assert_int_equal(router_sample(ROUTE_LEAST_QUEUE, 64, 3, 0, &rng, idx), 3);
		for (int j = 0; j < 3; j++) {
			assert_in_range(idx[j], 0, 63);
			for (int k = 0; k < j; k++)
				assert_int_not_equal(idx[j], idx[k]);
			hits[idx[j]]++;
		}
	}
	for (int i = 0; i < 64; i++)
		assert_true(hits[i] > 0);
	/* round-robin: consecutive from the cursor, wrapping */
	assert_int_equal(router_sample(ROUTE_ROUND_ROBIN, ROUTER_SCAN_ALL + 4, 2,
				       2 * (ROUTER_SCAN_ALL + 4) - 1, &rng, idx), 2);
	assert_int_equal(idx[0], ROUTER_SCAN_ALL + 3);
	assert_int_equal(idx[1], 0);
}

/* router_pick's pick, asserting it routed. */
static int pick_ok(const struct route_conf *rc, const struct route_req *rq,
		   const struct router_cand *c, int n, unsigned *rr)
{
	int i = -1;

	assert_int_equal(router_pick(rc, rq, c, n, rr, &i), ROUTE_OK);
	return i;
}

/* Tiers (variants): tier 1 only when tier 0 misses the deadline or is
 * full; a tier-0 pick without the margin stands when tier 1 misses too. */
static void test_tiers(void **state)
{
	struct route_conf rc = { .policy = ROUTE_SLO, .margin_ns = 1 * MS };
	struct route_req rq = { .now_ns = 100 * MS };
	struct router_cand c[4];
	unsigned rr = 0;
	int i = -1;

	/* 0, 1: FP32 (tier 0) on cpu (8 ms) and gpu (1 ms + 6 ms wait);
	 * 2, 3: INT8 (tier 1) on the same, faster. */
	c[0] = (struct router_cand){ .id = 0, .qi = 0, .cost = 1, .exec_ns = 8 * MS };
	c[1] = (struct router_cand){ .id = 1, .qi = 0, .cost = 5, .wait_ns = 6 * MS, .exec_ns = 1 * MS };
	c[2] = (struct router_cand){ .id = 0, .qi = 1, .cost = 1, .exec_ns = 2 * MS, .tier = 1 };
	c[3] = (struct router_cand){ .id = 1, .qi = 1, .cost = 5, .wait_ns = 6 * MS, .exec_ns = 1 * MS / 2, .tier = 1 };
	/* no deadline: tier 0's earliest (gpu FP32, 7 ms) */
	assert_int_equal(pick_ok(&rc, &rq, c, 4, &rr), 1);
	/* 20 ms: tier 0's cheapest meets it */
	rq.deadline_ns = 120 * MS;
	assert_int_equal(pick_ok(&rc, &rq, c, 4, &rr), 0);
	/* 7.5 ms: FP32 only without the margin (gpu at 7): INT8 cpu (2 + 1 <= 7.5) */
	rq.deadline_ns = 107 * MS + MS / 2;
	assert_int_equal(pick_ok(&rc, &rq, c, 4, &rr), 2);
	/* INT8 cpu busy too (6 ms wait): no INT8 meets 7.5 with the margin,
	 * the FP32 pick that meets it without stands */
	c[2].wait_ns = c[3].wait_ns = 7 * MS;
	assert_int_equal(pick_ok(&rc, &rq, c, 4, &rr), 1);
	/* 5 ms: nothing at all: late */
	rq.deadline_ns = 105 * MS;
	assert_int_equal(router_pick(&rc, &rq, c, 4, &rr, &i), ROUTE_LATE);
	/* least-queue: tier 0 unless it is full */
	rc.policy = ROUTE_LEAST_QUEUE;
	rq.deadline_ns = 0;
	c[0].queued = 9;
	assert_int_equal(pick_ok(&rc, &rq, c, 4, &rr), 1);
	c[0].full = c[1].full = true;
	assert_int_equal(router_pick(&rc, &rq, c, 4, &rr, &i), ROUTE_OK);
	assert_true(i == 2 || i == 3);
	c[2].full = c[3].full = true;
	assert_int_equal(router_pick(&rc, &rq, c, 4, &rr, &i), ROUTE_FULL);
}

/*
 * Probes: a candidate whose service time is due a new sample takes the
 * request instead of the pick when it is no worse by the policy's order
 * (tier, then cost), has room, displaces nothing, is unsaturated when
 * sheddable and meets the deadline with the margin at probe_exec_ns.
 */
static void test_probe(void **state)
{
	struct route_conf rc = { .policy = ROUTE_SLO, .margin_ns = 1 * MS };
	struct route_req rq = { .now_ns = 100 * MS, .deadline_ns = 200 * MS };
	struct router_cand c[3];
	unsigned rr = 0;
	int i = -1;

	/* a: learned 40 ms (a cold start), 1 ms by the warm start; b: 1 ms */
	c[0] = (struct router_cand){ .id = 0, .cost = 0.5, .exec_ns = 40 * MS,
				     .probe_exec_ns = 40 * MS };
	c[1] = (struct router_cand){ .id = 1, .cost = 0.5, .exec_ns = 1 * MS,
				     .probe_exec_ns = 1 * MS };
	/* not due: the same cost, b finishes first */
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 1);
	c[0].probe = true;
	c[0].probe_exec_ns = 1 * MS;
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 0);
	/* no deadline: a probe all the same */
	rq.deadline_ns = 0;
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 0);
	/* the deadline at the probe's prediction: 20 ms of wait + 1 + 1 margin */
	c[0].wait_ns = 20 * MS;
	rq.deadline_ns = 121 * MS;
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 1);
	rq.deadline_ns = 122 * MS;
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 0);
	c[0].wait_ns = 0;
	rq.deadline_ns = 200 * MS;
	/* never dearer than the pick; cheaper is fine */
	c[0].cost = 0.6;
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 1);
	c[0].cost = 0.4;	/* cheaper, 40 ms learned, meets 100 ms anyway: the pick */
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 0);
	c[0].cost = 0.5;
	/* room, nothing displaced, unsaturated */
	c[0].full = true;
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 1);
	c[0].full = false;
	c[0].displaces = true;
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 1);
	c[0].displaces = false;
	rq.sheddable = true;
	rq.saturation_ns = 2 * MS;
	c[0].work_ns = 3 * MS;
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 1);
	c[0].work_ns = 1 * MS;
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 0);
	rq.sheddable = false;
	c[0].work_ns = 0;
	/* the pick due itself: it stays (it gets the sample) */
	c[1].probe = true;
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 1);
	c[1].probe = false;
	/* only slo probes */
	rc.policy = ROUTE_LEAST_QUEUE;
	c[0].queued = 1;
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 1);
	rc.policy = ROUTE_SLO;
	c[0].queued = 0;
	/* nothing meets 30 ms by what was learned (b busy 35 ms): late without
	 * probes, the probe instead */
	rq.deadline_ns = 130 * MS;
	c[1].wait_ns = 35 * MS;
	c[0].probe = false;
	assert_int_equal(router_pick(&rc, &rq, c, 2, &rr, &i), ROUTE_LATE);
	c[0].probe = true;
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 0);
	c[1].wait_ns = 0;
	rq.deadline_ns = 200 * MS;
	/* tiers: a probe of a preferred tier at any cost, never of a later
	 * one; among probes the lowest tier, then the cheapest */
	c[0].tier = 1;
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 1);
	c[0].tier = 0;
	c[0].cost = 9;
	c[0].exec_ns = 150 * MS;	/* tier 0 misses by what it learned */
	c[1].tier = 1;
	c[0].probe = false;
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 1);
	c[0].probe = true;
	assert_int_equal(pick_ok(&rc, &rq, c, 2, &rr), 0);
	c[1].tier = 0;
	c[0].cost = 0.5;
	c[0].exec_ns = 40 * MS;
	c[2] = (struct router_cand){ .id = 2, .cost = 0.4, .exec_ns = 50 * MS,
				     .probe_exec_ns = 2 * MS, .probe = true };
	c[1].cost = 0.45;	/* the pick: c[2] meets the deadline too, but is due */
	assert_int_equal(pick_ok(&rc, &rq, c, 3, &rr), 2);
	c[2].probe = false;
	assert_int_equal(pick_ok(&rc, &rq, c, 3, &rr), 2);	/* cheapest and meets it: the policy's own pick */
	c[2].exec_ns = 150 * MS;	/* misses: b is the pick, a (dearer) is not probed */
	assert_int_equal(pick_ok(&rc, &rq, c, 3, &rr), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_slo_cheapest_that_meets, setup),
		cmocka_unit_test_setup(test_full_and_shed, setup),
		cmocka_unit_test_setup(test_displace_last_resort, setup),
		cmocka_unit_test_setup(test_least_queue_and_round_robin, setup),
		cmocka_unit_test(test_sample),
		cmocka_unit_test(test_tiers),
		cmocka_unit_test(test_probe),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
