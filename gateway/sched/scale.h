/*
 * scale.h - the autoscaling signal: how many replicas a backend pool needs
 * to hold its latency objective at the load it sees.  Pure logic in
 * virtual time (the caller passes the clock), also linked by the
 * simulator's ramp driver (bench/sim/scale_ramp.c).
 *
 * A pool is a set of interchangeable backends: the agents one DNS name
 * expanded to (a Kubernetes headless Service), or every backend with the
 * same `pool` key; a backend without one is a pool of its own
 * (docs/deploy.md, "Kubernetes: scaling").  One replica = one backend.
 *
 * The model (docs/deploy.md has the derivation).  Jobs are batches.  With
 * greedy batching (a free slot takes what waits, up to the batch limit), a
 * request waits for at most the batch running on its slot and then runs in
 * the next one: about 2 t(B) end to end for batches of B rows.  So the
 * objective allows batches of up to B* rows, the largest size with
 * t(B*) <= objective / 2 (scale_plan_batch; max_batch without an
 * objective), and B* rows per t(B*) seconds is the most one slot can carry
 * while holding it: batch efficiency enters through the service-time curve
 * at B*.  The pool's arrivals, lambda requests/s of r rows each, then need
 * a = lambda * r / B* * S busy slots (Erlangs), S = t(B*); a replica runs
 * k batches at once (its slots).  With n replicas, c = n * k slots, and the
 * wait of a batch in an M/M/c queue exceeds t with probability
 *
 *     P(W > t) = C(c, a) * exp(-(c - a) * t / S)      (Erlang C)
 *
 * A request's wait budget is t = objective - S.  desired = the smallest n
 * in [min, max] with
 *
 *     a / c <= rho_max                 (headroom: never plan a full pool)
 *     P(W > objective - S) <= p_miss   (when there is an objective and
 *                                       t > 0: a batch longer than the
 *                                       objective is not a capacity problem)
 *
 * max when no n up to max holds both.  No load: min.  Nothing learned yet
 * (S unknown): the current count, clamped to [min, max].
 */
#ifndef INFERGW_SCALE_H
#define INFERGW_SCALE_H

#include <stdbool.h>
#include <stdint.h>

/* An exponentially weighted rate of a cumulative counter, in virtual time:
 * after dt seconds the old rate keeps weight exp(-dt / tau_s), whatever
 * the sampling interval. */
struct scale_rate {
	double tau_s;
	double rate;			/* per second */
	uint64_t last;			/* counter at the last sample */
	uint64_t last_ns;
	bool primed;			/* a first sample was taken */
	bool valid;			/* rate holds at least one interval */
};

/* What one pool's counters said at one moment (cumulative, summed over its
 * backends and models). */
struct scale_obs {
	uint64_t now_ns;
	uint64_t requests;		/* arrived: answered (any outcome) + queued */
	uint64_t ok_requests, ok_rows;	/* answered 200, and their rows */
	uint64_t batches, batch_rows;	/* executed, and their rows */
};

/* A pool's smoothed view of its traffic. */
struct scale_track {
	struct scale_rate req, ok_req, ok_rows, batches, batch_rows;
};

/* The inputs of scale_desired. */
struct scale_in {
	double lambda;			/* requests per second */
	double rows_per_req;		/* >= 1 */
	double batch_rows;		/* rows per batch planned (B*), >= 1 */
	double batch_s;			/* service time of a B*-row batch (S); <= 0: unknown */
	double batch_rows_seen;		/* rows per batch executed (informational) */
	int slots;			/* batches one replica runs at once (k), >= 1 */
	double objective_s;		/* a request's latency objective; 0 = none */
	double rho_max;			/* utilization ceiling, (0, 1] */
	double p_miss;			/* allowed P(wait > objective - S), (0, 1) */
	int current;			/* replicas now */
	int min, max;			/* bounds; min >= 1, max >= min */
};

struct scale_out {
	int desired;
	double load;			/* a: busy slots the load needs (Erlangs) */
	double rho;			/* a / (desired * k) */
	double p_wait;			/* P(W > objective - S) at desired (0 without objective) */
};

/* scale_rate_init - an empty rate with time constant tau_s (> 0). */
void scale_rate_init(struct scale_rate *r, double tau_s);
/*
 * scale_rate_update - the counter reads count at now_ns; returns the rate
 * (0 until two samples).  A counter that went down (a backend left the
 * pool) or a clock that did not advance starts a new interval from here
 * without changing the rate.
 */
double scale_rate_update(struct scale_rate *r, uint64_t count, uint64_t now_ns);
/* scale_track_init - every rate of t with time constant tau_s. */
void scale_track_init(struct scale_track *t, double tau_s);
/*
 * scale_track_update - feed one observation; fills in's lambda,
 * rows_per_req and batch_rows_seen (1 where nothing was seen) and leaves
 * the other fields alone.
 */
void scale_track_update(struct scale_track *t, const struct scale_obs *o, struct scale_in *in);
/*
 * scale_erlang_c - probability that an arrival waits in an M/M/c queue
 * with c servers and offered load a (Erlangs): 1 when a >= c, 0 when
 * a <= 0.  Stable for large c (Erlang B recursion).
 */
double scale_erlang_c(int c, double a);
/*
 * scale_plan_batch - B*: of n candidate batch sizes (ascending) whose
 * predicted times are t_s[], the index of the largest with t_s <=
 * objective_s / 2; without an objective (0) the largest; when none fits,
 * 0 (the smallest: the objective is below what batching can give).  -1
 * when n < 1.
 */
int scale_plan_batch(const double *t_s, int n, double objective_s);
/* scale_desired - the replicas in needs (the model above); out may be
 * NULL.  Returns the desired count. */
int scale_desired(const struct scale_in *in, struct scale_out *out);

#endif
