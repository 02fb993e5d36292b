/* test_be_cpu.c - the oneDNN CPU backend against model_forward_ref. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <dnnl.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "backend.h"
#include "infer.h"
#include "model/model.h"
#include "model/quant.h"

#define DIGITS "config/models/digits"
#define SENTINEL (-12345.0f)

/* ---- helpers ---------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(void)	/* uniform [-1, 1), deterministic */
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return (float)((rng_state >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}

/* done() comes from a worker thread (the backend is asynchronous), or
 * from inside submit (a batch run inline). */
struct done_rec {
	_Atomic int calls;
	struct batch *_Atomic last;
	_Atomic pthread_t thread;	/* of the last call */
};

static void on_done(struct batch *b)
{
	struct done_rec *d = b->owner;

	atomic_store(&d->last, b);
	atomic_store(&d->thread, pthread_self());
	atomic_fetch_add(&d->calls, 1);
}

/* Wait (bounded: 10 s) until d has n calls. */
static void wait_done(struct done_rec *d, int n)
{
	for (int i = 0; i < 100000 && atomic_load(&d->calls) < n; i++)
		usleep(100);
}

static bool close_enough(float got, double ref)
{
	return fabs((double)got - ref) <= 1e-5 * fabs(ref) + 1e-6;
}

/* Every row of r->output matches the reference for r->input. */
static void check_req(const struct model *m, const struct infer_req *r)
{
	double *ref = calloc((size_t)r->rows * m->out_dim, sizeof(double));
	int i;

	model_forward_ref(m, r->input, r->rows, ref);
	for (i = 0; i < r->rows * m->out_dim; i++)
		if (!close_enough(r->output[i], ref[i]))
			fail_msg("%s: row %d col %d: got %.9g, want %.9g", m->name,
				 i / m->out_dim, i % m->out_dim, r->output[i], ref[i]);
	free(ref);
}

static void req_init(struct infer_req *r, const struct model *m, int rows,
		     const float *input)
{
	int i;

	memset(r, 0, sizeof(*r));
	r->model = m;
	r->rows = rows;
	r->input = input;
	r->output = malloc(sizeof(float) * (size_t)rows * m->out_dim);
	for (i = 0; i < rows * m->out_dim; i++)
		r->output[i] = SENTINEL;
	r->status = -1;
	atomic_init(&r->state, REQ_RUNNING);
}

static void open_cpu_layout(struct backend *be, int slots, int threads, enum be_wlayout wl)
{
	struct backend_conf conf = {
		.name = "cpu-test", .kind = BE_CPU, .slots = slots, .threads_per_slot = threads,
		.weights_layout = wl,
	};
	char *err = NULL;

	memset(be, 0, sizeof(*be));
	be->ops = &be_cpu_ops;
	if (be->ops->open(be, &conf, &err))
		fail_msg("open: %s", err);
	assert_int_equal(be_state_get(be), BE_UP);
	assert_int_equal(be->credits, slots);
}

static void open_cpu(struct backend *be, int slots, int threads)
{
	open_cpu_layout(be, slots, threads, BE_WLAYOUT_AUTO);
}

/* Write a safetensors file of F32 tensors. */
struct wt {
	const char *name;
	int ndim;
	int64_t dims[2];
	const float *data;
};

static void write_st(const char *path, const struct wt *t, int n)
{
	char hdr[4096];
	size_t off = 0, hl = 0;
	uint64_t len;
	FILE *f;
	int i, j;

	hl += snprintf(hdr + hl, sizeof(hdr) - hl, "{");
	for (i = 0; i < n; i++) {
		size_t cnt = 1;

		for (j = 0; j < t[i].ndim; j++)
			cnt *= (size_t)t[i].dims[j];
		hl += snprintf(hdr + hl, sizeof(hdr) - hl, "%s\"%s\":{\"dtype\":\"F32\",\"shape\":[",
			       i ? "," : "", t[i].name);
		for (j = 0; j < t[i].ndim; j++)
			hl += snprintf(hdr + hl, sizeof(hdr) - hl, "%s%lld", j ? "," : "",
				       (long long)t[i].dims[j]);
		hl += snprintf(hdr + hl, sizeof(hdr) - hl, "],\"data_offsets\":[%zu,%zu]}",
			       off, off + cnt * 4);
		off += cnt * 4;
	}
	hl += snprintf(hdr + hl, sizeof(hdr) - hl, "}");
	f = fopen(path, "wb");
	assert_non_null(f);
	len = hl;
	assert_int_equal(fwrite(&len, 8, 1, f), 1);	/* x86/arm64: little endian */
	assert_int_equal(fwrite(hdr, 1, hl, f), hl);
	for (i = 0; i < n; i++) {
		size_t cnt = 1;

		for (j = 0; j < t[i].ndim; j++)
			cnt *= (size_t)t[i].dims[j];
		assert_int_equal(fwrite(t[i].data, 4, cnt, f), cnt);
	}
	fclose(f);
}

static float *rand_floats(size_t n, float scale)
{
	float *p = malloc(n * sizeof(float));
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = frand() * scale;
	return p;
}

static char tmpdir[PATH_MAX];

/*
 * Two models in tmpdir/a (16 -> 33 relu -> 7 no bias -> softmax, batch <= 17)
 * and tmpdir/b (16 -> 7, no activation, no softmax, batch <= 5).
 */
static void write_random_models(void)
{
	float *w1 = rand_floats(33 * 16, 0.5f), *b1 = rand_floats(33, 0.1f);
	float *w2 = rand_floats(7 * 33, 0.5f), *w3 = rand_floats(7 * 16, 1.0f);
	float *b3 = rand_floats(7, 1.0f);
	struct wt ta[] = {
		{ "l1.w", 2, { 33, 16 }, w1 }, { "l1.b", 1, { 33 }, b1 }, { "l2.w", 2, { 7, 33 }, w2 },
	};
	struct wt tb[] = { { "w", 2, { 7, 16 }, w3 }, { "b", 1, { 7 }, b3 } };
	char p[PATH_MAX + 32];
	FILE *f;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_be_cpu_XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(p, sizeof(p), "%s/a", tmpdir);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/b", tmpdir);
	assert_int_equal(mkdir(p, 0755), 0);

	snprintf(p, sizeof(p), "%s/a/w.safetensors", tmpdir);
	write_st(p, ta, 3);
	snprintf(p, sizeof(p), "%s/a/model.yaml", tmpdir);
	f = fopen(p, "w");
	fputs("name: odd\nmax_batch_size: 17\nweights: w.safetensors\n"
	      "inputs: [{name: x, datatype: FP32, shape: [-1, 16]}]\n"
	      "outputs: [{name: y, datatype: FP32, shape: [-1, 7]}]\n"
	      "layers:\n"
	      "  - {type: dense, weight: l1.w, bias: l1.b, activation: relu}\n"
	      "  - {type: dense, weight: l2.w}\n"
	      "  - {type: softmax}\n", f);
	fclose(f);

	snprintf(p, sizeof(p), "%s/b/model.safetensors", tmpdir);
	write_st(p, tb, 2);
	snprintf(p, sizeof(p), "%s/b/model.yaml", tmpdir);
	f = fopen(p, "w");
	fputs("name: linear\nmax_batch_size: 5\n"
	      "inputs: [{name: x, datatype: FP32, shape: [-1, 16]}]\n"
	      "outputs: [{name: y, datatype: FP32, shape: [-1, 7]}]\n"
	      "layers: [{type: dense, weight: w, bias: b, activation: none}]\n", f);
	fclose(f);
	free(w1);
	free(b1);
	free(w2);
	free(w3);
	free(b3);
}

static void remove_random_models(void)
{
	static const char *const files[] = {
		"a/w.safetensors", "a/model.yaml", "b/model.safetensors", "b/model.yaml", "a", "b",
	};
	char p[PATH_MAX + 32];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", tmpdir, files[i]);
		if (unlink(p) < 0)
			rmdir(p);
	}
	rmdir(tmpdir);
}

static struct model *load(const char *dir)
{
	char *err = NULL;
	struct model *m = model_load(dir, &err);

	if (!m)
		fail_msg("model_load %s: %s", dir, err);
	return m;
}

/* What the scheduler does before submit: point each slice at its rows. */
static void views(struct infer_slice *sl, int n)
{
	for (int i = 0; i < n; i++) {
		sl[i].input = sl[i].r->input + (size_t)sl[i].row0 * sl[i].r->model->in_dim;
		sl[i].output = sl[i].r->output + (size_t)sl[i].row0 * sl[i].r->model->out_dim;
	}
}

/* Submit slices sl[0..n) as one batch on slot; expects done once. */
static void run_slices(struct backend *be, const struct model *m, int slot,
		       struct infer_slice *sl, int n)
{
	struct done_rec d = { 0 };
	struct batch b = {
		.model = m, .be = be, .slot = slot, .n_slices = n, .slices = sl,
		.done = on_done, .owner = &d,
	};
	int i;

	for (i = 0; i < n; i++)
		b.rows += sl[i].rows;
	views(sl, n);
	assert_int_equal(be->ops->submit(be, &b), 0);
	wait_done(&d, 1);
	usleep(100);	/* a second call would show now */
	assert_int_equal(d.calls, 1);
	assert_ptr_equal(d.last, &b);
	assert_true(b.exec_start_ns > 0);
	assert_true(b.exec_end_ns >= b.exec_start_ns);
}

/* Submit the given whole requests as one batch on slot; each request's
 * status is its slice's (-1: the backend left it untouched). */
static void run_batch(struct backend *be, const struct model *m, int slot,
		      struct infer_req **reqs, int n)
{
	struct infer_slice sl[64];
	int i;

	assert_true(n <= 64);
	for (i = 0; i < n; i++)
		sl[i] = (struct infer_slice){ .r = reqs[i], .rows = reqs[i]->rows, .status = -1 };
	run_slices(be, m, slot, sl, n);
	for (i = 0; i < n; i++)
		reqs[i]->status = sl[i].status;
}

/* ---- tests ------------------------------------------------------------ */

static void test_digits_padding_and_cancel(void **state)
{
	const struct st_tensor *x;
	struct backend_stats st;
	struct infer_req r[4], *rp[4];
	struct backend be;
	struct st_file *h;
	struct model *m;
	char *err = NULL;
	int i;

	(void)state;
	m = load(DIGITS);
	h = st_open(DIGITS "/heldout.safetensors", &err);
	assert_non_null(h);
	x = st_find(h, "features");
	assert_non_null(x);
	open_cpu(&be, 1, 1);
	assert_int_equal(be.ops->load_model(&be, m, &err), 0);
	assert_int_equal(be.ops->load_model(&be, m, &err), 0);	/* again: no-op */

	/* rows 1 + 2 + 5 = 8: exactly bucket 8; then 1 + 2 + 4 = 7 pads to 8 */
	req_init(&r[0], m, 1, (const float *)x->data);
	req_init(&r[1], m, 2, (const float *)x->data + 1 * 64);
	req_init(&r[2], m, 5, (const float *)x->data + 3 * 64);
	for (i = 0; i < 3; i++)
		rp[i] = &r[i];
	run_batch(&be, m, 0, rp, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(r[i].status, 0);
		check_req(m, &r[i]);
	}
	r[2].rows = 4;
	for (i = 0; i < 3; i++)
		memset(r[i].output, 0, sizeof(float) * 10 * (size_t)r[i].rows);
	run_batch(&be, m, 0, rp, 3);
	for (i = 0; i < 3; i++)
		check_req(m, &r[i]);
	for (i = 0; i < 3; i++)
		free(r[i].output);

	/* a cancelled request in the middle: untouched, the others right */
	req_init(&r[0], m, 2, (const float *)x->data + 10 * 64);
	req_init(&r[1], m, 3, (const float *)x->data + 12 * 64);
	req_init(&r[2], m, 1, (const float *)x->data + 15 * 64);
	req_init(&r[3], m, 4, (const float *)x->data + 16 * 64);
	atomic_store(&r[1].state, REQ_CANCELLED);
	for (i = 0; i < 4; i++)
		rp[i] = &r[i];
	run_batch(&be, m, 0, rp, 4);
	for (i = 0; i < 3 * 10; i++)
		assert_true(r[1].output[i] == SENTINEL);
	assert_int_equal(r[1].status, -1);
	assert_int_equal(r[1].exec_start_ns, 0);
	check_req(m, &r[0]);
	check_req(m, &r[2]);
	check_req(m, &r[3]);

	/* an expired one is skipped the same way */
	atomic_store(&r[1].state, REQ_RUNNING);
	atomic_store(&r[3].state, REQ_EXPIRED);
	for (i = 0; i < 4 * 10; i++)
		r[3].output[i] = SENTINEL;
	run_batch(&be, m, 0, rp, 4);
	for (i = 0; i < 4 * 10; i++)
		assert_true(r[3].output[i] == SENTINEL);
	check_req(m, &r[1]);
	assert_int_equal(r[1].status, 0);

	/* all cancelled: done still called, nothing written */
	for (i = 0; i < 4; i++) {
		atomic_store(&r[i].state, REQ_CANCELLED);
		r[i].output[0] = SENTINEL;
	}
	run_batch(&be, m, 0, rp, 4);
	for (i = 0; i < 4; i++)
		assert_true(r[i].output[0] == SENTINEL);

	be.ops->stats(&be, &st);
	assert_true(st.up);
	assert_int_equal(st.batches, 5);
	assert_int_equal(st.rows, 8 + 7 + 7 + 6 + 0);
	assert_true(st.busy_ns > 0);

	for (i = 0; i < 4; i++)
		free(r[i].output);
	be.ops->close(&be);
	assert_int_equal(be_state_get(&be), BE_DOWN);
	assert_null(be.priv);
	st_close(h);
	model_free(m);
}

static void test_digits_full_batch_accuracy(void **state)
{
	const struct st_tensor *x, *y;
	struct infer_req r, *rp = &r;
	struct backend be;
	struct st_file *h;
	struct model *m;
	char *err = NULL;
	int i, j, ok = 0, n;

	(void)state;
	m = load(DIGITS);
	h = st_open(DIGITS "/heldout.safetensors", &err);
	x = st_find(h, "features");
	y = st_find(h, "labels");
	n = (int)x->dims[0];
	open_cpu(&be, 1, 2);
	assert_int_equal(be.ops->load_model(&be, m, &err), 0);
	for (i = 0; i + 64 <= n; i += 64) {
		req_init(&r, m, 64, (const float *)x->data + (size_t)i * 64);
		run_batch(&be, m, 0, &rp, 1);
		check_req(m, &r);
		for (j = 0; j < 64; j++) {
			const float *p = r.output + j * 10;
			int k, best = 0;

			for (k = 1; k < 10; k++)
				best = p[k] > p[best] ? k : best;
			ok += best == ((const int64_t *)y->data)[i + j];
		}
		free(r.output);
	}
	assert_true(ok >= 0.95 * (n / 64 * 64));
	be.ops->close(&be);
	st_close(h);
	model_free(m);
}

static void test_bad_submits(void **state)
{
	struct infer_req r;
	struct infer_slice sl = { .r = &r, .rows = 1 };
	struct done_rec d = { 0 };
	struct batch b;
	struct backend be;
	struct model *m, *other;
	float *in;
	char *err = NULL;

	(void)state;
	m = load(DIGITS);
	other = load(DIGITS);	/* same files, different model: not loaded */
	open_cpu(&be, 1, 1);
	assert_int_equal(be.ops->load_model(&be, m, &err), 0);
	in = rand_floats(65 * 64, 8.0f);

	req_init(&r, other, 1, in);
	views(&sl, 1);
	b = (struct batch){ .model = other, .be = &be, .slot = 0, .n_slices = 1, .slices = &sl,
			    .rows = 1, .done = on_done, .owner = &d };
	assert_int_equal(be.ops->submit(&be, &b), -ENOENT);
	free(r.output);

	req_init(&r, m, 65, in);	/* more than max_batch_size */
	views(&sl, 1);
	b.model = m;
	b.rows = sl.rows = 65;
	assert_int_equal(be.ops->submit(&be, &b), -EINVAL);
	assert_true(r.output[0] == SENTINEL);
	free(r.output);

	req_init(&r, m, 4, in);		/* a slice without its rows (no views) */
	b.rows = sl.rows = 3;
	sl.input = NULL;
	sl.output = r.output;
	assert_int_equal(be.ops->submit(&be, &b), -EINVAL);
	sl.input = r.input;
	sl.output = NULL;
	assert_int_equal(be.ops->submit(&be, &b), -EINVAL);
	assert_true(r.output[0] == SENTINEL && r.output[3 * 10] == SENTINEL);
	views(&sl, 1);
	sl.row0 = -1;
	b.rows = sl.rows = 1;
	assert_int_equal(be.ops->submit(&be, &b), -EINVAL);
	sl.row0 = 0;
	free(r.output);

	req_init(&r, m, 1, in);
	views(&sl, 1);
	b.rows = sl.rows = 1;
	b.slot = 1;			/* only slot 0 exists */
	assert_int_equal(be.ops->submit(&be, &b), -EINVAL);
	assert_int_equal(d.calls, 0);
	free(r.output);

	be.ops->close(&be);
	free(in);
	model_free(m);
	model_free(other);
}

/*
 * A request larger than one batch runs as slices: each batch writes only
 * its rows of the output, reads only its rows of the input, and reports in
 * the slice (the request's own status is not the backend's to write).
 */
static void test_slices_of_one_request(void **state)
{
	struct infer_req big, small;
	struct infer_slice sl[2];
	struct backend be;
	struct model *m;
	float *in;
	char *err = NULL;
	int i;

	(void)state;
	m = load(DIGITS);
	open_cpu(&be, 1, 1);
	assert_int_equal(be.ops->load_model(&be, m, &err), 0);
	in = rand_floats(60 * 64, 8.0f);
	req_init(&big, m, 50, in);
	req_init(&small, m, 3, in + 50 * 64);

	/* batch 1: the small request whole, then rows 0..28 of the big one */
	sl[0] = (struct infer_slice){ .r = &small, .rows = 3, .status = -1 };
	sl[1] = (struct infer_slice){ .r = &big, .row0 = 0, .rows = 29, .status = -1 };
	run_slices(&be, m, 0, sl, 2);
	assert_int_equal(sl[0].status, 0);
	assert_int_equal(sl[1].status, 0);
	check_req(m, &small);
	for (i = 29 * 10; i < 50 * 10; i++)
		assert_true(big.output[i] == SENTINEL);
	assert_int_equal(big.status, -1);
	/* batch 2: rows 29..49 */
	sl[0] = (struct infer_slice){ .r = &big, .row0 = 29, .rows = 21, .status = -1 };
	run_slices(&be, m, 0, sl, 1);
	assert_int_equal(sl[0].status, 0);
	check_req(m, &big);
	assert_int_equal(big.status, -1);

	free(big.output);
	free(small.output);
	be.ops->close(&be);
	free(in);
	model_free(m);
}

/* Two slots run the two halves of one request at the same time. */
struct half {
	struct backend *be;
	const struct model *m;
	struct infer_slice sl;
	pthread_barrier_t *go;
	int slot, bad;
};

static void *half_main(void *arg)
{
	struct half *h = arg;

	for (int it = 0; it < 50; it++) {
		h->sl.status = -1;
		pthread_barrier_wait(h->go);
		run_slices(h->be, h->m, h->slot, &h->sl, 1);
		h->bad += h->sl.status != 0;
		pthread_barrier_wait(h->go);
	}
	return NULL;
}

static void test_slices_on_two_slots(void **state)
{
	struct infer_req r;
	struct half h[2];
	pthread_barrier_t go;
	pthread_t t[2];
	struct backend be;
	struct model *m;
	float *in;
	char *err = NULL;
	int i;

	(void)state;
	m = load(DIGITS);
	open_cpu(&be, 2, 1);
	assert_int_equal(be.ops->load_model(&be, m, &err), 0);
	in = rand_floats(64 * 64, 8.0f);
	req_init(&r, m, 64, in);
	pthread_barrier_init(&go, NULL, 2);
	for (i = 0; i < 2; i++) {
		h[i] = (struct half){ .be = &be, .m = m, .go = &go, .slot = i,
				      .sl = { .r = &r, .row0 = 32 * i, .rows = 32 } };
		assert_int_equal(pthread_create(&t[i], NULL, half_main, &h[i]), 0);
	}
	for (i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(h[i].bad, 0);
	}
	check_req(m, &r);
	pthread_barrier_destroy(&go);
	free(r.output);
	be.ops->close(&be);
	free(in);
	model_free(m);
}

/* 16-33-7: non-power-of-two widths, every batch size 1..17 and split shapes. */
static void test_random_models(void **state)
{
	struct infer_req r[17], *rp[17];
	char dir[PATH_MAX + 8], *err = NULL;
	struct backend be;
	struct model *ma, *mb;
	float *in;
	int n, k, slot = 0;

	(void)state;
	write_random_models();
	snprintf(dir, sizeof(dir), "%s/a", tmpdir);
	ma = load(dir);
	snprintf(dir, sizeof(dir), "%s/b", tmpdir);
	mb = load(dir);
	assert_int_equal(ma->max_width, 33);
	assert_null(ma->layers[1].bias);
	open_cpu(&be, 2, 1);
	assert_int_equal(be.ops->load_model(&be, ma, &err), 0);
	assert_int_equal(be.ops->load_model(&be, mb, &err), 0);
	in = rand_floats(17 * 16, 3.0f);

	for (n = 1; n <= 17; n++) {
		/* one request of n rows */
		req_init(&r[0], ma, n, in);
		rp[0] = &r[0];
		run_batch(&be, ma, slot, rp, 1);
		check_req(ma, &r[0]);
		free(r[0].output);
		slot ^= 1;

		/* n requests of one row each */
		for (k = 0; k < n; k++) {
			req_init(&r[k], ma, 1, in + k * 16);
			rp[k] = &r[k];
		}
		run_batch(&be, ma, slot, rp, n);
		for (k = 0; k < n; k++) {
			check_req(ma, &r[k]);
			free(r[k].output);
		}
		slot ^= 1;
	}
	for (n = 1; n <= 5; n++) {
		req_init(&r[0], mb, n, in + 16);
		rp[0] = &r[0];
		run_batch(&be, mb, n & 1, rp, 1);
		check_req(mb, &r[0]);
		free(r[0].output);
	}
	be.ops->close(&be);
	free(in);
	model_free(ma);
	model_free(mb);
	remove_random_models();
}

/* argmax of one row. */
static int argmax(const float *p, int n)
{
	int k = 0;

	for (int j = 1; j < n; j++)
		k = p[j] > p[k] ? j : k;
	return k;
}

/* Remove a model directory quant_model wrote (model.yaml, model.safetensors). */
static void remove_quant_dir(const char *dir)
{
	char p[PATH_MAX + 32];

	snprintf(p, sizeof(p), "%s/model.yaml", dir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/model.safetensors", dir);
	unlink(p);
	rmdir(dir);
}

/* The weights layouts every INT8 check runs under: u8-input INT8 layers
 * read their s8 weights packed or in place (cpu.c be_cpu_plain_ok), and
 * auto may mix the two per bucket. */
static const enum be_wlayout int8_layouts[] = { BE_WLAYOUT_PACKED, BE_WLAYOUT_PLAIN,
						BE_WLAYOUT_AUTO };
#define N_INT8_LAYOUTS (sizeof(int8_layouts) / sizeof(int8_layouts[0]))

/*
 * Digits INT8 (made by quant_model, dynamic and calibrated) through the CPU
 * backend with weights layout wl: every held-out row against the INT8
 * reference, top-1 agreement with FP32 >= 98% and accuracy within 1 point
 * of FP32's.
 */
static void check_int8_digits(const char *calibration, enum be_wlayout wl)
{
	char dir[] = "/tmp/igw-int8-XXXXXX", *err = NULL;
	struct quant_opts o = { .calibration = calibration, .force = true };
	const struct st_tensor *x, *y;
	struct model *m32, *m8;
	struct backend be;
	struct st_file *h;
	int n, agree = 0, ok32 = 0, ok8 = 0;
	double *ref;
	float *o32, *o8;

	assert_non_null(mkdtemp(dir));
	if (quant_model(DIGITS, dir, &o, &err))
		fail_msg("quant_model: %s", err);
	m32 = load(DIGITS);
	m8 = load(dir);
	assert_int_equal(m8->variant, VARIANT_INT8);
	assert_string_equal(m8->name, "digits-int8");
	assert_string_equal(m8->variant_of, "digits");
	assert_true((m8->layers[0].in_scale > 0) == (calibration != NULL));
	h = st_open(DIGITS "/heldout.safetensors", &err);
	assert_non_null(h);
	x = st_find(h, "features");
	y = st_find(h, "labels");
	n = (int)x->dims[0];
	o32 = malloc(sizeof(float) * (size_t)n * 10);
	o8 = malloc(sizeof(float) * (size_t)n * 10);
	ref = malloc(sizeof(double) * (size_t)n * 10);
	open_cpu_layout(&be, 1, 1, wl);
	assert_int_equal(be.ops->load_model(&be, m32, &err), 0);
	assert_int_equal(be.ops->load_model(&be, m8, &err), 0);
	for (int r0 = 0; r0 < n; r0 += 64) {	/* max_batch_size rows at a time */
		int rows = n - r0 < 64 ? n - r0 : 64;
		struct infer_req a, b, *pa = &a, *pb = &b;

		req_init(&a, m32, rows, (const float *)x->data + (size_t)r0 * 64);
		req_init(&b, m8, rows, (const float *)x->data + (size_t)r0 * 64);
		run_batch(&be, m32, 0, &pa, 1);
		run_batch(&be, m8, 0, &pb, 1);
		assert_int_equal(a.status, 0);
		assert_int_equal(b.status, 0);
		memcpy(o32 + (size_t)r0 * 10, a.output, sizeof(float) * (size_t)rows * 10);
		memcpy(o8 + (size_t)r0 * 10, b.output, sizeof(float) * (size_t)rows * 10);
		free(a.output);
		free(b.output);
	}
	model_forward_ref(m8, x->data, n, ref);
	/* Small batches too (buckets 1, 2, 4, 8): their weights layout may
	 * differ from the large ones' (cpu.c be_cpu_small_layout). */
	for (int rows = 1; rows <= 8; rows++) {
		struct infer_req b, *pb = &b;

		req_init(&b, m8, rows, (const float *)x->data + (size_t)rows * 64);
		run_batch(&be, m8, 0, &pb, 1);
		assert_int_equal(b.status, 0);
		for (int j = 0; j < rows * 10; j++)
			if (fabs(b.output[j] - ref[rows * 10 + j]) > 1e-3)
				fail_msg("batch of %d, row %d class %d: int8 backend %g, reference %g",
					 rows, rows + j / 10, j % 10, (double)b.output[j],
					 ref[rows * 10 + j]);
		free(b.output);
	}
	for (int i = 0; i < n; i++) {
		int64_t label = ((const int64_t *)y->data)[i];
		int k32 = argmax(o32 + i * 10, 10), k8 = argmax(o8 + i * 10, 10);

		/* one-step rounding differences at .5 boundaries are allowed
		 * (quantize in float vs the reference's float64): 1e-3 */
		for (int j = 0; j < 10; j++)
			if (fabs(o8[i * 10 + j] - ref[i * 10 + j]) > 1e-3)
				fail_msg("row %d class %d: int8 backend %g, int8 reference %g", i, j,
					 (double)o8[i * 10 + j], ref[i * 10 + j]);
		agree += k32 == k8;
		ok32 += k32 == label;
		ok8 += k8 == label;
	}
	print_message("digits int8 (%s, weights_layout %d): agreement %.2f%%, accuracy fp32 "
		      "%.2f%% int8 %.2f%%\n", calibration ? "calibrated" : "dynamic per row", (int)wl,
		      100.0 * agree / n,
		      100.0 * ok32 / n, 100.0 * ok8 / n);
	assert_true(agree * 100 >= 98 * n);
	assert_true(abs(ok32 - ok8) * 100 <= n);
	be.ops->close(&be);
	model_free(m8);
	model_free(m32);
	st_close(h);
	free(o32);
	free(o8);
	free(ref);
	remove_quant_dir(dir);
}

static void test_int8_digits_dynamic(void **state)
{
	(void)state;
	for (size_t k = 0; k < N_INT8_LAYOUTS; k++)
		check_int8_digits(NULL, int8_layouts[k]);
}

/* The same on the split path (INT8 inputs that may be negative fed as two
 * u8 halves, cpu.c be_cpu_split), which CPUs without VNNI take: forced
 * here, so that a VNNI machine tests it too. */
static void test_int8_digits_split(void **state)
{
	(void)state;
	assert_int_equal(setenv("INFERGW_CPU_NO_VNNI", "1", 1), 0);
	for (size_t k = 0; k < N_INT8_LAYOUTS; k++) {
		check_int8_digits(NULL, int8_layouts[k]);
		check_int8_digits(DIGITS "/heldout.safetensors", int8_layouts[k]);
	}
	unsetenv("INFERGW_CPU_NO_VNNI");
}

static void test_int8_digits_calibrated(void **state)
{
	(void)state;
	for (size_t k = 0; k < N_INT8_LAYOUTS; k++)
		check_int8_digits(DIGITS "/heldout.safetensors", int8_layouts[k]);
}

/*
 * INT8 layer chains through the CPU backend, every path of be_cpu_forward:
 * a 4-dense-layer model (16 -> 40 relu -> 24 -> 20 relu -> 9 -> softmax)
 * quantized static (calibrated: s8 in, u8 and s8 activations written by
 * oneDNN between layers, clamped to +-127, f32 out of the last), dynamic
 * (per row, requantized in C) and mixed (layers 0 and 2 dynamic, 1 and 3
 * static: C requantization into a static layer's input, a static layer
 * with f32 out followed by a dynamic one).  Every answer against
 * model_forward_ref (1e-3: a one-step rounding difference at a .5
 * boundary); and a row's answer is bit for bit the same alone as in a
 * batch of 19 (s32 accumulation, per-row scales: nothing depends on the
 * batch neighbours).
 */
static void write_deep_model(const char *dir, const char *calib)
{
	static const int w[] = { 16, 40, 24, 20, 9 };
	float *t[8], *x = rand_floats(30 * 16, 3.0f);
	struct wt tw[8], tx[] = { { "features", 2, { 30, 16 }, x } };
	char p[PATH_MAX + 32], name[8][16];
	FILE *f;

	for (int i = 0; i < 4; i++) {
		t[2 * i] = rand_floats((size_t)w[i + 1] * w[i], 0.4f);
		t[2 * i + 1] = rand_floats((size_t)w[i + 1], 0.2f);
		snprintf(name[2 * i], sizeof(name[0]), "l%d.w", i);
		snprintf(name[2 * i + 1], sizeof(name[0]), "l%d.b", i);
		tw[2 * i] = (struct wt){ name[2 * i], 2, { w[i + 1], w[i] }, t[2 * i] };
		tw[2 * i + 1] = (struct wt){ name[2 * i + 1], 1, { w[i + 1] }, t[2 * i + 1] };
	}
	snprintf(p, sizeof(p), "%s/model.safetensors", dir);
	write_st(p, tw, 8);
	write_st(calib, tx, 1);
	snprintf(p, sizeof(p), "%s/model.yaml", dir);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs("name: deep\nmax_batch_size: 19\n"
	      "inputs: [{name: x, datatype: FP32, shape: [-1, 16]}]\n"
	      "outputs: [{name: y, datatype: FP32, shape: [-1, 9]}]\n"
	      "layers:\n"
	      "  - {type: dense, weight: l0.w, bias: l0.b, activation: relu}\n"
	      "  - {type: dense, weight: l1.w, bias: l1.b}\n"
	      "  - {type: dense, weight: l2.w, bias: l2.b, activation: relu}\n"
	      "  - {type: dense, weight: l3.w, bias: l3.b}\n"
	      "  - {type: softmax}\n", f);
	fclose(f);
	for (int i = 0; i < 8; i++)
		free(t[i]);
	free(x);
}

static void check_int8_chain(struct backend *be, struct model *m, const float *in, int slot)
{
	struct infer_req r[19], *rp[19];
	double *ref = malloc(sizeof(double) * 19 * 9);
	char *err = NULL;
	int n, k, j;

	assert_int_equal(be->ops->load_model(be, m, &err), 0);
	model_forward_ref(m, in, 19, ref);
	for (n = 1; n <= 19; n++) {
		req_init(&r[0], m, n, in);	/* one request of n rows */
		rp[0] = &r[0];
		run_batch(be, m, slot, rp, 1);
		assert_int_equal(r[0].status, 0);
		for (j = 0; j < n * 9; j++)
			if (fabs(r[0].output[j] - ref[j]) > 1e-3)
				fail_msg("%s: %d rows: row %d col %d: got %.9g, reference %.9g",
					 m->name, n, j / 9, j % 9, (double)r[0].output[j], ref[j]);
		if (n == 19) {	/* each row alone: the same bits */
			for (k = 0; k < n; k++) {
				req_init(&r[1], m, 1, in + k * 16);
				rp[1] = &r[1];
				run_batch(be, m, slot ^ 1, &rp[1], 1);
				if (memcmp(r[1].output, r[0].output + k * 9, sizeof(float) * 9))
					fail_msg("%s: row %d alone differs from row %d of 19", m->name,
						 k, k);
				free(r[1].output);
			}
		}
		free(r[0].output);
	}
	/* A hostile row (NaN, +-Inf: the HTTP front ends refuse them, the
	 * backend must not rely on it) answers something and leaves its
	 * neighbours' answers alone, bit for bit. */
	{
		float *bad = malloc(sizeof(float) * 19 * 16);
		struct infer_req a, b, *pa = &a, *pb = &b;

		memcpy(bad, in, sizeof(float) * 19 * 16);
		bad[3 * 16 + 2] = NAN;
		bad[7 * 16 + 0] = INFINITY;
		bad[7 * 16 + 1] = -INFINITY;
		req_init(&a, m, 19, in);
		req_init(&b, m, 19, bad);
		run_batch(be, m, slot, &pa, 1);
		run_batch(be, m, slot, &pb, 1);
		assert_int_equal(b.status, 0);
		for (k = 0; k < 19; k++)
			if (k != 3 && k != 7 &&
			    memcmp(a.output + k * 9, b.output + k * 9, sizeof(float) * 9))
				fail_msg("%s: row %d changed by a non-finite neighbour", m->name, k);
		free(a.output);
		free(b.output);
		free(bad);
	}
	free(ref);
}

static void int8_chains(enum be_wlayout wl)
{
	char dir[] = "/tmp/igw-int8c-XXXXXX", fp[PATH_MAX], sd[PATH_MAX], dd[PATH_MAX];
	char calib[PATH_MAX], *err = NULL;
	struct quant_opts os = { .calibration = calib, .force = true }, od = { .force = true };
	struct model *ms, *md, *mx;
	struct backend be;
	float *in;

	assert_non_null(mkdtemp(dir));
	snprintf(fp, sizeof(fp), "%s/fp32", dir);
	snprintf(sd, sizeof(sd), "%s/static", dir);
	snprintf(dd, sizeof(dd), "%s/dynamic", dir);
	snprintf(calib, sizeof(calib), "%s/calib.safetensors", dir);
	assert_int_equal(mkdir(fp, 0755), 0);
	write_deep_model(fp, calib);
	if (quant_model(fp, sd, &os, &err) || quant_model(fp, dd, &od, &err))
		fail_msg("quant_model: %s", err);
	ms = load(sd);
	md = load(dd);
	mx = load(sd);
	for (int i = 0; i < 4; i++) {
		assert_true(ms->layers[i].in_scale > 0);
		assert_true(md->layers[i].in_scale == 0);
	}
	mx->layers[0].in_scale = 0;	/* mixed: dynamic, static, dynamic, static */
	mx->layers[2].in_scale = 0;
	in = rand_floats(19 * 16, 3.0f);
	in[5] = 40.0f;	/* beyond the calibration: saturates at 127 steps */
	open_cpu_layout(&be, 2, 2, wl);
	check_int8_chain(&be, ms, in, 0);
	check_int8_chain(&be, md, in, 1);
	check_int8_chain(&be, mx, in, 0);
	be.ops->close(&be);
	model_free(ms);
	model_free(md);
	model_free(mx);
	free(in);
	{
		static const char *const rm[] = {
			"fp32/model.yaml", "fp32/model.safetensors", "static/model.yaml",
			"static/model.safetensors", "dynamic/model.yaml", "dynamic/model.safetensors",
			"calib.safetensors", "fp32", "static", "dynamic", "",
		};
		char p[PATH_MAX * 2];

		for (size_t i = 0; i < sizeof(rm) / sizeof(rm[0]); i++) {
			snprintf(p, sizeof(p), "%s/%s", dir, rm[i]);
			if (unlink(p) < 0)
				rmdir(p);
		}
	}
}

static void test_int8_chains(void **state)
{
	(void)state;
	for (size_t k = 0; k < N_INT8_LAYOUTS; k++)
		int8_chains(int8_layouts[k]);
}

/* ... on the split path (no VNNI, forced: see test_int8_digits_split). */
static void test_int8_chains_split(void **state)
{
	(void)state;
	assert_int_equal(setenv("INFERGW_CPU_NO_VNNI", "1", 1), 0);
	for (size_t k = 0; k < N_INT8_LAYOUTS; k++)
		int8_chains(int8_layouts[k]);
	unsetenv("INFERGW_CPU_NO_VNNI");
}

/* Two scheduler threads, one per slot, submitting at the same time. */
struct worker {
	struct backend *be;
	const struct model *m;
	int slot, bad;
	const float *in;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int it, i;

	for (it = 0; it < 200; it++) {
		struct infer_req r[3];
		struct infer_slice sl[3];
		struct done_rec d = { 0 };
		struct batch b = { .model = w->m, .be = w->be, .slot = w->slot, .n_slices = 3,
				   .slices = sl, .done = on_done, .owner = &d };
		double ref[64 * 10];
		int rows[3] = { 1 + (it + w->slot) % 20, 1 + it % 7, 1 + (it * 7) % 30 };

		for (i = 0; i < 3; i++) {
			req_init(&r[i], w->m, rows[i], w->in + (size_t)(it % 5) * 64 * (i + 1));
			sl[i] = (struct infer_slice){ .r = &r[i], .rows = rows[i] };
			b.rows += rows[i];
		}
		views(sl, 3);
		if (w->be->ops->submit(w->be, &b))
			w->bad++;
		wait_done(&d, 1);
		if (d.calls != 1)
			w->bad++;
		for (i = 0; i < 3; i++) {
			int j;

			model_forward_ref(w->m, r[i].input, r[i].rows, ref);
			for (j = 0; j < r[i].rows * 10; j++)
				if (!close_enough(r[i].output[j], ref[j]))
					w->bad++;
			free(r[i].output);
		}
	}
	return NULL;
}

static void test_concurrent_slots(void **state)
{
	struct worker w[2];
	pthread_t t[2];
	struct backend be;
	struct backend_stats st;
	struct model *m;
	float *in;
	char *err = NULL;
	int i;

	(void)state;
	m = load(DIGITS);
	open_cpu(&be, 2, 1);
	assert_int_equal(be.ops->load_model(&be, m, &err), 0);
	in = rand_floats(64 * 64, 8.0f);
	for (i = 0; i < 64 * 64; i++)
		in[i] = fabsf(in[i]);
	for (i = 0; i < 2; i++) {
		w[i] = (struct worker){ .be = &be, .m = m, .slot = i, .in = in };
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(w[i].bad, 0);
	}
	be.ops->stats(&be, &st);
	assert_int_equal(st.batches, 400);
	be.ops->close(&be);
	free(in);
	model_free(m);
}

/* Submit slices sl[0..n) as one batch on slot 0 and wait for it; whether
 * it ran inline (done inside submit, on this thread). */
static bool submit_slices_here(struct backend *be, struct model *m, struct infer_slice *sl,
			       int n)
{
	struct done_rec d = { 0 };
	struct batch b = {
		.model = m, .be = be, .slot = 0, .n_slices = n, .slices = sl,
		.done = on_done, .owner = &d,
	};
	bool in_submit, here;

	for (int i = 0; i < n; i++)
		b.rows += sl[i].rows;
	views(sl, n);
	assert_int_equal(be->ops->submit(be, &b), 0);
	in_submit = atomic_load(&d.calls) == 1;
	wait_done(&d, 1);
	assert_int_equal(d.calls, 1);
	here = pthread_equal(atomic_load(&d.thread), pthread_self());
	assert_true(!here || in_submit);	/* on this thread only inside submit */
	return here;
}

/* Submit one 3-row digits batch (rows at in) to be, wait for it, check its
 * answer; whether it ran inline. */
static bool submit_three_rows(struct backend *be, struct model *m, const float *in)
{
	struct infer_req r;
	struct infer_slice sl = { .r = &r, .rows = 3, .status = -1 };
	bool here;

	req_init(&r, m, 3, in);
	here = submit_slices_here(be, m, &sl, 1);
	assert_int_equal(sl.status, 0);
	check_req(m, &r);
	free(r.output);
	return here;
}

/*
 * inline_us: once a bucket has run (on a worker) and took at most inline_us,
 * its batches run inside submit on the caller's thread - done before
 * submit returns, counted in inline_batches - with the same answers; a
 * bucket not yet run, a backend with inline_us 0 or with an OpenMP team of
 * two never do.
 */
static void test_inline_small_batches(void **state)
{
	/* 1 s: even qemu's first, translating run of a bucket fits (at 1 ms an
	 * AMD host's qemu-user ran it in more, and the bucket never went inline) */
	static const int inl[3] = { 1000000, 0, 1000000 }, team[3] = { 1, 1, 2 };
	struct model *m = load(DIGITS);
	float *in = rand_floats(8 * 64, 8.0f);

	(void)state;
	for (int k = 0; k < 3; k++) {
		struct backend_conf conf = {
			.name = "cpu-inline", .kind = BE_CPU, .slots = 1,
			.threads_per_slot = team[k], .inline_us = inl[k],
		};
		struct backend_stats st;
		struct backend be = { .ops = &be_cpu_ops };
		char *err = NULL;
		bool expect_inline = inl[k] > 0 && team[k] == 1;

		if (be.ops->open(&be, &conf, &err) || be.ops->load_model(&be, m, &err))
			fail_msg("open/load: %s", err);
		/* the first batch of the bucket runs on the worker: measured */
		for (int i = 0; i < 4; i++)
			assert_true(submit_three_rows(&be, m, in + i * 64) == (expect_inline && i > 0));
		be.ops->stats(&be, &st);
		assert_int_equal(st.batches, 4);
		assert_int_equal(st.inline_batches, expect_inline ? 3 : 0);
		be.ops->close(&be);
	}
	free(in);
	model_free(m);
}

/*
 * A batch run inline never seeds an estimate (be_cpu_note_run): one whose
 * requests were cancelled before it ran has fewer rows than it was decided
 * on, and lands in a bucket that may never have run.  Here a 3-row batch
 * (bucket 4, run and measured before: inline) with two of its three 1-row
 * requests cancelled runs 1 row inline - right answer, the cancelled ones
 * untouched; the next 1-row batch still goes to the worker, since only a
 * worker's run measures bucket 1 first.  (Two lines keep it so: the "not
 * seeded here" return, and the clamp to twice an estimate of 0; a mutant
 * without both fails this test.)
 */
static void test_inline_does_not_seed(void **state)
{
	struct backend_conf conf = {
		.name = "cpu-seed", .kind = BE_CPU, .slots = 1, .threads_per_slot = 1,
		.inline_us = 1000000,	/* even qemu's first, translating run fits */
	};
	struct model *m = load(DIGITS);
	float *in = rand_floats(3 * 64, 8.0f);
	struct backend be = { .ops = &be_cpu_ops };
	struct infer_req r[3];
	struct infer_slice sl[3];
	struct backend_stats st;
	char *err = NULL;

	(void)state;
	if (be.ops->open(&be, &conf, &err) || be.ops->load_model(&be, m, &err))
		fail_msg("open/load: %s", err);
	assert_false(submit_three_rows(&be, m, in));	/* the bucket's first: a worker */
	assert_true(submit_three_rows(&be, m, in));	/* measured: inline */
	for (int i = 0; i < 3; i++) {
		req_init(&r[i], m, 1, in + i * 64);
		sl[i] = (struct infer_slice){ .r = &r[i], .rows = 1, .status = -1 };
	}
	atomic_store(&r[1].state, REQ_CANCELLED);
	atomic_store(&r[2].state, REQ_CANCELLED);
	assert_true(submit_slices_here(&be, m, sl, 3));	/* decided on 3 rows: inline */
	assert_int_equal(sl[0].status, 0);
	check_req(m, &r[0]);
	for (int i = 1; i < 3; i++) {
		assert_int_equal(sl[i].status, -1);
		assert_true(r[i].output[0] == SENTINEL);
	}
	/* bucket 1 ran once, inline: not measured, so a worker runs it */
	atomic_store(&r[1].state, REQ_RUNNING);
	assert_false(submit_slices_here(&be, m, &sl[1], 1));
	assert_int_equal(sl[1].status, 0);
	check_req(m, &r[1]);
	be.ops->stats(&be, &st);
	assert_int_equal(st.batches, 4);
	assert_int_equal(st.inline_batches, 2);
	for (int i = 0; i < 3; i++)
		free(r[i].output);
	be.ops->close(&be);
	free(in);
	model_free(m);
}

/*
 * dnnl_primitive_execute, interposed for this program (the backend in
 * libinfergw.a resolves to it): the library's own, then exec_pause_ns of
 * sleep - wall time passes on the calling thread, its CPU time does not:
 * a batch preempted by the loop it yields to, or stopped by a CPU quota.
 */
static _Atomic uint64_t exec_pause_ns;
static _Atomic int exec_paused;	/* calls that slept */

dnnl_status_t dnnl_primitive_execute(const_dnnl_primitive_t p, dnnl_stream_t s, int nargs,
				     const dnnl_exec_arg_t *args)
{
	typedef dnnl_status_t (*exec_fn)(const_dnnl_primitive_t, dnnl_stream_t, int,
					 const dnnl_exec_arg_t *);
	static _Atomic(exec_fn) real;
	exec_fn fn = atomic_load(&real);
	uint64_t ns = atomic_load(&exec_pause_ns);
	dnnl_status_t st;

	if (!fn) {
		*(void **)&fn = dlsym(RTLD_NEXT, "dnnl_primitive_execute");
		if (!fn) {	/* maybe on a worker thread: no cmocka assertion */
			fprintf(stderr, "test_be_cpu: dlsym(dnnl_primitive_execute): %s\n", dlerror());
			abort();
		}
		atomic_store(&real, fn);
	}
	st = fn(p, s, nargs, args);
	if (ns) {
		struct timespec ts = { (time_t)(ns / 1000000000u), (long)(ns % 1000000000u) };

		nanosleep(&ts, NULL);
		atomic_fetch_add(&exec_paused, 1);
	}
	return st;
}

/* After test_inline_despite_pauses, pass or fail: no more pauses. */
static int no_pauses(void **state)
{
	(void)state;
	atomic_store(&exec_pause_ns, 0);
	return 0;
}

/*
 * inline_us decides on what a batch costs, not on the pauses around it
 * (be_cpu_note_run): a first batch on the worker that sleeps 30 ms inside
 * each matmul (wall 60 ms, CPU microseconds natively, a few ms under
 * qemu's emulation, its first run translating the code) still lets the
 * next ones run inline under inline_us 10000; one inline batch paused
 * 2 x 200 ms does not send the bucket back to the worker (unclamped, that
 * sample alone would lift the estimate to ~100 ms); and with inline_us 1
 * (less than any batch's CPU time) nothing runs inline.  (With 3 ms, 20 ms
 * and 1000 us the first emulated batch's CPU time could pass the limit.)
 */
static void test_inline_despite_pauses(void **state)
{
	struct model *m = load(DIGITS);
	float *in = rand_floats(3 * 64, 8.0f);

	(void)state;
	for (int k = 0; k < 2; k++) {
		struct backend_conf conf = {
			.name = "cpu-pause", .kind = BE_CPU, .slots = 1, .threads_per_slot = 1,
			.inline_us = k == 0 ? 10000 : 1,
		};
		struct backend_stats st;
		struct backend be = { .ops = &be_cpu_ops };
		char *err = NULL;

		if (be.ops->open(&be, &conf, &err) || be.ops->load_model(&be, m, &err))
			fail_msg("open/load: %s", err);
		atomic_store(&exec_paused, 0);
		atomic_store(&exec_pause_ns, 30000000);
		assert_false(submit_three_rows(&be, m, in));	/* the bucket's first: a worker */
		atomic_store(&exec_pause_ns, 200000000);
		assert_true(submit_three_rows(&be, m, in) == (k == 0));
		atomic_store(&exec_pause_ns, 0);
		/* the pauses happened: two batches, a matmul for each of digits'
		 * two dense layers */
		assert_int_equal(atomic_load(&exec_paused), 2 * 2);
		for (int i = 0; i < 3; i++)
			assert_true(submit_three_rows(&be, m, in) == (k == 0));
		be.ops->stats(&be, &st);
		assert_int_equal(st.batches, 5);
		assert_int_equal(st.inline_batches, k == 0 ? 4 : 0);
		be.ops->close(&be);
	}
	free(in);
	model_free(m);
}

/* be_log lines, kept for the test to read. */
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_text[65536];
static size_t log_len;

static void log_keep(int level, const char *line)
{
	(void)level;
	pthread_mutex_lock(&log_mu);
	log_len += (size_t)snprintf(log_text + log_len, sizeof(log_text) - log_len, "%s\n", line);
	if (log_len >= sizeof(log_text))
		log_len = sizeof(log_text) - 1;
	pthread_mutex_unlock(&log_mu);
}

/* n comma separated numbers from s into v; how many were read. */
static int read_list(const char *s, double *v, int n)
{
	int k = 0;
	char *end;

	while (k < n) {
		v[k++] = strtod(s, &end);
		if (end == s || *end != ',')
			break;
		s = end + 1;
	}
	return k;
}

/*
 * Every "weights layout timed" line: one plain bucket bit per bucket,
 * set exactly where the logged plain time beats packed by the 3% margin
 * (the times are printed to 0.1 us: a tie within that goes either way).
 * Returns how many lines there were.
 */
static int check_layout_lines(int n_buckets)
{
	int lines = 0;

	for (char *l = strstr(log_text, "plain_buckets=0x"); l; l = strstr(l + 1, "plain_buckets=0x")) {
		double pk[16], pl[16];
		unsigned mask = (unsigned)strtoul(l + 16, NULL, 16);
		char *a = strstr(l, "packed_us="), *b = strstr(l, " plain_us=");

		assert_non_null(a);
		assert_non_null(b);
		assert_int_equal(read_list(a + 10, pk, 16), n_buckets);
		assert_int_equal(read_list(b + 10, pl, 16), n_buckets);
		for (int i = 0; i < n_buckets; i++) {
			bool plain = mask >> i & 1;

			if (plain ? pl[i] * 1.03 > pk[i] + 0.1 : pl[i] * 1.03 < pk[i] - 0.1)
				fail_msg("bucket %d: plain %s with packed %.1f us, plain %.1f us", i,
					 plain ? "chosen" : "not chosen", pk[i], pl[i]);
		}
		lines++;
	}
	return lines;
}

/* The model of one weight tensor t and model.yaml text yaml, written to a
 * fresh tmpdir, loaded, and the files removed. */
static struct model *load_one_tensor(const struct wt *t, const char *yaml)
{
	char p[PATH_MAX + 32];
	struct model *m;
	FILE *f;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_be_cpu_XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	snprintf(p, sizeof(p), "%s/model.safetensors", tmpdir);
	write_st(p, t, 1);
	snprintf(p, sizeof(p), "%s/model.yaml", tmpdir);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(yaml, f);
	fclose(f);
	m = load(tmpdir);
	unlink(p);
	snprintf(p, sizeof(p), "%s/model.safetensors", tmpdir);
	unlink(p);
	rmdir(tmpdir);
	return m;
}

/* A 16 -> 1024 dense layer without bias, every weight in [0.5e30, 1.5e30)
 * (an amplifier for subnormal inputs). */
static struct model *write_amplifier(void)
{
	float *w = rand_floats(1024 * 16, 0.5e30f);
	struct wt t[] = { { "w", 2, { 1024, 16 }, w } };
	struct model *m;

	for (int i = 0; i < 1024 * 16; i++)
		w[i] += 1e30f;
	m = load_one_tensor(t, "name: amp\nmax_batch_size: 8\n"
			    "inputs: [{name: x, datatype: FP32, shape: [-1, 16]}]\n"
			    "outputs: [{name: y, datatype: FP32, shape: [-1, 1024]}]\n"
			    "layers: [{type: dense, weight: w, activation: none}]\n");
	free(w);
	return m;
}

/*
 * Subnormal inputs count as zero in compute (cpu.c be_cpu_flush_enter) on
 * every thread that computes: a worker with a team of one, a worker with a
 * team of two (oneDNN splits the 1024 outputs over both), and inline on
 * the submitting thread.  Through write_amplifier's layer, rows of
 * subnormal values (1e-39 .. 1e-38) come out as exact zeros (unflushed,
 * each output would be ~1e-8 > 0), while rows of normal values in the same
 * batch match the float64 reference.  The submitting thread's own mode is
 * left as it was: a subnormal still multiplies to a nonzero there.
 */
static void test_subnormal_inputs_flushed(void **state)
{
	static const int team[3] = { 1, 2, 1 }, inl[3] = { 0, 0, 1000000 };
	struct model *m = write_amplifier();
	float *in = rand_floats(8 * 16, 1.0f);
	volatile float tiny = 1e-39f, one = 1.0f;

	(void)state;
	for (int i = 0; i < 8 * 16; i++)	/* > 0: no cancellation in the sums */
		in[i] = fabsf(in[i]) + 0.01f;
	for (int i = 0; i < 8 * 16; i += 32)	/* rows 0, 2, 4, 6 */
		for (int j = 0; j < 16; j++)
			in[i + j] = 1e-39f + (float)j * 6e-40f;
	assert_true(fpclassify(in[0]) == FP_SUBNORMAL && fpclassify(in[15]) == FP_SUBNORMAL);
	for (int k = 0; k < 3; k++) {
		struct backend_conf conf = {
			.name = "cpu-flush", .kind = BE_CPU, .slots = 1,
			.threads_per_slot = team[k], .inline_us = inl[k],
		};
		struct backend be = { .ops = &be_cpu_ops };
		char *err = NULL;

		if (be.ops->open(&be, &conf, &err) || be.ops->load_model(&be, m, &err))
			fail_msg("open/load: %s", err);
		for (int round = 0; round < 2; round++) {	/* inline: the second */
			struct infer_req r;
			struct infer_slice sl = { .r = &r, .rows = 8, .status = -1 };
			bool here;

			req_init(&r, m, 8, in);
			here = submit_slices_here(&be, m, &sl, 1);
			assert_int_equal(sl.status, 0);
			assert_true(here == (inl[k] && round == 1));
			for (int row = 0; row < 8; row += 2)
				for (int j = 0; j < 1024; j++)
					if (r.output[row * 1024 + j] != 0.0f)
						fail_msg("team %d%s: row %d col %d: %g, want 0", team[k],
							 here ? " inline" : "", row, j,
							 r.output[row * 1024 + j]);
			for (int row = 1; row < 8; row += 2) {
				struct infer_req one_row = r;

				one_row.rows = 1;
				one_row.input = in + row * 16;
				one_row.output = r.output + row * 1024;
				check_req(m, &one_row);
			}
			free(r.output);
		}
		be.ops->close(&be);
		assert_true(tiny * one != 0.0f);
	}
	free(in);
	model_free(m);
}

/*
 * Softmax at the widths around cpu.c's narrow path (BE_CPU_NARROW 16: a
 * row padded to 16 lanes) and past it: 4 -> w dense + softmax for w = 1,
 * 2, 10, 15, 16, 17, 31, rows of 1..8, against the float64 reference;
 * each row sums to 1.  The weights (x 300) spread logits by hundreds: most
 * probabilities underflow to 0, and a max taken over part of a row would
 * overflow exp's range (the clamp at 88) and fail.
 */
static void test_softmax_widths(void **state)
{
	static const int widths[] = { 1, 2, 10, 15, 16, 17, 31 };
	float *in = rand_floats(8 * 4, 1.0f);

	(void)state;
	for (size_t k = 0; k < sizeof(widths) / sizeof(widths[0]); k++) {
		int w = widths[k];
		float *wt = rand_floats((size_t)w * 4, 300.0f);
		struct wt t[] = { { "w", 2, { w, 4 }, wt } };
		char yaml[512], *err = NULL;
		struct backend be;
		struct model *m;

		snprintf(yaml, sizeof(yaml), "name: sm%d\nmax_batch_size: 8\n"
			 "inputs: [{name: x, datatype: FP32, shape: [-1, 4]}]\n"
			 "outputs: [{name: y, datatype: FP32, shape: [-1, %d]}]\n"
			 "layers: [{type: dense, weight: w}, {type: softmax}]\n", w, w);
		m = load_one_tensor(t, yaml);
		open_cpu(&be, 1, 1);
		assert_int_equal(be.ops->load_model(&be, m, &err), 0);
		for (int rows = 1; rows <= 8; rows++) {
			struct infer_req r, *rp = &r;

			req_init(&r, m, rows, in);
			run_batch(&be, m, 0, &rp, 1);
			assert_int_equal(r.status, 0);
			check_req(m, &r);
			for (int i = 0; i < rows; i++) {
				double sum = 0;

				for (int j = 0; j < w; j++)
					sum += r.output[i * w + j];
				if (fabs(sum - 1.0) > 1e-5)
					fail_msg("width %d row %d sums to %.9g", w, i, sum);
			}
			free(r.output);
		}
		be.ops->close(&be);
		model_free(m);
		free(wt);
	}
	free(in);
}

/*
 * backends[].weights_layout: packed, plain and auto all answer like the
 * reference at every bucket; auto times both layouts per dense layer and
 * bucket and logs the times with its choice, which follows them; the
 * others time nothing.
 */
static void test_weights_layouts(void **state)
{
	static const enum be_wlayout modes[] = { BE_WLAYOUT_PACKED, BE_WLAYOUT_PLAIN,
						 BE_WLAYOUT_AUTO };
	char dir[PATH_MAX + 8], *err = NULL;
	struct infer_req r, *rp = &r;
	struct model *ma, *md;
	float *in;

	(void)state;
	write_random_models();
	snprintf(dir, sizeof(dir), "%s/a", tmpdir);
	ma = load(dir);
	md = load(DIGITS);
	in = rand_floats(64 * 64, 8.0f);
	be_log_set(log_keep);
	for (size_t k = 0; k < sizeof(modes) / sizeof(modes[0]); k++) {
		struct backend be;

		log_len = 0;
		log_text[0] = 0;
		open_cpu_layout(&be, 1, 2, modes[k]);
		assert_int_equal(be.ops->load_model(&be, ma, &err), 0);
		if (modes[k] == BE_WLAYOUT_AUTO) {	/* odd: buckets 1 2 4 8 16 17 */
			int n = check_layout_lines(6);

			log_len = 0;
			assert_int_equal(be.ops->load_model(&be, md, &err), 0);
			n += check_layout_lines(7);	/* digits: 1 ... 64 */
			print_message("weights_layout auto: %d layers timed\n%s", n, log_text);
			assert_true(n >= 1);
		} else {
			assert_int_equal(be.ops->load_model(&be, md, &err), 0);
			assert_null(strstr(log_text, "plain_buckets="));
		}
		for (int rows = 1; rows <= 64; rows = rows * 3 + 1) {
			if (rows <= ma->max_batch_size) {
				req_init(&r, ma, rows, in);
				run_batch(&be, ma, 0, &rp, 1);
				assert_int_equal(r.status, 0);
				check_req(ma, &r);
				free(r.output);
			}
			req_init(&r, md, rows, in);
			run_batch(&be, md, 0, &rp, 1);
			assert_int_equal(r.status, 0);
			check_req(md, &r);
			free(r.output);
		}
		be.ops->close(&be);
	}
	be_log_set(NULL);
	free(in);
	model_free(ma);
	model_free(md);
	remove_random_models();
}

/*
 * weights_layout auto times an INT8 layer with a u8 input like an FP32 one
 * (cpu.c be_cpu_plain_ok): on the split path (no VNNI, forced) every dense
 * layer of digits-int8 takes u8, so both get a "weights layout timed" line
 * whose choice follows the times; the answers of every layout are checked
 * by the int8 tests above.
 */
static void test_int8_layouts_timed(void **state)
{
	char dir[] = "/tmp/igw-int8l-XXXXXX", *err = NULL;
	struct quant_opts o = { .force = true };
	struct model *m8;
	struct backend be;

	(void)state;
	assert_non_null(mkdtemp(dir));
	if (quant_model(DIGITS, dir, &o, &err))
		fail_msg("quant_model: %s", err);
	m8 = load(dir);
	assert_int_equal(setenv("INFERGW_CPU_NO_VNNI", "1", 1), 0);
	be_log_set(log_keep);
	log_len = 0;
	log_text[0] = 0;
	open_cpu_layout(&be, 1, 1, BE_WLAYOUT_AUTO);
	assert_int_equal(be.ops->load_model(&be, m8, &err), 0);
	print_message("%s", log_text);
	assert_int_equal(check_layout_lines(7), 2);	/* buckets 1 ... 64 */
	assert_non_null(strstr(log_text, "model=digits-int8 layer=0 weights="));
	assert_non_null(strstr(log_text, "model=digits-int8 layer=1 weights="));
	be.ops->close(&be);
	be_log_set(NULL);
	unsetenv("INFERGW_CPU_NO_VNNI");
	model_free(m8);
	remove_quant_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_digits_padding_and_cancel),
		cmocka_unit_test(test_digits_full_batch_accuracy),
		cmocka_unit_test(test_bad_submits),
		cmocka_unit_test(test_int8_digits_dynamic),
		cmocka_unit_test(test_int8_digits_calibrated),
		cmocka_unit_test(test_int8_digits_split),
		cmocka_unit_test(test_int8_chains),
		cmocka_unit_test(test_int8_chains_split),
		cmocka_unit_test(test_weights_layouts),
		cmocka_unit_test(test_int8_layouts_timed),
		cmocka_unit_test(test_inline_small_batches),
		cmocka_unit_test(test_inline_does_not_seed),
		cmocka_unit_test(test_subnormal_inputs_flushed),
		cmocka_unit_test(test_softmax_widths),
		cmocka_unit_test_teardown(test_inline_despite_pauses, no_pauses),
		cmocka_unit_test(test_slices_of_one_request),
		cmocka_unit_test(test_slices_on_two_slots),
		cmocka_unit_test(test_random_models),
		cmocka_unit_test(test_concurrent_slots),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
