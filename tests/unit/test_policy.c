/*
 * Unit tests for gateway/sched/policy.c: every decision in virtual time, numbers
 * checked.  Service time warm start t(n) = 1000 + 100 x bucket(n) ns, so
 * t(1) = 1100, t(2) = 1200, t(4) = 1400, t(8) = 1800 ns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "infer.h"
#include "policy.h"

#define T1 1100
#define T2 1200
#define T4 1400
#define T8 1800

struct fix {
	struct pol_queue q[2];
	struct pol_queue *qp[2];
	uint64_t busy[2];
	struct pol_be b;
	struct infer_req r[16];
	struct infer_slice out[16];
};

static struct pol_conf conf(void)
{
	return (struct pol_conf){ .max_batch = 8, .max_rows = 32, .max_queue = 4,
				  .priority_levels = 3, .drop_hopeless = true };
}

/* One backend with 2 slots and n_q queues configured by c. */
static void fix_init(struct fix *f, const struct pol_conf *c, int n_q)
{
	memset(f, 0, sizeof(*f));
	for (int i = 0; i < n_q; i++) {
		pol_init(&f->q[i], c, 1000, 100);
		f->qp[i] = &f->q[i];
	}
	f->b = (struct pol_be){ .n_q = n_q, .q = f->qp, .n_slots = 2, .busy_until = f->busy };
}

static struct infer_req *req(struct fix *f, int i, int prio, int rows, uint64_t arrival,
			     uint64_t deadline)
{
	struct infer_req *r = &f->r[i];

	memset(r, 0, sizeof(*r));
	r->priority = prio;
	r->rows = rows;
	r->arrival_ns = arrival;
	r->deadline_ns = deadline;
	return r;
}

static void admit_ok(struct fix *f, int qi, struct infer_req *r, uint64_t now)
{
	struct infer_req *d = (struct infer_req *)1;

	assert_int_equal(pol_admit(&f->b, qi, r, now, &d), 0);
	assert_null(d);
}

static void test_view_idle_backend(void **state)
{
	struct fix f;
	struct pol_conf c = conf();
	struct router_cand v = { .id = 7, .qi = 3, .cost = 2.5 };

	fix_init(&f, &c, 1);
	pol_view(&f.b, 0, 1, 1, 0, &v);
	assert_int_equal(v.queued, 0);
	assert_false(v.full);
	assert_false(v.displaces);
	assert_int_equal(v.wait_ns, 0);
	assert_int_equal(v.work_ns, 0);
	assert_int_equal(v.exec_ns, T1);
	/* the caller's fields are left alone */
	assert_int_equal(v.id, 7);
	assert_int_equal(v.qi, 3);
	assert_true(v.cost == 2.5);
}

static void test_admission_under_load(void **state)
{
	struct fix f;
	struct pol_conf c = conf();
	struct router_cand v;
	uint64_t wake, oldest;
	int rows, n;

	fix_init(&f, &c, 1);
	admit_ok(&f, 0, req(&f, 0, 2, 4, 0, 0), 0);
	admit_ok(&f, 0, req(&f, 1, 2, 4, 10, 0), 10);
	admit_ok(&f, 0, req(&f, 2, 2, 4, 20, 0), 20);
	assert_int_equal(f.r[2].enqueue_ns, 20);
	assert_int_equal(f.r[0].pred_wait_ns, 0);	/* both slots idle */
	/* 8 rows ahead: one full batch, over 2 slots */
	assert_int_equal(f.r[2].pred_wait_ns, T8 / 2);
	/* 12 rows >= the limit of 8: cut 8, the first two requests whole */
	assert_int_equal(pol_cut(&f.q[0], 100, false, &wake), 8);
	n = pol_take(&f.b, 0, 0, 8, 100, f.out, 16, &rows, &oldest);
	assert_int_equal(n, 2);
	assert_int_equal(rows, 8);
	assert_int_equal(oldest, 0);
	assert_int_equal(f.r[0].dequeue_ns, 100);
	assert_int_equal(f.busy[0], 100 + T8);
	/* slot 1 idle: a priority 1 request joins the next batch (4 queued +
	 * its 1 row: a batch of 5, bucket 8) */
	pol_view(&f.b, 0, 1, 1, 100, &v);
	assert_int_equal(v.queued, 1);
	assert_int_equal(v.wait_ns, 0);
	assert_int_equal(v.exec_ns, T8);
	/* the rest (4 rows, no delay) goes on slot 1 */
	assert_int_equal(pol_cut(&f.q[0], 200, false, &wake), 4);
	assert_int_equal(pol_take(&f.b, 0, 1, 4, 200, f.out, 16, &rows, &oldest), 1);
	assert_int_equal(f.busy[1], 200 + T4);
	/* 24 rows of priority 2 behind two busy slots */
	admit_ok(&f, 0, req(&f, 3, 2, 8, 300, 0), 300);
	assert_int_equal(f.r[3].pred_wait_ns, 1300);	/* slot 1 frees at 1600 */
	admit_ok(&f, 0, req(&f, 4, 2, 8, 300, 0), 300);
	admit_ok(&f, 0, req(&f, 5, 2, 8, 300, 0), 300);
	/* priority 1 jumps the queue: only the residual */
	pol_view(&f.b, 0, 1, 1, 300, &v);
	assert_int_equal(v.wait_ns, 1300);
	assert_int_equal(v.exec_ns, T8);	/* its batch fills with queued rows */
	/* priority 2: 3 batches of 8 ahead over 2 slots */
	pol_view(&f.b, 0, 1, 2, 300, &v);
	assert_int_equal(v.work_ns, 1300 + 3 * T8 / 2);
	assert_int_equal(v.wait_ns, 1300 + 3 * T8 / 2);	/* factor 1 at start */
	assert_int_equal(v.exec_ns, T1);
	assert_int_equal(v.queued, 3);
	assert_false(v.full);
	/* above the model's rows: refused, nothing queued */
	{
		struct infer_req *d;

		assert_int_equal(pol_admit(&f.b, 0, req(&f, 6, 1, 33, 300, 0), 300, &d), -E2BIG);
		assert_null(d);
		assert_int_equal(f.q[0].sq.n_reqs, 3);
	}
}

static void test_sliced_request_exec(void **state)
{
	struct fix f;
	struct pol_conf c = conf();
	struct router_cand v;

	fix_init(&f, &c, 1);
	/* 20 rows, limit 8: batches of 8, 8, 4; the two after the first
	 * spread over the 2 slots */
	pol_view(&f.b, 0, 20, 1, 0, &v);
	assert_int_equal(v.exec_ns, T8 + (T8 + T4) / 2);
}

static void test_other_models_compete(void **state)
{
	struct fix f;
	struct pol_conf c = conf();
	struct router_cand v;

	fix_init(&f, &c, 2);
	admit_ok(&f, 1, req(&f, 0, 1, 8, 0, 0), 0);
	admit_ok(&f, 1, req(&f, 1, 1, 2, 0, 0), 0);
	/* queue 1 holds 10 rows: 2 batches of its limit, over 2 slots */
	pol_view(&f.b, 0, 1, 3, 0, &v);
	assert_int_equal(v.wait_ns, 2 * T8 / 2);
	assert_int_equal(v.queued, 0);
}

static void test_full_and_displacement(void **state)
{
	struct fix f;
	struct pol_conf c = conf();
	struct router_cand v;
	struct infer_req *d;

	fix_init(&f, &c, 1);
	admit_ok(&f, 0, req(&f, 0, 1, 1, 0, 0), 0);
	admit_ok(&f, 0, req(&f, 1, 2, 1, 0, 500), 0);
	admit_ok(&f, 0, req(&f, 2, 2, 1, 0, 900), 0);
	admit_ok(&f, 0, req(&f, 3, 3, 1, 0, 0), 0);
	/* max_queue 4: full to priority 3, room for 1 and 2 by displacing */
	pol_view(&f.b, 0, 1, 3, 0, &v);
	assert_true(v.full);
	assert_false(v.displaces);
	pol_view(&f.b, 0, 1, 2, 0, &v);
	assert_false(v.full);
	assert_true(v.displaces);
	/* priority 2 displaces the priority 3 request */
	assert_int_equal(pol_admit(&f.b, 0, req(&f, 4, 2, 1, 0, 0), 0, &d), 0);
	assert_ptr_equal(d, &f.r[3]);
	/* now only priority 1 can displace; priority 2's tail (due last) goes */
	pol_view(&f.b, 0, 1, 2, 0, &v);
	assert_true(v.full);
	assert_int_equal(pol_admit(&f.b, 0, req(&f, 5, 2, 1, 0, 0), 0, &d), -EAGAIN);
	assert_null(d);
	assert_int_equal(pol_admit(&f.b, 0, req(&f, 6, 1, 1, 0, 0), 0, &d), 0);
	assert_ptr_equal(d, &f.r[4]);	/* no deadline: due last */
	assert_int_equal(f.q[0].sq.n_reqs, 4);
	/* priority 1 pushes out the rest of level 2, latest deadline first */
	assert_int_equal(pol_admit(&f.b, 0, req(&f, 7, 1, 1, 0, 0), 0, &d), 0);
	assert_ptr_equal(d, &f.r[2]);
	assert_int_equal(pol_admit(&f.b, 0, req(&f, 8, 1, 1, 0, 0), 0, &d), 0);
	assert_ptr_equal(d, &f.r[1]);
	/* full to every priority now: nothing below priority 1 to push out */
	pol_view(&f.b, 0, 1, 1, 0, &v);
	assert_true(v.full);
	assert_false(v.displaces);
}

/* Displacing is a last resort when another backend can serve. */
static void test_displace_last_resort(void **state)
{
	struct fix a, b;
	struct pol_conf c = conf();
	struct router_cand cand[2];
	struct route_conf rc = { .policy = ROUTE_SLO, .margin_ns = 0 };
	struct route_req rq = { .now_ns = 0, .deadline_ns = 1000000 };
	unsigned rr = 0;
	int pick = -1;

	fix_init(&a, &c, 1);
	fix_init(&b, &c, 1);
	for (int i = 0; i < 4; i++)
		admit_ok(&a, 0, req(&a, i, 3, 1, 0, 0), 0);
	admit_ok(&b, 0, req(&b, 0, 1, 8, 0, 0), 0);
	admit_ok(&b, 0, req(&b, 1, 1, 8, 0, 0), 0);
	b.busy[0] = b.busy[1] = 5000;
	/* a: cheap, empty of priority 1 but full (would displace); b: dear,
	 * busy, with room */
	cand[0] = (struct router_cand){ .id = 0, .cost = 1 };
	cand[1] = (struct router_cand){ .id = 1, .cost = 10 };
	pol_view(&a.b, 0, 1, 1, 0, &cand[0]);
	pol_view(&b.b, 0, 1, 1, 0, &cand[1]);
	assert_true(cand[0].displaces);
	assert_false(cand[1].displaces);
	assert_true(cand[0].wait_ns < cand[1].wait_ns);
	assert_int_equal(router_pick(&rc, &rq, cand, 2, &rr, &pick), ROUTE_OK);
	assert_int_equal(pick, 1);
	/* b alone cannot take it: a displaces */
	b.q[0].sq.max_reqs = 2;
	pol_view(&b.b, 0, 1, 1, 0, &cand[1]);
	assert_true(cand[1].full);
	assert_int_equal(router_pick(&rc, &rq, cand, 2, &rr, &pick), ROUTE_OK);
	assert_int_equal(pick, 0);
}

static void test_drop_hopeless(void **state)
{
	struct fix f;
	struct pol_conf c = conf();
	struct infer_req *l;
	uint64_t need;

	fix_init(&f, &c, 1);
	admit_ok(&f, 0, req(&f, 0, 1, 1, 0, 10000), 0);	/* fine */
	admit_ok(&f, 0, req(&f, 1, 2, 1, 0, 1000), 0);	/* 1000 left < t(2) */
	admit_ok(&f, 0, req(&f, 2, 3, 1, 0, 0), 0);	/* no deadline */
	l = pol_expire(&f.q[0], 100, &need);
	/* a batch now holds the 3 queued rows: t(4) */
	assert_int_equal(need, T4);
	assert_ptr_equal(l, &f.r[1]);
	assert_null(l->next);
	assert_int_equal(f.q[0].sq.n_reqs, 2);
	/* it was admitted on a predicted wait: a miss for its level */
	assert_true(fabs(svc_wait_factor(&f.q[0].svc, 2) - (1 + 0.005 * 0.99)) < 1e-12);
	assert_true(svc_wait_factor(&f.q[0].svc, 1) == 1.0);
	/* without drop_hopeless only a passed deadline expires */
	c.drop_hopeless = false;
	pol_configure(&f.q[0], &c);
	admit_ok(&f, 0, req(&f, 3, 2, 1, 0, 1000), 0);
	l = pol_expire(&f.q[0], 100, &need);
	assert_int_equal(need, 0);
	assert_null(l);
	l = pol_expire(&f.q[0], 1000, &need);
	assert_ptr_equal(l, &f.r[3]);
}

static void test_batch_cut_preferred_and_delay(void **state)
{
	struct fix f;
	struct pol_conf c = conf();
	uint64_t wake;

	c.max_queue = 16;
	c.delay_us = 10;		/* 10000 ns */
	c.n_preferred = 2;
	c.preferred[0] = 2;
	c.preferred[1] = 4;
	fix_init(&f, &c, 1);
	/* nothing queued: nothing to wait for */
	assert_int_equal(pol_cut(&f.q[0], 0, false, &wake), 0);
	assert_int_equal(wake, UINT64_MAX);
	/* 1 row: below every preferred size, wait for the delay */
	admit_ok(&f, 0, req(&f, 0, 1, 1, 1000, 0), 1000);
	assert_int_equal(pol_cut(&f.q[0], 2000, false, &wake), 0);
	assert_int_equal(wake, 11000);
	/* draining (shutdown): cut what is there */
	assert_int_equal(pol_cut(&f.q[0], 2000, true, &wake), 1);
	/* the delay elapsed */
	assert_int_equal(pol_cut(&f.q[0], 11000, false, &wake), 1);
	/* 3 rows: the largest preferred size queued */
	admit_ok(&f, 0, req(&f, 1, 1, 2, 1000, 0), 1000);
	assert_int_equal(pol_cut(&f.q[0], 2000, false, &wake), 2);
	admit_ok(&f, 0, req(&f, 2, 1, 2, 1000, 0), 1000);
	assert_int_equal(pol_cut(&f.q[0], 2000, false, &wake), 4);
	/* a deadline brings the cut forward: 5 rows (t(8)) due at 6000 */
	c.n_preferred = 0;
	fix_init(&f, &c, 1);
	admit_ok(&f, 0, req(&f, 0, 1, 5, 1000, 6000), 1000);
	assert_int_equal(pol_cut(&f.q[0], 2000, false, &wake), 0);
	assert_int_equal(wake, 6000 - T8);
	assert_int_equal(pol_cut(&f.q[0], 6000 - T8, false, &wake), 5);
	/* a head larger than the cut runs alone rather than stall the queue */
	{
		int rows, n;
		uint64_t oldest;

		n = pol_take(&f.b, 0, 0, 2, 7000, f.out, 16, &rows, &oldest);
		assert_int_equal(n, 1);
		assert_int_equal(rows, 5);
		assert_int_equal(oldest, 1000);
	}
}

static void test_wait_calibration(void **state)
{
	struct fix f;
	struct pol_conf c = conf();
	struct router_cand v;
	double want = 1;

	c.max_queue = 16;
	fix_init(&f, &c, 1);
	/* 100 requests predicted to wait 2000 ns that waited 5000 */
	for (int i = 0; i < 100; i++) {
		uint64_t t0 = (uint64_t)i * 100000, oldest;
		int rows;

		f.busy[0] = f.busy[1] = t0 + 2000;
		admit_ok(&f, 0, req(&f, 0, 2, 1, t0, 0), t0);
		assert_int_equal(f.r[0].pred_wait_ns, 2000);
		assert_int_equal(pol_take(&f.b, 0, 0, 1, t0 + 5000, f.out, 16, &rows, &oldest), 1);
		want *= 1 + 0.005 * 0.99;
	}
	assert_true(fabs(svc_wait_factor(&f.q[0].svc, 2) - want) < 1e-9);
	assert_true(want > 1.6 && want < 1.7);
	assert_true(svc_wait_factor(&f.q[0].svc, 1) == 1.0);
	/* the router sees level 2's waits scaled, the raw work unchanged */
	f.busy[0] = f.busy[1] = 10000000 + 3000;
	pol_view(&f.b, 0, 1, 2, 10000000, &v);
	assert_int_equal(v.work_ns, 3000);
	assert_int_equal(v.wait_ns, (uint64_t)(3000 * want));
	pol_view(&f.b, 0, 1, 1, 10000000, &v);
	assert_int_equal(v.wait_ns, 3000);
	/* a wait predicted below one batch of 1 row teaches nothing */
	f.busy[0] = f.busy[1] = 0;
	admit_ok(&f, 0, req(&f, 0, 3, 1, 0, 0), 0);
	assert_int_equal(f.r[0].pred_wait_ns, 0);
	{
		int rows;
		uint64_t oldest;

		pol_take(&f.b, 0, 0, 1, 50000, f.out, 16, &rows, &oldest);
	}
	assert_true(svc_wait_factor(&f.q[0].svc, 3) == 1.0);
}

static void test_learn_service_time_and_aimd(void **state)
{
	struct fix f;
	struct pol_conf c = conf();

	c.adaptive = true;
	c.objective_ns = 10000;
	fix_init(&f, &c, 1);
	f.busy[1] = 123;
	/* a miss halves the limit, and the batch's time is learned */
	assert_int_equal(pol_learn(&f.b, 0, 1, 8, 5000, 30000, 10000), 4);
	assert_int_equal(f.busy[1], 0);
	assert_int_equal(svc_predict(&f.q[0].svc, 8), 5000);
	assert_int_equal(pol_learn(&f.b, 0, 0, 8, 5000, 30000, 10000), 2);
	assert_int_equal(pol_learn(&f.b, 0, 0, 8, 5000, 30000, 10000), 1);
	assert_int_equal(pol_learn(&f.b, 0, 0, 8, 5000, 30000, 10000), 1);	/* the floor */
	/* +1 after 8 batches in a row within the target */
	for (int i = 0; i < 7; i++)
		assert_int_equal(pol_learn(&f.b, 0, 0, 1, 1000, 20000, 15000), 1);
	assert_int_equal(pol_learn(&f.b, 0, 0, 1, 1000, 20000, 15000), 2);
	assert_int_equal(f.q[0].bp.max_batch, 2);
	/* EWMA, alpha 0.2 */
	pol_learn(&f.b, 0, 0, 8, 10000, 20000, 15000);
	assert_int_equal(svc_predict(&f.q[0].svc, 8), 6000);
	/* not adaptive: the limit stays */
	c.adaptive = false;
	pol_configure(&f.q[0], &c);
	assert_int_equal(f.q[0].bp.max_batch, 8);
	assert_int_equal(pol_learn(&f.b, 0, 0, 8, 5000, 90000, 0), 8);
	/* a reload keeps the learned service time */
	assert_true(f.q[0].svc.seen[3] == 6);
}

/* Internal requests (calibration): cut at once, counted until their last
 * rows leave, teaching no wait calibration; pol_release learns nothing. */
static void test_internal_requests(void **state)
{
	struct fix f;
	struct pol_conf c = conf();
	uint64_t wake, oldest;
	int rows;

	c.max_queue = 16;
	c.delay_us = 10;		/* a traffic request waits 10000 ns */
	fix_init(&f, &c, 1);
	admit_ok(&f, 0, req(&f, 0, 1, 1, 1000, 0), 1000);
	assert_int_equal(pol_cut(&f.q[0], 2000, false, &wake), 0);
	assert_int_equal(wake, 11000);
	/* an internal request queued: cut whatever is there now */
	req(&f, 1, 1, 12, 1000, 0)->internal = true;
	admit_ok(&f, 0, &f.r[1], 1000);
	assert_int_equal(f.q[0].n_internal, 1);
	assert_int_equal(pol_cut(&f.q[0], 2000, false, &wake), 8);
	/* the traffic request's first slice calibrates; the internal one's
	 * first 7 rows leave, its last 5 stay queued (still counted) */
	f.r[0].pred_wait_ns = 2000;	/* predicted 2000, waited 4000 */
	f.r[1].pred_wait_ns = 2000;
	assert_int_equal(pol_take(&f.b, 0, 0, 8, 5000, f.out, 16, &rows, &oldest), 2);
	assert_int_equal(rows, 8);
	assert_int_equal(f.q[0].n_internal, 1);
	assert_true(fabs(svc_wait_factor(&f.q[0].svc, 1) - (1 + 0.005 * 0.99)) < 1e-9);
	assert_int_equal(pol_cut(&f.q[0], 5000, false, &wake), 5);
	assert_int_equal(pol_take(&f.b, 0, 1, 5, 6000, f.out, 16, &rows, &oldest), 1);
	assert_int_equal(rows, 5);
	assert_int_equal(f.q[0].n_internal, 0);
	/* only the traffic request taught the calibration */
	assert_true(fabs(svc_wait_factor(&f.q[0].svc, 1) - (1 + 0.005 * 0.99)) < 1e-9);
	/* nothing internal left: a 1-row traffic request waits again */
	admit_ok(&f, 0, req(&f, 2, 1, 1, 7000, 0), 7000);
	assert_int_equal(pol_cut(&f.q[0], 8000, false, &wake), 0);
	assert_int_equal(wake, 17000);
	/* a removed internal request stops counting */
	req(&f, 3, 1, 1, 8000, 0)->internal = true;
	admit_ok(&f, 0, &f.r[3], 8000);
	assert_int_equal(f.q[0].n_internal, 1);
	pol_remove(&f.q[0], &f.r[3]);
	assert_int_equal(f.q[0].n_internal, 0);
	/* pol_release frees the slot's prediction and learns nothing */
	assert_true(f.busy[1] > 0);
	assert_int_equal(pol_release(&f.b, 0, 1), 8);
	assert_int_equal(f.busy[1], 0);
	assert_int_equal(svc_predict(&f.q[0].svc, 8), T8);
}

/* pol_topup: rows queued since the cut join it, up to the batch limit,
 * and the slot's predicted end follows; not with preferred sizes. */
static void test_topup(void **state)
{
	struct fix f;
	struct pol_conf c = conf();
	uint64_t oldest;
	int rows, n;

	c.max_queue = 16;
	fix_init(&f, &c, 1);
	admit_ok(&f, 0, req(&f, 0, 1, 2, 1000, 0), 1000);
	n = pol_take(&f.b, 0, 0, 2, 2000, f.out, 16, &rows, &oldest);
	assert_int_equal(n, 1);
	assert_int_equal(rows, 2);
	assert_int_equal(f.busy[0], 2000 + T2);
	/* nothing queued since: nothing added */
	assert_int_equal(pol_topup(&f.b, 0, 0, 2500, f.out, n, 16, &rows, &oldest), 0);
	/* 3 + 3 rows arrive, then 1 that does not fit */
	admit_ok(&f, 0, req(&f, 1, 1, 3, 500, 0), 2100);
	admit_ok(&f, 0, req(&f, 2, 1, 3, 2200, 0), 2200);
	admit_ok(&f, 0, req(&f, 3, 1, 1, 2300, 0), 2300);
	assert_int_equal(pol_topup(&f.b, 0, 0, 3000, f.out, n, 16, &rows, &oldest), 2);
	assert_int_equal(rows, 8);
	assert_int_equal(oldest, 500);
	assert_ptr_equal(f.out[1].r, &f.r[1]);
	assert_ptr_equal(f.out[2].r, &f.r[2]);
	assert_int_equal(f.out[2].rows, 3);
	assert_int_equal(f.r[1].dequeue_ns, 3000);
	assert_int_equal(f.busy[0], 3000 + T8);
	/* full: nothing more */
	assert_int_equal(pol_topup(&f.b, 0, 0, 3000, f.out, 3, 16, &rows, &oldest), 0);
	assert_int_equal(f.q[0].sq.n_rows, 1);
	/* preferred sizes chose the cut: no topup */
	c.n_preferred = 1;
	c.preferred[0] = 2;
	fix_init(&f, &c, 1);
	admit_ok(&f, 0, req(&f, 0, 1, 2, 1000, 0), 1000);
	n = pol_take(&f.b, 0, 0, 2, 2000, f.out, 16, &rows, &oldest);
	admit_ok(&f, 0, req(&f, 1, 1, 1, 2100, 0), 2100);
	assert_int_equal(pol_topup(&f.b, 0, 0, 3000, f.out, n, 16, &rows, &oldest), 0);
	assert_int_equal(rows, 2);
}

static void test_prepare_priority(void **state)
{
	struct pol_prio_conf pc = { .levels = 3, .sheddable_levels = 1, .shed_wait_fraction = 0.5 };
	struct infer_req r = { .priority = 0, .arrival_ns = 1000, .deadline_ns = 41000 };
	struct route_req rq;

	pol_prepare(&pc, 2, 100000, &r, 5000, &rq);
	assert_int_equal(r.priority, 2);	/* the model's */
	assert_false(r.sheddable);
	assert_int_equal(rq.now_ns, 5000);
	assert_int_equal(rq.deadline_ns, 41000);
	assert_false(rq.sheddable);
	assert_int_equal(rq.saturation_ns, 50000);	/* half the model's objective */
	r.priority = 9;
	pol_prepare(&pc, 2, 0, &r, 5000, &rq);
	assert_int_equal(r.priority, 3);
	assert_true(r.sheddable && rq.sheddable);
	assert_int_equal(rq.saturation_ns, 20000);	/* half the request's own */
	r.priority = -4;
	r.deadline_ns = 0;
	pol_prepare(&pc, 0, 0, &r, 5000, &rq);
	assert_int_equal(r.priority, 1);
	assert_int_equal(rq.saturation_ns, 0);
}

/*
 * Variants in virtual time: two backends (A cost 1, B cost 2), each with
 * a model's FP32 queue (t(n) = 1000 + 100 n: T1..T8) and its INT8 queue
 * (t(n) = 250 + 25 n: faster, learned apart), both on the backend's 2
 * slots.  The candidates are the four (backend, variant) pairs, FP32 tier
 * 0 and INT8 tier 1 (the `accurate` policy); the router must pick INT8
 * exactly when no FP32 candidate meets the deadline with the margin.
 */
#define Q1 275
#define VAR_MARGIN 100

static void var_fix(struct fix *f, const struct pol_conf *c)
{
	memset(f, 0, sizeof(*f));
	pol_init(&f->q[0], c, 1000, 100);
	pol_init(&f->q[1], c, 250, 25);
	f->qp[0] = &f->q[0];
	f->qp[1] = &f->q[1];
	f->b = (struct pol_be){ .n_q = 2, .q = f->qp, .n_slots = 2, .busy_until = f->busy };
}

/* Route a 1-row request at now (deadline: absolute, 0 = none) over A and
 * B; *c gets the pick.  Returns the router's result. */
static enum route_result var_route(struct fix *a, struct fix *b, uint64_t now, uint64_t deadline,
				   struct router_cand *c, uint64_t *best_fp32)
{
	struct route_conf rc = { .policy = ROUTE_SLO, .margin_ns = VAR_MARGIN };
	struct route_req rq = { .now_ns = now, .deadline_ns = deadline };
	struct router_cand cand[4];
	struct fix *fx[2] = { a, b };
	unsigned rr = 0;
	int pick = -1;
	enum route_result why;

	*best_fp32 = UINT64_MAX;
	for (int k = 0; k < 4; k++) {
		cand[k] = (struct router_cand){ .id = k / 2, .qi = k % 2, .cost = 1.0 + k / 2,
						.tier = k % 2 };
		pol_view(&fx[k / 2]->b, k % 2, 1, 1, now, &cand[k]);
		if (k % 2 == 0 && cand[k].wait_ns + cand[k].exec_ns < *best_fp32)
			*best_fp32 = cand[k].wait_ns + cand[k].exec_ns;
	}
	why = router_pick(&rc, &rq, cand, 4, &rr, &pick);
	if (why == ROUTE_OK)
		*c = cand[pick];
	return why;
}

static void test_variants_accurate(void **state)
{
	struct fix a, b;
	struct pol_conf c = conf();
	struct router_cand p;
	uint64_t now = 1000000, best;
	int n_int8 = 0, n_fp32 = 0;

	c.max_queue = 64;
	var_fix(&a, &c);
	var_fix(&b, &c);
	/* Idle: FP32 on the cheaper backend, whatever the deadline it meets. */
	assert_int_equal(var_route(&a, &b, now, now + 5000, &p, &best), ROUTE_OK);
	assert_int_equal(p.id, 0);
	assert_int_equal(p.qi, 0);
	/* A deadline FP32 cannot meet even idle (T1 + margin > 1000), INT8 can. */
	assert_int_equal(var_route(&a, &b, now, now + 1000, &p, &best), ROUTE_OK);
	assert_int_equal(p.id, 0);
	assert_int_equal(p.qi, 1);
	/* No deadline: FP32, always. */
	assert_int_equal(var_route(&a, &b, now, 0, &p, &best), ROUTE_OK);
	assert_int_equal(p.qi, 0);

	/* A loaded: 4 FP32 batches of 8 queued (wait 4 T8 / 2 slots).  B's
	 * FP32 still meets 3000: B FP32, not A's cheaper INT8. */
	for (int i = 0; i < 4; i++)
		admit_ok(&a, 0, req(&a, i, 1, 8, now, 0), now);
	assert_int_equal(var_route(&a, &b, now, now + 3000, &p, &best), ROUTE_OK);
	assert_int_equal(p.id, 1);
	assert_int_equal(p.qi, 0);

	/* B loaded too (2 batches: wait T8).  B FP32 ends at T8 + T1 = 2900:
	 * a 2500 deadline is INT8 on B (T8 + Q1 = 2075, the INT8 queue waits
	 * for the same slots); A's INT8 waits 3600, too long. */
	for (int i = 0; i < 2; i++)
		admit_ok(&b, 0, req(&b, i, 1, 8, now, 0), now);
	assert_int_equal(var_route(&a, &b, now, now + 2500, &p, &best), ROUTE_OK);
	assert_int_equal(p.id, 1);
	assert_int_equal(p.qi, 1);
	/* FP32 would scrape in without the margin (2900 <= 2950): the margin
	 * is part of meeting the deadline, INT8 keeps it. */
	assert_int_equal(var_route(&a, &b, now, now + 2950, &p, &best), ROUTE_OK);
	assert_int_equal(p.qi, 1);
	/* Nothing meets 1500: late. */
	assert_int_equal(var_route(&a, &b, now, now + 1500, &p, &best), ROUTE_LATE);

	/* Exactly when: over a sweep of deadlines, INT8 iff no FP32 candidate
	 * meets it with the margin; FP32 otherwise. */
	for (uint64_t d = 500; d <= 8000; d += 25) {
		enum route_result why = var_route(&a, &b, now, now + d, &p, &best);
		bool fp32_meets = best + VAR_MARGIN <= d;

		if (why != ROUTE_OK) {
			assert_false(fp32_meets);
			continue;
		}
		assert_int_equal(p.qi, fp32_meets ? 0 : 1);
		n_int8 += p.qi == 1;
		n_fp32 += p.qi == 0;
	}
	assert_true(n_int8 > 0 && n_fp32 > 0);
}

/* A fixed variant (variant_policy fp32|int8, or parameters.variant) is a
 * candidate set of that variant alone: one tier, the policy as ever. */
static void test_variants_fixed(void **state)
{
	struct fix a;
	struct pol_conf c = conf();
	struct route_conf rc = { .policy = ROUTE_SLO, .margin_ns = VAR_MARGIN };
	struct route_req rq = { .now_ns = 0, .deadline_ns = 1000 };
	struct router_cand cand;
	unsigned rr = 0;
	int pick;

	var_fix(&a, &c);
	/* fp32 alone cannot meet 1000: late, never INT8 behind its back */
	cand = (struct router_cand){ .id = 0, .qi = 0, .cost = 1 };
	pol_view(&a.b, 0, 1, 1, 0, &cand);
	assert_int_equal(router_pick(&rc, &rq, &cand, 1, &rr, &pick), ROUTE_LATE);
	/* int8 alone, no deadline: INT8 */
	rq.deadline_ns = 0;
	cand = (struct router_cand){ .id = 0, .qi = 1, .cost = 1 };
	pol_view(&a.b, 1, 1, 1, 0, &cand);
	assert_int_equal(router_pick(&rc, &rq, &cand, 1, &rr, &pick), ROUTE_OK);
	assert_int_equal(cand.exec_ns, Q1);
}

/* ---- probes: a service time that went unsampled is measured again ---- */

#define MS 1000000ull

/* The probe clock of one queue: per bucket, from the last sample or
 * admission, only while nothing is queued; the probe predicted at the
 * lower of the learned and the warm start's time. */
static void test_probe_clock(void **state)
{
	struct fix f;
	struct pol_conf c = conf();
	struct infer_req *d;
	struct router_cand v = { 0 };
	int rows;
	uint64_t oldest;

	c.probe_ns = 1000 * MS;
	fix_init(&f, &c, 1);
	/* never sampled: due one interval from 0 */
	assert_int_equal(pol_probe_at(&f.q[0], 1), 1000 * MS);
	pol_view(&f.b, 0, 1, 1, 999 * MS, &v);
	assert_false(v.probe);
	assert_int_equal(v.probe_exec_ns, v.exec_ns);
	pol_view(&f.b, 0, 1, 1, 1000 * MS, &v);
	assert_true(v.probe);
	assert_int_equal(v.probe_exec_ns, T1);
	/* admitted: not due while queued, then one interval from the admission */
	assert_int_equal(pol_admit(&f.b, 0, req(&f, 0, 1, 1, 1000 * MS, 0), 1000 * MS, &d), 0);
	assert_int_equal(pol_probe_at(&f.q[0], 1), UINT64_MAX);
	pol_view(&f.b, 0, 1, 1, 5000 * MS, &v);
	assert_false(v.probe);
	assert_int_equal(pol_take(&f.b, 0, 0, 1, 1000 * MS, f.out, 16, &rows, &oldest), 1);
	assert_int_equal(pol_probe_at(&f.q[0], 1), 2000 * MS);
	/* other buckets keep their own clocks; rows past the batch limit
	 * count in the limit's bucket */
	assert_int_equal(pol_probe_at(&f.q[0], 2), 1000 * MS);
	assert_int_equal(pol_probe_at(&f.q[0], 32), pol_probe_at(&f.q[0], 8));
	/* a slow sample: learned, averaged with the next one */
	pol_learn(&f.b, 0, 0, 1, 40 * MS, 1040 * MS, 1000 * MS);
	assert_int_equal(pol_probe_at(&f.q[0], 1), 2040 * MS);
	pol_learn(&f.b, 0, 0, 1, 1 * MS, 1100 * MS, 1000 * MS);
	assert_true(svc_predict(&f.q[0].svc, 1) > 30 * MS);
	/* due again: predicted at the warm start for the probe, learned for the rest */
	pol_view(&f.b, 0, 1, 1, 2100 * MS, &v);
	assert_true(v.probe);
	assert_true(v.exec_ns > 30 * MS);
	assert_int_equal(v.probe_exec_ns, T1);
	/* a sample after an interval without one replaces the estimate */
	pol_learn(&f.b, 0, 0, 1, 2 * MS, 2100 * MS, 2100 * MS);
	assert_int_equal(svc_predict(&f.q[0].svc, 1), 2 * MS);
	/* the warm start above the learned time: the learned one */
	pol_view(&f.b, 0, 1, 1, 3200 * MS, &v);
	assert_true(v.probe);
	assert_int_equal(v.probe_exec_ns, T1);
	pol_learn(&f.b, 0, 0, 1, 500, 3200 * MS, 3200 * MS);
	pol_view(&f.b, 0, 1, 1, 4300 * MS, &v);
	assert_int_equal(v.probe_exec_ns, 500);
	/* a sample out of order (another slot ended earlier) does not restart it */
	pol_learn(&f.b, 0, 0, 1, 700, 1200 * MS, 1200 * MS);
	assert_int_equal(svc_predict(&f.q[0].svc, 1), 500 + (700 - 500) / 5);
	/* probes off: never due, and samples always averaged */
	c.probe_ns = 0;
	pol_configure(&f.q[0], &c);
	assert_int_equal(pol_probe_at(&f.q[0], 1), UINT64_MAX);
	pol_view(&f.b, 0, 1, 1, UINT64_MAX - 1, &v);
	assert_false(v.probe);
}

/*
 * Two backends of equal cost, one queue and one slot each, warm start
 * 1 ms, two clients sending one 1-row request each every 10 ms with a
 * 100 ms objective: light load, nothing waits long.  Backend a's (0)
 * first batch is a cold start (40 ms): the clients' first requests at
 * 100 ms, their next ones from 150 ms, once it ended.
 */
#define DUO_REQS 64

struct duo {
	struct pol_queue q[2];
	struct pol_queue *qp[2];
	uint64_t busy[2];
	struct pol_be b[2];
	struct infer_slice out[4];
	bool running[2];
	int rows[2];
	uint64_t start[2];
	int batches[2];
	uint64_t exec_ns[2];		/* a's after its cold start, b's */
	int picks[2];
};

static struct infer_req duo_req[DUO_REQS];

static void duo_init(struct duo *d, uint64_t probe_ns, uint64_t a_exec_ns)
{
	struct pol_conf c = { .max_batch = 8, .max_rows = 8, .max_queue = 8,
			      .priority_levels = 1, .margin_ns = 1 * MS, .probe_ns = probe_ns };

	memset(d, 0, sizeof(*d));
	for (int i = 0; i < 2; i++) {
		pol_init(&d->q[i], &c, 1 * MS, 0);
		d->qp[i] = &d->q[i];
		d->b[i] = (struct pol_be){ .n_q = 1, .q = &d->qp[i], .n_slots = 1,
					   .busy_until = &d->busy[i] };
	}
	d->exec_ns[0] = a_exec_ns;
	d->exec_ns[1] = 1 * MS;
}

/* Backend i's batch time: a's first is a cold start (40 ms). */
static uint64_t duo_exec(const struct duo *d, int i)
{
	return i == 0 && d->batches[0] == 0 ? 40 * MS : d->exec_ns[i];
}

/* Start what backend i holds when its slot is free. */
static void duo_start(struct duo *d, int i, uint64_t now)
{
	uint64_t wake, oldest;
	int n;

	if (d->running[i] || (n = pol_cut(&d->q[i], now, false, &wake)) <= 0)
		return;
	assert_true(pol_take(&d->b[i], 0, 0, n, now, d->out, 4, &d->rows[i], &oldest) > 0);
	d->running[i] = true;
	d->start[i] = now;
}

/* Backend i's batches that ended by now teach their time; the next starts. */
static void duo_finish(struct duo *d, int i, uint64_t now)
{
	while (d->running[i] && d->start[i] + duo_exec(d, i) <= now) {
		uint64_t exec = duo_exec(d, i), end = d->start[i] + exec;

		pol_learn(&d->b[i], 0, 0, d->rows[i], exec, end, d->start[i]);
		d->batches[i]++;
		d->running[i] = false;
		duo_start(d, i, end);
	}
}

/* Route request k at now (slo, equal costs), admit and start it; the pick. */
static int duo_route(struct duo *d, int k, uint64_t now)
{
	struct route_conf rc = { .policy = ROUTE_SLO, .margin_ns = 1 * MS };
	struct route_req rq = { .now_ns = now, .deadline_ns = now + 100 * MS };
	struct infer_req *r = &duo_req[k % DUO_REQS], *disp;
	struct router_cand c[2];
	unsigned rr = 0;
	int pick = -1;

	for (int i = 0; i < 2; i++) {
		c[i] = (struct router_cand){ .id = i, .cost = 0.5 };
		pol_view(&d->b[i], 0, 1, 1, now, &c[i]);
	}
	assert_int_equal(router_pick(&rc, &rq, c, 2, &rr, &pick), ROUTE_OK);
	/* whatever it is, the pick meets the deadline by its prediction */
	assert_true(now + c[pick].wait_ns + (c[pick].probe ? c[pick].probe_exec_ns
							 : c[pick].exec_ns) <= rq.deadline_ns);
	memset(r, 0, sizeof(*r));
	r->priority = 1;
	r->rows = 1;
	r->arrival_ns = now;
	r->deadline_ns = rq.deadline_ns;
	assert_int_equal(pol_admit(&d->b[pick], 0, r, now, &disp), 0);
	duo_start(d, pick, now);
	d->picks[pick]++;
	return pick;
}

/* The two clients' requests of one tick, after what ended by then; the
 * tick's picks of a (backend 0). */
static int duo_tick(struct duo *d, int *k, uint64_t now)
{
	int a = 0;

	duo_finish(d, 0, now);
	duo_finish(d, 1, now);
	for (int c = 0; c < 2; c++)
		a += duo_route(d, (*k)++, now) == 0;
	return a;
}

/*
 * The starvation of tests/deploy test_agent_killed: a's cold start (40 ms)
 * made it predicted 40 times slower than b, so it got no request and no
 * sample again.  With probes (1 s) it is measured again within an
 * interval of that sample, the fast sample replaces the cold one, and a
 * takes its share; without (probe_ns 0, as before) it never gets another.
 */
static void test_probe_cold_start(void **state)
{
	struct duo d;
	uint64_t now = 100 * MS, first = 0;
	int k = 0, share = 0, total = 0;

	duo_init(&d, 1000 * MS, 1 * MS);
	/* both predicted 1 ms: the first goes to a, the second to b */
	assert_int_equal(duo_tick(&d, &k, now), 1);
	for (now = 150 * MS; now < 3000 * MS; now += 10 * MS) {
		int a = duo_tick(&d, &k, now);

		if (a && !first)
			first = now;
		else if (first) {
			share += a;
			total += 2;
		}
	}
	/* measured again within one interval of its cold sample (ended at 140 ms) */
	assert_true(first > 0);
	assert_true(first <= 1140 * MS);
	/* then, as fast as b, it takes about half */
	assert_true(share * 10 >= total * 4);
	assert_true(svc_predict(&d.q[0].svc, 1) <= 1 * MS);

	/* probes off: a never gets a request again */
	duo_init(&d, 0, 1 * MS);
	k = 0;
	now = 100 * MS;
	assert_int_equal(duo_tick(&d, &k, now), 1);
	for (now = 150 * MS; now < 3000 * MS; now += 10 * MS)
		assert_int_equal(duo_tick(&d, &k, now), 0);
	assert_int_equal(d.picks[0], 1);
	assert_true(svc_predict(&d.q[0].svc, 1) >= 40 * MS);
}

/* A backend that really is slow (40 ms, a 100 ms objective it still
 * meets): a probe per interval, no more; b takes the rest. */
static void test_probe_bounded(void **state)
{
	struct duo d;
	uint64_t now = 100 * MS;
	int k = 0, a = 0;

	duo_init(&d, 1000 * MS, 40 * MS);
	assert_int_equal(duo_tick(&d, &k, now), 1);
	for (now = 150 * MS; now <= 3200 * MS; now += 10 * MS)
		a += duo_tick(&d, &k, now);
	/* due at 1.14 s, then 1 s after each probe's sample: 1.14, 2.18, 3.22 */
	assert_int_equal(a, 2);
	assert_int_equal(d.picks[0], 3);
	assert_true(svc_predict(&d.q[0].svc, 1) >= 40 * MS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_view_idle_backend),
		cmocka_unit_test(test_admission_under_load),
		cmocka_unit_test(test_sliced_request_exec),
		cmocka_unit_test(test_other_models_compete),
		cmocka_unit_test(test_full_and_displacement),
		cmocka_unit_test(test_displace_last_resort),
		cmocka_unit_test(test_drop_hopeless),
		cmocka_unit_test(test_batch_cut_preferred_and_delay),
		cmocka_unit_test(test_wait_calibration),
		cmocka_unit_test(test_learn_service_time_and_aimd),
		cmocka_unit_test(test_prepare_priority),
		cmocka_unit_test(test_internal_requests),
		cmocka_unit_test(test_topup),
		cmocka_unit_test(test_variants_accurate),
		cmocka_unit_test(test_variants_fixed),
		cmocka_unit_test(test_probe_clock),
		cmocka_unit_test(test_probe_cold_start),
		cmocka_unit_test(test_probe_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
