/* scale.c - see scale.h. */
#include "scale.h"

#include <math.h>
#include <string.h>

void scale_rate_init(struct scale_rate *r, double tau_s)
{
	memset(r, 0, sizeof(*r));
	r->tau_s = tau_s > 0 ? tau_s : 1;
}

double scale_rate_update(struct scale_rate *r, uint64_t count, uint64_t now_ns)
{
	double dt, inst, keep;

	if (!r->primed || count < r->last || now_ns <= r->last_ns) {
		/* nothing to measure against: a new baseline, the rate as it was */
		r->primed = true;
		r->last = count;
		r->last_ns = now_ns;
		return r->rate;
	}
	dt = (double)(now_ns - r->last_ns) / 1e9;
	inst = (double)(count - r->last) / dt;
	/* The first interval sets the rate; later ones blend by elapsed time,
	 * so irregular scrapes weigh what they cover. */
	keep = r->valid ? exp(-dt / r->tau_s) : 0;
	r->rate = keep * r->rate + (1 - keep) * inst;
	r->valid = true;
	r->last = count;
	r->last_ns = now_ns;
	return r->rate;
}

void scale_track_init(struct scale_track *t, double tau_s)
{
	scale_rate_init(&t->req, tau_s);
	scale_rate_init(&t->ok_req, tau_s);
	scale_rate_init(&t->ok_rows, tau_s);
	scale_rate_init(&t->batches, tau_s);
	scale_rate_init(&t->batch_rows, tau_s);
}

/* num / den as a ratio of rates, at least 1; 1 when den is 0. */
static double scale_ratio(double num, double den)
{
	double v = den > 0 ? num / den : 1;

	return v > 1 ? v : 1;
}

void scale_track_update(struct scale_track *t, const struct scale_obs *o, struct scale_in *in)
{
	double ok = scale_rate_update(&t->ok_req, o->ok_requests, o->now_ns);
	double rows = scale_rate_update(&t->ok_rows, o->ok_rows, o->now_ns);
	double b = scale_rate_update(&t->batches, o->batches, o->now_ns);
	double br = scale_rate_update(&t->batch_rows, o->batch_rows, o->now_ns);

	in->lambda = scale_rate_update(&t->req, o->requests, o->now_ns);
	in->rows_per_req = scale_ratio(rows, ok);
	in->batch_rows_seen = scale_ratio(br, b);
}

int scale_plan_batch(const double *t_s, int n, double objective_s)
{
	int best = 0;

	if (n < 1)
		return -1;
	if (objective_s <= 0)
		return n - 1;
	for (int i = 0; i < n; i++)
		if (t_s[i] <= objective_s / 2)
			best = i;
	return best;
}

double scale_erlang_c(int c, double a)
{
	double b = 1;

	if (a <= 0)
		return 0;
	if (c <= 0 || a >= c)
		return 1;
	/* Erlang B by its recursion B(k) = a B(k-1) / (k + a B(k-1)): no
	 * factorials, no overflow; then C from B. */
	for (int k = 1; k <= c; k++)
		b = a * b / (k + a * b);
	return b / (1 - (a / c) * (1 - b));
}

/* P(W > t) in M/M/c with offered load a, mean service s. */
static double scale_p_wait(int c, double a, double t, double s)
{
	if (a >= c)
		return 1;
	return scale_erlang_c(c, a) * exp(-((double)c - a) * t / s);
}

static int scale_clamp(int n, int lo, int hi)
{
	return n < lo ? lo : n > hi ? hi : n;
}

int scale_desired(const struct scale_in *in, struct scale_out *out)
{
	int lo = in->min > 1 ? in->min : 1, hi = in->max > lo ? in->max : lo;
	int k = in->slots > 0 ? in->slots : 1;
	double rho_max = in->rho_max > 0 && in->rho_max <= 1 ? in->rho_max : 1;
	double rows = in->rows_per_req > 1 ? in->rows_per_req : 1;
	double bsz = in->batch_rows > 1 ? in->batch_rows : 1;
	double s = in->batch_s, a, budget, p = 0;
	struct scale_out o = { 0 };
	int n;

	if (s <= 0 || !isfinite(s) || !isfinite(in->lambda)) {
		/* no service time learned: no basis for a change */
		o.desired = scale_clamp(in->current, lo, hi);
		goto done;
	}
	a = in->lambda > 0 ? in->lambda * rows / bsz * s : 0;
	o.load = a;
	if (a <= 0) {
		o.desired = lo;
		goto done;
	}
	budget = in->objective_s > 0 ? in->objective_s - s : 0;
	/* the headroom bound first: no count below it can do */
	n = (int)fmin(ceil(a / (k * rho_max) - 1e-9), (double)hi);
	n = scale_clamp(n, lo, hi);
	for (;; n++) {
		p = budget > 0 ? scale_p_wait(n * k, a, budget, s) : 0;
		if (p <= in->p_miss || n == hi)
			break;
	}
	o.desired = n;
	o.p_wait = p;
done:
	o.rho = o.load / ((double)o.desired * k);
	if (out)
		*out = o;
	return o.desired;
}
