/* autoscale.c - see autoscale.h. */
#include "autoscale.h"

#include <event2/buffer.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "config.h"
#include "metrics.h"
#include "model/model.h"
#include "runtime.h"
#include "scale.h"

/* One pool's state between renders, and what this render found. */
struct asc_pool {
	char *name;
	struct scale_track trk;
	bool seen;
	double last_b, last_s;		/* B*, S and k when last measured: a pool */
	int last_k;			/* whose backends are all down keeps its demand */
	/* this render */
	struct scale_obs obs;
	int up;				/* backends taking requests */
	double objective_s;		/* tightest objective of its models; 0 = none */
	struct scale_in in;
	struct scale_out out;
};

static struct {
	pthread_mutex_t lock;
	struct asc_pool *pools;
	int n;
} asc = { .lock = PTHREAD_MUTEX_INITIALIZER };

static const char *asc_pool_of(const struct rt_backend *rb)
{
	const struct backend_conf *c = &rb->be.conf;

	return c->kind == BE_REMOTE && c->remote.pool ? c->remote.pool : c->name;
}

/* The pool named name, added when new; NULL when out of room or memory. */
static struct asc_pool *asc_find(const char *name)
{
	struct asc_pool *p;

	for (int i = 0; i < asc.n; i++)
		if (!strcmp(asc.pools[i].name, name))
			return &asc.pools[i];
	if (asc.n == ASC_MAX_POOLS)
		return NULL;
	p = realloc(asc.pools, (size_t)(asc.n + 1) * sizeof(*p));
	if (!p)
		return NULL;
	asc.pools = p;
	p = &asc.pools[asc.n];
	memset(p, 0, sizeof(*p));
	p->name = strdup(name);
	if (!p->name)
		return NULL;
	scale_track_init(&p->trk, ASC_TAU_S);
	asc.n++;
	return p;
}

static void asc_begin(uint64_t now_ns)
{
	for (int i = 0; i < asc.n; i++) {
		struct asc_pool *p = &asc.pools[i];

		p->seen = false;
		memset(&p->obs, 0, sizeof(p->obs));
		p->obs.now_ns = now_ns;
		p->up = 0;
		p->objective_s = 0;
		memset(&p->in, 0, sizeof(p->in));
	}
}

/* Drop the pools this render did not see (gone from the config). */
static void asc_sweep(void)
{
	int k = 0;

	for (int i = 0; i < asc.n; i++) {
		if (asc.pools[i].seen)
			asc.pools[k++] = asc.pools[i];
		else
			free(asc.pools[i].name);
	}
	asc.n = k;
}

static bool asc_up(const struct rt_backend *rb)
{
	return rb->started && be_state_get(&rb->be) == BE_UP && !atomic_load(&rb->draining);
}

/* Add rb's counters (every queue's series) and objective to p. */
static void asc_count(struct asc_pool *p, const struct runtime *rt, struct rt_backend *rb)
{
	for (int q = 0; rb->started && q < rb->sched.n_q; q++) {
		struct sched_q *sq = &rb->sched.qs[q];
		struct met_cnt sum, *m = &sum;
		const struct model_conf *mc = rt_model_conf(rt, sq->model);
		double obj = mc && mc->slo_ms ? mc->slo_ms / 1e3 : 0;

		if (obj > 0 && (p->objective_s == 0 || obj < p->objective_s))
			p->objective_s = obj;
		p->obs.requests += (uint64_t)atomic_load(&sq->depth);
		if (!sq->met)
			continue;
		met_read(sq->met, &sum);
		for (int o = 0; o < OUT_N; o++)
			p->obs.requests += atomic_load(&m->outcome[o]);
		p->obs.ok_requests += atomic_load(&m->outcome[OUT_SUCCESS]);
		p->obs.ok_rows += atomic_load(&m->rows_ok);
		p->obs.batches += met_hist_count(&m->batch);
		p->obs.batch_rows += atomic_load(&m->batch.sum);
	}
}

#define ASC_CANDS 16		/* candidate batch sizes: 1, 2, 4, ... and the limit */

/*
 * rb's service-time curve: t[i] seconds for a batch of rows[i] rows, the
 * powers of two up to the smallest batch limit of its queues and that
 * limit; for each size the slowest of its queues (conservative).  Returns
 * the number of sizes.
 */
static int asc_curve(struct rt_backend *rb, int *rows, double *t)
{
	int lim = 0, n = 0;

	for (int q = 0; q < rb->sched.n_q; q++) {
		int m = atomic_load(&rb->sched.qs[q].max_batch);

		if (m > 0 && (lim == 0 || m < lim))
			lim = m;
	}
	for (int r = 1; lim > 0 && n < ASC_CANDS; r = r * 2 < lim ? r * 2 : lim) {
		rows[n] = r;
		t[n] = 0;
		for (int q = 0; q < rb->sched.n_q; q++) {
			struct router_cand c;

			sched_view(&rb->sched, q, r, 1, 0, &c);
			if (c.exec_ns / 1e9 > t[n])
				t[n] = c.exec_ns / 1e9;
		}
		n++;
		if (r == lim)
			break;
	}
	return n;
}

/*
 * One replica's planned batch B*, its time S (scale_plan_batch on its
 * curve) and its slots k; false when it has learned nothing to go on.  An
 * agent that reports its own execution time and threads (ops->view) runs
 * k = its threads, and its curve is the gateway's scaled to the agent's
 * own time at the batch size seen: the gateway's time of a remote batch
 * also holds the network and the agent's queue, and the window is not
 * its parallelism.  Otherwise the gateway's curve and the credits.
 */
static bool asc_replica(struct rt_backend *rb, double objective_s, double seen_rows,
			double *b, double *s, int *k)
{
	int rows[ASC_CANDS], n, i;
	double t[ASC_CANDS], f = 1;
	struct be_load v = { 0 };

	n = asc_curve(rb, rows, t);
	*k = rb->be.credits > 0 ? rb->be.credits : 1;
	if (n < 1)
		return false;
	if (rb->be.ops && rb->be.ops->view && rb->be.ops->view(&rb->be, &v) == 0 &&
	    v.service_ns > 0 && v.parallel > 0) {
		int j = 0;

		while (j < n - 1 && rows[j] < seen_rows)
			j++;
		if (t[j] > 0)
			f = v.service_ns / 1e9 / t[j];
		*k = v.parallel;
	}
	for (int j = 0; j < n; j++)
		t[j] *= f;
	i = scale_plan_batch(t, n, objective_s);
	*b = rows[i];
	*s = t[i];
	return *s > 0;
}

/* B*, S and k of p: the means over its backends that are up (a pool is
 * meant to be replicas of one kind). */
static void asc_service(struct asc_pool *p, const struct runtime *rt)
{
	double sum_b = 0, sum_s = 0, sum_k = 0;
	int n = 0;

	for (int i = 0; i < rt->n_backends; i++) {
		struct rt_backend *rb = rt->backends[i];
		double b, s;
		int k;

		if (!asc_up(rb) || strcmp(asc_pool_of(rb), p->name) ||
		    !asc_replica(rb, p->objective_s, p->in.batch_rows_seen, &b, &s, &k))
			continue;
		sum_b += b;
		sum_s += s;
		sum_k += k;
		n++;
	}
	if (n) {
		p->last_b = sum_b / n;
		p->last_s = sum_s / n;
		p->last_k = (int)(sum_k / n + 0.5);
	}
	p->in.batch_rows = p->last_b > 1 ? p->last_b : 1;
	p->in.batch_s = p->last_s;
	p->in.slots = p->last_k > 0 ? p->last_k : 1;
}

static void asc_sample(const struct runtime *rt, uint64_t now_ns)
{
	asc_begin(now_ns);
	for (int i = 0; i < rt->n_backends; i++) {
		struct rt_backend *rb = rt->backends[i];
		struct asc_pool *p = asc_find(asc_pool_of(rb));

		if (!p)
			continue;
		p->seen = true;
		p->up += asc_up(rb);
		asc_count(p, rt, rb);
	}
	asc_sweep();
	for (int i = 0; i < asc.n; i++) {
		struct asc_pool *p = &asc.pools[i];

		scale_track_update(&p->trk, &p->obs, &p->in);
		asc_service(p, rt);
		if (!p->trk.req.valid)
			p->in.batch_s = 0;	/* one sample: no rate yet, hold */
		p->in.objective_s = p->objective_s;
		p->in.rho_max = ASC_RHO_MAX;
		p->in.p_miss = ASC_P_MISS;
		p->in.current = p->up;
		p->in.min = 1;
		p->in.max = ASC_MAX_REPLICAS;
		scale_desired(&p->in, &p->out);
	}
}

/* One gauge family: HELP, TYPE and a sample per pool. */
static void asc_family(struct evbuffer *out, char *const *names, const char *name,
		       const char *help, double (*val)(const struct asc_pool *p))
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	for (int i = 0; i < asc.n; i++)
		if (names[i])
			evbuffer_add_printf(out, "%s{pool=\"%s\"} %.9g\n", name, names[i],
					    val(&asc.pools[i]));
}

static double asc_v_desired(const struct asc_pool *p) { return p->out.desired; }
static double asc_v_up(const struct asc_pool *p) { return p->up; }
static double asc_v_rate(const struct asc_pool *p) { return p->in.lambda; }
static double asc_v_load(const struct asc_pool *p) { return p->out.load; }
static double asc_v_rows(const struct asc_pool *p) { return p->in.batch_rows; }
static double asc_v_seen(const struct asc_pool *p) { return p->in.batch_rows_seen; }
static double asc_v_svc(const struct asc_pool *p) { return p->in.batch_s; }
static double asc_v_obj(const struct asc_pool *p) { return p->in.objective_s; }
static double asc_v_slots(const struct asc_pool *p) { return p->in.slots; }
static double asc_v_rpr(const struct asc_pool *p) { return p->in.rows_per_req; }

void asc_render(struct evbuffer *out, const struct runtime *rt, uint64_t now_ns)
{
	char **names;

	pthread_mutex_lock(&asc.lock);
	asc_sample(rt, now_ns);
	names = calloc((size_t)asc.n + 1, sizeof(*names));
	if (!names)
		goto unlock;
	for (int i = 0; i < asc.n; i++)
		names[i] = met_label_escape(asc.pools[i].name);
	asc_family(out, names, "infergw_pool_desired_replicas",
		   "Replicas (backends) the pool needs to hold its objective at the observed load "
		   "(docs/deploy.md).", asc_v_desired);
	asc_family(out, names, "infergw_pool_replicas", "Backends of the pool taking requests.",
		   asc_v_up);
	asc_family(out, names, "infergw_pool_arrival_rate",
		   "Requests per second arriving at the pool (EWMA).", asc_v_rate);
	asc_family(out, names, "infergw_pool_load",
		   "Busy batch slots the load needs (Erlangs): arrivals x rows / batch rows x "
		   "batch seconds.", asc_v_load);
	asc_family(out, names, "infergw_pool_rows_per_request", "Rows per request (EWMA).",
		   asc_v_rpr);
	asc_family(out, names, "infergw_pool_batch_rows",
		   "Rows per batch planned: the largest whose service time is at most half the "
		   "objective.", asc_v_rows);
	asc_family(out, names, "infergw_pool_batch_rows_seen", "Rows per executed batch (EWMA).",
		   asc_v_seen);
	asc_family(out, names, "infergw_pool_batch_seconds",
		   "Service time of one batch of that size on one replica.", asc_v_svc);
	asc_family(out, names, "infergw_pool_slots", "Batches one replica runs at once.",
		   asc_v_slots);
	asc_family(out, names, "infergw_pool_objective_seconds",
		   "Tightest latency objective of the pool's models (0: none).", asc_v_obj);
	for (int i = 0; i < asc.n; i++)
		free(names[i]);
	free(names);
unlock:
	pthread_mutex_unlock(&asc.lock);
}

void asc_free_all(void)
{
	pthread_mutex_lock(&asc.lock);
	for (int i = 0; i < asc.n; i++)
		free(asc.pools[i].name);
	free(asc.pools);
	asc.pools = NULL;
	asc.n = 0;
	pthread_mutex_unlock(&asc.lock);
}
