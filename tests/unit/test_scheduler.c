/* test_scheduler.c - credit-based dispatch against the fake asynchronous
 * backend (backends/fake): the completion contract every backend is held to.
 *
 * Every test checks: every request answered exactly once (through its
 * sink, the loop's mailbox) or handed back by sched_cancel, never both; never
 * more batches in flight than the backend's credits; values computed by the
 * fake (output[row][j] = (j + 1) * sum(input[row])) where the request ran. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "fake/fake.h"
#include "infer.h"
#include "loop.h"
#include "model/model.h"
#include "scheduler.h"
#include "util.h"

#define IN_DIM 4
#define OUT_DIM 3
#define SENTINEL -7.0f

struct env {
	struct loop l;
	struct model m;
	int n_be;
	struct backend be[2];
	struct sched_be s[2];
	int n;
	struct infer_req *r;
	float *in, *out;
	int *answers;			/* per request: times posted */
	bool *cancelled;		/* sched_cancel handed it back */
	int answered;
};

static struct env *cur_env;	/* for the failover hook */

/* Failover hook for tests: queue r on the other backend, or answer 503. */
static void to_other(struct infer_req *r, struct sched_be *from, uint64_t now)
{
	struct env *e = cur_env;
	int other = from == &e->s[0] ? 1 : 0;

	if (e->n_be < 2 || be_state_get(&e->be[other]) != BE_UP ||
	    sched_enqueue(&e->s[other], 0, r, now)) {
		r->status = 503;
		infer_complete(r);
	}
}

/* Open fake backend i with credits and ctl; its scheduler with one queue. */
static void env_backend(struct env *e, int i, int credits, const struct be_fake_ctl *ctl,
			int max_batch, uint32_t delay_us, int max_queue)
{
	struct sched_q_conf qc = {
		.model = &e->m, .max_batch = max_batch, .delay_us = delay_us,
		.max_queue = max_queue, .priority_levels = 2, .warm_a_ns = 1000, .warm_b_ns = 100,
	};
	char *err = NULL;

	memset(&e->be[i], 0, sizeof(e->be[i]));
	e->be[i].ops = &be_fake_ops;
	e->be[i].conf.name = i ? "fake1" : "fake0";
	e->be[i].conf.slots = credits;
	assert_int_equal(e->be[i].ops->open(&e->be[i], &e->be[i].conf, &err), 0);
	assert_int_equal(e->be[i].credits, credits);
	if (ctl)
		be_fake_set(&e->be[i], ctl);
	assert_int_equal(sched_be_start(&e->s[i], &e->be[i], &qc, 1), 0);
	if (i + 1 > e->n_be)
		e->n_be = i + 1;
}

/* n requests, request k of rows[k] (or 1) rows of distinct inputs. */
static struct env *env_new(int n, const int *rows)
{
	struct env *e = calloc(1, sizeof(*e));
	int total = 0;

	assert_int_equal(loop_init(&e->l, 0), 0);
	e->m.name = "m";
	e->m.in_dim = IN_DIM;
	e->m.out_dim = OUT_DIM;
	e->m.max_batch_size = 64;
	e->n = n;
	e->r = calloc(n, sizeof(*e->r));
	e->answers = calloc(n, sizeof(int));
	e->cancelled = calloc(n, sizeof(bool));
	for (int k = 0; k < n; k++)
		total += rows ? rows[k] : 1;
	e->in = malloc(sizeof(float) * total * IN_DIM);
	e->out = malloc(sizeof(float) * total * OUT_DIM);
	for (int i = 0; i < total * IN_DIM; i++)
		e->in[i] = (float)((i * 7) % 13) - 6.0f;
	for (int i = 0; i < total * OUT_DIM; i++)
		e->out[i] = SENTINEL;
	for (int k = 0, at = 0; k < n; k++) {
		struct infer_req *r = &e->r[k];

		r->model = &e->m;
		r->rows = rows ? rows[k] : 1;
		r->input = e->in + (size_t)at * IN_DIM;
		r->output = e->out + (size_t)at * OUT_DIM;
		r->priority = 1;
		r->arrival_ns = now_ns();
		r->sink = &e->l.sink;
		r->ctx = (void *)(intptr_t)k;
		at += r->rows;
	}
	cur_env = e;
	sched_failover(to_other);
	return e;
}

/* Take what the mailbox holds; count answers. */
static void env_drain(struct env *e)
{
	struct infer_req *r = atomic_exchange(&e->l.mailbox, NULL), *next;

	for (; r; r = next) {
		next = r->next;
		e->answers[(intptr_t)r->ctx]++;
		e->answered++;
	}
}

/* Wait (bounded: 20 s) until want requests were answered. */
static void env_wait(struct env *e, int want)
{
	for (int i = 0; i < 200000 && e->answered < want; i++) {
		env_drain(e);
		if (e->answered < want)
			usleep(100);
	}
	env_drain(e);
	assert_int_equal(e->answered, want);
}

/* The fake's values for request k. */
static void check_values(struct env *e, int k)
{
	struct infer_req *r = &e->r[k];

	for (int row = 0; row < r->rows; row++) {
		double sum = 0;

		for (int i = 0; i < IN_DIM; i++)
			sum += r->input[row * IN_DIM + i];
		for (int j = 0; j < OUT_DIM; j++)
			assert_true(fabs(r->output[row * OUT_DIM + j] - (j + 1) * sum) < 1e-4);
	}
}

/* Every request answered exactly once, or cancelled and never answered. */
/* Queue every request of e on backend 0; each must be accepted. */
static void enqueue_all(struct env *e)
{
	for (int k = 0; k < e->n; k++)
		assert_int_equal(sched_enqueue(&e->s[0], 0, &e->r[k], now_ns()), 0);
}

static void check_once(struct env *e)
{
	for (int k = 0; k < e->n; k++) {
		if (e->cancelled[k])
			assert_int_equal(e->answers[k], 0);
		else
			assert_int_equal(e->answers[k], 1);
	}
}

static void env_free(struct env *e)
{
	struct be_fake_counts c;

	for (int i = 0; i < e->n_be; i++) {
		sched_be_stop(&e->s[i]);
		be_fake_counts(&e->be[i], &c);
		assert_int_equal(c.violations, 0);	/* credits conserved */
		assert_true(c.max_inflight <= e->be[i].credits);
		e->be[i].ops->close(&e->be[i]);
	}
	env_drain(e);
	loop_destroy(&e->l);
	free(e->r);
	free(e->in);
	free(e->out);
	free(e->answers);
	free(e->cancelled);
	free(e);
	sched_failover(NULL);
}

/*
 * A burst queued within one loop callback (sched_defer_begin/end) fills
 * every credit at once: the old scheduler signalled one worker per
 * callback and left the others asleep.
 */
static void test_burst_uses_all_credits(void **state)
{
	struct env *e = env_new(64, NULL);
	struct be_fake_ctl ctl = { .latency_us = 20000 };
	struct be_fake_counts c;
	uint64_t now = now_ns();

	(void)state;
	env_backend(e, 0, 4, &ctl, 4, 0, 1024);
	sched_defer_begin();
	for (int k = 0; k < e->n; k++)
		assert_int_equal(sched_enqueue(&e->s[0], 0, &e->r[k], now), 0);
	be_fake_counts(&e->be[0], &c);
	assert_int_equal(c.batches, 0);		/* nothing before the callback ends */
	sched_defer_end();
	/* Dispatch happened on this thread, before any batch (20 ms) ended. */
	assert_int_equal(atomic_load(&e->s[0].max_inflight), 4);
	env_wait(e, e->n);
	check_once(e);
	for (int k = 0; k < e->n; k++) {
		assert_int_equal(e->r[k].status, 0);
		check_values(e, k);
	}
	be_fake_counts(&e->be[0], &c);
	assert_int_equal(c.max_inflight, 4);
	assert_int_equal(c.batches, 16);	/* 64 rows, 4 per batch */
	env_free(e);
}

/*
 * sched_defer_flush dispatches what the callback queued so far and goes
 * on deferring: later enqueues wait for sched_defer_end.  Outside a
 * deferral it does nothing.
 */
static void test_defer_flush(void **state)
{
	struct env *e = env_new(8, NULL);
	struct be_fake_ctl ctl = { .sync = true };
	struct be_fake_counts c;
	uint64_t now = now_ns();

	(void)state;
	env_backend(e, 0, 1, &ctl, 4, 0, 1024);
	sched_defer_flush();		/* not deferring: nothing to do */
	sched_defer_begin();
	for (int k = 0; k < 4; k++)
		assert_int_equal(sched_enqueue(&e->s[0], 0, &e->r[k], now), 0);
	be_fake_counts(&e->be[0], &c);
	assert_int_equal(c.batches, 0);
	sched_defer_flush();
	be_fake_counts(&e->be[0], &c);
	assert_int_equal(c.batches, 1);		/* the 4 rows, run in the flush */
	for (int k = 4; k < 8; k++)
		assert_int_equal(sched_enqueue(&e->s[0], 0, &e->r[k], now), 0);
	be_fake_counts(&e->be[0], &c);
	assert_int_equal(c.batches, 1);		/* still deferring */
	sched_defer_end();
	env_wait(e, e->n);
	check_once(e);
	for (int k = 0; k < e->n; k++)
		check_values(e, k);
	be_fake_counts(&e->be[0], &c);
	assert_int_equal(c.batches, 2);
	env_free(e);
}

/* Many requests of mixed sizes (some sliced), from two threads, three credits. */
struct feeder {
	struct env *e;
	int from, to;
};

static void *feed_main(void *arg)
{
	struct feeder *f = arg;

	for (int k = f->from; k < f->to; k++) {
		f->e->r[k].priority = 1 + k % 2;
		while (sched_enqueue(&f->e->s[0], 0, &f->e->r[k], now_ns()) == -EAGAIN)
			usleep(50);
		if (k % 16 == 0)
			usleep(200);
	}
	return NULL;
}

static void test_credits_conserved(void **state)
{
	int rows[400];
	struct env *e;
	struct feeder f[2];
	pthread_t t[2];
	struct be_fake_counts c;
	struct be_fake_ctl ctl = { .latency_us = 300 };

	(void)state;
	for (int k = 0; k < 400; k++)
		rows[k] = 1 + (k * 37) % 23;	/* up to 23 rows: above 8, sliced */
	e = env_new(400, rows);
	env_backend(e, 0, 3, &ctl, 8, 0, 1024);
	f[0] = (struct feeder){ e, 0, 200 };
	f[1] = (struct feeder){ e, 200, 400 };
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, feed_main, &f[i]), 0);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	env_wait(e, e->n);
	check_once(e);
	for (int k = 0; k < e->n; k++) {
		assert_int_equal(e->r[k].status, 0);
		check_values(e, k);
	}
	be_fake_counts(&e->be[0], &c);
	assert_true(c.max_inflight <= 3);
	assert_int_equal(c.violations, 0);
	env_free(e);
}

/* A backend that completes inside submit: dispatch must not recurse
 * without bound nor deadlock, and every credit comes back. */
static void test_synchronous_backend(void **state)
{
	struct env *e = env_new(300, NULL);
	struct be_fake_ctl ctl = { .sync = true };

	(void)state;
	env_backend(e, 0, 2, &ctl, 4, 0, 1024);
	sched_defer_begin();
	enqueue_all(e);
	sched_defer_end();
	env_wait(e, e->n);
	check_once(e);
	for (int k = 0; k < e->n; k++)
		check_values(e, k);
	assert_int_equal(e->s[0].n_free, 2);
	env_free(e);
}

/* Cancelled while queued: never executed, never answered, the caller's. */
static void test_cancel_before_start(void **state)
{
	struct env *e = env_new(3, NULL);
	struct be_fake_ctl ctl = { .latency_us = 30000 };
	struct be_fake_counts c;

	(void)state;
	env_backend(e, 0, 1, &ctl, 1, 0, 1024);
	for (int k = 0; k < 3; k++)
		assert_int_equal(sched_enqueue(&e->s[0], 0, &e->r[k], now_ns()), 0);
	/* r[0] holds the only credit for 30 ms; r[1] waits. */
	assert_true(sched_cancel(&e->r[1]));
	e->cancelled[1] = true;
	assert_int_equal(atomic_load(&e->r[1].state), REQ_CANCELLED);
	env_wait(e, 2);
	check_once(e);
	check_values(e, 0);
	check_values(e, 2);
	for (int j = 0; j < OUT_DIM; j++)
		assert_true(e->r[1].output[j] == SENTINEL);
	be_fake_counts(&e->be[0], &c);
	assert_int_equal(c.rows, 2);
	assert_int_equal(c.batches, 2);
	env_free(e);
}

/*
 * Displacement against cancellation: a displaced request leaves the queue
 * answered (429, EXPIRED, no queue) under the lock, so a cancel racing
 * with it finds nothing to remove.  The old code left it QUEUED until
 * after the unlock: the cancel then unlinked it a second time, corrupting
 * the queue and orphaning its neighbours.
 */
struct canceller {
	struct env *e;
	_Atomic bool stop;
	int from, to;
};

static void *cancel_main(void *arg)
{
	struct canceller *c = arg;

	while (!atomic_load(&c->stop))
		for (int k = c->from; k < c->to; k++)
			if (!c->e->cancelled[k] && atomic_load(&c->e->r[k].state) != REQ_NEW &&
			    sched_cancel(&c->e->r[k]))
				c->e->cancelled[k] = true;
	return NULL;
}

static void test_displace_vs_cancel(void **state)
{
	enum { LOW = 600, HIGH = 600 };
	struct env *e = env_new(LOW + HIGH + 1, NULL);
	struct be_fake_ctl ctl = { .latency_us = 500000 };
	struct canceller c;
	pthread_t t;
	int done = 0;

	(void)state;
	env_backend(e, 0, 1, &ctl, 1, 0, 8);
	/* the blocker holds the only credit for the whole test */
	assert_int_equal(sched_enqueue(&e->s[0], 0, &e->r[LOW + HIGH], now_ns()), 0);
	c = (struct canceller){ .e = e, .from = 0, .to = LOW };
	assert_int_equal(pthread_create(&t, NULL, cancel_main, &c), 0);
	for (int k = 0; k < LOW; k++) {
		e->r[k].priority = 2;
		sched_enqueue(&e->s[0], 0, &e->r[k], now_ns());	/* -EAGAIN: counted below */
		e->r[LOW + k].priority = 1;
		if (sched_enqueue(&e->s[0], 0, &e->r[LOW + k], now_ns()) == 0)
			assert_true(sched_cancel(&e->r[LOW + k]));	/* keep room */
		e->cancelled[LOW + k] = true;
	}
	atomic_store(&c.stop, true);
	pthread_join(t, NULL);
	/* What is left queued is consistent and drains. */
	pthread_mutex_lock(&e->s[0].mu);
	{
		int n = 0;

		for (struct infer_req *r = e->s[0].qs[0].pq.sq.lv[2].head; r; r = r->next)
			n++;
		assert_int_equal(n, e->s[0].qs[0].pq.sq.n_reqs);
	}
	pthread_mutex_unlock(&e->s[0].mu);
	for (int k = 0; k < LOW; k++)
		if (!e->cancelled[k] && atomic_load(&e->r[k].state) == REQ_NEW) {
			e->cancelled[k] = true;	/* refused (-EAGAIN): never ours to answer */
			done++;
		}
	sched_be_abort(&e->s[0]);	/* queued: 503, the blocker finishes */
	env_drain(e);
	check_once(e);
	assert_true(done < LOW);
	e->n_be = 0;
	e->be[0].ops->close(&e->be[0]);
	e->n_be = 0;
	env_free(e);
}

/* Every batch of backend 0 fails retryably: its requests fail over to 1. */
static void test_failover_retryable(void **state)
{
	int rows[200];
	struct env *e;
	struct be_fake_ctl bad = { .latency_us = 200, .fail_every = 1 }, good = { .latency_us = 200 };
	struct be_fake_counts c0, c1;

	(void)state;
	for (int k = 0; k < 200; k++)
		rows[k] = 1 + k % 11;	/* some above 8: sliced, then retried whole */
	e = env_new(200, rows);
	env_backend(e, 0, 2, &bad, 8, 0, 1024);
	env_backend(e, 1, 2, &good, 8, 0, 1024);
	enqueue_all(e);
	env_wait(e, e->n);
	check_once(e);
	for (int k = 0; k < e->n; k++) {
		assert_int_equal(e->r[k].status, 0);
		assert_int_equal(e->r[k].retries, 1);
		check_values(e, k);
	}
	be_fake_counts(&e->be[0], &c0);
	be_fake_counts(&e->be[1], &c1);
	assert_int_equal(c0.rows, 0);
	assert_true(c0.retried > 0);
	assert_true(c1.rows >= 1000);	/* every row ran there: sum of rows[] */
	env_free(e);
}

/* A backend going down mid-flight: what it held fails over, nothing lost. */
static void test_down_mid_flight(void **state)
{
	struct env *e = env_new(120, NULL);
	struct be_fake_ctl dying = { .latency_us = 500, .down_after = 5 }, good = { .latency_us = 100 };

	(void)state;
	env_backend(e, 0, 3, &dying, 4, 0, 1024);
	env_backend(e, 1, 1, &good, 4, 0, 1024);
	for (int k = 0; k < e->n; k++)
		if (sched_enqueue(&e->s[be_state_get(&e->be[0]) == BE_UP ? 0 : 1], 0, &e->r[k],
				  now_ns()))
			fail_msg("enqueue %d", k);
	env_wait(e, e->n);
	check_once(e);
	assert_int_equal(be_state_get(&e->be[0]), BE_DOWN);
	for (int k = 0; k < e->n; k++) {
		assert_int_equal(e->r[k].status, 0);
		check_values(e, k);
	}
	env_free(e);
}

/* Nowhere to fail over to: 503, once; a refused submit is retryable too. */
static void test_failover_nowhere(void **state)
{
	struct env *e = env_new(20, NULL);
	struct be_fake_ctl refuse = { .refuse = true };

	(void)state;
	env_backend(e, 0, 2, &refuse, 4, 0, 1024);
	enqueue_all(e);
	env_wait(e, e->n);
	check_once(e);
	for (int k = 0; k < e->n; k++) {
		assert_int_equal(e->r[k].status, 503);
		assert_true(e->r[k].output[0] == SENTINEL);
	}
	assert_int_equal(e->s[0].n_free, 2);	/* credits back */
	env_free(e);
}

/* Shutdown after the grace period: what is queued is answered 503 and
 * never executed; what runs finishes.  The old stop ran everything. */
static void test_abort_answers_queued(void **state)
{
	struct env *e = env_new(10, NULL);
	struct be_fake_ctl ctl = { .latency_us = 20000 };
	struct be_fake_counts c;

	(void)state;
	env_backend(e, 0, 1, &ctl, 1, 0, 1024);
	enqueue_all(e);
	sched_be_abort(&e->s[0]);
	env_wait(e, e->n);
	check_once(e);
	assert_int_equal(e->r[0].status, 0);
	check_values(e, 0);
	for (int k = 1; k < e->n; k++) {
		assert_int_equal(e->r[k].status, 503);
		assert_true(e->r[k].output[0] == SENTINEL);
	}
	be_fake_counts(&e->be[0], &c);
	assert_int_equal(c.rows, 1);
	env_free(e);
}

/* max_queue_delay_us waits for a fuller batch on the timer, not a thread:
 * three requests below the batch limit go out together, later, by themselves. */
static void test_delay_timer(void **state)
{
	struct env *e = env_new(3, NULL);
	struct be_fake_counts c;

	(void)state;
	env_backend(e, 0, 2, NULL, 8, 20000, 1024);
	for (int k = 0; k < 3; k++)
		assert_int_equal(sched_enqueue(&e->s[0], 0, &e->r[k], now_ns()), 0);
	env_wait(e, 3);
	check_once(e);
	be_fake_counts(&e->be[0], &c);
	assert_int_equal(c.batches, 1);
	assert_int_equal(c.rows, 3);
	env_free(e);
}

/* A deadline passing while every credit is busy is answered 504 by the
 * timer, never executed. */
static void test_expiry_while_busy(void **state)
{
	struct env *e = env_new(2, NULL);
	struct be_fake_ctl ctl = { .latency_us = 1000000 };
	struct be_fake_counts c;

	(void)state;
	env_backend(e, 0, 1, &ctl, 1, 0, 1024);
	assert_int_equal(sched_enqueue(&e->s[0], 0, &e->r[0], now_ns()), 0);
	e->r[1].deadline_ns = now_ns() + 5000000;
	assert_int_equal(sched_enqueue(&e->s[0], 0, &e->r[1], now_ns()), 0);
	env_wait(e, 1);
	assert_int_equal(e->answers[1], 1);	/* the 504 came first */
	assert_int_equal(e->r[1].status, 504);
	env_wait(e, 2);
	check_once(e);
	be_fake_counts(&e->be[0], &c);
	assert_int_equal(c.rows, 1);
	env_free(e);
}

/* The batch limit belongs to the (backend, model) pair: the backend's caps
 * lower it below the model's (and the config's none). */
static void test_caps_batch_limit(void **state)
{
	struct env *e = env_new(40, NULL);
	struct be_fake_ctl ctl = { .latency_us = 100, .max_batch = 3 };
	struct be_fake_counts c;

	(void)state;
	env_backend(e, 0, 1, &ctl, 0, 0, 1024);
	assert_int_equal(e->s[0].qs[0].max_batch, 3);
	assert_int_equal(sched_batch_limit(&e->be[0], &e->m, 0), 3);
	assert_int_equal(sched_batch_limit(&e->be[0], &e->m, 2), 2);
	sched_defer_begin();
	enqueue_all(e);
	sched_defer_end();
	env_wait(e, e->n);
	check_once(e);
	be_fake_counts(&e->be[0], &c);
	assert_int_equal(c.max_rows, 3);
	assert_int_equal(c.rows, 40);
	env_free(e);

	/* Above the model's max_batch_size (64) too: a GPU batches more rows
	 * than the CPU, while a request still has at most 64. */
	{
		int rows[3] = { 64, 64, 40 };

		e = env_new(3, rows);
		ctl.max_batch = 200;
		ctl.latency_us = 50000;
		env_backend(e, 0, 1, &ctl, 0, 0, 1024);
		assert_int_equal(e->s[0].qs[0].max_batch, 200);
		for (int k = 0; k < 3; k++)
			assert_int_equal(sched_enqueue(&e->s[0], 0, &e->r[k], now_ns()), 0);
		env_wait(e, 3);
		check_once(e);
		for (int k = 0; k < 3; k++)
			check_values(e, k);
		be_fake_counts(&e->be[0], &c);
		assert_int_equal(c.rows, 168);
		assert_true(c.max_rows > 64);	/* 64 alone (dispatched at once), then 104 */
		e->r[0].rows = 65;		/* the model's bound still holds per request */
		assert_int_equal(sched_enqueue(&e->s[0], 0, &e->r[0], now_ns()), -E2BIG);
		e->r[0].rows = 64;
		env_free(e);
	}
}

/* A batch waiting for its backend to start takes what was queued since it
 * was cut (batch->topup), up to the limit: one batch of 6, not 1 + 5. */
static void test_topup_at_start(void **state)
{
	struct env *e = env_new(10, NULL);
	struct be_fake_ctl ctl = { .latency_us = 200000, .topup = true };
	struct be_fake_counts c;

	(void)state;
	env_backend(e, 0, 1, &ctl, 6, 0, 1024);
	enqueue_all(e);
	env_wait(e, e->n);
	check_once(e);
	for (int k = 0; k < e->n; k++)
		check_values(e, k);
	be_fake_counts(&e->be[0], &c);
	assert_int_equal(c.max_rows, 6);	/* the first batch, cut at 1 row, ran 6 */
	assert_int_equal(c.batches, 2);		/* 6 + 4 */
	assert_int_equal(c.rows, 10);
	env_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_uses_all_credits),
		cmocka_unit_test(test_defer_flush),
		cmocka_unit_test(test_credits_conserved),
		cmocka_unit_test(test_synchronous_backend),
		cmocka_unit_test(test_cancel_before_start),
		cmocka_unit_test(test_displace_vs_cancel),
		cmocka_unit_test(test_failover_retryable),
		cmocka_unit_test(test_down_mid_flight),
		cmocka_unit_test(test_failover_nowhere),
		cmocka_unit_test(test_abort_answers_queued),
		cmocka_unit_test(test_delay_timer),
		cmocka_unit_test(test_expiry_while_busy),
		cmocka_unit_test(test_caps_batch_limit),
		cmocka_unit_test(test_topup_at_start),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
