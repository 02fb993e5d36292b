/*
 * infer.h - one inference request, from the parser to the response.
 *
 * Ownership: the protocol layer (an HTTP stream) creates the request and owns
 * it.  While it is queued or executing, the scheduler and backend hold a
 * borrowed pointer; they hand it back by posting it to the owner loop
 * (loop_post), whose thread then runs on_done.  A request is never freed
 * while state is QUEUED or RUNNING.
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
#include <stdint.h>

struct model;
struct loop;
struct met_series;

enum req_state {
	REQ_NEW = 0,
	REQ_QUEUED,
	REQ_RUNNING,
	REQ_CANCELLED,	/* client went away; never executed if not started */
	REQ_EXPIRED,	/* deadline passed while queued; never executed */
	REQ_DONE,
};

struct infer_req;

/* Rows [row0, row0 + rows) of request r, executed in one batch. */
struct infer_slice {
	struct infer_req *r;
	int row0, rows;
	int status;			/* set by the backend: 0, an HTTP status
					 * (then the batch's errmsg says why), or
					 * BE_RETRY (backend.h: run it elsewhere) */
};

struct infer_req {
	const struct model *model;
	int rows;			/* leading dimension of the input */
	/* Slicing: the scheduler's (under its lock), the simulator's. */
	int next_row;			/* first row not handed to a batch yet: the
					 * queued remainder is rows [next_row, rows) */
	int slices_out;			/* slices handed to batches, not finished */
	const float *input;		/* rows x model->in_dim; may be unaligned (a view
					 * into the request body): backends memcpy it */
	float *input_buf;		/* input's buffer when the request owns one */
	float *output;			/* rows x model->out_dim, allocated by the creator */
	int priority;			/* 1 = highest; normalized by the router */
	bool sheddable;			/* lowest level(s): may be shed under load */
	uint64_t arrival_ns;
	uint64_t deadline_ns;		/* 0 = none */
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
	struct loop *owner;		/* NULL: internal (calibration), see on_done */
	void (*on_done)(struct infer_req *r);	/* runs on the owner loop's thread; with
						 * no owner, on the completing thread */
	void *ctx;			/* the creator's */
	struct infer_req *next;		/* intrusive link: queue or loop mailbox */
	struct infer_req *prev;		/* queue only */
	void *queue;			/* the scheduler queue holding it, for cancellation;
					 * NULL while failover moves it (atomic builtins) */
	const void *avoid;		/* failover: the scheduler that gave it back */
	int retries;			/* failover: times it was given back */
};

#endif
