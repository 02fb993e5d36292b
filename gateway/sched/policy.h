/*
 * policy.h - the scheduler's decisions, as pure functions.
 *
 * Admission (where a request lands, whether it displaces), wait and
 * execution prediction (what the router sees: `full`, `displaces`, wait,
 * exec), drop-hopeless, the batch cut, what a dequeue and a finished batch
 * teach (service time, wait calibration, AIMD batch size) and priority
 * normalisation.  No I/O, no threads, no locks, no clock reads: time comes
 * in as now_ns, and the caller holds whatever lock guards the state (the
 * scheduler's mutex; the simulator, bench/sim, calls it from one thread
 * with virtual time and links this very file).
 *
 * State: one pol_queue per (backend, model) queue, one pol_be per backend
 * (its queues, and per slot the predicted end of the batch it runs).
 *
 * Probes (router.h): a queue's service time is learned only from what it
 * runs, so one predicted slow (a cold start's first batch) would get no
 * request again.  Per service-time bucket the queue keeps when a batch of
 * it last taught the model and when a request of it was last admitted;
 * once both are probe_ns old and nothing is queued, pol_view marks the
 * queue a probe for a request of that bucket (at most one per bucket per
 * probe_ns: admitting it restarts the clock), predicted at the lower of
 * the learned and the warm start's time.  A sample into a bucket that had
 * none for probe_ns replaces the old estimate (svc_forget) instead of
 * being averaged with it.
 */
#ifndef INFERGW_POLICY_H
#define INFERGW_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "batcher.h"
#include "router.h"
#include "squeue.h"
#include "svctime.h"

struct infer_req;
struct infer_slice;

/* The policy of one queue, from the config. */
struct pol_conf {
	int max_batch;			/* batch limit (rows), >= 1 */
	int max_rows;			/* request limit: the model's max_batch_size */
	uint32_t delay_us;
	int max_queue;
	int priority_levels;
	int n_preferred;
	int preferred[BATCH_MAX_PREFERRED];
	bool adaptive;
	uint64_t objective_ns;		/* adaptive batching's target */
	uint64_t margin_ns;
	bool drop_hopeless;
	uint64_t probe_ns;		/* probe a bucket unsampled this long; 0 = never */
};

/* The policy state of one (backend, model) queue. */
struct pol_queue {
	struct squeue sq;
	struct batch_policy bp;		/* bp.max_batch = effective (adaptive) limit */
	struct svc_model svc;
	struct batch_adapt adapt;
	int max_rows;
	bool adaptive;
	bool drop_hopeless;
	int n_internal;			/* internal requests queued (r->internal): cut at once */
	uint64_t probe_ns;		/* pol_conf.probe_ns */
	uint64_t learned_ns[SVC_BUCKETS];	/* per bucket: end of the last batch learned */
	uint64_t admitted_ns[SVC_BUCKETS];	/* per bucket: last request admitted */
};

/* The policy state of one backend: its queues and its slots. */
struct pol_be {
	int n_q;
	struct pol_queue **q;
	int n_slots;
	uint64_t *busy_until;		/* per slot: predicted end of its batch; 0 = idle */
};

/* Where a request lands in a queue (batch_place). */
struct pol_place {
	int before, first, last, spans;
};

/* Priority settings ([routing]). */
struct pol_prio_conf {
	int levels;
	int sheddable_levels;
	double shed_wait_fraction;
};

/* pol_init - empty queue configured by c, service time warm start
 * t(n) = warm_a_ns + warm_b_ns * n. */
void pol_init(struct pol_queue *q, const struct pol_conf *c, double warm_a_ns, double warm_b_ns);
/* pol_configure - apply c (a reload): queued requests and the learned
 * service time stay; the adaptive batch size restarts at c->max_batch. */
void pol_configure(struct pol_queue *q, const struct pol_conf *c);

/*
 * pol_prepare - normalise r's priority (0: model_prio; clamped to
 * 1..levels), set r->sheddable (the lowest sheddable_levels levels) and
 * fill the router's request: saturation = shed_wait_fraction x the model's
 * objective (model_objective_ns), else the request's own, else 0.
 */
void pol_prepare(const struct pol_prio_conf *c, int model_prio, uint64_t model_objective_ns,
		 struct infer_req *r, uint64_t now_ns, struct route_req *rq);

/*
 * pol_raw_wait - predicted wait, before calibration, of a request of rows
 * at priority prio on queue qi until its first batch starts: the soonest
 * slot to free up plus the work queued ahead (this queue's and the other
 * models' on the same slots) spread over the slots.  *pl: where it lands.
 */
uint64_t pol_raw_wait(const struct pol_be *b, int qi, int rows, int prio, uint64_t now_ns,
		      struct pol_place *pl);
/*
 * pol_probe_at - from when queue q is due a probe for a request of rows
 * (see Probes above); UINT64_MAX while probes are off or requests are
 * queued.
 */
uint64_t pol_probe_at(const struct pol_queue *q, int rows);
/* pol_probe_due - a probe is due at now by at (pol_probe_at's answer);
 * never for UINT64_MAX, which the publisher also passes as now. */
static inline bool pol_probe_due(uint64_t at, uint64_t now_ns)
{
	return at != UINT64_MAX && now_ns >= at;
}
/*
 * pol_view - what the router sees of queue qi for a request of rows at
 * priority prio: fills c's queued, full (full for this priority: nothing
 * below it to displace), displaces (full, but room by displacing a lower
 * priority), wait_ns (calibrated), work_ns (uncalibrated), exec_ns (its
 * first batch as filled with what is queued now, plus its further batches
 * when sliced), probe (now >= pol_probe_at) and probe_exec_ns (exec_ns
 * at the lower of the learned and the warm start's time; exec_ns when not
 * a probe).  c's id, qi and cost are left alone.
 */
void pol_view(const struct pol_be *b, int qi, int rows, int prio, uint64_t now_ns,
	      struct router_cand *c);
/*
 * pol_admit - queue r on queue qi: records what the router saw
 * (r->enqueue_ns, r->pred_wait_ns uncalibrated) and the admission of its
 * bucket (probes: one is on its way), pushes it, and when the
 * queue is full displaces its lowest request below r's priority
 * (*displaced, to answer 429; else NULL).  0, -E2BIG (rows above
 * max_rows: nothing done) or -EAGAIN (full, nothing to displace).
 */
int pol_admit(struct pol_be *b, int qi, struct infer_req *r, uint64_t now_ns,
	      struct infer_req **displaced);
/* pol_remove - unlink queued r from q (cancelled, flushed at shutdown). */
void pol_remove(struct pol_queue *q, struct infer_req *r);
/*
 * pol_expire - unlink from q what is past its deadline and, with
 * drop_hopeless, what a batch started now (of min(queued, limit) rows)
 * would still finish too late; *need_ns = that batch's predicted time (0
 * without drop_hopeless).  Each request dropped before its first slice
 * counts as a wait miss (svc_wait_missed).  Returns them linked through
 * ->next; the caller answers them and calls sq_drop on each.
 */
struct infer_req *pol_expire(struct pol_queue *q, uint64_t now_ns, uint64_t *need_ns);
/*
 * pol_cut - rows to cut from q now (batch_decide; draining, or an internal
 * request queued: whatever is queued, up to the limit), or 0 with *wake_ns = when to look again (the
 * batcher's moment or the earliest deadline, to answer it 504 on time;
 * UINT64_MAX: nothing to wait for).
 */
int pol_cut(const struct pol_queue *q, uint64_t now_ns, bool draining, uint64_t *wake_ns);
/*
 * pol_take - take the cut batch of rows from queue qi for slot:
 * sq_take (a head larger than the cut runs alone), each request's first
 * slice stamps r->dequeue_ns and teaches the wait calibration (not an
 * internal request's); the slot's busy_until is set to now + predicted time.  Writes out[0..cap); returns
 * the slice count, *batch_rows and *oldest_ns (earliest arrival; a later
 * slice of a request counts as arriving now).
 */
int pol_take(struct pol_be *b, int qi, int slot, int rows, uint64_t now_ns,
	     struct infer_slice *out, int cap, int *batch_rows, uint64_t *oldest_ns);
/*
 * pol_topup - the backend is about to start the batch pol_take cut for
 * slot (n slices in out, *batch_rows rows): add what queue qi holds now,
 * up to the batch limit (not with preferred sizes: the cut chose the
 * size), accounted as pol_take does; busy_until follows the new size.
 * Writes out[n..cap); returns the slices added (0: nothing to add).
 */
int pol_topup(struct pol_be *b, int qi, int slot, uint64_t now_ns, struct infer_slice *out,
	      int n, int cap, int *batch_rows, uint64_t *oldest_ns);
/*
 * pol_learn - a batch of rows on slot of queue qi ran exec_ns and ended at
 * end_ns; oldest_ns as pol_take said.  Frees the slot's prediction, feeds
 * the service-time model (a bucket without a sample for probe_ns starts
 * afresh) and, adaptive, the AIMD batch size.  Returns the
 * effective batch limit.  A batch that teaches nothing (given back
 * unrun, or internal requests only) calls pol_release instead.
 */
int pol_learn(struct pol_be *b, int qi, int slot, int rows, uint64_t exec_ns, uint64_t end_ns,
	      uint64_t oldest_ns);
/* pol_release - slot's batch ended without teaching anything: free its
 * prediction only.  Returns the effective batch limit. */
int pol_release(struct pol_be *b, int qi, int slot);

#endif
