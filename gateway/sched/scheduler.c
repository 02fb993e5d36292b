/* scheduler.c - see scheduler.h. */
#define _GNU_SOURCE	/* pthread_setname_np */
#include "scheduler.h"

#include <errno.h>
#include <sched.h>
#include <time.h>
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

/* One credit: the batch it carries while in flight. */
struct sched_slot {
	struct sched_be *s;
	int qi;				/* queue of the batch in flight */
	bool busy;
	struct batch b;
	uint64_t oldest;		/* of the batch in flight: earliest arrival (a
					 * later slice of a request: when it was cut) */
	struct infer_slice *slices;	/* capacity: s->widest */
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

	for (int i = 0; i < s->n_slots; i++)
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
	struct router_cand v = { 0 };
	int ahead_done = -1, ahead = 0;
	uint64_t probe_exec = 0;

	atomic_store_explicit(&p->seq, seq + 1, memory_order_relaxed);
	atomic_thread_fence(memory_order_release);
	for (int l = 1; l <= levels; l++) {
		struct sched_pub_level *pl = &p->lv[l - 1];
		double f = svc_wait_factor(&q->pq.svc, l);

		ahead += sq_rows_at(&q->pq.sq, l);	/* sq_rows_ahead(l), levels <= hi */
		uint64_t fb;

		/* A level sees the level above's view when no rows are queued
		 * at it: what is published (work, exec, flags) depends on the
		 * level only through the rows ahead, the factor apart. */
		if (ahead != ahead_done) {
			v = (struct router_cand){ 0 };
			/* now = UINT64_MAX: no slot residual; readers add their own */
			pol_view(&s->pb, (int)(q - s->qs), 1, l, UINT64_MAX, &v);
			ahead_done = ahead;
			if (l == 1)
				probe_exec = v.probe_exec_ns;
		}
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
	atomic_store_explicit(&p->probe_at, pol_probe_at(&q->pq, 1), memory_order_relaxed);
	atomic_store_explicit(&p->probe_exec_ns, probe_exec, memory_order_relaxed);
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
		uint64_t work, exec, fb, busy, bv, raw, probe_at, probe_exec;
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
		probe_at = atomic_load_explicit(&p->probe_at, memory_order_relaxed);
		probe_exec = atomic_load_explicit(&p->probe_exec_ns, memory_order_relaxed);
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
		/* as pol_view */
		out->probe = pol_probe_due(probe_at, now);
		out->probe_exec_ns = out->probe ? probe_exec : exec;
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

/* Kick what was deferred (sched_n_pending cleared first: a kick may
 * defer again while deferring). */
static void sched_defer_kick(void)
{
	struct sched_be *pending[SCHED_DEFER_MAX];
	int n = sched_n_pending;

	memcpy(pending, sched_pending, sizeof(pending[0]) * (size_t)n);
	sched_n_pending = 0;
	for (int i = 0; i < n; i++)
		sched_kick(pending[i]);
}

void sched_defer_end(void)
{
	sched_deferring = false;
	sched_defer_kick();
}

void sched_defer_flush(void)
{
	if (sched_deferring)
		sched_defer_kick();
}

static void (*sched_failover_fn)(struct infer_req *r, struct sched_be *from, uint64_t now);

void sched_failover(void (*fn)(struct infer_req *r, struct sched_be *from, uint64_t now))
{
	sched_failover_fn = fn;
}

/* r->queue is written by whichever thread moves r (failover). */
static struct sched_q *sched_queue_of(struct infer_req *r)
{
	return __atomic_load_n((struct sched_q **)&r->queue, __ATOMIC_ACQUIRE);
}

static void sched_set_queue(struct infer_req *r, struct sched_q *q)
{
	__atomic_store_n((struct sched_q **)&r->queue, q, __ATOMIC_RELEASE);
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
	if (r->status > 0)
		return;
	r->status = status;
	if (!r->next_row)
		r->dequeue_ns = now;
	r->retry_after_s = 1;
	va_start(ap, fmt);
	vsnprintf(r->errmsg, sizeof(r->errmsg), fmt, ap);
	va_end(ap);
}

static void sched_timer_arm(struct sched_be *s, uint64_t wake);

int sched_enqueue(struct sched_be *s, int qi, struct infer_req *r, uint64_t now)
{
	struct sched_q *q = &s->qs[qi];
	struct infer_req *displaced = NULL;
	bool kick = false;
	int rc;

	pthread_mutex_lock(&s->mu);
	if (s->stop) {
		rc = -ESHUTDOWN;
		goto out_unlock;
	}
	atomic_store_explicit(&r->state, REQ_QUEUED, memory_order_relaxed);
	r->next_row = r->slices_out = r->n_batches = 0;
	rc = pol_admit(&s->pb, qi, r, now, &displaced);
	if (displaced) {
		/* Answered while still under the lock: a concurrent sched_cancel
		 * of the victim then sees it EXPIRED, not QUEUED, and leaves
		 * the (already unlinked) request alone. */
		sched_answer(displaced, 429, now, "queue for model %s is full: displaced by a "
			     "priority %d request", q->model->name, r->priority);
		sched_set_queue(displaced, NULL);
	}
	if (rc) {
		atomic_store_explicit(&r->state, REQ_NEW, memory_order_relaxed);
		goto out_unlock;
	}
	sched_set_queue(r, q);
	r->met = q->met;
	sched_publish(q);
	kick = s->n_free > 0;
	if (!kick && r->deadline_ns)
		sched_timer_arm(s, r->deadline_ns);	/* expire it on time while busy */
out_unlock:
	pthread_mutex_unlock(&s->mu);
	if (displaced)
		infer_complete(displaced);
	if (kick && !sched_defer_add(s))
		sched_kick(s);
	return rc;
}

bool sched_cancel(struct infer_req *r)
{
	struct sched_q *q;
	int expect;
	bool removed = false;

	for (;;) {
		q = sched_queue_of(r);
		if (!q)
			return false;	/* answered, or moving: its answer comes */
		pthread_mutex_lock(&q->s->mu);
		if (sched_queue_of(r) == q)
			break;
		pthread_mutex_unlock(&q->s->mu);
	}
	expect = REQ_QUEUED;
	if (atomic_compare_exchange_strong(&r->state, &expect, REQ_CANCELLED)) {
		pol_remove(&q->pq, r);
		sched_set_queue(r, NULL);
		removed = true;
	} else if (expect == REQ_RUNNING) {
		/* Slices not yet started are skipped (backend.h); a queued
		 * remainder never runs.  With no slice running any more, no
		 * completion will come: r is the caller's again. */
		atomic_store(&r->state, REQ_CANCELLED);
		if (r->next_row < r->rows) {
			pol_remove(&q->pq, r);
			removed = sq_drop(r);
		}
		if (!removed && q->s->be->ops->cancel)
			q->s->be->ops->cancel(q->s->be, r);
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
		struct infer_req *r, *next;

		if (!q->pq.sq.n_reqs)
			continue;
		r = pol_expire(&q->pq, now, &need);
		if (!r)
			continue;
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
			sched_set_queue(r, NULL);
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

/* Earliest deadline queued on s (every credit busy: expire on time). */
static uint64_t sched_next_deadline(const struct sched_be *s)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < s->n_q; i++) {
		const struct squeue *sq = &s->qs[i].pq.sq;
		uint64_t dl = sq->n_reqs ? sq_earliest_deadline(sq) : UINT64_MAX;

		if (dl < best)
			best = dl;
	}
	return best;
}

/* Mark slices [from, to) of w just taken from q running (lock held). */
static void sched_took(struct sched_slot *w, struct sched_q *q, int from, int to)
{
	for (int i = from; i < to; i++) {
		w->slices[i].status = 0;
		if (w->slices[i].row0 == 0)
			atomic_store(&w->slices[i].r->state, REQ_RUNNING);
	}
	sched_publish(q);
}

/* Take a cut batch from queue qi into slot w (lock held).  Returns the slice count. */
static int sched_take(struct sched_slot *w, int qi, int rows, uint64_t now)
{
	struct sched_be *s = w->s;
	int n = pol_take(&s->pb, qi, w->b.slot, rows, now, w->slices, s->widest, &w->b.rows,
			 &w->oldest);

	sched_took(w, &s->qs[qi], 0, n);
	return n;
}

/* Point b's slices [from, n_slices) at their rows of their requests, all a
 * backend reads and writes of them (backend.h). */
static void sched_views(struct batch *b, int from)
{
	for (int i = from; i < b->n_slices; i++) {
		struct infer_slice *sl = &b->slices[i];
		const struct infer_req *r = sl->r;

		sl->input = r->input ? r->input + (size_t)sl->row0 * r->model->in_dim : NULL;
		sl->output = r->output ? r->output + (size_t)sl->row0 * r->model->out_dim : NULL;
		sl->deadline_ns = r->deadline_ns;
	}
}

/*
 * batch->topup: the backend is about to start b (a worker picked it up):
 * add what was queued for its model since it was cut (pol_topup), so a
 * backend whose start lags its dispatch still runs full batches.  Not
 * while aborting.  Returns b->rows.
 */
static int sched_batch_topup(struct batch *b)
{
	struct sched_slot *w = b->owner;
	struct sched_be *s = w->s;
	int n;

	pthread_mutex_lock(&s->mu);
	if (!s->abort) {
		n = pol_topup(&s->pb, w->qi, b->slot, now_ns(), w->slices, b->n_slices, s->widest,
			      &b->rows, &w->oldest);
		if (n) {
			sched_took(w, &s->qs[w->qi], b->n_slices, b->n_slices + n);
			b->n_slices += n;
			sched_views(b, b->n_slices - n);
		}
	}
	pthread_mutex_unlock(&s->mu);
	return b->rows;
}

/* Account slice sl of batch b to its request (lock held).  true when the
 * request is complete: its answer (or its failover) is due. */
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
	if (sl->status && r->status <= 0) {
		/* An HTTP status wins over a retry; the first one is the answer. */
		if (sl->status > 0 || !r->status) {
			r->status = sl->status;
			snprintf(r->errmsg, sizeof(r->errmsg), "%s", b->errmsg);
		}
		/* A slice failing fails the request: the rest need not run
		 * here (a retried request runs again, whole, elsewhere). */
		if (r->next_row < r->rows) {
			pol_remove(&q->pq, r);
			sq_drop(r);
		}
	}
	if (!sq_slice_done(r))
		return false;
	atomic_compare_exchange_strong(&r->state, &expect, REQ_DONE);
	sched_set_queue(r, NULL);
	return true;
}

/*
 * After a batch (lock held): learn its service time, adapt the batch size,
 * account its slices.  Returns the requests it completed, linked through
 * ->next, to post (or to fail over: status BE_RETRY).
 */
static struct infer_req *sched_learn(struct sched_slot *w, struct sched_q *q)
{
	struct sched_be *s = w->s;
	const struct batch *b = &w->b;
	struct infer_req *done = NULL;
	bool retried = false, traffic = false;
	int qi = (int)(q - s->qs), eff;

	for (int i = 0; i < b->n_slices; i++) {
		retried |= b->slices[i].status == BE_RETRY;
		traffic |= !b->slices[i].r->internal;
	}
	/* A batch given back did not run: nothing to learn from its time.
	 * Calibration batches (internal only) feed the warm start instead. */
	if (!retried && traffic && b->exec_end_ns >= b->exec_start_ns) {
		eff = pol_learn(&s->pb, qi, b->slot, b->rows, b->exec_end_ns - b->exec_start_ns,
				b->exec_end_ns, w->oldest);
		if (q->met)
			met_batch(q->met, b->rows, b->exec_end_ns - b->exec_start_ns);
	} else {
		eff = pol_release(&s->pb, qi, b->slot);
	}
	atomic_store_explicit(&q->eff_max_batch, eff, memory_order_relaxed);
	for (int i = 0; i < b->n_slices; i++)
		if (sched_slice_done(q, b, &b->slices[i])) {
			b->slices[i].r->next = done;
			done = b->slices[i].r;
		}
	sched_publish(q);
	return done;
}


/*
 * Hand r (given back retryable, held by no scheduler now) to the failover
 * hook; answered 503 when there is none, when r was cancelled meanwhile,
 * or after INFER_MAX_RETRIES tries.
 */
static void sched_retry(struct sched_be *s, struct infer_req *r, uint64_t now)
{
	int st = atomic_load(&r->state);

	r->status = 0;
	r->errmsg[0] = 0;
	/* An internal request measures this backend: it does not move. */
	if (st == REQ_CANCELLED || !sched_failover_fn || r->internal ||
	    ++r->retries > INFER_MAX_RETRIES) {
		r->status = 503;
		r->retry_after_s = 1;
		snprintf(r->errmsg, sizeof(r->errmsg), "backend %s failed the request and no "
			 "other backend took it", s->be->conf.name);
		infer_complete(r);
		return;
	}
	atomic_store(&r->state, REQ_NEW);
	r->avoid[r->retries - 1] = s;	/* retries <= INFER_MAX_RETRIES here */
	sched_failover_fn(r, s, now);
}

static void sched_post_list(struct sched_be *s, struct infer_req *r, uint64_t now)
{
	struct infer_req *next;

	for (; r; r = next) {
		next = r->next;
		if (r->status == BE_RETRY)
			sched_retry(s, r, now);
		else
			infer_complete(r);
	}
}

/* ---- the timer: dispatch again when a batch delay or deadline runs out ---- */

static pthread_mutex_t tm_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tm_cv;
static pthread_once_t tm_once = PTHREAD_ONCE_INIT;
static struct sched_be *tm_list;	/* registered schedulers */
static struct sched_be *tm_cur;		/* the one being kicked by the timer */

static void *sched_timer_main(void *arg)
{
	(void)arg;
	pthread_setname_np(pthread_self(), "igw-timer");
	pthread_mutex_lock(&tm_mu);
	for (;;) {
		uint64_t now = now_ns(), best = UINT64_MAX;
		struct sched_be *due = NULL;

		for (struct sched_be *s = tm_list; s && !due; s = s->tm_next) {
			uint64_t w = atomic_load(&s->tm_wake);

			if (w <= now)
				due = s;
			else if (w < best)
				best = w;
		}
		if (due) {
			atomic_store(&due->tm_wake, UINT64_MAX);
			tm_cur = due;
			pthread_mutex_unlock(&tm_mu);
			sched_kick(due);
			pthread_mutex_lock(&tm_mu);
			tm_cur = NULL;
			pthread_cond_broadcast(&tm_cv);
		} else if (best == UINT64_MAX) {
			pthread_cond_wait(&tm_cv, &tm_mu);
		} else {
			struct timespec ts = { .tv_sec = best / 1000000000ull,
					       .tv_nsec = best % 1000000000ull };

			pthread_cond_timedwait(&tm_cv, &tm_mu, &ts);
		}
	}
	return NULL;
}

static void sched_timer_init(void)
{
	pthread_condattr_t ca;
	pthread_t t;

	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&tm_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&t, NULL, sched_timer_main, NULL) == 0)
		pthread_detach(t);
	else
		log_error("msg=\"cannot start the scheduler timer thread\"");
}

static void sched_timer_add(struct sched_be *s)
{
	pthread_once(&tm_once, sched_timer_init);
	atomic_store(&s->tm_wake, UINT64_MAX);
	pthread_mutex_lock(&tm_mu);
	s->tm_next = tm_list;
	tm_list = s;
	s->tm_on = true;
	pthread_mutex_unlock(&tm_mu);
}

/* Unregister s; returns once the timer thread is not kicking it. */
static void sched_timer_del(struct sched_be *s)
{
	pthread_mutex_lock(&tm_mu);
	for (struct sched_be **p = &tm_list; *p; p = &(*p)->tm_next)
		if (*p == s) {
			*p = s->tm_next;
			break;
		}
	s->tm_on = false;
	while (tm_cur == s)
		pthread_cond_wait(&tm_cv, &tm_mu);
	pthread_mutex_unlock(&tm_mu);
}

/* Dispatch s again at wake (monotonic ns), unless already due sooner. */
static void sched_timer_arm(struct sched_be *s, uint64_t wake)
{
	if (wake == UINT64_MAX || wake >= atomic_load(&s->tm_wake))
		return;
	pthread_mutex_lock(&tm_mu);
	if (s->tm_on && wake < atomic_load(&s->tm_wake)) {
		atomic_store(&s->tm_wake, wake);
		pthread_cond_signal(&tm_cv);
	}
	pthread_mutex_unlock(&tm_mu);
}

/* ---- dispatch ---- */

static void sched_batch_done(struct batch *b);

/* Fill free credits with cut batches (lock held).  Returns how many; *wake
 * says when to look again when something stays queued. */
static int sched_fill(struct sched_be *s, uint64_t now, struct sched_slot **go, uint64_t *wake)
{
	int n_go = 0;

	*wake = UINT64_MAX;
	while (s->n_free > 0 && !s->abort) {
		struct sched_slot *w = NULL;
		int rows = 0, qi, n;

		qi = sched_pick(s, now, wake, &rows);
		if (qi < 0)
			return n_go;
		for (int i = 0; i < s->n_slots && !w; i++)
			if (!s->slots[i].busy)
				w = &s->slots[i];
		n = sched_take(w, qi, rows, now);
		if (!n) {	/* sched_take published the slot busy: publish it free */
			pol_release(&s->pb, qi, w->b.slot);
			sched_publish(&s->qs[qi]);
			break;
		}
		w->busy = true;
		w->qi = qi;
		w->b.model = s->qs[qi].model;
		w->b.n_slices = n;
		w->b.errmsg[0] = 0;
		w->b.exec_start_ns = w->b.exec_end_ns = 0;
		s->n_free--;
		go[n_go++] = w;
	}
	*wake = sched_next_deadline(s);
	return n_go;
}

/* Submit a cut batch; one the backend refuses fails like a batch that ran. */
static void sched_submit(struct sched_be *s, struct sched_slot *w)
{
	struct batch *b = &w->b;
	int rc;

	atomic_fetch_add_explicit(&s->dispatched, 1, memory_order_relaxed);
	sched_views(b, 0);
	rc = s->be->ops->submit(s->be, b);
	if (rc == 0)
		return;
	for (int i = 0; i < b->n_slices; i++)
		b->slices[i].status = rc == -EAGAIN || rc == -ENODEV ? BE_RETRY : 503;
	snprintf(b->errmsg, sizeof(b->errmsg), "backend %s could not start the batch: %s",
		 s->be->conf.name, strerror(-rc));
	b->exec_start_ns = b->exec_end_ns = now_ns();
	b->done(b);
}

/* The scheduler this thread is dispatching (a synchronous backend's done()
 * runs inside submit: the dispatch loop picks its credit up). */
static __thread struct sched_be *sched_in_dispatch;

/* The dispatch loop; the caller counted itself in s->active. */
static void sched_dispatch(struct sched_be *s)
{
	struct sched_slot *go[s->n_slots];
	struct sched_be *outer = sched_in_dispatch;

	sched_in_dispatch = s;
	for (;;) {
		uint64_t now = now_ns(), wake;
		struct infer_req *expired;
		int n_go, inflight;

		pthread_mutex_lock(&s->mu);
		expired = sched_expire(s, now);
		n_go = sched_fill(s, now, go, &wake);
		inflight = s->n_slots - s->n_free;
		if (inflight > atomic_load_explicit(&s->max_inflight, memory_order_relaxed))
			atomic_store_explicit(&s->max_inflight, inflight, memory_order_relaxed);
		/* Armed under the lock (s->mu, then tm_mu): s stays alive. */
		sched_timer_arm(s, wake);
		if (!n_go)
			s->active--;
		if (!n_go && s->stop)
			pthread_cond_broadcast(&s->cv);
		pthread_mutex_unlock(&s->mu);
		/* Once active is released, s may be freed: touch nothing of it. */
		sched_post_list(NULL, expired, now);
		if (!n_go)
			break;
		for (int i = 0; i < n_go; i++)
			sched_submit(s, go[i]);
	}
	sched_in_dispatch = outer;
}

void sched_kick(struct sched_be *s)
{
	if (sched_in_dispatch == s)
		return;		/* the loop running below us dispatches again */
	pthread_mutex_lock(&s->mu);
	if (s->stopped) {
		pthread_mutex_unlock(&s->mu);
		return;
	}
	s->active++;
	pthread_mutex_unlock(&s->mu);
	sched_dispatch(s);
}

/* A batch is done (any thread): account it, return its credit, post its
 * requests, dispatch again. */
static void sched_batch_done(struct batch *b)
{
	struct sched_slot *w = b->owner;
	struct sched_be *s = w->s;
	struct infer_req *done;
	uint64_t now = now_ns();

	pthread_mutex_lock(&s->mu);
	done = sched_learn(w, &s->qs[w->qi]);
	w->busy = false;
	s->n_free++;
	s->active++;		/* this thread dispatches next */
	pthread_mutex_unlock(&s->mu);
	/* Posts before dispatch: an answer does not wait for the next submit. */
	sched_post_list(s, done, now);
	if (sched_in_dispatch == s) {
		pthread_mutex_lock(&s->mu);
		s->active--;
		pthread_mutex_unlock(&s->mu);
		return;
	}
	sched_dispatch(s);
}

int sched_batch_limit(const struct backend *be, const struct model *m, int conf_max)
{
	int mb = m->max_batch_size;
	struct be_caps caps = { 0 };

	/* The limit belongs to the (backend, model) pair: a backend may batch
	 * fewer rows than the model's max_batch_size, or more (a GPU): the
	 * model's bound stays the most rows one request may have. */
	if (be->ops && be->ops->caps) {
		be->ops->caps(be, m, &caps);
		if (caps.max_batch > 0)
			mb = caps.max_batch;
	}
	if (conf_max > 0 && conf_max < mb)
		mb = conf_max;
	return mb < 1 ? 1 : mb;
}

/* The backend's preferred batch sizes for m (caps), within the batch
 * limit, when the config names none. */
static void sched_caps_preferred(const struct backend *be, const struct model *m,
				 struct pol_conf *pc)
{
	struct be_caps caps = { 0 };
	int n = 0;

	if (!be->ops || !be->ops->caps)
		return;
	be->ops->caps(be, m, &caps);
	for (int i = 0; i < caps.n_preferred && i < BE_MAX_PREFERRED && n < BATCH_MAX_PREFERRED; i++)
		if (caps.preferred[i] >= 1 && caps.preferred[i] <= pc->max_batch &&
		    (!n || caps.preferred[i] > pc->preferred[n - 1]))
			pc->preferred[n++] = caps.preferred[i];
	pc->n_preferred = n;
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
		.drop_hopeless = qc->drop_hopeless, .probe_ns = qc->probe_ns,
	};
	memcpy(pc->preferred, qc->preferred, sizeof(pc->preferred));
	if (!qc->n_preferred)
		sched_caps_preferred(q->s->be, qc->model, pc);
}

/* Set q's policy from qc (lock held). */
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
	/* Slot arrays hold the widest batch limit, the most a batch takes. */
	sched_configure(&s->qs[qi], qc);
	sched_publish(&s->qs[qi]);
	pthread_mutex_unlock(&s->mu);
	sched_kick(s);		/* a shorter delay may make a batch due now */
}

void sched_set_warm(struct sched_be *s, int qi, double a_ns, double b_ns)
{
	pthread_mutex_lock(&s->mu);
	svc_set_warm(&s->qs[qi].pq.svc, a_ns, b_ns);
	sched_publish(&s->qs[qi]);
	pthread_mutex_unlock(&s->mu);
}

static int sched_init_queues(struct sched_be *s, const struct sched_q_conf *qc, int n)
{
	int widest = 1;

	s->qs = calloc(n > 0 ? n : 1, sizeof(*s->qs));
	s->pq = calloc(n > 0 ? n : 1, sizeof(*s->pq));
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
		/* a batch holds at most its limit's rows, one slice each */
		if (sched_batch_limit(s->be, qc[i].model, 0) > widest)
			widest = sched_batch_limit(s->be, qc[i].model, 0);
	}
	return widest;
}

/* Free what sched_be_start allocated (no batch in flight, no dispatcher). */
static void sched_free(struct sched_be *s)
{
	for (int i = 0; s->slots && i < s->n_slots; i++)
		free(s->slots[i].slices);
	free(s->slots);
	s->slots = NULL;
	free(s->busy_until);
	s->busy_until = NULL;
	free(s->qs);
	s->qs = NULL;
	free(s->pq);
	s->pq = NULL;
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
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
		goto fail;
	s->widest = widest;
	s->n_slots = be->credits > 0 ? be->credits : 1;
	s->n_free = s->n_slots;
	s->busy_until = calloc(s->n_slots, sizeof(*s->busy_until));
	s->slots = calloc(s->n_slots, sizeof(*s->slots));
	if (!s->busy_until || !s->slots)
		goto fail;
	s->pb = (struct pol_be){ .n_q = n, .q = s->pq, .n_slots = s->n_slots,
				 .busy_until = s->busy_until };
	for (int i = 0; i < s->n_slots; i++) {
		struct sched_slot *w = &s->slots[i];

		w->s = s;
		w->b.be = be;
		w->b.slot = i;
		w->b.done = sched_batch_done;
		w->b.topup = sched_batch_topup;
		w->b.owner = w;
		w->b.slices = w->slices = calloc(widest, sizeof(*w->slices));
		if (!w->slices)
			goto fail;
	}
	sched_timer_add(s);
	return 0;
fail:
	log_error("backend=%s msg=\"cannot start the scheduler: out of memory\"", be->conf.name);
	sched_free(s);
	s->stopped = true;
	return -ENOMEM;
}

/* Answer every queued request 503 without running it (lock held).  Returns
 * them linked through ->next. */
static struct infer_req *sched_flush(struct sched_be *s, uint64_t now)
{
	struct infer_req *all = NULL;

	for (int i = 0; i < s->n_q; i++) {
		struct sched_q *q = &s->qs[i];
		struct infer_req *r;

		/* Everything queued has a deadline below UINT64_MAX... or none
		 * (0 sorts last): expire them all by hand. */
		for (int lv = 0; lv <= SQ_MAX_LEVELS; lv++)
			while ((r = q->pq.sq.lv[lv].head)) {
				pol_remove(&q->pq, r);
				sched_answer(r, 503, now, "gateway is shutting down: backend %s did "
					     "not start the request in time", s->be->conf.name);
				if (!sq_drop(r))
					continue;	/* a running slice posts it */
				sched_set_queue(r, NULL);
				r->next = all;
				all = r;
			}
		sched_publish(q);
	}
	return all;
}

static void sched_stop(struct sched_be *s, bool run_queued)
{
	struct infer_req *flushed = NULL;

	if (s->stopped || !s->qs)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	if (!run_queued) {
		s->abort = true;
		flushed = sched_flush(s, now_ns());
	}
	pthread_mutex_unlock(&s->mu);
	sched_post_list(NULL, flushed, 0);
	sched_kick(s);		/* drain without waiting for fuller batches */
	pthread_mutex_lock(&s->mu);
	for (;;) {
		bool queued = false;

		for (int i = 0; i < s->n_q; i++)
			queued |= s->qs[i].pq.sq.n_reqs > 0;
		if (!s->active && s->n_free == s->n_slots && !queued)
			break;
		pthread_cond_wait(&s->cv, &s->mu);
	}
	s->stopped = true;
	pthread_mutex_unlock(&s->mu);
	sched_timer_del(s);
	sched_free(s);
}

void sched_be_stop(struct sched_be *s)
{
	sched_stop(s, true);
}

void sched_be_abort(struct sched_be *s)
{
	sched_stop(s, false);
}
