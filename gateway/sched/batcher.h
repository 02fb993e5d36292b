/*
 * batcher.h - when to cut a batch, and how big batches may grow.
 * Pure logic: no I/O, no clock reads; time comes in as now_ns.
 *
 * batch_decide cuts a batch when
 *   - the queued rows reach max_batch (cut max_batch), or
 *   - preferred sizes are set and the queue holds at least the smallest:
 *     cut the largest preferred size that is queued, or
 *   - the oldest request has waited max_delay_ns, or
 *   - waiting any longer would make the earliest deadline miss: now +
 *     predicted execution of the batch + margin >= earliest deadline.
 * Otherwise it says when to look again (the earlier of the two moments).
 *
 * A request above the batch limit is not refused: it runs as several
 * batches (sq_take slices it); batch_place says which batches it spans.
 *
 * batch_adapt grows and shrinks the effective max_batch (AIMD) to keep the
 * worst latency of each batch under a target: halve on a miss, +1 after
 * `streak` batches in a row that met it.
 */
#ifndef INFERGW_BATCHER_H
#define INFERGW_BATCHER_H

#include <stdbool.h>
#include <stdint.h>

struct svc_model;

#define BATCH_MAX_PREFERRED 8

struct batch_policy {
	int max_batch;			/* rows */
	uint64_t max_delay_ns;
	int n_preferred;
	int preferred[BATCH_MAX_PREFERRED];	/* ascending */
	uint64_t margin_ns;		/* slack kept before a deadline */
};

struct batch_view {
	int queued_rows;
	uint64_t oldest_ns;		/* arrival of the oldest queued request */
	uint64_t earliest_deadline_ns;	/* UINT64_MAX when none */
};

/*
 * batch_decide - rows to cut now (> 0), or 0 with *wake_ns set to when to
 * decide again (UINT64_MAX: only a new arrival changes anything).  svc
 * predicts execution time; it may be NULL (deadlines then ignored).
 */
int batch_decide(const struct batch_policy *p, const struct batch_view *v,
		 const struct svc_model *svc, uint64_t now_ns, uint64_t *wake_ns);

/*
 * batch_place - where a request of rows lands behind ahead queued rows when
 * batches of at most eff rows are cut (sq_take: requests whole while they
 * fit, one above eff sliced, its first slice filling the batch in
 * progress).  *before = batches run before its first one, *first = rows of
 * its first batch (shared with the rows ahead), *last = rows of its last.
 * Returns the number of batches it spans: 1 unless rows > eff.
 */
int batch_place(int ahead, int rows, int eff, int *before, int *first, int *last);

struct batch_adapt {
	int cur, min, max;
	uint64_t target_ns;
	int streak;			/* batches in a row that met the target */
	int grow_after;			/* streak needed for +1 */
};

/* batch_adapt_init - start at max; target_ns = the latency to stay under. */
void batch_adapt_init(struct batch_adapt *a, int min, int max, uint64_t target_ns, int grow_after);
/* batch_adapt_observe - a batch finished; worst_ns = its slowest request's
 * end-to-end latency.  Returns the new effective max_batch. */
int batch_adapt_observe(struct batch_adapt *a, uint64_t worst_ns);

#endif
