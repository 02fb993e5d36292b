/*
 * squeue.h - a per (backend, model) request queue ordered by priority, then
 * earliest deadline.  Pure data structure: no locks, no clock reads (the
 * scheduler holds its mutex around every call; the simulator calls it from
 * one thread with virtual time).
 *
 * One doubly linked list per priority level, each sorted by deadline
 * (requests without a deadline sort last).  Insertion walks from the tail,
 * so the common case (same objective, later arrival) is O(1); removal of a
 * cancelled request is O(1); expiry looks only at list heads.
 *
 * A request larger than one batch leaves in slices (sq_take): its queued
 * remainder, rows [r->next_row, r->rows), keeps its place and counts in
 * n_rows; r->slices_out counts its slices taken and not yet done.
 */
#ifndef INFERGW_SQUEUE_H
#define INFERGW_SQUEUE_H

#include <stdbool.h>
#include <stdint.h>

struct infer_req;
struct infer_slice;

#define SQ_MAX_LEVELS 16

struct squeue {
	int n_levels;			/* priorities 1..n_levels, 1 = highest */
	int hi;				/* most levels ever set: lists above n_levels drain */
	int max_reqs;
	int n_reqs, n_rows;
	int rows_at[SQ_MAX_LEVELS + 1];	/* rows queued per level */
	struct {
		struct infer_req *head, *tail;
	} lv[SQ_MAX_LEVELS + 1];
};

/* sq_init - empty queue with n_levels priorities holding at most max_reqs. */
void sq_init(struct squeue *q, int n_levels, int max_reqs);
/* sq_set_levels - change the number of levels (a reload); requests queued
 * at levels above the new count still drain, after the others. */
void sq_set_levels(struct squeue *q, int n_levels);
/*
 * sq_push - insert r by (r->priority, r->deadline_ns).  r->priority must be
 * in 1..n_levels.  0, or -EAGAIN when the queue holds max_reqs already.
 */
int sq_push(struct squeue *q, struct infer_req *r);
/* sq_remove - unlink r, which must be in q. */
void sq_remove(struct squeue *q, struct infer_req *r);
/*
 * sq_expire - unlink every request whose deadline is <= now; returns them
 * as a list linked through ->next (NULL when none).
 */
struct infer_req *sq_expire(struct squeue *q, uint64_t now);
/*
 * sq_take - take rows for one batch of at most max_rows, highest priority
 * first and earliest deadline first within a level: whole remainders while
 * they fit; a remainder above limit (the batch limit: it can never fit one
 * batch) is sliced, its first rows filling the batch, the rest staying
 * queued in place.  Stops at the first remainder that does not fit.
 * Writes the slices to out[0..cap) (each counted in its r->slices_out) and
 * returns how many.
 */
int sq_take(struct squeue *q, int max_rows, int limit, struct infer_slice *out, int cap);
/*
 * sq_slice_done - a slice of r finished.  true when r has no rows queued
 * or running left: its answer is due now.
 */
bool sq_slice_done(struct infer_req *r);
/*
 * sq_drop - r left the queue (sq_remove, sq_expire, sq_displace) without
 * running its remaining rows: none of them will.  true when no slice of r
 * is running either (its answer is due now); false when the last running
 * slice's sq_slice_done says so.
 */
bool sq_drop(struct infer_req *r);
/*
 * sq_displace - make room for a request of priority prio in a full queue:
 * unlink and return the request of the lowest level below prio that is due
 * last (the tail of that level), or NULL when every queued request is at
 * prio or above.  A request partly run already is never displaced (its
 * work would be lost).
 */
struct infer_req *sq_displace(struct squeue *q, int prio);
/* sq_earliest_deadline - smallest deadline queued; UINT64_MAX when none. */
uint64_t sq_earliest_deadline(const struct squeue *q);
/* sq_oldest_arrival - earliest arrival among the level heads; UINT64_MAX when empty. */
uint64_t sq_oldest_arrival(const struct squeue *q);
/* sq_rows_ahead - rows that would run before a new request of priority prio. */
int sq_rows_ahead(const struct squeue *q, int prio);
/* sq_rows_at - rows queued at level prio (1..hi) exactly: sq_rows_ahead(q,
 * prio) is their sum over levels 1..prio. */
static inline int sq_rows_at(const struct squeue *q, int prio)
{
	return q->rows_at[prio];
}

#endif
