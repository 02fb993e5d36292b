/*
 * runtime.h - what a config turns into: loaded models, open backends, their
 * schedulers and metrics.  The HTTP layer looks models up here and hands
 * requests to rt_submit, which routes them (router.c) to a backend queue.
 */
#ifndef INFERGW_RUNTIME_H
#define INFERGW_RUNTIME_H

#include <stdint.h>

#include "backend.h"
#include "metrics.h"
#include "scheduler.h"

struct config;
struct model;
struct model_conf;
struct infer_req;

struct rt_backend {
	struct backend be;
	struct sched_be sched;
	struct met_series *met;		/* one per hosted model, parallel to sched.qs */
	bool started;
};

struct runtime {
	const struct config *cfg;
	int n_models;
	struct model **models;
	const struct model_conf **mconf;	/* parallel to models */
	struct met_series *none_met;	/* per model: requests no backend took */
	int n_backends;
	struct rt_backend *backends;
	_Atomic unsigned rr;		/* round-robin cursor */
};

/*
 * rt_build - load every model and open every backend of cfg.  A backend
 * that cannot run on this host is logged and left down; a model that
 * cannot load is an error.  Returns the runtime or NULL with *err set.
 */
struct runtime *rt_build(const struct config *cfg, char **err);
/* rt_find_model - loaded model called name, or NULL. */
struct model *rt_find_model(const struct runtime *rt, const char *name);
/* rt_model_conf - the config entry of a loaded model. */
const struct model_conf *rt_model_conf(const struct runtime *rt, const struct model *m);
/* rt_model_ready - true when some up backend hosts m. */
bool rt_model_ready(const struct runtime *rt, const struct model *m);
/*
 * rt_submit - normalize r's priority, route it and queue it.  r->model,
 * rows, arrival_ns and deadline_ns must be set.  0 when queued (r comes
 * back through r->owner), else an HTTP status (429, 503, 400) with
 * r->errmsg (and for 429 r->retry_after_s) filled and r->met set to the
 * series that counts it; r is then still the caller's.
 */
int rt_submit(struct runtime *rt, struct infer_req *r, uint64_t now);
/* rt_collect_metrics - every series, for met_render; returns the count. */
int rt_collect_metrics(const struct runtime *rt, struct met_series **out, int cap);
/* rt_stop - drain and stop the schedulers (completions still arrive at the
 * loops' mailboxes); idempotent. */
void rt_stop(struct runtime *rt);
/* rt_destroy - rt_stop, close backends, free models and metrics. */
void rt_destroy(struct runtime *rt);

#endif
