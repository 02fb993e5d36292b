/*
 * gpuhost.c - the GPU backend's host-side logic (gpuhost.h): plain C, no
 * CUDA, so `make` builds and tests it on any machine.
 */
#include "gpu/gpuhost.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool gpu_err_sticky(int code)
{
	switch (code) {
	/* the device faulted: the context is unusable (CUDA docs: "the
	 * process must be terminated and relaunched") */
	case GPU_ERR_ILLEGAL_ADDRESS:
	case GPU_ERR_ECC_UNCORRECTABLE:
	case GPU_ERR_NVLINK_UNCORRECTABLE:
	case GPU_ERR_LAUNCH_FAILURE:
	case GPU_ERR_LAUNCH_TIMEOUT:
	case GPU_ERR_HARDWARE_STACK_ERROR:
	case GPU_ERR_ILLEGAL_INSTRUCTION:
	case GPU_ERR_MISALIGNED_ADDRESS:
	case GPU_ERR_INVALID_ADDRESS_SPACE:
	case GPU_ERR_INVALID_PC:
	case GPU_ERR_ASSERT:
	case GPU_ERR_CONTEXT_IS_DESTROYED:
	/* no device, or it went away */
	case GPU_ERR_DEVICES_UNAVAILABLE:
	case GPU_ERR_NO_DEVICE:
	case GPU_ERR_INVALID_DEVICE:
	case GPU_ERR_DEVICE_UNINITIALIZED:
	case GPU_ERR_INSUFFICIENT_DRIVER:
	case GPU_ERR_INITIALIZATION:
	case GPU_ERR_CUDART_UNLOADING:
	/* nothing known: trusting the device again could answer garbage */
	case GPU_ERR_UNKNOWN:
		return true;
	default:
		return false;
	}
}

const char *gpu_open_hint(int code, int driver, int runtime, const char *visible, char *buf,
			  size_t n)
{
	buf[0] = 0;
	if (code == GPU_ERR_INSUFFICIENT_DRIVER && driver == 0)
		snprintf(buf, n, "no NVIDIA driver on this host (libcuda not found): install one, "
			 "or give the container the GPU (NVIDIA container toolkit, "
			 "nvidia.com/gpu on Kubernetes)");
	else if (code == GPU_ERR_INSUFFICIENT_DRIVER)
		snprintf(buf, n, "the driver supports CUDA %d.%d, this build's runtime needs %d.%d: "
			 "upgrade the driver", driver / 1000, driver % 1000 / 10, runtime / 1000,
			 runtime % 1000 / 10);
	else if ((code == GPU_ERR_NO_DEVICE || code == GPU_ERR_INVALID_DEVICE) && visible)
		snprintf(buf, n, "CUDA_VISIBLE_DEVICES=\"%.64s\" hides the others", visible);
	else if (code == GPU_ERR_NO_DEVICE)
		snprintf(buf, n, "the driver (CUDA %d.%d) sees no device: is the GPU passed to "
			 "this container or VM?", driver / 1000, driver % 1000 / 10);
	return buf;
}

/* ---- buckets ---- */

int gpu_buckets(int max, int *out)
{
	int n = 0;

	if (max < 1)
		max = 1;
	for (int rows = 1; rows < max && n < GPU_MAX_BUCKETS - 1; rows *= 2)
		out[n++] = rows;
	out[n++] = max;
	return n;
}

int gpu_bucket_of(const int *buckets, int n, int rows)
{
	if (rows < 1)
		return -1;
	for (int i = 0; i < n; i++)
		if (buckets[i] >= rows)
			return i;
	return -1;
}

int gpu_preferred(int limit, int *out)
{
	int n = 0;

	if (limit < 8) {
		out[0] = limit < 1 ? 1 : limit;
		return 1;
	}
	for (int s = 8; s <= limit && n < BE_MAX_PREFERRED; s *= 2)
		out[n++] = s;
	if (out[n - 1] != limit) {
		if (n == BE_MAX_PREFERRED)
			n--;	/* the limit itself matters more than a middle size */
		out[n++] = limit;
	}
	return n;
}

/* ---- staging ---- */

size_t gpu_align_up(size_t n, size_t a)
{
	return (n + a - 1) & ~(a - 1);
}

int gpu_layout_plan(struct gpu_layout *l, int rows, int in_dim, int out_dim)
{
	memset(l, 0, sizeof(*l));
	if (rows < 1 || in_dim < 1 || out_dim < 1)
		return -EINVAL;
	/* ints: at most 2^31 each, so the products fit a 64-bit size_t;
	 * refuse what a 32-bit one would not hold */
	if ((uint64_t)rows * (uint64_t)in_dim > SIZE_MAX / 8 ||
	    (uint64_t)rows * (uint64_t)out_dim > SIZE_MAX / 8)
		return -EINVAL;
	l->rows = rows;
	l->in_dim = in_dim;
	l->out_dim = out_dim;
	l->in_off = 0;
	l->in_bytes = sizeof(float) * (size_t)rows * (size_t)in_dim;
	l->out_off = gpu_align_up(l->in_bytes, GPU_ALIGN);
	l->out_bytes = sizeof(float) * (size_t)rows * (size_t)out_dim;
	l->bytes = gpu_align_up(l->out_off + l->out_bytes, GPU_ALIGN);
	return 0;
}

/* ---- INT8 ---- */

int gpu_q8_plan(struct gpu_q8_plan *p, int out, int in, char *why, size_t why_len)
{
	memset(p, 0, sizeof(*p));
	if (out < 1 || in < 1) {
		snprintf(why, why_len, "widths %d x %d: must be >= 1", out, in);
		return -EINVAL;
	}
	p->out = out;
	p->in = in;
	p->m = (int)gpu_align_up((size_t)out, GPU_Q8_PAD_M);
	p->k = (int)gpu_align_up((size_t)in, GPU_Q8_PAD_K);
	if (in > GPU_Q8_MAX_K || p->k > GPU_Q8_MAX_K) {
		snprintf(why, why_len, "input width %d (padded %d): past %d, the s32 "
			 "accumulator of an s8 dot product could overflow", in, p->k, GPU_Q8_MAX_K);
		return -EINVAL;
	}
	/* out <= INT_MAX - 3 keeps m an int; m x k within size_t */
	if (out > INT32_MAX - GPU_Q8_PAD_M || (uint64_t)p->m * (uint64_t)p->k > SIZE_MAX / 8) {
		snprintf(why, why_len, "output width %d: too large", out);
		return -EINVAL;
	}
	p->w_bytes = (size_t)p->m * (size_t)p->k;
	return 0;
}

void gpu_q8_pack(const struct gpu_q8_plan *p, const signed char *w, signed char *dst)
{
	memset(dst, 0, p->w_bytes);
	for (int r = 0; r < p->out; r++)
		memcpy(dst + (size_t)r * p->k, w + (size_t)r * p->in, (size_t)p->in);
}

int gpu_q8_scratch(const struct gpu_q8_plan *plans, int n, int rows, struct gpu_q8_scratch *s)
{
	int k = 0, m = 0;

	memset(s, 0, sizeof(*s));
	if (n < 1 || rows < 1)
		return -EINVAL;
	for (int i = 0; i < n; i++) {
		k = plans[i].k > k ? plans[i].k : k;
		m = plans[i].m > m ? plans[i].m : m;
	}
	if (k < 1 || m < 1 || (uint64_t)rows * (uint64_t)k > SIZE_MAX / 8 ||
	    (uint64_t)rows * (uint64_t)m > SIZE_MAX / 8 / sizeof(int32_t))
		return -EINVAL;
	s->q_bytes = (size_t)rows * (size_t)k;
	s->acc_bytes = sizeof(int32_t) * (size_t)rows * (size_t)m;
	s->scale_bytes = sizeof(float) * (size_t)rows;
	return 0;
}

/* ---- graphs ---- */

int gpu_graph_cache_init(struct gpu_graph_cache *c, int cap)
{
	c->n = 0;
	c->cap = cap > 0 ? cap : 1;
	c->e = calloc((size_t)c->cap, sizeof(*c->e));
	return c->e ? 0 : -ENOMEM;
}

void gpu_graph_cache_free(struct gpu_graph_cache *c, void (*free_exec)(void *exec))
{
	for (int i = 0; c->e && i < c->n; i++)
		if (c->e[i].state == GPU_G_READY && c->e[i].exec && free_exec)
			free_exec(c->e[i].exec);
	free(c->e);
	memset(c, 0, sizeof(*c));
}

static bool gpu_key_eq(const struct gpu_graph_key *a, const struct gpu_graph_key *b)
{
	return a->model == b->model && a->slot == b->slot && a->bucket == b->bucket &&
	       a->tf32 == b->tf32;
}

struct gpu_graph_entry *gpu_graph_find(struct gpu_graph_cache *c, const struct gpu_graph_key *k)
{
	for (int i = 0; i < c->n; i++)
		if (gpu_key_eq(&c->e[i].key, k))
			return &c->e[i];
	if (c->n >= c->cap)
		return NULL;
	c->e[c->n] = (struct gpu_graph_entry){ .key = *k, .state = GPU_G_COLD };
	return &c->e[c->n++];
}

enum gpu_graph_do gpu_graph_step(struct gpu_graph_entry *e, bool enabled)
{
	if (!enabled || !e)
		return GPU_G_RUN;
	switch (e->state) {
	case GPU_G_COLD:
		e->state = GPU_G_WARM;
		return GPU_G_RUN;
	case GPU_G_WARM:
		return GPU_G_CAPTURE;
	case GPU_G_READY:
		return GPU_G_REPLAY;
	default:
		return GPU_G_RUN;
	}
}

void gpu_graph_captured(struct gpu_graph_entry *e, void *exec)
{
	e->exec = exec;
	e->state = exec ? GPU_G_READY : GPU_G_FAILED;
}

/* ---- packing ---- */

int gpu_live(const struct batch *b, bool *live)
{
	int rows = 0;

	for (int i = 0; i < b->n_slices; i++) {
		live[i] = be_slice_live(&b->slices[i]);
		if (live[i])
			rows += b->slices[i].rows;
	}
	return rows;
}

int gpu_pack(const struct batch *b, const bool *live, float *dst, int in_dim)
{
	int rows = 0;

	for (int i = 0; i < b->n_slices; i++) {
		const struct infer_slice *sl = &b->slices[i];

		if (!live[i])
			continue;
		memcpy(dst + (size_t)rows * (size_t)in_dim, sl->input,
		       sizeof(float) * (size_t)sl->rows * (size_t)in_dim);
		rows += sl->rows;
	}
	return rows;
}

int gpu_unpack(struct batch *b, const bool *live, const float *src, int out_dim)
{
	int rows = 0;

	for (int i = 0; i < b->n_slices; i++) {
		struct infer_slice *sl = &b->slices[i];

		if (!live[i])
			continue;
		memcpy(sl->output, src + (size_t)rows * (size_t)out_dim,
		       sizeof(float) * (size_t)sl->rows * (size_t)out_dim);
		rows += sl->rows;
	}
	return rows;
}

/* ---- completion ---- */

void gpu_health_init(struct gpu_health *h)
{
	atomic_init(&h->down, false);
	atomic_flag_clear(&h->logged);
	h->reason[0] = '\0';
}

bool gpu_health_trip(struct gpu_health *h, const char *reason)
{
	if (atomic_flag_test_and_set(&h->logged))
		return false;
	snprintf(h->reason, sizeof(h->reason), "%s", reason ? reason : "device error");
	atomic_store_explicit(&h->down, true, memory_order_release);
	return true;
}

enum gpu_verdict gpu_complete(struct batch *b, const bool *live, int code, const char *what,
			      const char *detail)
{
	enum gpu_verdict v = GPU_V_OK;
	int st = 0;

	if (code != GPU_ERR_SUCCESS) {
		v = gpu_err_sticky(code) ? GPU_V_DOWN : GPU_V_FAILED;
		st = v == GPU_V_DOWN ? BE_RETRY : 500;
		snprintf(b->errmsg, sizeof(b->errmsg), "gpu: %s: %s (%d)%s",
			 what ? what : "batch", detail ? detail : "failed", code,
			 v == GPU_V_DOWN ? "; sticky: backend down" : "");
	}
	for (int i = 0; i < b->n_slices; i++)
		if (live[i])
			b->slices[i].status = st;
	return v;
}

enum gpu_verdict gpu_settle(struct backend *be, struct gpu_health *h, struct batch *b,
			    const bool *live, int code, const char *what, const char *detail)
{
	enum gpu_verdict v = gpu_complete(b, live, code, what, detail);

	if (v == GPU_V_DOWN && gpu_health_trip(h, b->errmsg)) {
		be_state_set(be, BE_DOWN);
		be_log(BE_LOG_ERROR, "backend=%s msg=\"down: %s; its requests fail over\"",
		       be->conf.name ? be->conf.name : "gpu", b->errmsg);
	} else if (v == GPU_V_FAILED) {
		be_log(BE_LOG_WARN, "backend=%s msg=\"batch failed: %s\"",
		       be->conf.name ? be->conf.name : "gpu", b->errmsg);
	}
	return v;
}
