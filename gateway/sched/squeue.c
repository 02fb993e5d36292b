/* squeue.c - see squeue.h. */
#include "squeue.h"

#include <errno.h>
#include <string.h>

#include "infer.h"

/* Requests without a deadline sort after every request with one. */
static inline uint64_t sq_key(const struct infer_req *r)
{
	return r->deadline_ns ? r->deadline_ns : UINT64_MAX;
}

/* Rows of r still queued. */
static inline int sq_left(const struct infer_req *r)
{
	return r->rows - r->next_row;
}

void sq_init(struct squeue *q, int n_levels, int max_reqs)
{
	memset(q, 0, sizeof(*q));
	q->max_reqs = max_reqs;
	sq_set_levels(q, n_levels);
}

void sq_set_levels(struct squeue *q, int n_levels)
{
	q->n_levels = n_levels < 1 ? 1 : n_levels > SQ_MAX_LEVELS ? SQ_MAX_LEVELS : n_levels;
	if (q->n_levels > q->hi)
		q->hi = q->n_levels;
}

int sq_push(struct squeue *q, struct infer_req *r)
{
	int p = r->priority;
	struct infer_req *at;

	if (q->n_reqs >= q->max_reqs)
		return -EAGAIN;
	if (p < 1)
		p = 1;
	if (p > q->n_levels)
		p = q->n_levels;
	r->priority = p;
	/* Walk back from the tail to the last request due no later than r. */
	for (at = q->lv[p].tail; at && sq_key(at) > sq_key(r); at = at->prev)
		;
	r->prev = at;
	r->next = at ? at->next : q->lv[p].head;
	if (r->next)
		r->next->prev = r;
	else
		q->lv[p].tail = r;
	if (at)
		at->next = r;
	else
		q->lv[p].head = r;
	q->n_reqs++;
	q->n_rows += sq_left(r);
	q->rows_at[p] += sq_left(r);
	return 0;
}

void sq_remove(struct squeue *q, struct infer_req *r)
{
	int p = r->priority;

	if (r->prev)
		r->prev->next = r->next;
	else
		q->lv[p].head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		q->lv[p].tail = r->prev;
	r->next = r->prev = NULL;
	q->n_reqs--;
	q->n_rows -= sq_left(r);
	q->rows_at[p] -= sq_left(r);
}

struct infer_req *sq_expire(struct squeue *q, uint64_t now)
{
	struct infer_req *out = NULL;

	for (int p = 1; p <= q->hi; p++) {
		struct infer_req *r;

		while ((r = q->lv[p].head) && r->deadline_ns && r->deadline_ns <= now) {
			sq_remove(q, r);
			r->next = out;
			out = r;
		}
	}
	return out;
}

/* Take the first rows of r's remainder (r stays queued) as out. */
static void sq_slice(struct squeue *q, struct infer_req *r, int rows, struct infer_slice *out)
{
	*out = (struct infer_slice){ .r = r, .row0 = r->next_row, .rows = rows };
	q->n_rows -= rows;
	q->rows_at[r->priority] -= rows;
	r->next_row += rows;
	r->slices_out++;
}

int sq_take(struct squeue *q, int max_rows, int limit, struct infer_slice *out, int cap)
{
	int n = 0, rows = 0;

	for (int p = 1; p <= q->hi; p++) {
		struct infer_req *r;

		while ((r = q->lv[p].head) && n < cap) {
			int left = sq_left(r);

			if (rows + left > max_rows) {
				if (left > limit && rows < max_rows)
					sq_slice(q, r, max_rows - rows, &out[n++]);
				return n;
			}
			sq_remove(q, r);
			out[n] = (struct infer_slice){ .r = r, .row0 = r->next_row, .rows = left };
			r->next_row = r->rows;
			r->slices_out++;
			rows += left;
			n++;
		}
	}
	return n;
}

bool sq_slice_done(struct infer_req *r)
{
	return --r->slices_out == 0 && r->next_row == r->rows;
}

bool sq_drop(struct infer_req *r)
{
	r->next_row = r->rows;
	return r->slices_out == 0;
}

struct infer_req *sq_displace(struct squeue *q, int prio)
{
	for (int p = q->hi; p > prio; p--) {
		struct infer_req *r = q->lv[p].tail;

		while (r && r->next_row)
			r = r->prev;
		if (r) {
			sq_remove(q, r);
			return r;
		}
	}
	return NULL;
}

uint64_t sq_earliest_deadline(const struct squeue *q)
{
	uint64_t best = UINT64_MAX;

	for (int p = 1; p <= q->hi; p++)
		if (q->lv[p].head && sq_key(q->lv[p].head) < best)
			best = sq_key(q->lv[p].head);
	return best;
}

uint64_t sq_oldest_arrival(const struct squeue *q)
{
	uint64_t best = UINT64_MAX;

	for (int p = 1; p <= q->hi; p++)
		if (q->lv[p].head && q->lv[p].head->arrival_ns < best)
			best = q->lv[p].head->arrival_ns;
	return best;
}

int sq_rows_ahead(const struct squeue *q, int prio)
{
	int rows = 0;

	if (prio > q->hi)
		prio = q->hi;
	for (int p = 1; p <= prio; p++)
		rows += q->rows_at[p];
	return rows;
}
