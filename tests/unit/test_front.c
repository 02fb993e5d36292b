/*
 * Unit tests for gateway/api/front.c: objective resolution, request pools,
 * input release (exactly once on every path), the polled and event-loop
 * completion sinks, and submit / cancel / complete on a real runtime
 * (the digits model on one CPU backend).  Run from the repository root.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "front.h"
#include "loop.h"
#include "model/model.h"
#include "runtime.h"
#include "scheduler.h"
#include "util.h"

#define MS 1000000ull

/* ---- front_objective ---- */

struct obj_case {
	int body_prio;
	int64_t body_timeout_us;
	const char *xp, *xs;
	uint32_t model_slo_ms;
	int want_rc, want_prio;
	uint64_t want_ns;
	const char *want_err;
};

static void test_objective_table(void **state)
{
	static const struct obj_case cases[] = {
		/* the model's defaults */
		{ 0, 0, NULL, NULL, 50, 0, 0, 50 * MS, NULL },
		{ 0, 0, NULL, NULL, 0, 0, 0, 0, NULL },
		/* headers over the model */
		{ 0, 0, "3", "2.5", 50, 0, 3, 2500000, NULL },
		{ 0, 0, "0", NULL, 50, 0, 0, 50 * MS, NULL },
		/* the body over the headers: a bad header it overrides is not even read */
		{ 2, 0, "3", NULL, 50, 0, 2, 50 * MS, NULL },
		{ 2, 0, "junk", NULL, 50, 0, 2, 50 * MS, NULL },
		{ 0, 7000, NULL, "2.5", 50, 0, 0, 7 * MS, NULL },
		{ 0, 7000, NULL, "junk", 50, 0, 0, 7 * MS, NULL },
		/* saturation: the largest values accepted, the first refused */
		{ 0, 0, "1000000", NULL, 0, 0, 1000000, 0, NULL },
		{ 0, 0, "1000001", NULL, 0, 400, 0, 0,
		  "x-priority: expected a non-negative integer, got \"1000001\"" },
		{ 0, 0, NULL, "3600000", 0, 0, 0, 3600000 * MS, NULL },
		{ 0, 0, NULL, "3600000.5", 0, 400, 0, 0,
		  "x-slo-ms: expected a positive number of milliseconds, got \"3600000.5\"" },
		{ 0, 0, NULL, "0.000001", 0, 0, 0, 1, NULL },
		/* malformed headers */
		{ 0, 0, "-1", NULL, 0, 400, 0, 0,
		  "x-priority: expected a non-negative integer, got \"-1\"" },
		{ 0, 0, "", NULL, 0, 400, 0, 0,
		  "x-priority: expected a non-negative integer, got \"\"" },
		{ 0, 0, "2x", NULL, 0, 400, 0, 0,
		  "x-priority: expected a non-negative integer, got \"2x\"" },
		{ 0, 0, NULL, "0", 0, 400, 0, 0,
		  "x-slo-ms: expected a positive number of milliseconds, got \"0\"" },
		{ 0, 0, NULL, "-5", 0, 400, 0, 0,
		  "x-slo-ms: expected a positive number of milliseconds, got \"-5\"" },
		{ 0, 0, NULL, "nan", 0, 400, 0, 0,
		  "x-slo-ms: expected a positive number of milliseconds, got \"nan\"" },
		{ 0, 0, NULL, "inf", 0, 400, 0, 0,
		  "x-slo-ms: expected a positive number of milliseconds, got \"inf\"" },
		{ 0, 0, NULL, "5ms", 0, 400, 0, 0,
		  "x-slo-ms: expected a positive number of milliseconds, got \"5ms\"" },
		/* a valid priority header and a bad slo header: still 400 */
		{ 0, 0, "1", "x", 0, 400, 1, 0,
		  "x-slo-ms: expected a positive number of milliseconds, got \"x\"" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct obj_case *k = &cases[i];
		struct model_conf mc = { .slo_ms = k->model_slo_ms };
		struct front_hints h = { .priority = k->body_prio, .timeout_us = k->body_timeout_us,
					 .x_priority = k->xp, .x_slo_ms = k->xs };
		char err[512] = "";
		uint64_t ns = 0;
		int prio = -1;
		int rc = front_objective(&mc, &h, &prio, &ns, err, sizeof(err));

		if (rc != k->want_rc)
			fail_msg("case %zu: rc %d, want %d (%s)", i, rc, k->want_rc, err);
		if (rc) {
			assert_string_equal(err, k->want_err);
			continue;
		}
		if (prio != k->want_prio || ns != k->want_ns)
			fail_msg("case %zu: prio %d objective %llu, want %d %llu", i, prio,
				 (unsigned long long)ns, k->want_prio, (unsigned long long)k->want_ns);
	}
}

/* ---- pools and release ---- */

static struct model fake = { .name = "fake", .in_dim = 4, .out_dim = 10, .max_batch_size = 64 };

struct rel {
	int calls;
};

static void rel_fn(void *arg)
{
	((struct rel *)arg)->calls++;
}

static struct front_spec spec(int rows, struct rel *rel, struct front_sink *sink)
{
	static const float in[64 * 784];

	return (struct front_spec){ .model = &fake,
				    .in = { .rows = rows, .data = in, .release = rel_fn, .arg = rel },
				    .priority = 1, .objective_ns = 5 * MS, .arrival_ns = 100 * MS,
				    .sink = sink };
}

static void test_pool_reuse(void **state)
{
	struct front_pool p;
	struct rel rel[4] = { 0 };
	struct infer_req *a, *b, *c, *d;

	front_pool_init(&p, 2);
	{
		struct front_spec s0 = spec(2, &rel[0], NULL), s1 = spec(3, &rel[1], NULL),
				  s2 = spec(1, &rel[2], NULL);

		a = front_req_new(&p, &s0);
		b = front_req_new(&p, &s1);
		c = front_req_new(&p, &s2);
	}
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_int_equal(a->rows, 2);
	assert_int_equal(a->deadline_ns, 105 * MS);
	assert_int_equal(a->output_cap, 20);
	assert_ptr_equal(a->pool, &p);
	assert_int_equal(rel[0].calls, 0);
	front_req_put(a);
	front_req_put(b);
	front_req_put(c);
	/* each input released once, when its request went back */
	assert_int_equal(rel[0].calls, 1);
	assert_int_equal(rel[1].calls, 1);
	assert_int_equal(rel[2].calls, 1);
	if (UTIL_RECYCLE) {
		struct front_spec s3 = spec(1, &rel[3], NULL);

		assert_int_equal(p.n_free, 2);	/* the third went past max_free: freed */
		d = front_req_new(&p, &s3);
		assert_ptr_equal(d, b);		/* the last put, first out */
		assert_int_equal(d->output_cap, 30);	/* its buffer kept: 1 row fits */
		assert_int_equal(d->rows, 1);
		assert_int_equal(d->status, 0);
		assert_null(d->next);
		assert_int_equal(p.n_reused, 1);
	} else {
		struct front_spec s3 = spec(1, &rel[3], NULL);

		assert_int_equal(p.n_free, 0);	/* sanitizer build: nothing kept */
		d = front_req_new(&p, &s3);
		assert_int_equal(p.n_reused, 0);
	}
	/* releasing early (cancel, reject), then putting, still calls it once */
	front_input_release(d);
	front_input_release(d);
	assert_int_equal(rel[3].calls, 1);
	assert_null(d->input);
	front_req_put(d);
	assert_int_equal(rel[3].calls, 1);
	/* all four inputs had exactly one release */
	for (int i = 0; i < 4; i++)
		assert_int_equal(rel[i].calls, 1);
	front_req_put(NULL);
	front_pool_destroy(&p);
	assert_int_equal(p.n_free, 0);
}

/* ---- the polled sink, from several producers ---- */

#define PRODUCERS 4
#define PER_PRODUCER 20000

struct producer {
	struct front_poll_sink *ps;
	struct infer_req *reqs;
};

static void *produce(void *arg)
{
	struct producer *p = arg;

	for (int i = 0; i < PER_PRODUCER; i++)
		infer_complete(&p->reqs[i]);
	return NULL;
}

static void test_poll_sink_producers(void **state)
{
	struct front_poll_sink ps;
	struct producer prod[PRODUCERS];
	pthread_t th[PRODUCERS];
	struct infer_req **got = calloc(64, sizeof(*got));
	int *seen = calloc(PRODUCERS * PER_PRODUCER, sizeof(int));
	int last[PRODUCERS], total = 0;
	struct infer_req *all = calloc(PRODUCERS * PER_PRODUCER, sizeof(*all));

	front_poll_sink_init(&ps);
	assert_int_equal(front_sink_poll(&ps, got, 64), 0);
	for (int p = 0; p < PRODUCERS; p++) {
		prod[p] = (struct producer){ .ps = &ps, .reqs = all + p * PER_PRODUCER };
		last[p] = -1;
		for (int i = 0; i < PER_PRODUCER; i++) {
			all[p * PER_PRODUCER + i].sink = &ps.sink;
			all[p * PER_PRODUCER + i].rows = p * PER_PRODUCER + i;	/* its id */
		}
	}
	for (int p = 0; p < PRODUCERS; p++)
		assert_int_equal(pthread_create(&th[p], NULL, produce, &prod[p]), 0);
	/* Poll while they push: bounded by the count, not by time. */
	while (total < PRODUCERS * PER_PRODUCER) {
		int n = front_sink_poll(&ps, got, 1 + total % 64);

		for (int i = 0; i < n; i++) {
			int id = got[i]->rows, p = id / PER_PRODUCER;

			assert_null(got[i]->next);
			seen[id]++;
			/* one producer's completions come out in its order */
			assert_true(id > last[p]);
			last[p] = id;
		}
		total += n;
		if (!n)
			sched_yield();
	}
	for (int p = 0; p < PRODUCERS; p++)
		pthread_join(th[p], NULL);
	assert_int_equal(front_sink_poll(&ps, got, 64), 0);
	for (int i = 0; i < PRODUCERS * PER_PRODUCER; i++)
		if (seen[i] != 1)
			fail_msg("request %d polled %d times", i, seen[i]);
	free(all);
	free(seen);
	free(got);
}

/* ---- the event-loop sink ---- */

static int done_calls;

static void count_done(struct infer_req *r)
{
	done_calls++;
	/* the input is released before on_done runs */
	assert_null(r->input_release);
}

static void test_loop_sink(void **state)
{
	struct loop l;
	struct rel rel[3] = { 0 };
	struct infer_req *r[3];
	uint64_t v;

	assert_int_equal(loop_init(&l, 0), 0);
	for (int i = 0; i < 3; i++) {
		struct front_spec s = spec(1, &rel[i], &l.sink);

		s.on_done = count_done;
		r[i] = front_req_new(&l.pool, &s);
		assert_non_null(r[i]);
	}
	done_calls = 0;
	for (int i = 0; i < 3; i++)
		infer_complete(r[i]);
	/* the first completion woke the loop (the eventfd counts once) */
	assert_int_equal(read(l.efd, &v, sizeof(v)), (ssize_t)sizeof(v));
	assert_int_equal(v, 1);
	loop_drain_mail(&l);
	assert_int_equal(done_calls, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rel[i].calls, 1);
		front_req_put(r[i]);
		assert_int_equal(rel[i].calls, 1);
	}
	loop_drain_mail(&l);
	assert_int_equal(done_calls, 3);
	loop_destroy(&l);
}

/*
 * Held by its own thread (loop_hold): completions posted there do not
 * write the eventfd and are delivered by the outermost loop_release, in
 * completion order; an inner hold/release pair delivers nothing.  After
 * the release, a completion wakes the loop again.
 */
static int done_order[4], n_done_order;

static void note_done(struct infer_req *r)
{
	done_order[n_done_order++] = (int)r->rows;
}

static void test_loop_hold(void **state)
{
	struct loop l;
	struct rel rel[4] = { 0 };
	struct infer_req *r[4];
	uint64_t v;
	bool outer, inner;

	(void)state;
	assert_int_equal(loop_init(&l, 0), 0);
	for (int i = 0; i < 4; i++) {
		struct front_spec s = spec(i + 1, &rel[i], &l.sink);

		s.on_done = note_done;
		r[i] = front_req_new(&l.pool, &s);
		assert_non_null(r[i]);
	}
	n_done_order = 0;
	assert_false(loop_held(&l));
	outer = loop_hold(&l);
	assert_true(outer);
	assert_true(loop_held(&l));
	inner = loop_hold(&l);
	assert_false(inner);
	for (int i = 0; i < 3; i++)
		infer_complete(r[i]);
	loop_release(&l, inner);	/* inner: nothing delivered, still held */
	assert_int_equal(n_done_order, 0);
	assert_true(loop_held(&l));
	/* no wake: the eventfd is still zero */
	assert_int_equal(read(l.efd, &v, sizeof(v)), -1);
	assert_int_equal(errno, EAGAIN);
	loop_release(&l, outer);
	assert_false(loop_held(&l));
	assert_int_equal(n_done_order, 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(done_order[i], i + 1);	/* completion order */
	/* not held any more: the next completion wakes the loop */
	infer_complete(r[3]);
	assert_int_equal(read(l.efd, &v, sizeof(v)), (ssize_t)sizeof(v));
	loop_drain_mail(&l);
	assert_int_equal(n_done_order, 4);
	for (int i = 0; i < 4; i++)
		front_req_put(r[i]);
	loop_destroy(&l);
}

/* ---- on a runtime: precheck, submit, reject, cancel, complete ---- */

static struct runtime *build_n(uint32_t delay_us, int n_backends, int max_queue)
{
	char dir[] = "/tmp/infergw-front-XXXXXX", path[128], cwd[512], *err = NULL;
	struct config *cfg;
	struct runtime *rt;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(path, sizeof(path), "%s/gw.yaml", dir);
	f = fopen(path, "w");
	fprintf(f, "models:\n  - name: digits\n    path: %s/config/models/digits\n"
		"    max_batch: 64\n    max_queue_delay_us: %u\n    max_queue: %d\n"
		"    service_time_us: {base: 100, per_row: 10}\n"
		"backends:\n", cwd, delay_us, max_queue);
	for (int i = 0; i < n_backends; i++)
		fprintf(f, "  - name: cpu%d\n    kind: cpu\n    workers: 1\n"
			"    threads_per_worker: 1\n    models: [digits]\n", i);
	fclose(f);
	cfg = cfg_load(path, &err);
	if (!cfg)
		fail_msg("config: %s", err);
	unlink(path);
	rmdir(dir);
	rt = rt_build(cfg, NULL, &err);
	if (!rt)
		fail_msg("runtime: %s", err);
	return rt;
}

static struct runtime *build(uint32_t delay_us)
{
	return build_n(delay_us, 1, 8);
}

static int digits_done;

static void digits_on_done(struct infer_req *r)
{
	digits_done++;
}

static struct front_spec digits_spec(struct runtime *rt, int rows, const float *in,
				     struct rel *rel, struct front_sink *sink)
{
	return (struct front_spec){ .model = rt->models[0]->m,
				    .in = { .rows = rows, .data = in, .release = rel_fn, .arg = rel },
				    .arrival_ns = now_ns(), .sink = sink,
				    .on_done = digits_on_done };
}

static void test_runtime_paths(void **state)
{
	struct runtime *rt = build(300000);	/* a 1-row request waits 300 ms */
	const struct model *m = rt->models[0]->m;
	float *in = calloc((size_t)65 * m->in_dim, sizeof(float));
	struct front_poll_sink ps;
	struct front_pool pool;
	struct infer_req probe, *r, *got[4];
	struct rel rel[6] = { 0 };
	struct front_spec s;
	int n = 0;

	front_poll_sink_init(&ps);
	front_pool_init(&pool, 0);
	for (int i = 0; i < 65 * m->in_dim; i++)
		in[i] = (float)(i % 17) / 16.0f;

	/* pre-admission: admitted; then refused when nothing serves the model */
	assert_int_equal(front_precheck(rt, &probe, m, 0, now_ns(), 0, now_ns(), NULL), 0);
	assert_int_equal(probe.rows, 1);
	atomic_store(&rt->backends[0]->draining, true);
	assert_int_equal(front_precheck(rt, &probe, m, 0, now_ns(), 0, now_ns(), NULL), 503);
	assert_string_equal(probe.errmsg, "no backend available for model digits");

	/* rejected at submit (503): released once, the caller still owns r */
	s = digits_spec(rt, 1, in, &rel[0], &ps.sink);
	r = front_req_new(&pool, &s);
	assert_int_equal(front_submit(rt, r, NULL, now_ns()), 503);
	assert_int_equal(rel[0].calls, 1);
	front_req_put(r);
	assert_int_equal(rel[0].calls, 1);
	atomic_store(&rt->backends[0]->draining, false);

	/* rejected at submit (400: more rows than the model takes) */
	s = digits_spec(rt, 65, in, &rel[1], &ps.sink);
	r = front_req_new(&pool, &s);
	assert_int_equal(front_submit(rt, r, NULL, now_ns()), 400);
	assert_string_equal(r->errmsg, "inputs[0].shape[0]: batch of 65 rows, expected 1 to 64 "
			    "(the model's max_batch_size)");
	assert_int_equal(rel[1].calls, 1);
	front_req_put(r);
	assert_int_equal(rel[1].calls, 1);

	/* queued, then cancelled before it ran: released once, never delivered */
	s = digits_spec(rt, 1, in, &rel[2], &ps.sink);
	r = front_req_new(&pool, &s);
	assert_int_equal(front_submit(rt, r, NULL, now_ns()), 0);
	assert_int_equal(rel[2].calls, 0);	/* queued: the input is still needed */
	assert_true(front_cancel(r));
	assert_int_equal(rel[2].calls, 1);
	front_req_put(r);
	assert_int_equal(rel[2].calls, 1);

	/* queued and run: completed through the polled sink, released at delivery */
	digits_done = 0;
	for (int i = 0; i < 3; i++) {
		s = digits_spec(rt, 2, in + i * m->in_dim, &rel[3 + i], &ps.sink);
		s.ctx = &rel[3 + i];
		r = front_req_new(&pool, &s);
		assert_int_equal(front_submit(rt, r, NULL, now_ns()), 0);
	}
	for (int spins = 0; n < 3 && spins < 20000; spins++) {	/* at most ~20 s */
		int k = front_sink_poll(&ps, got + n, 4 - n);

		n += k;
		if (!k)
			usleep(1000);
	}
	assert_int_equal(n, 3);
	/* a batch's completions come in any order: put them in submission order */
	for (int i = 0; i < 3; i++)
		for (int j = i + 1; j < 3; j++)
			if (got[j]->ctx < got[i]->ctx) {
				r = got[i];
				got[i] = got[j];
				got[j] = r;
			}
	for (int i = 0; i < 3; i++) {
		r = got[i];
		assert_ptr_equal(r->ctx, &rel[3 + i]);
		assert_int_equal(r->status, 0);
		assert_int_equal(rel[3 + i].calls, 0);	/* not yet delivered */
		front_deliver(r);
		assert_int_equal(rel[3 + i].calls, 1);
		for (int k = 0; k < r->rows * m->out_dim; k++)
			assert_true(isfinite(r->output[k]));
	}
	assert_int_equal(digits_done, 3);
	/* rows 1 and 2 of the input, run in two different requests, agree */
	for (int k = 0; k < m->out_dim; k++)
		assert_float_equal(got[0]->output[m->out_dim + k], got[1]->output[k], 1e-5);
	for (int i = 0; i < 3; i++) {
		front_req_put(got[i]);
		assert_int_equal(rel[3 + i].calls, 1);
	}
	front_pool_destroy(&pool);
	rt_stop_all();
	rt_put(rt);
	free(in);
}

/* A request of rows of in, arrived at t0 with a 50 ms objective: what
 * test_admission_reuse's prechecks were asked about. */
static struct infer_req *adm_req(struct runtime *rt, struct front_pool *pool, int rows,
				 const float *in, struct rel *rel, uint64_t t0)
{
	struct front_spec s = digits_spec(rt, rows, in, rel, NULL);

	s.arrival_ns = t0;
	s.objective_ns = 50 * MS;
	return front_req_new(pool, &s);
}

/* One admission pass: a precheck's pick is reused while nothing changed. */
static void test_admission_reuse(void **state)
{
	struct runtime *rt = build(2000000);	/* 1-row requests stay queued 2 s */
	const struct model *m = rt->models[0]->m;
	float *in = calloc(2 * (size_t)m->in_dim, sizeof(float));
	struct front_pool pool;
	struct infer_req probe, *r[3];
	struct rt_admission adm;
	struct rel rel[3] = { 0 };
	uint64_t t0 = now_ns();

	front_pool_init(&pool, 0);
	/* precheck, then submit the same 1-row request: the pick is reused */
	assert_int_equal(front_precheck(rt, &probe, m, 0, t0, 50 * MS, now_ns(), &adm), 0);
	assert_true(adm.valid);
	r[0] = adm_req(rt, &pool, 1, in, &rel[0], t0);
	assert_int_equal(front_submit(rt, r[0], &adm, now_ns()), 0);
	assert_true(adm.reused);
	assert_ptr_equal(r[0]->queue, &rt->backends[0]->sched.qs[0]);
	assert_int_equal(r[0]->priority, 1);	/* normalized as on the full path */
	assert_ptr_equal(r[0]->met, rt->backends[0]->sched.qs[0].met);

	/* a precheck, then the queue changes (r[0] cancelled): routed afresh */
	assert_int_equal(front_precheck(rt, &probe, m, 0, t0, 50 * MS, now_ns(), &adm), 0);
	assert_true(front_cancel(r[0]));
	front_req_put(r[0]);
	r[1] = adm_req(rt, &pool, 1, in, &rel[1], t0);
	assert_int_equal(front_submit(rt, r[1], &adm, now_ns()), 0);
	assert_false(adm.reused);

	/* the body changed what was prechecked (2 rows, another priority): afresh */
	assert_int_equal(front_precheck(rt, &probe, m, 0, t0, 50 * MS, now_ns(), &adm), 0);
	r[2] = adm_req(rt, &pool, 2, in, &rel[2], t0);
	assert_int_equal(front_submit(rt, r[2], &adm, now_ns()), 0);
	assert_false(adm.reused);
	for (int i = 1; i < 3; i++) {
		assert_true(front_cancel(r[i]));
		front_req_put(r[i]);
	}
	for (int i = 0; i < 3; i++)
		assert_int_equal(rel[i].calls, 1);

	/* some backend's state changed, not what r could run on: still reused
	 * (the eligible queues are walked again and found unchanged) */
	assert_int_equal(front_precheck(rt, &probe, m, 0, t0, 50 * MS, now_ns(), &adm), 0);
	be_state_bump();
	r[0] = adm_req(rt, &pool, 1, in, &rel[0], t0);
	assert_int_equal(front_submit(rt, r[0], &adm, now_ns()), 0);
	assert_true(adm.reused);
	assert_true(front_cancel(r[0]));
	front_req_put(r[0]);

	/* the precheck's backend drained, or ejected, before the submit: the
	 * submit sees it (503), whatever the precheck decided */
	for (int how = 0; how < 2; how++) {
		struct rel gone = { 0 };

		assert_int_equal(front_precheck(rt, &probe, m, 0, t0, 50 * MS, now_ns(), &adm), 0);
		if (how)
			be_state_set(&rt->backends[0]->be, BE_EJECTED);
		else
			rt_drain(rt->backends[0]);
		r[0] = adm_req(rt, &pool, 1, in, &gone, t0);
		assert_int_equal(front_submit(rt, r[0], &adm, now_ns()), 503);
		assert_false(adm.reused);
		front_req_put(r[0]);
		assert_int_equal(gone.calls, 1);
		atomic_store(&rt->backends[0]->draining, false);
		be_state_set(&rt->backends[0]->be, BE_UP);
	}
	front_pool_destroy(&pool);
	rt_stop_all();
	rt_put(rt);
	free(in);
}

/*
 * nb backends, one queued request each: the router samples two per request
 * (power of d choices), widens to ROUTER_WIDEN_D, then to all of them when
 * the sample cannot take it, so each of nb requests finds the one queue
 * left with room; the next is refused.  Six backends are scanned whole;
 * 64 go through every step (the last requests find their queue only in
 * the full scan).
 */
static void check_sampling_never_refuses(int nb)
{
	struct runtime *rt = build_n(2000000, nb, 1);	/* one queued request each */
	const struct model *m = rt->models[0]->m;
	float *in = calloc((size_t)m->in_dim, sizeof(float));
	struct front_pool pool;
	struct infer_req *r[65];
	struct rel rel[65] = { 0 };
	bool used[64] = { false };

	assert_true(nb <= 64);
	front_pool_init(&pool, 0);
	for (int i = 0; i <= nb; i++) {
		struct front_spec s = digits_spec(rt, 1, in, &rel[i], NULL);

		r[i] = front_req_new(&pool, &s);
		assert_int_equal(front_submit(rt, r[i], NULL, now_ns()), i < nb ? 0 : 429);
	}
	assert_string_equal(r[nb]->errmsg, "queue for model digits is full");
	assert_int_equal(rel[nb].calls, 1);
	for (int i = 0; i < nb; i++) {
		int be = -1;

		for (int b = 0; b < nb; b++)
			if (r[i]->queue == &rt->backends[b]->sched.qs[0])
				be = b;
		assert_true(be >= 0);
		assert_false(used[be]);
		used[be] = true;
	}
	for (int i = 0; i <= nb; i++) {
		if (i < nb)
			assert_true(front_cancel(r[i]));
		front_req_put(r[i]);
		assert_int_equal(rel[i].calls, 1);
	}
	front_pool_destroy(&pool);
	rt_stop_all();
	rt_put(rt);
	free(in);
}

static void test_sampling_never_refuses_what_a_scan_admits(void **state)
{
	check_sampling_never_refuses(6);
}

static void test_widened_sampling_never_refuses_what_a_scan_admits(void **state)
{
	check_sampling_never_refuses(64);
}

/* Two views agree exactly at the same now: under the lock, and published. */
static void expect_same_views(struct sched_be *s, uint64_t now)
{
	for (int prio = 1; prio <= 3; prio++) {
		struct router_cand a = { 0 }, b = { 0 };

		sched_view(s, 0, 1, prio, now, &a);
		assert_true(sched_view_published(s, 0, 1, prio, now, &b));
		assert_int_equal(a.queued, b.queued);
		assert_int_equal(a.full, b.full);
		assert_int_equal(a.displaces, b.displaces);
		assert_int_equal(a.wait_ns, b.wait_ns);
		assert_int_equal(a.work_ns, b.work_ns);
		assert_int_equal(a.exec_ns, b.exec_ns);
		assert_int_equal(a.probe, b.probe);
		assert_int_equal(a.probe_exec_ns, b.probe_exec_ns);
	}
}

/*
 * The router reads a queue's published state without the lock: it gives
 * sched_view's numbers for every priority level as the queue changes, and
 * declines (the caller takes the lock) what it does not publish.
 */
static void test_published_view(void **state)
{
	struct runtime *rt = build_n(2000000, 1, 3);	/* requests stay queued 2 s */
	struct sched_be *s = &rt->backends[0]->sched;
	const struct model *m = rt->models[0]->m;
	float *in = calloc(8 * (size_t)m->in_dim, sizeof(float));
	struct front_poll_sink ps;
	struct front_pool pool;
	struct infer_req *r[4], *got;
	struct rel rel[4] = { 0 };
	struct router_cand v;
	uint64_t t0 = now_ns();
	static const int prio[4] = { 3, 1, 2, 1 }, rows[4] = { 1, 5, 2, 1 };

	front_poll_sink_init(&ps);
	front_pool_init(&pool, 0);
	/* nothing published before the first change */
	assert_false(sched_view_published(s, 0, 1, 1, now_ns(), &v));
	for (int i = 0; i < 4; i++) {
		struct front_spec sp = digits_spec(rt, rows[i], in, &rel[i], &ps.sink);

		sp.priority = prio[i];
		r[i] = front_req_new(&pool, &sp);
		/* the fourth finds the queue full (3) and displaces the priority 3 one */
		assert_int_equal(front_submit(rt, r[i], NULL, now_ns()), 0);
		expect_same_views(s, now_ns());
	}
	/* the displaced one was answered through its sink, never executed */
	assert_int_equal(front_sink_poll(&ps, &got, 1), 1);
	assert_ptr_equal(got, r[0]);
	assert_int_equal(got->status, 429);
	assert_string_equal(got->errmsg, "queue for model digits is full: displaced by a "
			    "priority 1 request");
	front_deliver(got);
	assert_int_equal(rel[0].calls, 1);
	front_req_put(got);
	assert_int_equal(rel[0].calls, 1);
	assert_true(sched_view_published(s, 0, 1, 1, now_ns(), &v));
	assert_int_equal(v.queued, 3);
	assert_true(v.displaces || v.full);
	/* only 1-row requests and published levels */
	assert_false(sched_view_published(s, 0, 2, 1, now_ns(), &v));
	assert_false(sched_view_published(s, 0, 1, 4, now_ns(), &v));
	assert_false(sched_view_published(s, 0, 1, 0, now_ns(), &v));
	for (int i = 1; i < 4; i++) {
		assert_true(front_cancel(r[i]));
		front_req_put(r[i]);
		expect_same_views(s, now_ns());
	}
	/* empty again: a probe is due routing.probe_ms (1 s) after the last
	 * admission (all after t0), the same either way */
	expect_same_views(s, t0);
	assert_true(sched_view_published(s, 0, 1, 1, t0, &v));
	assert_false(v.probe);
	expect_same_views(s, now_ns() + 2000000000ull);
	assert_true(sched_view_published(s, 0, 1, 1, now_ns() + 2000000000ull, &v));
	assert_true(v.probe);
	assert_true(v.probe_exec_ns <= v.exec_ns);
	rt_stop_all();
	front_pool_destroy(&pool);
	rt_put(rt);
	free(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_objective_table),
		cmocka_unit_test(test_pool_reuse),
		cmocka_unit_test(test_poll_sink_producers),
		cmocka_unit_test(test_loop_sink),
		cmocka_unit_test(test_loop_hold),
		cmocka_unit_test(test_runtime_paths),
		cmocka_unit_test(test_admission_reuse),
		cmocka_unit_test(test_sampling_never_refuses_what_a_scan_admits),
		cmocka_unit_test(test_widened_sampling_never_refuses_what_a_scan_admits),
		cmocka_unit_test(test_published_view),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
