/*
 * test_be_gpu.c - the GPU backend (backends/gpu/gpu.c) through backend.h.
 *
 * Without a device (or without CUDA built in) it checks what such a
 * machine must do: open fails with the CUDA error's text, a down backend
 * refuses submits (-ENODEV), and a sticky error on a batch fails its
 * slices over and takes the backend down (gpuhost's completion on a fake
 * batch).  With a device it also runs digits against model_forward_ref,
 * graphs on and off, and drives the sticky path through be_gpu_inject;
 * and digits-int8 (made here by quant_model) through cuBLASLt against
 * model_forward_ref's INT8 reference, and a layer cuBLASLt cannot run
 * refused at load naming it.
 * tests/gpu/ compares every batch size with the CPU backend.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "infer.h"
#include "model/model.h"
#include "model/quant.h"
#include "gpu/gpu.h"
#include "gpu/gpuhost.h"

#define DIGITS "config/models/digits"

#ifdef USE_CUDA
struct done_rec {
	_Atomic int calls;
};

static void on_done(struct batch *b)
{
	struct done_rec *d = b->owner;

	atomic_fetch_add(&d->calls, 1);
}

/* Wait (bounded: 10 s) until d has n calls. */
static void wait_done(struct done_rec *d, int n)
{
	for (int i = 0; i < 100000 && atomic_load(&d->calls) < n; i++)
		usleep(100);
}
#endif

/* The registry knows kind gpu either way; its ops come from the plugin
 * (gpuload.c), which exists only with CUDA.  Here the plugin is looked for
 * where INFERGW_GPU_PLUGIN says, a path with nothing there: the kind's ops
 * are NULL and the error names the path (the plugin loading and serving is
 * tests/integration/test_gpu_down.py's). */
static void test_registry(void **state)
{
	const struct be_kind *k = be_kind_find("gpu");
	char *err = NULL;

	assert_non_null(k);
	assert_int_equal(k->kind, BE_GPU);
	assert_null(k->ops);		/* never linked into the programs */
	setenv("INFERGW_GPU_PLUGIN", "/nonexistent/infergw-gpu.so", 1);
	assert_null(be_kind_ops(k, &err));
	assert_non_null(err);
#ifdef USE_CUDA
	assert_ptr_equal(k->load, be_gpu_load);
	assert_string_equal(err, "gpu: the GPU plugin /nonexistent/infergw-gpu.so is missing "
			    "(install it next to the program, or set INFERGW_GPU_PLUGIN)");
	assert_string_equal(be_gpu_ops.kind, "gpu");	/* what the plugin exports */
#else
	assert_null(k->load);
	assert_string_equal(err, "backend kind gpu not built into this binary");
#endif
	free(err);
	unsetenv("INFERGW_GPU_PLUGIN");
}

#ifdef USE_CUDA
/* true when this machine has a usable device (open succeeds). */
static bool have_device(void)
{
	static int known = -1;

	if (known < 0) {
		struct backend be = { .ops = &be_gpu_ops };
		char *err = NULL;

		be.conf.name = "probe";
		be.conf.slots = 1;
		known = be_gpu_ops.open(&be, &be.conf, &err) == 0;
		if (known)
			be_gpu_ops.close(&be);
		free(err);
	}
	return known == 1;
}
#endif

/* No device: open fails, naming CUDA and its error; the backend is down. */
static void test_open_no_device(void **state)
{
#ifndef USE_CUDA
	skip();	/* CUDA not built in: the kind stays down (registry ops NULL) */
#else
	struct backend be = { .ops = &be_gpu_ops };
	char *err = NULL;
	int rc;

	if (have_device())
		skip();
	be.conf.name = "gpu0";
	be.conf.slots = 2;
	be_state_set(&be, BE_UP);
	rc = be_gpu_ops.open(&be, &be.conf, &err);
	assert_int_equal(rc, -ENODEV);
	assert_non_null(err);
	fprintf(stderr, "open: %s\n", err);
	assert_non_null(strstr(err, "gpu: CUDA: "));
	assert_true(strlen(err) > strlen("gpu: CUDA: ") + 3);
	assert_non_null(strstr(err, "(cudaError"));	/* the error's name */
	assert_null(be.priv);
	assert_int_equal(be_state_get(&be), BE_DOWN);
	free(err);

	/* a bad ordinal fails the same way on any machine */
	be.conf.device = 63;
	rc = be_gpu_ops.open(&be, &be.conf, &err);
	assert_int_equal(rc, -ENODEV);
	assert_non_null(strstr(err, "gpu: CUDA: "));
	free(err);
#endif
}

/* A backend that is not open (or down) refuses work with -ENODEV and
 * calls no done(): the scheduler then fails the batch over. */
static void test_submit_down(void **state)
{
#ifndef USE_CUDA
	skip();
#else
	struct backend be = { .ops = &be_gpu_ops };
	struct infer_req r = { 0 };
	float in[64] = { 0 }, out[10];
	struct infer_slice sl = { .r = &r, .rows = 1, .input = in, .output = out };
	struct done_rec d = { 0 };
	struct batch b = { .be = &be, .n_slices = 1, .slices = &sl, .rows = 1,
			   .done = on_done, .owner = &d };
	struct model m = { .name = "x" };
	char *err = NULL;

	b.model = &m;
	assert_int_equal(be_gpu_ops.submit(&be, &b), -ENODEV);
	assert_int_equal(be_gpu_ops.load_model(&be, &m, &err), -ENODEV);
	free(err);
	assert_int_equal(be_gpu_inject(&be, GPU_ERR_ILLEGAL_ADDRESS), -ENODEV);
	assert_int_equal(atomic_load(&d.calls), 0);
	/* stats of a backend never opened: zeros, not up */
	{
		struct backend_stats st;

		be_gpu_ops.stats(&be, &st);
		assert_false(st.up);
		assert_int_equal(st.batches, 0);
	}
	/* caps still answer from the config (the scheduler may ask) */
	{
		struct be_caps caps = { 0 };

		be.conf.gpu.max_batch = 100;
		be_gpu_ops.caps(&be, &m, &caps);
		assert_int_equal(caps.max_batch, 100);
		assert_true(caps.batching_defaults);
		assert_int_equal(caps.delay_us, 200);
		assert_int_equal(caps.preferred[0], 8);
		assert_int_equal(caps.preferred[caps.n_preferred - 1], 100);
	}
#endif
}

/* The completion path with an injected sticky code on a fake batch: what
 * gpu.c's completion thread does (gpu_settle) without a device. */
static void test_sticky_on_fake_batch(void **state)
{
	struct backend be = { 0 };
	struct gpu_health h;
	struct infer_req r[3] = { 0 };
	float in[3][4] = { { 0 } }, out[3][2] = { { 0 } };
	struct infer_slice sl[3];
	struct batch b = { .n_slices = 3, .slices = sl, .rows = 3 };
	bool live[3];

	for (int i = 0; i < 3; i++) {
		atomic_init(&r[i].state, REQ_RUNNING);
		sl[i] = (struct infer_slice){ .r = &r[i], .rows = 1, .input = in[i],
					      .output = out[i], .status = 0 };
	}
	be.conf.name = "gpu0";
	be_state_set(&be, BE_UP);
	gpu_health_init(&h);
	assert_int_equal(gpu_live(&b, live), 3);
	assert_int_equal(gpu_settle(&be, &h, &b, live, GPU_ERR_ILLEGAL_ADDRESS, "injected",
				    "an illegal memory access was encountered"), GPU_V_DOWN);
	for (int i = 0; i < 3; i++)
		assert_int_equal(sl[i].status, BE_RETRY);
	assert_int_equal(be_state_get(&be), BE_DOWN);
	assert_non_null(strstr(h.reason, "illegal memory access"));
}

#ifdef USE_CUDA
/* Run rows rows of m on be (slot 0) in one slice; outputs into out. */
static int run_rows(struct backend *be, const struct model *m, const float *in, float *out,
		    int rows, int *status)
{
	struct infer_req r = { 0 };
	struct infer_slice sl = { .r = &r, .rows = rows, .input = in, .output = out,
				  .status = -777 };
	struct done_rec d = { 0 };
	struct batch b = { .model = m, .be = be, .n_slices = 1, .slices = &sl, .rows = rows,
			   .done = on_done, .owner = &d };
	int rc;

	atomic_init(&r.state, REQ_RUNNING);
	rc = be->ops->submit(be, &b);
	if (rc)
		return rc;
	wait_done(&d, 1);
	assert_int_equal(atomic_load(&d.calls), 1);
	*status = sl.status;
	return 0;
}

static void check_digits(bool graphs)
{
	struct backend be = { .ops = &be_gpu_ops };
	char *err = NULL;
	struct model *m;
	int rows = 37, st;
	float *in, *out;
	double *ref;

	m = model_load(DIGITS, &err);
	assert_non_null(m);
	be.conf.name = "gpu0";
	be.conf.slots = 2;
	be.conf.gpu.graphs = graphs;
	assert_int_equal(be_gpu_ops.open(&be, &be.conf, &err), 0);
	assert_int_equal(be_gpu_ops.load_model(&be, m, &err), 0);
	in = calloc((size_t)rows * m->in_dim, sizeof(float));
	out = calloc((size_t)rows * m->out_dim, sizeof(float));
	ref = calloc((size_t)rows * m->out_dim, sizeof(double));
	for (int i = 0; i < rows * m->in_dim; i++)
		in[i] = (float)((i * 7919) % 17) / 16.0f;
	model_forward_ref(m, in, rows, ref);
	/* three runs: warm-up, capture, replay (graphs on) */
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < rows * m->out_dim; i++)
			out[i] = NAN;	/* poison: an unwritten element fails */
		assert_int_equal(run_rows(&be, m, in, out, rows, &st), 0);
		assert_int_equal(st, 0);
		for (int i = 0; i < rows * m->out_dim; i++)
			assert_true(fabs(out[i] - ref[i]) <= 1e-5 * fabs(ref[i]) + 1e-6);
	}
	/* a sticky error: the batch fails over, the backend goes down */
	assert_int_equal(be_gpu_inject(&be, GPU_ERR_ILLEGAL_ADDRESS), 0);
	assert_int_equal(run_rows(&be, m, in, out, rows, &st), 0);
	assert_int_equal(st, BE_RETRY);
	assert_int_equal(be_state_get(&be), BE_DOWN);
	assert_int_equal(run_rows(&be, m, in, out, 1, &st), -ENODEV);
	{
		struct backend_stats s;

		be_gpu_ops.stats(&be, &s);
		assert_non_null(strstr(s.reason, "illegal memory access"));
	}
	be_gpu_ops.unload_model(&be, m);
	be_gpu_ops.close(&be);
	free(in);
	free(out);
	free(ref);
	model_free(m);
}
#endif

#ifdef USE_CUDA
/*
 * digits-int8 on the GPU against model_forward_ref: the device quantizes
 * with the reference's arithmetic (gpuq8.h) and sums s8 products exactly,
 * so only the last layer's float32 and the float softmax differ: 1e-5
 * absolute and the same argmax on every row.  Then a model whose layer
 * cuBLASLt cannot run in INT8 (input wider than the s32 bound) is refused
 * with the layer's name, and the digits one still serves.
 */
static void check_digits_int8(void)
{
	char dir[] = "/tmp/test_be_gpu_q8_XXXXXX", *err = NULL, path[64];
	struct quant_opts qo = { .force = true };
	struct backend be = { .ops = &be_gpu_ops };
	struct model *m, wide = { 0 };
	struct layer wl = { 0 };
	int rows = 37, st, in_w = GPU_Q8_MAX_K + 1;
	float *in, *out, *ws;
	signed char *qw;
	double *ref;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(quant_model(DIGITS, dir, &qo, &err), 0);
	m = model_load(dir, &err);
	assert_non_null(m);
	be.conf.name = "gpu0";
	be.conf.slots = 2;
	be.conf.gpu.graphs = true;
	assert_int_equal(be_gpu_ops.open(&be, &be.conf, &err), 0);
	assert_int_equal(be_gpu_ops.load_model(&be, m, &err), 0);
	in = calloc((size_t)rows * m->in_dim, sizeof(float));
	out = calloc((size_t)rows * m->out_dim, sizeof(float));
	ref = calloc((size_t)rows * m->out_dim, sizeof(double));
	for (int i = 0; i < rows * m->in_dim; i++)
		in[i] = (float)((i * 7919) % 17);
	model_forward_ref(m, in, rows, ref);
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < rows * m->out_dim; i++)
			out[i] = NAN;
		assert_int_equal(run_rows(&be, m, in, out, rows, &st), 0);
		assert_int_equal(st, 0);
		for (int r = 0; r < rows; r++) {
			int am = 0, wm = 0;

			for (int c = 0; c < m->out_dim; c++) {
				int i = r * m->out_dim + c;

				assert_true(fabs(out[i] - ref[i]) <= 1e-5);
				am = out[i] > out[r * m->out_dim + am] ? c : am;
				wm = ref[i] > ref[r * m->out_dim + wm] ? c : wm;
			}
			assert_int_equal(am, wm);
		}
	}
	/* refused at load, naming the layer; the backend stays up */
	qw = calloc((size_t)in_w * 4, 1);
	ws = calloc(4, sizeof(float));
	assert_non_null(qw);
	for (int i = 0; i < 4; i++)
		ws[i] = 1.0f;
	wl = (struct layer){ .kind = LAYER_DENSE, .in = in_w, .out = 4, .qweight = (int8_t *)qw,
			     .wscale = ws };
	wide = (struct model){ .name = "wide-int8", .in_dim = in_w, .out_dim = 4, .n_layers = 1,
			       .layers = &wl, .max_width = in_w, .variant = VARIANT_INT8 };
	assert_int_equal(be_gpu_ops.load_model(&be, &wide, &err), -EINVAL);
	fprintf(stderr, "refused: %s\n", err);
	assert_non_null(strstr(err, "model wide-int8: layers[0]"));
	assert_non_null(strstr(err, "overflow"));
	free(err);
	assert_int_equal(be_state_get(&be), BE_UP);
	assert_int_equal(run_rows(&be, m, in, out, 5, &st), 0);
	assert_int_equal(st, 0);
	be_gpu_ops.unload_model(&be, m);
	be_gpu_ops.close(&be);
	free(qw);
	free(ws);
	free(in);
	free(out);
	free(ref);
	model_free(m);
	snprintf(path, sizeof(path), "%s/model.yaml", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/model.safetensors", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/labels.txt", dir);
	unlink(path);
	rmdir(dir);
}
#endif

/* With a device: digits-int8 through cuBLASLt against the INT8 reference,
 * and the refusal of a layer it cannot run. */
static void test_device_digits_int8(void **state)
{
#ifndef USE_CUDA
	skip();
#else
	if (!have_device())
		skip();
	check_digits_int8();
#endif
}

/* With a device: digits against the float64 reference, graphs on/off,
 * then the injected sticky error. */
static void test_device_digits(void **state)
{
#ifndef USE_CUDA
	skip();
#else
	if (!have_device())
		skip();	/* no device here: tests/gpu and this run where one is lent */
	check_digits(true);
	check_digits(false);
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_registry),
		cmocka_unit_test(test_open_no_device),
		cmocka_unit_test(test_submit_down),
		cmocka_unit_test(test_sticky_on_fake_batch),
		cmocka_unit_test(test_device_digits),
		cmocka_unit_test(test_device_digits_int8),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
