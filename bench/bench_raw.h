/* bench_raw.h - raw oneDNN chains, the anchors of bench/kernel.c and
 * bench/int8.c: a model's layers as oneDNN primitives made for exactly
 * `rows` rows, activations ping-ponging between two buffers, no gateway
 * code.  Header-only like bench_util.h; the includer includes dnnl.h,
 * dnnl_debug.h and model/model.h first.  Every call exits on a oneDNN
 * error (BENCH_DNNL_CHECK). */
#ifndef INFERGW_BENCH_RAW_H
#define INFERGW_BENCH_RAW_H

#include <stdbool.h>
#include <stdint.h>

#include "bench/bench_util.h"
#include "model/quant.h"

#define RAW_MAX_LAYERS 32

struct raw_step {
	dnnl_primitive_t prim;
	int n_args;
	dnnl_exec_arg_t args[4];
};

struct raw_chain {
	int rows, n_steps, n_mems;
	int cur;			/* which buf holds the activations now */
	bool packed_w;			/* weights reordered into format_any (else in place, tag ba) */
	struct raw_step steps[RAW_MAX_LAYERS];
	void *buf[2];			/* rows x max_width floats each */
	void *packed[RAW_MAX_LAYERS];	/* packed_w: the reordered weights */
	int8_t *split_w[RAW_MAX_LAYERS];	/* INT8 split layers' [W | -W] (owned) */
	dnnl_memory_t mems[RAW_MAX_LAYERS * 4];
};

/* How one dense layer's matmul is typed: f32 throughout, or INT8 (s8
 * weights, src u8/s8, dst u8/s8/f32, per-channel output scales).  split:
 * the src is two u8 halves of the input against [W | -W] (K = 2 x in). */
struct raw_types {
	dnnl_data_type_t src, wei, dst;
	bool split;
};

static const struct raw_types RAW_F32 = { dnnl_f32, dnnl_f32, dnnl_f32, false };

/* An empty chain for rows rows of m; pack: weights into format_any. */
static inline void raw_init(struct raw_chain *rc, const struct model *m, int rows, bool pack)
{
	memset(rc, 0, sizeof(*rc));
	rc->rows = rows;
	rc->packed_w = pack;
	/* a split layer reads 2 x in u8 a row: within in floats' bytes */
	rc->buf[0] = bench_xalloc(sizeof(float) * (size_t)rows * (size_t)m->max_width);
	rc->buf[1] = bench_xalloc(sizeof(float) * (size_t)rows * (size_t)m->max_width);
}

static inline dnnl_memory_t raw_mem(struct raw_chain *rc, dnnl_engine_t eng,
				    const dnnl_memory_desc_t *md, void *p)
{
	BENCH_DNNL_CHECK(dnnl_memory_create(&rc->mems[rc->n_mems], md, eng, p));
	return rc->mems[rc->n_mems++];
}

/* Reorder the plain weights (user, tag ba) into want, once: a new buffer. */
static inline void *raw_pack(dnnl_engine_t eng, dnnl_stream_t strm,
			     const dnnl_memory_desc_t *user, const void *w,
			     const dnnl_memory_desc_t *want)
{
	void *p = bench_xalloc(dnnl_memory_desc_get_size(want));
	dnnl_primitive_desc_t rpd;
	dnnl_primitive_t r;
	dnnl_memory_t from, to;

	BENCH_DNNL_CHECK(dnnl_memory_create(&from, user, eng, (void *)w));
	BENCH_DNNL_CHECK(dnnl_memory_create(&to, want, eng, p));
	BENCH_DNNL_CHECK(dnnl_reorder_primitive_desc_create(&rpd, user, eng, want, eng, NULL));
	BENCH_DNNL_CHECK(dnnl_primitive_create(&r, rpd));
	dnnl_exec_arg_t a[2] = { { DNNL_ARG_FROM, from }, { DNNL_ARG_TO, to } };
	BENCH_DNNL_CHECK(dnnl_primitive_execute(r, strm, 2, a));
	BENCH_DNNL_CHECK(dnnl_stream_wait(strm));
	dnnl_primitive_destroy(r);
	dnnl_primitive_desc_destroy(rpd);
	dnnl_memory_destroy(from);
	dnnl_memory_destroy(to);
	return p;
}

/* [W | -W] of l's s8 weights as [out][2 in] (quant_split_weights). */
static inline int8_t *raw_split_weights(const struct layer *l)
{
	int8_t *w = bench_xalloc((size_t)l->out * 2 * (size_t)l->in);

	quant_split_weights(l, w);
	return w;
}

/* The fused attributes of dense layer l: INT8 output scales per channel
 * (mask: dim 1), ReLU as a post-op.  *po: the post-ops to destroy, or NULL. */
static inline dnnl_primitive_attr_t raw_attr(const struct layer *l, const struct raw_types *t,
					     dnnl_post_ops_t *po)
{
	dnnl_primitive_attr_t attr;

	*po = NULL;
	BENCH_DNNL_CHECK(dnnl_primitive_attr_create(&attr));
	if (t->wei == dnnl_s8)
		BENCH_DNNL_CHECK(dnnl_primitive_attr_set_output_scales(attr, l->out, 1 << 1,
								 l->wscale));
	if (l->act == ACT_RELU) {
		BENCH_DNNL_CHECK(dnnl_post_ops_create(po));
		BENCH_DNNL_CHECK(dnnl_post_ops_append_eltwise(*po, 1.0f, dnnl_eltwise_relu, 0.f, 0.f));
		BENCH_DNNL_CHECK(dnnl_primitive_attr_set_post_ops(attr, *po));
	}
	return attr;
}

/*
 * Append dense layer li of m (l: its FP32 layer, or the INT8 variant's)
 * typed t: a matmul with bias and ReLU fused, reading the activations and
 * writing the other buffer; the weights reordered once into the layout
 * the primitive asks for (rc->packed_w) or read in place (tag ba).
 */
static inline void raw_dense(struct raw_chain *rc, int li, const struct layer *l,
			     const struct raw_types *t, dnnl_engine_t eng, dnnl_stream_t strm)
{
	struct raw_step *s = &rc->steps[rc->n_steps];
	int k = t->split ? 2 * l->in : l->in;
	dnnl_dims_t sd = { rc->rows, k }, wd = { k, l->out }, bd = { 1, l->out },
		    dd = { rc->rows, l->out };
	dnnl_memory_desc_t smd, wmd, wany, bmd, dmd;
	const dnnl_memory_desc_t *qmd;
	dnnl_primitive_attr_t attr;
	dnnl_post_ops_t po;
	dnnl_primitive_desc_t pd;
	dnnl_matmul_desc_t desc;
	const void *w = l->weight;

	if (t->wei == dnnl_s8)
		w = t->split ? (rc->split_w[li] = raw_split_weights(l)) : (const void *)l->qweight;
	BENCH_DNNL_CHECK(dnnl_memory_desc_init_by_tag(&smd, 2, sd, t->src, dnnl_ab));
	BENCH_DNNL_CHECK(dnnl_memory_desc_init_by_tag(&wmd, 2, wd, t->wei, dnnl_ba));
	BENCH_DNNL_CHECK(dnnl_memory_desc_init_by_tag(&wany, 2, wd, t->wei, dnnl_format_tag_any));
	BENCH_DNNL_CHECK(dnnl_memory_desc_init_by_tag(&bmd, 2, bd, dnnl_f32, dnnl_ab));
	BENCH_DNNL_CHECK(dnnl_memory_desc_init_by_tag(&dmd, 2, dd, t->dst, dnnl_ab));
	BENCH_DNNL_CHECK(dnnl_matmul_desc_init(&desc, &smd, rc->packed_w ? &wany : &wmd,
					       l->bias ? &bmd : NULL, &dmd));
	attr = raw_attr(l, t, &po);
	BENCH_DNNL_CHECK(dnnl_primitive_desc_create(&pd, &desc, attr, eng, NULL));
	BENCH_DNNL_CHECK(dnnl_primitive_create(&s->prim, pd));
	qmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
	if (rc->packed_w)
		w = rc->packed[li] = raw_pack(eng, strm, &wmd, w, qmd);
	s->args[s->n_args++] = (dnnl_exec_arg_t){ DNNL_ARG_WEIGHTS,
						 raw_mem(rc, eng, qmd, (void *)w) };
	s->args[s->n_args++] = (dnnl_exec_arg_t){ DNNL_ARG_SRC,
						 raw_mem(rc, eng, &smd, rc->buf[rc->cur]) };
	if (l->bias)
		s->args[s->n_args++] = (dnnl_exec_arg_t){ DNNL_ARG_BIAS,
							 raw_mem(rc, eng, &bmd, (void *)l->bias) };
	s->args[s->n_args++] = (dnnl_exec_arg_t){ DNNL_ARG_DST,
						 raw_mem(rc, eng, &dmd, rc->buf[1 - rc->cur]) };
	dnnl_primitive_desc_destroy(pd);
	dnnl_primitive_attr_destroy(attr);
	if (po)
		dnnl_post_ops_destroy(po);
	rc->n_steps++;
	rc->cur = 1 - rc->cur;
}

/* Run every step of rc on strm and wait. */
static inline void raw_exec(const struct raw_chain *rc, dnnl_stream_t strm)
{
	for (int i = 0; i < rc->n_steps; i++)
		BENCH_DNNL_CHECK(dnnl_primitive_execute(rc->steps[i].prim, strm, rc->steps[i].n_args,
						  rc->steps[i].args));
	BENCH_DNNL_CHECK(dnnl_stream_wait(strm));
}

static inline void raw_free(struct raw_chain *rc)
{
	for (int i = 0; i < rc->n_steps; i++)
		dnnl_primitive_destroy(rc->steps[i].prim);
	for (int i = 0; i < rc->n_mems; i++)
		dnnl_memory_destroy(rc->mems[i]);
	for (int i = 0; i < RAW_MAX_LAYERS; i++) {
		free(rc->packed[i]);
		free(rc->split_w[i]);
	}
	free(rc->buf[0]);
	free(rc->buf[1]);
}

#endif
