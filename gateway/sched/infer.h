/*
 * infer.h - one inference request, from the parser to the response.
 *
 * Ownership: a front end (front.h: an HTTP stream, later a DPDK lcore)
 * creates the request from its thread's pool and owns it.  While it is
 * queued or executing, the scheduler and backend hold a borrowed pointer;
 * they hand it back with infer_complete(), which gives it to the request's
 * completion sink (an event loop's mailbox, or a polled queue); the owning
 * thread then runs front_deliver (input released, on_done).  A request is
 * never freed while state is QUEUED or RUNNING.
 *
 * A request larger than one batch (the queue's batch limit: configured,
 * the backend's, or the adaptive one) is still one object with one answer:
 * the scheduler hands it to batches as slices, consecutive row ranges, and
 * posts it when its last slice is done.  A slice failing fails the request;
 * cancellation or expiry drops the slices not yet started.
 */
#ifndef INFERGW_INFER_H
#define INFERGW_INFER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"	/* struct infer_slice */

struct model;
struct met_series;
struct front_pool;

enum req_state {
	REQ_NEW = 0,
	REQ_QUEUED,
	REQ_RUNNING,
	REQ_CANCELLED,	/* client went away; never executed if not started */
	REQ_EXPIRED,	/* deadline passed while queued; never executed */
	REQ_DONE,
};

struct infer_req;

/*
 * Where a finished request goes (front.h has the two implementations).
 * complete() runs on whichever thread finished r (a backend's), must not
 * block, and hands r to the thread that owns it.
 */
struct front_sink {
	void (*complete)(struct front_sink *s, struct infer_req *r);
};

/* struct infer_slice (rows of a request in one batch) is the backend
 * contract's: backends/backend.h. */

/* Failover: how many times a request may be given back by a backend and
 * placed again (never on one that gave it back) before it is answered 503. */
#define INFER_MAX_RETRIES 3

struct infer_req {
	const struct model *model;
	int rows;			/* leading dimension of the input */
	/* Slicing: the scheduler's (under its lock), the simulator's. */
	int next_row;			/* first row not handed to a batch yet: the
					 * queued remainder is rows [next_row, rows) */
	int slices_out;			/* slices handed to batches, not finished */
	const float *input;		/* rows x model->in_dim; may be unaligned (a view
					 * into the request body): backends memcpy it */
	float *output;			/* rows x model->out_dim, allocated by the creator */
	int priority;			/* 1 = highest; normalized by the router */
	bool sheddable;			/* lowest level(s): may be shed under load */
	bool internal;			/* not traffic (calibration): cut at once, teaches
					 * neither wait calibration nor service time */
	uint64_t arrival_ns;
	uint64_t deadline_ns;		/* 0 = none */
	uint8_t variant_ask;		/* parameters.variant: 0 = the model's variant_policy,
					 * else 1 + enum model_variant (model/model.h); which
					 * variant served it: its queue's (r->met's label) */
	_Atomic int state;		/* enum req_state */
	int status;			/* 0 = ok, else an HTTP status */
	char errmsg[160];
	uint64_t enqueue_ns;		/* when the scheduler queued it */
	uint64_t pred_wait_ns;		/* its queue wait as predicted then (uncalibrated) */
	uint64_t dequeue_ns;		/* when its first slice left the queue */
	uint64_t exec_start_ns;		/* start of its first batch */
	uint64_t exec_end_ns;		/* end of its last batch */
	int batch_rows;			/* rows of the (last) batch it ran in */
	int n_batches;			/* batches its rows ran in: > 1 when sliced */
	uint32_t retry_after_s;		/* with a 429: when to try again */
	struct met_series *met;		/* counters of the (backend, model) it went to */
	/* The front's (front.h): completion, pool and the input's release. */
	struct front_sink *sink;	/* where infer_complete hands it back;
					 * NULL: internal, see on_done */
	struct front_pool *pool;	/* the owning thread's pool, NULL = none */
	void (*input_release)(void *arg);	/* once, when done with input */
	void *input_arg;
	size_t output_cap;		/* floats allocated at output */
	void (*on_done)(struct infer_req *r);	/* runs on the owning thread; with
						 * no sink (internal: calibration),
						 * on the completing thread */
	void *ctx;			/* the creator's */
	struct infer_req *next;		/* intrusive link: queue or loop mailbox */
	struct infer_req *prev;		/* queue only */
	void *queue;			/* the scheduler queue holding it, for cancellation;
					 * NULL while failover moves it (atomic builtins) */
	const void *avoid[INFER_MAX_RETRIES];	/* failover: the schedulers that gave
						 * it back, avoid[0..retries) */
	int retries;			/* failover: times it was given back */
};

/* infer_complete - r is finished (answered, expired, failed, displaced):
 * hand it to its sink; a request with no sink (internal: calibration) runs
 * its on_done here, on the completing thread.  Any thread; r must not be
 * touched after. */
static inline void infer_complete(struct infer_req *r)
{
	if (!r->sink) {
		r->on_done(r);
		return;
	}
	r->sink->complete(r->sink, r);
}

#endif
