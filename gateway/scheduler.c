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

static void sched_publish(struct sched_q *q);

int sched_find(const struct sched_be *s, const struct model *m)
{
	for (int i = 0; i < s->n_q; i++)
		if (s->qs[i].model == m)
			return i;
	return -1;
}

void sched_view(struct sched_be *s, int qi, int rows, int prio, uint64_t now,
		struct router_cand *c)
{
	pthread_mutex_lock(&s->mu);
	pol_view(&s->pb, qi, rows, prio, now, c);
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
	int levels = q->pq.sq.hi < SCHED_PUB_LEVELS ? q->pq.sq.hi : SCHED_PUB_LEVELS;

	atomic_store_explicit(&p->seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (int l = 1; l <= levels; l++) {
		struct sched_pub_level *pl = &p->lv[l - 1];
		struct router_cand v = { 0 };
		double f = svc_wait_factor(&q->pq.svc, l);
		uint64_t fb;

		/* now = UINT64_MAX: no slot residual; readers add their own */
		pol_view(&s->pb, (int)(q - s->qs), 1, l, UINT64_MAX, &v);
		memcpy(&fb, &f, sizeof(fb));
		atomic_store_explicit(&pl->work_ns, v.work_ns, memory_order_relaxed);
		atomic_store_explicit(&pl->exec_ns, v.exec_ns, memory_order_relaxed);
		atomic_store_explicit(&pl->factor_bits, fb, memory_order_relaxed);
		atomic_store_explicit(&pl->flags, (v.full ? 1u : 0) | (v.displaces ? 2u : 0),
				      memory_order_relaxed);
	}
	atomic_store_explicit(&p->levels, levels, memory_order_relaxed);
	atomic_store_explicit(&p->queued, q->pq.sq.n_reqs, memory_order_relaxed);
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

	atomic_store_explicit(&q->depth, q->pq.sq.n_reqs, memory_order_relaxed);
	atomic_fetch_add_explicit(&q->version, 1, memory_order_release);
	if (s->n_q <= SCHED_PUB_ALL) {
		for (int i = 0; i < s->n_q; i++)
			sched_pub_write(&s->qs[i], bv);
	} else {
		sched_pub_write(q, bv);
	}
}

bool sched_view_published(struct sched_be *s, int qi, int rows, int prio, uint64_t now,
			  struct router_cand *out)
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
		/* as pol_raw_wait: the soonest slot's residual, then the work */
		raw = (busy > now ? busy - now : 0) + work;
		out->queued = queued;
		out->full = flags & 1;
		out->displaces = (flags & 2) != 0;
		out->wait_ns = (uint64_t)((double)raw * f);
		out->work_ns = raw;
		out->exec_ns = exec;
		return true;
	}
	return false;
}

double sched_wait_factor(struct sched_be *s, int qi, int prio)
{
	double f;

	pthread_mutex_lock(&s->mu);
	f = svc_wait_factor(&s->qs[qi].pq.svc, prio);
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

	pthread_mutex_lock(&s->mu);
	if (s->stop) {
		rc = -ESHUTDOWN;
		goto out_unlock;
	}
	atomic_store_explicit(&r->state, REQ_QUEUED, memory_order_relaxed);
	r->next_row = r->slices_out = r->n_batches = 0;
	rc = pol_admit(&s->pb, qi, r, now, &displaced);
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
		sq_remove(&q->pq.sq, r);
		removed = true;
	} else if (expect == REQ_RUNNING) {
		/* Slices not yet started are skipped (backend.h); a queued
		 * remainder never runs.  With no slice running any more, no
		 * completion will come: r is the caller's again. */
		atomic_store(&r->state, REQ_CANCELLED);
		if (r->next_row < r->rows) {
			sq_remove(&q->pq.sq, r);
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
		uint64_t need;
		struct infer_req *r = pol_expire(&q->pq, now, &need), *next;

		for (; r; r = next) {
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
		uint64_t w;
		int cut = pol_cut(&s->qs[i].pq, now, s->stop, &w);

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
static int sched_take(struct sched_worker *w, int qi, int rows, uint64_t now)
{
	struct sched_q *q = &w->s->qs[qi];
	int n = pol_take(&w->s->pb, qi, w->slot, rows, now, w->slices, w->s->widest, &w->b.rows,
			 &w->oldest);

	for (int i = 0; i < n; i++) {
		w->slices[i].status = 0;
		if (w->slices[i].row0 == 0)
			atomic_store(&w->slices[i].r->state, REQ_RUNNING);
	}
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
			sq_remove(&q->pq.sq, r);
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
static struct infer_req *sched_learn(struct sched_worker *w, int qi)
{
	struct sched_q *q = &w->s->qs[qi];
	const struct batch *b = &w->b;
	struct infer_req *done = NULL;
	int eff = pol_learn(&w->s->pb, qi, w->slot, b->rows, b->exec_end_ns - b->exec_start_ns,
			    b->exec_end_ns, w->oldest);

	atomic_store_explicit(&q->eff_max_batch, eff, memory_order_relaxed);
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
			n = sched_take(w, qi, rows, now);
		if (expired || n || done) {
			pthread_mutex_unlock(&s->mu);
			sched_post_list(expired);
			sched_post_list(done);
			done = NULL;
			if (n)
				sched_run_batch(w, qi, n);
			pthread_mutex_lock(&s->mu);
			if (n)
				done = sched_learn(w, qi);
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

/* The policy settings of q from qc. */
static void sched_pol_conf(const struct sched_q *q, const struct sched_q_conf *qc,
			   struct pol_conf *pc)
{
	*pc = (struct pol_conf){
		.max_batch = sched_batch_limit(q->s->be, qc->model, qc->max_batch),
		.max_rows = qc->model->max_batch_size, .delay_us = qc->delay_us,
		.max_queue = qc->max_queue, .priority_levels = qc->priority_levels,
		.n_preferred = qc->n_preferred, .adaptive = qc->adaptive,
		.objective_ns = qc->objective_ns, .margin_ns = qc->margin_ns,
		.drop_hopeless = qc->drop_hopeless,
	};
	memcpy(pc->preferred, qc->preferred, sizeof(pc->preferred));
}

static void sched_configure(struct sched_q *q, const struct sched_q_conf *qc)
{
	struct pol_conf pc;

	sched_pol_conf(q, qc, &pc);
	pol_configure(&q->pq, &pc);
	q->max_batch = pc.max_batch;
	atomic_store(&q->eff_max_batch, pc.max_batch);
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
	s->pq = calloc(n, sizeof(*s->pq));
	if (!s->qs || !s->pq)
		return -ENOMEM;
	s->n_q = n;
	for (int i = 0; i < n; i++) {
		struct sched_q *q = &s->qs[i];

		struct pol_conf pc;

		q->s = s;
		q->model = qc[i].model;
		q->met = qc[i].met;
		sched_pol_conf(q, &qc[i], &pc);
		pol_init(&q->pq, &pc, qc[i].warm_a_ns, qc[i].warm_b_ns);
		q->max_batch = pc.max_batch;
		atomic_store(&q->eff_max_batch, pc.max_batch);
		s->pq[i] = &q->pq;
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
	s->pb = (struct pol_be){ .n_q = n, .q = s->pq, .n_slots = s->n_threads,
				 .busy_until = s->busy_until };
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
	free(s->pq);
	s->pq = NULL;
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
}
