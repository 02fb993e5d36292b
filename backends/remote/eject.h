/*
 * eject.h - outlier ejection for remote backends (be_rmt_ej_), as Envoy's
 * outlier detection does it, as a pure state machine: time comes in as an
 * argument, nothing here reads a clock, sleeps or does I/O, so it runs in
 * virtual time in tests (tests/unit/test_eject.c).
 *
 * One be_rmt_ej per agent.  Failures (a batch timed out or failed 5xx, a
 * connection lost or refused, a pong late) count up; a success resets the
 * count.  At conf.consecutive_failures the agent is ejected for
 * ejection_ns x (times ejected so far, this one included), capped at
 * max_ejection_ns.  When the period ends (be_rmt_ej_tick) it is probing:
 * the caller sends one probe (a ping, or a reconnect + hello); success
 * readmits it, failure ejects it again for a longer period.  While ejected
 * and not probing, outcomes are ignored (late answers of batches sent
 * before the ejection say nothing new).
 *
 * Pools: the agents of one pool (the `pool` key; by default the entry's
 * name) share a cap: never more than max(1, floor(size x
 * max_ejection_percent / 100)) ejected at once (Envoy's "at least one").
 * An ejection above the cap is skipped (BE_RMT_EJ_SKIP) and the failures
 * stay counted, so the next failure tries again.  Pools live in a
 * process-wide registry, refcounted by their members: backends come and go
 * with reloads.  Pool operations take the pool's mutex (members run on
 * different threads); an agent's own be_rmt_ej is its owner's to lock.
 */
#ifndef INFERGW_RMT_EJECT_H
#define INFERGW_RMT_EJECT_H

#include <stdbool.h>
#include <stdint.h>

struct be_rmt_ej_conf {
	int consecutive_failures;	/* >= 1 */
	uint64_t ejection_ns;		/* base period */
	uint64_t max_ejection_ns;	/* cap of a period */
	int max_ejection_percent;	/* of the pool, 0..100 */
};

/* What a call changed (for the caller's log and state). */
enum be_rmt_ej_event {
	BE_RMT_EJ_NONE = 0,
	BE_RMT_EJ_EJECT,	/* ejected now (until be_rmt_ej_until) */
	BE_RMT_EJ_SKIP,		/* would eject, but the pool is at its cap */
	BE_RMT_EJ_PROBE,	/* period over: send a probe now */
	BE_RMT_EJ_READMIT,	/* the probe succeeded: usable again */
	BE_RMT_EJ_REEJECT,	/* the probe failed: ejected again, longer */
};

struct be_rmt_pool;

struct be_rmt_ej {
	struct be_rmt_ej_conf conf;
	struct be_rmt_pool *pool;	/* NULL: a pool of one */
	int failures;			/* consecutive, since the last success */
	int times;			/* ejections so far (the period multiplier) */
	uint64_t ejections;		/* ejections and re-ejections, for metrics */
	bool ejected;			/* counted in the pool's ejected */
	bool probing;			/* period over, the probe's outcome awaited */
	uint64_t until_ns;		/* end of the current period */
};

/*
 * be_rmt_pool_get - the pool called name (created at the first member),
 * with this caller counted as a member.  NULL when out of memory.  Every
 * get is paired with one be_rmt_pool_put.
 */
struct be_rmt_pool *be_rmt_pool_get(const char *name);
/* be_rmt_pool_put - leave p (NULL-safe); the last member frees it. */
void be_rmt_pool_put(struct be_rmt_pool *p);
/* be_rmt_pool_counts - p's members and how many are ejected now. */
void be_rmt_pool_counts(struct be_rmt_pool *p, int *members, int *ejected);
/* be_rmt_pool_cap - most members ejected at once for members and percent. */
int be_rmt_pool_cap(int members, int percent);

/*
 * be_rmt_ej_init - a fresh state (nothing failed, not ejected) in pool
 * (may be NULL: a pool of one, whose cap is 1; the reference stays the
 * caller's).  be_rmt_ej_fini gives back the pool's count if ejected.
 */
void be_rmt_ej_init(struct be_rmt_ej *e, const struct be_rmt_ej_conf *conf,
		    struct be_rmt_pool *pool);
void be_rmt_ej_fini(struct be_rmt_ej *e);

/* be_rmt_ej_failure - one failure at now. */
enum be_rmt_ej_event be_rmt_ej_failure(struct be_rmt_ej *e, uint64_t now);
/* be_rmt_ej_success - one success at now. */
enum be_rmt_ej_event be_rmt_ej_success(struct be_rmt_ej *e, uint64_t now);
/* be_rmt_ej_tick - time passed: BE_RMT_EJ_PROBE once when the period is over. */
enum be_rmt_ej_event be_rmt_ej_tick(struct be_rmt_ej *e, uint64_t now);
/* be_rmt_ej_is_ejected - ejected (probing included): takes no traffic. */
bool be_rmt_ej_is_ejected(const struct be_rmt_ej *e);
/* be_rmt_ej_period - the period the n-th ejection lasts (n >= 1). */
uint64_t be_rmt_ej_period(const struct be_rmt_ej_conf *conf, int n);
/* be_rmt_ej_event_name - "eject", "skip", ... for logs. */
const char *be_rmt_ej_event_name(enum be_rmt_ej_event ev);

#endif
