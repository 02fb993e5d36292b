/*
 * scheduler.h - per (backend, model) queues and the threads that feed a backend.
 *
 * Each backend gets `slots` scheduler threads.  A thread waits until the
 * batcher says a queue should be cut, takes whole requests from it, marks
 * them RUNNING, submits the batch, and when the backend calls done, posts
 * every request back to its owner loop.  Requests cancelled while queued
 * are handed back without being executed.
 */
#ifndef INFERGW_SCHEDULER_H
#define INFERGW_SCHEDULER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "batcher.h"

struct backend;
struct model;
struct infer_req;

struct sched_q {
	const struct model *model;
	struct batch_policy pol;
	int max_queue;			/* requests */
	struct infer_req *head, *tail;	/* FIFO, guarded by sched_be.mu */
	int n_reqs, n_rows;
	_Atomic int depth;		/* n_reqs, readable without the lock */
};

struct sched_be {
	struct backend *be;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int n_q;
	struct sched_q *qs;
	int n_threads;
	struct sched_worker *workers;
	bool stop;
	int rr;
	int idle;			/* threads waiting on cv */
};

/*
 * sched_be_start - create one queue per model and be->conf.slots threads.
 * max_batch[i] / delay_us[i] / max_queue[i] configure queue i (max_batch is
 * clamped to the model's max_batch_size; 0 means that size).  0 or -errno.
 */
int sched_be_start(struct sched_be *s, struct backend *be, const struct model *const *models,
		   const int *max_batch, const uint32_t *delay_us, const int *max_queue, int n);
/* sched_find - index of the queue for m, or -1. */
int sched_find(const struct sched_be *s, const struct model *m);
/*
 * sched_enqueue - queue r on queue qi.  Sets r->state = REQ_QUEUED.
 * Returns 0, -EAGAIN (queue full), -E2BIG (r->rows above the batch limit)
 * or -ESHUTDOWN.  On error r is untouched and still the caller's.
 */
int sched_enqueue(struct sched_be *s, int qi, struct infer_req *r, uint64_t now);
/* sched_be_stop - finish every queued request, join the threads, free queues. */
void sched_be_stop(struct sched_be *s);

#endif
