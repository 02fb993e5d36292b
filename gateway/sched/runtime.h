/*
 * runtime.h - what a config turns into: loaded models, open backends, their
 * schedulers.  A runtime is one immutable, refcounted snapshot (DESIGN.md
 * §1): a reload builds a new one beside the current one, carrying over the
 * models and backends that did not change, and publishes it with one
 * pointer swap.  Requests in flight hold a reference to the snapshot they
 * started with; when its last reference goes, the models and backends only
 * it used are drained and closed on the reaper thread.
 */
#ifndef INFERGW_RUNTIME_H
#define INFERGW_RUNTIME_H

#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "metrics.h"
#include "scheduler.h"

struct config;
struct model;
struct model_conf;
struct infer_req;

/* A loaded model, shared by every snapshot that has it unchanged. */
struct rt_model {
	_Atomic int refs;
	struct model *m;
	char *path;
	char *name;		/* the config's (a variant: its model's) */
	char *yaml_name;	/* model.yaml's name (a variant's variant_of names it) */
	ino_t sig_ino[2];	/* model.yaml and weights: carried over while */
	off_t sig_size[2];	/* inode, size and mtime are unchanged */
	int64_t sig_mtime[2];
};

/* An open backend and its scheduler, shared like models. */
struct rt_backend {
	_Atomic int refs;
	struct backend be;		/* be.conf is a deep copy this owns */
	struct sched_be sched;
	int n_models;
	struct rt_model **models;	/* hosted, parallel to sched.qs: the backends[]
					 * entry's models, then the variants it loaded */
	int n_refused;
	struct rt_model **refused;	/* variants it would not load (a GPU whose cuBLASLt cannot run an INT8 layer) */
	bool started;
	_Atomic bool draining;		/* POST /admin/backends/{name}/drain */
	char down_reason[512];		/* why it never started (open/load_model failed) */
	bool live;			/* on the started list (rt_stop_all) */
	struct rt_backend *live_prev, *live_next;
};

/* A started backend hosting a model: its queue for each variant
 * (enum model_variant), -1 where it hosts none. */
struct rt_host {
	int be;				/* in runtime.backends */
	int qi[2];
};

struct runtime {
	_Atomic int refs;
	uint64_t generation;
	struct config *cfg;		/* owned */
	int n_models;
	struct rt_model **models;
	const struct model_conf **mconf;	/* parallel to models */
	struct rt_model **int8;		/* parallel to models: the INT8 variant, or NULL */
	struct met_series **none_met;	/* per model: requests no backend took */
	/* per model: the started backends hosting it, in backends[] order (a
	 * snapshot's backends and their queues never change), so routing
	 * walks those, not every backend */
	int *n_hosts;
	struct rt_host *hosts;		/* model i's: hosts + i * n_backends */
	int n_backends;
	struct rt_backend **backends;	/* parallel to cfg->backends */
	/* queue settings for backends carried over from the previous
	 * snapshot, applied when this one is published (rt_publish) */
	struct rt_pending *pending;
	/* listen.tls context, NULL when the listener is plain: made, referenced
	 * and released by the net layer's rt_tls_ops (opaque here).  Each TLS
	 * connection's SSL holds its own reference, so a reload changes the
	 * certificate for new connections only. */
	struct ssl_ctx_st *tls;
	struct runtime *dead_next;	/* released, on the reaper's list */
	/* round-robin's cursor (rt_cursor), written by every loop: on a
	 * cache line of its own, away from what routing reads */
	_Alignas(64) _Atomic unsigned rr;
};

/*
 * The listener's TLS context belongs to the net layer (net/tls.h); the
 * snapshot only carries it.  rt_tls_ops - install how to make one from
 * listen.tls (0, or -errno with *err set), take a reference and drop one
 * (put accepts NULL).  The top level installs net's before the first
 * rt_build, before any thread starts; without ops listen.tls is ignored
 * (unit tests).  ops must outlive every snapshot.
 */
struct tls_conf;
struct rt_tls_ops {
	int (*make)(const struct tls_conf *tc, struct ssl_ctx_st **out, char **err);
	struct ssl_ctx_st *(*ref)(struct ssl_ctx_st *ctx);
	void (*put)(struct ssl_ctx_st *ctx);
};
void rt_tls_ops(const struct rt_tls_ops *ops);

/*
 * rt_build - load every model and open every backend of cfg, reusing what
 * prev (may be NULL) already has unchanged.  Takes ownership of cfg on
 * success.  A backend that cannot run on this host is logged and left down;
 * a model that cannot load is an error.  Returns a runtime with one
 * reference, or NULL with *err set (cfg is then still the caller's).
 * Whether the listener speaks TLS is fixed when the server starts: after
 * prev, listen.tls turned on or off only takes effect on restart (the
 * previous context, or none, stays), while changed certificates apply.
 */
struct runtime *rt_build(struct config *cfg, const struct runtime *prev, char **err);
/* rt_get / rt_put - references; the last put destroys (on the reaper thread
 * when one runs, else right away). */
struct runtime *rt_get(struct runtime *rt);
void rt_put(struct runtime *rt);

/* rt_publish - make rt current (takes the caller's reference); the queue
 * settings of the backends it carried over change now, not before. */
void rt_publish(struct runtime *rt);
/* rt_on_publish - fn(arg) runs after every publish (the server uses it to
 * make idle loops let go of the old snapshot). */
void rt_on_publish(void (*fn)(void *arg), void *arg);
/* rt_current - a new reference to the current runtime, or NULL. */
struct runtime *rt_current(void);
/* rt_generation - changes on every publish; cheap to poll. */
uint64_t rt_generation(void);

/*
 * A thread's lease on the current snapshot (an event loop's, a DPDK
 * lcore's): one reference, lent to the thread's own requests by a plain
 * count rather than an atomic reference each (every thread would write the
 * snapshot's one cache line for every request).  Every call on the owning
 * thread.  A zeroed lease holds nothing.
 */
struct rt_lease {
	struct runtime *rt;		/* the lease's reference, or NULL */
	unsigned lent;			/* borrows of rt not yet returned */
};
/* rt_lease_refresh - take the current snapshot if a newer one was
 * published (rt_generation), turning the borrows still out on the old one
 * into references of their own; l->rt (NULL: none published). */
struct runtime *rt_lease_refresh(struct rt_lease *l);
/* rt_lease_borrow - l->rt for one request (NULL when none); give it back
 * with rt_lease_return, even after a refresh or a drop. */
struct runtime *rt_lease_borrow(struct rt_lease *l);
void rt_lease_return(struct rt_lease *l, struct runtime *rt);
/* rt_lease_drop - let go of l->rt (the borrows out keep it alive). */
void rt_lease_drop(struct rt_lease *l);
/* rt_reaper_start / rt_reaper_stop - the thread that destroys released
 * snapshots; stop waits for every pending one.  While it runs, every last
 * rt_put only queues the snapshot (the list is unbounded): nothing is ever
 * destroyed on an event loop.  start: 0, or -errno when the thread cannot
 * be created (then rt_put destroys on the caller's thread). */
int rt_reaper_start(void);
void rt_reaper_stop(void);
/* rt_retired - how many snapshots the reaper destroyed so far (tests). */
uint64_t rt_retired(void);
/* rt_live_count - started backends not yet closed (tests, shutdown). */
int rt_live_count(void);
/* rt_stop_all - stop every backend's scheduler (shutdown, after the grace
 * period): requests still queued are answered 503 and never executed,
 * batches in flight finish; completions arrive at their sinks. */
void rt_stop_all(void);

/* rt_find_model - loaded model called name, or NULL. */
struct model *rt_find_model(const struct runtime *rt, const char *name);
/* rt_model_conf - the config entry of a loaded model. */
const struct model_conf *rt_model_conf(const struct runtime *rt, const struct model *m);
/* rt_none_series - the series counting requests for m that no backend took;
 * NULL when m is not one of rt's models. */
struct met_series *rt_none_series(const struct runtime *rt, const struct model *m);
/* rt_model_ready - true when some up, not draining backend hosts m (a
 * variant its variant_policy may serve counts). */
bool rt_model_ready(const struct runtime *rt, const struct model *m);
/*
 * rt_variants - the variants model m serves (models[].variants), into
 * out[0..n) as enum model_variant values (FP32 first); returns n (1 for a
 * model without variants).  *int8 (may be NULL): m's INT8 variant model, or
 * NULL.  *hosts (may be NULL): per out[] entry, how many backends hold it.
 */
int rt_variants(const struct runtime *rt, const struct model *m, int *out,
		const struct model **int8, int *hosts);
/*
 * rt_queue_conf - the scheduler settings of model m (its models[] entry mc)
 * on backend be (open: its caps are asked; NULL: none), from config c and
 * bc, the backends[] entry whose batching overrides apply.  Batching
 * fields come from the first that sets them: bc->batching[m], the kind's
 * defaults (be_caps.batching_defaults), models[].  Fills *qc.
 */
struct model_conf;
void rt_queue_conf(const struct config *c, const struct model_conf *mc, const struct model *m,
		   const struct backend_conf *bc, const struct backend *be,
		   struct sched_q_conf *qc);
/* rt_find_backend - backend called name, or NULL. */
struct rt_backend *rt_find_backend(const struct runtime *rt, const char *name);
/* rt_drain - rb takes no new requests from now on (POST
 * /admin/backends/{name}/drain); what it holds finishes.  Routing sees it
 * at once, an admission decided before included (be_state_bump). */
void rt_drain(struct rt_backend *rb);
/*
 * What one admission pass decided (rt_precheck), for rt_submit to reuse:
 * the pick, and what the decision depended on.  Opaque to callers but for
 * reused, which rt_submit sets (true: it queued on the precheck's pick
 * without routing again).
 */
#define RT_ADM_QUEUES 4

struct rt_admission {
	bool valid;
	bool reused;
	int be, qi;			/* the pick */
	int priority;			/* the request's, before normalizing */
	int variant_ask;		/* the request's (infer_req.variant_ask) */
	uint64_t deadline_ns;
	int n_eligible;			/* backends that could take it then */
	uint64_t version;		/* the sum of their queues' versions then */
	const struct runtime *rt;	/* the snapshot it was decided in */
	/* be_state_epoch before eligibility was looked at: while it stays,
	 * the same queues are eligible, and these (all of them, when
	 * n_eligible <= RT_ADM_QUEUES) are all a reuse must look at again */
	uint64_t epoch;
	struct { int be, qi; } q[RT_ADM_QUEUES];
	/* the request as routing prepared it (normalized priority, sheddable,
	 * the series counting a refusal): the same for the same priority and
	 * deadline */
	int prio_norm;
	bool sheddable;
	struct met_series *met;
};

/*
 * rt_submit - normalize r's priority, route it and queue it.  r->model,
 * rows, arrival_ns and deadline_ns must be set.  0 when queued (r comes
 * back through r->sink), else an HTTP status (429, 503, 400; 404 with
 * r->met NULL when r->model is not one of rt's models) with
 * r->errmsg (and for 429 r->retry_after_s) filled and r->met set to the
 * series that counts it; r is then still the caller's.  adm (may be NULL):
 * a precheck of r; when r is one row at the priority and deadline it was
 * made for and no eligible queue changed since, its pick is used as is
 * (one admission pass: the chosen backend's lock only).
 */
int rt_submit(struct runtime *rt, struct infer_req *r, uint64_t now, struct rt_admission *adm);
/*
 * rt_precheck - would a 1-row r (priority and deadline set, body not yet
 * parsed) be admitted?  0, or the status rt_submit would answer (429 late,
 * full or shed; 503 no backend) with r->errmsg.  Nothing is queued; r's
 * priority is left as given.  adm (may be NULL) records the decision for
 * rt_submit.
 */
int rt_precheck(struct runtime *rt, struct infer_req *r, uint64_t now, struct rt_admission *adm);

#endif
