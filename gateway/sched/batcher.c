/* batcher.c - see batcher.h. */
#include "batcher.h"

#include "svctime.h"

/* Largest preferred size <= rows, or 0. */
static int batch_preferred(const struct batch_policy *p, int rows)
{
	int best = 0;

	for (int i = 0; i < p->n_preferred; i++)
		if (p->preferred[i] <= rows && p->preferred[i] <= p->max_batch)
			best = p->preferred[i];
	return best;
}

int batch_decide(const struct batch_policy *p, const struct batch_view *v,
		 const struct svc_model *svc, uint64_t now_ns, uint64_t *wake_ns)
{
	int rows = v->queued_rows < p->max_batch ? v->queued_rows : p->max_batch;
	uint64_t due, latest;
	int pref;

	*wake_ns = UINT64_MAX;
	if (rows <= 0)
		return 0;
	if (v->queued_rows >= p->max_batch)
		return p->max_batch;
	pref = batch_preferred(p, rows);
	if (pref > 0)
		return pref;
	due = v->oldest_ns + p->max_delay_ns;
	if (now_ns >= due)
		return rows;
	if (svc && v->earliest_deadline_ns != UINT64_MAX) {
		uint64_t need = svc_predict(svc, rows) + p->margin_ns;

		latest = v->earliest_deadline_ns > need ? v->earliest_deadline_ns - need : 0;
		if (now_ns >= latest)
			return rows;
		if (latest < due)
			due = latest;
	}
	*wake_ns = due;
	return 0;
}

int batch_place(int ahead, int rows, int eff, int *before, int *first, int *last)
{
	int part = ahead % eff, rest;

	*before = ahead / eff;
	if (part + rows <= eff) {
		*first = *last = part + rows;
		return 1;
	}
	if (rows <= eff) {
		/* Whole: it waits for a batch of its own. */
		(*before)++;
		*first = *last = rows;
		return 1;
	}
	/* Sliced: its first slice completes the batch in progress. */
	*first = eff;
	rest = rows - (eff - part);
	*last = rest % eff ? rest % eff : eff;
	return 1 + (rest + eff - 1) / eff;
}

void batch_adapt_init(struct batch_adapt *a, int min, int max, uint64_t target_ns, int grow_after)
{
	a->min = min < 1 ? 1 : min;
	a->max = max < a->min ? a->min : max;
	a->cur = a->max;
	a->target_ns = target_ns;
	a->streak = 0;
	a->grow_after = grow_after < 1 ? 1 : grow_after;
}

int batch_adapt_observe(struct batch_adapt *a, uint64_t worst_ns)
{
	if (a->target_ns && worst_ns > a->target_ns) {
		a->cur = a->cur / 2 < a->min ? a->min : a->cur / 2;
		a->streak = 0;
	} else if (++a->streak >= a->grow_after) {
		a->streak = 0;
		if (a->cur < a->max)
			a->cur++;
	}
	return a->cur;
}
