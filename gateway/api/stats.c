/* stats.c - see stats.h. */
#include "stats.h"

#include <event2/buffer.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kserve.h"
#include "metrics.h"
#include "model/model.h"
#include "runtime.h"
#include "util.h"


/* One model's counters, summed over its series. */
struct stats_sum {
	uint64_t ok, ok_ns, fail, fail_ns, queue, queue_ns, infer, infer_ns;
	uint64_t rows, batches, last_ns;
	uint64_t *bcount, *bns;		/* [rows - 1], MET_BSIZE_MAX each */
};

static uint64_t ld(const _Atomic uint64_t *v)
{
	return atomic_load_explicit((_Atomic uint64_t *)v, memory_order_relaxed);
}

static void stats_add(struct stats_sum *t, const struct met_series *series)
{
	const struct met_bsize *b = met_bsizes(series);
	struct met_cnt sum, *s = &sum;

	met_read(series, &sum);
	t->ok += ld(&s->outcome[OUT_SUCCESS]);
	for (int o = 0; o < OUT_N; o++)
		if (o != OUT_SUCCESS)
			t->fail += ld(&s->outcome[o]);
	t->ok_ns += ld(&s->e2e.sum);
	t->fail_ns += ld(&s->fail_ns);
	t->queue += met_hist_count(&s->queue);
	t->queue_ns += ld(&s->queue.sum);
	t->infer += met_hist_count(&s->exec);
	t->infer_ns += ld(&s->exec.sum);
	t->rows += ld(&s->rows_ok);
	t->batches += met_hist_count(&s->batch);
	if (ld(&s->last_ns) > t->last_ns)
		t->last_ns = ld(&s->last_ns);
	for (int i = 0; b && t->bcount && i < MET_BSIZE_MAX; i++) {
		t->bcount[i] += ld(&b[i].count);
		t->bns[i] += ld(&b[i].ns);
	}
}

static void stats_pair(struct evbuffer *out, const char *name, uint64_t count, uint64_t ns,
		       const char *sep)
{
	evbuffer_add_printf(out, "\"%s\":{\"count\":%llu,\"ns\":%llu}%s", name,
			    (unsigned long long)count, (unsigned long long)ns, sep);
}

/*
 * The gateway times a batch as one execution: copying inputs in and
 * outputs out is inside compute_infer, so compute_input and
 * compute_output count the same executions with 0 ns.
 */
static void stats_batches(struct evbuffer *out, const struct stats_sum *t)
{
	bool first = true;

	evbuffer_add_printf(out, ",\"batch_stats\":[");
	for (int i = 0; t->bcount && i < MET_BSIZE_MAX; i++) {
		if (!t->bcount[i])
			continue;
		evbuffer_add_printf(out, "%s{\"batch_size\":%d,", first ? "" : ",", i + 1);
		stats_pair(out, "compute_input", t->bcount[i], 0, ",");
		stats_pair(out, "compute_infer", t->bcount[i], t->bns[i], ",");
		stats_pair(out, "compute_output", t->bcount[i], 0, "}");
		first = false;
	}
	evbuffer_add_printf(out, "]");
}

/* Triton's last_inference: ms since the epoch of a now_ns() time (0: none). */
static uint64_t stats_epoch_ms(uint64_t mono_ns)
{
	struct timespec ts;
	uint64_t now = now_ns(), wall;

	if (!mono_ns || clock_gettime(CLOCK_REALTIME, &ts))
		return 0;
	wall = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	return (wall - (now > mono_ns ? now - mono_ns : 0)) / 1000000;
}

static void stats_model(struct evbuffer *out, const struct model *m,
			struct met_series *const *all, int n)
{
	struct stats_sum t = { 0 };

	t.bcount = calloc(MET_BSIZE_MAX, sizeof(*t.bcount));
	t.bns = calloc(MET_BSIZE_MAX, sizeof(*t.bns));
	if (!t.bcount || !t.bns) {	/* batch_stats left empty rather than no answer */
		free(t.bcount);
		free(t.bns);
		t.bcount = t.bns = NULL;
	}
	for (int i = 0; i < n; i++)
		if (!strcmp(all[i]->model, m->name))
			stats_add(&t, all[i]);
	evbuffer_add_printf(out, "{\"name\":");
	ks_put_str(out, m->name);
	evbuffer_add_printf(out, ",\"version\":\"%d\",\"last_inference\":%llu,"
			    "\"inference_count\":%llu,\"execution_count\":%llu,\"inference_stats\":{",
			    m->version, (unsigned long long)stats_epoch_ms(t.last_ns), (unsigned long long)t.rows,
			    (unsigned long long)t.batches);
	stats_pair(out, "success", t.ok, t.ok_ns, ",");
	stats_pair(out, "fail", t.fail, t.fail_ns, ",");
	stats_pair(out, "queue", t.queue, t.queue_ns, ",");
	stats_pair(out, "compute_input", t.infer, 0, ",");
	stats_pair(out, "compute_infer", t.infer, t.infer_ns, ",");
	stats_pair(out, "compute_output", t.infer, 0, ",");
	stats_pair(out, "cache_hit", 0, 0, ",");
	stats_pair(out, "cache_miss", 0, 0, "}");
	evbuffer_add_printf(out, ",\"response_stats\":{}");
	stats_batches(out, &t);
	evbuffer_add_printf(out, ",\"memory_usage\":[]}");
	free(t.bcount);
	free(t.bns);
}

void stats_encode(struct evbuffer *out, const struct runtime *rt, const struct model *m)
{
	int n;
	struct met_series **all = met_all(&n);
	bool first = true;

	evbuffer_add_printf(out, "{\"model_stats\":[");
	for (int i = 0; i < rt->n_models; i++) {
		if (m && rt->models[i]->m != m)
			continue;
		if (!first)
			evbuffer_add_printf(out, ",");
		stats_model(out, rt->models[i]->m, all, n);
		first = false;
	}
	evbuffer_add_printf(out, "]}");
	free(all);
}
