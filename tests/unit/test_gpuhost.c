/* test_gpuhost.c - the GPU backend's host logic (backends/gpu/gpuhost.c):
 * buckets, preferred sizes, staging layout, graph cache, packing, the
 * error-to-state mapping and completion.  No device needed. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "infer.h"
#include "gpu/gpuhost.h"
#include "gpu/gpuq8.h"
#include "model/model.h"
#include "model/quant.h"

#include <math.h>
#include <stdio.h>
#include <unistd.h>

static void test_buckets(void **state)
{
	int b[GPU_MAX_BUCKETS], n;

	n = gpu_buckets(256, b);
	assert_int_equal(n, 9);
	for (int i = 0; i < 9; i++)
		assert_int_equal(b[i], 1 << i);
	n = gpu_buckets(100, b);	/* 1..64, then the max itself */
	assert_int_equal(n, 8);
	assert_int_equal(b[6], 64);
	assert_int_equal(b[7], 100);
	n = gpu_buckets(1, b);
	assert_int_equal(n, 1);
	assert_int_equal(b[0], 1);
	n = gpu_buckets(0, b);
	assert_int_equal(n, 1);
	assert_int_equal(b[0], 1);
	n = gpu_buckets(4096, b);
	assert_int_equal(n, 13);
	assert_int_equal(b[12], 4096);

	n = gpu_buckets(100, b);
	assert_int_equal(gpu_bucket_of(b, n, 1), 0);
	assert_int_equal(gpu_bucket_of(b, n, 2), 1);
	assert_int_equal(gpu_bucket_of(b, n, 3), 2);
	assert_int_equal(gpu_bucket_of(b, n, 64), 6);
	assert_int_equal(gpu_bucket_of(b, n, 65), 7);
	assert_int_equal(gpu_bucket_of(b, n, 100), 7);
	assert_int_equal(gpu_bucket_of(b, n, 101), -1);
	assert_int_equal(gpu_bucket_of(b, n, 0), -1);
	/* every row count lands in the smallest bucket holding it */
	n = gpu_buckets(256, b);
	for (int r = 1; r <= 256; r++) {
		int i = gpu_bucket_of(b, n, r);

		assert_true(i >= 0 && b[i] >= r);
		assert_true(i == 0 || b[i - 1] < r);
	}
}

static void test_preferred(void **state)
{
	int p[BE_MAX_PREFERRED], n;
	static const int want256[] = { 8, 16, 32, 64, 128, 256 };

	n = gpu_preferred(256, p);
	assert_int_equal(n, 6);
	assert_memory_equal(p, want256, sizeof(want256));
	n = gpu_preferred(100, p);	/* 8..64, then the limit */
	assert_int_equal(n, 5);
	assert_int_equal(p[3], 64);
	assert_int_equal(p[4], 100);
	n = gpu_preferred(4096, p);	/* 8..1024 would be 8 sizes: the limit replaces the last */
	assert_int_equal(n, BE_MAX_PREFERRED);
	assert_int_equal(p[BE_MAX_PREFERRED - 1], 4096);
	for (int i = 1; i < n; i++)
		assert_true(p[i] > p[i - 1]);
	n = gpu_preferred(5, p);
	assert_int_equal(n, 1);
	assert_int_equal(p[0], 5);
	n = gpu_preferred(8, p);
	assert_int_equal(n, 1);
	assert_int_equal(p[0], 8);
}

static void test_layout(void **state)
{
	struct gpu_layout l;

	assert_int_equal(gpu_layout_plan(&l, 256, 784, 10), 0);
	assert_int_equal(l.in_off, 0);
	assert_int_equal(l.in_bytes, 256 * 784 * 4);
	assert_int_equal(l.out_off % GPU_ALIGN, 0);
	assert_true(l.out_off >= l.in_bytes);
	assert_true(l.out_off < l.in_bytes + GPU_ALIGN);
	assert_int_equal(l.out_bytes, 256 * 10 * 4);
	assert_int_equal(l.bytes % GPU_ALIGN, 0);
	assert_true(l.bytes >= l.out_off + l.out_bytes);

	assert_int_equal(gpu_layout_plan(&l, 1, 3, 1), 0);	/* 12 bytes in: out at 256 */
	assert_int_equal(l.out_off, 256);
	assert_int_equal(l.bytes, 512);

	assert_int_equal(gpu_layout_plan(&l, 0, 3, 1), -EINVAL);
	assert_int_equal(gpu_layout_plan(&l, 4, 0, 1), -EINVAL);
	assert_int_equal(gpu_layout_plan(&l, 4, 3, -1), -EINVAL);
	assert_int_equal(gpu_align_up(0, 256), 0);
	assert_int_equal(gpu_align_up(1, 256), 256);
	assert_int_equal(gpu_align_up(256, 256), 256);
	assert_int_equal(gpu_align_up(257, 256), 512);
}

static int freed;
static void count_free(void *exec)
{
	freed += exec != NULL;
}

static void test_graph_cache(void **state)
{
	struct gpu_graph_cache c;
	int model_a, model_b, exec1, exec2;
	struct gpu_graph_key ka = { &model_a, 0, 3, 0 }, kb = { &model_b, 0, 3, 0 };
	struct gpu_graph_key ka_slot1 = { &model_a, 1, 3, 0 }, ka_tf32 = { &model_a, 0, 3, 1 };
	struct gpu_graph_entry *e, *e2;

	assert_int_equal(gpu_graph_cache_init(&c, 4), 0);
	e = gpu_graph_find(&c, &ka);
	assert_non_null(e);
	assert_int_equal(e->state, GPU_G_COLD);
	/* graphs off: always plain, never warms */
	assert_int_equal(gpu_graph_step(e, false), GPU_G_RUN);
	assert_int_equal(e->state, GPU_G_COLD);
	/* first run warms up, second captures, then replays */
	assert_int_equal(gpu_graph_step(e, true), GPU_G_RUN);
	assert_int_equal(e->state, GPU_G_WARM);
	assert_int_equal(gpu_graph_step(e, true), GPU_G_CAPTURE);
	gpu_graph_captured(e, &exec1);
	assert_int_equal(e->state, GPU_G_READY);
	assert_ptr_equal(e->exec, &exec1);
	assert_int_equal(gpu_graph_step(e, true), GPU_G_REPLAY);
	assert_int_equal(gpu_graph_step(e, true), GPU_G_REPLAY);
	assert_ptr_equal(gpu_graph_find(&c, &ka), e);	/* the same key finds it */

	/* model, slot and math each make another key */
	e2 = gpu_graph_find(&c, &kb);
	assert_ptr_not_equal(e2, e);
	assert_int_equal(e2->state, GPU_G_COLD);
	assert_ptr_not_equal(gpu_graph_find(&c, &ka_slot1), e);
	assert_ptr_not_equal(gpu_graph_find(&c, &ka_tf32), e);
	/* a failed capture runs plainly from then on */
	gpu_graph_step(e2, true);
	assert_int_equal(gpu_graph_step(e2, true), GPU_G_CAPTURE);
	gpu_graph_captured(e2, NULL);
	assert_int_equal(e2->state, GPU_G_FAILED);
	assert_int_equal(gpu_graph_step(e2, true), GPU_G_RUN);
	assert_int_equal(gpu_graph_step(e2, true), GPU_G_RUN);
	/* full: NULL, which runs plainly */
	{
		struct gpu_graph_key k5 = { &model_b, 5, 5, 0 };

		assert_null(gpu_graph_find(&c, &k5));
		assert_int_equal(gpu_graph_step(NULL, true), GPU_G_RUN);
	}
	/* a second captured graph; free releases READY entries only */
	e2 = gpu_graph_find(&c, &ka_slot1);
	gpu_graph_step(e2, true);
	gpu_graph_step(e2, true);
	gpu_graph_captured(e2, &exec2);
	freed = 0;
	gpu_graph_cache_free(&c, count_free);
	assert_int_equal(freed, 2);
	assert_null(c.e);
}

/* ---- batches ---- */

struct fake {
	struct infer_req req[4];
	struct infer_slice sl[4];
	float in[4][3 * 2];		/* up to 3 rows x in_dim 2 each */
	float out[4][3 * 3];		/* up to 3 rows x out_dim 3 each */
	struct batch b;
};

/* 4 slices of 1, 3, 2, 1 rows; in_dim 2, values 100*slice + 10*row + col. */
static void fake_init(struct fake *f)
{
	static const int rows[4] = { 1, 3, 2, 1 };

	memset(f, 0, sizeof(*f));
	for (int i = 0; i < 4; i++) {
		atomic_init(&f->req[i].state, REQ_RUNNING);
		f->sl[i].r = &f->req[i];
		f->sl[i].rows = rows[i];
		f->sl[i].input = f->in[i];
		f->sl[i].output = f->out[i];
		f->sl[i].status = -777;
		for (int r = 0; r < rows[i]; r++)
			for (int c = 0; c < 2; c++)
				f->in[i][r * 2 + c] = (float)(100 * i + 10 * r + c);
		for (int k = 0; k < 9; k++)
			f->out[i][k] = -1.0f;	/* poison: unwritten stays -1 */
	}
	f->b.n_slices = 4;
	f->b.slices = f->sl;
	f->b.rows = 7;
}

static void test_pack_unpack(void **state)
{
	struct fake f;
	bool live[4];
	float staged[8 * 2], outs[8 * 3];
	int rows;

	fake_init(&f);
	atomic_store(&f.req[1].state, REQ_CANCELLED);	/* its 3 rows never run */
	rows = gpu_live(&f.b, live);
	assert_int_equal(rows, 4);
	assert_true(live[0] && !live[1] && live[2] && live[3]);
	for (int i = 0; i < 16; i++)
		staged[i] = 12345.0f;
	assert_int_equal(gpu_pack(&f.b, live, staged, 2), 4);
	/* dense, in slice order: slice 0 row 0, slice 2 rows 0-1, slice 3 row 0 */
	{
		static const float want[8] = { 0, 1, 200, 201, 210, 211, 300, 301 };

		assert_memory_equal(staged, want, sizeof(want));
	}
	assert_true(staged[8] == 12345.0f);	/* past the live rows: untouched */

	/* outputs: packed row k, column c = 1000k + c; rows 4..7 are padding */
	for (int k = 0; k < 8; k++)
		for (int c = 0; c < 3; c++)
			outs[k * 3 + c] = k < 4 ? (float)(1000 * k + c) : 9999.0f;
	assert_int_equal(gpu_unpack(&f.b, live, outs, 3), 4);
	assert_true(f.out[0][0] == 0 && f.out[0][2] == 2);
	assert_true(f.out[0][3] == -1.0f);		/* slice 0 has one row */
	for (int k = 0; k < 9; k++)
		assert_true(f.out[1][k] == -1.0f);	/* cancelled: never written */
	assert_true(f.out[2][0] == 1000 && f.out[2][3] == 2000 && f.out[2][5] == 2002);
	assert_true(f.out[3][0] == 3000 && f.out[3][2] == 3002);
	for (int i = 0; i < 4; i++)			/* no padding value reached an answer */
		for (int k = 0; k < 9; k++)
			assert_true(f.out[i][k] != 9999.0f);
}

static void test_sticky(void **state)
{
	static const int sticky[] = {
		GPU_ERR_ILLEGAL_ADDRESS, GPU_ERR_ECC_UNCORRECTABLE, GPU_ERR_LAUNCH_FAILURE,
		GPU_ERR_HARDWARE_STACK_ERROR, GPU_ERR_ILLEGAL_INSTRUCTION,
		GPU_ERR_MISALIGNED_ADDRESS, GPU_ERR_INVALID_ADDRESS_SPACE, GPU_ERR_INVALID_PC,
		GPU_ERR_DEVICES_UNAVAILABLE, GPU_ERR_NO_DEVICE, GPU_ERR_DEVICE_UNINITIALIZED,
		GPU_ERR_INSUFFICIENT_DRIVER, GPU_ERR_LAUNCH_TIMEOUT, GPU_ERR_ASSERT,
		GPU_ERR_CONTEXT_IS_DESTROYED, GPU_ERR_NVLINK_UNCORRECTABLE, GPU_ERR_UNKNOWN,
	};
	static const int not_sticky[] = {
		GPU_ERR_SUCCESS, GPU_ERR_MEMORY_ALLOCATION, GPU_ERR_NOT_READY,
		GPU_ERR_LAUNCH_OUT_OF_RESOURCES, GPU_ERR_CUBLAS, 1 /* invalid value */,
		900 /* stream capture unsupported */, 98 /* invalid device function */,
	};

	/* the values are cudaError_t's (driver_types.h) */
	assert_int_equal(GPU_ERR_ILLEGAL_ADDRESS, 700);
	assert_int_equal(GPU_ERR_ECC_UNCORRECTABLE, 214);
	assert_int_equal(GPU_ERR_NO_DEVICE, 100);
	assert_int_equal(GPU_ERR_LAUNCH_FAILURE, 719);
	for (size_t i = 0; i < sizeof(sticky) / sizeof(sticky[0]); i++)
		assert_true(gpu_err_sticky(sticky[i]));
	for (size_t i = 0; i < sizeof(not_sticky) / sizeof(not_sticky[0]); i++)
		assert_false(gpu_err_sticky(not_sticky[i]));
}

/* The sentence after the CUDA error when open finds no usable device. */
static void test_open_hint(void **state)
{
	char b[256];

	(void)state;
	/* no driver at all: cudaDriverGetVersion says 0 */
	assert_non_null(strstr(gpu_open_hint(GPU_ERR_INSUFFICIENT_DRIVER, 0, 12040, NULL, b,
					     sizeof(b)), "no NVIDIA driver on this host"));
	/* an old driver: both versions, major.minor */
	assert_string_equal(gpu_open_hint(GPU_ERR_INSUFFICIENT_DRIVER, 11080, 12040, NULL, b,
					  sizeof(b)),
			    "the driver supports CUDA 11.8, this build's runtime needs 12.4: "
			    "upgrade the driver");
	/* no device: CUDA_VISIBLE_DEVICES named when set */
	assert_string_equal(gpu_open_hint(GPU_ERR_NO_DEVICE, 12040, 12040, "", b, sizeof(b)),
			    "CUDA_VISIBLE_DEVICES=\"\" hides the others");
	assert_non_null(strstr(gpu_open_hint(GPU_ERR_NO_DEVICE, 12040, 12040, NULL, b, sizeof(b)),
			       "the driver (CUDA 12.4) sees no device"));
	/* nothing to add for other errors; a small buffer stays terminated */
	assert_string_equal(gpu_open_hint(GPU_ERR_MEMORY_ALLOCATION, 12040, 12040, NULL, b,
					  sizeof(b)), "");
	assert_int_equal(strlen(gpu_open_hint(GPU_ERR_INSUFFICIENT_DRIVER, 0, 0, NULL, b, 8)), 7);
}

static void test_complete(void **state)
{
	struct fake f;
	bool live[4];

	/* success: live slices 0, the cancelled one untouched */
	fake_init(&f);
	atomic_store(&f.req[2].state, REQ_EXPIRED);
	gpu_live(&f.b, live);
	assert_int_equal(gpu_complete(&f.b, live, 0, NULL, NULL), GPU_V_OK);
	assert_int_equal(f.sl[0].status, 0);
	assert_int_equal(f.sl[1].status, 0);
	assert_int_equal(f.sl[2].status, -777);
	assert_int_equal(f.sl[3].status, 0);
	assert_string_equal(f.b.errmsg, "");

	/* not sticky: 500 with the step and the text */
	fake_init(&f);
	gpu_live(&f.b, live);
	assert_int_equal(gpu_complete(&f.b, live, GPU_ERR_LAUNCH_OUT_OF_RESOURCES, "cublasSgemm",
				      "too many resources requested for launch"), GPU_V_FAILED);
	for (int i = 0; i < 4; i++)
		assert_int_equal(f.sl[i].status, 500);
	assert_non_null(strstr(f.b.errmsg, "cublasSgemm"));
	assert_non_null(strstr(f.b.errmsg, "too many resources"));
	assert_non_null(strstr(f.b.errmsg, "(701)"));
	assert_null(strstr(f.b.errmsg, "sticky"));

	/* sticky: every live slice BE_RETRY (failover), nothing else */
	fake_init(&f);
	atomic_store(&f.req[0].state, REQ_CANCELLED);
	gpu_live(&f.b, live);
	assert_int_equal(gpu_complete(&f.b, live, GPU_ERR_ILLEGAL_ADDRESS, "stream",
				      "an illegal memory access was encountered"), GPU_V_DOWN);
	assert_int_equal(f.sl[0].status, -777);
	for (int i = 1; i < 4; i++)
		assert_int_equal(f.sl[i].status, BE_RETRY);
	assert_non_null(strstr(f.b.errmsg, "illegal memory access"));
	assert_non_null(strstr(f.b.errmsg, "sticky"));
	for (int i = 0; i < 4; i++)	/* outputs never written on failure */
		for (int k = 0; k < 9; k++)
			assert_true(f.out[i][k] == -1.0f);
}

static void test_settle_down_once(void **state)
{
	struct backend be = { 0 };
	struct gpu_health h;
	struct fake f;
	bool live[4];

	be.conf.name = "gpu0";
	be_state_set(&be, BE_UP);
	gpu_health_init(&h);

	/* a non-sticky failure: the backend stays up */
	fake_init(&f);
	gpu_live(&f.b, live);
	assert_int_equal(gpu_settle(&be, &h, &f.b, live, GPU_ERR_MEMORY_ALLOCATION, "x", "oom"),
			 GPU_V_FAILED);
	assert_int_equal(be_state_get(&be), BE_UP);
	assert_false(atomic_load(&h.down));

	/* a sticky one: down, reason kept */
	fake_init(&f);
	gpu_live(&f.b, live);
	assert_int_equal(gpu_settle(&be, &h, &f.b, live, GPU_ERR_ECC_UNCORRECTABLE, "stream",
				    "uncorrectable ECC error encountered"), GPU_V_DOWN);
	assert_int_equal(be_state_get(&be), BE_DOWN);
	assert_true(atomic_load(&h.down));
	assert_non_null(strstr(h.reason, "uncorrectable ECC"));
	for (int i = 0; i < 4; i++)
		assert_int_equal(f.sl[i].status, BE_RETRY);

	/* the next one (another stream's batch) fails over too; the first
	 * reason stays and the trip happens once */
	fake_init(&f);
	gpu_live(&f.b, live);
	assert_int_equal(gpu_settle(&be, &h, &f.b, live, GPU_ERR_ILLEGAL_ADDRESS, "stream",
				    "illegal address"), GPU_V_DOWN);
	assert_non_null(strstr(h.reason, "uncorrectable ECC"));
	assert_false(gpu_health_trip(&h, "again"));
	for (int i = 0; i < 4; i++)
		assert_int_equal(f.sl[i].status, BE_RETRY);
}

/* ---- INT8 ---- */

static void test_q8_plan(void **state)
{
	struct gpu_q8_plan p;
	char why[160];

	/* digits-int8: 64 -> 64 -> 10; the 10 pads to 12, not refused */
	assert_int_equal(gpu_q8_plan(&p, 64, 64, why, sizeof(why)), 0);
	assert_int_equal(p.m, 64);
	assert_int_equal(p.k, 64);
	assert_int_equal(p.w_bytes, 64 * 64);
	assert_int_equal(gpu_q8_plan(&p, 10, 64, why, sizeof(why)), 0);
	assert_int_equal(p.m, 12);
	assert_int_equal(p.k, 64);
	assert_int_equal(p.out, 10);
	assert_int_equal(p.in, 64);
	assert_int_equal(p.w_bytes, 12 * 64);
	assert_int_equal(gpu_q8_plan(&p, 1, 1, why, sizeof(why)), 0);
	assert_int_equal(p.m, 4);
	assert_int_equal(p.k, 16);
	/* mlp-large's widths are multiples already */
	assert_int_equal(gpu_q8_plan(&p, 4096, 1024, why, sizeof(why)), 0);
	assert_int_equal(p.m, 4096);
	assert_int_equal(p.k, 1024);
	/* cuBLASLt's constraints, whatever the widths */
	for (int out = 1; out < 70; out += 3)
		for (int in = 1; in < 70; in += 5) {
			assert_int_equal(gpu_q8_plan(&p, out, in, why, sizeof(why)), 0);
			assert_int_equal(p.m % 4, 0);
			assert_int_equal(p.k % 4, 0);
			assert_int_equal(p.k % GPU_Q8_PAD_K, 0);
			assert_true(p.m >= out && p.m < out + GPU_Q8_PAD_M);
			assert_true(p.k >= in && p.k < in + GPU_Q8_PAD_K);
		}
	/* the s32 accumulator bound: 133136 (a multiple of 16) is the widest */
	assert_int_equal(gpu_q8_plan(&p, 8, 133136, why, sizeof(why)), 0);
	assert_true((int64_t)p.k * 127 * 127 <= INT32_MAX);
	assert_int_equal(gpu_q8_plan(&p, 8, 133137, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "overflow"));
	assert_int_equal(gpu_q8_plan(&p, 0, 8, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, ">= 1"));
	assert_int_equal(gpu_q8_plan(&p, 8, -1, why, sizeof(why)), -EINVAL);
	assert_int_equal(gpu_q8_plan(&p, INT32_MAX, 16, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "too large"));
}

static void test_q8_pack(void **state)
{
	struct gpu_q8_plan p;
	signed char w[3 * 5], dst[4 * 16];
	char why[160];

	for (int i = 0; i < 15; i++)
		w[i] = (signed char)(i - 7);
	assert_int_equal(gpu_q8_plan(&p, 3, 5, why, sizeof(why)), 0);
	assert_int_equal(p.w_bytes, sizeof(dst));
	memset(dst, 0x55, sizeof(dst));
	gpu_q8_pack(&p, w, dst);
	for (int r = 0; r < 4; r++)
		for (int c = 0; c < 16; c++)
			assert_int_equal(dst[r * 16 + c], r < 3 && c < 5 ? w[r * 5 + c] : 0);
}

static void test_q8_scratch(void **state)
{
	struct gpu_q8_plan p[3];
	struct gpu_q8_scratch s;
	char why[160];

	assert_int_equal(gpu_q8_plan(&p[0], 4096, 1024, why, sizeof(why)), 0);
	assert_int_equal(gpu_q8_plan(&p[1], 4096, 4096, why, sizeof(why)), 0);
	assert_int_equal(gpu_q8_plan(&p[2], 10, 4096, why, sizeof(why)), 0);
	assert_int_equal(gpu_q8_scratch(p, 3, 256, &s), 0);
	assert_int_equal(s.q_bytes, 256 * 4096);
	assert_int_equal(s.acc_bytes, 4 * 256 * 4096);
	assert_int_equal(s.scale_bytes, 4 * 256);
	assert_int_equal(gpu_q8_scratch(p, 0, 256, &s), -EINVAL);
	assert_int_equal(gpu_q8_scratch(p, 3, 0, &s), -EINVAL);
}

static uint64_t q8_rng = 88172645463325252ull;

static float q8_frand(float lo, float hi)
{
	q8_rng ^= q8_rng << 13;
	q8_rng ^= q8_rng >> 7;
	q8_rng ^= q8_rng << 17;
	return lo + (float)((q8_rng >> 40) / (double)(1 << 24)) * (hi - lo);
}

/* The device's element arithmetic (gpuq8.h, as compiled for the host) is
 * model.h's, bit for bit: scale, rounding at the .5 boundaries, clamping,
 * NaN and infinity, the dequantize. */
static void test_q8_math(void **state)
{
	float row[64];
	float edge[] = { 0.0f, -0.0f, 0.5f, -0.5f, 1.5f, -1.5f, 126.5f, -126.5f, 127.0f, 127.49f,
			 127.5f, 200.0f, -1e30f, 1e-40f, NAN, INFINITY, -INFINITY };

	/* edges at scale 1 and at a scale that makes them land on .5s */
	for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++) {
		assert_int_equal(gpu_q8_quant(edge[i], 1.0f), model_q8(edge[i], 1.0));
		assert_int_equal(gpu_q8_quant(edge[i], 0.25f), model_q8(edge[i], 0.25));
		assert_int_equal(gpu_q8_quant(edge[i], 3.0f), model_q8(edge[i], (double)3.0f));
	}
	assert_int_equal(gpu_q8_quant(NAN, 1.0f), 0);
	assert_int_equal(gpu_q8_quant(1e30f, 1.0f), 127);
	assert_int_equal(gpu_q8_quant(-1e30f, 1.0f), -127);
	/* rows: random, with a NaN, with an infinity, all zero */
	for (int t = 0; t < 2000; t++) {
		float mx = 0, s;
		double want;
		int n = 1 + t % 64;

		for (int j = 0; j < n; j++)
			row[j] = t % 7 == 0 ? 0.0f : q8_frand(-3.0f, 3.0f) * (float)(1 + t % 13);
		if (t % 11 == 1)
			row[t % n] = NAN;
		if (t % 17 == 2)
			row[t % n] = -INFINITY;
		for (int j = 0; j < n; j++)
			mx = gpu_q8_absmax(mx, row[j]);
		s = gpu_q8_scale(mx);
		want = (float)model_q8_scale(row, (size_t)n);	/* the reference's float scale */
		assert_true(s == (float)want);
		for (int j = 0; j < n; j++)
			assert_int_equal(gpu_q8_quant(row[j], s), model_q8(row[j], s));
	}
	/* dequantize: the reference's expression, then float */
	for (int t = 0; t < 2000; t++) {
		int acc = (int)q8_frand(-2e6f, 2e6f);
		float s = q8_frand(1e-4f, 1.0f), ws = q8_frand(1e-4f, 0.1f), b = q8_frand(-1, 1);
		double v = (double)acc * s * ws + (double)b;

		assert_true(gpu_q8_dequant(acc, s, ws, b, 0) == (float)v);
		assert_true(gpu_q8_dequant(acc, s, ws, b, 1) == (float)(v < 0 ? 0.0 : v));
		assert_true(gpu_q8_dequant(acc, s, ws, 0.0f, 0) == (float)((double)acc * s * ws + 0.0));
	}
}

/*
 * The whole INT8 pipeline as the device runs it, emulated on the host with
 * the backend's own pieces: plans and packed (padded) weights, each row
 * quantized into a k-wide buffer, the s32 product as cuBLASLt's TN
 * reads its operands (A = packed weights, k x m col-major, op T; B = the
 * quantized rows, k x n col-major; D m x n, ld m), dequantized into the
 * next layer's float rows; then softmax.  Against model_forward_ref on
 * digits-int8 (made here by quant_model): identical argmax, probabilities
 * within float rounding.  Checks the padding, the packing and the operand
 * order that the device build relies on.
 */
static void test_q8_pipeline(void **state)
{
	char dir[] = "/tmp/test_gpuhost_q8_XXXXXX", *err = NULL;
	struct quant_opts qo = { .force = true };
	struct model *m;
	int rows = 40;

	assert_non_null(mkdtemp(dir));
	if (quant_model("config/models/digits", dir, &qo, &err)) {
		fprintf(stderr, "quant_model: %s\n", err);
		fail();
	}
	m = model_load(dir, &err);
	assert_non_null(m);
	assert_int_equal(m->variant, VARIANT_INT8);
	{
		float *in = malloc(sizeof(float) * (size_t)rows * m->in_dim);
		double *ref = malloc(sizeof(double) * (size_t)rows * m->out_dim);
		float *a = malloc(sizeof(float) * (size_t)rows * m->max_width);
		float *b = malloc(sizeof(float) * (size_t)rows * m->max_width);
		int width = m->in_dim;

		for (int i = 0; i < rows * m->in_dim; i++)	/* pixels 0..16, some rows scaled */
			in[i] = (float)(int)q8_frand(0, 17) * (i / m->in_dim % 3 == 0 ? 0.37f : 1.0f);
		memcpy(a, in, sizeof(float) * (size_t)rows * m->in_dim);
		model_forward_ref(m, in, rows, ref);
		for (int li = 0; li < m->n_layers; li++) {
			const struct layer *l = &m->layers[li];
			struct gpu_q8_plan p;
			signed char *w, *q;
			int32_t *acc;
			float *rs;
			char why[160];

			if (l->kind == LAYER_SOFTMAX)
				continue;
			assert_int_equal(gpu_q8_plan(&p, l->out, l->in, why, sizeof(why)), 0);
			w = malloc(p.w_bytes);
			q = malloc((size_t)rows * p.k);
			acc = malloc(sizeof(int32_t) * (size_t)rows * p.m);
			rs = malloc(sizeof(float) * (size_t)rows);
			gpu_q8_pack(&p, (const signed char *)l->qweight, w);
			for (int r = 0; r < rows; r++) {	/* the quantize kernel */
				const float *x = a + (size_t)r * l->in;
				float mx = 0;

				for (int j = 0; j < l->in; j++)
					mx = gpu_q8_absmax(mx, x[j]);
				rs[r] = l->in_scale > 0 ? l->in_scale : gpu_q8_scale(mx);
				for (int j = 0; j < p.k; j++)
					q[(size_t)r * p.k + j] = j < l->in ? gpu_q8_quant(x[j], rs[r]) : 0;
			}
			for (int r = 0; r < rows; r++)	/* cublasLtMatmul, TN */
				for (int i = 0; i < p.m; i++) {
					int32_t s = 0;

					for (int kk = 0; kk < p.k; kk++)
						s += (int32_t)w[kk + (size_t)i * p.k] *
						     q[kk + (size_t)r * p.k];
					acc[i + (size_t)r * p.m] = s;
				}
			for (int r = 0; r < rows; r++)	/* the dequantize kernel */
				for (int c = 0; c < l->out; c++)
					b[(size_t)r * l->out + c] =
						gpu_q8_dequant(acc[c + (size_t)r * p.m], rs[r], l->wscale[c],
							       l->bias ? l->bias[c] : 0.0f,
							       l->act == ACT_RELU);
			free(w);
			free(q);
			free(acc);
			free(rs);
			{
				float *t = a;

				a = b;
				b = t;
			}
			width = l->out;
		}
		assert_int_equal(width, m->out_dim);
		for (int r = 0; r < rows; r++) {
			const float *x = a + (size_t)r * width;
			const double *want = ref + (size_t)r * width;
			double mx = x[0], sum = 0, p[64];
			int am = 0, wm = 0;

			for (int j = 1; j < width; j++)
				mx = x[j] > mx ? x[j] : mx;
			for (int j = 0; j < width; j++)
				sum += (p[j] = exp(x[j] - mx));
			for (int j = 0; j < width; j++) {
				p[j] /= sum;
				assert_true(fabs(p[j] - want[j]) < 1e-6);
				am = p[j] > p[am] ? j : am;
				wm = want[j] > want[wm] ? j : wm;
			}
			assert_int_equal(am, wm);
		}
		free(in);
		free(ref);
		free(a);
		free(b);
	}
	model_free(m);
	{
		char path[sizeof(dir) + 32];

		snprintf(path, sizeof(path), "%s/model.yaml", dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/model.safetensors", dir);
		unlink(path);
		snprintf(path, sizeof(path), "%s/labels.txt", dir);
		unlink(path);
		rmdir(dir);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buckets),
		cmocka_unit_test(test_preferred),
		cmocka_unit_test(test_layout),
		cmocka_unit_test(test_graph_cache),
		cmocka_unit_test(test_pack_unpack),
		cmocka_unit_test(test_sticky),
		cmocka_unit_test(test_open_hint),
		cmocka_unit_test(test_complete),
		cmocka_unit_test(test_settle_down_once),
		cmocka_unit_test(test_q8_plan),
		cmocka_unit_test(test_q8_pack),
		cmocka_unit_test(test_q8_scratch),
		cmocka_unit_test(test_q8_math),
		cmocka_unit_test(test_q8_pipeline),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
