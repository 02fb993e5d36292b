/* scheduler.c - see scheduler.h. */
#include "scheduler.h"

#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "infer.h"
#include "log.h"
#include "loop.h"
#include "model/model.h"
#include "util.h"

struct sched_worker {
	struct sched_be *s;
	int slot;
	pthread_t thread;
	sem_t done;
	struct batch b;
	struct infer_req **reqs;	/* capacity: the largest max_batch */
};

int sched_find(const struct sched_be *s, const struct model *m)
{
	for (int i = 0; i < s->n_q; i++)
		if (s->qs[i].model == m)
			return i;
	return -1;
}

int sched_enqueue(struct sched_be *s, int qi, struct infer_req *r, uint64_t now)
{
	struct sched_q *q = &s->qs[qi];
	int rc = 0;

	if (r->rows > q->pol.max_batch)
		return -E2BIG;
	pthread_mutex_lock(&s->mu);
	if (s->stop)
		rc = -ESHUTDOWN;
	else if (q->n_reqs >= q->max_queue)
		rc = -EAGAIN;
	if (rc)
		goto out_unlock;
	r->next = NULL;
	atomic_store_explicit(&r->state, REQ_QUEUED, memory_order_relaxed);
	if (q->tail)
		q->tail->next = r;
	else
		q->head = r;
	q->tail = r;
	q->n_reqs++;
	q->n_rows += r->rows;
	atomic_store_explicit(&q->depth, q->n_reqs, memory_order_relaxed);
	if (s->idle)
		pthread_cond_signal(&s->cv);
out_unlock:
	pthread_mutex_unlock(&s->mu);
	(void)now;
	return rc;
}

/* Give a request back to its loop without running it. */
static void sched_hand_back(struct infer_req *r)
{
	loop_post(r->owner, r);
}

/*
 * Take up to `rows` rows of whole requests from q into w->reqs.
 * Cancelled requests are unlinked onto *cancelled.  Called with s->mu held.
 */
static int sched_take(struct sched_q *q, int rows, struct sched_worker *w,
		      struct infer_req **cancelled, uint64_t now)
{
	int n = 0, taken = 0;

	while (q->head && taken + q->head->rows <= rows) {
		struct infer_req *r = q->head;
		int expect = REQ_QUEUED;

		q->head = r->next;
		if (!q->head)
			q->tail = NULL;
		q->n_reqs--;
		q->n_rows -= r->rows;
		r->dequeue_ns = now;
		if (!atomic_compare_exchange_strong(&r->state, &expect, REQ_RUNNING)) {
			r->next = *cancelled;
			*cancelled = r;
			continue;
		}
		r->next = NULL;
		w->reqs[n++] = r;
		taken += r->rows;
	}
	atomic_store_explicit(&q->depth, q->n_reqs, memory_order_relaxed);
	w->b.rows = taken;
	return n;
}

/*
 * Find a queue the batcher says to cut, starting after the last one served
 * (round robin between models).  Returns its index, or -1 with *wake set.
 */
static int sched_pick(struct sched_be *s, uint64_t now, uint64_t *wake, int *rows)
{
	*wake = UINT64_MAX;
	for (int k = 0; k < s->n_q; k++) {
		int i = (s->rr + 1 + k) % s->n_q;
		struct sched_q *q = &s->qs[i];
		uint64_t w;
		int cut;

		if (!q->head)
			continue;
		cut = batch_decide(&q->pol, q->n_rows, q->head->arrival_ns, now, &w);
		/* While stopping, drain without waiting for fuller batches. */
		if (cut == 0 && s->stop)
			cut = q->n_rows < q->pol.max_batch ? q->n_rows : q->pol.max_batch;
		if (cut > 0) {
			s->rr = i;
			*rows = cut;
			return i;
		}
		if (w < *wake)
			*wake = w;
	}
	return -1;
}

static void sched_wait(struct sched_be *s, uint64_t wake)
{
	s->idle++;
	if (wake == UINT64_MAX) {
		pthread_cond_wait(&s->cv, &s->mu);
	} else {
		/* The condvar uses CLOCK_MONOTONIC (see sched_be_start). */
		struct timespec ts = { .tv_sec = wake / 1000000000ull,
				       .tv_nsec = wake % 1000000000ull };

		pthread_cond_timedwait(&s->cv, &s->mu, &ts);
	}
	s->idle--;
}

static void sched_batch_done(struct batch *b)
{
	struct sched_worker *w = b->owner;

	for (int i = 0; i < b->n_reqs; i++) {
		struct infer_req *r = b->reqs[i];
		int expect = REQ_RUNNING;

		r->exec_start_ns = b->exec_start_ns;
		r->exec_end_ns = b->exec_end_ns;
		r->batch_rows = b->rows;
		atomic_compare_exchange_strong(&r->state, &expect, REQ_DONE);
		loop_post(r->owner, r);
	}
	sem_post(&w->done);
}

static void sched_run_batch(struct sched_worker *w, int qi, int n)
{
	struct sched_be *s = w->s;
	struct batch *b = &w->b;

	b->model = s->qs[qi].model;
	b->be = s->be;
	b->slot = w->slot;
	b->n_reqs = n;
	b->reqs = w->reqs;
	b->done = sched_batch_done;
	b->owner = w;
	if (s->be->ops->submit(s->be, b) == 0) {
		sem_wait(&w->done);
		return;
	}
	for (int i = 0; i < n; i++) {
		w->reqs[i]->status = 503;
		snprintf(w->reqs[i]->errmsg, sizeof(w->reqs[i]->errmsg),
			 "backend %s could not start the batch", s->be->conf.name);
	}
	b->exec_start_ns = b->exec_end_ns = now_ns();
	sched_batch_done(b);
	sem_wait(&w->done);
}

static void *sched_worker_main(void *arg)
{
	struct sched_worker *w = arg;
	struct sched_be *s = w->s;

	pthread_mutex_lock(&s->mu);
	for (;;) {
		struct infer_req *cancelled = NULL, *r, *next;
		uint64_t now = now_ns(), wake;
		int rows, qi, n;

		qi = sched_pick(s, now, &wake, &rows);
		if (qi < 0) {
			if (s->stop)
				break;
			sched_wait(s, wake);
			continue;
		}
		n = sched_take(&s->qs[qi], rows, w, &cancelled, now);
		pthread_mutex_unlock(&s->mu);
		for (r = cancelled; r; r = next) {
			next = r->next;
			sched_hand_back(r);
		}
		if (n > 0)
			sched_run_batch(w, qi, n);
		pthread_mutex_lock(&s->mu);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

static int sched_init_queues(struct sched_be *s, const struct model *const *models,
			     const int *max_batch, const uint32_t *delay_us,
			     const int *max_queue, int n)
{
	int widest = 1;

	s->qs = calloc(n, sizeof(*s->qs));
	if (!s->qs)
		return -ENOMEM;
	s->n_q = n;
	for (int i = 0; i < n; i++) {
		struct sched_q *q = &s->qs[i];
		int mb = models[i]->max_batch_size;

		q->model = models[i];
		q->pol.max_batch = max_batch[i] > 0 && max_batch[i] < mb ? max_batch[i] : mb;
		q->pol.max_delay_ns = (uint64_t)delay_us[i] * 1000;
		q->max_queue = max_queue[i];
		if (q->pol.max_batch > widest)
			widest = q->pol.max_batch;
	}
	return widest;
}

int sched_be_start(struct sched_be *s, struct backend *be, const struct model *const *models,
		   const int *max_batch, const uint32_t *delay_us, const int *max_queue, int n)
{
	pthread_condattr_t ca;
	int widest;

	memset(s, 0, sizeof(*s));
	s->be = be;
	pthread_mutex_init(&s->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	widest = sched_init_queues(s, models, max_batch, delay_us, max_queue, n);
	if (widest < 0)
		return widest;
	s->n_threads = be->conf.slots > 0 ? be->conf.slots : 1;
	s->workers = calloc(s->n_threads, sizeof(*s->workers));
	for (int i = 0; i < s->n_threads; i++) {
		struct sched_worker *w = &s->workers[i];

		w->s = s;
		w->slot = i;
		w->reqs = calloc(widest, sizeof(*w->reqs));
		sem_init(&w->done, 0, 0);
		if (pthread_create(&w->thread, NULL, sched_worker_main, w)) {
			log_error("backend=%s msg=\"cannot start scheduler thread\"", be->conf.name);
			s->n_threads = i;
			return -EAGAIN;
		}
	}
	return 0;
}

void sched_be_stop(struct sched_be *s)
{
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < s->n_threads; i++) {
		pthread_join(s->workers[i].thread, NULL);
		sem_destroy(&s->workers[i].done);
		free(s->workers[i].reqs);
	}
	free(s->workers);
	s->workers = NULL;
	free(s->qs);
	s->qs = NULL;
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
}
