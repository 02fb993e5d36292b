/*
 * admin.h - the admin listener (default 127.0.0.1:8002, Triton's metrics
 * port): metrics, health, configuration, backends, reloads and the
 * KServe/Triton model repository extension.  Reads are GET; everything
 * that changes state is POST.  The repository routes are also served on
 * the inference port (api.c): the index always, load/unload only with
 * admin.repository_on_main.
 *
 *   GET  /metrics                        GET /v2/health/{live,ready}
 *   GET  /admin/config                   GET /admin/backends
 *   POST /admin/reload                   POST /admin/backends/{name}/drain
 *   POST /v2/repository/index            POST /v2/repository/models/{m}/load|unload
 */
#ifndef INFERGW_ADMIN_H
#define INFERGW_ADMIN_H

#include <stdbool.h>
#include <stddef.h>

struct call;
struct loop;

/* What an admin job does on the control thread. */
enum adm_op { ADM_RELOAD, ADM_LOAD_MODEL, ADM_UNLOAD_MODEL, ADM_INDEX };

/*
 * An admin request handed from a loop to the control thread (whatever runs
 * the jobs: the top level's control.c) and back.  The runner fills status
 * and body, then calls done on loop (the requester's, opaque here).
 */
struct adm_job {
	struct loop *loop;		/* where done runs */
	void (*done)(struct adm_job *j);
	enum adm_op op;
	char arg[256];			/* model name for load/unload */
	const char *req;		/* the request body: a view the requester keeps */
	size_t req_len;			/* unchanged until done runs */
	bool untrusted;			/* from the inference port: a bounded share of the queue */
	int status;			/* HTTP status of the answer */
	char *body;			/* JSON answer, malloc'd (NULL: out of memory) */
	void *ctx;			/* the requester's */
};

/*
 * The job runner the admin handlers submit to, installed by the top level
 * before the listeners start.  submit: from any loop thread; 0 when job was
 * taken (done will run on job->loop, perhaps with a 503 when too many jobs
 * are pending), or -errno when it was not (the caller answers).
 */
struct adm_jobs {
	int (*submit)(struct adm_job *job);
};
/* adm_set_jobs - install the runner (NULL: every job is answered 503). */
void adm_set_jobs(const struct adm_jobs *jobs);
/* adm_set_port - the admin listener's bound port, -1 when disabled (the
 * default): the inference port's 403 for load/unload names it.  Set by
 * whoever binds the listener, before serving. */
void adm_set_port(int port);

/* adm_handle - answer c (now, or when its control job finishes). */
void adm_handle(struct call *c);
/*
 * adm_repository - answer c, a request under /v2/repository/ on either
 * listener, when its control-thread job finishes (on c's loop).  On the
 * inference port load/unload get 403 naming the admin listener unless
 * admin.repository_on_main is set.
 */
void adm_repository(struct call *c);
/*
 * adm_repository_job - a repository op (ADM_INDEX, ADM_LOAD_MODEL,
 * ADM_UNLOAD_MODEL of model name) for c from another codec (gRPC), under
 * the rule the HTTP routes follow (load/unload on the inference port only
 * with admin.repository_on_main, else c is answered 403 naming the admin
 * listener): the same control-thread job, c->body its JSON request body as
 * over HTTP.  true: submitted (c->async set); done then runs on c's loop
 * with j->status and j->body (the HTTP answer's JSON, NULL when out of
 * memory; j->ctx is c) and frees j->body and j.  false: c was answered.
 */
bool adm_repository_job(struct call *c, enum adm_op op, const char *name,
			void (*done)(struct adm_job *j));

#endif
