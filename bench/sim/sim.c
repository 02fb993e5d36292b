/*
 * sim.c - data-centre-scale simulator of infergw's routing, queueing and
 * batching, in virtual time.
 *
 * It links the gateway's policy files as they are (gateway/sched/policy.c,
 * router.c, squeue.c, batcher.c, svctime.c) and calls them for every
 * decision, the very calls the scheduler makes under its lock; this file
 * keeps time (one binary heap of events: arrivals, batch completions,
 * batcher wake-ups), draws random numbers, executes batches from a profile
 * (measured CPU, derived GPU/DPU) x jitter, and counts.  No threads, no
 * clock reads.
 *
 *   rt_submit / rt_candidates / sched_view / sched_enqueue
 *       -> sim_submit, sim_candidates, sim_cand (pol_prepare, pol_view,
 *          router_pick, pol_admit)
 *   scheduler worker loop: sched_expire, sched_pick, sched_take,
 *   sched_learn -> be_poll, be_expire, be_start, be_done (pol_expire,
 *          pol_cut, pol_take, pol_learn)
 *   sched_wait's timed wait / enqueue signal -> WAKE events / be_poll on push
 *
 * usage: see usage() or bench/sim/README.md.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "batcher.h"
#include "infer.h"
#include "policy.h"
#include "router.h"
#include "squeue.h"
#include "svctime.h"

#define MAX_PROFILES 8
#define MAX_CLASSES 8
#define MAX_GROUPS 16
#define MAX_CAND_OLD 32		/* rt_submit's cand[32] before efa0c5d (--candidates first32) */
#define N_KINDS 3
#define HIST_BINS 512		/* latency histogram: 16 bins per power of two */
#define NONE UINT64_MAX

static const char *const kind_names[N_KINDS] = { "cpu", "gpu", "dpu" };

/* ---- random numbers: xoshiro256**, one stream per purpose ---- */

struct rng {
	uint64_t s[4];
};

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed * 0x100000001b3ull + stream * 0x9e3779b97f4a7c15ull + 1;

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
	uint64_t *s = r->s, res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

/* uniform in (0, 1) */
static double rng_unif(struct rng *r)
{
	return ((rng_next(r) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double rng_exp(struct rng *r, double mean)
{
	return -mean * log(rng_unif(r));
}

static double rng_normal(struct rng *r)
{
	return sqrt(-2.0 * log(rng_unif(r))) * cos(2 * M_PI * rng_unif(r));
}

/* ---- configuration ---- */

struct profile {
	char path[1100];
	int kind;			/* index into kind_names */
	int slots, max_batch, pad;
	double cost, jitter_cv, a_us, b_us;
	double table_us[SVC_BUCKETS];	/* measured per power-of-two bucket; 0 = none */
	double int8_speedup;		/* INT8 variant: t8(n) = t(n) / this; 0 = none here */
};

struct group {			/* [backend] section: count backends of one profile */
	int prof, count;
};

enum arrival_kind { ARR_POISSON, ARR_ONOFF };

struct class {
	char name[32];
	int prio;
	double slo_ms;			/* <0: the model's slo_ms */
	double share;			/* of load x capacity */
	double rate;			/* absolute req/s (overrides share) */
	int rows, rows_max;
	double multi_frac;		/* share of requests with 2..rows_max rows */
	enum arrival_kind arr;
	double on_ms, off_ms, peak;	/* on/off (MMPP-2): rate peak x mean while on */
	/* run state */
	double mean_rate, rate_on, rate_off;
	bool on;
	double state_end_s;		/* virtual seconds */
	double next_s;
	struct rng rng;
};

struct scenario {
	char path[512], name[128];
	/* routing */
	enum route_policy policy;
	uint32_t margin_us;
	int levels, sheddable_levels;
	double shed_frac;
	/* model */
	int model_max_batch, max_queue, adaptive, n_preferred;
	int preferred[BATCH_MAX_PREFERRED];
	uint32_t delay_us;
	double model_slo_ms;
	/* fleet and traffic */
	int n_prof, n_groups, n_classes;
	struct profile prof[MAX_PROFILES];
	struct group grp[MAX_GROUPS];
	struct class cls[MAX_CLASSES];
	/* sim */
	double warmup;
	int cand_mode;			/* CAND_ALL, CAND_FIRST32, CAND_SAMPLE */
	int cand_d;
	int drop_hopeless;		/* [routing] drop_hopeless (gateway default: on) */
	/* what-ifs, off by default (= the gateway's behaviour today) */
	int exec_fill;			/* router: a batch that does not start now runs full */
	int strict_margin;		/* router: no fallback inside the margin (429 late instead) */
	int displace_last;		/* router: displace only when no queue has room */
	int reroute_displaced;		/* sched_enqueue: route a displaced request again */
	/* --int8: the model's INT8 variant beside FP32 on every backend whose
	 * profile has int8_speedup (issue 15; the accurate variant policy) */
	int int8;
	double int8_speedup;		/* --int8-speedup: overrides the profiles' (> 0) */
};

/* Candidate sets: every usable backend (rt_candidates since efa0c5d), the
 * first 32 in config order (before efa0c5d), D sampled at random (what-if). */
enum { CAND_ALL, CAND_FIRST32, CAND_SAMPLE };

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "sim: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = 0;
	return s;
}

/* The next meaningful line of a key = value file: comment cut, trimmed,
 * never empty; NULL at the end.  *line counts lines read. */
static char *ini_next(FILE *f, char *buf, int n, int *line)
{
	while (fgets(buf, n, f)) {
		char *s;

		(*line)++;
		if ((s = strchr(buf, '#')))
			*s = 0;
		s = trim(buf);
		if (*s)
			return s;
	}
	return NULL;
}

/* Split "key = value" in place; dies naming path:line otherwise. */
static void ini_split(const char *path, int line, char *s, char **k, char **v)
{
	char *eq = strchr(s, '=');

	if (!eq)
		die("%s:%d: expected key = value", path, line);
	*eq = 0;
	*k = trim(s);
	*v = trim(eq + 1);
}

static void dir_of(const char *path, char *out, size_t n)
{
	const char *sl = strrchr(path, '/');

	if (!sl)
		snprintf(out, n, ".");
	else
		snprintf(out, n, "%.*s", (int)(sl - path), path);
}

static double num(const char *file, int line, const char *k, const char *v)
{
	char *end;
	double d = strtod(v, &end);

	if (end == v || *trim(end))
		die("%s:%d: %s: not a number: '%s'", file, line, k, v);
	return d;
}

static void load_profile(struct profile *p, const char *path)
{
	FILE *f = fopen(path, "r");
	char buf[1024];
	int line = 0;

	if (!f)
		die("%s: %s", path, strerror(errno));
	memset(p, 0, sizeof(*p));
	snprintf(p->path, sizeof(p->path), "%s", path);
	p->kind = -1;
	p->slots = 1;
	p->max_batch = 64;
	p->cost = 1;
	p->pad = 1;
	for (char *s; (s = ini_next(f, buf, sizeof(buf), &line));) {
		char *k, *v;

		ini_split(path, line, s, &k, &v);
		if (!strcmp(k, "kind")) {
			for (int i = 0; i < N_KINDS; i++)
				if (!strcmp(v, kind_names[i]))
					p->kind = i;
			if (p->kind < 0)
				die("%s:%d: kind must be cpu, gpu or dpu", path, line);
		} else if (!strcmp(k, "slots")) {
			p->slots = (int)num(path, line, k, v);
		} else if (!strcmp(k, "max_batch")) {
			p->max_batch = (int)num(path, line, k, v);
		} else if (!strcmp(k, "pad")) {
			p->pad = (int)num(path, line, k, v);
		} else if (!strcmp(k, "cost")) {
			p->cost = num(path, line, k, v);
		} else if (!strcmp(k, "jitter_cv")) {
			p->jitter_cv = num(path, line, k, v);
		} else if (!strcmp(k, "a_us")) {
			p->a_us = num(path, line, k, v);
		} else if (!strcmp(k, "b_us")) {
			p->b_us = num(path, line, k, v);
		} else if (!strcmp(k, "int8_speedup")) {
			p->int8_speedup = num(path, line, k, v);
		} else if (!strcmp(k, "table_us")) {
			/* "1:5619 2:5702 ..." rows:microseconds, rows a power of two */
			for (char *tok = strtok(v, " \t,"); tok; tok = strtok(NULL, " \t,")) {
				int rows;
				double us;

				if (sscanf(tok, "%d:%lf", &rows, &us) != 2 || rows < 1 ||
				    (rows & (rows - 1)) || us <= 0)
					die("%s:%d: table_us entry '%s' (want ROWS:US, ROWS a power of two)",
					    path, line, tok);
				p->table_us[svc_bucket(rows)] = us;
			}
		} else {
			die("%s:%d: unknown key '%s'", path, line, k);
		}
	}
	fclose(f);
	if (p->kind < 0)
		die("%s: kind missing", path);
	if (p->slots < 1 || p->max_batch < 1 || (p->a_us <= 0 && p->b_us <= 0 && !p->table_us[0]))
		die("%s: need slots >= 1, max_batch >= 1 and a service time", path);
}

static void class_defaults(struct class *c)
{
	memset(c, 0, sizeof(*c));
	c->prio = 1;
	c->slo_ms = -1;
	c->rate = -1;
	c->rows = 1;
	c->rows_max = 1;
	/* bursts: 20 ms at 3x the mean rate, then 80 ms at 0.5x (MMPP-2) */
	c->peak = 3;
	c->on_ms = 20;
	c->off_ms = 80;
}

static void load_scenario(struct scenario *sc, const char *path)
{
	FILE *f = fopen(path, "r");
	char buf[1024], dir[512], sect[32] = "";
	const char *base;
	int line = 0;

	if (!f)
		die("%s: %s", path, strerror(errno));
	memset(sc, 0, sizeof(*sc));
	snprintf(sc->path, sizeof(sc->path), "%s", path);
	base = strrchr(path, '/');
	base = base ? base + 1 : path;
	snprintf(sc->name, sizeof(sc->name), "%.*s", (int)strcspn(base, "."), base);
	dir_of(path, dir, sizeof(dir));
	/* defaults: the gateway's (gateway/core/config.c, docs/config.md) */
	sc->policy = ROUTE_SLO;
	sc->margin_us = 1000;
	sc->levels = 3;
	sc->sheddable_levels = 1;
	sc->shed_frac = 0.5;
	sc->drop_hopeless = 1;
	sc->model_max_batch = 64;
	sc->max_queue = 1024;
	sc->delay_us = 0;
	sc->model_slo_ms = 0;
	sc->warmup = 0.05;
	sc->cand_mode = CAND_ALL;
	sc->cand_d = 32;
	for (char *s; (s = ini_next(f, buf, sizeof(buf), &line));) {
		char *k, *v;

		if (*s == '[') {
			snprintf(sect, sizeof(sect), "%.*s", (int)strcspn(s + 1, "]"), s + 1);
			if (!strcmp(sect, "backend")) {
				if (sc->n_groups == MAX_GROUPS)
					die("%s:%d: too many [backend] sections", path, line);
				sc->grp[sc->n_groups++] = (struct group){ .prof = -1, .count = 1 };
			} else if (!strcmp(sect, "class")) {
				if (sc->n_classes == MAX_CLASSES)
					die("%s:%d: too many [class] sections", path, line);
				class_defaults(&sc->cls[sc->n_classes++]);
			} else if (strcmp(sect, "routing") && strcmp(sect, "model") &&
				   strcmp(sect, "sim")) {
				die("%s:%d: unknown section [%s]", path, line, sect);
			}
			continue;
		}
		ini_split(path, line, s, &k, &v);
		if (!strcmp(sect, "routing")) {
			if (!strcmp(k, "policy")) {
				int p = router_policy_parse(v);

				if (p < 0)
					die("%s:%d: policy '%s'", path, line, v);
				sc->policy = p;
			} else if (!strcmp(k, "margin_us"))
				sc->margin_us = (uint32_t)num(path, line, k, v);
			else if (!strcmp(k, "priority_levels"))
				sc->levels = (int)num(path, line, k, v);
			else if (!strcmp(k, "sheddable_levels"))
				sc->sheddable_levels = (int)num(path, line, k, v);
			else if (!strcmp(k, "shed_wait_fraction"))
				sc->shed_frac = num(path, line, k, v);
			else if (!strcmp(k, "drop_hopeless"))
				sc->drop_hopeless = (int)num(path, line, k, v);
			else
				die("%s:%d: unknown key '%s' in [routing]", path, line, k);
		} else if (!strcmp(sect, "model")) {
			if (!strcmp(k, "max_batch"))
				sc->model_max_batch = (int)num(path, line, k, v);
			else if (!strcmp(k, "max_queue"))
				sc->max_queue = (int)num(path, line, k, v);
			else if (!strcmp(k, "max_queue_delay_us"))
				sc->delay_us = (uint32_t)num(path, line, k, v);
			else if (!strcmp(k, "slo_ms"))
				sc->model_slo_ms = num(path, line, k, v);
			else if (!strcmp(k, "adaptive_batching"))
				sc->adaptive = (int)num(path, line, k, v);
			else if (!strcmp(k, "preferred_batch_sizes")) {
				for (char *tok = strtok(v, " \t,[]"); tok && sc->n_preferred <
				     BATCH_MAX_PREFERRED; tok = strtok(NULL, " \t,[]"))
					sc->preferred[sc->n_preferred++] = atoi(tok);
			} else
				die("%s:%d: unknown key '%s' in [model]", path, line, k);
		} else if (!strcmp(sect, "backend")) {
			struct group *g = &sc->grp[sc->n_groups - 1];

			if (!strcmp(k, "profile")) {
				char p[1100];
				int i;

				snprintf(p, sizeof(p), "%s/%s", dir, v);
				for (i = 0; i < sc->n_prof; i++)
					if (!strcmp(sc->prof[i].path, p))
						break;
				if (i == sc->n_prof) {
					if (sc->n_prof == MAX_PROFILES)
						die("%s:%d: too many profiles", path, line);
					load_profile(&sc->prof[sc->n_prof++], p);
				}
				g->prof = i;
			} else if (!strcmp(k, "count"))
				g->count = (int)num(path, line, k, v);
			else
				die("%s:%d: unknown key '%s' in [backend]", path, line, k);
		} else if (!strcmp(sect, "class")) {
			struct class *c = &sc->cls[sc->n_classes - 1];

			if (!strcmp(k, "name"))
				snprintf(c->name, sizeof(c->name), "%s", v);
			else if (!strcmp(k, "priority"))
				c->prio = (int)num(path, line, k, v);
			else if (!strcmp(k, "slo_ms"))
				c->slo_ms = num(path, line, k, v);
			else if (!strcmp(k, "share"))
				c->share = num(path, line, k, v);
			else if (!strcmp(k, "rate"))
				c->rate = num(path, line, k, v);
			else if (!strcmp(k, "rows"))
				c->rows = (int)num(path, line, k, v);
			else if (!strcmp(k, "rows_max"))
				c->rows_max = (int)num(path, line, k, v);
			else if (!strcmp(k, "multi_frac"))
				c->multi_frac = num(path, line, k, v);
			else if (!strcmp(k, "arrival")) {
				if (!strcmp(v, "poisson"))
					c->arr = ARR_POISSON;
				else if (!strcmp(v, "onoff"))
					c->arr = ARR_ONOFF;
				else
					die("%s:%d: arrival poisson|onoff", path, line);
			} else if (!strcmp(k, "burst_on_ms"))
				c->on_ms = num(path, line, k, v);
			else if (!strcmp(k, "burst_off_ms"))
				c->off_ms = num(path, line, k, v);
			else if (!strcmp(k, "burst_peak"))
				c->peak = num(path, line, k, v);
			else
				die("%s:%d: unknown key '%s' in [class]", path, line, k);
		} else if (!strcmp(sect, "sim")) {
			if (!strcmp(k, "warmup"))
				sc->warmup = num(path, line, k, v);
			else if (!strcmp(k, "candidates")) {
				if (!strcmp(v, "gateway") || !strcmp(v, "all"))
					sc->cand_mode = CAND_ALL;
				else if (!strcmp(v, "first32"))
					sc->cand_mode = CAND_FIRST32;
				else if (!strcmp(v, "sample"))
					sc->cand_mode = CAND_SAMPLE;
				else
					die("%s:%d: candidates gateway|all|first32|sample", path, line);
			} else if (!strcmp(k, "sample"))
				sc->cand_d = (int)num(path, line, k, v);
			else
				die("%s:%d: unknown key '%s' in [sim]", path, line, k);
		} else {
			die("%s:%d: key outside a section", path, line);
		}
	}
	fclose(f);
	if (!sc->n_groups || !sc->n_classes)
		die("%s: need at least one [backend] and one [class]", path);
	for (int i = 0; i < sc->n_groups; i++)
		if (sc->grp[i].prof < 0)
			die("%s: [backend] #%d has no profile", path, i + 1);
}

/* ---- backends and their execution profile ---- */

/* What the backend really takes for a batch of rows (before jitter). */
static double prof_time_ns(const struct profile *p, int rows)
{
	int b = svc_bucket(rows);
	double n = p->pad ? (double)(1 << b) : rows;

	if (p->pad && p->table_us[b] > 0)
		return p->table_us[b] * 1e3;
	if (p->table_us[0] > 0 && p->a_us <= 0 && p->b_us <= 0) {
		/* table only, no padding: interpolate between buckets */
		int lo = b > 0 ? b - 1 : 0;
		double x0 = 1 << lo, x1 = 1 << b, y0 = p->table_us[lo], y1 = p->table_us[b];

		if (y1 <= 0)
			y1 = y0;
		return (x1 > x0 ? y0 + (y1 - y0) * (rows - x0) / (x1 - x0) : y0) * 1e3;
	}
	return (p->a_us + p->b_us * n) * 1e3;
}

struct slot {
	bool running;
	int qi;				/* the queue (variant) its batch came from */
	uint64_t start, end, oldest;
	int n, rows;
	struct infer_slice *slices;
};

struct sim_be {
	const struct profile *p;
	int max_batch;			/* configured limit (sched_q.max_batch) */
	struct pol_queue q;		/* the queue's policy state (gateway/sched/policy.h) */
	struct pol_queue *qp;		/* &q: pb's one queue */
	/* --int8: the INT8 variant's queue (its own service time), pb's second */
	struct pol_queue q8;
	struct pol_queue *qps[2];	/* {&q, &q8}: pb.q when the backend has both */
	double speedup;			/* q8's: t8(n) = t(n) / speedup; 0 = no q8 */
	int rr_q;			/* sched_pick's round robin between its queues */
	struct pol_be pb;		/* the backend's policy state: q and busy_until */
	uint64_t *busy_until;		/* per slot (pb.busy_until) */
	int n_slots, idle;
	struct slot *slots;
	uint64_t wake_at;
	uint32_t wake_gen;
	uint64_t busy_ns, batches, rows_done, reqs_done;
	uint64_t stamp;			/* candidate sampling: drawn for request #stamp */
};

/* ---- requests ---- */

struct sim_req {
	struct infer_req r;		/* first: the queue links through it */
	int cls;
	bool counted;			/* arrived inside the measurement window */
};

/* r->status of a sliced request whose queued remainder was dropped while a
 * slice ran (sched_expire): counted then, answered when that slice ends. */
#define SIM_DROPPED 504

static struct sim_req *req_free;
static size_t req_allocated;

static struct sim_req *req_get(void)
{
	struct sim_req *q = req_free;

	if (q) {
		req_free = (struct sim_req *)q->r.next;
	} else {
		q = malloc(sizeof(*q));
		if (!q)
			die("out of memory");
		req_allocated++;
	}
	memset(&q->r, 0, offsetof(struct infer_req, errmsg));
	q->r.n_batches = 0;
	q->r.next = q->r.prev = NULL;
	return q;
}

static void req_put(struct sim_req *q)
{
	q->r.next = (struct infer_req *)req_free;
	req_free = q;
}

/* ---- events ---- */

enum { EV_ARRIVAL, EV_DONE, EV_WAKE };

struct event {
	uint64_t t, seq;
	uint32_t type, a, b;
};

static struct event *heap;
static size_t heap_n, heap_cap;
static uint64_t ev_seq, ev_count;

static inline bool ev_less(const struct event *x, const struct event *y)
{
	return x->t < y->t || (x->t == y->t && x->seq < y->seq);
}

static void ev_push(uint64_t t, uint32_t type, uint32_t a, uint32_t b)
{
	size_t i;

	if (heap_n == heap_cap) {
		heap_cap = heap_cap ? heap_cap * 2 : 1024;
		heap = realloc(heap, heap_cap * sizeof(*heap));
		if (!heap)
			die("out of memory");
	}
	i = heap_n++;
	struct event e = { .t = t, .seq = ev_seq++, .type = type, .a = a, .b = b };

	while (i > 0 && ev_less(&e, &heap[(i - 1) / 2])) {
		heap[i] = heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	heap[i] = e;
}

static struct event ev_pop(void)
{
	struct event top = heap[0], last = heap[--heap_n];
	size_t i = 0;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= heap_n)
			break;
		if (c + 1 < heap_n && ev_less(&heap[c + 1], &heap[c]))
			c++;
		if (!ev_less(&heap[c], &last))
			break;
		heap[i] = heap[c];
		i = c;
	}
	if (heap_n)
		heap[i] = last;
	return top;
}

/* ---- statistics ---- */

struct lvl_stats {
	uint64_t arrived, ok, late_done, expired, hopeless, displaced, bad400, rej[ROUTE_SHED + 1];
	uint64_t ok_win;		/* in-SLO answers completed inside the window (goodput) */
	uint64_t ok_win_rows;		/* their rows */
	uint64_t hist[HIST_BINS];	/* latency of completed requests */
	uint64_t done;
};

static int hist_bin(uint64_t ns)
{
	int b;

	if (ns < 1000)
		return 0;
	b = (int)(log2((double)ns / 1000.0) * 16.0) + 1;
	return b >= HIST_BINS ? HIST_BINS - 1 : b;
}

static double hist_q(const struct lvl_stats *s, double q)
{
	uint64_t want, acc = 0;

	if (!s->done)
		return NAN;
	want = (uint64_t)ceil(q * (double)s->done);
	for (int b = 0; b < HIST_BINS; b++) {
		acc += s->hist[b];
		if (acc >= want && acc)
			return b == 0 ? 0.001 : 1e-3 * pow(2.0, (b - 0.5) / 16.0);	/* ms */
	}
	return NAN;
}

/* ---- the simulation ---- */

static struct scenario S;
static struct sim_be *bes;
static int n_bes;
static struct lvl_stats st[SQ_MAX_LEVELS + 1];
static struct rng rng_exec, rng_cand;
static uint64_t g_rr;			/* rt->rr */
static uint64_t cand_stamp;
static uint64_t rng_sample;		/* router_sample's state (gateway power of d) */
static uint64_t n_routes, n_views, n_picks, n_widened;	/* routing cost counters */
static uint64_t n_widened_ok;		/* widened samples that found a backend */
static uint64_t n_widened_all, n_widened_all_ok;	/* full scans after a sample, and found */

/* rt_route's sample sizes: the gateway's power of d, and its wider second
 * sample (ROUTER_WIDEN_D; without one, a sample widens to every backend). */
#ifdef ROUTER_SAMPLE_D
#define SIM_SAMPLE_D ROUTER_SAMPLE_D
#else
#define SIM_SAMPLE_D 0
#endif
#ifdef ROUTER_WIDEN_D
#define SIM_WIDEN_D ROUTER_WIDEN_D
#else
#define SIM_WIDEN_D SIM_SAMPLE_D
#endif
static uint64_t n_total, n_made, warm_n;
static uint64_t t0_ns, t1_ns;
static double snap0[N_KINDS], snap1[N_KINDS], rsnap0[N_KINDS], rsnap1[N_KINDS];
static double kind_slots[N_KINDS], kind_cap_rows[N_KINDS];	/* rows/s at full batches */
static uint64_t kind_batches[N_KINDS], kind_rows[N_KINDS], kind_reqs[N_KINDS];
static double capacity_rps, capacity_rows, mean_rows;
static uint64_t int8_ok, all_ok;		/* answered in the window: by INT8, in all */
static uint64_t n_wakes, n_batches;

/* Busy slot-ns (out) and rows executed (rows) per kind, up to now. */
static void busy_snapshot(uint64_t now, double *out, double *rows)
{
	for (int k = 0; k < N_KINDS; k++)
		out[k] = rows[k] = 0;
	for (int i = 0; i < n_bes; i++) {
		struct sim_be *b = &bes[i];
		double busy = (double)b->busy_ns;

		for (int s = 0; s < b->n_slots; s++)
			if (b->slots[s].running && now > b->slots[s].start)
				busy += (double)(now - b->slots[s].start);
		out[b->p->kind] += busy;
		rows[b->p->kind] += (double)b->rows_done;
	}
}

static bool in_window;			/* between the window's first and last arrival */

static void req_finish_stats(struct sim_req *q, uint64_t now)
{
	struct lvl_stats *s = &st[q->r.priority];
	uint64_t lat = now - q->r.arrival_ns;

	if (in_window && (!q->r.deadline_ns || now <= q->r.deadline_ns)) {
		s->ok_win++;
		s->ok_win_rows += (uint64_t)q->r.rows;
	}
	if (!q->counted)
		return;
	s->done++;
	s->hist[hist_bin(lat)]++;
	if (!q->r.deadline_ns || now <= q->r.deadline_ns)
		s->ok++;
	else
		s->late_done++;
}

/*
 * --exec-fill (what-if): exec_ns assumes a batch that does not start now
 * runs full (later arrivals join it); pol_view predicts it from what is
 * queued now.  A sliced request keeps pol_view's prediction.
 */
static void sim_exec_fill(const struct sim_be *b, int qi, int rows, int prio, uint64_t now,
			  struct router_cand *c)
{
	const struct pol_queue *q = b->pb.q[qi];
	int eff = q->bp.max_batch, ahead = sq_rows_ahead(&q->sq, prio), fill;
	struct pol_place pl;

	pol_raw_wait(&b->pb, qi, rows, prio, now, &pl);
	if (pl.spans > 1)
		return;
	fill = c->wait_ns ? eff : pl.first + (q->sq.n_rows - ahead);
	c->exec_ns = svc_predict(&q->svc, fill < eff ? fill : eff);
}

static void be_schedule_wake(struct sim_be *b, int bi, uint64_t t)
{
	if (t == UINT64_MAX)
		return;
	if (b->wake_at != NONE && b->wake_at <= t)
		return;
	b->wake_at = t;
	b->wake_gen++;
	ev_push(t, EV_WAKE, (uint32_t)bi, b->wake_gen);
	n_wakes++;
}

/* sched_take (pol_take) from queue qi + the start of sched_run_batch, on idle slot s. */
static void be_start(struct sim_be *b, int bi, int qi, int rows, uint64_t now)
{
	struct slot *sl = NULL;
	int s, n;
	double exec, cv = b->p->jitter_cv;

	for (s = 0; s < b->n_slots; s++)
		if (!b->slots[s].running) {
			sl = &b->slots[s];
			break;
		}
	n = pol_take(&b->pb, qi, s, rows, now, sl->slices, b->max_batch, &sl->rows, &sl->oldest);
	sl->n = n;
	sl->qi = qi;
	exec = prof_time_ns(b->p, sl->rows) / (qi ? b->speedup : 1);
	if (cv > 0) {
		double sg = sqrt(log(1 + cv * cv));

		exec *= exp(sg * rng_normal(&rng_exec) - sg * sg / 2);
	}
	if (exec < 1)
		exec = 1;
	sl->running = true;
	sl->start = now;
	sl->end = now + (uint64_t)exec;
	b->idle--;
	n_batches++;
	ev_push(sl->end, EV_DONE, (uint32_t)bi, (uint32_t)s);
}

/*
 * sched_expire (pol_expire): 504 what is past its deadline and, with
 * drop_hopeless, what a batch started now would still finish too late.
 */
static void be_expire(struct sim_be *b, int qi, uint64_t now)
{
	uint64_t need;
	struct infer_req *r = pol_expire(b->pb.q[qi], now, &need), *next;

	for (; r; r = next) {
		struct sim_req *q = (struct sim_req *)r;

		next = r->next;
		if (q->counted) {
			if (r->deadline_ns <= now)
				st[r->priority].expired++;
			else
				st[r->priority].hopeless++;
		}
		r->status = SIM_DROPPED;
		if (sq_drop(r))
			req_put(q);
	}
}

/* The worker loop, once per idle slot: expire, pick (pol_cut), take. */
static void be_poll(struct sim_be *b, int bi, uint64_t now)
{
	while (b->idle > 0) {
		uint64_t w, wake = UINT64_MAX;
		int cut = 0, qi = 0;

		/* sched_pick: the queues in turn from the one after the last cut */
		for (int k = 0; k < b->pb.n_q && cut <= 0; k++) {
			qi = (b->rr_q + k) % b->pb.n_q;
			be_expire(b, qi, now);
			cut = pol_cut(b->pb.q[qi], now, false, &w);
			if (w < wake)
				wake = w;
		}
		if (cut > 0) {
			b->rr_q = qi + 1;
			be_start(b, bi, qi, cut, now);
			continue;
		}
		/* the batcher's moment or the earliest deadline (504 on time) */
		be_schedule_wake(b, bi, wake);
		break;
	}
}

/* Batch end: answer, then sched_learn (pol_learn), then the worker loops again. */
static void be_done(struct sim_be *b, int bi, int s, uint64_t now)
{
	struct slot *sl = &b->slots[s];
	uint64_t exec = sl->end - sl->start;

	for (int i = 0; i < sl->n; i++) {
		struct sim_req *q = (struct sim_req *)sl->slices[i].r;

		if (!q->r.n_batches++)
			q->r.exec_start_ns = sl->start;
		q->r.exec_end_ns = now;
		q->r.batch_rows = sl->rows;
		if (!sq_slice_done(&q->r))
			continue;
		if (q->r.status != SIM_DROPPED) {
			req_finish_stats(q, now);
			b->reqs_done++;
			if (in_window) {
				all_ok++;
				int8_ok += sl->qi == 1;
			}
		}
		req_put(q);
	}
	b->busy_ns += exec;
	b->batches++;
	b->rows_done += sl->rows;
	sl->running = false;
	pol_learn(&b->pb, sl->qi, s, sl->rows, exec, now, sl->oldest);
	b->idle++;
	be_poll(b, bi, now);
}

/* One backend's candidates, from c: rt_eligible's entries (FP32, then with
 * --int8 the INT8 variant at tier 1), sched_view (pol_view).  Returns how
 * many. */
static int sim_cand(int id, const struct sim_req *q, uint64_t now, struct router_cand *c)
{
	const struct sim_be *b = &bes[id];

	for (int qi = 0; qi < b->pb.n_q; qi++) {
		c[qi] = (struct router_cand){ .id = id, .qi = qi, .cost = b->p->cost, .tier = qi };
		pol_view(&b->pb, qi, q->r.rows, q->r.priority, now, &c[qi]);
		n_views++;
		if (S.exec_fill)
			sim_exec_fill(b, qi, q->r.rows, q->r.priority, now, &c[qi]);
	}
	return b->pb.n_q;
}

/*
 * Candidate backends for one request (rt_candidates): every backend (since
 * efa0c5d; with the gateway's power of d choices, router_sample's d: d is
 * ROUTER_SAMPLE_D, then ROUTER_WIDEN_D when that admitted nothing, 0 for
 * all), the first 32 (before efa0c5d; --candidates first32), or D at
 * random (what-if --candidates sample).  *sampled: fewer than every
 * backend were looked at, and the gateway widens a sample that admits
 * nothing.
 */
static int sim_candidates(const struct sim_req *q, uint64_t now, struct router_cand *cand,
			  int d, unsigned *rr, bool *sampled)
{
	int n = 0, cap = n_bes, k_drawn = 0;

	*sampled = false;
	if (S.cand_mode == CAND_SAMPLE && S.cand_d < n_bes) {
		cand_stamp++;
		while (k_drawn < S.cand_d) {
			int id = (int)(rng_next(&rng_cand) % (uint64_t)n_bes);

			if (bes[id].stamp == cand_stamp)
				continue;	/* drawn already for this request */
			bes[id].stamp = cand_stamp;
			n += sim_cand(id, q, now, &cand[n]);
			k_drawn++;
		}
		return n;
	}
#ifdef ROUTER_SAMPLE_D
	/* rt_pick: the gateway looks at a sample of the eligible backends */
	if (S.cand_mode == CAND_ALL && d > 0 && d < n_bes && n_bes > ROUTER_SCAN_ALL) {
		int idx[SIM_WIDEN_D];
		int drawn = router_sample(S.policy, n_bes, d < SIM_WIDEN_D ? d : SIM_WIDEN_D, *rr,
					  &rng_sample, idx);

		for (int k = 0; k < drawn; k++)
			n += sim_cand(idx[k], q, now, &cand[n]);
		*rr = 0;	/* the sample starts at the cursor's candidate */
		*sampled = drawn < n_bes;
		return n;
	}
#else
	(void)d;
	(void)rr;
#endif
	if (S.cand_mode == CAND_FIRST32 && cap > MAX_CAND_OLD)
		cap = MAX_CAND_OLD;
	for (int i = 0; i < cap; i++)
		n += sim_cand(i, q, now, &cand[n]);
	return n;
}

static struct router_cand *cand_buf, *cand_room;

/* router_pick over n candidates, with the --displace-last what-if. */
static enum route_result sim_pick(const struct route_req *rq, int n, unsigned rr, int *pick)
{
	struct route_conf rc = { .policy = S.policy, .margin_ns = (uint64_t)S.margin_us * 1000 };
	enum route_result why;

	if (S.displace_last) {
		/* what-if: first route as if nothing could be displaced (a
		 * queue at max_queue is full to everyone); displace only when
		 * that finds no backend */
		unsigned rr2 = rr;

		for (int i = 0; i < n; i++) {
			const struct squeue *sq = &bes[cand_buf[i].id].pb.q[cand_buf[i].qi]->sq;

			cand_room[i] = cand_buf[i];
			cand_room[i].full = sq->n_reqs >= sq->max_reqs;
		}
		n_picks++;
		why = router_pick(&rc, rq, cand_room, n, &rr2, pick);
		if (why == ROUTE_OK)
			return why;
	}
	n_picks++;
	return router_pick(&rc, rq, cand_buf, n, &rr, pick);
}

/*
 * One routing decision (rt_route without the enqueue): the candidates'
 * views, then the router's pick; a sample that admits nothing is widened
 * to every backend.  Not inlined, so that callgrind can count it alone
 * (bench/sim/route_cost.sh: --toggle-collect=sim_route).
 */
static __attribute__((noinline)) enum route_result
sim_route(const struct sim_req *q, uint64_t now, const struct route_req *rq, unsigned rr,
	  int *pick)
{
	unsigned rs = rr;
	bool sampled;
	int n = sim_candidates(q, now, cand_buf, SIM_SAMPLE_D, &rs, &sampled);
	enum route_result why = sim_pick(rq, n, rs, pick);

	n_routes++;
	/* rt_route: widen to a larger sample (ROUTER_WIDEN_D, where the
	 * gateway has it), then to every backend */
	if (why != ROUTE_OK && sampled && SIM_WIDEN_D > SIM_SAMPLE_D) {
		n_widened++;
		rs = rr;
		n = sim_candidates(q, now, cand_buf, SIM_WIDEN_D, &rs, &sampled);
		why = sim_pick(rq, n, rs, pick);
		n_widened_ok += why == ROUTE_OK;
	}
	if (why != ROUTE_OK && sampled) {
		n_widened_all++;
		n = sim_candidates(q, now, cand_buf, 0, &rr, &sampled);
		why = sim_pick(rq, n, rr, pick);
		n_widened_all_ok += why == ROUTE_OK;
	}
	return why;
}

/*
 * rt_submit: normalize (pol_prepare), route (router_pick), enqueue
 * (pol_admit); the enqueue wakes an idle slot.  again: a displaced
 * request routed anew (--reroute-displaced).
 */
static void sim_submit(struct sim_req *q, uint64_t now, bool again)
{
	struct infer_req *r = &q->r;
	uint64_t margin_ns = (uint64_t)S.margin_us * 1000;
	struct pol_prio_conf pc = { .levels = S.levels, .sheddable_levels = S.sheddable_levels,
				    .shed_wait_fraction = S.shed_frac };
	struct route_req rq;
	unsigned rr = (unsigned)g_rr++;
	int pick = -1, bi, rc2;
	enum route_result why;
	struct sim_be *b;
	struct infer_req *d = NULL;

	/* the model's priority is 1 (every class sets one) and its slo_ms
	 * whole milliseconds, as config.c keeps them */
	pol_prepare(&pc, 1, (uint64_t)S.model_slo_ms * 1000000, r, now, &rq);
	if (q->counted && !again)
		st[r->priority].arrived++;
	why = sim_route(q, now, &rq, rr, &pick);
	if (why == ROUTE_OK && S.strict_margin && S.policy == ROUTE_SLO && r->deadline_ns &&
	    now + cand_buf[pick].wait_ns + cand_buf[pick].exec_ns + margin_ns > r->deadline_ns)
		why = ROUTE_LATE;	/* what-if: router_slo's fallback taken away */
	if (why != ROUTE_OK) {
		if (q->counted)
			(again ? &st[r->priority].displaced : &st[r->priority].rej[why])[0]++;
		req_put(q);
		return;
	}
	bi = cand_buf[pick].id;
	b = &bes[bi];
	/* sched_enqueue: above a batch runs sliced; above the model is a 400;
	 * a full queue displaces its lowest request below r */
	rc2 = pol_admit(&b->pb, cand_buf[pick].qi, r, now, &d);
	if (rc2 == -E2BIG) {
		if (q->counted)
			st[r->priority].bad400++;
		req_put(q);
		return;
	}
	if (rc2) {
		if (d)
			die("sq_push failed after sq_displace");
		if (q->counted)
			(again ? &st[r->priority].displaced : &st[r->priority].rej[ROUTE_FULL])[0]++;
		req_put(q);
		return;
	}
	if (d && !S.reroute_displaced) {
		if (((struct sim_req *)d)->counted)
			st[d->priority].displaced++;
		req_put((struct sim_req *)d);
		d = NULL;
	}
	if (b->idle > 0)
		be_poll(b, bi, now);
	/* what-if: the displaced request is routed again (among the others,
	 * it can go wherever there is room) instead of answered 429; a 429
	 * only if that fails. */
	if (d)
		sim_submit((struct sim_req *)d, now, true);
}

/* ---- arrivals ---- */

static void class_start(struct class *c, int ci, uint64_t seed)
{
	rng_seed(&c->rng, seed, 100 + ci);
	if (c->mean_rate <= 0)
		return;
	if (c->arr == ARR_ONOFF) {
		double on = c->on_ms / 1e3, off = c->off_ms / 1e3;
		double maxpk = (on + off) / on;

		if (c->peak < 1 || c->peak > maxpk)
			die("class %s: burst_peak must be in 1..(on+off)/on = %.2f", c->name, maxpk);
		c->rate_on = c->peak * c->mean_rate;
		c->rate_off = (c->mean_rate * (on + off) - c->rate_on * on) / off;
		c->on = rng_unif(&c->rng) < on / (on + off);
		c->state_end_s = rng_exp(&c->rng, c->on ? on : off);
	}
}

/* Next arrival time of class c after t (virtual seconds). */
static double class_next(struct class *c, double t)
{
	if (c->arr == ARR_POISSON)
		return t + rng_exp(&c->rng, 1.0 / c->mean_rate);
	for (;;) {
		double rate = c->on ? c->rate_on : c->rate_off;
		double cand = rate > 0 ? t + rng_exp(&c->rng, 1.0 / rate) : INFINITY;

		if (cand <= c->state_end_s)
			return cand;
		/* memoryless: restart from the state change */
		t = c->state_end_s;
		c->on = !c->on;
		c->state_end_s = t + rng_exp(&c->rng, (c->on ? c->on_ms : c->off_ms) / 1e3);
	}
}

static void on_arrival(int ci, uint64_t now)
{
	struct class *c = &S.cls[ci];
	struct sim_req *q = req_get();
	double slo = c->slo_ms >= 0 ? c->slo_ms : S.model_slo_ms;
	uint64_t objective = (uint64_t)(slo * 1e6);
	uint64_t idx = n_made++;

	q->cls = ci;
	q->counted = idx >= warm_n;
	q->r.priority = c->prio;
	q->r.rows = c->rows;
	if (c->rows_max > c->rows && rng_unif(&c->rng) < c->multi_frac)
		q->r.rows = c->rows + 1 + (int)(rng_next(&c->rng) % (uint64_t)(c->rows_max - c->rows));
	q->r.arrival_ns = now;
	q->r.deadline_ns = objective ? now + objective : 0;
	if (idx == warm_n) {
		t0_ns = now;
		busy_snapshot(now, snap0, rsnap0);
		in_window = true;
	}
	if (idx == n_total - 1) {
		t1_ns = now;
		busy_snapshot(now, snap1, rsnap1);
		in_window = false;
	}
	sim_submit(q, now, false);
	if (n_made < n_total) {
		c->next_s = class_next(c, c->next_s);
		ev_push((uint64_t)(c->next_s * 1e9), EV_ARRIVAL, (uint32_t)ci, 0);
	}
}

/* ---- setup ---- */

static void build_fleet(int scale)
{
	struct pol_conf pc;
	int id = 0;
	size_t n_slots = 0;
	uint64_t *busy_pool;
	struct slot *slot_pool;

	n_bes = 0;
	for (int g = 0; g < S.n_groups; g++) {
		n_bes += S.grp[g].count * scale;
		n_slots += (size_t)S.grp[g].count * scale * S.prof[S.grp[g].prof].slots;
	}
	if (n_bes < 1)
		die("empty fleet");
	bes = calloc(n_bes, sizeof(*bes));
	cand_buf = calloc(2 * (size_t)n_bes, sizeof(*cand_buf));	/* FP32 + INT8 each */
	cand_room = calloc(2 * (size_t)n_bes, sizeof(*cand_room));
	/* Every backend's busy_until and slots side by side: pol_view reads
	 * busy_until of whichever backend is sampled, and at 10,000 backends
	 * one small allocation each scattered them (a cache miss per view). */
	busy_pool = calloc(n_slots, sizeof(*busy_pool));
	slot_pool = calloc(n_slots, sizeof(*slot_pool));
	if (!bes || !cand_buf || !cand_room || !busy_pool || !slot_pool)
		die("out of memory");
	capacity_rps = 0;
	/* rt_queue_conf + sched_configure: the model's settings */
	pc = (struct pol_conf){ .max_rows = S.model_max_batch, .delay_us = S.delay_us,
				.max_queue = S.max_queue, .priority_levels = S.levels,
				.n_preferred = S.n_preferred, .adaptive = S.adaptive,
				.objective_ns = (uint64_t)(S.model_slo_ms * 1e6),
				.margin_ns = (uint64_t)S.margin_us * 1000,
				.drop_hopeless = S.drop_hopeless };
	memcpy(pc.preferred, S.preferred, sizeof(pc.preferred));
	for (int g = 0; g < S.n_groups; g++) {
		const struct profile *p = &S.prof[S.grp[g].prof];
		int mb = p->max_batch < S.model_max_batch ? p->max_batch : S.model_max_batch;
		double t1 = prof_time_ns(p, 1), tn = prof_time_ns(p, mb);
		/* rt_calibrate: warm start through t(1) and t(max_batch) */
		double wb = mb > 1 && tn > t1 ? (tn - t1) / (mb - 1) : 0, wa = t1 - wb;

		for (int k = 0; k < S.grp[g].count * scale; k++, id++) {
			struct sim_be *b = &bes[id];

			b->p = p;
			b->max_batch = mb;
			pc.max_batch = mb;
			pol_init(&b->q, &pc, wa, wb);
			b->qp = &b->q;
			b->busy_until = busy_pool;
			busy_pool += p->slots;
			b->pb = (struct pol_be){ .n_q = 1, .q = &b->qp, .n_slots = p->slots,
						 .busy_until = b->busy_until };
			b->speedup = S.int8 ? (S.int8_speedup > 0 && p->int8_speedup > 0 ?
					       S.int8_speedup : p->int8_speedup) : 0;
			if (b->speedup > 0) {
				/* its own queue, calibrated like the FP32 one (rt_calibrate) */
				pol_init(&b->q8, &pc, wa / b->speedup, wb / b->speedup);
				b->qps[0] = &b->q;
				b->qps[1] = &b->q8;
				b->pb.q = b->qps;
				b->pb.n_q = 2;
			}
			b->n_slots = p->slots;
			b->idle = p->slots;
			b->slots = slot_pool;
			slot_pool += p->slots;
			for (int s = 0; s < p->slots; s++)
				b->slots[s].slices = calloc(mb, sizeof(struct infer_slice));
			b->wake_at = NONE;
			kind_slots[p->kind] += p->slots;
		}
		capacity_rps += (double)S.grp[g].count * scale * p->slots * mb / (tn / 1e9);
		kind_cap_rows[p->kind] += (double)S.grp[g].count * scale * p->slots * mb / (tn / 1e9);
	}
}

static void usage(void)
{
	fprintf(stderr,
		"usage: sim --scenario FILE [--load X] [--policy slo|least-queue|round-robin]\n"
		"           [--requests N] [--seed S] [--shed-frac F] [--share CLASS=F]...\n"
		"           [--slo CLASS=MS]...\n"
		"           [--arrival poisson|onoff] [--burst ON_MS,OFF_MS,PEAK] [--scale K]\n"
		"           [--candidates gateway|all|first32|sample]\n"
		"           [--sample D] [--max-queue N] [--drop-hopeless on|off]\n"
		"           [--exec-fill] [--strict-margin] [--displace-last]\n"
		"           [--reroute-displaced]\n"
		"           (what-ifs, see README.md)\n"
		"           [--count N] [--route-cost] [--int8 on|off] [--int8-speedup X]\n"
		"           [--header] [--verbose]\n"
		"Prints one CSV line (--header: the column names first).\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *scen = NULL, *share_over[MAX_CLASSES * 2];
	int share_kind[MAX_CLASSES * 2];
	const char *arrival_over = NULL, *cand_over = NULL, *policy_over = NULL;
	double load = 1.0, shed_over = -1, burst[3] = { -1, -1, -1 };
	uint64_t seed = 1;
	int header = 0, verbose = 0, scale = 1, n_share = 0, sample_over = -1, maxq_over = -1;
	int exec_fill = 0, drop_hopeless = -1, strict_margin = 0, displace_last = 0;
	int reroute_displaced = 0, count_over = 0, route_cost = 0;
	double mean_w_rows = 0, share_sum = 0, wall;
	struct timespec w0, w1;
	static const struct option opts[] = {
		{ "scenario", 1, 0, 'S' }, { "load", 1, 0, 'l' }, { "policy", 1, 0, 'p' },
		{ "requests", 1, 0, 'n' }, { "seed", 1, 0, 's' }, { "shed-frac", 1, 0, 'f' },
		{ "share", 1, 0, 'c' }, { "slo", 1, 0, 'o' }, { "arrival", 1, 0, 'a' },
		{ "scale", 1, 0, 'k' }, { "burst", 1, 0, 'b' },
		{ "candidates", 1, 0, 'C' }, { "sample", 1, 0, 'd' }, { "max-queue", 1, 0, 'q' },
		{ "exec-fill", 0, 0, 'E' }, { "drop-hopeless", 1, 0, 'D' },
		{ "displace-view", 0, 0, 'V' }, 
		{ "displace-last", 0, 0, 'X' }, { "reroute-displaced", 0, 0, 'R' },
		{ "strict-margin", 0, 0, 'M' }, { "shed-filter", 0, 0, 'F' },
		{ "count", 1, 0, 'N' }, { "route-cost", 0, 0, 'T' },
		{ "int8", 1, 0, 'I' }, { "int8-speedup", 1, 0, 'J' },
		{ "header", 0, 0, 'H' }, { "verbose", 0, 0, 'v' }, { 0, 0, 0, 0 },
	};
	int opt;

	n_total = 100000;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'S': scen = optarg; break;
		case 'l': load = atof(optarg); break;
		case 'p': policy_over = optarg; break;
		case 'n': n_total = strtoull(optarg, NULL, 10); break;
		case 's': seed = strtoull(optarg, NULL, 10); break;
		case 'f': shed_over = atof(optarg); break;
		case 'c':
		case 'o':
			if (n_share == MAX_CLASSES * 2)
				die("too many --share/--slo");
			share_kind[n_share] = opt;
			share_over[n_share++] = optarg;
			break;
		case 'a': arrival_over = optarg; break;
		case 'b':
			if (sscanf(optarg, "%lf,%lf,%lf", &burst[0], &burst[1], &burst[2]) != 3)
				die("--burst ON_MS,OFF_MS,PEAK");
			break;
		case 'k': scale = atoi(optarg); break;
		case 'C': cand_over = optarg; break;
		case 'd': sample_over = atoi(optarg); break;
		case 'q': maxq_over = atoi(optarg); break;
		case 'H': header = 1; break;
		case 'E': exec_fill = 1; break;
		case 'D':
			if (strcmp(optarg, "on") && strcmp(optarg, "off"))
				die("--drop-hopeless on|off");
			drop_hopeless = !strcmp(optarg, "on");
			break;
		/* What-ifs of the simulator that the gateway adopted: accepted,
		 * no effect. */
		case 'V':
			fprintf(stderr, "sim: --displace-view is the gateway's behaviour since "
				"bcff583 (sched_view); no effect\n");
			break;
		case 'F':
			fprintf(stderr, "sim: --shed-filter is the gateway's behaviour since "
				"efa0c5d (router_pick); no effect\n");
			break;
		case 'M': strict_margin = 1; break;
		case 'X': displace_last = 1; break;
		case 'R': reroute_displaced = 1; break;
		case 'v': verbose = 1; break;
		case 'N': count_over = atoi(optarg); break;
		case 'T': route_cost = 1; break;
		case 'I':
			if (strcmp(optarg, "on") && strcmp(optarg, "off"))
				die("--int8 on|off");
			S.int8 = !strcmp(optarg, "on");
			break;
		case 'J': S.int8_speedup = atof(optarg); break;
		default: usage();
		}
	}
	if (!scen || n_total < 2 || load < 0 || scale < 1)
		usage();
	{
		/* --int8 is read before the scenario: keep it across load_scenario */
		int int8 = S.int8;
		double sp = S.int8_speedup;

		load_scenario(&S, scen);
		S.int8 = int8;
		S.int8_speedup = sp;
	}
	if (policy_over) {
		int p = router_policy_parse(policy_over);

		if (p < 0)
			die("--policy %s: slo|least-queue|round-robin", policy_over);
		S.policy = p;
	}
	if (shed_over >= 0)
		S.shed_frac = shed_over;
	if (count_over > 0)
		for (int g = 0; g < S.n_groups; g++)
			S.grp[g].count = count_over;
	S.exec_fill |= exec_fill;
	if (drop_hopeless >= 0)
		S.drop_hopeless = drop_hopeless;
	S.strict_margin |= strict_margin;
	S.displace_last |= displace_last;
	S.reroute_displaced |= reroute_displaced;
	if (maxq_over > 0)
		S.max_queue = maxq_over;
	if (sample_over > 0)
		S.cand_d = sample_over;
	if (cand_over) {
		if (!strcmp(cand_over, "gateway") || !strcmp(cand_over, "all"))
			S.cand_mode = CAND_ALL;
		else if (!strcmp(cand_over, "first32"))
			S.cand_mode = CAND_FIRST32;
		else if (!strcmp(cand_over, "sample"))
			S.cand_mode = CAND_SAMPLE;
		else
			die("--candidates gateway|all|first32|sample");
	}
	for (int i = 0; i < n_share; i++) {
		char name[64];
		const char *eq = strchr(share_over[i], '=');
		int found = 0;

		if (!eq)
			die("--share CLASS=FRACTION, --slo CLASS=MS");
		snprintf(name, sizeof(name), "%.*s", (int)(eq - share_over[i]), share_over[i]);
		for (int c = 0; c < S.n_classes; c++)
			if (!strcmp(S.cls[c].name, name)) {
				if (share_kind[i] == 'o') {
					S.cls[c].slo_ms = atof(eq + 1);
				} else {
					S.cls[c].share = atof(eq + 1);
					S.cls[c].rate = -1;
				}
				found = 1;
			}
		if (!found)
			die("--share/--slo: no class '%s'", name);
	}
	for (int c = 0; c < S.n_classes; c++) {
		struct class *k = &S.cls[c];
		double mr = k->rows;

		if (burst[0] > 0) {
			k->on_ms = burst[0];
			k->off_ms = burst[1];
			k->peak = burst[2];
		}
		if (arrival_over) {
			if (!strcmp(arrival_over, "poisson"))
				k->arr = ARR_POISSON;
			else if (!strcmp(arrival_over, "onoff"))
				k->arr = ARR_ONOFF;
			else
				die("--arrival poisson|onoff");
		}
		if (k->rows_max > k->rows)
			mr = (1 - k->multi_frac) * k->rows +
			     k->multi_frac * (k->rows + 1 + k->rows_max) / 2.0;
		if (k->rate < 0) {
			mean_w_rows += k->share * mr;
			share_sum += k->share;
		}
	}
	mean_rows = share_sum > 0 ? mean_w_rows / share_sum : 1;
	build_fleet(scale);
	capacity_rows = capacity_rps;
	capacity_rps /= mean_rows;	/* rows/s -> requests/s */
	for (int c = 0; c < S.n_classes; c++) {
		struct class *k = &S.cls[c];

		k->mean_rate = k->rate >= 0 ? k->rate : k->share * load * capacity_rps;
	}
	warm_n = (uint64_t)(S.warmup * (double)n_total);
	rng_seed(&rng_exec, seed, 1);
	rng_seed(&rng_cand, seed, 2);
	rng_sample = seed * 0x9e3779b97f4a7c15ull + 3;
	for (int c = 0; c < S.n_classes; c++) {
		struct class *k = &S.cls[c];

		class_start(k, c, seed);
		if (k->mean_rate > 0) {
			k->next_s = class_next(k, 0);
			ev_push((uint64_t)(k->next_s * 1e9), EV_ARRIVAL, (uint32_t)c, 0);
		}
	}
	if (!heap_n)
		die("no traffic: every class has rate 0");

	clock_gettime(CLOCK_MONOTONIC, &w0);
	while (heap_n) {
		struct event e = ev_pop();

		ev_count++;
		switch (e.type) {
		case EV_ARRIVAL:
			on_arrival((int)e.a, e.t);
			break;
		case EV_DONE:
			be_done(&bes[e.a], (int)e.a, (int)e.b, e.t);
			break;
		case EV_WAKE: {
			struct sim_be *b = &bes[e.a];

			if (e.b != b->wake_gen)
				break;	/* superseded by an earlier wake */
			b->wake_at = NONE;
			be_poll(b, (int)e.a, e.t);
			break;
		}
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &w1);
	wall = (double)(w1.tv_sec - w0.tv_sec) + (w1.tv_nsec - w0.tv_nsec) * 1e-9;

	/* ---- results ---- */
	double win = (double)(t1_ns - t0_ns) / 1e9, util[N_KINDS], tput[N_KINDS];
	uint64_t arrived = 0, ok = 0, rej[ROUTE_SHED + 1] = { 0 }, expired = 0, late = 0, bad = 0;
	uint64_t hopeless = 0, ok_win = 0, ok_win_rows = 0, displaced = 0;

	for (int i = 0; i < n_bes; i++) {
		kind_batches[bes[i].p->kind] += bes[i].batches;
		kind_rows[bes[i].p->kind] += bes[i].rows_done;
		kind_reqs[bes[i].p->kind] += bes[i].reqs_done;
	}
	for (int k = 0; k < N_KINDS; k++)
		util[k] = kind_slots[k] > 0 && win > 0 ? (snap1[k] - snap0[k]) / 1e9 / (kind_slots[k] * win)
						       : NAN;
	for (int k = 0; k < N_KINDS; k++)
		tput[k] = kind_cap_rows[k] > 0 && win > 0 ? (rsnap1[k] - rsnap0[k]) / win / kind_cap_rows[k]
							  : NAN;
	for (int l = 1; l <= S.levels; l++) {
		arrived += st[l].arrived;
		ok += st[l].ok;
		expired += st[l].expired;
		hopeless += st[l].hopeless;
		displaced += st[l].displaced;
		ok_win += st[l].ok_win;
		ok_win_rows += st[l].ok_win_rows;
		late += st[l].late_done;
		bad += st[l].bad400;
		for (int w = 0; w <= ROUTE_SHED; w++)
			rej[w] += st[l].rej[w];
	}
	if (header)
		printf("scenario,variant,policy,arrival,load,seed,requests,backends,candidates,shed_frac,"
		       "capacity_rps,offered_rps,goodput_rps,goodput_per_capacity,goodput_rows_per_capacity,"
		       "goodput_cohort_rps,slo_att,"
		       "att_p1,att_p2,att_p3,good_p1_rps,good_p2_rps,good_p3_rps,"
		       "p50_p1_ms,p99_p1_ms,p99_p2_ms,p99_p3_ms,"
		       "rej_late,rej_full,rej_shed,rej_nobackend,rej_displaced,bad_400,expired_504,hopeless_504,late_done,"
		       "util_cpu,util_gpu,util_dpu,tput_cpu,tput_gpu,tput_dpu,batch_cpu,batch_gpu,batch_dpu,"
		       "served_cpu,served_gpu,served_dpu,sim_s,wall_s,events,sim_req_per_s%s\n",
		       S.int8 ? ",int8_share" : "");
	{
		const char *arr = "mixed";
		int np = 0, no = 0;
		uint64_t served = kind_reqs[0] + kind_reqs[1] + kind_reqs[2];
		static const char *const cm[] = { "all", "first32", "sample" };
		char cbuf[32];

		for (int c = 0; c < S.n_classes; c++)
			if (S.cls[c].mean_rate > 0)
				*(S.cls[c].arr == ARR_POISSON ? &np : &no) += 1;
		arr = no == 0 ? "poisson" : np == 0 ? "onoff" : "mixed";
		if (S.cand_mode == CAND_SAMPLE)
			snprintf(cbuf, sizeof(cbuf), "sample%d", S.cand_d);
		else
			snprintf(cbuf, sizeof(cbuf), "%s", cm[S.cand_mode]);
		char variant[192] = "";

		if (S.exec_fill)
			strcat(variant, "+exec-fill");
		if (!S.drop_hopeless)
			strcat(variant, "+no-drop-hopeless");
		if (S.strict_margin)
			strcat(variant, "+strict-margin");
		if (S.displace_last)
			strcat(variant, "+displace-last");
		if (S.reroute_displaced)
			strcat(variant, "+reroute-displaced");
		if (S.int8)
			strcat(variant, "+int8");
		printf("%s,%s,%s,%s,%.3f,%llu,%llu,%d,%s,%g,", S.name,
		       variant[0] ? variant + 1 : "gateway", router_policy_name(S.policy), arr,
		       load, (unsigned long long)seed, (unsigned long long)n_total, n_bes, cbuf,
		       S.shed_frac);
		printf("%.1f,%.1f,%.1f,%.4f,%.4f,%.1f,%.4f,", capacity_rps, arrived / win, ok_win / win,
		       ok_win / win / capacity_rps, ok_win_rows / win / capacity_rows, ok / win,
		       arrived ? (double)ok / arrived : NAN);
		for (int l = 1; l <= 3; l++)
			printf("%.4f,", l <= S.levels && st[l].arrived ? (double)st[l].ok / st[l].arrived
								      : NAN);
		for (int l = 1; l <= 3; l++)
			printf("%.1f,", l <= S.levels ? st[l].ok_win / win : NAN);
		printf("%.3f,%.3f,%.3f,%.3f,", hist_q(&st[1], 0.5), hist_q(&st[1], 0.99),
		       S.levels >= 2 ? hist_q(&st[2], 0.99) : NAN,
		       S.levels >= 3 ? hist_q(&st[3], 0.99) : NAN);
		printf("%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,%llu,", (unsigned long long)rej[ROUTE_LATE],
		       (unsigned long long)rej[ROUTE_FULL], (unsigned long long)rej[ROUTE_SHED],
		       (unsigned long long)rej[ROUTE_NO_BACKEND], (unsigned long long)displaced,
		       (unsigned long long)bad,
		       (unsigned long long)expired, (unsigned long long)hopeless,
		       (unsigned long long)late);
		for (int k = 0; k < N_KINDS; k++)
			printf("%.4f,", util[k]);
		for (int k = 0; k < N_KINDS; k++)
			printf("%.4f,", tput[k]);
		for (int k = 0; k < N_KINDS; k++)
			printf("%.2f,", kind_batches[k] ? (double)kind_rows[k] / kind_batches[k] : NAN);
		for (int k = 0; k < N_KINDS; k++)
			printf("%.4f,", served ? (double)kind_reqs[k] / served : NAN);
		printf("%.4f,%.3f,%llu,%.0f", (double)t1_ns / 1e9, wall, (unsigned long long)ev_count,
		       n_total / wall);
		/* --int8 only, so that other runs' columns stay as they were */
		if (S.int8)
			printf(",%.4f", all_ok ? (double)int8_ok / all_ok : 0.0);
		printf("\n");
	}
	if (route_cost)
		fprintf(stderr, "route_cost backends=%d decisions=%llu views=%llu "
			"views_per_decision=%.3f picks_per_decision=%.3f widened=%llu "
			"widened_ok=%llu full_scans=%llu full_scans_ok=%llu sample_d=%d widen_d=%d "
			"sampling=%s\n", n_bes,
			(unsigned long long)n_routes,
			(unsigned long long)n_views, n_routes ? (double)n_views / n_routes : 0,
			n_routes ? (double)n_picks / n_routes : 0, (unsigned long long)n_widened,
			(unsigned long long)n_widened_ok, (unsigned long long)n_widened_all,
			(unsigned long long)n_widened_all_ok, SIM_SAMPLE_D, SIM_WIDEN_D,
#ifdef ROUTER_SAMPLE_D
			S.cand_mode == CAND_ALL ? "router_sample" :
#endif
			S.cand_mode == CAND_SAMPLE ? "sim-sample" : "full-scan");
	if (verbose) {
		fprintf(stderr, "window %.4f s (requests %llu..%llu), %llu batches, %llu wakes, "
			"%zu request objects allocated, peak heap %zu\n", win,
			(unsigned long long)warm_n, (unsigned long long)n_total - 1,
			(unsigned long long)n_batches, (unsigned long long)n_wakes, req_allocated,
			heap_cap);
		for (int l = 1; l <= S.levels; l++)
			fprintf(stderr, "p%d: arrived %llu ok %llu late_done %llu 504 %llu hopeless %llu "
				"displaced %llu rej late %llu full %llu shed %llu; p50 %.2f ms "
				"p99 %.2f ms\n", l,
				(unsigned long long)st[l].arrived, (unsigned long long)st[l].ok,
				(unsigned long long)st[l].late_done, (unsigned long long)st[l].expired,
				(unsigned long long)st[l].hopeless, (unsigned long long)st[l].displaced,
				(unsigned long long)st[l].rej[ROUTE_LATE],
				(unsigned long long)st[l].rej[ROUTE_FULL],
				(unsigned long long)st[l].rej[ROUTE_SHED], hist_q(&st[l], 0.5),
				hist_q(&st[l], 0.99));
		for (int i = 0; i < n_bes && i < 40; i++)
			fprintf(stderr, "be%d %s: batches %llu mean batch %.1f busy %.3f s svc(1)=%.1f us "
				"svc(%d)=%.1f us\n", i, kind_names[bes[i].p->kind],
				(unsigned long long)bes[i].batches,
				bes[i].batches ? (double)bes[i].rows_done / bes[i].batches : 0,
				bes[i].busy_ns / 1e9, svc_predict(&bes[i].q.svc, 1) / 1e3, bes[i].max_batch,
				svc_predict(&bes[i].q.svc, bes[i].max_batch) / 1e3);
	}
	return 0;
}
