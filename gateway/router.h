/*
 * router.h - which backend queue gets a request.  Pure logic.
 *
 * Issue 2's rule: the least-loaded queue, ties to the cheapest backend.
 * The SLO-aware policy (deadlines, service-time prediction) replaces it.
 */
#ifndef INFERGW_ROUTER_H
#define INFERGW_ROUTER_H

struct router_cand {
	int id;		/* caller's backend index */
	int qi;		/* caller's queue index */
	int queued;	/* requests waiting */
	double cost;
};

/* router_pick - index into cand of the chosen one, or -1 when n == 0. */
int router_pick(const struct router_cand *cand, int n);

#endif
