/* router.c - see router.h. */
#include "router.h"

int router_pick(const struct router_cand *cand, int n)
{
	int best = -1;

	for (int i = 0; i < n; i++) {
		if (best < 0 || cand[i].queued < cand[best].queued ||
		    (cand[i].queued == cand[best].queued && cand[i].cost < cand[best].cost))
			best = i;
	}
	return best;
}
