/*
 * dgram.c - see dgram.h and docs/udp-protocol.md.
 *
 * The datagram is walked with the bounded msgpack reader of
 * backends/mpread.h, as the agent protocol is (msgpack-c's unpacker was
 * not used: it allocates an array's objects from the count in its header
 * before reading them, and the lcore must not allocate).  Every array or
 * map count is checked against the bytes left (an element takes at least
 * one), so a whole-datagram skip first proves the encoding well formed
 * and bounded, and the field passes after it cannot run off the end.
 * The validation of the tensor against the model is the HTTP path's
 * (kserve.c ks_check_*), so both paths answer the same words.
 */
#include "dgram.h"

#include <stdio.h>
#include <string.h>

#include "kserve.h"
#include "mpread.h"

#define DG_ERR(...) (snprintf(err, errlen, __VA_ARGS__), 400)

/* ---- decoding (after the skip pass proved the encoding sound) ---- */

static int dec_shape(struct mpr *r, int idx, struct dg_tensor *t, char *err, size_t errlen)
{
	struct mpr_val v = { .kind = MPR_NIL };

	if (!mpr_next(r, &v) || v.kind != MPR_ARRAY)
		return DG_ERR("inputs[%d].shape: expected an array of integers, got %s", idx,
			      mpr_kind_name(v.kind));
	if (v.u > MODEL_MAX_DIMS)
		return DG_ERR("inputs[%d].shape: %llu dimensions, at most %d", idx,
			      (unsigned long long)v.u, MODEL_MAX_DIMS);
	t->ndim = (int)v.u;
	for (int i = 0; i < t->ndim; i++) {
		struct mpr_val e = { .kind = MPR_NIL };

		if (!mpr_next(r, &e) || (e.kind != MPR_UINT && e.kind != MPR_NEG))
			return DG_ERR("inputs[%d].shape[%d]: expected an integer, got %s", idx, i,
				      mpr_kind_name(e.kind));
		if (e.kind == MPR_UINT && e.u > INT64_MAX)
			return DG_ERR("inputs[%d].shape[%d]: %llu is out of range", idx, i,
				      (unsigned long long)e.u);
		t->dims[i] = (int64_t)e.u;
	}
	return 0;
}

/* The string or bin value of inputs[idx].<field>. */
static int dec_view(struct mpr *r, int idx, const char *field, enum mpr_kind want,
		    const void **ptr, size_t *len, char *err, size_t errlen)
{
	struct mpr_val v = { .kind = MPR_NIL };

	if (!mpr_next(r, &v) || v.kind != want)
		return DG_ERR("inputs[%d].%s: expected %s, got %s", idx, field,
			      want == MPR_STR ? "a string" : "bin (little-endian values)",
			      mpr_kind_name(v.kind));
	*ptr = v.ptr;
	*len = (size_t)v.u;
	return 0;
}

enum { T_NAME = 1, T_DATATYPE = 2, T_SHAPE = 4, T_DATA = 8 };

static int dec_tensor(struct mpr *r, int idx, struct dg_tensor *t, char *err, size_t errlen)
{
	static const char *const fields[] = { "name", "datatype", "shape", "data" };
	unsigned seen = 0;
	struct mpr_val m = { .kind = MPR_NIL };
	int rc = 0;

	if (!mpr_next(r, &m) || m.kind != MPR_MAP)
		return DG_ERR("inputs[%d]: expected a map, got %s", idx, mpr_kind_name(m.kind));
	for (uint64_t i = 0; i < m.u && !rc; i++) {
		struct mpr_val k;
		unsigned bit;

		if (!mpr_next(r, &k))
			return DG_ERR("inputs[%d]: malformed", idx);
		bit = mpr_key_is(&k, "name") ? T_NAME : mpr_key_is(&k, "datatype") ? T_DATATYPE :
		      mpr_key_is(&k, "shape") ? T_SHAPE : mpr_key_is(&k, "data") ? T_DATA : 0;
		if (bit & seen)
			return DG_ERR("inputs[%d].%.*s: given twice", idx, (int)k.u,
				      (const char *)k.ptr);
		seen |= bit;
		switch (bit) {
		case T_NAME:
			rc = dec_view(r, idx, "name", MPR_STR, (const void **)&t->name,
				      &t->name_len, err, errlen);
			break;
		case T_DATATYPE:
			rc = dec_view(r, idx, "datatype", MPR_STR, (const void **)&t->datatype,
				      &t->datatype_len, err, errlen);
			break;
		case T_SHAPE:
			rc = dec_shape(r, idx, t, err, errlen);
			break;
		case T_DATA:
			rc = dec_view(r, idx, "data", MPR_BIN, (const void **)&t->data,
				      &t->data_len, err, errlen);
			break;
		default:
			if (!mpr_skip(r))	/* "parameters" and the like: not ours */
				return DG_ERR("inputs[%d]: malformed", idx);
		}
	}
	for (int f = 0; f < 4 && !rc; f++)
		if (!(seen & (1u << f)))
			rc = DG_ERR("inputs[%d].%s: missing", idx, fields[f]);
	return rc;
}

static int dec_inputs(struct mpr *r, struct dg_req *out, char *err, size_t errlen)
{
	struct mpr_val a = { .kind = MPR_NIL };
	int rc;

	if (!mpr_next(r, &a) || a.kind != MPR_ARRAY)
		return DG_ERR("inputs: expected an array of input tensors, got %s",
			      mpr_kind_name(a.kind));
	if (a.u > DG_MAX_INPUTS)
		return DG_ERR("inputs: %llu tensors, at most %d", (unsigned long long)a.u,
			      DG_MAX_INPUTS);
	if (a.u == 0)
		return DG_ERR("inputs: empty, expected one input tensor");
	out->n_inputs = (int)a.u;
	for (int i = 0; i < out->n_inputs; i++)
		if ((rc = dec_tensor(r, i, &out->inputs[i], err, errlen)))
			return rc;
	return 0;
}

static int dec_model(struct mpr *r, struct dg_req *out, char *err, size_t errlen)
{
	struct mpr_val v = { .kind = MPR_NIL };

	if (!mpr_next(r, &v) || v.kind != MPR_STR)
		return DG_ERR("model: expected a string, got %s", mpr_kind_name(v.kind));
	if (v.u == 0)
		return DG_ERR("model: empty, expected a model name");
	if (v.u > DG_MODEL_MAX)
		return DG_ERR("model: %llu bytes, model names have at most %d",
			      (unsigned long long)v.u, DG_MODEL_MAX);
	if (memchr(v.ptr, 0, (size_t)v.u))
		return DG_ERR("model: contains a NUL byte");
	memcpy(out->model, v.ptr, (size_t)v.u);
	out->model[v.u] = 0;
	return 0;
}

static int dec_scalar(struct mpr *r, int which, struct dg_req *out, char *err, size_t errlen)
{
	struct mpr_val v = { .kind = MPR_NIL };

	if (!mpr_next(r, &v))
		return DG_ERR("request: malformed");
	switch (which) {
	case 0:		/* id: pass 1 already read it when it is an integer */
		if (v.kind != MPR_UINT)
			return DG_ERR("id: expected an unsigned integer, got %s",
				      mpr_kind_name(v.kind));
		return 0;
	case 1:
		if (v.kind != MPR_UINT || v.u > DG_PRIORITY_MAX)
			return DG_ERR("priority: expected an integer 0 to %d", DG_PRIORITY_MAX);
		out->priority = (int)v.u;
		return 0;
	default:
		if (v.kind != MPR_UINT)
			return DG_ERR("timeout_us: expected a non-negative integer (microseconds), got %s",
				      mpr_kind_name(v.kind));
		out->timeout_us = ks_clamp_timeout(v.u);
		return 0;
	}
}

/* Pass 1: the id, wherever it is, so that a later failure can carry it. */
static void find_id(struct mpr r, uint64_t pairs, struct dg_req *out)
{
	for (uint64_t i = 0; i < pairs; i++) {
		struct mpr_val k, v;
		struct mpr at;

		if (!mpr_next(&r, &k))
			return;
		at = r;
		if (mpr_key_is(&k, "id") && mpr_next(&at, &v) && v.kind == MPR_UINT &&
		    !out->has_id) {
			out->id = v.u;
			out->has_id = true;
		}
		if (!mpr_skip(&r))
			return;
	}
}

enum { R_ID = 1, R_MODEL = 2, R_INPUTS = 4, R_PRIORITY = 8, R_TIMEOUT = 16 };

static int dec_root(struct mpr *r, uint64_t pairs, struct dg_req *out, char *err, size_t errlen)
{
	static const char *const keys[] = { "id", "model", "inputs", "priority", "timeout_us" };
	unsigned seen = 0;
	int rc = 0;

	for (uint64_t i = 0; i < pairs && !rc; i++) {
		struct mpr_val k;
		int which = -1;

		if (!mpr_next(r, &k))
			return DG_ERR("request: malformed");
		for (int j = 0; j < 5; j++)
			if (mpr_key_is(&k, keys[j]))
				which = j;
		if (which < 0) {
			if (!mpr_skip(r))
				return DG_ERR("request: malformed");
			continue;
		}
		if (seen & (1u << which))
			return DG_ERR("%s: given twice", keys[which]);
		seen |= 1u << which;
		if (which == 1)
			rc = dec_model(r, out, err, errlen);
		else if (which == 2)
			rc = dec_inputs(r, out, err, errlen);
		else
			rc = dec_scalar(r, which == 0 ? 0 : which == 3 ? 1 : 2, out, err, errlen);
	}
	if (rc)
		return rc;
	for (int j = 0; j < 3; j++)	/* id, model, inputs are required */
		if (!(seen & (1u << j)))
			return DG_ERR("%s: missing", keys[j]);
	return 0;
}

int dg_decode(const uint8_t *p, size_t len, struct dg_req *out, char *err, size_t errlen)
{
	struct mpr r = { p, p + len };
	struct mpr_val root = { .kind = MPR_NIL };

	memset(out, 0, sizeof(*out));
	if (!p || len == 0)
		return DG_ERR("request: empty datagram, expected a msgpack map");
	if (!mpr_skip(&r)) {
		/* r.p stopped at (or inside) the value that does not fit */
		return DG_ERR("request: malformed msgpack (bad or truncated value near byte %zu of %zu)",
			      (size_t)(r.p - p), len);
	}
	if (r.p != r.end)
		return DG_ERR("request: %zu bytes after the msgpack map", (size_t)(r.end - r.p));
	r.p = p;
	mpr_next(&r, &root);
	if (root.kind != MPR_MAP)
		return DG_ERR("request: expected a msgpack map, got %s", mpr_kind_name(root.kind));
	find_id(r, root.u, out);
	return dec_root(&r, root.u, out, err, errlen);
}

/* ---- validation against the model ---- */

int dg_check(const struct model *m, const struct dg_req *req, int *rows, const float **data,
	     char *err, size_t errlen)
{
	const struct dg_tensor *t = &req->inputs[0];
	int64_t dims[MODEL_MAX_DIMS];
	size_t row_bytes = (size_t)m->in_dim * sizeof(float);
	int rc;

	if (req->n_inputs < 1)
		return DG_ERR("inputs: empty, expected one input tensor");
	memcpy(dims, t->dims, sizeof(dims));
	/* [-1, D]: the rows follow from the data (the HTTP path wants them
	 * spelled out; a datagram client may leave that to its length) */
	if (t->ndim == m->input.ndim && t->ndim >= 1 && dims[0] == -1 && req->n_inputs == 1) {
		if (row_bytes == 0 || t->data_len % row_bytes)
			return DG_ERR("inputs[0].data: %zu bytes is not a whole number of rows of %d "
				      "FP32 (%zu bytes each)", t->data_len, m->in_dim, row_bytes);
		dims[0] = (int64_t)(t->data_len / row_bytes);
	}
	rc = ks_check_input(m, req->n_inputs, t->name, t->name_len, t->datatype, t->datatype_len,
			    dims, t->ndim, rows, err, errlen);
	if (!rc)
		rc = ks_check_bytes(m, "inputs[0].data", *rows, t->data_len, err, errlen);
	if (!rc)
		rc = ks_check_finite(t->data, (size_t)*rows * m->in_dim, err, errlen);
	if (!rc)
		*data = (const float *)(const void *)t->data;
	return rc;
}

/* ---- writing ----
 * The writer counts every byte and stores only those that fit, so one
 * encoder gives both the size (cap 0) and the bytes.
 */

struct wr {
	uint8_t *buf;
	size_t cap, n;
};

static void wr_put(struct wr *w, const void *p, size_t len)
{
	if (w->n <= w->cap && len <= w->cap - w->n)
		memcpy(w->buf + w->n, p, len);
	w->n += len;
}

static void wr_byte(struct wr *w, uint8_t b)
{
	wr_put(w, &b, 1);
}

/* tag then the n-byte big-endian v */
static void wr_tagged(struct wr *w, uint8_t tag, uint64_t v, int n)
{
	uint8_t b[9];

	b[0] = tag;
	for (int i = 0; i < n; i++)
		b[1 + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	wr_put(w, b, 1 + (size_t)n);
}

static void wr_uint(struct wr *w, uint64_t v)
{
	if (v <= 0x7f)
		wr_byte(w, (uint8_t)v);
	else if (v <= 0xff)
		wr_tagged(w, 0xcc, v, 1);
	else if (v <= 0xffff)
		wr_tagged(w, 0xcd, v, 2);
	else if (v <= 0xffffffffu)
		wr_tagged(w, 0xce, v, 4);
	else
		wr_tagged(w, 0xcf, v, 8);
}

static void wr_int(struct wr *w, int64_t v)
{
	if (v >= 0)
		wr_uint(w, (uint64_t)v);
	else if (v >= -32)
		wr_byte(w, (uint8_t)(int8_t)v);
	else if (v >= INT8_MIN)
		wr_tagged(w, 0xd0, (uint64_t)v & 0xff, 1);
	else if (v >= INT16_MIN)
		wr_tagged(w, 0xd1, (uint64_t)v & 0xffff, 2);
	else if (v >= INT32_MIN)
		wr_tagged(w, 0xd2, (uint64_t)v & 0xffffffffu, 4);
	else
		wr_tagged(w, 0xd3, (uint64_t)v, 8);
}

static size_t str_hdr_len(size_t n)
{
	return n <= 31 ? 1 : n <= 0xff ? 2 : n <= 0xffff ? 3 : 5;
}

static void wr_str_n(struct wr *w, const char *s, size_t n)
{
	if (n <= 31)
		wr_byte(w, (uint8_t)(0xa0 | n));
	else if (n <= 0xff)
		wr_tagged(w, 0xd9, n, 1);
	else if (n <= 0xffff)
		wr_tagged(w, 0xda, n, 2);
	else
		wr_tagged(w, 0xdb, n, 4);
	wr_put(w, s, n);
}

static void wr_str(struct wr *w, const char *s)
{
	wr_str_n(w, s, strlen(s));
}

static void wr_count(struct wr *w, uint8_t fix, uint8_t tag16, size_t n)
{
	if (n <= 15)
		wr_byte(w, (uint8_t)(fix | n));
	else if (n <= 0xffff)
		wr_tagged(w, tag16, n, 2);
	else
		wr_tagged(w, (uint8_t)(tag16 + 1), n, 4);
}

/* bin header then rows x cols floats as little-endian FP32 */
static void wr_floats(struct wr *w, const float *v, size_t count)
{
	size_t bytes = count * sizeof(float);

	if (bytes <= 0xff)
		wr_tagged(w, 0xc4, bytes, 1);
	else if (bytes <= 0xffff)
		wr_tagged(w, 0xc5, bytes, 2);
	else
		wr_tagged(w, 0xc6, bytes, 4);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	wr_put(w, v, bytes);
#else
	for (size_t i = 0; i < count; i++) {
		uint32_t u;
		uint8_t b[4];

		memcpy(&u, &v[i], 4);
		b[0] = (uint8_t)u, b[1] = (uint8_t)(u >> 8), b[2] = (uint8_t)(u >> 16),
		b[3] = (uint8_t)(u >> 24);
		wr_put(w, b, 4);
	}
#endif
}

static void encode_answer(struct wr *w, uint64_t id, const struct model *m, const float *out,
			  int rows)
{
	char ver[16];

	snprintf(ver, sizeof(ver), "%d", m->version);
	wr_count(w, 0x80, 0xde, 4);
	wr_str(w, "id");
	wr_uint(w, id);
	wr_str(w, "model");
	wr_str(w, m->name);
	wr_str(w, "model_version");
	wr_str(w, ver);
	wr_str(w, "outputs");
	wr_count(w, 0x90, 0xdc, 1);
	wr_count(w, 0x80, 0xde, 4);
	wr_str(w, "name");
	wr_str(w, m->output.name);
	wr_str(w, "datatype");
	wr_str(w, dtype_kserve_name(m->output.dtype));
	wr_str(w, "shape");
	wr_count(w, 0x90, 0xdc, 2);
	wr_int(w, rows);
	wr_int(w, m->out_dim);
	wr_str(w, "data");
	wr_floats(w, out, (size_t)rows * (size_t)m->out_dim);
}

size_t dg_answer_size(const struct model *m, uint64_t id, int rows)
{
	struct wr w = { NULL, 0, 0 };

	encode_answer(&w, id, m, NULL, rows);
	return w.n;
}

int dg_check_fits(const struct model *m, uint64_t id, int rows, size_t cap, char *err,
		  size_t errlen)
{
	size_t n = dg_answer_size(m, id, rows);

	if (n <= cap)
		return 0;
	snprintf(err, errlen, "answer of %zu bytes does not fit a datagram (at most %zu); use HTTP/2",
		 n, cap);
	return 413;
}

size_t dg_encode_answer(uint8_t *buf, size_t cap, uint64_t id, const struct model *m,
			const float *out, int rows)
{
	struct wr w = { buf, cap, 0 };

	if (dg_answer_size(m, id, rows) > cap)	/* no partial copy of the values */
		return 0;
	encode_answer(&w, id, m, out, rows);
	return w.n <= cap ? w.n : 0;
}

static void encode_error(struct wr *w, uint64_t id, int code, const char *msg, size_t mlen)
{
	wr_count(w, 0x80, 0xde, 3);
	wr_str(w, "id");
	wr_uint(w, id);
	wr_str(w, "error");
	wr_str_n(w, msg, mlen);
	wr_str(w, "code");
	wr_int(w, code);
}

size_t dg_encode_error(uint8_t *buf, size_t cap, uint64_t id, int code, const char *msg)
{
	struct wr w = { NULL, 0, 0 };
	size_t mlen = msg ? strlen(msg) : 0, fixed;

	if (!msg)
		msg = "";
	encode_error(&w, id, code, "", 0);
	fixed = w.n - 1;			/* less the empty string's header */
	if (fixed + 1 > cap)
		return 0;
	/* cut the message until it and its header fit (the header shrinks
	 * with it), then back off to a UTF-8 character boundary */
	while (mlen && fixed + str_hdr_len(mlen) + mlen > cap) {
		size_t room = cap - fixed, hdr = str_hdr_len(mlen);
		size_t fit = room > hdr ? room - hdr : 0;

		mlen = fit < mlen ? fit : mlen - 1;	/* strictly shorter each time */
	}
	while (mlen && ((uint8_t)msg[mlen] & 0xc0) == 0x80)
		mlen--;
	w = (struct wr){ buf, cap, 0 };
	encode_error(&w, id, code, msg, mlen);
	return w.n <= cap ? w.n : 0;
}

bool dg_peek_id(const uint8_t *p, size_t len, uint64_t *id)
{
	struct mpr r = { p, p + len };
	struct mpr_val m, k, v;

	if (!p || !mpr_next(&r, &m) || m.kind != MPR_MAP || m.u == 0 || !mpr_next(&r, &k) ||
	    !mpr_key_is(&k, "id") || !mpr_next(&r, &v) || v.kind != MPR_UINT)
		return false;
	*id = v.u;
	return true;
}
