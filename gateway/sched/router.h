/*
 * router.h - which backend queue gets a request.  Pure logic: the caller
 * gathers one candidate per available backend hosting the model, with its
 * predictions, and passes the time in.
 *
 * Policies:
 *   slo (default)  among candidates whose predicted completion (now + wait +
 *                  exec) plus margin meets the deadline, the cheapest by cost
 *                  (ties: earliest completion); else the earliest completion
 *                  if it still meets the deadline; else reject (late).
 *                  Without a deadline: the earliest completion, ties cheapest.
 *   least-queue    fewest queued requests, ties cheapest.
 *   round-robin    the next candidate in turn.
 * Every policy skips full queues (all full: reject full), and takes a queue
 * that would have to displace a lower-priority request only when no other
 * candidate serves (displacing while another backend idles turns away
 * work the fleet could do).  A sheddable
 * request also skips saturated backends (work queued ahead above the
 * request's saturation_ns), so it fills idle capacity wherever there is
 * some; when every candidate is saturated it is rejected (shed).
 *
 * Variants: a candidate is a (backend, queue) pair, and one backend may
 * hold the same model's FP32 and INT8 variants as two queues (each with
 * its own learned service time).  The candidate's tier says which variant
 * is preferred (0 first).  With several tiers, the policy above runs over
 * tier 0 alone; its pick stands when it meets the deadline with the margin
 * (slo; no deadline, or another policy: when it is admitted at all).
 * Otherwise the next tier is tried the same way, and when no tier meets
 * the deadline the lowest tier's admitted pick, if any, stands (else the
 * first tier's reason).  So the `accurate` variant policy (FP32 unless
 * no backend can meet the deadline with it) is one pick over both.
 *
 * Probes (slo): the slo policy trusts learned service times, and a
 * backend predicted slow gets no request, so no sample that could show it
 * is fast again (a cold start's first batch would keep it idle for good).
 * The caller marks a candidate `probe` when its service time for this
 * request's batch has gone unsampled for a while (policy.c
 * pol_probe_at), with probe_exec_ns its execution predicted at the lower
 * of the learned and the warm start's time.  The request then goes to such a candidate
 * instead of the pick when the pick is not itself one, and the candidate
 * is no worse by the policy's order of preference (a lower tier, or the
 * pick's tier at no higher cost; with no pick at all, any), not full,
 * displaces nothing, is unsaturated for a sheddable request, and meets
 * the deadline with the margin by now + wait + probe_exec_ns.  Among
 * several: the lowest tier, then the cheapest, then the earliest by that
 * prediction.  How often a probe may go (once per interval per stale
 * estimate) is the caller's, who marks candidates.
 */
#ifndef INFERGW_ROUTER_H
#define INFERGW_ROUTER_H

#include <stdbool.h>
#include <stdint.h>

#include "route_policy.h"	/* enum route_policy, router_policy_parse/name */

enum route_result {
	ROUTE_OK = 0,
	ROUTE_NO_BACKEND,	/* no candidate at all: 503 */
	ROUTE_FULL,		/* every queue at its bound: 429 */
	ROUTE_LATE,		/* no backend can meet the deadline: 429 */
	ROUTE_SHED,		/* sheddable and the backend is saturated: 429 */
};

struct router_cand {
	int id;			/* caller's backend index */
	int qi;			/* caller's queue index */
	double cost;
	int queued;		/* requests waiting */
	bool full;
	bool displaces;		/* full, but would make room by displacing lower priority */
	uint64_t wait_ns;	/* predicted time until this request's batch starts */
	uint64_t work_ns;	/* the work queued ahead of it, before wait calibration:
				 * what saturation is measured on (0: use wait_ns) */
	uint64_t exec_ns;	/* predicted execution time of that batch */
	int tier;		/* variant preference: 0 first (see above) */
	bool probe;		/* its service time is due a new sample (probes, above) */
	uint64_t probe_exec_ns;	/* exec_ns as predicted for a probe (<= exec_ns) */
};

struct route_req {
	uint64_t now_ns;
	uint64_t deadline_ns;	/* 0 = none */
	bool sheddable;
	uint64_t saturation_ns;	/* wait above which a sheddable request is shed */
};

struct route_conf {
	enum route_policy policy;
	uint64_t margin_ns;
};

/*
 * router_pick - choose among cand[0..n).  Returns ROUTE_OK with *pick set
 * to an index into cand, or why not.  *rr is the round-robin cursor (the
 * caller keeps it; any value is valid).  A pick may be a probe (above).
 */
enum route_result router_pick(const struct route_conf *rc, const struct route_req *rq,
			      const struct router_cand *cand, int n, unsigned *rr, int *pick);
/*
 * Power of d choices: with more than ROUTER_SCAN_ALL candidates, the router
 * looks at ROUTER_SAMPLE_D of them (the caller gathers predictions only for
 * those), so the cost of a decision stays flat as backends are added.  A
 * sample in which no candidate can take the request is widened, first to
 * ROUTER_WIDEN_D of them, then to all of them before rejecting: sampling
 * never turns away what a full scan admits.  (The middle step keeps the
 * cost flat when a few fast backends can meet a tight objective: at
 * 10,000 backends, a 30 ms class sampled onto two slow CPUs widened ~1% of
 * decisions, and each full scan cost 10,000 views; 32 more random draws
 * find a backend that admits nearly always - bench/sim/scale.sh.)
 * Up to 16 candidates are all scanned: a mixed fleet (CPUs, GPUs, DPUs of
 * very different speed) sampled 2 at a time misses its fast backends often
 * enough to lose SLO attainment (bench/sim hetero: 100% -> 98.3% at load
 * 0.5), while a scan of 16 still costs ~8k instructions.
 */
#define ROUTER_SCAN_ALL 16
#define ROUTER_SAMPLE_D 2
#define ROUTER_WIDEN_D 32

/*
 * router_sample - which of n eligible candidates to look at: all of [0, n)
 * in order when n <= ROUTER_SCAN_ALL, else d (<= n) distinct indices drawn
 * from *rng (any seed; advanced), or for round-robin d consecutive indices
 * from rr % n, so the rotation still visits every candidate.  Writes idx,
 * returns the count.
 */
int router_sample(enum route_policy p, int n, int d, unsigned rr, uint64_t *rng, int *idx);

const char *router_result_reason(enum route_result r);

#endif
