/*
 * autoscale.h - the autoscaling signal of every backend pool, exported on
 * /metrics as infergw_pool_desired_replicas{pool} with its inputs
 * (docs/deploy.md, "Kubernetes: scaling").  Glue between a runtime's
 * counters and the pure model in scale.h.
 *
 * A backend's pool: kind remote, its `pool` key (an entry a DNS name
 * expanded shares the entry's pool); any other backend, its own name.
 * The pool's counters (the per-(backend, model) metric series, which
 * outlive reloads) are sampled at every render, so the rates are EWMAs
 * over the scrapes (time constant ASC_TAU_S, weighted by the time each
 * interval covers).
 */
#ifndef INFERGW_AUTOSCALE_H
#define INFERGW_AUTOSCALE_H

#include <stdint.h>

struct evbuffer;
struct runtime;

#define ASC_TAU_S 30.0		/* rate smoothing time constant */
#define ASC_RHO_MAX 0.8		/* plan at most this busy */
#define ASC_P_MISS 0.01		/* allowed P(wait > objective - service) */
#define ASC_MAX_REPLICAS 1024	/* the signal's ceiling */
#define ASC_MAX_POOLS 256	/* pools tracked at once; more are not exported */

/*
 * asc_render - sample every pool of rt at now_ns and append the families
 * infergw_pool_desired_replicas, infergw_pool_replicas,
 * infergw_pool_arrival_rate, infergw_pool_load, infergw_pool_rows_per_request,
 * infergw_pool_batch_rows, infergw_pool_batch_rows_seen,
 * infergw_pool_batch_seconds, infergw_pool_slots and
 * infergw_pool_objective_seconds to out.
 * Thread-safe (one sampler at a time); pools no longer in rt are forgotten.
 */
void asc_render(struct evbuffer *out, const struct runtime *rt, uint64_t now_ns);
/* asc_free_all - forget every pool (exit). */
void asc_free_all(void);

#endif
