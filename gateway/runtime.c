/* runtime.c - see runtime.h. */
#include "runtime.h"

#include <errno.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "infer.h"
#include "log.h"
#include "model/model.h"
#include "router.h"
#include "util.h"
#include "ytree.h"

static const struct backend_ops *rt_ops_for(enum backend_kind k)
{
	switch (k) {
	case BE_CPU:
		return &be_cpu_ops;
	default:
		return NULL;	/* gpu and remote arrive with their issues */
	}
}

static int rt_model_index(const struct runtime *rt, const struct model *m)
{
	for (int i = 0; i < rt->n_models; i++)
		if (rt->models[i] == m)
			return i;
	return -1;
}

struct model *rt_find_model(const struct runtime *rt, const char *name)
{
	for (int i = 0; i < rt->n_models; i++)
		if (strcmp(rt->models[i]->name, name) == 0)
			return rt->models[i];
	return NULL;
}

const struct model_conf *rt_model_conf(const struct runtime *rt, const struct model *m)
{
	int i = rt_model_index(rt, m);

	return i < 0 ? NULL : rt->mconf[i];
}

static int rt_load_models(struct runtime *rt, char **err)
{
	const struct config *c = rt->cfg;

	rt->models = calloc(c->n_models, sizeof(*rt->models));
	rt->mconf = calloc(c->n_models, sizeof(*rt->mconf));
	rt->none_met = calloc(c->n_models, sizeof(*rt->none_met));
	for (int i = 0; i < c->n_models; i++) {
		char *merr = NULL;
		struct model *m = model_load(c->models[i].path, &merr);

		if (!m) {
			*err = yt_strdupf("models[%d] (%s): %s", i, c->models[i].name, merr);
			free(merr);
			return -EINVAL;
		}
		/* The config's name is the one clients use. */
		free(m->name);
		m->name = strdup(c->models[i].name);
		rt->mconf[rt->n_models] = &c->models[i];
		met_series_init(&rt->none_met[rt->n_models], "none", m->name);
		rt->models[rt->n_models++] = m;
		log_info("model=%s path=%s in=%d out=%d layers=%d max_batch_size=%d msg=\"loaded\"",
			 m->name, c->models[i].path, m->in_dim, m->out_dim, m->n_layers,
			 m->max_batch_size);
	}
	return 0;
}

struct rt_calib {
	sem_t done;
};

static void rt_calib_done(struct batch *b)
{
	sem_post(&((struct rt_calib *)b->owner)->done);
}

/* Time one batch of rows zero-filled rows on slot 0; 0 on failure. */
static uint64_t rt_time_batch(struct backend *be, const struct model *m, int rows)
{
	struct infer_req r = { .model = m, .rows = rows };
	struct infer_req *rp = &r;
	struct rt_calib cal;
	struct batch b = { .model = m, .be = be, .n_reqs = 1, .reqs = &rp, .rows = rows,
			   .done = rt_calib_done, .owner = &cal };
	uint64_t t = 0;

	r.input = calloc((size_t)rows * m->in_dim, sizeof(float));
	r.output = calloc((size_t)rows * m->out_dim, sizeof(float));
	atomic_store(&r.state, REQ_RUNNING);
	sem_init(&cal.done, 0, 0);
	if (be->ops->submit(be, &b) == 0) {
		sem_wait(&cal.done);
		t = b.exec_end_ns - b.exec_start_ns;
	}
	sem_destroy(&cal.done);
	free((void *)r.input);
	free(r.output);
	return t;
}

/*
 * Warm start of the service-time model: from the config, else a short
 * calibration (best of 3 batches of 1 and of max rows) fitting a + b*n.
 */
static void rt_calibrate(struct backend *be, const struct model_conf *mc, const struct model *m,
			 int max_rows, struct sched_q_conf *qc)
{
	uint64_t t1 = UINT64_MAX, tn = UINT64_MAX;

	if (mc->svc_base_us > 0 || mc->svc_per_row_us > 0) {
		qc->warm_a_ns = mc->svc_base_us * 1000;
		qc->warm_b_ns = mc->svc_per_row_us * 1000;
		return;
	}
	for (int i = 0; i < 3; i++) {
		uint64_t a = rt_time_batch(be, m, 1), b = rt_time_batch(be, m, max_rows);

		if (a && a < t1)
			t1 = a;
		if (b && b < tn)
			tn = b;
	}
	if (t1 == UINT64_MAX || tn == UINT64_MAX)
		return;
	qc->warm_b_ns = max_rows > 1 && tn > t1 ? (double)(tn - t1) / (max_rows - 1) : 0;
	qc->warm_a_ns = (double)t1 - qc->warm_b_ns;
	log_info("backend=%s model=%s batch1_us=%.1f batch%d_us=%.1f msg=\"calibrated service time\"",
		 be->conf.name, m->name, t1 / 1e3, max_rows, tn / 1e3);
}

/* Start the scheduler of an open backend over the models it hosts. */
static int rt_start_sched(struct runtime *rt, struct rt_backend *rb)
{
	const struct backend_conf *bc = &rb->be.conf;
	const struct config *c = rt->cfg;
	struct sched_q_conf *qc = calloc(bc->n_models, sizeof(*qc));
	int rc;

	rb->met = calloc(bc->n_models, sizeof(*rb->met));
	for (int i = 0; i < bc->n_models; i++) {
		const struct model_conf *mc = cfg_find_model(c, bc->models[i]);
		const struct model *m = rt_find_model(rt, bc->models[i]);
		int mb = mc->max_batch > 0 && mc->max_batch < m->max_batch_size ? mc->max_batch
										 : m->max_batch_size;

		met_series_init(&rb->met[i], bc->name, m->name);
		qc[i] = (struct sched_q_conf){
			.model = m, .max_batch = mc->max_batch, .delay_us = mc->max_queue_delay_us,
			.max_queue = mc->max_queue, .priority_levels = c->routing.priority_levels,
			.n_preferred = mc->n_preferred, .adaptive = mc->adaptive,
			.objective_ns = (uint64_t)mc->slo_ms * 1000000,
			.margin_ns = (uint64_t)c->routing.margin_us * 1000, .met = &rb->met[i],
		};
		memcpy(qc[i].preferred, mc->preferred, sizeof(qc[i].preferred));
		rt_calibrate(&rb->be, mc, m, mb, &qc[i]);
	}
	rc = sched_be_start(&rb->sched, &rb->be, qc, bc->n_models);
	free(qc);
	return rc;
}

/* Open one backend; failures leave it down (logged), never fatal. */
static void rt_open_backend(struct runtime *rt, struct rt_backend *rb,
			    const struct backend_conf *bc)
{
	char *err = NULL;

	rb->be.conf = *bc;	/* strings stay owned by the config */
	rb->be.ops = rt_ops_for(bc->kind);
	if (!rb->be.ops) {
		log_warn("backend=%s msg=\"backend kind not built into this binary; left down\"",
			 bc->name);
		return;
	}
	if (rb->be.ops->open(&rb->be, bc, &err))
		goto down;
	for (int i = 0; i < bc->n_models; i++)
		if (rb->be.ops->load_model(&rb->be, rt_find_model(rt, bc->models[i]), &err))
			goto down_close;
	if (rt_start_sched(rt, rb))
		goto down_close;
	rb->started = true;
	rb->be.up = true;
	log_info("backend=%s kind=%s workers=%d threads_per_worker=%d models=%d cost=%g msg=\"up\"",
		 bc->name, rb->be.ops->kind, bc->slots, bc->threads_per_slot, bc->n_models,
		 bc->cost);
	return;
down_close:
	rb->be.ops->close(&rb->be);
down:
	log_error("backend=%s msg=\"left down: %s\"", bc->name, err ? err : "open failed");
	free(err);
	rb->be.ops = NULL;
}

struct runtime *rt_build(const struct config *cfg, char **err)
{
	struct runtime *rt = calloc(1, sizeof(*rt));

	rt->cfg = cfg;
	if (rt_load_models(rt, err)) {
		rt_destroy(rt);
		return NULL;
	}
	rt->backends = calloc(cfg->n_backends, sizeof(*rt->backends));
	rt->n_backends = cfg->n_backends;
	for (int i = 0; i < cfg->n_backends; i++)
		rt_open_backend(rt, &rt->backends[i], &cfg->backends[i]);
	return rt;
}

bool rt_model_ready(const struct runtime *rt, const struct model *m)
{
	for (int i = 0; i < rt->n_backends; i++) {
		const struct rt_backend *rb = &rt->backends[i];

		if (rb->started && rb->be.up && sched_find(&rb->sched, m) >= 0)
			return true;
	}
	return false;
}

/* One candidate per up backend hosting r's model.  Returns the count. */
static int rt_candidates(struct runtime *rt, const struct infer_req *r, uint64_t now,
			 struct router_cand *cand, int cap)
{
	int n = 0;

	for (int i = 0; i < rt->n_backends && n < cap; i++) {
		struct rt_backend *rb = &rt->backends[i];
		struct sched_view v;
		int qi;

		if (!rb->started || !rb->be.up)
			continue;
		qi = sched_find(&rb->sched, r->model);
		if (qi < 0)
			continue;
		sched_view(&rb->sched, qi, r->rows, r->priority, now, &v);
		cand[n] = (struct router_cand){ .id = i, .qi = qi, .cost = rb->be.conf.cost,
						.queued = v.queued, .full = v.full,
						.wait_ns = v.wait_ns, .exec_ns = v.exec_ns };
		n++;
	}
	return n;
}

/* Seconds until a retry may succeed: the shortest predicted wait, at least 1. */
static uint32_t rt_retry_after(const struct router_cand *cand, int n)
{
	uint64_t best = UINT64_MAX;

	for (int i = 0; i < n; i++)
		if (cand[i].wait_ns + cand[i].exec_ns < best)
			best = cand[i].wait_ns + cand[i].exec_ns;
	best = best == UINT64_MAX ? 1 : (best + 999999999ull) / 1000000000ull;
	return best < 1 ? 1 : best > 60 ? 60 : (uint32_t)best;
}

static int rt_reject(struct infer_req *r, enum route_result why, const struct router_cand *cand,
		     int n)
{
	uint64_t objective = r->deadline_ns ? r->deadline_ns - r->arrival_ns : 0;

	if (why == ROUTE_NO_BACKEND) {
		snprintf(r->errmsg, sizeof(r->errmsg), "no backend available for model %s",
			 r->model->name);
		return 503;
	}
	r->retry_after_s = rt_retry_after(cand, n);
	if (why == ROUTE_LATE)
		snprintf(r->errmsg, sizeof(r->errmsg),
			 "no backend can answer model %s within its objective of %llu us",
			 r->model->name, (unsigned long long)(objective / 1000));
	else if (why == ROUTE_SHED)
		snprintf(r->errmsg, sizeof(r->errmsg),
			 "shed under load: priority %d of model %s is sheddable", r->priority,
			 r->model->name);
	else
		snprintf(r->errmsg, sizeof(r->errmsg), "queue for model %s is full", r->model->name);
	return 429;
}

int rt_submit(struct runtime *rt, struct infer_req *r, uint64_t now)
{
	const struct config *c = rt->cfg;
	const struct model_conf *mc = rt_model_conf(rt, r->model);
	struct router_cand cand[32];
	struct route_conf rc = { .policy = c->routing.policy,
				 .margin_ns = (uint64_t)c->routing.margin_us * 1000 };
	struct route_req rq = { .now_ns = now, .deadline_ns = r->deadline_ns };
	unsigned rr = atomic_fetch_add_explicit(&rt->rr, 1, memory_order_relaxed);
	uint64_t objective;
	enum route_result why;
	int n, pick = -1, rc2;

	if (r->priority <= 0)
		r->priority = mc->priority;
	if (r->priority > c->routing.priority_levels)
		r->priority = c->routing.priority_levels;
	r->sheddable = r->priority > c->routing.priority_levels - c->routing.sheddable_levels;
	r->met = &rt->none_met[rt_model_index(rt, r->model)];
	objective = r->deadline_ns ? r->deadline_ns - r->arrival_ns : (uint64_t)mc->slo_ms * 1000000;
	rq.sheddable = r->sheddable;
	rq.saturation_ns = (uint64_t)(c->routing.shed_wait_fraction * (double)objective);
	n = rt_candidates(rt, r, now, cand, 32);
	why = router_pick(&rc, &rq, cand, n, &rr, &pick);
	if (why != ROUTE_OK)
		return rt_reject(r, why, cand, n);
	rc2 = sched_enqueue(&rt->backends[cand[pick].id].sched, cand[pick].qi, r, now);
	if (rc2 == 0)
		return 0;
	if (rc2 == -E2BIG) {
		snprintf(r->errmsg, sizeof(r->errmsg),
			 "batch of %d rows exceeds the model's max batch of %d", r->rows,
			 rt->backends[cand[pick].id].sched.qs[cand[pick].qi].max_batch);
		return 400;
	}
	if (rc2 == -EAGAIN)
		return rt_reject(r, ROUTE_FULL, cand, n);
	snprintf(r->errmsg, sizeof(r->errmsg), "gateway is shutting down");
	return 503;
}

int rt_collect_metrics(const struct runtime *rt, struct met_series **out, int cap)
{
	int n = 0;

	for (int i = 0; i < rt->n_models && n < cap; i++)
		out[n++] = &rt->none_met[i];
	for (int b = 0; b < rt->n_backends; b++) {
		const struct rt_backend *rb = &rt->backends[b];

		for (int i = 0; rb->met && i < rb->be.conf.n_models && n < cap; i++)
			out[n++] = &rb->met[i];
	}
	return n;
}

void rt_stop(struct runtime *rt)
{
	for (int i = 0; i < rt->n_backends; i++) {
		struct rt_backend *rb = &rt->backends[i];

		if (rb->started)
			sched_be_stop(&rb->sched);
		rb->started = false;
	}
}

void rt_destroy(struct runtime *rt)
{
	if (!rt)
		return;
	rt_stop(rt);
	for (int i = 0; i < rt->n_backends; i++) {
		struct rt_backend *rb = &rt->backends[i];

		if (rb->be.ops)
			rb->be.ops->close(&rb->be);
		free(rb->met);
	}
	free(rt->backends);
	for (int i = 0; i < rt->n_models; i++)
		model_free(rt->models[i]);
	free(rt->models);
	free(rt->mconf);
	free(rt->none_met);
	free(rt);
}
