/* svctime.c - see svctime.h. */
#include "svctime.h"

#include <stdbool.h>
#include <string.h>

#define SVC_WAIT_P 0.99		/* quantile tracked */
#define SVC_WAIT_STEP 0.005	/* relative step per sample */
#define SVC_WAIT_MIN 1.0
#define SVC_WAIT_MAX 4.0

int svc_bucket(int rows)
{
	/* the least b with 2^b >= rows: ceil(log2(rows)) */
	int b = rows <= 1 ? 0 : 32 - __builtin_clz((unsigned)rows - 1);

	return b < SVC_BUCKETS - 1 ? b : SVC_BUCKETS - 1;
}

void svc_init(struct svc_model *s, double a_ns, double b_ns, double alpha)
{
	memset(s, 0, sizeof(*s));
	s->a_ns = a_ns > 0 ? a_ns : 0;
	s->b_ns = b_ns > 0 ? b_ns : 0;
	s->alpha = alpha > 0 && alpha <= 1 ? alpha : 0.2;
	for (int i = 0; i < SVC_LEVELS; i++)
		s->wait[i].q99 = SVC_WAIT_MIN;
}

void svc_set_warm(struct svc_model *s, double a_ns, double b_ns)
{
	s->a_ns = a_ns;
	s->b_ns = b_ns;
	s->pred_ok = 0;
}

void svc_observe(struct svc_model *s, int rows, uint64_t exec_ns)
{
	int b = svc_bucket(rows);
	double x = (double)exec_ns, cap = SVC_SPIKE * s->ewma[b];

	if (s->seen[b] == 0 || (x > cap && ++s->over[b] >= SVC_SPIKE_RUN)) {
		s->ewma[b] = x;		/* first sample, or a change that lasts */
		s->over[b] = 0;
	} else {
		if (x > cap)
			x = cap;	/* a spike, so far */
		else
			s->over[b] = 0;
		s->ewma[b] += s->alpha * (x - s->ewma[b]);
	}
	if (s->seen[b] < UINT32_MAX)
		s->seen[b]++;
	s->seen_mask |= 1u << b;
	s->pred_ok = 0;
}

void svc_forget(struct svc_model *s, int rows)
{
	int b = svc_bucket(rows);

	s->seen[b] = 0;
	s->over[b] = 0;
	s->ewma[b] = 0;
	s->seen_mask &= ~(1u << b);
	s->pred_ok = 0;
}

/* Nearest seen buckets at or below b (*lo) and at or above b (*hi); -1 when none. */
static void svc_neighbours(const struct svc_model *s, int b, int *lo, int *hi)
{
	uint32_t below = s->seen_mask & ((2u << b) - 1), above = s->seen_mask >> b;

	*lo = below ? 31 - __builtin_clz(below) : -1;
	*hi = above ? b + __builtin_ctz(above) : -1;
}

static double svc_warm(const struct svc_model *s, double n)
{
	return s->a_ns + s->b_ns * n;
}

uint64_t svc_prior(const struct svc_model *s, int rows)
{
	double t = svc_warm(s, (double)(1 << svc_bucket(rows)));

	return t < 1 ? 1 : (uint64_t)t;
}

/*
 * Outside the seen range: the warm start's shape scaled to the nearest seen
 * bucket (a batch of 64 is not a straight line from batches of 1 and 2);
 * without a warm start, the line through the two nearest seen buckets,
 * never sloping down.
 */
static double svc_extrapolate(const struct svc_model *s, int near, int other, double n)
{
	double nn = (double)(1 << near), warm = svc_warm(s, nn), slope = 0;

	if (warm > 0 && svc_warm(s, n) > 0)
		return svc_warm(s, n) * s->ewma[near] / warm;
	if (other >= 0 && other != near)
		slope = (s->ewma[other] - s->ewma[near]) / ((double)(1 << other) - nn);
	if (slope < 0)
		slope = 0;
	return s->ewma[near] + slope * (n - nn);
}

/* The seen bucket next to i away from `from` (searching outwards), or -1. */
static int svc_next_seen(const struct svc_model *s, int i, int step)
{
	for (i += step; i >= 0 && i < SVC_BUCKETS; i += step)
		if (s->seen[i])
			return i;
	return -1;
}

/* The prediction for bucket b, worked out from the model. */
static uint64_t svc_compute(const struct svc_model *s, int b)
{
	double n = (double)(1 << b), t;
	int lo, hi;

	svc_neighbours(s, b, &lo, &hi);
	if (lo == b)
		t = s->ewma[b];
	else if (lo >= 0 && hi >= 0) {	/* interpolate between the neighbours */
		double nl = (double)(1 << lo), nh = (double)(1 << hi);

		t = s->ewma[lo] + (s->ewma[hi] - s->ewma[lo]) * (n - nl) / (nh - nl);
	} else if (lo >= 0) {
		t = svc_extrapolate(s, lo, svc_next_seen(s, lo, -1), n);
	} else if (hi >= 0) {
		t = svc_extrapolate(s, hi, svc_next_seen(s, hi, 1), n);
	} else {
		t = svc_warm(s, n);
	}
	return t < 1 ? 1 : (uint64_t)t;
}

uint64_t svc_predict(const struct svc_model *s, int rows)
{
	/* The cache is not part of the model's value: s stays const to callers. */
	struct svc_model *m = (struct svc_model *)s;
	int b = svc_bucket(rows);

	if (!(m->pred_ok & (1u << b))) {
		m->pred[b] = svc_compute(s, b);
		m->pred_ok |= 1u << b;
	}
	return m->pred[b];
}


static struct svc_wait *svc_wait_of(struct svc_model *s, int level)
{
	return &s->wait[svc_level(level)];
}

/* One sample above (up) or at or below the tracked quantile: the estimate
 * settles where 1 - SVC_WAIT_P of the samples are above it. */
static void svc_wait_step(struct svc_wait *w, bool up)
{
	if (up)
		w->q99 *= 1 + SVC_WAIT_STEP * SVC_WAIT_P;
	else
		w->q99 *= 1 - SVC_WAIT_STEP * (1 - SVC_WAIT_P);
	if (w->q99 < SVC_WAIT_MIN)
		w->q99 = SVC_WAIT_MIN;
	if (w->q99 > SVC_WAIT_MAX)
		w->q99 = SVC_WAIT_MAX;
}

void svc_wait_observe(struct svc_model *s, int level, uint64_t predicted_ns, uint64_t actual_ns)
{
	struct svc_wait *w = svc_wait_of(s, level);

	if (predicted_ns == 0 || predicted_ns < svc_predict(s, 1))
		return;
	svc_wait_step(w, (double)actual_ns > w->q99 * (double)predicted_ns);
}

void svc_wait_missed(struct svc_model *s, int level)
{
	svc_wait_step(svc_wait_of(s, level), true);
}

