/*
 * metrics.h - counters and histograms per (backend, model), rendered in
 * Prometheus text format.  Updated with relaxed atomics from any thread,
 * each thread in counters of its own (struct met_cnt); summed while
 * serving GET /metrics.
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

/* The count is the buckets' sum (met_hist_count): two adds a sample, and
 * a scrape's +Inf bucket never falls below a finite one. */
struct met_hist {
	_Atomic uint64_t bucket[MET_LAT_BUCKETS + 1];	/* non-cumulative; last = +Inf */
	_Atomic uint64_t sum;				/* ns, or rows */
	bool own;	/* one writer (met_cnt.own): plain adds; else atomic ones */
};

#define MET_BSIZE_MAX 4096	/* batch sizes counted one by one (the model limit) */

/* Batches of one size: how many, and their summed execution time. */
struct met_bsize {
	_Atomic uint64_t count;
	_Atomic uint64_t ns;
};

/*
 * A series' counts as one thread adds them.  Every thread adds to its own
 * struct met_cnt (met_cnt_of): loops on many cores serving one model never
 * write the same cache line, where one shared set of counters made each of
 * a request's dozen atomic adds a cache-line transfer between cores (~60 ns
 * each against ~12 ns on a line of one's own, two threads on this 2-core
 * machine).  Readers sum them (met_read).
 *
 * A thread's own counts (own: only the thread holding that shard number
 * writes them) are added with a relaxed load and store, no locked
 * instruction; the shared ones (the series' first: threads past
 * MET_SHARDS live ones, or without memory) with atomic adds.  Either way
 * every access is atomic, so a reader never sees a torn word.
 */
struct met_cnt {
	_Atomic uint64_t outcome[OUT_N];
	_Atomic uint64_t slo_met, slo_missed;
	struct met_hist queue, exec, e2e;	/* ns, answered 200 */
	struct met_hist reject;			/* ns, arrival to a 429 */
	struct met_hist batch;			/* rows per batch */
	/* For Triton's statistics extension (stats.c): */
	_Atomic uint64_t rows_ok;		/* rows of requests answered 200 */
	_Atomic uint64_t fail_ns;		/* arrival to answer, summed, of the others */
	_Atomic uint64_t last_ns;		/* last answer, now_ns's clock; 0: none (met_read: the latest) */
	bool own;				/* one writer: plain adds (the hists' own too) */
} __attribute__((aligned(64)));

/* Live threads with a met_cnt of their own per series; more share one
 * (met_thread_shard's MET_SHARDS: atomic adds, correct, only slower). */
#define MET_SHARDS 64

struct met_series {
	const char *backend;		/* "none" for requests no backend took */
	const char *model;
	const char *variant;		/* "fp32", "int8" for a model with variants; else NULL */
	const char *lbl;		/* backend="..",model=".."[,variant=".."], escaped */
	struct met_cnt first;		/* shared: past MET_SHARDS threads, or out of memory */
	/* [i]: the thread holding shard number i, allocated at its first count */
	_Atomic(struct met_cnt *) shard[MET_SHARDS];
	/* [rows - 1] for 1..MET_BSIZE_MAX; allocated at the first batch */
	_Atomic(struct met_bsize *) bsize;
};

/*
 * met_inc - *c += v: a relaxed load and store where the calling thread is
 * the counter's only writer (own: a shard of its own), an atomic add where
 * threads share it.  A reader's relaxed load sees either value, never a
 * torn one.
 */
static inline void met_inc(_Atomic uint64_t *c, uint64_t v, bool own)
{
	if (own)
		atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + v,
				      memory_order_relaxed);
	else
		atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}

/*
 * met_cnt_of - the calling thread's counts of s, to add to (met_count,
 * met_finish, met_observe_*).  Never NULL: without memory for a thread's
 * own, the series' first.
 */
struct met_cnt *met_cnt_of(struct met_series *s);
/*
 * met_read - s's counts summed over every thread's, into *sum (last_ns:
 * the latest).  Each word is read once: a histogram's count and +Inf come
 * from the same bucket reads.
 */
void met_read(const struct met_series *s, struct met_cnt *sum);
/*
 * met_thread_shard - the calling thread's shard, for other modules'
 * per-thread counters (access.c): 0..MET_SHARDS-1, the lowest number no
 * live thread holds, taken at the thread's first call and given back when
 * it exits (only its holder writes that shard: plain adds are safe); past
 * MET_SHARDS live threads, MET_SHARDS, shared by all of those (atomic adds).
 */
int met_thread_shard(void);

/*
 * met_lookup - the series for (backend, model), created on first use, so
 * counters survive configuration reloads.  Thread-safe; series live until
 * met_free_all at exit.  The registry grows: every series is exported.
 * NULL only when out of memory.
 */
struct met_series *met_lookup(const char *backend, const char *model);
/*
 * met_lookup_variant - met_lookup for one variant of a model that has
 * several (models[].variants): its series carry a variant="..." label in
 * every family.  variant NULL is met_lookup (no label: a model without
 * variants keeps the series it always had).
 */
struct met_series *met_lookup_variant(const char *backend, const char *model,
				      const char *variant);
/*
 * met_all - every series so far, in creation order: a malloc'd array the
 * caller frees, *n its length; NULL (and *n = 0) when out of memory.
 */
struct met_series **met_all(int *n);
/*
 * met_label_escape - v as a Prometheus label value (backslash, double
 * quote and newline escaped): malloc'd, the caller frees; NULL when out of
 * memory.  Config names are already restricted (docs/config.md); this
 * keeps the exposition format intact whatever a name holds.
 */
char *met_label_escape(const char *v);
void met_free_all(void);
/* met_reload - count a configuration reload attempt. */
void met_reload(bool ok);
/* met_observe_ns - add a latency sample to h. */
void met_observe_ns(struct met_hist *h, uint64_t ns);
/* met_observe_rows - add a batch-size sample to h. */
void met_observe_rows(struct met_hist *h, uint64_t rows);
/* met_hist_count - the samples h holds. */
uint64_t met_hist_count(const struct met_hist *h);
/*
 * met_batch - one batch of rows executed in exec_ns: the rows histogram and
 * the per-size count (a size above MET_BSIZE_MAX counts as that).  Lock
 * free; the per-size array is allocated on first use (left out when no
 * memory).
 */
void met_batch(struct met_series *s, int rows, uint64_t exec_ns);
/*
 * met_finish - a request answered at now (now_ns's clock) (ok: 200, with
 * rows rows) or not (its arrival-to-answer ns): inference rows, failure
 * time, last inference.  Counting the outcome itself stays met_count's.
 */
void met_finish(struct met_cnt *k, bool ok, int rows, uint64_t ns, uint64_t now);
/*
 * met_error - a request refused before any backend took it (400, 413, 503),
 * answered at now after ns: one error outcome and its time, in the calling
 * thread's counts of s.  s NULL (no series for its model): nothing.
 */
void met_error(struct met_series *s, uint64_t ns, uint64_t now);
/* met_slo - one more answer with an objective, met or not (k: met_cnt_of's). */
void met_slo(struct met_cnt *k, bool met);
/* met_bsizes - s's per-size batch counters ([rows - 1]), or NULL before any batch. */
const struct met_bsize *met_bsizes(const struct met_series *s);
/* met_count - one more request with outcome o (k: met_cnt_of's). */
void met_count(struct met_cnt *k, enum outcome o);
/*
 * met_on_render - add fn to what /metrics renders after the per-(backend,
 * model) families (met_render_hooks): a layer above core registers its own
 * counters (the net layer its connection counters) at start, before any
 * loop serves; at most MET_MAX_HOOKS, each once (repeats are ignored).
 */
#define MET_MAX_HOOKS 4
void met_on_render(void (*fn)(struct evbuffer *out));
/* met_render_hooks - append what every registered fn renders, in order. */
void met_render_hooks(struct evbuffer *out);
/* met_render - append every family for s[0..n) (HELP/TYPE once per family),
 * and the reload counters. */
void met_render(struct evbuffer *out, struct met_series *const *s, int n);
/* met_outcome_name - "success", "rejected", ... */
const char *met_outcome_name(enum outcome o);

#endif
