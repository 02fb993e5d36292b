/* metrics.c - see metrics.h. */
#include "metrics.h"

#include <event2/buffer.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Upper bounds of the latency buckets, in seconds. */
static const double met_lat_le[MET_LAT_BUCKETS] = {
	25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
	50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5, 5.0, 10.0,
};
static const char *const met_outcomes[OUT_N] = {
	"success", "rejected", "expired", "cancelled", "error",
};

const char *met_outcome_name(enum outcome o)
{
	return met_outcomes[o];
}

#define MET_MAX_SERIES 1024

static pthread_mutex_t met_lock = PTHREAD_MUTEX_INITIALIZER;
static struct met_series *met_reg[MET_MAX_SERIES];
static int met_n;
static _Atomic uint64_t met_reloads[2];	/* failure, success */

struct met_series *met_lookup(const char *backend, const char *model)
{
	struct met_series *s = NULL;

	pthread_mutex_lock(&met_lock);
	for (int i = 0; i < met_n; i++)
		if (!strcmp(met_reg[i]->backend, backend) && !strcmp(met_reg[i]->model, model)) {
			s = met_reg[i];
			goto out_unlock;
		}
	s = calloc(1, sizeof(*s));
	s->backend = strdup(backend);
	s->model = strdup(model);
	/* Past the cap the series still counts, it is just not exported. */
	if (met_n < MET_MAX_SERIES)
		met_reg[met_n++] = s;
out_unlock:
	pthread_mutex_unlock(&met_lock);
	return s;
}

int met_all(struct met_series **out, int cap)
{
	int n;

	pthread_mutex_lock(&met_lock);
	n = met_n < cap ? met_n : cap;
	memcpy(out, met_reg, n * sizeof(*out));
	pthread_mutex_unlock(&met_lock);
	return n;
}

void met_free_all(void)
{
	pthread_mutex_lock(&met_lock);
	for (int i = 0; i < met_n; i++) {
		free(atomic_load(&met_reg[i]->bsize));
		free((char *)met_reg[i]->backend);
		free((char *)met_reg[i]->model);
		free(met_reg[i]);
	}
	met_n = 0;
	pthread_mutex_unlock(&met_lock);
}

void met_reload(bool ok)
{
	atomic_fetch_add(&met_reloads[ok], 1);
}

static void met_add(struct met_hist *h, int b, uint64_t v)
{
	atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, v, memory_order_relaxed);
}

void met_observe_ns(struct met_hist *h, uint64_t ns)
{
	double s = ns / 1e9;
	int b = 0;

	while (b < MET_LAT_BUCKETS && s > met_lat_le[b])
		b++;
	met_add(h, b, ns);
}

void met_observe_rows(struct met_hist *h, uint64_t rows)
{
	int b = 0;

	while (b < MET_BATCH_BUCKETS && rows > (1ull << b))
		b++;
	met_add(h, b == MET_BATCH_BUCKETS ? MET_LAT_BUCKETS : b, rows);
}

void met_batch(struct met_series *s, int rows, uint64_t exec_ns)
{
	struct met_bsize *b = atomic_load_explicit(&s->bsize, memory_order_acquire);

	met_observe_rows(&s->batch, rows > 0 ? (uint64_t)rows : 0);
	if (!b) {
		struct met_bsize *expect = NULL;

		b = calloc(MET_BSIZE_MAX, sizeof(*b));
		if (!b)
			return;
		if (!atomic_compare_exchange_strong(&s->bsize, &expect, b)) {
			free(b);	/* another thread's won */
			b = expect;
		}
	}
	b += (rows < 1 ? 1 : rows > MET_BSIZE_MAX ? MET_BSIZE_MAX : rows) - 1;
	atomic_fetch_add_explicit(&b->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&b->ns, exec_ns, memory_order_relaxed);
}

const struct met_bsize *met_bsizes(const struct met_series *s)
{
	return atomic_load_explicit(&((struct met_series *)s)->bsize, memory_order_acquire);
}

void met_finish(struct met_series *s, bool ok, int rows, uint64_t ns)
{
	struct timespec ts;

	if (ok)
		atomic_fetch_add_explicit(&s->rows_ok, (uint64_t)rows, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&s->fail_ns, ns, memory_order_relaxed);
	clock_gettime(CLOCK_REALTIME, &ts);
	atomic_store_explicit(&s->last_ms, (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000,
			      memory_order_relaxed);
}

void met_count(struct met_series *s, enum outcome o)
{
	atomic_fetch_add_explicit(&s->outcome[o], 1, memory_order_relaxed);
}

#define LBL "backend=\"%s\",model=\"%s\""

static uint64_t ld(_Atomic uint64_t *v)
{
	return atomic_load_explicit(v, memory_order_relaxed);
}

/* One histogram family; off = which member of met_series. */
static void met_render_hist(struct evbuffer *out, struct met_series *const *s, int n,
			    const char *name, const char *help, size_t off, int lat)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (int i = 0; i < n; i++) {
		struct met_hist *h = (struct met_hist *)((char *)s[i] + off);
		int nb = lat ? MET_LAT_BUCKETS : MET_BATCH_BUCKETS;
		uint64_t cum = 0;

		for (int b = 0; b < nb; b++) {
			cum += ld(&h->bucket[b]);
			if (lat)
				evbuffer_add_printf(out, "%s_bucket{" LBL ",le=\"%g\"} %llu\n", name,
						    s[i]->backend, s[i]->model, met_lat_le[b],
						    (unsigned long long)cum);
			else
				evbuffer_add_printf(out, "%s_bucket{" LBL ",le=\"%d\"} %llu\n", name,
						    s[i]->backend, s[i]->model, 1 << b,
						    (unsigned long long)cum);
		}
		evbuffer_add_printf(out, "%s_bucket{" LBL ",le=\"+Inf\"} %llu\n", name,
				    s[i]->backend, s[i]->model, (unsigned long long)ld(&h->count));
		if (lat)
			evbuffer_add_printf(out, "%s_sum{" LBL "} %.9f\n", name, s[i]->backend,
					    s[i]->model, ld(&h->sum) / 1e9);
		else
			evbuffer_add_printf(out, "%s_sum{" LBL "} %llu\n", name, s[i]->backend,
					    s[i]->model, (unsigned long long)ld(&h->sum));
		evbuffer_add_printf(out, "%s_count{" LBL "} %llu\n", name, s[i]->backend,
				    s[i]->model, (unsigned long long)ld(&h->count));
	}
}

void met_render(struct evbuffer *out, struct met_series *const *s, int n)
{
	evbuffer_add_printf(out, "# HELP infergw_requests_total Inference requests by outcome.\n"
				 "# TYPE infergw_requests_total counter\n");
	for (int i = 0; i < n; i++)
		for (int o = 0; o < OUT_N; o++)
			evbuffer_add_printf(out, "infergw_requests_total{" LBL ",outcome=\"%s\"} %llu\n",
					    s[i]->backend, s[i]->model, met_outcomes[o],
					    (unsigned long long)ld(&s[i]->outcome[o]));
	evbuffer_add_printf(out, "# HELP infergw_slo_total Answered requests with a deadline, by whether it was met.\n"
				 "# TYPE infergw_slo_total counter\n");
	for (int i = 0; i < n; i++)
		evbuffer_add_printf(out, "infergw_slo_total{" LBL ",result=\"met\"} %llu\n"
					 "infergw_slo_total{" LBL ",result=\"missed\"} %llu\n",
				    s[i]->backend, s[i]->model, (unsigned long long)ld(&s[i]->slo_met),
				    s[i]->backend, s[i]->model, (unsigned long long)ld(&s[i]->slo_missed));
	met_render_hist(out, s, n, "infergw_queue_seconds", "Time from arrival to batch start.",
			offsetof(struct met_series, queue), 1);
	met_render_hist(out, s, n, "infergw_execute_seconds", "Batch execution time per request.",
			offsetof(struct met_series, exec), 1);
	met_render_hist(out, s, n, "infergw_request_seconds", "End-to-end time, arrival to response.",
			offsetof(struct met_series, e2e), 1);
	met_render_hist(out, s, n, "infergw_reject_seconds",
			"Time from arrival to a 429 answer (admission or displacement).",
			offsetof(struct met_series, reject), 1);
	met_render_hist(out, s, n, "infergw_batch_rows", "Rows per executed batch.",
			offsetof(struct met_series, batch), 0);
	evbuffer_add_printf(out, "# HELP infergw_config_reload_total Configuration reloads by result.\n"
				 "# TYPE infergw_config_reload_total counter\n"
				 "infergw_config_reload_total{result=\"success\"} %llu\n"
				 "infergw_config_reload_total{result=\"failure\"} %llu\n",
			    (unsigned long long)ld(&met_reloads[1]),
			    (unsigned long long)ld(&met_reloads[0]));
}
