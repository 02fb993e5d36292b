/* router.c - see router.h. */
#include "router.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

const char *router_result_reason(enum route_result r)
{
	switch (r) {
	case ROUTE_OK: return "ok";
	case ROUTE_NO_BACKEND: return "no backend available";
	case ROUTE_FULL: return "queue full";
	case ROUTE_LATE: return "no backend can meet the deadline";
	case ROUTE_SHED: return "shed under load (sheddable priority)";
	}
	return "?";
}

/* xorshift64*: a fast, decent generator for sampling (never 0 state). */
static uint64_t router_rand(uint64_t *x)
{
	if (!*x)
		*x = 0x9e3779b97f4a7c15ull;
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return *x * 0x2545f4914f6cdd1dull;
}

int router_sample(enum route_policy p, int n, int d, unsigned rr, uint64_t *rng, int *idx)
{
	int k = 0;

	if (n <= ROUTER_SCAN_ALL || d >= n) {
		for (k = 0; k < n; k++)
			idx[k] = k;
		return n;
	}
	if (d < 1)
		d = 1;
	if (p == ROUTE_ROUND_ROBIN) {
		for (k = 0; k < d; k++)
			idx[k] = (int)((rr + (unsigned)k) % (unsigned)n);
		return d;
	}
	while (k < d) {
		int c = (int)(router_rand(rng) % (uint64_t)n), dup = 0;

		for (int j = 0; j < k; j++)
			dup |= idx[j] == c;
		if (!dup)
			idx[k++] = c;
	}
	return d;
}

static uint64_t router_done_at(const struct route_req *rq, const struct router_cand *c)
{
	return rq->now_ns + c->wait_ns + c->exec_ns;
}

/* Earlier completion wins; equal completion goes to the cheaper. */
static bool router_sooner(const struct route_req *rq, const struct router_cand *a,
			  const struct router_cand *b)
{
	uint64_t ta = router_done_at(rq, a), tb = router_done_at(rq, b);

	return ta < tb || (ta == tb && a->cost < b->cost);
}

static int router_slo(const struct route_conf *rc, const struct route_req *rq,
		      const struct router_cand *cand, int n, enum route_result *why)
{
	int cheap = -1, first = -1;

	for (int i = 0; i < n; i++) {
		const struct router_cand *c = &cand[i];

		if (c->full)
			continue;
		if (first < 0 || router_sooner(rq, c, &cand[first]))
			first = i;
		if (!rq->deadline_ns || router_done_at(rq, c) + rc->margin_ns > rq->deadline_ns)
			continue;
		if (cheap < 0 || c->cost < cand[cheap].cost ||
		    (c->cost == cand[cheap].cost && router_sooner(rq, c, &cand[cheap])))
			cheap = i;
	}
	if (cheap >= 0)
		return cheap;
	if (first >= 0 && (!rq->deadline_ns || router_done_at(rq, &cand[first]) <= rq->deadline_ns))
		return first;
	*why = first < 0 ? ROUTE_FULL : ROUTE_LATE;
	return -1;
}

static int router_least_queue(const struct router_cand *cand, int n)
{
	int best = -1;

	for (int i = 0; i < n; i++) {
		if (cand[i].full)
			continue;
		if (best < 0 || cand[i].queued < cand[best].queued ||
		    (cand[i].queued == cand[best].queued && cand[i].cost < cand[best].cost))
			best = i;
	}
	return best;
}

static int router_round_robin(const struct router_cand *cand, int n, unsigned *rr)
{
	for (int k = 0; k < n; k++) {
		int i = (int)((*rr + k) % (unsigned)n);

		if (!cand[i].full) {
			*rr = (unsigned)i + 1;
			return i;
		}
	}
	return -1;
}

/* Sheddable: keep the unsaturated candidates (full ones count as saturated). */
static int router_unsaturated(const struct route_req *rq, const struct router_cand *cand, int n,
			      struct router_cand *out)
{
	int k = 0;

	for (int i = 0; i < n; i++)
		if ((cand[i].work_ns ? cand[i].work_ns : cand[i].wait_ns) <= rq->saturation_ns &&
		    !cand[i].full)
			out[k++] = cand[i];
	return k;
}

/* Index in all[0..n) of the candidate c (same backend and queue). */
static int router_index_of(const struct router_cand *all, int n, const struct router_cand *c)
{
	for (int k = 0; k < n; k++)
		if (all[k].id == c->id && all[k].qi == c->qi)
			return k;
	return -1;
}

static int router_choose(const struct route_conf *rc, const struct route_req *rq,
			 const struct router_cand *cand, int n, unsigned *rr,
			 enum route_result *why)
{
	switch (rc->policy) {
	case ROUTE_LEAST_QUEUE:
		return router_least_queue(cand, n);
	case ROUTE_ROUND_ROBIN:
		return router_round_robin(cand, n, rr);
	default:
		return router_slo(rc, rq, cand, n, why);
	}
}

/* Candidates that would not displace anything, into out; returns the
 * count.  None displacing (the usual) returns n and copies nothing: the
 * caller then chooses among cand itself. */
static int router_no_displace(const struct router_cand *cand, int n, struct router_cand *out)
{
	int k = 0;

	while (k < n && !cand[k].displaces)
		k++;
	if (k == n)
		return n;
	memcpy(out, cand, sizeof(*out) * (size_t)k);
	for (int i = k + 1; i < n; i++)
		if (!cand[i].displaces)
			out[k++] = cand[i];
	return k;
}

/* Prefer candidates that displace nothing; fall back to all of them. */
static int router_choose_gently(const struct route_conf *rc, const struct route_req *rq,
				const struct router_cand *cand, int n, unsigned *rr,
				struct router_cand *scratch, enum route_result *why)
{
	int k = router_no_displace(cand, n, scratch), i;

	if (k > 0 && k < n) {
		i = router_choose(rc, rq, scratch, k, rr, why);
		/* Only a pick that keeps the margin beats displacing: one that
		 * just scrapes the deadline would trade a sure answer for a late
		 * one. */
		if (i >= 0 && (!rq->deadline_ns || rc->policy != ROUTE_SLO ||
			       router_done_at(rq, &scratch[i]) + rc->margin_ns <= rq->deadline_ns))
			return router_index_of(cand, n, &scratch[i]);
	}
	return router_choose(rc, rq, cand, n, rr, why);
}

/* One tier's pick (all candidates share a tier): the policy, gently. */
static enum route_result router_pick_tier(const struct route_conf *rc, const struct route_req *rq,
					  const struct router_cand *cand, int n, unsigned *rr,
					  int *pick)
{
	enum route_result why = ROUTE_FULL;
	struct router_cand stack[2][64], *kept, *scratch;
	int i, k;

	if (n <= 0)
		return ROUTE_NO_BACKEND;
	kept = n <= 64 ? stack[0] : malloc(sizeof(*kept) * 2 * (size_t)n);
	if (!kept)
		return ROUTE_FULL;	/* out of memory: say busy, never crash */
	scratch = n <= 64 ? stack[1] : kept + n;
	if (!rq->sheddable) {
		i = router_choose_gently(rc, rq, cand, n, rr, scratch, &why);
		if (kept != stack[0])
			free(kept);
		if (i < 0)
			return why;
		*pick = i;
		return ROUTE_OK;
	}
	k = router_unsaturated(rq, cand, n, kept);
	i = k ? router_choose_gently(rc, rq, kept, k, rr, scratch, &why) : -1;
	if (i >= 0)
		i = router_index_of(cand, n, &kept[i]);
	if (kept != stack[0])
		free(kept);
	if (k == 0)
		return ROUTE_SHED;
	if (i < 0)
		return why;
	*pick = i;
	return ROUTE_OK;
}

/* The pick stands in its tier: slo with a deadline needs the margin kept. */
static bool router_meets(const struct route_conf *rc, const struct route_req *rq,
			 const struct router_cand *c)
{
	return !rq->deadline_ns || rc->policy != ROUTE_SLO ||
	       router_done_at(rq, c) + rc->margin_ns <= rq->deadline_ns;
}

/* Lowest tier above `above` among cand (INT_MIN: the lowest), or INT_MAX. */
static int router_next_tier(const struct router_cand *cand, int n, int above)
{
	int t = INT_MAX;

	for (int i = 0; i < n; i++)
		if (cand[i].tier > above && cand[i].tier < t)
			t = cand[i].tier;
	return t;
}

/*
 * Tiers, lowest first (router.h): each tier's pick over its candidates
 * alone; the first that meets the deadline wins, else the lowest tier's
 * admitted pick, else the first tier's reason.
 */
static enum route_result router_pick_tiers(const struct route_conf *rc,
					   const struct route_req *rq,
					   const struct router_cand *cand, int n, unsigned *rr,
					   int *pick, struct router_cand *sub, int *map)
{
	enum route_result first_why = ROUTE_OK, why;
	int fallback = -1, t = INT_MIN, k, i;

	while ((t = router_next_tier(cand, n, t)) != INT_MAX) {
		k = 0;
		for (int j = 0; j < n; j++)
			if (cand[j].tier == t) {
				map[k] = j;
				sub[k++] = cand[j];
			}
		why = router_pick_tier(rc, rq, sub, k, rr, &i);
		if (why == ROUTE_OK && router_meets(rc, rq, &sub[i])) {
			*pick = map[i];
			return ROUTE_OK;
		}
		if (why == ROUTE_OK && fallback < 0)
			fallback = map[i];
		if (first_why == ROUTE_OK)
			first_why = why;
	}
	if (fallback >= 0) {
		*pick = fallback;
		return ROUTE_OK;
	}
	return first_why == ROUTE_OK ? ROUTE_LATE : first_why;
}

/* c may take a probe (router.h): room, nothing displaced, unsaturated
 * when sheddable, the deadline met with the margin at the probe's
 * prediction. */
static bool router_probe_ok(const struct route_conf *rc, const struct route_req *rq,
			    const struct router_cand *c)
{
	if (!c->probe || c->full || c->displaces)
		return false;
	if (rq->sheddable && (c->work_ns ? c->work_ns : c->wait_ns) > rq->saturation_ns)
		return false;
	return !rq->deadline_ns ||
	       rq->now_ns + c->wait_ns + c->probe_exec_ns + rc->margin_ns <= rq->deadline_ns;
}

/* a before b by the policy's preference: tier, cost, then completion (probes). */
static bool router_probe_before(const struct router_cand *a, const struct router_cand *b)
{
	if (a->tier != b->tier)
		return a->tier < b->tier;
	if (a->cost != b->cost)
		return a->cost < b->cost;
	return a->wait_ns + a->probe_exec_ns < b->wait_ns + b->probe_exec_ns;
}

/*
 * The probe that takes the request instead of the policy's pick p (-1:
 * none), or -1 (router.h, "Probes").  One pass over the candidates, and
 * only the slo policy probes: the others do not go by service time.
 */
static int router_probe(const struct route_conf *rc, const struct route_req *rq,
			const struct router_cand *cand, int n, int p)
{
	int best = -1;

	if (rc->policy != ROUTE_SLO || (p >= 0 && cand[p].probe))
		return -1;
	for (int i = 0; i < n; i++) {
		const struct router_cand *c = &cand[i];

		if (!router_probe_ok(rc, rq, c))
			continue;
		if (p >= 0 && (c->tier > cand[p].tier ||
			       (c->tier == cand[p].tier && c->cost > cand[p].cost)))
			continue;
		if (best < 0 || router_probe_before(c, &cand[best]))
			best = i;
	}
	return best;
}

/* The policy's pick over tiers (router.h), before probes. */
static enum route_result router_pick_policy(const struct route_conf *rc,
					    const struct route_req *rq,
					    const struct router_cand *cand, int n, unsigned *rr,
					    int *pick)
{
	struct router_cand stack[64], *sub;
	int map_stack[64], *map;
	enum route_result why;
	bool tiered = false;

	for (int i = 1; i < n && !tiered; i++)
		tiered = cand[i].tier != cand[0].tier;
	if (!tiered)
		return router_pick_tier(rc, rq, cand, n, rr, pick);
	sub = n <= 64 ? stack : malloc(sizeof(*sub) * (size_t)n);
	map = n <= 64 ? map_stack : malloc(sizeof(*map) * (size_t)n);
	if (!sub || !map) {
		if (sub != stack)
			free(sub);
		if (map != map_stack)
			free(map);
		return ROUTE_FULL;	/* out of memory: say busy, never crash */
	}
	why = router_pick_tiers(rc, rq, cand, n, rr, pick, sub, map);
	if (sub != stack) {
		free(sub);
		free(map);
	}
	return why;
}

enum route_result router_pick(const struct route_conf *rc, const struct route_req *rq,
			      const struct router_cand *cand, int n, unsigned *rr, int *pick)
{
	enum route_result why = router_pick_policy(rc, rq, cand, n, rr, pick);
	int probe = router_probe(rc, rq, cand, n, why == ROUTE_OK ? *pick : -1);

	if (probe < 0)
		return why;
	*pick = probe;
	return ROUTE_OK;
}
