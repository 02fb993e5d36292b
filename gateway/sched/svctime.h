/*
 * svctime.h - learned service time of one (backend, model): how long a
 * batch of n rows takes to execute.  Pure logic.
 *
 * Backends pad batches to power-of-two buckets (the CPU backend has one
 * primitive per bucket), so time is learned per bucket as an exponentially
 * weighted moving average.  One batch far slower than its bucket's estimate
 * (a CPU quota's pause, a preemption, a network hiccup) counts as at most
 * SVC_SPIKE times the estimate, so a single pause does not inflate every
 * prediction for the next dozens of batches (and turn requests away);
 * SVC_SPIKE_RUN such batches in a row are a real change, and the last one
 * replaces the estimate.  A bucket never seen is interpolated between the
 * nearest seen buckets on either side; beyond the seen range it follows the
 * warm start's shape (config or calibration) scaled to the nearest seen
 * bucket; with nothing seen it is the warm start.
 *
 * Wait calibration: the wait a scheduler predicts from the work queued ahead
 * misses what that sum does not see (the dispatch gap between batches, CPU
 * contention and a machine that slows down, later arrivals of higher
 * priority jumping ahead).  Per priority level, the 99th percentile of the
 * ratio of observed to predicted wait is tracked (stochastic quantile
 * approximation, over requests predicted to wait at least one batch; a
 * request dropped because it could no longer finish counts as above any
 * ratio), and svc_wait_adjust scales a prediction by it, clamped to [1, 4]:
 * an upper estimate, so that admission at the edge of the deadline rarely
 * admits a request that will then miss it.
 */
#ifndef INFERGW_SVCTIME_H
#define INFERGW_SVCTIME_H

#include <stdint.h>

#define SVC_BUCKETS 16		/* 1, 2, 4, ... 32768 rows */
#define SVC_SPIKE 4.0		/* a sample counts at most this x its bucket's estimate... */
#define SVC_SPIKE_RUN 3		/* ...unless it is the 3rd in a row above that: it replaces it */
#define SVC_LEVELS 16		/* priority levels with their own wait calibration */

struct svc_wait {
	double q99;			/* of observed / predicted wait */
};

struct svc_model {
	double a_ns, b_ns;		/* warm start: t(n) = a + b*n */
	double alpha;			/* EWMA weight of a new sample */
	double ewma[SVC_BUCKETS];
	uint32_t seen[SVC_BUCKETS];
	uint8_t over[SVC_BUCKETS];	/* samples in a row above SVC_SPIKE x the estimate */
	uint32_t seen_mask;		/* bit b: seen[b] != 0 (svc_predict's search) */
	/* svc_predict's answers, per bucket: bit b of pred_ok says pred[b] is
	 * current.  A prediction depends on the bucket alone and is asked for
	 * several times per request (admission, publish, dispatch) while the
	 * model changes once per batch; every change clears pred_ok. */
	uint32_t pred_ok;
	uint64_t pred[SVC_BUCKETS];
	struct svc_wait wait[SVC_LEVELS];	/* by priority level - 1 */
};

/* svc_init - warm start t(n) = a_ns + b_ns * n; alpha in (0, 1]. */
void svc_init(struct svc_model *s, double a_ns, double b_ns, double alpha);
/* svc_set_warm - replace the warm start (what buckets not seen follow). */
void svc_set_warm(struct svc_model *s, double a_ns, double b_ns);
/* svc_observe - a batch of rows took exec_ns. */
void svc_observe(struct svc_model *s, int rows, uint64_t exec_ns);
/* svc_forget - drop what rows' bucket learned: it is predicted as if never
 * seen (from its neighbours or the warm start) until its next sample,
 * which then replaces the estimate instead of being averaged into it. */
void svc_forget(struct svc_model *s, int rows);
/* svc_prior - what a batch of rows is predicted at from the warm start
 * alone, nothing learned (>= 1 ns: 1 without a warm start). */
uint64_t svc_prior(const struct svc_model *s, int rows);
/* svc_predict - predicted execution time of a batch of rows (>= 1 ns).
 * Remembers its answer in s (pred): callers serialize calls on one model
 * as they do changes (the scheduler's lock; the simulator's one thread). */
uint64_t svc_predict(const struct svc_model *s, int rows);
/* svc_wait_observe - a request of priority level predicted to wait
 * predicted_ns waited actual_ns (ignored below one batch of 1 row). */
void svc_wait_observe(struct svc_model *s, int level, uint64_t predicted_ns, uint64_t actual_ns);
/* svc_wait_missed - a request of priority level, admitted on a predicted
 * wait, was dropped in the queue because it could no longer finish. */
void svc_wait_missed(struct svc_model *s, int level);
/* svc_level - the wait[] entry of priority level (levels past SVC_LEVELS
 * share the last). */
static inline int svc_level(int level)
{
	return level < 1 ? 0 : level > SVC_LEVELS ? SVC_LEVELS - 1 : level - 1;
}
/* svc_wait_factor - the factor svc_wait_adjust applies now (1 at start).
 * Inline: asked for per level at every publish of a queue. */
static inline double svc_wait_factor(const struct svc_model *s, int level)
{
	return s->wait[svc_level(level)].q99;
}
/* svc_wait_adjust - predicted_ns as calibrated for priority level. */
static inline uint64_t svc_wait_adjust(const struct svc_model *s, int level,
				       uint64_t predicted_ns)
{
	return (uint64_t)((double)predicted_ns * svc_wait_factor(s, level));
}
/* svc_bucket - bucket index of rows (ceil log2). */
int svc_bucket(int rows);

#endif
