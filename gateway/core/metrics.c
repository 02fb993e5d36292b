/* metrics.c - see metrics.h. */
#define _GNU_SOURCE	/* asprintf */
#include "metrics.h"

#include <event2/buffer.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/*
 * Upper bounds of the latency buckets, in ns (25 µs .. 10 s).  A sample
 * goes to the first bound >= it: the bucket the seconds compare (ns / 1e9
 * <= bound / 1e9, as doubles) gave, as each bound / 1e9 is the double
 * nearest the decimal le and a nanosecond more is far above it
 * (test_metrics checks each bound, 1 ns either side, 0 and the huge).
 * The exposition prints bound / 1e9 (%g: 2.5e-05 .. 10).  Padded to a
 * power of two with bounds no sample exceeds, for met_observe_ns's search.
 */
#define MET_LAT_SEARCH 32
static const uint64_t met_lat_le_ns[MET_LAT_SEARCH] = {
	25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
	25000000, 50000000, 100000000, 250000000, 500000000, 1000000000, 2500000000,
	5000000000, 10000000000,
	[MET_LAT_BUCKETS ... MET_LAT_SEARCH - 1] = UINT64_MAX,
};
static const char *const met_outcomes[OUT_N] = {
	"success", "rejected", "expired", "cancelled", "error",
};

const char *met_outcome_name(enum outcome o)
{
	return met_outcomes[o];
}

static pthread_mutex_t met_lock = PTHREAD_MUTEX_INITIALIZER;
static struct met_series **met_reg;	/* grows: every series is exported */
static int met_n, met_cap;
static _Atomic uint64_t met_reloads[2];	/* failure, success */

static uint64_t ld(const _Atomic uint64_t *v)
{
	return atomic_load_explicit((_Atomic uint64_t *)v, memory_order_relaxed);
}

char *met_label_escape(const char *v)
{
	size_t n = 0;
	char *out, *p;

	for (const char *q = v; *q; q++)
		n += *q == '\\' || *q == '"' || *q == '\n' ? 2 : 1;
	out = malloc(n + 1);
	if (!out)
		return NULL;
	for (p = out; *v; v++) {
		if (*v == '\\' || *v == '"') {
			*p++ = '\\';
			*p++ = *v;
		} else if (*v == '\n') {
			*p++ = '\\';
			*p++ = 'n';
		} else {
			*p++ = *v;
		}
	}
	*p = 0;
	return out;
}

/* backend="B",model="M", escaped once for every render. */
static char *met_series_labels(const char *backend, const char *model, const char *variant)
{
	char *b = met_label_escape(backend), *m = met_label_escape(model), *out = NULL;
	char *v = variant ? met_label_escape(variant) : NULL;

	if (b && m && (!variant || v) &&
	    asprintf(&out, "backend=\"%s\",model=\"%s\"%s%s%s", b, m, v ? ",variant=\"" : "",
		     v ? v : "", v ? "\"" : "") < 0)
		out = NULL;
	free(b);
	free(m);
	free(v);
	return out;
}

static void met_series_free(struct met_series *s)
{
	if (!s)
		return;
	for (int i = 0; i < MET_SHARDS; i++)
		free(atomic_load(&s->shard[i]));
	free(atomic_load(&s->bsize));
	free((char *)s->backend);
	free((char *)s->model);
	free((char *)s->variant);
	free((char *)s->lbl);
	free(s);
}

/* Append s to the registry; false when out of memory. */
static bool met_register(struct met_series *s)
{
	if (met_n == met_cap) {
		int cap = met_cap ? 2 * met_cap : 64;
		struct met_series **r = realloc(met_reg, (size_t)cap * sizeof(*r));

		if (!r)
			return false;
		met_reg = r;
		met_cap = cap;
	}
	met_reg[met_n++] = s;
	return true;
}

struct met_series *met_lookup(const char *backend, const char *model)
{
	return met_lookup_variant(backend, model, NULL);
}

/* Same variant: both none, or both the same name. */
static bool met_same_variant(const char *a, const char *b)
{
	return a == b || (a && b && !strcmp(a, b));
}

struct met_series *met_lookup_variant(const char *backend, const char *model, const char *variant)
{
	struct met_series *s = NULL;

	pthread_mutex_lock(&met_lock);
	for (int i = 0; i < met_n; i++)
		if (!strcmp(met_reg[i]->backend, backend) && !strcmp(met_reg[i]->model, model) &&
		    met_same_variant(met_reg[i]->variant, variant)) {
			s = met_reg[i];
			goto out_unlock;
		}
	s = aligned_alloc(_Alignof(struct met_series), sizeof(*s));	/* its met_cnt's lines */
	if (!s)
		goto out_unlock;
	memset(s, 0, sizeof(*s));
	s->backend = strdup(backend);
	s->model = strdup(model);
	s->variant = variant ? strdup(variant) : NULL;
	s->lbl = met_series_labels(backend, model, variant);
	if (!s->backend || !s->model || !s->lbl || (variant && !s->variant)) {
		met_series_free(s);
		s = NULL;
	} else if (!met_register(s)) {
		/* Out of memory growing the registry: the series still counts,
		 * it is just not exported (and lives until exit). */
	}
out_unlock:
	pthread_mutex_unlock(&met_lock);
	return s;
}

struct met_series **met_all(int *n)
{
	struct met_series **out;

	pthread_mutex_lock(&met_lock);
	*n = met_n;
	out = malloc((met_n ? met_n : 1) * sizeof(*out));
	if (!out)
		*n = 0;
	else if (met_n)
		memcpy(out, met_reg, met_n * sizeof(*out));
	pthread_mutex_unlock(&met_lock);
	return out;
}

void met_free_all(void)
{
	pthread_mutex_lock(&met_lock);
	for (int i = 0; i < met_n; i++)
		met_series_free(met_reg[i]);
	free(met_reg);
	met_reg = NULL;
	met_n = met_cap = 0;
	pthread_mutex_unlock(&met_lock);
}

void met_reload(bool ok)
{
	atomic_fetch_add(&met_reloads[ok], 1);
}

static void met_add(struct met_hist *h, int b, uint64_t v)
{
	met_inc(&h->bucket[b], 1, h->own);
	met_inc(&h->sum, v, h->own);
}

uint64_t met_hist_count(const struct met_hist *h)
{
	uint64_t n = 0;

	for (int b = 0; b <= MET_LAT_BUCKETS; b++)
		n += atomic_load_explicit(&h->bucket[b], memory_order_relaxed);
	return n;
}

void met_observe_ns(struct met_hist *h, uint64_t ns)
{
	unsigned b = 0;

	/* The first bucket whose bound is >= ns (MET_LAT_BUCKETS: +Inf, the
	 * first padding bound), by halves of a fixed count, unrolled: a
	 * compare and a conditional add each, no loop test. */
#pragma GCC unroll 8
	for (unsigned step = MET_LAT_SEARCH / 2; step; step /= 2)
		b += ns > met_lat_le_ns[b + step - 1] ? step : 0;
	met_add(h, (int)b, ns);
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

	met_observe_rows(&met_cnt_of(s)->batch, rows > 0 ? (uint64_t)rows : 0);
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

/* met_later - *t becomes now unless it holds a later time already: threads
 * sharing a shard (past MET_SHARDS live ones) answer in any order, and a
 * plain store let an earlier answer's time overwrite a later one's. */
static void met_later(_Atomic uint64_t *t, uint64_t now, bool own)
{
	uint64_t old = atomic_load_explicit(t, memory_order_relaxed);

	if (own) {
		if (old < now)
			atomic_store_explicit(t, now, memory_order_relaxed);
		return;
	}
	while (old < now && !atomic_compare_exchange_weak_explicit(t, &old, now, memory_order_relaxed,
								    memory_order_relaxed))
		;
}

/* The answer's time stays on the monotonic clock the caller read anyway
 * (stats.c makes it wall-clock ms when asked): no second clock read per
 * request (CLOCK_REALTIME here was ~1% of a digits request's loop time). */
void met_finish(struct met_cnt *k, bool ok, int rows, uint64_t ns, uint64_t now)
{
	if (ok)
		met_inc(&k->rows_ok, (uint64_t)rows, k->own);
	else
		met_inc(&k->fail_ns, ns, k->own);
	met_later(&k->last_ns, now, k->own);
}

void met_count(struct met_cnt *k, enum outcome o)
{
	met_inc(&k->outcome[o], 1, k->own);
}

void met_error(struct met_series *s, uint64_t ns, uint64_t now)
{
	struct met_cnt *k;

	if (!s)
		return;
	k = met_cnt_of(s);
	met_count(k, OUT_ERROR);
	met_finish(k, false, 0, ns, now);
}

void met_slo(struct met_cnt *k, bool met)
{
	met_inc(met ? &k->slo_met : &k->slo_missed, 1, k->own);
}

/* ------------------------------------------------ per-thread counts -- */

/* Shard numbers: bit i of met_free_ids set while no live thread holds
 * number i.  A thread takes the lowest free number at its first count and
 * gives it back when it exits (met_key's destructor), so backends'
 * threads restarted by reloads do not use the numbers up; past
 * MET_SHARDS live threads, MET_SHARDS, shared.  The number's next holder
 * takes it by a compare-and-swap on met_free_ids after the last one's
 * release there: its plain adds follow the previous holder's. */
static _Atomic uint64_t met_free_ids = UINT64_MAX;
static _Thread_local int met_shard_id = -1;
static pthread_key_t met_key;
static pthread_once_t met_key_once = PTHREAD_ONCE_INIT;
static bool met_key_ok;

_Static_assert(MET_SHARDS == 64, "met_free_ids has a bit per shard");

static void met_id_release(void *v)
{
	int id = (int)(intptr_t)v - 1;

	met_shard_id = MET_SHARDS;	/* a later destructor's counts: shared */
	atomic_fetch_or(&met_free_ids, 1ull << id);
}

static void met_key_init(void)
{
	met_key_ok = pthread_key_create(&met_key, met_id_release) == 0;
}

/* The lowest free number, taken; -1 when every one is held. */
static int met_id_take(void)
{
	uint64_t f = atomic_load(&met_free_ids);
	int id;

	do {
		if (!f)
			return -1;
		id = __builtin_ctzll(f);
	} while (!atomic_compare_exchange_weak(&met_free_ids, &f, f & ~(1ull << id)));
	return id;
}

int met_thread_shard(void)
{
	int id;

	if (met_shard_id >= 0)
		return met_shard_id;
	pthread_once(&met_key_once, met_key_init);
	id = met_key_ok ? met_id_take() : -1;
	if (id >= 0 && pthread_setspecific(met_key, (void *)(intptr_t)(id + 1))) {
		met_id_release((void *)(intptr_t)(id + 1));	/* cannot give it back at exit */
		id = -1;
	}
	met_shard_id = id < 0 ? MET_SHARDS : id;
	return met_shard_id;
}

/* Shard i's counts of s, allocated at its holder's first count (one
 * writer: own); the series' first (shared) without memory.  Only shard
 * i's holder installs it, and a later holder finds it. */
static struct met_cnt *met_shard_new(struct met_series *s, int i)
{
	struct met_cnt *k = aligned_alloc(_Alignof(struct met_cnt), sizeof(*k));

	if (!k)
		return &s->first;
	memset(k, 0, sizeof(*k));
	k->own = k->queue.own = k->exec.own = k->e2e.own = k->reject.own = k->batch.own = true;
	atomic_store_explicit(&s->shard[i], k, memory_order_release);
	return k;
}

struct met_cnt *met_cnt_of(struct met_series *s)
{
	int i = met_thread_shard();
	struct met_cnt *k;

	if (i == MET_SHARDS)
		return &s->first;
	k = atomic_load_explicit(&s->shard[i], memory_order_acquire);
	return k ? k : met_shard_new(s, i);
}

/* sum += v, on a reader's private sum (no other thread writes it). */
static void met_add_to(_Atomic uint64_t *sum, const _Atomic uint64_t *v)
{
	atomic_store_explicit(sum, ld(sum) + ld(v), memory_order_relaxed);
}

static void met_hist_add_to(struct met_hist *sum, const struct met_hist *h)
{
	for (int b = 0; b <= MET_LAT_BUCKETS; b++)
		met_add_to(&sum->bucket[b], &h->bucket[b]);
	met_add_to(&sum->sum, &h->sum);
}

/* Add k's counts to sum's (last_ns: the later). */
static void met_cnt_add_to(struct met_cnt *sum, const struct met_cnt *k)
{
	for (int o = 0; o < OUT_N; o++)
		met_add_to(&sum->outcome[o], &k->outcome[o]);
	met_add_to(&sum->slo_met, &k->slo_met);
	met_add_to(&sum->slo_missed, &k->slo_missed);
	met_hist_add_to(&sum->queue, &k->queue);
	met_hist_add_to(&sum->exec, &k->exec);
	met_hist_add_to(&sum->e2e, &k->e2e);
	met_hist_add_to(&sum->reject, &k->reject);
	met_hist_add_to(&sum->batch, &k->batch);
	met_add_to(&sum->rows_ok, &k->rows_ok);
	met_add_to(&sum->fail_ns, &k->fail_ns);
	if (ld(&k->last_ns) > ld(&sum->last_ns))
		atomic_store_explicit(&sum->last_ns, ld(&k->last_ns), memory_order_relaxed);
}

void met_read(const struct met_series *s, struct met_cnt *sum)
{
	memset(sum, 0, sizeof(*sum));
	met_cnt_add_to(sum, &s->first);
	for (int i = 0; i < MET_SHARDS; i++) {
		const struct met_cnt *k = atomic_load_explicit(
			&((struct met_series *)s)->shard[i], memory_order_acquire);

		if (k)
			met_cnt_add_to(sum, k);
	}
}

#define LBL "%s"	/* met_series.lbl */

/* One histogram family; off = which member of met_cnt, t[i] s[i]'s sums. */
static void met_render_hist(struct evbuffer *out, struct met_series *const *s,
			    struct met_cnt *t, int n, const char *name, const char *help,
			    size_t off, int lat)
{
	evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
	for (int i = 0; i < n; i++) {
		struct met_hist *h = (struct met_hist *)((char *)&t[i] + off);
		int nb = lat ? MET_LAT_BUCKETS : MET_BATCH_BUCKETS;
		uint64_t cum = 0;

		for (int b = 0; b < nb; b++) {
			cum += ld(&h->bucket[b]);
			if (lat)
				evbuffer_add_printf(out, "%s_bucket{" LBL ",le=\"%g\"} %llu\n", name,
						    s[i]->lbl, met_lat_le_ns[b] / 1e9,
						    (unsigned long long)cum);
			else
				evbuffer_add_printf(out, "%s_bucket{" LBL ",le=\"%d\"} %llu\n", name,
						    s[i]->lbl, 1 << b,
						    (unsigned long long)cum);
		}
		/* the rest (the +Inf bucket; a batch histogram's unused ones) */
		for (int b = nb; b <= MET_LAT_BUCKETS; b++)
			cum += ld(&h->bucket[b]);
		evbuffer_add_printf(out, "%s_bucket{" LBL ",le=\"+Inf\"} %llu\n", name,
				    s[i]->lbl, (unsigned long long)cum);
		if (lat)
			evbuffer_add_printf(out, "%s_sum{" LBL "} %.9f\n", name, s[i]->lbl,
					    ld(&h->sum) / 1e9);
		else
			evbuffer_add_printf(out, "%s_sum{" LBL "} %llu\n", name, s[i]->lbl,
					    (unsigned long long)ld(&h->sum));
		evbuffer_add_printf(out, "%s_count{" LBL "} %llu\n", name, s[i]->lbl,
				    (unsigned long long)cum);
	}
}

void met_render(struct evbuffer *out, struct met_series *const *s, int n)
{
	/* Every series summed once: each family renders from these. */
	struct met_cnt *t = n ? aligned_alloc(_Alignof(struct met_cnt), (size_t)n * sizeof(*t)) : NULL;

	if (n && !t) {
		evbuffer_add_printf(out, "# infergw: out of memory summing %d series\n", n);
		n = 0;
	}
	for (int i = 0; i < n; i++)
		met_read(s[i], &t[i]);
	evbuffer_add_printf(out, "# HELP infergw_requests_total Inference requests by outcome.\n"
				 "# TYPE infergw_requests_total counter\n");
	for (int i = 0; i < n; i++)
		for (int o = 0; o < OUT_N; o++)
			evbuffer_add_printf(out, "infergw_requests_total{" LBL ",outcome=\"%s\"} %llu\n",
					    s[i]->lbl, met_outcomes[o],
					    (unsigned long long)ld(&t[i].outcome[o]));
	evbuffer_add_printf(out, "# HELP infergw_slo_total Answered requests with a deadline, by whether it was met.\n"
				 "# TYPE infergw_slo_total counter\n");
	for (int i = 0; i < n; i++)
		evbuffer_add_printf(out, "infergw_slo_total{" LBL ",result=\"met\"} %llu\n"
					 "infergw_slo_total{" LBL ",result=\"missed\"} %llu\n",
				    s[i]->lbl, (unsigned long long)ld(&t[i].slo_met),
				    s[i]->lbl, (unsigned long long)ld(&t[i].slo_missed));
	met_render_hist(out, s, t, n, "infergw_queue_seconds", "Time from arrival to batch start.",
			offsetof(struct met_cnt, queue), 1);
	met_render_hist(out, s, t, n, "infergw_execute_seconds", "Batch execution time per request.",
			offsetof(struct met_cnt, exec), 1);
	met_render_hist(out, s, t, n, "infergw_request_seconds", "End-to-end time, arrival to response.",
			offsetof(struct met_cnt, e2e), 1);
	met_render_hist(out, s, t, n, "infergw_reject_seconds",
			"Time from arrival to a 429 answer (admission or displacement).",
			offsetof(struct met_cnt, reject), 1);
	met_render_hist(out, s, t, n, "infergw_batch_rows", "Rows per executed batch.",
			offsetof(struct met_cnt, batch), 0);
	evbuffer_add_printf(out, "# HELP infergw_config_reload_total Configuration reloads by result.\n"
				 "# TYPE infergw_config_reload_total counter\n"
				 "infergw_config_reload_total{result=\"success\"} %llu\n"
				 "infergw_config_reload_total{result=\"failure\"} %llu\n",
			    (unsigned long long)ld(&met_reloads[1]),
			    (unsigned long long)ld(&met_reloads[0]));
	free(t);
}

static void (*met_hooks[MET_MAX_HOOKS])(struct evbuffer *out);
static _Atomic int met_n_hooks;

void met_on_render(void (*fn)(struct evbuffer *out))
{
	int n = atomic_load(&met_n_hooks);

	for (int i = 0; i < n; i++)
		if (met_hooks[i] == fn)
			return;
	if (n == MET_MAX_HOOKS)
		return;
	met_hooks[n] = fn;
	atomic_store(&met_n_hooks, n + 1);
}

void met_render_hooks(struct evbuffer *out)
{
	int n = atomic_load(&met_n_hooks);

	for (int i = 0; i < n; i++)
		met_hooks[i](out);
}
