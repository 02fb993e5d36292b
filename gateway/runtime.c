/* runtime.c - see runtime.h. */
#include "runtime.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "infer.h"
#include "log.h"
#include "model/model.h"
#include "router.h"
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

struct model *rt_find_model(const struct runtime *rt, const char *name)
{
	for (int i = 0; i < rt->n_models; i++)
		if (strcmp(rt->models[i]->name, name) == 0)
			return rt->models[i];
	return NULL;
}

static int rt_load_models(struct runtime *rt, char **err)
{
	const struct config *c = rt->cfg;

	rt->models = calloc(c->n_models, sizeof(*rt->models));
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
		rt->models[rt->n_models++] = m;
		log_info("model=%s path=%s in=%d out=%d layers=%d max_batch_size=%d msg=\"loaded\"",
			 m->name, c->models[i].path, m->in_dim, m->out_dim, m->n_layers,
			 m->max_batch_size);
	}
	return 0;
}

/* Start the scheduler of an open backend over the models it hosts. */
static int rt_start_sched(struct runtime *rt, struct rt_backend *rb)
{
	const struct backend_conf *bc = &rb->be.conf;
	const struct model **models = calloc(bc->n_models, sizeof(*models));
	int *mb = calloc(bc->n_models, sizeof(int)), *mq = calloc(bc->n_models, sizeof(int));
	uint32_t *delay = calloc(bc->n_models, sizeof(uint32_t));
	int rc;

	for (int i = 0; i < bc->n_models; i++) {
		const struct model_conf *mc = cfg_find_model(rt->cfg, bc->models[i]);

		models[i] = rt_find_model(rt, bc->models[i]);
		mb[i] = mc->max_batch;
		delay[i] = mc->max_queue_delay_us;
		mq[i] = mc->max_queue;
	}
	rc = sched_be_start(&rb->sched, &rb->be, models, mb, delay, mq, bc->n_models);
	free(models);
	free(mb);
	free(mq);
	free(delay);
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
	log_info("backend=%s kind=%s workers=%d threads_per_worker=%d models=%d msg=\"up\"",
		 bc->name, rb->be.ops->kind, bc->slots, bc->threads_per_slot, bc->n_models);
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

int rt_submit(struct runtime *rt, struct infer_req *r, uint64_t now)
{
	struct router_cand cand[16];
	int n = 0, pick, rc;

	for (int i = 0; i < rt->n_backends && n < (int)(sizeof(cand) / sizeof(cand[0])); i++) {
		struct rt_backend *rb = &rt->backends[i];
		int qi;

		if (!rb->started || !rb->be.up)
			continue;
		qi = sched_find(&rb->sched, r->model);
		if (qi < 0)
			continue;
		cand[n].id = i;
		cand[n].qi = qi;
		cand[n].queued = atomic_load_explicit(&rb->sched.qs[qi].depth, memory_order_relaxed);
		cand[n].cost = rb->be.conf.cost;
		n++;
	}
	pick = router_pick(cand, n);
	if (pick < 0) {
		snprintf(r->errmsg, sizeof(r->errmsg), "no backend available for model %s",
			 r->model->name);
		return 503;
	}
	rc = sched_enqueue(&rt->backends[cand[pick].id].sched, cand[pick].qi, r, now);
	if (rc == 0)
		return 0;
	if (rc == -E2BIG) {
		snprintf(r->errmsg, sizeof(r->errmsg),
			 "batch of %d rows exceeds the model's max batch of %d", r->rows,
			 rt->backends[cand[pick].id].sched.qs[cand[pick].qi].pol.max_batch);
		return 400;
	}
	if (rc == -EAGAIN) {
		snprintf(r->errmsg, sizeof(r->errmsg), "queue for model %s is full", r->model->name);
		return 429;
	}
	snprintf(r->errmsg, sizeof(r->errmsg), "gateway is shutting down");
	return 503;
}

void rt_destroy(struct runtime *rt)
{
	if (!rt)
		return;
	for (int i = 0; i < rt->n_backends; i++) {
		struct rt_backend *rb = &rt->backends[i];

		if (rb->started)
			sched_be_stop(&rb->sched);
		if (rb->be.ops)
			rb->be.ops->close(&rb->be);
	}
	free(rt->backends);
	for (int i = 0; i < rt->n_models; i++)
		model_free(rt->models[i]);
	free(rt->models);
	free(rt);
}
