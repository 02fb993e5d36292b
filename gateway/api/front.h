/*
 * front.h - the protocol-neutral request front: what every front end
 * (HTTP/2, HTTP/1.1, next gRPC and the DPDK fast path) calls to turn a
 * decoded request into an inference and to get its answer back.
 *
 *   front_objective   priority and objective from explicit values, then
 *                     header-equivalents, then the model's defaults
 *   front_precheck    pre-admission of a 1-row probe before the body is parsed
 *   front_req_new     a request from the calling thread's pool, with its
 *                     input and the input's release callback
 *   front_submit      route and queue it (or an HTTP status: not queued)
 *   front_cancel      the client went away
 *   front_deliver     run by a sink's consumer on the owning thread: the
 *                     input is released, then the creator's on_done runs
 *   front_req_put     give the request back to its pool (owning thread)
 *
 * Completion goes to a sink (struct front_sink, infer.h): the event-loop
 * sink (loop.h: an MPSC stack plus an eventfd wake) or the polled sink
 * below (an MPSC stack a DPDK lcore drains with front_sink_poll).
 *
 * Threads: a pool, and every request taken from it, belong to one thread
 * (the front end's): front_req_new, front_deliver, front_req_put and
 * front_cancel run there.  Only sink->complete runs elsewhere (a backend's
 * thread), and it hands the request back without touching the pool.
 *
 * The input's release callback runs exactly once per request: when the
 * request is done with its input, that is at delivery (after its last slice
 * executed or it was answered without executing), when front_submit
 * refuses it, when front_cancel removes it, or at front_req_put for a
 * request that never got that far.  It runs on the owning thread.
 */
#ifndef INFERGW_FRONT_H
#define INFERGW_FRONT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "infer.h"

struct model;
struct model_conf;
struct runtime;
struct rt_admission;

/* ---- priority and objective ---- */

/* What a front end knows about a request's priority and objective. */
struct front_hints {
	int priority;			/* explicit (body parameters.priority), 0 = not given */
	int64_t timeout_us;		/* explicit (parameters.timeout), 0 = not given */
	const char *x_priority;		/* header-equivalent (x-priority), NULL = absent */
	const char *x_slo_ms;		/* header-equivalent (x-slo-ms), NULL = absent */
	int variant;			/* parameters.variant (gRPC's): 0 = not given */
};

/*
 * front_objective - resolve priority and objective: an explicit value wins
 * over its header-equivalent, which wins over mc's defaults (priority 0 =
 * the model's, objective = mc->slo_ms, 0 = none).  x-priority must be an
 * integer in [0, 1000000]; x-slo-ms a number of milliseconds in
 * (0, 3600000].  0, or 400 with err (the message the client gets) set.
 * The priority is not normalized here (the router clamps it to the levels).
 */
int front_objective(const struct model_conf *mc, const struct front_hints *h, int *prio,
		    uint64_t *objective_ns, char *err, size_t errlen);

/* ---- pools ---- */

/* One thread's free requests.  Zero-initialised or front_pool_init. */
struct front_pool {
	struct infer_req *free;		/* linked through ->next */
	int n_free;
	int max_free;			/* kept at most; more are freed */
	unsigned long n_new;		/* requests handed out */
	unsigned long n_reused;		/* of which came from the free list */
};

/* front_pool_init - an empty pool keeping at most max_free requests (0 = a default). */
void front_pool_init(struct front_pool *p, int max_free);
/* front_pool_destroy - free the kept requests (those handed out must have
 * been put back first, or are freed by their own put). */
void front_pool_destroy(struct front_pool *p);

/* ---- requests ---- */

/* The request's input: rows x model->in_dim FP32, maybe unaligned. */
struct front_input {
	int rows;
	const float *data;
	void (*release)(void *arg);	/* NULL: nothing to release */
	void *arg;
};

/* Everything front_req_new needs. */
struct front_spec {
	const struct model *model;
	struct front_input in;
	int priority;			/* front_objective's */
	uint64_t objective_ns;		/* front_objective's; 0 = no deadline */
	uint64_t arrival_ns;
	struct front_sink *sink;	/* where the completion goes */
	void (*on_done)(struct infer_req *r);	/* run by front_deliver */
	void *ctx;			/* the creator's */
	int variant;			/* parameters.variant (infer_req.variant_ask) */
};

/*
 * front_req_new - a request for sp, from pool p (the calling thread's),
 * with an output buffer of rows x out_dim floats.  The request owns the
 * input from here on (its release runs exactly once, see above).  NULL
 * when out of memory: the input was released.
 */
struct infer_req *front_req_new(struct front_pool *p, const struct front_spec *sp);
/*
 * front_req_put - r is finished with (answered, or never submitted): its
 * input is released if it was not yet, and it goes back to its pool (or is
 * freed: no pool, pool full, or a sanitizer build).  Owning thread only;
 * never while r is queued or running.  NULL is a no-op.
 */
void front_req_put(struct infer_req *r);
/* front_input_release - release r's input now if not yet (idempotent). */
void front_input_release(struct infer_req *r);

/* ---- admission ---- */

/*
 * front_precheck - pre-admission before the body is parsed: would a 1-row
 * request for m at prio with this objective be admitted now?  probe (the
 * caller's, on its stack) is filled as that request; 0, or the status
 * front_submit would answer (429 late, full or shed; 503 no backend) with
 * probe->errmsg, retry_after_s and met set.  Nothing is queued.  adm (may
 * be NULL) keeps the decision for front_submit: one admission pass when
 * nothing changed in between (runtime.h, rt_admission).
 */
int front_precheck(struct runtime *rt, struct infer_req *probe, const struct model *m, int prio,
		   uint64_t arrival_ns, uint64_t objective_ns, uint64_t now,
		   struct rt_admission *adm);
/*
 * front_submit - route and queue r (reusing adm, front_precheck's decision,
 * when it still holds; NULL: route afresh).  0: queued, its completion
 * comes through r->sink.  Else an HTTP status (400, 429, 503) with
 * r->errmsg (429: r->retry_after_s) and r->met set: r is the caller's to
 * answer and put, and its input was released.
 */
int front_submit(struct runtime *rt, struct infer_req *r, struct rt_admission *adm,
		 uint64_t now);
/*
 * front_cancel - r's client went away.  true: r was removed before it ran
 * to completion, nothing more arrives, its input is released and r is the
 * caller's again (to account and put).  false: it is running; its
 * completion still comes through the sink.
 */
bool front_cancel(struct infer_req *r);

/* ---- completion ---- */

/*
 * front_deliver - a sink's consumer hands r back on the owning thread:
 * r's input is released, then r->on_done(r) runs (which answers and
 * eventually puts r).
 */
void front_deliver(struct infer_req *r);

/*
 * The polled sink: completions are pushed by any thread (lock-free, never
 * blocks) and taken by one consumer thread that polls, in completion order.
 */
struct front_poll_sink {
	struct front_sink sink;
	_Atomic(struct infer_req *) in;	/* producers' stack, newest first */
	struct infer_req *head;		/* the consumer's: oldest first */
};

/* front_poll_sink_init - an empty polled sink. */
void front_poll_sink_init(struct front_poll_sink *ps);
/*
 * front_sink_poll - up to max completed requests into reqs, oldest first;
 * returns how many (0 when none).  One consumer thread only.  The caller
 * then front_deliver()s each (or releases and puts them itself).
 */
int front_sink_poll(struct front_poll_sink *ps, struct infer_req **reqs, int max);

/*
 * front_mpsc_push / front_mpsc_take - the lock-free stack both sinks use:
 * push from any thread (true when the stack was empty: wake the consumer);
 * take the whole stack, returned oldest first.
 */
bool front_mpsc_push(_Atomic(struct infer_req *) *top, struct infer_req *r);
struct infer_req *front_mpsc_take(_Atomic(struct infer_req *) *top);

#endif
