/* Unit tests for gateway/sched/scale.c: Erlang C, the desired replica count,
 * and the rate tracking, in virtual time (steady load, a ramp, no load,
 * the bounds). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>

#include "scale.h"

#define SEC 1000000000ull

static void test_erlang_c(void **state)
{
	(void)state;
	/* M/M/1: the probability of waiting is rho. */
	assert_float_equal(scale_erlang_c(1, 0.3), 0.3, 1e-12);
	/* M/M/2, a = 1: (a^2/2! * 2/(2-1)) / (1 + a + a^2/2! * 2) = 1/3. */
	assert_float_equal(scale_erlang_c(2, 1.0), 1.0 / 3, 1e-12);
	/* M/M/3, a = 2: (8/6 * 3) / (1 + 2 + 2 + 4) = 4/9. */
	assert_float_equal(scale_erlang_c(3, 2.0), 4.0 / 9, 1e-12);
	assert_float_equal(scale_erlang_c(4, 0), 0, 0);
	assert_float_equal(scale_erlang_c(4, 4), 1, 0);
	assert_float_equal(scale_erlang_c(4, 9), 1, 0);
	/* Large pools: no overflow, and more servers never wait more. */
	double prev = 1;

	for (int c = 901; c <= 1000; c++) {
		double v = scale_erlang_c(c, 900);

		assert_true(isfinite(v) && v > 0 && v < 1);
		assert_true(v < prev);
		prev = v;
	}
}

static struct scale_in base_in(void)
{
	return (struct scale_in){ .lambda = 40000, .rows_per_req = 1, .batch_rows = 8,
				  .batch_s = 0.002, .slots = 2, .objective_s = 0.050,
				  .rho_max = 0.8, .p_miss = 0.01, .current = 3, .min = 1,
				  .max = 100 };
}

/* Steady load, loose objective: the headroom bound decides.  a = 40000 / 8
 * x 2 ms = 10 Erlangs; ceil(10 / (2 x 0.8)) = 7 replicas (rho 0.714). */
static void test_headroom_bound(void **state)
{
	struct scale_in in = base_in();
	struct scale_out o;

	(void)state;
	assert_int_equal(scale_desired(&in, &o), 7);
	assert_float_equal(o.load, 10.0, 1e-9);
	assert_float_equal(o.rho, 10.0 / 14, 1e-9);
	assert_true(o.p_wait < 1e-9);
	/* Batch efficiency: the same requests in batches of 16 taking 3 ms
	 * need 40000/16 x 3 ms = 7.5 Erlangs: ceil(7.5 / 1.6) = 5. */
	in.batch_rows = 16;
	in.batch_s = 0.003;
	assert_int_equal(scale_desired(&in, NULL), 5);
	/* Rows per request count: 2 rows each doubles the batches. */
	in.rows_per_req = 2;
	assert_int_equal(scale_desired(&in, &o), 10);
	assert_float_equal(o.load, 15.0, 1e-9);
}

/* A tight objective: the wait budget (objective - S) is a tenth of a
 * batch, so Erlang C asks for more than the headroom bound, and the
 * answer is the smallest count that holds it. */
static void test_objective_bound(void **state)
{
	struct scale_in in = base_in();
	struct scale_out o;
	int n, k = in.slots;
	double a = 10.0, t = 0.0002, s = 0.002;

	(void)state;
	in.objective_s = s + t;
	n = scale_desired(&in, &o);
	assert_true(n > 7);
	assert_true(o.p_wait <= in.p_miss);
	assert_float_equal(o.p_wait, scale_erlang_c(n * k, a) * exp(-(n * k - a) * t / s), 1e-12);
	/* one fewer misses */
	assert_true(scale_erlang_c((n - 1) * k, a) * exp(-((n - 1) * k - a) * t / s) > in.p_miss);
	/* An objective below one batch's time is no capacity question: the
	 * headroom bound only. */
	in.objective_s = 0.001;
	assert_int_equal(scale_desired(&in, NULL), 7);
	/* No objective: the same. */
	in.objective_s = 0;
	assert_int_equal(scale_desired(&in, NULL), 7);
}

static void test_bounds_and_unknowns(void **state)
{
	struct scale_in in = base_in();
	struct scale_out o;

	(void)state;
	/* far more load than max replicas can carry: max */
	in.lambda = 1e7;
	assert_int_equal(scale_desired(&in, &o), 100);
	assert_true(o.rho > 1);
	/* no load: min (at least 1) */
	in.lambda = 0;
	assert_int_equal(scale_desired(&in, &o), 1);
	assert_float_equal(o.load, 0, 0);
	in.min = 3;
	assert_int_equal(scale_desired(&in, NULL), 3);
	in.min = 0;
	assert_int_equal(scale_desired(&in, NULL), 1);
	/* no service time learned yet: the current count, clamped */
	in.lambda = 5000;
	in.batch_s = 0;
	in.current = 4;
	assert_int_equal(scale_desired(&in, NULL), 4);
	in.current = 500;
	assert_int_equal(scale_desired(&in, NULL), 100);
	in.current = 0;
	assert_int_equal(scale_desired(&in, NULL), 1);
	in.batch_s = NAN;
	in.current = 2;
	assert_int_equal(scale_desired(&in, NULL), 2);
	/* light load: never below min */
	in = base_in();
	in.lambda = 10;
	in.min = 2;
	assert_int_equal(scale_desired(&in, NULL), 2);
}

/* B*: the largest batch whose time leaves half the objective. */
static void test_plan_batch(void **state)
{
	/* t(B) = 2 ms + 0.25 ms x B at 1, 2, 4, ... 32 */
	const double t[] = { 0.00225, 0.0025, 0.003, 0.004, 0.006, 0.010 };

	(void)state;
	assert_int_equal(scale_plan_batch(t, 6, 0.050), 5);	/* 10 ms <= 25 ms: 32 rows */
	assert_int_equal(scale_plan_batch(t, 6, 0.012), 4);	/* 6 ms <= 6 ms: 16 rows */
	assert_int_equal(scale_plan_batch(t, 6, 0.0119), 3);
	assert_int_equal(scale_plan_batch(t, 6, 0.001), 0);	/* nothing fits: 1 row */
	assert_int_equal(scale_plan_batch(t, 6, 0), 5);		/* no objective: the limit */
	assert_int_equal(scale_plan_batch(t, 0, 0.05), -1);
}

static void test_rate_steady_and_irregular(void **state)
{
	struct scale_rate r;
	uint64_t now = 5 * SEC, count = 0;

	(void)state;
	scale_rate_init(&r, 10);
	assert_float_equal(scale_rate_update(&r, 0, now), 0, 0);	/* baseline */
	/* 500/s, sampled at uneven intervals: exactly 500 throughout */
	for (int i = 0; i < 50; i++) {
		uint64_t dt = (uint64_t)(1 + i % 4) * SEC / 2;

		now += dt;
		count += 500 * dt / SEC;
		assert_float_equal(scale_rate_update(&r, count, now), 500, 1e-9);
	}
	/* a counter that went down (a backend left): rate kept, new baseline */
	assert_float_equal(scale_rate_update(&r, 10, now + SEC), 500, 1e-9);
	/* the clock not moving changes nothing */
	assert_float_equal(scale_rate_update(&r, 5000, now + SEC), 500, 1e-9);
	/* a step to 0/s decays as exp(-t / tau) */
	now += SEC;
	assert_float_equal(scale_rate_update(&r, 5000, now + 10 * SEC), 500 * exp(-1), 1e-9);
}

/* One pool in virtual time: arrivals at rate f(t) requests/s of 2 rows,
 * batches of 8 rows taking 4 ms, 2 slots per replica, sampled every
 * second with tau = 5 s. */
struct sim {
	struct scale_track trk;
	struct scale_obs o;
	double carry;
};

static int sim_step(struct sim *s, double rate, int current)
{
	struct scale_in in = { .batch_s = 0.004, .slots = 2, .objective_s = 0.050,
			       .rho_max = 0.8, .p_miss = 0.01, .current = current, .min = 1,
			       .max = 64 };
	double add = rate + s->carry;
	uint64_t n = (uint64_t)add;

	s->carry = add - (double)n;
	s->o.now_ns += SEC;
	s->o.requests += n;
	s->o.ok_requests += n;
	s->o.ok_rows += 2 * n;
	s->o.batches += n / 4;
	s->o.batch_rows += 8 * (n / 4);
	scale_track_update(&s->trk, &s->o, &in);
	in.batch_rows = 8;	/* planned: t(8) = 4 ms <= 50 ms / 2 */
	return scale_desired(&in, NULL);
}

static void test_track_steady_ramp_zero(void **state)
{
	struct sim s = { .o.now_ns = 100 * SEC };
	struct scale_in in = { 0 };
	int d, prev = 0, steady;

	(void)state;
	scale_track_init(&s.trk, 5);
	/* steady 2000 req/s: a = 2000 x 2 / 8 x 4 ms = 2 Erlangs -> ceil(2 / 1.6) = 2 */
	for (int t = 0; t < 30; t++)
		steady = sim_step(&s, 2000, 1);
	assert_int_equal(steady, 2);
	scale_track_update(&s.trk, &s.o, &in);	/* same time again: rates kept */
	assert_float_equal(in.lambda, 2000, 1e-6);
	assert_float_equal(in.rows_per_req, 2, 1e-9);
	assert_float_equal(in.batch_rows_seen, 8, 1e-9);
	/* a ramp 2000 -> 20000 req/s over 60 s: the signal never falls and
	 * ends where the last rate needs, less the EWMA's lag (tau) */
	for (int t = 1; t <= 60; t++) {
		d = sim_step(&s, 2000 + 300.0 * t, 2);
		assert_true(d >= prev);
		prev = d;
	}
	/* lambda lags the ramp by about tau: 20000 - 300 x 5 = 18500 req/s,
	 * a = 18.5 Erlangs -> ceil(18.5 / 1.6) = 12 */
	assert_true(d >= 11 && d <= 12);
	/* then held at 20000: ceil(20 / 1.6) = 13 */
	for (int t = 0; t < 60; t++)
		d = sim_step(&s, 20000, d);
	assert_int_equal(d, 13);
	/* load stops: the signal falls back to min */
	for (int t = 0; t < 120; t++)
		d = sim_step(&s, 0, d);
	assert_int_equal(d, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_erlang_c),
		cmocka_unit_test(test_headroom_bound),
		cmocka_unit_test(test_objective_bound),
		cmocka_unit_test(test_bounds_and_unknowns),
		cmocka_unit_test(test_plan_batch),
		cmocka_unit_test(test_rate_steady_and_irregular),
		cmocka_unit_test(test_track_steady_ramp_zero),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
