/*
 * runtime.h - what a config turns into: loaded models, open backends and
 * their schedulers.  The HTTP layer looks models up here and routes
 * requests to a backend's queue.
 */
#ifndef INFERGW_RUNTIME_H
#define INFERGW_RUNTIME_H

#include <stdint.h>

#include "backend.h"
#include "scheduler.h"

struct config;
struct model;
struct infer_req;

struct rt_backend {
	struct backend be;
	struct sched_be sched;
	bool started;
};

struct runtime {
	const struct config *cfg;
	int n_models;
	struct model **models;
	int n_backends;
	struct rt_backend *backends;
};

/*
 * rt_build - load every model and open every backend of cfg.  A backend
 * that cannot run on this host is logged and left down; a model that
 * cannot load is an error.  Returns the runtime or NULL with *err set.
 */
struct runtime *rt_build(const struct config *cfg, char **err);
/* rt_find_model - loaded model called name, or NULL. */
struct model *rt_find_model(const struct runtime *rt, const char *name);
/* rt_model_ready - true when some up backend hosts m. */
bool rt_model_ready(const struct runtime *rt, const struct model *m);
/*
 * rt_submit - route r (r->model set) to a backend queue.  0 when queued (the
 * request comes back through r->owner), else an HTTP status (429, 503, 400)
 * with r->errmsg filled; r is then still the caller's.
 */
int rt_submit(struct runtime *rt, struct infer_req *r, uint64_t now);
/* rt_destroy - drain and stop the schedulers, close backends, free models. */
void rt_destroy(struct runtime *rt);

#endif
