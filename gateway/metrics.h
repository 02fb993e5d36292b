/*
 * metrics.h - counters and histograms per (backend, model), rendered in
 * Prometheus text format.  Updated with relaxed atomics from any thread;
 * read while serving GET /metrics.
 */
#ifndef INFERGW_METRICS_H
#define INFERGW_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct evbuffer;

enum outcome { OUT_SUCCESS, OUT_REJECTED, OUT_EXPIRED, OUT_CANCELLED, OUT_ERROR, OUT_N };

#define MET_LAT_BUCKETS 18	/* 25 µs .. 10 s, then +Inf */
#define MET_BATCH_BUCKETS 12	/* 1 .. 2048 rows, then +Inf */

struct met_hist {
	_Atomic uint64_t bucket[MET_LAT_BUCKETS + 1];	/* non-cumulative; last = +Inf */
	_Atomic uint64_t count;
	_Atomic uint64_t sum;				/* ns, or rows */
};

struct met_series {
	const char *backend;		/* "none" for requests no backend took */
	const char *model;
	_Atomic uint64_t outcome[OUT_N];
	_Atomic uint64_t slo_met, slo_missed;
	struct met_hist queue, exec, e2e;	/* ns, answered 200 */
	struct met_hist reject;			/* ns, arrival to a 429 */
	struct met_hist batch;			/* rows per batch */
};

/*
 * met_lookup - the series for (backend, model), created on first use, so
 * counters survive configuration reloads.  Thread-safe; series live until
 * met_free_all at exit.
 */
struct met_series *met_lookup(const char *backend, const char *model);
/* met_all - every series so far, in creation order; returns the count. */
int met_all(struct met_series **out, int cap);
void met_free_all(void);
/* met_reload - count a configuration reload attempt. */
void met_reload(bool ok);
/* met_observe_ns - add a latency sample to h. */
void met_observe_ns(struct met_hist *h, uint64_t ns);
/* met_observe_rows - add a batch-size sample to h. */
void met_observe_rows(struct met_hist *h, uint64_t rows);
/* met_count - one more request with outcome o. */
void met_count(struct met_series *s, enum outcome o);
/* met_render - append every family for s[0..n) (HELP/TYPE once per family),
 * and the reload counters. */
void met_render(struct evbuffer *out, struct met_series *const *s, int n);
/* met_outcome_name - "success", "rejected", ... */
const char *met_outcome_name(enum outcome o);

#endif
