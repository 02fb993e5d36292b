/* runtime.c - see runtime.h. */
#define _GNU_SOURCE	/* pthread_setname_np */
#include "runtime.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "infer.h"
#include "log.h"
#include "model/model.h"
#include "policy.h"
#include "router.h"
#include "util.h"
#include "model/ytree.h"

/* Variants a model may have: FP32 (the model itself) and INT8. */
#define RT_VARIANTS 2

/* ---- shared models ---- */

static void rt_model_sig(const char *dir, const struct model *m, ino_t ino[2], off_t size[2],
			 int64_t mtime[2])
{
	char path[4096];
	struct stat st;
	const char *files[2];

	snprintf(path, sizeof(path), "%s/model.yaml", dir);
	files[0] = path;
	files[1] = m && m->weights ? m->weights->path : "";
	for (int i = 0; i < 2; i++) {
		memset(&st, 0, sizeof(st));
		stat(files[i], &st);
		ino[i] = st.st_ino;
		size[i] = st.st_size;
		mtime[i] = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	}
}

/* rm is what name at path would load now (a variant: its model's name, its path). */
static bool rt_model_unchanged(const struct rt_model *rm, const char *name, const char *path)
{
	ino_t ino[2];
	off_t size[2];
	int64_t mtime[2];

	if (strcmp(rm->name, name) || strcmp(rm->path, path))
		return false;
	rt_model_sig(rm->path, rm->m, ino, size, mtime);
	return !memcmp(ino, rm->sig_ino, sizeof(ino)) && !memcmp(size, rm->sig_size, sizeof(size)) &&
	       !memcmp(mtime, rm->sig_mtime, sizeof(mtime));
}

/* Load the model at path as name (where: the config key, for errors). */
static struct rt_model *rt_model_load(const char *name, const char *path, const char *where,
				      char **err)
{
	struct rt_model *rm;
	char *merr = NULL;
	struct model *m = model_load(path, &merr);

	if (!m) {
		*err = yt_strdupf("%s (model %s): %s", where ? where : "models", name, merr);
		free(merr);
		return NULL;
	}
	rm = calloc(1, sizeof(*rm));
	atomic_init(&rm->refs, 1);
	/* The config's name is the one clients use (a variant's too). */
	rm->yaml_name = m->name;
	m->name = strdup(name);
	rm->m = m;
	rm->path = strdup(path);
	rm->name = strdup(name);
	rt_model_sig(path, m, rm->sig_ino, rm->sig_size, rm->sig_mtime);
	log_info("model=%s variant=%s path=%s in=%d out=%d layers=%d max_batch_size=%d "
		 "msg=\"loaded\"", m->name, model_variant_name(m->variant), path, m->in_dim,
		 m->out_dim, m->n_layers, m->max_batch_size);
	return rm;
}

static void rt_model_put(struct rt_model *rm)
{
	if (!rm || atomic_fetch_sub(&rm->refs, 1) != 1)
		return;
	log_info("model=%s variant=%s msg=\"unloaded\"", rm->name,
		 model_variant_name(rm->m->variant));
	model_free(rm->m);
	free(rm->path);
	free(rm->name);
	free(rm->yaml_name);
	free(rm);
}

/* ---- shared backends ---- */

/* Every started backend, for shutdown: an intrusive list, so tracking
 * never fails whatever the number of backends. */
static pthread_mutex_t rt_live_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rt_backend *rt_live;

static void rt_live_add(struct rt_backend *rb)
{
	pthread_mutex_lock(&rt_live_lock);
	rb->live_prev = NULL;
	rb->live_next = rt_live;
	if (rt_live)
		rt_live->live_prev = rb;
	rt_live = rb;
	rb->live = true;
	pthread_mutex_unlock(&rt_live_lock);
}

static void rt_live_del(struct rt_backend *rb)
{
	pthread_mutex_lock(&rt_live_lock);
	if (rb->live) {
		if (rb->live_prev)
			rb->live_prev->live_next = rb->live_next;
		else
			rt_live = rb->live_next;
		if (rb->live_next)
			rb->live_next->live_prev = rb->live_prev;
		rb->live_prev = rb->live_next = NULL;
		rb->live = false;
	}
	pthread_mutex_unlock(&rt_live_lock);
}

int rt_live_count(void)
{
	int n = 0;

	pthread_mutex_lock(&rt_live_lock);
	for (struct rt_backend *rb = rt_live; rb; rb = rb->live_next)
		n++;
	pthread_mutex_unlock(&rt_live_lock);
	return n;
}

void rt_stop_all(void)
{
	pthread_mutex_lock(&rt_live_lock);
	for (struct rt_backend *rb = rt_live; rb; rb = rb->live_next)
		if (rb->started)
			sched_be_abort(&rb->sched);	/* queued: 503, never run */
	pthread_mutex_unlock(&rt_live_lock);
}

static void rt_backend_put(struct rt_backend *rb)
{
	if (!rb || atomic_fetch_sub(&rb->refs, 1) != 1)
		return;
	rt_live_del(rb);
	if (rb->started)
		sched_be_stop(&rb->sched);	/* drains what is queued */
	if (rb->be.ops)
		rb->be.ops->close(&rb->be);
	log_info("backend=%s msg=\"closed\"", rb->be.conf.name);
	for (int i = 0; i < rb->n_models; i++)
		rt_model_put(rb->models[i]);
	for (int i = 0; i < rb->n_refused; i++)
		rt_model_put(rb->refused[i]);
	free(rb->models);
	free(rb->refused);
	cfg_backend_free(&rb->be.conf);
	free(rb);
}

/*
 * Calibration: the service-time warm start of a model on a backend, when
 * the config gives none.  It runs through the normal dispatch as internal
 * requests (r->internal, no sink: on_done runs on the completing thread), one
 * after the other: batches of 1 and of max rows, three of each, best of
 * each kept, a + b*n fitted.  The control thread waits for it a bounded
 * time (RT_CALIB_WAIT_MS per backend); a backend slower than that (an
 * unreachable agent) stalls neither a reload nor SIGTERM: the chain
 * finishes, or is answered by the scheduler's stop, on its own, and frees
 * itself.
 */
#define RT_CALIB_STEPS 6
#define RT_CALIB_WAIT_MS 3000

struct rt_calib {
	struct infer_req r;
	struct sched_be *s;
	int qi, max_rows, step;
	uint64_t t1, tn;
	float *in, *out;
	struct rt_calib_wait *w;	/* the control thread's, while it waits */
};

struct rt_calib_wait {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int pending;			/* chains not finished */
	int refs;			/* the waiter + every chain not finished */
};

static void rt_calib_wait_put(struct rt_calib_wait *w)
{
	bool last;

	pthread_mutex_lock(&w->mu);
	last = --w->refs == 0;
	pthread_mutex_unlock(&w->mu);
	if (last) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w);
	}
}

/* Queue the chain's next batch; false when it cannot (stopping). */
static bool rt_calib_next(struct rt_calib *c)
{
	struct infer_req *r = &c->r;

	r->rows = c->step % 2 ? c->max_rows : 1;
	r->status = 0;
	r->errmsg[0] = 0;
	r->priority = 1;
	r->arrival_ns = now_ns();
	r->exec_start_ns = r->exec_end_ns = 0;
	atomic_store(&r->state, REQ_NEW);
	return sched_enqueue(c->s, c->qi, r, r->arrival_ns) == 0;
}

static void rt_calib_done(struct infer_req *r)
{
	struct rt_calib *c = (struct rt_calib *)r;
	uint64_t t = r->exec_end_ns - r->exec_start_ns;

	if (!r->status && r->exec_end_ns > r->exec_start_ns) {
		uint64_t *best = c->step % 2 ? &c->tn : &c->t1;

		if (t < *best)
			*best = t;
	}
	if (!r->status && ++c->step < RT_CALIB_STEPS && rt_calib_next(c))
		return;
	if (c->t1 != UINT64_MAX && c->tn != UINT64_MAX) {
		double b = c->max_rows > 1 && c->tn > c->t1 ?
			   (double)(c->tn - c->t1) / (c->max_rows - 1) : 0;

		sched_set_warm(c->s, c->qi, (double)c->t1 - b, b);
		/* A variant's (INT8) queue says so first: its own service time. */
		log_info("%s%s%sbackend=%s model=%s batch1_us=%.1f batch%d_us=%.1f msg=\"calibrated "
			 "service time\"", r->model->variant ? "variant=" : "",
			 r->model->variant ? model_variant_name(r->model->variant) : "",
			 r->model->variant ? " " : "", c->s->be->conf.name, r->model->name,
			 c->t1 / 1e3, c->max_rows, c->tn / 1e3);
	}
	if (c->w) {
		pthread_mutex_lock(&c->w->mu);
		c->w->pending--;
		pthread_cond_broadcast(&c->w->cv);
		pthread_mutex_unlock(&c->w->mu);
		rt_calib_wait_put(c->w);
	}
	free(c->in);
	free(c->out);
	free(c);
}

/* Start the calibration chain of queue qi (max_rows: its batch limit). */
static int rt_calib_start(struct sched_be *s, int qi, const struct model *m, int max_rows,
			  struct rt_calib_wait *w)
{
	struct rt_calib *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->s = s;
	c->qi = qi;
	c->max_rows = max_rows;
	c->t1 = c->tn = UINT64_MAX;
	c->in = calloc((size_t)max_rows * m->in_dim, sizeof(float));
	c->out = calloc((size_t)max_rows * m->out_dim, sizeof(float));
	c->r.model = m;
	c->r.input = c->in;
	c->r.output = c->out;
	c->r.on_done = rt_calib_done;
	c->r.internal = true;
	c->w = w;
	if (!c->in || !c->out || !rt_calib_next(c)) {
		free(c->in);
		free(c->out);
		free(c);
		return -ENOMEM;
	}
	return 0;
}

/*
 * Whether queue model m of models[] entry mc starts from the configured
 * service_time_us.  That is the FP32 model's: an INT8 variant is always
 * calibrated, since predicting it as slow as FP32 would keep the router
 * from ever choosing it for speed (and so from ever learning it).
 */
static bool rt_warm_configured(const struct model_conf *mc, const struct model *m)
{
	return m->variant == VARIANT_FP32 && (mc->svc_base_us > 0 || mc->svc_per_row_us > 0);
}

/* Calibrate the queues that have no configured warm start, waiting for
 * them at most RT_CALIB_WAIT_MS. */
static void rt_calibrate(const struct config *cfg, struct rt_backend *rb)
{
	struct rt_calib_wait *w = calloc(1, sizeof(*w));
	struct timespec ts;

	if (!w)
		return;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->refs = 1;
	for (int i = 0; i < rb->n_models; i++) {
		const struct model_conf *mc = cfg_find_model(cfg, rb->models[i]->name);
		const struct model *m = rb->models[i]->m;

		if (rt_warm_configured(mc, m))
			continue;
		pthread_mutex_lock(&w->mu);
		w->pending++;
		w->refs++;
		pthread_mutex_unlock(&w->mu);
		int rows = sched_batch_limit(&rb->be, m, mc->max_batch);

		if (rows > m->max_batch_size)	/* the most one request may have */
			rows = m->max_batch_size;
		if (rt_calib_start(&rb->sched, i, m, rows, w)) {
			pthread_mutex_lock(&w->mu);
			w->pending--;
			w->refs--;
			pthread_mutex_unlock(&w->mu);
		}
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += RT_CALIB_WAIT_MS / 1000;
	ts.tv_nsec += (RT_CALIB_WAIT_MS % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->mu);
	while (w->pending > 0)
		if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) == ETIMEDOUT)
			break;
	if (w->pending > 0)
		log_warn("backend=%s msg=\"service time calibration still running after %d ms; "
			 "starting without it\"", rb->be.conf.name, RT_CALIB_WAIT_MS);
	pthread_mutex_unlock(&w->mu);
	rt_calib_wait_put(w);
}

/*
 * The scheduler settings of model mc (m) on backend be, from config c, its
 * batching from three places, the first that sets a field wins:
 * bc->batching[m] (the (backend, model) overrides: bc is the backends[]
 * entry of the config being applied), the backend kind's defaults
 * (be_caps.batching_defaults: a GPU's max batch, preferred sizes in
 * multiples of 8, a short delay), then models[] (mc).
 */
void rt_queue_conf(const struct config *c, const struct model_conf *mc, const struct model *m,
		   const struct backend_conf *bc, const struct backend *be,
		   struct sched_q_conf *qc)
{
	struct be_caps caps = { 0 };

	*qc = (struct sched_q_conf){
		.model = m, .max_batch = mc->max_batch, .delay_us = mc->max_queue_delay_us,
		.max_queue = mc->max_queue, .priority_levels = c->routing.priority_levels,
		.n_preferred = mc->n_preferred, .adaptive = mc->adaptive,
		.objective_ns = (uint64_t)mc->slo_ms * 1000000,
		.margin_ns = (uint64_t)c->routing.margin_us * 1000,
		.drop_hopeless = c->routing.drop_hopeless,
		.probe_ns = (uint64_t)c->routing.probe_ms * 1000000,
		/* A model with variants labels each variant's series. */
		.met = met_lookup_variant(bc->name, m->name, mc->int8_path ?
					  model_variant_name(m->variant) : NULL),
	};
	memcpy(qc->preferred, mc->preferred, sizeof(qc->preferred));
	if (be && be->ops && be->ops->caps)
		be->ops->caps(be, m, &caps);
	if (caps.batching_defaults) {
		qc->max_batch = 0;	/* sched_batch_limit: the backend's (caps) */
		qc->n_preferred = 0;	/* the scheduler takes caps.preferred */
		qc->delay_us = caps.delay_us;
	}
	for (int i = 0; i < bc->n_batching; i++) {
		const struct be_batching *bb = &bc->batching[i];

		if (strcmp(bb->model, m->name))
			continue;
		if (bb->max_batch > 0)
			qc->max_batch = bb->max_batch;
		if (bb->n_preferred > 0) {
			qc->n_preferred = bb->n_preferred;
			memcpy(qc->preferred, bb->preferred, sizeof(bb->preferred));
		}
		if (bb->delay_us >= 0)
			qc->delay_us = (uint32_t)bb->delay_us;
	}
}

/* Start the scheduler of an open backend over the models it hosts, with
 * the configured service-time warm starts (the others: rt_calibrate). */
static int rt_start_sched(const struct config *c, struct rt_backend *rb)
{
	struct sched_q_conf *qc = calloc(rb->n_models, sizeof(*qc));
	int rc;

	if (!qc)
		return -ENOMEM;
	for (int i = 0; i < rb->n_models; i++) {
		const struct model_conf *mc = cfg_find_model(c, rb->models[i]->name);

		rt_queue_conf(c, mc, rb->models[i]->m, &rb->be.conf, &rb->be, &qc[i]);
		if (rt_warm_configured(mc, rb->models[i]->m)) {
			qc[i].warm_a_ns = mc->svc_base_us * 1000;
			qc[i].warm_b_ns = mc->svc_per_row_us * 1000;
		}
	}
	rc = sched_be_start(&rb->sched, &rb->be, qc, rb->n_models);
	free(qc);
	if (rc == 0)
		rt_calibrate(c, rb);
	return rc;
}

/*
 * Load the variants vars[0..n_var) on rb (open, its models loaded): the
 * ones it takes are hosted after its models, the others (a GPU whose
 * cuBLASLt cannot run an INT8 layer) are kept as refused, so a reload
 * sees the same request; refs taken either way.  A variant never takes a backend down.
 */
static void rt_backend_variants(struct rt_backend *rb, struct rt_model **vars, int n_var)
{
	for (int i = 0; i < n_var; i++) {
		char *err = NULL;

		atomic_fetch_add(&vars[i]->refs, 1);
		if (rb->be.ops->load_model(&rb->be, vars[i]->m, &err) == 0) {
			rb->models[rb->n_models++] = vars[i];
			continue;
		}
		log_info("backend=%s model=%s variant=%s msg=\"variant not hosted here: %s\"",
			 rb->be.conf.name, vars[i]->name, model_variant_name(vars[i]->m->variant),
			 err ? err : "load failed");
		free(err);
		rb->refused[rb->n_refused++] = vars[i];
	}
}

/* Open one backend over models and the variants vars[0..n_var) (refs
 * taken); failures leave it down, never fatal. */
static struct rt_backend *rt_backend_open(const struct config *c, const struct backend_conf *bc,
					  struct rt_model **models, struct rt_model **vars,
					  int n_var)
{
	struct rt_backend *rb = calloc(1, sizeof(*rb));
	char *err = NULL;

	atomic_init(&rb->refs, 1);
	cfg_backend_dup(&rb->be.conf, bc);
	rb->n_models = bc->n_models;
	rb->models = calloc(bc->n_models + n_var + 1, sizeof(*rb->models));
	rb->refused = calloc(n_var + 1, sizeof(*rb->refused));
	for (int i = 0; i < bc->n_models; i++) {
		rb->models[i] = models[i];
		atomic_fetch_add(&models[i]->refs, 1);
	}
	rb->be.ops = be_kind_ops(be_kind_of(bc->kind), &err);
	if (!rb->be.ops)
		goto down;
	if (rb->be.ops->open(&rb->be, &rb->be.conf, &err))
		goto down;
	for (int i = 0; i < bc->n_models; i++)
		if (rb->be.ops->load_model(&rb->be, models[i]->m, &err))
			goto down_close;
	rt_backend_variants(rb, vars, n_var);
	if (rt_start_sched(c, rb))
		goto down_close;
	rb->started = true;
	rt_live_add(rb);
	log_info("backend=%s kind=%s workers=%d threads_per_worker=%d credits=%d models=%d "
		 "msg=\"%s\"", bc->name, rb->be.ops->kind, bc->slots, bc->threads_per_slot,
		 rb->be.credits, rb->n_models, be_state_get(&rb->be) == BE_UP ? "up" :
		 "started, not up yet (its own log line says why)");
	return rb;
down_close:
	rb->be.ops->close(&rb->be);
down:
	log_error("backend=%s msg=\"left down: %s\"", bc->name, err ? err : "open failed");
	snprintf(rb->down_reason, sizeof(rb->down_reason), "%s", err ? err : "open failed");
	free(err);
	rb->be.ops = NULL;
	return rb;
}

/* ---- snapshots ---- */

static int rt_index(const struct runtime *rt, const struct model *m)
{
	for (int i = 0; i < rt->n_models; i++)
		if (rt->models[i]->m == m)
			return i;
	return -1;
}

struct model *rt_find_model(const struct runtime *rt, const char *name)
{
	for (int i = 0; i < rt->n_models; i++)
		if (util_streq(rt->models[i]->name, name))
			return rt->models[i]->m;
	return NULL;
}

const struct model_conf *rt_model_conf(const struct runtime *rt, const struct model *m)
{
	int i = rt_index(rt, m);

	return i < 0 ? NULL : rt->mconf[i];
}

struct met_series *rt_none_series(const struct runtime *rt, const struct model *m)
{
	int i = rt_index(rt, m);

	return i < 0 ? NULL : rt->none_met[i];
}

void rt_drain(struct rt_backend *rb)
{
	atomic_store(&rb->draining, true);
	be_state_bump();
}

struct rt_backend *rt_find_backend(const struct runtime *rt, const char *name)
{
	for (int i = 0; i < rt->n_backends; i++)
		if (strcmp(rt->backends[i]->be.conf.name, name) == 0)
			return rt->backends[i];
	return NULL;
}

/* Carry over prev's model for mc when unchanged, else load it. */
static struct rt_model *rt_take_model(const struct runtime *prev, const struct model_conf *mc,
				      char **err)
{
	for (int k = 0; prev && k < prev->n_models; k++)
		if (rt_model_unchanged(prev->models[k], mc->name, mc->path)) {
			atomic_fetch_add(&prev->models[k]->refs, 1);
			return prev->models[k];
		}
	return rt_model_load(mc->name, mc->path, mc->where, err);
}

/*
 * mc's INT8 variant v against its model base: an INT8 model made from it
 * (variant_of names base's model.yaml name or the config's), answering the
 * same shapes.  0, or -EINVAL with *err naming models[i].variants.int8.
 */
static int rt_variant_check(const struct model_conf *mc, const struct rt_model *base,
			    const struct rt_model *v, char **err)
{
	const struct model *b = base->m, *m = v->m;

	if (b->variant != VARIANT_FP32)
		*err = yt_strdupf("%s (model %s): model.yaml says variant %s; a model with "
				  "variants needs its fp32 variant at path", mc->where, mc->name,
				  model_variant_name(b->variant));
	else if (m->variant != VARIANT_INT8)
		*err = yt_strdupf("%s (model %s): %s/model.yaml says variant %s: expected an INT8 "
				  "model (infergw-quantize's output)", mc->int8_where, mc->name,
				  mc->int8_path, model_variant_name(m->variant));
	else if (!m->variant_of || (strcmp(m->variant_of, base->yaml_name) &&
				    strcmp(m->variant_of, mc->name)))
		*err = yt_strdupf("%s (model %s): %s/model.yaml variant_of is %s, expected %s (the "
				  "model it was quantized from)", mc->int8_where, mc->name,
				  mc->int8_path, m->variant_of ? m->variant_of : "absent",
				  base->yaml_name);
	else if (m->in_dim != b->in_dim || m->out_dim != b->out_dim ||
		 m->max_batch_size != b->max_batch_size)
		*err = yt_strdupf("%s (model %s): the INT8 variant has in %d, out %d, "
				  "max_batch_size %d; the model in %d, out %d, max_batch_size %d: "
				  "they must match", mc->int8_where, mc->name, m->in_dim, m->out_dim,
				  m->max_batch_size, b->in_dim, b->out_dim, b->max_batch_size);
	else
		return 0;
	return -EINVAL;
}

/* Carry over prev's INT8 variant of mc when unchanged, else load it; checked
 * against its model base.  NULL with *err on failure. */
static struct rt_model *rt_take_int8(const struct runtime *prev, const struct model_conf *mc,
				     const struct rt_model *base, char **err)
{
	struct rt_model *v = NULL;

	for (int k = 0; prev && k < prev->n_models && !v; k++)
		if (prev->int8[k] && rt_model_unchanged(prev->int8[k], mc->name, mc->int8_path)) {
			v = prev->int8[k];
			atomic_fetch_add(&v->refs, 1);
		}
	if (!v && !(v = rt_model_load(mc->name, mc->int8_path, mc->int8_where, err)))
		return NULL;
	if (rt_variant_check(mc, base, v, err)) {
		rt_model_put(v);
		return NULL;
	}
	return v;
}

/*
 * What backend bc should host: its models into models[] (as named), and
 * the INT8 variants of those that have one into vars[]; returns their
 * count.  A remote backend gets none: its agent's models are matched by
 * name, and the agent serves what its own config loads.
 */
static int rt_backend_wants(const struct runtime *rt, const struct backend_conf *bc,
			    struct rt_model **models, struct rt_model **vars)
{
	int n = 0;

	for (int i = 0; i < bc->n_models; i++) {
		int mi = -1;

		for (int k = 0; k < rt->n_models && mi < 0; k++)
			if (!strcmp(rt->models[k]->name, bc->models[i]))
				mi = k;
		models[i] = mi >= 0 ? rt->models[mi] : NULL;
		if (mi >= 0 && rt->int8[mi] && bc->kind != BE_REMOTE)
			vars[n++] = rt->int8[mi];
	}
	return n;
}

/* old (hosting n_base models first) was asked for exactly vars[0..n_var),
 * in order: the ones it hosts after its models, the others refused. */
static bool rt_same_variants(const struct rt_backend *old, int n_base, struct rt_model **vars,
			     int n_var)
{
	int h = n_base, r = 0;

	for (int i = 0; i < n_var; i++) {
		if (h < old->n_models && old->models[h] == vars[i])
			h++;
		else if (r < old->n_refused && old->refused[r] == vars[i])
			r++;
		else
			return false;
	}
	return h == old->n_models && r == old->n_refused;
}

/* A carried-over backend's new settings for queue qi, kept until publish. */
struct rt_pending {
	struct rt_backend *rb;
	int qi;
	struct sched_q_conf qc;
	struct rt_pending *next;
};

static void rt_defer_update(struct runtime *rt, struct rt_backend *rb, int qi,
			    const struct backend_conf *bc, const struct model_conf *mc,
			    const struct model *m)
{
	struct rt_pending *p = calloc(1, sizeof(*p));

	if (!p)
		return;		/* keeps its old settings */
	p->rb = rb;
	p->qi = qi;
	rt_queue_conf(rt->cfg, mc, m, bc, &rb->be, &p->qc);
	p->next = rt->pending;
	rt->pending = p;
}

/* Apply (or, with apply false, drop) rt's pending queue settings. */
static void rt_apply_pending(struct runtime *rt, bool apply)
{
	struct rt_pending *p, *next;

	for (p = rt->pending; p; p = next) {
		next = p->next;
		if (apply)
			sched_update(&p->rb->sched, p->qi, &p->qc);
		free(p);
	}
	rt->pending = NULL;
}

/*
 * Carry over prev's backend when its settings and hosted model objects are
 * the same (its new queue settings wait for rt_publish), else open anew.
 */
static struct rt_backend *rt_take_backend(struct runtime *rt, const struct runtime *prev,
					  const struct backend_conf *bc)
{
	/* As many as the backend hosts: the default backend hosts every model. */
	struct rt_model **models = calloc(2 * bc->n_models + 1, sizeof(*models));
	struct rt_model **vars = models + bc->n_models;
	struct rt_backend *rb = NULL;
	int n_var;

	if (!models)
		return NULL;
	n_var = rt_backend_wants(rt, bc, models, vars);
	for (int k = 0; prev && k < prev->n_backends && !rb; k++) {
		struct rt_backend *old = prev->backends[k];
		bool same = old->started && cfg_backend_same(&old->be.conf, bc) &&
			    !atomic_load(&old->draining) && old->n_models >= bc->n_models;

		for (int i = 0; same && i < bc->n_models; i++)
			same = old->models[i] == models[i];
		if (!same || !rt_same_variants(old, bc->n_models, vars, n_var))
			continue;
		for (int i = 0; i < old->n_models; i++)
			rt_defer_update(rt, old, i, bc, cfg_find_model(rt->cfg, old->models[i]->name),
					old->models[i]->m);
		atomic_fetch_add(&old->refs, 1);
		rb = old;
	}
	if (!rb)
		rb = rt_backend_open(rt->cfg, bc, models, vars, n_var);
	free(models);
	return rb;
}

/* The net layer's TLS context operations (rt_tls_ops); NULL: no TLS. */
static const struct rt_tls_ops *rt_tls;

static void rt_destroy(struct runtime *rt)
{
	rt_apply_pending(rt, false);
	for (int i = 0; i < rt->n_backends; i++)
		rt_backend_put(rt->backends[i]);
	for (int i = 0; i < rt->n_models; i++) {
		rt_model_put(rt->models[i]);
		if (rt->int8)
			rt_model_put(rt->int8[i]);
	}
	free(rt->backends);
	free(rt->models);
	free(rt->int8);
	free(rt->mconf);
	free(rt->none_met);
	free(rt->n_hosts);
	free(rt->hosts);
	if (rt->tls)
		rt_tls->put(rt->tls);
	cfg_free(rt->cfg);
	free(rt);
}

void rt_tls_ops(const struct rt_tls_ops *ops)
{
	rt_tls = ops;
}

/* rt->tls from listen.tls; see rt_build for why prev decides on or off. */
static int rt_tls_take(struct runtime *rt, const struct runtime *prev, char **err)
{
	const struct tls_conf *tc = &rt->cfg->listen.tls;

	if (!rt_tls)
		return 0;
	if (tc->certificate && rt_tls->make(tc, &rt->tls, err))
		return -EINVAL;
	if (prev && !prev->tls) {
		if (rt->tls)
			rt_tls->put(rt->tls);	/* started plain: stays plain */
		rt->tls = NULL;
	} else if (prev && !rt->tls) {
		rt->tls = rt_tls->ref(prev->tls);	/* started TLS: keeps serving it */
	}
	return 0;
}

/* Backends log through the gateway's logger (its format and level). */
static void rt_be_log(int level, const char *line)
{
	log_msg((enum log_level)level, "%s", line);
}

/* rt->hosts: for each model, the started backends with a queue for it or
 * its INT8 variant.  0 or -ENOMEM. */
static int rt_index_hosts(struct runtime *rt)
{
	rt->n_hosts = calloc((size_t)rt->n_models + 1, sizeof(*rt->n_hosts));
	rt->hosts = calloc((size_t)rt->n_models * rt->n_backends + 1, sizeof(*rt->hosts));
	if (!rt->n_hosts || !rt->hosts)
		return -ENOMEM;
	for (int mi = 0; mi < rt->n_models; mi++) {
		struct rt_host *h = rt->hosts + (size_t)mi * rt->n_backends;

		for (int i = 0; i < rt->n_backends; i++) {
			struct sched_be *s = &rt->backends[i]->sched;
			int qf, q8;

			if (!rt->backends[i]->started)
				continue;	/* never usable */
			qf = sched_find(s, rt->models[mi]->m);
			q8 = rt->int8[mi] ? sched_find(s, rt->int8[mi]->m) : -1;
			if (qf >= 0 || q8 >= 0)
				h[rt->n_hosts[mi]++] = (struct rt_host){ .be = i,
					.qi = { [VARIANT_FP32] = qf, [VARIANT_INT8] = q8 } };
		}
	}
	return 0;
}

struct runtime *rt_build(struct config *cfg, const struct runtime *prev, char **err)
{
	static _Atomic uint64_t generation;
	struct runtime *rt;

	be_log_set(rt_be_log);
	/* One entry may stand for several backends (a DNS name with several
	 * agents): resolved again at every build, so a reload follows it. */
	if (cfg_expand_backends(cfg, err))
		return NULL;
	/* aligned: rr's line is its own (runtime.h) */
	rt = aligned_alloc(_Alignof(struct runtime), sizeof(*rt));
	if (!rt) {
		*err = yt_strdupf("out of memory");
		return NULL;
	}
	memset(rt, 0, sizeof(*rt));
	atomic_init(&rt->refs, 1);
	rt->generation = atomic_fetch_add(&generation, 1) + 1;
	rt->cfg = cfg;
	rt->models = calloc(cfg->n_models, sizeof(*rt->models));
	rt->mconf = calloc(cfg->n_models, sizeof(*rt->mconf));
	rt->int8 = calloc(cfg->n_models + 1, sizeof(*rt->int8));
	rt->none_met = calloc(cfg->n_models, sizeof(*rt->none_met));
	if (rt_tls_take(rt, prev, err)) {
		rt->cfg = NULL;		/* still the caller's */
		rt_destroy(rt);
		return NULL;
	}
	for (int i = 0; i < cfg->n_models; i++) {
		struct rt_model *rm = rt_take_model(prev, &cfg->models[i], err);

		if (!rm) {
			rt->cfg = NULL;		/* still the caller's */
			rt_destroy(rt);
			return NULL;
		}
		rt->mconf[i] = &cfg->models[i];
		rt->none_met[i] = met_lookup("none", rm->name);
		rt->models[rt->n_models++] = rm;
		if (cfg->models[i].int8_path &&
		    !(rt->int8[i] = rt_take_int8(prev, &cfg->models[i], rm, err))) {
			rt->cfg = NULL;		/* still the caller's */
			rt_destroy(rt);
			return NULL;
		}
	}
	rt->backends = calloc(cfg->n_backends, sizeof(*rt->backends));
	for (int i = 0; i < cfg->n_backends; i++) {
		struct rt_backend *rb = rt_take_backend(rt, prev, &cfg->backends[i]);

		if (!rb) {
			*err = yt_strdupf("backend %s: out of memory", cfg->backends[i].name);
			rt->cfg = NULL;		/* still the caller's */
			rt_destroy(rt);
			return NULL;
		}
		rt->backends[rt->n_backends++] = rb;
	}
	if (rt_index_hosts(rt)) {
		*err = yt_strdupf("out of memory");
		rt->cfg = NULL;		/* still the caller's */
		rt_destroy(rt);
		return NULL;
	}
	return rt;
}

/* ---- references, the current snapshot, the reaper ---- */

static pthread_mutex_t rt_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rt_cv = PTHREAD_COND_INITIALIZER;
static struct runtime *rt_cur;
static _Atomic uint64_t rt_gen;
/* Released, waiting for the reaper: a list through runtime.dead_next, so a
 * release never has to fall back to destroying on the caller's thread (an
 * event loop: destroying joins scheduler threads and drains queues). */
static struct runtime *rt_dead;
static uint64_t rt_n_retired;
static bool rt_reaping, rt_reaper_quit;
static pthread_t rt_reaper;

struct runtime *rt_get(struct runtime *rt)
{
	atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed);
	return rt;
}

void rt_put(struct runtime *rt)
{
	if (!rt || atomic_fetch_sub_explicit(&rt->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_lock(&rt_lock);
	if (rt_reaping) {
		rt->dead_next = rt_dead;
		rt_dead = rt;
		pthread_cond_signal(&rt_cv);
		rt = NULL;
	}
	pthread_mutex_unlock(&rt_lock);
	if (rt)
		rt_destroy(rt);		/* no reaper: startup, --check-config, tests */
}

static void *rt_reaper_main(void *arg)
{
	pthread_setname_np(pthread_self(), "igw-reaper");
	pthread_mutex_lock(&rt_lock);
	for (;;) {
		while (rt_dead) {
			struct runtime *rt = rt_dead;

			rt_dead = rt->dead_next;
			pthread_mutex_unlock(&rt_lock);
			log_info("generation=%llu msg=\"retiring configuration snapshot\"",
				 (unsigned long long)rt->generation);
			rt_destroy(rt);
			pthread_mutex_lock(&rt_lock);
			rt_n_retired++;
		}
		if (rt_reaper_quit)
			break;
		pthread_cond_wait(&rt_cv, &rt_lock);
	}
	pthread_mutex_unlock(&rt_lock);
	return NULL;
}

static void rt_failover(struct infer_req *r, struct sched_be *from, uint64_t now);

int rt_reaper_start(void)
{
	int rc;

	sched_failover(rt_failover);
	pthread_mutex_lock(&rt_lock);
	rt_reaper_quit = false;
	rt_reaping = true;
	pthread_mutex_unlock(&rt_lock);
	rc = pthread_create(&rt_reaper, NULL, rt_reaper_main, NULL);
	if (rc) {
		pthread_mutex_lock(&rt_lock);
		rt_reaping = false;
		pthread_mutex_unlock(&rt_lock);
		log_error("msg=\"cannot start the snapshot reaper: %s\"", strerror(rc));
		return -rc;
	}
	return 0;
}

void rt_reaper_stop(void)
{
	pthread_mutex_lock(&rt_lock);
	if (!rt_reaping) {
		pthread_mutex_unlock(&rt_lock);
		return;
	}
	rt_reaper_quit = true;
	pthread_cond_signal(&rt_cv);
	pthread_mutex_unlock(&rt_lock);
	pthread_join(rt_reaper, NULL);
	pthread_mutex_lock(&rt_lock);
	rt_reaping = false;
	pthread_mutex_unlock(&rt_lock);
}

uint64_t rt_retired(void)
{
	uint64_t n;

	pthread_mutex_lock(&rt_lock);
	n = rt_n_retired;
	pthread_mutex_unlock(&rt_lock);
	return n;
}

static void (*rt_hook)(void *);
static void *rt_hook_arg;

void rt_on_publish(void (*fn)(void *arg), void *arg)
{
	rt_hook = fn;
	rt_hook_arg = arg;
}

void rt_publish(struct runtime *rt)
{
	struct runtime *old;

	if (rt)
		rt_apply_pending(rt, true);	/* the previous snapshot is still current */
	pthread_mutex_lock(&rt_lock);
	old = rt_cur;
	rt_cur = rt;
	atomic_store(&rt_gen, rt ? rt->generation : 0);
	pthread_mutex_unlock(&rt_lock);
	rt_put(old);
	if (rt && rt_hook)
		rt_hook(rt_hook_arg);
}

struct runtime *rt_current(void)
{
	struct runtime *rt;

	pthread_mutex_lock(&rt_lock);
	rt = rt_cur ? rt_get(rt_cur) : NULL;
	pthread_mutex_unlock(&rt_lock);
	return rt;
}

uint64_t rt_generation(void)
{
	return atomic_load_explicit(&rt_gen, memory_order_acquire);
}

void rt_lease_drop(struct rt_lease *l)
{
	if (l->rt && l->lent)	/* each borrow out becomes a reference */
		atomic_fetch_add_explicit(&l->rt->refs, (int)l->lent, memory_order_relaxed);
	l->lent = 0;
	rt_put(l->rt);
	l->rt = NULL;
}

struct runtime *rt_lease_refresh(struct rt_lease *l)
{
	struct runtime *rt;

	if (l->rt && l->rt->generation == rt_generation())
		return l->rt;
	rt = rt_current();
	if (!rt)
		return l->rt;
	if (rt == l->rt) {	/* the same snapshot: its borrows stay borrows */
		rt_put(rt);
		return rt;
	}
	rt_lease_drop(l);
	l->rt = rt;
	return rt;
}

struct runtime *rt_lease_borrow(struct rt_lease *l)
{
	if (l->rt)
		l->lent++;
	return l->rt;
}

void rt_lease_return(struct rt_lease *l, struct runtime *rt)
{
	if (rt && rt == l->rt)
		l->lent--;
	else
		rt_put(rt);	/* lent before a refresh or a drop: a reference since */
}

/* ---- routing ---- */

static bool rt_backend_usable(const struct rt_backend *rb)
{
	return rb->started && be_state_get(&rb->be) == BE_UP && !atomic_load(&rb->draining);
}

/*
 * The variants r may run as, for model index mi: their models into vm[]
 * and their tiers (router_cand.tier: 0 preferred) into tier[]; returns the
 * count (0: the variant asked for does not exist).  parameters.variant
 * names one; else variant_policy: accurate = FP32 (tier 0), then INT8
 * (tier 1); fp32 or int8 = that one alone.
 */
static int rt_variant_set(const struct runtime *rt, int mi, int ask, const struct model **vm,
			  int *tier)
{
	const struct model *fp = rt->models[mi]->m;
	const struct model *q8 = rt->int8[mi] ? rt->int8[mi]->m : NULL;
	int pol = rt->mconf[mi]->variant_policy;

	if (ask == 1 + VARIANT_FP32 || (!ask && (!q8 || pol == CFG_VARPOL_FP32))) {
		vm[0] = fp;
		tier[0] = 0;
		return 1;
	}
	if (ask == 1 + VARIANT_INT8 || (!ask && pol == CFG_VARPOL_INT8)) {
		vm[0] = q8;
		tier[0] = 0;
		return q8 ? 1 : 0;
	}
	vm[0] = fp;
	vm[1] = q8;
	tier[0] = 0;
	tier[1] = 1;
	return 2;
}

bool rt_model_ready(const struct runtime *rt, const struct model *m)
{
	const struct model *vm[RT_VARIANTS];
	int tier[RT_VARIANTS], mi = rt_index(rt, m), n;

	if (mi < 0)
		return false;
	n = rt_variant_set(rt, mi, 0, vm, tier);
	for (int i = 0; i < rt->n_backends; i++)
		for (int v = 0; v < n; v++)
			if (rt_backend_usable(rt->backends[i]) &&
			    sched_find(&rt->backends[i]->sched, vm[v]) >= 0)
				return true;
	return false;
}

int rt_variants(const struct runtime *rt, const struct model *m, int *out,
		const struct model **int8, int *hosts)
{
	int mi = rt_index(rt, m), n = 1;
	const struct model *vm[RT_VARIANTS] = { m };

	out[0] = VARIANT_FP32;
	if (mi >= 0 && rt->int8[mi]) {
		vm[n] = rt->int8[mi]->m;
		out[n++] = VARIANT_INT8;
	}
	if (int8)
		*int8 = n > 1 ? vm[1] : NULL;
	for (int v = 0; hosts && v < n; v++) {
		hosts[v] = 0;
		for (int i = 0; i < rt->n_backends; i++)
			hosts[v] += rt->backends[i]->started &&
				    sched_find(&rt->backends[i]->sched, vm[v]) >= 0;
	}
	return n;
}

/* The candidate of backend i, queue qi for r: its published view (no
 * lock), or when there is none to use (sched_view_published) its view
 * under the backend's lock. */
static void rt_view(struct runtime *rt, const int *el, const struct infer_req *r, uint64_t now,
		    struct router_cand *c)
{
	int i = el[0], qi = el[1];
	struct sched_be *s = &rt->backends[i]->sched;

	const struct backend *be = &rt->backends[i]->be;
	struct be_load ld = { 0 };

	*c = (struct router_cand){ .id = i, .qi = qi, .cost = rt->cfg->backends[i].cost,
				   .tier = el[2] };
	if (!sched_view_published(s, qi, r->rows, r->priority, now, c))
		sched_view(s, qi, r->rows, r->priority, now, c);
	/* Work queued inside the backend that our queues do not hold (an
	 * agent's other clients) delays this request too (backend.h be_load). */
	if (be->ops && be->ops->view && be->ops->view(be, &ld) == 0 && ld.queue_depth > 0 &&
	    ld.service_ns) {
		uint64_t extra = (uint64_t)ld.queue_depth * ld.service_ns /
				 (uint64_t)(ld.parallel > 0 ? ld.parallel : 1);

		c->wait_ns += extra;
		if (c->work_ns)
			c->work_ns += extra;
	}
}

/* s gave r back before (failover): r is not placed on it again. */
static bool rt_avoided(const struct infer_req *r, const void *s)
{
	for (int i = 0; i < r->retries && i < INFER_MAX_RETRIES; i++)
		if (r->avoid[i] == s)
			return true;
	return false;
}
/*
 * The usable backends hosting a variant r (of model index mi) may run as,
 * into el[] as (backend, queue, tier) triples, a backend's consecutive,
 * without any lock.  Returns the count of triples, *n_be that of backends; *ver is
 * the sum of their queues' published versions (each only grows: an
 * unchanged sum means no queue changed).  -1: the variant r asks for
 * does not exist (r->errmsg set).
 */
static int rt_eligible(struct runtime *rt, int mi, struct infer_req *r, int *el, int *n_be,
		       uint64_t *ver)
{
	const struct model *vm[RT_VARIANTS];
	int tier[RT_VARIANTS], kind[RT_VARIANTS], n = 0, nv;
	const struct rt_host *h;

	*ver = 0;
	*n_be = 0;
	if (mi < 0)
		return 0;
	nv = rt_variant_set(rt, mi, r->variant_ask, vm, tier);
	if (!nv) {
		snprintf(r->errmsg, sizeof(r->errmsg), "parameters.variant: model %s has no %s "
			 "variant (models[].variants)", r->model->name,
			 model_variant_name(r->variant_ask - 1));
		return -1;
	}
	for (int v = 0; v < nv; v++)
		kind[v] = vm[v] == rt->models[mi]->m ? VARIANT_FP32 : VARIANT_INT8;
	h = rt->hosts + (size_t)mi * rt->n_backends;
	for (int j = 0; j < rt->n_hosts[mi]; j++) {
		struct rt_backend *rb = rt->backends[h[j].be];
		int before = n;

		if (!rt_backend_usable(rb) || rt_avoided(r, &rb->sched))
			continue;	/* failover never goes back to a backend that failed r */
		for (int v = 0; v < nv; v++) {
			int qi = h[j].qi[kind[v]];

			if (qi < 0)
				continue;
			*ver += atomic_load_explicit(&rb->sched.qs[qi].version,
						     memory_order_acquire);
			el[3 * n] = h[j].be;
			el[3 * n + 1] = qi;
			el[3 * n + 2] = tier[v];
			n++;
		}
		*n_be += n > before;
	}
	return n;
}

/* How many backends host model index mi (rt_eligible's bound: el[] and
 * the candidates need room for RT_VARIANTS per backend). */
static int rt_host_count(const struct runtime *rt, int mi)
{
	return mi < 0 ? 0 : rt->n_hosts[mi];
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

/* Normalize r's priority, set its series, and build the router's request
 * (mi: r's model index). */
static void rt_prepare(struct runtime *rt, int mi, struct infer_req *r, uint64_t now,
		       struct route_req *rq)
{
	const struct config *c = rt->cfg;
	const struct model_conf *mc = rt->mconf[mi];
	struct pol_prio_conf pc = { .levels = c->routing.priority_levels,
				    .sheddable_levels = c->routing.sheddable_levels,
				    .shed_wait_fraction = c->routing.shed_wait_fraction };

	r->met = rt->none_met[mi];
	pol_prepare(&pc, mc->priority, (uint64_t)mc->slo_ms * 1000000, r, now, rq);
}

/*
 * The round-robin cursor: a precheck reads it, a submit moves it.  Only
 * routing.policy round-robin reads it (router.c), and its turns are the
 * whole gateway's, across loops: one atomic add per request on a line of
 * its own.  The other policies never look at it, so their requests touch
 * no line every loop writes.
 */
static unsigned rt_cursor(struct runtime *rt, bool enqueue)
{
	if (rt->cfg->routing.policy != ROUTE_ROUND_ROBIN)
		return 0;
	return enqueue ? atomic_fetch_add_explicit(&rt->rr, 1, memory_order_relaxed)
		       : atomic_load_explicit(&rt->rr, memory_order_relaxed);
}

/* Views of the candidates of the g-th backend in el[0..n) (a backend's
 * triples are consecutive) into cand from k; returns the new k. */
static int rt_view_backend(struct runtime *rt, const int *el, int n, int g,
			   const struct infer_req *r, uint64_t now, struct router_cand *cand, int k)
{
	int j = 0;

	for (int b = -1; j < n; j++) {
		b += j == 0 || el[3 * j] != el[3 * (j - 1)];
		if (b == g)
			break;
	}
	if (j == n)
		return k;	/* no such backend (g >= the count): nothing to add */
	for (int first = el[3 * j]; j < n && el[3 * j] == first; j++)
		rt_view(rt, &el[3 * j], r, now, &cand[k++]);
	return k;
}

/*
 * Views of a sample of d of the n_be backends hosting the n eligible el[]
 * (all of them when few, or when d is 0 or >= n_be; a sampled backend
 * brings every variant it hosts) into cand, then the router's pick.
 * Returns the result with *n_cand the candidates looked at.
 */
static enum route_result rt_pick(struct runtime *rt, const struct infer_req *r, uint64_t now,
				 const struct route_req *rq, const int *el, int n, int n_be,
				 int d, unsigned rr, struct router_cand *cand, int *n_cand,
				 int *pick)
{
	static __thread uint64_t rng;
	const struct config *c = rt->cfg;
	struct route_conf rc = { .policy = c->routing.policy,
				 .margin_ns = (uint64_t)c->routing.margin_us * 1000 };
	int idx[ROUTER_WIDEN_D], k = 0;

	if (d <= 0 || d >= n_be || n_be <= ROUTER_SCAN_ALL) {
		for (k = 0; k < n; k++)
			rt_view(rt, &el[3 * k], r, now, &cand[k]);
	} else {
		if (!rng)
			rng = (uint64_t)(uintptr_t)&rng ^ now;
		d = router_sample(rc.policy, n_be, d < ROUTER_WIDEN_D ? d : ROUTER_WIDEN_D, rr,
				  &rng, idx);
		for (int j = 0; j < d; j++)
			k = rt_view_backend(rt, el, n, idx[j], r, now, cand, k);
		rr = 0;		/* the sample starts at the cursor's candidate */
	}
	*n_cand = k;
	return router_pick(&rc, rq, cand, k, &rr, pick);
}

/* sched_enqueue's answer as rt_submit's. */
static int rt_enqueue(struct runtime *rt, struct infer_req *r, int be, int qi, uint64_t now,
		      const struct router_cand *cand, int n)
{
	int rc = sched_enqueue(&rt->backends[be]->sched, qi, r, now);

	if (rc == -E2BIG) {
		snprintf(r->errmsg, sizeof(r->errmsg),
			 "inputs[0].shape[0]: batch of %d rows, expected 1 to %d (the model's "
			 "max_batch_size)", r->rows, r->model->max_batch_size);
		return 400;
	}
	if (rc == -EAGAIN)
		return rt_reject(r, ROUTE_FULL, cand, n);
	if (rc) {
		snprintf(r->errmsg, sizeof(r->errmsg), "gateway is shutting down");
		return 503;
	}
	return 0;
}

/* Record in adm what rt_route decided for r (prepared) and on what: the
 * pick, the n eligible el[] and their version sum ver, read at epoch. */
static void rt_admission_note(struct rt_admission *adm, const struct runtime *rt,
			      const struct infer_req *r, int be, int qi, const int *el, int n,
			      uint64_t ver, uint64_t epoch)
{
	*adm = (struct rt_admission){ .valid = true, .be = be, .qi = qi, .n_eligible = n,
				      .version = ver, .rt = rt, .epoch = epoch,
				      .prio_norm = r->priority, .sheddable = r->sheddable,
				      .met = r->met };
	for (int i = 0; i < n && n <= RT_ADM_QUEUES; i++) {
		adm->q[i].be = el[3 * i];
		adm->q[i].qi = el[3 * i + 1];
	}
}

/*
 * Route r; with enqueue, also queue it.  0 when routed (and queued), else
 * an HTTP status with r->errmsg (see rt_submit).  adm (may be NULL)
 * records the decision.  Routing takes no lock but the sampled backends'
 * (sched_view); a sample that admits nothing is widened to a larger one,
 * then to every backend.
 */
static int rt_route(struct runtime *rt, struct infer_req *r, uint64_t now, bool enqueue,
		    struct rt_admission *adm)
{
	struct router_cand stack[32 * RT_VARIANTS], *cand = stack;
	int el_stack[3 * 32 * RT_VARIANTS], *el = el_stack;
	unsigned rr = rt_cursor(rt, enqueue);
	struct route_req rq;
	enum route_result why;
	int mi = rt_index(rt, r->model), n, n_be, k, pick = -1, rc2 = 0;
	int hosts = rt_host_count(rt, mi);
	uint64_t ver, epoch = 0;

	if (mi < 0) {	/* not rt's model: no series, no queue (rt_submit's contract) */
		r->met = NULL;
		snprintf(r->errmsg, sizeof(r->errmsg), "model '%s' is not in this configuration",
			 r->model->name);
		return 404;
	}
	rt_prepare(rt, mi, r, now, &rq);
	if (hosts > 32) {
		cand = malloc(sizeof(*cand) * RT_VARIANTS * (size_t)hosts);
		el = malloc(sizeof(*el) * 3 * RT_VARIANTS * (size_t)hosts);
	}
	if (!cand || !el) {
		snprintf(r->errmsg, sizeof(r->errmsg), "gateway out of memory");
		r->retry_after_s = 1;
		rc2 = 429;
		goto out;
	}
	if (adm)	/* before any state is looked at (backend.h) */
		epoch = atomic_load_explicit(&be_state_epoch, memory_order_acquire);
	n = rt_eligible(rt, mi, r, el, &n_be, &ver);
	if (n < 0) {
		rc2 = 400;	/* r->errmsg: the variant asked for does not exist */
		goto out;
	}
	why = rt_pick(rt, r, now, &rq, el, n, n_be, ROUTER_SAMPLE_D, rr, cand, &k, &pick);
	/* widen: a larger sample, then every backend (router.h) */
	if (why != ROUTE_OK && k < n)
		why = rt_pick(rt, r, now, &rq, el, n, n_be, ROUTER_WIDEN_D, rr, cand, &k, &pick);
	if (why != ROUTE_OK && k < n)
		why = rt_pick(rt, r, now, &rq, el, n, n_be, 0, rr, cand, &k, &pick);
	if (why != ROUTE_OK) {
		rc2 = rt_reject(r, why, cand, k);
		goto out;
	}
	if (adm)
		rt_admission_note(adm, rt, r, cand[pick].id, cand[pick].qi, el, n, ver, epoch);
	if (enqueue)
		rc2 = rt_enqueue(rt, r, cand[pick].id, cand[pick].qi, now, cand, k);
out:
	if (cand != stack)
		free(cand);
	if (el != el_stack)
		free(el);
	return rc2;
}

/* The sum of the versions of adm's eligible queues now (rt_eligible's *ver). */
static uint64_t rt_admission_version(const struct runtime *rt, const struct rt_admission *adm)
{
	uint64_t ver = 0;

	for (int i = 0; i < adm->n_eligible; i++)
		ver += atomic_load_explicit(&rt->backends[adm->q[i].be]->sched.qs[adm->q[i].qi].version,
					    memory_order_acquire);
	return ver;
}

/*
 * Whether adm, decided by rt_precheck for a 1-row request at r's priority
 * and deadline, still holds: r is one row, the same backends are eligible
 * and none of their queues changed since (their versions sum the same).
 * No backend's state changed since (be_state_epoch): the same queues are
 * eligible, and those adm kept are read again without walking the hosts.
 */
static bool rt_admission_holds(struct runtime *rt, struct infer_req *r,
			       const struct rt_admission *adm)
{
	int el_stack[3 * 32 * RT_VARIANTS], *el = el_stack, n, n_be, hosts, mi;
	uint64_t ver;

	if (!adm || !adm->valid || adm->rt != rt || r->rows != 1 || r->retries ||
	    r->priority != adm->priority || r->deadline_ns != adm->deadline_ns ||
	    r->variant_ask != adm->variant_ask)
		return false;
	if (adm->n_eligible <= RT_ADM_QUEUES &&
	    atomic_load_explicit(&be_state_epoch, memory_order_acquire) == adm->epoch)
		return rt_admission_version(rt, adm) == adm->version;
	if (adm->be >= rt->n_backends || !rt_backend_usable(rt->backends[adm->be]))
		return false;
	mi = rt_index(rt, r->model);
	hosts = rt_host_count(rt, mi);
	if (hosts > 32 && !(el = malloc(sizeof(*el) * 3 * RT_VARIANTS * (size_t)hosts)))
		return false;
	n = rt_eligible(rt, mi, r, el, &n_be, &ver);
	if (el != el_stack)
		free(el);
	return n == adm->n_eligible && ver == adm->version;
}

/*
 * The scheduler's failover hook (sched_failover): r came back retryable
 * from backend `from`; place it on another backend of the current
 * snapshot that hosts its model, with what is left of its deadline, or
 * answer it: 504 when the deadline is gone, else 503/429 as routing says.
 */
static void rt_failover(struct infer_req *r, struct sched_be *from, uint64_t now)
{
	struct runtime *rt = rt_current();
	int st;

	if (r->deadline_ns && now >= r->deadline_ns) {
		st = 504;
		snprintf(r->errmsg, sizeof(r->errmsg), "backend %s failed the request and its "
			 "deadline passed before another could take it", from->be->conf.name);
	} else if (!rt || rt_index(rt, r->model) < 0) {
		st = 503;
		snprintf(r->errmsg, sizeof(r->errmsg), "backend %s failed the request and no "
			 "other backend hosts model %s", from->be->conf.name, r->model->name);
	} else {
		st = rt_route(rt, r, now, true, NULL);
		if (st == 503)
			snprintf(r->errmsg, sizeof(r->errmsg), "backend %s failed the request and "
				 "no other backend is available for model %s", from->be->conf.name,
				 r->model->name);
	}
	if (st) {
		r->status = st;
		if (!r->retry_after_s)
			r->retry_after_s = 1;
		infer_complete(r);
	}
	rt_put(rt);
}

int rt_submit(struct runtime *rt, struct infer_req *r, uint64_t now, struct rt_admission *adm)
{
	if (!rt_admission_holds(rt, r, adm)) {
		if (adm)
			adm->reused = false;
		return rt_route(rt, r, now, true, NULL);
	}
	/* One admission pass: the precheck's pick, queued under its one lock,
	 * r prepared as the precheck's probe was (same priority and deadline). */
	adm->reused = true;
	rt_cursor(rt, true);
	r->priority = adm->prio_norm;
	r->sheddable = adm->sheddable;
	r->met = adm->met;
	return rt_enqueue(rt, r, adm->be, adm->qi, now, NULL, 0);
}

int rt_precheck(struct runtime *rt, struct infer_req *r, uint64_t now, struct rt_admission *adm)
{
	int rows = r->rows, prio = r->priority, st;

	if (adm)
		adm->valid = false;
	r->rows = 1;		/* the most admissible size: rejecting it is safe */
	st = rt_route(rt, r, now, false, adm);
	r->rows = rows;
	if (adm && !st) {
		adm->priority = prio;	/* as the caller gave it, before normalizing */
		adm->deadline_ns = r->deadline_ns;
		adm->variant_ask = r->variant_ask;
	}
	r->priority = prio;
	return st;
}
