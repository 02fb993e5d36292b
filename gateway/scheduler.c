/* scheduler.c - see scheduler.h. */
#define _GNU_SOURCE	/* pthread_setname_np */
#include "scheduler.h"

#include <errno.h>
#include <sched.h>
#include <semaphore.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "infer.h"
#include "log.h"
#include "metrics.h"
#include "model/model.h"
#include "util.h"

struct sched_worker {
	struct sched_be *s;
	int slot;
	pthread_t thread;
	sem_t done;
	struct batch b;
	uint64_t oldest;		/* of the batch in flight: earliest arrival (a
					 * later slice of a request: when it was cut) */
	struct infer_slice *slices;	/* capacity: the widest model's max_batch_size */
};

/* Where a request lands in a queue (batch_place). */
struct sched_place {
	int before, first, last, spans;
};

static void sched_publish(struct sched_q *q);

int sched_find(const struct sched_be *s, const struct model *m)
{
	for (int i = 0; i < s->n_q; i++)
		if (s->qs[i].model == m)
			return i;
	return -1;
}

/* Soonest a slot frees up, from now (0 when one is idle).  Lock held. */
static uint64_t sched_residual(const struct sched_be *s, uint64_t now)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < s->n_threads; i++) {
		uint64_t left = s->busy_until[i] > now ? s->busy_until[i] - now : 0;

		if (s->busy_until[i] == 0)
			left = 0;
		if (left < best)
			best = left;
	}
	return best == UINT64_MAX ? 0 : best;
}

/*
 * Predicted wait of a request of rows at priority prio on queue qi, from the
 * work queued ahead, before calibration, to the start of its first batch;
 * *pl says where it lands (batch_place).  Lock held.
 */
static uint64_t sched_raw_wait(const struct sched_be *s, int qi, int rows, int prio, uint64_t now,
			       struct sched_place *pl)
{
	const struct sched_q *q = &s->qs[qi];
	int eff = q->pol.max_batch;
	uint64_t work;

	pl->spans = batch_place(sq_rows_ahead(&q->sq, prio), rows, eff, &pl->before, &pl->first,
				&pl->last);
	work = (uint64_t)pl->before * svc_predict(&q->svc, eff);
	/* Other models on this backend compete for the same slots. */
	for (int i = 0; i < s->n_q; i++)
		if (i != qi && s->qs[i].sq.n_rows)
			work += svc_predict(&s->qs[i].svc, s->qs[i].pol.max_batch) *
				(uint64_t)((s->qs[i].sq.n_rows + s->qs[i].pol.max_batch - 1) /
					   s->qs[i].pol.max_batch);
	return sched_residual(s, now) + work / (uint64_t)s->n_threads;
}

/*
 * Predicted execution of a request placed at pl: its first batch, then (a
 * request above the batch limit) the rest of its batches, spread over the
 * slots like the work ahead.  Lock held.
 */
static uint64_t sched_exec(const struct sched_be *s, const struct sched_q *q,
			   const struct sched_place *pl)
{
	uint64_t rest = 0;

	if (pl->spans > 1)
		rest = (uint64_t)(pl->spans - 2) * svc_predict(&q->svc, q->pol.max_batch) +
		       svc_predict(&q->svc, pl->last);
	return svc_predict(&q->svc, pl->first) + rest / (uint64_t)s->n_threads;
}

/* sched_view's answer, lock held. */
static void sched_view_locked(struct sched_be *s, int qi, int rows, int prio, uint64_t now,
			      struct sched_view *out)
{
	struct sched_q *q = &s->qs[qi];
	struct sched_place pl;
	int eff;
	uint64_t raw;

	eff = q->pol.max_batch;
	raw = sched_raw_wait(s, qi, rows, prio, now, &pl);
	out->queued = q->sq.n_reqs;
	/* Full means full for this priority: lower levels can be displaced. */
	out->displaces = q->sq.n_reqs >= q->sq.max_reqs;
	out->full = out->displaces && sq_rows_ahead(&q->sq, prio) >= q->sq.n_rows;
	out->displaces &= !out->full;
	out->wait_ns = svc_wait_adjust(&q->svc, prio, raw);
	out->work_ns = raw;
	/* sq_take fills the batch with whatever is queued when it is cut,
	 * lower levels included: predict that batch from what is queued now. */
	if (pl.spans == 1) {
		long rem = (long)q->sq.n_rows + rows - (long)pl.before * eff;

		if (rem > pl.first)
			pl.first = pl.last = rem < eff ? (int)rem : eff;
	}
	out->exec_ns = sched_exec(s, q, &pl);
}

void sched_view(struct sched_be *s, int qi, int rows, int prio, uint64_t now,
		struct sched_view *out)
{
	pthread_mutex_lock(&s->mu);
	sched_view_locked(s, qi, rows, prio, now, out);
	pthread_mutex_unlock(&s->mu);
}

/* ---- published state (scheduler.h, struct sched_pub) ---- */

/* Earliest end of a busy slot, 0 when one is idle (sched_residual's input). */
static uint64_t sched_min_busy(const struct sched_be *s)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < s->n_threads; i++)
		if (s->busy_until[i] < best)
			best = s->busy_until[i];
	return best == UINT64_MAX ? 0 : best;
}

/* Write q's sched_pub (lock held): the 1-row view at every level, with
 * the residual left out (now = infinity) for the reader to add. */
static void sched_pub_write(struct sched_q *q, uint64_t be_version)
{
	struct sched_be *s = q->s;
	struct sched_pub *p = &q->pub;
	uint32_t seq = atomic_load_explicit(&p->seq, memory_order_relaxed);
	int levels = q->sq.hi < SCHED_PUB_LEVELS ? q->sq.hi : SCHED_PUB_LEVELS;

	atomic_store_explicit(&p->seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (int l = 1; l <= levels; l++) {
		struct sched_pub_level *pl = &p->lv[l - 1];
		struct sched_view v;
		double f = svc_wait_factor(&q->svc, l);
		uint64_t fb;

		sched_view_locked(s, (int)(q - s->qs), 1, l, UINT64_MAX, &v);
		memcpy(&fb, &f, sizeof(fb));
		atomic_store_explicit(&pl->work_ns, v.work_ns, memory_order_relaxed);
		atomic_store_explicit(&pl->exec_ns, v.exec_ns, memory_order_relaxed);
		atomic_store_explicit(&pl->factor_bits, fb, memory_order_relaxed);
		atomic_store_explicit(&pl->flags, (v.full ? 1u : 0) | (v.displaces ? 2u : 0),
				      memory_order_relaxed);
	}
	atomic_store_explicit(&p->levels, levels, memory_order_relaxed);
	atomic_store_explicit(&p->queued, q->sq.n_reqs, memory_order_relaxed);
	atomic_store_explicit(&p->min_busy, sched_min_busy(s), memory_order_relaxed);
	atomic_store_explicit(&p->be_version, be_version, memory_order_relaxed);
	atomic_store_explicit(&p->seq, seq + 2, memory_order_release);
}

/* Most queues a publish rewrites all of (beyond, only the changed one: the
 * others' readers fall back to the lock until they change). */
#define SCHED_PUB_ALL 4

/*
 * Publish q's state for lock-free readers (the router): depth, version and
 * sched_pub.  The work of every queue of a backend counts in each one's
 * wait, so with few queues all of them are rewritten.  Lock held.
 */
static void sched_publish(struct sched_q *q)
{
	struct sched_be *s = q->s;
	uint64_t bv = atomic_fetch_add_explicit(&s->version, 1, memory_order_relaxed) + 1;

	atomic_store_explicit(&q->depth, q->sq.n_reqs, memory_order_relaxed);
	atomic_fetch_add_explicit(&q->version, 1, memory_order_release);
	if (s->n_q <= SCHED_PUB_ALL) {
		for (int i = 0; i < s->n_q; i++)
			sched_pub_write(&s->qs[i], bv);
	} else {
		sched_pub_write(q, bv);
	}
}

bool sched_view_published(struct sched_be *s, int qi, int rows, int prio, uint64_t now,
			  struct sched_view *out)
{
	struct sched_pub *p = &s->qs[qi].pub;

	if (rows != 1 || prio < 1)
		return false;
	for (int tries = 0; tries < 4; tries++) {
		uint32_t s1 = atomic_load_explicit(&p->seq, memory_order_acquire);
		const struct sched_pub_level *pl = &p->lv[prio - 1];
		uint64_t work, exec, fb, busy, bv, raw;
		uint32_t flags;
		int levels, queued;
		double f;

		if (s1 & 1)
			continue;
		levels = atomic_load_explicit(&p->levels, memory_order_relaxed);
		if (prio > levels)
			return false;
		work = atomic_load_explicit(&pl->work_ns, memory_order_relaxed);
		exec = atomic_load_explicit(&pl->exec_ns, memory_order_relaxed);
		fb = atomic_load_explicit(&pl->factor_bits, memory_order_relaxed);
		flags = atomic_load_explicit(&pl->flags, memory_order_relaxed);
		queued = atomic_load_explicit(&p->queued, memory_order_relaxed);
		busy = atomic_load_explicit(&p->min_busy, memory_order_relaxed);
		bv = atomic_load_explicit(&p->be_version, memory_order_relaxed);
		atomic_thread_fence(memory_order_acquire);
		if (atomic_load_explicit(&p->seq, memory_order_relaxed) != s1)
			continue;
		if (bv != atomic_load_explicit(&s->version, memory_order_acquire))
			return false;
		memcpy(&f, &fb, sizeof(f));
		/* as sched_raw_wait: the soonest slot's residual, then the work */
		raw = (busy > now ? busy - now : 0) + work;
		*out = (struct sched_view){ .queued = queued, .full = flags & 1,
					    .displaces = (flags & 2) != 0,
					    .wait_ns = (uint64_t)((double)raw * f),
					    .work_ns = raw, .exec_ns = exec };
		return true;
	}
	return false;
}

double sched_wait_factor(struct sched_be *s, int qi, int prio)
{
	double f;

	pthread_mutex_lock(&s->mu);
	f = svc_wait_factor(&s->qs[qi].svc, prio);
	pthread_mutex_unlock(&s->mu);
	return f;
}

#define SCHED_DEFER_MAX 8

static __thread bool sched_deferring;
static __thread struct sched_be *sched_pending[SCHED_DEFER_MAX];
static __thread int sched_n_pending;

/* Remember s for sched_defer_end; false when not deferring (or no room). */
static bool sched_defer_add(struct sched_be *s)
{
	if (!sched_deferring)
		return false;
	for (int i = 0; i < sched_n_pending; i++)
		if (sched_pending[i] == s)
			return true;
	if (sched_n_pending == SCHED_DEFER_MAX)
		return false;
	sched_pending[sched_n_pending++] = s;
	return true;
}

void sched_defer_begin(void)
{
	sched_deferring = true;
}

void sched_defer_end(void)
{
	/* Signalling without the mutex is safe: the requests were queued under
	 * it, and a worker checks the queues under it before it waits. */
	for (int i = 0; i < sched_n_pending; i++)
		pthread_cond_signal(&sched_pending[i]->cv);
	sched_n_pending = 0;
	sched_deferring = false;
}

/*
 * A queued request answered without running (displaced, expired, hopeless),
 * or the queued remainder of a sliced one: its slices not yet started do
 * not run either.  The first failure is the answer.  Lock held, or r no
 * longer reachable by another thread.
 */
static void sched_answer(struct infer_req *r, int status, uint64_t now, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void sched_answer(struct infer_req *r, int status, uint64_t now, const char *fmt, ...)
{
	va_list ap;

	if (atomic_load(&r->state) != REQ_CANCELLED)
		atomic_store(&r->state, REQ_EXPIRED);
	if (r->status)
		return;
	r->status = status;
	if (!r->next_row)
		r->dequeue_ns = now;
	r->retry_after_s = 1;
	va_start(ap, fmt);
	vsnprintf(r->errmsg, sizeof(r->errmsg), fmt, ap);
	va_end(ap);
}

int sched_enqueue(struct sched_be *s, int qi, struct infer_req *r, uint64_t now)
{
	struct sched_q *q = &s->qs[qi];
	struct infer_req *displaced = NULL;
	int rc;

	/* Larger than a batch is fine (it runs sliced); larger than the model
	 * takes is not. */
	if (r->rows > q->model->max_batch_size)
		return -E2BIG;
	pthread_mutex_lock(&s->mu);
	if (s->stop) {
		rc = -ESHUTDOWN;
		goto out_unlock;
	}
	atomic_store_explicit(&r->state, REQ_QUEUED, memory_order_relaxed);
	r->next_row = r->slices_out = r->n_batches = 0;
	{
		struct sched_place pl;

		/* What the router saw (uncalibrated), to learn from at dequeue. */
		r->enqueue_ns = now;
		r->pred_wait_ns = sched_raw_wait(s, qi, r->rows, r->priority, now, &pl);
	}
	rc = sq_push(&q->sq, r);
	if (rc == -EAGAIN && (displaced = sq_displace(&q->sq, r->priority)))
		rc = sq_push(&q->sq, r);
	if (rc) {
		atomic_store_explicit(&r->state, REQ_NEW, memory_order_relaxed);
		goto out_unlock;
	}
	r->queue = q;
	r->met = q->met;
	sched_publish(q);
	if (s->idle && !sched_defer_add(s))
		pthread_cond_signal(&s->cv);
out_unlock:
	pthread_mutex_unlock(&s->mu);
	if (displaced) {
		sched_answer(displaced, 429, now, "queue for model %s is full: displaced by a "
			     "priority %d request", q->model->name, r->priority);
		infer_complete(displaced);
	}
	return rc;
}

bool sched_cancel(struct infer_req *r)
{
	struct sched_q *q = r->queue;
	int expect = REQ_QUEUED;
	bool removed = false;

	if (!q)
		return false;
	pthread_mutex_lock(&q->s->mu);
	if (atomic_compare_exchange_strong(&r->state, &expect, REQ_CANCELLED)) {
		sq_remove(&q->sq, r);
		removed = true;
	} else if (expect == REQ_RUNNING) {
		/* Slices not yet started are skipped (backend.h); a queued
		 * remainder never runs.  With no slice running any more, no
		 * completion will come: r is the caller's again. */
		atomic_store(&r->state, REQ_CANCELLED);
		if (r->next_row < r->rows) {
			sq_remove(&q->sq, r);
			removed = sq_drop(r);
		}
	}
	sched_publish(q);
	pthread_mutex_unlock(&q->s->mu);
	return removed;
}

/*
 * Answer 504, without running them, the requests whose deadline passed
 * while queued, and with drop_hopeless those that a batch started now
 * would still finish too late: running them would only delay the others.
 */
static struct infer_req *sched_expire(struct sched_be *s, uint64_t now)
{
	struct infer_req *all = NULL;

	for (int i = 0; i < s->n_q; i++) {
		struct sched_q *q = &s->qs[i];
		int rows = q->sq.n_rows < q->pol.max_batch ? q->sq.n_rows : q->pol.max_batch;
		uint64_t need = q->drop_hopeless && rows ? svc_predict(&q->svc, rows) : 0;
		struct infer_req *r = sq_expire(&q->sq, now + need), *next;

		for (; r; r = next) {
			bool started = r->next_row > 0;

			next = r->next;
			if (r->deadline_ns <= now)
				sched_answer(r, 504, now, "deadline passed after %llu us in the queue "
					     "of backend %s", (unsigned long long)((now - r->arrival_ns) / 1000),
					     s->be->conf.name);
			else
				sched_answer(r, 504, now, "cannot finish before its deadline: %llu us "
					     "left, a batch on backend %s takes %llu us",
					     (unsigned long long)((r->deadline_ns - now) / 1000),
					     s->be->conf.name, (unsigned long long)(need / 1000));
			if (!started)
				svc_wait_missed(&q->svc, r->priority);
			/* A sliced request with a slice running is posted after it. */
			if (!sq_drop(r))
				continue;
			r->next = all;
			all = r;
		}
		sched_publish(q);
	}
	return all;
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
		struct batch_view v;
		uint64_t w, dl;
		int cut;

		if (!q->sq.n_reqs)
			continue;
		v.queued_rows = q->sq.n_rows;
		v.oldest_ns = sq_oldest_arrival(&q->sq);
		v.earliest_deadline_ns = sq_earliest_deadline(&q->sq);
		cut = batch_decide(&q->pol, &v, &q->svc, now, &w);
		/* While stopping, drain without waiting for fuller batches. */
		if (cut == 0 && s->stop)
			cut = v.queued_rows < q->pol.max_batch ? v.queued_rows : q->pol.max_batch;
		if (cut > 0) {
			s->rr = i;
			*rows = cut;
			return i;
		}
		if (w < *wake)
			*wake = w;
		/* Wake for the earliest deadline too, to answer it 504 on time. */
		dl = v.earliest_deadline_ns;
		if (dl < *wake)
			*wake = dl;
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
	sem_post(&((struct sched_worker *)b->owner)->done);
}

static void sched_run_batch(struct sched_worker *w, int qi, int n)
{
	struct sched_be *s = w->s;
	struct batch *b = &w->b;

	b->model = s->qs[qi].model;
	b->be = s->be;
	b->slot = w->slot;
	b->n_slices = n;
	b->slices = w->slices;
	b->errmsg[0] = 0;
	b->done = sched_batch_done;
	b->owner = w;
	if (s->be->ops->submit(s->be, b) == 0) {
		sem_wait(&w->done);
		return;
	}
	for (int i = 0; i < n; i++)
		w->slices[i].status = 503;
	snprintf(b->errmsg, sizeof(b->errmsg), "backend %s could not start the batch",
		 s->be->conf.name);
	b->exec_start_ns = b->exec_end_ns = now_ns();
}

/* Take a cut batch from queue qi into w (lock held).  Returns the slice count. */
static int sched_take(struct sched_worker *w, struct sched_q *q, int rows, uint64_t now)
{
	int eff = q->pol.max_batch;
	int n = sq_take(&q->sq, rows, eff, w->slices, w->s->widest);

	/* The head is larger than the cut (a preferred size): run it alone
	 * rather than stall the queue (sliced, when above the limit). */
	if (n == 0)
		n = sq_take(&q->sq, eff, eff, w->slices, 1);
	w->b.rows = 0;
	w->oldest = UINT64_MAX;
	for (int i = 0; i < n; i++) {
		struct infer_slice *sl = &w->slices[i];
		struct infer_req *r = sl->r;
		uint64_t ready = now;	/* a later slice: ready once cut */

		sl->status = 0;
		if (sl->row0 == 0) {
			atomic_store(&r->state, REQ_RUNNING);
			r->dequeue_ns = now;
			svc_wait_observe(&q->svc, r->priority, r->pred_wait_ns, now - r->enqueue_ns);
			ready = r->arrival_ns;
		}
		w->b.rows += sl->rows;
		if (ready < w->oldest)
			w->oldest = ready;
	}
	w->s->busy_until[w->slot] = now + svc_predict(&q->svc, w->b.rows);
	sched_publish(q);
	return n;
}

/* Account slice sl of batch b to its request (lock held).  true when the
 * request is complete: its answer is due. */
static bool sched_slice_done(struct sched_q *q, const struct batch *b,
			     const struct infer_slice *sl)
{
	struct infer_req *r = sl->r;
	int expect = REQ_RUNNING;

	if (!r->n_batches++ || b->exec_start_ns < r->exec_start_ns)
		r->exec_start_ns = b->exec_start_ns;
	if (b->exec_end_ns > r->exec_end_ns)
		r->exec_end_ns = b->exec_end_ns;
	r->batch_rows = b->rows;
	if (sl->status && !r->status) {
		r->status = sl->status;
		snprintf(r->errmsg, sizeof(r->errmsg), "%s", b->errmsg);
		/* A slice failing fails the request: the rest need not run. */
		if (r->next_row < r->rows) {
			sq_remove(&q->sq, r);
			sq_drop(r);
		}
	}
	if (!sq_slice_done(r))
		return false;
	atomic_compare_exchange_strong(&r->state, &expect, REQ_DONE);
	return true;
}

/*
 * After a batch (lock held): learn its service time, adapt the batch size,
 * account its slices.  Returns the requests it completed, linked through
 * ->next, to post.
 */
static struct infer_req *sched_learn(struct sched_worker *w, struct sched_q *q)
{
	const struct batch *b = &w->b;
	struct infer_req *done = NULL;

	w->s->busy_until[w->slot] = 0;
	svc_observe(&q->svc, b->rows, b->exec_end_ns - b->exec_start_ns);
	if (q->adaptive) {
		q->pol.max_batch = batch_adapt_observe(&q->adapt, b->exec_end_ns - w->oldest);
		atomic_store_explicit(&q->eff_max_batch, q->pol.max_batch, memory_order_relaxed);
	}
	if (q->met)
		met_batch(q->met, b->rows, b->exec_end_ns - b->exec_start_ns);
	for (int i = 0; i < b->n_slices; i++)
		if (sched_slice_done(q, b, &b->slices[i])) {
			b->slices[i].r->next = done;
			done = b->slices[i].r;
		}
	sched_publish(q);
	return done;
}

static void sched_post_list(struct infer_req *r)
{
	struct infer_req *next;

	for (; r; r = next) {
		next = r->next;
		infer_complete(r);
	}
}

/*
 * Compute yields to the event loops: a worker (and the OpenMP threads it
 * spawns, which inherit this) runs SCHED_BATCH at the backend's nice value,
 * so a loop woken by a request preempts a running batch at once instead of
 * waiting out its time slice - a 429 or a health check is not queued behind
 * milliseconds of matrix multiply.  Best effort: a refusal is logged.
 */
static void sched_lower_priority(const struct sched_be *s)
{
	struct sched_param sp = { 0 };
	int rc = pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp);

	if (rc == 0 && setpriority(PRIO_PROCESS, (id_t)gettid(), s->be->conf.nice) != 0)
		rc = errno;
	if (rc)
		log_warn("backend=%s msg=\"cannot lower worker priority (SCHED_BATCH, nice %d): %s\"",
			 s->be->conf.name, s->be->conf.nice, strerror(rc));
}

static void *sched_worker_main(void *arg)
{
	struct sched_worker *w = arg;
	struct sched_be *s = w->s;
	struct infer_req *done = NULL;	/* completed by the last batch, to post */
	char name[16];

	/* "igw-<backend>.<slot>", cut to the 15 characters Linux keeps */
	snprintf(name, sizeof(name), "igw-%.6s.%d", s->be->conf.name, w->slot);
	pthread_setname_np(pthread_self(), name);
	sched_lower_priority(s);
	pthread_mutex_lock(&s->mu);
	for (;;) {
		uint64_t now = now_ns(), wake;
		struct infer_req *expired = sched_expire(s, now);
		int rows = 0, qi, n = 0;

		qi = sched_pick(s, now, &wake, &rows);
		if (qi >= 0)
			n = sched_take(w, &s->qs[qi], rows, now);
		if (expired || n || done) {
			pthread_mutex_unlock(&s->mu);
			sched_post_list(expired);
			sched_post_list(done);
			done = NULL;
			if (n)
				sched_run_batch(w, qi, n);
			pthread_mutex_lock(&s->mu);
			if (n)
				done = sched_learn(w, &s->qs[qi]);
			continue;
		}
		if (s->stop)
			break;
		sched_wait(s, wake);
	}
	pthread_mutex_unlock(&s->mu);
	return NULL;
}

/* Set q's policy from qc (lock held, or q not yet shared). */
int sched_batch_limit(const struct backend *be, const struct model *m, int conf_max)
{
	int mb = m->max_batch_size;

	if (be->ops && be->ops->max_batch && be->ops->max_batch(be, m) < mb)
		mb = be->ops->max_batch(be, m);
	if (conf_max > 0 && conf_max < mb)
		mb = conf_max;
	return mb < 1 ? 1 : mb;
}

static void sched_configure(struct sched_q *q, const struct sched_q_conf *qc)
{
	q->max_batch = sched_batch_limit(q->s->be, qc->model, qc->max_batch);
	q->pol.max_batch = q->max_batch;
	q->pol.max_delay_ns = (uint64_t)qc->delay_us * 1000;
	q->pol.margin_ns = qc->margin_ns;
	q->pol.n_preferred = qc->n_preferred;
	memcpy(q->pol.preferred, qc->preferred, sizeof(q->pol.preferred));
	q->adaptive = qc->adaptive;
	q->drop_hopeless = qc->drop_hopeless;
	batch_adapt_init(&q->adapt, 1, q->max_batch, qc->objective_ns, 8);
	atomic_store(&q->eff_max_batch, q->max_batch);
	q->sq.max_reqs = qc->max_queue;
	sq_set_levels(&q->sq, qc->priority_levels);
}

void sched_update(struct sched_be *s, int qi, const struct sched_q_conf *qc)
{
	pthread_mutex_lock(&s->mu);
	/* Worker arrays hold the model's max_batch_size, the most a batch takes. */
	sched_configure(&s->qs[qi], qc);
	sched_publish(&s->qs[qi]);
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

static int sched_init_queues(struct sched_be *s, const struct sched_q_conf *qc, int n)
{
	int widest = 1;

	s->qs = calloc(n, sizeof(*s->qs));
	if (!s->qs)
		return -ENOMEM;
	s->n_q = n;
	for (int i = 0; i < n; i++) {
		struct sched_q *q = &s->qs[i];

		q->s = s;
		q->model = qc[i].model;
		q->met = qc[i].met;
		sq_init(&q->sq, qc[i].priority_levels, qc[i].max_queue);
		svc_init(&q->svc, qc[i].warm_a_ns, qc[i].warm_b_ns, 0.2);
		sched_configure(q, &qc[i]);
		if (qc[i].model->max_batch_size > widest)
			widest = qc[i].model->max_batch_size;
	}
	return widest;
}

int sched_be_start(struct sched_be *s, struct backend *be, const struct sched_q_conf *qc, int n)
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
	widest = sched_init_queues(s, qc, n);
	if (widest < 0)
		return widest;
	s->widest = widest;
	s->n_threads = be->conf.slots > 0 ? be->conf.slots : 1;
	s->busy_until = calloc(s->n_threads, sizeof(*s->busy_until));
	s->workers = calloc(s->n_threads, sizeof(*s->workers));
	for (int i = 0; i < s->n_threads; i++) {
		struct sched_worker *w = &s->workers[i];

		w->s = s;
		w->slot = i;
		w->slices = calloc(widest, sizeof(*w->slices));
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
	if (s->stopped || !s->qs)
		return;
	s->stopped = true;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	for (int i = 0; i < s->n_threads; i++) {
		pthread_join(s->workers[i].thread, NULL);
		sem_destroy(&s->workers[i].done);
		free(s->workers[i].slices);
	}
	free(s->workers);
	s->workers = NULL;
	free(s->busy_until);
	s->busy_until = NULL;
	free(s->qs);
	s->qs = NULL;
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
}
