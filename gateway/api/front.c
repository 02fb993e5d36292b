/* front.c - see front.h. */
#include "front.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "model/model.h"
#include "runtime.h"
#include "scheduler.h"
#include "util.h"

#define FRONT_POOL_DEFAULT 1024	/* as call.c's CALL_FREE_MAX: one per call in flight */

/* ---- priority and objective ---- */

int front_objective(const struct model_conf *mc, const struct front_hints *h, int *prio,
		    uint64_t *objective_ns, char *err, size_t errlen)
{
	const char *hp = h->x_priority, *hs = h->x_slo_ms;
	char *end;

	*prio = h->priority;
	*objective_ns = (uint64_t)mc->slo_ms * 1000000;
	if (!*prio && hp) {
		long v = strtol(hp, &end, 10);

		if (*end || end == hp || v < 0 || v > 1000000) {
			snprintf(err, errlen, "x-priority: expected a non-negative integer, got \"%s\"", hp);
			return 400;
		}
		*prio = (int)v;
	}
	if (h->timeout_us) {
		*objective_ns = (uint64_t)h->timeout_us * 1000;
	} else if (hs) {
		double v = strtod(hs, &end);

		if (*end || end == hs || !(v > 0) || v > 3.6e6) {
			snprintf(err, errlen, "x-slo-ms: expected a positive number of milliseconds, got \"%s\"", hs);
			return 400;
		}
		*objective_ns = (uint64_t)(v * 1e6);
	}
	return 0;
}

/* ---- pools ---- */

void front_pool_init(struct front_pool *p, int max_free)
{
	memset(p, 0, sizeof(*p));
	p->max_free = max_free > 0 ? max_free : FRONT_POOL_DEFAULT;
}

static void front_req_destroy(struct infer_req *r)
{
	free(r->output);
	free(r);
}

void front_pool_destroy(struct front_pool *p)
{
	struct infer_req *r, *next;

	for (r = p->free; r; r = next) {
		next = r->next;
		front_req_destroy(r);
	}
	p->free = NULL;
	p->n_free = 0;
}

/* A cleared request from p's free list (keeping its output buffer), or a new one. */
static struct infer_req *front_pool_take(struct front_pool *p)
{
	struct infer_req *r = p ? p->free : NULL;
	float *out;
	size_t cap;

	if (!r)
		return calloc(1, sizeof(*r));
	p->free = r->next;
	p->n_free--;
	p->n_reused++;
	out = r->output;
	cap = r->output_cap;
	memset(r, 0, sizeof(*r));
	r->output = out;
	r->output_cap = cap;
	return r;
}

/* ---- requests ---- */

void front_input_release(struct infer_req *r)
{
	void (*fn)(void *) = r->input_release;

	r->input_release = NULL;
	r->input = NULL;
	if (fn)
		fn(r->input_arg);
}

/* Make r->output hold at least n floats (reusing a pooled buffer). */
static int front_output(struct infer_req *r, size_t n)
{
	float *out;

	if (n <= r->output_cap && r->output)
		return 0;
	out = malloc((n ? n : 1) * sizeof(float));
	if (!out)
		return -1;
	free(r->output);
	r->output = out;
	r->output_cap = n;
	return 0;
}

struct infer_req *front_req_new(struct front_pool *p, const struct front_spec *sp)
{
	struct infer_req *r = front_pool_take(p);

	if (!r)
		goto oom;
	if (front_output(r, (size_t)sp->in.rows * sp->model->out_dim)) {
		front_req_destroy(r);
		goto oom;
	}
	if (p)
		p->n_new++;
	r->pool = p;
	r->model = sp->model;
	r->rows = sp->in.rows;
	r->input = sp->in.data;
	r->input_release = sp->in.release;
	r->input_arg = sp->in.arg;
	r->priority = sp->priority;
	r->arrival_ns = sp->arrival_ns;
	r->deadline_ns = sp->objective_ns ? sp->arrival_ns + sp->objective_ns : 0;
	r->sink = sp->sink;
	r->on_done = sp->on_done;
	r->ctx = sp->ctx;
	r->variant_ask = (uint8_t)sp->variant;
	return r;
oom:
	if (sp->in.release)
		sp->in.release(sp->in.arg);
	return NULL;
}

void front_req_put(struct infer_req *r)
{
	struct front_pool *p;

	if (!r)
		return;
	front_input_release(r);
	p = r->pool;
	if (!UTIL_RECYCLE || !p || p->n_free >= p->max_free) {
		front_req_destroy(r);
		return;
	}
	r->next = p->free;
	p->free = r;
	p->n_free++;
}

/* ---- admission ---- */

int front_precheck(struct runtime *rt, struct infer_req *probe, const struct model *m, int prio,
		   uint64_t arrival_ns, uint64_t objective_ns, uint64_t now,
		   struct rt_admission *adm)
{
	memset(probe, 0, sizeof(*probe));
	probe->model = m;
	probe->rows = 1;
	probe->priority = prio;
	probe->arrival_ns = arrival_ns;
	probe->deadline_ns = objective_ns ? arrival_ns + objective_ns : 0;
	return rt_precheck(rt, probe, now, adm);
}

int front_submit(struct runtime *rt, struct infer_req *r, struct rt_admission *adm,
		 uint64_t now)
{
	int st = rt_submit(rt, r, now, adm);

	if (st)
		front_input_release(r);
	return st;
}

bool front_cancel(struct infer_req *r)
{
	if (!sched_cancel(r))
		return false;
	front_input_release(r);
	return true;
}

/* ---- completion ---- */

void front_deliver(struct infer_req *r)
{
	front_input_release(r);
	r->on_done(r);
}

bool front_mpsc_push(_Atomic(struct infer_req *) *top, struct infer_req *r)
{
	struct infer_req *head = atomic_load_explicit(top, memory_order_relaxed);

	do {
		r->next = head;
	} while (!atomic_compare_exchange_weak_explicit(top, &head, r, memory_order_release,
							memory_order_relaxed));
	return head == NULL;
}

struct infer_req *front_mpsc_take(_Atomic(struct infer_req *) *top)
{
	struct infer_req *r, *rev = NULL, *next;

	/* Empty most times a loop looks (every read drains): a plain load
	 * then, not a locked exchange.  A push racing past it is taken next
	 * time, and its pusher, having seen the stack empty, wakes us. */
	if (!atomic_load_explicit(top, memory_order_relaxed))
		return NULL;
	r = atomic_exchange_explicit(top, NULL, memory_order_acquire);

	for (; r; r = next) {	/* the stack is newest first: reverse it */
		next = r->next;
		r->next = rev;
		rev = r;
	}
	return rev;
}

static void front_poll_complete(struct front_sink *s, struct infer_req *r)
{
	struct front_poll_sink *ps = (struct front_poll_sink *)s;

	front_mpsc_push(&ps->in, r);
}

void front_poll_sink_init(struct front_poll_sink *ps)
{
	ps->sink.complete = front_poll_complete;
	atomic_init(&ps->in, NULL);
	ps->head = NULL;
}

int front_sink_poll(struct front_poll_sink *ps, struct infer_req **reqs, int max)
{
	int n = 0;

	if (!ps->head && atomic_load_explicit(&ps->in, memory_order_relaxed))
		ps->head = front_mpsc_take(&ps->in);
	while (n < max && ps->head) {
		struct infer_req *r = ps->head;

		ps->head = r->next;
		r->next = NULL;
		reqs[n++] = r;
	}
	return n;
}
