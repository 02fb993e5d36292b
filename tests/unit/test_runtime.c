/*
 * Unit tests for gateway/sched/runtime.c: snapshots over many models and
 * backends (no fixed-size arrays), and the reaper's unbounded list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "router.h"
#include "runtime.h"
#include "model/model.h"
#include "model/quant.h"
#include "infer.h"
#include "metrics.h"

static char path[64];

/* A config of n_models digits models; n_backends cpu backends hosting
 * every model (no models: key) when hosted_all, else model m<i % n>. */
static struct config *load_conf(int n_models, int n_backends, bool hosted_all)
{
	char cwd[1024], *err = NULL;
	struct config *c;
	FILE *f;
	int fd;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	strcpy(path, "/tmp/infergw-rt-XXXXXX");
	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fputs("models:\n", f);
	for (int i = 0; i < n_models; i++)
		fprintf(f, "  - {name: m%d, path: %s/config/models/digits,"
			   " service_time_us: {base: 100, per_row: 1}}\n", i, cwd);
	fputs("backends:\n", f);
	for (int i = 0; i < n_backends; i++) {
		fprintf(f, "  - {name: b%d, kind: cpu, workers: 1", i);
		if (!hosted_all)
			fprintf(f, ", models: [m%d]", i % n_models);
		fputs("}\n", f);
	}
	fclose(f);
	c = cfg_load(path, &err);
	if (!c)
		fail_msg("%s", err);
	unlink(path);
	return c;
}

/* The default backend hosts every model: 70 is past the old models[64]. */
static void test_backend_hosting_70_models(void **state)
{
	char *err = NULL;
	struct runtime *rt = rt_build(load_conf(70, 1, true), NULL, &err), *rt2;
	struct rt_backend *rb;

	assert_non_null(rt);
	rb = rt->backends[0];
	assert_int_equal(rb->n_models, 70);
	assert_true(rb->started);
	for (int i = 0; i < 70; i++)
		assert_ptr_equal(rb->models[i], rt->models[i]);
	/* A reload with the same settings carries the backend over. */
	rt2 = rt_build(load_conf(70, 1, true), rt, &err);
	assert_non_null(rt2);
	assert_ptr_equal(rt2->backends[0], rb);
	for (int i = 0; i < 70; i++)
		assert_ptr_equal(rt2->backends[0]->models[i], rt2->models[i]);
	assert_int_equal(rt_live_count(), 1);
	rt_put(rt);
	rt_put(rt2);
	assert_int_equal(rt_live_count(), 0);
}

/* More started backends than the old rt_live[256]: every one is tracked. */
static void test_300_backends_tracked(void **state)
{
	char *err = NULL;
	struct runtime *rt = rt_build(load_conf(1, 300, false), NULL, &err);

	assert_non_null(rt);
	assert_int_equal(rt->n_backends, 300);
	assert_int_equal(rt_live_count(), 300);
	rt_stop_all();
	rt_put(rt);
	assert_int_equal(rt_live_count(), 0);
}

/* The per-model host index routing walks is every started backend with
 * a queue for the model, in backends[] order; past 32 hosts the
 * precheck still routes (its buffers come from the heap), and a model's
 * request only lands on a backend hosting it. */
static void test_host_index(void **state)
{
	char *err = NULL;
	struct runtime *rt = rt_build(load_conf(3, 99, false), NULL, &err);
	struct runtime *all = rt_build(load_conf(1, 40, true), NULL, &err);

	(void)state;
	assert_non_null(rt);
	assert_non_null(all);
	for (int mi = 0; mi < rt->n_models; mi++) {
		const struct rt_host *h = rt->hosts + (size_t)mi * rt->n_backends;
		int k = 0;

		for (int i = 0; i < rt->n_backends; i++) {
			int qi = sched_find(&rt->backends[i]->sched, rt->models[mi]->m);

			if (qi < 0)
				continue;
			assert_true(k < rt->n_hosts[mi]);
			assert_int_equal(h[k].be, i);
			assert_int_equal(h[k].qi[VARIANT_FP32], qi);
			assert_int_equal(h[k].qi[VARIANT_INT8], -1);
			k++;
		}
		assert_int_equal(k, rt->n_hosts[mi]);
		assert_int_equal(k, 33);
	}
	assert_int_equal(all->n_hosts[0], 40);
	for (int round = 0; round < 2; round++) {
		struct runtime *x = round ? all : rt;

		for (int mi = 0; mi < x->n_models; mi++) {
			struct infer_req r = { .rows = 1, .priority = 1, .model = x->models[mi]->m };
			struct rt_admission adm;

			assert_int_equal(rt_precheck(x, &r, 1, &adm), 0);
			assert_true(adm.valid);
			assert_int_equal(adm.n_eligible, x->n_hosts[mi]);
			assert_ptr_equal(x->backends[adm.be]->sched.qs[adm.qi].model, r.model);
		}
	}
	rt_stop_all();
	rt_put(rt);
	rt_put(all);
	assert_int_equal(rt_live_count(), 0);
}

/* More released snapshots than the old rt_dead[64], released back to back:
 * every one is destroyed by the reaper, none on the releasing thread. */
static void test_reaper_takes_every_release(void **state)
{
	enum { N = 200 };
	static struct runtime *rts[N];
	char *err = NULL;
	struct runtime *base = rt_build(load_conf(2, 1, true), NULL, &err);
	uint64_t before;

	assert_non_null(base);
	for (int i = 0; i < N; i++) {
		rts[i] = rt_build(load_conf(2, 1, true), base, &err);
		assert_non_null(rts[i]);
		assert_ptr_equal(rts[i]->backends[0], base->backends[0]);
	}
	assert_int_equal(rt_reaper_start(), 0);
	before = rt_retired();
	for (int i = 0; i < N; i++)
		rt_put(rts[i]);
	rt_put(base);
	rt_reaper_stop();	/* waits for every pending snapshot */
	assert_int_equal(rt_retired() - before, N + 1);
	assert_int_equal(rt_live_count(), 0);
}

/* A thread's requests borrow its lease's snapshot without touching the
 * reference count (rt_lease_borrow); a refresh to a newer one turns the
 * borrows still out into references, so the old snapshot is retired exactly
 * when its last request returns, not with the lease's reference and not
 * never; a drop does the same for the current one. */
static void test_lease(void **state)
{
	struct rt_lease l = { 0 };
	char *err = NULL;
	struct runtime *a = rt_build(load_conf(1, 1, true), NULL, &err), *b, *out[3], *nb;
	uint64_t before;

	(void)state;
	assert_non_null(a);
	assert_int_equal(rt_reaper_start(), 0);
	before = rt_retired();
	assert_null(rt_lease_refresh(&l));	/* nothing published yet */
	assert_null(rt_lease_borrow(&l));
	rt_lease_return(&l, NULL);
	rt_publish(a);				/* a's build reference is now the publication's */
	assert_ptr_equal(rt_lease_refresh(&l), a);
	assert_int_equal(atomic_load(&a->refs), 2);	/* published + the lease's */
	for (int i = 0; i < 3; i++)
		assert_ptr_equal(out[i] = rt_lease_borrow(&l), a);
	assert_int_equal(atomic_load(&a->refs), 2);	/* borrows are the lease's count */
	assert_int_equal(l.lent, 3);
	rt_lease_return(&l, out[0]);
	assert_int_equal(l.lent, 2);
	assert_ptr_equal(rt_lease_refresh(&l), a);	/* same generation: nothing changes */
	assert_int_equal(atomic_load(&a->refs), 2);

	b = rt_build(load_conf(1, 1, true), a, &err);
	assert_non_null(b);
	rt_publish(b);
	assert_int_equal(atomic_load(&a->refs), 1);	/* the lease's only */
	assert_ptr_equal(rt_lease_refresh(&l), b);
	assert_int_equal(l.lent, 0);
	assert_int_equal(atomic_load(&a->refs), 2);	/* the two borrows still out */
	assert_ptr_equal(nb = rt_lease_borrow(&l), b);
	rt_lease_return(&l, out[1]);
	assert_int_equal(atomic_load(&a->refs), 1);
	rt_lease_return(&l, out[2]);		/* a's last holder: retired */
	assert_int_equal(atomic_load(&b->refs), 2);

	rt_lease_drop(&l);			/* nb still out: b lives on */
	assert_null(l.rt);
	assert_int_equal(atomic_load(&b->refs), 2);
	rt_publish(NULL);
	assert_int_equal(atomic_load(&b->refs), 1);
	rt_lease_return(&l, nb);		/* b's last holder */
	rt_reaper_stop();			/* waits for every pending snapshot */
	assert_int_equal(rt_retired() - before, 2);
	assert_int_equal(rt_live_count(), 0);
}

/* A kind with batching defaults, as the GPU's caps say (be_gpu_caps). */
static void gpuish_caps(const struct backend *be, const struct model *m, struct be_caps *out)
{
	out->max_batch = 256;
	out->n_preferred = 2;
	out->preferred[0] = 8;
	out->preferred[1] = 256;
	out->batching_defaults = true;
	out->delay_us = 200;
}

/* Batching precedence per (backend, model): backends[].batching, then the
 * kind's defaults, then models[]. */
static void test_queue_conf_precedence(void **state)
{
	char *err = NULL;
	struct config *c;
	struct model ma = { .name = "a", .max_batch_size = 64 }, mb = { .name = "b",
									.max_batch_size = 64 };
	static const struct backend_ops gpuish = { .kind = "gpuish", .caps = gpuish_caps };
	static const struct backend_ops plain = { .kind = "plain" };
	struct backend be = { 0 };
	struct sched_q_conf qc;
	FILE *f;
	int fd;

	strcpy(path, "/tmp/infergw-rt-XXXXXX");
	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fputs("models:\n"
	      "  - {name: a, path: /x, max_batch: 16, max_queue_delay_us: 5000,"
	      " preferred_batch_sizes: [4, 16], max_queue: 77}\n"
	      "  - {name: b, path: /x, max_batch: 16, max_queue_delay_us: 5000}\n"
	      "backends:\n"
	      "  - name: g\n    kind: cpu\n"
	      "    batching:\n      b: {max_batch: 128, max_queue_delay_us: 50}\n", f);
	fclose(f);
	c = cfg_load(path, &err);
	unlink(path);
	if (!c)
		fail_msg("%s", err);

	/* a kind without defaults: models[] as written */
	be.ops = &plain;
	rt_queue_conf(c, &c->models[0], &ma, &c->backends[0], &be, &qc);
	assert_ptr_equal(qc.model, &ma);
	assert_int_equal(qc.max_batch, 16);
	assert_int_equal(qc.delay_us, 5000);
	assert_int_equal(qc.n_preferred, 2);
	assert_int_equal(qc.preferred[1], 16);
	assert_int_equal(qc.max_queue, 77);
	/* ... and the backend's overrides over them (b: max_batch, delay) */
	rt_queue_conf(c, &c->models[1], &mb, &c->backends[0], &be, &qc);
	assert_int_equal(qc.max_batch, 128);
	assert_int_equal(qc.delay_us, 50);
	assert_int_equal(qc.n_preferred, 0);

	/* a kind with defaults (a GPU): they replace models[] batching... */
	be.ops = &gpuish;
	rt_queue_conf(c, &c->models[0], &ma, &c->backends[0], &be, &qc);
	assert_int_equal(qc.max_batch, 0);	/* the backend's own limit (caps: 256) */
	assert_int_equal(qc.delay_us, 200);
	assert_int_equal(qc.n_preferred, 0);	/* the scheduler takes caps.preferred */
	assert_int_equal(qc.max_queue, 77);	/* not a batching field: models[]'s */
	/* ... and the backend's overrides still win over the kind's */
	rt_queue_conf(c, &c->models[1], &mb, &c->backends[0], &be, &qc);
	assert_int_equal(qc.max_batch, 128);
	assert_int_equal(qc.delay_us, 50);
	assert_int_equal(qc.n_preferred, 0);
	/* the scheduler's limit for the pair: caps' 256 capped by the override */
	assert_int_equal(sched_batch_limit(&be, &mb, qc.max_batch), 128);
	rt_queue_conf(c, &c->models[0], &ma, &c->backends[0], &be, &qc);
	assert_int_equal(sched_batch_limit(&be, &ma, qc.max_batch), 256);
	cfg_free(c);
}

static char q8dir[64];

/* digits' INT8 variant, made once by the quantizer (quant.h) into q8dir. */
static void make_int8(void)
{
	struct quant_opts o = { .force = true };
	char *err = NULL;

	if (q8dir[0])
		return;
	strcpy(q8dir, "/tmp/infergw-q8-XXXXXX");
	assert_non_null(mkdtemp(q8dir));
	if (quant_model("config/models/digits", q8dir, &o, &err))
		fail_msg("%s", err);
}

/* Remove q8dir and the files the quantizer wrote into it. */
static void drop_int8(void)
{
	DIR *d = q8dir[0] ? opendir(q8dir) : NULL;
	struct dirent *e;
	char f[384];

	while (d && (e = readdir(d)))
		if (e->d_name[0] != '.') {
			snprintf(f, sizeof(f), "%s/%s", q8dir, e->d_name);
			unlink(f);
		}
	if (d) {
		closedir(d);
		rmdir(q8dir);
	}
}

static struct config *load_text(const char *text)
{
	char *err = NULL;
	struct config *c;
	FILE *f;
	int fd;

	strcpy(path, "/tmp/infergw-rt-XXXXXX");
	fd = mkstemp(path);
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	c = cfg_load(path, &err);
	if (!c)
		fail_msg("%s", err);
	unlink(path);
	return c;
}

/* Where rt_precheck would put a 1-row request for model name asking
 * variant ask (0: the policy); returns the status, *v the variant. */
static int route_variant(struct runtime *rt, const char *name, int ask, int *v, char *why,
			 size_t len)
{
	struct infer_req r = { .rows = 1, .priority = 1, .variant_ask = (uint8_t)ask };
	struct rt_admission adm;
	int st;

	r.model = rt_find_model(rt, name);
	assert_non_null(r.model);
	st = rt_precheck(rt, &r, 1, &adm);
	*v = -1;
	if (!st)
		*v = rt->backends[adm.be]->sched.qs[adm.qi].model->variant;
	snprintf(why, len, "%s", r.errmsg);
	return st;
}

/* A request whose model is not one of the runtime's (the caller looked it
 * up in another snapshot): 404 naming it, no series, nothing queued, for
 * the precheck and the submit alike (was a read of mconf[-1]). */
static void test_model_of_another_runtime(void **state)
{
	char *err = NULL;
	struct runtime *rt = rt_build(load_conf(1, 1, true), NULL, &err);
	struct runtime *other = rt_build(load_conf(2, 1, true), NULL, &err);
	struct infer_req r = { .rows = 1, .priority = 1 };
	struct rt_admission adm;

	(void)state;
	assert_non_null(rt);
	assert_non_null(other);
	r.model = rt_find_model(other, "m1");
	assert_non_null(r.model);
	assert_null(rt_find_model(rt, "m1"));
	assert_null(rt_none_series(rt, r.model));
	assert_non_null(rt_none_series(other, r.model));
	r.met = (struct met_series *)&r;	/* overwritten: NULL */
	assert_int_equal(rt_precheck(rt, &r, 1, &adm), 404);
	assert_null(r.met);
	assert_non_null(strstr(r.errmsg, "model 'm1' is not in this configuration"));
	r.met = (struct met_series *)&r;
	assert_int_equal(rt_submit(rt, &r, 1, NULL), 404);
	assert_null(r.met);
	assert_int_equal(rt_precheck(other, &r, 1, &adm), 0);	/* its own: admitted */
	rt_stop_all();
	rt_put(rt);
	rt_put(other);
	assert_int_equal(rt_live_count(), 0);
}

/* models[].variants: both variants on a CPU backend, each its own queue
 * (own service time, own series labelled variant=...); the policy or
 * parameters.variant picks the candidates; a reload carries them over. */
static void test_variants(void **state)
{
	char cwd[512], text[8192], why[160], *err = NULL;
	struct runtime *rt, *rt2;
	struct rt_backend *rb;
	const struct model *q8;
	int vs[2], hosts[2], v;

	make_int8();
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(text, sizeof(text),
		 "models:\n"
		 "  - {name: d, path: %s/config/models/digits, variants: {int8: %s},"
		 " service_time_us: {base: 100, per_row: 1}}\n"
		 "  - {name: plain, path: %s/config/models/digits,"
		 " service_time_us: {base: 100, per_row: 1}}\n"
		 "  - {name: d8, path: %s/config/models/digits, variants: {int8: %s},"
		 " variant_policy: int8, service_time_us: {base: 100, per_row: 1}}\n"
		 "  - {name: d32, path: %s/config/models/digits, variants: {int8: %s},"
		 " variant_policy: fp32, service_time_us: {base: 100, per_row: 1}}\n"
		 "backends:\n  - {name: b0, kind: cpu, workers: 1}\n",
		 cwd, q8dir, cwd, cwd, q8dir, cwd, q8dir);
	rt = rt_build(load_text(text), NULL, &err);
	if (!rt)
		fail_msg("%s", err);
	rb = rt->backends[0];
	assert_true(rb->started);
	assert_int_equal(rb->n_models, 4 + 3);	/* 4 models, 3 INT8 variants */
	assert_int_equal(rb->n_refused, 0);
	assert_int_equal(rt_variants(rt, rt_find_model(rt, "d"), vs, &q8, hosts), 2);
	assert_int_equal(vs[0], VARIANT_FP32);
	assert_int_equal(vs[1], VARIANT_INT8);
	assert_int_equal(hosts[0], 1);
	assert_int_equal(hosts[1], 1);
	assert_int_equal(q8->variant, VARIANT_INT8);
	assert_string_equal(q8->name, "d");
	assert_int_equal(rt_variants(rt, rt_find_model(rt, "plain"), vs, &q8, NULL), 1);
	assert_null(q8);
	/* each variant's queue counts in its own series */
	for (int i = 0; i < rb->n_models; i++) {
		const char *lbl = rb->sched.qs[i].met->lbl;

		if (!strcmp(rb->models[i]->name, "plain"))
			assert_null(strstr(lbl, "variant"));
		else
			assert_non_null(strstr(lbl, rb->models[i]->m->variant == VARIANT_INT8 ?
						    "variant=\"int8\"" : "variant=\"fp32\""));
	}
	/* the configured service_time_us is FP32's (t(1) = 101 us exactly); the
	 * INT8 queues were calibrated (what they measured, not that) */
	for (int i = 0; i < rb->n_models; i++) {
		struct router_cand c;

		sched_view(&rb->sched, i, 1, 1, 0, &c);
		if (rb->models[i]->m->variant == VARIANT_INT8)
			assert_int_not_equal(c.exec_ns, 101000);
		else
			assert_int_equal(c.exec_ns, 101000);
	}
	/* accurate, no deadline: FP32; asked: as asked */
	assert_int_equal(route_variant(rt, "d", 0, &v, why, sizeof(why)), 0);
	assert_int_equal(v, VARIANT_FP32);
	assert_int_equal(route_variant(rt, "d", 1 + VARIANT_INT8, &v, why, sizeof(why)), 0);
	assert_int_equal(v, VARIANT_INT8);
	assert_int_equal(route_variant(rt, "d", 1 + VARIANT_FP32, &v, why, sizeof(why)), 0);
	assert_int_equal(v, VARIANT_FP32);
	/* fixed policies, and a request's own choice over them */
	assert_int_equal(route_variant(rt, "d8", 0, &v, why, sizeof(why)), 0);
	assert_int_equal(v, VARIANT_INT8);
	assert_int_equal(route_variant(rt, "d8", 1 + VARIANT_FP32, &v, why, sizeof(why)), 0);
	assert_int_equal(v, VARIANT_FP32);
	assert_int_equal(route_variant(rt, "d32", 0, &v, why, sizeof(why)), 0);
	assert_int_equal(v, VARIANT_FP32);
	/* a model without variants: fp32 is itself, int8 is a 400 */
	assert_int_equal(route_variant(rt, "plain", 1 + VARIANT_FP32, &v, why, sizeof(why)), 0);
	assert_int_equal(route_variant(rt, "plain", 1 + VARIANT_INT8, &v, why, sizeof(why)), 400);
	assert_non_null(strstr(why, "parameters.variant: model plain has no int8 variant"));
	/* a reload with the same settings carries the backend and variants over */
	rt2 = rt_build(load_text(text), rt, &err);
	assert_non_null(rt2);
	assert_ptr_equal(rt2->backends[0], rb);
	assert_ptr_equal(rt2->int8[0], rt->int8[0]);
	rt_put(rt);
	rt_put(rt2);
	assert_int_equal(rt_live_count(), 0);
}

/* A backend that refuses INT8 at load (a GPU backend whose cuBLASLt cannot run a layer; here fake with
 * fp32_only) stays up as an FP32-only candidate; a reload carries it over. */
static void test_variant_refused(void **state)
{
	char cwd[512], text[4096], why[160], *err = NULL;
	struct runtime *rt, *rt2;
	int vs[2], hosts[2], v;

	make_int8();
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(text, sizeof(text),
		 "models:\n"
		 "  - {name: d, path: %s/config/models/digits, variants: {int8: %s},"
		 " service_time_us: {base: 100, per_row: 1}}\n"
		 "backends:\n  - {name: f0, kind: fake, fp32_only: 1}\n"
		 "  - {name: b0, kind: cpu, workers: 1}\n", cwd, q8dir);
	rt = rt_build(load_text(text), NULL, &err);
	if (!rt)
		fail_msg("%s", err);
	assert_true(rt->backends[0]->started);
	assert_int_equal(rt->backends[0]->n_models, 1);		/* FP32 only */
	assert_int_equal(rt->backends[0]->n_refused, 1);
	assert_int_equal(rt->backends[1]->n_models, 2);
	assert_int_equal(rt_variants(rt, rt_find_model(rt, "d"), vs, NULL, hosts), 2);
	assert_int_equal(hosts[0], 2);
	assert_int_equal(hosts[1], 1);
	/* INT8 asked: only b0 has it, whatever the load */
	for (int i = 0; i < 4; i++) {
		struct infer_req r = { .rows = 1, .priority = 1, .variant_ask = 1 + VARIANT_INT8 };
		struct rt_admission adm;

		r.model = rt_find_model(rt, "d");
		assert_int_equal(rt_precheck(rt, &r, 1, &adm), 0);
		assert_int_equal(adm.be, 1);
	}
	assert_int_equal(route_variant(rt, "d", 0, &v, why, sizeof(why)), 0);
	assert_int_equal(v, VARIANT_FP32);
	rt2 = rt_build(load_text(text), rt, &err);
	assert_non_null(rt2);
	assert_ptr_equal(rt2->backends[0], rt->backends[0]);
	assert_ptr_equal(rt2->backends[1], rt->backends[1]);
	rt_put(rt);
	rt_put(rt2);
	assert_int_equal(rt_live_count(), 0);
}

/* Past ROUTER_SCAN_ALL backends the router samples backends, each bringing
 * both its variants' queues: the policy and an asked variant still hold. */
static void test_variants_sampled(void **state)
{
	char cwd[512], text[8192], why[160], *err = NULL;
	struct runtime *rt;
	int len, v;

	make_int8();
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	len = snprintf(text, sizeof(text),
		       "models:\n"
		       "  - {name: d, path: %s/config/models/digits, variants: {int8: %s},"
		       " service_time_us: {base: 100, per_row: 1}}\nbackends:\n", cwd, q8dir);
	for (int i = 0; i < ROUTER_SCAN_ALL + 4; i++)
		len += snprintf(text + len, sizeof(text) - len, "  - {name: f%d, kind: fake}\n", i);
	rt = rt_build(load_text(text), NULL, &err);
	if (!rt)
		fail_msg("%s", err);
	for (int i = 0; i < 64; i++) {
		assert_int_equal(route_variant(rt, "d", 0, &v, why, sizeof(why)), 0);
		assert_int_equal(v, VARIANT_FP32);
		assert_int_equal(route_variant(rt, "d", 1 + VARIANT_INT8, &v, why, sizeof(why)), 0);
		assert_int_equal(v, VARIANT_INT8);
	}
	rt_put(rt);
	assert_int_equal(rt_live_count(), 0);
}

/* Replace the first `from` in q8dir/model.yaml by `to` (a broken variant). */
static void edit_int8_yaml(const char *from, const char *to)
{
	char f[128], buf[8192], out[8192], *at;
	FILE *fp;
	size_t n;

	snprintf(f, sizeof(f), "%s/model.yaml", q8dir);
	fp = fopen(f, "r");
	assert_non_null(fp);
	n = fread(buf, 1, sizeof(buf) - 1, fp);
	fclose(fp);
	buf[n] = 0;
	at = strstr(buf, from);
	assert_non_null(at);
	snprintf(out, sizeof(out), "%.*s%s%s", (int)(at - buf), buf, to, at + strlen(from));
	fp = fopen(f, "w");
	assert_non_null(fp);
	fputs(out, fp);
	fclose(fp);
}

/* A variant that is not one: errors name models[i].variants.int8. */
static void test_variant_errors(void **state)
{
	char cwd[512], text[4096], *err = NULL;
	struct config *c;

	make_int8();
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(text, sizeof(text), "models:\n  - {name: d, path: %s/config/models/digits,"
		 " variants: {int8: %s/config/models/digits}}\nbackends:\n  - {kind: cpu}\n",
		 cwd, cwd);
	assert_null(rt_build(c = load_text(text), NULL, &err));
	cfg_free(c);	/* a failed build leaves it the caller's */
	assert_non_null(strstr(err, "models[0].variants.int8"));
	assert_non_null(strstr(err, "says variant fp32: expected an INT8 model"));
	free(err);
	err = NULL;
	snprintf(text, sizeof(text), "models:\n  - {name: d, path: %s,"
		 " variants: {int8: %s}}\nbackends:\n  - {kind: cpu}\n", q8dir, q8dir);
	assert_null(rt_build(c = load_text(text), NULL, &err));
	cfg_free(c);	/* a failed build leaves it the caller's */
	assert_non_null(strstr(err, "models[0].path"));
	assert_non_null(strstr(err, "says variant int8"));
	free(err);
	err = NULL;
	snprintf(text, sizeof(text), "models:\n  - {name: d, path: %s/config/models/digits,"
		 " variants: {int8: /nonexistent}}\nbackends:\n  - {kind: cpu}\n", cwd);
	assert_null(rt_build(c = load_text(text), NULL, &err));
	cfg_free(c);	/* a failed build leaves it the caller's */
	assert_non_null(strstr(err, "models[0].variants.int8"));
	free(err);
	err = NULL;
	/* made from another model; then answering another batch size (the
	 * last use of q8dir: it is edited in place) */
	snprintf(text, sizeof(text), "models:\n  - {name: d, path: %s/config/models/digits,"
		 " variants: {int8: %s}}\nbackends:\n  - {kind: cpu}\n", cwd, q8dir);
	edit_int8_yaml("variant_of: \"digits\"", "variant_of: \"other\"");
	assert_null(rt_build(c = load_text(text), NULL, &err));
	cfg_free(c);
	assert_non_null(strstr(err, "models[0].variants.int8"));
	assert_non_null(strstr(err, "variant_of is other, expected digits"));
	free(err);
	err = NULL;
	edit_int8_yaml("variant_of: \"other\"", "variant_of: \"d\"");	/* the config's name: fine */
	edit_int8_yaml("max_batch_size: 64", "max_batch_size: 32");
	assert_null(rt_build(c = load_text(text), NULL, &err));
	cfg_free(c);
	assert_non_null(strstr(err, "max_batch_size 32; the model in 64, out 10, max_batch_size 64"));
	free(err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backend_hosting_70_models),
		cmocka_unit_test(test_300_backends_tracked),
		cmocka_unit_test(test_host_index),
		cmocka_unit_test(test_reaper_takes_every_release),
		cmocka_unit_test(test_lease),
		cmocka_unit_test(test_queue_conf_precedence),
		cmocka_unit_test(test_variants),
		cmocka_unit_test(test_variant_refused),
		cmocka_unit_test(test_variants_sampled),
		cmocka_unit_test(test_variant_errors),
		cmocka_unit_test(test_model_of_another_runtime),
	};

	int rc;

	log_set_level(LOG_WARN);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	drop_int8();
	return rc;
}
