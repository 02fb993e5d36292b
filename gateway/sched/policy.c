/* policy.c - see policy.h. */
#include "policy.h"

#include <errno.h>
#include <string.h>

#include "infer.h"

void pol_configure(struct pol_queue *q, const struct pol_conf *c)
{
	q->bp.max_batch = c->max_batch;
	q->bp.max_delay_ns = (uint64_t)c->delay_us * 1000;
	q->bp.margin_ns = c->margin_ns;
	q->bp.n_preferred = c->n_preferred;
	memcpy(q->bp.preferred, c->preferred, sizeof(q->bp.preferred));
	q->max_rows = c->max_rows;
	q->adaptive = c->adaptive;
	q->drop_hopeless = c->drop_hopeless;
	q->probe_ns = c->probe_ns;
	batch_adapt_init(&q->adapt, 1, c->max_batch, c->objective_ns, 8);
	q->sq.max_reqs = c->max_queue;
	sq_set_levels(&q->sq, c->priority_levels);
}

void pol_init(struct pol_queue *q, const struct pol_conf *c, double warm_a_ns, double warm_b_ns)
{
	memset(q, 0, sizeof(*q));
	sq_init(&q->sq, c->priority_levels, c->max_queue);
	svc_init(&q->svc, warm_a_ns, warm_b_ns, 0.2);
	pol_configure(q, c);
}

void pol_prepare(const struct pol_prio_conf *c, int model_prio, uint64_t model_objective_ns,
		 struct infer_req *r, uint64_t now_ns, struct route_req *rq)
{
	uint64_t objective;

	if (r->priority <= 0)
		r->priority = model_prio;
	if (r->priority > c->levels)
		r->priority = c->levels;
	if (r->priority < 1)
		r->priority = 1;
	r->sheddable = r->priority > c->levels - c->sheddable_levels;
	/* Saturation is measured against the model's own objective (what its
	 * regular traffic must meet), not the sheddable request's (often long)
	 * one, which would let the queue fill before anything is shed. */
	objective = model_objective_ns ? model_objective_ns
		  : r->deadline_ns ? r->deadline_ns - r->arrival_ns : 0;
	*rq = (struct route_req){ .now_ns = now_ns, .deadline_ns = r->deadline_ns,
				  .sheddable = r->sheddable,
				  .saturation_ns = (uint64_t)(c->shed_wait_fraction *
							      (double)objective) };
}

/* Soonest a slot frees up, from now (0 when one is idle). */
static uint64_t pol_residual(const struct pol_be *b, uint64_t now)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < b->n_slots; i++) {
		uint64_t left = b->busy_until[i] > now ? b->busy_until[i] - now : 0;

		if (b->busy_until[i] == 0)
			left = 0;
		if (left < best)
			best = left;
	}
	return best == UINT64_MAX ? 0 : best;
}

uint64_t pol_raw_wait(const struct pol_be *b, int qi, int rows, int prio, uint64_t now_ns,
		      struct pol_place *pl)
{
	const struct pol_queue *q = b->q[qi];
	int eff = q->bp.max_batch;
	uint64_t work;

	pl->spans = batch_place(sq_rows_ahead(&q->sq, prio), rows, eff, &pl->before, &pl->first,
				&pl->last);
	work = pl->before ? (uint64_t)pl->before * svc_predict(&q->svc, eff) : 0;
	/* Other models on this backend compete for the same slots. */
	for (int i = 0; i < b->n_q; i++) {
		const struct pol_queue *o = b->q[i];
		int oe = o->bp.max_batch;

		if (i != qi && o->sq.n_rows)
			work += svc_predict(&o->svc, oe) *
				(uint64_t)((o->sq.n_rows + oe - 1) / oe);
	}
	return pol_residual(b, now_ns) + work / (uint64_t)b->n_slots;
}

/* A batch of rows on q: learned, or (prior) at the warm start alone. */
static uint64_t pol_svc(const struct pol_queue *q, int rows, bool prior)
{
	return prior ? svc_prior(&q->svc, rows) : svc_predict(&q->svc, rows);
}

/* Predicted execution of a request placed at pl: its first batch, then (a
 * request above the batch limit) the rest, spread over the slots. */
static uint64_t pol_exec(const struct pol_be *b, const struct pol_queue *q,
			 const struct pol_place *pl, bool prior)
{
	uint64_t rest = 0;

	if (pl->spans > 1)
		rest = (uint64_t)(pl->spans - 2) * pol_svc(q, q->bp.max_batch, prior) +
		       pol_svc(q, pl->last, prior);
	return pol_svc(q, pl->first, prior) + rest / (uint64_t)b->n_slots;
}

/* The service-time bucket a request of rows first runs in on q. */
static int pol_bucket(const struct pol_queue *q, int rows)
{
	return svc_bucket(rows < q->bp.max_batch ? rows : q->bp.max_batch);
}

uint64_t pol_probe_at(const struct pol_queue *q, int rows)
{
	int b = pol_bucket(q, rows);
	uint64_t last = q->learned_ns[b] > q->admitted_ns[b] ? q->learned_ns[b]
							      : q->admitted_ns[b];

	/* Something queued gives the queue a sample soon enough. */
	if (!q->probe_ns || q->sq.n_reqs)
		return UINT64_MAX;
	return last < UINT64_MAX - q->probe_ns ? last + q->probe_ns : UINT64_MAX;
}

void pol_view(const struct pol_be *b, int qi, int rows, int prio, uint64_t now_ns,
	      struct router_cand *c)
{
	const struct pol_queue *q = b->q[qi];
	int eff = q->bp.max_batch;
	struct pol_place pl;
	uint64_t raw = pol_raw_wait(b, qi, rows, prio, now_ns, &pl), at;

	c->queued = q->sq.n_reqs;
	/* Full means full for this priority: lower levels can be displaced. */
	c->displaces = q->sq.n_reqs >= q->sq.max_reqs;
	c->full = c->displaces && sq_rows_ahead(&q->sq, prio) >= q->sq.n_rows;
	c->displaces &= !c->full;
	c->wait_ns = svc_wait_adjust(&q->svc, prio, raw);
	c->work_ns = raw;
	/* sq_take fills the batch with whatever is queued when it is cut,
	 * lower levels included: predict that batch from what is queued now. */
	if (pl.spans == 1) {
		long rem = (long)q->sq.n_rows + rows - (long)pl.before * eff;

		if (rem > pl.first)
			pl.first = pl.last = rem < eff ? (int)rem : eff;
	}
	c->exec_ns = pol_exec(b, q, &pl, false);
	c->probe_exec_ns = c->exec_ns;
	at = pol_probe_at(q, rows);
	c->probe = pol_probe_due(at, now_ns);
	if (c->probe) {
		uint64_t prior = pol_exec(b, q, &pl, true);

		if (prior < c->probe_exec_ns)
			c->probe_exec_ns = prior;
	}
}

/* r's queued rows left q without being cut (displaced, expired, removed). */
static void pol_forget(struct pol_queue *q, const struct infer_req *r)
{
	if (r->internal)
		q->n_internal--;
}

int pol_admit(struct pol_be *b, int qi, struct infer_req *r, uint64_t now_ns,
	      struct infer_req **displaced)
{
	struct pol_queue *q = b->q[qi];
	struct pol_place pl;
	int rc;

	*displaced = NULL;
	/* Larger than a batch is fine (it runs sliced); larger than the model
	 * takes is not. */
	if (r->rows > q->max_rows)
		return -E2BIG;
	/* What the router saw (uncalibrated), to learn from at dequeue. */
	r->enqueue_ns = now_ns;
	r->pred_wait_ns = pol_raw_wait(b, qi, r->rows, r->priority, now_ns, &pl);
	rc = sq_push(&q->sq, r);
	if (rc == -EAGAIN && (*displaced = sq_displace(&q->sq, r->priority))) {
		pol_forget(q, *displaced);
		rc = sq_push(&q->sq, r);
	}
	if (!rc && r->internal)
		q->n_internal++;
	else if (!rc)		/* a sample of its bucket is on its way (probes) */
		q->admitted_ns[pol_bucket(q, r->rows)] = now_ns;
	return rc;
}

void pol_remove(struct pol_queue *q, struct infer_req *r)
{
	sq_remove(&q->sq, r);
	pol_forget(q, r);
}

struct infer_req *pol_expire(struct pol_queue *q, uint64_t now_ns, uint64_t *need_ns)
{
	int rows = q->sq.n_rows < q->bp.max_batch ? q->sq.n_rows : q->bp.max_batch;
	struct infer_req *all;

	*need_ns = q->drop_hopeless && rows ? svc_predict(&q->svc, rows) : 0;
	all = sq_expire(&q->sq, now_ns + *need_ns);
	for (struct infer_req *r = all; r; r = r->next) {
		pol_forget(q, r);
		if (!r->next_row)
			svc_wait_missed(&q->svc, r->priority);
	}
	return all;
}

int pol_cut(const struct pol_queue *q, uint64_t now_ns, bool draining, uint64_t *wake_ns)
{
	struct batch_view v;
	int cut;

	*wake_ns = UINT64_MAX;
	if (!q->sq.n_reqs)
		return 0;
	v.queued_rows = q->sq.n_rows;
	v.oldest_ns = sq_oldest_arrival(&q->sq);
	v.earliest_deadline_ns = sq_earliest_deadline(&q->sq);
	cut = batch_decide(&q->bp, &v, &q->svc, now_ns, wake_ns);
	/* While stopping, drain without waiting for fuller batches; an
	 * internal request (calibration) does not wait either. */
	if (cut == 0 && (draining || q->n_internal))
		cut = v.queued_rows < q->bp.max_batch ? v.queued_rows : q->bp.max_batch;
	if (cut > 0)
		return cut;
	/* Wake for the earliest deadline too, to answer it 504 on time. */
	if (v.earliest_deadline_ns < *wake_ns)
		*wake_ns = v.earliest_deadline_ns;
	return 0;
}

/* Account slices out[from, to) just taken from q for slot: stamps, wait
 * calibration, the batch's rows and oldest, the slot's predicted end. */
static void pol_took(struct pol_be *b, struct pol_queue *q, int slot, uint64_t now_ns,
		     const struct infer_slice *out, int from, int to, int *batch_rows,
		     uint64_t *oldest_ns)
{
	for (int i = from; i < to; i++) {
		struct infer_req *r = out[i].r;
		uint64_t ready = now_ns;	/* a later slice: ready once cut */

		if (out[i].row0 == 0) {
			r->dequeue_ns = now_ns;
			if (!r->internal)	/* internal requests are not traffic */
				svc_wait_observe(&q->svc, r->priority, r->pred_wait_ns,
						 now_ns - r->enqueue_ns);
			ready = r->arrival_ns;
		}
		if (r->internal && out[i].row0 + out[i].rows == r->rows)
			q->n_internal--;	/* its last rows left the queue */
		*batch_rows += out[i].rows;
		if (ready < *oldest_ns)
			*oldest_ns = ready;
	}
	b->busy_until[slot] = now_ns + svc_predict(&q->svc, *batch_rows);
}

int pol_take(struct pol_be *b, int qi, int slot, int rows, uint64_t now_ns,
	     struct infer_slice *out, int cap, int *batch_rows, uint64_t *oldest_ns)
{
	struct pol_queue *q = b->q[qi];
	int eff = q->bp.max_batch;
	int n = sq_take(&q->sq, rows, eff, out, cap);

	/* The head is larger than the cut (a preferred size): run it alone
	 * rather than stall the queue (sliced, when above the limit). */
	if (n == 0)
		n = sq_take(&q->sq, eff, eff, out, 1);
	*batch_rows = 0;
	*oldest_ns = UINT64_MAX;
	pol_took(b, q, slot, now_ns, out, 0, n, batch_rows, oldest_ns);
	return n;
}

int pol_topup(struct pol_be *b, int qi, int slot, uint64_t now_ns, struct infer_slice *out,
	      int n, int cap, int *batch_rows, uint64_t *oldest_ns)
{
	struct pol_queue *q = b->q[qi];
	int room = q->bp.max_batch - *batch_rows, k;

	if (room <= 0 || !q->sq.n_reqs || q->bp.n_preferred || cap <= n)
		return 0;
	k = sq_take(&q->sq, room, q->bp.max_batch, out + n, cap - n);
	pol_took(b, q, slot, now_ns, out, n, n + k, batch_rows, oldest_ns);
	return k;
}

int pol_learn(struct pol_be *b, int qi, int slot, int rows, uint64_t exec_ns, uint64_t end_ns,
	      uint64_t oldest_ns)
{
	struct pol_queue *q = b->q[qi];
	uint64_t *last = &q->learned_ns[svc_bucket(rows)];

	b->busy_until[slot] = 0;
	/* Stale (policy.h, Probes): this sample replaces the old estimate. */
	if (q->probe_ns && end_ns > *last && end_ns - *last >= q->probe_ns)
		svc_forget(&q->svc, rows);
	if (end_ns > *last)
		*last = end_ns;
	svc_observe(&q->svc, rows, exec_ns);
	if (q->adaptive)
		q->bp.max_batch = batch_adapt_observe(&q->adapt, end_ns - oldest_ns);
	return q->bp.max_batch;
}

int pol_release(struct pol_be *b, int qi, int slot)
{
	b->busy_until[slot] = 0;
	return b->q[qi]->bp.max_batch;
}
