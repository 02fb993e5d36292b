/*
 * scheduler.h - per (backend, model) queues and credit-based dispatch.
 *
 * Glue between the pure policy (policy.h: every decision, also linked by
 * the simulator) and a backend: one mutex per backend, held around every
 * pol_* call, and no thread of its own.  A backend has be->credits
 * batches in flight at most.  Whoever makes work possible dispatches, on
 * its own thread and without blocking: an enqueue (an event loop), a
 * batch's done() (a backend thread: the credit comes back), the timer
 * thread (max_queue_delay_us or a deadline ran out).  Dispatch answers
 * expired requests (504, never executed; with drop_hopeless also those
 * that can no longer finish in time), asks the batcher whether a queue
 * should be cut, takes requests (priority, then deadline order; one above
 * the batch limit as slices, sq_take) into a free credit's batch and
 * submits it.  done() learns the service time and posts every request
 * whose last slice ran to its sink (infer_complete); a request a backend gave
 * back as retryable (BE_RETRY) goes to the failover hook instead, which
 * places it elsewhere or answers it.  A client that goes away while its
 * request is queued removes it (sched_cancel): it is never executed; one
 * partly run loses its slices not yet started.
 */
#ifndef INFERGW_SCHEDULER_H
#define INFERGW_SCHEDULER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "batcher.h"
#include "policy.h"
#include "squeue.h"
#include "svctime.h"

struct backend;
struct model;
struct infer_req;
struct met_series;
struct sched_be;

/* How one queue behaves; filled by the runtime from the config. */
struct sched_q_conf {
	const struct model *model;
	int max_batch;			/* rows per batch; 0 = the model's max_batch_size */
	uint32_t delay_us;
	int max_queue;
	int priority_levels;
	int n_preferred;
	int preferred[BATCH_MAX_PREFERRED];
	bool adaptive;
	uint64_t objective_ns;		/* the model's objective: adaptive target */
	uint64_t margin_ns;
	bool drop_hopeless;		/* 504 what cannot finish by its deadline */
	uint64_t probe_ns;		/* probe a service time unsampled this long (policy.h) */
	double warm_a_ns, warm_b_ns;	/* service time warm start */
	struct met_series *met;
};

/*
 * A queue's routing state for lock-free readers: what sched_view answers
 * for a 1-row request at each priority level, written under the backend's
 * lock at every change (sched_publish) with a sequence lock, read without
 * it (sched_view_published).  The slots' residual is kept as an absolute
 * time so a reader applies its own clock.
 */
#define SCHED_PUB_LEVELS 16

struct sched_pub_level {
	_Atomic uint64_t work_ns;	/* work ahead / slots, without the residual */
	_Atomic uint64_t exec_ns;
	_Atomic uint64_t factor_bits;	/* wait calibration (a double's bits) */
	_Atomic uint32_t flags;		/* 1 full, 2 displaces */
};

struct sched_pub {
	_Atomic uint32_t seq;		/* odd while being written */
	_Atomic int levels;		/* levels published; 0 = none yet */
	_Atomic int queued;
	_Atomic uint64_t min_busy;	/* earliest end of a busy slot; 0 = a slot is idle */
	_Atomic uint64_t be_version;	/* the backend's version it was computed at */
	/* probes, the same at every level (a probe needs an empty queue):
	 * pol_probe_at for 1 row and the 1-row view's probe_exec_ns */
	_Atomic uint64_t probe_at;
	_Atomic uint64_t probe_exec_ns;
	struct sched_pub_level lv[SCHED_PUB_LEVELS];
};

struct sched_q {
	struct sched_be *s;
	const struct model *model;
	struct pol_queue pq;		/* queue, batching, learned service time (policy.h) */
	_Atomic int max_batch;		/* configured limit (sched_batch_limit); reload writes, loops read */
	struct met_series *met;
	_Atomic int depth;		/* queued requests, readable without the lock */
	_Atomic uint32_t version;	/* published state: bumped under the lock at every
					 * change of the queue or its slots (routing's
					 * "nothing changed since the precheck") */
	_Atomic int eff_max_batch;	/* for metrics */
	struct sched_pub pub;		/* for the router, without the lock */
};

struct sched_be {
	struct backend *be;
	pthread_mutex_t mu;
	pthread_cond_t cv;		/* stop waits here for in-flight work */
	int n_q;
	struct sched_q *qs;
	int n_slots;			/* credits: batches in flight at most */
	struct sched_slot *slots;
	int n_free;			/* credits not in flight */
	int widest;			/* largest batch a slot can hold */
	uint64_t *busy_until;		/* per slot: predicted end of its batch, 0 = idle */
	struct pol_queue **pq;		/* &qs[i].pq */
	struct pol_be pb;		/* the policy's view: pq and busy_until */
	int active;			/* threads inside dispatch (stop waits for 0) */
	bool stop;			/* no more enqueues; drain */
	bool abort;			/* stop without running what is queued (503) */
	bool stopped;
	int rr;
	_Atomic uint64_t version;	/* bumped by every sched_publish of its queues */
	/* the timer (scheduler.c): when to dispatch again; UINT64_MAX = never */
	_Atomic uint64_t tm_wake;
	struct sched_be *tm_next;
	bool tm_on;
	_Atomic uint64_t dispatched;	/* batches submitted, for tests and metrics */
	_Atomic int max_inflight;	/* most batches ever in flight at once */
};

/*
 * sched_batch_limit - the most rows one batch of m on be holds: the
 * backend's own limit for m (ops->caps; none: the model's max_batch_size),
 * lowered by conf_max (models[].max_batch; 0 = none).  Requests above it
 * run sliced; no request may have more rows than the model's max_batch_size.
 */
int sched_batch_limit(const struct backend *be, const struct model *m, int conf_max);
/*
 * sched_be_start - one queue per conf entry and be->credits slots (at least
 * 1).  No thread is started (the shared timer thread starts once).  0, or
 * -errno with nothing left allocated.
 */
int sched_be_start(struct sched_be *s, struct backend *be, const struct sched_q_conf *qc, int n);
/*
 * sched_failover - set the hook that places a request a backend gave back
 * as retryable (BE_RETRY) somewhere else: fn(r, from, now) runs on the
 * backend's thread with r no longer held by any scheduler (state REQ_NEW,
 * status 0, r->retries counted).  fn must answer r exactly once: queue it
 * on another backend (its completion then comes from there) or set
 * r->status/errmsg and infer_complete it.  NULL (the default): answered 503.
 */
void sched_failover(void (*fn)(struct infer_req *r, struct sched_be *from, uint64_t now));
/* sched_kick - dispatch what can run on s now (any thread; never blocks
 * on execution). */
void sched_kick(struct sched_be *s);
/*
 * sched_update - apply a reloaded queue configuration (batching, bounds,
 * priorities, objective) to queue qi, under the lock; queued requests
 * stay.  The learned service time is kept.  Call it when the snapshot
 * that carries s over is published (runtime.c), never before: the old
 * snapshot keeps its settings until then.
 */
void sched_update(struct sched_be *s, int qi, const struct sched_q_conf *qc);
/* sched_set_warm - the service-time warm start of queue qi, t(n) = a + b*n
 * (what batch sizes not observed yet are predicted from). */
void sched_set_warm(struct sched_be *s, int qi, double a_ns, double b_ns);
/* sched_find - index of the queue for m, or -1. */
int sched_find(const struct sched_be *s, const struct model *m);
/*
 * sched_view_published - sched_view for a 1-row request from the queue's
 * published state, without the lock: the same numbers sched_view gives at
 * the same now, as of the last change.  false (out untouched) when there
 * is none to use: rows > 1, nothing published yet, prio above the levels
 * published, another queue of the backend changed since (its work counts
 * in this queue's wait), or a writer kept it busy; then call sched_view.
 */
bool sched_view_published(struct sched_be *s, int qi, int rows, int prio, uint64_t now,
			  struct router_cand *out);
/* sched_wait_factor - the calibration applied to predicted waits at prio
 * on queue qi (svc_wait_factor). */
double sched_wait_factor(struct sched_be *s, int qi, int prio);
/* sched_view - what the router sees of queue qi for a request of rows at
 * priority prio (pol_view: fills c's queued, full, displaces, wait_ns,
 * work_ns, exec_ns). */
void sched_view(struct sched_be *s, int qi, int rows, int prio, uint64_t now,
		struct router_cand *c);
/*
 * sched_enqueue - queue r on queue qi (r->priority already normalized).
 * A full queue makes room by displacing its lowest-priority request below
 * r's priority (answered 429).  A request above the batch limit runs as
 * several batches.  Returns 0, -EAGAIN (queue full), -E2BIG (rows above
 * the model's max_batch_size) or -ESHUTDOWN; on error r is still the
 * caller's.
 */
int sched_enqueue(struct sched_be *s, int qi, struct infer_req *r, uint64_t now);
/*
 * sched_cancel - the client is gone.  true when r was still queued: it is
 * removed, never executed, and the caller owns it again.  false when it
 * already runs (or ran): its completion still arrives, and its slices not
 * yet started (a request larger than one batch) never run.  true also when
 * r was partly run and no slice of it is running: what was queued is
 * dropped and nothing more arrives.
 */
bool sched_cancel(struct infer_req *r);
/*
 * sched_defer_begin / sched_defer_end - around one event-loop callback:
 * enqueues in between dispatch each backend once, at the end (every free
 * credit is used then), so the requests of one read (an HTTP/2 client
 * sends many per packet) go out as full batches instead of one each.
 */
void sched_defer_begin(void);
void sched_defer_end(void);
/* sched_defer_flush - inside sched_defer_begin/end: dispatch what is
 * deferred now, and go on deferring (a read that answers before it
 * writes).  Outside: nothing. */
void sched_defer_flush(void);
/* sched_be_stop - no more enqueues; run every queued request, wait for
 * every batch in flight, free the queues.  Idempotent. */
void sched_be_stop(struct sched_be *s);
/* sched_be_abort - like sched_be_stop, but what is still queued is
 * answered 503 and never executed (shutdown after the grace period). */
void sched_be_abort(struct sched_be *s);

#endif
